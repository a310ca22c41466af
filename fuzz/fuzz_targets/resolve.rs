//! The resolver on arbitrary sources: arbitrary bytes as every file Qwen Code and OpenClaw read
//! (settings layers, `.env` walk-up, home `.env` files, `openclaw.json`, auth profiles, trusted
//! folders), an arbitrary caller (command, arguments, environment) and options, through
//! `SourceCache::load` and `resolve` exactly as the daemon calls them.
//!
//! Invariant beyond "no panic": secret values never reach the output. The caller's environment
//! and `.env` lines carry marker secrets under secret-looking names; the `Debug` of the
//! `Resolution` and the `Plan` (whose secret values are `SecretValue`, redacted) must not
//! contain a marker. File bytes the fuzzer writes never hold a marker themselves, so any marker
//! in the output came from a secret position.
#![no_main]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use qwen_env_proto::CallerContext;
use qwen_env_resolve::{
    Catalog, Config, KeyMeta, KeychainView, Params, SourceCache, mask, resolve,
};

/// Secrets planted by the harness; `{n}` distinguishes them.
const MARKER: &str = "FZSECRET";
fn marker(n: u8) -> String {
    format!("sk-{MARKER}{:02}a1b2c3d4e5f6a7b8c9", n % 8)
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Slot {
    UserSettings,
    WorkspaceSettings,
    ParentWorkspaceSettings,
    SystemSettings,
    SystemDefaults,
    ProjectEnv,
    ProjectQwenEnv,
    ParentEnv,
    HomeEnv,
    HomeQwenEnv,
    TrustedFolders,
    OpenClawConfig,
    OpenClawStateEnv,
    AuthProfiles,
    QwenEnvConfig,
}

#[derive(Arbitrary, Debug, Clone)]
enum Name {
    DashscopeApiKey,
    OpenaiApiKey,
    OpenaiBaseUrl,
    OpenaiModel,
    OpenrouterApiKey,
    QwenApiKey,
    BailianCodingPlanApiKey,
    AnthropicApiKey,
    GeminiApiKey,
    ApiKey,
    QwenOauth,
    QwenModel,
    OpenaiOrgId,
    QwenHome,
    QwenCodeNoRelaunch,
    Other(String),
}

impl Name {
    fn as_string(&self) -> String {
        match self {
            Name::DashscopeApiKey => "DASHSCOPE_API_KEY",
            Name::OpenaiApiKey => "OPENAI_API_KEY",
            Name::OpenaiBaseUrl => "OPENAI_BASE_URL",
            Name::OpenaiModel => "OPENAI_MODEL",
            Name::OpenrouterApiKey => "OPENROUTER_API_KEY",
            Name::QwenApiKey => "QWEN_API_KEY",
            Name::BailianCodingPlanApiKey => "BAILIAN_CODING_PLAN_API_KEY",
            Name::AnthropicApiKey => "ANTHROPIC_API_KEY",
            Name::GeminiApiKey => "GEMINI_API_KEY",
            Name::ApiKey => "API_KEY",
            Name::QwenOauth => "QWEN_OAUTH",
            Name::QwenModel => "QWEN_MODEL",
            Name::OpenaiOrgId => "OPENAI_ORG_ID",
            Name::QwenHome => "QWEN_HOME",
            Name::QwenCodeNoRelaunch => "QWEN_CODE_NO_RELAUNCH",
            Name::Other(s) => return s.clone(),
        }
        .to_owned()
    }
}

#[derive(Arbitrary, Debug)]
enum Val {
    /// A planted secret (only kept under a secret-looking name).
    Secret(u8),
    Text(String),
}

#[derive(Arbitrary, Debug)]
enum Host {
    Qwen,
    OpenClaw,
    Generic,
    None,
}

#[derive(Arbitrary, Debug)]
struct Input {
    host: Host,
    args: Vec<String>,
    env: Vec<(Name, Val)>,
    files: Vec<(Slot, Vec<u8>)>,
    /// `.env` lines `NAME=<secret>` appended to a file slot.
    env_secrets: Vec<(Slot, Name, u8)>,
    in_project: bool,
    as_is: bool,
    bare: bool,
    with: Vec<Name>,
    profile: Option<String>,
    variables: Vec<Name>,
    keychain: Vec<Name>,
}

/// Environment names the harness owns: they point the resolver at files, and must stay inside
/// the sandbox.
fn harness_owned(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    n == "HOME" || n.contains("PATH") || n.contains("_DIR") || n.starts_with("OPENCLAW_")
}

struct Sandbox {
    _dir: tempfile::TempDir,
    home: PathBuf,
    etc: PathBuf,
}

fn sandbox() -> &'static Sandbox {
    static S: OnceLock<Sandbox> = OnceLock::new();
    S.get_or_init(|| {
        let dir = tempfile::Builder::new().prefix("qwen-env-fuzz").tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let home = root.join("home");
        let etc = root.join("etc");
        Sandbox { _dir: dir, home, etc }
    })
}

fn slot_path(s: &Sandbox, slot: Slot) -> PathBuf {
    let h = &s.home;
    match slot {
        Slot::UserSettings => h.join(".qwen/settings.json"),
        Slot::WorkspaceSettings => h.join("work/proj/.qwen/settings.json"),
        Slot::ParentWorkspaceSettings => h.join("work/.qwen/settings.json"),
        Slot::SystemSettings => s.etc.join("settings.json"),
        Slot::SystemDefaults => s.etc.join("system-defaults.json"),
        Slot::ProjectEnv => h.join("work/proj/.env"),
        Slot::ProjectQwenEnv => h.join("work/proj/.qwen/.env"),
        Slot::ParentEnv => h.join("work/.env"),
        Slot::HomeEnv => h.join(".env"),
        Slot::HomeQwenEnv => h.join(".qwen/.env"),
        Slot::TrustedFolders => h.join(".qwen/trustedFolders.json"),
        Slot::OpenClawConfig => h.join(".openclaw/openclaw.json"),
        Slot::OpenClawStateEnv => h.join(".openclaw/.env"),
        Slot::AuthProfiles => h.join(".openclaw/agents/main/agent/auth-profiles.json"),
        Slot::QwenEnvConfig => h.join(".config/qwen-env/config.toml"),
    }
}

fn reset(s: &Sandbox) {
    let _ = std::fs::remove_dir_all(&s.home);
    let _ = std::fs::remove_dir_all(&s.etc);
    std::fs::create_dir_all(s.home.join("work/proj/.qwen")).unwrap();
    std::fs::create_dir_all(&s.etc).unwrap();
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fuzz_target!(|inp: Input| {
    let s = sandbox();
    reset(s);

    // Files: the fuzzer's bytes (never a marker), then the planted secret lines.
    let mut files: BTreeMap<PathBuf, Vec<u8>> = BTreeMap::new();
    let mut config_text = String::new();
    for (slot, bytes) in &inp.files {
        if contains(bytes, MARKER.as_bytes()) {
            return;
        }
        if let Slot::QwenEnvConfig = slot {
            config_text = String::from_utf8_lossy(bytes).into_owned();
        }
        files.entry(slot_path(s, *slot)).or_default().extend_from_slice(bytes);
    }
    let mut secrets: Vec<String> = Vec::new();
    for (slot, name, n) in &inp.env_secrets {
        let name = name.as_string();
        if !mask::is_secret_name(&name)
            || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            || name.is_empty()
        {
            continue;
        }
        let m = marker(*n);
        let f = files.entry(slot_path(s, *slot)).or_default();
        f.extend_from_slice(format!("\n{name}={m}\n").as_bytes());
        secrets.push(m);
    }
    for (p, bytes) in &files {
        write(p, bytes);
    }

    // The caller.
    let cwd = if inp.in_project { s.home.join("work/proj") } else { s.home.clone() };
    let mut env: Vec<(String, String)> = vec![
        ("HOME".into(), s.home.display().to_string()),
        (
            "QWEN_CODE_SYSTEM_SETTINGS_PATH".into(),
            s.etc.join("settings.json").display().to_string(),
        ),
    ];
    for (name, val) in &inp.env {
        let name = name.as_string();
        if harness_owned(&name) || contains(name.as_bytes(), MARKER.as_bytes()) {
            continue;
        }
        let value = match val {
            Val::Secret(n) if mask::is_secret_name(&name) => {
                let m = marker(*n);
                secrets.push(m.clone());
                m
            }
            Val::Secret(_) => continue,
            Val::Text(t) if t.contains(MARKER) => return,
            Val::Text(t) => t.clone(),
        };
        env.push((name, value));
    }
    let mut argv: Vec<String> = match inp.host {
        Host::Qwen => vec!["qwen".into()],
        Host::OpenClaw => vec!["/usr/bin/openclaw".into()],
        Host::Generic => vec!["aider".into()],
        Host::None => vec![],
    };
    if !argv.is_empty() {
        for a in &inp.args {
            if a.contains(MARKER) {
                return;
            }
            argv.push(a.clone());
        }
    }
    let caller = CallerContext { cwd: cwd.display().to_string(), argv, env };

    let config = Config::parse(&config_text).unwrap_or_default();
    let mut keychain = KeychainView::default();
    for n in &inp.keychain {
        let name = n.as_string();
        let fake = format!("sk-keychain-{name}-0123456789");
        keychain.entries.insert(
            name,
            KeyMeta {
                fingerprint: mask::fingerprint(&fake),
                masked: mask::masked(&fake),
                stored: 1_000,
            },
        );
    }
    let with: Vec<String> = inp.with.iter().map(Name::as_string).collect();
    let variables: Vec<String> = inp.variables.iter().map(Name::as_string).collect();
    if with.iter().chain(&variables).any(|v| v.contains(MARKER)) {
        return;
    }
    if inp.profile.as_deref().is_some_and(|p| p.contains(MARKER)) {
        return;
    }

    let src = SourceCache::default().load(&caller, &s.home);
    let catalog = Catalog::builtin();
    let params = Params {
        caller: &caller,
        home: &s.home,
        as_is: inp.as_is,
        bare: inp.bare,
        with: &with,
        profile: inp.profile.as_deref(),
        variables: &variables,
        keychain: &keychain,
        config: &config,
        catalog: &catalog,
        now: 2_000_000_000,
    };
    let (resolution, plan) = resolve(&src, &params);
    let dump = format!("{resolution:?} {plan:?}");
    // Including `$VAR` references in settings strings, which copy a secret into model and base
    // URL values (found here; tests/tests/malformed.rs has the regression test).
    assert!(!dump.contains(MARKER), "a planted secret reached the output:\n{dump}");
    // Findings are well-formed: a stable kebab-case code and words in message and fix.
    for f in &resolution.findings {
        assert!(
            !f.code.is_empty() && f.code.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
            "bad finding code {:?}",
            f.code
        );
        assert!(!f.message.is_empty(), "finding {} has no message", f.code);
    }
});
