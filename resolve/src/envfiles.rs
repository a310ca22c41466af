//! The environment as the host will see it: the exported variables, then `.env` files, then
//! settings `env`, first writer wins and `""` counts as unset (HOST_TOOLS.md 2.2). Every source
//! of every variable is kept, highest priority first, so a field can name its winner and list
//! what it shadowed.

use std::collections::BTreeMap;
use std::fmt;

use crate::jsonc::Loc;
use crate::sources::EnvFile;

/// Where one definition of a variable comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Injected by `qwen-env run` from the keychain entry of that name.
    Keychain(String),
    /// The caller's exported environment.
    Process,
    /// A `.env` file, at the key.
    File(Loc),
    /// A settings `env` block.
    Settings(Loc),
}

/// One definition of a variable. `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Cand {
    /// The value (for keychain entries a placeholder: see `resolve::keychain_placeholder`).
    pub value: String,
    /// Where it is defined.
    pub origin: Origin,
}

impl fmt::Debug for Cand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cand").field("origin", &self.origin).finish_non_exhaustive()
    }
}

impl Cand {
    /// `env OPENAI_API_KEY`, `/p/.env:3:1 OPENAI_API_KEY`, `keychain X`, `/s.json:4:9 env.X`.
    pub fn source(&self, name: &str) -> String {
        match &self.origin {
            Origin::Keychain(k) => format!("keychain {k}"),
            Origin::Process => format!("env {name}"),
            Origin::File(loc) => format!("{loc} {name}"),
            Origin::Settings(loc) => format!("{loc} env.{name}"),
        }
    }

    /// `file:line:col` or the variable, for a finding's location.
    pub fn location(&self, name: &str) -> String {
        match &self.origin {
            Origin::Keychain(_) | Origin::Process => name.to_string(),
            Origin::File(loc) | Origin::Settings(loc) => loc.to_string(),
        }
    }
}

/// All definitions of every variable, highest priority first.
#[derive(Debug, Clone, Default)]
pub struct EnvView {
    vars: BTreeMap<String, Vec<Cand>>,
}

impl EnvView {
    /// Start from the caller's exported environment (later duplicates win, as in a process).
    pub fn from_process(env: &[(String, String)]) -> Self {
        let mut vars: BTreeMap<String, Vec<Cand>> = BTreeMap::new();
        for (k, v) in env {
            vars.insert(k.clone(), vec![Cand { value: v.clone(), origin: Origin::Process }]);
        }
        Self { vars }
    }

    /// Add a lower-priority definition.
    pub fn push(&mut self, name: &str, value: String, origin: Origin) {
        self.vars.entry(name.to_string()).or_default().push(Cand { value, origin });
    }

    /// Put a definition above all others (keychain injection).
    pub fn inject(&mut self, name: &str, value: String, origin: Origin) {
        self.vars.entry(name.to_string()).or_default().insert(0, Cand { value, origin });
    }

    /// Every definition of `name`, highest priority first.
    pub fn cands(&self, name: &str) -> &[Cand] {
        self.vars.get(name).map_or(&[], Vec::as_slice)
    }

    /// The definition the host ends up with: the first non-empty one, else an empty one.
    pub fn winner(&self, name: &str) -> Option<&Cand> {
        let c = self.cands(name);
        c.iter().find(|c| !c.value.is_empty()).or_else(|| c.first())
    }

    /// The effective value (`Some("")` when only empty definitions exist).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.winner(name).map(|c| c.value.as_str())
    }

    /// The effective value when non-empty.
    pub fn nonempty(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.is_empty())
    }

    /// All variable names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.vars.keys().map(String::as_str)
    }
}

/// Loader keys and the hard-coded list that project `.env` files may not set
/// (`chunk-CCGFXABG.js:40-200`, abridged: none of these is an auth, endpoint or model variable).
fn blocked_in_project(key: &str) -> bool {
    const BLOCKED: &[&str] = &[
        "NODE_OPTIONS",
        "NODE_PATH",
        "NODE_EXTRA_CA_CERTS",
        "NODE_TLS_REJECT_UNAUTHORIZED",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "QWEN_HOME",
        "QWEN_CODE_SYSTEM_SETTINGS_PATH",
        "QWEN_CODE_SYSTEM_DEFAULTS_PATH",
        "QWEN_CODE_TRUSTED_FOLDERS_PATH",
        "QWEN_RUNTIME_DIR",
        "LD_PRELOAD",
        "DYLD_INSERT_LIBRARIES",
    ];
    BLOCKED.contains(&key) || key.starts_with("GIT_") || key.starts_with("QWEN_SANDBOX")
}

/// Whether Qwen Code takes `key` from this file. `excludedEnvVars` (default `DEBUG`,
/// `DEBUG_MODE`) applies to project `.env` files but not to `.qwen/.env` or home files.
pub fn allowed(key: &str, file: &EnvFile, project: bool, excluded: &[String]) -> bool {
    if !project {
        return true;
    }
    if blocked_in_project(key) {
        return false;
    }
    let in_qwen_dir = file.path.parent().and_then(|p| p.file_name()).is_some_and(|n| n == ".qwen");
    in_qwen_dir || !excluded.iter().any(|e| e == key)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn first_nonempty_wins() {
        let mut v = EnvView::from_process(&[("A".into(), String::new())]);
        v.push(
            "A",
            "file".into(),
            Origin::File(Loc { file: Arc::from("/p/.env"), line: 3, col: 1 }),
        );
        v.push("A", "set".into(), Origin::Settings(Loc::default()));
        assert_eq!(v.get("A"), Some("file"));
        assert_eq!(v.winner("A").unwrap().source("A"), "/p/.env:3:1 A");
        assert_eq!(v.cands("A").len(), 3);
        let v = EnvView::from_process(&[("E".into(), String::new())]);
        assert_eq!(v.get("E"), Some(""));
        assert_eq!(v.nonempty("E"), None);
        assert_eq!(v.get("X"), None);
    }

    #[test]
    fn debug_hides_values() {
        let c = Cand { value: "sk-secret-value".into(), origin: Origin::Process };
        assert!(!format!("{c:?}").contains("secret"));
    }
}
