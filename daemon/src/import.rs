//! `key import`: store the literal keys of the caller's files in the keychain and, with
//! `--scrub`, remove them from the files.
//!
//! Order of safety: every key of a file is stored before that file is touched; a file with any
//! key that could not be stored is left exactly as it was. A scrubbed file gets a private backup
//! (mode 0600) under `$XDG_STATE_HOME/qwen-env/backups/`, never beside it, under a name no
//! earlier backup has; it is re-checked after the edit and replaced atomically with its mode
//! kept, file and directory synced. New files are created exclusively (`O_EXCL`, `O_NOFOLLOW`),
//! so a planted symlink is never written through. A symlinked file is edited in its real target,
//! and only when that file is the user's own.

use std::collections::{BTreeMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use qwen_env_proto::endpoint::Dirs;
use qwen_env_proto::{CallerContext, ImportItem, ImportRequest};
use qwen_env_resolve::fsread;
use qwen_env_resolve::import::{self, Literal};
use qwen_env_resolve::mask::{fingerprint, masked};
use qwen_env_resolve::{SourceCache, Sources};

use crate::keys::Keys;

/// Runs one import.
pub async fn import(keys: &Keys, req: &ImportRequest) -> Result<Vec<ImportItem>, String> {
    let literals = find(&req.caller, &req.paths)?;
    let view = keys.view().await;
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
            match keys.set(&lit.name, &lit.value, crate::clock::now()).await {
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
        if item.stored
            && let Some(cmd) = lit.removal_command()
        {
            item.note += &format!(
                "; OpenClaw still prefers this stored profile to any variable run sets: remove it \
                 with `{cmd}` (qwen-env never writes OpenClaw's database)"
            );
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
    let home = crate::resolution::caller_home(caller);
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
        // A stored OpenClaw profile is removed by OpenClaw's own command (noted above).
        if lit.removal_command().is_none() {
            by_file.entry(&lit.file).or_default().push(i);
        }
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
    let target = edit_target(file)?;
    let (text, meta) = read_target(&target)?;
    let new = import::scrub(&text, lits)?;
    // Re-check: the edited text must still parse and hold none of the keys.
    if lits.iter().any(|l| new.contains(l.value.expose_secret())) {
        return Err("the edit would leave a key behind".to_owned());
    }
    if file.extension().is_some_and(|e| e == "json") {
        let label: std::sync::Arc<str> = std::sync::Arc::from("check");
        if qwen_env_resolve::cache::parse_jsonc_or_json5(&new, &label).is_err() {
            return Err("the edited file would not parse; edit it by hand".to_owned());
        }
    }
    let backup = write_backup(&target, &text)?;
    replace(&target, &new, &meta)?;
    Ok(backup)
}

/// The file to edit: `file` itself, or the real file behind a symlinked `file` when that file
/// is ours. Editing through the link's directory would replace the link and leave the key in
/// the real file; editing another user's file is not ours to do.
fn edit_target(file: &Path) -> Result<PathBuf, String> {
    let link = std::fs::symlink_metadata(file).map_err(|e| format!("cannot read it: {e}"))?;
    if !link.file_type().is_symlink() {
        return Ok(file.to_owned());
    }
    let real = std::fs::canonicalize(file)
        .map_err(|e| format!("it is a symlink that does not resolve: {e}"))?;
    let meta =
        std::fs::metadata(&real).map_err(|e| format!("cannot read {}: {e}", real.display()))?;
    let me = qwen_env_proto::endpoint::euid();
    if meta.uid() != me {
        return Err(format!(
            "it is a symlink to {}, which belongs to uid {}, not to you (uid {me}); qwen-env does \
             not edit other users' files: remove the key there by hand, or ask its owner to",
            real.display(),
            meta.uid()
        ));
    }
    Ok(real)
}

/// Opens with these flags: never follows a symlink in the last component, never blocks on a
/// FIFO, and with `create` only makes a new file (`O_EXCL`), never reuses a planted one.
fn open_nofollow(path: &Path, create: bool) -> std::io::Result<File> {
    let mut opts = OpenOptions::new();
    if create {
        opts.write(true).create_new(true).mode(0o600);
    } else {
        opts.read(true);
    }
    opts.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC).open(path)
}

/// The current text of the file to edit (a regular file, within the resolver's cap) and its
/// metadata.
fn read_target(target: &Path) -> Result<(String, std::fs::Metadata), String> {
    let file = open_nofollow(target, false).map_err(|e| format!("cannot read it: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("cannot read it: {e}"))?;
    if !meta.is_file() {
        return Err("it is not a regular file".to_owned());
    }
    if meta.len() > fsread::JSON_CAP {
        return Err(format!(
            "it is larger than {}; edit it by hand",
            fsread::human(fsread::JSON_CAP)
        ));
    }
    let mut text = String::new();
    file.take(fsread::JSON_CAP)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read it: {e}"))?;
    Ok((text, meta))
}

/// Where backups go: `$XDG_STATE_HOME/qwen-env/backups`, private.
fn backup_dir() -> Result<PathBuf, String> {
    let dir = Dirs::from_env().state.join("backups");
    crate::paths::secure_runtime_dir(&dir)
        .map_err(|e| format!("cannot make the backup directory: {e}"))?;
    Ok(dir)
}

/// Creates `dir/<stem>.<n><suffix>` for the first free `n`, exclusively and without following
/// symlinks: an existing file (an earlier backup, or something planted) is never reused.
fn create_unique(dir: &Path, stem: &str, suffix: &str) -> Result<(PathBuf, File), String> {
    for n in 0..1000 {
        let path = dir.join(format!("{stem}.{n}{suffix}"));
        match open_nofollow(&path, true) {
            Ok(f) => return Ok((path, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(format!("cannot create {}: {e}", path.display())),
        }
    }
    Err(format!(
        "cannot create a new file named {stem}.N{suffix} in {}: all 1000 names are taken; clean up {}",
        dir.display(),
        dir.display()
    ))
}

/// Writes `bytes` to `file`, flushes it to disk, and the directory entry too.
fn write_synced(mut file: File, path: &Path, bytes: &[u8]) -> Result<(), String> {
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    sync_dir(path)
}

fn sync_dir(path: &Path) -> Result<(), String> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("cannot flush the directory {}: {e}", dir.display()))
}

/// A private (0600) copy of the original under the state directory, never beside the file
/// (where a `.gitignore` line for `.env` would not match it), under a name not used before.
fn write_backup(target: &Path, text: &str) -> Result<PathBuf, String> {
    let dir = backup_dir()?;
    let name = target.file_name().map_or_else(|| "file".into(), |n| n.to_string_lossy());
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // The leading dot goes, so `ls` shows every backup.
    let stem = format!("{}.{secs}", name.trim_start_matches('.'));
    let (path, file) = create_unique(&dir, &stem, ".bak")?;
    write_synced(file, &path, text.as_bytes()).inspect_err(|_| {
        let _ = std::fs::remove_file(&path);
    })?;
    Ok(path)
}

/// Replaces `target` by a new file holding `new`, with the original's mode, atomically: a
/// temporary file made exclusively beside it, synced, renamed over it, and the directory synced.
fn replace(target: &Path, new: &str, original: &std::fs::Metadata) -> Result<(), String> {
    let dir = target.parent().unwrap_or(Path::new("/"));
    let name = target.file_name().map_or_else(|| "file".into(), |n| n.to_string_lossy());
    let (tmp, file) =
        create_unique(dir, &format!(".{name}.qwen-env-{}", std::process::id()), ".tmp")?;
    let result = file
        .set_permissions(std::fs::Permissions::from_mode(original.mode() & 0o7777))
        .map_err(|e| format!("cannot set the mode of {}: {e}", tmp.display()))
        .and_then(|()| write_synced(file, &tmp, new.as_bytes()))
        .and_then(|()| {
            std::fs::rename(&tmp, target).map_err(|e| format!("cannot replace it: {e}"))
        });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    sync_dir(target)
}
