//! Step D, the auth type: flag, `security.auth.selectedType`, or inferred from a complete
//! environment triple (HOST_TOOLS.md 3.1).

use qwen_env_proto::{Field, Finding, Severity};

use super::View;
use crate::display::{Cand, Show, Shower, field, finding};
use crate::envfiles::EnvView;

/// Qwen Code's `AuthType` values (HOST_TOOLS.md 3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthType {
    /// OpenAI-compatible chat completions.
    Openai,
    /// OpenAI responses API.
    OpenaiResponses,
    /// Discontinued Qwen OAuth.
    QwenOauth,
    /// Gemini API.
    Gemini,
    /// Vertex AI.
    VertexAi,
    /// Anthropic messages.
    Anthropic,
}

impl AuthType {
    /// All of them, in Qwen Code's order.
    pub const ALL: [AuthType; 6] = [
        AuthType::Openai,
        AuthType::OpenaiResponses,
        AuthType::QwenOauth,
        AuthType::Gemini,
        AuthType::VertexAi,
        AuthType::Anthropic,
    ];

    /// From the settings / flag spelling.
    pub fn parse(s: &str) -> Option<AuthType> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// The settings / flag spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthType::Openai => "openai",
            AuthType::OpenaiResponses => "openai-responses",
            AuthType::QwenOauth => "qwen-oauth",
            AuthType::Gemini => "gemini",
            AuthType::VertexAi => "vertex-ai",
            AuthType::Anthropic => "anthropic",
        }
    }

    /// The protocol's key variable (`KEY` in step G).
    pub fn key_var(self) -> &'static str {
        match self {
            AuthType::Openai | AuthType::OpenaiResponses | AuthType::QwenOauth => "OPENAI_API_KEY",
            AuthType::Anthropic => "ANTHROPIC_API_KEY",
            AuthType::Gemini => "GEMINI_API_KEY",
            AuthType::VertexAi => "GOOGLE_API_KEY",
        }
    }

    /// The protocol's base URL variable (`BASE` in step G).
    pub fn base_var(self) -> Option<&'static str> {
        match self {
            AuthType::Openai | AuthType::OpenaiResponses => Some("OPENAI_BASE_URL"),
            AuthType::Anthropic => Some("ANTHROPIC_BASE_URL"),
            _ => None,
        }
    }

    /// `AUTH_ENV_MODEL_VARS[T]` (step E).
    pub fn model_vars(self) -> &'static [&'static str] {
        match self {
            AuthType::Openai => &["OPENAI_MODEL", "QWEN_MODEL"],
            AuthType::OpenaiResponses => &["OPENAI_MODEL"],
            AuthType::Anthropic => &["ANTHROPIC_MODEL"],
            AuthType::Gemini => &["GEMINI_MODEL"],
            AuthType::VertexAi => &["GOOGLE_MODEL"],
            AuthType::QwenOauth => &[],
        }
    }
}

/// What step D decided.
pub(super) struct Selected {
    /// The auth type's text, when something names one (valid or not).
    pub text: Option<String>,
    /// The auth type, when the text is a valid one.
    pub auth: Option<AuthType>,
    /// Where the winning text came from.
    pub source: Option<String>,
    /// The auth type field.
    pub field: Field,
}

/// D: the flag, then the settings, then inference from the environment.
pub(super) fn select(
    flag: Option<&String>,
    view: &View<'_>,
    bare: bool,
    shower: &dyn Shower,
    read_vars: &mut Vec<String>,
) -> Selected {
    let env = view.env;
    let mut auth_cands: Vec<Cand> = Vec::new();
    if let Some(a) = flag {
        auth_cands.push(Cand {
            value: a.clone(),
            source: "flag --auth-type".into(),
            ok: true,
            show: Show::Text,
        });
    }
    if !bare {
        auth_cands.extend(view.settings_cands(
            &["security", "auth", "selectedType"],
            Show::Text,
            &|v| !v.is_empty(),
        ));
    }
    let e = |k: &str| env.nonempty(k).is_some();
    let inferred = if e("QWEN_OAUTH") {
        Some((AuthType::QwenOauth, "QWEN_OAUTH"))
    } else if e("OPENAI_API_KEY") && (e("OPENAI_MODEL") || e("QWEN_MODEL")) && e("OPENAI_BASE_URL")
    {
        Some((AuthType::Openai, "OPENAI_API_KEY + OPENAI_MODEL + OPENAI_BASE_URL"))
    } else if e("GEMINI_API_KEY") && e("GEMINI_MODEL") {
        Some((AuthType::Gemini, "GEMINI_API_KEY + GEMINI_MODEL"))
    } else if (e("GOOGLE_API_KEY") || e("GOOGLE_CLOUD_PROJECT")) && e("GOOGLE_MODEL") {
        Some((AuthType::VertexAi, "GOOGLE_API_KEY + GOOGLE_MODEL"))
    } else if e("ANTHROPIC_API_KEY") && e("ANTHROPIC_MODEL") && e("ANTHROPIC_BASE_URL") {
        Some((AuthType::Anthropic, "ANTHROPIC_API_KEY + ANTHROPIC_MODEL + ANTHROPIC_BASE_URL"))
    } else {
        None
    };
    read_vars.extend(
        ["QWEN_OAUTH", "OPENAI_API_KEY", "OPENAI_MODEL", "QWEN_MODEL", "OPENAI_BASE_URL"]
            .map(String::from),
    );
    if let Some((t, why)) = inferred {
        auth_cands.push(Cand {
            value: t.as_str().into(),
            source: format!("inferred from env {why}"),
            ok: true,
            show: Show::Text,
        });
    }
    let (win, field) = field(&auth_cands, shower, None);
    let text = win.map(|i| auth_cands[i].value.clone());
    let auth = text.as_deref().and_then(AuthType::parse);
    Selected { text, auth, source: win.map(|i| auth_cands[i].source.clone()), field }
}

/// `user_settings` is where the fix goes (and the finding's location: nothing else says where).
pub(super) fn no_auth_type(env: &EnvView, user_settings: &std::path::Path) -> Finding {
    let us = user_settings.display();
    let have = |k: &str| env.nonempty(k).is_some();
    let mut missing: Vec<&str> = Vec::new();
    if !have("OPENAI_API_KEY") {
        missing.push("OPENAI_API_KEY");
    }
    if !have("OPENAI_MODEL") && !have("QWEN_MODEL") {
        missing.push("OPENAI_MODEL");
    }
    if !have("OPENAI_BASE_URL") {
        missing.push("OPENAI_BASE_URL");
    }
    let fix = if missing.len() < 3 {
        format!(
            "set {} (the OPENAI_API_KEY + OPENAI_MODEL + OPENAI_BASE_URL triple must be complete), or set \"security\": {{\"auth\": {{\"selectedType\": \"openai\"}}}} in {us}",
            missing.join(" and ")
        )
    } else {
        format!(
            "set \"security\": {{\"auth\": {{\"selectedType\": \"openai\"}}}} and \"model\": {{\"name\": \"MODEL\"}} in {us}, or pass --auth-type openai"
        )
    };
    finding(
        "no-auth-type",
        Severity::Error,
        "no auth type is selected: no --auth-type, no security.auth.selectedType, and the environment does not hold a complete OPENAI_API_KEY + OPENAI_MODEL + OPENAI_BASE_URL triple".into(),
        fix,
        Some(us.to_string()),
    )
}
