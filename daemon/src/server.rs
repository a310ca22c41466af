//! The listener and the connections: peer check, handshake, framed requests with timeouts.
//!
//! One task per connection behind a semaphore; a bad frame closes only that connection, with
//! the reason logged.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use qwen_env_proto::codec::{self, FrameError};
use qwen_env_proto::{
    ErrorCode, Hello, MAX_FRAME, PROTOCOL_VERSION, Request, Response, VERSION, Welcome,
};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use crate::State;

/// Most connections served at once; further clients wait in the accept queue.
pub const MAX_CONNECTIONS: usize = 256;
/// A client must say hello this quickly.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection idle (or stalled mid-frame) this long is closed (`QWEN_ENV_IDLE_TIMEOUT_SECS`
/// overrides it, for tests and odd setups).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

fn idle_timeout() -> Duration {
    static IDLE: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *IDLE.get_or_init(|| {
        std::env::var("QWEN_ENV_IDLE_TIMEOUT_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map_or(IDLE_TIMEOUT, Duration::from_secs)
    })
}
/// On shutdown, connections get this long to finish.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Accepts connections until `shutdown` resolves, then drains them.
pub async fn serve(
    listener: UnixListener,
    state: Arc<State>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            p = permits.clone().acquire_owned() => p.expect("semaphore never closed"),
        };
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, _)) => {
                state.connections.fetch_add(1, Ordering::Relaxed);
                let state = state.clone();
                tasks.spawn(async move {
                    if let Err(reason) = connection(stream, &state).await {
                        tracing::warn!(%reason, "closed connection");
                    }
                    drop(permit);
                });
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::error!(cause = %e, "failed to accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        while tasks.try_join_next().is_some() {}
    }
    drop(listener);
    let drained =
        tokio::time::timeout(SHUTDOWN_GRACE, async { while tasks.join_next().await.is_some() {} })
            .await;
    if drained.is_err() {
        tracing::info!(remaining = tasks.len(), "grace period over; aborting connections");
        tasks.abort_all();
    }
}

type Conn = Framed<UnixStream, LengthDelimitedCodec>;

fn frame_codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(4)
        .big_endian()
        .max_frame_length(MAX_FRAME)
        .new_codec()
}

async fn connection(stream: UnixStream, state: &Arc<State>) -> Result<(), String> {
    let peer = stream.peer_cred().map_err(|e| format!("cannot read peer credentials: {e}"))?;
    let me = qwen_env_proto::endpoint::euid();
    if peer.uid() != me {
        return Err(format!(
            "refused a client of uid {} (pid {:?}): only uid {me} may connect",
            peer.uid(),
            peer.pid()
        ));
    }
    let mut conn = Framed::new(stream, frame_codec());
    let hello: Hello = match read(&mut conn, HANDSHAKE_TIMEOUT).await {
        Ok(h) => h,
        Err(FrameError::Closed) => return Ok(()),
        Err(e) => return Err(format!("bad handshake: {e}")),
    };
    let welcome = Welcome {
        protocol: PROTOCOL_VERSION,
        daemon_version: VERSION.to_owned(),
        pid: std::process::id(),
    };
    send(&mut conn, &welcome).await?;
    let compatible = hello.protocol == PROTOCOL_VERSION;
    loop {
        let request: Request = match read(&mut conn, idle_timeout()).await {
            Ok(r) => r,
            Err(FrameError::Closed) => return Ok(()),
            Err(e) => return Err(e.to_string()),
        };
        if !compatible && request != Request::Shutdown {
            let message = format!(
                "daemon protocol mismatch: the daemon speaks {PROTOCOL_VERSION}, the client {}; \
                 run `qwen-env daemon restart`",
                hello.protocol
            );
            send(&mut conn, &Response::Error { code: ErrorCode::Refused, message }).await?;
            return Ok(());
        }
        if request == Request::Events {
            return stream_events(&mut conn, state).await;
        }
        let shutting_down = request == Request::Shutdown;
        let response =
            crate::handler::handle(request, state, peer.pid().and_then(|p| u32::try_from(p).ok()))
                .await;
        send(&mut conn, &response).await?;
        if shutting_down {
            tracing::info!("shutdown requested by a client");
            state.shutdown.send_replace(true);
            return Ok(());
        }
    }
}

/// Sends every event until the client hangs up or the daemon stops. No idle timeout: a quiet
/// stream is the normal case.
async fn stream_events(conn: &mut Conn, state: &State) -> Result<(), String> {
    let mut events = state.watcher.subscribe();
    let mut shutdown = state.shutdown.subscribe();
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Ok(ev) => send(conn, &Response::Event(ev)).await?,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(dropped = n, "an events client is too slow; dropped events");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return Ok(()),
            },
            next = conn.next() => match next {
                None | Some(Err(_)) => return Ok(()),
                Some(Ok(_)) => return Err("unexpected request on an events stream".to_owned()),
            },
            _ = async { shutdown.wait_for(|stop| *stop).await.map(|_| ()) } => return Ok(()),
        }
    }
}

async fn read<T: serde::de::DeserializeOwned>(
    conn: &mut Conn,
    limit: Duration,
) -> Result<T, FrameError> {
    match tokio::time::timeout(limit, conn.next()).await {
        Err(_) => Err(FrameError::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no complete frame within {}s", limit.as_secs()),
        ))),
        Ok(None) => Err(FrameError::Closed),
        Ok(Some(Err(e))) => Err(match e.kind() {
            std::io::ErrorKind::UnexpectedEof => FrameError::Truncated,
            std::io::ErrorKind::InvalidData => {
                FrameError::Malformed(format!("{e} (limit {MAX_FRAME} bytes)"))
            }
            _ => FrameError::Io(e),
        }),
        Ok(Some(Ok(mut body))) => {
            let decoded = codec::decode(&body);
            // Request bodies can carry keys (`KeySet`): wipe the buffer once decoded.
            body.fill(0);
            decoded
        }
    }
}

async fn send<T: serde::Serialize>(conn: &mut Conn, msg: &T) -> Result<(), String> {
    let body = codec::encode(msg);
    let sent =
        tokio::time::timeout(idle_timeout(), conn.send(bytes::Bytes::copy_from_slice(&body)));
    match sent.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("failed to send: {e}")),
        Err(_) => Err("client stopped reading".to_owned()),
    }
}
