//! OpenClaw's environment: process > `./.env` (credentials, `*_BASE_URL`, `*_API_HOST`,
//! `*_ENDPOINT` and `OPENCLAW_*` ignored from it) > `<state>/.env` > `env.vars`, none overriding
//! a value already set; then `${VAR}` (upper case only) in config strings.

use std::sync::LazyLock;

use qwen_env_proto::{Finding, Severity};
use regex::Regex;

use crate::display::finding;
use crate::envfiles::{EnvView, Origin};
use crate::jsonc::Node;
use crate::sources::OpenClawSources;

static VAR: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\$\{([A-Z_][A-Z0-9_]*)\}").expect("regex"));

/// Credentials, base URLs and `OPENCLAW_*` are ignored from a workspace `.env`.
pub fn ignored_from_cwd(key: &str) -> bool {
    key.ends_with("_API_KEY")
        || key.ends_with("_TOKEN")
        || key.ends_with("_SECRET")
        || key.ends_with("_BASE_URL")
        || key.ends_with("_API_HOST")
        || key.ends_with("_ENDPOINT")
        || key.starts_with("OPENCLAW_")
}

/// `${VAR}` substituted from the merged environment; a missing one stays as written.
pub fn subst(s: &str, env: &EnvView) -> String {
    VAR.replace_all(s, |c: &regex::Captures<'_>| {
        env.nonempty(&c[1]).map_or_else(|| c[0].to_string(), str::to_string)
    })
    .into_owned()
}

/// Whether a string still holds a `${VAR}` after substitution.
pub fn unresolved(s: &str) -> Option<String> {
    VAR.captures(s).map(|c| c[1].to_string())
}

/// The merged environment (after keychain injection, which is process environment).
pub fn build(
    oc: &OpenClawSources,
    config: Option<&Node>,
    env0: &[(String, String)],
    inject: &[(String, String)],
    findings: &mut Vec<Finding>,
) -> EnvView {
    let mut env = EnvView::from_process(env0);
    for (name, value) in inject {
        env.inject(name, value.clone(), Origin::Keychain(name.clone()));
    }
    if let Some(f) = &oc.cwd_env {
        for e in f.defined() {
            if ignored_from_cwd(&e.key) {
                findings.push(finding(
                    "unread-variable",
                    Severity::Warning,
                    format!("{} in the workspace .env is ignored: OpenClaw never takes credentials or base URLs from it", e.key),
                    format!("move {} to {} (or qwen-env key set {})", e.key, oc.state_dir.join(".env").display(), e.key),
                    Some(e.loc(&f.label).to_string()),
                ));
            } else {
                env.push(&e.key, e.value.clone(), Origin::File(e.loc(&f.label)));
            }
        }
    }
    if let Some(f) = &oc.state_env {
        for e in f.defined() {
            env.push(&e.key, e.value.clone(), Origin::File(e.loc(&f.label)));
        }
    }
    if let Some(vars) = config.and_then(|c| c.path(&["env", "vars"])).and_then(Node::as_object) {
        for (k, v) in vars {
            if let Some(s) = v.as_str() {
                env.push(k, s.to_string(), Origin::Settings(v.loc.clone()));
            }
        }
    }
    env
}
