//! OpenClaw's auth-profile stores, read-only from SQLite (HOST_TOOLS.md section 6 "Auth store"
//! and the corrections; schema checked against OpenClaw 2026.9.6's own `paste-api-key` and
//! `onboard`):
//!
//! - shared: `<state>/state/openclaw.sqlite`, table `config_machine_state`, rows
//!   `authProfiles.store` (profiles) and `authProfiles.state` (order, usage) in `value_json`;
//! - per agent: `<state>/agents/main/agent/openclaw-agent.sqlite`, tables `auth_profile_store`
//!   (`store_json`) and `auth_profile_state` (`state_json`), row `primary`. Its profiles override
//!   the shared ones with the same id (`mergeAuthProfileStores`).
//!
//! This is I/O (like [`crate::cache`]): the database is opened with `SQLITE_OPEN_READ_ONLY`, so
//! it can be read while OpenClaw has it open in WAL mode, and never written. Before SQLite sees
//! the path, the file and its `-wal`/`-shm` companions must be regular files (a FIFO there
//! would block the open) under [`DB_CAP`]; anything else becomes a finding.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use qwen_env_proto::{Finding, Severity};
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use serde_json::Value as J;

use crate::display::finding;
use crate::fsread;

/// The largest database that is opened (SQLite reads pages on demand; this only bounds what
/// a planted file can make us scan).
pub const DB_CAP: u64 = 1 << 30;

/// One stored profile. Never `Debug`-printed with its secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Profile {
    /// `qwen:default`.
    pub id: String,
    /// Normalised (lower-case) provider id.
    pub provider: String,
    /// `api_key`, `token` or `oauth`.
    pub kind: String,
    /// The key (`key`/`apiKey`, or `token` for a token profile).
    pub secret: Option<String>,
    /// A `keyRef`/`tokenRef` SecretRef `(source, id)` instead of a literal.
    pub secret_ref: Option<(String, String)>,
    /// Which database it came from (shown as its location).
    pub db: PathBuf,
    /// `config_machine_state row authProfiles.store` or `auth_profile_store row primary`.
    pub row: &'static str,
}

impl std::fmt::Debug for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profile")
            .field("id", &self.id)
            .field("provider", &self.provider)
            .field("kind", &self.kind)
            .field("has_secret", &self.secret.is_some())
            .field("secret_ref", &self.secret_ref)
            .finish_non_exhaustive()
    }
}

/// The merged store (shared, then the agent's overriding by id).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileStore {
    /// Profiles in store order.
    pub profiles: Vec<Profile>,
    /// `order` per provider (state rows, the agent's winning per provider).
    pub order: BTreeMap<String, Vec<String>>,
    /// `usageStats.<id>.lastUsed` (ms).
    pub last_used: BTreeMap<String, u64>,
    /// The databases that were read.
    pub read: Vec<PathBuf>,
}

impl ProfileStore {
    /// The profile with this exact id.
    pub fn get(&self, id: &str) -> Option<&Profile> {
        self.profiles.iter().find(|p| p.id == id)
    }
}

/// One database's rows.
struct Rows {
    store: Option<String>,
    state: Option<String>,
}

/// Whether `p` (if it exists) is a regular file under the cap; `Err` is the finding.
fn check_file(p: &Path) -> Result<bool, Box<Finding>> {
    let Ok(meta) = std::fs::metadata(p) else { return Ok(false) };
    if !meta.is_file() {
        return Err(Box::new(finding(
            "file-not-regular",
            Severity::Warning,
            format!(
                "{} is a {}, not a regular file: qwen-env did not open the OpenClaw auth store \
                 (a FIFO or device can block a reader for ever), so stored profiles are left out",
                p.display(),
                fsread::kind_name(&meta)
            ),
            format!("remove it (`rm {}`); OpenClaw recreates its database", p.display()),
            Some(p.display().to_string()),
        )));
    }
    if meta.len() > DB_CAP {
        return Err(Box::new(finding(
            "file-too-large",
            Severity::Warning,
            format!(
                "{} is {}, over qwen-env's {} limit for OpenClaw's database: not read, so stored \
                 profiles are left out",
                p.display(),
                fsread::human(meta.len()),
                fsread::human(DB_CAP)
            ),
            "check what wrote it; `openclaw doctor` can compact OpenClaw's state".into(),
            Some(p.display().to_string()),
        )));
    }
    Ok(true)
}

fn read_rows(db: &Path, shared: bool) -> Result<Option<Rows>, Box<Finding>> {
    if !check_file(db)? {
        return Ok(None);
    }
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut s = db.as_os_str().to_owned();
        s.push(suffix);
        check_file(Path::new(&s))?;
    }
    let unreadable = |e: rusqlite::Error| {
        Box::new(finding(
            "openclaw-store-unreadable",
            Severity::Warning,
            format!(
                "{} could not be read as OpenClaw's auth store ({e}): stored profiles, which \
                 beat env keys, are left out",
                db.display()
            ),
            "check it with: openclaw models auth list (and openclaw doctor --fix if it fails)"
                .into(),
            Some(db.display().to_string()),
        ))
    };
    let conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(unreadable)?;
    conn.busy_timeout(Duration::from_millis(500)).map_err(unreadable)?;
    let (table, key_col, val_col, store_key, state_key) = if shared {
        (
            "config_machine_state",
            "state_key",
            "value_json",
            "authProfiles.store",
            "authProfiles.state",
        )
    } else {
        ("auth_profile_store", "store_key", "store_json", "primary", "primary")
    };
    let has = |t: &str| -> Result<bool, rusqlite::Error> {
        conn.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type='table' AND name=?1",
            [t],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n > 0)
    };
    let cell = |t: &str, k: &str, v: &str, key: &str| -> Result<Option<String>, rusqlite::Error> {
        if !has(t)? {
            return Ok(None);
        }
        conn.query_row(&format!("SELECT {v} FROM {t} WHERE {k} = ?1"), [key], |r| r.get(0))
            .optional()
    };
    let store = cell(table, key_col, val_col, store_key).map_err(unreadable)?;
    let state = if shared {
        cell(table, key_col, val_col, state_key)
    } else {
        cell("auth_profile_state", "state_key", "state_json", state_key)
    }
    .map_err(unreadable)?;
    Ok(Some(Rows { store, state }))
}

fn secret_ref(v: Option<&J>) -> Option<(String, String)> {
    let o = v?.as_object()?;
    Some((o.get("source")?.as_str()?.to_owned(), o.get("id")?.as_str()?.to_owned()))
}

/// `parseCredentialEntry`: `mode` aliases `type`, `apiKey` is `api_key`, `apiKey` spells `key`;
/// entries without a provider or with an unknown type are dropped.
fn coerce(id: &str, v: &J, db: &Path, row: &'static str) -> Option<Profile> {
    let o = v.as_object()?;
    let mut kind = o.get("type").or_else(|| o.get("mode")).and_then(J::as_str)?.to_owned();
    if kind == "apiKey" {
        kind = "api_key".into();
    }
    if !matches!(kind.as_str(), "api_key" | "token" | "oauth") {
        return None;
    }
    let provider = o.get("provider").and_then(J::as_str)?.trim().to_ascii_lowercase();
    if provider.is_empty() {
        return None;
    }
    let (val, rf) = if kind == "token" { ("token", "tokenRef") } else { ("key", "keyRef") };
    let secret_ref = secret_ref(o.get(rf));
    let secret = if secret_ref.is_some() {
        None
    } else {
        o.get(val)
            .or_else(|| if kind == "api_key" { o.get("apiKey") } else { None })
            .and_then(J::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    Some(Profile {
        id: id.to_owned(),
        provider,
        kind,
        secret,
        secret_ref,
        db: db.to_path_buf(),
        row,
    })
}

fn merge(out: &mut ProfileStore, rows: &Rows, db: &Path, row: &'static str, f: &mut Vec<Finding>) {
    let parse = |s: &str| serde_json::from_str::<J>(s).ok();
    if let Some(s) = rows.store.as_deref() {
        match parse(s).as_ref().and_then(|j| j.get("profiles")).and_then(J::as_object) {
            Some(map) => {
                for (id, v) in map {
                    if let Some(p) = coerce(id, v, db, row) {
                        match out.profiles.iter_mut().find(|q| q.id == *id) {
                            Some(q) => *q = p,
                            None => out.profiles.push(p),
                        }
                    }
                }
            }
            None => f.push(finding(
                "openclaw-store-unreadable",
                Severity::Warning,
                format!("{} {row} is not a profile store OpenClaw can read (OpenClaw fails closed: \"Auth profile store … is unreadable\")", db.display()),
                "run: openclaw doctor --fix".into(),
                Some(db.display().to_string()),
            )),
        }
    }
    if let Some(state) = rows.state.as_deref().and_then(parse) {
        if let Some(order) = state.get("order").and_then(J::as_object) {
            for (prov, ids) in order {
                let ids: Vec<String> = ids
                    .as_array()
                    .map(|a| a.iter().filter_map(J::as_str).map(str::to_owned).collect())
                    .unwrap_or_default();
                if !ids.is_empty() {
                    out.order.insert(prov.to_ascii_lowercase(), ids);
                }
            }
        }
        if let Some(stats) = state.get("usageStats").and_then(J::as_object) {
            for (id, s) in stats {
                if let Some(t) = s.get("lastUsed").and_then(J::as_u64) {
                    out.last_used.insert(id.clone(), t);
                }
            }
        }
    }
    out.read.push(db.to_path_buf());
}

/// Read both stores. Missing databases or rows are simply empty.
pub fn load(shared_db: &Path, agent_db: &Path) -> (Option<ProfileStore>, Vec<Finding>) {
    let mut findings = Vec::new();
    let mut out = ProfileStore::default();
    let mut any = false;
    for (db, shared, row) in [
        (shared_db, true, "config_machine_state row authProfiles.store"),
        (agent_db, false, "auth_profile_store row primary"),
    ] {
        match read_rows(db, shared) {
            Ok(Some(rows)) => {
                any = true;
                merge(&mut out, &rows, db, row, &mut findings);
            }
            Ok(None) => {}
            Err(f) => findings.push(*f),
        }
    }
    (any.then_some(out), findings)
}

/// What the cache compares to decide whether to read the databases again: (len, mtime, inode)
/// of each database and its `-wal` file.
pub fn stamp(paths: &[PathBuf]) -> Vec<Option<(u64, u128, u64)>> {
    paths
        .iter()
        .map(|p| {
            let m = std::fs::metadata(p).ok()?;
            let mt = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            #[cfg(unix)]
            let ino = std::os::unix::fs::MetadataExt::ino(&m);
            #[cfg(not(unix))]
            let ino = 0;
            Some((m.len(), mt, ino))
        })
        .collect()
}

/// The `-wal` companion of a database.
pub fn wal(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push("-wal");
    PathBuf::from(s)
}

/// The literal keys of the stored profiles, as the secrets scanner reports them (`key import`
/// takes them; it never writes the database).
pub fn hits(store: &ProfileStore) -> Vec<crate::secrets::Hit> {
    store
        .profiles
        .iter()
        .filter_map(|p| {
            let secret = p.secret.as_ref()?;
            let label: std::sync::Arc<str> =
                std::sync::Arc::from(format!("{} {}", p.db.display(), p.row).as_str());
            Some(crate::secrets::Hit {
                name: crate::secrets::provider_var(&p.provider),
                value: qwen_env_proto::SecretValue::new(secret.clone()),
                file: p.db.clone(),
                label: label.clone(),
                mode: None,
                kind: crate::secrets::FileKind::OpenClawStore,
                place: crate::secrets::Place::Member {
                    path: format!("profile {}", p.id),
                    loc: crate::jsonc::Loc { file: label, line: 0, col: 0 },
                },
            })
        })
        .collect()
}
