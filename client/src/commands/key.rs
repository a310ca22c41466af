//! `qwen-env key set|ls|rm`.

use std::fmt::Write as _;
use std::io::{IsTerminal, Read};

use qwen_env_proto::{ImportRequest, KeyInfo, Request, Response, SecretValue};

use super::run::caller_context;
use super::{age, ago, ask, now, prompt, spinner, unexpected};
use crate::cli::KeyCommand;
use crate::error::{CliError, exit};
use crate::{out, render};

pub fn key(cmd: KeyCommand) -> Result<(), CliError> {
    match cmd {
        KeyCommand::Set { name, no_verify } => set(name, !no_verify),
        KeyCommand::Ls { json } => ls(json),
        KeyCommand::Import { scrub, force, json, paths } => import(scrub, force, json, &paths),
        KeyCommand::Rm { name } => match ask(&Request::KeyRemove { name: name.clone() })? {
            Response::Removed { name } => out(&format!("removed {name}\n")),
            other => Err(unexpected(&other)),
        },
        KeyCommand::Migrate { from, names } => migrate(&from, names),
    }
}

/// `key migrate --from BACKEND [NAME...]`: one line per key found there; exit 1 when one could
/// not be moved.
fn migrate(from: &str, names: Vec<String>) -> Result<(), CliError> {
    let items = match ask(&Request::KeyMigrate { from: from.to_owned(), names })? {
        Response::Migrated(items) => items,
        other => return Err(unexpected(&other)),
    };
    if items.is_empty() {
        return out(&format!(
            "nothing to move: the {from} keychain holds none of the keys `qwen-env key ls` lists\n"
        ));
    }
    let mut text = String::new();
    for i in &items {
        let _ = writeln!(text, "{} ({}): {}", i.name, i.fingerprint, i.note);
    }
    out(&text)?;
    if items.iter().any(|i| !i.moved) {
        return Err(CliError::silent(exit::FINDINGS));
    }
    Ok(())
}

/// The value never comes from argv: a hidden prompt on a terminal, else standard input. Unless
/// `--no-verify`, the daemon then checks where the key works (free requests) and whether this
/// directory's settings send it there. The key stays stored whatever the check says; a key that
/// no endpoint accepts exits 1. A key stored under the same name before is named by its
/// fingerprint (from `key ls` data, asked for before the new value replaces it).
fn set(name: String, verify: bool) -> Result<(), CliError> {
    let value = read_value(&name)?;
    let old = match ask(&Request::KeyList)? {
        Response::Keys(keys) => keys.into_iter().find(|k| k.name == name),
        other => return Err(unexpected(&other)),
    };
    let request = Request::KeySetVerified { name, value, caller: caller_context(&[])?, verify };
    let answer = if verify {
        spinner::while_waiting("checking where the key works", || ask(&request))?
    } else {
        ask(&request)?
    };
    match answer {
        Response::KeyVerified { info, notes, findings } => {
            let mut text = format!(
                "stored {} {} ({}) in {}\n",
                info.name, info.masked, info.fingerprint, info.backend
            );
            if let Some(old) = &old {
                text += &replaced(old, &info.fingerprint, now());
            }
            for n in &notes {
                let _ = writeln!(text, "{n}");
            }
            if !findings.is_empty() {
                text += &render::findings(&findings, render::colour(false));
            }
            out(&text)?;
            // Only a key no endpoint accepts fails `key set`; a model or settings problem is
            // reported but the key itself is fine.
            if findings.iter().any(|f| f.code == "key-rejected") {
                return Err(CliError::silent(exit::FINDINGS));
            }
            Ok(())
        }
        other => Err(unexpected(&other)),
    }
}

/// The line about the key a `key set` replaced: its fingerprint and age, or that it was the same.
fn replaced(old: &KeyInfo, new_fingerprint: &str, now: u64) -> String {
    let when = ago(now.saturating_sub(old.changed));
    if old.fingerprint == new_fingerprint {
        format!("  the same value was already stored (set {when}); nothing changed\n")
    } else {
        format!(
            "  replaced {} ({}, set {when}); `qwen-env key ls` lists what is stored\n",
            old.fingerprint, old.masked
        )
    }
}

fn read_value(name: &str) -> Result<SecretValue, CliError> {
    let nothing = || {
        CliError::failed(format!(
            "no key given; nothing stored. Type or paste the key at the prompt, or pipe it in: \
             `printf %s \"$KEY\" | qwen-env key set {name}`"
        ))
    };
    let mut value = if std::io::stdin().is_terminal() {
        match prompt::hidden(&format!("Value for {name} (input hidden): ")) {
            Ok(Some(value)) => value,
            // Ctrl-D.
            Ok(None) => return Err(nothing()),
            Err(e) => {
                return Err(CliError::failed(format!(
                    "failed to read the key from the terminal: {e}; nothing stored. Pipe it in \
                     instead: `printf %s \"$KEY\" | qwen-env key set {name}`"
                )));
            }
        }
    } else {
        let mut buf = String::new();
        std::io::stdin().read_to_string(&mut buf).map_err(|e| {
            CliError::failed(format!(
                "failed to read the key from standard input: {e}; nothing stored (the key must \
                 be UTF-8 text)"
            ))
        })?;
        buf
    };
    // `echo KEY | qwen-env key set` adds a newline the user did not mean.
    if value.ends_with('\n') {
        value.pop();
        if value.ends_with('\r') {
            value.pop();
        }
    }
    if value.is_empty() {
        return Err(nothing());
    }
    if let Some(pasted) = assignment_name(&value) {
        return Err(CliError::usage(format!(
            "that looks like a shell or .env line (`{pasted}=…`), not a key; nothing stored. \
             Give only the value after `=`, or move the keys of a .env file into the keychain \
             with `qwen-env key import PATH`"
        )));
    }
    Ok(SecretValue::new(value))
}

/// The variable name when `value` is an assignment someone pasted whole: `NAME=value`,
/// `export NAME=value` (quoted or not). A bare `NAME=` is not one: base64 keys end in `=`.
fn assignment_name(value: &str) -> Option<&str> {
    let line = value.trim_start();
    let line = line
        .strip_prefix("export")
        .filter(|rest| rest.starts_with([' ', '\t']))
        .map_or(line, str::trim_start);
    let (name, rest) = line.split_once('=')?;
    let mut chars = name.chars();
    let identifier = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    let rest = rest.trim().trim_matches(['"', '\'']);
    (identifier && !rest.is_empty() && !rest.starts_with('=')).then_some(name)
}

fn ls(json: bool) -> Result<(), CliError> {
    let keys = match ask(&Request::KeyList)? {
        Response::Keys(keys) => keys,
        other => return Err(unexpected(&other)),
    };
    let now = now();
    if json {
        let keys: Vec<_> = keys.iter().map(|k| key_json(k, now)).collect();
        let doc = serde_json::json!({ "schema": 1, "keys": keys });
        return out(&format!("{doc:#}\n"));
    }
    if keys.is_empty() {
        return out("no keys stored; add one with `qwen-env key set NAME`\n");
    }
    // A key the daemon's backend lacks: say which backend holds it, if one does.
    let active = if keys.iter().any(|k| !k.present) {
        match ask(&Request::Status)? {
            Response::Status(s) => Some(s.keychain.backend),
            _ => None,
        }
    } else {
        None
    };
    out(&ls_table(&keys, active.as_deref(), now))
}

/// The last check in few words: "valid: dashscope ap-southeast-1" when the probe found the
/// family, else the result with each URL cut to its host (`key ls --json` has it in full).
fn check_words(probe: &str, k: &KeyInfo) -> String {
    if probe.starts_with("valid")
        && let Some(f) = &k.family
    {
        return match &k.region {
            Some(r) => format!("valid: {f} {r}"),
            None => format!("valid: {f}"),
        };
    }
    probe
        .split(' ')
        .map(|word| match word.split_once("://") {
            Some((_, rest)) => rest.split('/').next().unwrap_or(rest),
            None => word,
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The `key ls` table: columns as wide as their widest cell, the probe's result (with the family
/// it found) last, so that a row stays near 100 columns.
fn ls_table(keys: &[KeyInfo], active: Option<&str>, now: u64) -> String {
    let mut notes = Vec::new();
    let rows: Vec<[String; 6]> = keys
        .iter()
        .map(|k| {
            let check = match &k.probe {
                None => "never".to_owned(),
                Some(p) => format!("{}, {}", check_words(p, k), ago(now.saturating_sub(k.probed))),
            };
            notes.push((!k.present).then(|| match active.filter(|a| *a != k.backend) {
                Some(a) => format!(
                    "  ! not readable: in {}, the daemon uses {a}; `qwen-env key migrate --from {}`",
                    k.backend, k.backend
                ),
                None => format!(
                    "  ! missing from the {} keychain; store it again: `qwen-env key set {}`",
                    k.backend, k.name
                ),
            }));
            [
                k.name.clone(),
                k.fingerprint.clone(),
                k.masked.clone(),
                k.backend.clone(),
                age(now.saturating_sub(k.changed)),
                check,
            ]
        })
        .collect();
    let head = ["NAME", "FINGERPRINT", "KEY", "BACKEND", "AGE", "LAST CHECK"];
    let mut width = head.map(str::len);
    for r in &rows {
        for (w, cell) in width.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    let notes = std::iter::once(None).chain(notes);
    for (r, note) in std::iter::once(head.map(str::to_owned)).chain(rows).zip(notes) {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line += cell;
            } else {
                let _ = write!(line, "{cell:w$}  ", w = width[i]);
            }
        }
        text += line.trim_end();
        text.push('\n');
        if let Some(note) = note {
            text += &note;
            text.push('\n');
        }
    }
    text
}

fn import(
    scrub: bool,
    force: bool,
    json: bool,
    paths: &[std::path::PathBuf],
) -> Result<(), CliError> {
    let cwd = std::env::current_dir().unwrap_or_default();
    let paths = paths.iter().map(|p| cwd.join(p).display().to_string()).collect();
    let caller = super::run::caller_context(&[])?;
    let request = Request::KeyImport(ImportRequest { caller, paths, scrub, force });
    let items = match ask(&request)? {
        Response::Imported(items) => items,
        other => return Err(unexpected(&other)),
    };
    if json {
        let list: Vec<_> = items
            .iter()
            .map(|i| {
                serde_json::json!({
                    "name": i.name, "fingerprint": i.fingerprint, "masked": i.masked,
                    "location": i.location, "stored": i.stored, "scrubbed": i.scrubbed, "note": i.note,
                })
            })
            .collect();
        out(&format!("{:#}\n", serde_json::json!({ "schema": 1, "imported": list })))?;
    } else if items.is_empty() {
        out("no literal keys found in the files Qwen Code and OpenClaw read here\n")?;
    } else {
        let mut text = String::new();
        for i in &items {
            let _ = writeln!(
                text,
                "{} {} ({}) from {}\n  {}",
                i.name, i.masked, i.fingerprint, i.location, i.note
            );
        }
        if !scrub && items.iter().any(|i| i.stored) {
            text.push_str(
                "the files still hold the keys: run `qwen-env key import --scrub` to remove them\n",
            );
        }
        out(&text)?;
    }
    if items.iter().any(|i| !i.stored || (scrub && !i.scrubbed)) {
        return Err(CliError::silent(1));
    }
    Ok(())
}

fn key_json(k: &KeyInfo, now: u64) -> serde_json::Value {
    serde_json::json!({
        "name": k.name,
        "fingerprint": k.fingerprint,
        "masked": k.masked,
        "backend": k.backend,
        "created": k.created,
        "changed": k.changed,
        "age_days": now.saturating_sub(k.changed) / 86_400,
        "present": k.present,
        "family": k.family,
        "region": k.region,
        "last_check": k.probe,
        "checked": (k.probed > 0).then_some(k.probed),
    })
}

#[cfg(test)]
mod tests {
    use super::assignment_name;

    #[test]
    fn pasted_assignments_are_recognised() {
        for (line, name) in [
            ("DASHSCOPE_API_KEY=sk-0123", "DASHSCOPE_API_KEY"),
            ("export OPENAI_API_KEY=sk-0123", "OPENAI_API_KEY"),
            ("export\tA=\"sk-1\"", "A"),
            ("  _X='v'", "_X"),
        ] {
            assert_eq!(assignment_name(line), Some(name), "{line}");
        }
        for key in ["sk-0123", "QWxhZGRpbjpvcGVu==", "abc=", "sk-a=b", "1A=b", "exportA", "A=''"] {
            assert_eq!(assignment_name(key), None, "{key}");
        }
    }
}
