//! Seed 000's OpenRouter set-up half done, caught with probes off (static findings): an
//! `sk-or-v1-` key going to OpenAI's default base URL or another provider's, and an OpenRouter
//! model id (`qwen/qwen3-coder:free`) sent to an endpoint that has no such ids. The key may be
//! exported or in the keychain: the daemon runs the key rules on keychain keys too.

use qwen_env_tests::{TestEnv, describe};
use serde_json::Value;

const OR_KEY: &str = "sk-or-v1-0000000000000000000000000000000000000000000000000000000000f00d";
const DS_KEY: &str = "sk-0123456789abcdef0123456789abcdef";
const INTL: &str = "https://dashscope-intl.aliyuncs.com/compatible-mode/v1";
const ROUTER: &str = "https://openrouter.ai/api/v1";
const OR_MODEL: &str = "qwen/qwen3-coder:free";

fn env_with_auth() -> TestEnv {
    let env = TestEnv::new();
    let dir = env.home.join(".qwen");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("settings.json"),
        r#"{ "security": { "auth": { "selectedType": "openai" } } }"#,
    )
    .unwrap();
    env
}

/// `doctor --json` with these exported variables: its exit code and findings.
fn doctor(env: &TestEnv, vars: &[(&str, &str)]) -> (Option<i32>, Vec<Value>) {
    let out = env.client(&["doctor", "--json"]).envs(vars.iter().copied()).output().unwrap();
    let doc: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", describe(&out)));
    assert!(!doc.to_string().contains(&OR_KEY[12..]), "the key was printed: {doc:#}");
    (out.status.code(), doc["findings"].as_array().unwrap().clone())
}

fn codes(f: &[Value]) -> Vec<&str> {
    f.iter().map(|x| x["code"].as_str().unwrap()).collect()
}

#[test]
fn an_openrouter_key_and_model_on_the_default_openai_url() {
    let env = env_with_auth();
    let (code, f) = doctor(&env, &[("OPENAI_API_KEY", OR_KEY), ("OPENAI_MODEL", OR_MODEL)]);
    assert_eq!(code, Some(1), "{f:#?}");
    assert_eq!(codes(&f).first(), Some(&"base-url-default-openai"), "{f:#?}");
    assert!(f[0]["fix"].as_str().unwrap().contains(ROUTER), "{f:#?}");
    // The model id is the same cause (no OpenRouter base URL), said inside it, not again.
    assert!(!codes(&f).contains(&"openrouter-model-elsewhere"), "{f:#?}");
    assert!(f[0]["message"].as_str().unwrap().contains("openrouter-model-elsewhere"), "{f:#?}");

    // The same with the key in the keychain, which the resolver never reads: the daemon does.
    env.set_key("OPENAI_API_KEY", OR_KEY);
    let (code, f) = doctor(&env, &[("OPENAI_MODEL", OR_MODEL)]);
    assert_eq!(code, Some(1), "{f:#?}");
    assert!(codes(&f).contains(&"base-url-default-openai"), "{f:#?}");
    assert_eq!(codes(&f).iter().filter(|c| **c == "base-url-default-openai").count(), 1);

    // Done right: nothing about the key, the URL or the model.
    let (_, f) = doctor(&env, &[("OPENAI_MODEL", OR_MODEL), ("OPENAI_BASE_URL", ROUTER)]);
    for c in ["base-url-default-openai", "openrouter-base-url", "openrouter-model-elsewhere"] {
        assert!(!codes(&f).contains(&c), "{c} on a correct OpenRouter set-up: {f:#?}");
    }
}

#[test]
fn an_openrouter_key_on_another_providers_url_is_one_finding() {
    let env = env_with_auth();
    let (code, f) = doctor(
        &env,
        &[
            ("OPENAI_API_KEY", OR_KEY),
            ("OPENAI_BASE_URL", INTL),
            ("OPENAI_MODEL", "qwen3-coder-plus"),
        ],
    );
    assert_eq!(code, Some(1), "{f:#?}");
    let c = codes(&f);
    assert_eq!(c.iter().filter(|c| **c == "openrouter-base-url").count(), 1, "{f:#?}");
    assert!(!c.contains(&"key-endpoint-class-mismatch"), "the same fact twice: {f:#?}");
}

#[test]
fn an_openrouter_model_id_on_model_studio() {
    let env = env_with_auth();
    env.set_key("DASHSCOPE_API_KEY", DS_KEY);
    let vars = [("OPENAI_BASE_URL", INTL), ("OPENAI_MODEL", OR_MODEL)];
    let run = env
        .client(&["run", "--with", "DASHSCOPE_API_KEY", "--", "true"])
        .envs(vars)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", describe(&run));
    let (code, f) = doctor(&env, &[("OPENAI_API_KEY", DS_KEY), vars[0], vars[1]]);
    assert_eq!(code, Some(1), "{f:#?}");
    let m = f
        .iter()
        .find(|x| x["code"] == "openrouter-model-elsewhere")
        .unwrap_or_else(|| panic!("{f:#?}"));
    assert_eq!(m["severity"], "error");
    assert!(m["message"].as_str().unwrap().contains(OR_MODEL), "{m}");
    let fix = m["fix"].as_str().unwrap();
    assert!(fix.contains("e.g. qwen3-coder;") && fix.contains(ROUTER), "{fix}");

    // A local server's ids are its own business (vLLM serves `Qwen/Qwen3-Coder-…`).
    let (_, f) = doctor(
        &env,
        &[
            ("OPENAI_API_KEY", "local"),
            ("OPENAI_BASE_URL", "http://127.0.0.1:8000/v1"),
            ("OPENAI_MODEL", "qwen/qwen3-coder"),
        ],
    );
    assert!(!codes(&f).contains(&"openrouter-model-elsewhere"), "{f:#?}");
}
