//! The endpoint catalogue (DESIGN.md section 8): provider families, their key prefixes and
//! variables, how to probe them, and their endpoints (region → base URL).
//!
//! Data, not code: an embedded default (`catalog.toml` beside this file), replaced by
//! `QWEN_ENV_CATALOG=<file>` and extended or overridden family by family by the `[[family]]` tables
//! of the user config. The format is a public contract (README, "Endpoint catalogue"): fields may
//! be added, never renamed.
//!
//! The only place that knows hosts, regions, plans and key prefixes: the static rules ask it what
//! a base URL and a key are ([`Catalog::endpoint_class`], [`Catalog::key_class`]), the daemon's
//! probes where a key may go. [`Url`] is the one URL parser of the resolver and the daemon.
//!
//! Pure: the daemon reads the files and hands the text here.

use std::sync::{Arc, OnceLock};

use regex::Regex;
use serde::{Deserialize, Deserializer};

/// The embedded default catalogue.
pub const DEFAULT_TOML: &str = include_str!("catalog.toml");

/// How a family's keys are checked for free.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeKind {
    /// `GET {base}/models` with `Authorization: Bearer <key>` (OpenAI-compatible servers).
    #[default]
    Models,
    /// `GET {origin}/api/v1/key` with the key; models from the public `GET {origin}/api/v1/models`.
    OpenrouterKey,
}

/// What the static rules treat a family as (HOST_TOOLS.md 3.4, 7). A family without a class is
/// still detected, probed and guarded; the class-based rules just say nothing about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Class {
    /// A pay-as-you-go API (Model Studio / DashScope).
    PayAsYouGo,
    /// A subscription plan whose keys work only on the plan's endpoints (Coding Plan, Token Plan).
    Plan,
    /// OpenRouter: `provider/model` ids, its own keys.
    Openrouter,
    /// OpenAI itself (the SDKs' default endpoint).
    Openai,
    /// Anthropic (keys only: no endpoint is probed).
    Anthropic,
    /// A server on this machine; every loopback URL is one.
    Local,
}

/// A regular expression a whole key matches (`key_pattern`), compiled once.
#[derive(Clone)]
pub struct KeyPattern {
    source: String,
    compiled: Arc<OnceLock<Option<Regex>>>,
}

impl KeyPattern {
    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    fn regex(&self) -> Option<&Regex> {
        self.compiled.get_or_init(|| Regex::new(&format!("^(?:{})$", self.source)).ok()).as_ref()
    }

    /// Whether `key` matches in full (an invalid pattern matches nothing; `check` rejects it).
    pub fn matches(&self, key: &str) -> bool {
        self.regex().is_some_and(|r| r.is_match(key))
    }
}

impl std::fmt::Debug for KeyPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("KeyPattern").field(&self.source).finish()
    }
}

impl PartialEq for KeyPattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for KeyPattern {}

impl<'de> Deserialize<'de> for KeyPattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let source = String::deserialize(d)?;
        Ok(KeyPattern { source, compiled: Arc::default() })
    }
}

/// One endpoint of a family.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointDef {
    /// Stable region id within the family (`cn-beijing`, `intl`, …).
    pub region: String,
    /// The base URL, as a host tool's settings would hold it.
    pub base_url: String,
    /// Words for people ("DashScope Singapore"); the region id when absent.
    #[serde(default)]
    pub label: Option<String>,
    /// `base_url` parsed, once: matching runs several times per resolution.
    #[serde(skip)]
    parsed: Parsed,
}

/// A base URL parsed on first use. Not part of an endpoint's identity (it follows from
/// `base_url`), so it compares equal whatever it holds.
#[derive(Debug, Clone, Default)]
struct Parsed(std::sync::OnceLock<Option<Url>>);

impl PartialEq for Parsed {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Parsed {}

impl EndpointDef {
    /// `base_url` parsed (`None` when it is not an http(s) URL, which [`Catalog::check`] refuses).
    pub fn url(&self) -> Option<&Url> {
        self.parsed.0.get_or_init(|| Url::parse(&self.base_url)).as_ref()
    }

    /// The label, else the region id.
    pub fn display(&self) -> &str {
        self.label.as_deref().unwrap_or(&self.region)
    }
}

/// A provider family: one kind of key, accepted by its endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Family {
    /// Stable id, shown in findings and `key ls`.
    pub id: String,
    /// Name for people.
    pub name: String,
    /// The company behind it: families of one provider (DashScope, Coding Plan, Token Plan) may be
    /// sent each other's keys while discovering where a key works. Defaults to the id.
    #[serde(default)]
    pub provider: Option<String>,
    /// Key prefixes; the most specific (longest) matching prefix across the catalogue wins.
    /// Empty: any key.
    #[serde(default)]
    pub key_prefixes: Vec<String>,
    /// Variables that carry this family's keys.
    #[serde(default)]
    pub env_keys: Vec<String>,
    /// How to probe.
    #[serde(default)]
    pub probe: ProbeKind,
    /// Whether a key rejected by one endpoint is tried at the others (regions). Local servers are
    /// different programs, not regions.
    #[serde(default = "yes")]
    pub discover: bool,
    /// Endpoints, region → base URL.
    #[serde(default, rename = "endpoint")]
    pub endpoints: Vec<EndpointDef>,
    /// What the static rules treat this family as; none: the class-based rules ignore it.
    #[serde(default)]
    pub class: Option<Class>,
    /// For the static rules only: a key is recognised as this family's by its prefix alone when
    /// no pattern is given, else only when it matches this regular expression in full (a
    /// DashScope key is `sk-` and 32 hex digits; many providers' keys start with `sk-`).
    #[serde(default)]
    pub key_pattern: Option<KeyPattern>,
}

fn yes() -> bool {
    true
}

impl Family {
    /// The provider this family belongs to.
    pub fn provider(&self) -> &str {
        self.provider.as_deref().unwrap_or(&self.id)
    }

    /// Length of the longest of this family's prefixes that `key` starts with; `Some(0)` for a
    /// family that takes any key, `None` when the key cannot be this family's.
    pub fn prefix_match(&self, key: &str) -> Option<usize> {
        if self.key_prefixes.is_empty() {
            return Some(0);
        }
        self.key_prefixes.iter().filter(|p| key.starts_with(p.as_str())).map(String::len).max()
    }
}

/// The whole catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// Families, in file order.
    #[serde(default, rename = "family")]
    pub families: Vec<Family>,
}

/// A base URL found in the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detected<'a> {
    /// Its family.
    pub family: &'a Family,
    /// The endpoint whose base URL is a prefix of it.
    pub endpoint: &'a EndpointDef,
}

/// A prefix is "specific" when it says more than the `sk-` nearly every provider uses: only then
/// is a key probed at a family on the strength of its prefix alone.
const SPECIFIC_PREFIX: usize = 4;

impl Catalog {
    /// The embedded default.
    pub fn builtin() -> Catalog {
        Catalog::parse(DEFAULT_TOML).expect("the embedded catalogue parses (unit-tested)")
    }

    /// Parses catalogue TOML; the error names the line and what is wrong.
    pub fn parse(text: &str) -> Result<Catalog, String> {
        let c: Catalog = toml::from_str(text).map_err(|e| crate::config::toml_error(text, &e))?;
        c.check()?;
        Ok(c)
    }

    /// Rejects what would make matching ambiguous or unsafe.
    pub fn check(&self) -> Result<(), String> {
        Self::check_families(&self.families)
    }

    /// The same checks for a list of families (the user config's `[[family]]` tables).
    pub fn check_families(families: &[Family]) -> Result<(), String> {
        for (i, f) in families.iter().enumerate() {
            if f.id.is_empty() {
                return Err(format!("family #{} has an empty id", i + 1));
            }
            if families[..i].iter().any(|g| g.id == f.id) {
                return Err(format!("family \"{}\" is defined twice", f.id));
            }
            if let Some(p) = &f.key_pattern
                && p.regex().is_none()
            {
                return Err(format!(
                    "family \"{}\": key_pattern {:?} is not a regular expression",
                    f.id,
                    p.as_str()
                ));
            }
            for e in &f.endpoints {
                if e.url().is_none() {
                    return Err(format!(
                        "family \"{}\" region \"{}\": base_url {:?} is not an http(s) URL",
                        f.id, e.region, e.base_url
                    ));
                }
            }
        }
        Ok(())
    }

    /// This catalogue with `overrides` applied: a family with the same id replaces the original
    /// whole (so a user can point a family elsewhere), a new id is added at the end.
    #[must_use]
    pub fn with_overrides(mut self, overrides: &[Family]) -> Catalog {
        for o in overrides {
            match self.families.iter_mut().find(|f| f.id == o.id) {
                Some(f) => *f = o.clone(),
                None => self.families.push(o.clone()),
            }
        }
        self
    }

    /// A family by id.
    pub fn family(&self, id: &str) -> Option<&Family> {
        self.families.iter().find(|f| f.id == id)
    }

    /// The endpoint a base URL belongs to: same scheme, host and port, and the endpoint's path is
    /// a prefix of the URL's (whole segments). The longest path wins, so `…/api/coding/paas/v4` is
    /// told apart from `…/api/paas/v4`.
    pub fn detect(&self, base_url: &str) -> Option<Detected<'_>> {
        self.detect_url(&Url::parse(base_url)?)
    }

    fn detect_url(&self, url: &Url) -> Option<Detected<'_>> {
        let mut best: Option<(usize, Detected<'_>)> = None;
        for family in &self.families {
            for endpoint in &family.endpoints {
                let Some(ep) = endpoint.url() else { continue };
                if ep.origin() == url.origin() && url.path_starts_with(ep) {
                    let len = ep.segments().len();
                    if best.as_ref().is_none_or(|(l, _)| len > *l) {
                        best = Some((len, Detected { family, endpoint }));
                    }
                }
            }
        }
        best.map(|(_, d)| d)
    }

    /// Families a key may belong to, judged by its prefix and the variable it is stored under:
    /// - families of the most specific matching prefix whose `env_keys` name `variable`;
    /// - else every family of that prefix, when the prefix is specific (`sk-sp-`, `sk-or-`);
    /// - else the families that name `variable` and whose prefixes the key fits.
    ///
    /// Empty when nothing claims the key: it is then probed nowhere.
    pub fn families_for_key(&self, key: &str, variable: Option<&str>) -> Vec<&Family> {
        let fits: Vec<(usize, &Family)> =
            self.families.iter().filter_map(|f| f.prefix_match(key).map(|n| (n, f))).collect();
        let Some(best) = fits.iter().map(|(n, _)| *n).max() else { return Vec::new() };
        let named = |f: &&Family| variable.is_some_and(|v| f.env_keys.iter().any(|e| e == v));
        let top: Vec<&Family> = fits.iter().filter(|(n, _)| *n == best).map(|(_, f)| *f).collect();
        let top_named: Vec<&Family> = top.iter().copied().filter(named).collect();
        if !top_named.is_empty() {
            return top_named;
        }
        if best >= SPECIFIC_PREFIX {
            return top;
        }
        fits.iter().map(|(_, f)| *f).filter(named).collect()
    }

    /// The family a base URL belongs to for the static rules: the detected endpoint's family, else
    /// the first family with an endpoint on the same host (another path or scheme of that
    /// service, such as `https://openrouter.ai/v1`).
    pub fn endpoint_family(&self, base_url: &str) -> Option<&Family> {
        let url = Url::parse(base_url)?;
        if let Some(d) = self.detect_url(&url) {
            return Some(d.family);
        }
        self.families
            .iter()
            .find(|f| f.endpoints.iter().any(|e| e.url().is_some_and(|u| u.host == url.host)))
    }

    /// What a base URL is for the static rules: its family's class, else [`Class::Local`] for a
    /// URL on this machine.
    pub fn endpoint_class(&self, base_url: &str) -> Option<Class> {
        self.endpoint_family(base_url)
            .and_then(|f| f.class)
            .or_else(|| Url::parse(base_url).filter(Url::is_local).map(|_| Class::Local))
    }

    /// The families the static rules take a key for: those with a prefix the key starts with,
    /// whose `key_pattern` (if any) it matches, ranked by the longest prefix and then by having
    /// matched a pattern. Families that take any key (no prefixes) never claim one.
    pub fn key_families(&self, key: &str) -> Vec<&Family> {
        let key = key.trim();
        let ranked: Vec<((usize, bool), &Family)> = self
            .families
            .iter()
            .filter(|f| !f.key_prefixes.is_empty())
            .filter_map(|f| {
                let n = f.prefix_match(key)?;
                match &f.key_pattern {
                    Some(p) if !p.matches(key) => None,
                    p => Some(((n, p.is_some()), f)),
                }
            })
            .collect();
        let Some(best) = ranked.iter().map(|(r, _)| *r).max() else { return Vec::new() };
        ranked.into_iter().filter(|(r, _)| *r == best).map(|(_, f)| f).collect()
    }

    /// What a key is for the static rules: the class its families share, `None` when the
    /// catalogue cannot tell (no family claims it, or they disagree).
    pub fn key_class(&self, key: &str) -> Option<Class> {
        let fams = self.key_families(key);
        let first = fams.first()?.class?;
        fams.iter().all(|f| f.class == Some(first)).then_some(first)
    }

    /// Families of a class, in file order.
    pub fn of_class(&self, class: Class) -> impl Iterator<Item = &Family> {
        self.families.iter().filter(move |f| f.class == Some(class))
    }

    /// Whether a request to `target` may carry a key that is configured for `configured`: the same
    /// URL, or an endpoint of a family of the same provider. The one rule that keeps keys from
    /// leaking to other hosts (DESIGN.md section 4).
    pub fn may_send(&self, configured: &str, target: &str) -> bool {
        if same_url(configured, target) {
            return true;
        }
        match (self.detect(configured), self.detect(target)) {
            (Some(a), Some(b)) => a.family.provider() == b.family.provider(),
            _ => false,
        }
    }
}

/// Two base URLs equal up to case of scheme and host, default ports, loopback spellings and a
/// trailing slash.
pub fn same_url(a: &str, b: &str) -> bool {
    match (Url::parse(a), Url::parse(b)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// The parts of an http(s) URL that matching needs, parsed by the `url` crate (WHATWG rules:
/// IDNA and IPv4 normalisation, `.`/`..` segments resolved) plus the loopback rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    scheme: String,
    host: String,
    port: u16,
    segments: Vec<String>,
    local: bool,
}

/// The one spelling of this machine's loopback address: `localhost`, `127.0.0.1` and `[::1]` are
/// the same server to a user (and to Ollama, which binds both).
const LOOPBACK: &str = "127.0.0.1";

impl Url {
    /// Parses an absolute `http` or `https` URL; `None` for anything else.
    pub fn parse(text: &str) -> Option<Url> {
        let u = url::Url::parse(text.trim()).ok()?;
        if !matches!(u.scheme(), "http" | "https") {
            return None;
        }
        let port = u.port_or_known_default()?;
        let (host, local) = match u.host()? {
            url::Host::Domain(d) => {
                let d = d.to_ascii_lowercase();
                if d == "localhost" { (LOOPBACK.to_owned(), true) } else { (d, false) }
            }
            url::Host::Ipv4(a) if a == std::net::Ipv4Addr::LOCALHOST => (LOOPBACK.to_owned(), true),
            url::Host::Ipv4(a) => (a.to_string(), a.is_loopback() || a.is_unspecified()),
            url::Host::Ipv6(a) if a == std::net::Ipv6Addr::LOCALHOST => (LOOPBACK.to_owned(), true),
            url::Host::Ipv6(a) => (a.to_string(), a.is_unspecified()),
        };
        if host.is_empty() {
            return None;
        }
        let segments = u
            .path_segments()
            .map(|s| s.filter(|s| !s.is_empty()).map(str::to_owned).collect())
            .unwrap_or_default();
        Some(Url { scheme: u.scheme().to_owned(), host, port, segments, local })
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// Lower-cased host; loopback spellings (`localhost`, `127.0.0.1`, `[::1]`) are one host.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port, defaulted from the scheme.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Non-empty path segments.
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// Whether the host is this machine: a loopback address, `localhost`, or `0.0.0.0` (which
    /// connects to this machine too).
    pub fn is_local(&self) -> bool {
        self.local
    }

    /// `(scheme, host, port)`.
    pub fn origin(&self) -> (&str, &str, u16) {
        (&self.scheme, &self.host, self.port)
    }

    /// Whether `prefix`'s path is a whole-segment prefix of this one.
    pub fn path_starts_with(&self, prefix: &Url) -> bool {
        self.segments.starts_with(&prefix.segments)
    }

    /// `host:port`, the unit of per-host rate limiting.
    pub fn host_port(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_parses_and_has_every_family() {
        let c = Catalog::builtin();
        for id in [
            "dashscope",
            "coding-plan",
            "token-plan",
            "openrouter",
            "openai",
            "local",
            "requesty",
            "deepseek",
            "xai",
            "minimax",
            "zai",
            "moonshot",
            "modelscope",
            "anthropic",
        ] {
            assert!(c.family(id).is_some(), "{id}");
        }
        assert_eq!(c.family("dashscope").unwrap().endpoints.len(), 4);
        assert_eq!(c.family("openrouter").unwrap().probe, ProbeKind::OpenrouterKey);
        assert!(!c.family("local").unwrap().discover);
    }

    #[test]
    fn detection_matches_origin_and_longest_path() {
        let c = Catalog::builtin();
        let d = c.detect("https://DashScope-Intl.aliyuncs.com/compatible-mode/v1/").unwrap();
        assert_eq!(
            (d.family.id.as_str(), d.endpoint.region.as_str()),
            ("dashscope", "ap-southeast-1")
        );
        let d = c.detect("https://api.z.ai/api/coding/paas/v4").unwrap();
        assert_eq!(d.endpoint.region, "coding");
        let d = c.detect("https://api.z.ai/api/paas/v4").unwrap();
        assert_eq!(d.endpoint.region, "general");
        assert_eq!(c.detect("http://127.0.0.1:11434/v1").unwrap().endpoint.region, "ollama");
        assert!(c.detect("http://localhost:9999/v1").is_none(), "other port");
        assert!(c.detect("http://dashscope-intl.aliyuncs.com/compatible-mode/v1").is_none());
        assert!(
            c.detect("https://dashscope-intl.aliyuncs.com.evil.example/compatible-mode/v1")
                .is_none()
        );
        assert!(c.detect("https://dashscope-intl.aliyuncs.com/compatible-modex/v1").is_none());
        assert_eq!(c.detect("https://api.deepseek.com/v1").unwrap().family.id, "deepseek");
    }

    #[test]
    fn most_specific_prefix_wins_and_names_decide() {
        let c = Catalog::builtin();
        let ids = |key: &str, var: Option<&str>| -> Vec<String> {
            c.families_for_key(key, var).iter().map(|f| f.id.clone()).collect()
        };
        assert_eq!(ids("sk-sp-abc", None), ["coding-plan", "token-plan"]);
        assert_eq!(ids("sk-sp-abc", Some("BAILIAN_CODING_PLAN_API_KEY")), ["coding-plan"]);
        assert_eq!(ids("sk-sp-abc", Some("DASHSCOPE_API_KEY")), ["coding-plan", "token-plan"]);
        assert_eq!(ids("sk-or-v1-abc", Some("OPENAI_API_KEY")), ["openrouter"]);
        assert_eq!(ids("sk-0123abcd", Some("DASHSCOPE_API_KEY")), ["dashscope"]);
        // A bare sk- key under a name no family claims goes nowhere (not to OpenAI, DeepSeek…).
        assert!(ids("sk-0123abcd", Some("OPENAI_API_KEY")).is_empty());
        assert!(ids("sk-0123abcd", None).is_empty());
        assert_eq!(ids("anything", Some("REQUESTY_API_KEY")), ["requesty"]);
    }

    #[test]
    fn keys_go_only_to_the_same_provider() {
        let c = Catalog::builtin();
        let intl = "https://dashscope-intl.aliyuncs.com/compatible-mode/v1";
        assert!(c.may_send(intl, "https://dashscope.aliyuncs.com/compatible-mode/v1"));
        assert!(c.may_send(intl, "https://coding.dashscope.aliyuncs.com/v1"));
        assert!(!c.may_send(intl, "https://openrouter.ai/api/v1"));
        assert!(!c.may_send(intl, "https://api.openai.com/v1"));
        assert!(c.may_send("http://10.0.0.9:8080/v1/", "http://10.0.0.9:8080/v1"));
        assert!(!c.may_send("http://10.0.0.9:8080/v1", "http://10.0.0.9:8081/v1"));
        assert!(!c.may_send("http://10.0.0.9:8080/v1", intl));
    }

    #[test]
    fn urls_parse_with_the_loopback_rule() {
        let u = Url::parse(" HTTPS://user:pw@Example.COM/v1//x/?q#f ").unwrap();
        assert_eq!(u.origin(), ("https", "example.com", 443));
        assert_eq!(u.segments(), ["v1", "x"]);
        assert!(!u.is_local());
        for local in ["http://localhost:8080/v1", "http://127.0.0.1:8080", "http://[::1]:8080/"] {
            let u = Url::parse(local).unwrap();
            assert_eq!(u.host_port(), "127.0.0.1:8080", "{local}");
            assert!(u.is_local());
        }
        assert!(Url::parse("http://127.0.0.2:1/v1").unwrap().is_local());
        assert!(Url::parse("http://0.0.0.0:1/v1").unwrap().is_local());
        assert_eq!(Url::parse("http://[2001:db8::1]:9/").unwrap().host(), "2001:db8::1");
        for bad in ["ftp://x/", "https://", "dashscope.aliyuncs.com/v1", "http://x:99999/", ""] {
            assert!(Url::parse(bad).is_none(), "{bad}");
        }
        assert!(same_url("https://openrouter.ai/api/v1/", "https://OpenRouter.ai:443/api/v1"));
        assert!(same_url("http://localhost:11434/v1", "http://[::1]:11434/v1"));
    }

    #[test]
    fn classes_of_endpoints_and_keys() {
        let c = Catalog::builtin();
        let class = |u: &str| c.endpoint_class(u);
        assert_eq!(
            class("https://dashscope-intl.aliyuncs.com/compatible-mode/v1"),
            Some(Class::PayAsYouGo)
        );
        // Another path on a family's host still belongs to it.
        assert_eq!(class("https://dashscope.aliyuncs.com/api/v1"), Some(Class::PayAsYouGo));
        assert_eq!(class("https://coding-intl.dashscope.aliyuncs.com/v1"), Some(Class::Plan));
        assert_eq!(
            class("https://token-plan.cn-beijing.maas.aliyuncs.com/compatible-mode/v1"),
            Some(Class::Plan)
        );
        assert_eq!(class("https://openrouter.ai/v1"), Some(Class::Openrouter));
        assert_eq!(class("https://api.openai.com/v1"), Some(Class::Openai));
        assert_eq!(class("http://127.0.0.1:8080/v1"), Some(Class::Local));
        assert_eq!(class("http://[::1]:8080/v1"), Some(Class::Local));
        assert_eq!(class("https://api.deepseek.com"), None);
        assert_eq!(class("https://example.com/v1"), None);
        let key = |k: &str| c.key_class(k);
        assert_eq!(key("sk-sp-abc"), Some(Class::Plan));
        assert_eq!(key("sk-0123456789abcdef0123456789abcdef"), Some(Class::PayAsYouGo));
        assert_eq!(key("sk-0123456789ABCDEF0123456789abcdef"), Some(Class::PayAsYouGo));
        assert_eq!(key(" sk-0123456789abcdef0123456789abcdef\n"), Some(Class::PayAsYouGo));
        assert_eq!(key("sk-or-v1-xyz"), Some(Class::Openrouter));
        assert_eq!(key("sk-proj-xyz"), Some(Class::Openai));
        assert_eq!(key("sk-ant-api03-xyz"), Some(Class::Anthropic));
        // `sk-` alone is many providers' prefix: not a DashScope key without its shape.
        assert_eq!(key("sk-0123abcd"), None);
        assert_eq!(key("xai-0123"), None);
        assert_eq!(key("anything"), None);
        let fams: Vec<&str> = c.key_families("sk-sp-abc").iter().map(|f| f.id.as_str()).collect();
        assert_eq!(fams, ["coding-plan", "token-plan"]);
        // A user family moves a host into a class.
        let user = Catalog::parse(
            "[[family]]\nid = \"corp\"\nname = \"Corp plan\"\nclass = \"plan\"\n[[family.endpoint]]\nregion = \"x\"\nbase_url = \"https://llm.corp.example/v1\"\n",
        )
        .unwrap();
        assert_eq!(class("https://llm.corp.example/v1"), None);
        let c = c.with_overrides(&user.families);
        assert_eq!(c.endpoint_class("https://llm.corp.example/v1"), Some(Class::Plan));
        assert!(
            Catalog::parse("[[family]]\nid = \"a\"\nname = \"a\"\nkey_pattern = \"sk-(\"\n")
                .is_err()
        );
        assert!(
            Catalog::parse("[[family]]\nid = \"a\"\nname = \"a\"\nclass = \"gold\"\n").is_err()
        );
    }

    #[test]
    fn overrides_replace_by_id_and_add() {
        let user = Catalog::parse(
            "[[family]]\nid = \"dashscope\"\nname = \"mine\"\n[[family.endpoint]]\nregion = \"x\"\nbase_url = \"http://127.0.0.1:1/v1\"\n\
             [[family]]\nid = \"corp\"\nname = \"Corp gateway\"\nenv_keys = [\"CORP_KEY\"]\n",
        )
        .unwrap();
        let c = Catalog::builtin().with_overrides(&user.families);
        assert_eq!(c.family("dashscope").unwrap().name, "mine");
        assert_eq!(c.detect("http://localhost:1/v1/x").unwrap().family.id, "dashscope");
        assert!(c.family("corp").is_some());
        assert!(
            Catalog::parse("[[family]]\nid = \"a\"\nname = \"a\"\nprobe = \"ping\"\n").is_err()
        );
        assert!(
            Catalog::parse("[[family]]\nid = \"a\"\nname = \"a\"\n[[family.endpoint]]\nregion = \"r\"\nbase_url = \"ftp://x\"\n")
                .is_err()
        );
    }
}
