//! Reading and parsing source files, cached: a file is re-read only when its (len, mtime, inode)
//! changed and re-parsed only when its content hash changed, so a warm resolve costs a few
//! `stat` calls (DESIGN.md section 9: editors and Qwen Code rewrite files by rename).
//! Only regular files up to a cap are read ([`crate::fsread`]); any other file found where a
//! source should be becomes a `file-not-regular` or `file-too-large` finding.
//!
//! This module and [`crate::Sources`] are the only I/O in the crate.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::UNIX_EPOCH;

use qwen_env_proto::{CallerContext, Finding, Severity};
use sha2::{Digest, Sha256};

use crate::dotenv;
use crate::fsread::{self, ReadError};
use crate::jsonc::{self, Node, ParseError};
use crate::openclaw::include::{self, Loader};
use crate::openclaw::store::{self, ProfileStore};
use crate::sources::{
    EnvFile, Host, JsonFile, OpenClawSources, QwenSources, SettingsFile, Sources,
    default_system_settings_path, env_get, expand_path,
};

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Settings,
    Env,
    Json5,
}

impl Kind {
    /// The largest file of this kind that is read.
    fn cap(self) -> u64 {
        match self {
            Kind::Env => fsread::ENV_CAP,
            Kind::Settings | Kind::Json5 => fsread::JSON_CAP,
        }
    }

    fn what(self) -> &'static str {
        match self {
            Kind::Env => ".env",
            Kind::Settings => "settings",
            Kind::Json5 => "JSON",
        }
    }
}

#[derive(Clone)]
enum Parsed {
    Settings(Arc<SettingsFile>),
    Env(Arc<EnvFile>),
    Json(Arc<JsonFile>),
}

/// One cached read of OpenClaw's profile stores.
type OcStore = (Vec<Option<(u64, u128, u64)>>, Option<ProfileStore>, Vec<Finding>);

#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    mtime_ns: u128,
    ino: u64,
    mode: Option<u32>,
}

struct Slot {
    stamp: Stamp,
    /// When the bytes behind `hash` were read (Unix ns): see [`Slot::settled`].
    read_at: u128,
    hash: [u8; 32],
    parsed: Parsed,
    /// What the slot counts against the budget: the file's size plus a fixed overhead.
    weight: u64,
    /// The [`Lru::tick`] of the last use.
    used: u64,
}

/// What the cache counts per entry on top of the file's bytes (path, stamp, `Arc`s).
const SLOT_OVERHEAD: u64 = 512;

/// How many bytes of source files the cache keeps parsed by default. The parsed form is a
/// small multiple of the text; 16 MiB holds thousands of real settings and `.env` files.
pub const DEFAULT_BUDGET: u64 = 16 * 1024 * 1024;

#[derive(Default)]
struct Lru {
    files: HashMap<(PathBuf, Kind), Slot>,
    /// Sum of the slots' weights.
    bytes: u64,
    /// Bumped on every use; the slot with the smallest `used` is evicted first.
    tick: u64,
}

impl Lru {
    fn touch(&mut self, key: &(PathBuf, Kind)) -> Option<&mut Slot> {
        self.tick += 1;
        let tick = self.tick;
        let slot = self.files.get_mut(key)?;
        slot.used = tick;
        Some(slot)
    }

    fn insert(&mut self, key: (PathBuf, Kind), mut slot: Slot, budget: u64) {
        self.tick += 1;
        slot.used = self.tick;
        if let Some(old) = self.files.remove(&key) {
            self.bytes -= old.weight;
        }
        if slot.weight > budget {
            return;
        }
        while self.bytes + slot.weight > budget {
            let Some(oldest) =
                self.files.iter().min_by_key(|(_, s)| s.used).map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(gone) = self.files.remove(&oldest) {
                self.bytes -= gone.weight;
            }
        }
        self.bytes += slot.weight;
        self.files.insert(key, slot);
    }
}

/// Parsed files by path, reused across loads, bounded in bytes (least recently used evicted).
///
/// It locks itself, and only around map lookups and inserts: files are stat'ed, read and
/// parsed with no lock held, so one slow or hostile file never holds up another caller.
pub struct SourceCache {
    lru: Mutex<Lru>,
    /// OpenClaw's profile stores by (shared, agent) database, with the stamps they were read at.
    oc_stores: Mutex<HashMap<(PathBuf, PathBuf), OcStore>>,
    budget: u64,
    /// How many files were parsed (not just stat'ed) since creation.
    parses: AtomicU64,
}

impl Default for SourceCache {
    fn default() -> Self {
        Self::with_budget(DEFAULT_BUDGET)
    }
}

impl std::fmt::Debug for SourceCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lru = self.lock();
        f.debug_struct("SourceCache")
            .field("files", &lru.files.len())
            .field("bytes", &lru.bytes)
            .finish_non_exhaustive()
    }
}

/// How long after a file's mtime a rewrite can still leave the same mtime: the kernel stamps
/// files from a coarse clock (one tick, at most 10 ms), file systems with whole-second times
/// round to up to 2 s.
fn racy_window(mtime_ns: u128) -> u128 {
    if mtime_ns.is_multiple_of(1_000_000_000) { 2_000_000_000 } else { 20_000_000 }
}

fn now_ns() -> u128 {
    std::time::SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

impl Slot {
    /// Whether an unchanged stamp proves unchanged content. A file written in the same clock
    /// tick as our read can change again without its size or mtime changing ("racily clean",
    /// as git calls it), so a stamp counts only once the read came well after the mtime.
    fn settled(&self, st: &Stamp) -> bool {
        self.stamp == *st && st.mtime_ns + racy_window(st.mtime_ns) < self.read_at
    }
}

fn stamp(meta: &std::fs::Metadata) -> Stamp {
    let mtime_ns = meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok());
    #[cfg(unix)]
    let (ino, mode) = {
        use std::os::unix::fs::MetadataExt;
        (meta.ino(), Some(meta.mode() & 0o7777))
    };
    #[cfg(not(unix))]
    let (ino, mode) = (0, None);
    Stamp { len: meta.len(), mtime_ns: mtime_ns.map_or(0, |d| d.as_nanos()), ino, mode }
}

fn label(p: &Path) -> Arc<str> {
    Arc::from(p.to_string_lossy().as_ref())
}

/// A JSON5 error as `what at line L column C`. The parser's own message quotes the offending
/// source line, which can hold a literal key: it must never reach a finding.
fn json5_error(e: &json5::Error) -> ParseError {
    let json5::Error::Message { msg, location } = e;
    match location {
        Some(l) => {
            let what = msg
                .lines()
                .rev()
                .find_map(|line| line.trim_start().strip_prefix("= "))
                .unwrap_or("syntax error");
            let n = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
            ParseError { message: what.to_owned(), line: n(l.line), col: n(l.column) }
        }
        None => ParseError {
            message: msg.lines().next().unwrap_or("syntax error").to_owned(),
            line: 0,
            col: 0,
        },
    }
}

/// Parses JSON5 (OpenClaw's syntax) into a [`Node`] whose locations name `label`, with line and
/// column ([`crate::json5loc`]). The error says what and where, never quoting the source.
pub fn parse_json5(text: &str, label: &Arc<str>) -> Result<Node, ParseError> {
    json5::from_str::<Node>(text)
        .map(|mut n| {
            n.set_file(label);
            crate::json5loc::locate(&mut n, text);
            n
        })
        .map_err(|e| json5_error(&e))
}

/// Parses an OpenClaw file: as JSONC first, so that plain JSON (what OpenClaw's own commands
/// write) keeps line and column for findings, then as JSON5 with JSON5's error.
pub fn parse_openclaw(text: &str, label: &Arc<str>) -> Result<Node, ParseError> {
    jsonc::parse(text, label).or_else(|_| parse_json5(text, label))
}

/// Parses a file that may be either tool's: JSONC as Qwen Code reads settings, and when that
/// fails JSON5 as OpenClaw reads its files. On failure the JSONC error (`what at line L
/// column C`), which never quotes the source.
pub fn parse_jsonc_or_json5(text: &str, label: &Arc<str>) -> Result<Node, String> {
    jsonc::parse(text, label).or_else(|e| parse_json5(text, label).map_err(|_| e.to_string()))
}

/// A file that was found but not read, as a finding.
fn not_read(path: &Path, kind: Kind, why: &ReadError) -> Option<Finding> {
    let p = path.display();
    let (code, message, fix) = match why {
        ReadError::Io(_) => return None,
        ReadError::NotRegular(what) => (
            "file-not-regular",
            format!(
                "{p} is a {what}, not a regular file: qwen-env did not read it (a FIFO or a \
                 device can block a reader for ever or never end), so what it shows leaves it out"
            ),
            format!(
                "remove it (`rm {p}`) or replace it with a regular file; if you did not make it, \
                 someone who can write to {} planted it: check that directory",
                path.parent().unwrap_or(Path::new("/")).display()
            ),
        ),
        ReadError::TooLarge { len, cap } => (
            "file-too-large",
            format!(
                "{p} is {}, over qwen-env's {} limit for {} files: it was not read, so what \
                 qwen-env shows leaves it out",
                fsread::human(*len),
                fsread::human(*cap),
                kind.what()
            ),
            format!(
                "a real {} file is a few kilobytes: look at what wrote {p}, then shrink it below \
                 {} or remove it",
                kind.what(),
                fsread::human(*cap)
            ),
        ),
    };
    Some(Finding {
        code: code.to_owned(),
        severity: Severity::Warning,
        message,
        fix,
        location: Some(p.to_string()),
        evidence: None,
    })
}

impl SourceCache {
    /// A cache that keeps at most about `budget` bytes of source files parsed.
    pub fn with_budget(budget: u64) -> Self {
        Self {
            lru: Mutex::default(),
            oc_stores: Mutex::default(),
            budget,
            parses: AtomicU64::new(0),
        }
    }

    /// How many files were parsed (not just stat'ed) since creation; for tests and stats.
    pub fn parses(&self) -> u64 {
        self.parses.load(Ordering::Relaxed)
    }

    /// How many bytes the cached files count against the budget.
    pub fn cached_bytes(&self) -> u64 {
        self.lock().bytes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lru> {
        // A panic while the lock was held leaves a consistent map (every update is one insert
        // or remove), so a poisoned lock is still usable.
        self.lru.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A file parsed as `kind`, or `None` when it does not exist or was not read (then a
    /// finding says why, unless it is simply absent, unreadable or a directory).
    fn get(&self, path: &Path, kind: Kind, findings: &mut Vec<Finding>) -> Option<Parsed> {
        let meta = std::fs::metadata(path).ok()?;
        if meta.is_dir() {
            // A `.env` directory (a virtualenv) is common and harmless; nothing to say.
            return None;
        }
        let early = if meta.is_file() {
            (meta.len() > kind.cap())
                .then_some(ReadError::TooLarge { len: meta.len(), cap: kind.cap() })
        } else {
            Some(ReadError::NotRegular(fsread::kind_name(&meta)))
        };
        if let Some(why) = early {
            findings.extend(not_read(path, kind, &why));
            return None;
        }
        let key = (path.to_path_buf(), kind);
        let st = stamp(&meta);
        if let Some(slot) = self.lock().touch(&key)
            && slot.settled(&st)
        {
            return Some(slot.parsed.clone());
        }
        // No lock from here until the insert: the read and the parse may take a while.
        let read_at = now_ns();
        let (bytes, meta) = match fsread::read_regular(path, kind.cap()) {
            Ok(read) => read,
            Err(why) => {
                findings.extend(not_read(path, kind, &why));
                return None;
            }
        };
        let st = stamp(&meta);
        let hash: [u8; 32] = Sha256::digest(&bytes).into();
        if let Some(slot) = self.lock().touch(&key)
            && slot.hash == hash
            && slot.stamp.mode == st.mode
        {
            slot.stamp = st;
            slot.read_at = read_at;
            return Some(slot.parsed.clone());
        }
        self.parses.fetch_add(1, Ordering::Relaxed);
        // Node reads these files as UTF-8 and replaces invalid bytes.
        let text = String::from_utf8_lossy(&bytes);
        let lbl = label(path);
        let parsed = match kind {
            Kind::Settings => Parsed::Settings(Arc::new(SettingsFile {
                path: path.to_path_buf(),
                parsed: jsonc::parse(&text, &lbl),
                label: lbl,
                mode: st.mode,
            })),
            Kind::Env => {
                let entries = dotenv::parse(&text);
                Parsed::Env(Arc::new(EnvFile {
                    path: path.to_path_buf(),
                    defined: dotenv::effective(&entries),
                    entries,
                    label: lbl,
                    mode: st.mode,
                }))
            }
            Kind::Json5 => Parsed::Json(Arc::new(JsonFile {
                path: path.to_path_buf(),
                parsed: parse_openclaw(&text, &lbl),
                label: lbl,
                mode: st.mode,
            })),
        };
        let weight = bytes.len() as u64 + SLOT_OVERHEAD;
        let slot = Slot { stamp: st, read_at, hash, parsed: parsed.clone(), weight, used: 0 };
        self.lock().insert(key, slot, self.budget);
        Some(parsed)
    }

    /// Read (or reuse) the sources for this caller. `home` is the caller's home directory.
    pub fn load(&self, caller: &CallerContext, home: &Path) -> Sources {
        let mut load = Load { cache: self, findings: Vec::new() };
        let host = Host::detect(&caller.argv);
        let cwd_given = PathBuf::from(&caller.cwd);
        let cwd = std::fs::canonicalize(&cwd_given).unwrap_or(cwd_given);
        let home_real = std::fs::canonicalize(home).unwrap_or_else(|_| home.to_path_buf());
        let cwd_is_home = cwd == home_real;
        let mut watched = Vec::new();
        let qwen = if host == Host::Qwen {
            load.qwen(caller, home, &home_real, &cwd, cwd_is_home, &mut watched)
        } else {
            QwenSources::default()
        };
        let openclaw = if host == Host::OpenClaw {
            load.openclaw(caller, home, &cwd, &mut watched)
        } else {
            OpenClawSources::default()
        };
        let findings = load.findings;
        Sources {
            host,
            home: home.to_path_buf(),
            cwd,
            cwd_is_home,
            qwen,
            openclaw,
            watched,
            findings,
        }
    }
}

/// One `load`: the cache and the findings about files that were not read.
struct Load<'c> {
    cache: &'c SourceCache,
    findings: Vec<Finding>,
}

impl Load<'_> {
    fn settings(&mut self, path: &Path) -> Option<Arc<SettingsFile>> {
        match self.cache.get(path, Kind::Settings, &mut self.findings)? {
            Parsed::Settings(s) => Some(s),
            _ => None,
        }
    }

    fn env(&mut self, path: &Path) -> Option<Arc<EnvFile>> {
        match self.cache.get(path, Kind::Env, &mut self.findings)? {
            Parsed::Env(s) => Some(s),
            _ => None,
        }
    }

    fn json5(&mut self, path: &Path) -> Option<Arc<JsonFile>> {
        match self.cache.get(path, Kind::Json5, &mut self.findings)? {
            Parsed::Json(s) => Some(s),
            _ => None,
        }
    }

    fn qwen(
        &mut self,
        caller: &CallerContext,
        home: &Path,
        home_real: &Path,
        cwd: &Path,
        cwd_is_home: bool,
        watched: &mut Vec<PathBuf>,
    ) -> QwenSources {
        let env = &caller.env;
        let default_qdir = home.join(".qwen");
        // preResolveHomeEnv: QWEN_HOME from ~/.qwen/.env, then ~/.env, when not exported.
        let mut qwen_home_from_file = None;
        let qwen_home = if let Some(v) = env_get(env, "QWEN_HOME") {
            Some(v.to_string())
        } else {
            for f in [default_qdir.join(".env"), home.join(".env")] {
                if let Some(ef) = self.env(&f)
                    && let Some(e) = ef
                        .entries
                        .iter()
                        .rev()
                        .find(|e| e.key == "QWEN_HOME" && !e.value.is_empty())
                {
                    qwen_home_from_file = Some((e.value.clone(), ef.label.clone()));
                    break;
                }
            }
            qwen_home_from_file.as_ref().map(|(v, _)| v.clone())
        };
        let qdir = qwen_home
            .as_deref()
            .map_or_else(|| default_qdir.clone(), |v| expand_path(v, home, cwd));
        let sys_path = env_get(env, "QWEN_CODE_SYSTEM_SETTINGS_PATH")
            .map_or_else(default_system_settings_path, PathBuf::from);
        let def_path = env_get(env, "QWEN_CODE_SYSTEM_DEFAULTS_PATH").map_or_else(
            || sys_path.parent().unwrap_or(Path::new("/")).join("system-defaults.json"),
            PathBuf::from,
        );
        let usr_path = qdir.join("settings.json");
        let ws_path = cwd.join(".qwen").join("settings.json");
        let trust_path = env_get(env, "QWEN_CODE_TRUSTED_FOLDERS_PATH")
            .map_or_else(|| qdir.join("trustedFolders.json"), PathBuf::from);
        watched.extend([def_path.clone(), sys_path.clone(), usr_path.clone(), trust_path.clone()]);

        // .env walk-up (HOST_TOOLS.md 2.1): first directory with .qwen/.env or .env wins, not
        // above home; cwd == home goes straight to the home files.
        let mut project_env = None;
        if !cwd_is_home {
            let mut d = cwd.to_path_buf();
            watched.push(ws_path.clone());
            loop {
                if d == home_real {
                    break;
                }
                let q = d.join(".qwen").join(".env");
                let e = d.join(".env");
                watched.push(q.clone());
                watched.push(e.clone());
                if q.exists() {
                    project_env = self.env(&q);
                    break;
                }
                if e.exists() {
                    project_env = self.env(&e);
                    break;
                }
                match d.parent() {
                    Some(p) => d = p.to_path_buf(),
                    None => break,
                }
            }
        }
        let mut home_candidates = vec![qdir.join(".env")];
        if qdir != default_qdir {
            home_candidates.push(default_qdir.join(".env"));
        }
        home_candidates.push(home.join(".env"));
        watched.extend(home_candidates.iter().cloned());
        let home_envs = home_candidates.iter().filter_map(|p| self.env(p)).collect();
        QwenSources {
            system_defaults: self.settings(&def_path),
            user: self.settings(&usr_path),
            workspace: if cwd_is_home { None } else { self.settings(&ws_path) },
            system: self.settings(&sys_path),
            trusted_folders: self.json5(&trust_path),
            trusted_folders_path: trust_path,
            qdir,
            qwen_home_from_file,
            project_env,
            home_envs,
        }
    }

    fn openclaw(
        &mut self,
        caller: &CallerContext,
        home: &Path,
        cwd: &Path,
        watched: &mut Vec<PathBuf>,
    ) -> OpenClawSources {
        let env = &caller.env;
        let oc_home =
            env_get(env, "OPENCLAW_HOME").map_or_else(|| home.to_path_buf(), PathBuf::from);
        let state_dir = env_get(env, "OPENCLAW_STATE_DIR")
            .map_or_else(|| oc_home.join(".openclaw"), |v| expand_path(v, home, cwd));
        let config_path = env_get(env, "OPENCLAW_CONFIG_PATH")
            .map_or_else(|| state_dir.join("openclaw.json"), |v| expand_path(v, home, cwd));
        let cwd_env_path = cwd.join(".env");
        let state_env_path = state_dir.join(".env");
        watched.extend([config_path.clone(), cwd_env_path.clone(), state_env_path.clone()]);
        let mut legacy = Vec::new();
        let agents = state_dir.join("agents");
        if let Ok(rd) = std::fs::read_dir(&agents) {
            let mut dirs: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
            dirs.sort();
            for d in dirs {
                let p = d.join("agent").join("auth-profiles.json");
                watched.push(p.clone());
                if let Some(f) = self.json5(&p) {
                    legacy.push(f);
                }
            }
        }
        let sqlite = state_dir.join("state").join("openclaw.sqlite");
        let agent_db = crate::openclaw::agent_db(&state_dir);
        let config = self.json5(&config_path);
        let merged = config.as_ref().and_then(|f| f.parsed.as_ref().ok()).map(|root| {
            let roots: Vec<PathBuf> = env_get(env, "OPENCLAW_INCLUDE_ROOTS")
                .map(|r| {
                    std::env::split_paths(r)
                        .map(|p| expand_path(&p.to_string_lossy(), home, cwd))
                        .collect()
                })
                .unwrap_or_default();
            if !include::uses_include(root) {
                return Ok(root.clone());
            }
            let (out, files) = include::expand(root, &config_path, &roots, self);
            watched.extend(files);
            out
        });
        for db in [&sqlite, &agent_db] {
            watched.extend([db.clone(), store::wal(db)]);
        }
        let (profiles, mut fs) = self.oc_store(&sqlite, &agent_db);
        self.findings.append(&mut fs);
        OpenClawSources {
            config,
            merged,
            cwd_env: self.env(&cwd_env_path),
            state_env: self.env(&state_env_path),
            legacy_auth_profiles: legacy,
            sqlite_store: sqlite.is_file().then_some(sqlite),
            profiles,
            state_dir,
        }
    }

    /// OpenClaw's profile stores, read again only when a database or its `-wal` changed.
    fn oc_store(&mut self, shared: &Path, agent: &Path) -> (Option<ProfileStore>, Vec<Finding>) {
        let paths =
            [shared.to_path_buf(), store::wal(shared), agent.to_path_buf(), store::wal(agent)];
        let st = store::stamp(&paths);
        let key = (shared.to_path_buf(), agent.to_path_buf());
        let cache = self.cache;
        let lock = || cache.oc_stores.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((s, p, f)) = lock().get(&key)
            && *s == st
        {
            return (p.clone(), f.clone());
        }
        if st.iter().all(Option::is_none) {
            return (None, Vec::new());
        }
        self.cache.parses.fetch_add(1, Ordering::Relaxed);
        let (p, f) = store::load(shared, agent);
        let mut map = lock();
        if map.len() > 64 {
            map.clear();
        }
        map.insert(key, (st, p.clone(), f.clone()));
        (p, f)
    }
}

impl Loader for Load<'_> {
    fn realpath(&mut self, p: &Path) -> Option<PathBuf> {
        std::fs::canonicalize(p).ok()
    }

    fn load(&mut self, p: &Path) -> Result<Node, String> {
        match self.json5(p) {
            Some(f) => f.parsed.clone().map_err(|e| e.to_string()),
            None => Err("not a readable regular file".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_stays_within_its_budget_and_evicts_the_least_recently_used() {
        let t = tempfile::tempdir().unwrap();
        let file = |i: usize| t.path().join(format!("{i}.env"));
        for i in 0..4 {
            std::fs::write(file(i), format!("K{i}={}\n", "v".repeat(1000))).unwrap();
        }
        // Room for three of the four files.
        let weight = 1004 + SLOT_OVERHEAD;
        let cache = SourceCache::with_budget(3 * weight + 10);
        let mut f = Vec::new();
        for i in 0..3 {
            assert!(cache.get(&file(i), Kind::Env, &mut f).is_some());
        }
        assert_eq!((cache.parses(), cache.cached_bytes()), (3, 3 * weight));
        // 0 is used again, so 1 is the least recently used when 3 comes in.
        cache.get(&file(0), Kind::Env, &mut f);
        cache.get(&file(3), Kind::Env, &mut f);
        assert_eq!((cache.parses(), cache.cached_bytes()), (4, 3 * weight));
        cache.get(&file(0), Kind::Env, &mut f);
        cache.get(&file(2), Kind::Env, &mut f);
        assert_eq!(cache.parses(), 4, "0 and 2 stayed cached");
        cache.get(&file(1), Kind::Env, &mut f);
        assert_eq!(cache.parses(), 5, "1 was evicted and is parsed again");
        assert!(cache.cached_bytes() <= 3 * weight + 10);
        assert!(f.is_empty());
    }

    /// A same-size rewrite that keeps the mtime (a coarse clock, or a tool restoring it) is
    /// still seen while the mtime is recent: the stamp alone is not trusted then.
    #[test]
    fn a_rewrite_in_the_same_clock_tick_is_seen() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join(".env");
        let cache = SourceCache::default();
        let mut f = Vec::new();
        let value = |cache: &SourceCache| match cache.get(&path, Kind::Env, &mut Vec::new()) {
            Some(Parsed::Env(e)) => e.entries[0].value.clone(),
            _ => panic!("not read"),
        };
        let tick = std::time::SystemTime::now();
        for v in ["K=first", "K=other"] {
            std::fs::write(&path, v).unwrap();
            std::fs::File::options().write(true).open(&path).unwrap().set_modified(tick).unwrap();
            assert_eq!(format!("K={}", value(&cache)), v);
        }
        assert!(cache.get(&path, Kind::Env, &mut f).is_some() && f.is_empty());
    }

    #[test]
    fn oversized_and_special_files_become_findings() {
        let t = tempfile::tempdir().unwrap();
        let big = t.path().join("big.env");
        std::fs::write(&big, vec![b'#'; usize::try_from(fsread::ENV_CAP).unwrap() + 1]).unwrap();
        let cache = SourceCache::default();
        let mut f = Vec::new();
        assert!(cache.get(&big, Kind::Env, &mut f).is_none());
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].code, "file-too-large");
        assert!(f[0].message.contains("1.0 MiB limit"), "{}", f[0].message);
        // The same size is fine for a settings file.
        assert!(cache.get(&big, Kind::Settings, &mut f).is_some());
        #[cfg(unix)]
        {
            let zero = t.path().join("zero.env");
            std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
            assert!(cache.get(&zero, Kind::Env, &mut f).is_none());
            assert_eq!(f[1].code, "file-not-regular");
            assert!(f[1].message.contains("character device"), "{}", f[1].message);
        }
        // A directory (a virtualenv called .env) is silently not a file.
        assert!(cache.get(t.path(), Kind::Env, &mut f).is_none());
        assert!(f.len() <= 2);
    }
}
