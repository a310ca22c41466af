//! Model refs and the providers the qwen plugin registers (checked against
//! `@openclaw/qwen-provider` 2026.9.4 and real runs of OpenClaw 2026.9.6).
//!
//! - A ref is `<provider>/<id>`; a bare id means `openai/<id>` (a real run of
//!   `agents.defaults.model.primary: "qwen3.5-plus"` fails "Unknown model: openai/qwen3.5-plus").
//! - It comes from `--model` of `openclaw agent …`/`openclaw infer …`, else
//!   `agents.defaults.model.primary` (or a string `agents.defaults.model`).
//! - Only `qwen`, `qwen-token-plan` and `bailian-token-plan` are modelled; `dashscope/…`,
//!   `modelstudio/…` and `qwencloud/…` do not borrow qwen's provider or env keys.

use crate::jsonc::{Loc, Node, Value};

/// The qwen provider's env keys, in order.
pub const QWEN_VARS: &[&str] = &["QWEN_API_KEY", "MODELSTUDIO_API_KEY", "DASHSCOPE_API_KEY"];
/// Token Plan's only env key.
pub const TOKEN_PLAN_VARS: &[&str] = &["QWEN_TOKEN_PLAN_API_KEY"];
/// The qwen provider's default: the Coding Plan intl endpoint.
pub const DEFAULT_BASE: &str = "https://coding-intl.dashscope.aliyuncs.com/v1";
/// Token Plan's default (`buildQwenTokenPlanProvider`, global region).
pub const TOKEN_PLAN_BASE: &str =
    "https://token-plan.ap-southeast-1.maas.aliyuncs.com/compatible-mode/v1";

/// A provider this resolver models.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    /// Provider id.
    pub id: &'static str,
    /// Env variables OpenClaw reads for it, in order.
    pub vars: &'static [&'static str],
    /// The base URL when none is configured (`None`: a legacy custom provider needs its own).
    pub default_base: Option<&'static str>,
    /// `models.providers` ids whose `baseUrl` counts, first non-empty in file order.
    pub base_ids: &'static [&'static str],
    /// Whether the plugin ships a model catalogue for it (else the config must list models).
    pub catalog: bool,
}

/// `qwen`.
pub const QWEN: Spec = Spec {
    id: "qwen",
    vars: QWEN_VARS,
    default_base: Some(DEFAULT_BASE),
    base_ids: &["qwen", "modelstudio"],
    catalog: true,
};
/// `qwen-token-plan`.
pub const TOKEN_PLAN: Spec = Spec {
    id: "qwen-token-plan",
    vars: TOKEN_PLAN_VARS,
    default_base: Some(TOKEN_PLAN_BASE),
    base_ids: &["qwen-token-plan"],
    catalog: true,
};
/// `bailian-token-plan`: registered with no env variable and no catalogue ("legacy custom
/// config"); a real run with only `QWEN_TOKEN_PLAN_API_KEY` set fails "No API key found".
pub const LEGACY_TOKEN_PLAN: Spec = Spec {
    id: "bailian-token-plan",
    vars: &[],
    default_base: None,
    base_ids: &["bailian-token-plan"],
    catalog: false,
};

/// The spec for a provider id, if modelled.
pub fn spec(provider: &str) -> Option<Spec> {
    match provider {
        "qwen" => Some(QWEN),
        "qwen-token-plan" => Some(TOKEN_PLAN),
        "bailian-token-plan" => Some(LEGACY_TOKEN_PLAN),
        _ => None,
    }
}

/// Every env variable any modelled provider reads (what `run` may inject).
pub fn all_vars() -> impl Iterator<Item = &'static str> {
    QWEN_VARS.iter().chain(TOKEN_PLAN_VARS).copied()
}

/// Where the model ref came from.
#[derive(Debug, Clone, PartialEq)]
pub enum RefSource {
    /// `--model` on the command line.
    Flag,
    /// A config member.
    Config(Loc),
    /// Nothing set: the qwen plugin's default provider is assumed.
    Default,
}

/// A parsed model ref.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelRef {
    /// Lower-case provider id.
    pub provider: String,
    /// The model id (may be empty when nothing is set).
    pub id: String,
    /// As written (`qwen/qwen3.5-plus`).
    pub raw: String,
    /// Where from.
    pub source: RefSource,
}

/// `--model` of `openclaw agent …` / `openclaw infer …` (last one wins).
pub fn flag_model(argv: &[String]) -> Option<String> {
    let sub = argv.iter().skip(1).find(|a| !a.starts_with('-'))?;
    if sub != "agent" && sub != "infer" {
        return None;
    }
    let mut out = None;
    let mut it = argv.iter().skip(1);
    while let Some(a) = it.next() {
        if a == "--" {
            break;
        }
        if a == "--model" {
            out = it.next().cloned();
        } else if let Some(v) = a.strip_prefix("--model=") {
            out = Some(v.to_string());
        }
    }
    out.filter(|s| !s.trim().is_empty())
}

/// Split `<provider>/<id>`; a bare id is `openai/<id>`.
pub fn split(raw: &str) -> (String, String) {
    let raw = raw.trim();
    match raw.split_once('/') {
        Some((p, id)) => (p.trim().to_ascii_lowercase(), id.trim().to_string()),
        None => ("openai".into(), raw.to_string()),
    }
}

/// The model ref in force.
pub fn model_ref(argv: &[String], config: Option<&Node>) -> ModelRef {
    if let Some(m) = flag_model(argv) {
        let (provider, id) = split(&m);
        return ModelRef { provider, id, raw: m, source: RefSource::Flag };
    }
    let node = config.and_then(|c| {
        c.path(&["agents", "defaults", "model", "primary"])
            .or_else(|| c.path(&["agents", "defaults", "model"]))
            .filter(|n| n.as_str().is_some_and(|s| !s.trim().is_empty()))
    });
    match node {
        Some(n) => {
            let raw = n.as_str().unwrap_or_default().to_string();
            let (provider, id) = split(&raw);
            ModelRef { provider, id, raw, source: RefSource::Config(n.loc.clone()) }
        }
        None => ModelRef {
            provider: "qwen".into(),
            id: String::new(),
            raw: String::new(),
            source: RefSource::Default,
        },
    }
}

/// `models.providers.<id>` (provider ids compare case-insensitively).
pub fn provider_node<'a>(config: Option<&'a Node>, id: &str) -> Option<&'a Node> {
    config?
        .path(&["models", "providers"])?
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(id))
        .map(|(_, v)| v)
}

/// The configured `baseUrl` for a spec: the first of its ids with a non-empty one.
pub fn configured_base<'a>(config: Option<&'a Node>, spec: &Spec) -> Option<(&'a str, &'a Node)> {
    let providers = config?.path(&["models", "providers"])?.as_object()?;
    providers.iter().find_map(|(k, v)| {
        let k = k.to_ascii_lowercase();
        if !spec.base_ids.contains(&k.as_str()) {
            return None;
        }
        let b = v.get("baseUrl")?;
        b.as_str().filter(|s| !s.trim().is_empty()).map(|s| (s.trim(), b))
    })
}

/// The host of a URL, lower-case, if it parses.
pub fn host(url: &str) -> Option<String> {
    url::Url::parse(url).ok()?.host_str().map(|h| h.trim_end_matches('.').to_ascii_lowercase())
}

/// The plugin's native endpoints (`providerEndpoints`, class `modelstudio-native`).
pub fn is_native(url: &str) -> bool {
    matches!(
        host(url).as_deref(),
        Some(
            "coding-intl.dashscope.aliyuncs.com"
                | "coding.dashscope.aliyuncs.com"
                | "dashscope.aliyuncs.com"
                | "dashscope-intl.aliyuncs.com"
                | "token-plan.ap-southeast-1.maas.aliyuncs.com"
                | "token-plan.cn-beijing.maas.aliyuncs.com"
        )
    )
}

/// The native standard (pay-as-you-go) DashScope hosts.
pub fn is_native_standard(url: &str) -> bool {
    matches!(host(url).as_deref(), Some("dashscope.aliyuncs.com" | "dashscope-intl.aliyuncs.com"))
}

/// The provider's `models[]` ids, or `None` when there is no `models` array.
pub fn model_rows(p: Option<&Node>) -> Option<Vec<&str>> {
    let a = p?.get("models")?.as_array()?;
    Some(a.iter().filter_map(|m| m.get("id").and_then(Node::as_str)).collect())
}

/// The qwen plugin's model catalogue (`modelCatalog.providers.qwen`, 2026.9.4).
pub const QWEN_CATALOG: &[&str] = &[
    "qwen3.5-plus",
    "qwen3.6-flash",
    "qwen3.6-plus",
    "qwen3.7-max",
    "qwen3.7-plus",
    "qwen3.8-max",
    "qwen3.8-flash",
    "qwen3-max-2026-01-23",
    "qwen3-coder-next",
    "qwen3-coder-plus",
    "MiniMax-M2.5",
    "glm-5",
    "glm-4.7",
    "kimi-k2.5",
];
/// Removed from the catalogue on the Coding Plan hosts (`QWEN_STANDARD_ONLY_MODEL_IDS`).
pub const STANDARD_ONLY: &[&str] =
    &["qwen3.6-flash", "qwen3.7-max", "qwen3.8-max", "qwen3.8-flash"];
/// Token Plan's catalogue (`modelCatalog.providers["qwen-token-plan"]`).
pub const TOKEN_PLAN_CATALOG: &[&str] = &[
    "qwen3.7-plus",
    "qwen3.8-max",
    "qwen3.8-flash",
    "qwen3.6-plus",
    "qwen3-coder-next",
    "kimi-k2.5",
    "glm-5",
    "MiniMax-M2.5",
];

/// Whether the host is a Coding Plan host.
pub fn is_coding(url: &str) -> bool {
    matches!(
        host(url).as_deref(),
        Some("coding-intl.dashscope.aliyuncs.com" | "coding.dashscope.aliyuncs.com")
    )
}

/// Whether the host is a Token Plan host.
pub fn is_token_plan(url: &str) -> bool {
    host(url).is_some_and(|h| h.starts_with("token-plan.") && h.ends_with(".maas.aliyuncs.com"))
}

/// The built-in models OpenClaw knows for `spec` at `base` (none on the standard hosts: a real
/// run of `qwen/qwen3.5-plus` on `dashscope-intl` with no `models[]` row fails).
pub fn catalog(spec: &Spec, base: &str) -> Vec<&'static str> {
    match spec.id {
        "qwen" if is_coding(base) => {
            QWEN_CATALOG.iter().copied().filter(|m| !STANDARD_ONLY.contains(m)).collect()
        }
        "qwen-token-plan" if is_token_plan(base) => TOKEN_PLAN_CATALOG.to_vec(),
        _ => Vec::new(),
    }
}

/// Why OpenClaw would stop with "Unknown model" before sending anything, if it would.
/// `base` is the effective base URL (after `${VAR}` substitution). Checked against real runs: on
/// a native host the id must be in `models[]` or in the plugin's catalogue for that host (an
/// empty `models: []` adds nothing and removes nothing); any other host accepts any id. A
/// catalogue model given with `--model` counts only when `agents.defaults` names it too
/// (`configured`): a real `infer model run --model qwen/qwen3.6-plus` on the Coding Plan host
/// stops with "Unknown model", the same ref as `agents.defaults.model.primary` is sent.
pub fn unknown_model(
    spec: &Spec,
    m: &ModelRef,
    p: Option<&Node>,
    base: &str,
    configured: bool,
) -> Option<String> {
    if m.id.is_empty() {
        return None;
    }
    let rows = model_rows(p);
    if rows.as_ref().is_some_and(|r| r.iter().any(|id| *id == m.id)) {
        return None;
    }
    if !spec.catalog {
        return Some(format!(
            "{} has no model catalogue: models.providers[\"{}\"].models[] must list \"{}\"",
            spec.id, spec.id, m.id
        ));
    }
    // Real runs: with `${VAR}` undefined OpenClaw warns "Missing env var" and the model is
    // unknown unless a models[] row names it (then the request fails as an "Invalid URL"); a
    // defined URL that is not http(s) is not native, so any id is known and the fetch fails.
    if let Some(var) = super::env::unresolved(base) {
        return Some(format!("the baseUrl \"{base}\" names ${{{var}}}, which nothing defines"));
    }
    if !is_http(base) {
        return None;
    }
    let in_catalog = catalog(spec, base).contains(&m.id.as_str());
    if !is_native(base) || (in_catalog && (configured || m.source != RefSource::Flag)) {
        return None;
    }
    let empty = if rows.is_some_and(|r| r.is_empty()) {
        " (the empty models: [] that `openclaw onboard` writes adds none)"
    } else {
        ""
    };
    if in_catalog {
        return Some(format!(
            "\"{}\" is in OpenClaw's catalogue for {base}, but a --model ref is known only when \
             agents.defaults names it (model.primary or models[\"{}\"]) or models.providers[\"{}\"].models[] lists it",
            m.id, m.raw, spec.id
        ));
    }
    Some(if is_native_standard(base) {
        format!(
            "on the standard DashScope endpoint {base} OpenClaw only knows the models listed in \
             models.providers[\"{}\"].models[]{empty}",
            spec.id
        )
    } else {
        format!(
            "on {base} OpenClaw knows only its built-in catalogue for that endpoint and \
             models.providers[\"{}\"].models[], and neither has \"{}\"{empty}",
            spec.id, m.id
        )
    })
}

/// Whether `base` is a URL OpenClaw fetches (`http://`, `https://`).
pub fn is_http(base: &str) -> bool {
    base.starts_with("http://") || base.starts_with("https://")
}

/// A `models[]` row to add, as JSON text for a fix.
pub fn row_fix(id: &str) -> String {
    format!("{{\"id\": \"{id}\", \"name\": \"{id}\"}}")
}

/// Whether `n` is a JSON string (for the `apiKey` classification).
pub fn is_string(n: &Node) -> bool {
    matches!(n.value, Value::String(_))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| (*x).to_string()).collect()
    }

    #[test]
    fn refs_split_and_the_flag_of_agent_and_infer_wins() {
        assert_eq!(split("qwen/qwen3.5-plus"), ("qwen".into(), "qwen3.5-plus".into()));
        assert_eq!(split("Qwen-Token-Plan/glm-5"), ("qwen-token-plan".into(), "glm-5".into()));
        assert_eq!(split("qwen3.5-plus"), ("openai".into(), "qwen3.5-plus".into()));
        let a =
            v(&["openclaw", "agent", "--local", "--model", "qwen-token-plan/x", "--message", "hi"]);
        assert_eq!(flag_model(&a).as_deref(), Some("qwen-token-plan/x"));
        let a = v(&["openclaw", "infer", "model", "run", "--model=dashscope/y"]);
        assert_eq!(flag_model(&a).as_deref(), Some("dashscope/y"));
        assert_eq!(flag_model(&v(&["openclaw", "gateway", "--model", "q/x"])), None);
        assert_eq!(flag_model(&v(&["openclaw"])), None);
        let m = model_ref(&v(&["openclaw", "agent", "--model", "qwen/a"]), None);
        assert_eq!((m.provider.as_str(), m.id.as_str(), m.source), ("qwen", "a", RefSource::Flag));
        assert_eq!(model_ref(&v(&["openclaw"]), None).source, RefSource::Default);
    }

    #[test]
    fn unknown_model_is_predicted_where_openclaw_fails_offline() {
        let m = |id: &str| ModelRef {
            provider: "qwen".into(),
            id: id.into(),
            raw: format!("qwen/{id}"),
            source: RefSource::Default,
        };
        let node = |t: &str| crate::cache::parse_openclaw(t, &std::sync::Arc::from("c")).unwrap();
        let empty = node(r#"{"models": []}"#);
        let other = node(r#"{"models": [{"id": "other"}]}"#);
        let listed = node(r#"{"models": [{"id": "q"}]}"#);
        let std_url = "https://dashscope-intl.aliyuncs.com/compatible-mode/v1";
        assert!(unknown_model(&QWEN, &m("q"), None, std_url, false).is_some());
        assert!(unknown_model(&QWEN, &m("q"), Some(&other), std_url, false).is_some());
        assert!(unknown_model(&QWEN, &m("q"), Some(&listed), std_url, false).is_none());
        // The Coding Plan host knows its catalogue (less the standard-only ids), with or
        // without onboard's empty list (real runs: qwen3.5-plus sent, foo-model refused).
        assert!(unknown_model(&QWEN, &m("q"), None, DEFAULT_BASE, false).is_some());
        assert!(unknown_model(&QWEN, &m("q"), Some(&empty), DEFAULT_BASE, false).is_some());
        assert!(unknown_model(&QWEN, &m("q"), Some(&listed), DEFAULT_BASE, false).is_none());
        assert!(
            unknown_model(&QWEN, &m("qwen3.5-plus"), Some(&empty), DEFAULT_BASE, false).is_none()
        );
        assert!(unknown_model(&QWEN, &m("qwen3.7-max"), None, DEFAULT_BASE, false).is_some());
        assert!(unknown_model(&QWEN, &m("qwen3.5-plus"), Some(&empty), std_url, false).is_some());
        assert!(
            unknown_model(&TOKEN_PLAN, &m("qwen3.7-plus"), Some(&empty), TOKEN_PLAN_BASE, false)
                .is_none()
        );
        assert!(
            unknown_model(&TOKEN_PLAN, &m("q"), Some(&empty), TOKEN_PLAN_BASE, false).is_some()
        );
        // A loopback (non-native) base accepts any id, even with the empty list (real run).
        assert!(
            unknown_model(&QWEN, &m("q"), Some(&empty), "http://127.0.0.1:9/v1", false).is_none()
        );
        assert!(unknown_model(&QWEN, &m("q"), None, "${QWEN_BASE}/v1", false).is_some());
        // Not http(s): any id is known there; the fetch fails ("Invalid URL", real run).
        assert!(unknown_model(&QWEN, &m("q"), None, "ftp://x/v1", false).is_none());
        assert!(
            unknown_model(&LEGACY_TOKEN_PLAN, &m("q"), Some(&other), "http://127.0.0.1:9", false)
                .is_some()
        );
        assert!(
            unknown_model(&LEGACY_TOKEN_PLAN, &m("q"), Some(&listed), "http://127.0.0.1:9", false)
                .is_none()
        );
        // A catalogue model given with --model counts only when agents.defaults names it too
        // (real runs: `--model qwen/qwen3.6-plus` refused, the same ref as primary sent).
        let flag = ModelRef { source: RefSource::Flag, ..m("qwen3.6-plus") };
        assert!(unknown_model(&QWEN, &flag, None, DEFAULT_BASE, false).is_some());
        assert!(unknown_model(&QWEN, &flag, None, DEFAULT_BASE, true).is_none());
        assert!(unknown_model(&QWEN, &m("qwen3.6-plus"), None, DEFAULT_BASE, false).is_none());
    }
}
