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

/// Whether a variable name looks like it carries a secret (for `explain VAR`, the secrets
/// scanner and the masking of displayed values): `*_KEY`, `*_TOKEN`, `*_SECRET`, `*PASSWORD*`.
pub fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    n.ends_with("_KEY")
        || n.ends_with("_API_KEY")
        || n.ends_with("APIKEY")
        || n.ends_with("_TOKEN")
        || n.ends_with("_SECRET")
        || n.contains("PASSWORD")
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
    fn secret_names() {
        assert!(is_secret_name("OPENAI_API_KEY"));
        assert!(!is_secret_name("OPENAI_BASE_URL"));
    }
}
