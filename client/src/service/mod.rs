//! `qwen-env service install|uninstall|status`: run the daemon from login under the platform's
//! service manager (systemd user units, a launchd agent, a Task Scheduler logon task).
//!
//! The unit files are the commented templates in `packaging/`, compiled in; this module fills in
//! the paths. The rendering is pure and built on every platform so each template is tested
//! everywhere; only talking to the manager is per platform. `QWEN_ENV_SERVICE_MANAGER=none`
//! writes the files without asking any manager (tests, image builds).

#[cfg(target_os = "macos")]
mod launchd;
#[cfg(windows)]
mod schtasks;
#[cfg(all(unix, not(target_os = "macos")))]
mod systemd;

use std::path::{Path, PathBuf};
use std::process::Command;

use qwen_env_proto::endpoint::Endpoint;
use qwen_env_proto::{Request, Response};

use crate::cli::ServiceCommand;
use crate::error::CliError;

/// The systemd service unit (socket-activated).
pub const SYSTEMD_SERVICE: &str = include_str!("../../units/systemd/qwen-envd.service");
/// The systemd socket unit.
pub const SYSTEMD_SOCKET: &str = include_str!("../../units/systemd/qwen-envd.socket");
/// The launchd agent.
pub const LAUNCHD_PLIST: &str = include_str!("../../units/launchd/io.qwen-env.qwen-envd.plist");
/// The Task Scheduler task (its XML declares UTF-16, which is how it is written).
pub const WINDOWS_TASK: &str = include_str!("../../units/windows/qwen-envd-task.xml");

/// Runs `service install|uninstall|status` for this platform.
pub fn service(cmd: &ServiceCommand) -> Result<(), CliError> {
    #[cfg(target_os = "macos")]
    use launchd as platform;
    #[cfg(windows)]
    use schtasks as platform;
    #[cfg(all(unix, not(target_os = "macos")))]
    use systemd as platform;
    match cmd {
        ServiceCommand::Install => platform::install(),
        ServiceCommand::Uninstall => platform::uninstall(),
        ServiceCommand::Status => platform::status(),
    }
}

/// Whether `QWEN_ENV_SERVICE_MANAGER=none` asks us to write files only.
pub fn manager_disabled() -> bool {
    std::env::var_os("QWEN_ENV_SERVICE_MANAGER").is_some_and(|v| v == "none")
}

/// The daemon's absolute path, found as the client's autostart finds it. A service manager runs
/// it without our PATH, so a bare name is looked up now.
pub fn daemon_binary() -> Result<PathBuf, CliError> {
    let path = crate::autostart::daemon_path();
    let found = if path.is_absolute() {
        Some(path.clone())
    } else if path.components().count() > 1 {
        std::env::current_dir().ok().map(|cwd| cwd.join(&path))
    } else {
        std::env::var_os("PATH")
            .and_then(|dirs| {
                std::env::split_paths(&dirs).map(|d| d.join(&path)).find(|p| p.is_file())
            })
            .filter(|p| p.is_absolute())
    };
    found.filter(|p| p.is_file()).ok_or_else(|| {
        CliError::failed(format!(
            "cannot find the daemon binary ({}): install it beside qwen-env (`cargo install --path \
             daemon`) or set QWEN_ENV_DAEMON to its absolute path",
            path.display()
        ))
    })
}

fn utf8(path: &Path) -> Result<&str, CliError> {
    path.to_str().ok_or_else(|| {
        CliError::failed(format!("{} is not UTF-8; a unit file cannot name it", path.display()))
    })
}

/// The service unit for the daemon at `daemon`.
pub fn systemd_service(daemon: &Path) -> Result<String, CliError> {
    Ok(SYSTEMD_SERVICE.replace("@QWEN_ENVD@", &systemd_escape(utf8(daemon)?)))
}

/// A path as one word of a systemd `ExecStart=`: quoted when it has anything beyond the plain
/// path characters; `%` (specifiers) and `$` (variables) doubled, as systemd.service(5) asks.
pub fn systemd_escape(s: &str) -> String {
    let plain = s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+:@,%".contains(c));
    let doubled = s.replace('%', "%%").replace('$', "$$");
    if plain {
        doubled
    } else {
        format!("\"{}\"", doubled.replace('\\', r"\\").replace('"', "\\\""))
    }
}

/// The launchd agent: the daemon, the TMPDIR the client uses (the socket lives there on macOS)
/// and the directory for its stdout and stderr.
pub fn launchd_plist(daemon: &Path, tmpdir: &Path, log_dir: &Path) -> Result<String, CliError> {
    Ok(LAUNCHD_PLIST
        .replace("@QWEN_ENVD@", &xml_escape(utf8(daemon)?))
        .replace("@TMPDIR@", &xml_escape(utf8(tmpdir)?))
        .replace("@LOG_DIR@", &xml_escape(utf8(log_dir)?)))
}

/// The Task Scheduler task for the daemon at `daemon`, run as `user` (`DOMAIN\name`).
pub fn windows_task(daemon: &Path, user: &str) -> Result<String, CliError> {
    Ok(WINDOWS_TASK
        .replace("@QWEN_ENVD@", &xml_escape(utf8(daemon)?))
        .replace("@USER_ID@", &xml_escape(user)))
}

/// Text as XML character data or an attribute value.
pub fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a manager never reads a
/// half-written unit; creates the directory.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    let fail =
        |e: std::io::Error| CliError::failed(format!("failed to write {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, bytes).map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)
}

/// Removes `path`; `Ok(false)` when it was not there.
pub fn remove_file(path: &Path) -> Result<bool, CliError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(CliError::failed(format!("failed to remove {}: {e}", path.display()))),
    }
}

/// Stops a daemon the client started on demand: it holds the socket path and the single-instance
/// lock, so the manager's daemon could not start while it runs. Returns its pid.
pub fn stop_running_daemon() -> Result<Option<u32>, CliError> {
    let Some(mut client) = crate::autostart::connect_existing()? else { return Ok(None) };
    let pid = client.welcome.pid;
    match client.request(&Request::Shutdown)? {
        Response::ShuttingDown => {}
        other => {
            return Err(CliError::daemon(format!("unexpected answer from the daemon: {other:?}")));
        }
    }
    crate::autostart::wait_unlocked(
        &Endpoint::from_env().pidfile(),
        &format!("qwen-envd (pid {pid}) to exit"),
    )?;
    Ok(Some(pid))
}

/// The pid of the daemon answering on the socket now, if any (no autostart, no side effects).
pub fn daemon_pid() -> Option<u32> {
    let socket = Endpoint::from_env().socket();
    crate::transport::Client::connect_quick(&socket, std::time::Duration::from_millis(500))
        .ok()
        .map(|c| c.welcome.pid)
}

/// Runs a manager's command; `Err` carries what it printed, for the user.
pub fn run_tool(program: &str, args: &[&str]) -> Result<String, String> {
    match Command::new(program).args(args).output() {
        Ok(out) if out.status.success() => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        Ok(out) => {
            let text = String::from_utf8_lossy(if out.stderr.is_empty() {
                &out.stdout
            } else {
                &out.stderr
            });
            Err(format!("`{program} {}` failed ({}): {}", args.join(" "), out.status, text.trim()))
        }
        Err(e) => Err(format!("cannot run {program}: {e}")),
    }
}

#[cfg(test)]
mod tests;
