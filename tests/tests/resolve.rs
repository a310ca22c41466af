//! `explain`, `doctor` and `run` on realistic configuration trees, through the real binaries.

use std::path::{Path, PathBuf};

use qwen_env_tests::{TestEnv, describe, fingerprint};
use serde_json::Value;

const INTL: &str = "https://dashscope-intl.aliyuncs.com/compatible-mode/v1";
const BEIJING: &str = "https://dashscope.aliyuncs.com/compatible-mode/v1";

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// An environment with a project directory and a fake `qwen`/`openclaw` on PATH that prints
/// what it received (arguments and the variables that matter).
fn project() -> (TestEnv, PathBuf) {
    let mut env = TestEnv::new();
    let bin = env.root.path().join("bin");
    for tool in ["qwen", "openclaw"] {
        write(
            &bin.join(tool),
            "#!/bin/sh\nprintf 'args=%s\\n' \"$*\"\nfor v in DASHSCOPE_API_KEY OPENAI_API_KEY OPENAI_BASE_URL OPENAI_MODEL OPENROUTER_API_KEY QWEN_API_KEY OPENAI_ORG_ID QWEN_ENV; do\n  eval \"printf '%s=%s\\n' $v \\\"\\${$v-<unset>}\\\"\"\ndone\n",
        );
        qwen_env_tests::set_mode(&bin.join(tool), 0o755);
    }
    env.set_var("PATH", &format!("{}:/usr/local/bin:/usr/bin:/bin", bin.display()));
    let proj = env.home.join("work/proj");
    std::fs::create_dir_all(&proj).unwrap();
    (env, proj)
}

fn json_in(env: &TestEnv, dir: &Path, args: &[&str], extra: &[(&str, &str)]) -> Value {
    let out = env.client(args).current_dir(dir).envs(extra.iter().copied()).output().unwrap();
    assert!(out.status.code().is_some_and(|c| c <= 1), "{}", describe(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", describe(&out)))
}

fn codes(findings: &Value) -> Vec<String> {
    findings.as_array().unwrap().iter().map(|f| f["code"].as_str().unwrap().to_owned()).collect()
}

fn user_settings(env: &TestEnv, text: &str) {
    write(&env.home.join(".qwen/settings.json"), text);
}

#[test]
fn explain_names_every_source_and_what_it_shadows() {
    let (env, proj) = project();
    user_settings(
        &env,
        &format!(
            r#"{{
  // the user's providers
  "modelProviders": {{ "openai": [ {{ "id": "user-model", "envKey": "DASHSCOPE_API_KEY", "baseUrl": "{INTL}" }} ] }},
  "security": {{ "auth": {{ "selectedType": "openai" }} }},
  "model": {{ "name": "user-model" }}
}}"#
        ),
    );
    // The workspace replaces the user's openai list and picks its own model.
    write(
        &proj.join(".qwen/settings.json"),
        &format!(
            r#"{{ "modelProviders": {{ "openai": [ {{ "id": "ws-model", "envKey": "WS_API_KEY", "baseUrl": "{BEIJING}" }} ] }},
   "model": {{ "name": "ws-model" }} }}"#
        ),
    );
    write(&proj.join(".env"), "WS_API_KEY=sk-project0000000000000001\n");
    write(&env.home.join(".env"), "WS_API_KEY=sk-homefile000000000000002\n");
    let sub = proj.join("src/deep");
    std::fs::create_dir_all(&sub).unwrap();

    // From the project root: workspace settings apply; the key comes from the project .env.
    // An exported empty WS_API_KEY counts as unset.
    let j = json_in(&env, &proj, &["explain", "--as-is", "--json"], &[("WS_API_KEY", "")]);
    assert_eq!(j["schema"], 1);
    assert_eq!(j["tool"], "qwen-code");
    assert_eq!(j["auth_type"]["value"], "openai");
    assert_eq!(j["model"]["value"], "ws-model");
    assert!(
        j["model"]["source"].as_str().unwrap().contains("proj/.qwen/settings.json:2:"),
        "{j:#}"
    );
    assert_eq!(j["base_url"]["value"], BEIJING);
    assert_eq!(j["api_key"]["variable"], "WS_API_KEY");
    assert_eq!(j["api_key"]["fingerprint"], fingerprint("sk-project0000000000000001"));
    assert!(j["api_key"]["source"].as_str().unwrap().contains("proj/.env:1"), "{j:#}");
    let shadowed = j["api_key"]["shadowed"].to_string();
    assert!(shadowed.contains(&fingerprint("sk-homefile000000000000002")), "{j:#}");
    let found = codes(&j["findings"]);
    assert!(found.contains(&"workspace-shadows-providers".to_owned()), "{found:?}");
    assert!(found.contains(&"empty-env-var".to_owned()), "{found:?}");
    assert!(!j.to_string().contains("sk-project0000000000000001"), "a secret leaked into JSON");

    // From a subdirectory: the workspace file is not walked up, but the .env walk-up is.
    let j = json_in(&env, &sub, &["explain", "--as-is", "--json"], &[]);
    assert_eq!(j["model"]["value"], "user-model");
    assert_eq!(j["base_url"]["value"], INTL);
    assert_eq!(j["api_key"]["variable"], "DASHSCOPE_API_KEY");
    assert_eq!(j["api_key"]["fingerprint"], Value::Null);
    assert!(codes(&j["findings"]).contains(&"envkey-unset".to_owned()), "{j:#}");

    // A stale export beats every file, and explain says so.
    let j = json_in(
        &env,
        &proj,
        &["explain", "--as-is", "--json"],
        &[("WS_API_KEY", "sk-exported00000000000003")],
    );
    assert_eq!(j["api_key"]["fingerprint"], fingerprint("sk-exported00000000000003"));
    assert_eq!(j["api_key"]["source"], "env WS_API_KEY");
    assert!(
        j["api_key"]["shadowed"].to_string().contains(&fingerprint("sk-project0000000000000001"))
    );

    // Human output: masked values and sources, no escape codes when not on a terminal.
    let out = env.client(&["explain", "--as-is"]).current_dir(&proj).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("ws-model") && text.contains("sk-…0001") && text.contains("← "),
        "{text}"
    );
    assert!(!text.contains('\x1b') && !text.contains("sk-project0000000000000001"), "{text}");
}

#[test]
fn explain_reports_variables_and_cli_flags() {
    let (env, proj) = project();
    write(
        &proj.join(".env"),
        "OPENAI_API_BASE=https://example.invalid/v1\nOPENAI_MODEL=qwen-plus\n",
    );
    let j = json_in(
        &env,
        &proj,
        &[
            "explain",
            "--as-is",
            "--json",
            "OPENAI_MODEL",
            "OPENAI_API_BASE",
            "--",
            "qwen",
            "--auth-type",
            "openai",
            "--model",
            "flag-model",
            "--openai-base-url",
            BEIJING,
        ],
        &[("OPENAI_API_KEY", "sk-exported00000000000003")],
    );
    assert_eq!(j["model"]["value"], "flag-model");
    assert_eq!(j["model"]["source"], "flag --model");
    assert_eq!(j["base_url"]["value"], BEIJING);
    assert_eq!(j["base_url"]["source"], "flag --openai-base-url");
    assert_eq!(j["auth_type"]["source"], "flag --auth-type");
    assert_eq!(j["variables"]["OPENAI_MODEL"]["value"], "qwen-plus");
    assert!(codes(&j["findings"]).contains(&"unread-variable".to_owned()), "{j:#}");
}

#[test]
fn doctor_exits_1_on_errors_and_is_quiet_on_a_clean_setup() {
    let (env, proj) = project();
    // A key pasted into envKey and a provider under a non-protocol key.
    user_settings(
        &env,
        r#"{ "modelProviders": { "openai": [ { "id": "m", "envKey": "sk-0123456789abcdef0123", "baseUrl": "https://dashscope.aliyuncs.com/compatible-mode/v1/chat/completions" } ],
                                 "dashscope": [ { "id": "d" } ] },
             "security": { "auth": { "selectedType": "openai" } }, "model": { "name": "m" } }"#,
    );
    let out = env.client(&["doctor", "--json"]).current_dir(&proj).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    let found = codes(&j["findings"]);
    for code in ["envkey-holds-secret", "unknown-provider-protocol", "base-url-path-suffix"] {
        assert!(found.contains(&code.to_owned()), "{code} missing from {found:?}");
    }
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("sk-0123456789abcdef0123"),
        "secret echoed"
    );
    for f in j["findings"].as_array().unwrap() {
        assert!(
            !f["fix"].as_str().unwrap().is_empty() && !f["message"].as_str().unwrap().is_empty()
        );
    }
    let located = j["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "envkey-holds-secret")
        .unwrap();
    assert!(located["location"].as_str().unwrap().contains(".qwen/settings.json:1:"), "{located}");

    // Human output lists each problem with its fix.
    let out = env.client(&["doctor"]).current_dir(&proj).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("error[envkey-holds-secret]") && text.contains("fix:"), "{text}");

    // Clean: a provider whose key is in the keychain.
    user_settings(
        &env,
        &format!(
            r#"{{ "modelProviders": {{ "openai": [ {{ "id": "qwen3-coder-plus", "envKey": "DASHSCOPE_API_KEY", "baseUrl": "{INTL}" }} ] }},
                 "security": {{ "auth": {{ "selectedType": "openai" }} }}, "model": {{ "name": "qwen3-coder-plus" }} }}"#
        ),
    );
    env.set_key("DASHSCOPE_API_KEY", "sk-keychain000000000000004");
    let out = env.client(&["doctor", "--json"]).current_dir(&proj).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    let loud: Vec<_> =
        j["findings"].as_array().unwrap().iter().filter(|f| f["severity"] != "info").collect();
    assert!(loud.is_empty(), "a clean setup has findings: {loud:?}");
}

#[test]
fn run_injects_exactly_the_key_the_resolution_reads() {
    let (env, proj) = project();
    user_settings(
        &env,
        &format!(
            r#"{{ "modelProviders": {{ "openai": [ {{ "id": "qwen3-coder-plus", "envKey": "DASHSCOPE_API_KEY", "baseUrl": "{INTL}" }} ] }},
                 "security": {{ "auth": {{ "selectedType": "openai" }} }}, "model": {{ "name": "qwen3-coder-plus" }} }}"#
        ),
    );
    env.set_key("DASHSCOPE_API_KEY", "sk-keychain000000000000004");
    env.set_key("OPENROUTER_API_KEY", "sk-or-v1-unrelated00000000005");
    let out = env
        .client(&["run", "--", "qwen", "-p", "hi"])
        .current_dir(&proj)
        .env("DASHSCOPE_API_KEY", "sk-stale0000000000000000006")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("args=-p hi\n"), "{stdout}");
    assert!(stdout.contains("DASHSCOPE_API_KEY=sk-keychain000000000000004"), "{stdout}");
    assert!(stdout.contains("OPENROUTER_API_KEY=<unset>"), "unrelated secret injected: {stdout}");
    assert!(stdout.contains("QWEN_ENV=1"), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&fingerprint("sk-stale0000000000000000006")), "{stderr}");
    assert!(stderr.contains(&fingerprint("sk-keychain000000000000004")), "{stderr}");
    assert!(
        !stderr.contains("sk-stale0000000000000000006")
            && !stderr.contains("sk-keychain000000000000004")
    );

    // All well: run says nothing at all.
    let out = env.client(&["run", "--", "qwen"]).current_dir(&proj).output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "run should be quiet when all is well");

    // The prediction and the injection agree: explain (not --as-is) shows the keychain's key.
    let j = json_in(
        &env,
        &proj,
        &["explain", "--json"],
        &[("DASHSCOPE_API_KEY", "sk-stale0000000000000000006")],
    );
    assert_eq!(j["api_key"]["fingerprint"], fingerprint("sk-keychain000000000000004"));
    assert_eq!(j["api_key"]["source"], "keychain DASHSCOPE_API_KEY");
}

#[test]
fn run_strict_refuses_on_errors_and_bare_hands_over_the_triple() {
    let (env, proj) = project();
    // No auth type at all: an error.
    let out = env.client(&["run", "--strict", "--", "qwen"]).current_dir(&proj).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stdout).is_empty(), "the child ran under --strict");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("error[no-auth-type]"),
        "{}",
        describe(&out)
    );
    // Without --strict the child runs, after the error is shown.
    let out = env.client(&["run", "--", "qwen"]).current_dir(&proj).output().unwrap();
    assert!(out.status.success() && String::from_utf8_lossy(&out.stderr).contains("no-auth-type"));

    user_settings(
        &env,
        &format!(
            r#"{{ "modelProviders": {{ "openai": [ {{ "id": "qwen3-coder-plus", "envKey": "DASHSCOPE_API_KEY", "baseUrl": "{INTL}" }} ] }},
                 "security": {{ "auth": {{ "selectedType": "openai" }} }}, "model": {{ "name": "qwen3-coder-plus" }} }}"#
        ),
    );
    env.set_key("DASHSCOPE_API_KEY", "sk-keychain000000000000004");
    let out = env
        .client(&["run", "--bare", "--", "qwen", "-p", "hi"])
        .current_dir(&proj)
        .env("OPENAI_ORG_ID", "org-123")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("args=--bare -p hi\n"), "{stdout}");
    assert!(stdout.contains("OPENAI_API_KEY=sk-keychain000000000000004"), "{stdout}");
    assert!(stdout.contains(&format!("OPENAI_BASE_URL={INTL}")), "{stdout}");
    assert!(stdout.contains("OPENAI_MODEL=qwen3-coder-plus"), "{stdout}");
    assert!(stdout.contains("OPENAI_ORG_ID=<unset>"), "{stdout}");

    // The user's own --bare is neither duplicated nor allowed to hide the configuration.
    let out = env
        .client(&["run", "--bare", "--", "qwen", "--bare", "-p", "hi"])
        .current_dir(&proj)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("args=--bare -p hi\n"), "{stdout}");
    assert!(stdout.contains("OPENAI_API_KEY=sk-keychain000000000000004"), "{stdout}");
}

#[test]
fn run_openclaw_injects_its_key_variable() {
    let (env, proj) = project();
    write(
        &env.home.join(".openclaw/openclaw.json"),
        "// JSON5\n{ models: { providers: { qwen: { baseUrl: 'https://dashscope-intl.aliyuncs.com/compatible-mode/v1', }, }, }, }\n",
    );
    env.set_key("QWEN_API_KEY", "sk-openclaw00000000000000007");
    env.set_key("DASHSCOPE_API_KEY", "sk-keychain000000000000004");
    let out = env.client(&["run", "--", "openclaw", "agent"]).current_dir(&proj).output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("QWEN_API_KEY=sk-openclaw00000000000000007"), "{stdout}");
    assert!(stdout.contains("DASHSCOPE_API_KEY=<unset>"), "{stdout}");
    let j = json_in(&env, &proj, &["explain", "--json", "--", "openclaw"], &[]);
    assert_eq!(j["tool"], "openclaw");
    assert_eq!(j["api_key"]["fingerprint"], fingerprint("sk-openclaw00000000000000007"));
    assert!(!j.to_string().contains("openclaw-include"), "{j:#}");
}

/// OpenClaw's `$include` is followed, at any depth and in either form (one file or a list),
/// and what an included file sets is shown at its own location.
#[test]
fn an_openclaw_include_is_followed() {
    let (env, proj) = project();
    let config = env.home.join(".openclaw/openclaw.json");
    write(
        &env.home.join(".openclaw/models.json5"),
        "{ providers: { qwen: { api: 'openai-responses' } } }\n",
    );
    for text in [
        "{ $include: './models-root.json5', agents: { defaults: { model: 'qwen/qwen3-coder-plus' } } }\n",
        "{ models: { '$include': ['./models.json5'] } }\n",
    ] {
        write(
            &env.home.join(".openclaw/models-root.json5"),
            "{ models: { $include: './models.json5' } }\n",
        );
        write(&config, text);
        let j = json_in(&env, &proj, &["doctor", "--json", "--", "openclaw"], &[]);
        assert!(!codes(&j["findings"]).iter().any(|c| c == "openclaw-include"), "{j:#}");
        let j = json_in(&env, &proj, &["explain", "--as-is", "--json", "--", "openclaw"], &[]);
        assert_eq!(j["auth_type"]["value"], "openai-responses", "{text}: {j:#}");
        assert!(j["auth_type"]["source"].as_str().unwrap().contains("models.json5"), "{j:#}");
    }
}

#[test]
fn a_malformed_settings_file_is_a_finding_with_a_position() {
    let (env, proj) = project();
    write(&proj.join(".qwen/settings.json"), "{\n  \"model\": { \"name\": \"x\", }\n}\n");
    let before = std::fs::read(proj.join(".qwen/settings.json")).unwrap();
    let j = json_in(&env, &proj, &["doctor", "--json"], &[]);
    let f = j["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "config-parse-error")
        .cloned();
    let f = f.unwrap_or_else(|| panic!("no config-parse-error: {j:#}"));
    assert!(f["location"].as_str().unwrap().contains(".qwen/settings.json:2:"), "{f}");
    // Nothing of the user's is modified, and the daemon keeps serving.
    assert_eq!(std::fs::read(proj.join(".qwen/settings.json")).unwrap(), before);
    env.ok(&["status"]);
}

#[test]
fn a_family_in_config_toml_changes_what_the_static_rules_say() {
    let (env, proj) = project();
    let gateway = "https://llm-gateway.corp.example/plan/v1";
    user_settings(
        &env,
        &format!(
            r#"{{ "modelProviders": {{ "openai": [ {{ "id": "m", "envKey": "DASHSCOPE_API_KEY", "baseUrl": "{gateway}" }} ] }},
                 "security": {{ "auth": {{ "selectedType": "openai" }} }}, "model": {{ "name": "m" }} }}"#
        ),
    );
    let key = ("DASHSCOPE_API_KEY", "sk-0123456789abcdef0123456789abcdef");
    let doctor = |args: &[&str]| json_in(&env, &proj, args, &[key]);
    let mismatch = "key-endpoint-class-mismatch".to_owned();
    let before = doctor(&["doctor", "--json"]);
    assert!(!codes(&before["findings"]).contains(&mismatch), "{before:#}");
    env.write_config(&format!(
        "[[family]]\nid = \"corp-plan\"\nname = \"Corp coding plan\"\nkey_prefixes = [\"sk-sp-\"]\nclass = \"plan\"\n[[family.endpoint]]\nregion = \"corp\"\nbase_url = \"{gateway}\"\n"
    ));
    let after = doctor(&["doctor", "--json"]);
    let f = after["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "key-endpoint-class-mismatch")
        .unwrap_or_else(|| panic!("the config's family is not used: {after:#}"));
    assert!(f["message"].as_str().unwrap().contains("Corp coding plan"), "{f:#}");
    assert!(!after.to_string().contains(key.1), "secret echoed");
    // explain --json reports the same finding, and OpenClaw's rules use the same catalogue.
    let explained = doctor(&["explain", "--json"]);
    assert!(codes(&explained["findings"]).contains(&mismatch), "{explained:#}");
    write(
        &env.home.join(".openclaw/openclaw.json"),
        &format!("{{ models: {{ providers: {{ qwen: {{ baseUrl: '{gateway}' }} }} }} }}"),
    );
    let oc =
        json_in(&env, &proj, &["doctor", "--json", "--", "openclaw"], &[("QWEN_API_KEY", key.1)]);
    assert!(codes(&oc["findings"]).contains(&mismatch), "{oc:#}");
}
