//! `qwen-env key import`: find literal keys in the files a resolution reads, and scrub them out.
//!
//! Each literal is named by the variable it feeds: a settings `env.NAME` or a `.env` `NAME=` feeds
//! `NAME`; `security.auth.apiKey` feeds `OPENAI_API_KEY` (the generic chain's variable, which
//! `run` injects when no provider `envKey` applies); an OpenClaw `apiKey` or profile `key` feeds
//! the provider's variable (`QWEN_API_KEY` for `qwen`, `OPENROUTER_API_KEY` for `openrouter`, …).
//! `envKey` references are names, not literals, and are never touched.
//!
//! Scrubbing edits text, not a re-serialised document, so comments and formatting survive: a
//! `.env` line is deleted; a JSON member is cut out with its comma. The result is parsed again
//! and compared before anything is written, and the daemon keeps a backup beside the file.

use std::path::{Path, PathBuf};

use qwen_env_proto::SecretValue;

use crate::jsonc::Node;
use crate::mask;
use crate::sources::Sources;

/// One literal key found in a file.
#[derive(Debug)]
pub struct Literal {
    /// The variable it feeds (the keychain entry name).
    pub name: String,
    /// The key.
    pub value: SecretValue,
    /// The file holding it.
    pub file: PathBuf,
    /// Where, for people: `file:line` or `file key.path`.
    pub location: String,
    /// How to remove it.
    pub edit: Edit,
}

/// How to remove a literal from its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// Delete this 1-based line of a `.env` file.
    EnvLine(u32),
    /// Cut the JSON member whose value is this exact string.
    JsonMember,
}

/// Literal keys in the sources of a resolution (Qwen Code and OpenClaw files), highest priority
/// first, so that for a name defined twice the first one is what the tool uses today.
pub fn scan(src: &Sources) -> Vec<Literal> {
    let mut out = Vec::new();
    let q = &src.qwen;
    for f in q.project_env.iter().chain(q.home_envs.iter()) {
        out.extend(env_literals(&f.path, &f.entries));
    }
    for f in [&q.system, &q.workspace, &q.user, &q.system_defaults].into_iter().flatten() {
        if let Ok(node) = &f.parsed {
            out.extend(settings_literals(&f.path, node));
        }
    }
    let oc = &src.openclaw;
    for f in oc.cwd_env.iter().chain(oc.state_env.iter()) {
        out.extend(env_literals(&f.path, &f.entries));
    }
    for f in oc.config.iter().chain(oc.legacy_auth_profiles.iter()) {
        if let Ok(node) = &f.parsed {
            out.extend(openclaw_literals(&f.path, node));
        }
    }
    out
}

/// Literal keys in one file named on the command line: JSON files are read as settings and as
/// OpenClaw files, anything else as a `.env` file.
pub fn scan_file(path: &Path) -> Result<Vec<Literal>, String> {
    let is_json = path.extension().is_some_and(|e| e == "json" || e == "json5");
    let cap = if is_json { crate::fsread::JSON_CAP } else { crate::fsread::ENV_CAP };
    let (bytes, _) = crate::fsread::read_regular(path, cap)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let text = String::from_utf8_lossy(&bytes);
    if !is_json {
        return Ok(env_literals(path, &crate::dotenv::parse(&text)));
    }
    let label: std::sync::Arc<str> = std::sync::Arc::from(path.display().to_string().as_str());
    // Into a Node, not a serde_json::Value: Node bounds the nesting depth (a deep file
    // overflowed the daemon's stack) and keeps the key order.
    let node = crate::cache::parse_jsonc_or_json5(&text, &label)
        .map_err(|e| format!("{} does not parse: {e}", path.display()))?;
    let mut out = settings_literals(path, &node);
    out.extend(openclaw_literals(path, &node));
    Ok(out)
}

fn env_literals(path: &Path, entries: &[crate::dotenv::Entry]) -> Vec<Literal> {
    entries
        .iter()
        .filter(|e| mask::is_literal_key(&e.key, &e.value))
        .map(|e| Literal {
            name: e.key.clone(),
            value: SecretValue::new(e.value.clone()),
            file: path.to_owned(),
            location: format!("{}:{}", path.display(), e.line),
            edit: Edit::EnvLine(e.line),
        })
        .collect()
}

fn settings_literals(path: &Path, node: &Node) -> Vec<Literal> {
    let mut out = Vec::new();
    if let Some(env) = node.get("env").and_then(Node::as_object) {
        for (k, v) in env {
            if let Some(s) = v.as_str().filter(|s| mask::is_literal_key(k, s)) {
                out.push(json_literal(path, k, s, &format!("env.{k}")));
            }
        }
    }
    if let Some(s) = node.path(&["security", "auth", "apiKey"]).and_then(Node::as_str)
        && !s.is_empty()
        && !s.contains('$')
    {
        out.push(json_literal(path, "OPENAI_API_KEY", s, "security.auth.apiKey"));
    }
    out
}

fn openclaw_literals(path: &Path, node: &Node) -> Vec<Literal> {
    let mut out = Vec::new();
    if let Some(providers) = node.path(&["models", "providers"]).and_then(Node::as_object) {
        for (id, p) in providers {
            if let Some(s) =
                p.get("apiKey").and_then(Node::as_str).filter(|s| mask::looks_like_key(s))
            {
                out.push(json_literal(
                    path,
                    &provider_var(id),
                    s,
                    &format!("models.providers.{id}.apiKey"),
                ));
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
                if let Some(s) =
                    p.get(field).and_then(Node::as_str).filter(|s| mask::looks_like_key(s))
                {
                    out.push(json_literal(
                        path,
                        &provider_var(provider),
                        s,
                        &format!("profiles.{id}.{field}"),
                    ));
                }
            }
        }
    }
    out
}

fn json_literal(path: &Path, name: &str, value: &str, key_path: &str) -> Literal {
    Literal {
        name: name.to_owned(),
        value: SecretValue::new(value.to_owned()),
        file: path.to_owned(),
        location: format!("{} {key_path}", path.display()),
        edit: Edit::JsonMember,
    }
}

/// The variable an OpenClaw provider's key is read from.
fn provider_var(provider: &str) -> String {
    match provider {
        "qwen" | "modelstudio" => "QWEN_API_KEY".to_owned(),
        "qwen-token-plan" => "QWEN_TOKEN_PLAN_API_KEY".to_owned(),
        other => format!("{}_API_KEY", other.to_ascii_uppercase().replace(['-', '.', ':'], "_")),
    }
}

/// Removes `literals` (all from the file whose text is `text`) and returns the new text, or why
/// it cannot be done safely.
pub fn scrub(text: &str, literals: &[&Literal]) -> Result<String, String> {
    let mut out = text.to_owned();
    let mut lines: Vec<u32> = Vec::new();
    for lit in literals {
        match lit.edit {
            Edit::EnvLine(n) => lines.push(n),
            Edit::JsonMember => out = cut_member(&out, lit.value.expose_secret())?,
        }
    }
    if !lines.is_empty() {
        out = delete_lines(&out, &lines, literals)?;
    }
    Ok(out)
}

/// Deletes whole lines, refusing when a line does not hold its value (a multi-line value).
fn delete_lines(text: &str, lines: &[u32], literals: &[&Literal]) -> Result<String, String> {
    let mut kept = String::with_capacity(text.len());
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let n = u32::try_from(i + 1).unwrap_or(u32::MAX);
        if lines.contains(&n) {
            let holds = literals
                .iter()
                .any(|l| l.edit == Edit::EnvLine(n) && line.contains(l.value.expose_secret()));
            if !holds {
                return Err(format!(
                    "line {n} does not hold the whole value (a multi-line value?)"
                ));
            }
            continue;
        }
        kept.push_str(line);
    }
    Ok(kept)
}

/// Cuts the member `"key": "<value>"` (or `key: '<value>'` in JSON5) out of the text, with the
/// comma that separates it and, when it stood on a line of its own, that line.
fn cut_member(text: &str, value: &str) -> Result<String, String> {
    let quoted: Vec<(usize, usize)> = ['"', '\'']
        .iter()
        .flat_map(|q| {
            let needle = format!("{q}{value}{q}");
            text.match_indices(&needle).map(|(i, m)| (i, i + m.len())).collect::<Vec<_>>()
        })
        .collect();
    let [(v_start, v_end)] = quoted[..] else {
        return Err("the key does not occur exactly once as a string in the file".to_owned());
    };
    let b = text.as_bytes();
    // Back over `:` and the member name to where the member starts.
    let mut i = v_start;
    while i > 0 && b[i - 1].is_ascii_whitespace() {
        i -= 1;
    }
    if i == 0 || b[i - 1] != b':' {
        return Err("the key is not the value of an object member".to_owned());
    }
    i -= 1;
    while i > 0 && b[i - 1].is_ascii_whitespace() {
        i -= 1;
    }
    let name_end = i;
    if name_end > 0 && matches!(b[name_end - 1], b'"' | b'\'') {
        let q = b[name_end - 1];
        i = name_end - 1;
        while i > 0 && b[i - 1] != q {
            i -= 1;
        }
        i = i.saturating_sub(1);
    } else {
        while i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_' || b[i - 1] == b'$') {
            i -= 1;
        }
    }
    let mut start = i;
    let mut end = v_end;
    // A following comma goes with the member; otherwise the preceding one does.
    let mut j = end;
    while j < b.len() && matches!(b[j], b' ' | b'\t') {
        j += 1;
    }
    if j < b.len() && b[j] == b',' {
        end = j + 1;
        while end < b.len() && matches!(b[end], b' ' | b'\t') {
            end += 1;
        }
    } else {
        let mut k = start;
        while k > 0 && b[k - 1].is_ascii_whitespace() {
            k -= 1;
        }
        if k > 0 && b[k - 1] == b',' {
            start = k - 1;
        }
    }
    // Whole line: take the indentation and the newline too.
    let line_start = text[..start].rfind('\n').map_or(0, |p| p + 1);
    let rest_end = text[end..].find('\n').map_or(text.len(), |p| end + p);
    if text[line_start..start].trim().is_empty() && text[end..rest_end].trim().is_empty() {
        start = line_start;
        end = (rest_end + 1).min(text.len());
    }
    Ok(format!("{}{}", &text[..start], &text[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonc;

    fn lit(value: &str, edit: Edit) -> Literal {
        Literal {
            name: "N".into(),
            value: SecretValue::new(value.into()),
            file: PathBuf::from("/x"),
            location: String::new(),
            edit,
        }
    }

    #[test]
    fn cuts_members_keeping_comments_and_commas_valid() {
        let key = "sk-0123456789abcdef0123";
        let text = format!(
            "{{\n  // my settings\n  \"env\": {{\n    \"DASHSCOPE_API_KEY\": \"{key}\",\n    \"OTHER\": \"1\"\n  }},\n  \"model\": {{ \"name\": \"m\" }}\n}}\n"
        );
        let out = scrub(&text, &[&lit(key, Edit::JsonMember)]).unwrap();
        assert_eq!(out, "{\n  // my settings\n  \"env\": {\n    \"OTHER\": \"1\"\n  }},\n  \"model\": { \"name\": \"m\" }\n}\n".replace("}},", "},"));
        // Last member: the preceding comma goes.
        let text = format!(
            "{{ \"security\": {{ \"auth\": {{ \"selectedType\": \"openai\", \"apiKey\": \"{key}\" }} }} }}"
        );
        let out = scrub(&text, &[&lit(key, Edit::JsonMember)]).unwrap();
        assert_eq!(out, "{ \"security\": { \"auth\": { \"selectedType\": \"openai\" } } }");
        let label: std::sync::Arc<str> = std::sync::Arc::from("t");
        assert!(jsonc::parse(&out, &label).is_ok());
        // JSON5 with an unquoted name and single quotes.
        let text = format!(
            "{{ models: {{ providers: {{ qwen: {{ apiKey: '{key}', baseUrl: 'x' }} }} }} }}"
        );
        let out = scrub(&text, &[&lit(key, Edit::JsonMember)]).unwrap();
        assert_eq!(out, "{ models: { providers: { qwen: { baseUrl: 'x' } } } }");
    }

    #[test]
    fn refuses_ambiguous_or_multiline() {
        let key = "sk-0123456789abcdef0123";
        let twice = format!("{{ \"a\": \"{key}\", \"b\": \"{key}\" }}");
        assert!(scrub(&twice, &[&lit(key, Edit::JsonMember)]).is_err());
        let env = format!("A=1\nK=\"{key}\nmore\"\n");
        assert!(scrub(&env, &[&lit("sk-0123456789abcdef0123\nmore", Edit::EnvLine(2))]).is_err());
        let env = format!("# keys\nexport K={key} # mine\nA=1\n");
        assert_eq!(scrub(&env, &[&lit(key, Edit::EnvLine(2))]).unwrap(), "# keys\nA=1\n");
    }

    #[test]
    fn names_follow_the_variable_fed() {
        let label: std::sync::Arc<str> = std::sync::Arc::from("t");
        let node = jsonc::parse(
            r#"{ "env": { "OPENROUTER_API_KEY": "sk-or-v1-0123456789abcdef", "MODEL": "qwen-plus" },
                 "security": { "auth": { "apiKey": "sk-0123456789abcdef0123" } },
                 "modelProviders": { "openai": [ { "id": "m", "envKey": "DASHSCOPE_API_KEY" } ] } }"#,
            &label,
        )
        .unwrap();
        let names: Vec<String> =
            settings_literals(Path::new("/s.json"), &node).into_iter().map(|l| l.name).collect();
        assert_eq!(names, ["OPENROUTER_API_KEY", "OPENAI_API_KEY"]);
        assert_eq!(provider_var("qwen"), "QWEN_API_KEY");
        assert_eq!(provider_var("openrouter"), "OPENROUTER_API_KEY");
    }
}
