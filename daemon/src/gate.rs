//! The one gate a key passes before it may leave the daemon, by probe or by `run`.
//!
//! A directory's own files (a cloned repository) can name any base URL and any key variable.
//! So a key goes only to:
//! - an endpoint of the catalogue whose provider is the key's (DashScope keys to DashScope's
//!   regions and plans), which is how region and plan discovery work;
//! - a URL the user chose: the same base URL and key come out when the project's own files are
//!   left out (home settings, the exported environment, qwen-env's config), or the project's
//!   files are ones the user trusted (`qwen-env trust`, by content hash).
//!
//! Anything else is refused with an `untrusted-endpoint` finding. A [`Clearance`] is the proof
//! that a destination passed; [`crate::probe::Prober::probe`] will not attach a key without one,
//! and only this module makes them. Plain `http` to anything but loopback is refused by the
//! prober on top of that, whoever chose it.

use std::path::PathBuf;

use qwen_env_proto::{Finding, Severity};
use qwen_env_resolve::Catalog;
use qwen_env_resolve::catalog::Url;

/// A destination the gate let through, anchoring where the key may go from there (the same
/// URL, or another endpoint of the same provider: [`Catalog::may_send`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clearance {
    anchor: String,
}

impl Clearance {
    /// The cleared base URL.
    pub fn anchor(&self) -> &str {
        &self.anchor
    }
}

/// What the gate knows about the key it is asked about.
pub struct Key<'a> {
    /// The variable the key is read from (`DASHSCOPE_API_KEY`), when known.
    pub variable: Option<&'a str>,
    /// The key's text, when the daemon holds it in plain (a key from a file or the environment).
    pub text: Option<&'a str>,
}

/// The gate's word on one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The key may go there.
    Cleared(Clearance),
    /// The user's own files name it, but it is not an http(s) URL the daemon could send to: no
    /// probe; the tool will fail on it by itself.
    NotAUrl,
    /// The directory's own files chose it and the user has not trusted them: no probe, no `run`.
    Untrusted,
}

impl Verdict {
    /// The clearance, when there is one.
    pub fn clearance(&self) -> Option<Clearance> {
        match self {
            Self::Cleared(c) => Some(c.clone()),
            Self::NotAUrl | Self::Untrusted => None,
        }
    }
}

/// Judges `base` for `key`: cleared when it is an endpoint of the key's provider in the
/// catalogue, or when `chosen_by_user` says the user (not the project) chose it. Fails closed:
/// a base URL the project chose is untrusted even when it does not parse (the tool's own URL
/// parser may read it differently). `chosen_by_user` is only called when the catalogue does not
/// decide: it may resolve again or read files.
pub fn clear(
    catalog: &Catalog,
    base: &str,
    key: &Key<'_>,
    chosen_by_user: impl FnOnce() -> bool,
) -> Verdict {
    let parsed = Url::parse(base).is_some();
    let cleared = || Verdict::Cleared(Clearance { anchor: base.to_owned() });
    if parsed && is_providers_endpoint(catalog, base, key) {
        return cleared();
    }
    match (chosen_by_user(), parsed) {
        (true, true) => cleared(),
        (true, false) => Verdict::NotAUrl,
        (false, _) => Verdict::Untrusted,
    }
}

/// Clears a catalogue endpoint itself: `key set` tries the endpoints of the families the key
/// belongs to, which the catalogue (not any directory's files) names.
pub fn catalogue_endpoint(catalog: &Catalog, base: &str) -> Option<Clearance> {
    catalog.detect(base).map(|_| Clearance { anchor: base.to_owned() })
}

/// Whether `base` is an endpoint of a family whose provider is one of the key's: a family that
/// names the key's variable, or one the key's text belongs to by prefix.
fn is_providers_endpoint(catalog: &Catalog, base: &str, key: &Key<'_>) -> bool {
    let Some(here) = catalog.detect(base) else { return false };
    let provider = here.family.provider();
    let named = key.variable.is_some_and(|v| {
        catalog
            .families
            .iter()
            .any(|f| f.provider() == provider && f.env_keys.iter().any(|e| e == v))
    });
    named
        || key.text.is_some_and(|t| {
            catalog.families_for_key(t, key.variable).iter().any(|f| f.provider() == provider)
        })
}

/// Plain `http` carries the key in the clear: only to this machine.
pub fn may_travel(base: &str) -> bool {
    Url::parse(base).is_some_and(|u| u.scheme() == "https" || u.is_local())
}

/// The finding code of a refused destination.
pub const UNTRUSTED: &str = "untrusted-endpoint";

/// The finding for a proxy that the directory's own files set: every request of the tool, the
/// key included, goes through it.
pub fn untrusted_proxy(proxy_source: &str, key_source: &str, cwd: &str) -> Finding {
    Finding {
        code: UNTRUSTED.to_owned(),
        severity: Severity::Error,
        message: format!(
            "this directory's own files set the proxy the tool sends every request through \
             ({proxy_source}), the key ({key_source}) included, and you have not trusted them: \
             `run` will not inject the key"
        ),
        fix: format!(
            "if that proxy is yours, trust this directory: qwen-env trust {cwd} (trust lapses \
             when those files change); otherwise remove it from {proxy_source}"
        ),
        location: Some(proxy_source.to_owned()),
        evidence: None,
    }
}

/// The finding for a destination the gate refused.
pub fn untrusted(
    base: &str,
    base_source: &str,
    key_source: &str,
    project: &[PathBuf],
    cwd: &str,
) -> Finding {
    let host = Url::parse(base).map_or_else(|| base.to_owned(), |u| u.host_port());
    let files: Vec<String> = project.iter().map(|p| p.display().to_string()).collect();
    Finding {
        code: UNTRUSTED.to_owned(),
        severity: Severity::Error,
        message: format!(
            "this directory's own files ({}) send the key ({key_source}) to {host}, which is \
             not an endpoint of the key's provider, and you have not trusted them: qwen-env \
             neither probes it nor lets `run` inject the key",
            files.join(", ")
        ),
        fix: format!(
            "if {base} is yours, trust this directory: qwen-env trust {cwd} (trust lapses when \
             those files change); otherwise remove it from {base_source}"
        ),
        location: Some(base_source.to_owned()),
        evidence: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_endpoints_of_the_keys_provider_pass_and_nothing_else_does_by_itself() {
        let c = Catalog::builtin();
        let ok = |v: Verdict| matches!(v, Verdict::Cleared(_));
        let ds = Key { variable: Some("DASHSCOPE_API_KEY"), text: None };
        let sg = "https://dashscope-intl.aliyuncs.com/compatible-mode/v1";
        assert!(ok(clear(&c, sg, &ds, || false)));
        assert!(ok(clear(&c, "https://coding.dashscope.aliyuncs.com/v1", &ds, || false)));
        // Another provider, or no provider at all: only the user's choice clears it.
        assert_eq!(clear(&c, "https://openrouter.ai/api/v1", &ds, || false), Verdict::Untrusted);
        assert_eq!(clear(&c, "http://127.0.0.1:9/v1", &ds, || false), Verdict::Untrusted);
        assert!(ok(clear(&c, "http://127.0.0.1:9/v1", &ds, || true)));
        // By the key's own prefix when its variable says nothing.
        let or = Key { variable: Some("SOME_KEY"), text: Some("sk-or-v1-0123456789abcdef") };
        assert!(ok(clear(&c, "https://openrouter.ai/api/v1", &or, || false)));
        assert_eq!(clear(&c, sg, &or, || false), Verdict::Untrusted);
        // Not a URL we can parse: never sent; untrusted when the project chose it.
        assert_eq!(clear(&c, "dashscope", &ds, || true), Verdict::NotAUrl);
        assert_eq!(clear(&c, "dashscope", &ds, || false), Verdict::Untrusted);
        // Spellings that a WHATWG parser (the tool's, and ours) reads as another host.
        for sneaky in [
            "http://127.0.0.1:18199\\@dashscope-intl.aliyuncs.com/compatible-mode/v1",
            "https://evil.example\\@dashscope-intl.aliyuncs.com/compatible-mode/v1",
            "HTTPS://evil.example/compatible-mode/v1",
            " https://evil.example/v1",
        ] {
            assert_eq!(clear(&c, sneaky, &ds, || false), Verdict::Untrusted, "{sneaky}");
        }
    }

    #[test]
    fn plain_http_only_to_loopback() {
        assert!(may_travel("https://example.com/v1"));
        assert!(may_travel("http://127.0.0.1:8080/v1"));
        assert!(may_travel("http://localhost:11434/v1"));
        assert!(may_travel("http://[::1]:8080/v1"));
        assert!(!may_travel("http://10.0.0.9:8080/v1"));
        assert!(!may_travel("http://example.com/v1"));
        assert!(!may_travel("http://127.attacker.example/v1"));
    }
}
