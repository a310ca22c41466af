//! Findings read cause first: a consequence of a reported cause is folded into it (no
//! `key-missing` telling the user to store a key that is stored), no code is said twice about
//! one thing, and a repeated environment fact is one line with a count.

use qwen_env_tests::{TestEnv, describe};
use serde_json::Value;

const KEY: &str = "sk-0123456789abcdef0123c113";
const INTL: &str = "https://dashscope-intl.aliyuncs.com/compatible-mode/v1";

fn settings(env: &TestEnv, text: &str) {
    let dir = env.home.join(".qwen");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("settings.json"), text).unwrap();
}

fn doctor_json(env: &TestEnv, vars: &[(&str, &str)]) -> Vec<Value> {
    let out = env.client(&["doctor", "--json"]).envs(vars.iter().copied()).output().unwrap();
    let doc: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", describe(&out)));
    doc["findings"].as_array().unwrap().clone()
}

fn codes(findings: &[Value]) -> Vec<&str> {
    findings.iter().map(|f| f["code"].as_str().unwrap()).collect()
}

#[test]
fn an_unknown_provider_protocol_comes_first_and_carries_the_missing_key() {
    let env = TestEnv::new();
    env.set_key("DASHSCOPE_API_KEY", KEY);
    settings(
        &env,
        &format!(
            r#"{{ "modelProviders": {{ "openai-compatible": [ {{ "id": "qwen3-coder-plus", "envKey": "DASHSCOPE_API_KEY", "baseUrl": "{INTL}" }} ] }},
  "security": {{ "auth": {{ "selectedType": "openai" }} }}, "model": {{ "name": "qwen3-coder-plus" }} }}"#
        ),
    );
    let f = doctor_json(&env, &[]);
    let c = codes(&f);
    assert_eq!(c.first(), Some(&"unknown-provider-protocol"), "{f:#?}");
    assert!(!c.contains(&"key-missing"), "the consequence stands alone: {f:#?}");
    // It takes the consequence's severity (Qwen Code fails) and says why.
    assert_eq!(f[0]["severity"], "error", "{f:#?}");
    let message = f[0]["message"].as_str().unwrap();
    assert!(message.contains("because of this, key-missing: Missing API key"), "{message}");
    assert!(f[0]["fix"].as_str().unwrap().contains("providerProtocol"), "{f:#?}");
    let text = env.run(&["doctor"]);
    assert_eq!(text.status.code(), Some(1), "{}", describe(&text));
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(!stdout.contains("qwen-env key set OPENAI_API_KEY"), "the wrong fix: {stdout}");
    // `status` counts the context's findings in words: "1 error", never "1 errors".
    let status = env.ok(&["status"]);
    assert!(
        status.contains("qwen-code in") && status.contains(": 1 error, 0 warnings"),
        "{status}"
    );
}

#[test]
fn a_literal_envkey_is_the_cause_of_the_missing_local_key() {
    let env = TestEnv::new();
    settings(
        &env,
        r#"{ "modelProviders": { "openai": [ { "id": "qwen3-coder", "envKey": "sk-0123456789abcdef0123d224", "baseUrl": "http://127.0.0.1:8080/v1" } ] },
  "security": { "auth": { "selectedType": "openai" } }, "model": { "name": "qwen3-coder" } }"#,
    );
    let f = doctor_json(&env, &[]);
    let c = codes(&f);
    assert_eq!(c.first(), Some(&"envkey-holds-secret"), "{f:#?}");
    assert!(!c.contains(&"local-server-needs-key"), "{f:#?}");
    assert!(f[0]["message"].as_str().unwrap().contains("local-server-needs-key"), "{f:#?}");
    assert!(!f.iter().any(|x| x.to_string().contains("d224")), "the key was shown");
}

#[test]
fn a_stale_exported_key_is_reported_once() {
    let env = TestEnv::new();
    env.set_key("DASHSCOPE_API_KEY", KEY);
    settings(
        &env,
        &format!(
            r#"{{ "modelProviders": {{ "openai": [ {{ "id": "qwen3-coder-plus", "envKey": "DASHSCOPE_API_KEY", "baseUrl": "{INTL}" }} ] }},
  "security": {{ "auth": {{ "selectedType": "openai" }} }}, "model": {{ "name": "qwen3-coder-plus" }} }}"#
        ),
    );
    let f = doctor_json(&env, &[("DASHSCOPE_API_KEY", "sk-stale0000000000000000e335")]);
    let stale = codes(&f).iter().filter(|c| **c == "stale-env-shadows").count();
    assert_eq!(stale, 1, "{f:#?}");
}

#[test]
fn an_offline_key_set_says_unreachable_once_with_a_count() {
    let mut env = TestEnv::new();
    // Loopback ports nothing listens on: every probe is refused at once.
    let closed: Vec<u16> = (0..4)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port())
        .collect();
    let mut endpoints = String::new();
    for (i, p) in closed.iter().enumerate() {
        use std::fmt::Write as _;
        let _ = write!(
            endpoints,
            "[[family.endpoint]]\nregion = \"r{i}\"\nbase_url = \"http://127.0.0.1:{p}/compatible-mode/v1\"\n"
        );
    }
    let catalog = env.root.path().join("catalog.toml");
    std::fs::write(
        &catalog,
        format!(
            "[[family]]\nid = \"dashscope\"\nname = \"Alibaba Model Studio\"\nprovider = \"alibaba\"\n\
             key_prefixes = [\"sk-\"]\nenv_keys = [\"DASHSCOPE_API_KEY\"]\nprobe = \"models\"\n{endpoints}"
        ),
    )
    .unwrap();
    env.set_var("QWEN_ENV_PROBE", "on");
    env.set_var("QWEN_ENV_CATALOG", &catalog.display().to_string());
    let out = env.run_with_stdin(&["key", "set", "DASHSCOPE_API_KEY"], KEY);
    assert!(out.status.success(), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches("endpoint-unreachable").count(), 1, "{text}");
    assert!(text.contains("(and 3 more like it)"), "{text}");

    // Setting the same value again: "set just now", never "just now ago".
    let out = env.run_with_stdin(&["key", "set", "--no-verify", "DASHSCOPE_API_KEY"], KEY);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("(set just now)") && !text.contains("ago"), "{text}");
}

/// The machine's own fact that keyutils forgets keys at reboot is said by `doctor` (and
/// `status`), not by every `explain`; `doctor --silence CODE` leaves a code out of the report
/// and of the exit status, and says the all-clear only when nothing else is left.
#[test]
fn keychain_not_durable_is_doctors_and_silence_leaves_a_code_out() {
    let env = TestEnv::new();
    settings(
        &env,
        &format!(
            r#"{{ "modelProviders": {{ "openai": [ {{ "id": "qwen3-coder-plus", "envKey": "DASHSCOPE_API_KEY", "baseUrl": "{INTL}/chat/completions" }} ] }},
                 "security": {{ "auth": {{ "selectedType": "openai" }} }}, "model": {{ "name": "qwen3-coder-plus" }} }}"#
        ),
    );
    env.set_key("DASHSCOPE_API_KEY", KEY);
    let all = doctor_json(&env, &[]);
    assert_eq!(codes(&all), ["base-url-path-suffix", "keychain-not-durable"], "{all:?}");

    let explain = env.ok(&["explain"]);
    assert!(explain.contains("base-url-path-suffix"), "{explain}");
    assert!(!explain.contains("keychain-not-durable") && !explain.contains("reboot"), "{explain}");
    let doctor = env.run(&["doctor"]);
    let text = String::from_utf8_lossy(&doctor.stdout);
    assert!(text.contains("keychain-not-durable") && text.contains("reboot"), "{text}");

    let out = env.run(&["doctor", "--silence", "base-url-path-suffix"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("base-url-path-suffix") && text.contains("keychain-not-durable"));
    let out = env.run(&[
        "doctor",
        "--silence",
        "base-url-path-suffix",
        "--silence",
        "keychain-not-durable",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "qwen-code: no problems found\n");
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
}
