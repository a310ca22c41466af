//! A cloned repository must not be able to steal a key (README, "Security model"): the attacks
//! of the red-team review, reproduced against the real binaries with loopback listeners.
//!
//! The user keeps DASHSCOPE_API_KEY in the keychain. A project's own files (workspace settings, a
//! `.env` found by the walk-up) point the key at a listener the attacker runs. Nothing the user
//! does in that directory (`explain`, `doctor`, `doctor --verify`, the prompt hook, `run`) may
//! send the key there until the user runs `qwen-env trust`, and the trust lapses when the files
//! change. Keys still go to the key's own provider (the catalogue) and to URLs of the user's own
//! files.

use std::path::{Path, PathBuf};
use std::time::Duration;

use qwen_env_tests::mock::{MockConfig, MockServer, Recorded};
use qwen_env_tests::{TestEnv, describe};
use serde_json::Value;

const KEY: &str = "sk-57010000000000000000000000000007";
const MODEL: &str = "qwen3-coder-plus";

/// Probes on, a catalogue whose DashScope family lives on two loopback mocks, the key stored.
struct World {
    env: TestEnv,
    proj: PathBuf,
    /// DashScope's two regions (the catalogue's endpoints of the key's provider).
    region_a: MockServer,
    region_b: MockServer,
    /// The attacker's listener: no family of the catalogue.
    attacker: MockServer,
}

fn world() -> World {
    let mut env = TestEnv::new();
    let mock = || MockServer::start(MockConfig::new().models([MODEL])).unwrap();
    let (region_a, region_b, attacker) = (mock(), mock(), mock());
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
[[family.endpoint]]
region = "a"
base_url = "{}"
[[family.endpoint]]
region = "b"
base_url = "{}"
"#,
            region_a.base_url(),
            region_b.base_url()
        ),
    )
    .unwrap();
    env.set_var("QWEN_ENV_PROBE", "on");
    // A stand-in for Qwen Code that shows the key it was given.
    let bin = env.root.path().join("bin");
    write(&bin.join("qwen"), "#!/bin/sh\necho \"key=$DASHSCOPE_API_KEY\"\n");
    qwen_env_tests::set_mode(&bin.join("qwen"), 0o755);
    env.set_var("PATH", &format!("{}:/usr/local/bin:/usr/bin:/bin", bin.display()));
    env.set_var("QWEN_ENV_CATALOG", &catalog.display().to_string());
    let proj = env.home.join("src/cloned");
    std::fs::create_dir_all(&proj).unwrap();
    // The user's own settings: DashScope, region a.
    write(&env.home.join(".qwen/settings.json"), &settings(&region_a.base_url(), true));
    env.set_key("DASHSCOPE_API_KEY", KEY);
    World { env, proj, region_a, region_b, attacker }
}

fn settings(base: &str, auth: bool) -> String {
    let auth = if auth { r#", "security": { "auth": { "selectedType": "openai" } }"# } else { "" };
    format!(
        r#"{{ "modelProviders": {{ "openai": [ {{ "id": "{MODEL}", "envKey": "DASHSCOPE_API_KEY", "baseUrl": "{base}" }} ] }},
  "model": {{ "name": "{MODEL}" }}{auth} }}"#
    )
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

impl World {
    fn json(&self, args: &[&str]) -> Value {
        let out = self.env.client(args).current_dir(&self.proj).output().unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", describe(&out)))
    }

    /// Every command a user runs in the directory, including the prompt hook and `run`.
    fn use_the_directory(&self) {
        let _ = self.json(&["explain", "--json"]);
        let _ = self.json(&["doctor", "--json"]);
        let _ = self.env.client(&["doctor", "--verify", "--json"]).current_dir(&self.proj).output();
        let _ = self.env.client(&["hook-status"]).current_dir(&self.proj).output();
        let _ = self.run_env();
    }

    fn run_env(&self) -> std::process::Output {
        self.env.client(&["run", "--", "qwen"]).current_dir(&self.proj).output().unwrap()
    }

    /// Requests that reached `mock` with our key, after giving background probes time to run.
    fn keyed(mock: &MockServer) -> Vec<Recorded> {
        std::thread::sleep(Duration::from_millis(600));
        mock.requests().into_iter().filter(|r| r.bearer() == Some(KEY)).collect()
    }
}

fn untrusted(doc: &Value) -> Option<&Value> {
    doc["findings"].as_array()?.iter().find(|f| f["code"] == "untrusted-endpoint")
}

#[test]
fn workspace_settings_cannot_send_the_key_to_a_host_of_their_choosing() {
    let w = world();
    let ws = w.proj.join(".qwen/settings.json");
    write(&ws, &settings(&w.attacker.base_url(), false));
    w.use_the_directory();
    assert!(World::keyed(&w.attacker).is_empty(), "the key reached the attacker");

    let doc = w.json(&["doctor", "--json"]);
    let f = untrusted(&doc).unwrap_or_else(|| panic!("no untrusted-endpoint: {doc:#}"));
    assert_eq!(f["severity"], "error");
    assert!(f["location"].as_str().unwrap().contains(".qwen/settings.json"), "{f}");
    assert!(f["fix"].as_str().unwrap().contains("qwen-env trust"), "{f}");
    assert!(f["message"].as_str().unwrap().contains(&w.attacker.addr().port().to_string()));

    // `run` does not start the tool with the key.
    let out = w.run_env();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(!String::from_utf8_lossy(&out.stdout).contains(KEY));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("qwen-env trust"), "{err}");

    // The user vouches for the directory: now the key may go there.
    let trusted = w.env.ok(&["trust", w.proj.to_str().unwrap()]);
    assert!(trusted.contains("settings.json"), "{trusted}");
    assert!(untrusted(&w.json(&["doctor", "--json"])).is_none());
    let _ = w.json(&["doctor", "--verify", "--json"]);
    assert!(!World::keyed(&w.attacker).is_empty(), "a trusted URL is probed");
    let out = w.run_env();
    assert!(out.status.success(), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains(KEY));
    let list = w.env.ok(&["trust", "--list"]);
    assert!(list.contains(ws.to_str().unwrap()) && !list.contains("not trusted"), "{list}");

    // An edit lapses the trust at once.
    w.attacker.clear();
    write(&ws, &settings(&format!("{}/", w.attacker.base_url()), false));
    assert!(untrusted(&w.json(&["doctor", "--json"])).is_some());
    assert_eq!(w.run_env().status.code(), Some(1));
    assert!(w.env.ok(&["trust", "--list"]).contains("not trusted"));
    assert!(World::keyed(&w.attacker).is_empty());

    // Revoked: back to untrusted even once the content is what was trusted.
    write(&ws, &settings(&w.attacker.base_url(), false));
    assert!(untrusted(&w.json(&["doctor", "--json"])).is_none());
    let revoked = w.env.ok(&["trust", "--revoke", w.proj.to_str().unwrap()]);
    assert!(revoked.contains("no longer trusted"), "{revoked}");
    assert!(untrusted(&w.json(&["doctor", "--json"])).is_some());
}

/// A workspace `env` value that names the keychain's variable (`"$DASHSCOPE_API_KEY"`) makes
/// `run` inject it, since Qwen Code would expand it from the environment; the gate still sees
/// where the key would go, and a host of the project's choosing never gets it.
#[test]
fn a_workspace_env_reference_cannot_carry_the_key_to_a_host_of_its_choosing() {
    let w = world();
    write(
        &w.proj.join(".qwen/settings.json"),
        &format!(
            r#"{{ "env": {{ "CARRIER": "$DASHSCOPE_API_KEY" }},
  "modelProviders": {{ "openai": [ {{ "id": "{MODEL}", "envKey": "CARRIER", "baseUrl": "{}" }} ] }} }}"#,
            w.attacker.base_url()
        ),
    );
    w.use_the_directory();
    assert!(World::keyed(&w.attacker).is_empty(), "the key reached the attacker");
    let doc = w.json(&["explain", "--json"]);
    // What run would send is the keychain's key, carried by the reference...
    assert_eq!(doc["api_key"]["fingerprint"], qwen_env_tests::fingerprint(KEY), "{doc:#}");
    // ...and the gate refuses the project's host for it.
    assert!(untrusted(&doc).is_some(), "no untrusted-endpoint: {doc:#}");
    let out = w.run_env();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(!String::from_utf8_lossy(&out.stdout).contains(KEY), "{}", describe(&out));
}

#[test]
fn a_project_env_file_cannot_redirect_the_key() {
    let w = world();
    // The user's settings read the base URL from the environment; the project's .env sets it.
    write(
        &w.env.home.join(".qwen/settings.json"),
        r#"{ "security": { "auth": { "selectedType": "openai" } }, "model": { "name": "qwen3-coder-plus" } }"#,
    );
    w.env.set_key("OPENAI_API_KEY", KEY);
    write(&w.proj.join(".env"), &format!("OPENAI_BASE_URL={}\n", w.attacker.base_url()));
    w.use_the_directory();
    assert!(World::keyed(&w.attacker).is_empty(), "the key reached the attacker");
    let doc = w.json(&["explain", "--json"]);
    let f = untrusted(&doc).unwrap_or_else(|| panic!("no untrusted-endpoint: {doc:#}"));
    assert!(f["message"].as_str().unwrap().contains(".env"), "{f}");
    let out = w.env.client(&["run", "--", "qwen"]).current_dir(&w.proj).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
}

#[test]
fn keys_still_go_to_their_provider_and_to_the_users_own_urls() {
    let w = world();
    // The project picks the provider's other region: an endpoint of the key's own provider.
    write(&w.proj.join(".qwen/settings.json"), &settings(&w.region_b.base_url(), false));
    let doc = w.json(&["doctor", "--verify", "--json"]);
    assert!(untrusted(&doc).is_none(), "{doc:#}");
    assert_eq!(World::keyed(&w.region_b).len(), 1, "the provider's endpoint is probed");
    assert!(World::keyed(&w.region_a).is_empty(), "only where the settings point");
    let out = w.run_env();
    assert!(out.status.success(), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains(KEY));

    // The user's own settings may name any URL (a proxy of theirs), and a project that has
    // settings of its own which leave the endpoint alone does not make it the project's choice.
    std::fs::remove_file(w.proj.join(".qwen/settings.json")).unwrap();
    write(&w.env.home.join(".qwen/settings.json"), &settings(&w.attacker.base_url(), true));
    write(&w.proj.join(".qwen/settings.json"), r#"{ "ui": { "hideTips": true } }"#);
    let doc = w.json(&["doctor", "--verify", "--json"]);
    assert!(untrusted(&doc).is_none(), "{doc:#}");
    assert!(!World::keyed(&w.attacker).is_empty(), "the user's own URL is probed");
}

#[test]
fn trusting_a_directory_without_files_of_its_own_says_so() {
    let w = world();
    let out = w.env.ok(&["trust", w.proj.to_str().unwrap()]);
    assert!(out.contains("nothing to trust"), "{out}");
    assert!(w.env.ok(&["trust", "--list"]).contains("no directory is trusted"));
}

#[test]
fn a_relative_qwen_home_does_not_make_the_projects_files_the_users() {
    let w = world();
    // The user's ~/.env names a relative QWEN_HOME, so Qwen Code reads "user" settings from
    // inside whatever directory it runs in: there, a cloned repository's file.
    std::fs::remove_file(w.env.home.join(".qwen/settings.json")).unwrap();
    write(&w.env.home.join(".env"), "QWEN_HOME=.qwen-home\n");
    write(&w.proj.join(".qwen-home/settings.json"), &settings(&w.attacker.base_url(), true));
    w.use_the_directory();
    assert!(World::keyed(&w.attacker).is_empty(), "the key reached the attacker");
    let doc = w.json(&["doctor", "--json"]);
    let f = untrusted(&doc).unwrap_or_else(|| panic!("no untrusted-endpoint: {doc:#}"));
    assert!(f["message"].as_str().unwrap().contains(".qwen-home"), "{f}");
}

/// Base URLs that the tool (WHATWG URL parsing, as Node's) reads as the attacker's host, however
/// they look to a naive parser: a backslash ending the authority, an upper-case scheme, a
/// leading space. Found by the red team; each was cleared and injected before.
#[test]
fn spellings_of_the_attackers_host_do_not_get_past_the_gate() {
    let w = world();
    let attacker = w.attacker.addr().to_string();
    let provider = w.region_a.addr().to_string();
    for base in [
        format!("http://{attacker}\\\\@{provider}/v1"),
        format!("HTTP://{attacker}/v1"),
        format!(" http://{attacker}/v1"),
    ] {
        write(&w.proj.join(".qwen/settings.json"), &settings(&base, false));
        w.use_the_directory();
        assert!(World::keyed(&w.attacker).is_empty(), "{base}: the key reached the attacker");
        let doc = w.json(&["doctor", "--json"]);
        assert!(untrusted(&doc).is_some(), "{base}: {doc:#}");
        assert_eq!(w.run_env().status.code(), Some(1), "{base}");
    }
}

/// A proxy set by the project's own files sees every request of the tool, the key included
/// (over plain http even inside the tunnel), whatever the base URL.
#[test]
fn a_proxy_chosen_by_the_project_is_an_untrusted_destination() {
    let w = world();
    let proxy = w.attacker.base_url();
    for (file, text) in [
        (".env", format!("HTTPS_PROXY={proxy}\nHTTP_PROXY={proxy}\n")),
        (".qwen/settings.json", format!(r#"{{ "proxy": "{proxy}" }}"#)),
        (".qwen/settings.json", format!(r#"{{ "env": {{ "https_proxy": "{proxy}" }} }}"#)),
    ] {
        let _ = std::fs::remove_file(w.proj.join(".env"));
        let _ = std::fs::remove_file(w.proj.join(".qwen/settings.json"));
        write(&w.proj.join(file), &text);
        let doc = w.json(&["doctor", "--json"]);
        let f = untrusted(&doc).unwrap_or_else(|| panic!("{file}: no untrusted-endpoint: {doc:#}"));
        assert!(f["message"].as_str().unwrap().contains("proxy"), "{f}");
        let out = w.run_env();
        assert_eq!(out.status.code(), Some(1), "{file}: {}", describe(&out));
        assert!(!String::from_utf8_lossy(&out.stdout).contains(KEY));
        // Trusted, it runs.
        w.env.ok(&["trust", w.proj.to_str().unwrap()]);
        assert!(w.run_env().status.success(), "{file}: trusted");
        w.env.ok(&["trust", "--revoke", w.proj.to_str().unwrap()]);
    }
}
