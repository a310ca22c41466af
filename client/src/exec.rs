//! Build the child's environment from a [`RunPlan`] and replace this process with the child.
//!
//! On Unix the client `exec`s, so the child keeps our pid and receives signals directly, and its
//! exit status is the one the shell sees. Elsewhere it spawns, waits and returns the child's code.

use std::ffi::OsString;
use std::process::Command;

use qwen_env_proto::{NESTING_MARKER, RunPlan};

use crate::error::{CliError, exit};

/// Runs `command` with the plan applied. Returns only on failure (Unix) or with the child's
/// exit code (elsewhere).
pub fn exec(command: &[OsString], plan: &RunPlan) -> Result<u8, CliError> {
    let (program, args) =
        command.split_first().ok_or_else(|| CliError::usage("no command to run"))?;
    let mut cmd = Command::new(program);
    cmd.args(&plan.extra_args).args(args);
    for name in &plan.unset {
        cmd.env_remove(name);
    }
    for (name, value) in &plan.vars {
        cmd.env(name, value);
    }
    for (name, secret) in &plan.secrets {
        cmd.env(name, secret.expose_secret());
    }
    cmd.env(NESTING_MARKER, "1");
    run(cmd, program)
}

#[cfg(unix)]
fn run(mut cmd: Command, program: &OsString) -> Result<u8, CliError> {
    use std::os::unix::process::CommandExt;
    let err = cmd.exec();
    Err(spawn_error(&err, program))
}

#[cfg(not(unix))]
fn run(mut cmd: Command, program: &OsString) -> Result<u8, CliError> {
    let status = cmd.status().map_err(|e| spawn_error(&e, program))?;
    Ok(status.code().and_then(|c| u8::try_from(c).ok()).unwrap_or(1))
}

fn spawn_error(err: &std::io::Error, program: &OsString) -> CliError {
    let name = program.to_string_lossy();
    match err.kind() {
        std::io::ErrorKind::NotFound => CliError {
            code: exit::NOT_FOUND,
            message: Some(format!("{name}: command not found (check its spelling and your PATH)")),
        },
        std::io::ErrorKind::PermissionDenied => CliError {
            code: exit::NOT_EXECUTABLE,
            message: Some(format!("{name}: permission denied (is it executable?)")),
        },
        _ => CliError { code: exit::NOT_EXECUTABLE, message: Some(format!("{name}: {err}")) },
    }
}
