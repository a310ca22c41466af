//! `qwen-env status`.

use std::fmt::Write as _;

use qwen_env_proto::{Request, Response};

use super::{age, plural, unexpected};
use crate::error::CliError;
use crate::out;

pub fn status(json: bool) -> Result<(), CliError> {
    let mut client = crate::autostart::ensure_daemon()?;
    let s = match client.request(&Request::Status)? {
        Response::Status(s) => s,
        other => return Err(unexpected(&other)),
    };
    if json {
        let doc = serde_json::json!({
            "schema": 1,
            "pid": s.pid,
            "daemon_version": s.daemon_version,
            "client_version": qwen_env_proto::VERSION,
            "protocol": s.protocol,
            "uptime_secs": s.uptime_secs,
            "socket": s.socket,
            "log_file": s.log_file,
            "connections": s.connections,
            "watched": s.watched,
            "watch_note": s.watch_note,
            "contexts": s.contexts.iter().map(|c| serde_json::json!({
                "cwd": c.cwd, "tool": c.tool, "errors": c.errors, "warnings": c.warnings, "idle_secs": c.idle_secs,
            })).collect::<Vec<_>>(),
            "keychain": {
                "backend": s.keychain.backend,
                "durable": s.keychain.durable,
                "note": s.keychain.note,
            },
        });
        return out(&format!("{doc:#}\n"));
    }
    let mut text = format!(
        "qwen-envd {} (pid {}, protocol {}), up {}\n  client   {}\n  socket   {}\n  log      {}\n  keychain {}{}\n",
        s.daemon_version,
        s.pid,
        s.protocol,
        age(s.uptime_secs).replace("just now", "less than a minute"),
        qwen_env_proto::VERSION,
        s.socket,
        s.log_file,
        s.keychain.backend,
        if s.keychain.durable { "" } else { " (not durable: keys are lost at reboot)" },
    );
    if let Some(note) = &s.keychain.note {
        let _ = writeln!(text, "           {note}");
    }
    if !s.contexts.is_empty() {
        let _ = writeln!(text, "  contexts");
        for c in &s.contexts {
            let state = match (c.errors, c.warnings) {
                (0, 0) => "ok".to_owned(),
                (e, w) => {
                    format!(
                        "{}, {}",
                        plural(u64::from(e), "error"),
                        plural(u64::from(w), "warning")
                    )
                }
            };
            let _ = writeln!(text, "           {} in {}: {state}", c.tool, c.cwd);
        }
    }
    let _ = writeln!(text, "  watching {} files", s.watched.len());
    if let Some(note) = &s.watch_note {
        let _ = writeln!(text, "           {note}");
    }
    out(&text)
}
