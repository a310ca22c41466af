//! Linux: a socket-activated systemd user service in `$XDG_CONFIG_HOME/systemd/user/`.
//!
//! Only the socket is enabled: systemd listens from login on and starts the daemon on the first
//! connection, so no prompt or `qwen` launch waits for a cold start. Where systemd does not run
//! (containers, WSL without systemd) `install` still writes the units and says what to do instead.

use std::fmt::Write as _;
use std::path::PathBuf;

use super::{daemon_binary, remove_file, run_tool, write_file};
use crate::error::CliError;
use crate::out;

const SERVICE: &str = "qwen-envd.service";
const SOCKET: &str = "qwen-envd.socket";

/// Whether a systemd user manager can run our units.
enum Manager {
    Running,
    /// Why not, for the user.
    Absent(String),
}

fn manager() -> Manager {
    if super::manager_disabled() {
        return Manager::Absent("QWEN_ENV_SERVICE_MANAGER=none: systemd is not asked".to_owned());
    }
    // sd_booted(3): systemd is PID 1 exactly when this directory exists.
    if !std::path::Path::new("/run/systemd/system").is_dir() {
        return Manager::Absent(
            "systemd is not running here (no /run/systemd/system; most containers are like this)"
                .to_owned(),
        );
    }
    match systemctl(&["show-environment"]) {
        Ok(_) => Manager::Running,
        Err(e) => Manager::Absent(format!("no systemd user manager answers: {e}")),
    }
}

fn systemctl(args: &[&str]) -> Result<String, String> {
    let mut all = vec!["--user"];
    all.extend_from_slice(args);
    run_tool("systemctl", &all)
}

/// `$XDG_CONFIG_HOME/systemd/user`, where systemd looks for a user's own units.
fn unit_dir() -> PathBuf {
    match std::env::var_os("XDG_CONFIG_HOME").map(PathBuf::from) {
        Some(p) if p.is_absolute() => p.join("systemd/user"),
        _ => {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".config/systemd/user")
        }
    }
}

pub fn install() -> Result<(), CliError> {
    let daemon = daemon_binary()?;
    let dir = unit_dir();
    let service = super::systemd_service(&daemon)?;
    write_file(&dir.join(SERVICE), service.as_bytes())?;
    write_file(&dir.join(SOCKET), super::SYSTEMD_SOCKET.as_bytes())?;
    let mut text = format!(
        "wrote {} (runs {} --foreground)\nwrote {}\n",
        dir.join(SERVICE).display(),
        daemon.display(),
        dir.join(SOCKET).display()
    );
    match manager() {
        Manager::Absent(why) => {
            let _ = write!(
                text,
                "{why}, so nothing will start these units.\n\
                 qwen-env still starts the daemon on demand. To start it at login instead, add this \
                 line to your shell profile (~/.profile):\n    qwen-env daemon start >/dev/null\n"
            );
        }
        Manager::Running => {
            if systemctl(&["is-active", "--quiet", SERVICE]).is_err()
                && let Some(pid) = super::stop_running_daemon()?
            {
                let _ = writeln!(text, "stopped qwen-envd (pid {pid}), started on demand earlier");
            }
            systemctl(&["daemon-reload"]).map_err(CliError::failed)?;
            systemctl(&["enable", "--now", SOCKET]).map_err(CliError::failed)?;
            // A service from an earlier install picks up the new path.
            let _ = systemctl(&["try-restart", SERVICE]);
            let _ = writeln!(
                text,
                "enabled {SOCKET}: systemd listens from login on and starts qwen-envd on the first \
                 connection (`systemctl --user status {SOCKET}`)"
            );
        }
    }
    out(&text)
}

pub fn uninstall() -> Result<(), CliError> {
    let dir = unit_dir();
    let mut text = String::new();
    let running = matches!(manager(), Manager::Running);
    if running {
        // Not loaded (never installed) is fine: there is nothing to stop.
        if systemctl(&["disable", "--now", SOCKET, SERVICE]).is_ok() {
            let _ = writeln!(text, "disabled and stopped {SOCKET} and {SERVICE}");
        }
    }
    let mut removed = 0;
    for name in [SERVICE, SOCKET] {
        let path = dir.join(name);
        if remove_file(&path)? {
            removed += 1;
            let _ = writeln!(text, "removed {}", path.display());
        }
    }
    if running && removed > 0 {
        systemctl(&["daemon-reload"]).map_err(CliError::failed)?;
    }
    if removed == 0 {
        let _ = writeln!(text, "nothing to remove: no qwen-envd units in {}", dir.display());
    }
    out(&text)
}

pub fn status() -> Result<(), CliError> {
    let dir = unit_dir();
    let mut text = String::new();
    for name in [SERVICE, SOCKET] {
        let path = dir.join(name);
        let state = match std::fs::read_to_string(&path) {
            Err(_) => "not installed".to_owned(),
            Ok(unit) if name == SERVICE => exec_start_note(&unit),
            Ok(_) => "installed".to_owned(),
        };
        let _ = writeln!(text, "{name}: {state} ({})", path.display());
    }
    match manager() {
        Manager::Absent(why) => {
            let _ = writeln!(text, "systemd: {why}; nothing runs these units");
        }
        Manager::Running => {
            // is-enabled and is-active print their answer and exit non-zero for "no".
            let word = |args: &[&str]| match systemctl(args) {
                Ok(s) => s.trim().to_owned(),
                Err(e) => e.rsplit(": ").next().unwrap_or("unknown").trim().to_owned(),
            };
            let _ = writeln!(
                text,
                "systemd: {SOCKET} {} and {}, {SERVICE} {}",
                word(&["is-enabled", SOCKET]),
                word(&["is-active", SOCKET]),
                word(&["is-active", SERVICE])
            );
        }
    }
    match super::daemon_pid() {
        Some(pid) => writeln!(text, "daemon: running (pid {pid})"),
        None => writeln!(text, "daemon: not running"),
    }
    .ok();
    out(&text)
}

/// "installed", or what is stale about the installed service's `ExecStart=`.
fn exec_start_note(unit: &str) -> String {
    let Ok(daemon) = daemon_binary() else { return "installed".to_owned() };
    let Ok(expected) = super::systemd_service(&daemon) else { return "installed".to_owned() };
    let line = |text: &str| text.lines().find(|l| l.starts_with("ExecStart=")).map(str::to_owned);
    if line(unit) == line(&expected) {
        "installed".to_owned()
    } else {
        format!(
            "installed, but it runs something other than {} (`qwen-env service install` updates it)",
            daemon.display()
        )
    }
}
