//! Secret hygiene and peer isolation: no secret in logs, outputs, errors or any argv; the daemon
//! is not dumpable; cached secrets expire; processes started by `run` cannot fetch other keys.

use std::time::Duration;

use qwen_env_tests::{TestEnv, describe, wait_until};

const SECRET: &str = "sk-hygiene000000000000000001";
const OTHER: &str = "sk-otherkey00000000000000002";

#[test]
fn a_process_started_by_run_cannot_fetch_other_keys() {
    let env = TestEnv::new();
    env.set_key("GIVEN_API_KEY", SECRET);
    env.set_key("OTHER_API_KEY", OTHER);
    let qe = qwen_env_tests::bin("qwen-env");
    // The child even clears the nesting marker, as a hostile agent would.
    let inner = format!(
        "env -u QWEN_ENV {} run --with OTHER_API_KEY -- printenv OTHER_API_KEY; echo inner=$?",
        qe.display()
    );
    let out = env.run(&["run", "--with", "GIVEN_API_KEY", "--", "sh", "-c", &inner]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("inner=1"), "{}", describe(&out));
    assert!(!stdout.contains(OTHER), "the child got a key it was not given");
    assert!(String::from_utf8_lossy(&out.stderr).contains("allow_nesting"), "{}", describe(&out));

    // From the user's own shell, the same request works.
    let out = env.run(&["run", "--with", "OTHER_API_KEY", "--", "printenv", "OTHER_API_KEY"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), OTHER, "{}", describe(&out));

    // The user may allow nesting in the config.
    env.write_config("allow_nesting = true\n");
    let out = env.run(&["run", "--with", "GIVEN_API_KEY", "--", "sh", "-c", &inner]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(OTHER), "{}", describe(&out));
}

#[test]
fn no_secret_in_logs_outputs_errors_or_argv() {
    let mut env = TestEnv::new();
    env.set_var("QWEN_ENV_LOG", "trace");
    env.set_key("DASHSCOPE_API_KEY", SECRET);
    let settings = env.home.join(".qwen/settings.json");
    std::fs::create_dir_all(settings.parent().unwrap()).unwrap();
    std::fs::write(
        &settings,
        r#"{ "modelProviders": { "openai": [ { "id": "m", "envKey": "DASHSCOPE_API_KEY", "baseUrl": "https://dashscope-intl.aliyuncs.com/compatible-mode/v1" } ] },
             "security": { "auth": { "selectedType": "openai" } }, "model": { "name": "m" } }"#,
    )
    .unwrap();

    // While a run is in progress, no process anywhere has the key in its argv.
    let mut child =
        env.client(&["run", "--with", "DASHSCOPE_API_KEY", "--", "sleep", "2"]).spawn().unwrap();
    // `sleep` is the child of run's keeper, which is the child of the process we started.
    let children = |p: u32| -> Vec<u32> {
        std::fs::read_to_string(format!("/proc/{p}/task/{p}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|c| c.parse().ok())
            .collect()
    };
    assert!(wait_until(Duration::from_secs(5), || {
        children(child.id()).into_iter().flat_map(children).any(|p| {
            std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| c.starts_with("sleep"))
        })
    }));
    let mut scanned = 0;
    for entry in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            scanned += 1;
            assert!(
                !String::from_utf8_lossy(&cmdline).contains(SECRET),
                "secret in argv of {:?}",
                entry.path()
            );
        }
    }
    assert!(scanned > 3);
    assert!(child.wait().unwrap().success());

    let mut outputs = String::new();
    for args in [
        &["status", "--json"][..],
        &["key", "ls", "--json"],
        &["explain", "--json"],
        &["explain", "DASHSCOPE_API_KEY"],
        &["doctor", "--json"],
        &["events", "--help"],
    ] {
        let out = env.client(args).env("DASHSCOPE_API_KEY", OTHER).output().unwrap();
        outputs += &String::from_utf8_lossy(&out.stdout);
        outputs += &String::from_utf8_lossy(&out.stderr);
    }
    // Errors: a rejected value is never echoed.
    let out =
        env.run_with_stdin(&["key", "set", "OPENAI_API_KEY"], "Bearer sk-inline-secret-0000000003");
    outputs += &String::from_utf8_lossy(&out.stderr);
    for s in [SECRET, OTHER, "sk-inline-secret-0000000003"] {
        assert!(!outputs.contains(s), "secret {s} printed:\n{outputs}");
    }
    let log = env.log();
    assert!(log.contains("TRACE") || log.contains("DEBUG"), "trace logging is not on");
    for s in [SECRET, OTHER, "sk-inline-secret-0000000003"] {
        assert!(!log.contains(s), "secret {s} in the log");
    }
}

#[test]
fn the_daemon_is_not_dumpable_and_forgets_idle_secrets() {
    let mut env = TestEnv::new();
    env.set_var("QWEN_ENV_CACHE_IDLE_SECS", "1");
    env.set_key("DASHSCOPE_API_KEY", SECRET);
    let out = env.run(&["run", "--with", "DASHSCOPE_API_KEY", "--", "true"]);
    assert!(out.status.success(), "{}", describe(&out));
    let pid = env.daemon_pid().unwrap();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    assert!(
        limits.lines().any(|l| l.starts_with("Max core file size") && l.contains(" 0 ")),
        "{limits}"
    );
    // PR_SET_DUMPABLE=0 makes the kernel hand /proc/<pid>/{environ,mem} to root: visible from
    // outside only when the daemon is not root itself.
    if qwen_env_proto::endpoint::euid() != 0 {
        use std::os::unix::fs::MetadataExt;
        let owner = std::fs::metadata(format!("/proc/{pid}/environ")).unwrap().uid();
        assert_eq!(owner, 0, "the daemon is dumpable");
    }
    assert!(
        wait_until(Duration::from_secs(10), || env.log().contains("dropped idle cached secrets")),
        "{}",
        env.log()
    );
    // Still works after the cache is gone: values come from the keychain again.
    let out =
        env.run(&["run", "--with", "DASHSCOPE_API_KEY", "--", "printenv", "DASHSCOPE_API_KEY"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), SECRET);
}
