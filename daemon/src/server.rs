//! The listener and the connections: peer check, handshake, framed requests with timeouts.
//!
//! One task per connection. The accept loop never waits for an idle client: a flood of idle,
//! half-open or `events` connections from the same user must not stall anyone else. So the
//! number of connections is capped ([`MAX_CONNECTIONS`]), `events` streams have their own cap
//! ([`MAX_EVENT_STREAMS`]), and once more than [`PRESSURE`] connections are open, a connection
//! that has sent nothing for [`PRESSURE_IDLE`] is closed to make room. A bad frame closes only
//! that connection, with the reason logged.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use qwen_env_proto::codec::{self, FrameError};
use qwen_env_proto::{
    ErrorCode, Hello, MAX_FRAME, PROTOCOL_VERSION, Request, Response, VERSION, Welcome,
};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use crate::state::State;

/// Most connections open at once; further clients wait in the accept queue (for at most about
/// [`PRESSURE_IDLE`], while idle ones are closed).
pub const MAX_CONNECTIONS: usize = 512;
/// Most `events` streams open at once; one more is refused with a message.
pub const MAX_EVENT_STREAMS: usize = 64;
/// Above this many open connections, idle ones are closed after [`PRESSURE_IDLE`].
pub const PRESSURE: usize = 64;
/// How long a connection may sit idle while the daemon is under pressure.
pub const PRESSURE_IDLE: Duration = Duration::from_millis(500);
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

/// Why a connection was closed early.
#[derive(Debug, thiserror::Error)]
enum Closed {
    #[error("cannot read peer credentials: {0}")]
    NoCredentials(std::io::Error),
    #[error("refused a client of uid {uid} (pid {pid:?}): only uid {me} may connect")]
    ForeignUid { uid: u32, pid: Option<i32>, me: u32 },
    #[error("bad handshake: {0}")]
    Handshake(FrameError),
    #[error("{0}")]
    Frame(FrameError),
    #[error("failed to send: {0}")]
    Send(std::io::Error),
    #[error("client stopped reading")]
    NotReading,
    #[error("unexpected request on an events stream")]
    EventsProtocol,
}

/// Connection counts, shared by the accept loop and the connections.
struct Load {
    open: AtomicUsize,
    /// The open count, for idle connections to wait on.
    open_tx: watch::Sender<usize>,
    events: Arc<Semaphore>,
}

impl Load {
    fn opened(&self) {
        let n = self.open.fetch_add(1, Ordering::AcqRel) + 1;
        if n > PRESSURE {
            self.open_tx.send_replace(n);
        }
    }

    fn closed(&self) {
        let n = self.open.fetch_sub(1, Ordering::AcqRel) - 1;
        if n == PRESSURE {
            self.open_tx.send_replace(n);
        }
    }
}

/// Accepts connections until `shutdown` resolves, then drains them.
pub async fn serve(
    listener: UnixListener,
    state: Arc<State>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let load = Arc::new(Load {
        open: AtomicUsize::new(0),
        open_tx: watch::channel(0).0,
        events: Arc::new(Semaphore::new(MAX_EVENT_STREAMS)),
    });
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            () = &mut shutdown => break,
            p = slots.clone().acquire_owned() => p.expect("semaphore never closed"),
        };
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, _)) => {
                state.connected();
                load.opened();
                let (state, load) = (state.clone(), load.clone());
                tasks.spawn(async move {
                    if let Err(reason) = connection(stream, &state, &load).await {
                        tracing::warn!(%reason, "closed connection");
                    }
                    load.closed();
                    drop(slot);
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

async fn connection(stream: UnixStream, state: &State, load: &Load) -> Result<(), Closed> {
    let peer = stream.peer_cred().map_err(Closed::NoCredentials)?;
    let me = qwen_env_proto::endpoint::euid();
    if peer.uid() != me {
        return Err(Closed::ForeignUid { uid: peer.uid(), pid: peer.pid(), me });
    }
    // Who connected, pinned by start time now: a pid read later may be a new process's.
    let client = peer
        .pid()
        .and_then(|p| u32::try_from(p).ok())
        .map(|pid| crate::handler::Peer { pid, start: crate::lineage::start_time(pid) });
    let mut conn = Framed::new(stream, frame_codec());
    let hello: Hello = match read(&mut conn, HANDSHAKE_TIMEOUT, load).await {
        Ok(h) => h,
        Err(FrameError::Closed) => return Ok(()),
        Err(e) => return Err(Closed::Handshake(e)),
    };
    let welcome = Welcome {
        protocol: PROTOCOL_VERSION,
        daemon_version: VERSION.to_owned(),
        pid: std::process::id(),
    };
    send(&mut conn, &welcome).await?;
    let compatible = hello.protocol == PROTOCOL_VERSION;
    loop {
        let request: Request = match read(&mut conn, idle_timeout(), load).await {
            Ok(r) => r,
            Err(FrameError::Closed) => return Ok(()),
            Err(e) => return Err(Closed::Frame(e)),
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
            let Ok(_stream) = load.events.clone().try_acquire_owned() else {
                let message = format!(
                    "too many `qwen-env events` streams are open ({MAX_EVENT_STREAMS}); close \
                     some and try again"
                );
                send(&mut conn, &Response::Error { code: ErrorCode::Refused, message }).await?;
                return Ok(());
            };
            return stream_events(&mut conn, state).await;
        }
        let response = crate::handler::handle(request, state, client).await;
        let stopping = matches!(response, Response::ShuttingDown);
        send(&mut conn, &response).await?;
        if stopping {
            tracing::info!("shutdown requested by a client");
            state.stop();
            return Ok(());
        }
    }
}

/// Sends every event until the client hangs up or the daemon stops. No idle timeout: a quiet
/// stream is the normal case.
async fn stream_events(conn: &mut Conn, state: &State) -> Result<(), Closed> {
    let mut events = state.engine().watcher().subscribe();
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
                Some(Ok(_)) => return Err(Closed::EventsProtocol),
            },
            () = state.stopped() => return Ok(()),
        }
    }
}

/// The next frame, decoded. Gives up after `limit`, or after [`PRESSURE_IDLE`] once the daemon
/// is under pressure (more than [`PRESSURE`] connections open).
async fn read<T: serde::de::DeserializeOwned>(
    conn: &mut Conn,
    limit: Duration,
    load: &Load,
) -> Result<T, FrameError> {
    let mut open = load.open_tx.subscribe();
    let pressure = async {
        let _ = open.wait_for(|n| *n > PRESSURE).await;
        tokio::time::sleep(PRESSURE_IDLE).await;
    };
    let next = tokio::select! {
        next = tokio::time::timeout(limit, conn.next()) => next,
        () = pressure => {
            return Err(FrameError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "idle while the daemon is busy",
            )));
        }
    };
    match next {
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

async fn send<T: serde::Serialize>(conn: &mut Conn, msg: &T) -> Result<(), Closed> {
    let body = codec::encode(msg);
    let sent =
        tokio::time::timeout(idle_timeout(), conn.send(bytes::Bytes::copy_from_slice(&body)));
    match sent.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Closed::Send(e)),
        Err(_) => Err(Closed::NotReading),
    }
}
