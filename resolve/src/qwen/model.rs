//! Steps E and F, model id and provider match: the model id from the flag, `model.name` or the
//! protocol's variables, and the `modelProviders` entry it selects (HOST_TOOLS.md 3.2, 3.3).

use super::{AuthType, Entry, Flags, View};
use crate::display::{Cand, Show};
use crate::jsonc::Node;

/// What step E decided.
pub(super) struct ModelPick {
    /// The candidates, in priority order (step G shows them in the model field).
    pub cands: Vec<Cand>,
    /// The winner's index.
    pub win: Option<usize>,
    /// The model id.
    pub id: Option<String>,
    /// Whether `model.name` supplied it.
    pub from_settings: bool,
}

/// E: `--model`, `model.name` (`$runtime|…` prefix stripped), then `AUTH_ENV_MODEL_VARS[T]`.
pub(super) fn model_id(
    flags: &Flags,
    view: &View<'_>,
    bare: bool,
    t: AuthType,
    read_vars: &mut Vec<String>,
) -> ModelPick {
    let mut model_cands: Vec<Cand> = Vec::new();
    if let Some(m) = &flags.model {
        model_cands.push(Cand {
            value: m.clone(),
            source: "flag --model".into(),
            ok: !m.is_empty(),
            show: Show::Text,
        });
    }
    let mut settings_model_idx = None;
    if !bare {
        let mut sc = view.settings_cands(&["model", "name"], Show::Text, &|v| {
            !strip_runtime_prefix(v).is_empty()
        });
        for c in &mut sc {
            c.value = strip_runtime_prefix(&c.value).to_string();
        }
        settings_model_idx = Some(model_cands.len());
        model_cands.extend(sc);
    }
    for v in t.model_vars() {
        read_vars.push((*v).to_string());
        // firstEnv: the first variable with a non-empty value.
        let before_ok = model_cands.iter().any(|c| c.ok);
        let mut cs = view.env_cands(v, Show::Text, &|x| !x.is_empty());
        if before_ok {
            for c in &mut cs {
                c.ok = false;
            }
        }
        model_cands.extend(cs);
    }
    let m_win = model_cands.iter().position(|c| c.ok);
    let model_id = m_win.map(|i| model_cands[i].value.clone());
    let from_settings = match (m_win, settings_model_idx) {
        (Some(w), Some(s)) => w >= s && model_cands[w].source.contains(" model.name"),
        _ => false,
    };
    ModelPick { cands: model_cands, win: m_win, id: model_id, from_settings }
}

/// F: the entry of protocol `t` with the model id (and, for a model from settings, the persisted
/// `model.baseUrl`, when one entry has both).
pub(super) fn provider_match(
    entries: &[Entry],
    t: AuthType,
    model_id: Option<&String>,
    merged: &Node,
    from_settings: bool,
) -> Option<Entry> {
    let cands: Vec<&Entry> = entries.iter().filter(|e| e.protocol == t).collect();
    model_id.and_then(|m| {
        let by_id = || cands.iter().find(|e| e.id == *m).map(|e| (*e).clone());
        let persisted =
            merged.path(&["model", "baseUrl"]).and_then(Node::as_str).filter(|_| from_settings);
        match persisted {
            Some(b) => cands
                .iter()
                .find(|e| e.id == *m && e.base_url.as_deref() == Some(b))
                .map(|e| (*e).clone())
                .or_else(by_id),
            None => by_id(),
        }
    })
}

/// `stripRuntimePrefix`: `$runtime|<type>|<id>` → `<id>`.
pub fn strip_runtime_prefix(s: &str) -> &str {
    s.strip_prefix("$runtime|").and_then(|r| r.split_once('|')).map_or(s, |(_, id)| id)
}
