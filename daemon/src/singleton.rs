//! Single instance: a pidfile held locked for the daemon's life.
//!
//! Liveness is the lock, never the pid: a crashed daemon's lock is released by the kernel, while
//! its pid may already belong to someone else. The file is never deleted, so two daemons can never
//! lock two different inodes of the same path.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::Path;

use anyhow::Context;

/// The held lock. Dropping it releases the lock.
pub struct PidfileGuard {
    _file: File,
}

/// Outcome of [`PidfileGuard::acquire`].
pub enum Acquired {
    /// We are the daemon.
    Mine(PidfileGuard),
    /// Another daemon holds it; `holder` is what it wrote ("<pid> <version>").
    Taken { holder: String },
}

impl PidfileGuard {
    /// Tries to take the lock without waiting.
    pub fn acquire(path: &Path) -> anyhow::Result<Acquired> {
        let mut opts = OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(false);
        // Never through a symlink, never blocking on a FIFO: the file must be a regular one.
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC);
        }
        let mut file = opts.open(path).with_context(|| {
            format!(
                "failed to open pidfile {p}; remove it (`rm {p}`) and start again",
                p = path.display()
            )
        })?;
        if !file.metadata().is_ok_and(|m| m.is_file()) {
            anyhow::bail!(
                "pidfile {p} is not a regular file; remove it (`rm {p}`) and start again",
                p = path.display()
            );
        }
        match file.try_lock() {
            Ok(()) => {
                file.set_len(0)?;
                file.rewind()?;
                writeln!(file, "{} {}", std::process::id(), qwen_env_proto::VERSION)?;
                file.flush()?;
                Ok(Acquired::Mine(Self { _file: file }))
            }
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                Ok(Acquired::Taken { holder: holder.trim().to_owned() })
            }
            Err(TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("failed to lock pidfile {}", path.display()))
            }
        }
    }
}
