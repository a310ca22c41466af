//! Live validation end to end: `doctor --verify --json`, `key set`, `key ls` and `run` against
//! loopback mocks that play DashScope regions, the Coding and Token Plans, OpenRouter and a foreign
//! provider. `QWEN_ENV_CATALOG` points every family at the mocks, so nothing leaves 127.0.0.1.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use qwen_env_tests::mock::{MockConfig, MockServer, Recorded, Response};
use qwen_env_tests::{TestEnv, describe, output_with_stdin};
use serde_json::{Value, json};

const SG_KEY: &str = "sk-5a0000000000000000000000000000001";
const BJ_KEY: &str = "sk-b10000000000000000000000000000002";
const CP_KEY: &str = "sk-sp-c0d1ng00000000000000000000003";
const CP_AGENTS_KEY: &str = "sk-sp-c0d1ng0000000000000000000405";
const TP_KEY: &str = "sk-sp-70ken000000000000000000000004";
const OR_KEY: &str = "sk-or-v1-0000000000000000000000000005";
const OR_SPENT_KEY: &str = "sk-or-v1-0000000000000000000000000006";
const BAD_KEY: &str = "sk-dead00000000000000000000000000007";
const MODEL: &str = "qwen3-coder-plus";

/// Every provider of the test catalogue, each on its own loopback port.
struct World {
    bj: MockServer,
    sg: MockServer,
    coding: MockServer,
    token: MockServer,
    openrouter: MockServer,
    foreign: MockServer,
    /// Paths that answer 404, 429 or slowly; in no family.
    misc: MockServer,
    catalog: PathBuf,
}

fn models() -> Vec<String> {
    vec![MODEL.to_owned(), "qwen-max".to_owned()]
}

impl World {
    fn start(env: &TestEnv) -> World {
        let region = |key: &str| {
            MockServer::start(MockConfig::new().accept_key(key).models(models())).unwrap()
        };
        let coding = MockServer::start(
            MockConfig::new()
                .handler(|r: &Recorded| {
                    (r.bearer() == Some(CP_AGENTS_KEY)).then(|| {
                        Response::json(
                            405,
                            &json!({"error": "Coding Plan is currently only available for Coding Agents"}),
                        )
                    })
                })
                .accept_key(CP_KEY)
                .accept_key(CP_AGENTS_KEY)
                .models(models()),
        )
        .unwrap();
        let openrouter = MockServer::start(MockConfig::new().handler(|r: &Recorded| {
            match (r.method.as_str(), r.path.as_str()) {
                ("GET", "/api/v1/key") => Some(match r.bearer() {
                    Some(OR_KEY) => Response::json(
                        200,
                        &json!({"data": {"label": "sk-or-v1-000…005", "limit": null,
                            "limit_remaining": null, "usage": 0.5, "is_free_tier": false,
                            "rate_limit": {"requests": 200, "interval": "10s"}}}),
                    ),
                    Some(OR_SPENT_KEY) => Response::json(
                        200,
                        &json!({"data": {"label": "free", "limit": 1, "limit_remaining": 0,
                            "usage": 1, "is_free_tier": true,
                            "rate_limit": {"requests": 20, "interval": "1m"}}}),
                    ),
                    _ => Response::json(401, &json!({"error": {"message": "User not found.", "code": 401}})),
                }),
                // Public: no key needed, and none must arrive here.
                ("GET", "/api/v1/models") => Some(Response::json(
                    200,
                    &json!({"data": [
                        {"id": "qwen/qwen3-coder", "supported_parameters": ["tools", "temperature"]},
                        {"id": "some/chat-only", "supported_parameters": ["temperature"]}
                    ]}),
                )),
                _ => None,
            }
        }))
        .unwrap();
        let misc = MockServer::start(
            MockConfig::new()
                .route("GET", "/notfound/v1/models", Response::text(404, "404 page not found"))
                .route(
                    "GET",
                    "/limited/v1/models",
                    Response::openai_error(429, "Requests rate limit exceeded", "limit_requests"),
                )
                .route(
                    "GET",
                    "/slow/v1/models",
                    Response::models_list(&models()).delayed(Duration::from_secs(20)),
                ),
        )
        .unwrap();
        let w = World {
            bj: region(BJ_KEY),
            sg: region(SG_KEY),
            coding,
            token: region(TP_KEY),
            openrouter,
            foreign: MockServer::start(MockConfig::new().models(models())).unwrap(),
            misc,
            catalog: env.root.path().join("catalog.toml"),
        };
        let text = format!(
            r#"
[[family]]
id = "dashscope"
name = "Alibaba Model Studio (pay-as-you-go)"
provider = "alibaba"
key_prefixes = ["sk-"]
env_keys = ["DASHSCOPE_API_KEY"]
probe = "models"
[[family.endpoint]]
region = "cn-beijing"
label = "DashScope Beijing"
base_url = "{bj}"
[[family.endpoint]]
region = "ap-southeast-1"
label = "DashScope Singapore"
base_url = "{sg}"

[[family]]
id = "coding-plan"
name = "Alibaba Coding Plan"
provider = "alibaba"
key_prefixes = ["sk-sp-"]
env_keys = ["BAILIAN_CODING_PLAN_API_KEY"]
[[family.endpoint]]
region = "intl"
label = "Coding Plan international"
base_url = "{cp}"

[[family]]
id = "token-plan"
name = "Alibaba Token Plan"
provider = "alibaba"
key_prefixes = ["sk-sp-"]
env_keys = ["BAILIAN_TOKEN_PLAN_API_KEY"]
[[family.endpoint]]
region = "ap-southeast-1"
base_url = "{tp}"

[[family]]
id = "openrouter"
name = "OpenRouter"
key_prefixes = ["sk-or-"]
env_keys = ["OPENROUTER_API_KEY"]
probe = "openrouter-key"
[[family.endpoint]]
region = "global"
base_url = "{or}"

[[family]]
id = "foreign"
name = "Some other provider"
key_prefixes = ["sk-"]
env_keys = ["FOREIGN_API_KEY"]
[[family.endpoint]]
region = "global"
base_url = "{foreign}"
"#,
            bj = w.bj.url("/compatible-mode/v1"),
            sg = w.sg.url("/compatible-mode/v1"),
            cp = w.coding.url("/v1"),
            tp = w.token.url("/compatible-mode/v1"),
            or = w.openrouter.url("/api/v1"),
            foreign = w.foreign.url("/v1"),
        );
        std::fs::write(&w.catalog, text).unwrap();
        w
    }

    fn all(&self) -> [&MockServer; 7] {
        [&self.bj, &self.sg, &self.coding, &self.token, &self.openrouter, &self.foreign, &self.misc]
    }
}

/// An environment with probes on, the test catalogue, a project dir and a fake `qwen` on PATH.
fn setup() -> (TestEnv, World, PathBuf) {
    let mut env = TestEnv::new();
    let world = World::start(&env);
    env.set_var("QWEN_ENV_PROBE", "on");
    env.set_var("QWEN_ENV_CATALOG", &world.catalog.display().to_string());
    let bin = env.root.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(bin.join("qwen"), "#!/bin/sh\necho \"qwen ran\"\n").unwrap();
    qwen_env_tests::set_mode(&bin.join("qwen"), 0o755);
    env.set_var("PATH", &format!("{}:/usr/local/bin:/usr/bin:/bin", bin.display()));
    let proj = env.home.join("proj");
    std::fs::create_dir_all(&proj).unwrap();
    (env, world, proj)
}

/// User settings: one provider entry sending `env_key`'s value to `base` with `model`.
fn settings(env: &TestEnv, env_key: &str, base: &str, model: &str) -> PathBuf {
    let path = env.home.join(".qwen/settings.json");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(
        &path,
        format!(
            r#"{{
  "modelProviders": {{
    "openai": [
      {{ "id": "{model}", "envKey": "{env_key}", "baseUrl": "{base}" }}
    ]
  }},
  "security": {{ "auth": {{ "selectedType": "openai" }} }},
  "model": {{ "name": "{model}" }}
}}"#
        ),
    )
    .unwrap();
    path
}

fn verify(env: &TestEnv, dir: &Path) -> Value {
    let out = env.client(&["doctor", "--verify", "--json"]).current_dir(dir).output().unwrap();
    assert!(out.status.code().is_some_and(|c| c <= 1), "{}", describe(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", describe(&out)))
}

fn find<'a>(doc: &'a Value, code: &str) -> Option<&'a Value> {
    doc["findings"].as_array().unwrap().iter().find(|f| f["code"] == code)
}

fn must<'a>(doc: &'a Value, code: &str) -> &'a Value {
    find(doc, code).unwrap_or_else(|| panic!("no {code} in {doc:#}"))
}

const PROBE_CODES: [&str; 10] = [
    "key-region-mismatch",
    "key-endpoint-class-mismatch",
    "key-rejected",
    "endpoint-not-found",
    "endpoint-unreachable",
    "plan-client-rejected",
    "rate-limited",
    "model-unavailable",
    "openrouter-no-tools",
    "probe-unexpected-status",
];

fn probe_codes(doc: &Value) -> Vec<String> {
    doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_owned())
        .filter(|c| PROBE_CODES.contains(&c.as_str()))
        .collect()
}

/// No mock ever saw a key in a URL, body or header other than `Authorization`, and the evidence
/// and messages never contain it.
fn no_key_in(doc: &Value, key: &str) {
    assert!(!doc.to_string().contains(key), "the key leaked into the output: {doc:#}");
}

#[test]
fn a_valid_key_passes_and_a_missing_model_is_reported() {
    let (env, w, proj) = setup();
    env.set_key("DASHSCOPE_API_KEY", SG_KEY);
    let sg = w.sg.url("/compatible-mode/v1");
    settings(&env, "DASHSCOPE_API_KEY", &sg, MODEL);
    let doc = verify(&env, &proj);
    assert!(probe_codes(&doc).is_empty(), "{doc:#}");
    let seen = w.sg.requests();
    assert!(
        seen.iter().any(|r| r.path == "/compatible-mode/v1/models" && r.bearer() == Some(SG_KEY)),
        "{seen:?}"
    );

    settings(&env, "DASHSCOPE_API_KEY", &sg, "qwen-nonexistent");
    let doc = verify(&env, &proj);
    let f = must(&doc, "model-unavailable");
    assert_eq!(f["severity"], "error");
    assert!(f["fix"].as_str().unwrap().contains(MODEL), "{f:#}");
    assert!(f["evidence"].as_str().unwrap().contains("HTTP 200"), "{f:#}");
    no_key_in(&doc, SG_KEY);
}

#[test]
fn a_key_of_another_region_names_the_region_and_the_line_to_change() {
    let (env, w, proj) = setup();
    env.set_key("DASHSCOPE_API_KEY", SG_KEY);
    let bj = w.bj.url("/compatible-mode/v1");
    let file = settings(&env, "DASHSCOPE_API_KEY", &bj, MODEL);
    let doc = verify(&env, &proj);
    let f = must(&doc, "key-region-mismatch");
    assert_eq!(f["severity"], "error");
    let fix = f["fix"].as_str().unwrap();
    assert!(fix.contains(&w.sg.url("/compatible-mode/v1")), "{f:#}");
    // The settings line: file:line:col of the baseUrl.
    assert!(fix.contains("settings.json:4:"), "{f:#}");
    let ev = f["evidence"].as_str().unwrap();
    assert!(ev.contains("HTTP 401") && ev.contains("HTTP 200"), "{f:#}");
    assert!(f["message"].as_str().unwrap().contains("DashScope Singapore"), "{f:#}");
    assert!(file.exists());
    no_key_in(&doc, SG_KEY);
}

#[test]
fn a_plan_key_on_a_standard_endpoint_is_a_class_mismatch() {
    let (env, w, proj) = setup();
    env.set_key("DASHSCOPE_API_KEY", CP_KEY);
    settings(&env, "DASHSCOPE_API_KEY", &w.sg.url("/compatible-mode/v1"), MODEL);
    let doc = verify(&env, &proj);
    let f = must(&doc, "key-endpoint-class-mismatch");
    assert!(f["fix"].as_str().unwrap().contains(&w.coding.url("/v1")), "{f:#}");
    assert!(find(&doc, "key-region-mismatch").is_none(), "{doc:#}");
    // The Token Plan was tried too (same provider, the key fits its prefix) and said no.
    assert!(w.token.requests().iter().any(|r| r.bearer() == Some(CP_KEY)));
}

#[test]
fn a_key_no_endpoint_accepts_is_rejected() {
    let (env, w, proj) = setup();
    env.set_key("DASHSCOPE_API_KEY", BAD_KEY);
    settings(&env, "DASHSCOPE_API_KEY", &w.sg.url("/compatible-mode/v1"), MODEL);
    let doc = verify(&env, &proj);
    let f = must(&doc, "key-rejected");
    assert_eq!(f["severity"], "error");
    assert!(f["evidence"].as_str().unwrap().contains("HTTP 401"), "{f:#}");
    assert!(f["fix"].as_str().unwrap().contains("qwen-env key set DASHSCOPE_API_KEY"), "{f:#}");
    // Both regions were asked; a sk- key is not a plan key, so the plans were not.
    assert!(w.bj.requests().iter().any(|r| r.bearer() == Some(BAD_KEY)));
    assert!(w.coding.requests().is_empty() && w.token.requests().is_empty());
}

#[test]
fn wrong_path_unreachable_host_and_timeouts() {
    let (mut env, w, proj) = setup();
    env.set_key("DASHSCOPE_API_KEY", SG_KEY);
    settings(&env, "DASHSCOPE_API_KEY", &w.misc.url("/notfound/v1"), MODEL);
    let doc = verify(&env, &proj);
    let f = must(&doc, "endpoint-not-found");
    assert!(f["evidence"].as_str().unwrap().contains("HTTP 404"), "{f:#}");

    // Port 1 on loopback: nothing listens.
    settings(&env, "DASHSCOPE_API_KEY", "http://127.0.0.1:1/v1", MODEL);
    let doc = verify(&env, &proj);
    assert_eq!(must(&doc, "endpoint-unreachable")["severity"], "warning");

    // A host slower than the probe timeout.
    env.set_var("QWEN_ENV_PROBE_TIMEOUT_MS", "400");
    env.ok(&["daemon", "restart"]);
    settings(&env, "DASHSCOPE_API_KEY", &w.misc.url("/slow/v1"), MODEL);
    let start = Instant::now();
    let doc = verify(&env, &proj);
    let f = must(&doc, "endpoint-unreachable");
    assert!(f["message"].as_str().unwrap().contains("timed out"), "{f:#}");
    assert!(start.elapsed() < Duration::from_secs(10), "{:?}", start.elapsed());
}

#[test]
fn coding_agents_only_and_rate_limits() {
    let (env, w, proj) = setup();
    env.set_key("BAILIAN_CODING_PLAN_API_KEY", CP_AGENTS_KEY);
    settings(&env, "BAILIAN_CODING_PLAN_API_KEY", &w.coding.url("/v1"), MODEL);
    let doc = verify(&env, &proj);
    let f = must(&doc, "plan-client-rejected");
    assert!(f["evidence"].as_str().unwrap().contains("HTTP 405"), "{f:#}");
    assert!(find(&doc, "key-rejected").is_none(), "{doc:#}");

    env.set_key("DASHSCOPE_API_KEY", SG_KEY);
    settings(&env, "DASHSCOPE_API_KEY", &w.misc.url("/limited/v1"), MODEL);
    let doc = verify(&env, &proj);
    assert!(must(&doc, "rate-limited")["evidence"].as_str().unwrap().contains("HTTP 429"));
}

#[test]
fn openrouter_keys_limits_and_tool_support() {
    let (env, w, proj) = setup();
    let base = w.openrouter.url("/api/v1");
    env.set_key("OPENROUTER_API_KEY", OR_KEY);
    settings(&env, "OPENROUTER_API_KEY", &base, "qwen/qwen3-coder");
    let doc = verify(&env, &proj);
    assert!(probe_codes(&doc).is_empty(), "{doc:#}");
    // The key went to /api/v1/key only; the public model list got no key.
    for r in w.openrouter.requests() {
        match r.path.as_str() {
            "/api/v1/key" => assert_eq!(r.bearer(), Some(OR_KEY)),
            "/api/v1/models" => assert!(r.authorization.is_none(), "{r:?}"),
            other => panic!("unexpected request to {other}"),
        }
    }

    settings(&env, "OPENROUTER_API_KEY", &base, "some/chat-only");
    let doc = verify(&env, &proj);
    assert_eq!(must(&doc, "openrouter-no-tools")["severity"], "error");

    settings(&env, "OPENROUTER_API_KEY", &base, "nobody/nothing");
    let doc = verify(&env, &proj);
    must(&doc, "model-unavailable");

    env.set_key("OPENROUTER_API_KEY", OR_SPENT_KEY);
    settings(&env, "OPENROUTER_API_KEY", &base, "qwen/qwen3-coder");
    let doc = verify(&env, &proj);
    let f = must(&doc, "rate-limited");
    let msg = f["message"].as_str().unwrap();
    assert!(msg.contains("free tier") && msg.contains("20 requests per 1m"), "{f:#}");

    env.set_key("OPENROUTER_API_KEY", "sk-or-v1-revoked");
    let doc = verify(&env, &proj);
    must(&doc, "key-rejected");
}

#[test]
fn key_set_says_where_the_key_works_and_key_ls_shows_the_family() {
    let (env, w, proj) = setup();
    settings(&env, "DASHSCOPE_API_KEY", &w.bj.url("/compatible-mode/v1"), MODEL);
    let out = output_with_stdin(
        env.client(&["key", "set", "DASHSCOPE_API_KEY"]).current_dir(&proj),
        SG_KEY,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let sg = w.sg.url("/compatible-mode/v1");
    assert!(
        text.contains(&format!("valid for DashScope Singapore (dashscope ap-southeast-1) at {sg}")),
        "{}",
        describe(&out)
    );
    let line = format!(
        "your settings use DashScope Beijing (dashscope cn-beijing): change the base URL to {sg} in {}:4:",
        env.home.join(".qwen/settings.json").display()
    );
    assert!(text.contains(&line), "{}", describe(&out));
    assert!(!text.contains(SG_KEY));
    // Stored and valid: the settings fix is the note above, not a failure of `key set`.
    assert!(out.status.success(), "{}", describe(&out));
    assert!(!text.contains("error["), "{}", describe(&out));

    let ls = env.ok(&["key", "ls"]);
    assert!(ls.contains("valid: dashscope ap-southeast-1, just now"), "{ls}");
    assert!(ls.lines().all(|l| l.chars().count() <= 120), "key ls rows too wide: {ls}");
    let j: Value = serde_json::from_str(&env.ok(&["key", "ls", "--json"])).unwrap();
    let k = &j["keys"][0];
    assert_eq!(
        (k["family"].as_str(), k["region"].as_str()),
        (Some("dashscope"), Some("ap-southeast-1"))
    );
    assert!(k["last_check"].as_str().unwrap().starts_with("valid at"), "{k:#}");

    // Without settings that use it, the key's own family is probed: a plan key.
    let out = env.run_with_stdin(&["key", "set", "BAILIAN_CODING_PLAN_API_KEY"], CP_KEY);
    assert!(out.status.success(), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("valid for Coding Plan international (coding-plan intl)"), "{text}");

    // A key no endpoint accepts is stored, reported, and `key set` exits 1.
    let out = output_with_stdin(
        env.client(&["key", "set", "DASHSCOPE_API_KEY"]).current_dir(&proj),
        BAD_KEY,
    );
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("error[key-rejected]"),
        "{}",
        describe(&out)
    );
    assert!(env.ok(&["key", "ls"]).contains(&qwen_env_tests::fingerprint(BAD_KEY)));

    // --no-verify stores without a single request.
    for m in w.all() {
        m.clear();
    }
    let out = env.run_with_stdin(&["key", "set", "--no-verify", "DASHSCOPE_API_KEY"], BJ_KEY);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(w.all().iter().all(|m| m.requests().is_empty()));
}

#[test]
fn run_never_waits_for_the_network_and_shows_cached_results() {
    let (env, w, proj) = setup();
    env.set_key("DASHSCOPE_API_KEY", SG_KEY);
    // A host that answers after 20 s, far beyond the 8 s probe timeout.
    settings(&env, "DASHSCOPE_API_KEY", &w.misc.url("/slow/v1"), MODEL);
    env.ok(&["status"]);
    let start = Instant::now();
    let out = env.client(&["run", "--", "qwen"]).current_dir(&proj).output().unwrap();
    let took = start.elapsed();
    assert!(out.status.success(), "{}", describe(&out));
    assert!(took < Duration::from_secs(4), "run waited {took:?} for the network");
    // The refresh did start in the background.
    assert!(!w.misc.wait_for_requests(1, Duration::from_secs(5)).is_empty());

    // A verified result is what the next `run` reports, without probing again.
    settings(&env, "DASHSCOPE_API_KEY", &w.bj.url("/compatible-mode/v1"), MODEL);
    let doc = verify(&env, &proj);
    must(&doc, "key-region-mismatch");
    let out = env.client(&["run", "--", "qwen"]).current_dir(&proj).output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("key-region-mismatch"), "{}", describe(&out));
}

#[test]
fn a_key_never_reaches_a_host_outside_its_family() {
    let (env, w, proj) = setup();
    // Every path that probes: key set with and without settings, doctor --verify with a rejected
    // key (region discovery), run's background refresh.
    settings(&env, "DASHSCOPE_API_KEY", &w.bj.url("/compatible-mode/v1"), MODEL);
    let _ = env.client(&["key", "set", "DASHSCOPE_API_KEY"]).current_dir(&proj).output();
    env.run_with_stdin(&["key", "set", "DASHSCOPE_API_KEY"], SG_KEY);
    let _ = verify(&env, &proj);
    env.set_key("DASHSCOPE_API_KEY", BAD_KEY);
    let _ = verify(&env, &proj);
    let _ = env.client(&["run", "--", "qwen"]).current_dir(&proj).output();
    std::thread::sleep(Duration::from_millis(300));

    // The DashScope family (and its provider's plans) did see the keys...
    assert!(w.bj.requests().iter().any(|r| r.bearer() == Some(SG_KEY)));
    // ...the foreign provider (same sk- prefix!) and OpenRouter never did.
    for key in [SG_KEY, BAD_KEY] {
        for (name, m) in [("foreign", &w.foreign), ("openrouter", &w.openrouter), ("misc", &w.misc)]
        {
            let leaked: Vec<_> = m
                .requests()
                .into_iter()
                .filter(|r| {
                    r.authorization.as_deref().is_some_and(|a| a.contains(key))
                        || String::from_utf8_lossy(&r.body).contains(key)
                        || r.query.as_deref().is_some_and(|q| q.contains(key))
                })
                .collect();
            assert!(leaked.is_empty(), "{name} received the key: {leaked:?}");
        }
    }
    // The daemon's log never holds a key either.
    let log = env.log();
    assert!(!log.contains(SG_KEY) && !log.contains(BAD_KEY));
}

/// A proxy in the daemon's environment carries the probes, and `NO_PROXY` exempts a host
/// (README: "`HTTPS_PROXY`/`NO_PROXY` in the daemon's environment are honoured"). The proxy is a
/// mock that answers like the endpoint: a request sent through a forward proxy names the absolute
/// URL as its target, which is how the test tells a proxied probe from a direct one.
#[test]
fn probes_use_the_proxy_of_the_daemons_environment() {
    let (mut env, w, proj) = setup();
    let proxy = MockServer::start(MockConfig::new().accept_key(SG_KEY).models(models())).unwrap();
    env.set_var("HTTP_PROXY", &proxy.origin());
    env.set_key("DASHSCOPE_API_KEY", SG_KEY);
    let sg = w.sg.url("/compatible-mode/v1");
    settings(&env, "DASHSCOPE_API_KEY", &sg, MODEL);

    let doc = verify(&env, &proj);
    assert!(probe_codes(&doc).is_empty(), "{doc:#}");
    let proxied = proxy.requests();
    assert!(
        proxied.iter().any(|r| r.path == format!("{sg}/models") && r.bearer() == Some(SG_KEY)),
        "no probe went through the proxy: {proxied:?}"
    );
    assert!(w.sg.requests().is_empty(), "a probe bypassed the proxy: {:?}", w.sg.requests());

    // The daemon reads the proxy variables when it starts: restart it with NO_PROXY.
    env.ok(&["daemon", "stop"]);
    env.set_var("NO_PROXY", "127.0.0.1");
    proxy.clear();
    let doc = verify(&env, &proj);
    assert!(probe_codes(&doc).is_empty(), "{doc:#}");
    assert!(
        w.sg.requests().iter().any(|r| r.path == "/compatible-mode/v1/models"),
        "NO_PROXY did not send the probe straight to the endpoint: {:?}",
        w.sg.requests()
    );
    assert!(proxy.requests().is_empty(), "NO_PROXY was ignored: {:?}", proxy.requests());
}
