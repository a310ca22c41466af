//! `docs/findings.md` documents every finding code the sources can emit, and lists none that
//! they cannot: a code added without its documentation (or documentation left behind by a code
//! that is gone) fails here.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs")
            && path.file_name().is_some_and(|n| n != "tests.rs")
        {
            out.push(path);
        }
    }
}

fn kebab(s: &str) -> bool {
    s.contains('-')
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
}

/// The string literal at the start of `rest` (after spaces and line breaks), if any.
fn literal(rest: &str) -> Option<&str> {
    let rest = rest.trim_start().strip_prefix('"')?;
    rest.split_once('"').map(|(lit, _)| lit)
}

/// Codes the sources construct findings with: `finding("code", …)`, `code: "code"` and
/// `const NAME: &str = "code"` (the daemon's constants for codes it builds in several places).
fn emitted() -> BTreeSet<String> {
    let mut files = Vec::new();
    for dir in ["resolve/src", "daemon/src"] {
        sources(&repo().join(dir), &mut files);
    }
    let mut codes = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        // Unit tests build findings with made-up codes.
        let text = text.split("#[cfg(test)]\nmod tests").next().unwrap();
        for marker in ["finding(", "code: ", ": &str = "] {
            for (at, _) in text.match_indices(marker) {
                if let Some(code) = literal(&text[at + marker.len()..]).filter(|c| kebab(c)) {
                    codes.insert(code.to_owned());
                }
            }
        }
    }
    codes
}

/// The codes of the table in docs/findings.md (`| code | … |` rows).
fn documented() -> Vec<String> {
    let text = std::fs::read_to_string(repo().join("docs/findings.md")).unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("| ")?.split_once(" |").map(|(c, _)| c.to_owned()))
        .filter(|c| kebab(c))
        .collect()
}

#[test]
fn every_finding_code_is_documented_once() {
    let emitted = emitted();
    let documented = documented();
    assert!(emitted.len() >= 50, "the scan found too few codes: {emitted:?}");
    let missing: Vec<&String> = emitted.iter().filter(|c| !documented.contains(c)).collect();
    assert!(missing.is_empty(), "codes not in docs/findings.md: {missing:?}");
    let unique: BTreeSet<&String> = documented.iter().collect();
    assert_eq!(unique.len(), documented.len(), "a code is documented twice: {documented:?}");
    // Every documented code is still in the sources (as a literal somewhere).
    let mut all = String::new();
    let mut files = Vec::new();
    for dir in ["resolve/src", "daemon/src"] {
        sources(&repo().join(dir), &mut files);
    }
    for f in files {
        all += &std::fs::read_to_string(f).unwrap();
    }
    let stale: Vec<&String> =
        documented.iter().filter(|c| !all.contains(&format!("\"{c}\""))).collect();
    assert!(stale.is_empty(), "documented codes no source emits: {stale:?}");
}
