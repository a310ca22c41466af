//! `qwen-env daemon start|stop|restart|logs`.

use std::io::{BufRead, BufReader};

use qwen_env_proto::endpoint::{Dirs, Endpoint};
use qwen_env_proto::{Request, Response};

use crate::autostart::{connect_existing, ensure_daemon, wait_unlocked};
use crate::cli::DaemonCommand;
use crate::error::CliError;
use crate::out;

pub fn daemon(cmd: &DaemonCommand) -> Result<(), CliError> {
    match cmd {
        DaemonCommand::Start => start(),
        DaemonCommand::Stop => stop().map(|_| ()),
        DaemonCommand::Restart => {
            stop()?;
            start()
        }
        DaemonCommand::Logs { lines } => logs(*lines),
    }
}

fn start() -> Result<(), CliError> {
    let client = ensure_daemon()?;
    out(&format!(
        "qwen-envd {} running (pid {})\n",
        client.welcome.daemon_version, client.welcome.pid
    ))
}

/// Asks the daemon to exit and waits until it has released its lock.
fn stop() -> Result<bool, CliError> {
    let Some(mut client) = connect_existing()? else {
        out("qwen-envd is not running\n")?;
        return Ok(false);
    };
    let pid = client.welcome.pid;
    match client.request(&Request::Shutdown)? {
        Response::ShuttingDown => {}
        other => return Err(super::unexpected(&other)),
    }
    wait_unlocked(&Endpoint::from_env().pidfile(), &format!("qwen-envd (pid {pid}) to exit"))?;
    out(&format!("qwen-envd (pid {pid}) stopped\n"))?;
    Ok(true)
}

fn logs(lines: usize) -> Result<(), CliError> {
    let path = Dirs::from_env().log_file();
    let file = std::fs::File::open(&path).map_err(|e| {
        CliError::failed(format!("cannot read the daemon's log {}: {e}", path.display()))
    })?;
    let all: Vec<String> = BufReader::new(file).lines().map_while(Result::ok).collect();
    let tail = &all[all.len().saturating_sub(lines)..];
    eprintln!("==> {} <==", path.display());
    let mut text = tail.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    out(&text)
}
