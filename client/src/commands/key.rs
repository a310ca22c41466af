//! `qwen-env key set|ls|rm`.

use std::fmt::Write as _;
use std::io::{IsTerminal, Read};

use qwen_env_proto::{ImportRequest, KeyInfo, Request, Response, SecretValue};

use super::{age, ask, now, unexpected};
use crate::cli::KeyCommand;
use crate::error::CliError;
use crate::out;

pub fn key(cmd: KeyCommand) -> Result<(), CliError> {
    match cmd {
        KeyCommand::Set { name } => set(name),
        KeyCommand::Ls { json } => ls(json),
        KeyCommand::Import { scrub, force, json, paths } => import(scrub, force, json, &paths),
        KeyCommand::Rm { name } => match ask(&Request::KeyRemove { name: name.clone() })? {
            Response::Removed { name } => out(&format!("removed {name}\n")),
            other => Err(unexpected(&other)),
        },
    }
}

/// The value never comes from argv: a hidden prompt on a terminal, else standard input.
fn set(name: String) -> Result<(), CliError> {
    let value = read_value(&name)?;
    match ask(&Request::KeySet { name, value })? {
        Response::Key(info) => out(&format!(
            "stored {} {} ({}) in {}\n",
            info.name, info.masked, info.fingerprint, info.backend
        )),
        other => Err(unexpected(&other)),
    }
}

fn read_value(name: &str) -> Result<SecretValue, CliError> {
    let mut value = if std::io::stdin().is_terminal() {
        rpassword::prompt_password(format!("Value for {name} (input hidden): ")).map_err(|e| {
            CliError::failed(format!("failed to read the key from the terminal: {e}"))
        })?
    } else {
        let mut buf = String::new();
        std::io::stdin().read_to_string(&mut buf).map_err(|e| {
            CliError::failed(format!("failed to read the key from standard input: {e}"))
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
        return Err(CliError::usage(format!(
            "no key given; type it at the prompt or pipe it in: `printf %s \"$KEY\" | qwen-env key set {name}`"
        )));
    }
    Ok(SecretValue::new(value))
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
    let width = keys.iter().map(|k| k.name.len()).max().unwrap_or(4).max(4);
    let mut text = format!(
        "{:width$}  {:19}  {:10}  {:14}  {}\n",
        "NAME", "FINGERPRINT", "KEY", "BACKEND", "AGE"
    );
    for k in &keys {
        let missing = if k.present { "" } else { "  (missing from the keychain: set it again)" };
        let _ = writeln!(
            text,
            "{:width$}  {:19}  {:10}  {:14}  {}{missing}",
            k.name,
            k.fingerprint,
            k.masked,
            k.backend,
            age(now.saturating_sub(k.changed))
        );
    }
    out(&text)
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
    })
}
