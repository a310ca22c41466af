//! One small function per request: check who asks, `match Request`, answer a `Response`.
//!
//! Every request that reveals, changes or deletes a key, stops the daemon, or can make it send a
//! key somewhere (a probe) passes [`lineage_gate`] first: a process that `run` started, or any
//! descendant of one, is refused.

use qwen_env_proto::{NameKind, Request, ResolveRequest, Response, TrustAction};

use crate::engine::Probes;
use crate::error::RequestError;
use crate::resolution::Ask;
use crate::state::State;

/// The process on the other end of a connection: its pid, and its start time when the
/// connection was accepted (`lineage::start_time`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// Its pid, from the socket's credentials.
    pub pid: u32,
    /// Its start time at accept; `None` when it was already gone.
    pub start: Option<u64>,
}

/// Answers one request from `peer`. Never panics on input; every failure is a
/// `Response::Error`.
pub async fn handle(request: Request, state: &State, peer: Option<Peer>) -> Response {
    match answer(request, state, peer).await {
        Ok(response) => response,
        Err(e) => {
            tracing::debug!(error = %e, "request failed");
            Response::Error { code: e.code(), message: e.to_string() }
        }
    }
}

async fn answer(
    request: Request,
    state: &State,
    peer: Option<Peer>,
) -> Result<Response, RequestError> {
    if guarded(&request) {
        lineage_gate(state, peer)?;
    }
    let engine = state.engine();
    Ok(match request {
        Request::Shutdown => Response::ShuttingDown,
        Request::Status => Response::Status(state.status()),
        Request::KeyList => Response::Keys(engine.keys().list().await?),
        Request::KeyRemove { name } => {
            engine.keys().remove(&name).await?;
            Response::Removed { name }
        }
        Request::Run(run) => {
            let plan = engine.run_plan(&run).await?;
            // Recorded even without secrets: a tool started without keys must not fetch any.
            if let Some(Peer { pid, .. }) = peer {
                state.lineage().record(pid);
            }
            Response::Run(plan)
        }
        Request::Resolve(req) => {
            Response::Resolved(Box::new(engine.answer(&ask(&req), Probes::Cached).await.resolution))
        }
        // Streamed by the connection itself (server.rs); never dispatched here.
        Request::Events => {
            return Err(RequestError::BadRequest("events are streamed, not answered".to_owned()));
        }
        Request::KeyImport(req) => Response::Imported(
            crate::import::import(engine.keys(), &req).await.map_err(RequestError::BadRequest)?,
        ),
        Request::Verify(req) => Response::Resolved(Box::new(engine.verify(&ask(&req)).await?)),
        Request::KeySetVerified { name, value, caller, verify } => {
            let (info, notes, findings) = engine.key_set(&name, &value, &caller, verify).await?;
            Response::KeyVerified { info, notes, findings }
        }
        Request::Trust(req) => Response::Trust(engine.trust(&req).await?),
        Request::Names(kind) => Response::Names(match kind {
            NameKind::Keys => engine.keys().names().await,
            NameKind::Profiles => engine.resolver().profiles(),
        }),
        Request::KeyMigrate { from, names } => {
            Response::Migrated(engine.keys().migrate(&from, &names, crate::clock::now()).await?)
        }
    })
}

fn ask(req: &ResolveRequest) -> Ask<'_> {
    Ask {
        caller: &req.caller,
        as_is: req.as_is,
        bare: false,
        with: &req.with,
        profile: req.profile.as_deref(),
        variables: &req.variables,
    }
}

/// Whether a request is one a process started by `run` must not make: it reveals, changes or
/// deletes a key, stops the daemon (which would forget nothing, but lets a new one be started
/// on the caller's terms), or can trigger a probe that sends a key. Exhaustive on purpose: a
/// new request must be classified here.
fn guarded(request: &Request) -> bool {
    match request {
        Request::Status | Request::KeyList | Request::Events | Request::Names(_) => false,
        Request::Trust(t) => t.action != TrustAction::List,
        Request::Shutdown
        | Request::KeyRemove { .. }
        | Request::Run(_)
        | Request::Resolve(_)
        | Request::KeyImport(_)
        | Request::Verify(_)
        | Request::KeySetVerified { .. }
        | Request::KeyMigrate { .. } => true,
    }
}

/// Refuses processes that `run` started (and their descendants), unless the config allows
/// nesting.
fn lineage_gate(state: &State, peer: Option<Peer>) -> Result<(), RequestError> {
    let Some(Err((pid, name))) = peer.map(|p| state.lineage().check(p.pid, p.start)) else {
        return Ok(());
    };
    if state.engine().resolver().allow_nesting() {
        return Ok(());
    }
    tracing::warn!(peer = ?peer.map(|p| p.pid), launched = pid, "refused a process started by qwen-env run");
    Err(RequestError::Refused(crate::lineage::refusal(pid, &name)))
}
