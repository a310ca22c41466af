//! Assessments remembered by their exact inputs.
//!
//! An assessment (before probe findings) is a pure function of the question, the caller, the
//! keychain's metadata, the config and catalogue in force, the trust records and the caller's
//! files. The parse cache hands out the same `Arc` for a file as long as its content is
//! unchanged, so "the same files" is a pointer comparison, made after the cache has checked
//! every file's metadata for this request: an edit is seen exactly as without the memo. What
//! a hit saves is the resolver (run up to four times with keychain injections), the gate's
//! second resolution without the project's files, and hashing the trusted files.
//!
//! The one input that moves by itself is the clock (`key-age`); it is part of the key to the
//! minute.

use std::collections::VecDeque;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use qwen_env_proto::{CallerContext, Finding, Resolution};
use qwen_env_resolve::sources::{OpenClawSources, QwenSources};
use qwen_env_resolve::{KeychainView, Plan, Sources};

use crate::resolution::{Ask, Loaded};
use crate::verify::Target;

/// Assessments kept: enough for every directory a user works in at once; a miss costs one
/// resolution.
const CAPACITY: usize = 64;

/// An assessment before probe findings: what [`crate::engine::Engine::assess`] computes from
/// the files and the gate.
#[derive(Clone)]
pub struct Outcome {
    /// Fields and findings (without probe findings).
    pub resolution: Resolution,
    /// What `run` must do.
    pub plan: Plan,
    /// What would be sent where, with the gate's clearance.
    pub target: Option<Target>,
    /// The files it depends on.
    pub watched: Vec<PathBuf>,
    /// The gate's refusal, if any.
    pub refusal: Option<Finding>,
    /// The static rules on a keychain key's value (`Verifier::keychain_key_rules`).
    pub key_rules: Vec<Finding>,
}

/// The inputs besides the files.
pub struct Key {
    hash: u64,
    as_is: bool,
    bare: bool,
    with: Vec<String>,
    profile: Option<String>,
    variables: Vec<String>,
    caller: CallerContext,
    view: KeychainView,
    durable: bool,
    minute: u64,
    trust: u64,
}

impl Key {
    /// The key of `ask` over `loaded`.
    pub fn new(
        ask: &Ask<'_>,
        loaded: &Loaded,
        view: &KeychainView,
        durable: bool,
        now: u64,
        trust: u64,
    ) -> Self {
        let mut h = DefaultHasher::new();
        (ask.as_is, ask.bare, ask.with, ask.profile, ask.variables, &loaded.caller).hash(&mut h);
        Self {
            hash: h.finish(),
            as_is: ask.as_is,
            bare: ask.bare,
            with: ask.with.to_vec(),
            profile: ask.profile.map(str::to_owned),
            variables: ask.variables.to_vec(),
            caller: loaded.caller.clone(),
            view: view.clone(),
            durable,
            minute: now / 60,
            trust,
        }
    }

    fn same(&self, o: &Key) -> bool {
        self.hash == o.hash
            && self.as_is == o.as_is
            && self.bare == o.bare
            && self.durable == o.durable
            && self.minute == o.minute
            && self.trust == o.trust
            && self.with == o.with
            && self.profile == o.profile
            && self.variables == o.variables
            && self.caller == o.caller
            && self.view == o.view
    }
}

struct Entry {
    key: Key,
    /// Held so that the `Arc`s compared stay alive (no address is reused while remembered).
    config: Arc<qwen_env_resolve::Config>,
    catalog: Arc<qwen_env_resolve::Catalog>,
    sources: Sources,
    outcome: Outcome,
}

/// The remembered assessments, most recently used first.
#[derive(Default)]
pub struct Memo {
    entries: Mutex<VecDeque<Entry>>,
}

impl Memo {
    /// The outcome for `key` over `loaded`, if remembered.
    pub fn get(&self, key: &Key, loaded: &Loaded) -> Option<Outcome> {
        let mut entries = self.entries.lock().expect("memo lock");
        let i = entries.iter().position(|e| {
            e.key.same(key)
                && Arc::ptr_eq(&e.config, &loaded.config)
                && Arc::ptr_eq(&e.catalog, &loaded.catalog)
                && same_files(&e.sources, &loaded.sources)
        })?;
        let e = entries.remove(i)?;
        let outcome = e.outcome.clone();
        entries.push_front(e);
        Some(outcome)
    }

    /// Remembers `outcome` for `key` over the config, catalogue and files it was computed from.
    pub fn put(
        &self,
        key: Key,
        config: Arc<qwen_env_resolve::Config>,
        catalog: Arc<qwen_env_resolve::Catalog>,
        sources: Sources,
        outcome: Outcome,
    ) {
        let mut entries = self.entries.lock().expect("memo lock");
        entries.push_front(Entry { key, config, catalog, sources, outcome });
        entries.truncate(CAPACITY);
    }

    /// Forgets everything (the keychain's contents or the trust records changed in a way the
    /// key does not capture).
    pub fn clear(&self) {
        self.entries.lock().expect("memo lock").clear();
    }
}

fn same<T>(a: Option<&Arc<T>>, b: Option<&Arc<T>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        (None, None) => true,
        _ => false,
    }
}

fn same_all<T>(a: &[Arc<T>], b: &[Arc<T>]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(a, b)| Arc::ptr_eq(a, b))
}

/// Whether two loads read the same files with the same contents. Every field is named, so a
/// new source cannot be forgotten here: the destructuring stops compiling.
fn same_files(a: &Sources, b: &Sources) -> bool {
    let Sources { host, home, cwd, cwd_is_home, qwen, openclaw, watched, findings } = a;
    let QwenSources {
        qdir,
        qwen_home_from_file,
        system_defaults,
        user,
        workspace,
        system,
        project_env,
        home_envs,
        trusted_folders,
        trusted_folders_path,
    } = qwen;
    let OpenClawSources {
        state_dir,
        config,
        cwd_env,
        state_env,
        legacy_auth_profiles,
        sqlite_store,
        merged,
        profiles,
    } = openclaw;
    *host == b.host
        && *home == b.home
        && *cwd == b.cwd
        && *cwd_is_home == b.cwd_is_home
        && *watched == b.watched
        && *findings == b.findings
        && *qdir == b.qwen.qdir
        && *qwen_home_from_file == b.qwen.qwen_home_from_file
        && same(system_defaults.as_ref(), b.qwen.system_defaults.as_ref())
        && same(user.as_ref(), b.qwen.user.as_ref())
        && same(workspace.as_ref(), b.qwen.workspace.as_ref())
        && same(system.as_ref(), b.qwen.system.as_ref())
        && same(project_env.as_ref(), b.qwen.project_env.as_ref())
        && same_all(home_envs, &b.qwen.home_envs)
        && same(trusted_folders.as_ref(), b.qwen.trusted_folders.as_ref())
        && *trusted_folders_path == b.qwen.trusted_folders_path
        && *state_dir == b.openclaw.state_dir
        && same(config.as_ref(), b.openclaw.config.as_ref())
        && same(cwd_env.as_ref(), b.openclaw.cwd_env.as_ref())
        && same(state_env.as_ref(), b.openclaw.state_env.as_ref())
        && same_all(legacy_auth_profiles, &b.openclaw.legacy_auth_profiles)
        && *sqlite_store == b.openclaw.sqlite_store
        // Values, not shared `Arc`s: the config with its `$include`s merged in (the included
        // files' contents are only here) and the profiles read from OpenClaw's databases.
        && *merged == b.openclaw.merged
        && *profiles == b.openclaw.profiles
}
