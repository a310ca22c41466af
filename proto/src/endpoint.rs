//! Where the daemon listens: the per-user runtime directory and the files in it.
//!
//! Shared by both sides so they always agree. Only path arithmetic here; the daemon creates and
//! checks the directory, the client only connects.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// Longest socket path we accept: `sun_path` is 108 bytes on Linux and 104 on macOS.
pub const MAX_SOCKET_PATH: usize = 100;

/// The per-user runtime directory and the paths inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `$XDG_RUNTIME_DIR/qwen-env`, else `$TMPDIR/qwen-env-<uid>`.
    pub dir: PathBuf,
}

impl Endpoint {
    /// The endpoint for this process's environment and effective uid.
    pub fn from_env() -> Self {
        Self::new(std::env::var_os("XDG_RUNTIME_DIR").as_deref(), &std::env::temp_dir(), euid())
    }

    /// The endpoint for a given `XDG_RUNTIME_DIR`, temp dir and uid. A relative or empty
    /// `XDG_RUNTIME_DIR` is ignored, as the XDG spec asks.
    pub fn new(xdg_runtime_dir: Option<&OsStr>, tmp: &Path, uid: u32) -> Self {
        let dir = match xdg_runtime_dir.map(Path::new) {
            Some(d) if d.is_absolute() => d.join("qwen-env"),
            _ => tmp.join(format!("qwen-env-{uid}")),
        };
        Self { dir }
    }

    /// The daemon's listening socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("sock")
    }

    /// Held locked by the running daemon for its whole life; holds its pid and version.
    pub fn pidfile(&self) -> PathBuf {
        self.dir.join("qwen-envd.pid")
    }

    /// Serialises clients that start the daemon.
    pub fn startup_lock(&self) -> PathBuf {
        self.dir.join("startup.lock")
    }

    /// Whether the socket path fits in `sun_path` with room to spare.
    pub fn socket_path_fits(&self) -> bool {
        self.socket().as_os_str().len() <= MAX_SOCKET_PATH
    }
}

/// The effective uid of this process (0 where there are no uids).
pub fn euid() -> u32 {
    #[cfg(unix)]
    {
        // SAFETY: geteuid has no preconditions and cannot fail.
        unsafe { libc::geteuid() }
    }
    #[cfg(not(unix))]
    {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xdg_runtime_dir_wins_when_absolute() {
        let e = Endpoint::new(Some(OsStr::new("/run/user/1000")), Path::new("/tmp"), 1000);
        assert_eq!(e.socket(), Path::new("/run/user/1000/qwen-env/sock"));
        let e = Endpoint::new(Some(OsStr::new("relative")), Path::new("/tmp"), 1000);
        assert_eq!(e.dir, Path::new("/tmp/qwen-env-1000"));
        let e = Endpoint::new(None, Path::new("/tmp"), 7);
        assert_eq!(e.pidfile(), Path::new("/tmp/qwen-env-7/qwen-envd.pid"));
        assert!(e.socket_path_fits());
        let long = format!("/{}", "x".repeat(120));
        assert!(!Endpoint::new(Some(OsStr::new(&long)), Path::new("/tmp"), 1).socket_path_fits());
    }
}

/// The per-user directories outside the runtime dir, from the XDG variables with the usual
/// `$HOME` fallbacks. Both sides use them: the daemon writes there, the client finds the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dirs {
    /// `$XDG_CONFIG_HOME/qwen-env`: `config.toml`.
    pub config: PathBuf,
    /// `$XDG_DATA_HOME/qwen-env`: key metadata (never values).
    pub data: PathBuf,
    /// `$XDG_STATE_HOME/qwen-env`: the daemon's log.
    pub state: PathBuf,
}

impl Dirs {
    /// The directories for this process's environment.
    pub fn from_env() -> Self {
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
        let xdg = |var: &str, fallback: &str| match std::env::var_os(var).map(PathBuf::from) {
            Some(p) if p.is_absolute() => p.join("qwen-env"),
            _ => home.join(fallback).join("qwen-env"),
        };
        Self {
            config: xdg("XDG_CONFIG_HOME", ".config"),
            data: xdg("XDG_DATA_HOME", ".local/share"),
            state: xdg("XDG_STATE_HOME", ".local/state"),
        }
    }

    /// The daemon's log file.
    pub fn log_file(&self) -> PathBuf {
        self.state.join("qwen-envd.log")
    }

    /// qwen-env's own configuration file.
    pub fn config_file(&self) -> PathBuf {
        self.config.join("config.toml")
    }
}
