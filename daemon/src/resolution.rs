//! Resolution in the daemon: the parse cache, qwen-env's own config, and the keychain view.
//!
//! The resolver itself is pure (`qwen-env-resolve`); this module feeds it. Files are re-read only
//! when their metadata changes and re-parsed only when their content hash changes, so a warm
//! request costs a handful of `stat`s.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use qwen_env_proto::{CallerContext, Finding, Resolution, Severity};
use qwen_env_resolve::{Config, KeychainView, Params, Plan, SourceCache};

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
}

struct LoadedConfig {
    path: PathBuf,
    stamp: Option<(u64, SystemTime)>,
    config: Config,
    error: Option<Finding>,
}

impl Resolver {
    /// A resolver reading qwen-env's config from `config_file`.
    pub fn new(config_file: PathBuf) -> Self {
        Self {
            cache: Mutex::new(SourceCache::default()),
            config: Mutex::new(LoadedConfig {
                path: config_file,
                stamp: None,
                config: Config::default(),
                error: None,
            }),
        }
    }

    /// Resolves one request. `durable` says whether the keychain survives a reboot.
    pub fn resolve(&self, ask: &Ask<'_>, keychain: &KeychainView, durable: bool) -> Outcome {
        let (config, config_error) = self.config();
        let home = caller_home(ask.caller);
        let sources = self.cache.lock().expect("cache lock").load(ask.caller, &home);
        let params = Params {
            caller: ask.caller,
            home: &home,
            as_is: ask.as_is,
            bare: ask.bare,
            with: ask.with,
            profile: ask.profile,
            variables: ask.variables,
            keychain,
            config: &config,
            now: crate::handler::now(),
        };
        let (mut resolution, plan) = qwen_env_resolve::resolve(&sources, &params);
        if let Some(f) = config_error {
            resolution.findings.insert(0, f);
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
    fn config(&self) -> (Config, Option<Finding>) {
        let mut loaded = self.config.lock().expect("config lock");
        let stamp = std::fs::metadata(&loaded.path)
            .ok()
            .map(|m| (m.len(), m.modified().unwrap_or(SystemTime::UNIX_EPOCH)));
        if stamp != loaded.stamp {
            loaded.stamp = stamp;
            match std::fs::read_to_string(&loaded.path) {
                Err(_) if stamp.is_none() => {
                    loaded.config = Config::default();
                    loaded.error = None;
                }
                Err(e) => loaded.error = Some(config_error(&loaded.path, &e.to_string())),
                Ok(text) => match Config::parse(&text) {
                    Ok(c) => {
                        loaded.config = c;
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
