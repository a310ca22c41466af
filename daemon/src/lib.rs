//! qwen-envd: the per-user daemon.
//!
//! # Layout (lower modules never import higher ones)
//!
//! - [`clock`], [`paths`], [`activation`], [`singleton`], [`hardening`], [`ready`], [`logging`]:
//!   process plumbing (time, private directories, systemd's socket, the pidfile lock).
//! - [`keychain`]: the OS keychain with timeouts; [`keys`]: keys plus their metadata index.
//! - [`resolution`]: feeds the pure resolver (parse cache, config, catalogue).
//! - [`probe`]: free HTTP probes of endpoints, the only code that attaches a key to a request;
//!   [`verify`]: their results as findings (needs only the prober and the key store).
//! - [`watcher`]: which files each context read, and the inotify watches on them.
//! - [`gate`]: where a key may go (catalogue, the user's own files, `trust`); [`trust`]: the
//!   project files the user vouched for, by content hash.
//! - [`engine`]: the one assessment path (resolve, probe, finish) that every request and every
//!   re-resolution after a file change goes through.
//! - [`import`]: moves literal keys from files into the keychain.
//! - [`lineage`]: processes that `run` started, refused keys of their own.
//! - [`state`]: the shared state, built from [`state::Options`]; [`error`]: typed request errors.
//! - [`handler`]: one function per request; [`server`]: listener, peer check, framing.
//!
//! [`run`] wires them together for the binary; tests build a [`state::State`] and call
//! [`server::serve`] in-process.

pub mod activation;
pub mod clock;
pub mod engine;
pub mod error;
pub mod gate;
pub mod handler;
pub mod hardening;
pub mod import;
pub mod keychain;
pub mod keys;
pub mod lineage;
pub mod logging;
pub mod memo;
pub mod paths;
pub mod probe;
pub mod ready;
pub mod resolution;
pub mod server;
pub mod singleton;
pub mod state;
pub mod trust;
pub mod verify;
pub mod watcher;

use std::path::PathBuf;

use anyhow::Context;
use qwen_env_proto::endpoint::{Dirs, Endpoint};

use crate::ready::Ready;
use crate::state::{Options, State};

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
    let backend = keychain.backend().name();
    let state = State::new(Options {
        keychain,
        data_dir: dirs.data.clone(),
        namespace,
        config_file: dirs.config_file(),
        catalog_file: std::env::var_os("QWEN_ENV_CATALOG")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from),
        socket: socket.clone(),
        log_file: dirs.log_file(),
        prober: probe::Prober::from_env(),
        lineage_file: Some(endpoint.dir.join(lineage::FILE)),
    });
    let result = runtime.block_on(async {
        let listener = tokio::net::UnixListener::from_std(std_listener)?;
        state.start();
        let signals = shutdown_signals()?;
        tracing::info!(pid = std::process::id(), socket = %socket.display(), keychain = backend,
            "qwen-envd ready");
        ready.ready();
        let stopping = state.clone();
        let shutdown = async move {
            tokio::select! {
                () = signals => {}
                () = stopping.stopped() => {}
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
