//! One small function per request: `match Request`, answer a `Response`.

use std::time::{SystemTime, UNIX_EPOCH};

use std::sync::Arc;

use qwen_env_proto::{
    CallerContext, ErrorCode, Finding, Request, Resolution, ResolveRequest, Response, RunPlan,
    RunRequest, SecretValue, StatusInfo,
};
use qwen_env_resolve::KeyRef;

use crate::keys::KeyError;
use crate::resolution::{Ask, Resolver};
use crate::{State, verify};

/// Answers one request. Never panics on input; every failure is a `Response::Error`.
pub async fn handle(request: Request, state: &Arc<State>, peer_pid: Option<u32>) -> Response {
    if !matches!(request, Request::Status | Request::KeyList | Request::Events)
        && let Some(refusal) = refuse_nested(state, peer_pid)
    {
        return refusal;
    }
    let result = match request {
        Request::Shutdown => Ok(Response::ShuttingDown),
        Request::Status => Ok(Response::Status(status(state))),
        Request::KeySet { name, value } => {
            state.keys.set(&name, &value, now()).await.map(Response::Key)
        }
        Request::KeyList => state.keys.list().await.map(Response::Keys),
        Request::KeyRemove { name } => {
            state.keys.remove(&name).await.map(|()| Response::Removed { name })
        }
        Request::Run(run) => run_plan(state, &run).await.map(|plan| {
            if let Some(pid) = peer_pid {
                state.lineage.record(pid);
            }
            Response::Run(plan)
        }),
        Request::Resolve(req) => {
            Ok(Response::Resolved(Box::new(resolve(state, &req, Probes::Cached).await)))
        }
        // Streamed by the connection itself (server.rs); never dispatched here.
        Request::Events => Err(KeyError::Invalid("events are streamed, not answered".to_owned())),
        Request::KeyImport(req) => crate::import::import(state, &req)
            .await
            .map(Response::Imported)
            .map_err(KeyError::Invalid),
        Request::Verify(req) => verify(state, &req).await,
        Request::KeySetVerified { name, value, caller, verify } => {
            key_set_verified(state, &name, &value, &caller, verify).await
        }
    };
    result.unwrap_or_else(|e| {
        tracing::debug!(error = %e, "request failed");
        Response::Error { code: error_code(&e), message: e.to_string() }
    })
}

/// Refuses requests from processes that `run` started (and their descendants).
fn refuse_nested(state: &State, peer_pid: Option<u32>) -> Option<Response> {
    let (pid, name) = state.lineage.launched_ancestor(peer_pid?)?;
    if state.resolver.allow_nesting() {
        return None;
    }
    tracing::warn!(peer = ?peer_pid, launched = pid, "refused keys to a process started by qwen-env run");
    Some(Response::Error { code: ErrorCode::Refused, message: crate::lineage::refusal(pid, &name) })
}

fn error_code(e: &KeyError) -> ErrorCode {
    match e {
        KeyError::Invalid(_) => ErrorCode::BadRequest,
        KeyError::NotFound(_) => ErrorCode::NotFound,
        KeyError::Keychain(_) => ErrorCode::Keychain,
        KeyError::Metadata { .. } => ErrorCode::Internal,
    }
}

fn status(state: &State) -> StatusInfo {
    let (watched, contexts, watch_note) = state.watcher.status();
    StatusInfo {
        pid: std::process::id(),
        daemon_version: qwen_env_proto::VERSION.to_owned(),
        protocol: qwen_env_proto::PROTOCOL_VERSION,
        uptime_secs: state.started.elapsed().as_secs(),
        socket: state.socket.display().to_string(),
        log_file: state.log_file.display().to_string(),
        keychain: state.keys.keychain().info().clone(),
        connections: state.connections.load(std::sync::atomic::Ordering::Relaxed),
        watched,
        contexts,
        watch_note,
    }
}

/// Whether a resolution waits for fresh probes or uses the cache.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Probes {
    Cached,
    Fresh,
}

async fn resolve(state: &Arc<State>, req: &ResolveRequest, probes: Probes) -> Resolution {
    let ask = Ask {
        caller: &req.caller,
        as_is: req.as_is,
        bare: false,
        with: &req.with,
        profile: req.profile.as_deref(),
        variables: &req.variables,
    };
    let view = state.keys.view().await;
    let out = state.resolver.resolve(&ask, &view, state.keys.keychain().info().durable);
    let (mut resolution, plan) = (out.resolution, out.plan);
    // `explain --as-is` describes the files, not the endpoint.
    if !req.as_is
        && let Some(target) = verify::target(&resolution, &plan)
    {
        let found = match probes {
            Probes::Cached => verify::cached(state, target),
            Probes::Fresh => verify::fresh(state, &target).await,
        };
        add_findings(&mut resolution, found, &state.resolver);
    }
    track(state, &req.caller, &mut resolution, &out.watched);
    resolution
}

/// Hands the outcome to the watcher, and says so when watching is degraded.
fn track(
    state: &State,
    caller: &qwen_env_proto::CallerContext,
    r: &mut Resolution,
    files: &[std::path::PathBuf],
) {
    state.watcher.track(caller, &r.tool, files, &r.findings);
    if let Some(note) = state.watcher.note() {
        r.findings.push(qwen_env_proto::Finding {
            code: "watch-limit".to_owned(),
            severity: qwen_env_proto::Severity::Info,
            message: note,
            fix: "sudo sysctl fs.inotify.max_user_watches=524288".to_owned(),
            location: None,
            evidence: None,
        });
    }
}

/// Probe findings join the static ones (most severe first, silenced codes dropped).
fn add_findings(resolution: &mut Resolution, found: Vec<Finding>, resolver: &Resolver) {
    if found.is_empty() {
        return;
    }
    let mut all = std::mem::take(&mut resolution.findings);
    all.extend(found);
    resolution.findings = qwen_env_resolve::rules::finish(all, &resolver.silenced());
}

/// `doctor --verify`: fresh probes, waited for.
async fn verify(state: &Arc<State>, req: &ResolveRequest) -> Result<Response, KeyError> {
    if !state.prober.enabled {
        return Err(KeyError::Invalid(
            "probes are turned off in this daemon (QWEN_ENV_PROBE=off in its environment); \
             restart it without that variable to verify keys"
                .to_owned(),
        ));
    }
    Ok(Response::Resolved(Box::new(resolve(state, req, Probes::Fresh).await)))
}

/// `key set`: store, then say where the key works and whether the caller's settings use it.
async fn key_set_verified(
    state: &Arc<State>,
    name: &str,
    value: &SecretValue,
    caller: &CallerContext,
    verify: bool,
) -> Result<Response, KeyError> {
    let info = state.keys.set(name, value, now()).await?;
    // `QWEN_ENV_PROBE=off` is a deliberate choice (offline, or tests): store quietly.
    if !verify || !state.prober.enabled {
        return Ok(Response::KeyVerified { info, notes: vec![], findings: vec![] });
    }
    // "Your settings": what this directory resolves to, when it sends this very key.
    let settings = {
        let ask =
            Ask { caller, as_is: false, bare: false, with: &[], profile: None, variables: &[] };
        let view = state.keys.view().await;
        let out = state.resolver.resolve(&ask, &view, true);
        verify::target(&out.resolution, &out.plan).filter(|t| {
            matches!(&t.key, KeyRef::Keychain(n) if n == name) && t.fp == info.fingerprint
        })
    };
    let (notes, findings) = verify::new_key(state, name, value, settings).await;
    let info = state.keys.info(name).await.unwrap_or(info);
    Ok(Response::KeyVerified { info, notes, findings })
}

/// Resolves as the child will see it, then fetches exactly the secrets the plan names. Probe
/// findings come from the cache only: `run` never waits on the network.
async fn run_plan(state: &Arc<State>, run: &RunRequest) -> Result<RunPlan, KeyError> {
    let ask = Ask {
        caller: &run.caller,
        as_is: false,
        bare: run.bare,
        with: &run.with,
        profile: run.profile.as_deref(),
        variables: &[],
    };
    let view = state.keys.view().await;
    let out = state.resolver.resolve(&ask, &view, state.keys.keychain().info().durable);
    let (mut resolution, plan) = (out.resolution, out.plan);
    if let Some(target) = verify::target(&resolution, &plan) {
        add_findings(&mut resolution, verify::cached(state, target), &state.resolver);
    }
    track(state, &run.caller, &mut resolution, &out.watched);
    let mut secrets = plan.secret_vars;
    for (name, variable) in plan.inject_as {
        secrets.push((variable, state.keys.get(&name).await?));
    }
    // A `--with` key the keychain lacks is an error for `run`: the user asked for it by name.
    for name in &run.with {
        if !view.entries.contains_key(name) {
            return Err(KeyError::NotFound(name.clone()));
        }
    }
    Ok(RunPlan {
        secrets,
        vars: plan.vars,
        unset: plan.unset,
        extra_args: plan.extra_args,
        findings: resolution.findings,
        notes: plan.notes,
    })
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
