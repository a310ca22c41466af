//! A key stored while the daemon used one keychain backend, read by a daemon on another:
//! `explain`, `doctor`, the prompt hook, `key ls` and `run` all say which backend holds it and
//! how to move it, and `key migrate --from BACKEND` moves it (both directions, real backends:
//! kernel keyutils and gnome-keyring's Secret Service in a private D-Bus session); `key rm`
//! deletes the copies in both.

use qwen_env_tests::{TestEnv, describe, fingerprint, require};

const KEY: &str = "sk-0123456789abcdef0123b771";
/// Whether the per-user persistent keyring holds the key, asked of keyctl itself in a session
/// keyring of its own with the persistent keyring linked in (a process without one searches the
/// user-session keyring, which the persistent keyring is not linked into).
const IN_KEYUTILS: &str = r#"in_keyutils() { keyctl session - sh -c 'keyctl get_persistent @s >/dev/null && keyctl search @s user "keyring:DASHSCOPE_API_KEY@qwen-env-$QWEN_ENV_NAMESPACE" >/dev/null'; }"#;
const INTL: &str = "https://dashscope-intl.aliyuncs.com/compatible-mode/v1";

/// The output of one step of the script, between `== NAME` and the next marker.
fn section<'a>(all: &'a str, name: &str) -> &'a str {
    let start = all.find(&format!("== {name}\n")).unwrap_or_else(|| panic!("no {name}: {all}"));
    let rest = &all[start + name.len() + 4..];
    &rest[..rest.find("\n== ").map_or(rest.len(), |e| e + 1)]
}

#[test]
fn a_key_in_the_other_backend_is_named_everywhere_and_migrates_both_ways() {
    if !require("keyctl") {
        return;
    }
    let env = TestEnv::new();
    let qwen = env.home.join(".qwen");
    std::fs::create_dir_all(&qwen).unwrap();
    std::fs::write(
        qwen.join("settings.json"),
        format!(
            r#"{{ "modelProviders": {{ "openai": [ {{ "id": "qwen3-coder-plus", "envKey": "DASHSCOPE_API_KEY", "baseUrl": "{INTL}" }} ] }},
                 "security": {{ "auth": {{ "selectedType": "openai" }} }}, "model": {{ "name": "qwen3-coder-plus" }} }}"#
        ),
    )
    .unwrap();
    let inject =
        r#"run --with DASHSCOPE_API_KEY -- sh -c 'printf "injected=%s\n" "$DASHSCOPE_API_KEY"'"#;
    let script = format!(
        r#"step() {{ echo "== $1"; }}
rc() {{ echo "rc=$?"; }}
{IN_KEYUTILS}
step stored-in-keyutils
printf %s {KEY} | QWEN_ENV_KEYRING=keyutils $Q key set --no-verify DASHSCOPE_API_KEY; rc
QWEN_ENV_KEYRING=keyutils $Q daemon stop >/dev/null
step status; $Q status --json | grep '"backend"'
step explain; $Q explain; rc
step doctor; $Q doctor; rc
step hook; $Q hook-status; rc
step ls; $Q key ls; rc
step run; $Q {inject}; rc
step migrate; $Q key migrate --from keyutils; rc
step doctor-after; $Q doctor; rc
step hook-after; $Q hook-status; rc
step run-after; $Q {inject}; rc
step again; $Q key migrate --from keyutils; rc
step same; $Q key migrate --from secret-service; rc
$Q daemon stop >/dev/null
step keyutils-daemon; QWEN_ENV_KEYRING=keyutils $Q key ls; rc
step back; QWEN_ENV_KEYRING=keyutils $Q key migrate --from secret-service DASHSCOPE_API_KEY; rc
step run-back; QWEN_ENV_KEYRING=keyutils $Q {inject}; rc
QWEN_ENV_KEYRING=keyutils $Q daemon stop >/dev/null
step in-keyutils; in_keyutils; rc
step rm-from-other; $Q key rm DASHSCOPE_API_KEY; rc
step gone; in_keyutils 2>/dev/null; rc
$Q daemon stop >/dev/null
"#
    );
    let Some(out) = env.with_secret_service(&script) else { return };
    let all = String::from_utf8_lossy(&out.stdout).into_owned();
    let ctx = describe(&out);
    assert!(!all.contains(KEY.trim_start_matches("sk-")) || all.contains("injected="), "{ctx}");

    assert!(section(&all, "stored-in-keyutils").contains("in keyutils"), "{ctx}");
    assert!(section(&all, "status").contains("\"secret-service\""), "{ctx}");

    // explain still shows where the key would come from, but says run cannot read it.
    let explain = section(&all, "explain");
    assert!(explain.contains("key-in-other-backend"), "{ctx}");
    assert!(explain.contains("qwen-env key migrate --from keyutils"), "{ctx}");

    // doctor is not "no problems found" and exits 1.
    let doctor = section(&all, "doctor");
    assert!(doctor.contains("error[key-in-other-backend]"), "{ctx}");
    assert!(doctor.contains("is in the keyutils keychain, but the daemon uses secret-service"));
    assert!(doctor.contains("fix: qwen-env key migrate --from keyutils"), "{ctx}");
    assert!(!doctor.contains("no problems found") && doctor.contains("rc=1"), "{ctx}");

    // The prompt hook counts it as an error and names the backend that holds it, by the fix.
    let hook = section(&all, "hook");
    assert!(hook.contains("1 error in this directory's Qwen Code setup"), "{ctx}");
    assert!(hook.contains("(key-in-other-backend: qwen-env key migrate --from keyutils)"), "{ctx}");

    // key ls names the backend that has it.
    let ls = section(&all, "ls");
    assert!(ls.contains("not readable: in keyutils, the daemon uses secret-service"), "{ctx}");
    assert!(ls.contains("qwen-env key migrate --from keyutils"), "{ctx}");
    assert!(ls.lines().all(|l| l.chars().count() <= 110), "key ls rows too wide: {ctx}");

    // run fails with the same diagnosis, and nothing is injected.
    let run = section(&all, "run");
    assert!(run.contains("rc=1") && !run.contains("injected="), "{ctx}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("the keyutils keychain holds it"), "{ctx}");

    // The migration moves it; afterwards everything agrees.
    let migrate = section(&all, "migrate");
    assert!(migrate.contains(&format!("DASHSCOPE_API_KEY ({})", fingerprint(KEY))), "{ctx}");
    assert!(migrate.contains("moved from keyutils to secret-service") && migrate.contains("rc=0"));
    let after = section(&all, "doctor-after");
    assert!(!after.contains("key-in-other-backend") && after.contains("rc=0"), "{ctx}");
    assert_eq!(section(&all, "hook-after"), "rc=0\n", "{ctx}");
    assert!(section(&all, "run-after").contains(&format!("injected={KEY}\nrc=0")), "{ctx}");

    // The keyutils copy is gone: a second migration finds nothing; the active backend is refused.
    assert!(section(&all, "again").contains("nothing to move"), "{ctx}");
    let same = section(&all, "same");
    assert!(same.contains("rc=1") || stderr.contains("already uses the secret-service"), "{ctx}");
    assert!(stderr.contains("the daemon already uses the secret-service keychain"), "{ctx}");

    // And back: a keyutils daemon sees the key in the Secret Service and takes it over.
    let ku = section(&all, "keyutils-daemon");
    assert!(ku.contains("not readable: in secret-service, the daemon uses keyutils"), "{ctx}");
    assert!(section(&all, "back").contains("moved from secret-service to keyutils"), "{ctx}");
    assert!(section(&all, "run-back").contains(&format!("injected={KEY}\nrc=0")), "{ctx}");
    // `key rm` on the Secret Service daemon also deletes the copy in keyutils (checked with
    // keyctl itself, not through qwen-env).
    assert_eq!(section(&all, "in-keyutils"), "rc=0\n", "{ctx}");
    assert!(section(&all, "rm-from-other").contains("removed DASHSCOPE_API_KEY\nrc=0"), "{ctx}");
    assert_eq!(section(&all, "gone"), "rc=1\n", "{ctx}");

    // Fingerprints only: nothing printed the key except the child that was given it.
    let printed = all.replace(&format!("injected={KEY}"), "");
    assert!(!printed.contains(KEY) && !stderr.contains(KEY), "the key was printed: {ctx}");
}

/// A key the index lists but no backend holds any more (kernel keyutils after a reboot, played
/// by invalidating the key with keyctl, through the per-user persistent keyring the daemon links
/// it into): an error with the fix, not "no problems found".
#[test]
fn a_key_no_backend_holds_is_an_error_with_the_fix() {
    if !require("keyctl") {
        return;
    }
    let env = TestEnv::new();
    let qwen = env.home.join(".qwen");
    std::fs::create_dir_all(&qwen).unwrap();
    std::fs::write(
        qwen.join("settings.json"),
        format!(
            r#"{{ "modelProviders": {{ "openai": [ {{ "id": "qwen3-coder-plus", "envKey": "DASHSCOPE_API_KEY", "baseUrl": "{INTL}" }} ] }},
                 "security": {{ "auth": {{ "selectedType": "openai" }} }}, "model": {{ "name": "qwen3-coder-plus" }} }}"#
        ),
    )
    .unwrap();
    env.set_key("DASHSCOPE_API_KEY", KEY);
    env.ok(&["daemon", "stop"]);
    let description = format!("keyring:DASHSCOPE_API_KEY@qwen-env-{}", env.namespace);
    let out = env
        .command("sh")
        .args([
            "-c",
            "keyctl session - sh -c 'keyctl get_persistent @s >/dev/null && \
             keyctl invalidate \"$(keyctl search @s user \"$1\")\"' sh \"$1\"",
            "sh",
            &description,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));

    let out = env.run(&["doctor"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(text.contains("error[keychain-entry-missing]"), "{text}");
    assert!(text.contains("fix: qwen-env key set DASHSCOPE_API_KEY"), "{text}");
    let ls = env.ok(&["key", "ls"]);
    assert!(ls.contains("! missing from the keyutils keychain"), "{ls}");
    assert!(ls.contains("`qwen-env key set DASHSCOPE_API_KEY`"), "{ls}");
}

/// A test environment deletes the keys it stored in kernel keyutils when it ends: the per-user
/// persistent keyring outlives the tests, and a user other than root may hold 200 keys.
#[test]
fn a_test_environment_leaves_no_key_behind() {
    if !require("keyctl") {
        return;
    }
    let present = |namespace: &str| {
        let description = format!("keyring:DASHSCOPE_API_KEY@qwen-env-{namespace}");
        std::process::Command::new("keyctl")
            .args(["session", "-", "sh", "-c"])
            .arg("keyctl get_persistent @s >/dev/null && keyctl search @s user \"$1\" >/dev/null")
            .args(["sh", &description])
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
            .success()
    };
    let env = TestEnv::new();
    env.set_key("DASHSCOPE_API_KEY", KEY);
    let namespace = env.namespace.clone();
    assert!(present(&namespace), "the key is not in the persistent keyring");
    drop(env);
    assert!(!present(&namespace), "the key outlived its test environment");
}
