//! `qwen-env trust [DIR] [--list | --revoke]`.

use std::fmt::Write as _;

use qwen_env_proto::{Request, Response, TrustAction, TrustEntry, TrustRequest};

use super::{ask, unexpected};
use crate::cli::TrustArgs;
use crate::error::CliError;

pub fn trust(args: &TrustArgs) -> Result<(), CliError> {
    let action = match (args.list, args.revoke) {
        (true, _) => TrustAction::List,
        (false, true) => TrustAction::Revoke,
        (false, false) => TrustAction::Grant,
    };
    let mut caller = super::run::caller_context(&[])?;
    if let Some(dir) = &args.dir {
        let real = std::fs::canonicalize(dir).map_err(|e| {
            CliError::usage(format!("{}: {e}; name an existing directory", dir.display()))
        })?;
        if !real.is_dir() {
            return Err(CliError::usage(format!("{} is not a directory", dir.display())));
        }
        caller.cwd = real.into_os_string().into_string().map_err(|p| {
            CliError::failed(format!("{} is not UTF-8", std::path::PathBuf::from(p).display()))
        })?;
    } else if let Ok(real) = std::fs::canonicalize(&caller.cwd)
        && let Ok(real) = real.into_os_string().into_string()
    {
        caller.cwd = real;
    }
    let dir = caller.cwd.clone();
    let entries = match ask(&Request::Trust(TrustRequest { caller, action }))? {
        Response::Trust(entries) => entries,
        other => return Err(unexpected(&other)),
    };
    print!("{}", render(action, &dir, &entries));
    Ok(())
}

fn render(action: TrustAction, dir: &str, entries: &[TrustEntry]) -> String {
    let lines = |entries: &[TrustEntry]| -> String {
        let mut out = String::new();
        for e in entries {
            let lapsed = if e.current { "" } else { "  (changed since: not trusted)" };
            let _ = writeln!(out, "  {}  {}{lapsed}", e.fingerprint, e.path);
        }
        out
    };
    match action {
        TrustAction::Grant if entries.is_empty() => format!(
            "nothing to trust in {dir}: it has no workspace settings or .env of its own; keys \
             already go only where your own files or the key's provider say\n"
        ),
        TrustAction::Grant => format!(
            "trusted {} file(s) of {dir} as they are now (a change lapses the trust):\n{}",
            entries.len(),
            lines(entries)
        ),
        TrustAction::Revoke if entries.is_empty() => format!("nothing was trusted in {dir}\n"),
        TrustAction::Revoke => {
            format!("no longer trusted ({} file(s)):\n{}", entries.len(), lines(entries))
        }
        TrustAction::List if entries.is_empty() => {
            "no directory is trusted; `qwen-env trust DIR` trusts one\n".to_owned()
        }
        TrustAction::List => lines(entries),
    }
}
