//! Free probes of provider endpoints (DESIGN.md section 8): the HTTP half of live validation.
//!
//! `GET {base}/models` with the key as a Bearer token (OpenRouter: `GET {origin}/api/v1/key`, and
//! its public model list for tool support). Results are cached by (key fingerprint, base URL) with
//! a TTL, one probe runs per pair at a time (later callers join it), requests to one host are
//! spaced out, and timeouts are short (connect 3 s, total 8 s; `QWEN_ENV_PROBE_TIMEOUT_MS`
//! shortens the total for tests). Redirects are not followed, so a key never travels on.
//!
//! [`Prober::probe`] is the only function that attaches a key to a request. It takes the gate's
//! [`Clearance`] for the configured base URL (`crate::gate`), sends only where
//! [`Catalog::may_send`] allows from there, and never over plain http except to loopback.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use qwen_env_proto::SecretValue;

use crate::gate::Clearance;
use qwen_env_resolve::Catalog;
use qwen_env_resolve::catalog::{ProbeKind, Url};
use serde_json::Value;
use tokio::sync::OnceCell;

/// How long a result is trusted before `run` and `doctor` schedule a refresh.
const DEFAULT_TTL: Duration = Duration::from_mins(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const TOTAL_TIMEOUT: Duration = Duration::from_secs(8);
/// Minimum spacing of requests to one host:port, so discovery and repeated runs stay polite.
const HOST_SPACING: Duration = Duration::from_millis(100);
/// A model list larger than this is not read (OpenRouter's is a few hundred KiB).
const MAX_BODY: usize = 8 * 1024 * 1024;
/// The Coding Plan's answer to clients that are not coding agents (HOST_TOOLS.md section 7).
const CODING_AGENTS: &str = "only available for Coding Agents";

/// One model an endpoint lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Model {
    /// Its id.
    pub id: String,
    /// Whether it supports tool calls, when the list says (OpenRouter's `supported_parameters`).
    pub tools: Option<bool>,
}

/// What an endpoint said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 200: the key works. `models` when the list parsed; `limits` for OpenRouter keys.
    Valid { models: Option<Vec<Model>>, limits: Option<String> },
    /// 401 or 403.
    Rejected,
    /// 404: wrong path.
    NotFound,
    /// 405 "only available for Coding Agents".
    PlanClientRejected,
    /// 429, or an OpenRouter key with no credit left; the key's limits when known.
    RateLimited { limits: Option<String> },
    /// DNS, connect or TLS failure, or a timeout.
    Unreachable { cause: String },
    /// Any other status.
    Unexpected,
    /// The catalogue does not allow sending the key there; nothing was sent.
    Refused,
}

/// A probe's result, with its evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeResult {
    /// What it means.
    pub outcome: Outcome,
    /// The HTTP status, when one came back.
    pub status: Option<u16>,
    /// The request that was sent, e.g. `GET https://…/v1/models` (never the key).
    pub request: String,
    /// When (Unix seconds).
    pub at: u64,
}

impl ProbeResult {
    /// `HTTP 401 from GET https://…/models`, or the failure: for a finding's `evidence`.
    pub fn evidence(&self) -> String {
        match (&self.outcome, self.status) {
            (Outcome::Unreachable { cause }, _) => format!("{cause} ({})", self.request),
            (_, Some(s)) => format!("HTTP {s} from {}", self.request),
            (_, None) => self.request.clone(),
        }
    }
}

type Pair = (String, String);

/// A key and its fingerprint (the cache key; the only form that is ever logged).
#[derive(Clone, Copy)]
pub struct Key<'a> {
    /// The secret.
    pub value: &'a SecretValue,
    /// `sha256:` + 12 hex.
    pub fingerprint: &'a str,
}

/// The probe engine: HTTP client, cache, in-flight table and per-host spacing.
pub struct Prober {
    client: OnceLock<Result<reqwest::Client, String>>,
    cache: Mutex<HashMap<Pair, (Instant, ProbeResult)>>,
    inflight: Mutex<HashMap<Pair, Arc<OnceCell<ProbeResult>>>>,
    hosts: Mutex<HashMap<String, Instant>>,
    ttl: Duration,
    total_timeout: Duration,
    /// `QWEN_ENV_PROBE=off`: no probe is ever sent (tests of other features, offline users).
    pub enabled: bool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The base URL as a cache key: a trailing slash does not make another endpoint.
pub fn norm(base: &str) -> String {
    base.trim().trim_end_matches('/').to_string()
}

impl Prober {
    /// Settings from the daemon's environment: `QWEN_ENV_PROBE=off`, `QWEN_ENV_PROBE_TIMEOUT_MS`,
    /// `QWEN_ENV_PROBE_TTL_SECS`.
    pub fn from_env() -> Self {
        let var = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
        let enabled = !var("QWEN_ENV_PROBE").is_some_and(|v| {
            matches!(v.to_ascii_lowercase().as_str(), "off" | "0" | "false" | "no")
        });
        let total_timeout = var("QWEN_ENV_PROBE_TIMEOUT_MS")
            .and_then(|v| v.parse().ok())
            .map_or(TOTAL_TIMEOUT, Duration::from_millis);
        let ttl = var("QWEN_ENV_PROBE_TTL_SECS")
            .and_then(|v| v.parse().ok())
            .map_or(DEFAULT_TTL, Duration::from_secs);
        Self {
            client: OnceLock::new(),
            cache: Mutex::new(HashMap::new()),
            inflight: Mutex::new(HashMap::new()),
            hosts: Mutex::new(HashMap::new()),
            ttl,
            total_timeout,
            enabled,
        }
    }

    /// Built on first use, so a daemon that never probes never loads TLS roots.
    fn client(&self) -> Result<&reqwest::Client, String> {
        self.client
            .get_or_init(|| {
                // reqwest is built without a default provider (no aws-lc-rs); ring is ours. An
                // error only means another provider is installed already.
                let _ = rustls::crypto::ring::default_provider().install_default();
                reqwest::Client::builder()
                    .connect_timeout(CONNECT_TIMEOUT.min(self.total_timeout))
                    .timeout(self.total_timeout)
                    // A redirect could carry the key to another host: never follow one.
                    .redirect(reqwest::redirect::Policy::none())
                    .user_agent(concat!("qwen-env/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .map_err(|e| format!("failed to build the HTTP client: {e}"))
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The last result for (fingerprint, base URL) and whether it is still within the TTL.
    pub fn cached(&self, fingerprint: &str, base: &str) -> Option<(ProbeResult, bool)> {
        let cache = lock(&self.cache);
        let (at, r) = cache.get(&(fingerprint.to_string(), norm(base)))?;
        Some((r.clone(), at.elapsed() < self.ttl))
    }

    /// Whether a fresh result for the pair is cached.
    pub fn is_fresh(&self, fingerprint: &str, base: &str) -> bool {
        self.cached(fingerprint, base).is_some_and(|(_, fresh)| fresh)
    }

    /// Probes `base` with `key`, unless a fresh cached result will do (`fresh = false`). A probe
    /// already in flight for the same pair is joined instead of repeated. `cleared` is the gate's
    /// word for the base URL the key is configured for (`crate::gate`): the key is sent only
    /// where [`Catalog::may_send`] allows from there, and over plain http only to loopback.
    pub async fn probe(
        &self,
        catalog: &Catalog,
        cleared: &Clearance,
        base: &str,
        kind: ProbeKind,
        key: Key<'_>,
        fresh: bool,
    ) -> ProbeResult {
        let Key { value: key, fingerprint } = key;
        let anchor = cleared.anchor();
        if !catalog.may_send(anchor, base) || !crate::gate::may_travel(base) {
            tracing::warn!(%anchor, %base, fingerprint, "refused to send a key outside its provider family or over plain http");
            return ProbeResult {
                outcome: Outcome::Refused,
                status: None,
                request: format!("GET {base} (not sent)"),
                at: crate::clock::now(),
            };
        }
        let pair = (fingerprint.to_string(), norm(base));
        if !fresh && let Some((r, true)) = self.cached(fingerprint, base) {
            return r;
        }
        let cell = lock(&self.inflight).entry(pair.clone()).or_default().clone();
        let result = cell
            .get_or_init(|| async {
                let previous = self.cached(fingerprint, base).map(|(r, _)| r);
                let r = self.send(base, kind, key, previous.as_ref()).await;
                tracing::debug!(%base, fingerprint, status = ?r.status, outcome = ?outcome_name(&r.outcome), "probe");
                lock(&self.cache).insert(pair.clone(), (Instant::now(), r.clone()));
                r
            })
            .await
            .clone();
        // The next caller starts a new probe (if the cache is not enough for it).
        let mut inflight = lock(&self.inflight);
        if inflight.get(&pair).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
            inflight.remove(&pair);
        }
        result
    }

    /// Waits until `host:port` may be sent another request.
    async fn space(&self, url: &str) {
        let Some(host) = Url::parse(url).map(|u| u.host_port()) else { return };
        let wait = {
            let mut hosts = lock(&self.hosts);
            let now = Instant::now();
            let next = hosts.get(&host).copied().unwrap_or(now).max(now);
            hosts.insert(host, next + HOST_SPACING);
            next - now
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    async fn send(
        &self,
        base: &str,
        kind: ProbeKind,
        key: &SecretValue,
        previous: Option<&ProbeResult>,
    ) -> ProbeResult {
        let url = match kind {
            ProbeKind::Models => format!("{}/models", norm(base)),
            ProbeKind::OpenrouterKey => format!("{}/api/v1/key", origin(base)),
        };
        let request = format!("GET {url}");
        let done = |outcome, status| ProbeResult {
            outcome,
            status,
            request: request.clone(),
            at: crate::clock::now(),
        };
        let client = match self.client() {
            Ok(c) => c,
            Err(cause) => return done(Outcome::Unreachable { cause }, None),
        };
        self.space(&url).await;
        let sent = client.get(&url).bearer_auth(key.expose_secret()).send().await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => return done(Outcome::Unreachable { cause: describe(&e) }, None),
        };
        let status = resp.status().as_u16();
        let body = read_limited(resp).await;
        let outcome = match (status, kind) {
            (200, ProbeKind::Models) => {
                Outcome::Valid { models: body.as_deref().and_then(parse_models), limits: None }
            }
            (200, ProbeKind::OpenrouterKey) => {
                let data = body
                    .as_deref()
                    .and_then(|b| serde_json::from_slice::<Value>(b).ok())
                    .and_then(|v| v.get("data").cloned());
                let limits = data.as_ref().map(openrouter_limits);
                let exhausted = data
                    .as_ref()
                    .and_then(|d| d.get("limit_remaining"))
                    .and_then(Value::as_f64)
                    .is_some_and(|r| r <= 0.0);
                if exhausted {
                    Outcome::RateLimited { limits }
                } else {
                    let models = self.openrouter_models(client, base).await;
                    Outcome::Valid { models, limits }
                }
            }
            (401 | 403, _) => Outcome::Rejected,
            (404, _) => Outcome::NotFound,
            (405, _)
                if body
                    .as_deref()
                    .is_some_and(|b| String::from_utf8_lossy(b).contains(CODING_AGENTS)) =>
            {
                Outcome::PlanClientRejected
            }
            (429, _) => {
                // Keep the limits the key reported last time, so the finding can show them.
                let limits = previous.and_then(|p| match &p.outcome {
                    Outcome::Valid { limits, .. } | Outcome::RateLimited { limits } => {
                        limits.clone()
                    }
                    _ => None,
                });
                Outcome::RateLimited { limits }
            }
            _ => Outcome::Unexpected,
        };
        done(outcome, Some(status))
    }

    /// OpenRouter's public model list (no key is sent), for tool support.
    async fn openrouter_models(&self, client: &reqwest::Client, base: &str) -> Option<Vec<Model>> {
        let url = format!("{}/api/v1/models", origin(base));
        self.space(&url).await;
        let resp = client.get(&url).send().await.ok()?;
        if !resp.status().is_success() {
            return None;
        }
        parse_models(&read_limited(resp).await?)
    }
}

fn outcome_name(o: &Outcome) -> &'static str {
    match o {
        Outcome::Valid { .. } => "valid",
        Outcome::Rejected => "rejected",
        Outcome::NotFound => "not-found",
        Outcome::PlanClientRejected => "plan-client-rejected",
        Outcome::RateLimited { .. } => "rate-limited",
        Outcome::Unreachable { .. } => "unreachable",
        Outcome::Unexpected => "unexpected",
        Outcome::Refused => "refused",
    }
}

/// `scheme://host[:port]` of a base URL.
pub fn origin(base: &str) -> String {
    let b = base.trim();
    let Some((scheme, rest)) = b.split_once("://") else { return norm(b) };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    format!("{scheme}://{}", &rest[..end])
}

/// A transport error in words: what failed, without the URL (the evidence names it).
fn describe(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    // The innermost cause says why (DNS, refused, certificate); none of them holds the key.
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    format!("{what}: {cause}")
}

async fn read_limited(mut resp: reqwest::Response) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        if body.len() + chunk.len() > MAX_BODY {
            return None;
        }
        body.extend_from_slice(&chunk);
    }
    Some(body)
}

/// `{"data":[{"id", "supported_parameters"?}]}` (OpenAI and OpenRouter shapes).
fn parse_models(body: &[u8]) -> Option<Vec<Model>> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let data = v.get("data")?.as_array()?;
    Some(
        data.iter()
            .filter_map(|m| {
                let id = m.get("id")?.as_str()?.to_string();
                let tools = m
                    .get("supported_parameters")
                    .and_then(Value::as_array)
                    .map(|p| p.iter().any(|x| x.as_str() == Some("tools")));
                Some(Model { id, tools })
            })
            .collect(),
    )
}

/// OpenRouter's `GET /api/v1/key` data in words: label, credit and rate limits.
fn openrouter_limits(d: &Value) -> String {
    let num = |k: &str| d.get(k).filter(|v| !v.is_null()).map(Value::to_string);
    let mut parts = Vec::new();
    if let Some(l) = d.get("label").and_then(Value::as_str) {
        parts.push(format!("key \"{l}\""));
    }
    if d.get("is_free_tier").and_then(Value::as_bool) == Some(true) {
        parts.push("free tier".to_string());
    }
    match (num("limit"), num("limit_remaining")) {
        (Some(l), Some(r)) => parts.push(format!("credit limit {l}, {r} remaining")),
        (Some(l), None) => parts.push(format!("credit limit {l}")),
        _ => parts.push("no credit limit".to_string()),
    }
    if let Some(u) = num("usage") {
        parts.push(format!("usage {u}"));
    }
    if let Some(rl) = d.get("rate_limit") {
        let req = rl.get("requests").map(Value::to_string);
        let int = rl.get("interval").and_then(Value::as_str);
        if let (Some(r), Some(i)) = (req, int) {
            parts.push(format!("rate limit {r} requests per {i}"));
        }
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_and_lists() {
        assert_eq!(origin("https://openrouter.ai/api/v1"), "https://openrouter.ai");
        assert_eq!(origin("http://127.0.0.1:9/x?y"), "http://127.0.0.1:9");
        let m = parse_models(
            br#"{"data":[{"id":"a","supported_parameters":["tools"]},{"id":"b","supported_parameters":[]},{"id":"c"}]}"#,
        )
        .unwrap();
        assert_eq!(m.iter().map(|m| m.tools).collect::<Vec<_>>(), [Some(true), Some(false), None]);
        let l = openrouter_limits(&serde_json::json!({
            "label": "sk-or-v1-abc…", "limit": 10, "limit_remaining": 0, "usage": 10,
            "is_free_tier": true, "rate_limit": {"requests": 20, "interval": "10s"}
        }));
        assert!(l.contains("free tier") && l.contains("credit limit 10, 0 remaining"), "{l}");
        assert!(l.contains("20 requests per 10s"), "{l}");
    }

    #[tokio::test]
    async fn a_key_is_never_sent_outside_its_provider() {
        let prober = Prober::from_env();
        let catalog = Catalog::builtin();
        let key = SecretValue::new("sk-0123456789abcdef0123456789abcdef".into());
        let key = Key { value: &key, fingerprint: "sha256:000000000000" };
        let intl = "https://dashscope-intl.aliyuncs.com/compatible-mode/v1";
        let cleared = crate::gate::catalogue_endpoint(&catalog, intl).unwrap();
        let r = prober
            .probe(&catalog, &cleared, "http://127.0.0.1:9/v1", ProbeKind::Models, key, true)
            .await;
        assert_eq!(r.outcome, Outcome::Refused);
        assert!(prober.cached("sha256:000000000000", "http://127.0.0.1:9/v1").is_none());
        // A URL the user chose, but over plain http to another machine: the key stays home.
        let lan = "http://10.0.0.9:8080/v1";
        let key_info = crate::gate::Key { variable: None, text: None };
        let cleared = crate::gate::clear(&catalog, lan, &key_info, || true).clearance().unwrap();
        let r = prober.probe(&catalog, &cleared, lan, ProbeKind::Models, key, true).await;
        assert_eq!(r.outcome, Outcome::Refused);
    }
}
