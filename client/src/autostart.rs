//! `ensure_daemon`: connect to the running daemon, or start one and wait until it is ready.
//!
//! The steps follow atuin's `ensure_daemon_running`: probe; on a protocol mismatch ask the old
//! daemon to exit and wait for its lock to free; take the startup lock so racing clients start
//! one daemon between them; probe again under the lock; remove a stale socket only when the
//! connection was refused and no daemon holds the pidfile; spawn; read the typed report.
//!
//! Before any of that the runtime dir is checked with the daemon's rules (owned by us, mode 0700,
//! not a symlink: [`qwen_env_proto::endpoint::check_private_dir`]): the `$TMPDIR/qwen-env-<uid>`
//! fallback can be made by another user first. The lock and pid files in it are opened without
//! following symlinks and without blocking, and must be regular files.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, BufRead, BufReader, ErrorKind};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use qwen_env_proto::endpoint::{DirError, Endpoint, check_private_dir};
use qwen_env_proto::ready::Report;

use crate::error::CliError;
use crate::transport::{Client, ConnectError};

/// How long to wait for another client's startup, or for an old daemon to exit.
const LOCK_WAIT: Duration = Duration::from_secs(15);

/// Connects to the daemon, starting it if needed.
pub fn ensure_daemon() -> Result<Client, CliError> {
    let endpoint = Endpoint::from_env();
    prepare_runtime_dir(&endpoint.dir)?;
    if let Some(client) = probe(&endpoint)? {
        return Ok(client);
    }
    let _startup = lock_file(&endpoint.startup_lock(), "the startup lock")?;
    // Someone may have started it while we waited for the lock.
    if let Some(client) = probe(&endpoint)? {
        return Ok(client);
    }
    spawn_daemon()?;
    // `running` reports race with its bind: retry briefly.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match Client::connect(&endpoint.socket()) {
            Ok(client) => return Ok(client),
            Err(ConnectError::NotRunning(e)) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(connect_error(e)),
        }
    }
}

/// Connects without starting anything: `Ok(None)` when no daemon runs.
pub fn connect_existing() -> Result<Option<Client>, CliError> {
    let endpoint = Endpoint::from_env();
    match check_private_dir(&endpoint.dir) {
        Ok(()) => probe(&endpoint),
        // No runtime dir, no daemon.
        Err(DirError::Create { source, .. }) if source.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CliError::daemon(e)),
    }
}

/// One connection attempt. `Ok(None)` means "start one": nothing listens, or an old daemon was
/// asked to exit and has gone.
fn probe(endpoint: &Endpoint) -> Result<Option<Client>, CliError> {
    let socket = endpoint.socket();
    match Client::connect(&socket) {
        Ok(client) => Ok(Some(client)),
        Err(ConnectError::Mismatch(old)) => {
            wait_unlocked(&endpoint.pidfile(), &format!("the old daemon (pid {})", old.pid))?;
            Ok(None)
        }
        Err(ConnectError::NotRunning(e)) => {
            if e.kind() == std::io::ErrorKind::ConnectionRefused && !pidfile_locked(endpoint) {
                // A socket file nobody listens on and no daemon alive: a crashed daemon's.
                let _ = std::fs::remove_file(&socket);
            }
            Ok(None)
        }
        Err(e) => Err(connect_error(e)),
    }
}

fn connect_error(e: ConnectError) -> CliError {
    match e {
        ConnectError::NotRunning(e) => CliError::daemon(format!("cannot reach the daemon: {e}")),
        ConnectError::Mismatch(w) => CliError::daemon(format!(
            "daemon protocol mismatch: daemon {} (protocol {}) did not exit",
            w.daemon_version, w.protocol
        )),
        ConnectError::Failed(m) => CliError::daemon(m),
    }
}

/// Creates the runtime dir with mode 0700 if it is missing, then checks it as the daemon does;
/// an unsafe one is refused before anything in it is opened.
fn prepare_runtime_dir(dir: &Path) -> Result<(), CliError> {
    match check_private_dir(dir) {
        Err(DirError::Create { source, .. }) if source.kind() == ErrorKind::NotFound => {}
        other => return other.map_err(CliError::daemon),
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|e| {
        CliError::daemon(format!("failed to create runtime directory {}: {e}", dir.display()))
    })?;
    check_private_dir(dir).map_err(CliError::daemon)
}

/// The daemon binary: `QWEN_ENV_DAEMON`, else `qwen-envd` beside this executable, else the bare
/// name `qwen-envd` (looked up on PATH when spawned). `service install` makes it absolute.
pub fn daemon_path() -> PathBuf {
    if let Some(p) = std::env::var_os("QWEN_ENV_DAEMON").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let sibling = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("qwen-envd")))
        .filter(|p| p.is_file());
    sibling.unwrap_or_else(|| PathBuf::from("qwen-envd"))
}

/// Starts `qwen-envd`, which forks into the background and reports one line on our pipe
/// ([`Report`]).
fn spawn_daemon() -> Result<(), CliError> {
    let path = daemon_path();
    let mut child = Command::new(&path)
        .arg("--ready-fd")
        .arg("1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| {
            CliError::daemon_not_started(format!(
                "failed to start the daemon {}: {e}; install qwen-envd beside qwen-env (cargo \
                 install --locked --path daemon) or set QWEN_ENV_DAEMON to its path",
                path.display()
            ))
        })?;
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        let _ = BufReader::new(out).read_line(&mut line);
    }
    // The foreground half exits as soon as the daemon has reported.
    let _ = child.wait();
    match Report::parse(&line) {
        Some(r) if r.serving() => Ok(()),
        Some(Report::Error(message)) => {
            Err(CliError::daemon(format!("the daemon failed to start: {message}")))
        }
        _ => Err(CliError::daemon("the daemon exited during startup without a report")),
    }
}

/// Opens a file of the runtime dir without following a symlink and without blocking on a FIFO;
/// it must be a regular file. With `create`, a missing one is made (mode 0600).
fn open_regular(path: &Path, create: bool) -> io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.read(true);
    if create {
        opts.write(true).create(true).truncate(false);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC);
    }
    let file = opts.open(path).map_err(|e| {
        #[cfg(unix)]
        if e.raw_os_error() == Some(libc::ELOOP) {
            return io::Error::other("it is a symlink");
        }
        e
    })?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::other("it is not a regular file"));
    }
    Ok(file)
}

fn lock_file(path: &Path, what: &str) -> Result<File, CliError> {
    let file = open_regular(path, true).map_err(|e| {
        CliError::daemon(format!(
            "failed to open {p}: {e}; remove it (`rm {p}`) and try again",
            p = path.display()
        ))
    })?;
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(TryLockError::WouldBlock) => {
                return Err(CliError::daemon(format!(
                    "timed out after {}s waiting for {what} ({})",
                    LOCK_WAIT.as_secs(),
                    path.display()
                )));
            }
            Err(TryLockError::Error(e)) => {
                return Err(CliError::daemon(format!("failed to lock {}: {e}", path.display())));
            }
        }
    }
}

/// Waits until nobody holds the lock on `path` (the daemon holding it has exited).
pub fn wait_unlocked(path: &Path, what: &str) -> Result<(), CliError> {
    if !path.exists() {
        return Ok(());
    }
    drop(lock_file(path, what)?);
    Ok(())
}

fn pidfile_locked(endpoint: &Endpoint) -> bool {
    let Ok(file) = open_regular(&endpoint.pidfile(), false) else { return false };
    matches!(file.try_lock(), Err(TryLockError::WouldBlock))
}
