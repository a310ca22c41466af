//! Windows: a per-user Task Scheduler task that starts the daemon at logon.
//!
//! `schtasks /Create /XML` reads the task definition from a file; we keep it in
//! `%LOCALAPPDATA%\qwen-env` so `uninstall` and `status` can name it, written as UTF-16 with a
//! byte-order mark, the encoding its declaration names and the one schtasks reads reliably.

use std::fmt::Write as _;
use std::path::PathBuf;

use super::{daemon_binary, remove_file, run_tool, write_file};
use crate::error::CliError;
use crate::out;

const TASK: &str = "qwen-envd";

fn xml_path() -> PathBuf {
    PathBuf::from(std::env::var_os("LOCALAPPDATA").unwrap_or_default())
        .join("qwen-env")
        .join("qwen-envd-task.xml")
}

/// `DOMAIN\user`, the form a task's `UserId` takes.
fn user_id() -> String {
    let var = |name| std::env::var(name).unwrap_or_default();
    match (var("USERDOMAIN"), var("USERNAME")) {
        (domain, user) if domain.is_empty() => user,
        (domain, user) => format!("{domain}\\{user}"),
    }
}

fn schtasks(args: &[&str]) -> Result<String, String> {
    run_tool("schtasks", args)
}

pub fn install() -> Result<(), CliError> {
    let daemon = daemon_binary()?;
    let xml = super::windows_task(&daemon, &user_id())?;
    let mut bytes = vec![0xFF, 0xFE];
    bytes.extend(xml.encode_utf16().flat_map(u16::to_le_bytes));
    let path = xml_path();
    write_file(&path, &bytes)?;
    let mut text = format!("wrote {}\n", path.display());
    if super::manager_disabled() {
        text += "not registered: QWEN_ENV_SERVICE_MANAGER=none\n";
        return out(&text);
    }
    let path_str = path.to_string_lossy();
    schtasks(&["/Create", "/TN", TASK, "/XML", &path_str, "/F"]).map_err(CliError::failed)?;
    let _ = schtasks(&["/Run", "/TN", TASK]);
    let _ =
        writeln!(text, "registered the logon task {TASK}: it starts {} at logon", daemon.display());
    out(&text)
}

pub fn uninstall() -> Result<(), CliError> {
    let mut text = String::new();
    if !super::manager_disabled() {
        let _ = schtasks(&["/End", "/TN", TASK]);
        if schtasks(&["/Delete", "/TN", TASK, "/F"]).is_ok() {
            let _ = writeln!(text, "deleted the logon task {TASK}");
        }
    }
    let path = xml_path();
    if remove_file(&path)? {
        let _ = writeln!(text, "removed {}", path.display());
    }
    if text.is_empty() {
        text = format!("nothing to remove: no task {TASK}\n");
    }
    out(&text)
}

pub fn status() -> Result<(), CliError> {
    let mut text = String::new();
    match schtasks(&["/Query", "/TN", TASK, "/FO", "LIST"]) {
        Ok(info) => {
            let state =
                info.lines().find_map(|l| l.trim().strip_prefix("Status:")).unwrap_or("registered");
            let _ = writeln!(text, "{TASK}: registered, {}", state.trim());
        }
        Err(_) => {
            let _ = writeln!(text, "{TASK}: not registered");
        }
    }
    match super::daemon_pid() {
        Some(pid) => writeln!(text, "daemon: running (pid {pid})"),
        None => writeln!(text, "daemon: not running"),
    }
    .ok();
    out(&text)
}
