//! The endpoint catalogue (DESIGN.md section 8): provider families, their key prefixes and
//! variables, how to probe them, and their endpoints (region → base URL).
//!
//! Data, not code: an embedded default (`catalog.toml` beside this file), replaced by
//! `QWEN_ENV_CATALOG=<file>` and extended or overridden family by family by the `[[family]]` tables
//! of the user config. The format is a public contract (README, "Endpoint catalogue"): fields may
//! be added, never renamed.
//!
//! Pure: the daemon reads the files and hands the text here.

use serde::Deserialize;

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
}

impl EndpointDef {
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
            for e in &f.endpoints {
                if Url::parse(&e.base_url).is_none() {
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
        let url = Url::parse(base_url)?;
        let mut best: Option<(usize, Detected<'_>)> = None;
        for family in &self.families {
            for endpoint in &family.endpoints {
                let Some(ep) = Url::parse(&endpoint.base_url) else { continue };
                if ep.origin() == url.origin() && url.path_starts_with(&ep) {
                    let len = ep.segments.len();
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

/// Two base URLs equal up to case of scheme and host, default ports and a trailing slash.
pub fn same_url(a: &str, b: &str) -> bool {
    match (Url::parse(a), Url::parse(b)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// The parts of an http(s) URL that matching needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// `http` or `https`.
    pub scheme: String,
    /// Lower-cased host; loopback spellings (`localhost`, `127.0.0.1`, `[::1]`) are one host.
    pub host: String,
    /// The port, defaulted from the scheme.
    pub port: u16,
    /// Non-empty path segments.
    pub segments: Vec<String>,
}

impl Url {
    /// Parses `scheme://[user@]host[:port][/path][?query][#fragment]`; `None` for anything else.
    pub fn parse(text: &str) -> Option<Url> {
        let (scheme, rest) = text.trim().split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return None,
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        let hostport = authority.rsplit('@').next()?;
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6.split_once(']')?;
            (h.to_string(), after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (hostport.to_string(), None),
            }
        };
        if host.is_empty() {
            return None;
        }
        let port = match port {
            Some(p) => p.parse().ok()?,
            None => default_port,
        };
        let mut host = host.to_ascii_lowercase();
        if host == "localhost" || host == "::1" || host == "127.0.0.1" {
            host = "127.0.0.1".into();
        }
        let path = tail.split(['?', '#']).next().unwrap_or("");
        let segments = path.split('/').filter(|s| !s.is_empty()).map(str::to_string).collect();
        Some(Url { scheme, host, port, segments })
    }

    /// `scheme://host:port`.
    pub fn origin(&self) -> (String, String, u16) {
        (self.scheme.clone(), self.host.clone(), self.port)
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
