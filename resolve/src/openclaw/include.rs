//! `$include` as OpenClaw 2026.9.6 resolves it (`dist/includes-*.mjs`, `IncludeProcessor`):
//!
//! - at any object level, `"$include": "file"` or `["a", "b"]`; a path is relative to the file
//!   that names it; several files are deep-merged in order;
//! - sibling keys are merged over the included content (which must then be an object):
//!   objects merge key by key, arrays concatenate, anything else is replaced;
//! - containment: the normalised path must lie inside the directory of `openclaw.json` (or one
//!   of `OPENCLAW_INCLUDE_ROOTS`), and so must its real path (symlinks); at most 10 levels, no
//!   cycles. Any violation, or a file that cannot be read or parsed, makes the whole config
//!   invalid: OpenClaw refuses to run ("OpenClaw config is invalid … Include path escapes config
//!   directory"), and so does this resolution.
//!
//! Pure: the files come through an [`Loader`] (the cache, in practice).

use std::path::{Component, Path, PathBuf};

use crate::jsonc::{Loc, Node, Value};

/// How included files are found and read.
pub trait Loader {
    /// `realpath`, or `None` when the path does not exist.
    fn realpath(&mut self, p: &Path) -> Option<PathBuf>;
    /// The parsed file, or why it could not be read or parsed.
    fn load(&mut self, p: &Path) -> Result<Node, String>;
}

/// Why OpenClaw rejects the config.
#[derive(Debug, Clone, PartialEq)]
pub struct IncludeError {
    /// OpenClaw's own wording.
    pub message: String,
    /// The `$include` member.
    pub loc: Loc,
}

/// The deepest include chain OpenClaw follows.
pub const MAX_DEPTH: usize = 10;

/// Lexical normalisation (`path.normalize`): `.` dropped, `..` pops.
pub fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// OpenClaw's `mergeDeep` with `arrays: "concat"`: `over` wins, objects merge, arrays append.
pub fn deep_merge(base: Node, over: Node) -> Node {
    match (base.value, over.value) {
        (Value::Array(mut a), Value::Array(b)) => {
            a.extend(b);
            Node { value: Value::Array(a), loc: over.loc }
        }
        (Value::Object(mut a), Value::Object(b)) => {
            for (k, v) in b {
                match a.iter().position(|(x, _)| *x == k) {
                    Some(i) => {
                        let old = std::mem::replace(&mut a[i].1, Node::new(Value::Null));
                        a[i].1 = if matches!(
                            (&old.value, &v.value),
                            (Value::Object(_), Value::Object(_))
                                | (Value::Array(_), Value::Array(_))
                        ) {
                            deep_merge(old, v)
                        } else {
                            v
                        };
                    }
                    None => a.push((k, v)),
                }
            }
            Node { value: Value::Object(a), loc: base.loc }
        }
        (_, v) => Node { value: v, loc: over.loc },
    }
}

struct Proc<'a> {
    roots: Vec<(PathBuf, PathBuf)>,
    loader: &'a mut dyn Loader,
    /// Files read, for the watcher.
    files: Vec<PathBuf>,
}

impl Proc<'_> {
    fn process(
        &mut self,
        n: Node,
        base: &Path,
        depth: usize,
        seen: &[PathBuf],
    ) -> Result<Node, IncludeError> {
        match n.value {
            Value::Array(items) => {
                let items = items
                    .into_iter()
                    .map(|i| self.process(i, base, depth, seen))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Node { value: Value::Array(items), loc: n.loc })
            }
            Value::Object(members) => {
                let Some(inc) = members.iter().position(|(k, _)| k == "$include") else {
                    let mut out = Vec::with_capacity(members.len());
                    for (k, v) in members {
                        out.push((k, self.process(v, base, depth, seen)?));
                    }
                    return Ok(Node { value: Value::Object(out), loc: n.loc });
                };
                let mut members = members;
                let (_, spec) = members.remove(inc);
                let err = |message: String| IncludeError { message, loc: spec.loc.clone() };
                let included = match &spec.value {
                    Value::String(s) => self.load(s, &spec, base, depth, seen)?,
                    Value::Array(list) => {
                        let mut acc =
                            Node { value: Value::Object(Vec::new()), loc: spec.loc.clone() };
                        for item in list {
                            let Some(s) = item.as_str() else {
                                return Err(err(
                                    "Invalid $include array item: expected string".into()
                                ));
                            };
                            acc = deep_merge(acc, self.load(s, item, base, depth, seen)?);
                        }
                        acc
                    }
                    _ => {
                        return Err(err(
                            "Invalid $include value: expected string or array of strings".into(),
                        ));
                    }
                };
                if members.is_empty() {
                    return Ok(included);
                }
                if !matches!(included.value, Value::Object(_)) {
                    return Err(
                        err("Sibling keys require included content to be an object".into()),
                    );
                }
                let mut rest = Vec::with_capacity(members.len());
                for (k, v) in members {
                    rest.push((k, self.process(v, base, depth, seen)?));
                }
                Ok(deep_merge(included, Node { value: Value::Object(rest), loc: n.loc }))
            }
            v => Ok(Node { value: v, loc: n.loc }),
        }
    }

    fn load(
        &mut self,
        inc: &str,
        at: &Node,
        base: &Path,
        depth: usize,
        seen: &[PathBuf],
    ) -> Result<Node, IncludeError> {
        let err = |message: String| IncludeError { message, loc: at.loc.clone() };
        if inc.contains('\0') {
            return Err(err("Include path must not contain null bytes".into()));
        }
        let dir = base.parent().unwrap_or(Path::new("/"));
        let p = normalize(&if Path::new(inc).is_absolute() {
            PathBuf::from(inc)
        } else {
            dir.join(inc)
        });
        let root = &self.roots[0].0;
        if !self.roots.iter().any(|(lex, _)| p.starts_with(lex)) {
            return Err(err(format!(
                "Include path escapes config directory: {inc} (root: {})",
                root.display()
            )));
        }
        if let Some(real) = self.loader.realpath(&p) {
            let inside = self.roots.iter().any(|(_, r)| real.starts_with(r));
            if !inside {
                return Err(err(format!(
                    "Include path resolves outside config directory (symlink): {inc} (root: {})",
                    root.display()
                )));
            }
        }
        if seen.contains(&p) {
            return Err(err(format!("Circular include detected: {}", p.display())));
        }
        if depth >= MAX_DEPTH {
            return Err(err(format!("Maximum include depth ({MAX_DEPTH}) exceeded at: {inc}")));
        }
        self.files.push(p.clone());
        let node = self.loader.load(&p).map_err(|why| {
            err(format!("Failed to read include file: {inc} (resolved: {}): {why}", p.display()))
        })?;
        let mut seen2 = seen.to_vec();
        seen2.push(p.clone());
        self.process(node, &p, depth + 1, &seen2)
    }
}

/// Expand every `$include` in `root` (the parsed `config_path`). `extra_roots` are
/// `OPENCLAW_INCLUDE_ROOTS`. Returns the merged config and the files it read.
pub fn expand(
    root: &Node,
    config_path: &Path,
    extra_roots: &[PathBuf],
    loader: &mut dyn Loader,
) -> (Result<Node, IncludeError>, Vec<PathBuf>) {
    let dir = normalize(config_path.parent().unwrap_or(Path::new("/")));
    let mut roots = vec![dir.clone()];
    roots.extend(extra_roots.iter().filter(|r| r.is_absolute()).map(|r| normalize(r)));
    let roots: Vec<(PathBuf, PathBuf)> = roots
        .into_iter()
        .map(|r| {
            let real = loader.realpath(&r).unwrap_or_else(|| r.clone());
            (r, real)
        })
        .collect();
    let mut p = Proc { roots, loader, files: Vec::new() };
    let cfg = normalize(config_path);
    let out = p.process(root.clone(), &cfg, 0, std::slice::from_ref(&cfg));
    (out, p.files)
}

/// Whether the document uses `$include` anywhere.
pub fn uses_include(n: &Node) -> bool {
    match &n.value {
        Value::Object(m) => m.iter().any(|(k, v)| k == "$include" || uses_include(v)),
        Value::Array(a) => a.iter().any(uses_include),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use super::*;

    struct Mem(HashMap<PathBuf, &'static str>);
    impl Loader for Mem {
        fn realpath(&mut self, p: &Path) -> Option<PathBuf> {
            self.0.contains_key(p).then(|| p.to_path_buf())
        }
        fn load(&mut self, p: &Path) -> Result<Node, String> {
            let t = self.0.get(p).ok_or("ENOENT")?;
            crate::cache::parse_openclaw(t, &Arc::from(p.to_string_lossy().as_ref()))
                .map_err(|e| e.to_string())
        }
    }

    fn run(main: &'static str, files: &[(&str, &'static str)]) -> Result<Node, IncludeError> {
        let mut m = Mem(files.iter().map(|(p, t)| (PathBuf::from(p), *t)).collect());
        let root = crate::cache::parse_openclaw(main, &Arc::from("/s/openclaw.json")).unwrap();
        expand(&root, Path::new("/s/openclaw.json"), &[], &mut m).0
    }

    #[test]
    fn siblings_win_objects_merge_arrays_concatenate() {
        let n = run(
            r#"{"models": {"$include": "./m.json", "providers": {"qwen": {"baseUrl": "http://b", "models": [{"id": "b"}]}}}}"#,
            &[("/s/m.json", r#"{"providers": {"qwen": {"baseUrl": "http://a", "api": "x", "models": [{"id": "a"}]}}}"#)],
        )
        .unwrap();
        let q = n.path(&["models", "providers", "qwen"]).unwrap();
        assert_eq!(q.get("baseUrl").and_then(Node::as_str), Some("http://b"));
        assert_eq!(q.get("api").and_then(Node::as_str), Some("x"));
        let ids: Vec<_> = q
            .get("models")
            .and_then(Node::as_array)
            .unwrap()
            .iter()
            .map(|m| m.get("id").and_then(Node::as_str).unwrap())
            .collect();
        assert_eq!(ids, ["a", "b"]);
        // The included value keeps its own location.
        assert!(q.get("api").unwrap().loc.file.contains("m.json"));
    }

    #[test]
    fn a_list_merges_in_order_and_nested_includes_are_relative_to_their_file() {
        let n = run(
            r#"{"$include": ["./a.json", "sub/b.json"]}"#,
            &[
                ("/s/a.json", r#"{"x": 1, "l": [1]}"#),
                ("/s/sub/b.json", r#"{"x": 2, "l": [2], "$include": "c.json"}"#),
                ("/s/sub/c.json", r#"{"y": 3}"#),
            ],
        )
        .unwrap();
        assert_eq!(n.get("x").unwrap().value, Value::Number(2.0));
        assert_eq!(n.get("y").unwrap().value, Value::Number(3.0));
        assert_eq!(n.get("l").and_then(Node::as_array).unwrap().len(), 2);
    }

    #[test]
    fn escapes_cycles_and_missing_files_invalidate_the_config() {
        let e = run(r#"{"$include": "../x.json"}"#, &[("/x.json", "{}")]).unwrap_err();
        assert_eq!(e.message, "Include path escapes config directory: ../x.json (root: /s)");
        assert!(e.loc.to_string().starts_with("/s/openclaw.json:1:"), "{}", e.loc);
        let e = run(r#"{"$include": "/etc/passwd"}"#, &[]).unwrap_err();
        assert!(e.message.starts_with("Include path escapes"), "{}", e.message);
        let e = run(r#"{"$include": "a.json"}"#, &[("/s/a.json", r#"{"$include": "a.json"}"#)])
            .unwrap_err();
        assert!(e.message.starts_with("Circular include"), "{}", e.message);
        let e = run(r#"{"$include": "gone.json"}"#, &[]).unwrap_err();
        assert!(e.message.starts_with("Failed to read include file: gone.json"), "{}", e.message);
        let e = run(r#"{"$include": "a.json", "k": 1}"#, &[("/s/a.json", "[1]")]).unwrap_err();
        assert_eq!(e.message, "Sibling keys require included content to be an object");
    }
}
