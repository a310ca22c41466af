//! `key import`: store the literal keys of the caller's files in the keychain and, with
//! `--scrub`, remove them from the files.
//!
//! Order of safety: every key of a file is stored before that file is touched; a file with any
//! key that could not be stored is left exactly as it was. A scrubbed file gets a backup beside
//! it (`<name>.qwen-env.bak`, same mode), is re-checked after the edit, and is replaced
//! atomically with its mode kept.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use qwen_env_proto::{CallerContext, ImportItem, ImportRequest};
use qwen_env_resolve::import::{self, Literal};
use qwen_env_resolve::mask::{fingerprint, masked};
use qwen_env_resolve::{SourceCache, Sources};

use crate::State;

/// Runs one import.
pub async fn import(state: &State, req: &ImportRequest) -> Result<Vec<ImportItem>, String> {
    let literals = find(&req.caller, &req.paths)?;
    let view = state.keys.view().await;
    let mut items: Vec<ImportItem> = Vec::with_capacity(literals.len());
    // The first literal of each name is the one the tool uses today (sources come in priority
    // order); it is the one imported.
    let mut chosen: BTreeMap<String, String> = BTreeMap::new();
    let mut failed_files: HashSet<PathBuf> = HashSet::new();
    for lit in &literals {
        let fp = fingerprint(lit.value.expose_secret());
        let mut item = ImportItem {
            name: lit.name.clone(),
            fingerprint: fp.clone(),
            masked: masked(lit.value.expose_secret()),
            location: lit.location.clone(),
            stored: false,
            scrubbed: false,
            note: String::new(),
        };
        let existing = view.entries.get(&lit.name).map(|m| m.fingerprint.clone());
        if let Some(first) = chosen.get(&lit.name) {
            if *first == fp {
                item.stored = true;
                item.note = "already imported from an earlier file".to_owned();
            } else {
                item.note = format!(
                    "left alone: differs from the {} imported first (the one the tool uses today)",
                    lit.name
                );
                failed_files.insert(lit.file.clone());
            }
        } else if existing.as_deref() == Some(fp.as_str()) {
            item.stored = true;
            item.note = "already in the keychain".to_owned();
            chosen.insert(lit.name.clone(), fp);
        } else if let Some(old) = existing.filter(|_| !req.force) {
            item.note = format!(
                "not imported: the keychain already holds a different {} ({old}); use --force to \
                 replace it",
                lit.name
            );
            failed_files.insert(lit.file.clone());
        } else {
            match state.keys.set(&lit.name, &lit.value, crate::handler::now()).await {
                Ok(_) => {
                    item.stored = true;
                    item.note = "stored in the keychain".to_owned();
                    chosen.insert(lit.name.clone(), fp);
                }
                Err(e) => {
                    item.note = format!("not stored: {e}");
                    failed_files.insert(lit.file.clone());
                }
            }
        }
        items.push(item);
    }
    if req.scrub {
        scrub_files(&literals, &mut items, &failed_files);
    }
    Ok(items)
}

/// Literal keys in the named files, or in everything Qwen Code and OpenClaw read for the caller.
fn find(caller: &CallerContext, paths: &[String]) -> Result<Vec<Literal>, String> {
    if !paths.is_empty() {
        let mut out = Vec::new();
        for p in paths {
            out.extend(import::scan_file(Path::new(p))?);
        }
        return Ok(out);
    }
    let home = caller
        .env
        .iter()
        .find(|(k, v)| k == "HOME" && !v.is_empty())
        .map_or_else(|| PathBuf::from("/"), |(_, v)| PathBuf::from(v));
    let cache = SourceCache::default();
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for tool in ["qwen", "openclaw"] {
        let as_tool = CallerContext { argv: vec![tool.to_owned()], ..caller.clone() };
        let sources: Sources = cache.load(&as_tool, &home);
        for lit in import::scan(&sources) {
            if seen.insert((lit.file.clone(), lit.location.clone())) {
                out.push(lit);
            }
        }
    }
    Ok(out)
}

fn scrub_files(literals: &[Literal], items: &mut [ImportItem], failed: &HashSet<PathBuf>) {
    let mut by_file: BTreeMap<&Path, Vec<usize>> = BTreeMap::new();
    for (i, lit) in literals.iter().enumerate() {
        by_file.entry(&lit.file).or_default().push(i);
    }
    for (file, idx) in by_file {
        if failed.contains(file) {
            for &i in &idx {
                if items[i].stored {
                    items[i].note +=
                        "; the file was left untouched because another key in it was not imported";
                }
            }
            continue;
        }
        let lits: Vec<&Literal> = idx.iter().map(|&i| &literals[i]).collect();
        match scrub_file(file, &lits) {
            Ok(backup) => {
                for &i in &idx {
                    items[i].scrubbed = true;
                    items[i].note +=
                        &format!("; removed from the file (backup: {})", backup.display());
                }
                tracing::info!(file = %file.display(), keys = idx.len(), "scrubbed literal keys");
            }
            Err(why) => {
                for &i in &idx {
                    items[i].note += &format!("; not removed from the file: {why}");
                }
            }
        }
    }
}

/// Edits one file; returns the backup's path.
fn scrub_file(file: &Path, lits: &[&Literal]) -> Result<PathBuf, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read it: {e}"))?;
    let new = import::scrub(&text, lits)?;
    // Re-check: the edited text must still parse and hold none of the keys.
    if lits.iter().any(|l| new.contains(l.value.expose_secret())) {
        return Err("the edit would leave a key behind".to_owned());
    }
    if file.extension().is_some_and(|e| e == "json") {
        let label: std::sync::Arc<str> = std::sync::Arc::from("check");
        if qwen_env_resolve::jsonc::parse(&new, &label).is_err()
            && json5::from_str::<qwen_env_resolve::jsonc::Node>(&new).is_err()
        {
            return Err("the edited file would not parse; edit it by hand".to_owned());
        }
    }
    let meta = std::fs::metadata(file).map_err(|e| e.to_string())?;
    let mut backup = file.as_os_str().to_owned();
    backup.push(".qwen-env.bak");
    let backup = PathBuf::from(backup);
    std::fs::write(&backup, &text)
        .map_err(|e| format!("cannot write the backup {}: {e}", backup.display()))?;
    std::fs::set_permissions(&backup, meta.permissions()).map_err(|e| e.to_string())?;
    let mut tmp = file.as_os_str().to_owned();
    tmp.push(".qwen-env.tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, new).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::set_permissions(&tmp, meta.permissions()).map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, file).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot replace it: {e}")
    })?;
    Ok(backup)
}
