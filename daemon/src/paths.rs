//! The daemon's directories: create them with private modes and refuse unsafe ones.

use std::fs::DirBuilder;
use std::io;
use std::path::Path;

/// Why a directory is not safe to use: the rules are shared with the client (proto).
pub use qwen_env_proto::endpoint::{DirError, check_private_dir};

/// Replaces `path` with `bytes` atomically: a new 0600 file beside it (created exclusively, so a
/// planted file or symlink is never written through), fsynced, renamed over it, and the
/// directory fsynced. The directory is created 0700 if missing.
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    create_private_dir(dir).map_err(io::Error::other)?;
    let name = path.file_name().map_or_else(|| "file".into(), |n| n.to_string_lossy());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    // A leftover of ours from a crash; `create_new` below refuses anything else.
    let _ = std::fs::remove_file(&tmp);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut file = opts.open(&tmp)?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    let renamed = written.and_then(|()| std::fs::rename(&tmp, path));
    if renamed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    renamed?;
    std::fs::File::open(dir).and_then(|d| d.sync_all())
}

/// Creates `dir` (and missing parents) with mode 0700.
pub fn create_private_dir(dir: &Path) -> Result<(), DirError> {
    let mut builder = DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|source| DirError::Create { path: dir.to_owned(), source })
}

/// Creates the runtime directory if needed, then checks it: not a symlink, owned by us, no
/// access for group or others. An unsafe directory is refused, never repaired: someone else may
/// be waiting on the other side of it.
pub fn secure_runtime_dir(dir: &Path) -> Result<(), DirError> {
    // Only the last component is ours to create; `XDG_RUNTIME_DIR` itself must already exist,
    // but the `$TMPDIR/qwen-env-<uid>` fallback may need `$TMPDIR` created in odd setups.
    create_private_dir(dir)?;
    check_private_dir(dir)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn creates_private_and_refuses_unsafe() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("rt");
        secure_runtime_dir(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);

        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o750)).unwrap();
        assert!(matches!(secure_runtime_dir(&dir), Err(DirError::Permissive { .. })));

        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        assert!(matches!(secure_runtime_dir(&link), Err(DirError::Symlink { .. })));
    }
}
