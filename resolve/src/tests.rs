//! Realistic trees in temporary directories, end to end through `SourceCache::load` and
//! `resolve`: one test per step of HOST_TOOLS.md's algorithms and per rule.

#![allow(clippy::many_single_char_names)] // t (tree), p (project), c (caller), r (result)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use qwen_env_proto::{CallerContext, Resolution, Severity};

use crate::mask;
use crate::{Catalog, Config, KeyMeta, KeychainView, Params, Plan, SourceCache, resolve};

const DS_KEY: &str = "sk-0123456789abcdef0123456789abcdef";
const DS_KEY2: &str = "sk-fedcba9876543210fedcba9876543210";
const INTL: &str = "https://dashscope-intl.aliyuncs.com/compatible-mode/v1";

struct Tree {
    _dir: tempfile::TempDir,
    home: PathBuf,
    etc: PathBuf,
}

impl Tree {
    fn new() -> Tree {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let home = root.join("home");
        let etc = root.join("etc");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&etc).unwrap();
        Tree { _dir: dir, home, etc }
    }

    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.home.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        p
    }

    fn dir(&self, rel: &str) -> PathBuf {
        let p = self.home.join(rel);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    fn caller(&self, cwd: &Path, argv: &[&str], env: &[(&str, &str)]) -> CallerContext {
        let mut e: Vec<(String, String)> = vec![
            ("HOME".into(), self.home.display().to_string()),
            (
                "QWEN_CODE_SYSTEM_SETTINGS_PATH".into(),
                self.etc.join("settings.json").display().to_string(),
            ),
        ];
        e.extend(env.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())));
        CallerContext {
            cwd: cwd.display().to_string(),
            argv: argv.iter().map(|s| (*s).to_string()).collect(),
            env: e,
        }
    }
}

fn kc(entries: &[(&str, &str)]) -> KeychainView {
    let mut m = BTreeMap::new();
    for (name, secret) in entries {
        m.insert(
            (*name).to_string(),
            KeyMeta {
                fingerprint: mask::fingerprint(secret),
                masked: mask::masked(secret),
                stored: 1_000,
            },
        );
    }
    KeychainView { entries: m }
}

struct Run<'a> {
    as_is: bool,
    bare: bool,
    with: &'a [String],
    profile: Option<&'a str>,
    variables: &'a [String],
    keychain: KeychainView,
    config: Config,
    catalog: Catalog,
}

impl Default for Run<'_> {
    fn default() -> Self {
        Run {
            as_is: true,
            bare: false,
            with: &[],
            profile: None,
            variables: &[],
            keychain: KeychainView::default(),
            config: Config::default(),
            catalog: Catalog::builtin(),
        }
    }
}

fn go(t: &Tree, caller: &CallerContext, r: &Run<'_>) -> (Resolution, Plan) {
    let src = SourceCache::default().load(caller, &t.home);
    let p = Params {
        caller,
        home: &t.home,
        as_is: r.as_is,
        bare: r.bare,
        with: r.with,
        profile: r.profile,
        variables: r.variables,
        keychain: &r.keychain,
        config: &r.config,
        catalog: &r.catalog,
        now: 2_000,
    };
    let out = resolve(&src, &p);
    // Secrets never appear anywhere in the output.
    let dump = format!("{:?} {:?}", out.0, out.1);
    for s in [DS_KEY, DS_KEY2, "sk-sp-planplanplanplan1234", "sk-or-v1-routerrouter9876"] {
        assert!(!dump.contains(s), "secret leaked: {dump}");
    }
    out
}

fn codes(r: &Resolution) -> Vec<&str> {
    r.findings.iter().map(|f| f.code.as_str()).collect()
}

fn serious(r: &Resolution) -> Vec<String> {
    r.findings
        .iter()
        .filter(|f| f.severity != Severity::Info)
        .map(|f| format!("{}: {}", f.code, f.message))
        .collect()
}

fn provider_settings(model: &str, env_key: &str, base: &str) -> String {
    format!(
        r#"{{
  // written by /auth
  "security": {{ "auth": {{ "selectedType": "openai" }} }},
  "model": {{ "name": "{model}" }},
  "modelProviders": {{
    "openai": [
      {{ "id": "{model}", "envKey": "{env_key}", "baseUrl": "{base}" }}
    ]
  }}
}}"#
    )
}

#[test]
fn clean_keychain_config_is_quiet_and_injects_only_the_used_key() {
    let t = Tree::new();
    t.write(
        ".qwen/settings.json",
        &provider_settings("qwen3-coder-plus", "DASHSCOPE_API_KEY", INTL),
    );
    let proj = t.dir("work/proj");
    let c = t.caller(&proj, &["qwen", "-p", "hi"], &[]);
    let keychain =
        kc(&[("DASHSCOPE_API_KEY", DS_KEY), ("OPENROUTER_API_KEY", "sk-or-v1-routerrouter9876")]);
    let (r, plan) = go(&t, &c, &Run { as_is: false, keychain, ..Run::default() });
    assert!(serious(&r).is_empty(), "{:?}", r.findings);
    assert_eq!(r.tool, "qwen-code");
    assert_eq!(r.auth_type.value.as_deref(), Some("openai"));
    assert_eq!(r.model.value.as_deref(), Some("qwen3-coder-plus"));
    assert_eq!(r.base_url.value.as_deref(), Some(INTL));
    assert!(r.base_url.source.as_deref().unwrap().ends_with("modelProviders.openai[0].baseUrl"));
    assert!(r.base_url.source.as_deref().unwrap().contains("settings.json:7:"));
    assert_eq!(r.api_key.source.as_deref(), Some("keychain DASHSCOPE_API_KEY"));
    assert_eq!(r.api_key.fingerprint.as_deref(), Some(mask::fingerprint(DS_KEY).as_str()));
    assert_eq!(r.api_key.value.as_deref(), Some("sk-…cdef"));
    assert_eq!(r.api_key.variable.as_deref(), Some("DASHSCOPE_API_KEY"));
    assert_eq!(
        plan.inject_as,
        vec![("DASHSCOPE_API_KEY".to_string(), "DASHSCOPE_API_KEY".to_string())]
    );
    assert!(plan.extra_args.is_empty());

    // As is: nothing sets DASHSCOPE_API_KEY.
    let (r, plan) = go(&t, &c, &Run::default());
    assert!(plan.inject_as.is_empty());
    assert_eq!(r.api_key.value, None);
    assert!(codes(&r).contains(&"envkey-unset"), "{:?}", codes(&r));
    assert_eq!(r.findings[0].severity, Severity::Error);
}

#[test]
fn stale_export_is_replaced_and_reported() {
    let t = Tree::new();
    t.write(".qwen/settings.json", &provider_settings("m", "DASHSCOPE_API_KEY", INTL));
    let proj = t.dir("p");
    let c = t.caller(&proj, &["qwen"], &[("DASHSCOPE_API_KEY", DS_KEY2)]);
    let (r, _) = go(&t, &c, &Run::default());
    assert_eq!(r.api_key.source.as_deref(), Some("env DASHSCOPE_API_KEY"));
    assert_eq!(r.api_key.fingerprint.as_deref(), Some(mask::fingerprint(DS_KEY2).as_str()));
    let keychain = kc(&[("DASHSCOPE_API_KEY", DS_KEY)]);
    let (r, plan) = go(&t, &c, &Run { as_is: false, keychain, ..Run::default() });
    assert_eq!(r.api_key.source.as_deref(), Some("keychain DASHSCOPE_API_KEY"));
    assert_eq!(r.api_key.shadowed[0].source, "env DASHSCOPE_API_KEY");
    assert_eq!(
        r.api_key.shadowed[0].fingerprint.as_deref(),
        Some(mask::fingerprint(DS_KEY2).as_str())
    );
    assert!(codes(&r).contains(&"stale-env-shadows"));
    assert!(
        plan.notes[0].contains(&mask::fingerprint(DS_KEY2))
            && plan.notes[0].contains(&mask::fingerprint(DS_KEY))
    );
}

#[test]
fn env_walk_up_and_overlay_order() {
    let t = Tree::new();
    // Project: .qwen/.env wins and the sibling .env is not read at all.
    t.write("proj/.qwen/.env", "OPENAI_API_KEY=sk-proj-qwendir-key-000000\n");
    t.write("proj/.env", "OPENAI_BASE_URL=http://ignored\nOPENAI_MODEL=ignored\n");
    t.write(
        ".qwen/.env",
        "OPENAI_BASE_URL=https://example.com/v1\nOPENAI_API_KEY=sk-proj-home-loses-11111\n",
    );
    t.write(".env", "OPENAI_MODEL=home-model\nOPENAI_BASE_URL=https://loses.example/v1\n");
    let sub = t.dir("proj/a/b");
    let c = t.caller(&sub, &["qwen"], &[]);
    let (r, _) = go(&t, &c, &Run::default());
    assert_eq!(r.auth_type.value.as_deref(), Some("openai"));
    assert!(r.auth_type.source.as_deref().unwrap().starts_with("inferred from env"));
    assert!(r.api_key.source.as_deref().unwrap().ends_with("proj/.qwen/.env:1:1 OPENAI_API_KEY"));
    assert_eq!(r.base_url.value.as_deref(), Some("https://example.com/v1"));
    assert!(r.base_url.source.as_deref().unwrap().ends_with(".qwen/.env:1:1 OPENAI_BASE_URL"));
    assert_eq!(r.base_url.shadowed[0].value.as_deref(), Some("https://loses.example/v1"));
    assert_eq!(r.model.value.as_deref(), Some("home-model"));
    assert!(codes(&r).contains(&"stale-env-shadows"));
    // An exported empty string counts as unset: the file fills it.
    let c = t.caller(&sub, &["qwen"], &[("OPENAI_MODEL", "")]);
    let (r, _) = go(&t, &c, &Run::default());
    assert_eq!(r.model.value.as_deref(), Some("home-model"));
    assert!(codes(&r).contains(&"empty-env-var"));
    // An exported value beats every file.
    let c = t.caller(&sub, &["qwen"], &[("OPENAI_MODEL", "exported")]);
    let (r, _) = go(&t, &c, &Run::default());
    assert_eq!(r.model.value.as_deref(), Some("exported"));
}

#[test]
fn walk_up_stops_at_home_and_cwd_home_skips_workspace() {
    let t = Tree::new();
    t.write(
        ".qwen/settings.json",
        r#"{"model": {"name": "user"}, "security": {"auth": {"selectedType": "openai"}}}"#,
    );
    t.write(
        ".env",
        "OPENAI_API_KEY=sk-proj-homehomehome0000\nOPENAI_BASE_URL=https://h.example/v1\n",
    );
    let c = t.caller(&t.home, &["qwen"], &[]);
    let (r, _) = go(&t, &c, &Run::default());
    // cwd == home: ~/.qwen/settings.json is only the user layer; ~/.env is a home file.
    assert_eq!(r.model.value.as_deref(), Some("user"));
    assert!(r.api_key.source.as_deref().unwrap().contains("/home/.env:1"));
}

#[test]
fn settings_env_is_lowest_and_model_precedence() {
    let t = Tree::new();
    t.write(
        ".qwen/settings.json",
        r#"{"env": {"OPENAI_BASE_URL": "https://settings.example/v1", "OPENAI_MODEL": "from-settings-env"},
            "security": {"auth": {"selectedType": "openai"}}}"#,
    );
    t.write("p/.env", "OPENAI_BASE_URL=https://dotenv.example/v1\n");
    let p = t.dir("p");
    let c = t.caller(&p, &["qwen"], &[("OPENAI_API_KEY", "sk-proj-exported-000000")]);
    let (r, _) = go(&t, &c, &Run::default());
    assert_eq!(r.base_url.value.as_deref(), Some("https://dotenv.example/v1"));
    assert!(r.base_url.shadowed.iter().any(|s| s.source.ends_with("env.OPENAI_BASE_URL")));
    assert_eq!(r.model.value.as_deref(), Some("from-settings-env"));
    // model.name beats OPENAI_MODEL; --model beats both.
    t.write(
        ".qwen/settings.json",
        r#"{"model": {"name": "settings-model"}, "security": {"auth": {"selectedType": "openai"}}}"#,
    );
    let c = t.caller(&p, &["qwen"], &[("OPENAI_API_KEY", "k"), ("OPENAI_MODEL", "env-model")]);
    let (r, _) = go(&t, &c, &Run::default());
    assert_eq!(r.model.value.as_deref(), Some("settings-model"));
    assert_eq!(r.model.shadowed[0].value.as_deref(), Some("env-model"));
    let c = t.caller(
        &p,
        &["qwen", "--model=flag-model"],
        &[("OPENAI_API_KEY", "k"), ("OPENAI_MODEL", "env-model")],
    );
    let (r, _) = go(&t, &c, &Run::default());
    assert_eq!(r.model.value.as_deref(), Some("flag-model"));
    assert_eq!(r.model.source.as_deref(), Some("flag --model"));
}

#[test]
fn key_and_base_precedence_with_provider() {
    let t = Tree::new();
    t.write(
        ".qwen/settings.json",
        &format!(
            r#"{{"security": {{"auth": {{"selectedType": "openai", "apiKey": "sk-proj-settings-key-0000"}}}},
                "model": {{"name": "m"}},
                "modelProviders": {{"openai": [{{"id": "m", "envKey": "MY_KEY", "baseUrl": "{INTL}"}}]}}}}"#
        ),
    );
    let p = t.dir("p");
    let env = [
        ("MY_KEY", DS_KEY),
        ("OPENAI_API_KEY", DS_KEY2),
        ("OPENAI_BASE_URL", "https://env.example/v1"),
    ];
    let c = t.caller(&p, &["qwen", "--openai-base-url", "https://flag.example/v1"], &env);
    let (r, _) = go(&t, &c, &Run::default());
    assert_eq!(r.api_key.source.as_deref(), Some("env MY_KEY"));
    assert_eq!(r.base_url.value.as_deref(), Some(INTL), "provider baseUrl beats flag and env");
    let srcs: Vec<&str> = r.base_url.shadowed.iter().map(|s| s.source.as_str()).collect();
    assert_eq!(srcs, ["flag --openai-base-url", "env OPENAI_BASE_URL"]);
    // Whitespace envKey value is used (not trimmed) and flagged.
    let env = [("MY_KEY", "  "), ("OPENAI_API_KEY", DS_KEY2)];
    let (r, _) = go(&t, &t.caller(&p, &["qwen"], &env), &Run::default());
    assert_eq!(r.api_key.source.as_deref(), Some("env MY_KEY"));
    assert!(codes(&r).contains(&"key-format"));
    // envKey unset → OPENAI_API_KEY; then settings apiKey.
    let (r, _) = go(&t, &t.caller(&p, &["qwen"], &[("OPENAI_API_KEY", DS_KEY2)]), &Run::default());
    assert_eq!(r.api_key.source.as_deref(), Some("env OPENAI_API_KEY"));
    assert!(codes(&r).contains(&"envkey-unset"));
    let (r, _) = go(&t, &t.caller(&p, &["qwen"], &[]), &Run::default());
    assert!(r.api_key.source.as_deref().unwrap().ends_with("security.auth.apiKey"));
    assert!(codes(&r).contains(&"plaintext-secret"));
}

#[test]
fn workspace_replaces_provider_list() {
    let t = Tree::new();
    t.write(
        ".qwen/settings.json",
        &format!(
            r#"{{"security": {{"auth": {{"selectedType": "openai"}}}}, "model": {{"name": "user-model"}},
                "modelProviders": {{"openai": [{{"id": "user-model", "envKey": "DASHSCOPE_API_KEY", "baseUrl": "{INTL}"}}]}}}}"#
        ),
    );
    t.write("p/.qwen/settings.json", r#"{"modelProviders": {"openai": [{"id": "ws-model", "envKey": "X_KEY", "baseUrl": "https://x.example/v1"}]}}"#);
    let p = t.dir("p");
    let c = t.caller(&p, &["qwen"], &[("DASHSCOPE_API_KEY", DS_KEY)]);
    let (r, _) = go(&t, &c, &Run::default());
    let cs = codes(&r);
    assert!(cs.contains(&"workspace-shadows-providers"), "{cs:?}");
    assert!(cs.contains(&"model-not-in-providers"), "{cs:?}");
    // user-model became a runtime model: key from OPENAI_API_KEY (unset), default base.
    assert_eq!(r.base_url.value.as_deref(), Some("https://api.openai.com/v1"));
    assert!(cs.contains(&"key-missing"));
    assert!(cs.contains(&"unread-variable"), "DASHSCOPE_API_KEY is not read: {cs:?}");
}

#[test]
fn unknown_protocol_and_mapping() {
    let t = Tree::new();
    let p = t.dir("p");
    let body = |mapping: &str| {
        format!(
            r#"{{"security": {{"auth": {{"selectedType": "openai"}}}}, "model": {{"name": "m"}}, {mapping}
                "modelProviders": {{"dashscope": [{{"id": "m", "envKey": "DASHSCOPE_API_KEY", "baseUrl": "{INTL}"}}]}}}}"#
        )
    };
    t.write(".qwen/settings.json", &body(""));
    let c = t.caller(&p, &["qwen"], &[("DASHSCOPE_API_KEY", DS_KEY)]);
    let (r, _) = go(&t, &c, &Run::default());
    assert!(codes(&r).contains(&"unknown-provider-protocol"));
    let f = r.findings.iter().find(|f| f.code == "unknown-provider-protocol").unwrap();
    assert!(f.fix.contains(r#""providerProtocol": {"dashscope": "openai"}"#), "{}", f.fix);
    t.write(".qwen/settings.json", &body(r#""providerProtocol": {"dashscope": "openai"},"#));
    let (r, _) = go(&t, &c, &Run::default());
    assert!(serious(&r).is_empty(), "{:?}", serious(&r));
    assert_eq!(r.base_url.value.as_deref(), Some(INTL));
}

#[test]
fn no_auth_type_oauth_and_invalid_entries() {
    let t = Tree::new();
    let p = t.dir("p");
    let c =
        t.caller(&p, &["qwen"], &[("OPENAI_API_KEY", "k"), ("OPENAI_BASE_URL", "https://x/v1")]);
    let (r, _) = go(&t, &c, &Run::default());
    assert_eq!(codes(&r), ["no-auth-type"]);
    assert!(r.findings[0].fix.contains("OPENAI_MODEL"));
    // The keychain's OPENAI_API_KEY completes the triple only when model and base are there.
    let keychain = kc(&[("OPENAI_API_KEY", DS_KEY)]);
    let c2 = t.caller(&p, &["qwen"], &[("OPENAI_BASE_URL", INTL)]);
    let (r, plan) =
        go(&t, &c2, &Run { as_is: false, keychain: keychain.clone(), ..Run::default() });
    assert_eq!(codes(&r), ["no-auth-type"]);
    assert!(plan.inject_as.is_empty(), "unused secret injected");
    let c2 = t.caller(&p, &["qwen"], &[("OPENAI_BASE_URL", INTL), ("OPENAI_MODEL", "qwen-plus")]);
    let (r, plan) = go(&t, &c2, &Run { as_is: false, keychain, ..Run::default() });
    assert_eq!(r.auth_type.value.as_deref(), Some("openai"));
    assert_eq!(r.api_key.source.as_deref(), Some("keychain OPENAI_API_KEY"));
    assert_eq!(plan.inject_as.len(), 1);
    let c = t.caller(&p, &["qwen"], &[("QWEN_OAUTH", "1")]);
    let (r, _) = go(&t, &c, &Run::default());
    assert!(codes(&r).contains(&"oauth-discontinued"));
    t.write(
        ".qwen/settings.json",
        r#"{"modelProviders": {"openai": [{"name": "no id"}, {"id": "a", "wireApi": "grpc"}, {"id": "b"}, {"id": "b"}], "anthropic": {"protocol": "x"}}}"#,
    );
    let (r, _) = go(&t, &t.caller(&p, &["qwen"], &[]), &Run::default());
    let cs = codes(&r);
    assert_eq!(cs.iter().filter(|c| **c == "provider-entry-invalid").count(), 3, "{cs:?}");
    assert!(cs.contains(&"duplicate-model-id"));
}

#[test]
fn expansion_after_relaunch_and_without() {
    let t = Tree::new();
    t.write(
        ".qwen/settings.json",
        r#"{"security": {"auth": {"selectedType": "openai"}}, "model": {"name": "m"},
            "modelProviders": {"openai": [{"id": "m", "envKey": "OPENAI_API_KEY", "baseUrl": "${PROJ_BASE}"}]}}"#,
    );
    t.write("p/.env", "PROJ_BASE=https://proj.example/v1\n");
    let p = t.dir("p");
    let (r, _) = go(
        &t,
        &t.caller(&p, &["qwen"], &[("OPENAI_API_KEY", "sk-proj-aaaaaaaaaaaaaaaa")]),
        &Run::default(),
    );
    assert_eq!(r.base_url.value.as_deref(), Some("https://proj.example/v1"));
    let c = t.caller(
        &p,
        &["qwen"],
        &[("OPENAI_API_KEY", "sk-proj-aaaaaaaaaaaaaaaa"), ("QWEN_CODE_NO_RELAUNCH", "true")],
    );
    let (r, _) = go(&t, &c, &Run::default());
    assert_eq!(r.base_url.value.as_deref(), Some("${PROJ_BASE}"));
    assert!(codes(&r).contains(&"unresolved-var-reference"));
}

#[test]
fn bare_mode_and_bare_plan() {
    let t = Tree::new();
    t.write(
        ".qwen/settings.json",
        &provider_settings("qwen3-coder-plus", "DASHSCOPE_API_KEY", INTL),
    );
    let p = t.dir("p");
    // Qwen Code's own --bare ignores settings.
    let (r, _) = go(&t, &t.caller(&p, &["qwen", "--bare"], &[]), &Run::default());
    assert_eq!(codes(&r), ["no-auth-type"]);
    let (r, _) = go(&t, &t.caller(&p, &["qwen"], &[("QWEN_CODE_SIMPLE", "on")]), &Run::default());
    assert_eq!(codes(&r), ["no-auth-type"]);
    // run --bare: the normal resolution, handed over as the OPENAI_* triple.
    let keychain = kc(&[("DASHSCOPE_API_KEY", DS_KEY)]);
    let c = t.caller(&p, &["qwen", "-p", "x"], &[]);
    let (r, plan) = go(&t, &c, &Run { as_is: false, bare: true, keychain, ..Run::default() });
    assert_eq!(r.api_key.source.as_deref(), Some("keychain DASHSCOPE_API_KEY"));
    assert_eq!(plan.extra_args, ["--bare"]);
    assert!(plan.inject_as.contains(&("DASHSCOPE_API_KEY".into(), "OPENAI_API_KEY".into())));
    assert!(plan.vars.contains(&("OPENAI_BASE_URL".into(), INTL.into())));
    assert!(plan.vars.contains(&("OPENAI_MODEL".into(), "qwen3-coder-plus".into())));
    assert_eq!(plan.unset, ["OPENAI_ORG_ID", "OPENAI_PROJECT_ID"]);
    // A user's own --bare is not repeated.
    let c = t.caller(&p, &["qwen", "--bare"], &[]);
    let keychain = kc(&[("DASHSCOPE_API_KEY", DS_KEY)]);
    let (_, plan) = go(&t, &c, &Run { as_is: false, bare: true, keychain, ..Run::default() });
    assert!(plan.extra_args.is_empty());
}

#[test]
fn endpoint_rules_on_trees() {
    let t = Tree::new();
    let p = t.dir("p");
    t.write("p/.env", "OPENAI_API_BASE=https://dashscope.aliyuncs.com/compatible-mode/v1\nOPENAI_MODEL=qwen-plus\n");
    let c = t.caller(&p, &["qwen", "--auth-type", "openai"], &[("OPENAI_API_KEY", DS_KEY)]);
    let (r, _) = go(&t, &c, &Run::default());
    let cs = codes(&r);
    assert!(cs.contains(&"unread-variable") && cs.contains(&"base-url-default-openai"), "{cs:?}");
    let f = r.findings.iter().find(|f| f.code == "unread-variable").unwrap();
    assert!(
        f.fix.starts_with("rename OPENAI_API_BASE to OPENAI_BASE_URL in ")
            && f.fix.ends_with("/p/.env:1:1"),
        "{}",
        f.fix
    );
    // Plan key on a standard endpoint, suffix, OpenRouter model format.
    t.write(
        ".qwen/settings.json",
        &provider_settings("m", "BAILIAN_CODING_PLAN_API_KEY", &format!("{INTL}/chat/completions")),
    );
    std::fs::remove_file(p.join(".env")).unwrap();
    let c =
        t.caller(&p, &["qwen"], &[("BAILIAN_CODING_PLAN_API_KEY", "sk-sp-planplanplanplan1234")]);
    let (r, _) = go(&t, &c, &Run::default());
    let cs = codes(&r);
    assert!(
        cs.contains(&"key-endpoint-class-mismatch") && cs.contains(&"base-url-path-suffix"),
        "{cs:?}"
    );
    t.write(
        ".qwen/settings.json",
        &provider_settings("qwen3-coder", "OPENROUTER_API_KEY", "https://openrouter.ai/api/v1"),
    );
    let c = t.caller(
        &p,
        &["qwen"],
        &[("OPENROUTER_API_KEY", "sk-or-v1-routerrouter9876"), ("OPENAI_ORG_ID", "org")],
    );
    let (r, _) = go(&t, &c, &Run::default());
    let cs = codes(&r);
    assert!(cs.contains(&"openrouter-model-format") && cs.contains(&"openai-org-header"), "{cs:?}");
    // Local server without a key.
    t.write(
        ".qwen/settings.json",
        &provider_settings("local", "LOCAL_KEY", "http://127.0.0.1:8080/v1"),
    );
    let (r, _) = go(&t, &t.caller(&p, &["qwen"], &[]), &Run::default());
    assert!(codes(&r).contains(&"local-server-needs-key"), "{:?}", codes(&r));
    // envKey holding a key.
    t.write(".qwen/settings.json", &provider_settings("m", DS_KEY, INTL));
    let (r, _) = go(&t, &t.caller(&p, &["qwen"], &[]), &Run::default());
    assert!(codes(&r).contains(&"envkey-holds-secret"));
}

#[test]
fn other_protocols() {
    let t = Tree::new();
    let p = t.dir("p");
    let env = [
        ("ANTHROPIC_API_KEY", "sk-ant-aaaaaaaaaaaaaaaa"),
        ("ANTHROPIC_MODEL", "qwen3-coder"),
        ("ANTHROPIC_BASE_URL", "https://dashscope-intl.aliyuncs.com/apps/anthropic"),
    ];
    let (r, _) = go(&t, &t.caller(&p, &["qwen"], &env), &Run::default());
    assert_eq!(r.auth_type.value.as_deref(), Some("anthropic"));
    assert_eq!(r.api_key.variable.as_deref(), Some("ANTHROPIC_API_KEY"));
    let (r, _) = go(
        &t,
        &t.caller(&p, &["qwen", "--auth-type", "anthropic"], &[("ANTHROPIC_API_KEY", "x")]),
        &Run::default(),
    );
    let cs = codes(&r);
    assert!(cs.contains(&"model-missing") && cs.contains(&"anthropic-base-url-missing"), "{cs:?}");
    let env = [
        ("GEMINI_API_KEY", "AIzaSyAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        ("GEMINI_MODEL", "gemini-2.5-pro"),
    ];
    let (r, _) = go(&t, &t.caller(&p, &["qwen"], &env), &Run::default());
    assert_eq!(r.auth_type.value.as_deref(), Some("gemini"));
    assert_eq!(r.model.value.as_deref(), Some("gemini-2.5-pro"));
    let env = [
        ("GOOGLE_CLOUD_PROJECT", "proj"),
        ("GOOGLE_MODEL", "g"),
        ("GOOGLE_API_KEY", "AIzaSyBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"),
    ];
    let (r, _) = go(&t, &t.caller(&p, &["qwen"], &env), &Run::default());
    assert_eq!(r.auth_type.value.as_deref(), Some("vertex-ai"));
    // openai default model for a runtime model.
    let (r, _) = go(
        &t,
        &t.caller(
            &p,
            &["qwen", "--auth-type", "openai"],
            &[("OPENAI_API_KEY", "sk-proj-aaaaaaaaaaaa")],
        ),
        &Run::default(),
    );
    assert_eq!(r.model.value.as_deref(), Some("qwen3.7-max"));
    assert_eq!(r.model.source.as_deref(), Some("default"));
}

#[test]
fn parse_errors_and_generation_config() {
    let t = Tree::new();
    let p = t.dir("p");
    t.write("p/.qwen/settings.json", "{\"a\": 1,}");
    t.write(
        ".qwen/settings.json",
        &provider_settings("m", "DASHSCOPE_API_KEY", INTL).replacen(
            "\"model\": {",
            "\"model\": { \"generationConfig\": {\"timeout\": 5},",
            1,
        ),
    );
    let (r, _) =
        go(&t, &t.caller(&p, &["qwen"], &[("DASHSCOPE_API_KEY", DS_KEY)]), &Run::default());
    let cs = codes(&r);
    assert!(
        cs.contains(&"config-parse-error") && cs.contains(&"generation-config-replaced"),
        "{cs:?}"
    );
    let f = r.findings.iter().find(|f| f.code == "config-parse-error").unwrap();
    assert!(
        f.location.as_deref().unwrap().ends_with("p/.qwen/settings.json:1:9"),
        "{:?}",
        f.location
    );
}

#[test]
fn system_layers_and_qwen_home() {
    let t = Tree::new();
    let p = t.dir("p");
    std::fs::write(
        t.etc.join("system-defaults.json"),
        r#"{"model": {"name": "defaults"}, "security": {"auth": {"selectedType": "openai"}}}"#,
    )
    .unwrap();
    let (r, _) = go(&t, &t.caller(&p, &["qwen"], &[("OPENAI_API_KEY", "k")]), &Run::default());
    assert_eq!(r.model.value.as_deref(), Some("defaults"));
    t.write("alt/settings.json", r#"{"model": {"name": "alt-home"}}"#);
    let alt = t.home.join("alt").display().to_string();
    let (r, _) = go(
        &t,
        &t.caller(&p, &["qwen"], &[("OPENAI_API_KEY", "k"), ("QWEN_HOME", &alt)]),
        &Run::default(),
    );
    assert_eq!(r.model.value.as_deref(), Some("alt-home"));
    std::fs::write(t.etc.join("settings.json"), r#"{"model": {"name": "system"}}"#).unwrap();
    let (r, _) = go(
        &t,
        &t.caller(&p, &["qwen"], &[("OPENAI_API_KEY", "k"), ("QWEN_HOME", &alt)]),
        &Run::default(),
    );
    assert_eq!(r.model.value.as_deref(), Some("system"));
    assert_eq!(r.model.shadowed[0].value.as_deref(), Some("alt-home"));
}

#[test]
fn openclaw_resolution() {
    let t = Tree::new();
    let p = t.dir("p");
    let c = t.caller(&p, &["openclaw", "agent", "--local"], &[("DASHSCOPE_API_KEY", DS_KEY)]);
    let (r, _) = go(&t, &c, &Run::default());
    assert_eq!(r.tool, "openclaw");
    assert_eq!(r.base_url.value.as_deref(), Some("https://coding-intl.dashscope.aliyuncs.com/v1"));
    assert!(codes(&r).contains(&"openclaw-default-coding-endpoint"));
    t.write(".openclaw/openclaw.json", &format!("{{ // json5\n models: {{ providers: {{ qwen: {{ baseUrl: '{INTL}', apiKey: 'profile:qwen-portal:default', }} }} }},\n agents: {{defaults: {{model: {{primary: 'qwen/qwen3-coder-plus'}}}}}} }}"));
    t.write(".openclaw/.env", &format!("QWEN_API_KEY={DS_KEY2}\n"));
    t.write("p/.env", "MODELSTUDIO_API_KEY=sk-ignored-ignored-ignored\n");
    let (r, _) = go(&t, &c, &Run::default());
    assert_eq!(r.base_url.value.as_deref(), Some(INTL));
    assert_eq!(r.model.value.as_deref(), Some("qwen3-coder-plus"));
    // QWEN_API_KEY from ~/.openclaw/.env beats an exported DASHSCOPE_API_KEY.
    assert!(r.api_key.source.as_deref().unwrap().ends_with(".openclaw/.env:1:1 QWEN_API_KEY"));
    let cs = codes(&r);
    assert!(
        cs.contains(&"unread-variable") && !cs.contains(&"openclaw-default-coding-endpoint"),
        "{cs:?}"
    );
    // With no env key the profile: literal is sent.
    let c2 = t.caller(&p, &["openclaw"], &[]);
    std::fs::remove_file(t.home.join(".openclaw/.env")).unwrap();
    let (r, _) = go(&t, &c2, &Run::default());
    assert!(codes(&r).contains(&"openclaw-profile-prefix"));
    // Keychain overlay injects QWEN_API_KEY.
    let keychain = kc(&[("QWEN_API_KEY", DS_KEY)]);
    let (r, plan) = go(&t, &c2, &Run { as_is: false, keychain, ..Run::default() });
    assert_eq!(r.api_key.source.as_deref(), Some("keychain QWEN_API_KEY"));
    assert_eq!(plan.inject_as, [("QWEN_API_KEY".to_string(), "QWEN_API_KEY".to_string())]);
    // Legacy auth profiles.
    t.write(".openclaw/agents/main/agent/auth-profiles.json", r#"{"version":1,"profiles":{"qwen:default":{"type":"api_key","provider":"qwen","key":"sk-x"}}}"#);
    let (r, _) = go(&t, &c2, &Run::default());
    assert!(codes(&r).contains(&"openclaw-legacy-auth-profiles"));
}

#[test]
fn generic_commands_profiles_and_variables() {
    let t = Tree::new();
    let p = t.dir("p");
    let config = Config::parse("silence = [\"key-age\"]\n[profile.r]\nkeys = [\"OPENROUTER_API_KEY\"]\n[generic]\nkeys = [\"API_KEY\"]").unwrap();
    let c = t.caller(&p, &["curl", "x"], &[("API_KEY", "sk-proj-stale-stale-0000")]);
    let keychain = kc(&[("API_KEY", DS_KEY), ("OPENROUTER_API_KEY", "sk-or-v1-routerrouter9876")]);
    let vars = vec!["API_KEY".to_string(), "PATH".to_string()];
    let (r, plan) = go(
        &t,
        &c,
        &Run {
            as_is: false,
            keychain: keychain.clone(),
            config: config.clone(),
            variables: &vars,
            ..Run::default()
        },
    );
    assert_eq!(r.tool, "generic");
    assert_eq!(plan.inject_as, [("API_KEY".to_string(), "API_KEY".to_string())]);
    assert_eq!(r.api_key.source.as_deref(), Some("keychain API_KEY"));
    assert_eq!(r.variables[0].1.source.as_deref(), Some("keychain API_KEY"));
    assert_eq!(r.variables[1].1.value, None);
    assert!(codes(&r).contains(&"stale-env-shadows"));
    let (_, plan) = go(
        &t,
        &c,
        &Run {
            as_is: false,
            keychain: keychain.clone(),
            config: config.clone(),
            profile: Some("r"),
            ..Run::default()
        },
    );
    assert_eq!(
        plan.inject_as,
        [("OPENROUTER_API_KEY".to_string(), "OPENROUTER_API_KEY".to_string())]
    );
    // --with on qwen adds to the resolution's key; a missing entry is reported.
    let with = vec!["NOPE".to_string()];
    let (r, _) = go(
        &t,
        &t.caller(&p, &["qwen"], &[]),
        &Run { as_is: false, keychain, config, with: &with, ..Run::default() },
    );
    assert!(codes(&r).contains(&"keychain-entry-missing"));
}

#[test]
fn key_age_and_silence() {
    let t = Tree::new();
    t.write(".qwen/settings.json", &provider_settings("m", "DASHSCOPE_API_KEY", INTL));
    let p = t.dir("p");
    let c = t.caller(&p, &["qwen"], &[]);
    let mut keychain = kc(&[("DASHSCOPE_API_KEY", DS_KEY)]);
    keychain.entries.get_mut("DASHSCOPE_API_KEY").unwrap().stored = 1;
    let mut r = Run { as_is: false, keychain, ..Run::default() };
    r.config.rotate_after_days = 0;
    let src = SourceCache::default().load(&c, &t.home);
    let params = Params {
        caller: &c,
        home: &t.home,
        as_is: false,
        bare: false,
        with: &[],
        profile: None,
        variables: &[],
        keychain: &r.keychain,
        config: &r.config,
        catalog: &r.catalog,
        now: 10 * 86_400,
    };
    let (res, _) = resolve(&src, &params);
    assert!(codes(&res).contains(&"key-age"));
    let mut silenced = r.config.clone();
    silenced.silence = vec!["key-age".into()];
    let params = Params { config: &silenced, ..params };
    let (res, _) = resolve(&src, &params);
    assert!(!codes(&res).contains(&"key-age"));
}

#[cfg(unix)]
#[test]
fn permissions_rule() {
    use std::os::unix::fs::PermissionsExt;
    let t = Tree::new();
    let f = t.write(".env", &format!("OPENAI_API_KEY={DS_KEY}\n"));
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    let p = t.dir("p");
    let (r, _) = go(&t, &t.caller(&p, &["qwen"], &[]), &Run::default());
    let cs = codes(&r);
    assert!(cs.contains(&"secret-file-permissions") && cs.contains(&"plaintext-secret"), "{cs:?}");
}

#[test]
fn cache_reuses_and_notices_changes() {
    let t = Tree::new();
    t.write(".qwen/settings.json", &provider_settings("m", "DASHSCOPE_API_KEY", INTL));
    t.write("p/.qwen/settings.json", r#"{"model": {"name": "m"}}"#);
    t.write("p/.env", "A=1\n");
    t.write(".qwen/.env", "B=1\n");
    t.write(".env", "C=1\n");
    let p = t.dir("p/sub");
    let c = t.caller(&p, &["qwen"], &[("DASHSCOPE_API_KEY", DS_KEY)]);
    let cache = SourceCache::default();
    let _ = cache.load(&c, &t.home);
    let first = cache.parses();
    // user settings and three .env files; p/.qwen/settings.json is not read from p/sub (the
    // workspace file is not walked up).
    assert_eq!(first, 4);
    let keychain = KeychainView::default();
    let config = Config::default();
    let catalog = Catalog::builtin();
    let params = Params {
        caller: &c,
        home: &t.home,
        as_is: false,
        bare: false,
        with: &[],
        profile: None,
        variables: &[],
        keychain: &keychain,
        config: &config,
        catalog: &catalog,
        now: 0,
    };
    let n = 200;
    let start = std::time::Instant::now();
    for _ in 0..n {
        let src = cache.load(&c, &t.home);
        let _ = resolve(&src, &params);
    }
    let per = start.elapsed() / n;
    eprintln!(
        "warm load + resolve: {per:?} per call (debug_assertions: {})",
        cfg!(debug_assertions)
    );
    assert_eq!(cache.parses(), first, "nothing re-parsed");
    // A rewrite with new content is parsed again; the same content is not.
    t.write("p/.env", "A=2\n");
    let src = cache.load(&c, &t.home);
    assert_eq!(cache.parses(), first + 1);
    assert_eq!(src.qwen.project_env.as_ref().unwrap().entries[0].value, "2");
    std::fs::write(t.home.join("p/.env"), "A=2\n").unwrap();
    let _ = cache.load(&c, &t.home);
    assert_eq!(cache.parses(), first + 1);
}

const GATEWAY: &str = "https://llm-gateway.corp.example/plan/v1";
const CORP_FAMILY: &str = "[[family]]\nid = \"corp-plan\"\nname = \"Corp coding plan\"\nkey_prefixes = [\"sk-sp-\"]\nclass = \"plan\"\n[[family.endpoint]]\nregion = \"corp\"\nbase_url = \"https://llm-gateway.corp.example/plan/v1\"\n";

#[test]
fn a_config_family_changes_what_the_static_rules_say() {
    let t = Tree::new();
    let p = t.dir("p");
    t.write(".qwen/settings.json", &provider_settings("m", "DASHSCOPE_API_KEY", GATEWAY));
    let c = t.caller(&p, &["qwen"], &[("DASHSCOPE_API_KEY", DS_KEY)]);
    let mismatch = |r: &Resolution| {
        r.findings.iter().find(|f| f.code == "key-endpoint-class-mismatch").cloned()
    };
    let (r, _) = go(&t, &c, &Run::default());
    assert!(mismatch(&r).is_none(), "an unknown host says nothing: {:?}", r.findings);
    let config = Config::parse(CORP_FAMILY).unwrap();
    let with_corp =
        || Run { catalog: Catalog::builtin().with_overrides(&config.family), ..Run::default() };
    let (r, _) = go(&t, &c, &with_corp());
    let f = mismatch(&r).expect("the config's family makes the gateway a plan endpoint");
    assert!(f.message.contains("on an endpoint of Corp coding plan"), "{f:?}");
    assert!(f.message.contains("Alibaba Model Studio (pay-as-you-go)"), "{f:?}");
    assert!(f.fix.contains(INTL), "the fix names the key's own endpoints: {f:?}");
    // OpenClaw's rules read the same catalogue.
    t.write(
        ".openclaw/openclaw.json",
        &format!("{{ models: {{ providers: {{ qwen: {{ baseUrl: '{GATEWAY}' }} }} }} }}"),
    );
    let c = t.caller(&p, &["openclaw"], &[("QWEN_API_KEY", DS_KEY)]);
    let (r, _) = go(&t, &c, &Run::default());
    assert!(mismatch(&r).is_none(), "{:?}", r.findings);
    let (r, _) = go(&t, &c, &with_corp());
    assert!(mismatch(&r).is_some(), "{:?}", r.findings);
}

#[test]
fn one_plans_key_variable_on_the_other_plans_endpoint() {
    let t = Tree::new();
    let p = t.dir("p");
    let coding = "https://coding-intl.dashscope.aliyuncs.com/v1";
    t.write(".qwen/settings.json", &provider_settings("m", "BAILIAN_TOKEN_PLAN_API_KEY", coding));
    let c =
        t.caller(&p, &["qwen"], &[("BAILIAN_TOKEN_PLAN_API_KEY", "sk-sp-planplanplanplan1234")]);
    let (r, _) = go(&t, &c, &Run::default());
    let f = r.findings.iter().find(|f| f.code == "key-endpoint-class-mismatch").unwrap();
    assert_eq!(f.severity, Severity::Warning);
    assert!(
        f.message.contains("Alibaba Token Plan") && f.message.contains("Alibaba Coding Plan"),
        "{f:?}"
    );
    // The right variable on that endpoint is fine.
    t.write(".qwen/settings.json", &provider_settings("m", "BAILIAN_CODING_PLAN_API_KEY", coding));
    let c =
        t.caller(&p, &["qwen"], &[("BAILIAN_CODING_PLAN_API_KEY", "sk-sp-planplanplanplan1234")]);
    let (r, _) = go(&t, &c, &Run::default());
    assert!(serious(&r).is_empty(), "{:?}", r.findings);
}

/// `key import` and `doctor` take their literals from the one scanner: whatever import would
/// take from a tool's files, that tool's doctor reports, at the same place.
#[test]
fn every_literal_key_import_takes_is_reported_by_doctor() {
    let t = Tree::new();
    let p = t.dir("work/p");
    // Qwen Code: user settings (env block and security.auth.apiKey), an untrusted workspace's
    // settings (folder trust on), the project .env and ~/.env.
    t.write(
        ".qwen/settings.json",
        &format!(
            r#"{{ "security": {{ "folderTrust": {{ "enabled": true }}, "auth": {{ "selectedType": "openai", "apiKey": "sk-apikey000000000000000003" }} }},
                 "env": {{ "OPENROUTER_API_KEY": "sk-or-v1-routerrouter9876", "EDITOR": "vi" }},
                 "modelProviders": {{ "openai": [ {{ "id": "m", "envKey": "DASHSCOPE_API_KEY", "baseUrl": "{INTL}" }} ] }},
                 "model": {{ "name": "m" }} }}"#
        ),
    );
    t.write(
        "work/p/.qwen/settings.json",
        r#"{ "env": { "MY_TOKEN": "tok-0123456789abcdef0123456789" } }"#,
    );
    t.write("work/p/.env", &format!("# keys\nDASHSCOPE_API_KEY={DS_KEY}\nLOG=debug\n"));
    t.write(".env", "OTHER_SECRET=hunter2hunter2\n");
    // OpenClaw: a qwen apiKey that an env key outranks (doctor used to stay silent about it),
    // another provider's key, an env.vars key, its .env and a legacy auth-profiles file.
    t.write(
        ".openclaw/openclaw.json",
        &format!(
            "{{ env: {{ vars: {{ MOONSHOT_API_KEY: 'sk-moonmoonmoonmoon0001' }} }},\n models: {{ providers: {{ qwen: {{ baseUrl: '{INTL}', apiKey: 'sk-openclaw00000000000000004' }},\n openrouter: {{ apiKey: 'sk-or-v1-openclawrouter0005' }} }} }} }}"
        ),
    );
    t.write(".openclaw/.env", &format!("QWEN_API_KEY={DS_KEY2}\n"));
    t.write(
        ".openclaw/agents/main/agent/auth-profiles.json",
        r#"{ "profiles": { "qwen:default": { "provider": "qwen", "key": "sk-legacy000000000000000006" } } }"#,
    );

    for (argv, env) in [(["qwen"], &[][..]), (["openclaw"], &[("QWEN_API_KEY", DS_KEY)][..])] {
        let c = t.caller(&p, &argv, env);
        let src = SourceCache::default().load(&c, &t.home);
        let qwen_files: Vec<PathBuf> = {
            let q = &src.qwen;
            let settings = [&q.system_defaults, &q.user, &q.workspace, &q.system];
            settings
                .into_iter()
                .flatten()
                .map(|f| f.path.clone())
                .chain(q.project_env.iter().chain(&q.home_envs).map(|f| f.path.clone()))
        }
        .collect();
        let oc_files: Vec<PathBuf> = {
            let o = &src.openclaw;
            o.config
                .iter()
                .chain(&o.legacy_auth_profiles)
                .map(|f| f.path.clone())
                .chain(o.cwd_env.iter().chain(&o.state_env).map(|f| f.path.clone()))
        }
        .collect();
        let tool_files = if argv[0] == "qwen" { &qwen_files } else { &oc_files };
        let literals: Vec<_> = crate::import::scan(&src)
            .into_iter()
            .filter(|l| tool_files.contains(&l.file))
            .collect();
        assert!(literals.len() >= 4, "{}: the tree holds literals: {literals:?}", argv[0]);
        let (r, _) = go(&t, &c, &Run { as_is: false, ..Run::default() });
        let plaintext: Vec<_> =
            r.findings.iter().filter(|f| f.code == "plaintext-secret").collect();
        for lit in &literals {
            // `file:line`, or `position key.path` for a JSON member.
            let (at, what) = lit.location.split_once(' ').unwrap_or((&lit.location, &lit.name));
            assert!(
                plaintext
                    .iter()
                    .any(|f| f.location.as_deref() == Some(at) && f.message.contains(what)),
                "{}: key import takes {} ({}) but doctor does not report it: {plaintext:#?}",
                argv[0],
                lit.name,
                lit.location
            );
        }
    }
}

/// How many times `qwen::resolve` runs for one `resolve` call.
fn runs(t: &Tree, c: &CallerContext, r: &Run<'_>) -> (u32, Plan) {
    crate::resolve::QWEN_RUNS.with(|n| n.set(0));
    let (_, plan) = go(t, c, r);
    (crate::resolve::QWEN_RUNS.with(std::cell::Cell::get), plan)
}

#[test]
fn the_keychain_overlay_resolves_twice_unless_a_key_completes_the_triple() {
    let t = Tree::new();
    let p = t.dir("p");
    let injected = |plan: &Plan| -> Vec<String> {
        plan.inject_as.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>()
    };
    // As is: once.
    let c = t.caller(&p, &["qwen"], &[]);
    let keychain = kc(&[("OPENAI_API_KEY", DS_KEY)]);
    assert_eq!(runs(&t, &c, &Run { keychain: keychain.clone(), ..Run::default() }).0, 1);
    // No auth type, and the keychain's OPENAI_API_KEY does not complete the triple: tried once,
    // then dropped again (the resolution without it is reused, not redone).
    let (n, plan) = runs(&t, &c, &Run { as_is: false, keychain, ..Run::default() });
    assert_eq!((n, injected(&plan)), (2, Vec::<String>::new()));
    // An auth type and a provider envKey: as is, then with the key.
    t.write(".qwen/settings.json", &provider_settings("m", "DASHSCOPE_API_KEY", INTL));
    let keychain = kc(&[("DASHSCOPE_API_KEY", DS_KEY), ("OPENAI_API_KEY", DS_KEY2)]);
    let (n, plan) =
        runs(&t, &c, &Run { as_is: false, keychain: keychain.clone(), ..Run::default() });
    assert_eq!((n, injected(&plan)), (2, vec!["DASHSCOPE_API_KEY".to_string()]));
    // The one chain that needs a third: the keychain's OPENAI_API_KEY completes the inference
    // triple, and only then does a provider entry name the variable the key is read from.
    t.write(
        ".qwen/settings.json",
        &format!(
            r#"{{ "modelProviders": {{ "openai": [ {{ "id": "m", "envKey": "DASHSCOPE_API_KEY", "baseUrl": "{INTL}" }} ] }} }}"#
        ),
    );
    let c = t.caller(&p, &["qwen"], &[("OPENAI_MODEL", "m"), ("OPENAI_BASE_URL", INTL)]);
    // (A fourth checks that the OPENAI_API_KEY is still needed once DASHSCOPE_API_KEY feeds
    // the key: without it there is no auth type.)
    let (n, plan) = runs(&t, &c, &Run { as_is: false, keychain, ..Run::default() });
    assert_eq!(n, 4);
    assert_eq!(injected(&plan), ["OPENAI_API_KEY", "DASHSCOPE_API_KEY"]);
}

#[test]
fn run_injects_the_variable_the_key_is_read_from_and_nothing_that_loses() {
    let t = Tree::new();
    let p = t.dir("p");
    let injected = |plan: &Plan| -> Vec<String> {
        plan.inject_as.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>()
    };
    let fp = |k: &str| Some(crate::mask::fingerprint(k));
    let team = kc(&[("TEAM_KEY", DS_KEY2)]);
    let both = kc(&[("OPENAI_API_KEY", DS_KEY), ("TEAM_KEY", DS_KEY2)]);
    let run = |c: &CallerContext, keychain: &KeychainView| {
        go(&t, c, &Run { as_is: false, keychain: keychain.clone(), ..Run::default() })
    };
    // `$TEAM_KEY` in security.auth.apiKey: TEAM_KEY is what the key is read from.
    t.write(
        ".qwen/settings.json",
        &format!(
            r#"{{ "security": {{ "auth": {{ "selectedType": "openai", "apiKey": "$TEAM_KEY", "baseUrl": "{INTL}" }} }}, "model": {{ "name": "m" }} }}"#
        ),
    );
    let plain = t.caller(&p, &["qwen"], &[]);
    let (res, plan) = run(&plain, &team);
    assert_eq!(injected(&plan), ["TEAM_KEY"]);
    assert_eq!(res.api_key.fingerprint, fp(DS_KEY2));
    // An exported OPENAI_API_KEY ranks above security.auth.apiKey: TEAM_KEY would lose, so it
    // is not passed on.
    let exported = t.caller(&p, &["qwen"], &[("OPENAI_API_KEY", "sk-exported-openai-key")]);
    let (res, plan) = run(&exported, &team);
    assert_eq!(injected(&plan), Vec::<String>::new());
    assert_eq!(res.api_key.fingerprint, fp("sk-exported-openai-key"));
    // With both in the keychain, the higher-ranked OPENAI_API_KEY is the one delivered, alone.
    let (res, plan) = run(&plain, &both);
    assert_eq!(injected(&plan), ["OPENAI_API_KEY"]);
    assert_eq!(res.api_key.fingerprint, fp(DS_KEY));
    // `--openai-api-key` beats every variable: nothing is injected.
    let flag = t.caller(&p, &["qwen", "--openai-api-key", "sk-flag-given-key"], &[]);
    let (_, plan) = run(&flag, &both);
    assert_eq!(injected(&plan), Vec::<String>::new());
}

/// OpenClaw's shared store as its `models auth paste-api-key` writes it (the real DDL), in WAL
/// mode. The connection is returned open: OpenClaw keeps it open too.
fn oc_store(t: &Tree, store: &str, state: Option<&str>) -> rusqlite::Connection {
    let p = t.home.join(".openclaw/state/openclaw.sqlite");
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    let c = rusqlite::Connection::open(&p).unwrap();
    c.pragma_update(None, "journal_mode", "wal").unwrap();
    c.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
    c.execute_batch(
        "CREATE TABLE IF NOT EXISTS config_machine_state (
      state_key TEXT NOT NULL PRIMARY KEY,
      value_json TEXT NOT NULL,
      updated_at_ms INTEGER NOT NULL
    ) STRICT",
    )
    .unwrap();
    let put = |k: &str, v: &str| {
        c.execute(
            "INSERT INTO config_machine_state VALUES (?1, ?2, 1) ON CONFLICT(state_key) DO UPDATE SET value_json = ?2",
            [k, v],
        )
        .unwrap();
    };
    put("auth.sharedStore", r#"{"location":"state-db"}"#);
    put("authProfiles.store", store);
    if let Some(s) = state {
        put("authProfiles.state", s);
    }
    c
}

fn oc_profile(id: &str, provider: &str, key: &str) -> String {
    format!(r#""{id}":{{"type":"api_key","provider":"{provider}","key":"{key}"}}"#)
}

const TP_KEY: &str = "sk-sp-planplanplanplan1234";

#[test]
fn openclaw_model_refs_choose_the_provider() {
    let t = Tree::new();
    let p = t.dir("p");
    let env = [
        ("QWEN_API_KEY", DS_KEY),
        ("DASHSCOPE_API_KEY", DS_KEY2),
        ("QWEN_TOKEN_PLAN_API_KEY", TP_KEY),
    ];
    let cfg = |primary: &str| {
        format!(
            r#"{{"models": {{"providers": {{"qwen": {{"baseUrl": "http://127.0.0.1:9/v1"}}}}}}, "agents": {{"defaults": {{"model": {{"primary": "{primary}"}}}}}}}}"#
        )
    };
    // dashscope/… is not the qwen provider: OpenClaw's "Unknown model", at the member.
    let text = cfg("dashscope/qwen3.5-plus");
    let conf = t.write(".openclaw/openclaw.json", &text);
    let col = text.find("\"primary\"").unwrap() + 1;
    let c = t.caller(&p, &["openclaw", "agent", "--local"], &env);
    let (r, _) = go(&t, &c, &Run::default());
    let f = r.findings.iter().find(|f| f.code == "openclaw-unknown-model").expect("unknown model");
    assert_eq!(f.severity, Severity::Error);
    assert!(f.message.starts_with("Unknown model: dashscope/qwen3.5-plus"), "{}", f.message);
    assert_eq!(f.location, Some(format!("{}:1:{col}", conf.display())));
    assert_eq!(r.api_key.value, None, "the qwen env keys are not borrowed");
    // With a model row, the key is what is missing.
    t.write(".openclaw/openclaw.json", r#"{"models": {"providers": {"dashscope": {"baseUrl": "http://127.0.0.1:9/v1", "models": [{"id": "q", "name": "q"}]}}}, "agents": {"defaults": {"model": "dashscope/q"}}}"#);
    let (r, _) = go(&t, &c, &Run::default());
    let f = r.findings.iter().find(|f| f.code == "key-missing").expect("no key");
    assert!(f.message.starts_with("No API key found for provider \"dashscope\""), "{}", f.message);
    // A bare id is openai/….
    t.write(".openclaw/openclaw.json", &cfg("qwen3.5-plus"));
    let (r, _) = go(&t, &c, &Run::default());
    assert!(r.findings.iter().any(|f| f.code == "openclaw-unknown-model"
        && f.message.starts_with("Unknown model: openai/qwen3.5-plus")));
    // qwen/… resolves through qwen; --model of `agent` beats the config and picks Token Plan.
    t.write(".openclaw/openclaw.json", &cfg("qwen/qwen3.5-plus"));
    let (r, _) = go(&t, &c, &Run::default());
    assert_eq!(r.api_key.variable.as_deref(), Some("QWEN_API_KEY"));
    assert_eq!(r.model.value.as_deref(), Some("qwen3.5-plus"));
    let c2 = t.caller(&p, &["openclaw", "agent", "--model", "qwen-token-plan/qwen3.7-plus"], &env);
    let (r, _) = go(&t, &c2, &Run::default());
    assert_eq!(r.model.value.as_deref(), Some("qwen3.7-plus"));
    assert_eq!(r.model.source.as_deref(), Some("--model"));
    assert_eq!(r.api_key.variable.as_deref(), Some("QWEN_TOKEN_PLAN_API_KEY"));
    assert_eq!(r.api_key.fingerprint, Some(mask::fingerprint(TP_KEY)));
    assert_eq!(r.base_url.value.as_deref(), Some(crate::openclaw::TOKEN_PLAN_BASE));
}

#[test]
fn openclaw_token_plan_reads_only_its_variable_and_run_injects_it() {
    let t = Tree::new();
    let p = t.dir("p");
    t.write(
        ".openclaw/openclaw.json",
        r#"{"agents": {"defaults": {"model": {"primary": "qwen-token-plan/qwen3.7-plus"}}}}"#,
    );
    let c = t.caller(&p, &["openclaw", "agent"], &[("QWEN_API_KEY", DS_KEY)]);
    let (r, _) = go(&t, &c, &Run::default());
    let f = r.findings.iter().find(|f| f.code == "key-missing").expect("no key");
    assert!(
        f.message.starts_with("No API key found for provider \"qwen-token-plan\""),
        "{}",
        f.message
    );
    assert_eq!(f.fix, "qwen-env key set QWEN_TOKEN_PLAN_API_KEY");
    let keychain = kc(&[("QWEN_API_KEY", DS_KEY), ("QWEN_TOKEN_PLAN_API_KEY", TP_KEY)]);
    let (r, plan) = go(&t, &c, &Run { as_is: false, keychain, ..Run::default() });
    assert_eq!(
        plan.inject_as,
        [("QWEN_TOKEN_PLAN_API_KEY".to_string(), "QWEN_TOKEN_PLAN_API_KEY".to_string())]
    );
    assert_eq!(r.api_key.source.as_deref(), Some("keychain QWEN_TOKEN_PLAN_API_KEY"));
    // The legacy id has no env variable at all.
    t.write(".openclaw/openclaw.json", r#"{"models": {"providers": {"bailian-token-plan": {"baseUrl": "http://127.0.0.1:9/v1", "models": [{"id": "m", "name": "m"}]}}}, "agents": {"defaults": {"model": "bailian-token-plan/m"}}}"#);
    let c = t.caller(&p, &["openclaw"], &[("QWEN_TOKEN_PLAN_API_KEY", TP_KEY)]);
    let (r, plan) = go(
        &t,
        &c,
        &Run {
            as_is: false,
            keychain: kc(&[("QWEN_TOKEN_PLAN_API_KEY", TP_KEY)]),
            ..Run::default()
        },
    );
    assert!(
        r.findings
            .iter()
            .any(|f| f.code == "key-missing" && f.message.contains("\"bailian-token-plan\"")),
        "{:?}",
        codes(&r)
    );
    assert!(plan.inject_as.is_empty());
}

#[test]
fn openclaw_unknown_model_predictions() {
    let t = Tree::new();
    let p = t.dir("p");
    let c = t.caller(&p, &["openclaw"], &[("QWEN_API_KEY", DS_KEY)]);
    // What `onboard --non-interactive` writes: an empty models list, Coding Plan default host.
    // A model of the plugin's catalogue is still known there (real run: sent)…
    let onboard = |id: &str| {
        format!(
            r#"{{"models": {{"mode": "merge", "providers": {{"qwen": {{"baseUrl": "https://coding-intl.dashscope.aliyuncs.com/v1", "api": "openai-completions", "models": []}}}}}}, "agents": {{"defaults": {{"models": {{"qwen/{id}": {{}}}}, "model": {{"primary": "qwen/{id}"}}}}}}}}"#
        )
    };
    t.write(".openclaw/openclaw.json", &onboard("qwen3.5-plus"));
    let (r, _) = go(&t, &c, &Run::default());
    assert!(!codes(&r).contains(&"openclaw-unknown-model"), "{:?}", r.findings);
    // …one outside it is not (real run: "Unknown model: qwen/foo-model").
    let text = onboard("foo-model");
    t.write(".openclaw/openclaw.json", &text);
    let col = text.find("\"models\": []").unwrap() + 1;
    let (r, _) = go(&t, &c, &Run::default());
    let f = r.findings.iter().find(|f| f.code == "openclaw-unknown-model").expect("unknown");
    assert!(
        f.message.contains("Found agents.defaults.models[\"qwen/foo-model\"]"),
        "{}",
        f.message
    );
    assert!(f.fix.contains(r#"{"id": "foo-model", "name": "foo-model"}"#), "{}", f.fix);
    assert!(
        f.location.as_deref().unwrap().ends_with(&format!("openclaw.json:1:{col}")),
        "{:?}",
        f.location
    );
    // An unresolved ${VAR} in baseUrl.
    t.write(".openclaw/openclaw.json", r#"{"models": {"providers": {"qwen": {"baseUrl": "${MY_BASE}/v1"}}}, "agents": {"defaults": {"model": "qwen/q"}}}"#);
    let (r, _) = go(&t, &c, &Run::default());
    assert!(
        r.findings.iter().any(|f| f.code == "openclaw-unknown-model"
            && f.message.contains("names ${MY_BASE}, which nothing defines")
            && f.fix.starts_with("define MY_BASE")),
        "{:?}",
        r.findings
    );
    // With a models[] row the model is known and the URL fails ("Invalid URL", real run); so
    // does a URL that is not http(s).
    for base in ["${MY_BASE}/v1", "ftp://127.0.0.1:9/v1"] {
        t.write(".openclaw/openclaw.json", &format!(r#"{{"models": {{"providers": {{"qwen": {{"baseUrl": "{base}", "models": [{{"id": "q", "name": "q"}}]}}}}}}, "agents": {{"defaults": {{"model": "qwen/q"}}}}}}"#));
        let (r, _) = go(&t, &c, &Run::default());
        let codes = codes(&r);
        assert!(
            codes.contains(&"openclaw-base-url-invalid")
                && !codes.contains(&"openclaw-unknown-model"),
            "{base}: {:?}",
            r.findings
        );
    }
    // Defined, it is substituted and accepted.
    t.write(".openclaw/openclaw.json", r#"{"models": {"providers": {"qwen": {"baseUrl": "${MY_BASE}/v1"}}}, "agents": {"defaults": {"model": "qwen/q"}}}"#);
    let c2 =
        t.caller(&p, &["openclaw"], &[("QWEN_API_KEY", DS_KEY), ("MY_BASE", "http://127.0.0.1:9")]);
    let (r, _) = go(&t, &c2, &Run::default());
    assert!(!codes(&r).contains(&"openclaw-unknown-model"), "{:?}", r.findings);
    assert_eq!(r.base_url.value.as_deref(), Some("http://127.0.0.1:9/v1"));
}

#[test]
fn openclaw_profiles_beat_env_and_references_resolve() {
    let t = Tree::new();
    let p = t.dir("p");
    t.write(".openclaw/openclaw.json", r#"{"models": {"providers": {"qwen": {"baseUrl": "http://127.0.0.1:9/v1"}}}, "agents": {"defaults": {"model": "qwen/q"}}}"#);
    // Kept open in WAL mode with nothing checkpointed, as OpenClaw does.
    let db = oc_store(
        &t,
        &format!(
            r#"{{"version":1,"profiles":{{{}}}}}"#,
            oc_profile("qwen:manual", "qwen", DS_KEY2)
        ),
        None,
    );
    let c = t.caller(&p, &["openclaw"], &[("QWEN_API_KEY", DS_KEY)]);
    let (r, _) = go(&t, &c, &Run::default());
    assert_eq!(r.api_key.fingerprint, Some(mask::fingerprint(DS_KEY2)));
    let src = r.api_key.source.clone().unwrap();
    assert!(
        src.ends_with(
            "state/openclaw.sqlite config_machine_state row authProfiles.store profile qwen:manual"
        ),
        "{src}"
    );
    assert!(codes(&r).contains(&"openclaw-profile-wins"));
    assert_eq!(r.api_key.shadowed.len(), 1, "the env key is listed as shadowed");
    // Under run with the key in the keychain: nothing injected, and a warning names the profile.
    let keychain = kc(&[("QWEN_API_KEY", DS_KEY)]);
    let (r, plan) = go(&t, &c, &Run { as_is: false, keychain: keychain.clone(), ..Run::default() });
    assert!(plan.inject_as.is_empty());
    let f = r.findings.iter().find(|f| f.code == "keychain-shadowed").expect("warning");
    assert_eq!(f.severity, Severity::Warning);
    assert!(
        f.message.contains("qwen:manual")
            && f.fix.contains("openclaw models auth logout qwen:manual --yes"),
        "{f:?}"
    );
    // An edit in the WAL (OpenClaw still holding the database) is seen by a cached reader.
    let cache = SourceCache::default();
    let before = cache.load(&c, &t.home).openclaw.profiles.unwrap();
    assert_eq!(before.profiles.len(), 1);
    db.execute(
        "UPDATE config_machine_state SET value_json = ?1 WHERE state_key = 'authProfiles.store'",
        [format!(
            r#"{{"version":1,"profiles":{{{},{}}}}}"#,
            oc_profile("qwen:manual", "qwen", DS_KEY2),
            oc_profile("other:x", "openai", DS_KEY)
        )],
    )
    .unwrap();
    let after = cache.load(&c, &t.home).openclaw.profiles.unwrap();
    assert_eq!(after.profiles.len(), 2);
    // An apiKey equal to a profile id is a reference; to a profile of another provider, an error.
    t.write(".openclaw/openclaw.json", r#"{"models": {"providers": {"qwen": {"baseUrl": "http://127.0.0.1:9/v1", "apiKey": "other:x"}}}, "agents": {"defaults": {"model": "qwen/q"}}}"#);
    let (r, _) = go(&t, &c, &Run::default());
    assert!(codes(&r).contains(&"openclaw-profile-ref-invalid"), "{:?}", codes(&r));
    assert_eq!(
        r.api_key.fingerprint,
        Some(mask::fingerprint(DS_KEY2)),
        "the qwen profile still wins"
    );
    drop(db);
}

#[test]
fn openclaw_profile_order_follows_auth_order_then_type_and_last_use() {
    let t = Tree::new();
    let p = t.dir("p");
    let store = format!(
        r#"{{"version":1,"profiles":{{{},{},"qwen:tok":{{"mode":"token","provider":"QWEN","token":"{DS_KEY}"}},"bad":{{"type":"weird","provider":"qwen","key":"x"}},"noprov":{{"type":"api_key","key":"y"}}}}}}"#,
        oc_profile("qwen:a", "qwen", DS_KEY2),
        oc_profile("qwen:b", "qwen", "sk-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"),
    );
    let _db = oc_store(
        &t,
        &store,
        Some(r#"{"usageStats":{"qwen:a":{"lastUsed":50},"qwen:b":{"lastUsed":10}}}"#),
    );
    let cache = SourceCache::default();
    let c = t.caller(&p, &["openclaw"], &[]);
    let s = cache.load(&c, &t.home).openclaw.profiles.unwrap();
    assert_eq!(s.profiles.len(), 3, "unknown types and missing providers are dropped");
    let ids = |cfg: Option<&crate::jsonc::Node>| -> Vec<String> {
        crate::openclaw::profile_order(&s, cfg, "qwen").iter().map(|p| p.id.clone()).collect()
    };
    assert_eq!(ids(None), ["qwen:tok", "qwen:b", "qwen:a"]);
    let cfg = crate::cache::parse_openclaw(
        r#"{"auth": {"order": {"qwen": ["qwen:a", "qwen:b"]}}}"#,
        &std::sync::Arc::from("c"),
    )
    .unwrap();
    assert_eq!(ids(Some(&cfg)), ["qwen:a", "qwen:b"]);
    let cfg = crate::cache::parse_openclaw(
        r#"{"auth": {"profiles": {"qwen:a": {"provider": "qwen", "mode": "api_key"}}}}"#,
        &std::sync::Arc::from("c"),
    )
    .unwrap();
    assert_eq!(ids(Some(&cfg)), ["qwen:a"]);
}

#[test]
fn openclaw_includes_are_followed_and_escapes_refused() {
    let t = Tree::new();
    let p = t.dir("p");
    let c = t.caller(&p, &["openclaw"], &[("QWEN_API_KEY", DS_KEY)]);
    t.write(".openclaw/providers.json5", "{ providers: { qwen: { baseUrl: 'http://127.0.0.1:7/v1', models: [{id: 'a', name: 'a'}] } } }");
    t.write(".openclaw/openclaw.json", r#"{"models": {"$include": "./providers.json5", "providers": {"qwen": {"models": [{"id": "q", "name": "q"}]}}}, "agents": {"defaults": {"model": "qwen/q"}}}"#);
    let (r, _) = go(&t, &c, &Run::default());
    assert_eq!(r.base_url.value.as_deref(), Some("http://127.0.0.1:7/v1"));
    assert!(
        !codes(&r)
            .iter()
            .any(|c| c.starts_with("openclaw-include") || *c == "openclaw-config-invalid"),
        "{:?}",
        codes(&r)
    );
    let src = SourceCache::default().load(&c, &t.home);
    assert!(src.watched.iter().any(|w| w.ends_with("providers.json5")));
    t.write("outside.json", "{}");
    let conf = t.write(".openclaw/openclaw.json", r#"{"$include": "../outside.json"}"#);
    let (r, _) = go(&t, &c, &Run::default());
    let f = r.findings.iter().find(|f| f.code == "openclaw-config-invalid").expect("refused");
    assert!(
        f.message.contains("Include path escapes config directory: ../outside.json"),
        "{}",
        f.message
    );
    assert_eq!(f.location.as_deref(), Some(format!("{}:1:2", conf.display()).as_str()));
    assert_eq!(r.api_key.value, None, "OpenClaw does not run at all");
}

#[cfg(unix)]
#[test]
fn a_fifo_at_the_openclaw_store_is_a_finding_not_a_hang() {
    let t = Tree::new();
    let p = t.dir("p");
    let db = t.home.join(".openclaw/state/openclaw.sqlite");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let cs = std::ffi::CString::new(db.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid C string and mode.
    assert_eq!(unsafe { libc::mkfifo(cs.as_ptr(), 0o600) }, 0);
    let c = t.caller(&p, &["openclaw"], &[("QWEN_API_KEY", DS_KEY)]);
    let (r, _) = go(&t, &c, &Run::default());
    assert!(
        r.findings
            .iter()
            .any(|f| f.code == "file-not-regular" && f.message.contains("openclaw.sqlite")),
        "{:?}",
        r.findings
    );
    assert_eq!(r.api_key.variable.as_deref(), Some("QWEN_API_KEY"));
}

/// Real runs (OpenClaw 2026.9.6, a profile from `paste-api-key`): `auth: "api-key"` pins the
/// config's literal over the profile and env; without it the profile beats both.
#[test]
fn openclaw_a_pinned_literal_beats_a_stored_profile() {
    let t = Tree::new();
    let p = t.dir("p");
    let _db = oc_store(
        &t,
        &format!(
            r#"{{"version":1,"profiles":{{{}}}}}"#,
            oc_profile("qwen:manual", "qwen", DS_KEY2)
        ),
        None,
    );
    let c = t.caller(&p, &["openclaw"], &[("QWEN_API_KEY", "sk-envenvenvenvenvenvenvenvenv12")]);
    let lit = "sk-literalliteralliteralliteral1";
    t.write(".openclaw/openclaw.json", &format!(r#"{{"models": {{"providers": {{"qwen": {{"baseUrl": "http://127.0.0.1:9/v1", "apiKey": "{lit}", "auth": "api-key"}}}}}}}}"#));
    let (r, _) = go(&t, &c, &Run::default());
    assert_eq!(r.api_key.fingerprint, Some(mask::fingerprint(lit)));
    let (r, plan) = go(
        &t,
        &c,
        &Run { as_is: false, keychain: kc(&[("QWEN_API_KEY", DS_KEY)]), ..Run::default() },
    );
    assert!(plan.inject_as.is_empty());
    let f = r.findings.iter().find(|f| f.code == "keychain-shadowed").expect("warning");
    assert!(f.message.contains("auth: \"api-key\""), "{}", f.message);
    t.write(".openclaw/openclaw.json", &format!(r#"{{"models": {{"providers": {{"qwen": {{"baseUrl": "http://127.0.0.1:9/v1", "apiKey": "{lit}"}}}}}}}}"#));
    let (r, _) = go(&t, &c, &Run::default());
    assert_eq!(r.api_key.fingerprint, Some(mask::fingerprint(DS_KEY2)));
}
