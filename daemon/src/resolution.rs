//! Resolution in the daemon: the parse cache, qwen-env's own config, and the keychain view.
//!
//! The resolver itself is pure (`qwen-env-resolve`); this module feeds it. Files are re-read only
//! when their metadata changes and re-parsed only when their content hash changes, so a warm
//! request costs a handful of `stat`s.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use qwen_env_proto::{CallerContext, Finding, Resolution, Severity};
use qwen_env_resolve::{Catalog, Config, KeychainView, Params, Plan, SourceCache, Sources};

/// What a resolution is asked for.
pub struct Ask<'a> {
    /// Who asks, from where, for which command.
    pub caller: &'a CallerContext,
    /// `explain --as-is`: the host tool without qwen-env.
    pub as_is: bool,
    /// `run --bare`.
    pub bare: bool,
    /// `--with` keys.
    pub with: &'a [String],
    /// `--profile`.
    pub profile: Option<&'a str>,
    /// Extra variables `explain` should show.
    pub variables: &'a [String],
}

impl<'a> Ask<'a> {
    /// The plain question: what does `caller`'s command resolve to under `run`?
    pub fn plain(caller: &'a CallerContext) -> Self {
        Self { caller, as_is: false, bare: false, with: &[], profile: None, variables: &[] }
    }
}

/// One resolution and what it depended on.
pub struct Resolved {
    /// Fields and findings.
    pub resolution: Resolution,
    /// What `run` must do.
    pub plan: Plan,
    /// Every file whose change can change this outcome (for the watcher).
    pub watched: Vec<PathBuf>,
    /// The project's own files among those read: the ones a cloned repository controls
    /// (workspace settings, a `.env` found by the walk-up, OpenClaw's cwd `.env`).
    pub project: Vec<PathBuf>,
    /// Where the project's own files set the proxy the tool sends its requests through
    /// (`file:line VAR` or `file proxy`), if they do.
    pub proxy: Option<String>,
    /// The sources it was resolved from, for [`Resolver::resolve_as_user`].
    pub sources: Sources,
}

/// What one resolution reads besides the keychain ([`Resolver::load`]).
pub struct Loaded {
    /// The caller, with the config's `default_command` applied.
    pub caller: CallerContext,
    home: PathBuf,
    /// qwen-env's config in force.
    pub config: Arc<Config>,
    config_error: Option<Finding>,
    /// The catalogue in force.
    pub catalog: Arc<Catalog>,
    /// The caller's files.
    pub sources: Sources,
}

/// The daemon's resolver: cache plus config.
pub struct Resolver {
    cache: SourceCache,
    config: Mutex<LoadedConfig>,
    /// The embedded catalogue or `QWEN_ENV_CATALOG`'s, before the config's `[[family]]` tables.
    base_catalog: Catalog,
    /// Why `QWEN_ENV_CATALOG` is not in use, as a finding.
    catalog_error: Option<Finding>,
}

struct LoadedConfig {
    path: PathBuf,
    stamp: Option<(u64, SystemTime)>,
    config: Arc<Config>,
    error: Option<Finding>,
    /// The base catalogue with this config's families applied.
    catalog: Arc<Catalog>,
}

impl Resolver {
    /// A resolver reading qwen-env's config from `config_file`, with the embedded catalogue or
    /// the one `catalog_file` (`QWEN_ENV_CATALOG`) names.
    pub fn new(config_file: PathBuf, catalog_file: Option<PathBuf>) -> Self {
        let (base_catalog, catalog_error) = match catalog_file {
            None => (Catalog::builtin(), None),
            Some(path) => match read_text(&path).and_then(|t| Catalog::parse(&t)) {
                Ok(c) => (c, None),
                Err(e) => {
                    tracing::warn!(path = %path.display(), cause = %e, "QWEN_ENV_CATALOG does not load; using the built-in catalogue");
                    let f = Finding {
                        code: "config-parse-error".to_owned(),
                        severity: Severity::Warning,
                        message: format!(
                            "the endpoint catalogue {} (QWEN_ENV_CATALOG) does not load: {}; the built-in one is in use",
                            path.display(),
                            e.trim()
                        ),
                        fix: format!(
                            "fix the TOML in {} (format: README, \"Endpoint catalogue\") and restart the daemon",
                            path.display()
                        ),
                        location: Some(path.display().to_string()),
                        evidence: None,
                    };
                    (Catalog::builtin(), Some(f))
                }
            },
        };
        Self {
            cache: SourceCache::default(),
            config: Mutex::new(LoadedConfig {
                path: config_file,
                stamp: None,
                config: Arc::default(),
                error: None,
                catalog: Arc::new(base_catalog.clone()),
            }),
            base_catalog,
            catalog_error,
        }
    }

    /// Finding codes the config silences.
    pub fn silenced(&self) -> Vec<String> {
        self.config().0.silence.clone()
    }

    /// The catalogue in force: base plus the config's families.
    pub fn catalog(&self) -> Arc<Catalog> {
        let _ = self.config();
        self.config.lock().expect("config lock").catalog.clone()
    }

    /// Resolves one request. `durable` says whether the keychain survives a reboot.
    pub fn resolve(&self, ask: &Ask<'_>, keychain: &KeychainView, durable: bool) -> Resolved {
        self.resolve_loaded(ask, self.load(ask), keychain, durable)
    }

    /// Everything a resolution of `ask` reads besides the keychain: the config and catalogue in
    /// force and the caller's files (re-read when changed). Two equal [`Loaded`]s (see
    /// [`Loaded::same_inputs`]) resolve alike.
    pub fn load(&self, ask: &Ask<'_>) -> Loaded {
        let (config, config_error) = self.config();
        let caller = with_default_command(&config, ask.caller).into_owned();
        let home = caller_home(&caller);
        let sources = self.cache.load(&caller, &home);
        let catalog = self.config.lock().expect("config lock").catalog.clone();
        Loaded { caller, home, config, config_error, catalog, sources }
    }

    /// Resolves `ask` over what [`Resolver::load`] read.
    pub fn resolve_loaded(
        &self,
        ask: &Ask<'_>,
        loaded: Loaded,
        keychain: &KeychainView,
        durable: bool,
    ) -> Resolved {
        let Loaded { caller, home, config, config_error, catalog, sources } = loaded;
        let (mut resolution, plan) = qwen_env_resolve::resolve(
            &sources,
            &params(ask, &caller, &home, keychain, &config, &catalog),
        );
        if let Some(f) = config_error {
            resolution.findings.insert(0, f);
        }
        if let Some(f) = &self.catalog_error {
            resolution.findings.insert(0, f.clone());
        }
        if !durable
            && !plan.inject_as.is_empty()
            && !config.silence.iter().any(|c| c == NOT_DURABLE)
        {
            resolution.findings.push(Finding {
                code: NOT_DURABLE.to_owned(),
                severity: Severity::Info,
                message:
                    "the injected keys are held only by kernel keyutils, which forgets them at \
                          reboot"
                        .to_owned(),
                fix: "run the daemon in a session with a Secret Service (gnome-keyring, KWallet, \
                      KeePassXC), or store the keys again after a reboot with `qwen-env key set`"
                    .to_owned(),
                location: None,
                evidence: None,
            });
        }
        let config_path = self.config.lock().expect("config lock").path.clone();
        let mut watched = sources.watched.clone();
        watched.push(config_path);
        let project = project_files(&sources);
        let proxy = project_proxy(&sources, &caller);
        Resolved { resolution, plan, watched, project, proxy, sources }
    }

    /// The same question with the project's own files left out: what the user's files, the
    /// exported environment and qwen-env's config alone resolve to. A base URL or key that is
    /// the same both ways was not chosen by the project.
    pub fn resolve_as_user(
        &self,
        ask: &Ask<'_>,
        keychain: &KeychainView,
        mut sources: Sources,
    ) -> (Resolution, Plan) {
        let (config, _) = self.config();
        let caller = with_default_command(&config, ask.caller);
        let home = caller_home(&caller);
        sources.qwen.workspace = None;
        if sources.qwen.project_env.as_ref().is_some_and(|f| !is_users(&sources, &f.path)) {
            sources.qwen.project_env = None;
        }
        if sources.qwen.user.as_ref().is_some_and(|f| inside_project(&sources, &f.path)) {
            sources.qwen.user = None;
        }
        let home_envs = std::mem::take(&mut sources.qwen.home_envs);
        sources.qwen.home_envs =
            home_envs.into_iter().filter(|f| !inside_project(&sources, &f.path)).collect();
        sources.openclaw.cwd_env = None;
        let catalog = self.config.lock().expect("config lock").catalog.clone();
        qwen_env_resolve::resolve(
            &sources,
            &params(ask, &caller, &home, keychain, &config, &catalog),
        )
    }

    /// The config's profile names, sorted (for completion).
    pub fn profiles(&self) -> Vec<String> {
        self.config().0.profile.keys().cloned().collect()
    }

    /// Whether the config allows processes started by `run` to ask for keys themselves.
    pub fn allow_nesting(&self) -> bool {
        self.config().0.allow_nesting
    }

    /// The current config, re-read when the file changed. A config that does not parse keeps
    /// the last good one and yields a finding.
    fn config(&self) -> (Arc<Config>, Option<Finding>) {
        let mut loaded = self.config.lock().expect("config lock");
        let stamp = std::fs::metadata(&loaded.path)
            .ok()
            .map(|m| (m.len(), m.modified().unwrap_or(SystemTime::UNIX_EPOCH)));
        if stamp != loaded.stamp {
            loaded.stamp = stamp;
            match read_text(&loaded.path) {
                Err(_) if stamp.is_none() => {
                    loaded.config = Arc::default();
                    loaded.error = None;
                    loaded.catalog = Arc::new(self.base_catalog.clone());
                }
                Err(e) => loaded.error = Some(config_error(&loaded.path, &e)),
                Ok(text) => match Config::parse(&text) {
                    Ok(c) => {
                        loaded.catalog =
                            Arc::new(self.base_catalog.clone().with_overrides(&c.family));
                        loaded.config = Arc::new(c);
                        loaded.error = None;
                    }
                    Err(e) => {
                        tracing::warn!(path = %loaded.path.display(), cause = %e, "config does not parse; keeping the last good one");
                        loaded.error = Some(config_error(&loaded.path, &e));
                    }
                },
            }
        }
        (loaded.config.clone(), loaded.error.clone())
    }
}

const NOT_DURABLE: &str = "keychain-not-durable";

/// qwen-env's own files, read as the host tools' are: regular files only, never blocking on a
/// FIFO or a device, and capped.
fn read_text(path: &Path) -> Result<String, String> {
    let (bytes, _) =
        qwen_env_resolve::fsread::read_regular(path, qwen_env_resolve::fsread::JSON_CAP)
            .map_err(|e| e.to_string())?;
    String::from_utf8(bytes).map_err(|_| "it is not UTF-8 text".to_owned())
}

/// No command (`explain`, `doctor`, the prompt hook): the config's `default_command`.
fn with_default_command<'a>(config: &Config, caller: &'a CallerContext) -> Cow<'a, CallerContext> {
    match &config.default_command {
        Some(command) if caller.argv.is_empty() && !command.is_empty() => {
            Cow::Owned(CallerContext { argv: vec![command.clone()], ..caller.clone() })
        }
        _ => Cow::Borrowed(caller),
    }
}

fn params<'a>(
    ask: &'a Ask<'_>,
    caller: &'a CallerContext,
    home: &'a Path,
    keychain: &'a KeychainView,
    config: &'a Config,
    catalog: &'a Catalog,
) -> Params<'a> {
    Params {
        caller,
        home,
        as_is: ask.as_is,
        bare: ask.bare,
        with: ask.with,
        profile: ask.profile,
        variables: ask.variables,
        keychain,
        config,
        catalog,
        now: crate::clock::now(),
    }
}

/// Whether a `.env` the walk-up found is one of the user's own (in the home or Qwen Code's
/// directory, where the walk ends), not the project's.
fn is_users(sources: &Sources, path: &Path) -> bool {
    let dir = path.parent();
    dir == Some(sources.home.as_path())
        || dir == Some(sources.home.join(".qwen").as_path())
        || dir == Some(sources.qwen.qdir.as_path())
}

/// Whether `path` lies inside the working directory's tree while the home does not: a "user"
/// file that a relative `QWEN_HOME` put into the project.
fn inside_project(sources: &Sources, path: &Path) -> bool {
    !sources.cwd_is_home
        && path.starts_with(&sources.cwd)
        && !sources.home.starts_with(&sources.cwd)
}

/// The variables Qwen Code takes its proxy from, after `--proxy` and settings `proxy`.
const PROXY_VARS: [&str; 4] = ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"];

/// Where the project's own files set the tool's proxy: the workspace settings' `proxy` or `env`
/// block, or the project `.env` (unless the caller exports the variable, which wins).
fn project_proxy(sources: &Sources, caller: &CallerContext) -> Option<String> {
    let exported = |name: &str| qwen_env_resolve::sources::env_get(&caller.env, name).is_some();
    if let Some(f) = &sources.qwen.workspace
        && let Ok(node) = &f.parsed
    {
        if node.get("proxy").and_then(|n| n.as_str()).is_some_and(|p| !p.is_empty()) {
            return Some(format!("{} proxy", f.label));
        }
        if let Some(env) = node.get("env") {
            for name in PROXY_VARS.iter().filter(|n| !exported(n)) {
                if env.get(name).and_then(|n| n.as_str()).is_some_and(|p| !p.is_empty()) {
                    return Some(format!("{} env.{name}", f.label));
                }
            }
        }
    }
    let env = sources.qwen.project_env.as_ref().filter(|f| !is_users(sources, &f.path))?;
    env.defined()
        .find(|e| PROXY_VARS.contains(&e.key.as_str()) && !e.value.is_empty() && !exported(&e.key))
        .map(|e| format!("{} {}", e.loc(&env.label), e.key))
}

/// The files among `sources` that the project (a cloned repository) controls.
fn project_files(sources: &Sources) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(f) = &sources.qwen.workspace {
        out.push(f.path.clone());
    }
    if let Some(f) = sources.qwen.user.as_ref().filter(|f| inside_project(sources, &f.path)) {
        out.push(f.path.clone());
    }
    for f in sources.qwen.home_envs.iter().filter(|f| inside_project(sources, &f.path)) {
        out.push(f.path.clone());
    }
    if let Some(f) = sources.qwen.project_env.as_ref().filter(|f| !is_users(sources, &f.path)) {
        out.push(f.path.clone());
    }
    if let Some(f) = &sources.openclaw.cwd_env {
        out.push(f.path.clone());
    }
    out
}

fn config_error(path: &Path, message: &str) -> Finding {
    Finding {
        code: "config-parse-error".to_owned(),
        severity: Severity::Warning,
        message: format!("qwen-env's config does not parse: {}", message.trim()),
        fix: format!(
            "fix the TOML in {} (the last good config stays in use until then)",
            path.display()
        ),
        location: Some(path.display().to_string()),
        evidence: None,
    }
}

/// The host tool runs with the caller's HOME, so that is the home to resolve against (the
/// daemon's own HOME when the caller sent none).
pub fn caller_home(caller: &CallerContext) -> PathBuf {
    caller
        .env
        .iter()
        .find(|(k, v)| k == "HOME" && !v.is_empty())
        .map(|(_, v)| PathBuf::from(v))
        .or_else(|| std::env::var_os("HOME").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/"))
}
