//! The engine: the one path from "what does this directory resolve to?" to the answer.
//!
//! [`Engine::assess`] is that path: the keychain view, the pure resolver, the probe target, the
//! probe findings (none, cached or fresh), the findings finished once. Every request that needs a
//! resolution (`resolve`, `verify`, `run`, `key set`) and the watcher's re-resolution after a file
//! changes go through it, so they cannot disagree. What differs between them is only what they
//! do with the answer: requests count as use of a context ([`Engine::answer`]), re-resolutions
//! report changed findings as events ([`Engine::watch`]).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use qwen_env_proto::{
    CallerContext, EventInfo, Finding, KeyInfo, Resolution, RunPlan, RunRequest, SecretValue,
    Severity, TrustAction, TrustEntry, TrustRequest,
};
use qwen_env_resolve::{KeyRef, Plan};
use tokio::sync::mpsc;

use crate::clock::now;
use crate::error::RequestError;
use crate::gate;
use crate::keys::{KeyError, Keys};
use crate::memo::{self, Memo, Outcome};
use crate::probe::Prober;
use crate::resolution::{Ask, Loaded, Resolved, Resolver};
use crate::trust::Trust;
use crate::verify::{self, Target, Verifier};
use crate::watcher::{Watcher, count};

/// Events closer together than this are handled as one change.
const DEBOUNCE: Duration = Duration::from_millis(50);

/// Which probe findings an assessment carries.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Probes {
    /// None: the files only.
    Skip,
    /// The cached results; a refresh runs in the background when they are missing or stale.
    Cached,
    /// Fresh results, waited for.
    Fresh,
}

/// One assessment: the resolution with every finding, what `run` must do, and what it read.
pub struct Assessment {
    /// Fields and findings, finished (ordered, deduplicated, silenced codes dropped).
    pub resolution: Resolution,
    /// What `run` must do.
    pub plan: Plan,
    /// What the resolution would send where, if anything.
    pub target: Option<Target>,
    /// Every file whose change can change this assessment.
    pub watched: Vec<PathBuf>,
    /// Why the key must not leave (the gate's `untrusted-endpoint`), whatever the config
    /// silences: `run` refuses on it.
    pub refusal: Option<Finding>,
}

/// Resolver, key store, verifier and watcher, behind one entry point.
pub struct Engine {
    keys: Arc<Keys>,
    resolver: Resolver,
    verifier: Arc<Verifier>,
    watcher: Arc<Watcher>,
    trust: Trust,
    memo: Memo,
}

impl Engine {
    /// An engine over these parts.
    pub fn new(
        keys: Arc<Keys>,
        resolver: Resolver,
        prober: Prober,
        watcher: Arc<Watcher>,
        trust: Trust,
    ) -> Self {
        let verifier = Arc::new(Verifier::new(prober, keys.clone()));
        Self { keys, resolver, verifier, watcher, trust, memo: Memo::default() }
    }

    /// The key store.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The resolver (config, catalogue, parse cache).
    pub fn resolver(&self) -> &Resolver {
        &self.resolver
    }

    /// The watcher.
    pub fn watcher(&self) -> &Watcher {
        &self.watcher
    }

    /// `qwen-env trust`: trust, list or revoke the caller's directory's own files. Trust covers
    /// what both Qwen Code and OpenClaw would read there.
    pub async fn trust(&self, req: &TrustRequest) -> Result<Vec<TrustEntry>, RequestError> {
        let failed = |e: std::io::Error| RequestError::BadRequest(format!("trust: {e}"));
        match req.action {
            TrustAction::List => Ok(self.trust.list()),
            TrustAction::Revoke => self.trust.revoke(Path::new(&req.caller.cwd)).map_err(failed),
            TrustAction::Grant => {
                let view = self.keys.view().await;
                let mut files = Vec::new();
                for tool in ["qwen", "openclaw"] {
                    let caller =
                        CallerContext { argv: vec![tool.to_owned()], ..req.caller.clone() };
                    for f in self.resolver.resolve(&Ask::plain(&caller), &view, true).project {
                        if !files.contains(&f) {
                            files.push(f);
                        }
                    }
                }
                self.trust.grant(&files, now()).map_err(failed)
            }
        }
    }

    /// The one assessment path. `explain --as-is` (`ask.as_is`) describes the files, not the
    /// endpoint, so it never probes.
    pub async fn assess(&self, ask: &Ask<'_>, probes: Probes) -> Assessment {
        let view = self.keys.view().await;
        let durable = self.keys.durable();
        let loaded = self.resolver.load(ask);
        let catalog = loaded.catalog.clone();
        let key = memo::Key::new(ask, &loaded, &view, durable, now(), self.trust.generation());
        let Outcome { mut resolution, plan, target, watched, refusal, key_rules } =
            match self.memo.get(&key, &loaded) {
                Some(hit) => hit,
                None => self.outcome(ask, loaded, key, &view, durable).await,
            };
        // Keys the index lists but the daemon's backend cannot give `run` (the keychain's
        // state, so never remembered).
        let names: Vec<&str> = plan.inject_as.iter().map(|(n, _)| n.as_str()).collect();
        let mut extra = if ask.as_is { Vec::new() } else { self.keys.absent(&names).await };
        extra.extend(refusal.iter().cloned());
        extra.extend(key_rules);
        if let Some(t) = target.as_ref().filter(|_| !ask.as_is) {
            match probes {
                Probes::Skip => {}
                Probes::Cached => extra.extend(self.verifier.cached(catalog.clone(), t.clone())),
                Probes::Fresh => extra.extend(self.verifier.fresh(&catalog, t).await),
            }
        }
        if !extra.is_empty() {
            let mut all = std::mem::take(&mut resolution.findings);
            all.extend(extra);
            resolution.findings = qwen_env_resolve::rules::finish(all, &self.resolver.silenced());
        }
        Assessment { resolution, plan, target, watched, refusal }
    }

    /// The assessment before probe findings, computed (and remembered under `key`).
    async fn outcome(
        &self,
        ask: &Ask<'_>,
        loaded: Loaded,
        key: memo::Key,
        view: &qwen_env_resolve::KeychainView,
        durable: bool,
    ) -> Outcome {
        let (config, catalog, files) =
            (loaded.config.clone(), loaded.catalog.clone(), loaded.sources.clone());
        let Resolved { resolution, plan, watched, project, proxy, sources } =
            self.resolver.resolve_loaded(ask, loaded, view, durable);
        let mut target = verify::target(&resolution, &plan);
        let refusal = target
            .as_mut()
            .and_then(|t| self.gate(ask, view, &catalog, &project, proxy.as_deref(), sources, t));
        // The static rules on a keychain key's value, which the resolver never sees. Remembered
        // only when the value could be read: a key the backend lacks may come back.
        let (key_rules, read) = match target.as_ref().filter(|_| !ask.as_is) {
            Some(t) => self.verifier.keychain_key_rules(&catalog, t).await,
            None => (Vec::new(), true),
        };
        let outcome = Outcome { resolution, plan, target, watched, refusal, key_rules };
        if read {
            self.memo.put(key, config, catalog, files, outcome.clone());
        }
        outcome
    }

    /// The gate: may the target's key go to its base URL (by probe, or through `run`)? Sets
    /// the target's clearance; returns why not, when the project chose the destination.
    #[allow(clippy::too_many_arguments)] // the gate's inputs, each from the resolution
    fn gate(
        &self,
        ask: &Ask<'_>,
        view: &qwen_env_resolve::KeychainView,
        catalog: &qwen_env_resolve::Catalog,
        project: &[PathBuf],
        proxy: Option<&str>,
        sources: qwen_env_resolve::Sources,
        t: &mut Target,
    ) -> Option<Finding> {
        let key = gate::Key {
            variable: t.variable.as_deref(),
            text: match &t.key {
                KeyRef::Plain(v) => Some(v.expose_secret()),
                KeyRef::Keychain(_) => None,
            },
        };
        let trusted = std::cell::OnceCell::new();
        let trusted = || *trusted.get_or_init(|| self.trust.covers(project));
        let verdict = gate::clear(catalog, &t.base, &key, || {
            project.is_empty() || self.chosen_by_user(ask, view, sources, t) || trusted()
        });
        t.clearance = verdict.clearance();
        if verdict == gate::Verdict::Untrusted {
            Some(gate::untrusted(&t.base, &t.base_source, &t.key_source, project, &ask.caller.cwd))
        } else if let Some(proxy) = proxy.filter(|_| !trusted()) {
            // The tool sends everything through this proxy, whatever the base URL. The daemon's
            // own probes use its own environment, so only `run` is at stake.
            Some(gate::untrusted_proxy(proxy, &t.key_source, &ask.caller.cwd))
        } else {
            None
        }
    }

    /// Whether the project's own files left out, the same key still goes to the same base URL:
    /// then the user's files chose it, not the project's.
    fn chosen_by_user(
        &self,
        ask: &Ask<'_>,
        view: &qwen_env_resolve::KeychainView,
        sources: qwen_env_resolve::Sources,
        t: &Target,
    ) -> bool {
        let (resolution, plan) = self.resolver.resolve_as_user(ask, view, sources);
        let same_base = resolution
            .base_url
            .value
            .as_deref()
            .is_some_and(|b| qwen_env_resolve::catalog::same_url(b, &t.base));
        same_base && plan.probe_key.as_ref() == Some(&t.key)
    }

    /// An assessment a client asked for: the context counts as used and stays watched.
    /// When watching is degraded (the inotify limit), the answer says so.
    pub async fn answer(&self, ask: &Ask<'_>, probes: Probes) -> Assessment {
        let mut a = self.assess(ask, probes).await;
        self.watcher.track(ask.caller, &a.resolution.tool, &a.watched, &a.resolution.findings);
        if let Some(note) = self.watcher.note()
            && !self.resolver.silenced().iter().any(|c| c == "watch-limit")
        {
            a.resolution.findings.push(watch_limit(note));
        }
        a
    }

    /// `doctor --verify`: fresh probes, waited for.
    pub async fn verify(&self, ask: &Ask<'_>) -> Result<Resolution, RequestError> {
        if !self.verifier.enabled() {
            return Err(RequestError::BadRequest(
                "probes are turned off in this daemon (QWEN_ENV_PROBE=off in its environment); \
                 restart it without that variable to verify keys"
                    .to_owned(),
            ));
        }
        Ok(self.answer(ask, Probes::Fresh).await.resolution)
    }

    /// `run`: the assessment as the child will see it, then exactly the secrets the plan names.
    /// Probe findings come from the cache only: `run` never waits on the network.
    pub async fn run_plan(&self, run: &RunRequest) -> Result<RunPlan, RequestError> {
        // A `--with` key the keychain lacks is an error for `run`: the user asked for it by name.
        for name in &run.with {
            if !self.keys.contains(name).await {
                return Err(KeyError::NotFound(name.clone()).into());
            }
        }
        let ask = Ask {
            caller: &run.caller,
            as_is: false,
            bare: run.bare,
            with: &run.with,
            profile: run.profile.as_deref(),
            variables: &[],
        };
        let Assessment { resolution, plan, refusal, .. } = self.answer(&ask, Probes::Cached).await;
        // A keychain key the tool would send where the gate refused: do not hand it over.
        if let Some(f) = refusal.filter(|_| !plan.inject_as.is_empty()) {
            return Err(RequestError::Refused(format!(
                "not started: {}\n  fix: {}",
                f.message, f.fix
            )));
        }
        let mut secrets = plan.secret_vars;
        for (name, variable) in plan.inject_as {
            secrets.push((variable, self.keys.get(&name).await?));
        }
        Ok(RunPlan {
            secrets,
            vars: plan.vars,
            unset: plan.unset,
            extra_args: plan.extra_args,
            findings: resolution.findings,
            notes: plan.notes,
        })
    }

    /// `key set`: store, then (with `verify`) say where the key works and whether the caller's
    /// settings send it there. Returns the key's metadata, notes and findings.
    pub async fn key_set(
        &self,
        name: &str,
        value: &SecretValue,
        caller: &CallerContext,
        verify: bool,
    ) -> Result<(KeyInfo, Vec<String>, Vec<Finding>), RequestError> {
        let info = self.keys.set(name, value, now()).await?;
        // `QWEN_ENV_PROBE=off` is a deliberate choice (offline, or tests): store quietly.
        if !verify || !self.verifier.enabled() {
            return Ok((info, Vec::new(), Vec::new()));
        }
        // "Your settings": what this directory resolves to, when it sends this very key.
        let settings = self.answer(&Ask::plain(caller), Probes::Skip).await.target.filter(|t| {
            matches!(&t.key, KeyRef::Keychain(n) if n == name) && t.fp == info.fingerprint
        });
        let catalog = self.resolver.catalog();
        let (notes, findings) = self.verifier.new_key(&catalog, name, value, settings).await;
        let info = self.keys.info(name).await.unwrap_or(info);
        Ok((info, notes, findings))
    }

    /// Handles the watcher's raw events for the daemon's life: debounce, hash, re-assess the
    /// contexts that read a changed file, broadcast what changed.
    pub async fn watch(self: Arc<Self>, mut raw: mpsc::UnboundedReceiver<PathBuf>) {
        while let Some(first) = raw.recv().await {
            let mut paths = BTreeSet::from([first]);
            let deadline = tokio::time::Instant::now() + DEBOUNCE;
            while let Ok(Some(p)) = tokio::time::timeout_at(deadline, raw.recv()).await {
                paths.insert(p);
            }
            let changed = self.watcher.changed(&paths);
            if changed.is_empty() {
                continue;
            }
            for (file, hash) in &changed {
                let verb = if hash.is_some() { "changed" } else { "removed" };
                self.watcher.emit(EventInfo {
                    time: now(),
                    kind: format!("file-{verb}"),
                    path: Some(file.display().to_string()),
                    context: None,
                    message: format!("{} {verb}", file.display()),
                    findings: Vec::new(),
                });
            }
            let files: Vec<PathBuf> = changed.into_iter().map(|(f, _)| f).collect();
            for caller in self.watcher.dependents(&files) {
                self.refresh(&caller).await;
            }
        }
    }

    /// Re-assesses one context and reports when its findings changed. A key or base URL that
    /// changed gets a probe scheduled (in the background; its result shows on the next request).
    async fn refresh(&self, caller: &CallerContext) {
        let a = self.assess(&Ask::plain(caller), Probes::Cached).await;
        let (tool, after) = (&a.resolution.tool, &a.resolution.findings);
        let Some(before) = self.watcher.refresh(caller, tool, &a.watched, after) else { return };
        if before != *after {
            let (e, w) = (count(after, Severity::Error), count(after, Severity::Warning));
            self.watcher.emit(EventInfo {
                time: now(),
                kind: "findings-changed".to_owned(),
                path: None,
                context: Some(format!("{tool} in {}", caller.cwd)),
                message: format!(
                    "{tool} in {}: {}, {}",
                    caller.cwd,
                    plural(e, "error"),
                    plural(w, "warning")
                ),
                findings: after.clone(),
            });
        }
    }
}

/// "1 error", "2 errors".
fn plural(n: u32, word: &str) -> String {
    if n == 1 { format!("1 {word}") } else { format!("{n} {word}s") }
}

/// Watching is degraded: say so with every answer.
fn watch_limit(note: String) -> Finding {
    Finding {
        code: "watch-limit".to_owned(),
        severity: Severity::Info,
        message: note,
        fix: "sudo sysctl fs.inotify.max_user_watches=524288".to_owned(),
        location: None,
        evidence: None,
    }
}
