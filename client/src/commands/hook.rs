//! `qwen-env hook SHELL` prints the shell integration; the hidden `qwen-env hook-status` is the
//! check its prompt hook runs before every prompt.

use std::time::Duration;

use qwen_env_proto::endpoint::Endpoint;
use qwen_env_proto::{Request, ResolveRequest, Response, Severity};

use super::run::caller_context;
use crate::cli::HookShell;
use crate::error::CliError;
use crate::out;
use crate::transport::Client;

/// How long the prompt check waits for each read from the daemon. A healthy daemon answers in
/// well under a millisecond (README, Performance); this only bounds a hung one.
const HOOK_TIMEOUT: Duration = Duration::from_millis(50);

pub fn hook(shell: HookShell) -> Result<(), CliError> {
    let exe = std::env::current_exe()
        .map_err(|e| CliError::failed(format!("cannot find this executable's path: {e}")))?;
    let script = crate::shell::render(shell, &exe).ok_or_else(|| {
        CliError::failed(format!(
            "this executable's path {} is not UTF-8; install qwen-env under a UTF-8 path",
            exe.display()
        ))
    })?;
    out(&script)
}

/// Prints one line when this directory's resolution (for `qwen`, or the config's
/// `default_command`) has errors, else nothing. Always exits 0 and never writes to stderr:
/// whatever goes wrong, the prompt stays clean.
pub fn hook_status() {
    if let Some(line) = check() {
        let _ = out(&format!("{line}\n"));
    }
}

/// Connects without autostart (starting a daemon from every prompt would defeat "the daemon
/// is down" as a choice) and without touching a daemon of another version.
fn check() -> Option<String> {
    let mut client = Client::connect_quick(&Endpoint::from_env().socket(), HOOK_TIMEOUT).ok()?;
    // No command, as `qwen-env doctor` (which the line points to): `qwen` or `default_command`.
    let request = Request::Resolve(ResolveRequest {
        caller: caller_context(&[]).ok()?,
        as_is: false,
        ..ResolveRequest::default()
    });
    let Ok(Response::Resolved(r)) = client.request(&request) else { return None };
    let errors = r.findings.iter().filter(|f| f.severity == Severity::Error).count();
    (errors > 0).then(|| line(errors, &r.tool))
}

/// The one line the prompt shows.
fn line(errors: usize, tool: &str) -> String {
    let tool = match tool {
        "qwen-code" => "Qwen Code",
        "openclaw" => "OpenClaw",
        other => other,
    };
    let noun = if errors == 1 { "error" } else { "errors" };
    format!("qwen-env: {errors} {noun} in this directory's {tool} setup; run `qwen-env doctor`")
}

#[cfg(test)]
mod tests {
    #[test]
    fn line() {
        assert_eq!(
            super::line(2, "qwen-code"),
            "qwen-env: 2 errors in this directory's Qwen Code setup; run `qwen-env doctor`"
        );
        assert!(super::line(1, "openclaw").contains("1 error in this directory's OpenClaw"));
    }
}
