//! `qwen-env explain` and `qwen-env doctor`: ask the daemon to resolve, print the outcome.

use qwen_env_proto::{Request, Resolution, ResolveRequest, Response, Severity};

use super::run::caller_context;
use super::{ask, spinner, unexpected};
use crate::cli::{DoctorArgs, ExplainArgs};
use crate::error::{CliError, exit};
use crate::{out, render};

fn resolve(request: ResolveRequest) -> Result<Resolution, CliError> {
    match ask(&Request::Resolve(request))? {
        Response::Resolved(r) => Ok(*r),
        other => Err(unexpected(&other)),
    }
}

pub fn explain(args: &ExplainArgs) -> Result<(), CliError> {
    let r = resolve(ResolveRequest {
        caller: caller_context(&args.command)?,
        as_is: args.as_is,
        with: args.with.clone(),
        profile: args.profile.clone(),
        variables: args.variables.clone(),
    })?;
    if args.json {
        return out(&format!("{:#}\n", render::resolution_json(&r, args.as_is)));
    }
    let on = render::colour(false);
    let mut text = render::resolution(&r, args.as_is, on);
    // Where the values come from, and what is wrong with them: the machine's own facts (a
    // keychain that forgets at reboot) are `doctor`'s and `status`'s to say, not every explain's.
    let findings: Vec<_> = r.findings.iter().filter(|f| f.code != NOT_DURABLE).cloned().collect();
    if !findings.is_empty() {
        text.push('\n');
        text += &render::findings(&findings, on);
    }
    out(&text)
}

/// The note that the keychain is kernel keyutils, which forgets keys at reboot.
const NOT_DURABLE: &str = "keychain-not-durable";

/// Exits 1 when any finding (not silenced by `--silence`) is an error.
pub fn doctor(args: &DoctorArgs) -> Result<(), CliError> {
    let request = ResolveRequest {
        caller: caller_context(&args.command)?,
        as_is: false,
        ..ResolveRequest::default()
    };
    let mut r = if args.verify {
        let answer = spinner::while_waiting("checking the key with the endpoint", || {
            ask(&Request::Verify(request))
        })?;
        match answer {
            Response::Resolved(r) => *r,
            other => return Err(unexpected(&other)),
        }
    } else {
        resolve(request)?
    };
    r.findings.retain(|f| !args.silence.contains(&f.code));
    if args.json {
        let findings: Vec<_> = r.findings.iter().map(render::finding_json).collect();
        let doc = serde_json::json!({ "schema": 1, "tool": r.tool, "findings": findings });
        out(&format!("{doc:#}\n"))?;
    } else if r.findings.is_empty() {
        out(&format!("{}: no problems found\n", r.tool))?;
    } else {
        let on = render::colour(false);
        // An all-clear from the files alone is not one while the endpoint check is running.
        let pending = if r.findings.iter().any(|f| f.code == "not-verified") {
            "; not verified yet: checking — `qwen-env doctor --verify` to wait"
        } else {
            ""
        };
        out(&format!(
            "{}\n{}: {}{pending}\n",
            render::findings(&r.findings, on),
            r.tool,
            render::summary(&r.findings)
        ))?;
    }
    if r.findings.iter().any(|f| f.severity == Severity::Error) {
        return Err(CliError::silent(exit::FINDINGS));
    }
    Ok(())
}

/// `qwen-env __complete codes`: the codes `doctor` reports here, from a daemon that is already
/// running (`None` when none answers in time: a tab press must not start one).
pub fn codes_here(client: &mut crate::transport::Client) -> Option<Vec<String>> {
    let request = ResolveRequest { caller: caller_context(&[]).ok()?, ..ResolveRequest::default() };
    let Ok(Response::Resolved(r)) = client.request(&Request::Resolve(request)) else {
        return None;
    };
    let mut codes: Vec<String> = r.findings.into_iter().map(|f| f.code).collect();
    codes.sort();
    codes.dedup();
    Some(codes)
}
