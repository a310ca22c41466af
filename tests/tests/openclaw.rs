//! `explain`, `run` and `key import` for OpenClaw through the real binaries: model refs, Token
//! Plan, the SQLite auth-profile store (written as OpenClaw 2026.9.6 writes it), `$include`, and
//! what `run --strict` does when OpenClaw would not send the keychain's key.

use std::path::{Path, PathBuf};

use qwen_env_tests::{TestEnv, describe, fingerprint};
use serde_json::Value;

const QK: &str = "sk-qwenkeychain0000000000001";
const TP: &str = "sk-sp-tokenplan000000000002";
const PROFILE: &str = "sk-pastedprofile00000000003";
const STALE: &str = "sk-exportedstale00000000004";

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A fake `openclaw` on PATH that prints the variables OpenClaw's qwen plugin reads.
fn project() -> (TestEnv, PathBuf) {
    let mut env = TestEnv::new();
    let bin = env.root.path().join("bin");
    write(
        &bin.join("openclaw"),
        "#!/bin/sh\nprintf 'args=%s\\n' \"$*\"\nfor v in QWEN_API_KEY MODELSTUDIO_API_KEY DASHSCOPE_API_KEY QWEN_TOKEN_PLAN_API_KEY; do\n  eval \"printf '%s=%s\\n' $v \\\"\\${$v-<unset>}\\\"\"\ndone\n",
    );
    qwen_env_tests::set_mode(&bin.join("openclaw"), 0o755);
    env.set_var("PATH", &format!("{}:/usr/local/bin:/usr/bin:/bin", bin.display()));
    let proj = env.home.join("work/proj");
    std::fs::create_dir_all(&proj).unwrap();
    (env, proj)
}

fn config(env: &TestEnv, text: &str) -> PathBuf {
    let p = env.home.join(".openclaw/openclaw.json");
    write(&p, text);
    p
}

fn json(env: &TestEnv, dir: &Path, args: &[&str], extra: &[(&str, &str)]) -> Value {
    let out = env.client(args).current_dir(dir).envs(extra.iter().copied()).output().unwrap();
    assert!(out.status.code().is_some_and(|c| c <= 1), "{}", describe(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", describe(&out)))
}

fn finding<'a>(j: &'a Value, code: &str) -> Option<&'a Value> {
    j["findings"].as_array().unwrap().iter().find(|f| f["code"] == code)
}

/// OpenClaw's shared store with one profile, as `openclaw models auth paste-api-key` leaves it:
/// the real table, WAL mode, and the connection still open (returned) as OpenClaw holds it.
fn paste_api_key(
    env: &TestEnv,
    id: &str,
    provider: &str,
    key: &str,
) -> (PathBuf, rusqlite::Connection) {
    let db = env.home.join(".openclaw/state/openclaw.sqlite");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let c = rusqlite::Connection::open(&db).unwrap();
    c.pragma_update(None, "journal_mode", "wal").unwrap();
    c.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
    c.execute_batch(
        "CREATE TABLE config_machine_state (
      state_key TEXT NOT NULL PRIMARY KEY,
      value_json TEXT NOT NULL,
      updated_at_ms INTEGER NOT NULL
    ) STRICT;
    INSERT INTO config_machine_state VALUES ('auth.sharedStore', '{\"location\":\"state-db\"}', 1);",
    )
    .unwrap();
    let store = format!(
        r#"{{"version":1,"profiles":{{"{id}":{{"type":"api_key","provider":"{provider}","key":"{key}"}}}}}}"#
    );
    c.execute("INSERT INTO config_machine_state VALUES ('authProfiles.store', ?1, 2)", [store])
        .unwrap();
    (db, c)
}

#[test]
fn model_refs_pick_the_provider_and_run_injects_only_its_variable() {
    let (env, proj) = project();
    config(
        &env,
        r#"{"models": {"providers": {"qwen": {"baseUrl": "http://127.0.0.1:9/v1"}}},
  "agents": {"defaults": {"model": {"primary": "dashscope/qwen3.5-plus"}}}}"#,
    );
    env.set_key("QWEN_API_KEY", QK);
    env.set_key("QWEN_TOKEN_PLAN_API_KEY", TP);
    // dashscope/… does not borrow qwen's keys: OpenClaw's "Unknown model", at the member.
    let j = json(
        &env,
        &proj,
        &["explain", "--as-is", "--json", "--", "openclaw", "agent"],
        &[("QWEN_API_KEY", STALE)],
    );
    let f = finding(&j, "openclaw-unknown-model").unwrap_or_else(|| panic!("{j:#}"));
    assert_eq!(f["severity"], "error");
    assert!(f["message"].as_str().unwrap().starts_with("Unknown model: dashscope/qwen3.5-plus"));
    assert!(f["location"].as_str().unwrap().ends_with("openclaw.json:2:37"), "{f:#}");
    assert!(j["api_key"]["value"].is_null(), "{j:#}");

    // --model of `agent` picks Token Plan: only QWEN_TOKEN_PLAN_API_KEY is injected.
    let argv =
        ["run", "--", "openclaw", "agent", "--local", "--model", "qwen-token-plan/qwen3.7-plus"];
    let out = env.client(&argv).current_dir(&proj).output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!("QWEN_TOKEN_PLAN_API_KEY={TP}\n")), "{stdout}");
    assert!(stdout.contains("QWEN_API_KEY=<unset>\n"), "the qwen key was injected: {stdout}");
    let j = json(
        &env,
        &proj,
        &[
            "explain",
            "--json",
            "--",
            "openclaw",
            "agent",
            "--model",
            "qwen-token-plan/qwen3.7-plus",
        ],
        &[],
    );
    assert_eq!(j["api_key"]["source"], "keychain QWEN_TOKEN_PLAN_API_KEY");
    assert_eq!(
        j["base_url"]["value"],
        "https://token-plan.ap-southeast-1.maas.aliyuncs.com/compatible-mode/v1"
    );

    // qwen/… gets QWEN_API_KEY, replacing a stale export.
    let out = env
        .client(&["run", "--", "openclaw", "agent", "--model", "qwen/qwen3.5-plus"])
        .current_dir(&proj)
        .env("QWEN_API_KEY", STALE)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!("QWEN_API_KEY={QK}\n")), "{}", describe(&out));
    assert!(stdout.contains("QWEN_TOKEN_PLAN_API_KEY=<unset>\n"), "{stdout}");
}

#[test]
fn a_stored_profile_wins_run_warns_strict_refuses_and_import_moves_it() {
    let (env, proj) = project();
    config(
        &env,
        r#"{"models": {"providers": {"qwen": {"baseUrl": "http://127.0.0.1:9/v1"}}},
  "auth": {"profiles": {"qwen:manual": {"provider": "qwen", "mode": "api_key"}}},
  "agents": {"defaults": {"model": {"primary": "qwen/qwen3.5-plus"}}}}"#,
    );
    let (db, conn) = paste_api_key(&env, "qwen:manual", "qwen", PROFILE);
    let wal = PathBuf::from(format!("{}-wal", db.display()));
    let snapshot = || (std::fs::read(&db).unwrap(), std::fs::read(&wal).unwrap_or_default());
    let before = snapshot();

    // explain: the profile's key by fingerprint, where it lives, and the env key it shadows.
    let j = json(
        &env,
        &proj,
        &["explain", "--as-is", "--json", "--", "openclaw"],
        &[("QWEN_API_KEY", STALE)],
    );
    assert_eq!(j["api_key"]["fingerprint"], fingerprint(PROFILE), "{j:#}");
    let source = j["api_key"]["source"].as_str().unwrap();
    assert_eq!(
        source,
        format!("{} config_machine_state row authProfiles.store profile qwen:manual", db.display())
    );
    assert_eq!(j["api_key"]["shadowed"][0]["fingerprint"], fingerprint(STALE));
    assert!(finding(&j, "openclaw-profile-wins").is_some(), "{j:#}");

    // run with the key in the keychain: OpenClaw would still send the profile's; run says so
    // and injects nothing; --strict refuses to start.
    env.set_key("QWEN_API_KEY", QK);
    let out = env.client(&["run", "--", "openclaw", "agent"]).current_dir(&proj).output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("keychain-shadowed")
            && stderr.contains("openclaw models auth logout qwen:manual --yes"),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("QWEN_API_KEY=<unset>\n"));
    let out = env
        .client(&["run", "--strict", "--", "openclaw", "agent"])
        .current_dir(&proj)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(out.stdout.is_empty(), "the child ran under --strict");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--strict"), "{}", describe(&out));
    env.ok(&["key", "rm", "QWEN_API_KEY"]);

    // key import stores the profile's key, says how to remove the profile, and leaves the
    // database alone; --scrub cannot remove it either, and says so by its exit status.
    let out =
        env.client(&["key", "import", "--scrub", "--json"]).current_dir(&proj).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(!String::from_utf8_lossy(&out.stdout).contains(PROFILE), "a secret was printed");
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    let item = j["imported"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "QWEN_API_KEY")
        .unwrap_or_else(|| panic!("{j:#}"));
    assert_eq!(item["fingerprint"], fingerprint(PROFILE));
    assert_eq!(item["stored"], true);
    assert_eq!(item["scrubbed"], false);
    assert!(
        item["note"].as_str().unwrap().contains("openclaw models auth logout qwen:manual --yes"),
        "{item:#}"
    );
    assert!(env.ok(&["key", "ls"]).contains(&fingerprint(PROFILE)));
    let out = env.client(&["key", "import", "--json"]).current_dir(&proj).output().unwrap();
    assert!(out.status.success(), "already imported: {}", describe(&out));
    // Compared while OpenClaw (this connection) still holds it: closing checkpoints the WAL.
    assert!(snapshot() == before, "qwen-env wrote OpenClaw's database or its WAL");
    drop(conn);
}

#[test]
fn includes_are_followed_and_an_escaping_one_is_refused_as_openclaw_does() {
    let (env, proj) = project();
    write(
        &env.home.join(".openclaw/providers.json5"),
        "{ qwen: { baseUrl: 'http://127.0.0.1:7/v1' } }",
    );
    config(
        &env,
        r#"{"models": {"providers": {"$include": "./providers.json5"}}, "agents": {"defaults": {"model": "qwen/q"}}}"#,
    );
    let j = json(
        &env,
        &proj,
        &["explain", "--as-is", "--json", "--", "openclaw"],
        &[("QWEN_API_KEY", STALE)],
    );
    assert_eq!(j["base_url"]["value"], "http://127.0.0.1:7/v1", "{j:#}");
    assert!(j["base_url"]["source"].as_str().unwrap().contains("providers.json5"), "{j:#}");
    write(&env.home.join("elsewhere.json"), "{}");
    config(&env, r#"{"$include": "../elsewhere.json"}"#);
    let j = json(
        &env,
        &proj,
        &["explain", "--as-is", "--json", "--", "openclaw"],
        &[("QWEN_API_KEY", STALE)],
    );
    let f = finding(&j, "openclaw-config-invalid").unwrap_or_else(|| panic!("{j:#}"));
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("Include path escapes config directory: ../elsewhere.json"),
        "{f:#}"
    );
    assert!(j["api_key"]["value"].is_null());
}
