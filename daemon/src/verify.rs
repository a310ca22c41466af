//! Live validation: what a resolution's key and base URL look like to the endpoint, as findings
//! (DESIGN.md sections 7 and 8), for `doctor --verify` (fresh), `run` and `doctor` (cached, with a
//! refresh in the background) and `key set` (where does this new key work?). What is learnt about
//! a keychain key (family, region, last result) goes into its metadata.

use std::fmt::Write as _;
use std::sync::Arc;

use futures_util::future::join_all;
use qwen_env_proto::{Field, Finding, Resolution, SecretValue, Severity};
use qwen_env_resolve::catalog::{EndpointDef, Family, ProbeKind, same_url};
use qwen_env_resolve::mask::fingerprint;
use qwen_env_resolve::{Catalog, KeyRef, Plan};

use crate::gate::{self, Clearance};
use crate::keys::{Keys, ProbeSummary};
use crate::probe::{Key, Outcome, ProbeResult, Prober, norm};

/// What a resolution would send, and where.
#[derive(Debug, Clone)]
pub struct Target {
    /// The key: a keychain entry or a plain value.
    pub key: KeyRef,
    /// Its fingerprint.
    pub fp: String,
    /// Where the key comes from (`keychain DASHSCOPE_API_KEY`, `.env:3`).
    pub key_source: String,
    /// The base URL.
    pub base: String,
    /// Where the base URL is set (`~/.qwen/settings.json:12:5 …`, `env OPENAI_BASE_URL`).
    pub base_source: String,
    /// The model and where it is set.
    pub model: Option<(String, String)>,
    /// The variable the key is read from, when known.
    pub variable: Option<String>,
    /// The gate's word that the key may go to `base`; `None` until the engine asked, or when it
    /// refused. Nothing is probed without it.
    pub clearance: Option<Clearance>,
}

/// What a resolution sends where: needs a key and a base URL (of any spelling: the gate judges
/// it, and nothing is probed without its clearance).
pub fn target(res: &Resolution, plan: &Plan) -> Option<Target> {
    let key = plan.probe_key.clone()?;
    let base = res.base_url.value.clone().filter(|b| !b.trim().is_empty())?;
    let fp = match &key {
        KeyRef::Plain(v) => fingerprint(v.expose_secret()),
        KeyRef::Keychain(_) => res.api_key.fingerprint.clone().filter(|f| !f.is_empty())?,
    };
    let source = |f: &Field| f.source.clone().unwrap_or_else(|| "default".to_string());
    let variable = match &key {
        KeyRef::Keychain(name) => Some(name.clone()),
        KeyRef::Plain(_) => res.api_key.variable.clone(),
    };
    Some(Target {
        key,
        fp,
        key_source: source(&res.api_key),
        base,
        base_source: source(&res.base_url),
        model: res.model.value.clone().map(|m| (m, source(&res.model))),
        variable,
        clearance: None,
    })
}

/// The family and endpoint of a base URL, owned.
fn detect(catalog: &Catalog, base: &str) -> Option<(Family, EndpointDef)> {
    catalog.detect(base).map(|d| (d.family.clone(), d.endpoint.clone()))
}

/// Endpoints a key rejected at `base` is tried at: the other endpoints of families of the same
/// provider (regions, plans) that the key's prefix fits. `None` for the key text means "any".
fn discovery(catalog: &Catalog, base: &str, key: Option<&str>) -> Vec<(Family, EndpointDef)> {
    let Some(d) = catalog.detect(base) else { return Vec::new() };
    if !d.family.discover {
        return Vec::new();
    }
    let provider = d.family.provider();
    catalog
        .families
        .iter()
        .filter(|f| f.provider() == provider && (f.id == d.family.id || f.discover))
        .filter(|f| key.is_none_or(|k| f.prefix_match(k).is_some()))
        .flat_map(|f| f.endpoints.iter().map(move |e| (f.clone(), e.clone())))
        .filter(|(_, e)| !same_url(&e.base_url, base))
        .collect()
}

/// The URL the key check asks at `base`, as the probe builds it (`GET {base}/models`; OpenRouter:
/// `GET {origin}/api/v1/key`).
fn probe_url(catalog: &Catalog, base: &str) -> String {
    match kind_of(catalog, base) {
        ProbeKind::Models => format!("{}/models", norm(base)),
        ProbeKind::OpenrouterKey => format!("{}/api/v1/key", crate::probe::origin(base)),
    }
}

fn kind_of(catalog: &Catalog, base: &str) -> ProbeKind {
    catalog.detect(base).map_or(ProbeKind::Models, |d| d.family.probe)
}

/// Live validation: the prober and the key store, nothing else.
pub struct Verifier {
    prober: Prober,
    keys: Arc<Keys>,
}

impl Verifier {
    /// A verifier that probes with `prober` and records what it learns in `keys`.
    pub fn new(prober: Prober, keys: Arc<Keys>) -> Self {
        Self { prober, keys }
    }

    /// Whether probes are on (`QWEN_ENV_PROBE=off` turns them off).
    pub fn enabled(&self) -> bool {
        self.prober.enabled
    }

    /// The key's value: fetched from the keychain when it lives there.
    async fn secret(&self, key: &KeyRef) -> Option<SecretValue> {
        match key {
            KeyRef::Plain(v) => Some(v.clone()),
            KeyRef::Keychain(name) => self.keys.get(name).await.ok(),
        }
    }

    /// The static key rules (what kind of key goes to what kind of endpoint: an OpenRouter key to
    /// OpenAI's default URL) for a keychain key, whose value the resolver never sees. No network:
    /// the value comes from the keychain (its cache, usually) and only its class is used.
    /// Also says whether the rules could run (`false`: the daemon's backend does not hold the
    /// key now).
    pub async fn keychain_key_rules(&self, catalog: &Catalog, t: &Target) -> (Vec<Finding>, bool) {
        let KeyRef::Keychain(name) = &t.key else { return (Vec::new(), true) };
        let Some(value) = self.keys.readable(name).await else { return (Vec::new(), false) };
        let mut out = Vec::new();
        qwen_env_resolve::rules::key_endpoint_rules(
            catalog,
            Some(value.expose_secret()),
            Some(name),
            &t.key_source,
            Some(&t.base),
            &t.base_source,
            t.model.as_ref().map(|(m, source)| (m.as_str(), source.as_str())),
            &mut out,
        );
        (out, true)
    }

    /// Probes the target now (the configured base URL, then the rest of its provider when the key is
    /// rejected), records what was learnt, and returns the findings.
    pub async fn fresh(&self, catalog: &Catalog, t: &Target) -> Vec<Finding> {
        if t.clearance.is_none() {
            return Vec::new();
        }
        let Some(key) = self.secret(&t.key).await else { return Vec::new() };
        self.probe_target(catalog, t, &key, true).await;
        let findings = self.interpret(catalog, t);
        self.record(catalog, t).await;
        findings
    }

    /// Probes the target unless the cache is fresh; used by the background refresh.
    async fn probe_target(&self, catalog: &Catalog, t: &Target, key: &SecretValue, fresh: bool) {
        let Some(cleared) = &t.clearance else { return };
        let prober = &self.prober;
        let r = prober
            .probe(
                catalog,
                cleared,
                &t.base,
                kind_of(catalog, &t.base),
                Key { value: key, fingerprint: &t.fp },
                fresh,
            )
            .await;
        if r.outcome == Outcome::Rejected {
            let others = discovery(catalog, &t.base, Some(key.expose_secret()));
            join_all(others.iter().map(|(f, e)| {
                prober.probe(
                    catalog,
                    cleared,
                    &e.base_url,
                    f.probe,
                    Key { value: key, fingerprint: &t.fp },
                    fresh,
                )
            }))
            .await;
        }
    }

    /// Findings from the cache only (never waits on the network); schedules a refresh when the
    /// cached result is missing or older than the TTL. For `run` and plain `doctor`.
    pub fn cached(self: &Arc<Self>, catalog: Arc<Catalog>, t: Target) -> Vec<Finding> {
        if !self.prober.enabled || t.clearance.is_none() {
            return Vec::new();
        }
        let mut findings = self.interpret(&catalog, &t);
        if self.pending(&catalog, &t) {
            // Half an answer (the configured endpoint said no, the rest of the provider has not
            // answered yet) must not be reported as the verdict.
            findings.retain(|f| f.code != "key-rejected");
            findings.push(not_verified(&catalog, &t));
        }
        if !self.prober.is_fresh(&t.fp, &t.base) {
            let this = self.clone();
            tokio::spawn(async move {
                if let Some(key) = this.secret(&t.key).await {
                    this.probe_target(&catalog, &t, &key, false).await;
                    this.record(&catalog, &t).await;
                }
            });
        }
        findings
    }

    /// Whether the cache cannot give the verdict for the target yet: nothing is known about its
    /// base URL, or the base rejected the key and some endpoint the key is tried at next has not
    /// answered.
    fn pending(&self, catalog: &Catalog, t: &Target) -> bool {
        match self.prober.cached(&t.fp, &t.base) {
            None => true,
            Some((r, _)) if r.outcome == Outcome::Rejected => {
                let key = match &t.key {
                    KeyRef::Plain(v) => Some(v.expose_secret().to_owned()),
                    KeyRef::Keychain(_) => None,
                };
                discovery(catalog, &t.base, key.as_deref())
                    .iter()
                    .any(|(_, e)| self.prober.cached(&t.fp, &e.base_url).is_none())
            }
            Some(_) => false,
        }
    }

    /// Turns the cached results for the target into findings.
    fn interpret(&self, catalog: &Catalog, t: &Target) -> Vec<Finding> {
        let prober = &self.prober;
        let Some((r, _)) = prober.cached(&t.fp, &t.base) else { return Vec::new() };
        let here = detect(catalog, &t.base);
        let where_ = label(here.as_ref(), &t.base);
        let ev = r.evidence();
        let mut out = Vec::new();
        match &r.outcome {
            Outcome::Valid { models, .. } => model_findings(t, here.as_ref(), models.as_deref(), &r, &mut out),
            Outcome::Rejected => {
                let mut works: Vec<(Family, EndpointDef, ProbeResult)> = discovery(catalog, &t.base, None)
                    .into_iter()
                    .filter_map(|(f, e)| {
                        let (r, _) = prober.cached(&t.fp, &e.base_url)?;
                        matches!(r.outcome, Outcome::Valid { .. }).then_some((f, e, r))
                    })
                    .collect();
                let same_family = |f: &Family| here.as_ref().is_some_and(|(h, _)| h.id == f.id);
                // A region of the same family is the likelier fix than another plan.
                works.sort_by_key(|(f, _, _)| !same_family(f));
                if let Some((f, e, ok)) = works.first() {
                    let (code, what) = if same_family(f) {
                        ("key-region-mismatch", "another region")
                    } else {
                        ("key-endpoint-class-mismatch", "another kind of endpoint")
                    };
                    let mut message = format!(
                        "the key ({}, {}) is rejected by {where_} but works at {} ({} {}): it belongs to {what}",
                        t.fp, t.key_source, e.display(), f.id, e.region
                    );
                    if works.len() > 1 {
                        let rest: Vec<String> = works[1..].iter().map(|(_, e, _)| e.base_url.clone()).collect();
                        let _ = write!(message, "; it also works at {}", rest.join(", "));
                    }
                    out.push(finding(
                        code,
                        Severity::Error,
                        message,
                        base_fix(&e.base_url, &t.base_source),
                        &t.base_source,
                        format!("{ev}; {}", ok.evidence()),
                    ));
                } else {
                    let tried = discovery(catalog, &t.base, None).len();
                    let elsewhere = if tried > 0 {
                        format!(" and no other endpoint of {} accepts it", here.as_ref().map_or("its provider", |(f, _)| f.provider()))
                    } else {
                        String::new()
                    };
                    out.push(finding(
                        "key-rejected",
                        Severity::Error,
                        format!("{where_} rejected the key ({}, {}){elsewhere}", t.fp, t.key_source),
                        format!(
                            "check the key in the provider's console (revoked? another account?), then store the right one: qwen-env key set {}",
                            key_name(t)
                        ),
                        &t.key_source,
                        ev,
                    ));
                }
            }
            Outcome::NotFound => {
                let fix = match &here {
                    Some((_, e)) if !same_url(&e.base_url, &t.base) => {
                        base_fix(&e.base_url, &t.base_source)
                    }
                    _ if is_default(&t.base_source) => format!(
                        "set the base URL to your provider's endpoint: nothing sets one, so the {} is used, and it has no such path",
                        t.base_source
                    ),
                    _ => format!(
                        "check the path of the base URL in {}: an OpenAI-compatible server answers GET <base>/models (the base usually ends in /v1 or /compatible-mode/v1)",
                        t.base_source
                    ),
                };
                out.push(finding(
                    "endpoint-not-found",
                    Severity::Error,
                    format!("{where_} has no {}: the base URL's path is wrong", probe_url(catalog, &t.base)),
                    fix,
                    &t.base_source,
                    ev,
                ));
            }
            Outcome::Unreachable { cause } => out.push(finding(
                "endpoint-unreachable",
                Severity::Warning,
                format!("{where_} could not be reached: {cause}"),
                if is_default(&t.base_source) {
                    format!(
                        "check your network (HTTPS_PROXY/NO_PROXY are honoured): nothing sets this base URL, it is the tool's {}",
                        t.base_source
                    )
                } else {
                    format!(
                        "check the host in {} and your network (HTTPS_PROXY/NO_PROXY are honoured); a local server must be running",
                        t.base_source
                    )
                },
                &t.base_source,
                ev,
            )),
            Outcome::PlanClientRejected => out.push(finding(
                "plan-client-rejected",
                Severity::Warning,
                format!("{where_} answered 405 \"{}\": the key is fine, the plan only serves coding agents", "only available for Coding Agents"),
                "use the key only from a coding agent such as Qwen Code; for other tools use a pay-as-you-go key".to_string(),
                &t.base_source,
                ev,
            )),
            Outcome::RateLimited { limits } => {
                let limits = limits.as_ref().map(|l| format!(" (the key's limits: {l})")).unwrap_or_default();
                out.push(finding(
                    "rate-limited",
                    Severity::Warning,
                    format!("{where_} is rate-limiting this key{limits}"),
                    "wait and retry, or raise the key's limits (add credit, leave the free tier) at the provider".to_string(),
                    &t.key_source,
                    ev,
                ));
            }
            Outcome::Unexpected => out.push(finding(
                "probe-unexpected-status",
                Severity::Info,
                format!("{where_} answered the key check with an unexpected status"),
                "nothing to do unless requests fail; `qwen-env doctor --verify` checks again".to_string(),
                &t.base_source,
                ev,
            )),
            Outcome::Refused => {}
        }
        out
    }

    /// What the cache says about a keychain key, into its metadata.
    async fn record(&self, catalog: &Catalog, t: &Target) {
        let KeyRef::Keychain(name) = &t.key else { return };
        let mut bases = vec![t.base.clone()];
        bases.extend(discovery(catalog, &t.base, None).into_iter().map(|(_, e)| e.base_url));
        let results: Vec<(String, ProbeResult)> = bases
            .into_iter()
            .filter_map(|b| self.prober.cached(&t.fp, &b).map(|(r, _)| (b, r)))
            .collect();
        if let Some(summary) = summarize(catalog, &results) {
            self.keys.record_probe(name, &t.fp, summary).await;
        }
    }

    /// `key set` with verification: where does this key work, and do the caller's settings use it?
    /// Returns notes (in words) and findings.
    pub async fn new_key(
        &self,
        catalog: &Catalog,
        name: &str,
        value: &SecretValue,
        settings: Option<Target>,
    ) -> (Vec<String>, Vec<Finding>) {
        let fp = fingerprint(value.expose_secret());
        let key_text = value.expose_secret();
        // The settings count only when the gate cleared them (`crate::gate`).
        let settings = settings.filter(|s| s.clearance.is_some());
        // The endpoints to try, each with the gate's clearance that anchors the send policy.
        let mut tries: Vec<(Clearance, String, ProbeKind)> = Vec::new();
        if let Some(s) = &settings
            && let Some(cleared) = &s.clearance
        {
            tries.push((cleared.clone(), s.base.clone(), kind_of(catalog, &s.base)));
            for (f, e) in discovery(catalog, &s.base, Some(key_text)) {
                tries.push((cleared.clone(), e.base_url, f.probe));
            }
        } else {
            for f in catalog.families_for_key(key_text, Some(name)) {
                for e in &f.endpoints {
                    if let Some(cleared) = gate::catalogue_endpoint(catalog, &e.base_url) {
                        tries.push((cleared, e.base_url.clone(), f.probe));
                    }
                }
            }
        }
        if tries.is_empty() {
            return (
                vec![format!(
                    "not verified: no endpoint family in the catalogue claims {name} with a key like this one; `qwen-env doctor --verify` checks it once your settings use it"
                )],
                Vec::new(),
            );
        }
        let results = join_all(tries.iter().map(|(cleared, base, kind)| async {
            let r = self
                .prober
                .probe(catalog, cleared, base, *kind, Key { value, fingerprint: &fp }, true)
                .await;
            (base.clone(), r)
        }))
        .await;
        let mut notes = Vec::new();
        let works: Vec<&String> = results
            .iter()
            .filter(|(_, r)| matches!(r.outcome, Outcome::Valid { .. }))
            .map(|(b, _)| b)
            .collect();
        for b in &works {
            notes.push(match detect(catalog, b) {
                Some(found) => format!("valid for {} at {b}", label(Some(&found), b)),
                None => format!("valid at {b}"),
            });
        }
        let mut findings = Vec::new();
        if let Some(s) = &settings {
            let here = label(detect(catalog, &s.base).as_ref(), &s.base);
            if works.iter().any(|b| same_url(b, &s.base)) {
                notes.push(format!("your settings use it: {here} ({})", s.base_source));
            } else if let Some(b) = works.first() {
                notes.push(format!("your settings use {here}: {}", base_fix(b, &s.base_source)));
            }
            findings = self.interpret(catalog, s);
            if !works.is_empty() {
                // The note above already says where the key works and what to change.
                findings.retain(|f| {
                    f.code != "key-region-mismatch" && f.code != "key-endpoint-class-mismatch"
                });
            }
        } else if works.is_empty() {
            for (base, r) in &results {
                let t = Target {
                    key: KeyRef::Keychain(name.to_string()),
                    fp: fp.clone(),
                    key_source: format!("keychain {name}"),
                    base: base.clone(),
                    base_source: base.clone(),
                    model: None,
                    variable: Some(name.to_string()),
                    clearance: gate::catalogue_endpoint(catalog, base),
                };
                if r.outcome != Outcome::Rejected {
                    findings.extend(self.interpret(catalog, &t));
                }
            }
            if results.iter().any(|(_, r)| r.outcome == Outcome::Rejected) {
                let tried: Vec<&str> = results.iter().map(|(b, _)| b.as_str()).collect();
                findings.push(finding(
                    "key-rejected",
                    Severity::Error,
                    format!("no endpoint accepted the key {name} ({fp}); tried {}", tried.join(", ")),
                    format!("check the key in the provider's console, then store the right one: qwen-env key set {name}"),
                    &format!("keychain {name}"),
                    results.iter().map(|(_, r)| r.evidence()).collect::<Vec<_>>().join("; "),
                ));
            }
        }
        if let Some(summary) = summarize(catalog, &results) {
            self.keys.record_probe(name, &fp, summary).await;
        }
        (notes, qwen_env_resolve::rules::finish(findings, &[]))
    }
}

fn finding(
    code: &str,
    severity: Severity,
    message: String,
    fix: String,
    location: &str,
    evidence: String,
) -> Finding {
    Finding {
        code: code.to_string(),
        severity,
        message,
        fix,
        location: Some(location.to_string()),
        evidence: Some(evidence),
    }
}

/// Words for an endpoint: "DashScope Singapore (dashscope ap-southeast-1)", or the URL.
/// The cache has no verdict for the key at its endpoint yet (a check is running): the findings
/// are the files' only, and the output must say so.
fn not_verified(catalog: &Catalog, t: &Target) -> Finding {
    let where_ = label(detect(catalog, &t.base).as_ref(), &t.base);
    finding(
        "not-verified",
        Severity::Info,
        format!(
            "the key ({}, {}) is not verified yet with {where_}; checking now in the background",
            t.fp, t.key_source
        ),
        "`qwen-env doctor --verify` waits for the answer".to_owned(),
        &t.base_source,
        "no answer from the endpoint yet".to_owned(),
    )
}

fn label(found: Option<&(Family, EndpointDef)>, base: &str) -> String {
    match found {
        Some((f, e)) => format!("{} ({} {})", e.display(), f.id, e.region),
        None => base.to_string(),
    }
}

fn model_findings(
    t: &Target,
    here: Option<&(Family, EndpointDef)>,
    models: Option<&[crate::probe::Model]>,
    r: &ProbeResult,
    out: &mut Vec<Finding>,
) {
    let (Some((model, model_source)), Some(models)) = (&t.model, models) else { return };
    if models.is_empty() {
        return;
    }
    let is_openrouter = here.is_some_and(|(f, _)| f.probe == ProbeKind::OpenrouterKey);
    match models.iter().find(|m| m.id == *model) {
        None => {
            let some: Vec<&str> = models.iter().take(8).map(|m| m.id.as_str()).collect();
            let more = if models.len() > some.len() { ", …" } else { "" };
            out.push(finding(
                "model-unavailable",
                Severity::Error,
                format!("model \"{model}\" is not among the {} models {} lists for this key", models.len(), label(here, &t.base)),
                format!("set the model ({model_source}) to one it lists: {}{more}", some.join(", ")),
                model_source,
                r.evidence(),
            ));
        }
        Some(m) if is_openrouter && m.tools == Some(false) => out.push(finding(
            "openrouter-no-tools",
            Severity::Error,
            format!("OpenRouter model \"{model}\" does not support tool calls, which coding agents need"),
            format!("pick a model with \"tools\" in its supported parameters (https://openrouter.ai/models?supported_parameters=tools) and set it in {model_source}"),
            model_source,
            format!("{} (supported_parameters lacks \"tools\")", r.evidence()),
        )),
        Some(_) => {}
    }
}

fn key_name(t: &Target) -> String {
    match &t.key {
        KeyRef::Keychain(n) => n.clone(),
        KeyRef::Plain(_) => t
            .key_source
            .split_whitespace()
            .last()
            .filter(|w| w.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or("NAME")
            .to_string(),
    }
}

/// The first result that accepted the key wins; else the first result.
fn summarize(catalog: &Catalog, results: &[(String, ProbeResult)]) -> Option<ProbeSummary> {
    let valid = results.iter().find(|(_, r)| matches!(r.outcome, Outcome::Valid { .. }));
    let (base, r) = valid.or_else(|| results.first())?;
    let found = detect(catalog, base);
    let result = match &r.outcome {
        Outcome::Valid { .. } => format!("valid at {base}"),
        Outcome::Rejected => format!("rejected by {base}"),
        Outcome::NotFound => format!("no {}", probe_url(catalog, base)),
        Outcome::PlanClientRejected => format!("plan client rejected by {base}"),
        Outcome::RateLimited { .. } => format!("rate-limited by {base}"),
        Outcome::Unreachable { .. } => format!("{base} unreachable"),
        Outcome::Unexpected => format!("unexpected status from {base}"),
        Outcome::Refused => return None,
    };
    let valid = valid.is_some();
    Some(ProbeSummary {
        family: found.as_ref().filter(|_| valid).map(|(f, _)| f.id.clone()),
        region: found.as_ref().filter(|_| valid).map(|(_, e)| e.region.clone()),
        result,
        at: r.at,
    })
}

/// Whether nothing sets the base URL: its source is the tool's default (`default (SDK)`,
/// `default (provider qwen)`).
fn is_default(base_source: &str) -> bool {
    base_source.starts_with("default")
}

/// The fix that moves a key's requests to `to`: where the base URL is set, or, when nothing sets
/// it, that one must be set (a default is not a place to edit).
fn base_fix(to: &str, base_source: &str) -> String {
    if is_default(base_source) {
        format!("set the base URL to {to} (nothing sets one now, so the {base_source} is used)")
    } else {
        format!("change the base URL to {to} in {base_source}")
    }
}
