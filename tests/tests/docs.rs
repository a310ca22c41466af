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

/// The rows of the table in docs/findings.md whose first cell is a code (the header and the
/// `|---|` separator are not), each as its trimmed cells.
fn rows() -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(repo().join("docs/findings.md")).unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("| "))
        .map(|l| {
            let l = l.trim_end().strip_suffix('|').unwrap_or(l);
            l.split(" | ").map(|c| c.trim().to_owned()).collect::<Vec<String>>()
        })
        .filter(|cells| kebab(&cells[0]))
        .collect()
}

/// The codes of the table in docs/findings.md (the first cell of `| code | … |` rows).
fn documented() -> Vec<String> {
    rows().into_iter().map(|cells| cells[0].clone()).collect()
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

#[test]
fn every_finding_code_has_severity_example_cause_and_fix() {
    let rows = rows();
    assert!(rows.len() >= 50, "the table has too few rows: {}", rows.len());
    for cells in &rows {
        let code = &cells[0];
        assert_eq!(
            cells.len(),
            5,
            "{code}: not the 5 cells code, severity, example, cause, fix: {cells:?}"
        );
        let severity = &cells[1];
        assert!(
            severity.split(" or ").all(|s| ["error", "warning", "info"].contains(&s)),
            "{code}: severity {severity:?} is not error, warning or info (or e.g. \"error or warning\")"
        );
        for (what, cell) in ["example", "cause", "fix"].iter().zip(&cells[2..]) {
            assert!(
                !cell.is_empty() && cell != "-" && !cell.eq_ignore_ascii_case("todo"),
                "{code}: no {what}: {cell:?}"
            );
        }
    }
}
