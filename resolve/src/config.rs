//! qwen-env's own config file (`$XDG_CONFIG_HOME/qwen-env/config.toml`), parsed with `toml`.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::catalog::{Catalog, Family};
use crate::mask;

/// The parsed config. Unknown keys are ignored so a newer config still loads.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Finding codes the user silenced.
    pub silence: Vec<String>,
    /// Keys older than this are reported (`key-age`).
    pub rotate_after_days: u64,
    /// Named sets of keys for `run --profile`.
    pub profile: BTreeMap<String, Profile>,
    /// Keys injected for commands that are neither Qwen Code nor OpenClaw.
    pub generic: Profile,
    /// Let processes started by `qwen-env run` (and their children) ask for keys themselves.
    pub allow_nesting: bool,
    /// Endpoint catalogue families that add to or replace (by id) the catalogue's.
    pub family: Vec<Family>,
    /// The command `explain`, `doctor` and the prompt hook check when none is given (`qwen` when
    /// unset): `"openclaw"` for people who use OpenClaw only.
    pub default_command: Option<String>,
}

/// A named set of keychain entries.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default)]
pub struct Profile {
    /// Keychain entry names, injected under their own names.
    pub keys: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            silence: Vec::new(),
            rotate_after_days: 90,
            profile: BTreeMap::new(),
            generic: Profile::default(),
            allow_nesting: false,
            family: Vec::new(),
            default_command: None,
        }
    }
}

impl Config {
    /// Parse the TOML text; the error names the line and what is wrong, and never quotes the
    /// file (a key pasted into it would be printed and logged).
    pub fn parse(text: &str) -> Result<Config, String> {
        let c: Config = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
        Catalog::check_families(&c.family).map_err(|e| mask_keys(&e))?;
        Ok(c)
    }
}

/// A TOML error as `what at line L column C`. toml's own `Display` prints the offending source
/// line, which can hold a literal key: only the span's position and `message()` are used, and
/// what the message quotes (serde's `invalid type: string "…"`) is masked when it looks like a
/// key or is not a plain word.
pub fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let what = mask_quoted(&mask_keys(e.message().trim()));
    let what = if what.is_empty() { "syntax error".to_owned() } else { what };
    match e.span() {
        Some(span) => {
            let start = (0..=span.start.min(text.len()))
                .rev()
                .find(|&i| text.is_char_boundary(i))
                .unwrap_or(0);
            let before = &text[..start];
            let line = before.matches('\n').count() + 1;
            let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
            format!("{what} at line {line} column {col}")
        }
        None => what,
    }
}

/// `text` with every key-looking token masked ([`crate::secrets::keys_in`]).
fn mask_keys(text: &str) -> String {
    let mut out = text.to_owned();
    for k in crate::secrets::keys_in(text) {
        out = out.replace(k, &mask::masked(k));
    }
    out
}

/// `text` with each `"…"` quoted part masked: serde quotes values that way (`invalid type:
/// string "…"`), while the names it reports (fields, variants) are in backticks and stay.
fn mask_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, part) in text.split('"').enumerate() {
        if i > 0 {
            out.push('"');
        }
        // Odd parts are inside quotes (an unpaired last quote leaves its tail inside, masked).
        if i % 2 == 1 { out.push_str(&mask::masked(part)) } else { out.push_str(part) }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_tables() {
        let c = Config::parse(
            "silence = [\"key-age\"]\nrotate_after_days = 30\n\
             [profile.router]\nkeys = [\"OPENROUTER_API_KEY\"]\n[generic]\nkeys = [\"API_KEY\"]\n",
        )
        .unwrap();
        assert_eq!(c.silence, ["key-age"]);
        assert_eq!(c.rotate_after_days, 30);
        assert_eq!(c.profile["router"].keys, ["OPENROUTER_API_KEY"]);
        assert_eq!(c.generic.keys, ["API_KEY"]);
        assert_eq!(c.default_command, None);
        let c = Config::parse("default_command = \"openclaw\"\n").unwrap();
        assert_eq!(c.default_command.as_deref(), Some("openclaw"));
        let c = Config::parse(
            "[[family]]\nid = \"corp\"\nname = \"Corp\"\n[[family.endpoint]]\nregion = \"eu\"\nbase_url = \"https://llm.corp.example/v1\"\n",
        )
        .unwrap();
        assert_eq!(c.family[0].endpoints[0].region, "eu");
    }

    #[test]
    fn errors_never_quote_the_file() {
        let key = "sk-configleak0123456789abcdef";
        for text in [
            format!("silence = [\"a\"]\n{key}\n"),
            format!("rotate_after_days = \"{key}\"\n"),
            "rotate_after_days = \"hunter2 is my password\"\n".to_owned(),
            format!(
                "[[family]]\nid = \"x\"\nname = \"X\"\n[[family.endpoint]]\nregion = \"eu\"\nbase_url = \"{key}\"\n"
            ),
            format!("silence = \"unterminated {key}\n"),
        ] {
            let e = Config::parse(&text).unwrap_err();
            assert!(
                !e.contains(key)
                    && !e.contains("configleak")
                    && !e.contains("hunter2")
                    && !e.contains("my pass"),
                "{e}"
            );
            assert!(!e.contains('|'), "a quoted source line: {e}");
        }
        let e = Config::parse(&format!("silence = [\"a\"]\n{key}\n")).unwrap_err();
        assert!(e.contains("at line 2 column "), "{e}");
        let e = Config::parse("rotate_after_days = \"x\"").unwrap_err();
        assert!(e.contains("invalid type") && e.contains("line 1"), "{e}");
    }

    #[test]
    fn empty_is_default_and_errors_are_reported() {
        assert_eq!(Config::parse("").unwrap(), Config::default());
        assert!(Config::parse("rotate_after_days = \"x\"").is_err());
    }
}
