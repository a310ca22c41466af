//! `qwen-env hook SHELL` prints the shell integration; the hidden `qwen-env hook-status` is the
//! check its prompt hook runs before every prompt.

use std::time::Duration;

use qwen_env_proto::endpoint::Endpoint;
use qwen_env_proto::{Finding, Request, ResolveRequest, Response, Severity};

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
    let errors: Vec<&Finding> =
        r.findings.iter().filter(|f| f.severity == Severity::Error).collect();
    errors.first().map(|first| line(errors.len(), first, &r.tool))
}

/// The one line the prompt shows: how many errors, the first one's code (the daemon puts causes
/// first) and, for a key that another keychain backend holds, the command that fixes it (the
/// backend is in it), since `doctor` would say nothing else.
fn line(errors: usize, first: &Finding, tool: &str) -> String {
    let tool = match tool {
        "qwen-code" => "Qwen Code",
        "openclaw" => "OpenClaw",
        other => other,
    };
    let noun = if errors == 1 { "error" } else { "errors" };
    let what = match first.code.as_str() {
        "key-in-other-backend" => {
            let fix = first.fix.split(" (").next().unwrap_or(&first.fix);
            format!("{}: {fix}", first.code)
        }
        code => code.to_owned(),
    };
    format!(
        "qwen-env: {errors} {noun} in this directory's {tool} setup ({what}); run `qwen-env doctor`"
    )
}

#[cfg(test)]
mod tests {
    use qwen_env_proto::{Finding, Severity};

    fn finding(code: &str, fix: &str) -> Finding {
        Finding {
            code: code.into(),
            severity: Severity::Error,
            message: String::new(),
            fix: fix.into(),
            location: None,
            evidence: None,
        }
    }

    #[test]
    fn line() {
        assert_eq!(
            super::line(2, &finding("key-missing", "qwen-env key set K"), "qwen-code"),
            "qwen-env: 2 errors in this directory's Qwen Code setup (key-missing); run `qwen-env doctor`"
        );
        let other = finding("key-in-other-backend", "qwen-env key migrate --from keyutils (or …)");
        assert_eq!(
            super::line(1, &other, "openclaw"),
            "qwen-env: 1 error in this directory's OpenClaw setup (key-in-other-backend: qwen-env key migrate --from keyutils); run `qwen-env doctor`"
        );
    }
}
