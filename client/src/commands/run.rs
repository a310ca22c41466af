//! `qwen-env run [--bare] [--strict] [--with NAME]... [--profile P] -- CMD [ARGS...]`.

use qwen_env_proto::{CallerContext, NESTING_MARKER, Request, Response, RunRequest};

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
    let code = crate::exec::exec(&args.command, &plan)?;
    Err(CliError::silent(code))
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
