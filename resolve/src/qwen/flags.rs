//! Qwen Code's command-line flags that matter for resolution (HOST_TOOLS.md 4.2).

/// The Qwen Code flags that matter for resolution (HOST_TOOLS.md 4.2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags {
    /// `--model` / `-m`.
    pub model: Option<String>,
    /// `--auth-type`.
    pub auth_type: Option<String>,
    /// `--openai-api-key` (a secret: never shown).
    pub api_key: Option<String>,
    /// `--openai-base-url`.
    pub base_url: Option<String>,
    /// `--bare`.
    pub bare: bool,
    /// `--proxy`.
    pub proxy: Option<String>,
}

/// Parse `argv[1..]`. A repeated flag keeps the last value (the broker never adds one the user
/// passed, HOST_TOOLS.md 4.2). Parsing stops at `--`.
pub fn parse_flags(args: &[String]) -> Flags {
    let mut flags = Flags::default();
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        if arg == "--" {
            break;
        }
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with('-') => (n, Some(v.to_string())),
            _ => (arg, None),
        };
        let slot: Option<&mut Option<String>> = match name {
            "--model" | "-m" => Some(&mut flags.model),
            "--auth-type" => Some(&mut flags.auth_type),
            "--openai-api-key" => Some(&mut flags.api_key),
            "--openai-base-url" => Some(&mut flags.base_url),
            "--proxy" => Some(&mut flags.proxy),
            "--bare" => {
                flags.bare = inline.as_deref().is_none_or(|v| v != "false");
                None
            }
            _ => None,
        };
        if let Some(slot) = slot {
            if let Some(v) = inline {
                *slot = Some(v);
            } else if let Some(v) = args.get(i + 1) {
                *slot = Some(v.clone());
                i += 1;
            }
        }
        i += 1;
    }
    flags
}
