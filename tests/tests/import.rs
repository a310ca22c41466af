//! `key import [--scrub]` on realistic files, including a keychain that fails mid-import.

use std::path::Path;

use qwen_env_tests::{TestEnv, describe, fingerprint};
use serde_json::Value;

const DS: &str = "sk-dashscope0000000000000001";
const OR: &str = "sk-or-v1-router000000000000002";
const API: &str = "sk-apikey000000000000000003";
const OC: &str = "sk-openclaw00000000000000004";

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn settings_text() -> String {
    format!(
        r#"{{
  // keep this comment
  "env": {{
    "OPENROUTER_API_KEY": "{OR}",
    "EDITOR": "vi"
  }},
  "modelProviders": {{ "openai": [ {{ "id": "qwen3-coder-plus", "envKey": "DASHSCOPE_API_KEY",
      "baseUrl": "https://dashscope-intl.aliyuncs.com/compatible-mode/v1" }} ] }},
  "security": {{ "auth": {{ "selectedType": "openai", "apiKey": "{API}" }} }},
  "model": {{ "name": "qwen3-coder-plus" }}
}}
"#
    )
}

#[test]
fn import_scrub_moves_every_literal_into_the_keychain() {
    let env = TestEnv::new();
    let proj = env.home.join("proj");
    let settings = env.home.join(".qwen/settings.json");
    write(&settings, &settings_text());
    write(
        &proj.join(".env"),
        &format!("# project keys\nexport DASHSCOPE_API_KEY={DS} # mine\nLOG=debug\n"),
    );
    write(
        &env.home.join(".openclaw/openclaw.json"),
        &format!(
            "{{ models: {{ providers: {{ qwen: {{ apiKey: '{OC}', baseUrl: 'https://x/v1' }} }} }} }}\n"
        ),
    );
    qwen_env_tests::set_mode(&proj.join(".env"), 0o600);

    // Without --scrub: stored, files untouched.
    let out = env.client(&["key", "import", "--json"]).current_dir(&proj).output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> =
        j["imported"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    for n in ["DASHSCOPE_API_KEY", "OPENROUTER_API_KEY", "OPENAI_API_KEY", "QWEN_API_KEY"] {
        assert!(names.contains(&n), "{n} not imported: {j:#}");
    }
    assert!(!String::from_utf8_lossy(&out.stdout).contains(DS), "a secret was printed");
    assert_eq!(std::fs::read_to_string(&settings).unwrap(), settings_text());
    let ls = env.ok(&["key", "ls"]);
    for (k, v) in [
        ("DASHSCOPE_API_KEY", DS),
        ("OPENROUTER_API_KEY", OR),
        ("OPENAI_API_KEY", API),
        ("QWEN_API_KEY", OC),
    ] {
        assert!(ls.contains(k) && ls.contains(&fingerprint(v)), "{k}: {ls}");
    }

    // With --scrub: the literals leave the files; comments, other values and envKey stay.
    let out = env.client(&["key", "import", "--scrub"]).current_dir(&proj).output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let s = std::fs::read_to_string(&settings).unwrap();
    assert!(!s.contains(OR) && !s.contains(API), "{s}");
    assert!(
        s.contains("// keep this comment")
            && s.contains("\"EDITOR\": \"vi\"")
            && s.contains("\"envKey\": \"DASHSCOPE_API_KEY\""),
        "{s}"
    );
    let e = std::fs::read_to_string(proj.join(".env")).unwrap();
    assert_eq!(e, "# project keys\nLOG=debug\n");
    assert_eq!(qwen_env_tests::mode(&proj.join(".env")), 0o600);
    let oc = std::fs::read_to_string(env.home.join(".openclaw/openclaw.json")).unwrap();
    assert!(!oc.contains(OC) && oc.contains("baseUrl"), "{oc}");
    // Backups hold the originals.
    assert_eq!(
        std::fs::read_to_string(env.home.join(".qwen/settings.json.qwen-env.bak")).unwrap(),
        settings_text()
    );
    assert!(std::fs::read_to_string(proj.join(".env.qwen-env.bak")).unwrap().contains(DS));

    // The next run gets the key from the keychain, and the files no longer raise plaintext-secret.
    let j: Value = serde_json::from_slice(
        &env.client(&["explain", "--json"]).current_dir(&proj).output().unwrap().stdout,
    )
    .unwrap();
    assert_eq!(j["api_key"]["source"], "keychain DASHSCOPE_API_KEY");
    assert_eq!(j["api_key"]["fingerprint"], fingerprint(DS));
    assert!(!j["findings"].to_string().contains("plaintext-secret"), "{j:#}");
}

#[test]
fn a_different_value_in_the_keychain_is_not_overwritten_without_force() {
    let env = TestEnv::new();
    let proj = env.home.join("proj");
    write(&proj.join(".env"), &format!("DASHSCOPE_API_KEY={DS}\n"));
    env.set_key("DASHSCOPE_API_KEY", "sk-already0000000000000000009");
    let out = env.client(&["key", "import", "--scrub"]).current_dir(&proj).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("--force"), "{}", describe(&out));
    assert!(std::fs::read_to_string(proj.join(".env")).unwrap().contains(DS), "file changed");
    let out =
        env.client(&["key", "import", "--scrub", "--force"]).current_dir(&proj).output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    assert!(env.ok(&["key", "ls"]).contains(&fingerprint(DS)));
    assert!(!std::fs::read_to_string(proj.join(".env")).unwrap().contains(DS));
}

/// The keychain stops answering between listing and storing: no file may change.
#[test]
fn a_failed_keychain_write_leaves_the_files_untouched() {
    let env = TestEnv::new();
    let proj = env.home.join("proj");
    let settings = env.home.join(".qwen/settings.json");
    write(&settings, &settings_text());
    write(&proj.join(".env"), &format!("DASHSCOPE_API_KEY={DS}\n"));
    let script = format!(
        r#"cd {proj}
$Q status >/dev/null || exit 10
# The Secret Service goes away; a fresh one (activated on demand) starts locked, with no one to
# unlock it: every write fails or times out.
pkill -x gnome-keyring-d; sleep 0.5
$Q key import --scrub
echo "exit=$?"
$Q daemon stop >/dev/null
"#,
        proj = proj.display()
    );
    let Some(out) = env.with_secret_service(&script) else { return };
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("exit=1"), "{}", describe(&out));
    assert!(stdout.contains("not stored"), "{}", describe(&out));
    assert_eq!(std::fs::read_to_string(&settings).unwrap(), settings_text(), "settings changed");
    assert_eq!(
        std::fs::read_to_string(proj.join(".env")).unwrap(),
        format!("DASHSCOPE_API_KEY={DS}\n")
    );
    assert!(!env.home.join(".qwen/settings.json.qwen-env.bak").exists());
}

/// The literals `key import` takes are the ones `doctor` reports (one scanner): for each imported
/// location, the tool whose file it is has a `plaintext-secret` there.
#[test]
fn every_literal_key_import_takes_is_reported_by_doctor() {
    let env = TestEnv::new();
    let proj = env.home.join("proj");
    write(&env.home.join(".qwen/settings.json"), &settings_text());
    write(&proj.join(".env"), &format!("DASHSCOPE_API_KEY={DS}\n"));
    // A qwen apiKey that the exported QWEN_API_KEY outranks, and another provider's key:
    // `doctor -- openclaw` used to stay silent about both.
    write(
        &env.home.join(".openclaw/openclaw.json"),
        &format!(
            "{{ models: {{ providers: {{ qwen: {{ apiKey: '{OC}', baseUrl: 'https://dashscope-intl.aliyuncs.com/compatible-mode/v1' }},\n openrouter: {{ apiKey: 'sk-or-v1-openclawrouter0005' }} }} }} }}\n"
        ),
    );
    write(&env.home.join(".openclaw/.env"), "MOONSHOT_API_KEY=sk-moonmoonmoonmoon0001\n");
    let exported = [("QWEN_API_KEY", "sk-exported000000000000000007")];
    let json = |args: &[&str]| -> Value {
        let out = env.client(args).current_dir(&proj).envs(exported).output().unwrap();
        assert!(out.status.code().is_some_and(|c| c <= 1), "{}", describe(&out));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", describe(&out)))
    };
    let imported = json(&["key", "import", "--json"]);
    let items = imported["imported"].as_array().unwrap();
    assert!(items.len() >= 6, "{imported:#}");
    let qwen = json(&["doctor", "--json"]);
    let openclaw = json(&["doctor", "--json", "--", "openclaw"]);
    let reported = |doc: &Value, at: &str, what: &str| {
        doc["findings"].as_array().unwrap().iter().any(|f| {
            f["code"] == "plaintext-secret"
                && f["location"] == at
                && f["message"].as_str().unwrap().contains(what)
        })
    };
    for item in items {
        let location = item["location"].as_str().unwrap();
        let name = item["name"].as_str().unwrap();
        // `file:line`, or `position key.path` for a JSON member.
        let (at, what) = location.split_once(' ').unwrap_or((location, name));
        let tools: Vec<(&str, &Value)> = if location.contains("/.openclaw/") {
            vec![("openclaw", &openclaw)]
        } else if location.contains("/proj/.env") {
            vec![("qwen", &qwen), ("openclaw", &openclaw)]
        } else {
            vec![("qwen", &qwen)]
        };
        for (tool, doc) in tools {
            assert!(
                reported(doc, at, what),
                "key import takes {name} at {location}; doctor -- {tool} does not report it: {doc:#}"
            );
        }
    }
    assert!(!format!("{qwen}{openclaw}{imported}").contains(OC), "a secret was printed");
}
