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
    if !r.findings.is_empty() {
        text.push('\n');
        text += &render::findings(&r.findings, on);
    }
    out(&text)
}

/// Exits 1 when any finding is an error.
pub fn doctor(args: &DoctorArgs) -> Result<(), CliError> {
    let request = ResolveRequest {
        caller: caller_context(&args.command)?,
        as_is: false,
        ..ResolveRequest::default()
    };
    let r = if args.verify {
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
