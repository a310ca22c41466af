//! Commands that are neither Qwen Code nor OpenClaw: the keys come from `--with`, the named
//! profile, or the config's `[generic] keys` (DESIGN.md sections 6 and 10). There is nothing to
//! reproduce; the resolution reports where each key would come from.

use crate::config::Config;

/// The keys a generic command gets: `with` plus the profile's, else `[generic] keys`.
pub fn keys(
    with: &[String],
    profile: Option<&str>,
    config: &Config,
    fallback: bool,
) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = with.to_vec();
    if let Some(p) = profile {
        match config.profile.get(p) {
            Some(prof) => out.extend(prof.keys.iter().cloned()),
            None => return Err(p.to_string()),
        }
    }
    if out.is_empty() && fallback {
        out.extend(config.generic.keys.iter().cloned());
    }
    let mut seen = Vec::new();
    out.retain(|k| {
        let new = !seen.contains(k);
        seen.push(k.clone());
        new
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_profile_and_default() {
        let c = Config::parse("[profile.p]\nkeys=[\"B\",\"A\"]\n[generic]\nkeys=[\"G\"]").unwrap();
        assert_eq!(keys(&["A".into()], Some("p"), &c, true).unwrap(), ["A", "B"]);
        assert_eq!(keys(&[], None, &c, true).unwrap(), ["G"]);
        assert!(keys(&[], Some("nope"), &c, true).is_err());
        assert!(keys(&[], None, &c, false).unwrap().is_empty());
    }
}
