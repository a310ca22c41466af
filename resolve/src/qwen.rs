//! Qwen Code 0.24.4's resolution, step by step as in HOST_TOOLS.md "Resolution algorithm
//! (Qwen Code 0.24.4, OpenAI-compatible path)": A locations, B settings, C environment overlay,
//! D auth type, E model id, F provider match, G fields. Pure: it works on [`Sources`].
//!
//! Findings that are direct outcomes of a step (no auth type, missing key, a provider entry Qwen
//! Code rejects) are raised here where the step decides; the heuristic rules live in `rules`.

use std::sync::Arc;

use qwen_env_proto::{Field, Finding, Severity};

use crate::display::{Cand, Show, Shower, field, finding, present, truthy};
use crate::envfiles::{EnvView, Origin, allowed};
use crate::jsonc::{Loc, Node, Value};
use crate::settings::{self, Layer, Scope, Unresolved};
use crate::sources::Sources;

/// Qwen Code's `AuthType` values (HOST_TOOLS.md 3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthType {
    /// OpenAI-compatible chat completions.
    Openai,
    /// OpenAI responses API.
    OpenaiResponses,
    /// Discontinued Qwen OAuth.
    QwenOauth,
    /// Gemini API.
    Gemini,
    /// Vertex AI.
    VertexAi,
    /// Anthropic messages.
    Anthropic,
}

impl AuthType {
    /// All of them, in Qwen Code's order.
    pub const ALL: [AuthType; 6] = [
        AuthType::Openai,
        AuthType::OpenaiResponses,
        AuthType::QwenOauth,
        AuthType::Gemini,
        AuthType::VertexAi,
        AuthType::Anthropic,
    ];

    /// From the settings / flag spelling.
    pub fn parse(s: &str) -> Option<AuthType> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// The settings / flag spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthType::Openai => "openai",
            AuthType::OpenaiResponses => "openai-responses",
            AuthType::QwenOauth => "qwen-oauth",
            AuthType::Gemini => "gemini",
            AuthType::VertexAi => "vertex-ai",
            AuthType::Anthropic => "anthropic",
        }
    }

    /// The protocol's key variable (`KEY` in step G).
    pub fn key_var(self) -> &'static str {
        match self {
            AuthType::Openai | AuthType::OpenaiResponses | AuthType::QwenOauth => "OPENAI_API_KEY",
            AuthType::Anthropic => "ANTHROPIC_API_KEY",
            AuthType::Gemini => "GEMINI_API_KEY",
            AuthType::VertexAi => "GOOGLE_API_KEY",
        }
    }

    /// The protocol's base URL variable (`BASE` in step G).
    pub fn base_var(self) -> Option<&'static str> {
        match self {
            AuthType::Openai | AuthType::OpenaiResponses => Some("OPENAI_BASE_URL"),
            AuthType::Anthropic => Some("ANTHROPIC_BASE_URL"),
            _ => None,
        }
    }

    /// `AUTH_ENV_MODEL_VARS[T]` (step E).
    pub fn model_vars(self) -> &'static [&'static str] {
        match self {
            AuthType::Openai => &["OPENAI_MODEL", "QWEN_MODEL"],
            AuthType::OpenaiResponses => &["OPENAI_MODEL"],
            AuthType::Anthropic => &["ANTHROPIC_MODEL"],
            AuthType::Gemini => &["GEMINI_MODEL"],
            AuthType::VertexAi => &["GOOGLE_MODEL"],
            AuthType::QwenOauth => &[],
        }
    }
}

/// The Qwen Code flags that matter for resolution (HOST_TOOLS.md 4.2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags {
    /// `--model` / `-m`.
    pub model: Option<String>,
    /// `--auth-type`.
    pub auth_type: Option<String>,
    /// `--openai-api-key` (a secret: never shown).
    pub api_key: Option<String>,
    /// `--openai-base-url`.
    pub base_url: Option<String>,
    /// `--bare`.
    pub bare: bool,
    /// `--proxy`.
    pub proxy: Option<String>,
}

/// Parse `argv[1..]`. A repeated flag keeps the last value (the broker never adds one the user
/// passed, HOST_TOOLS.md 4.2). Parsing stops at `--`.
pub fn parse_flags(args: &[String]) -> Flags {
    let mut flags = Flags::default();
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        if arg == "--" {
            break;
        }
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with('-') => (n, Some(v.to_string())),
            _ => (arg, None),
        };
        let slot: Option<&mut Option<String>> = match name {
            "--model" | "-m" => Some(&mut flags.model),
            "--auth-type" => Some(&mut flags.auth_type),
            "--openai-api-key" => Some(&mut flags.api_key),
            "--openai-base-url" => Some(&mut flags.base_url),
            "--proxy" => Some(&mut flags.proxy),
            "--bare" => {
                flags.bare = inline.as_deref().is_none_or(|v| v != "false");
                None
            }
            _ => None,
        };
        if let Some(slot) = slot {
            if let Some(v) = inline {
                *slot = Some(v);
            } else if let Some(v) = args.get(i + 1) {
                *slot = Some(v.clone());
                i += 1;
            }
        }
        i += 1;
    }
    flags
}

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

fn layer_files(src: &Sources) -> Vec<(Scope, Arc<crate::sources::SettingsFile>)> {
    let q = &src.qwen;
    [
        (Scope::SystemDefaults, &q.system_defaults),
        (Scope::User, &q.user),
        (Scope::Workspace, &q.workspace),
        (Scope::System, &q.system),
    ]
    .into_iter()
    .filter_map(|(s, f)| f.clone().map(|f| (s, f)))
    .collect()
}

fn raw_node(f: &crate::sources::SettingsFile) -> Node {
    match &f.parsed {
        Ok(n) if matches!(n.value, Value::Object(_)) => n.clone(),
        _ => Node::new(Value::Object(Vec::new())),
    }
}

/// Folder trust (HOST_TOOLS.md 1.2): off by default, and then every workspace is trusted. With
/// it on, `trustedFolders.json` maps paths to `TRUST_FOLDER` / `TRUST_PARENT` / `DO_NOT_TRUST`;
/// the longest matching rule decides, and no rule means untrusted.
fn workspace_trusted(src: &Sources, pre: &Node) -> bool {
    let enabled = pre.path(&["security", "folderTrust", "enabled"]).map(|n| &n.value)
        == Some(&Value::Bool(true));
    if !enabled {
        return true;
    }
    let Some(Ok(rules)) = src.qwen.trusted_folders.as_ref().map(|f| &f.parsed) else {
        return false;
    };
    let cwd = src.cwd.to_string_lossy();
    let mut best: Option<(usize, bool)> = None;
    for (path, v) in rules.as_object().unwrap_or(&[]) {
        let (root, trust) = match v.as_str() {
            Some("TRUST_FOLDER") => (path.as_str().to_string(), true),
            Some("TRUST_PARENT") => (
                std::path::Path::new(path)
                    .parent()
                    .map_or(String::new(), |p| p.to_string_lossy().into()),
                true,
            ),
            Some("DO_NOT_TRUST") => (path.clone(), false),
            _ => continue,
        };
        let root = root.trim_end_matches('/');
        if (cwd == root || cwd.starts_with(&format!("{root}/")) || root.is_empty())
            && best.is_none_or(|(l, _)| root.len() >= l)
        {
            best = Some((root.len(), trust));
        }
    }
    best.is_some_and(|(_, t)| t)
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

    // B. Settings.
    let mut layers: Vec<Layer> = Vec::new();
    let mut untrusted_workspace = false;
    let mut env = env_proc.clone();
    let mut unresolved = Vec::new();
    if !bare {
        let files = layer_files(src);
        for (scope, f) in &files {
            if let Err(e) = &f.parsed {
                let (sev, what) = if *scope == Scope::Workspace {
                    (
                        Severity::Error,
                        "Qwen Code will copy it to settings.json.corrupted and overwrite it with {}",
                    )
                } else {
                    (Severity::Error, "Qwen Code refuses to start")
                };
                findings.push(finding(
                    "config-parse-error",
                    sev,
                    format!("{} settings file does not parse: {e}; {what}", scope.name()),
                    format!(
                        "fix the JSON syntax in {} at line {} column {}",
                        f.label, e.line, e.col
                    ),
                    Some(format!("{}:{}:{}", f.label, e.line, e.col)),
                ));
            } else if let Ok(n) = &f.parsed
                && !matches!(n.value, Value::Object(_))
            {
                findings.push(finding(
                    "config-parse-error",
                    Severity::Error,
                    format!("{} settings file is not a valid JSON object", scope.name()),
                    format!("make the top level of {} an object: {{ … }}", f.label),
                    Some(n.loc.to_string()),
                ));
            }
        }
        let raw: Vec<(Scope, Arc<crate::sources::SettingsFile>, Node)> =
            files.iter().map(|(s, f)| (*s, f.clone(), raw_node(f))).collect();
        // Trust is read from the non-workspace layers.
        let pre = settings::merge(raw.iter().filter(|l| l.0 != Scope::Workspace).map(|l| &l.2));
        let trusted = workspace_trusted(src, &pre);
        untrusted_workspace = !trusted && raw.iter().any(|l| l.0 == Scope::Workspace);
        let raw: Vec<_> = raw.into_iter().filter(|l| trusted || l.0 != Scope::Workspace).collect();

        // homeFallback: home .env keys not in the process env (QWEN_HOME's own file, and ~/.env
        // only without a custom QWEN_HOME).
        let custom_home = src.qwen.qdir != src.home.join(".qwen");
        let mut fallback: Vec<(String, String)> = Vec::new();
        for f in &src.qwen.home_envs {
            let is_qdir = f.path.parent() == Some(src.qwen.qdir.as_path());
            let is_home = f.path.parent() == Some(src.home.as_path());
            if is_qdir || (is_home && !custom_home) {
                for e in &f.entries {
                    if env_proc.get(&e.key).is_none() && !fallback.iter().any(|(k, _)| *k == e.key)
                    {
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
            for e in &f.entries {
                if allowed(&e.key, f, true, &excluded) {
                    env.push(
                        &e.key,
                        e.value.clone(),
                        Origin::File { file: f.label.clone(), line: e.line },
                    );
                }
            }
        }
        for f in &src.qwen.home_envs {
            for e in &f.entries {
                env.push(
                    &e.key,
                    e.value.clone(),
                    Origin::File { file: f.label.clone(), line: e.line },
                );
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
    }
    let merged = settings::merge(layers.iter().map(|l| &l.node));
    let mut read_vars: Vec<String> = Vec::new();

    // Per-layer values of a settings path, highest layer first (the first is the merged winner).
    let layer_vals = |path: &[&str]| -> Vec<(String, Loc)> {
        layers
            .iter()
            .rev()
            .filter_map(|l| {
                l.node.path(path).and_then(|n| n.as_str().map(|s| (s.to_string(), n.loc.clone())))
            })
            .collect()
    };
    let settings_cands = |path: &[&str], show: Show, ok: &dyn Fn(&str) -> bool| -> Vec<Cand> {
        layer_vals(path)
            .into_iter()
            .enumerate()
            .map(|(i, (v, loc))| Cand {
                ok: i == 0 && ok(&v),
                source: format!("{loc} {}", path.join(".")),
                value: v,
                show,
            })
            .collect()
    };
    let env_cands = |name: &str, show: Show, ok: &dyn Fn(&str) -> bool| -> Vec<Cand> {
        let w = env.winner(name);
        env.cands(name)
            .iter()
            .map(|c| Cand {
                ok: w == Some(c) && ok(&c.value),
                source: c.source(name),
                value: c.value.clone(),
                show,
            })
            .collect()
    };

    // D. Auth type.
    let mut auth_cands: Vec<Cand> = Vec::new();
    if let Some(a) = &flags.auth_type {
        auth_cands.push(Cand {
            value: a.clone(),
            source: "flag --auth-type".into(),
            ok: true,
            show: Show::Text,
        });
    }
    if !bare {
        auth_cands.extend(settings_cands(
            &["security", "auth", "selectedType"],
            Show::Text,
            &|v| !v.is_empty(),
        ));
    }
    let e = |k: &str| env.nonempty(k).is_some();
    let inferred = if e("QWEN_OAUTH") {
        Some((AuthType::QwenOauth, "QWEN_OAUTH"))
    } else if e("OPENAI_API_KEY") && (e("OPENAI_MODEL") || e("QWEN_MODEL")) && e("OPENAI_BASE_URL")
    {
        Some((AuthType::Openai, "OPENAI_API_KEY + OPENAI_MODEL + OPENAI_BASE_URL"))
    } else if e("GEMINI_API_KEY") && e("GEMINI_MODEL") {
        Some((AuthType::Gemini, "GEMINI_API_KEY + GEMINI_MODEL"))
    } else if (e("GOOGLE_API_KEY") || e("GOOGLE_CLOUD_PROJECT")) && e("GOOGLE_MODEL") {
        Some((AuthType::VertexAi, "GOOGLE_API_KEY + GOOGLE_MODEL"))
    } else if e("ANTHROPIC_API_KEY") && e("ANTHROPIC_MODEL") && e("ANTHROPIC_BASE_URL") {
        Some((AuthType::Anthropic, "ANTHROPIC_API_KEY + ANTHROPIC_MODEL + ANTHROPIC_BASE_URL"))
    } else {
        None
    };
    read_vars.extend(
        ["QWEN_OAUTH", "OPENAI_API_KEY", "OPENAI_MODEL", "QWEN_MODEL", "OPENAI_BASE_URL"]
            .map(String::from),
    );
    if let Some((t, why)) = inferred {
        auth_cands.push(Cand {
            value: t.as_str().into(),
            source: format!("inferred from env {why}"),
            ok: true,
            show: Show::Text,
        });
    }
    let (auth_win, auth_field) = field(&auth_cands, inp.shower, None);
    let auth_str = auth_win.map(|i| auth_cands[i].value.clone());
    let auth = auth_str.as_deref().and_then(AuthType::parse);
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
        base_url: None,
        model: None,
        fields: [auth_field, Field::default(), Field::default(), Field::default()],
        read_vars: Vec::new(),
        findings: Vec::new(),
    };
    if let (Some(s), None) = (&auth_str, auth) {
        let loc = auth_win.map(|i| auth_cands[i].source.clone());
        findings.push(finding(
            "invalid-auth-type",
            Severity::Error,
            format!("auth type \"{s}\" is not one of openai, openai-responses, anthropic, gemini, vertex-ai"),
            "use one of: openai, openai-responses, anthropic, gemini, vertex-ai".into(),
            loc,
        ));
    }

    // Provider validation (step D, second half) needs no auth type.
    if !bare {
        out.entries = validate_providers(&merged, &mut findings);
    }

    let Some(t) = auth else {
        if auth_str.is_none() {
            findings.push(no_auth_type(&env));
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
        let mut sc = settings_cands(&["model", "name"], Show::Text, &|v| {
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
        let mut cs = env_cands(v, Show::Text, &|x| !x.is_empty());
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
    out.model_id.clone_from(&model_id);
    out.model_from_settings = from_settings;

    // F. Provider match.
    let cands: Vec<&Entry> = out.entries.iter().filter(|e| e.protocol == t).collect();
    let provider: Option<Entry> = model_id.as_ref().and_then(|m| {
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
    });

    // G. Fields.
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
        for c in env_cands(k, Show::Header, &|x| !x.is_empty()) {
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
    for c in env_cands(key_var, Show::Header, &present) {
        key_cands.push(c);
        key_vars.push(Some(key_var.to_string()));
    }
    if !bare {
        for c in settings_cands(&["security", "auth", "apiKey"], Show::Header, &present) {
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
    let (k_win, mut key_field) = field(&key_cands, inp.shower, None);
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
            let loc = layer_vals(&["security", "auth", "apiKey"]).first().map(|(_, l)| l.clone());
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
        base_cands.extend(env_cands(bv, Show::Text, &present));
    }
    if !bare {
        base_cands.extend(settings_cands(&["security", "auth", "baseUrl"], Show::Text, &present));
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
    let (b_win, base_field) = field(&base_cands, inp.shower, None);
    out.base_url = b_win.map(|i| base_cands[i].value.clone());

    // Model field: the entry's id when matched, else M or the default.
    let mut model_field;
    if let Some(p) = &provider {
        let (_, f) = field(&model_cands, inp.shower, None);
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
        let (w, f) = field(&model_cands, inp.shower, None);
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
    out.provider = provider;
    out.fields = [out.fields[0].clone(), model_field, base_field, key_field];
    out.findings = findings;
    read_vars.sort();
    read_vars.dedup();
    out.read_vars = read_vars;
    out
}

/// `stripRuntimePrefix`: `$runtime|<type>|<id>` → `<id>`.
pub fn strip_runtime_prefix(s: &str) -> &str {
    s.strip_prefix("$runtime|").and_then(|r| r.split_once('|')).map_or(s, |(_, id)| id)
}

fn no_auth_type(env: &EnvView) -> Finding {
    let have = |k: &str| env.nonempty(k).is_some();
    let mut missing: Vec<&str> = Vec::new();
    if !have("OPENAI_API_KEY") {
        missing.push("OPENAI_API_KEY");
    }
    if !have("OPENAI_MODEL") && !have("QWEN_MODEL") {
        missing.push("OPENAI_MODEL");
    }
    if !have("OPENAI_BASE_URL") {
        missing.push("OPENAI_BASE_URL");
    }
    let fix = if missing.len() < 3 {
        format!(
            "set {} (the OPENAI_API_KEY + OPENAI_MODEL + OPENAI_BASE_URL triple must be complete), or set \"security\": {{\"auth\": {{\"selectedType\": \"openai\"}}}} in ~/.qwen/settings.json",
            missing.join(" and ")
        )
    } else {
        "set \"security\": {\"auth\": {\"selectedType\": \"openai\"}} and \"model\": {\"name\": \"MODEL\"} in ~/.qwen/settings.json, or pass --auth-type openai".into()
    };
    finding(
        "no-auth-type",
        Severity::Error,
        "no auth type is selected: no --auth-type, no security.auth.selectedType, and the environment does not hold a complete OPENAI_API_KEY + OPENAI_MODEL + OPENAI_BASE_URL triple".into(),
        fix,
        None,
    )
}

/// Validate `modelProviders` (HOST_TOOLS.md 3.1) and return the usable entries in candidate
/// order (provider keys in object order, then array order), first `(id, baseUrl)` kept.
fn validate_providers(merged: &Node, findings: &mut Vec<Finding>) -> Vec<Entry> {
    let mut out: Vec<Entry> = Vec::new();
    let Some(mp) = merged.get("modelProviders") else { return out };
    let Some(groups) = mp.as_object() else {
        findings.push(finding(
            "provider-entry-invalid",
            Severity::Warning,
            "modelProviders is not an object: it is ignored".into(),
            "make modelProviders an object of provider id → array of models".into(),
            Some(mp.loc.to_string()),
        ));
        return out;
    };
    let mapping = merged.get("providerProtocol");
    for (pid, arr) in groups {
        let protocol = if let Some(t) = AuthType::parse(pid) {
            t
        } else {
            let mapped = mapping.and_then(|m| m.get(pid));
            if let Some(t) = mapped.and_then(Node::as_str).and_then(AuthType::parse) {
                t
            } else {
                let n = arr.as_array().map_or(0, <[Node]>::len);
                let (msg, fix, loc) = if let Some(bad) = mapped {
                    (
                        format!(
                            "providerProtocol[\"{pid}\"] is not a known protocol: its {n} model(s) are ignored"
                        ),
                        format!(
                            "set \"providerProtocol\": {{\"{pid}\": \"openai\"}} (or another of openai, openai-responses, anthropic, gemini, vertex-ai)"
                        ),
                        bad.loc.to_string(),
                    )
                } else {
                    (
                        format!(
                            "modelProviders provider \"{pid}\" is not a built-in protocol (openai, qwen-oauth, gemini, vertex-ai, anthropic) and has no providerProtocol mapping; its {n} model(s) are ignored"
                        ),
                        format!(
                            "set \"providerProtocol\": {{\"{pid}\": \"openai\"}} in {}, or move its models under modelProviders.openai",
                            arr.loc.file
                        ),
                        arr.loc.to_string(),
                    )
                };
                findings.push(finding(
                    "unknown-provider-protocol",
                    Severity::Warning,
                    msg,
                    fix,
                    Some(loc),
                ));
                continue;
            }
        };
        let Some(items) = arr.as_array() else {
            findings.push(finding(
                "provider-entry-invalid",
                Severity::Warning,
                format!("modelProviders.{pid} is not an array (the legacy {{protocol, models}} wrapper?): it is skipped"),
                format!("make modelProviders.{pid} an array of model entries: [{{\"id\": …, \"baseUrl\": …, \"envKey\": …}}]"),
                Some(arr.loc.to_string()),
            ));
            continue;
        };
        if protocol == AuthType::QwenOauth {
            continue;
        }
        for (i, item) in items.iter().enumerate() {
            let path = format!("modelProviders.{pid}[{i}]");
            let Some(id) = item.get("id").and_then(Node::as_str).filter(|s| !s.is_empty()) else {
                findings.push(finding(
                    "provider-entry-invalid",
                    Severity::Error,
                    format!(
                        "Model config in authType '{}' missing required field: id ({path})",
                        protocol.as_str()
                    ),
                    format!("add \"id\": \"MODEL\" to {path}"),
                    Some(item.loc.to_string()),
                ));
                continue;
            };
            if let Some(w) = item.get("wireApi") {
                let ok_proto = matches!(protocol, AuthType::Openai | AuthType::OpenaiResponses);
                let ok_val = matches!(w.as_str(), Some("chat-completions" | "responses"));
                if !ok_proto || !ok_val {
                    findings.push(finding(
                        "provider-entry-invalid",
                        Severity::Error,
                        format!("{path}.wireApi is invalid (only \"chat-completions\" or \"responses\", and only on OpenAI protocols): Qwen Code stops with a fatal config error"),
                        format!("remove \"wireApi\" from {path} or set it to \"chat-completions\""),
                        Some(w.loc.to_string()),
                    ));
                    continue;
                }
            }
            let base_url = item.get("baseUrl").and_then(Node::as_str).map(str::to_string);
            if let Some(first) =
                out.iter().find(|e| e.protocol == protocol && e.id == id && e.base_url == base_url)
            {
                findings.push(finding(
                    "duplicate-model-id",
                    Severity::Warning,
                    format!("{path} repeats id \"{id}\" with the same baseUrl as {}: the later entry is ignored", first.path()),
                    format!("remove {path} or give it a different id"),
                    Some(item.loc.to_string()),
                ));
                continue;
            }
            out.push(Entry {
                pid: pid.clone(),
                index: i,
                protocol,
                id: id.to_string(),
                base_url,
                env_key: item.get("envKey").and_then(Node::as_str).map(str::to_string),
                node: item.clone(),
            });
        }
    }
    out
}
