//! What probe findings say while and after the endpoint answers: plain `doctor` while the check
//! is still running says "not verified yet" instead of an all-clear, the verdict shows once the
//! background check has answered, and a 404 names the URL the check asked (loopback mocks only;
//! `QWEN_ENV_CATALOG` points the families at them).

use std::time::{Duration, Instant};

use qwen_env_tests::mock::{MockConfig, MockServer};
use qwen_env_tests::{TestEnv, describe};

const SG_KEY: &str = "sk-5a0000000000000000000000000000011";
const MODEL: &str = "qwen3-coder-plus";

#[test]
fn plain_doctor_says_not_verified_until_the_probe_answers() {
    let mut env = TestEnv::new();
    let models = || MockConfig::new().models([MODEL, "qwen-max"]);
    // Beijing rejects every key, slowly; Singapore accepts this one.
    let bj =
        MockServer::start(models().accept_key("sk-b1-other").delay(Duration::from_millis(1500)))
            .unwrap();
    let sg = MockServer::start(models().accept_key(SG_KEY)).unwrap();
    let (bj_url, sg_url) = (bj.url("/compatible-mode/v1"), sg.url("/compatible-mode/v1"));
    let catalog = env.root.path().join("catalog.toml");
    std::fs::write(
        &catalog,
        format!(
            r#"[[family]]
id = "dashscope"
name = "Alibaba Model Studio (pay-as-you-go)"
provider = "alibaba"
key_prefixes = ["sk-"]
env_keys = ["DASHSCOPE_API_KEY"]
probe = "models"
[[family.endpoint]]
region = "cn-beijing"
label = "DashScope Beijing"
base_url = "{bj_url}"
[[family.endpoint]]
region = "ap-southeast-1"
label = "DashScope Singapore"
base_url = "{sg_url}"
"#
        ),
    )
    .unwrap();
    env.set_var("QWEN_ENV_PROBE", "on");
    env.set_var("QWEN_ENV_CATALOG", &catalog.display().to_string());
    env.set_key("DASHSCOPE_API_KEY", SG_KEY);
    // The base URL broken on purpose: the Singapore key sent to Beijing.
    let settings = env.home.join(".qwen/settings.json");
    std::fs::create_dir_all(settings.parent().unwrap()).unwrap();
    std::fs::write(
        &settings,
        format!(
            r#"{{ "modelProviders": {{ "openai": [ {{ "id": "{MODEL}", "envKey": "DASHSCOPE_API_KEY", "baseUrl": "{bj_url}" }} ] }},
  "security": {{ "auth": {{ "selectedType": "openai" }} }}, "model": {{ "name": "{MODEL}" }} }}"#
        ),
    )
    .unwrap();

    // Right after the change: no verdict yet, and doctor says so rather than "no problems found".
    let out = env.run(&["doctor"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(!text.contains("no problems found"), "an all-clear while the check runs: {text}");
    assert!(text.contains("info[not-verified]"), "{text}");
    assert!(text.contains("not verified yet: checking — `qwen-env doctor --verify` to wait"));
    assert!(!text.contains("key-rejected"), "half an answer reported as the verdict: {text}");
    let json: serde_json::Value =
        serde_json::from_slice(&env.run(&["doctor", "--json"]).stdout).unwrap();
    let codes: Vec<&str> =
        json["findings"].as_array().unwrap().iter().filter_map(|f| f["code"].as_str()).collect();
    assert!(codes.contains(&"not-verified"), "{json:#}");

    // The background check answers; plain doctor then reports the verdict, and only that.
    let deadline = Instant::now() + Duration::from_secs(15);
    let settled = loop {
        let out = env.run(&["doctor"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !text.contains("not-verified") {
            break out;
        }
        assert!(Instant::now() < deadline, "the check never finished: {text}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = String::from_utf8_lossy(&settled.stdout);
    assert_eq!(settled.status.code(), Some(1), "{}", describe(&settled));
    assert!(text.contains("error[key-region-mismatch]") && text.contains(&sg_url), "{text}");
    assert!(!text.contains("not verified yet"), "{text}");

    // `doctor --verify` waits for fresh answers and agrees.
    let out = env.run(&["doctor", "--verify"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("error[key-region-mismatch]") && !text.contains("not-verified"),
        "{text}"
    );
}

/// An OpenRouter endpoint that answers the key check with 404: the finding names the URL the
/// check asked (`/api/v1/key`), the one its evidence shows, not `/models`.
#[test]
fn endpoint_not_found_names_the_url_the_check_asked() {
    let mut env = TestEnv::new();
    let router = MockServer::start(MockConfig::new().route(
        "GET",
        "/api/v1/key",
        qwen_env_tests::mock::Response::text(404, "no"),
    ))
    .unwrap();
    let base = router.url("/api/v1");
    let catalog = env.root.path().join("catalog.toml");
    std::fs::write(
        &catalog,
        format!(
            "[[family]]\nid = \"openrouter\"\nname = \"OpenRouter\"\nkey_prefixes = [\"sk-or-\"]\n\
             env_keys = [\"OPENROUTER_API_KEY\"]\nprobe = \"openrouter-key\"\nclass = \"openrouter\"\n\
             [[family.endpoint]]\nregion = \"global\"\nbase_url = \"{base}\"\n"
        ),
    )
    .unwrap();
    env.set_var("QWEN_ENV_PROBE", "on");
    env.set_var("QWEN_ENV_CATALOG", &catalog.display().to_string());
    env.set_key(
        "OPENROUTER_API_KEY",
        "sk-or-v1-00000000000000000000000000000000000000000000000000000000000a404",
    );
    let settings = env.home.join(".qwen/settings.json");
    std::fs::create_dir_all(settings.parent().unwrap()).unwrap();
    std::fs::write(
        &settings,
        format!(
            r#"{{ "modelProviders": {{ "openai": [ {{ "id": "qwen/qwen3-coder", "envKey": "OPENROUTER_API_KEY", "baseUrl": "{base}" }} ] }},
  "security": {{ "auth": {{ "selectedType": "openai" }} }}, "model": {{ "name": "qwen/qwen3-coder" }} }}"#
        ),
    )
    .unwrap();
    let out = env.run(&["doctor", "--verify", "--json"]);
    let doc: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", describe(&out)));
    let f = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "endpoint-not-found")
        .unwrap_or_else(|| panic!("{doc:#}"));
    let (message, evidence) = (f["message"].as_str().unwrap(), f["evidence"].as_str().unwrap());
    assert!(message.contains("/api/v1/key") && !message.contains("/models"), "{f:#}");
    assert!(evidence.contains("/api/v1/key"), "{f:#}");
}
