//! Step G, the fields: the key (provider `envKey`, `--openai-api-key`, `KEY`,
//! `security.auth.apiKey`), the base URL (entry, flag, `BASE`, settings, the SDK default) and the
//! model, with what each shadows (HOST_TOOLS.md 3.5).

use qwen_env_proto::{Field, Finding, Severity};

use super::model::ModelPick;
use super::{AuthType, DEFAULT_OPENAI_MODEL, Entry, Flags, KeySource, OPENAI_DEFAULT_BASE, View};
use crate::display::{Cand, Show, Shower, field, finding, present};
use crate::envfiles::Origin;

/// What step G decided.
pub(super) struct Fields {
    /// The key value and where it came from.
    pub key: Option<(String, KeySource)>,
    /// The variable whose keychain entry feeds the key.
    pub key_var: Option<String>,
    /// The base URL.
    pub base_url: Option<String>,
    /// The model.
    pub model: Option<String>,
    /// The model field.
    pub model_field: Field,
    /// The base URL field.
    pub base_field: Field,
    /// The key field.
    pub key_field: Field,
}

/// G, for auth type `t` and the matched `provider`.
#[allow(clippy::too_many_arguments)] // the step's inputs, as the algorithm names them
pub(super) fn resolve(
    flags: &Flags,
    view: &View<'_>,
    bare: bool,
    t: AuthType,
    provider: Option<&Entry>,
    pick: ModelPick,
    shower: &dyn Shower,
    read_vars: &mut Vec<String>,
    findings: &mut Vec<Finding>,
) -> Fields {
    let env = view.env;
    let ModelPick { cands: mut model_cands, win: m_win, .. } = pick;
    let mut out = Fields {
        key: None,
        key_var: None,
        base_url: None,
        model: None,
        model_field: Field::default(),
        base_field: Field::default(),
        key_field: Field::default(),
    };
    let key_var = t.key_var();
    let base_var = t.base_var();
    read_vars.push(key_var.to_string());
    if let Some(b) = base_var {
        read_vars.push(b.to_string());
    }
    let mut key_cands: Vec<Cand> = Vec::new();
    let mut key_vars: Vec<Option<String>> = Vec::new();
    let env_key = provider.as_ref().and_then(|p| p.env_key.clone()).filter(|k| !k.is_empty());
    if let Some(k) = &env_key {
        read_vars.push(k.clone());
        // The provider layer only tests non-empty: whitespace counts (HOST_TOOLS.md 3.5).
        for c in view.env_cands(k, Show::Header, &|x| !x.is_empty()) {
            key_cands.push(c);
            key_vars.push(Some(k.clone()));
        }
    }
    if let Some(k) = &flags.api_key {
        key_cands.push(Cand {
            value: k.clone(),
            source: "flag --openai-api-key".into(),
            ok: present(k),
            show: Show::Header,
        });
        key_vars.push(None);
    }
    for c in view.env_cands(key_var, Show::Header, &present) {
        key_cands.push(c);
        key_vars.push(Some(key_var.to_string()));
    }
    if !bare {
        for c in view.settings_cands(&["security", "auth", "apiKey"], Show::Header, &present) {
            key_cands.push(c);
            key_vars.push(None);
        }
    }
    // First present wins: once one candidate is ok, the later ones are losers.
    let mut seen = false;
    for c in &mut key_cands {
        if seen {
            c.ok = false;
        }
        seen |= c.ok;
    }
    let (k_win, mut key_field) = field(&key_cands, shower, None);
    if let Some(w) = k_win {
        key_field.variable.clone_from(&key_vars[w]);
        let ks = if let Some(var) = &key_vars[w] {
            KeySource::Env(
                var.clone(),
                env.winner(var).map_or(Origin::Process, |c| c.origin.clone()),
            )
        } else if key_cands[w].source.starts_with("flag") {
            KeySource::Flag
        } else {
            let loc =
                view.layer_vals(&["security", "auth", "apiKey"]).first().map(|(_, l)| l.clone());
            KeySource::Settings(loc.unwrap_or_default())
        };
        out.key = Some((key_cands[w].value.clone(), ks));
    }
    out.key_var = Some(env_key.clone().unwrap_or_else(|| key_var.to_string()));
    if k_win.is_none() {
        // No key: still say which variable the tool reads, so the user knows what to set. An
        // envKey that is not a variable name may be a pasted key: never echo it.
        let is_name = |v: &str| {
            v.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !crate::secrets::looks_like_key(v)
        };
        key_field.variable = out.key_var.clone().filter(|v| is_name(v));
    }

    let mut base_cands: Vec<Cand> = Vec::new();
    if let Some(p) = &provider
        && let Some(b) = p.node.get("baseUrl")
        && let Some(s) = b.as_str()
    {
        base_cands.push(Cand {
            value: s.to_string(),
            source: format!("{} {}.baseUrl", b.loc, p.path()),
            ok: !s.is_empty(),
            show: Show::Text,
        });
    }
    if let Some(b) = &flags.base_url {
        base_cands.push(Cand {
            value: b.clone(),
            source: "flag --openai-base-url".into(),
            ok: present(b),
            show: Show::Text,
        });
    }
    if let Some(bv) = base_var {
        base_cands.extend(view.env_cands(bv, Show::Text, &present));
    }
    if !bare {
        base_cands.extend(view.settings_cands(
            &["security", "auth", "baseUrl"],
            Show::Text,
            &present,
        ));
    }
    let mut seen = false;
    for c in &mut base_cands {
        if seen {
            c.ok = false;
        }
        seen |= c.ok;
    }
    if !seen {
        match t {
            AuthType::Openai | AuthType::OpenaiResponses => {
                base_cands.push(Cand {
                    value: OPENAI_DEFAULT_BASE.into(),
                    source: "default".into(),
                    ok: true,
                    show: Show::Text,
                });
            }
            AuthType::Gemini => base_cands.push(Cand {
                value: "https://generativelanguage.googleapis.com".into(),
                source: "default (SDK)".into(),
                ok: true,
                show: Show::Text,
            }),
            AuthType::VertexAi => base_cands.push(Cand {
                value: "https://aiplatform.googleapis.com".into(),
                source: "default (SDK)".into(),
                ok: true,
                show: Show::Text,
            }),
            AuthType::Anthropic | AuthType::QwenOauth => {}
        }
    }
    let (b_win, base_field) = field(&base_cands, shower, None);
    out.base_url = b_win.map(|i| base_cands[i].value.clone());

    // Model field: the entry's id when matched, else M or the default.
    let mut model_field;
    if let Some(p) = &provider {
        let (_, f) = field(&model_cands, shower, None);
        model_field = f;
        model_field.value = Some(p.id.clone());
        let via = format!("{} {}", p.node.loc, p.path());
        model_field.source = Some(format!("{} → {via}", model_field.source.unwrap_or_default()));
        out.model = Some(p.id.clone());
    } else {
        if m_win.is_none() && t == AuthType::Openai {
            model_cands.push(Cand {
                value: DEFAULT_OPENAI_MODEL.into(),
                source: "default".into(),
                ok: true,
                show: Show::Text,
            });
        }
        let (w, f) = field(&model_cands, shower, None);
        model_field = f;
        out.model = w.map(|i| model_cands[i].value.clone());
    }
    if out.model.is_none() {
        findings.push(finding(
            "model-missing",
            Severity::Error,
            format!("no model id for auth type {}: Qwen Code fails with \"Missing model…\"", t.as_str()),
            format!(
                "pass --model MODEL, set \"model\": {{\"name\": \"MODEL\"}} in ~/.qwen/settings.json, or export {}",
                t.model_vars().first().unwrap_or(&"OPENAI_MODEL")
            ),
            None,
        ));
    }
    if t == AuthType::Anthropic && out.base_url.is_none() {
        findings.push(finding(
            "anthropic-base-url-missing",
            Severity::Error,
            "Anthropic provider missing required baseUrl".into(),
            "set \"baseUrl\" in the modelProviders.anthropic entry, or export ANTHROPIC_BASE_URL"
                .into(),
            provider.as_ref().map(|p| p.node.loc.to_string()),
        ));
    }
    out.model_field = model_field;
    out.base_field = base_field;
    out.key_field = key_field;
    out
}
