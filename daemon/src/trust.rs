//! `qwen-env trust`: the project files the user vouched for, by content hash.
//!
//! As direnv's `allow` and mise's `trust`: trusting a directory records the SHA-256 of each of
//! its own files that can steer a key (workspace settings, the project's `.env`); the trust holds
//! while every one of them still has that content, and lapses the moment one changes. The record
//! is `$XDG_DATA_HOME/qwen-env/trust.json` (0600, written atomically); it holds paths and hashes,
//! never a value from the files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use qwen_env_proto::TrustEntry;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A project file larger than this is never trusted (nor read to be hashed).
const MAX_FILE: u64 = qwen_env_resolve::fsread::JSON_CAP;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    sha256: String,
    at: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct TrustFile {
    version: u32,
    files: BTreeMap<PathBuf, Record>,
}

/// The trust records.
pub struct Trust {
    path: PathBuf,
    file: Mutex<TrustFile>,
    /// Bumped on every change to the records (assessments remembered by
    /// [`crate::memo::Memo`] name the generation they saw).
    generation: AtomicU64,
}

impl Trust {
    /// Loads the records from `data_dir` (a file that does not parse trusts nothing, and is kept
    /// aside for the user to look at).
    pub fn open(data_dir: &Path, namespace: Option<&str>) -> Self {
        let name = match namespace.filter(|n| !n.is_empty()) {
            Some(ns) => format!("trust.{ns}.json"),
            None => "trust.json".to_owned(),
        };
        let path = data_dir.join(name);
        let file = match std::fs::read(&path) {
            Err(_) => TrustFile { version: 1, ..TrustFile::default() },
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                let aside = path.with_extension("json.corrupted");
                let _ = std::fs::rename(&path, &aside);
                tracing::warn!(path = %path.display(), cause = %e, moved_to = %aside.display(),
                    "trust records do not parse; nothing is trusted until `qwen-env trust` again");
                TrustFile { version: 1, ..TrustFile::default() }
            }),
        };
        Self { path, file: Mutex::new(file), generation: AtomicU64::new(0) }
    }

    /// Whether every one of `files` is trusted with its current content.
    pub fn covers(&self, files: &[PathBuf]) -> bool {
        if files.is_empty() {
            return true;
        }
        let recorded: Vec<Option<String>> = {
            let file = self.file.lock().expect("trust lock");
            files.iter().map(|f| file.files.get(f).map(|r| r.sha256.clone())).collect()
        };
        if recorded.iter().any(Option::is_none) {
            return false;
        }
        files.iter().zip(recorded).all(|(f, r)| hash(f).is_some_and(|h| Some(h) == r))
    }

    /// Trusts `files` as they are now; returns what was recorded.
    pub fn grant(&self, files: &[PathBuf], now: u64) -> std::io::Result<Vec<TrustEntry>> {
        let hashed: Vec<(PathBuf, String)> = files
            .iter()
            .map(|f| {
                hash(f).map(|h| (f.clone(), h)).ok_or_else(|| {
                    std::io::Error::other(format!(
                        "cannot read {} (not a regular file, unreadable, or over {} MiB)",
                        f.display(),
                        MAX_FILE >> 20
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        let mut file = self.file.lock().expect("trust lock");
        for (path, sha256) in &hashed {
            file.files.insert(path.clone(), Record { sha256: sha256.clone(), at: now });
        }
        self.save(&file)?;
        Ok(hashed.into_iter().map(|(p, h)| entry(&p, &h, now, true)).collect())
    }

    /// Forgets every record for a file in or below `dir`; returns what was forgotten.
    pub fn revoke(&self, dir: &Path) -> std::io::Result<Vec<TrustEntry>> {
        let mut file = self.file.lock().expect("trust lock");
        let gone: Vec<(PathBuf, Record)> = file
            .files
            .iter()
            .filter(|(p, _)| p.starts_with(dir))
            .map(|(p, r)| (p.clone(), r.clone()))
            .collect();
        for (p, _) in &gone {
            file.files.remove(p);
        }
        self.save(&file)?;
        Ok(gone.iter().map(|(p, r)| entry(p, &r.sha256, r.at, false)).collect())
    }

    /// Every record, with whether the file still has the trusted content.
    pub fn list(&self) -> Vec<TrustEntry> {
        let records: Vec<(PathBuf, Record)> = {
            let file = self.file.lock().expect("trust lock");
            file.files.iter().map(|(p, r)| (p.clone(), r.clone())).collect()
        };
        records
            .iter()
            .map(|(p, r)| entry(p, &r.sha256, r.at, hash(p).as_deref() == Some(&r.sha256)))
            .collect()
    }

    /// Changes so far: equal generations mean equal records.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn save(&self, file: &TrustFile) -> std::io::Result<()> {
        // The records in memory have changed already, whether or not the file is written.
        self.generation.fetch_add(1, Ordering::AcqRel);
        let bytes = serde_json::to_vec_pretty(file).map_err(std::io::Error::other)?;
        crate::paths::write_private(&self.path, &bytes)
    }
}

fn entry(path: &Path, sha256: &str, at: u64, current: bool) -> TrustEntry {
    TrustEntry {
        path: path.display().to_string(),
        fingerprint: format!("sha256:{}", &sha256[..12.min(sha256.len())]),
        at,
        current,
    }
}

/// The SHA-256 of a regular file's content (hex), read without blocking on a FIFO or device
/// and only up to [`MAX_FILE`].
fn hash(path: &Path) -> Option<String> {
    let (bytes, _) = qwen_env_resolve::fsread::read_regular(path, MAX_FILE).ok()?;
    Some(hex::encode(Sha256::digest(&bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_holds_until_the_content_changes_and_can_be_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let proj = dir.path().join("proj");
        std::fs::create_dir_all(proj.join(".qwen")).unwrap();
        let settings = proj.join(".qwen/settings.json");
        let env = proj.join(".env");
        std::fs::write(&settings, "{}").unwrap();
        std::fs::write(&env, "OPENAI_BASE_URL=http://127.0.0.1:9/v1\n").unwrap();
        let files = vec![settings.clone(), env.clone()];
        let trust = Trust::open(&dir.path().join("data"), Some("t"));
        assert!(!trust.covers(&files));
        assert_eq!(trust.grant(&files, 7).unwrap().len(), 2);
        assert!(trust.covers(&files));
        // Kept across a restart, 0600.
        let again = Trust::open(&dir.path().join("data"), Some("t"));
        assert!(again.covers(&files));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("data/trust.t.json")).unwrap();
            assert_eq!(mode.permissions().mode() & 0o777, 0o600);
        }
        std::fs::write(&env, "OPENAI_BASE_URL=http://127.0.0.1:10/v1\n").unwrap();
        assert!(!again.covers(&files), "an edit lapses the trust");
        assert!(again.list().iter().any(|e| !e.current));
        assert_eq!(again.revoke(&proj).unwrap().len(), 2);
        assert!(again.list().is_empty());
    }

    #[test]
    fn a_fifo_is_never_trusted_nor_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join(".env");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo with a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let trust = Trust::open(dir.path(), None);
        assert!(trust.grant(std::slice::from_ref(&fifo), 1).is_err());
        assert!(!trust.covers(&[fifo]));
    }
}
