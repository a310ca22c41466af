//! The OS keychain, through keyring v4 (keyring-core and its store crates).
//!
//! Backends: Secret Service (pure-Rust zbus store) when a session bus answers, else kernel
//! keyutils on Linux; the macOS Keychain and Windows Credential Manager elsewhere.
//! `QWEN_ENV_KEYRING` forces one; `QWEN_ENV_NAMESPACE` suffixes the service name so tests never
//! touch a user's real entries. Every call runs on a blocking thread under a 2 s timeout, and
//! values are cached in memory (as `SecretValue`) until they have been idle for a while.
//!
//! The daemon uses one backend for its life, but a key stored while it used another (a daemon
//! that found no Secret Service at login, then one that did) is still there: [`Keychain::other`]
//! opens the other backends of the platform on demand, so that a missing key can be located
//! (`explain`, `doctor`, `key ls` name the backend that holds it) and moved (`key migrate`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keyring_core::Entry;
use qwen_env_proto::{KeychainInfo, SecretValue};
use tokio::sync::Notify;

/// Every keychain call gives up after this long.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// Cached values are dropped (and zeroized) after this long without use
/// (`QWEN_ENV_CACHE_IDLE_SECS` overrides it).
pub const CACHE_IDLE: Duration = Duration::from_mins(15);

fn cache_idle() -> Duration {
    std::env::var("QWEN_ENV_CACHE_IDLE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(CACHE_IDLE, Duration::from_secs)
}

/// Keychain failures, worded to say what to do.
#[derive(Debug, thiserror::Error)]
pub enum KeychainError {
    #[error(
        "the {backend} keychain did not answer within {}s while {op}; if it is locked, unlock it \
         (log in to the desktop session, or unlock the login keyring), or restart the daemon with \
         QWEN_ENV_KEYRING=keyutils",
        CALL_TIMEOUT.as_secs()
    )]
    Timeout { backend: &'static str, op: Op },
    #[error("the {backend} keychain failed while {op}: {message}")]
    Backend { backend: &'static str, op: Op, message: String },
    #[error("the {backend} keychain has no entry to {op}")]
    NoEntry { backend: &'static str, op: Op },
    #[error("{0}")]
    Unavailable(String),
}

/// What a keychain call does, for messages (`while reading DASHSCOPE_API_KEY`).
#[derive(Debug, Clone)]
pub enum Op {
    Store(String),
    Read(String),
    Delete(String),
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Store(n) => write!(f, "storing {n}"),
            Self::Read(n) => write!(f, "reading {n}"),
            Self::Delete(n) => write!(f, "deleting {n}"),
        }
    }
}

/// Which store holds the keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    SecretService,
    Keyutils,
    MacOs,
    Windows,
}

impl Backend {
    /// Every backend of this platform, in the order the daemon prefers them.
    pub fn all() -> &'static [Backend] {
        if cfg!(target_os = "linux") {
            &[Self::SecretService, Self::Keyutils]
        } else if cfg!(target_os = "macos") {
            &[Self::MacOs]
        } else if cfg!(windows) {
            &[Self::Windows]
        } else {
            &[]
        }
    }

    /// The backend named `name` (as in `QWEN_ENV_KEYRING`), on this platform.
    pub fn parse(name: &str) -> Result<Self, String> {
        let names = || Self::all().iter().map(|b| b.name()).collect::<Vec<_>>().join(", ");
        match Self::all().iter().find(|b| b.name() == name) {
            Some(b) => Ok(*b),
            None => {
                Err(format!("{name:?} is not a keychain backend here; use one of: {}", names()))
            }
        }
    }

    /// The name used in `QWEN_ENV_KEYRING`, `status` and `key ls`.
    pub fn name(self) -> &'static str {
        match self {
            Self::SecretService => "secret-service",
            Self::Keyutils => "keyutils",
            Self::MacOs => "macos",
            Self::Windows => "windows",
        }
    }
}

/// One opened store and what it is.
#[derive(Clone)]
struct Store {
    backend: Backend,
    inner: Arc<keyring_core::CredentialStore>,
}

/// The keychain the daemon uses for its whole life.
pub struct Keychain {
    backend: Backend,
    store: Arc<keyring_core::CredentialStore>,
    service: String,
    info: KeychainInfo,
    cache: Mutex<HashMap<String, (SecretValue, Instant)>>,
    cache_changed: Notify,
    /// Other backends opened so far (a failed open is tried again next time).
    opened: Mutex<Vec<Store>>,
}

impl Keychain {
    /// Picks and opens the backend. Blocking: call it before serving.
    pub fn open(forced: Option<&str>, namespace: Option<&str>) -> Result<Arc<Self>, KeychainError> {
        let service = match namespace.filter(|n| !n.is_empty()) {
            Some(ns) => format!("qwen-env-{ns}"),
            None => "qwen-env".to_owned(),
        };
        let (backend, store, durable, note) = platform::open_store(forced)?;
        keyring_core::set_default_store(store.clone());
        Ok(Arc::new(Self {
            backend,
            store,
            service,
            info: KeychainInfo { backend: backend.name().to_owned(), durable, note },
            cache: Mutex::new(HashMap::new()),
            cache_changed: Notify::new(),
            opened: Mutex::new(Vec::new()),
        }))
    }

    /// What `status` shows about the backend.
    pub fn info(&self) -> &KeychainInfo {
        &self.info
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Stores `value` under `name`.
    pub async fn set(&self, name: &str, value: &SecretValue) -> Result<(), KeychainError> {
        let owned = value.clone();
        self.call(Op::Store(name.to_owned()), name, move |e| {
            e.set_password(owned.expose_secret()).map(|()| None)
        })
        .await?;
        self.remember(name, value.clone());
        Ok(())
    }

    /// The value stored under `name`, if any.
    pub async fn get(&self, name: &str) -> Result<Option<SecretValue>, KeychainError> {
        if let Some((value, used)) = self.cache.lock().expect("cache lock").get_mut(name) {
            *used = Instant::now();
            return Ok(Some(value.clone()));
        }
        let value = match self
            .call(Op::Read(name.to_owned()), name, |e| e.get_password().map(Some))
            .await
        {
            Err(KeychainError::NoEntry { .. }) => None,
            other => other?,
        };
        let value = value.map(SecretValue::new);
        if let Some(v) = &value {
            self.remember(name, v.clone());
        }
        Ok(value)
    }

    /// Deletes `name`; `false` if it was not there.
    pub async fn delete(&self, name: &str) -> Result<bool, KeychainError> {
        self.cache.lock().expect("cache lock").remove(name);
        let gone = self
            .call(Op::Delete(name.to_owned()), name, |e| e.delete_credential().map(|()| None))
            .await;
        match gone {
            Ok(_) => Ok(true),
            Err(KeychainError::NoEntry { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Drops cached values idle for longer than [`CACHE_IDLE`]; sleeps while the cache is empty,
    /// so an idle daemon has no periodic wake-ups. Runs for the daemon's life.
    pub async fn purge_idle_loop(self: Arc<Self>) {
        let idle = cache_idle();
        loop {
            let next = {
                let mut cache = self.cache.lock().expect("cache lock");
                let now = Instant::now();
                let before = cache.len();
                cache.retain(|_, (_, used)| now.duration_since(*used) < idle);
                if cache.len() < before {
                    tracing::debug!(dropped = before - cache.len(), "dropped idle cached secrets");
                }
                cache.values().map(|(_, used)| *used + idle).min()
            };
            match next {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => self.cache_changed.notified().await,
            }
        }
    }

    fn remember(&self, name: &str, value: SecretValue) {
        self.cache.lock().expect("cache lock").insert(name.to_owned(), (value, Instant::now()));
        self.cache_changed.notify_one();
    }

    /// Runs one keychain operation on a blocking thread under [`CALL_TIMEOUT`]. A missing entry
    /// comes back as [`KeychainError::NoEntry`].
    async fn call<F>(&self, op: Op, name: &str, f: F) -> Result<Option<String>, KeychainError>
    where
        F: FnOnce(&Entry) -> keyring_core::Result<Option<String>> + Send + 'static,
    {
        let store = Store { backend: self.backend, inner: self.store.clone() };
        call(&store, &self.service, op, name, f).await
    }

    /// The other backends of this platform that answer now, opened for this one use (a Secret
    /// Service is connected on a helper thread under [`CALL_TIMEOUT`]). Never the active one.
    pub async fn others(&self) -> Vec<OtherStore> {
        let mut out = Vec::new();
        for &backend in Backend::all().iter().filter(|b| **b != self.backend) {
            match self.other(backend).await {
                Ok(s) => out.push(s),
                Err(e) => tracing::debug!(backend = backend.name(), error = %e, "backend not open"),
            }
        }
        out
    }

    /// Opens `backend` (not the active one) for reading and deleting entries of this service.
    pub async fn other(&self, backend: Backend) -> Result<OtherStore, KeychainError> {
        if backend == self.backend {
            return Err(KeychainError::Unavailable(format!(
                "the daemon already uses the {} keychain",
                backend.name()
            )));
        }
        let known =
            self.opened.lock().expect("opened lock").iter().find(|s| s.backend == backend).cloned();
        if let Some(store) = known {
            return Ok(OtherStore { store, service: self.service.clone() });
        }
        let task = tokio::task::spawn_blocking(move || platform::open_other(backend));
        let inner = match tokio::time::timeout(CALL_TIMEOUT, task).await {
            Ok(Ok(r)) => r?,
            Ok(Err(join)) => {
                return Err(KeychainError::Unavailable(format!("task failed: {join}")));
            }
            Err(_) => {
                return Err(KeychainError::Unavailable(format!(
                    "the {} keychain did not answer within {}s",
                    backend.name(),
                    CALL_TIMEOUT.as_secs()
                )));
            }
        };
        let store = Store { backend, inner };
        self.opened.lock().expect("opened lock").push(store.clone());
        Ok(OtherStore { store, service: self.service.clone() })
    }
}

/// A backend other than the daemon's, opened to find or move keys stored there earlier. Values
/// read from it are not cached.
pub struct OtherStore {
    store: Store,
    service: String,
}

impl OtherStore {
    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        self.store.backend
    }

    /// The value stored under `name`, if any.
    pub async fn get(&self, name: &str) -> Result<Option<SecretValue>, KeychainError> {
        match call(&self.store, &self.service, Op::Read(name.to_owned()), name, |e| {
            e.get_password().map(Some)
        })
        .await
        {
            Ok(v) => Ok(v.map(SecretValue::new)),
            Err(KeychainError::NoEntry { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Deletes `name`; `false` if it was not there.
    pub async fn delete(&self, name: &str) -> Result<bool, KeychainError> {
        match call(&self.store, &self.service, Op::Delete(name.to_owned()), name, |e| {
            e.delete_credential().map(|()| None)
        })
        .await
        {
            Ok(_) => Ok(true),
            Err(KeychainError::NoEntry { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Runs one keychain operation on `store` on a blocking thread under [`CALL_TIMEOUT`]. A missing
/// entry comes back as [`KeychainError::NoEntry`].
async fn call<F>(
    store: &Store,
    service: &str,
    op: Op,
    name: &str,
    f: F,
) -> Result<Option<String>, KeychainError>
where
    F: FnOnce(&Entry) -> keyring_core::Result<Option<String>> + Send + 'static,
{
    {
        let backend = store.backend.name();
        let inner = store.inner.clone();
        let (service, user) = (service.to_owned(), name.to_owned());
        let task = tokio::task::spawn_blocking(move || {
            let entry = inner.build(&service, &user, None)?;
            f(&entry)
        });
        match tokio::time::timeout(CALL_TIMEOUT, task).await {
            Err(_) => Err(KeychainError::Timeout { backend, op }),
            Ok(Err(join)) => {
                Err(KeychainError::Backend { backend, op, message: format!("task failed: {join}") })
            }
            Ok(Ok(Ok(v))) => Ok(v),
            Ok(Ok(Err(keyring_core::Error::NoEntry))) => {
                Err(KeychainError::NoEntry { backend, op })
            }
            Ok(Ok(Err(e))) => Err(KeychainError::Backend { backend, op, message: describe(&e) }),
        }
    }
}

/// keyring errors carry platform detail that is useful but never a secret.
fn describe(e: &keyring_core::Error) -> String {
    match e {
        keyring_core::Error::NoStorageAccess(inner) => {
            format!("cannot access the keychain ({inner}); is it locked or gone?")
        }
        other => other.to_string(),
    }
}

/// What opening the active store gives: the backend, the store, whether it is durable, a note.
type Opened = (Backend, Arc<keyring_core::CredentialStore>, bool, Option<String>);

#[cfg(target_os = "linux")]
mod platform {
    use super::{Backend, KeychainError, Opened};
    use std::sync::{Arc, mpsc};

    pub fn open_store(forced: Option<&str>) -> Result<Opened, KeychainError> {
        // Whatever the backend: keyutils is also where `key migrate` and `key ls` look for keys
        // a keyutils daemon stored, so every daemon holds a session keyring of its own with the
        // persistent keyring linked, on the main thread before any other exists (every thread
        // inherits it).
        let session = own_session();
        match forced.filter(|f| !f.is_empty()) {
            Some("secret-service") => match secret_service() {
                Ok(store) => Ok((Backend::SecretService, store, true, None)),
                Err(why) => Err(KeychainError::Unavailable(format!(
                    "QWEN_ENV_KEYRING=secret-service, but no Secret Service answers: {why}. Start \
                     gnome-keyring-daemon (or KeePassXC's Secret Service) in your session, or use \
                     QWEN_ENV_KEYRING=keyutils"
                ))),
            },
            Some("keyutils") => keyutils(session, None),
            Some(other) => Err(KeychainError::Unavailable(format!(
                "QWEN_ENV_KEYRING={other} is not a backend on Linux; use secret-service or keyutils"
            ))),
            None => match secret_service() {
                Ok(store) => Ok((Backend::SecretService, store, true, None)),
                Err(why) => keyutils(
                    session,
                    Some(format!(
                        "no Secret Service on the session bus ({why}); using kernel keyutils, which \
                     forgets keys at reboot"
                    )),
                ),
            },
        }
    }

    /// A backend the daemon does not use, for finding and moving keys stored there. Keyutils
    /// searches the daemon's own session keyring, which [`own_session`] linked the per-user
    /// persistent keyring into: that is where a keyutils daemon's keys are, whatever the session.
    pub fn open_other(
        backend: Backend,
    ) -> Result<Arc<keyring_core::CredentialStore>, KeychainError> {
        match backend {
            Backend::SecretService => secret_service().map_err(|why| {
                KeychainError::Unavailable(format!("no Secret Service answers: {why}"))
            }),
            Backend::Keyutils => linux_keyutils_keyring_store::Store::new()
                .map(|s| s as Arc<keyring_core::CredentialStore>)
                .map_err(|e| KeychainError::Unavailable(format!("kernel keyutils: {e}"))),
            other => Err(KeychainError::Unavailable(format!("{} is not on Linux", other.name()))),
        }
    }

    /// Connects to the Secret Service on a helper thread: D-Bus activation of a missing service
    /// can hang, and the daemon must not.
    fn secret_service() -> Result<Arc<keyring_core::CredentialStore>, String> {
        if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none_or(|a| a.is_empty()) {
            return Err("DBUS_SESSION_BUS_ADDRESS is not set".to_owned());
        }
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(zbus_secret_service_keyring_store::Store::new());
        });
        match rx.recv_timeout(super::CALL_TIMEOUT) {
            Ok(Ok(store)) => Ok(store),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {}s", super::CALL_TIMEOUT.as_secs())),
        }
    }

    /// What [`own_session`] achieved: a session keyring of the daemon's own, and whether the
    /// per-user persistent keyring is linked into it.
    type Session = Result<bool, String>;

    /// Joins a new anonymous session keyring, so that a login session ending (and its keyring
    /// being revoked) cannot take the daemon's access with it, and links the per-user persistent
    /// keyring into it, which outlives the daemon and holds what the keyutils store writes.
    /// Without a session keyring of its own a process searches the user-session keyring, which
    /// the persistent keyring is not linked into (`keyctl get_persistent @s` run from such a
    /// process creates a session for itself only).
    fn own_session() -> Session {
        const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
        const KEYCTL_GET_PERSISTENT: libc::c_long = 22;
        const KEY_SPEC_SESSION_KEYRING: libc::c_long = -3;
        // SAFETY: keyctl(JOIN_SESSION_KEYRING, NULL) creates and joins an anonymous keyring.
        let joined = unsafe {
            libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, std::ptr::null::<u8>())
        };
        if joined < 0 {
            return Err(std::io::Error::last_os_error().to_string());
        }
        // SAFETY: keyctl(GET_PERSISTENT, -1 = own uid, session) links the persistent keyring.
        let persistent = unsafe {
            libc::syscall(
                libc::SYS_keyctl,
                KEYCTL_GET_PERSISTENT,
                -1 as libc::c_long,
                KEY_SPEC_SESSION_KEYRING,
            )
        } >= 0;
        Ok(persistent)
    }

    /// Kernel keyutils, in the session [`own_session`] joined.
    fn keyutils(session: Session, note: Option<String>) -> Result<Opened, KeychainError> {
        let persistent = session.map_err(|why| {
            KeychainError::Unavailable(format!(
                "kernel keyutils is not available ({why}); run qwen-envd where a Secret Service or \
                 keyutils is available"
            ))
        })?;
        let store = linux_keyutils_keyring_store::Store::new().map_err(|e| {
            KeychainError::Unavailable(format!("kernel keyutils store failed to open: {e}"))
        })?;
        let durability = if persistent {
            "kernel keyutils keeps keys in the persistent keyring until reboot"
        } else {
            "kernel keyutils without persistent keyrings: keys are lost when the daemon exits"
        };
        let note = match note {
            Some(n) => n,
            None => format!("{durability} (QWEN_ENV_KEYRING=keyutils)"),
        };
        Ok((Backend::Keyutils, store, false, Some(note)))
    }
}

#[cfg(target_os = "macos")]
mod platform {
    use super::{Backend, KeychainError, Opened};
    pub fn open_store(forced: Option<&str>) -> Result<Opened, KeychainError> {
        if let Some(f) = forced.filter(|f| !f.is_empty() && *f != "macos") {
            return Err(KeychainError::Unavailable(format!(
                "QWEN_ENV_KEYRING={f} is not a backend on macOS; use macos"
            )));
        }
        let store = apple_native_keyring_store::keychain::Store::new()
            .map_err(|e| KeychainError::Unavailable(format!("macOS Keychain: {e}")))?;
        Ok((Backend::MacOs, store, true, None))
    }

    pub fn open_other(
        backend: Backend,
    ) -> Result<std::sync::Arc<keyring_core::CredentialStore>, KeychainError> {
        Err(KeychainError::Unavailable(format!("{} is not on macOS", backend.name())))
    }
}

#[cfg(windows)]
mod platform {
    use super::{Backend, KeychainError, Opened};
    pub fn open_store(forced: Option<&str>) -> Result<Opened, KeychainError> {
        if let Some(f) = forced.filter(|f| !f.is_empty() && *f != "windows") {
            return Err(KeychainError::Unavailable(format!(
                "QWEN_ENV_KEYRING={f} is not a backend on Windows; use windows"
            )));
        }
        let store = windows_native_keyring_store::Store::new()
            .map_err(|e| KeychainError::Unavailable(format!("Windows Credential Manager: {e}")))?;
        Ok((Backend::Windows, store, true, None))
    }

    pub fn open_other(
        backend: Backend,
    ) -> Result<std::sync::Arc<keyring_core::CredentialStore>, KeychainError> {
        Err(KeychainError::Unavailable(format!("{} is not on Windows", backend.name())))
    }
}
