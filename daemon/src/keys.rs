//! Stored keys: values in the keychain, non-secret metadata (fingerprint, dates) in the data dir.
//!
//! The metadata file is the index `key ls` shows; it never holds a value. It is written
//! atomically (temp file + rename, mode 0600). A metadata file that does not parse is moved
//! aside, never overwritten, so nothing is lost.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use qwen_env_proto::{Finding, KeyInfo, MigrateItem, SecretValue, Severity};
use qwen_env_resolve::mask::{fingerprint, masked};
use qwen_env_resolve::{KeyMeta, KeychainView};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::keychain::{Backend, Keychain, KeychainError};

/// How long a presence check of one key stands before the keychain is asked again (`key set`,
/// `key rm` and `key migrate` forget it at once). It keeps `explain` and the prompt hook from
/// asking the keychain on every request.
const PRESENCE_TTL: Duration = Duration::from_secs(30);

/// Longest value `key set` accepts: API keys are short; anything longer is a paste accident.
const MAX_VALUE_LEN: usize = 16 * 1024;

/// Failures of key operations, worded for the user.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{0}")]
    Invalid(String),
    #[error(
        "no key named {0} in the keychain; `qwen-env key ls` lists them, `qwen-env key set {0}` adds it"
    )]
    NotFound(String),
    #[error(
        "{name} is not in the {active} keychain the daemon uses, but the {holder} keychain holds \
         it (stored while the daemon used {holder}); move it with `qwen-env key migrate --from \
         {holder}`, or restart the daemon with QWEN_ENV_KEYRING={holder}"
    )]
    Elsewhere { name: String, active: &'static str, holder: &'static str },
    #[error(transparent)]
    Keychain(#[from] KeychainError),
    #[error(
        "the key is stored in the keychain, but its metadata could not be written to {path}: \
         {source}; check that the directory is writable (`key ls` will not show it until then)"
    )]
    Metadata { path: PathBuf, source: std::io::Error },
}

/// A variable name: what a key is stored under.
pub fn validate_name(name: &str) -> Result<(), KeyError> {
    let ok = name.len() <= 128
        && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(KeyError::Invalid(format!(
            "{name:?} is not a variable name; keys are named by the variable they feed, e.g. \
             DASHSCOPE_API_KEY (letters, digits and _, not starting with a digit)"
        )))
    }
}

/// Refuses values that would fail at the endpoint anyway (DESIGN.md code `key-format`).
pub fn validate_value(value: &SecretValue) -> Result<(), KeyError> {
    let v = value.expose_secret();
    let problem = if v.is_empty() {
        Some("the key is empty")
    } else if v.len() > MAX_VALUE_LEN {
        Some("the value is longer than 16 KiB, which is not an API key")
    } else if v.starts_with("Bearer ") || v.starts_with("bearer ") {
        Some("the value starts with `Bearer `; store only the key, the tool adds the prefix")
    } else if v.chars().any(char::is_whitespace) {
        Some("the key contains whitespace or a line break; paste only the key")
    } else if v.starts_with(['"', '\'']) || v.ends_with(['"', '\'']) {
        Some("the key is wrapped in quotes; store it without them")
    } else if !v.is_ascii() {
        Some("the key contains non-ASCII characters (a smart quote or a look-alike letter?)")
    } else {
        None
    };
    match problem {
        Some(p) => Err(KeyError::Invalid(format!("not stored: {p}"))),
        None => Ok(()),
    }
}

/// What the probes learnt about a key, as `key ls` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeSummary {
    /// The family of the endpoint that accepted it.
    pub family: Option<String>,
    /// Its region.
    pub region: Option<String>,
    /// The result in words.
    pub result: String,
    /// When.
    pub at: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Meta {
    fingerprint: String,
    masked: String,
    backend: String,
    created: u64,
    changed: u64,
    /// What the probes learnt (absent in files written before probes existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    family: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    probe: Option<String>,
    #[serde(default)]
    probed: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct MetaFile {
    version: u32,
    keys: BTreeMap<String, Meta>,
}

/// Where a key's value is, as far as the keychains can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// In the backend the daemon uses.
    Here,
    /// Only in another backend of this platform.
    Elsewhere(Backend),
    /// In no backend that answers.
    Nowhere,
}

/// The key store: keychain plus metadata index.
pub struct Keys {
    keychain: Arc<Keychain>,
    meta_path: PathBuf,
    meta: Mutex<MetaFile>,
    presence: std::sync::Mutex<HashMap<String, (Presence, Instant)>>,
}

impl Keys {
    /// Loads the metadata index from `data_dir`.
    pub fn open(keychain: Arc<Keychain>, data_dir: &Path, namespace: Option<&str>) -> Self {
        let file = match namespace.filter(|n| !n.is_empty()) {
            Some(ns) => format!("keys.{ns}.json"),
            None => "keys.json".to_owned(),
        };
        let meta_path = data_dir.join(file);
        let meta = load_meta(&meta_path);
        Self { keychain, meta_path, meta: Mutex::new(meta), presence: std::sync::Mutex::default() }
    }

    /// The keychain underneath.
    pub fn keychain(&self) -> &Arc<Keychain> {
        &self.keychain
    }

    /// Whether the keychain keeps keys across a reboot.
    pub fn durable(&self) -> bool {
        self.keychain.info().durable
    }

    /// Stores a key and records its metadata.
    pub async fn set(
        &self,
        name: &str,
        value: &SecretValue,
        now: u64,
    ) -> Result<KeyInfo, KeyError> {
        validate_name(name)?;
        validate_value(value)?;
        self.forget_presence(name);
        self.keychain.set(name, value).await?;
        let fp = fingerprint(value.expose_secret());
        let mut meta = self.meta.lock().await;
        let backend = self.keychain.backend().name().to_owned();
        let entry = meta.keys.entry(name.to_owned()).or_insert_with(|| Meta {
            fingerprint: String::new(),
            masked: String::new(),
            backend: backend.clone(),
            created: now,
            changed: now,
            family: None,
            region: None,
            probe: None,
            probed: 0,
        });
        if entry.fingerprint != fp {
            entry.changed = now;
            // What was learnt about the old value says nothing about the new one.
            entry.family = None;
            entry.region = None;
            entry.probe = None;
            entry.probed = 0;
        }
        entry.fingerprint = fp;
        entry.masked = masked(value.expose_secret());
        entry.backend = backend;
        let info = to_info(name, entry, true);
        tracing::info!(name, fingerprint = %info.fingerprint, "key stored");
        self.save(&meta)?;
        Ok(info)
    }

    /// Records a probe's result for `name`, if it still holds the probed value (`fp`).
    pub async fn record_probe(&self, name: &str, fp: &str, summary: ProbeSummary) {
        let mut meta = self.meta.lock().await;
        let Some(entry) = meta.keys.get_mut(name).filter(|m| m.fingerprint == fp) else { return };
        let changed = entry.family != summary.family
            || entry.region != summary.region
            || entry.probe.as_deref() != Some(summary.result.as_str());
        if summary.family.is_some() || entry.probe.is_none() || changed {
            // A failed probe keeps the family learnt earlier: the key still belongs there.
            if summary.family.is_some() {
                entry.family = summary.family;
                entry.region = summary.region;
            }
            entry.probe = Some(summary.result);
        }
        entry.probed = summary.at;
        if let Err(e) = self.save(&meta) {
            tracing::warn!(name, error = %e, "could not record the probe result");
        }
    }

    /// Every indexed name, sorted (for completion: no keychain call).
    pub async fn names(&self) -> Vec<String> {
        self.meta.lock().await.keys.keys().cloned().collect()
    }

    /// Whether the index holds `name`.
    pub async fn contains(&self, name: &str) -> bool {
        self.meta.lock().await.keys.contains_key(name)
    }

    /// The current metadata of one key.
    pub async fn info(&self, name: &str) -> Option<KeyInfo> {
        self.meta.lock().await.keys.get(name).map(|m| to_info(name, m, true))
    }

    /// Removes a key from the keychain (every backend that answers) and the index.
    pub async fn remove(&self, name: &str) -> Result<(), KeyError> {
        validate_name(name)?;
        self.forget_presence(name);
        let mut in_keychain = self.keychain.delete(name).await?;
        // A copy left in another backend (stored while the daemon used it) goes too: after
        // `key rm` no keychain holds the key.
        for other in self.keychain.others().await {
            match other.delete(name).await {
                Ok(gone) => in_keychain |= gone,
                Err(e) => {
                    tracing::warn!(name, error = %e, "could not delete the other backend's copy");
                }
            }
        }
        let mut meta = self.meta.lock().await;
        let in_meta = meta.keys.remove(name).is_some();
        if !in_keychain && !in_meta {
            return Err(KeyError::NotFound(name.to_owned()));
        }
        tracing::info!(name, "key removed");
        self.save(&meta)
    }

    /// Every indexed key, with whether the keychain still holds it. A key the daemon's backend
    /// lacks is looked for in the platform's other backends: `backend` then names the one that
    /// holds it (`present` stays false: `run` cannot read it).
    pub async fn list(&self) -> Result<Vec<KeyInfo>, KeyError> {
        let entries: Vec<(String, Meta)> =
            self.meta.lock().await.keys.iter().map(|(k, m)| (k.clone(), m.clone())).collect();
        let mut out = Vec::with_capacity(entries.len());
        for (name, mut meta) in entries {
            let presence = self.locate(&name).await?;
            let present = presence == Presence::Here;
            meta.backend = match presence {
                Presence::Elsewhere(b) => b.name(),
                Presence::Here | Presence::Nowhere => self.keychain.backend().name(),
            }
            .to_owned();
            out.push(to_info(&name, &meta, present));
        }
        Ok(out)
    }

    /// Where `name`'s value is: the daemon's backend, another one, or none. Asks the keychains
    /// (and remembers the answer for [`PRESENCE_TTL`]).
    pub async fn locate(&self, name: &str) -> Result<Presence, KeychainError> {
        let presence = if self.keychain.get(name).await?.is_some() {
            Presence::Here
        } else {
            let mut found = Presence::Nowhere;
            for other in self.keychain.others().await {
                match other.get(name).await {
                    Ok(Some(_)) => {
                        found = Presence::Elsewhere(other.backend());
                        break;
                    }
                    Ok(None) => {}
                    Err(e) => tracing::debug!(name, error = %e, "other backend did not answer"),
                }
            }
            found
        };
        self.presence
            .lock()
            .expect("presence lock")
            .insert(name.to_owned(), (presence, Instant::now()));
        Ok(presence)
    }

    /// [`Keys::locate`], from the memo while it is fresh.
    async fn presence(&self, name: &str) -> Result<Presence, KeychainError> {
        let memo = self.presence.lock().expect("presence lock").get(name).copied();
        // A key the daemon's backend lacks sends the next check to the other backends, and a
        // locked Secret Service may ask its user to unlock it: at most every ten TTLs.
        let ttl = |p: Presence| if p == Presence::Here { PRESENCE_TTL } else { PRESENCE_TTL * 10 };
        match memo {
            Some((p, at)) if at.elapsed() < ttl(p) => Ok(p),
            _ => self.locate(name).await,
        }
    }

    fn forget_presence(&self, name: &str) {
        self.presence.lock().expect("presence lock").remove(name);
    }

    /// Findings for the indexed keys among `names` (the keychain entries a resolution hands to
    /// the tool) that the daemon's backend does not hold: `run` would fail on them, so
    /// `explain`, `doctor` and the prompt hook must not call the setup fine.
    pub async fn absent(&self, names: &[&str]) -> Vec<Finding> {
        let active = self.keychain.backend().name();
        let mut out = Vec::new();
        for name in names {
            if !self.contains(name).await {
                continue;
            }
            let finding = match self.presence(name).await {
                Ok(Presence::Here) => continue,
                Ok(Presence::Elsewhere(holder)) => Finding {
                    code: "key-in-other-backend".to_owned(),
                    severity: Severity::Error,
                    message: format!(
                        "{name} is in the {} keychain, but the daemon uses {active}: `run` \
                         cannot read it from there",
                        holder.name()
                    ),
                    fix: format!(
                        "qwen-env key migrate --from {} (or restart the daemon with \
                         QWEN_ENV_KEYRING={})",
                        holder.name(),
                        holder.name()
                    ),
                    location: Some(format!("keychain {name}")),
                    evidence: None,
                },
                Ok(Presence::Nowhere) => Finding {
                    code: "keychain-entry-missing".to_owned(),
                    severity: Severity::Error,
                    message: format!(
                        "{name} is listed by `qwen-env key ls`, but no keychain holds it any more \
                         (kernel keyutils forgets keys at reboot)"
                    ),
                    fix: format!("qwen-env key set {name}"),
                    location: Some(format!("keychain {name}")),
                    evidence: None,
                },
                Err(e) => {
                    tracing::debug!(name, error = %e, "presence unknown");
                    continue;
                }
            };
            out.push(finding);
        }
        out
    }

    /// `key migrate --from BACKEND [NAME...]`: moves each key (every indexed one when `names` is
    /// empty) from `from` into the daemon's backend. A key is copied, read back, and only then
    /// deleted from `from`; a key both hold with different values is left alone in both.
    pub async fn migrate(
        &self,
        from: &str,
        names: &[String],
        now: u64,
    ) -> Result<Vec<MigrateItem>, KeyError> {
        let from = Backend::parse(from).map_err(KeyError::Invalid)?;
        let active = self.keychain.backend();
        if from == active {
            return Err(KeyError::Invalid(format!(
                "the daemon already uses the {} keychain; name the backend the keys are in now \
                 (`qwen-env key ls` shows it for a key it cannot read)",
                from.name()
            )));
        }
        for name in names {
            validate_name(name)?;
        }
        let source = self.keychain.other(from).await?;
        let names: Vec<String> = if names.is_empty() {
            self.meta.lock().await.keys.keys().cloned().collect()
        } else {
            names.to_vec()
        };
        let mut out = Vec::new();
        for name in names {
            self.forget_presence(&name);
            let Some(value) = source.get(&name).await? else { continue };
            let fp = fingerprint(value.expose_secret());
            let item = |moved: bool, note: String| MigrateItem {
                name: name.clone(),
                fingerprint: fp.clone(),
                moved,
                note,
            };
            match self.keychain.get(&name).await? {
                Some(here) if here.expose_secret() != value.expose_secret() => {
                    out.push(item(
                        false,
                        format!(
                            "not moved: the {} keychain holds another value ({}); keep that one \
                             and delete nothing, or `qwen-env key rm {name}` and migrate again \
                             to take the {} one",
                            active.name(),
                            fingerprint(here.expose_secret()),
                            from.name()
                        ),
                    ));
                    continue;
                }
                Some(_) => {}
                None => {
                    validate_value(&value)?;
                    self.keychain.set(&name, &value).await?;
                }
            }
            let back = self.keychain.get(&name).await?;
            if back.as_ref().map(SecretValue::expose_secret) != Some(value.expose_secret()) {
                out.push(item(
                    false,
                    format!(
                        "not moved: the {} keychain did not return the value just stored; the {} \
                         copy is kept",
                        active.name(),
                        from.name()
                    ),
                ));
                continue;
            }
            self.record_moved(&name, &value, now).await?;
            source.delete(&name).await?;
            self.forget_presence(&name);
            tracing::info!(name, fingerprint = %fp, from = from.name(), "key migrated");
            out.push(item(true, format!("moved from {} to {}", from.name(), active.name())));
        }
        Ok(out)
    }

    /// The index after a migration: the key is in the daemon's backend now.
    async fn record_moved(
        &self,
        name: &str,
        value: &SecretValue,
        now: u64,
    ) -> Result<(), KeyError> {
        let fp = fingerprint(value.expose_secret());
        let backend = self.keychain.backend().name().to_owned();
        let mut meta = self.meta.lock().await;
        let entry = meta.keys.entry(name.to_owned()).or_insert_with(|| Meta {
            fingerprint: fp.clone(),
            masked: masked(value.expose_secret()),
            backend: backend.clone(),
            created: now,
            changed: now,
            family: None,
            region: None,
            probe: None,
            probed: 0,
        });
        if entry.fingerprint != fp {
            entry.fingerprint = fp;
            entry.masked = masked(value.expose_secret());
            entry.changed = now;
            entry.family = None;
            entry.region = None;
            entry.probe = None;
            entry.probed = 0;
        }
        entry.backend = backend;
        self.save(&meta)
    }

    /// What the keychain holds, without values: what the resolver needs to plan injection.
    pub async fn view(&self) -> KeychainView {
        let meta = self.meta.lock().await;
        let entries = meta
            .keys
            .iter()
            .map(|(name, m)| {
                let meta = KeyMeta {
                    fingerprint: m.fingerprint.clone(),
                    masked: m.masked.clone(),
                    // A rotated key (`key set` with a new value) is a new one.
                    stored: m.changed.max(m.created),
                };
                (name.clone(), meta)
            })
            .collect();
        KeychainView { entries }
    }

    /// The value of `name` when the daemon's backend holds it, asking the keychain only as often
    /// as [`PRESENCE_TTL`] allows for a key it lacks (for checks that run on every request).
    pub async fn readable(&self, name: &str) -> Option<SecretValue> {
        if self.presence(name).await.ok()? != Presence::Here {
            return None;
        }
        self.keychain.get(name).await.ok().flatten()
    }

    /// The value of `name`, for injection. When the daemon's backend lacks it, the error names
    /// the backend that holds it.
    pub async fn get(&self, name: &str) -> Result<SecretValue, KeyError> {
        validate_name(name)?;
        if let Some(v) = self.keychain.get(name).await? {
            return Ok(v);
        }
        match self.locate(name).await? {
            Presence::Elsewhere(holder) => Err(KeyError::Elsewhere {
                name: name.to_owned(),
                active: self.keychain.backend().name(),
                holder: holder.name(),
            }),
            Presence::Here | Presence::Nowhere => Err(KeyError::NotFound(name.to_owned())),
        }
    }

    fn save(&self, meta: &MetaFile) -> Result<(), KeyError> {
        write_meta(&self.meta_path, meta)
            .map_err(|source| KeyError::Metadata { path: self.meta_path.clone(), source })
    }
}

fn to_info(name: &str, m: &Meta, present: bool) -> KeyInfo {
    KeyInfo {
        name: name.to_owned(),
        fingerprint: m.fingerprint.clone(),
        masked: m.masked.clone(),
        backend: m.backend.clone(),
        created: m.created,
        changed: m.changed,
        present,
        family: m.family.clone(),
        region: m.region.clone(),
        probe: m.probe.clone(),
        probed: m.probed,
    }
}

fn load_meta(path: &Path) -> MetaFile {
    match std::fs::read(path) {
        Ok(bytes) => match serde_json::from_slice::<MetaFile>(&bytes) {
            Ok(m) => m,
            Err(e) => {
                let aside = path.with_extension("json.corrupted");
                let moved = std::fs::rename(path, &aside);
                tracing::warn!(
                    path = %path.display(), cause = %e, moved_to = %aside.display(),
                    moved = moved.is_ok(), "key metadata does not parse; starting a fresh index"
                );
                MetaFile { version: 1, ..MetaFile::default() }
            }
        },
        Err(_) => MetaFile { version: 1, ..MetaFile::default() },
    }
}

fn write_meta(path: &Path, meta: &MetaFile) -> std::io::Result<()> {
    crate::paths::write_private(
        path,
        &serde_json::to_vec_pretty(meta).map_err(std::io::Error::other)?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_values_are_checked() {
        assert!(validate_name("DASHSCOPE_API_KEY").is_ok());
        assert!(validate_name("_X1").is_ok());
        for bad in ["", "1ABC", "A-B", "A B", "sk-123"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
        let ok = SecretValue::new("sk-abcdef0123456789".into());
        assert!(validate_value(&ok).is_ok());
        for bad in ["", "Bearer sk-1", "sk-1 2", "sk-1\r", "\"sk-1\"", "sk-1’"] {
            assert!(validate_value(&SecretValue::new(bad.into())).is_err(), "{bad:?}");
        }
    }
}
