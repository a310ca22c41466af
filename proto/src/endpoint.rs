//! Where the daemon listens: the per-user runtime directory and the files in it.
//!
//! Shared by both sides so they always agree: the path arithmetic, and the one check of the
//! directory ([`check_private_dir`]) that both run before they create or open anything in it.
//! The daemon creates and checks the directory; the client checks it too, because the
//! `$TMPDIR/qwen-env-<uid>` fallback can be made by anyone who can write to `$TMPDIR` first.

use std::ffi::OsStr;
use std::fmt;
use std::io;
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

/// Why a private directory (the runtime dir) is not safe to use. Each message says what to do.
#[derive(Debug)]
pub enum DirError {
    /// It could not be created or examined.
    Create {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// It is a symlink (which may lead anywhere, someone else's directory included).
    Symlink {
        /// The directory.
        path: PathBuf,
    },
    /// It belongs to another user, who can read and replace what is in it.
    ForeignOwner {
        /// The directory.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// Our effective uid.
        me: u32,
    },
    /// Group or others have some access to it.
    Permissive {
        /// The directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// It is not a directory.
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
}

impl fmt::Display for DirError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DirError::Create { path, source } => {
                write!(f, "failed to create directory at {}: {source}", path.display())
            }
            DirError::Symlink { path } => write!(
                f,
                "refusing to use {p}: it is a symlink; remove it (`rm {p}`) and start again",
                p = path.display()
            ),
            DirError::ForeignOwner { path, owner, me } => write!(
                f,
                "refusing to use {}: it is owned by uid {owner}, not by you (uid {me}); remove it or \
                 point XDG_RUNTIME_DIR at a directory of your own",
                path.display()
            ),
            DirError::Permissive { path, mode } => write!(
                f,
                "refusing to use {p}: its mode {mode:o} lets group or others in; run `chmod 700 {p}`",
                p = path.display()
            ),
            DirError::NotADirectory { path } => write!(
                f,
                "refusing to use {}: it is not a directory; remove it or point XDG_RUNTIME_DIR at \
                 a directory of your own",
                path.display()
            ),
        }
    }
}

impl std::error::Error for DirError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DirError::Create { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Checks an existing directory without following a symlink: it must be a directory, owned by
/// our effective uid, with no access for group or others. An unsafe directory is refused, never
/// repaired: someone else may be waiting on the other side of it.
pub fn check_private_dir(dir: &Path) -> Result<(), DirError> {
    let meta = std::fs::symlink_metadata(dir)
        .map_err(|source| DirError::Create { path: dir.to_owned(), source })?;
    if meta.file_type().is_symlink() {
        return Err(DirError::Symlink { path: dir.to_owned() });
    }
    if !meta.is_dir() {
        return Err(DirError::NotADirectory { path: dir.to_owned() });
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let me = euid();
        if meta.uid() != me {
            return Err(DirError::ForeignOwner { path: dir.to_owned(), owner: meta.uid(), me });
        }
        let mode = meta.mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(DirError::Permissive { path: dir.to_owned(), mode });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn private_dir_rules() {
        use std::os::unix::fs::PermissionsExt;
        let base = std::env::temp_dir().join(format!("qe-proto-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let dir = base.join("rt");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(check_private_dir(&dir).is_ok());
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o750)).unwrap();
        let e = check_private_dir(&dir).unwrap_err();
        assert!(e.to_string().contains("chmod 700"), "{e}");
        let link = base.join("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        assert!(matches!(check_private_dir(&link), Err(DirError::Symlink { .. })));
        let file = base.join("file");
        std::fs::write(&file, "").unwrap();
        assert!(matches!(check_private_dir(&file), Err(DirError::NotADirectory { .. })));
        assert!(matches!(check_private_dir(&base.join("none")), Err(DirError::Create { .. })));
        std::fs::remove_dir_all(&base).unwrap();
    }

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
