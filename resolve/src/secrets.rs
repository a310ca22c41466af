//! The one secrets scanner: the literal keys the host tools' files hold (settings `env` blocks and
//! `security.auth.apiKey`, `.env` files, OpenClaw's config and legacy auth profiles).
//!
//! `doctor`'s `plaintext-secret` rules, `key import` and the masking of displayed values all take
//! their literals from here, so a key `key import` would take is always one `doctor` reports, and
//! one a displayed value never shows.
//!
//! Each literal is named by the variable it feeds: a settings `env.NAME` or a `.env` `NAME=` feeds
//! `NAME`; `security.auth.apiKey` feeds `OPENAI_API_KEY` (the generic chain's variable, which
//! `run` injects when no provider `envKey` applies); an OpenClaw `apiKey` or profile `key` feeds
//! the provider's variable (`QWEN_API_KEY` for `qwen`, `OPENROUTER_API_KEY` for `openrouter`, …).
//! `envKey` references are names, not literals, and are never reported.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use qwen_env_proto::SecretValue;

use crate::jsonc::{Loc, Node};
use crate::mask;
use crate::settings::Scope;
use crate::sources::{EnvFile, Sources};

/// Whether `name=value` (in a `.env` file or a settings `env` block) holds a literal key: a
/// secret-looking name with a real value, or a value that looks like a key. `$VAR` references
/// are not literals.
pub fn is_literal_key(name: &str, value: &str) -> bool {
    !value.contains('$')
        && (mask::is_secret_name(name) && value.len() >= 8 || looks_like_key(value))
}

/// Whether the value of a member that holds a key (`security.auth.apiKey`, an OpenClaw `apiKey`
/// or profile `key`) is a literal key: as [`is_literal_key`] for a secret name, and neither an
/// OpenClaw `profile:` reference nor a variable name (OpenClaw's "use this variable" marker).
pub fn is_literal_in_key_member(value: &str) -> bool {
    let is_var_name = value.chars().next().is_some_and(|c| c.is_ascii_uppercase() || c == '_')
        && value.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    !value.starts_with("profile:") && !is_var_name && is_literal_key("apiKey", value)
}

/// Whether a value looks like an API key rather than a name, a URL or a placeholder.
pub fn looks_like_key(value: &str) -> bool {
    // The same judgement as for a key pasted into a displayed value (`keys_in`), applied to the
    // whole value: model ids (`qwen3-coder-480b-a35b-instruct`) are short runs, not keys.
    let v = value.trim();
    !v.contains("://") && !v.contains(char::is_whitespace) && keys_in(v).first() == Some(&v)
}

/// What kind of file a literal is in, for the words of a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A `.env` file.
    DotEnv,
    /// A Qwen Code settings file of this scope (`None`: a file named on the command line).
    Settings(Option<Scope>),
    /// OpenClaw's `openclaw.json` (or a JSON file named on the command line).
    OpenClawConfig,
    /// A legacy OpenClaw `auth-profiles.json`.
    OpenClawProfiles,
    /// OpenClaw's SQLite auth store (read-only: the `path` of the place is `profile <id>`).
    OpenClawStore,
}

/// Where in its file a literal is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// A `.env` line: where its key is.
    Line(Loc),
    /// A JSON member: its dotted path (`env.OPENAI_API_KEY`) and the value's position.
    Member {
        /// `env.OPENAI_API_KEY`, `models.providers.qwen.apiKey`.
        path: String,
        /// Where the member is (its key).
        loc: Loc,
    },
}

/// One literal key in a file. `Debug` never shows the value ([`SecretValue`]).
#[derive(Debug)]
pub struct Hit {
    /// The variable it feeds (the keychain entry it belongs in).
    pub name: String,
    /// The key.
    pub value: SecretValue,
    /// The file holding it.
    pub file: PathBuf,
    /// The file as shown in findings.
    pub label: Arc<str>,
    /// The file's Unix permission bits, for `secret-file-permissions`.
    pub mode: Option<u32>,
    /// What kind of file it is.
    pub kind: FileKind,
    /// Where in the file.
    pub place: Place,
}

impl Hit {
    /// Where, for people and for a finding's location: `file:line:col` of the key (the member's
    /// key in a JSON file).
    pub fn position(&self) -> String {
        match &self.place {
            Place::Line(loc) | Place::Member { loc, .. } => loc.to_string(),
        }
    }

    /// The position and what is there: `file:line:col NAME` for a `.env` line, `file:line:col
    /// key.path` for a JSON member.
    pub fn location(&self) -> String {
        match &self.place {
            Place::Line(_) => format!("{} {}", self.position(), self.name),
            Place::Member { path, .. } => format!("{} {path}", self.position()),
        }
    }
}

/// Literal keys in Qwen Code's files, highest priority first (the `.env` files, then the
/// settings from system down to system defaults), so that for a name defined twice the first one
/// is what the tool uses today. Every file is scanned, used or not (an untrusted workspace still
/// holds its key on disk).
pub fn qwen(src: &Sources) -> Vec<Hit> {
    let q = &src.qwen;
    let mut out: Vec<Hit> =
        q.project_env.iter().chain(&q.home_envs).flat_map(|f| env_file(f)).collect();
    let layers = [
        (Scope::System, &q.system),
        (Scope::Workspace, &q.workspace),
        (Scope::User, &q.user),
        (Scope::SystemDefaults, &q.system_defaults),
    ];
    for (scope, f) in layers {
        if let Some(f) = f
            && let Ok(node) = &f.parsed
        {
            out.extend(settings(&f.path, &f.label, f.mode, node, Some(scope)));
        }
    }
    out
}

/// Literal keys in OpenClaw's files: the stored auth profiles (first: they beat env keys), the
/// `.env` files, `openclaw.json` and legacy auth profiles.
pub fn openclaw(src: &Sources) -> Vec<Hit> {
    let oc = &src.openclaw;
    let mut out: Vec<Hit> =
        oc.profiles.as_ref().map(crate::openclaw::store::hits).unwrap_or_default();
    out.extend(oc.cwd_env.iter().chain(&oc.state_env).flat_map(|f| env_file(f)));
    for (kind, f) in oc
        .config
        .iter()
        .map(|f| (FileKind::OpenClawConfig, f))
        .chain(oc.legacy_auth_profiles.iter().map(|f| (FileKind::OpenClawProfiles, f)))
    {
        if let Ok(node) = &f.parsed {
            out.extend(openclaw_json(&f.path, &f.label, f.mode, node, kind));
        }
    }
    out
}

/// Literal keys in a `.env` file.
pub fn env_file(f: &EnvFile) -> Vec<Hit> {
    env_entries(&f.path, &f.label, f.mode, &f.entries)
}

/// Literal keys in parsed `.env` entries.
pub fn env_entries(
    path: &Path,
    label: &Arc<str>,
    mode: Option<u32>,
    entries: &[crate::dotenv::Entry],
) -> Vec<Hit> {
    entries
        .iter()
        .filter(|e| is_literal_key(&e.key, &e.value))
        .map(|e| Hit {
            name: e.key.clone(),
            value: SecretValue::new(e.value.clone()),
            file: path.to_owned(),
            label: label.clone(),
            mode,
            kind: FileKind::DotEnv,
            place: Place::Line(e.loc(label)),
        })
        .collect()
}

/// Literal keys in a Qwen Code settings document: `env` members and `security.auth.apiKey`.
pub fn settings(
    path: &Path,
    label: &Arc<str>,
    mode: Option<u32>,
    node: &Node,
    scope: Option<Scope>,
) -> Vec<Hit> {
    let hit = |name: &str, n: &Node, key_path: String| -> Option<Hit> {
        let s = n.as_str()?;
        Some(Hit {
            name: name.to_owned(),
            value: SecretValue::new(s.to_owned()),
            file: path.to_owned(),
            label: label.clone(),
            mode,
            kind: FileKind::Settings(scope),
            place: Place::Member { path: key_path, loc: n.loc.clone() },
        })
    };
    let mut out = Vec::new();
    if let Some(env) = node.get("env").and_then(Node::as_object) {
        for (k, v) in env {
            if v.as_str().is_some_and(|s| is_literal_key(k, s)) {
                out.extend(hit(k, v, format!("env.{k}")));
            }
        }
    }
    if let Some(v) = node.path(&["security", "auth", "apiKey"])
        && v.as_str().is_some_and(is_literal_in_key_member)
    {
        out.extend(hit("OPENAI_API_KEY", v, "security.auth.apiKey".to_owned()));
    }
    out
}

/// Literal keys in an OpenClaw JSON document: `env.vars` members, every provider's `apiKey`, and
/// the `key`/`apiKey` of every auth profile.
pub fn openclaw_json(
    path: &Path,
    label: &Arc<str>,
    mode: Option<u32>,
    node: &Node,
    kind: FileKind,
) -> Vec<Hit> {
    let hit = |name: String, n: &Node, key_path: String| -> Option<Hit> {
        let s = n.as_str()?;
        Some(Hit {
            name,
            value: SecretValue::new(s.to_owned()),
            file: path.to_owned(),
            label: label.clone(),
            mode,
            kind,
            place: Place::Member { path: key_path, loc: n.loc.clone() },
        })
    };
    let mut out = Vec::new();
    if let Some(vars) = node.path(&["env", "vars"]).and_then(Node::as_object) {
        for (k, v) in vars {
            if v.as_str().is_some_and(|s| is_literal_key(k, s)) {
                out.extend(hit(k.clone(), v, format!("env.vars.{k}")));
            }
        }
    }
    if let Some(providers) = node.path(&["models", "providers"]).and_then(Node::as_object) {
        for (id, p) in providers {
            if let Some(v) = p.get("apiKey")
                && v.as_str().is_some_and(is_literal_in_key_member)
            {
                out.extend(hit(provider_var(id), v, format!("models.providers.{id}.apiKey")));
            }
        }
    }
    if let Some(profiles) = node.get("profiles").and_then(Node::as_object) {
        for (id, p) in profiles {
            let provider = p
                .get("provider")
                .and_then(Node::as_str)
                .unwrap_or_else(|| id.split(':').next().unwrap_or(id));
            for field in ["key", "apiKey"] {
                if let Some(v) = p.get(field)
                    && v.as_str().is_some_and(is_literal_in_key_member)
                {
                    out.extend(hit(provider_var(provider), v, format!("profiles.{id}.{field}")));
                }
            }
        }
    }
    out
}

/// The variable an OpenClaw provider's key is read from.
pub fn provider_var(provider: &str) -> String {
    match provider {
        "qwen" | "modelstudio" => "QWEN_API_KEY".to_owned(),
        "qwen-token-plan" => "QWEN_TOKEN_PLAN_API_KEY".to_owned(),
        other => format!("{}_API_KEY", other.to_ascii_uppercase().replace(['-', '.', ':'], "_")),
    }
}

/// Every secret a displayed value must never show: the literals of both tools' files and the
/// caller's exported secrets (secret-named or key-shaped), longest first so that a secret that
/// contains another is masked whole. Values under 8 characters are left out: masking them would
/// mangle ordinary words.
pub fn known_values(src: &Sources, env: &[(String, String)]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |value: &str| {
        if value.len() >= 8 && !out.iter().any(|v| v == value) {
            out.push(value.to_owned());
        }
    };
    for (k, v) in env {
        if mask::is_secret_name(k) || looks_like_key(v) {
            add(v);
        }
    }
    for h in qwen(src).iter().chain(&openclaw(src)) {
        add(h.value.expose_secret());
    }
    out.sort_by_key(|v| std::cmp::Reverse(v.len()));
    out
}

/// The parts of a displayed value (a base URL, a model name, a variable) that look like an API
/// key pasted where a key does not belong: tokens between URL punctuation and quotes that carry
/// a known key prefix, or a run of 24 or more letters and digits with both in it. Model names
/// and hosts are made of short runs (`qwen3-coder-480b-a35b-instruct`) and are not matched.
pub fn keys_in(text: &str) -> Vec<&str> {
    const PREFIXES: [&str; 7] = ["sk-", "sk_", "AIza", "eyJ", "gsk_", "hf_", "xai-"];
    let is_key = |t: &str| {
        let alnum = t.chars().filter(char::is_ascii_alphanumeric).count();
        if t.len() < 16 || alnum < 16 {
            return false;
        }
        PREFIXES.iter().any(|p| t.starts_with(p))
            || t.split(|c: char| !c.is_ascii_alphanumeric()).any(|run| {
                run.len() >= 24
                    && run.chars().any(|c| c.is_ascii_digit())
                    && run.chars().any(|c| c.is_ascii_alphabetic())
            })
    };
    text.split(|c: char| {
        c.is_whitespace()
            || matches!(c, '/' | '?' | '&' | '=' | '#' | '@' | ':' | ',' | ';' | '"' | '\'' | '`')
    })
    .filter(|t| is_key(t))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_shapes() {
        assert!(looks_like_key("sk-0123456789abcdef0123456789abcdef"));
        assert!(looks_like_key("sk-or-v1-0123456789abcdef"));
        assert!(!looks_like_key("DASHSCOPE_API_KEY"));
        assert!(!looks_like_key("https://example.com/v1/abcdef0123456"));
        assert!(is_literal_key("OPENAI_API_KEY", "abcdefgh"));
        assert!(!is_literal_key("OPENAI_API_KEY", "$OTHER_KEY_1234"));
        assert!(!is_literal_key("EDITOR", "vi"));
        assert!(is_literal_in_key_member("sk-short1"));
        for not in
            ["QWEN_API_KEY", "${QWEN_API_KEY}", "profile:qwen-portal:default1234", "local", ""]
        {
            assert!(!is_literal_in_key_member(not), "{not}");
        }
    }

    #[test]
    fn names_follow_the_variable_fed() {
        let label: Arc<str> = Arc::from("t");
        let node = crate::jsonc::parse(
            r#"{ "env": { "OPENROUTER_API_KEY": "sk-or-v1-0123456789abcdef", "MODEL": "qwen-plus" },
                 "security": { "auth": { "apiKey": "sk-0123456789abcdef0123" } },
                 "modelProviders": { "openai": [ { "id": "m", "envKey": "DASHSCOPE_API_KEY" } ] } }"#,
            &label,
        )
        .unwrap();
        let hits = settings(Path::new("/s.json"), &label, None, &node, Some(Scope::User));
        let names: Vec<&str> = hits.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["OPENROUTER_API_KEY", "OPENAI_API_KEY"]);
        assert_eq!(hits[1].location(), "t:2:42 security.auth.apiKey");
        assert!(!format!("{hits:?}").contains("0123456789abcdef"));
        assert_eq!(provider_var("qwen"), "QWEN_API_KEY");
        assert_eq!(provider_var("openrouter"), "OPENROUTER_API_KEY");
    }

    #[test]
    fn keys_in_displayed_values() {
        assert_eq!(keys_in("sk-0123456789abcdef0123"), ["sk-0123456789abcdef0123"]);
        assert_eq!(
            keys_in("https://h.example/v1?api_key=sk-or-v1-0123456789abcdef&x=1"),
            ["sk-or-v1-0123456789abcdef"]
        );
        assert_eq!(
            keys_in("a7f3c9e1b2d4f6a8c0e2b4d6f8a1c3e5"),
            ["a7f3c9e1b2d4f6a8c0e2b4d6f8a1c3e5"]
        );
        for plain in [
            "https://dashscope-intl.aliyuncs.com/compatible-mode/v1",
            "qwen3-coder-480b-a35b-instruct",
            "qwen3-coder-plus-2025-09-23",
            "meta-llama/Llama-3.1-70B-Instruct",
            "https://myres.openai.azure.com/openai/deployments/gpt-4o?api-version=2024-08-01-preview",
            "DASHSCOPE_API_KEY",
        ] {
            assert!(keys_in(plain).is_empty(), "{plain}: {:?}", keys_in(plain));
        }
    }
}
