//! Issue 12, "a cloned repository must not be able to steal a key": files planted where the host
//! tools or qwen-env look (FIFOs, devices, huge files, squatted runtime dirs), and values that
//! must never be shown whole.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use qwen_env_tests::{TestEnv, describe, wait_until};
use serde_json::Value;

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn mkfifo(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo {}", path.display());
}

/// Runs `cmd` and returns its output, or `None` (after killing it) when it takes over `limit`.
fn output_within(cmd: &mut Command, limit: Duration) -> Option<Output> {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Some(child.wait_with_output().unwrap())
}

/// `explain --json` in `dir`, which must answer within 10 s.
fn explain(env: &TestEnv, dir: &Path) -> Value {
    explain_vars(env, dir, &[])
}

/// `explain --json VARS…` in `dir`, which must answer within 10 s.
fn explain_vars(env: &TestEnv, dir: &Path, vars: &[&str]) -> Value {
    let mut args = vec!["explain", "--json"];
    args.extend(vars);
    let out = output_within(env.client(&args).current_dir(dir), Duration::from_secs(10))
        .expect("explain did not answer within 10 s");
    assert!(out.status.success(), "{}", describe(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", describe(&out)))
}

fn finding<'a>(j: &'a Value, code: &str) -> Option<&'a Value> {
    j["findings"].as_array().unwrap().iter().find(|f| f["code"] == code)
}

/// The daemon's resident set in KiB, from /proc.
fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_fifo_env_in_the_walk_up_neither_blocks_the_daemon_nor_its_sigterm() {
    let env = TestEnv::new();
    let repo = env.home.join("cloned");
    let sub = repo.join("src/deep");
    std::fs::create_dir_all(&sub).unwrap();
    mkfifo(&repo.join(".env"));

    let j = explain(&env, &sub);
    let f = finding(&j, "file-not-regular").unwrap_or_else(|| panic!("no finding: {j:#}"));
    assert!(f["message"].as_str().unwrap().contains("FIFO"), "{f:#}");
    assert!(f["fix"].as_str().unwrap().contains("rm "), "{f:#}");
    // The daemon still answers, twice over (the second from a warm cache), and so does status.
    let j = explain(&env, &sub);
    assert!(finding(&j, "file-not-regular").is_some(), "{j:#}");
    assert!(env.run(&["status"]).status.success());

    // `daemon stop` ends it promptly.
    let started = Instant::now();
    let out = output_within(&mut env.client(&["daemon", "stop"]), Duration::from_secs(5))
        .expect("daemon stop hung");
    assert!(out.status.success(), "{}", describe(&out));
    assert!(env.wait_daemon_gone(Duration::from_secs(2)), "the daemon outlived `daemon stop`");
    assert!(started.elapsed() < Duration::from_secs(3));

    // And so does SIGTERM, right after the watcher saw the FIFO change.
    explain(&env, &sub);
    let pid = env.daemon_pid().unwrap();
    // A writer touches the FIFO's directory: the watcher hashes what it watches.
    write(&repo.join("README"), "hello\n");
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: our own daemon's pid.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    assert!(env.wait_daemon_gone(Duration::from_secs(2)), "SIGTERM did not end the daemon in 2 s");
}

#[test]
fn a_dev_zero_env_is_not_read_and_the_daemon_stays_small() {
    let env = TestEnv::new();
    let repo = env.home.join("cloned");
    std::fs::create_dir_all(&repo).unwrap();
    std::os::unix::fs::symlink("/dev/zero", repo.join(".env")).unwrap();
    let j = explain(&env, &repo);
    let f = finding(&j, "file-not-regular").unwrap_or_else(|| panic!("no finding: {j:#}"));
    assert!(f["message"].as_str().unwrap().contains("character device"), "{f:#}");
    let pid = env.daemon_pid().unwrap();
    assert!(rss_kib(pid) < 200 * 1024, "the daemon grew to {} KiB", rss_kib(pid));
}

#[test]
fn oversized_files_are_reported_not_parsed_and_symlinks_to_real_files_still_work() {
    let env = TestEnv::new();
    let repo = env.home.join("cloned");
    // A 5 MiB user settings file (cap 4 MiB) and a 2 MiB .env (cap 1 MiB).
    let mut big = String::from("{\"env\": {\"A\": \"");
    big.push_str(&"x".repeat(5 * 1024 * 1024));
    big.push_str("\"}}\n");
    write(&env.home.join(".qwen/settings.json"), &big);
    write(&repo.join(".env"), &format!("# {}\n", "y".repeat(2 * 1024 * 1024)));
    let started = Instant::now();
    let j = explain(&env, &repo);
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    let large: Vec<&Value> = j["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "file-too-large")
        .collect();
    assert_eq!(large.len(), 2, "{j:#}");
    let msgs: String = large.iter().map(ToString::to_string).collect();
    assert!(msgs.contains("4.0 MiB limit for settings files"), "{msgs}");
    assert!(msgs.contains("1.0 MiB limit for .env files"), "{msgs}");
    assert!(msgs.contains("shrink it below"), "{msgs}");

    // A .env that is a symlink to a regular file is read as before.
    let real = env.home.join("shared.env");
    write(&real, "OPENAI_MODEL=qwen3-coder-plus\n");
    std::fs::remove_file(repo.join(".env")).unwrap();
    std::os::unix::fs::symlink(&real, repo.join(".env")).unwrap();
    std::fs::remove_file(env.home.join(".qwen/settings.json")).unwrap();
    let j = explain_vars(&env, &repo, &["OPENAI_MODEL"]);
    assert!(finding(&j, "file-too-large").is_none(), "{j:#}");
    assert_eq!(j["variables"]["OPENAI_MODEL"]["value"], "qwen3-coder-plus", "{j:#}");
}

#[test]
fn the_watcher_survives_a_fifo_swapped_in_for_a_watched_file() {
    let env = TestEnv::new();
    let repo = env.home.join("cloned");
    write(&repo.join(".env"), "OPENAI_MODEL=one\n");
    explain(&env, &repo);
    // The file becomes a FIFO while the daemon watches it.
    std::fs::remove_file(repo.join(".env")).unwrap();
    mkfifo(&repo.join(".env"));
    assert!(
        wait_until(Duration::from_secs(5), || {
            let j = explain(&env, &repo);
            finding(&j, "file-not-regular").is_some()
        }),
        "no finding after the swap"
    );
    // Let the watcher see the swap and hash the FIFO (its debounce is 50 ms); it must not
    // stick there, holding its lock: the daemon still answers and still stops on SIGTERM.
    std::thread::sleep(Duration::from_millis(500));
    explain(&env, &repo);
    assert!(env.run(&["status"]).status.success());
    let pid = env.daemon_pid().unwrap();
    // SAFETY: our own daemon's pid.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    assert!(env.wait_daemon_gone(Duration::from_secs(2)), "SIGTERM did not end the daemon in 2 s");
}

/// A client without `XDG_RUNTIME_DIR`, so its runtime dir is the fallback `$TMPDIR/qwen-env-<uid>`
/// (here under a shared temp dir of the test's own).
fn fallback_client(env: &TestEnv, tmp: &Path, args: &[&str]) -> Option<Output> {
    let mut cmd = env.client(args);
    cmd.env_remove("XDG_RUNTIME_DIR").env("TMPDIR", tmp);
    output_within(&mut cmd, Duration::from_secs(10))
}

fn shared_tmp(env: &TestEnv) -> (std::path::PathBuf, std::path::PathBuf) {
    let tmp = env.root.path().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    qwen_env_tests::set_mode(&tmp, 0o1777);
    let dir = tmp.join(format!("qwen-env-{}", qwen_env_proto::endpoint::euid()));
    (tmp, dir)
}

fn refused(out: &Output, what: &str) {
    assert_eq!(out.status.code(), Some(3), "{}", describe(out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(what), "expected {what:?}: {}", describe(out));
}

#[test]
fn the_client_checks_a_squatted_fallback_runtime_dir_before_touching_it() {
    // Group and others let in.
    let env = TestEnv::new();
    let (tmp, dir) = shared_tmp(&env);
    std::fs::create_dir(&dir).unwrap();
    qwen_env_tests::set_mode(&dir, 0o777);
    let out = fallback_client(&env, &tmp, &["status"]).expect("status hung");
    refused(&out, "chmod 700");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "the client created files in it");
    let out = fallback_client(&env, &tmp, &["daemon", "stop"]).expect("daemon stop hung");
    refused(&out, "chmod 700");

    // A symlink to a directory the squatter controls.
    let env = TestEnv::new();
    let (tmp, dir) = shared_tmp(&env);
    let theirs = env.root.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    qwen_env_tests::set_mode(&theirs, 0o700);
    std::os::unix::fs::symlink(&theirs, &dir).unwrap();
    let out = fallback_client(&env, &tmp, &["status"]).expect("status hung");
    refused(&out, "is a symlink");
    assert_eq!(std::fs::read_dir(&theirs).unwrap().count(), 0, "files made through the link");

    // Owned by another user, with a FIFO pidfile and a symlinked startup lock waiting inside
    // (arranging the owner needs root).
    if qwen_env_proto::endpoint::euid() != 0 {
        eprintln!("SKIPPED: the foreign-owner case needs root");
        return;
    }
    let env = TestEnv::new();
    let (tmp, dir) = shared_tmp(&env);
    std::fs::create_dir(&dir).unwrap();
    qwen_env_tests::set_mode(&dir, 0o700);
    mkfifo(&dir.join("qwen-envd.pid"));
    let loot = env.root.path().join("loot");
    std::os::unix::fs::symlink(&loot, dir.join("startup.lock")).unwrap();
    std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
    let out = fallback_client(&env, &tmp, &["status"]).expect("status hung");
    refused(&out, "owned by uid 65534");
    assert!(!loot.exists(), "the startup lock was followed");
}

#[test]
fn planted_files_in_a_private_runtime_dir_are_not_followed_nor_block() {
    // A symlinked startup.lock.
    let env = TestEnv::new();
    let (tmp, dir) = shared_tmp(&env);
    std::fs::create_dir(&dir).unwrap();
    qwen_env_tests::set_mode(&dir, 0o700);
    let loot = env.root.path().join("loot");
    std::os::unix::fs::symlink(&loot, dir.join("startup.lock")).unwrap();
    let out = fallback_client(&env, &tmp, &["status"]).expect("status hung");
    refused(&out, "it is a symlink; remove it");
    assert!(!loot.exists(), "the startup lock was followed");

    // A FIFO pidfile beside a stale socket: the client looks at the pidfile to decide whether
    // the socket is stale, and must not block on it; the daemon refuses it with a fix.
    let env = TestEnv::new();
    let (tmp, dir) = shared_tmp(&env);
    std::fs::create_dir(&dir).unwrap();
    qwen_env_tests::set_mode(&dir, 0o700);
    mkfifo(&dir.join("qwen-envd.pid"));
    drop(std::os::unix::net::UnixListener::bind(dir.join("sock")).unwrap());
    let out = fallback_client(&env, &tmp, &["status"]).expect("status blocked on the FIFO");
    refused(&out, "is not a regular file; remove it");
    let out = fallback_client(&env, &tmp, &["daemon", "stop"]).expect("daemon stop blocked");
    assert!(out.status.code().is_some(), "{}", describe(&out));
}

/// Everything a user or a log can see after `args` ran in `dir`.
fn all_output(env: &TestEnv, dir: &Path, runs: &[&[&str]]) -> String {
    let mut seen = String::new();
    for args in runs {
        let out = output_within(env.client(args).current_dir(dir), Duration::from_secs(10))
            .unwrap_or_else(|| panic!("{args:?} hung"));
        seen += &format!("$ {args:?}\n{}\n", describe(&out));
    }
    seen + &env.log()
}

#[test]
fn a_config_parse_error_never_quotes_the_line() {
    let env = TestEnv::new();
    let key = "sk-tomlleak0123456789abcdef01";
    // A key pasted on a line of its own, and one as the value of a number.
    env.write_config(&format!("silence = [\"key-age\"]\n{key}\n"));
    let seen = all_output(&env, &env.home, &[&["explain", "--json"], &["doctor"]]);
    assert!(!seen.contains(key) && !seen.contains("tomlleak"), "a config line was shown:\n{seen}");
    assert!(seen.contains("config-parse-error"), "{seen}");
    assert!(seen.contains("at line 2 column"), "{seen}");
    assert!(seen.contains("fix the TOML in"), "{seen}");

    env.write_config(&format!("rotate_after_days = \"{key}\"\n"));
    // The daemon re-reads the config when its size or mtime changes.
    std::thread::sleep(Duration::from_millis(20));
    let seen = all_output(&env, &env.home, &[&["explain", "--json"], &["doctor"]]);
    assert!(!seen.contains(key) && !seen.contains("tomlleak"), "a config value was shown:\n{seen}");
    assert!(seen.contains("invalid type"), "{seen}");
}

#[test]
fn a_key_pasted_into_a_base_url_or_a_model_is_masked_everywhere() {
    let env = TestEnv::new();
    let repo = env.home.join("proj");
    let in_url = "sk-urlleak0123456789abcdef0123";
    let in_model = "sk-modelleak0123456789abcdef01";
    let in_query = "sk-queryleak0123456789abcdef01";
    write(
        &repo.join(".env"),
        &format!(
            "OPENAI_API_KEY=sk-realkey0000000000000000001\nOPENAI_BASE_URL={in_url}\n\
             OPENAI_MODEL={in_model}\n"
        ),
    );
    write(
        &env.home.join(".qwen/settings.json"),
        &format!(
            "{{\"security\": {{\"auth\": {{\"selectedType\": \"openai\"}}}},\n\
             \"modelProviders\": {{\"openai\": [{{\"id\": \"{in_model}\", \
             \"baseUrl\": \"https://llm.example/v1?key={in_query}\"}}]}}}}\n"
        ),
    );
    let runs: &[&[&str]] = &[
        &["explain"],
        &["explain", "--json"],
        &["explain", "--as-is", "--json", "OPENAI_BASE_URL", "OPENAI_MODEL"],
        &["explain", "OPENAI_BASE_URL", "OPENAI_MODEL"],
        &["doctor"],
        &["doctor", "--json"],
    ];
    let seen = all_output(&env, &repo, runs);
    for (k, tag) in [(in_url, "urlleak"), (in_model, "modelleak"), (in_query, "queryleak")] {
        assert!(!seen.contains(k) && !seen.contains(tag), "{k} was shown:\n{seen}");
    }
    // What is shown instead is the usual mask, so the user can still tell where it is.
    assert!(seen.contains("sk-…0123"), "{seen}");
    let j = explain_vars(&env, &repo, &["OPENAI_BASE_URL"]);
    assert_eq!(j["variables"]["OPENAI_BASE_URL"]["value"], "sk-…0123", "{j:#}");
    // Plain model names and URLs are still shown whole.
    write(
        &repo.join(".env"),
        "OPENAI_BASE_URL=https://dashscope-intl.aliyuncs.com/compatible-mode/v1\n\
         OPENAI_MODEL=qwen3-coder-480b-a35b-instruct\n",
    );
    let j = explain_vars(&env, &repo, &["OPENAI_BASE_URL", "OPENAI_MODEL"]);
    assert_eq!(
        j["variables"]["OPENAI_BASE_URL"]["value"],
        "https://dashscope-intl.aliyuncs.com/compatible-mode/v1"
    );
    assert_eq!(j["variables"]["OPENAI_MODEL"]["value"], "qwen3-coder-480b-a35b-instruct");
}
