//! The blocking connection to the daemon: connect, check who answers, handshake, request.

use std::io;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use qwen_env_proto::codec::{self, FrameError};
use qwen_env_proto::endpoint::{DirError, check_private_dir};
use qwen_env_proto::{ErrorCode, Hello, PROTOCOL_VERSION, Request, Response, VERSION, Welcome};

use crate::error::CliError;

/// How long a request may take (a `doctor --verify` probes the network for up to ~8 s).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a connection could not be made.
#[derive(Debug)]
pub enum ConnectError {
    /// Nothing listens (no socket, or a stale one): start a daemon.
    NotRunning(io::Error),
    /// A daemon of another protocol answered; it has been asked to exit.
    Mismatch(Welcome),
    /// Something answered that we must not talk to, or the connection failed.
    Failed(String),
}

/// A connected, handshaken client.
pub struct Client {
    stream: UnixStream,
    /// The daemon's handshake.
    pub welcome: Welcome,
}

impl Client {
    /// Connects to the socket at `path`, checks the daemon runs as us, and shakes hands. On a
    /// protocol mismatch it sends `Shutdown` to the old daemon and reports `Mismatch`.
    pub fn connect(path: &Path) -> Result<Self, ConnectError> {
        Self::open(path, REQUEST_TIMEOUT, true)
    }

    /// Connects with a short per-read timeout and no side effects: a daemon of another protocol
    /// is left running (reported as `Mismatch`). For the prompt hook, which must never block a
    /// prompt nor stop a daemon behind the user's back.
    pub fn connect_quick(path: &Path, timeout: Duration) -> Result<Self, ConnectError> {
        Self::open(path, timeout, false)
    }

    fn open(path: &Path, timeout: Duration, stop_old: bool) -> Result<Self, ConnectError> {
        // The socket's directory must be ours and private before we connect into it.
        if let Some(dir) = path.parent() {
            match check_private_dir(dir) {
                Ok(()) => {}
                Err(DirError::Create { source, .. })
                    if source.kind() == io::ErrorKind::NotFound =>
                {
                    return Err(ConnectError::NotRunning(source));
                }
                Err(e) => return Err(ConnectError::Failed(e.to_string())),
            }
        }
        let mut stream = UnixStream::connect(path).map_err(ConnectError::NotRunning)?;
        stream.set_read_timeout(Some(timeout)).map_err(fail)?;
        stream.set_write_timeout(Some(timeout)).map_err(fail)?;
        check_peer(&stream)?;
        codec::write_frame(
            &mut stream,
            &Hello { protocol: PROTOCOL_VERSION, client_version: VERSION.to_owned() },
        )
        .map_err(fail)?;
        let welcome: Welcome = codec::read_frame(&mut stream).map_err(|e| match e {
            FrameError::Closed | FrameError::Truncated => ConnectError::Failed(
                "the daemon closed the connection during the handshake (does it run as another \
                 user?)"
                    .to_owned(),
            ),
            other => ConnectError::Failed(format!("handshake failed: {other}")),
        })?;
        if welcome.protocol != PROTOCOL_VERSION {
            if !stop_old {
                return Err(ConnectError::Mismatch(welcome));
            }
            // Index 0 of every protocol's Request is Shutdown.
            let _ = codec::write_frame(&mut stream, &Request::Shutdown);
            let _ = codec::read_frame::<_, Response>(&mut stream);
            return Err(ConnectError::Mismatch(welcome));
        }
        Ok(Self { stream, welcome })
    }

    /// Sends a request whose answer is a stream, and calls `each` for every response until the
    /// daemon closes the stream or `each` returns `false`. No read timeout: streams are quiet.
    pub fn stream(
        &mut self,
        request: &Request,
        mut each: impl FnMut(Response) -> bool,
    ) -> Result<(), CliError> {
        codec::write_frame(&mut self.stream, request)
            .map_err(|e| CliError::daemon(format!("failed to send to the daemon: {e}")))?;
        let _ = self.stream.set_read_timeout(None);
        loop {
            match codec::read_frame(&mut self.stream) {
                Ok(Response::Error { code, message }) => return Err(remote_error(code, message)),
                Ok(response) => {
                    if !each(response) {
                        return Ok(());
                    }
                }
                // Streams end only when the daemon does.
                Err(FrameError::Closed | FrameError::Truncated) => {
                    return Err(CliError::daemon(
                        "the daemon closed the stream (it stopped or was restarted); run the \
                         command again to start a fresh one",
                    ));
                }
                Err(e) => return Err(CliError::daemon(format!("the stream broke: {e}"))),
            }
        }
    }

    /// Sends one request and reads its response. A `Response::Error` becomes a `CliError`.
    pub fn request(&mut self, request: &Request) -> Result<Response, CliError> {
        codec::write_frame(&mut self.stream, request)
            .map_err(|e| CliError::daemon(format!("failed to send to the daemon: {e}")))?;
        match codec::read_frame(&mut self.stream) {
            Ok(Response::Error { code, message }) => Err(remote_error(code, message)),
            Ok(response) => Ok(response),
            Err(FrameError::Closed | FrameError::Truncated) => Err(CliError::daemon(
                "the daemon closed the connection before answering (did it crash or stop?); the \
                 next command starts a fresh one",
            )),
            Err(e) => Err(CliError::daemon(format!("bad answer from the daemon: {e}"))),
        }
    }
}

fn remote_error(code: ErrorCode, message: String) -> CliError {
    match code {
        ErrorCode::BadRequest | ErrorCode::NotFound | ErrorCode::Keychain | ErrorCode::Refused => {
            CliError::failed(message)
        }
        ErrorCode::Internal => CliError::failed(format!("daemon error: {message}")),
    }
}

#[allow(clippy::needless_pass_by_value)] // used as `map_err(fail)`
fn fail(e: io::Error) -> ConnectError {
    ConnectError::Failed(e.to_string())
}

/// The daemon must run as our own uid: anyone else could be impersonating it to collect keys.
#[cfg(target_os = "linux")]
fn check_peer(stream: &UnixStream) -> Result<(), ConnectError> {
    use std::os::fd::AsRawFd;
    let mut cred = libc::ucred { pid: 0, uid: 0, gid: 0 };
    let mut len = libc::socklen_t::try_from(std::mem::size_of::<libc::ucred>()).unwrap_or(0);
    // SAFETY: getsockopt writes at most `len` bytes into `cred`, a valid ucred.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast(),
            &raw mut len,
        )
    };
    if rc != 0 {
        return Err(ConnectError::Failed(format!(
            "cannot read the daemon's credentials: {}",
            io::Error::last_os_error()
        )));
    }
    verify_uid(cred.uid)
}

#[cfg(all(unix, not(target_os = "linux")))]
fn check_peer(stream: &UnixStream) -> Result<(), ConnectError> {
    use std::os::fd::AsRawFd;
    let (mut uid, mut gid) = (0, 0);
    // SAFETY: getpeereid writes two ids into valid locations.
    if unsafe { libc::getpeereid(stream.as_raw_fd(), &mut uid, &mut gid) } != 0 {
        return Err(ConnectError::Failed(format!(
            "cannot read the daemon's credentials: {}",
            io::Error::last_os_error()
        )));
    }
    verify_uid(uid)
}

fn verify_uid(uid: u32) -> Result<(), ConnectError> {
    let me = qwen_env_proto::endpoint::euid();
    if uid == me {
        Ok(())
    } else {
        Err(ConnectError::Failed(format!(
            "the process listening on the qwen-env socket runs as uid {uid}, not as you (uid {me}); \
             refusing to talk to it"
        )))
    }
}
