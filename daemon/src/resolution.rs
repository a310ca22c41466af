//! Resolution in the daemon: the parse cache, qwen-env's own config, and the keychain view.
//!
//! The resolver itself is pure (`qwen-env-resolve`); this module feeds it. Files are re-read only
//! when their metadata changes and re-parsed only when their content hash changes, so a warm
//! request costs a handful of `stat`s.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use qwen_env_proto::{CallerContext, Finding, Resolution, Severity};
use qwen_env_resolve::{Catalog, Config, KeychainView, Params, Plan, SourceCache};

/// What a resolution is asked for.
pub struct Ask<'a> {
    pub caller: &'a CallerContext,
    pub as_is: bool,
    pub bare: bool,
    pub with: &'a [String],
    pub profile: Option<&'a str>,
    pub variables: &'a [String],
}

/// One resolution and what it depended on.
pub struct Outcome {
    /// Fields and findings.
    pub resolution: Resolution,
    /// What `run` must do.
    pub plan: Plan,
    /// Every file whose change can change this outcome (for the watcher).
    pub watched: Vec<PathBuf>,
}

/// The daemon's resolver: cache plus config.
pub struct Resolver {
    cache: Mutex<SourceCache>,
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
            Some(path) => {
                match std::fs::read_to_string(&path)
                    .map_err(|e| e.to_string())
                    .and_then(|t| Catalog::parse(&t))
                {
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
                }
            }
        };
        Self {
            cache: Mutex::new(SourceCache::default()),
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
    pub fn resolve(&self, ask: &Ask<'_>, keychain: &KeychainView, durable: bool) -> Outcome {
        let (config, config_error) = self.config();
        // No command (`explain`, `doctor`, the prompt hook): the config's `default_command`.
        let defaulted;
        let caller = match &config.default_command {
            Some(command) if ask.caller.argv.is_empty() && !command.is_empty() => {
                defaulted = CallerContext { argv: vec![command.clone()], ..ask.caller.clone() };
                &defaulted
            }
            _ => ask.caller,
        };
        let home = caller_home(caller);
        let sources = self.cache.lock().expect("cache lock").load(caller, &home);
        let catalog = self.config.lock().expect("config lock").catalog.clone();
        let params = Params {
            caller,
            home: &home,
            as_is: ask.as_is,
            bare: ask.bare,
            with: ask.with,
            profile: ask.profile,
            variables: ask.variables,
            keychain,
            config: &config,
            catalog: &catalog,
            now: crate::handler::now(),
        };
        let (mut resolution, plan) = qwen_env_resolve::resolve(&sources, &params);
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
        let mut watched = sources.watched;
        watched.push(config_path);
        Outcome { resolution, plan, watched }
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
            match std::fs::read_to_string(&loaded.path) {
                Err(_) if stamp.is_none() => {
                    loaded.config = Arc::default();
                    loaded.error = None;
                    loaded.catalog = Arc::new(self.base_catalog.clone());
                }
                Err(e) => loaded.error = Some(config_error(&loaded.path, &e.to_string())),
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

/// The host tool runs with the caller's HOME, so that is the home to resolve against.
fn caller_home(caller: &CallerContext) -> PathBuf {
    caller
        .env
        .iter()
        .find(|(k, v)| k == "HOME" && !v.is_empty())
        .map(|(_, v)| PathBuf::from(v))
        .or_else(|| std::env::var_os("HOME").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/"))
}
