//! Qwen Code's settings layers: `$VAR` expansion in every string and the merge
//! SystemDefaults < User < Workspace < System (HOST_TOOLS.md 1.1, 1.2).

use std::fmt::Write as _;
use std::sync::{Arc, LazyLock};

use regex::Regex;

use crate::jsonc::{Loc, Node, Value};
use crate::sources::SettingsFile;

/// A settings scope, in merge order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// `system-defaults.json` (lowest).
    SystemDefaults,
    /// `$QWEN_HOME/settings.json` or `~/.qwen/settings.json`.
    User,
    /// `<cwd>/.qwen/settings.json`.
    Workspace,
    /// The system (override) file (highest).
    System,
}

impl Scope {
    /// Lower-case name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Scope::SystemDefaults => "system defaults",
            Scope::User => "user",
            Scope::Workspace => "workspace",
            Scope::System => "system",
        }
    }
}

/// One parsed, expanded settings file.
#[derive(Debug, Clone)]
pub struct Layer {
    /// Its scope.
    pub scope: Scope,
    /// The file.
    pub file: Arc<SettingsFile>,
    /// Its contents after `$VAR` expansion (`{}` if it did not parse).
    pub node: Node,
}

/// A `$VAR` reference that nothing defines: Qwen Code leaves it in the string literally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unresolved {
    /// Where the string is.
    pub loc: Loc,
    /// Its JSON path, e.g. `modelProviders.openai[0].baseUrl`.
    pub path: String,
    /// The variable name.
    pub var: String,
}

/// `resolveEnvVarsInString`'s pattern: `$NAME` (JavaScript `\w`) or `${NAME}`.
static VAR: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\$(?:([A-Za-z0-9_]+)|\{([^}]+)\})").expect("var regex"));

/// Names Qwen Code never expands (HOST_TOOLS.md 1.1).
fn never_expanded(name: &str) -> bool {
    matches!(name, "SESSION_ID" | "QWEN_CODE_SESSION_ID")
}

/// The variables a settings string refers to with `$X` / `${X}`, in order (those Qwen Code
/// never expands left out): what its expansion reads from the environment.
pub fn references(s: &str) -> impl Iterator<Item = &str> {
    VAR.captures_iter(s)
        .filter_map(|c| c.get(1).or_else(|| c.get(2)).map(|m| m.as_str()))
        .filter(|name| !never_expanded(name))
}

/// Expand `$X` / `${X}` in one string; `lookup` returns `None` for an undefined variable.
pub fn expand_str(
    s: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    missing: &mut Vec<String>,
) -> String {
    VAR.replace_all(s, |c: &regex::Captures<'_>| {
        let name = c.get(1).or_else(|| c.get(2)).map_or("", |m| m.as_str());
        if never_expanded(name) {
            return c[0].to_string();
        }
        if let Some(v) = lookup(name) {
            v
        } else {
            missing.push(name.to_string());
            c[0].to_string()
        }
    })
    .into_owned()
}

/// Expand every string below `node`, recording unresolved references with their paths.
pub fn expand(node: &mut Node, lookup: &dyn Fn(&str) -> Option<String>, out: &mut Vec<Unresolved>) {
    fn walk(
        n: &mut Node,
        path: &mut String,
        lookup: &dyn Fn(&str) -> Option<String>,
        out: &mut Vec<Unresolved>,
    ) {
        match &mut n.value {
            Value::String(s) if s.contains('$') => {
                let mut missing = Vec::new();
                *s = expand_str(s, lookup, &mut missing);
                for var in missing {
                    out.push(Unresolved { loc: n.loc.clone(), path: path.clone(), var });
                }
            }
            Value::Array(a) => {
                for (i, item) in a.iter_mut().enumerate() {
                    let len = path.len();
                    let _ = write!(path, "[{i}]");
                    walk(item, path, lookup, out);
                    path.truncate(len);
                }
            }
            Value::Object(m) => {
                for (k, v) in m.iter_mut() {
                    let len = path.len();
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(k);
                    walk(v, path, lookup, out);
                    path.truncate(len);
                }
            }
            _ => {}
        }
    }
    walk(node, &mut String::new(), lookup, out);
}

/// `customDeepMerge`: plain objects merge recursively, everything else is replaced by the later
/// layer. This gives `env` its per-key merge and `modelProviders` its per-provider-key merge with
/// each array replaced wholesale: the schema's `"replace"` strategy for `modelProviders` has no
/// branch in `mergeRecursively` (HOST_TOOLS.md 1.2, verified). The `concat`/`union` paths
/// (permissions, hooks) do not touch resolution and are not modelled.
pub fn merge<'a>(layers: impl IntoIterator<Item = &'a Node>) -> Node {
    fn into(target: &mut Node, src: &Node) {
        match (&mut target.value, &src.value) {
            (Value::Object(t), Value::Object(s)) => {
                // Key → place in `t` (a linear search per key is quadratic in the file's size).
                let mut index: std::collections::HashMap<String, usize> =
                    t.iter().enumerate().map(|(i, (k, _))| (k.clone(), i)).collect();
                for (k, v) in s {
                    if let Some(&i) = index.get(k) {
                        let slot = &mut t[i];
                        if matches!((&slot.1.value, &v.value), (Value::Object(_), Value::Object(_)))
                        {
                            into(&mut slot.1, v);
                        } else {
                            slot.1 = v.clone();
                        }
                    } else {
                        index.insert(k.clone(), t.len());
                        t.push((k.clone(), v.clone()));
                    }
                }
            }
            _ => *target = src.clone(),
        }
    }
    let mut out = Node::new(Value::Object(Vec::new()));
    for l in layers {
        if matches!(l.value, Value::Object(_)) {
            into(&mut out, l);
        }
    }
    out
}

/// `a.b[0].c` for messages.
pub fn join_path(parts: &[&str]) -> String {
    let mut s = String::new();
    for p in parts {
        if p.starts_with('[') {
            s.push_str(p);
        } else {
            if !s.is_empty() {
                s.push('.');
            }
            s.push_str(p);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonc::parse;

    fn j(s: &str, f: &str) -> Node {
        parse(s, &Arc::from(f)).unwrap()
    }

    #[test]
    fn merge_rules() {
        let user = j(
            r#"{"env": {"A": "1", "B": "2"}, "model": {"name": "u", "generationConfig": {"timeout": 5}},
                "modelProviders": {"openai": [{"id": "user-model"}], "anthropic": [{"id": "a"}]},
                "list": [1, 2]}"#,
            "user",
        );
        let ws = j(
            r#"{"env": {"B": "ws"}, "model": {"name": "w"},
                "modelProviders": {"openai": [{"id": "ws-model"}]}, "list": [3]}"#,
            "ws",
        );
        let m = merge([&user, &ws]);
        assert_eq!(m.path(&["env", "A"]).unwrap().as_str(), Some("1"));
        assert_eq!(m.path(&["env", "B"]).unwrap().as_str(), Some("ws"));
        assert_eq!(m.path(&["model", "name"]).unwrap().as_str(), Some("w"));
        assert!(m.path(&["model", "generationConfig", "timeout"]).is_some());
        let openai = m.path(&["modelProviders", "openai"]).unwrap().as_array().unwrap();
        assert_eq!(openai.len(), 1);
        assert_eq!(openai[0].get("id").unwrap().as_str(), Some("ws-model"));
        assert_eq!(&*openai[0].loc.file, "ws");
        assert!(m.path(&["modelProviders", "anthropic"]).is_some());
        assert_eq!(m.get("list").unwrap().as_array().unwrap().len(), 1);
        // Key order: first insertion keeps its place.
        let keys: Vec<&str> = m.as_object().unwrap().iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["env", "model", "modelProviders", "list"]);
    }

    #[test]
    fn expansion_forms_and_unresolved() {
        let mut n = j(r#"{"a": "$X/${Y}/$NOPE/${SESSION_ID}", "b": ["$X"]}"#, "f");
        let lookup = |k: &str| match k {
            "X" => Some("x".to_string()),
            "Y" => Some(String::new()),
            _ => None,
        };
        let mut un = Vec::new();
        expand(&mut n, &lookup, &mut un);
        assert_eq!(n.get("a").unwrap().as_str(), Some("x//$NOPE/${SESSION_ID}"));
        assert_eq!(n.get("b").unwrap().as_array().unwrap()[0].as_str(), Some("x"));
        assert_eq!(un.len(), 1);
        assert_eq!(un[0].var, "NOPE");
        assert_eq!(un[0].path, "a");
    }
}
