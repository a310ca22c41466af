//! One small function per request: `match Request`, answer a `Response`.

use std::time::{SystemTime, UNIX_EPOCH};

use qwen_env_proto::{
    ErrorCode, Request, Resolution, ResolveRequest, Response, RunPlan, RunRequest, StatusInfo,
};

use crate::State;
use crate::keys::KeyError;
use crate::resolution::Ask;

/// Answers one request. Never panics on input; every failure is a `Response::Error`.
pub async fn handle(request: Request, state: &State, peer_pid: Option<u32>) -> Response {
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
        Request::Run(run) => match refuse_nested(state, peer_pid) {
            Some(refusal) => return refusal,
            None => run_plan(state, &run).await.map(|plan| {
                if let Some(pid) = peer_pid.filter(|_| !plan.secrets.is_empty()) {
                    state.lineage.record(pid);
                }
                Response::Run(plan)
            }),
        },
        Request::Resolve(req) => Ok(Response::Resolved(Box::new(resolve(state, &req).await))),
        // Streamed by the connection itself (server.rs); never dispatched here.
        Request::Events => Err(KeyError::Invalid("events are streamed, not answered".to_owned())),
        Request::KeyImport(req) => crate::import::import(state, &req)
            .await
            .map(Response::Imported)
            .map_err(KeyError::Invalid),
    };
    result.unwrap_or_else(|e| {
        tracing::debug!(error = %e, "request failed");
        Response::Error { code: error_code(&e), message: e.to_string() }
    })
}

/// Refuses key-bearing requests from processes that `run` started (and their descendants).
fn refuse_nested(state: &State, peer_pid: Option<u32>) -> Option<Response> {
    let (pid, name) = state.lineage.launched_ancestor(peer_pid?)?;
    if state.resolver.allow_nesting() {
        return None;
    }
    tracing::warn!(peer = ?peer_pid, launched = pid, "refused keys to a process started by qwen-env run");
    Some(Response::Error {
        code: ErrorCode::Refused,
        message: format!(
            "refusing to hand out keys: this process descends from `{name}` (pid {pid}), which \
             `qwen-env run` started with keys, and a tool (an AI agent) must not be able to fetch \
             keys it was not given; run qwen-env from your own shell, or set \
             `allow_nesting = true` in qwen-env's config.toml to allow it"
        ),
    })
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

async fn resolve(state: &State, req: &ResolveRequest) -> Resolution {
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
    let mut resolution = out.resolution;
    watched(state, &req.caller, &mut resolution, &out.watched);
    resolution
}

/// Hands the outcome to the watcher, and says so when watching is degraded.
fn watched(
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

/// Resolves as the child will see it, then fetches exactly the secrets the plan names.
async fn run_plan(state: &State, run: &RunRequest) -> Result<RunPlan, KeyError> {
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
    watched(state, &run.caller, &mut resolution, &out.watched);
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
