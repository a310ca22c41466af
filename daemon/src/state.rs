//! The daemon's shared state: the engine, the lineage table, and what `status` reports.
//!
//! Built by [`State::new`] from [`Options`], so a test can start a whole daemon in-process on a
//! temporary socket (`server::serve`), with the same parts the binary uses.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use qwen_env_proto::StatusInfo;
use tokio::sync::{mpsc, watch};

use crate::engine::Engine;
use crate::keychain::Keychain;
use crate::keys::Keys;
use crate::lineage::Lineage;
use crate::probe::Prober;
use crate::resolution::Resolver;
use crate::trust::Trust;
use crate::watcher::Watcher;

/// What a daemon is made of.
pub struct Options {
    /// The keychain, opened.
    pub keychain: Arc<Keychain>,
    /// Where key metadata lives (`$XDG_DATA_HOME/qwen-env`).
    pub data_dir: PathBuf,
    /// `QWEN_ENV_NAMESPACE`: keeps a test's keys apart.
    pub namespace: Option<String>,
    /// qwen-env's own `config.toml`.
    pub config_file: PathBuf,
    /// `QWEN_ENV_CATALOG`, if set.
    pub catalog_file: Option<PathBuf>,
    /// The socket it listens on (for `status`).
    pub socket: PathBuf,
    /// Its log file (for `status`).
    pub log_file: PathBuf,
    /// The probe engine.
    pub prober: Prober,
    /// Where the lineage records persist (`None`: in memory, for tests).
    pub lineage_file: Option<PathBuf>,
}

/// Shared daemon state. Fields are private; the server and handler use the methods.
pub struct State {
    engine: Arc<Engine>,
    keychain: Arc<Keychain>,
    lineage: Lineage,
    started: Instant,
    socket: PathBuf,
    log_file: PathBuf,
    connections: AtomicU64,
    shutdown: watch::Sender<bool>,
    raw_events: Mutex<Option<mpsc::UnboundedReceiver<PathBuf>>>,
}

impl State {
    /// Builds the state. Call [`State::start`] inside the runtime before serving.
    pub fn new(o: Options) -> Arc<Self> {
        let (raw_tx, raw_rx) = mpsc::unbounded_channel();
        let keys = Arc::new(Keys::open(o.keychain.clone(), &o.data_dir, o.namespace.as_deref()));
        let resolver = Resolver::new(o.config_file, o.catalog_file);
        let trust = Trust::open(&o.data_dir, o.namespace.as_deref());
        let engine = Arc::new(Engine::new(keys, resolver, o.prober, Watcher::new(raw_tx), trust));
        Arc::new(Self {
            engine,
            keychain: o.keychain,
            lineage: o.lineage_file.map_or_else(Lineage::in_memory, Lineage::open),
            started: Instant::now(),
            socket: o.socket,
            log_file: o.log_file,
            connections: AtomicU64::new(0),
            shutdown: watch::channel(false).0,
            raw_events: Mutex::new(Some(raw_rx)),
        })
    }

    /// Starts the background tasks: the watcher's event loop and the keychain cache purge.
    /// Idempotent.
    pub fn start(&self) {
        let raw = self.raw_events.lock().expect("raw events lock").take();
        if let Some(raw) = raw {
            tokio::spawn(self.engine.clone().watch(raw));
            tokio::spawn(self.keychain.clone().purge_idle_loop());
        }
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Processes that received keys through `run`.
    pub fn lineage(&self) -> &Lineage {
        &self.lineage
    }

    /// Counts an accepted connection.
    pub fn connected(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    /// Asks the daemon to stop.
    pub fn stop(&self) {
        self.shutdown.send_replace(true);
    }

    /// Resolves once the daemon is asked to stop.
    pub async fn stopped(&self) {
        let mut rx = self.shutdown.subscribe();
        let _ = rx.wait_for(|stop| *stop).await;
    }

    /// What `qwen-env status` shows.
    pub fn status(&self) -> StatusInfo {
        let (watched, contexts, watch_note) = self.engine.watcher().status();
        StatusInfo {
            pid: std::process::id(),
            daemon_version: qwen_env_proto::VERSION.to_owned(),
            protocol: qwen_env_proto::PROTOCOL_VERSION,
            uptime_secs: self.started.elapsed().as_secs(),
            socket: self.socket.display().to_string(),
            log_file: self.log_file.display().to_string(),
            keychain: self.keychain.info().clone(),
            connections: self.connections.load(Ordering::Relaxed),
            watched,
            contexts,
            watch_note,
        }
    }
}
