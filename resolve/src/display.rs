//! How a resolution is shown: the one [`Field`] builder, the one [`Finding`] builder, how
//! secrets are shown ([`Shower`]), and the value predicates every resolver shares.
//!
//! Every host resolver (`qwen`, `openclaw`, the generic and `explain VAR` paths in `resolve`)
//! builds its fields here, so "winner, source, variable, shadowed, secrets masked" means the
//! same thing everywhere.

use qwen_env_proto::{Field, Finding, Severity, Shadowed};

use crate::mask;

/// Shows secrets: masked value and fingerprint, keychain placeholders through their metadata.
pub trait Shower {
    /// `(masked, fingerprint)` of a secret value.
    fn show(&self, value: &str) -> (String, String);
}

/// A shower that masks and fingerprints plain values (tests, `--as-is`).
pub struct Plain;

impl Shower for Plain {
    fn show(&self, value: &str) -> (String, String) {
        (mask::masked(value), mask::fingerprint(value))
    }
}

/// A header value as it goes on the wire: HTTP whitespace at both ends removed.
pub fn wire_trim(value: &str) -> &str {
    value.trim_matches([' ', '\t', '\r', '\n'])
}

/// `1|true|yes|on`, case-insensitive (`bareMode.ts`).
pub fn truthy(v: Option<&str>) -> bool {
    v.is_some_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
}

/// `present(x)`: a string whose trim is non-empty (`isValuePresent`).
pub fn present(v: &str) -> bool {
    !v.trim().is_empty()
}

/// A finding with the usual fields (no evidence: only probes carry evidence).
pub fn finding(
    code: &str,
    sev: Severity,
    message: String,
    fix: String,
    loc: Option<String>,
) -> Finding {
    Finding { code: code.to_string(), severity: sev, message, fix, location: loc, evidence: None }
}

/// How a candidate's value is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Show {
    /// As is (model ids, base URLs, auth types).
    Text,
    /// Through the [`Shower`]: masked and fingerprinted.
    Secret,
    /// A key as it reaches the server: HTTP strips leading and trailing spaces, tabs, CR and LF
    /// from header values (verified by the differential suite), then shown as a secret.
    Header,
}

/// One candidate value of a field, in priority order.
pub struct Cand {
    /// The value.
    pub value: String,
    /// Where it comes from, for people.
    pub source: String,
    /// Whether it is the one the host uses (the first `ok` candidate wins).
    pub ok: bool,
    /// How to show it.
    pub show: Show,
}

impl Cand {
    /// A candidate.
    pub fn new(value: impl Into<String>, source: impl Into<String>, ok: bool, show: Show) -> Cand {
        Cand { value: value.into(), source: source.into(), ok, show }
    }
}

/// Builds a field from its candidates: the first `ok` one wins (its value, fingerprint, source
/// and `variable`), every other non-empty one is listed as shadowed. Returns the winner's index.
pub fn field(
    cands: &[Cand],
    shower: &dyn Shower,
    variable: Option<String>,
) -> (Option<usize>, Field) {
    let win = cands.iter().position(|c| c.ok);
    let show = |c: &Cand| -> (Option<String>, Option<String>) {
        match c.show {
            Show::Text => (Some(c.value.clone()), None),
            Show::Secret => {
                let (m, fp) = shower.show(&c.value);
                (Some(m), Some(fp))
            }
            Show::Header => {
                let (m, fp) = shower.show(wire_trim(&c.value));
                (Some(m), Some(fp))
            }
        }
    };
    let mut f = Field::default();
    if let Some(w) = win {
        let (v, fp) = show(&cands[w]);
        f.value = v;
        f.fingerprint = fp;
        f.source = Some(cands[w].source.clone());
        f.variable = variable;
    }
    for (i, c) in cands.iter().enumerate() {
        if Some(i) != win && !c.value.is_empty() {
            let (v, fp) = show(c);
            f.shadowed.push(Shadowed { value: v, fingerprint: fp, source: c.source.clone() });
        }
    }
    (win, f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_ok_candidate_wins_and_secrets_are_masked() {
        let key = " sk-0123456789abcdef0123456789abcdef\n";
        let cands = [
            Cand::new("", "env A", false, Show::Header),
            Cand::new(key, "env B", true, Show::Header),
            Cand::new("sk-fedcba9876543210fedcba9876543210", "env C", false, Show::Secret),
        ];
        let (w, f) = field(&cands, &Plain, Some("B".into()));
        assert_eq!(w, Some(1));
        assert_eq!(f.value.as_deref(), Some("sk-…cdef"));
        assert_eq!(f.fingerprint, Some(mask::fingerprint(wire_trim(key))));
        assert_eq!(f.variable.as_deref(), Some("B"));
        assert_eq!(f.shadowed.len(), 1, "the empty candidate is not listed");
        assert!(!format!("{f:?}").contains("0123456789abcdef0123"));
        let (w, f) = field(&[Cand::new("m", "flag", false, Show::Text)], &Plain, None);
        assert_eq!((w, f.value, f.shadowed.len()), (None, None, 1));
    }
}
