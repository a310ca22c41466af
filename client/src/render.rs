//! Human and JSON output of resolutions and findings.
//!
//! Colour only on a terminal, and never when `NO_COLOR` is set (no-color.org). The JSON shapes are
//! a documented contract (`"schema": 1`, README "JSON output"): fields may be added, never renamed.

use std::fmt::Write as _;
use std::io::IsTerminal;

use qwen_env_proto::{Field, Finding, Resolution, Severity};
use serde_json::{Value, json};

/// Whether to colour output written to stdout (`stderr == false`) or stderr.
pub fn colour(stderr: bool) -> bool {
    let tty =
        if stderr { std::io::stderr().is_terminal() } else { std::io::stdout().is_terminal() };
    tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

#[derive(Clone, Copy)]
enum Style {
    Red,
    Yellow,
    Blue,
    Dim,
    Bold,
}

fn paint(on: bool, style: Style, text: &str) -> String {
    if !on {
        return text.to_owned();
    }
    let code = match style {
        Style::Red => "1;31",
        Style::Yellow => "1;33",
        Style::Blue => "1;34",
        Style::Dim => "2",
        Style::Bold => "1",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

fn severity_style(s: Severity) -> Style {
    match s {
        Severity::Error => Style::Red,
        Severity::Warning => Style::Yellow,
        Severity::Info => Style::Blue,
    }
}

/// Findings, one block each: `error[code]: message`, where, and the fix.
pub fn findings(list: &[Finding], on: bool) -> String {
    let mut out = String::new();
    for f in list {
        let head = format!("{}[{}]", f.severity.as_str(), f.code);
        let _ = writeln!(out, "{}: {}", paint(on, severity_style(f.severity), &head), f.message);
        if let Some(loc) = &f.location {
            let _ = writeln!(out, "  {} {loc}", paint(on, Style::Dim, "-->"));
        }
        if let Some(ev) = &f.evidence {
            let _ = writeln!(out, "  {} {ev}", paint(on, Style::Dim, "evidence:"));
        }
        let _ = writeln!(out, "  {} {}", paint(on, Style::Bold, "fix:"), f.fix);
    }
    out
}

/// "2 errors, 1 warning" (empty when there is nothing).
pub fn summary(list: &[Finding]) -> String {
    let count = |s| list.iter().filter(|f| f.severity == s).count();
    let parts: Vec<String> =
        [(Severity::Error, "error"), (Severity::Warning, "warning"), (Severity::Info, "note")]
            .into_iter()
            .filter_map(|(s, word)| match count(s) {
                0 => None,
                1 => Some(format!("1 {word}")),
                n => Some(format!("{n} {word}s")),
            })
            .collect();
    parts.join(", ")
}

/// The four fields (and any asked-for variables), each with its source and what it shadows.
pub fn resolution(r: &Resolution, as_is: bool, on: bool) -> String {
    let mut out = String::new();
    let mode =
        if as_is { "as the tool resolves it today" } else { "as `qwen-env run` will hand it over" };
    let _ = writeln!(
        out,
        "{} {}",
        paint(on, Style::Bold, &r.tool),
        paint(on, Style::Dim, &format!("({mode})"))
    );
    let mut rows: Vec<(&str, &Field)> = vec![
        ("auth type", &r.auth_type),
        ("model", &r.model),
        ("base URL", &r.base_url),
        ("API key", &r.api_key),
    ];
    rows.extend(r.variables.iter().map(|(name, f)| (name.as_str(), f)));
    let width = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(9);
    for (name, field) in rows {
        let value = display_value(field);
        let source = field.source.as_deref().unwrap_or("not set");
        let _ = writeln!(
            out,
            "  {name:width$}  {value}  {}",
            paint(on, Style::Dim, &format!("← {source}"))
        );
        for s in &field.shadowed {
            let v = match (&s.value, &s.fingerprint) {
                (Some(v), Some(fp)) => format!("{v} ({fp})"),
                (Some(v), None) => v.clone(),
                (None, Some(fp)) => fp.clone(),
                (None, None) => String::new(),
            };
            let _ = writeln!(
                out,
                "  {:width$}  {}",
                "",
                paint(on, Style::Dim, &format!("shadows {v} ← {}", s.source))
            );
        }
    }
    out
}

fn display_value(f: &Field) -> String {
    match (&f.value, &f.fingerprint, &f.variable) {
        (Some(v), Some(fp), Some(var)) => format!("{v} ({fp}, via {var})"),
        (Some(v), Some(fp), None) => format!("{v} ({fp})"),
        (Some(v), None, _) => v.clone(),
        (None, _, Some(var)) => format!("(none; reads {var})"),
        (None, _, None) => "(none)".to_owned(),
    }
}

/// `explain --json`: `tool`, `auth_type`, `model`, `base_url`, `api_key`, `variables`, `findings`.
pub fn resolution_json(r: &Resolution, as_is: bool) -> Value {
    let variables: serde_json::Map<String, Value> =
        r.variables.iter().map(|(name, f)| (name.clone(), field_json(f, false))).collect();
    json!({
        "schema": 1,
        "as_is": as_is,
        "tool": r.tool,
        "auth_type": field_json(&r.auth_type, false),
        "model": field_json(&r.model, false),
        "base_url": field_json(&r.base_url, false),
        "api_key": field_json(&r.api_key, true),
        "variables": variables,
        "findings": r.findings.iter().map(finding_json).collect::<Vec<_>>(),
    })
}

/// A field; secrets show `fingerprint`, `masked` and `variable` instead of `value`.
fn field_json(f: &Field, secret: bool) -> Value {
    let shadowed: Vec<Value> = f
        .shadowed
        .iter()
        .map(|s| {
            if secret || s.fingerprint.is_some() {
                json!({ "fingerprint": s.fingerprint, "masked": s.value, "source": s.source })
            } else {
                json!({ "value": s.value, "source": s.source })
            }
        })
        .collect();
    if secret || f.fingerprint.is_some() {
        json!({
            "fingerprint": f.fingerprint,
            "masked": f.value,
            "variable": f.variable,
            "source": f.source,
            "shadowed": shadowed,
        })
    } else {
        json!({ "value": f.value, "source": f.source, "shadowed": shadowed })
    }
}

/// One finding as JSON.
pub fn finding_json(f: &Finding) -> Value {
    json!({
        "code": f.code,
        "severity": f.severity.as_str(),
        "message": f.message,
        "fix": f.fix,
        "location": f.location,
        "evidence": f.evidence,
    })
}
