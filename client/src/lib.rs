//! qwen-env: the thin client. Blocking I/O only; everything heavy lives in the daemon.
//!
//! # Layout
//!
//! - [`cli`]: the command line; [`commands`]: one module per subcommand.
//! - [`transport`]: the connection and handshake; [`autostart`]: start the daemon when needed.
//! - [`exec`]: build the child's environment and exec it; [`render`]: human and JSON output.
//! - [`shell`]: the `hook` scripts; [`service`]: the login-service units and their managers.
//! - [`error`]: messages and exit codes.

pub mod autostart;
pub mod cli;
pub mod commands;
pub mod error;
pub mod exec;
pub mod render;
pub mod service;
pub mod shell;
pub mod transport;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use crate::error::CliError;

/// The binary's entry point: parse, dispatch, print the error once, return the exit code.
pub fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let command = match cli::fast_run(&args) {
        Some(run) => cli::Command::Run(run),
        None => match cli::Cli::try_parse_from(&args) {
            Ok(cli) => cli.command,
            Err(e) => {
                let _ = e.print();
                if let Some(hint) = cli::separator_hint(&args, e.kind()) {
                    let _ = writeln!(std::io::stderr(), "{hint}");
                }
                return ExitCode::from(if e.use_stderr() { error::exit::USAGE } else { 0 });
            }
        },
    };
    match commands::dispatch(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(message) = &e.message {
                let _ = writeln!(std::io::stderr(), "qwen-env: {message}");
            }
            ExitCode::from(e.code)
        }
    }
}

/// Writes to stdout; a closed pipe (`qwen-env key ls | head -1`) ends quietly with exit 0.
pub fn out(text: &str) -> Result<(), CliError> {
    match std::io::stdout().write_all(text.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(CliError::silent(0)),
        Err(e) => Err(CliError::failed(format!("failed to write output: {e}"))),
        Ok(()) => Ok(()),
    }
}
