//! How a secret is shown: masked display and fingerprint (DESIGN.md section 4).
//!
//! These are the only two forms a secret ever takes in a `Resolution`, a finding or a note.

use sha2::{Digest, Sha256};

/// `sha256:` + the first 12 hex digits of SHA-256 of the bytes. A user can check it with
/// `printf %s "$KEY" | sha256sum`.
pub fn fingerprint(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    let hex = hex::encode(digest);
    format!("sha256:{}", &hex[..12])
}

/// `sk-…a289`: first 3 characters, an ellipsis, the last 4. Shorter secrets reveal less: under
/// 10 characters only the last 2 are shown, under 6 nothing at all.
pub fn masked(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    let n = chars.len();
    if n >= 10 {
        let head: String = chars[..3].iter().collect();
        let tail: String = chars[n - 4..].iter().collect();
        format!("{head}…{tail}")
    } else if n >= 6 {
        let tail: String = chars[n - 2..].iter().collect();
        format!("…{tail}")
    } else {
        "***".to_string()
    }
}

/// Whether a variable name looks like it carries a secret (for `explain VAR` and the
/// plaintext rules): `*_KEY`, `*_TOKEN`, `*_SECRET`, `*PASSWORD*`.
pub fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    n.ends_with("_KEY")
        || n.ends_with("_API_KEY")
        || n.ends_with("APIKEY")
        || n.ends_with("_TOKEN")
        || n.ends_with("_SECRET")
        || n.contains("PASSWORD")
}

/// Whether `name=value` (in a `.env` file or a settings `env` block) holds a literal key: a
/// secret-looking name with a real value, or a value that looks like a key. `$VAR` references
/// are not literals.
pub fn is_literal_key(name: &str, value: &str) -> bool {
    !value.contains('$') && (is_secret_name(name) && value.len() >= 8 || looks_like_key(value))
}

/// Whether a value looks like an API key rather than a name, a URL or a placeholder.
pub fn looks_like_key(value: &str) -> bool {
    let v = value.trim();
    if v.len() < 16 || v.contains("://") || v.contains(char::is_whitespace) {
        return false;
    }
    if v.starts_with("sk-") || v.starts_with("sk_") || v.starts_with("AIza") {
        return true;
    }
    // Long mixed strings with digits are keys; env-var names are upper case, digits and `_`.
    let is_name = v.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    let has_digit = v.chars().any(|c| c.is_ascii_digit());
    let has_alpha = v.chars().any(|c| c.is_ascii_alphabetic());
    !is_name && has_digit && has_alpha && v.len() >= 24
}

/// The parts of a displayed value (a base URL, a model name, a variable) that look like an API
/// key pasted where a key does not belong: tokens between URL punctuation and quotes that carry
/// a known key prefix, or a run of 24 or more letters and digits with both in it. Model names
/// and hosts are made of short runs (`qwen3-coder-480b-a35b-instruct`) and are not matched.
pub fn keys_in(text: &str) -> Vec<&str> {
    const PREFIXES: [&str; 7] = ["sk-", "sk_", "AIza", "eyJ", "gsk_", "hf_", "xai-"];
    let is_key = |t: &str| {
        let alnum = t.chars().filter(char::is_ascii_alphanumeric).count();
        if t.len() < 16 || alnum < 16 {
            return false;
        }
        PREFIXES.iter().any(|p| t.starts_with(p))
            || t.split(|c: char| !c.is_ascii_alphanumeric()).any(|run| {
                run.len() >= 24
                    && run.chars().any(|c| c.is_ascii_digit())
                    && run.chars().any(|c| c.is_ascii_alphabetic())
            })
    };
    text.split(|c: char| {
        c.is_whitespace()
            || matches!(c, '/' | '?' | '&' | '=' | '#' | '@' | ':' | ',' | ';' | '"' | '\'' | '`')
    })
    .filter(|t| is_key(t))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_sha256_prefix() {
        // printf %s abc | sha256sum → ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
        assert_eq!(fingerprint("abc"), "sha256:ba7816bf8f01");
    }

    #[test]
    fn masking_lengths() {
        assert_eq!(masked("sk-0123456789abcdefa289"), "sk-…a289");
        assert_eq!(masked("abcdefgh"), "…gh");
        assert_eq!(masked("abc"), "***");
        assert_eq!(masked(""), "***");
        assert_eq!(masked("ключ-0123456789"), "клю…6789");
    }

    #[test]
    fn key_shapes() {
        assert!(looks_like_key("sk-0123456789abcdef0123456789abcdef"));
        assert!(looks_like_key("sk-or-v1-0123456789abcdef"));
        assert!(!looks_like_key("DASHSCOPE_API_KEY"));
        assert!(!looks_like_key("https://example.com/v1/abcdef0123456"));
        assert!(is_secret_name("OPENAI_API_KEY"));
        assert!(!is_secret_name("OPENAI_BASE_URL"));
    }

    #[test]
    fn keys_in_displayed_values() {
        assert_eq!(keys_in("sk-0123456789abcdef0123"), ["sk-0123456789abcdef0123"]);
        assert_eq!(
            keys_in("https://h.example/v1?api_key=sk-or-v1-0123456789abcdef&x=1"),
            ["sk-or-v1-0123456789abcdef"]
        );
        assert_eq!(
            keys_in("a7f3c9e1b2d4f6a8c0e2b4d6f8a1c3e5"),
            ["a7f3c9e1b2d4f6a8c0e2b4d6f8a1c3e5"]
        );
        for plain in [
            "https://dashscope-intl.aliyuncs.com/compatible-mode/v1",
            "qwen3-coder-480b-a35b-instruct",
            "qwen3-coder-plus-2025-09-23",
            "meta-llama/Llama-3.1-70B-Instruct",
            "https://myres.openai.azure.com/openai/deployments/gpt-4o?api-version=2024-08-01-preview",
            "DASHSCOPE_API_KEY",
        ] {
            assert!(keys_in(plain).is_empty(), "{plain}: {:?}", keys_in(plain));
        }
    }
}
