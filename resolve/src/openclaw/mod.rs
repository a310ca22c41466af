//! OpenClaw 2026.9.6's resolution (HOST_TOOLS.md section 6 and "Resolution algorithm (OpenClaw
//! 2026.9.6, provider `qwen`)", with the "Corrections from real runs", which win), for the
//! providers of the qwen plugin (`@openclaw/qwen-provider` 2026.9.4).
//!
//! Modelled, each checked against the real OpenClaw:
//! - the model ref `<provider>/<id>` from `--model` of `agent`/`infer` or
//!   `agents.defaults.model(.primary)` ([`model`]); `qwen`, `qwen-token-plan` and
//!   `bailian-token-plan` resolve, `dashscope/…`, `modelstudio/…` and bare ids (`openai/…`) give
//!   OpenClaw's own error;
//! - the environment merge ([`env`]) and `${VAR}`;
//! - `$include` with OpenClaw's merge and containment rules ([`include`]; done by the loader);
//! - the auth-profile stores in SQLite, shared and agent `main` ([`store`]), their order
//!   (`auth.order`, `auth.profiles`, store order by type and last use), profile references in
//!   `apiKey`, and the legacy `auth-profiles.json` that fails closed;
//! - the key order: profile reference > `auth: "api-key"` config key > stored profiles > env
//!   variables > config literal or SecretRef;
//! - the offline failures: "Unknown model" on a native host for a model in neither `models[]`
//!   nor the plugin's catalogue for that host (none for the standard hosts), or with a `${VAR}`
//!   in the base URL that nothing defines; "Invalid URL" for a base URL that is not http(s).
//!
//! Not read, on purpose: the per-agent `models.json`. Real runs show that neither its
//! `baseUrl` nor its `apiKey` changes what is sent (differential cases `agent-models-json-*`),
//! although OpenClaw's documentation says they win.
//!
//! Not modelled: profile pins (`--auth-profile`, session overrides), `credentialPrecedence:
//! "env-first"`, cooldowns and OAuth refresh in the profile order, the model when none is
//! configured (the qwen provider is assumed), SecretRefs other than
//! `source: "env"`, agents other than `main`, the login-shell import, and providers
//! outside the qwen plugin.

pub mod env;
pub mod include;
pub mod model;
pub mod store;

use std::path::PathBuf;

use qwen_env_proto::{Field, Finding, Severity};

use crate::catalog::{Catalog, Class};
use crate::display::{Cand, Show, Shower, field, finding};
use crate::envfiles::{EnvView, Origin};
use crate::jsonc::{Node, Value};
use crate::rules;
use crate::secrets;
use crate::sources::Sources;
use model::{ModelRef, RefSource};
use store::{Profile, ProfileStore};

pub use model::{DEFAULT_BASE, QWEN_VARS as KEY_VARS, TOKEN_PLAN_BASE};

/// What wins the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Winner {
    /// A stored profile (by order, or named by `apiKey`).
    Profile {
        /// Its id.
        id: String,
        /// Where it lives: `<db> <row>`.
        place: String,
    },
    /// `models.providers.<p>.apiKey` under `auth: "api-key"`.
    ConfigPinned,
    /// An env variable.
    Env(String),
    /// `models.providers.<p>.apiKey` as the last resort.
    ConfigLiteral,
}

/// What the resolution decided.
#[derive(Debug, Clone)]
pub struct OpenClawResolution {
    /// auth type, model, base URL, API key.
    pub fields: [Field; 4],
    /// The environment after OpenClaw's merge (and injection).
    pub env: EnvView,
    /// The env variable the key comes from (or would: for the keychain overlay).
    pub key_var: Option<String>,
    /// The key (secret) when plain.
    pub key: Option<String>,
    /// The variables the provider reads, in order (what `run` may inject).
    pub key_vars: &'static [&'static str],
    /// What wins the key.
    pub winner: Option<Winner>,
    /// Findings.
    pub findings: Vec<Finding>,
}

/// Env variable names that are markers ("use env"), not keys, in `apiKey`.
fn is_marker(s: &str) -> bool {
    model::all_vars().any(|v| v == s) || s == "OPENAI_API_KEY"
}

/// Where a stored profile lives, as shown.
pub fn profile_place(p: &Profile) -> String {
    format!("{} {} profile {}", p.db.display(), p.row, p.id)
}

/// The profiles OpenClaw tries for `provider`, in order (`resolveAuthProfileOrder`).
pub fn profile_order<'a>(
    store: &'a ProfileStore,
    config: Option<&Node>,
    provider: &str,
) -> Vec<&'a Profile> {
    let lower = |s: &str| s.trim().to_ascii_lowercase();
    let from_cfg_order = config
        .and_then(|c| c.path(&["auth", "order"]))
        .and_then(Node::as_object)
        .and_then(|o| o.iter().find(|(k, _)| lower(k) == provider))
        .and_then(|(_, v)| v.as_array())
        .map(|a| a.iter().filter_map(Node::as_str).map(str::to_owned).collect::<Vec<_>>());
    let explicit = store.order.get(provider).cloned().or(from_cfg_order);
    let from_store_order = store.order.contains_key(provider);
    let cfg_profiles: Vec<String> = config
        .and_then(|c| c.path(&["auth", "profiles"]))
        .and_then(Node::as_object)
        .map(|o| {
            o.iter()
                .filter(|(_, v)| {
                    v.get("provider").and_then(Node::as_str).is_some_and(|p| lower(p) == provider)
                })
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default();
    let store_ids: Vec<String> =
        store.profiles.iter().filter(|p| p.provider == provider).map(|p| p.id.clone()).collect();
    let base = explicit.clone().unwrap_or_else(|| {
        if cfg_profiles.is_empty() { store_ids.clone() } else { cfg_profiles.clone() }
    });
    let eligible = |id: &String| {
        store
            .get(id)
            .filter(|p| p.provider == provider && p.kind != "oauth")
            .filter(|p| p.secret.is_some() || p.secret_ref.is_some())
    };
    let mut out: Vec<&Profile> = base.iter().filter_map(eligible).collect();
    let all_missing = base.iter().all(|id| store.get(id).is_none());
    let mut repaired = false;
    if out.is_empty() && all_missing && (from_store_order || !cfg_profiles.is_empty()) {
        out = store_ids.iter().filter_map(eligible).collect();
        repaired = true;
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|p| seen.insert(p.id.clone()));
    if explicit.is_none() || repaired {
        // orderProfilesByMode: token before api_key, then least recently used first.
        out.sort_by_key(|p| {
            (u8::from(p.kind == "api_key"), store.last_used.get(&p.id).copied().unwrap_or(0))
        });
    }
    out
}

struct KeyCand {
    value: String,
    source: String,
    var: Option<String>,
    winner: Winner,
    ok: bool,
}

/// Resolve. `inject` are keychain entries set as process environment: (variable, placeholder).
/// `keychain` names the entries the keychain holds (for the `keychain-shadowed` warning; empty
/// for `--as-is`).
pub fn resolve(
    src: &Sources,
    argv: &[String],
    env0: &[(String, String)],
    inject: &[(String, String)],
    keychain: &[String],
    shower: &dyn Shower,
    catalog: &Catalog,
) -> OpenClawResolution {
    let oc = &src.openclaw;
    let mut findings = Vec::new();
    let label = oc.config.as_ref().map_or_else(
        || oc.state_dir.join("openclaw.json").display().to_string(),
        |f| f.label.to_string(),
    );
    let mut config_ok = true;
    let config: Option<Node> = match (&oc.config, &oc.merged) {
        (Some(f), _) if f.parsed.is_err() => {
            let e = f.parsed.as_ref().err();
            let at = e.filter(|e| e.line > 0).map_or_else(
                || f.label.to_string(),
                |e| format!("{}:{}:{}", f.label, e.line, e.col),
            );
            let why = e.map_or_else(String::new, |e| format!(": {e}"));
            findings.push(finding(
                "config-parse-error",
                Severity::Error,
                format!("{} does not parse as JSON5{why}", f.label),
                format!("fix the syntax in {at}"),
                Some(at),
            ));
            config_ok = false;
            None
        }
        (_, Some(Err(e))) => {
            findings.push(finding(
                "openclaw-config-invalid",
                Severity::Error,
                format!("OpenClaw refuses to run (\"OpenClaw config is invalid\"): {}", e.message),
                "keep every $include file inside the directory of openclaw.json (or list its \
                 directory in OPENCLAW_INCLUDE_ROOTS), make sure it exists and parses, then \
                 check with: openclaw config validate"
                    .into(),
                Some(e.loc.to_string()),
            ));
            config_ok = false;
            None
        }
        (_, Some(Ok(n))) => Some(n.clone()),
        (Some(f), None) => f.parsed.as_ref().ok().cloned(),
        (None, None) => None,
    };
    let cfg = config.as_ref();
    let env = env::build(oc, cfg, env0, inject, &mut findings);

    let mref = model::model_ref(argv, cfg);
    let ref_source = match &mref.source {
        RefSource::Flag => "--model".to_string(),
        RefSource::Config(loc) => format!("{loc} agents.defaults.model"),
        RefSource::Default => "default".to_string(),
    };
    // A legacy auth-profile file with a credential for this provider aborts the run (one that
    // does not parse, whatever it holds); a real run with only an `openai` profile in it went
    // ahead with the env key.
    for f in &oc.legacy_auth_profiles {
        let providers = f.parsed.as_ref().ok().map(legacy_providers);
        if providers.is_some_and(|p| !p.contains(&mref.provider)) {
            continue;
        }
        findings.push(finding(
            "openclaw-legacy-auth-profiles",
            Severity::Error,
            format!("legacy {} holds credentials for provider {}: OpenClaw aborts the run (\"requires legacy credential migration\") before any key is tried", f.label, mref.provider),
            "run: openclaw doctor --fix".into(),
            Some(f.label.to_string()),
        ));
    }
    let ref_loc = match &mref.source {
        RefSource::Config(loc) => Some(loc.to_string()),
        RefSource::Flag => Some("--model".into()),
        RefSource::Default => None,
    };
    let empty = || Field::default();
    let model_cands: Vec<Cand> = (!mref.id.is_empty())
        .then(|| Cand::new(mref.id.clone(), ref_source.clone(), true, Show::Text))
        .into_iter()
        .collect();
    let (_, model_field) = field(&model_cands, shower, None);
    let store = oc.profiles.clone().unwrap_or_default();

    let Some(spec) = model::spec(&mref.provider).filter(|_| config_ok) else {
        if config_ok {
            foreign(&mref, cfg, &store, &env, ref_loc, &mut findings);
        }
        rules::plaintext(&secrets::openclaw(src), &mut findings);
        return OpenClawResolution {
            fields: [empty(), model_field, empty(), empty()],
            env,
            key_var: None,
            key: None,
            key_vars: &[],
            winner: None,
            findings,
        };
    };
    let provider = model::provider_node(cfg, spec.id);
    let pname = spec.id;

    // Base URL.
    let base_cfg = model::configured_base(cfg, &spec).map(|(s, n)| (env::subst(s, &env), n));
    let (base, base_source, base_loc) = match &base_cfg {
        Some((b, n)) => (
            b.clone(),
            format!("{} models.providers.{pname}.baseUrl", n.loc),
            Some(n.loc.to_string()),
        ),
        None => match spec.default_base {
            Some(d) => (d.to_string(), format!("default (provider {pname})"), None),
            None => (String::new(), String::new(), None),
        },
    };
    let base_is_default = base_cfg.is_none();
    let base_cands: Vec<Cand> = (!base.is_empty())
        .then(|| Cand::new(base.clone(), base_source.clone(), true, Show::Text))
        .into_iter()
        .collect();
    let (_, base_field) = field(&base_cands, shower, None);
    let api_node = provider.and_then(|p| p.get("api"));
    let api = api_node.and_then(Node::as_str).unwrap_or("openai-completions");
    let api_source = api_node.map_or_else(
        || format!("default (provider {pname})"),
        |n| format!("{} models.providers.{pname}.api", n.loc),
    );
    let (_, auth_field) = field(&[Cand::new(api, api_source, true, Show::Text)], shower, None);

    let defaults = cfg.and_then(|c| c.path(&["agents", "defaults"]));
    let configured = defaults.is_some_and(|d| {
        d.path(&["model", "primary"]).or_else(|| d.get("model")).and_then(Node::as_str)
            == Some(mref.raw.as_str())
            || d.path(&["models"]).and_then(|m| m.get(&mref.raw)).is_some()
    });
    let unknown = model::unknown_model(&spec, &mref, provider, &base, configured);
    let unset_var = env::unresolved(&base);
    let define_var = unset_var.as_ref().map(|var| {
        format!(
            "define {var} (export it, or set it in {}) or write the URL in models.providers.{pname}.baseUrl in {label}",
            oc.state_dir.join(".env").display()
        )
    });
    if let Some(why) = &unknown {
        let listed = cfg
            .and_then(|c| c.path(&["agents", "defaults", "models"]))
            .and_then(|m| m.get(&format!("{pname}/{}", mref.id)))
            .is_some();
        let found = if listed {
            format!(
                " (Found agents.defaults.models[\"{pname}/{}\"], but no matching models.providers[\"{pname}\"].models[] entry)",
                mref.id
            )
        } else {
            String::new()
        };
        findings.push(finding(
            "openclaw-unknown-model",
            Severity::Error,
            format!("Unknown model: {pname}/{}{found}: OpenClaw stops before sending anything, because {why}", mref.id),
            define_var.clone().unwrap_or_else(|| {
                format!("add {} to models.providers[\"{pname}\"].models in {label}", model::row_fix(&mref.id))
            }),
            provider.and_then(|p| p.get("models")).map(|n| n.loc.to_string()).or(base_loc.clone()).or(ref_loc.clone()),
        ));
    }
    if unknown.is_none() && !base.is_empty() && (unset_var.is_some() || !model::is_http(&base)) {
        findings.push(finding(
            "openclaw-base-url-invalid",
            Severity::Error,
            format!("the baseUrl \"{base}\" of provider {pname} is not an http(s) URL{}: OpenClaw sends nothing (\"Invalid URL\")", unset_var.as_ref().map_or_else(String::new, |v| format!(" (${{{v}}} is not defined)"))),
            define_var.clone().unwrap_or_else(|| {
                format!("set models.providers.{pname}.baseUrl to an https:// endpoint in {label}")
            }),
            base_loc.clone(),
        ));
    }
    if base.is_empty() {
        findings.push(finding(
            "openclaw-unknown-model",
            Severity::Error,
            format!("provider {pname} is a legacy custom provider with no default endpoint, and {label} gives it no baseUrl"),
            format!("use qwen-token-plan/{} instead (or set models.providers[\"{pname}\"].baseUrl)", mref.id),
            ref_loc.clone(),
        ));
    }

    // API key, in OpenClaw's order.
    let cfg_key = provider.and_then(|p| p.get("apiKey"));
    let cfg_key_loc = cfg_key.map(|n| n.loc.to_string());
    let auth_api_key =
        provider.and_then(|p| p.get("auth")).and_then(Node::as_str) == Some("api-key");
    let mut cands: Vec<KeyCand> = Vec::new();
    let cfg_src = |n: &Node| format!("{} models.providers.{pname}.apiKey", n.loc);
    let profile_ref = cfg_key.and_then(Node::as_str).and_then(|s| store.get(s));
    // Resolve a profile's secret (a keyRef from env is substituted).
    let profile_secret = |p: &Profile| -> Option<(String, Option<String>)> {
        match (&p.secret, &p.secret_ref) {
            (Some(s), _) => Some((s.clone(), None)),
            (None, Some((source, id))) if source == "env" => {
                env.nonempty(id).map(|v| (v.to_string(), Some(id.clone())))
            }
            _ => None,
        }
    };
    if let (Some(p), Some(n)) = (profile_ref, cfg_key) {
        let usable = p.provider == pname && p.kind != "oauth";
        if usable && let Some((v, var)) = profile_secret(p) {
            cands.push(KeyCand {
                value: v,
                source: format!("{} (profile {} named by {})", profile_place(p), p.id, cfg_src(n)),
                var,
                winner: Winner::Profile { id: p.id.clone(), place: profile_place(p) },
                ok: true,
            });
        } else {
            findings.push(finding(
                "openclaw-profile-ref-invalid",
                Severity::Error,
                format!("models.providers.{pname}.apiKey names the stored profile \"{}\", which is a {} credential for provider {}: OpenClaw stops (\"Per-entry apiKey … references a … credential\")", p.id, p.kind, p.provider),
                format!("point apiKey at a {pname} api_key profile (openclaw models auth paste-api-key --provider {pname}), or remove apiKey from {label}"),
                Some(n.loc.to_string()),
            ));
        }
    }
    // The config key when explicit: a literal, `${VAR}`, or a SecretRef.
    let cfg_value = |n: &Node| -> Option<(String, Option<String>)> {
        match &n.value {
            Value::String(s) if store.get(s).is_some() || is_marker(s) => None,
            Value::String(s) => Some((env::subst(s, &env), None)),
            Value::Object(_) if n.get("source").and_then(Node::as_str) == Some("env") => {
                let id = n.get("id").and_then(Node::as_str)?;
                env.nonempty(id).map(|v| (v.to_string(), Some(id.to_string())))
            }
            _ => None,
        }
    };
    if let Some(n) = cfg_key
        && matches!(n.value, Value::Object(_))
        && n.get("source").and_then(Node::as_str) != Some("env")
    {
        findings.push(finding(
            "openclaw-secretref",
            Severity::Warning,
            format!("models.providers.{pname}.apiKey is a SecretRef with source {:?}: OpenClaw resolves it, qwen-env does not, so the key shown may not be the one sent", n.get("source").and_then(Node::as_str).unwrap_or("?")),
            "use {\"source\": \"env\", \"id\": \"QWEN_API_KEY\"} (then run supplies it from the keychain)".into(),
            Some(n.loc.to_string()),
        ));
    }
    if auth_api_key
        && let Some(n) = cfg_key
        && let Some((v, var)) = cfg_value(n)
    {
        cands.push(KeyCand {
            value: v,
            source: cfg_src(n),
            var,
            winner: Winner::ConfigPinned,
            ok: true,
        });
    }
    for p in profile_order(&store, cfg, pname) {
        if let Some((v, var)) = profile_secret(p) {
            cands.push(KeyCand {
                value: v,
                source: profile_place(p),
                var,
                winner: Winner::Profile { id: p.id.clone(), place: profile_place(p) },
                ok: true,
            });
        }
    }
    for v in spec.vars {
        for c in env.cands(v) {
            if !c.value.is_empty() {
                let ok = env.winner(v).is_some_and(|w| w.value == c.value);
                cands.push(KeyCand {
                    value: c.value.clone(),
                    source: c.source(v),
                    var: Some((*v).to_string()),
                    winner: Winner::Env((*v).to_string()),
                    ok,
                });
            }
        }
    }
    if !auth_api_key
        && let Some(n) = cfg_key
        && let Some((v, var)) = cfg_value(n)
    {
        cands.push(KeyCand {
            value: v,
            source: cfg_src(n),
            var,
            winner: Winner::ConfigLiteral,
            ok: true,
        });
    }
    let view: Vec<Cand> = {
        let first = cands.iter().position(|c| c.ok);
        cands
            .iter()
            .enumerate()
            .map(|(i, c)| {
                Cand::new(c.value.clone(), c.source.clone(), Some(i) == first, Show::Secret)
            })
            .collect()
    };
    let win = cands.iter().position(|c| c.ok);
    let (_, key_field) = field(&view, shower, win.and_then(|w| cands[w].var.clone()));
    let mut key = None;
    let mut key_var =
        spec.vars.iter().find(|v| env.nonempty(v).is_some()).map(|v| (*v).to_string());
    let mut winner = None;
    if let Some(w) = win {
        let c = &cands[w];
        key = Some(c.value.clone());
        if c.var.is_some() {
            key_var.clone_from(&c.var);
        }
        winner = Some(c.winner.clone());
        if c.value.starts_with("profile:")
            && matches!(c.winner, Winner::ConfigLiteral | Winner::ConfigPinned)
        {
            findings.push(finding(
                "openclaw-profile-prefix",
                Severity::Error,
                format!("models.providers.{pname}.apiKey starts with \"profile:\": OpenClaw has no such prefix and sends the text literally as the key"),
                format!("set \"apiKey\" to the exact profile id (e.g. \"{pname}:default\") or remove it and use {}, in {label}", spec.vars.first().unwrap_or(&"a stored profile")),
                cfg_key_loc.clone(),
            ));
        }
        // A stored profile that shadows env keys, said in every mode.
        if let Winner::Profile { id, place } = &c.winner
            && let Some(v) = spec.vars.iter().find(|v| env.nonempty(v).is_some())
        {
            findings.push(finding(
                "openclaw-profile-wins",
                Severity::Info,
                format!("the stored profile {id} ({place}) beats {v}: OpenClaw sends the profile's key"),
                format!("to use {v} instead, move the profile's key into the keychain (qwen-env key import) and remove the profile: openclaw models auth logout {id} --yes"),
                Some(place.clone()),
            ));
        }
    } else if config_ok && !base.is_empty() {
        let vars = if spec.vars.is_empty() {
            "no env variable (it is a legacy custom provider)".to_string()
        } else {
            format!("none of {} is set", spec.vars.join(", "))
        };
        findings.push(finding(
            "key-missing",
            Severity::Error,
            format!("No API key found for provider \"{pname}\": {vars}, no stored profile and no apiKey in {label}"),
            match spec.vars.first() {
                Some(v) => format!("qwen-env key set {v}"),
                None => format!("use qwen-token-plan/{} with qwen-env key set QWEN_TOKEN_PLAN_API_KEY, or: openclaw models auth paste-api-key --provider {pname}", mref.id),
            },
            spec.vars.first().map(|v| (*v).to_string()),
        ));
    }
    // Under run: the keychain holds this provider's variable, but something else wins.
    let kc_var = spec.vars.iter().find(|v| keychain.iter().any(|k| k == *v));
    if let (Some(kv), Some(w)) = (kc_var, &winner) {
        let from_keychain = matches!(w, Winner::Env(v) if env.winner(v).is_some_and(|c| matches!(c.origin, Origin::Keychain(_))));
        if !from_keychain {
            let (what, fix, loc) = match w {
                Winner::Profile { id, place } => (
                    format!("the stored profile {id} ({place})"),
                    format!(
                        "remove the profile (after `qwen-env key import` if you want its key): openclaw models auth logout {id} --yes"
                    ),
                    Some(place.clone()),
                ),
                Winner::ConfigPinned => (
                    format!("the apiKey in {label} (auth: \"api-key\" pins it)"),
                    format!(
                        "remove models.providers.{pname}.apiKey (or its auth: \"api-key\") from {label}"
                    ),
                    cfg_key_loc.clone(),
                ),
                Winner::Env(v) => (
                    format!("{v}, which comes before {kv} in OpenClaw's order"),
                    format!("qwen-env key set {v} (or unset {v})"),
                    Some(v.clone()),
                ),
                Winner::ConfigLiteral => (
                    format!("the apiKey in {label}"),
                    format!("remove models.providers.{pname}.apiKey from {label}"),
                    cfg_key_loc.clone(),
                ),
            };
            findings.push(finding(
                "keychain-shadowed",
                Severity::Warning,
                format!("run injects {kv} from the keychain, but OpenClaw sends {what} instead"),
                fix,
                loc,
            ));
        }
    }
    let plain_key = key.as_deref().filter(|k| !k.contains('\u{1}'));
    if spec.id == "qwen" {
        // At the provider entry the baseUrl belongs in, else where the model is chosen.
        let at = provider.map(|p| p.loc.to_string()).or_else(|| ref_loc.clone());
        default_endpoint_rule(catalog, plain_key, base_is_default, &label, at, &mut findings);
    }
    if !(spec.id == "qwen"
        && base_is_default
        && plain_key.is_some_and(|k| wrong_for_default(catalog, k)))
        && let Some(k) = plain_key
    {
        rules::key_endpoint_rules(
            catalog,
            Some(k),
            key_var.as_deref(),
            key_field.source.as_deref().unwrap_or(""),
            Some(&base),
            base_field.source.as_deref().unwrap_or(""),
            model_field
                .value
                .as_deref()
                .map(|m| (m, model_field.source.as_deref().unwrap_or_default())),
            &mut findings,
        );
    }
    if !base.is_empty() && base.starts_with("http") {
        rules::base_url_rules(&base, base_field.source.as_deref().unwrap_or(""), &mut findings);
    }
    rules::plaintext(&secrets::openclaw(src), &mut findings);
    OpenClawResolution {
        fields: [auth_field, model_field, base_field, key_field],
        env,
        key_var,
        key,
        key_vars: spec.vars,
        winner,
        findings,
    }
}

fn wrong_for_default(catalog: &Catalog, k: &str) -> bool {
    catalog
        .endpoint_family(DEFAULT_BASE)
        .filter(|f| f.class.is_some())
        .is_some_and(|f| catalog.key_class(k) != f.class)
}

/// The default endpoint takes one kind of key only (a Coding Plan key, in the catalogue).
fn default_endpoint_rule(
    catalog: &Catalog,
    key: Option<&str>,
    base_is_default: bool,
    label: &str,
    at: Option<String>,
    findings: &mut Vec<Finding>,
) {
    let Some(df) = catalog.endpoint_family(DEFAULT_BASE).filter(|f| f.class.is_some()) else {
        return;
    };
    let Some(k) = key.filter(|k| base_is_default && wrong_for_default(catalog, k)) else { return };
    let key_fams = catalog.key_families(k);
    let targets = rules::endpoint_list(key_fams.iter().copied())
        .or_else(|| rules::endpoint_list(catalog.of_class(Class::PayAsYouGo)))
        .map_or_else(String::new, |l| format!(" (one of {l})"));
    findings.push(finding(
        "openclaw-default-coding-endpoint",
        Severity::Error,
        format!("no baseUrl is configured for provider qwen, so OpenClaw sends this key to the {} endpoint {DEFAULT_BASE}; the key is not a key of {}", df.name, rules::key_words(&[df])),
        format!("set models.providers.qwen.baseUrl to the endpoint your key belongs to{targets} in {label}"),
        Some(at.unwrap_or_else(|| label.to_string())),
    ));
}

/// A model ref whose provider is not one the qwen plugin resolves here.
fn foreign(
    m: &ModelRef,
    cfg: Option<&Node>,
    store: &ProfileStore,
    env: &EnvView,
    loc: Option<String>,
    findings: &mut Vec<Finding>,
) {
    let p = &m.provider;
    let node = model::provider_node(cfg, p);
    let listed = model::model_rows(node).is_some_and(|r| r.contains(&m.id.as_str()));
    let qwen_like = matches!(p.as_str(), "dashscope" | "modelstudio" | "qwencloud");
    let bare = !m.raw.contains('/');
    let fix = format!(
        "write the model as qwen/{} (the qwen provider, which reads QWEN_API_KEY, MODELSTUDIO_API_KEY, DASHSCOPE_API_KEY and models.providers.qwen)",
        m.id
    );
    // Real runs: `dashscope/…` (as --model or as primary) stops at the model lookup ("Unknown
    // model": OpenClaw knows no such provider); `modelstudio/…` is a provider it knows, so it
    // stops at the auth lookup ("No API key found for provider \"modelstudio\"").
    let known_provider = p == "modelstudio";
    if ((qwen_like && !known_provider) || (bare && m.id.to_ascii_lowercase().starts_with("qwen")))
        && !listed
    {
        let why = if bare {
            format!(" (a model without a provider prefix is openai/{})", m.id)
        } else {
            String::new()
        };
        findings.push(finding(
            "openclaw-unknown-model",
            Severity::Error,
            format!("Unknown model: {p}/{}{why}: {p} is not the qwen provider and has no such model, so OpenClaw stops before sending anything", m.id),
            fix,
            loc,
        ));
    } else if qwen_like {
        let has_profile = store.profiles.iter().any(|q| q.provider == *p);
        let has_key = node.and_then(|n| n.get("apiKey")).is_some_and(model::is_string);
        if !has_profile && !has_key {
            let _ = env;
            findings.push(finding(
                "key-missing",
                Severity::Error,
                format!("No API key found for provider \"{p}\": OpenClaw does not read QWEN_API_KEY, MODELSTUDIO_API_KEY or DASHSCOPE_API_KEY for it"),
                fix,
                loc,
            ));
        } else {
            findings.push(finding(
                "openclaw-provider-not-modelled",
                Severity::Warning,
                format!(
                    "the model ref {} uses provider {p}, whose key qwen-env does not resolve",
                    m.raw
                ),
                fix,
                loc,
            ));
        }
    } else {
        findings.push(finding(
            "openclaw-provider-not-modelled",
            Severity::Info,
            format!("the model ref {}/{} uses provider {p}: qwen-env resolves only the qwen plugin's providers (qwen, qwen-token-plan), so run injects nothing for it", p, m.id),
            "name the keys it needs with run --with NAME".into(),
            loc,
        ));
    }
}

/// The providers a legacy `auth-profiles.json` (`{"profiles": {id: {"provider": …}}}`) or
/// `auth.json` (`{"<provider>": {"apiKey": …}}`) holds credentials for, lower-case.
fn legacy_providers(n: &Node) -> Vec<String> {
    let lower = |s: &str| s.trim().to_ascii_lowercase();
    match n.get("profiles").and_then(Node::as_object) {
        Some(profiles) => profiles
            .iter()
            .filter_map(|(_, p)| p.get("provider").and_then(Node::as_str).map(lower))
            .collect(),
        None => n
            .as_object()
            .map(|m| {
                m.iter().filter(|(_, v)| v.as_object().is_some()).map(|(k, _)| lower(k)).collect()
            })
            .unwrap_or_default(),
    }
}

/// The path of the per-agent store of agent `main`.
pub fn agent_db(state_dir: &std::path::Path) -> PathBuf {
    state_dir.join("agents").join("main").join("agent").join("openclaw-agent.sqlite")
}
