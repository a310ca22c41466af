//! `qwen-env key import`: take the literal keys the secrets scanner ([`crate::secrets`]) finds in
//! the files a resolution reads, and scrub them out. What a literal is and which variable it feeds
//! is the scanner's to say, so `doctor` reports every literal this would import.
//!
//! Scrubbing edits text, not a re-serialised document, so comments and formatting survive: a
//! `.env` line is deleted; a JSON member is cut out with its comma. The result is parsed again
//! and compared before anything is written, and the daemon keeps a backup beside the file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use qwen_env_proto::SecretValue;

use crate::secrets::{self, FileKind, Hit, Place};
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
    /// A profile in OpenClaw's SQLite store, which qwen-env never writes: the user removes it
    /// with `openclaw models auth logout <id>` (the id).
    OpenClawProfile(String),
}

impl Literal {
    /// For a stored OpenClaw profile: the command that removes it.
    pub fn removal_command(&self) -> Option<String> {
        match &self.edit {
            Edit::OpenClawProfile(id) => Some(format!("openclaw models auth logout {id} --yes")),
            _ => None,
        }
    }
}

/// Literal keys in the sources of a resolution (Qwen Code and OpenClaw files), highest priority
/// first, so that for a name defined twice the first one is what the tool uses today.
pub fn scan(src: &Sources) -> Vec<Literal> {
    secrets::qwen(src).into_iter().chain(secrets::openclaw(src)).map(Literal::from).collect()
}

/// Literal keys in one file named on the command line: JSON files are read as settings and as
/// OpenClaw files, anything else as a `.env` file.
pub fn scan_file(path: &Path) -> Result<Vec<Literal>, String> {
    let label: Arc<str> = Arc::from(path.display().to_string().as_str());
    let is_json = path.extension().is_some_and(|e| e == "json" || e == "json5");
    let cap = if is_json { crate::fsread::JSON_CAP } else { crate::fsread::ENV_CAP };
    let (bytes, _) = crate::fsread::read_regular(path, cap)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let text = String::from_utf8_lossy(&bytes);
    if !is_json {
        let entries = crate::dotenv::parse(&text);
        return Ok(secrets::env_entries(path, &label, None, &entries)
            .into_iter()
            .map(Literal::from)
            .collect());
    }
    // Into a Node, not a serde_json::Value: Node bounds the nesting depth (a deep file
    // overflowed the daemon's stack) and keeps the key order.
    let node = crate::cache::parse_jsonc_or_json5(&text, &label)
        .map_err(|e| format!("{} does not parse: {e}", path.display()))?;
    let hits = secrets::settings(path, &label, None, &node, None)
        .into_iter()
        .chain(secrets::openclaw_json(path, &label, None, &node, FileKind::OpenClawConfig));
    Ok(hits.map(Literal::from).collect())
}

impl From<Hit> for Literal {
    fn from(h: Hit) -> Literal {
        let location = h.location();
        let edit = match (&h.place, h.kind) {
            (Place::Line(loc), _) => Edit::EnvLine(loc.line),
            (Place::Member { path, .. }, FileKind::OpenClawStore) => {
                Edit::OpenClawProfile(path.strip_prefix("profile ").unwrap_or(path).to_owned())
            }
            (Place::Member { .. }, _) => Edit::JsonMember,
        };
        Literal { name: h.name, value: h.value, file: h.file, location, edit }
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
            Edit::OpenClawProfile(_) => {
                return Err("it is OpenClaw's database, which qwen-env never writes".into());
            }
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
}
