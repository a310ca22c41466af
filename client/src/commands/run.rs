//! `qwen-env run [--bare] [--strict] [--with NAME]... [--profile P] -- CMD [ARGS...]`.

use std::fmt::Write as _;

use qwen_env_proto::{
    CallerContext, NESTING_MARKER, Request, Response, RunPlan, RunRequest, Severity,
};

use super::{ask, unexpected};
use crate::cli::RunArgs;
use crate::error::CliError;

pub fn run(args: RunArgs) -> Result<(), CliError> {
    if std::env::var_os(NESTING_MARKER).is_some_and(|v| !v.is_empty()) {
        return Err(CliError::usage(format!(
            "refusing to nest: this shell already runs under `qwen-env run` ({NESTING_MARKER}=1), \
             so the credentials are already in place; run the command directly"
        )));
    }
    // Linux: the process the shell waits for stays here until the command ends; the one that
    // returns is the keeper, which the daemon records (client/src/exec.rs).
    crate::exec::split()?;
    let caller = caller_context(&args.command)?;
    let request = Request::Run(RunRequest {
        caller,
        with: args.with,
        profile: args.profile,
        bare: args.bare,
    });
    let plan = match ask(&request)? {
        Response::Run(plan) => plan,
        other => return Err(unexpected(&other)),
    };
    report(&plan);
    if args.strict && plan.findings.iter().any(|f| f.severity == Severity::Error) {
        return Err(CliError::failed(
            "not started: the configuration has errors (above) and --strict is set",
        ));
    }
    // The keychain's key would not be the one the tool sends: as serious as an error here.
    if args.strict && plan.findings.iter().any(|f| f.code == "keychain-shadowed") {
        return Err(CliError::failed(
            "not started: the tool would not use the keychain's key (above) and --strict is set",
        ));
    }
    let code = crate::exec::exec(&args.command, plan)?;
    Err(CliError::silent(code))
}

/// Errors, warnings and notes go to stderr before the command starts; nothing at all when all is well.
fn report(plan: &RunPlan) {
    let shown: Vec<_> =
        plan.findings.iter().filter(|f| f.severity != Severity::Info).cloned().collect();
    let on = crate::render::colour(true);
    let mut text = crate::render::findings(&shown, on);
    for note in &plan.notes {
        let _ = writeln!(text, "qwen-env: {note}");
    }
    if !text.is_empty() {
        let _ = std::io::Write::write_all(&mut std::io::stderr(), text.as_bytes());
    }
}

/// The caller's cwd, target argv and environment, sent as data (STYLE.md 21). Variables whose
/// name or value is not UTF-8 cannot matter to the resolution and are left out.
pub fn caller_context(command: &[std::ffi::OsString]) -> Result<CallerContext, CliError> {
    let cwd = std::env::current_dir()
        .map_err(|e| CliError::failed(format!("cannot read the current directory: {e}")))?;
    let cwd = cwd.into_os_string().into_string().map_err(|p| {
        let p = std::path::PathBuf::from(p);
        CliError::failed(format!("the current directory {} is not UTF-8", p.display()))
    })?;
    let argv = command.iter().map(|a| a.to_string_lossy().into_owned()).collect();
    let env = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    Ok(CallerContext { cwd, argv, env })
}
