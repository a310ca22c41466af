//! Step C, the environment overlay: the home `.env` fallback for `$VAR` expansion before the
//! relaunch, the project and home `.env` files and the settings `env` block (first writer wins,
//! HOST_TOOLS.md 2.2), then each layer expanded as the relaunched process sees it.

use super::layers::RawLayers;
use crate::envfiles::{EnvView, Origin, allowed};
use crate::jsonc::Node;
use crate::settings::{self, Layer, Unresolved};
use crate::sources::Sources;

/// What step C leaves: the environment and the expanded layers.
pub(super) struct Overlaid {
    /// The environment the host ends up with.
    pub env: EnvView,
    /// The settings layers, expanded, lowest first.
    pub layers: Vec<Layer>,
    /// `$VAR` references left literal.
    pub unresolved: Vec<Unresolved>,
}

/// C, on top of the process environment `env_proc` (keychain injections included).
pub(super) fn overlay(src: &Sources, env_proc: &EnvView, raw: RawLayers) -> Overlaid {
    let RawLayers { layers: raw, trusted, .. } = raw;
    let mut env = env_proc.clone();
    let mut unresolved = Vec::new();
    let mut layers = Vec::new();
    // homeFallback: home .env keys not in the process env (QWEN_HOME's own file, and ~/.env
    // only without a custom QWEN_HOME).
    let custom_home = src.qwen.qdir != src.home.join(".qwen");
    let mut fallback: Vec<(String, String)> = Vec::new();
    for f in &src.qwen.home_envs {
        let is_qdir = f.path.parent() == Some(src.qwen.qdir.as_path());
        let is_home = f.path.parent() == Some(src.home.as_path());
        if is_qdir || (is_home && !custom_home) {
            for e in f.defined() {
                if env_proc.get(&e.key).is_none() && !fallback.iter().any(|(k, _)| *k == e.key) {
                    fallback.push((e.key.clone(), e.value.clone()));
                }
            }
        }
    }
    let narrow = |k: &str| -> Option<String> {
        env_proc
            .get(k)
            .map(str::to_string)
            .or_else(|| fallback.iter().find(|(fk, _)| fk == k).map(|(_, v)| v.clone()))
    };
    let mut scratch = Vec::new();
    let narrow_layers: Vec<Node> = raw
        .iter()
        .map(|(_, _, n)| {
            let mut n = n.clone();
            settings::expand(&mut n, &narrow, &mut scratch);
            n
        })
        .collect();
    let s_narrow = settings::merge(narrow_layers.iter());

    // C. Environment overlay.
    let excluded: Vec<String> =
        s_narrow.path(&["advanced", "excludedEnvVars"]).and_then(Node::as_array).map_or_else(
            || vec!["DEBUG".to_string(), "DEBUG_MODE".to_string()],
            |a| a.iter().filter_map(|n| n.as_str().map(str::to_string)).collect(),
        );
    if trusted && let Some(f) = &src.qwen.project_env {
        for e in f.defined() {
            if allowed(&e.key, f, true, &excluded) {
                env.push(&e.key, e.value.clone(), Origin::File(e.loc(&f.label)));
            }
        }
    }
    for f in &src.qwen.home_envs {
        for e in f.defined() {
            env.push(&e.key, e.value.clone(), Origin::File(e.loc(&f.label)));
        }
    }
    if let Some(m) = s_narrow.get("env").and_then(Node::as_object) {
        for (k, v) in m {
            if let Some(s) = v.as_str() {
                env.push(k, s.to_string(), Origin::Settings(v.loc.clone()));
            }
        }
    }
    // After the relaunch (the default) expansion sees everything step C loaded.
    let relaunch = env_proc.nonempty("QWEN_CODE_NO_RELAUNCH").is_none()
        && env_proc.nonempty("SANDBOX").is_none();
    for (scope, file, n) in raw {
        let mut n = n;
        if relaunch {
            let wide = |k: &str| env.get(k).map(str::to_string);
            settings::expand(&mut n, &wide, &mut unresolved);
        } else {
            settings::expand(&mut n, &narrow, &mut unresolved);
        }
        layers.push(Layer { scope, file, node: n });
    }
    Overlaid { env, layers, unresolved }
}
