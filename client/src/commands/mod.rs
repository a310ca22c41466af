//! One module per subcommand.

mod completions;
mod daemon;
mod events;
mod explain;
mod hook;
mod key;
mod man;
mod prompt;
mod run;
mod spinner;
mod status;
mod trust;

use qwen_env_proto::{Request, Response};

use crate::cli::Command;
use crate::error::CliError;

/// Runs a parsed command.
pub fn dispatch(command: Command) -> Result<(), CliError> {
    match command {
        Command::Run(args) => run::run(args),
        Command::Explain(args) => explain::explain(&args),
        Command::Doctor(args) => explain::doctor(&args),
        Command::Key(cmd) => key::key(cmd),
        Command::Status { json } => status::status(json),
        Command::Trust(args) => trust::trust(&args),
        Command::Daemon(cmd) => daemon::daemon(&cmd),
        Command::Events { json } => events::events(json),
        Command::Hook { shell } => hook::hook(shell),
        Command::Complete { what } => {
            completions::names(what);
            Ok(())
        }
        Command::HookStatus => {
            hook::hook_status();
            Ok(())
        }
        Command::Completions { shell } => completions::completions(shell),
        Command::Man { dir } => man::man(dir.as_deref()),
        Command::Service(cmd) => crate::service::service(&cmd),
    }
}

/// Sends one request to the daemon (starting it if needed).
fn ask(request: &Request) -> Result<Response, CliError> {
    crate::autostart::ensure_daemon()?.request(request)
}

/// A response of the wrong kind is a bug on one side; say so plainly.
fn unexpected(response: &Response) -> CliError {
    CliError::daemon(format!("unexpected answer from the daemon: {response:?}"))
}

/// "3 days", "5 hours", "just now".
fn age(secs: u64) -> String {
    match secs {
        0..60 => "just now".to_owned(),
        60..3600 => plural(secs / 60, "minute"),
        3600..86_400 => plural(secs / 3600, "hour"),
        _ => plural(secs / 86_400, "day"),
    }
}

/// How long ago, in words: "just now", "3 minutes ago".
fn ago(secs: u64) -> String {
    match age(secs) {
        now if secs < 60 => now,
        a => format!("{a} ago"),
    }
}

fn plural(n: u64, unit: &str) -> String {
    if n == 1 { format!("1 {unit}") } else { format!("{n} {unit}s") }
}

/// Seconds since the Unix epoch.
fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
