//! Qwen Code 0.24.4's resolution, step by step as in HOST_TOOLS.md "Resolution algorithm
//! (Qwen Code 0.24.4, OpenAI-compatible path)": A locations, B settings, C environment overlay,
//! D auth type, E model id, F provider match, G fields. Pure: it works on [`Sources`].
//!
//! Findings that are direct outcomes of a step (no auth type, missing key, a provider entry Qwen
//! Code rejects) are raised where the step decides; the heuristic rules live in `rules`.
//!
//! # Layout
//! - `flags`: the command-line flags that matter.
//! - `layers`: A and B, the settings files, their parse errors and folder trust.
//! - `environment`: C, the `.env` and settings `env` overlay and `$VAR` expansion.
//! - `auth`: D, the auth type; `providers`: the validation of `modelProviders` (D's second half).
//! - `model`: E and F, the model id and the provider entry it selects.
//! - `fields`: G, the key, base URL and model fields.
//! - this file: the types of a resolution and [`resolve`], which runs the steps in order.

mod auth;
mod environment;
mod fields;
mod flags;
mod layers;
mod model;
mod providers;

use qwen_env_proto::{Field, Finding, Severity};

pub use auth::AuthType;
pub use flags::{Flags, parse_flags};
pub use model::strip_runtime_prefix;

use crate::display::{Cand, Show, Shower, finding, truthy};
use crate::envfiles::{EnvView, Origin};
use crate::jsonc::{Loc, Node};
use crate::settings::{self, Layer, Unresolved};
use crate::sources::Sources;

/// The default model for a runtime model (`DEFAULT_MODELS`, 0.24.4).
pub const DEFAULT_OPENAI_MODEL: &str = "qwen3.7-max";
/// The OpenAI SDK's default base URL.
pub const OPENAI_DEFAULT_BASE: &str = "https://api.openai.com/v1";

/// A `modelProviders` entry that survived validation.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The provider key it sits under (`openai`, or a mapped custom id).
    pub pid: String,
    /// Index in that array.
    pub index: usize,
    /// The protocol it resolves to.
    pub protocol: AuthType,
    /// `id`.
    pub id: String,
    /// `baseUrl` if a string.
    pub base_url: Option<String>,
    /// `envKey` if a string.
    pub env_key: Option<String>,
    /// The entry itself (merged, expanded).
    pub node: Node,
}

impl Entry {
    /// `modelProviders.openai[0]`.
    pub fn path(&self) -> String {
        format!("modelProviders.{}[{}]", self.pid, self.index)
    }
}

/// Where the secret shown in a field came from, for the keychain overlay and the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// An environment variable (after the overlay): its name and winning definition's origin.
    Env(String, Origin),
    /// `--openai-api-key`.
    Flag,
    /// `security.auth.apiKey` in a settings file.
    Settings(Loc),
}

/// Everything the resolution decided, for `resolve` and the rules.
#[derive(Debug, Clone)]
pub struct QwenResolution {
    /// `--bare` or `QWEN_CODE_SIMPLE`.
    pub bare: bool,
    /// Parsed flags.
    pub flags: Flags,
    /// Settings layers used (expanded), lowest first.
    pub layers: Vec<Layer>,
    /// The workspace layer when folder trust excluded it.
    pub untrusted_workspace: bool,
    /// The merged settings.
    pub merged: Node,
    /// The environment after step C (and any keychain injection).
    pub env: EnvView,
    /// `$VAR` references left literal.
    pub unresolved: Vec<Unresolved>,
    /// Auth type, if any.
    pub auth: Option<AuthType>,
    /// Model id from step E and whether it came from settings.
    pub model_id: Option<String>,
    /// Whether `model.name` supplied the model id.
    pub model_from_settings: bool,
    /// Valid provider entries, all protocols, in candidate order.
    pub entries: Vec<Entry>,
    /// The matched provider entry.
    pub provider: Option<Entry>,
    /// The resolved key value (secret; keychain entries are placeholders).
    pub key: Option<(String, KeySource)>,
    /// The variable whose keychain entry feeds the key: the entry's `envKey`, else `KEY`.
    pub key_var: Option<String>,
    /// Every variable the key can come from, highest precedence first: the provider's `envKey`,
    /// then `KEY` (`OPENAI_API_KEY` for openai), then the variables a `$VAR` in the winning
    /// `security.auth.apiKey` expands. With no auth type yet, `OPENAI_API_KEY`, which can complete
    /// the inference triple. `run` injects the first of these the keychain holds.
    pub key_reads: Vec<String>,
    /// The resolved base URL.
    pub base_url: Option<String>,
    /// The resolved model.
    pub model: Option<String>,
    /// The four fields.
    pub fields: [Field; 4],
    /// Variables the resolution read (for the rules about shadowing and empties).
    pub read_vars: Vec<String>,
    /// Findings decided by the algorithm itself.
    pub findings: Vec<Finding>,
}

/// The inputs of one resolution.
pub struct Input<'a> {
    /// Parsed files.
    pub src: &'a Sources,
    /// The caller's exported environment.
    pub env0: &'a [(String, String)],
    /// `argv[1..]`.
    pub args: &'a [String],
    /// Keychain entries injected as process environment: (variable, placeholder value, entry).
    pub inject: &'a [(String, String, String)],
    /// How to show secrets.
    pub shower: &'a dyn Shower,
}

/// The settings layers and the environment after step C: what steps D to G read.
struct View<'a> {
    layers: &'a [Layer],
    env: &'a EnvView,
}

impl View<'_> {
    /// Per-layer values of a settings path, highest layer first (the first is the merged winner).
    fn layer_vals(&self, path: &[&str]) -> Vec<(String, Loc)> {
        self.layers
            .iter()
            .rev()
            .filter_map(|l| {
                l.node.path(path).and_then(|n| n.as_str().map(|s| (s.to_string(), n.loc.clone())))
            })
            .collect()
    }

    /// A settings path's candidates: only the merged winner can win, when `ok`.
    fn settings_cands(&self, path: &[&str], show: Show, ok: &dyn Fn(&str) -> bool) -> Vec<Cand> {
        self.layer_vals(path)
            .into_iter()
            .enumerate()
            .map(|(i, (v, loc))| Cand {
                ok: i == 0 && ok(&v),
                source: format!("{loc} {}", path.join(".")),
                value: v,
                show,
            })
            .collect()
    }

    /// A variable's candidates: only the environment's winner can win, when `ok`.
    fn env_cands(&self, name: &str, show: Show, ok: &dyn Fn(&str) -> bool) -> Vec<Cand> {
        let w = self.env.winner(name);
        self.env
            .cands(name)
            .iter()
            .map(|c| Cand {
                ok: w == Some(c) && ok(&c.value),
                source: c.source(name),
                value: c.value.clone(),
                show,
            })
            .collect()
    }
}

/// Run the algorithm.
pub fn resolve(inp: &Input<'_>) -> QwenResolution {
    let src = inp.src;
    let flags = parse_flags(inp.args);
    let mut findings = Vec::new();
    let env_proc = {
        let mut v = EnvView::from_process(inp.env0);
        for (name, value, entry) in inp.inject {
            v.inject(name, value.clone(), Origin::Keychain(entry.clone()));
        }
        v
    };
    let bare = flags.bare || truthy(env_proc.nonempty("QWEN_CODE_SIMPLE"));

    // A, B, C. Locations, settings, environment overlay (`--bare` reads neither settings nor
    // `.env` files).
    let mut key_refs: Vec<String> = Vec::new();
    let mut env_refs: Vec<(String, String)> = Vec::new();
    let (layers, untrusted_workspace, env, unresolved) =
        if bare {
            (Vec::new(), false, env_proc, Vec::new())
        } else {
            let raw = layers::load(src, &mut findings);
            // The merged `security.auth.apiKey` is the highest layer's: the variables its
            // unexpanded text names are the ones the key can be read from.
            if let Some(s) = raw.layers.iter().rev().find_map(|(_, _, n)| {
                n.path(&["security", "auth", "apiKey"]).and_then(Node::as_str)
            }) {
                key_refs = settings::references(s).map(str::to_string).collect();
            }
            // So are those a settings `env` value names (`"DASHSCOPE_API_KEY": "$MY_SECRET"`):
            // Qwen Code expands it from the process environment, where `run` can put the
            // keychain's MY_SECRET. `env` merges per variable, so each variable's value is the
            // highest layer's; only the key's variables count (below).
            let mut seen: Vec<&str> = Vec::new();
            for (_, _, n) in raw.layers.iter().rev() {
                for (name, v) in n.get("env").and_then(Node::as_object).unwrap_or_default() {
                    if seen.contains(&name.as_str()) {
                        continue;
                    }
                    seen.push(name);
                    for r in v.as_str().into_iter().flat_map(settings::references) {
                        env_refs.push((name.clone(), r.to_string()));
                    }
                }
            }
            let untrusted = raw.untrusted_workspace;
            let c = environment::overlay(src, &env_proc, raw);
            (c.layers, untrusted, c.env, c.unresolved)
        };
    let merged = settings::merge(layers.iter().map(|l| &l.node));
    let view = View { layers: &layers, env: &env };
    let mut read_vars: Vec<String> = Vec::new();

    // D. Auth type.
    let selected = auth::select(flags.auth_type.as_ref(), &view, bare, inp.shower, &mut read_vars);
    let auth = selected.auth;
    let mut out = QwenResolution {
        bare,
        flags: flags.clone(),
        layers: layers.clone(),
        untrusted_workspace,
        merged: merged.clone(),
        env: env.clone(),
        unresolved,
        auth,
        model_id: None,
        model_from_settings: false,
        entries: Vec::new(),
        provider: None,
        key: None,
        key_var: None,
        key_reads: Vec::new(),
        base_url: None,
        model: None,
        fields: [selected.field, Field::default(), Field::default(), Field::default()],
        read_vars: Vec::new(),
        findings: Vec::new(),
    };
    if let (Some(s), None) = (&selected.text, auth) {
        findings.push(finding(
            "invalid-auth-type",
            Severity::Error,
            format!("auth type \"{s}\" is not one of openai, openai-responses, anthropic, gemini, vertex-ai"),
            "use one of: openai, openai-responses, anthropic, gemini, vertex-ai".into(),
            selected.source.clone(),
        ));
    }

    // Provider validation (step D, second half) needs no auth type.
    if !bare {
        out.entries = providers::validate_providers(&merged, &mut findings);
    }

    let Some(t) = auth else {
        if selected.text.is_none() {
            findings.push(auth::no_auth_type(&env, &src.qwen.qdir.join("settings.json")));
            out.key_reads = vec!["OPENAI_API_KEY".to_string()];
        }
        out.findings = findings;
        out.read_vars = read_vars;
        return out;
    };
    if t == AuthType::QwenOauth {
        findings.push(finding(
            "oauth-discontinued",
            Severity::Error,
            "Qwen OAuth free tier was discontinued on 2026-04-15; Qwen Code refuses qwen-oauth".into(),
            format!(
                "select an API-key provider instead ({}), e.g. set \"security\": {{\"auth\": {{\"selectedType\": \"openai\"}}}} in ~/.qwen/settings.json with a modelProviders entry",
                out.fields[0].source.as_deref().unwrap_or("auth type")
            ),
            out.fields[0].source.clone(),
        ));
        out.findings = findings;
        out.read_vars = read_vars;
        return out;
    }

    // E. Model id.
    let pick = model::model_id(&flags, &view, bare, t, &mut read_vars);
    out.model_id.clone_from(&pick.id);
    out.model_from_settings = pick.from_settings;

    // F. Provider match.
    let provider =
        model::provider_match(&out.entries, t, pick.id.as_ref(), &merged, pick.from_settings);

    // G. Fields.
    let g = fields::resolve(
        &flags,
        &view,
        bare,
        t,
        provider.as_ref(),
        pick,
        inp.shower,
        &mut read_vars,
        &mut findings,
    );
    out.key = g.key;
    out.key_var = g.key_var;
    let env_key = provider.as_ref().and_then(|p| p.env_key.clone()).filter(|k| !k.is_empty());
    out.key_reads = env_key.into_iter().chain([t.key_var().to_string()]).collect();
    if !bare {
        for r in key_refs {
            if !out.key_reads.contains(&r) {
                out.key_reads.push(r);
            }
        }
        let direct = out.key_reads.clone();
        for (name, r) in env_refs {
            if direct.contains(&name) && !out.key_reads.contains(&r) {
                out.key_reads.push(r);
            }
        }
    }
    out.base_url = g.base_url;
    out.model = g.model;
    out.provider = provider;
    out.fields = [out.fields[0].clone(), g.model_field, g.base_field, g.key_field];
    out.findings = findings;
    read_vars.sort();
    read_vars.dedup();
    out.read_vars = read_vars;
    out
}
