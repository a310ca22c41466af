//! What the resolver reads from disk, found and parsed. [`Sources`] is plain data; the reading
//! goes through [`crate::SourceCache`], the only place in the crate that touches the filesystem.
//!
//! Which files are read follows HOST_TOOLS.md: the settings layers (1.1), the `.env` walk-up and
//! the home `.env` files (2.1), and OpenClaw's files (6).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use qwen_env_proto::{CallerContext, Finding};

use crate::dotenv;
use crate::jsonc::{Node, ParseError};

/// A settings file (JSONC) as Qwen Code reads it.
#[derive(Debug)]
pub struct SettingsFile {
    /// Where it is.
    pub path: PathBuf,
    /// The path as shown in sources and findings.
    pub label: Arc<str>,
    /// The parse result.
    pub parsed: Result<Node, ParseError>,
    /// Unix permission bits, for `secret-file-permissions`.
    pub mode: Option<u32>,
}

/// A `.env` file, parsed with dotenv's rules. Never `Debug`-printed with values.
pub struct EnvFile {
    /// Where it is.
    pub path: PathBuf,
    /// The path as shown in sources and findings.
    pub label: Arc<str>,
    /// Its entries in file order.
    pub entries: Vec<dotenv::Entry>,
    /// [`dotenv::effective`] of `entries`, computed once when the file is read.
    pub defined: Vec<usize>,
    /// Unix permission bits.
    pub mode: Option<u32>,
}

impl EnvFile {
    /// What a tool that loads the file sees: each key's last entry, in first-seen order.
    pub fn defined(&self) -> impl Iterator<Item = &dotenv::Entry> {
        self.defined.iter().map(|&i| &self.entries[i])
    }
}

impl std::fmt::Debug for EnvFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<&str> = self.entries.iter().map(|e| e.key.as_str()).collect();
        f.debug_struct("EnvFile")
            .field("path", &self.path)
            .field("keys", &keys)
            .finish_non_exhaustive()
    }
}

/// A JSON or JSON5 file (OpenClaw config, auth profiles, trusted folders).
#[derive(Debug)]
pub struct JsonFile {
    /// Where it is.
    pub path: PathBuf,
    /// The path as shown.
    pub label: Arc<str>,
    /// The parse result; JSON5 errors carry the parser's own message.
    pub parsed: Result<Node, ParseError>,
    /// Unix permission bits.
    pub mode: Option<u32>,
}

/// Qwen Code's files for one caller.
#[derive(Debug, Clone, Default)]
pub struct QwenSources {
    /// `$QWEN_HOME` (expanded) or `~/.qwen`.
    pub qdir: PathBuf,
    /// Where `QWEN_HOME` came from when it was not exported (`preResolveHomeEnv`).
    pub qwen_home_from_file: Option<(String, Arc<str>)>,
    /// `system-defaults.json`.
    pub system_defaults: Option<Arc<SettingsFile>>,
    /// `<qdir>/settings.json`.
    pub user: Option<Arc<SettingsFile>>,
    /// `<cwd>/.qwen/settings.json`, unless cwd is home.
    pub workspace: Option<Arc<SettingsFile>>,
    /// The system (override) settings.
    pub system: Option<Arc<SettingsFile>>,
    /// The first `.qwen/.env` or `.env` found walking up from cwd (not above home).
    pub project_env: Option<Arc<EnvFile>>,
    /// `<qdir>/.env`, `~/.qwen/.env` (only with a custom `QWEN_HOME`), `~/.env`, existing ones.
    pub home_envs: Vec<Arc<EnvFile>>,
    /// `trustedFolders.json` (only consulted when folder trust is on).
    pub trusted_folders: Option<Arc<JsonFile>>,
    /// Where `trustedFolders.json` is or would be (`QWEN_CODE_TRUSTED_FOLDERS_PATH`).
    pub trusted_folders_path: PathBuf,
}

/// OpenClaw's files for one caller.
#[derive(Debug, Clone, Default)]
pub struct OpenClawSources {
    /// The state dir (`~/.openclaw`, `$OPENCLAW_STATE_DIR`).
    pub state_dir: PathBuf,
    /// `openclaw.json`.
    pub config: Option<Arc<JsonFile>>,
    /// `<cwd>/.env` (credentials and base URLs ignored from it).
    pub cwd_env: Option<Arc<EnvFile>>,
    /// `<state>/.env`.
    pub state_env: Option<Arc<EnvFile>>,
    /// Legacy `agents/*/agent/auth-profiles.json` files.
    pub legacy_auth_profiles: Vec<Arc<JsonFile>>,
    /// Whether the shared SQLite auth store exists.
    pub sqlite_store: Option<PathBuf>,
    /// `openclaw.json` with every `$include` merged in, or OpenClaw's reason to reject it
    /// (`None` when there is no config or it does not parse).
    pub merged: Option<Result<Node, crate::openclaw::include::IncludeError>>,
    /// The stored auth profiles (shared and agent `main`), when a store exists.
    pub profiles: Option<crate::openclaw::store::ProfileStore>,
}

/// Which host the caller's command is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    /// Qwen Code (`qwen`, or no command).
    Qwen,
    /// OpenClaw (`openclaw`).
    OpenClaw,
    /// Anything else.
    Generic,
}

impl Host {
    /// From the basename of argv[0].
    pub fn detect(argv: &[String]) -> Host {
        let Some(a0) = argv.first() else { return Host::Qwen };
        let base = a0.rsplit(['/', '\\']).next().unwrap_or(a0);
        let base = base.strip_suffix(".exe").or_else(|| base.strip_suffix(".cmd")).unwrap_or(base);
        match base {
            "qwen" => Host::Qwen,
            "openclaw" => Host::OpenClaw,
            _ => Host::Generic,
        }
    }

    /// The `Resolution::tool` name.
    pub fn tool(self) -> &'static str {
        match self {
            Host::Qwen => "qwen-code",
            Host::OpenClaw => "openclaw",
            Host::Generic => "generic",
        }
    }
}

/// Everything the resolver needs, read from disk.
#[derive(Debug, Clone)]
pub struct Sources {
    /// Which host these sources are for.
    pub host: Host,
    /// The home directory.
    pub home: PathBuf,
    /// `realpath(cwd)` (cwd itself if that fails).
    pub cwd: PathBuf,
    /// `realpath(cwd) == realpath(home)`.
    pub cwd_is_home: bool,
    /// Qwen Code's files (empty for other hosts).
    pub qwen: QwenSources,
    /// OpenClaw's files (empty for other hosts).
    pub openclaw: OpenClawSources,
    /// Every file and directory whose change can change the resolution (for the watcher).
    pub watched: Vec<PathBuf>,
    /// Files found but not read (`file-not-regular`, `file-too-large`), as findings.
    pub findings: Vec<Finding>,
}

impl Sources {
    /// Read the sources for this caller with a fresh cache. For repeated calls keep a
    /// [`crate::SourceCache`] and call its `load`.
    pub fn load(caller: &CallerContext, home: &Path) -> Sources {
        crate::SourceCache::default().load(caller, home)
    }
}

/// The caller's value of `name`, with `""` counting as unset (HOST_TOOLS.md 2.2).
pub fn env_get<'a>(env: &'a [(String, String)], name: &str) -> Option<&'a str> {
    env.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
}

/// `~` expansion and cwd-relative resolution, as Qwen Code does for `QWEN_HOME`.
pub fn expand_path(value: &str, home: &Path, cwd: &Path) -> PathBuf {
    let p = if value == "~" {
        home.to_path_buf()
    } else if let Some(rest) = value.strip_prefix("~/") {
        home.join(rest)
    } else {
        PathBuf::from(value)
    };
    if p.is_absolute() { p } else { cwd.join(p) }
}

/// The OS default system settings path (HOST_TOOLS.md 1.1).
pub fn default_system_settings_path() -> PathBuf {
    if cfg!(target_os = "macos") {
        PathBuf::from("/Library/Application Support/QwenCode/settings.json")
    } else if cfg!(windows) {
        PathBuf::from(r"C:\ProgramData\qwen-code\settings.json")
    } else {
        PathBuf::from("/etc/qwen-code/settings.json")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_detection() {
        let v = |s: &[&str]| s.iter().map(|x| (*x).to_string()).collect::<Vec<_>>();
        assert_eq!(Host::detect(&[]), Host::Qwen);
        assert_eq!(Host::detect(&v(&["/usr/bin/qwen", "-m", "x"])), Host::Qwen);
        assert_eq!(Host::detect(&v(&["openclaw"])), Host::OpenClaw);
        assert_eq!(Host::detect(&v(&["curl"])), Host::Generic);
        assert_eq!(Host::detect(&v(&["qwen-code"])), Host::Generic);
    }

    #[test]
    fn env_empty_is_unset() {
        let env = vec![("A".to_string(), String::new()), ("B".to_string(), "x".to_string())];
        assert_eq!(env_get(&env, "A"), None);
        assert_eq!(env_get(&env, "B"), Some("x"));
    }

    #[test]
    fn qwen_home_expansion() {
        let h = Path::new("/h");
        let c = Path::new("/c");
        assert_eq!(expand_path("~/q", h, c), PathBuf::from("/h/q"));
        assert_eq!(expand_path("rel", h, c), PathBuf::from("/c/rel"));
        assert_eq!(expand_path("/abs", h, c), PathBuf::from("/abs"));
    }
}
