//! The daemon's directories: create them with private modes and refuse unsafe ones.

use std::fs::DirBuilder;
use std::path::Path;

/// Why a directory is not safe to use: the rules are shared with the client (proto).
pub use qwen_env_proto::endpoint::{DirError, check_private_dir};

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
