//! OpenClaw 2026.9.6's resolution for provider `qwen` (HOST_TOOLS.md section 6 and "Resolution
//! algorithm (OpenClaw 2026.9.6, provider `qwen`)", with the "Corrections from real runs").
//!
//! Not modelled: the SQLite auth-profile store (we only note that it exists, since stored profiles
//! beat env keys), `$include`, per-agent `models.json` (ignored at request time anyway) and the
//! login-shell import.

use std::sync::LazyLock;

use qwen_env_proto::{Field, Finding, Severity};
use regex::Regex;

use crate::catalog::{Catalog, Class};
use crate::display::{Cand, Show, Shower, field, finding};
use crate::envfiles::{EnvView, Origin};
use crate::jsonc::{Node, Value};
use crate::rules;
use crate::secrets;
use crate::sources::Sources;

/// OpenClaw's qwen env keys, in order.
pub const KEY_VARS: [&str; 3] = ["QWEN_API_KEY", "MODELSTUDIO_API_KEY", "DASHSCOPE_API_KEY"];
/// The default base URL: the Coding Plan intl endpoint.
pub const DEFAULT_BASE: &str = "https://coding-intl.dashscope.aliyuncs.com/v1";

static VAR: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\$\{([A-Z_][A-Z0-9_]*)\}").expect("regex"));

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
    /// Findings.
    pub findings: Vec<Finding>,
}

/// The first `$include` directive in the config: OpenClaw allows one at any object level.
fn first_include(n: &Node) -> Option<&Node> {
    match &n.value {
        Value::Object(members) => members
            .iter()
            .find_map(|(k, v)| if k == "$include" { Some(v) } else { first_include(v) }),
        Value::Array(items) => items.iter().find_map(first_include),
        _ => None,
    }
}

/// Credentials, base URLs and `OPENCLAW_*` are ignored from a workspace `.env`.
fn ignored_from_cwd(key: &str) -> bool {
    key.ends_with("_API_KEY")
        || key.ends_with("_TOKEN")
        || key.ends_with("_SECRET")
        || key.ends_with("_BASE_URL")
        || key.ends_with("_API_HOST")
        || key.ends_with("_ENDPOINT")
        || key.starts_with("OPENCLAW_")
}

fn subst(s: &str, env: &EnvView) -> String {
    VAR.replace_all(s, |c: &regex::Captures<'_>| {
        env.nonempty(&c[1]).map_or_else(|| c[0].to_string(), str::to_string)
    })
    .into_owned()
}

/// Resolve. `inject` are keychain entries set as process environment: (variable, placeholder).
pub fn resolve(
    src: &Sources,
    env0: &[(String, String)],
    inject: &[(String, String)],
    shower: &dyn Shower,
    catalog: &Catalog,
) -> OpenClawResolution {
    let oc = &src.openclaw;
    let mut findings = Vec::new();
    let mut env = EnvView::from_process(env0);
    for (name, value) in inject {
        env.inject(name, value.clone(), Origin::Keychain(name.clone()));
    }
    let config = match oc.config.as_ref().map(|f| (&f.parsed, f)) {
        Some((Ok(n), _)) => Some(n.clone()),
        Some((Err(e), f)) => {
            findings.push(finding(
                "config-parse-error",
                Severity::Error,
                format!("{} does not parse as JSON5: {e}", f.label),
                format!("fix the syntax in {}", f.label),
                Some(f.label.to_string()),
            ));
            None
        }
        None => None,
    };
    if let (Some(c), Some(f)) = (&config, &oc.config)
        && let Some(include) = first_include(c)
    {
        findings.push(finding(
            "openclaw-include",
            Severity::Warning,
            format!(
                "{} uses $include: OpenClaw merges the included files in, but qwen-env does not \
                 read them yet, so a provider, model or key set there is missing from this result",
                f.label
            ),
            format!(
                "keep models.providers.qwen, agents.defaults.model and env.vars in {} itself",
                f.label
            ),
            Some(include.loc.to_string()),
        ));
    }
    if let Some(f) = &oc.cwd_env {
        for e in &f.entries {
            if ignored_from_cwd(&e.key) {
                findings.push(finding(
                    "unread-variable",
                    Severity::Warning,
                    format!("{} in the workspace .env is ignored: OpenClaw never takes credentials or base URLs from it", e.key),
                    format!("move {} to {} (or qwen-env key set {})", e.key, oc.state_dir.join(".env").display(), e.key),
                    Some(format!("{}:{}", f.label, e.line)),
                ));
            } else {
                env.push(
                    &e.key,
                    e.value.clone(),
                    Origin::File { file: f.label.clone(), line: e.line },
                );
            }
        }
    }
    if let Some(f) = &oc.state_env {
        for e in &f.entries {
            env.push(&e.key, e.value.clone(), Origin::File { file: f.label.clone(), line: e.line });
        }
    }
    if let Some(vars) =
        config.as_ref().and_then(|c| c.path(&["env", "vars"])).and_then(Node::as_object)
    {
        for (k, v) in vars {
            if let Some(s) = v.as_str() {
                env.push(k, s.to_string(), Origin::Settings(v.loc.clone()));
            }
        }
    }
    let label = oc.config.as_ref().map_or_else(String::new, |f| f.label.to_string());
    let provider = config.as_ref().and_then(|c| c.path(&["models", "providers", "qwen"]));

    // Base URL.
    let base_cfg =
        provider.and_then(|p| p.get("baseUrl")).and_then(Node::as_str).map(|s| subst(s, &env));
    let (base, base_source) = match base_cfg.filter(|s| !s.is_empty()) {
        Some(b) => (b, format!("{label} models.providers.qwen.baseUrl")),
        None => (DEFAULT_BASE.to_string(), "default (qwen provider: Coding Plan intl)".into()),
    };
    let base_is_default = base_source.starts_with("default");
    let (_, base_field) =
        field(&[Cand::new(base.clone(), base_source, true, Show::Text)], shower, None);

    // Model: agents.defaults.model(.primary), `qwen/` prefix stripped.
    let model = config.as_ref().and_then(|c| {
        c.path(&["agents", "defaults", "model", "primary"])
            .or_else(|| c.path(&["agents", "defaults", "model"]))
            .and_then(Node::as_str)
    });
    let model_cands: Vec<Cand> = model
        .map(|m| {
            let m = m.strip_prefix("qwen/").unwrap_or(m);
            Cand::new(m, format!("{label} agents.defaults.model"), true, Show::Text)
        })
        .into_iter()
        .collect();
    let (_, model_field) = field(&model_cands, shower, None);
    let api =
        provider.and_then(|p| p.get("api")).and_then(Node::as_str).unwrap_or("openai-completions");
    let api_source = if provider.and_then(|p| p.get("api")).is_some() {
        format!("{label} models.providers.qwen.api")
    } else {
        "default (provider qwen)".into()
    };
    let (_, auth_field) = field(&[Cand::new(api, api_source, true, Show::Text)], shower, None);

    // Legacy auth profiles abort the run.
    for f in &oc.legacy_auth_profiles {
        findings.push(finding(
            "openclaw-legacy-auth-profiles",
            Severity::Error,
            format!("legacy {} is present: OpenClaw aborts the run (\"requires legacy credential migration\") before any env key is tried", f.label),
            "run: openclaw doctor --fix".into(),
            Some(f.label.to_string()),
        ));
    }
    if let Some(db) = &oc.sqlite_store {
        findings.push(finding(
            "openclaw-profile-store",
            Severity::Info,
            format!("{} exists: a stored qwen auth profile beats every env key, and qwen-env cannot see it", db.display()),
            "check with: openclaw models auth list".into(),
            Some(db.display().to_string()),
        ));
    }

    // API key.
    let mut key_cands: Vec<(String, String, Option<String>)> = Vec::new(); // (value, source, var)
    let cfg_key = provider.and_then(|p| p.get("apiKey"));
    let auth_api_key =
        provider.and_then(|p| p.get("auth")).and_then(Node::as_str) == Some("api-key");
    let cfg_key_value = |n: &Node| -> Option<(String, Option<String>)> {
        match &n.value {
            Value::String(s) => {
                let s = subst(s, &env);
                if KEY_VARS.contains(&s.as_str()) || s == "OPENAI_API_KEY" {
                    None // a known env name is a marker: "use env"
                } else {
                    Some((s, None))
                }
            }
            Value::Object(_) if n.get("source").and_then(Node::as_str) == Some("env") => {
                let id = n.get("id").and_then(Node::as_str)?;
                env.nonempty(id).map(|v| (v.to_string(), Some(id.to_string())))
            }
            _ => None,
        }
    };
    if auth_api_key && let Some((v, var)) = cfg_key.and_then(cfg_key_value) {
        key_cands.push((v, format!("{label} models.providers.qwen.apiKey"), var));
    }
    let mut key_var = None;
    for v in KEY_VARS {
        for c in env.cands(v) {
            if !c.value.is_empty() {
                key_cands.push((c.value.clone(), c.source(v), Some(v.to_string())));
            }
        }
        if key_var.is_none() && env.nonempty(v).is_some() {
            key_var = Some(v.to_string());
        }
    }
    if !auth_api_key && let Some((v, var)) = cfg_key.and_then(cfg_key_value) {
        key_cands.push((v, format!("{label} models.providers.qwen.apiKey"), var));
    }
    // Only the effective definition of each env variable can win.
    let win = key_cands.iter().position(|(v, src, var)| match var {
        Some(name) if !src.contains("models.providers") => {
            env.winner(name).is_some_and(|c| c.value == *v)
        }
        _ => true,
    });
    let cands: Vec<Cand> = key_cands
        .iter()
        .enumerate()
        .map(|(i, (v, s, _))| Cand::new(v.clone(), s.clone(), Some(i) == win, Show::Secret))
        .collect();
    let (_, key_field) = field(&cands, shower, win.and_then(|w| key_cands[w].2.clone()));
    let mut key = None;
    if let Some(w) = win {
        let (v, _, var) = &key_cands[w];
        key = Some(v.clone());
        if let Some(var) = var {
            key_var = Some(var.clone());
        }
        if v.starts_with("profile:") {
            findings.push(finding(
                "openclaw-profile-prefix",
                Severity::Error,
                "models.providers.qwen.apiKey starts with \"profile:\": OpenClaw has no such prefix and sends the text literally as the key".into(),
                format!("set \"apiKey\" to the exact profile id (e.g. \"qwen:default\") or remove it and use QWEN_API_KEY, in {label}"),
                cfg_key.map(|n| n.loc.to_string()),
            ));
        }
    } else {
        findings.push(finding(
            "key-missing",
            Severity::Error,
            "No API key found for provider \"qwen\": none of QWEN_API_KEY, MODELSTUDIO_API_KEY, DASHSCOPE_API_KEY is set and openclaw.json has no key".into(),
            "qwen-env key set QWEN_API_KEY".into(),
            Some("QWEN_API_KEY".into()),
        ));
    }
    let plain_key = key.as_deref().filter(|k| !k.starts_with('\u{1}'));
    // The default endpoint takes one kind of key only (a Coding Plan key, in the catalogue).
    let default_family = catalog.endpoint_family(DEFAULT_BASE).filter(|f| f.class.is_some());
    let wrong_for_default =
        |k: &str| default_family.is_some_and(|f| catalog.key_class(k) != f.class);
    if base_is_default
        && let Some(k) = plain_key.filter(|k| wrong_for_default(k))
        && let Some(df) = default_family
    {
        let key_fams = catalog.key_families(k);
        let targets = rules::endpoint_list(key_fams.iter().copied())
            .or_else(|| rules::endpoint_list(catalog.of_class(Class::PayAsYouGo)))
            .map_or_else(String::new, |l| format!(" (one of {l})"));
        let file =
            if label.is_empty() { "~/.openclaw/openclaw.json".to_string() } else { label.clone() };
        findings.push(finding(
            "openclaw-default-coding-endpoint",
            Severity::Error,
            format!("no baseUrl is configured for provider qwen, so OpenClaw sends this key to the {} endpoint {DEFAULT_BASE}; the key is not a key of {}", df.name, rules::key_words(&[df])),
            format!("set models.providers.qwen.baseUrl to the endpoint your key belongs to{targets} in {file}"),
            Some(if label.is_empty() { "models.providers.qwen.baseUrl".to_string() } else { label.clone() }),
        ));
    } else if let Some(k) = plain_key {
        rules::key_endpoint_rules(
            catalog,
            Some(k),
            key_var.as_deref(),
            key_field.source.as_deref().unwrap_or(""),
            Some(&base),
            base_field.source.as_deref().unwrap_or(""),
            model_field.value.as_deref(),
            &mut findings,
        );
    }
    rules::base_url_rules(&base, base_field.source.as_deref().unwrap_or(""), &mut findings);
    rules::plaintext(&secrets::openclaw(src), &mut findings);
    OpenClawResolution {
        fields: [auth_field, model_field, base_field, key_field],
        env,
        key_var,
        key,
        findings,
    }
}
