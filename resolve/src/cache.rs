//! Reading and parsing source files, cached: a file is re-read only when its (len, mtime, inode)
//! changed and re-parsed only when its content hash changed, so a warm resolve costs a few
//! `stat` calls (DESIGN.md section 9: editors and Qwen Code rewrite files by rename).
//!
//! This module and [`crate::Sources`] are the only I/O in the crate.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use qwen_env_proto::CallerContext;
use sha2::{Digest, Sha256};

use crate::dotenv;
use crate::jsonc;
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

#[derive(Clone)]
enum Parsed {
    Settings(Arc<SettingsFile>),
    Env(Arc<EnvFile>),
    Json(Arc<JsonFile>),
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    mtime_ns: u128,
    ino: u64,
    mode: Option<u32>,
}

struct Slot {
    stamp: Stamp,
    hash: [u8; 32],
    parsed: Parsed,
}

/// Parsed files by path, reused across loads.
#[derive(Default)]
pub struct SourceCache {
    files: HashMap<(PathBuf, Kind), Slot>,
    /// How many files were parsed (not just stat'ed) since creation; for tests and stats.
    pub parses: u64,
}

impl std::fmt::Debug for SourceCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceCache").field("files", &self.files.len()).finish_non_exhaustive()
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
fn json5_error(e: &json5::Error) -> String {
    let json5::Error::Message { msg, location } = e;
    match location {
        Some(l) => {
            let what = msg
                .lines()
                .rev()
                .find_map(|line| line.trim_start().strip_prefix("= "))
                .unwrap_or("syntax error");
            format!("{what} at line {} column {}", l.line, l.column)
        }
        None => msg.clone(),
    }
}

impl SourceCache {
    /// A file parsed as `kind`, or `None` when it does not exist (or is not a readable file).
    fn get(&mut self, path: &Path, kind: Kind) -> Option<Parsed> {
        let meta = std::fs::metadata(path).ok()?;
        if !meta.is_file() {
            return None;
        }
        let st = stamp(&meta);
        let key = (path.to_path_buf(), kind);
        if let Some(slot) = self.files.get(&key)
            && slot.stamp == st
        {
            return Some(slot.parsed.clone());
        }
        let bytes = std::fs::read(path).ok()?;
        let hash: [u8; 32] = Sha256::digest(&bytes).into();
        if let Some(slot) = self.files.get_mut(&key)
            && slot.hash == hash
            && slot.stamp.mode == st.mode
        {
            slot.stamp = st;
            return Some(slot.parsed.clone());
        }
        self.parses += 1;
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
            Kind::Env => Parsed::Env(Arc::new(EnvFile {
                path: path.to_path_buf(),
                entries: dotenv::parse(&text),
                label: lbl,
                mode: st.mode,
            })),
            Kind::Json5 => {
                let parsed = json5::from_str::<jsonc::Node>(&text)
                    .map(|mut n| {
                        n.set_file(&lbl);
                        n
                    })
                    .map_err(|e| json5_error(&e));
                Parsed::Json(Arc::new(JsonFile {
                    path: path.to_path_buf(),
                    label: lbl,
                    parsed,
                    mode: st.mode,
                }))
            }
        };
        self.files.insert(key, Slot { stamp: st, hash, parsed: parsed.clone() });
        Some(parsed)
    }

    fn settings(&mut self, path: &Path) -> Option<Arc<SettingsFile>> {
        match self.get(path, Kind::Settings)? {
            Parsed::Settings(s) => Some(s),
            _ => None,
        }
    }

    fn env(&mut self, path: &Path) -> Option<Arc<EnvFile>> {
        match self.get(path, Kind::Env)? {
            Parsed::Env(s) => Some(s),
            _ => None,
        }
    }

    fn json5(&mut self, path: &Path) -> Option<Arc<JsonFile>> {
        match self.get(path, Kind::Json5)? {
            Parsed::Json(s) => Some(s),
            _ => None,
        }
    }

    /// Read (or reuse) the sources for this caller. `home` is the caller's home directory.
    pub fn load(&mut self, caller: &CallerContext, home: &Path) -> Sources {
        let host = Host::detect(&caller.argv);
        let cwd_given = PathBuf::from(&caller.cwd);
        let cwd = std::fs::canonicalize(&cwd_given).unwrap_or(cwd_given);
        let home_real = std::fs::canonicalize(home).unwrap_or_else(|_| home.to_path_buf());
        let cwd_is_home = cwd == home_real;
        let mut watched = Vec::new();
        let qwen = if host == Host::Qwen {
            self.load_qwen(caller, home, &home_real, &cwd, cwd_is_home, &mut watched)
        } else {
            QwenSources::default()
        };
        let openclaw = if host == Host::OpenClaw {
            self.load_openclaw(caller, home, &cwd, &mut watched)
        } else {
            OpenClawSources::default()
        };
        Sources { host, home: home.to_path_buf(), cwd, cwd_is_home, qwen, openclaw, watched }
    }

    fn load_qwen(
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
            qdir,
            qwen_home_from_file,
            project_env,
            home_envs,
        }
    }

    fn load_openclaw(
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
        OpenClawSources {
            config: self.json5(&config_path),
            cwd_env: self.env(&cwd_env_path),
            state_env: self.env(&state_env_path),
            legacy_auth_profiles: legacy,
            sqlite_store: sqlite.is_file().then_some(sqlite),
            state_dir,
        }
    }
}
