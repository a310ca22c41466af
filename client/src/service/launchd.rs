//! macOS: a launchd user agent in `~/Library/LaunchAgents`, loaded into the GUI domain.
//!
//! launchd can hand over sockets too, but only through `launch_activate_socket`, which the daemon
//! does not use: the agent starts the daemon at login and restarts it after a crash.

use std::fmt::Write as _;
use std::path::PathBuf;

use super::{daemon_binary, remove_file, run_tool, write_file};
use crate::error::CliError;
use crate::out;

const LABEL: &str = "io.qwen-env.qwen-envd";

fn home() -> PathBuf {
    PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
}

fn plist_path() -> PathBuf {
    home().join("Library/LaunchAgents").join(format!("{LABEL}.plist"))
}

/// The per-user GUI domain, where agents of a logged-in user live.
fn domain() -> String {
    format!("gui/{}", qwen_env_proto::endpoint::euid())
}

fn launchctl(args: &[&str]) -> Result<String, String> {
    run_tool("launchctl", args)
}

pub fn install() -> Result<(), CliError> {
    let daemon = daemon_binary()?;
    let log_dir = home().join("Library/Logs/qwen-env");
    std::fs::create_dir_all(&log_dir)
        .map_err(|e| CliError::failed(format!("failed to create {}: {e}", log_dir.display())))?;
    let plist = super::launchd_plist(&daemon, &std::env::temp_dir(), &log_dir)?;
    let path = plist_path();
    let mut text = String::new();
    if super::manager_disabled() {
        write_file(&path, plist.as_bytes())?;
        let _ =
            writeln!(text, "wrote {} (not loaded: QWEN_ENV_SERVICE_MANAGER=none)", path.display());
        return out(&text);
    }
    // An earlier install's agent is unloaded first, so the new one takes effect now.
    let _ = launchctl(&["bootout", &format!("{}/{LABEL}", domain())]);
    if let Some(pid) = super::stop_running_daemon()? {
        let _ = writeln!(text, "stopped qwen-envd (pid {pid}), started on demand earlier");
    }
    write_file(&path, plist.as_bytes())?;
    let path_str = path.to_string_lossy();
    launchctl(&["bootstrap", &domain(), &path_str]).map_err(CliError::failed)?;
    let _ = writeln!(
        text,
        "wrote {} and loaded it: launchd starts {} at login (`launchctl print {}/{LABEL}`)",
        path.display(),
        daemon.display(),
        domain()
    );
    out(&text)
}

pub fn uninstall() -> Result<(), CliError> {
    let mut text = String::new();
    if !super::manager_disabled()
        && launchctl(&["bootout", &format!("{}/{LABEL}", domain())]).is_ok()
    {
        let _ = writeln!(text, "unloaded {LABEL}");
    }
    let path = plist_path();
    if remove_file(&path)? {
        let _ = writeln!(text, "removed {}", path.display());
    } else {
        let _ = writeln!(text, "nothing to remove: {} does not exist", path.display());
    }
    out(&text)
}

pub fn status() -> Result<(), CliError> {
    let path = plist_path();
    let mut text = String::new();
    let installed = if path.is_file() { "installed" } else { "not installed" };
    let _ = writeln!(text, "{LABEL}: {installed} ({})", path.display());
    if !super::manager_disabled() {
        match launchctl(&["print", &format!("{}/{LABEL}", domain())]) {
            Ok(info) => {
                let state = info
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("state = "))
                    .unwrap_or("loaded");
                let _ = writeln!(text, "launchd: loaded, {state}");
            }
            Err(_) => {
                let _ = writeln!(text, "launchd: not loaded");
            }
        }
    }
    match super::daemon_pid() {
        Some(pid) => writeln!(text, "daemon: running (pid {pid})"),
        None => writeln!(text, "daemon: not running"),
    }
    .ok();
    out(&text)
}
