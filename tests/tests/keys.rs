//! `key set|ls|rm` round trips on real keychain backends, and `run --with` injection.

use qwen_env_tests::{TestEnv, describe, fingerprint};

const KEY: &str = "sk-0123456789abcdef0123a289";

#[test]
fn key_round_trip_on_keyutils() {
    let env = TestEnv::new();
    env.set_key("DASHSCOPE_API_KEY", KEY);

    let ls = env.ok(&["key", "ls"]);
    assert!(ls.contains("DASHSCOPE_API_KEY"), "{ls}");
    assert!(ls.contains(&fingerprint(KEY)), "{ls}");
    assert!(ls.contains("sk-…a289"), "{ls}");
    assert!(ls.contains("keyutils"), "{ls}");
    assert!(!ls.contains(KEY), "ls printed the secret");

    let json: serde_json::Value = serde_json::from_str(&env.ok(&["key", "ls", "--json"])).unwrap();
    assert_eq!(json["schema"], 1);
    let k = &json["keys"][0];
    assert_eq!(k["name"], "DASHSCOPE_API_KEY");
    assert_eq!(k["fingerprint"], fingerprint(KEY).as_str());
    assert_eq!(k["backend"], "keyutils");
    assert_eq!(k["present"], true);
    assert_eq!(k["age_days"], 0);

    // Survives a daemon restart: the value is in the keychain, not in the daemon's memory.
    env.ok(&["daemon", "restart"]);
    let out = env.run(&[
        "run",
        "--with",
        "DASHSCOPE_API_KEY",
        "--",
        "sh",
        "-c",
        "printf %s \"$DASHSCOPE_API_KEY\"",
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), KEY);

    // The metadata never holds the value.
    let data = std::fs::read_to_string(
        env.root.path().join(format!("data/qwen-env/keys.{}.json", env.namespace)),
    )
    .unwrap();
    assert!(data.contains(&fingerprint(KEY)) && !data.contains(KEY), "{data}");

    assert!(env.ok(&["key", "rm", "DASHSCOPE_API_KEY"]).contains("removed DASHSCOPE_API_KEY"));
    let json: serde_json::Value = serde_json::from_str(&env.ok(&["key", "ls", "--json"])).unwrap();
    assert_eq!(json["keys"].as_array().unwrap().len(), 0);
    let again = env.run(&["key", "rm", "DASHSCOPE_API_KEY"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("no key named DASHSCOPE_API_KEY"));

    // Nothing the daemon logged contains the key, even at debug level.
    assert!(!env.log().contains(KEY));
}

#[test]
fn key_set_rejects_bad_names_and_values_and_strips_one_newline() {
    let env = TestEnv::new();
    let out = env.run_with_stdin(&["key", "set", "sk-live-123"], KEY);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a variable name"));

    for (bad, why) in
        [("Bearer sk-123456789", "Bearer"), ("sk-12 3456789", "whitespace"), ("", "no key given")]
    {
        let out = env.run_with_stdin(&["key", "set", "OPENAI_API_KEY"], bad);
        assert_ne!(out.status.code(), Some(0), "{bad:?}: {}", describe(&out));
        assert!(String::from_utf8_lossy(&out.stderr).contains(why), "{bad:?}: {}", describe(&out));
    }

    // `echo KEY | qwen-env key set` works: one trailing newline is not part of the key.
    env.run_with_stdin(&["key", "set", "OPENAI_API_KEY"], &format!("{KEY}\n"));
    let ls = env.ok(&["key", "ls"]);
    assert!(ls.contains(&fingerprint(KEY)), "{ls}");
    // The value is never accepted from argv: there is no argument for it.
    let out = env.run(&["key", "set", "OPENAI_API_KEY", KEY]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
}

#[test]
fn run_injects_only_named_keys_and_passes_the_exit_code() {
    let env = TestEnv::new();
    env.set_key("OPENROUTER_API_KEY", "sk-or-v1-aaaaaaaaaaaaaaaa");
    env.set_key("OTHER_API_KEY", "sk-other-bbbbbbbbbbbbbbb");
    let out = env.run(&[
        "run",
        "--with",
        "OPENROUTER_API_KEY",
        "--",
        "sh",
        "-c",
        "test \"$OPENROUTER_API_KEY\" = sk-or-v1-aaaaaaaaaaaaaaaa || exit 90; \
         test -z \"${OTHER_API_KEY-}\" || exit 91; test \"$QWEN_ENV\" = 1 || exit 92; exit 7",
    ]);
    assert_eq!(out.status.code(), Some(7), "{}", describe(&out));

    // A key that is not stored: a clear error, the command does not run.
    let out = env.run(&["run", "--with", "MISSING_KEY", "--", "sh", "-c", "exit 0"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("qwen-env key set MISSING_KEY"));
}

#[test]
fn run_reports_missing_commands_refuses_nesting_and_passes_signals() {
    use std::os::unix::process::ExitStatusExt;
    let mut env = TestEnv::new();
    let out = env.run(&["run", "--", "no-such-command-qwen-env"]);
    assert_eq!(out.status.code(), Some(127), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("command not found"));

    // The child runs under run's keeper (tests/tests/lineage.rs), and its signal death is ours.
    let child = env
        .client(&["run", "--", "sh", "-c", "echo $$; kill -TERM $$"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert_ne!(String::from_utf8_lossy(&out.stdout).trim(), pid.to_string());
    assert_eq!(out.status.signal(), Some(libc::SIGTERM));

    env.set_var("QWEN_ENV", "1");
    let out = env.run(&["run", "--", "true"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to nest"));
}

/// Secret Service through gnome-keyring in a private D-Bus session, unlocked from stdin.
#[test]
fn key_round_trip_on_secret_service() {
    let env = TestEnv::new();
    let script = format!(
        r#"set -e
$Q status --json | grep -q '"backend": "secret-service"'
printf %s {KEY} | $Q key set DASHSCOPE_API_KEY
$Q key ls --json
$Q daemon restart >/dev/null
$Q run --with DASHSCOPE_API_KEY -- sh -c 'printf "injected=%s\n" "$DASHSCOPE_API_KEY"'
$Q key rm DASHSCOPE_API_KEY
$Q daemon stop >/dev/null
"#
    );
    let Some(out) = env.with_secret_service(&script) else { return };
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("\"backend\": \"secret-service\""), "{stdout}");
    assert!(stdout.contains(&fingerprint(KEY)), "{stdout}");
    assert!(stdout.contains(&format!("injected={KEY}")), "{stdout}");
}

#[test]
fn forced_backend_that_is_missing_reports_what_to_do() {
    let mut env = TestEnv::new();
    env.set_var("QWEN_ENV_KEYRING", "secret-service");
    env.set_var("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus");
    let out = env.run(&["status"]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no Secret Service answers") && err.contains("QWEN_ENV_KEYRING=keyutils"),
        "{err}"
    );
    assert!(err.contains("qwen-envd.log"), "{err}");
}

/// A pasted `.env` or `export` line is refused without echoing the value, and nothing is stored.
#[test]
fn key_set_refuses_pasted_assignments_without_echoing_them() {
    let env = TestEnv::new();
    for line in
        [format!("DASHSCOPE_API_KEY={KEY}\n"), format!("export DASHSCOPE_API_KEY=\"{KEY}\"\n")]
    {
        let out = env.run_with_stdin(&["key", "set", "DASHSCOPE_API_KEY"], &line);
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(2), "{line:?}: {}", describe(&out));
        assert!(all.contains("looks like a shell or .env line (`DASHSCOPE_API_KEY=…`)"), "{all}");
        assert!(all.contains("nothing stored") && all.contains("qwen-env key import"), "{all}");
        assert!(!all.contains(KEY) && !all.contains("a289"), "the value was echoed: {all}");
    }
    assert!(env.ok(&["key", "ls"]).contains("no keys stored"));
    // Empty standard input: nothing stored, exit 1.
    let out = env.run_with_stdin(&["key", "set", "DASHSCOPE_API_KEY"], "");
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no key given; nothing stored"));
}

/// Replacing a key names the old one by fingerprint; setting the same value says so.
#[test]
fn key_set_shows_the_fingerprint_it_replaces() {
    const NEW: &str = "sk-fedcba9876543210fedcb777";
    let env = TestEnv::new();
    let first = env.run_with_stdin(&["key", "set", "--no-verify", "DASHSCOPE_API_KEY"], KEY);
    assert!(first.status.success(), "{}", describe(&first));
    assert!(!String::from_utf8_lossy(&first.stdout).contains("replaced"), "{}", describe(&first));
    let second = env.run_with_stdin(&["key", "set", "--no-verify", "DASHSCOPE_API_KEY"], NEW);
    let text = String::from_utf8_lossy(&second.stdout);
    assert!(second.status.success(), "{}", describe(&second));
    assert!(text.contains(&format!("({})", fingerprint(NEW))), "{text}");
    assert!(text.contains(&format!("replaced {} (sk-…a289", fingerprint(KEY))), "{text}");
    assert!(!text.contains(KEY) && !text.contains(NEW), "a value was printed: {text}");
    let same = env.run_with_stdin(&["key", "set", "--no-verify", "DASHSCOPE_API_KEY"], NEW);
    assert!(String::from_utf8_lossy(&same.stdout).contains("the same value was already stored"));
}

/// `key-age` counts from when the current value was stored: a key stored 200 days ago warns, and
/// storing the rotated key (the warning's own fix) ends the warning.
#[test]
fn a_rotated_key_restarts_its_age() {
    const NEW: &str = "sk-fedcba9876543210fedcb777";
    let env = TestEnv::new();
    env.set_key("DASHSCOPE_API_KEY", KEY);
    let qwen = env.home.join(".qwen");
    std::fs::create_dir_all(&qwen).unwrap();
    std::fs::write(
        qwen.join("settings.json"),
        r#"{ "modelProviders": { "openai": [ { "id": "qwen3-coder-plus", "envKey": "DASHSCOPE_API_KEY",
               "baseUrl": "https://dashscope-intl.aliyuncs.com/compatible-mode/v1" } ] },
             "security": { "auth": { "selectedType": "openai" } }, "model": { "name": "qwen3-coder-plus" } }"#,
    )
    .unwrap();
    // The daemon's metadata, as if the key had been stored 200 days ago.
    env.ok(&["daemon", "stop"]);
    let meta = std::fs::read_dir(env.root.path().join("data/qwen-env"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("keys.")))
        .expect("the daemon's key metadata");
    let mut doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
    let then =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
            - 200 * 86_400;
    for field in ["created", "changed"] {
        doc["keys"]["DASHSCOPE_API_KEY"][field] = then.into();
    }
    std::fs::write(&meta, serde_json::to_vec(&doc).unwrap()).unwrap();
    let codes = |env: &TestEnv| {
        let out = env.run(&["doctor", "--json"]);
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        doc["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["code"].to_string())
            .collect::<Vec<_>>()
    };
    assert!(codes(&env).contains(&"\"key-age\"".to_owned()), "{:?}", codes(&env));
    env.set_key("DASHSCOPE_API_KEY", NEW);
    assert!(!codes(&env).contains(&"\"key-age\"".to_owned()), "{:?}", codes(&env));
}

/// Runs argv on a fresh pty, types standard input once the prompt shows, prints the output and
/// then `exit=N echo=BOOL` (the terminal's echo flag after the process ended).
const DRIVER: &str = r#"
import os, sys, time, termios, fcntl, subprocess, select
send = sys.stdin.buffer.read()
master, slave = os.openpty()
def child():
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
p = subprocess.Popen(sys.argv[1:], stdin=slave, stdout=slave, stderr=slave, preexec_fn=child)
out = b""
deadline = time.time() + 20
sent = False
while time.time() < deadline:
    r, _, _ = select.select([master], [], [], 0.1)
    if r:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            chunk = b""
        out += chunk
    if not sent and b"input hidden" in out:
        time.sleep(0.2)
        os.write(master, send)
        sent = True
    if p.poll() is not None and not r:
        break
code = p.wait(timeout=5)
echo = bool(termios.tcgetattr(slave)[3] & termios.ECHO)
sys.stdout.write(out.decode("utf-8", "replace"))
sys.stdout.write("\nexit=%d echo=%s\n" % (code, echo))
"#;

/// The hidden prompt on a real terminal (a pty driven by python3): typing stores the key without
/// echoing it, Ctrl-D stores nothing (exit 1), Ctrl-C stores nothing (exit 130) and leaves the
/// terminal's echo on.
#[test]
fn hidden_prompt_handles_typing_ctrl_d_and_ctrl_c() {
    if !qwen_env_tests::require("python3") {
        return;
    }
    let env = TestEnv::new();
    let drive = |input: &str| {
        let mut cmd = env.command("python3");
        cmd.args(["-c", DRIVER, &qwen_env_tests::bin("qwen-env").display().to_string()]);
        cmd.args(["key", "set", "--no-verify", "DASHSCOPE_API_KEY"]);
        let out = qwen_env_tests::output_with_stdin(&mut cmd, input);
        assert!(out.status.success(), "driver: {}", describe(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let ctrl_d = drive("\x04");
    assert!(ctrl_d.contains("no key given; nothing stored"), "{ctrl_d}");
    assert!(ctrl_d.ends_with("exit=1 echo=True\n"), "{ctrl_d}");
    let ctrl_c = drive("\x03");
    assert!(ctrl_c.contains("interrupted; nothing stored"), "{ctrl_c}");
    assert!(ctrl_c.ends_with("exit=130 echo=True\n"), "Ctrl-C left echo off: {ctrl_c}");
    assert!(env.ok(&["key", "ls"]).contains("no keys stored"));
    let typed = drive(&format!("{KEY}\n"));
    assert!(typed.contains(&fingerprint(KEY)), "{typed}");
    assert!(typed.ends_with("exit=0 echo=True\n"), "{typed}");
    assert!(!typed.contains(KEY), "the prompt echoed the key: {typed}");
}

/// `run CMD` without `--`: clap's error, then the line with `--` in its place.
#[test]
fn run_without_the_separator_suggests_it() {
    let env = TestEnv::new();
    let out = env.run(&["run", "qwen", "-p", "hi"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("`qwen-env run -- qwen -p hi`"), "{stderr}");
    assert!(!env.daemon_running(), "a usage error starts nothing");
}
