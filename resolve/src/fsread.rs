//! Reading a file that someone else may have planted: only regular files, never blocking, never
//! more than a cap.
//!
//! A cloned repository (or another user, in a shared directory) chooses what `.env` and
//! `.qwen/settings.json` are. A FIFO would block a plain `read` for ever, a symlink to
//! `/dev/zero` would grow the reader without end, and a 50 MB file costs seconds and gigabytes
//! to parse. So the file is opened non-blocking, checked with `fstat` on the opened descriptor
//! (not the path, which can be swapped in between), and read up to `cap + 1` bytes. Symlinks to
//! regular files are followed, as the host tools follow them.
//!
//! The parse cache ([`crate::SourceCache`]) and the daemon's watcher both read through
//! [`read_regular`].

use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::path::Path;

/// Cap for `.env` files: real ones are a few hundred bytes.
pub const ENV_CAP: u64 = 1024 * 1024;
/// Cap for JSON, JSONC and JSON5 files (settings, `openclaw.json`, auth profiles, trusted
/// folders): real ones are a few kilobytes.
pub const JSON_CAP: u64 = 4 * 1024 * 1024;

/// Why a file was not read.
#[derive(Debug)]
pub enum ReadError {
    /// It does not exist, or cannot be opened or read.
    Io(io::Error),
    /// It is not a regular file (a FIFO, a socket, a device or a directory).
    NotRegular(&'static str),
    /// It is larger than the cap.
    TooLarge {
        /// Its size in bytes (at least `cap + 1`).
        len: u64,
        /// The cap it exceeds.
        cap: u64,
    },
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "{e}"),
            ReadError::NotRegular(kind) => write!(f, "it is a {kind}, not a regular file"),
            ReadError::TooLarge { len, cap } => {
                write!(f, "it is {}, over the {} limit", human(*len), human(*cap))
            }
        }
    }
}

/// `1.5 MiB`, `300 KiB`, `12 bytes`.
pub fn human(n: u64) -> String {
    #[allow(clippy::cast_precision_loss)] // display only
    let f = n as f64;
    if n >= 1024 * 1024 {
        format!("{:.1} MiB", f / (1024.0 * 1024.0))
    } else if n >= 1024 {
        format!("{:.0} KiB", f / 1024.0)
    } else {
        format!("{n} bytes")
    }
}

/// What kind of non-regular file `meta` describes, for messages.
pub fn kind_name(meta: &Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        return "directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "FIFO (named pipe)";
        }
        if t.is_socket() {
            return "socket";
        }
        if t.is_char_device() {
            return "character device";
        }
        if t.is_block_device() {
            return "block device";
        }
    }
    "special file"
}

/// Opens `path` for reading without blocking (a FIFO with no writer opens at once) and without
/// making a terminal our controlling one; symlinks are followed.
fn open_nonblocking(path: &Path) -> io::Result<File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut opts, libc::O_NONBLOCK | libc::O_NOCTTY);
    opts.open(path)
}

/// Reads the whole of `path` if it is a regular file of at most `cap` bytes, and returns its
/// bytes with the metadata of the descriptor that was read.
pub fn read_regular(path: &Path, cap: u64) -> Result<(Vec<u8>, Metadata), ReadError> {
    let file = open_nonblocking(path).map_err(ReadError::Io)?;
    let meta = file.metadata().map_err(ReadError::Io)?;
    if !meta.is_file() {
        return Err(ReadError::NotRegular(kind_name(&meta)));
    }
    if meta.len() > cap {
        return Err(ReadError::TooLarge { len: meta.len(), cap });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    // The file may grow between fstat and read: never take more than one byte past the cap.
    file.take(cap + 1).read_to_end(&mut bytes).map_err(ReadError::Io)?;
    let got = bytes.len() as u64;
    if got > cap {
        return Err(ReadError::TooLarge { len: got.max(meta.len()), cap });
    }
    Ok((bytes, meta))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn regular_files_and_symlinks_to_them_are_read() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("a");
        std::fs::write(&f, "X=1\n").unwrap();
        let l = t.path().join("l");
        std::os::unix::fs::symlink(&f, &l).unwrap();
        assert_eq!(read_regular(&f, 100).unwrap().0, b"X=1\n");
        assert_eq!(read_regular(&l, 100).unwrap().0, b"X=1\n");
        assert!(matches!(read_regular(&f, 3), Err(ReadError::TooLarge { len: 4, cap: 3 })));
        assert!(matches!(read_regular(&t.path().join("none"), 3), Err(ReadError::Io(_))));
    }

    #[test]
    fn fifos_devices_and_directories_are_refused_without_blocking() {
        let t = tempfile::tempdir().unwrap();
        let fifo = t.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = read_regular(&fifo, 100).unwrap_err();
        assert!(e.to_string().contains("FIFO"), "{e}");
        let zero = t.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        assert!(matches!(read_regular(&zero, 100), Err(ReadError::NotRegular("character device"))));
        assert!(matches!(read_regular(t.path(), 100), Err(ReadError::NotRegular("directory"))));
    }
}
