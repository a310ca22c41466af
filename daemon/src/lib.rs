//! qwen-envd: the per-user daemon.
//!
//! # Layout
//!
//! - [`activation`]: the listening socket from systemd, when it started us.
//! - [`paths`]: private directories (create 0700, refuse unsafe ones).
//! - [`singleton`]: the pidfile lock that makes the daemon single-instance.
//! - [`keychain`]: the OS keychain with timeouts; [`keys`]: keys plus their metadata index;
//!   [`import`]: moves literal keys from files into the keychain.
//! - [`resolution`]: feeds the pure resolver (parse cache, config, catalogue, keychain view).
//! - [`probe`]: free HTTP probes of endpoints; [`verify`]: their results as findings.
//! - [`lineage`]: refuses keys to processes that `run` started.
//! - [`server`]: listener, peer check, framing; [`handler`]: one function per request.
//! - [`watcher`]: re-resolves contexts when their files change; feeds `events`.
//! - [`ready`]: the typed startup report the client waits for.
//!
//! [`run`] wires them together for the binary; tests can call [`server::serve`] in-process.

pub mod activation;
pub mod handler;
pub mod hardening;
pub mod import;
pub mod keychain;
pub mod keys;
pub mod lineage;
pub mod logging;
pub mod paths;
pub mod probe;
pub mod ready;
pub mod resolution;
pub mod server;
pub mod singleton;
pub mod verify;
pub mod watcher;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use anyhow::Context;
use qwen_env_proto::endpoint::{Dirs, Endpoint};
use tokio::sync::watch;

use crate::ready::Ready;

/// Shared daemon state.
pub struct State {
    /// Keys: keychain plus metadata.
    pub keys: keys::Keys,
    /// When the daemon started.
    pub started: Instant,
    /// The socket it listens on.
    pub socket: PathBuf,
    /// Its log file.
    pub log_file: PathBuf,
    /// Connections accepted since start.
    pub connections: AtomicU64,
    /// Resolves callers' configuration.
    pub resolver: resolution::Resolver,
    /// Watches the files behind every context clients asked about.
    pub watcher: Arc<watcher::Watcher>,
    /// Processes that received keys through `run`.
    pub lineage: lineage::Lineage,
    /// Probes endpoints with keys (cache, dedupe, rate limit).
    pub prober: probe::Prober,
    /// Set to `true` to shut down.
    pub shutdown: watch::Sender<bool>,
}

/// Runs the daemon until it is asked to stop. `ready` receives the startup outcome.
pub fn run(ready: &mut Ready) -> anyhow::Result<()> {
    let endpoint = Endpoint::from_env();
    let dirs = Dirs::from_env();
    paths::secure_runtime_dir(&endpoint.dir)?;
    if !endpoint.socket_path_fits() {
        anyhow::bail!(
            "socket path {} is longer than {} bytes; set XDG_RUNTIME_DIR to a shorter directory",
            endpoint.socket().display(),
            qwen_env_proto::endpoint::MAX_SOCKET_PATH
        );
    }
    let _pidfile = match singleton::PidfileGuard::acquire(&endpoint.pidfile())? {
        singleton::Acquired::Mine(guard) => guard,
        singleton::Acquired::Taken { holder } => {
            if std::env::var_os("LISTEN_FDS").is_some() {
                // systemd would start us again on the next connection and give up after a few.
                tracing::warn!(%holder, "socket-activated, but another qwen-envd holds the lock; \
                    stop it (`qwen-env daemon stop`) so systemd's can serve the socket");
            }
            ready.running(&holder);
            return Ok(());
        }
    };
    let namespace = std::env::var("QWEN_ENV_NAMESPACE").ok();
    let forced = std::env::var("QWEN_ENV_KEYRING").ok();
    let keychain = keychain::Keychain::open(forced.as_deref(), namespace.as_deref())?;
    if let Some(note) = &keychain.info().note {
        tracing::warn!("{note}");
    }
    let socket = endpoint.socket();
    // Socket activation: systemd owns the socket file; we neither replace nor remove it.
    let activated = activation::listener()?;
    let socket_activated = activated.is_some();
    let std_listener = match activated {
        Some(listener) => {
            let path: Option<PathBuf> =
                listener.local_addr().ok().and_then(|a| a.as_pathname().map(Into::into));
            if path.as_deref() != Some(socket.as_path()) {
                tracing::warn!(passed = ?path, expected = %socket.display(),
                    "systemd's socket is not where clients look; check XDG_RUNTIME_DIR");
            }
            tracing::info!("socket-activated: listening on the socket systemd passed");
            listener
        }
        None => bind(&socket)?,
    };
    std_listener.set_nonblocking(true)?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(16)
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    let (shutdown_tx, mut shutdown_rx) = watch::channel(false);
    let (raw_events, raw_events_rx) = tokio::sync::mpsc::unbounded_channel();
    let state = Arc::new(State {
        keys: keys::Keys::open(keychain.clone(), &dirs.data, namespace.as_deref()),
        started: Instant::now(),
        socket: socket.clone(),
        log_file: dirs.log_file(),
        connections: AtomicU64::new(0),
        resolver: resolution::Resolver::new(
            dirs.config_file(),
            std::env::var_os("QWEN_ENV_CATALOG").filter(|v| !v.is_empty()).map(PathBuf::from),
        ),
        watcher: watcher::Watcher::new(raw_events),
        lineage: lineage::Lineage::default(),
        prober: probe::Prober::from_env(),
        shutdown: shutdown_tx,
    });
    let result = runtime.block_on(async {
        let listener = tokio::net::UnixListener::from_std(std_listener)?;
        tokio::spawn(keychain.purge_idle_loop());
        tokio::spawn(watcher::run(state.clone(), raw_events_rx));
        let signals = shutdown_signals()?;
        tracing::info!(pid = std::process::id(), socket = %socket.display(),
            keychain = state.keys.keychain().backend().name(), "qwen-envd ready");
        ready.ready();
        let shutdown = async move {
            tokio::select! {
                () = signals => {}
                _ = shutdown_rx.wait_for(|stop| *stop) => {}
            }
        };
        server::serve(listener, state, shutdown).await;
        anyhow::Ok(())
    });
    if !socket_activated {
        let _ = std::fs::remove_file(&socket);
    }
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    tracing::info!("qwen-envd stopped");
    result
}

/// Binds the socket ourselves (0600). We hold the pidfile lock, so any socket file already
/// there is a dead daemon's.
fn bind(socket: &std::path::Path) -> anyhow::Result<std::os::unix::net::UnixListener> {
    match std::fs::remove_file(socket) {
        Ok(()) => tracing::info!(path = %socket.display(), "removed a stale socket"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(e).context(format!("failed to remove stale socket {}", socket.display()));
        }
    }
    let listener = std::os::unix::net::UnixListener::bind(socket)
        .with_context(|| format!("failed to bind {}", socket.display()))?;
    set_mode(socket, 0o600)?;
    Ok(listener)
}

fn set_mode(path: &std::path::Path, mode: u32) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("failed to set mode {mode:o} on {}", path.display()))?;
    }
    Ok(())
}

/// Resolves on SIGTERM or SIGINT.
fn shutdown_signals() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = int.recv() => tracing::info!("SIGINT: shutting down"),
        }
    })
}
