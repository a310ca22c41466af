//! `qwen-env events [--json]`: print changes and new findings as the daemon sees them.

use qwen_env_proto::{Request, Response};

use crate::error::CliError;
use crate::{out, render};

pub fn events(json: bool) -> Result<(), CliError> {
    let mut client = crate::autostart::ensure_daemon()?;
    let mut failed = None;
    client.stream(&Request::Events, |response| {
        let Response::Event(ev) = response else { return true };
        let line = if json {
            let findings: Vec<_> = ev.findings.iter().map(render::finding_json).collect();
            let doc = serde_json::json!({
                "schema": 1,
                "time": ev.time,
                "kind": ev.kind,
                "path": ev.path,
                "context": ev.context,
                "message": ev.message,
                "findings": findings,
            });
            format!("{doc}\n")
        } else {
            let t = ev.time % 86_400;
            format!(
                "{:02}:{:02}:{:02}Z {:17} {}\n",
                t / 3600,
                t / 60 % 60,
                t % 60,
                ev.kind,
                ev.message
            )
        };
        // Flush each line: this output is usually piped to a watcher of its own.
        match out(&line) {
            Ok(()) => true,
            Err(e) => {
                failed = Some(e);
                false
            }
        }
    })?;
    failed.map_or(Ok(()), Err)
}
