//! qwen-env's own config file (`$XDG_CONFIG_HOME/qwen-env/config.toml`), parsed with `toml`.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::catalog::{Catalog, Family};

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
    /// Parse the TOML text; the error names the line and what is wrong.
    pub fn parse(text: &str) -> Result<Config, String> {
        let c: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        Catalog::check_families(&c.family)?;
        Ok(c)
    }
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
    fn empty_is_default_and_errors_are_reported() {
        assert_eq!(Config::parse("").unwrap(), Config::default());
        assert!(Config::parse("rotate_after_days = \"x\"").is_err());
    }
}
