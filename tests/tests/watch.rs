//! Watching: edits by rename, in place, delete and recreate, a new `.env` in a parent, a broken
//! then fixed settings file; `events` and `status` show them. Outcomes are asserted within a
//! bounded wait; latency is measured by the benchmark, not here.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use qwen_env_tests::{TestEnv, fingerprint, wait_until};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(10);

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Saves like an editor: write a temp file beside it, then rename over.
fn save_by_rename(path: &Path, text: &str) {
    let tmp = path.with_extension("swp~");
    write(&tmp, text);
    std::fs::rename(&tmp, path).unwrap();
}

fn explain(env: &TestEnv, dir: &Path) -> Value {
    let out = env.client(&["explain", "--as-is", "--json"]).current_dir(dir).output().unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `qwen-env events --json`, with its lines arriving on a channel.
struct Events {
    child: Child,
    lines: mpsc::Receiver<Value>,
}

impl Events {
    fn start(env: &TestEnv) -> Self {
        let mut child = env.client(&["events", "--json"]).stdout(Stdio::piped()).spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(serde_json::from_str(&line).unwrap()).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    /// The next event matching `pred`, within [`WAIT`].
    fn expect(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(ev) if pred(&ev) => return ev,
                Ok(_) => {}
                Err(e) => panic!("no event {what} within {WAIT:?}: {e}"),
            }
        }
    }

    /// Everything that arrives within `quiet`.
    fn drain(&self, quiet: Duration) -> Vec<Value> {
        let mut got = Vec::new();
        while let Ok(ev) = self.lines.recv_timeout(quiet) {
            got.push(ev);
        }
        got
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_change(ev: &Value, file: &Path) -> bool {
    ev["kind"].as_str().is_some_and(|k| k.starts_with("file-"))
        && ev["path"] == file.display().to_string()
}

#[test]
fn edits_of_every_kind_are_seen_and_streamed() {
    let env = TestEnv::new();
    let proj = env.home.join("proj");
    let deep = proj.join("a/b");
    std::fs::create_dir_all(&deep).unwrap();
    let settings = env.home.join(".qwen/settings.json");
    write(&settings, r#"{ "security": { "auth": { "selectedType": "openai" } } }"#);
    let j = explain(&env, &deep);
    assert_eq!(j["api_key"]["fingerprint"], Value::Null);
    let events = Events::start(&env);
    // The stream is established once status answers after it (same daemon, ordered accept).
    env.ok(&["status"]);

    // A new .env in a parent directory of the walk-up.
    write(&proj.join(".env"), "OPENAI_API_KEY=sk-first000000000000000001\n");
    events.expect("for the new .env", |ev| is_change(ev, &proj.join(".env")));
    let ev = events.expect("findings for the context", |ev| ev["kind"] == "findings-changed");
    assert!(ev["context"].as_str().unwrap().ends_with("proj/a/b"), "{ev}");
    assert_eq!(
        explain(&env, &deep)["api_key"]["fingerprint"],
        fingerprint("sk-first000000000000000001")
    );

    // Saved by rename, as editors do.
    save_by_rename(&proj.join(".env"), "OPENAI_API_KEY=sk-second00000000000000002\n");
    events.expect("for the rename", |ev| is_change(ev, &proj.join(".env")));
    assert_eq!(
        explain(&env, &deep)["api_key"]["fingerprint"],
        fingerprint("sk-second00000000000000002")
    );

    // Written in place.
    std::fs::write(proj.join(".env"), "OPENAI_API_KEY=sk-third000000000000000003\n").unwrap();
    events.expect("for the in-place write", |ev| is_change(ev, &proj.join(".env")));
    assert_eq!(
        explain(&env, &deep)["api_key"]["fingerprint"],
        fingerprint("sk-third000000000000000003")
    );

    // A no-op rewrite, a backup and a temp file: nothing happens.
    std::fs::write(proj.join(".env"), "OPENAI_API_KEY=sk-third000000000000000003\n").unwrap();
    write(&proj.join(".env.orig"), "junk");
    write(&env.home.join(".qwen/settings.json.corrupted"), "junk");
    let quiet = events.drain(Duration::from_millis(400));
    assert!(quiet.is_empty(), "events for a no-op or ignored files: {quiet:?}");

    // Deleted, then recreated.
    std::fs::remove_file(proj.join(".env")).unwrap();
    let ev = events.expect("for the delete", |ev| is_change(ev, &proj.join(".env")));
    assert_eq!(ev["kind"], "file-removed");
    assert_eq!(explain(&env, &deep)["api_key"]["fingerprint"], Value::Null);
    write(&proj.join(".env"), "OPENAI_API_KEY=sk-fourth00000000000000004\n");
    events.expect("for the recreate", |ev| is_change(ev, &proj.join(".env")));
    assert_eq!(
        explain(&env, &deep)["api_key"]["fingerprint"],
        fingerprint("sk-fourth00000000000000004")
    );

    // A .qwen/.env appearing in a directory that had none (a directory created on the way).
    write(&deep.join(".qwen/.env"), "OPENAI_API_KEY=sk-fifth000000000000000005\n");
    events.expect("for the new .qwen/.env", |ev| is_change(ev, &deep.join(".qwen/.env")));
    assert_eq!(
        explain(&env, &deep)["api_key"]["fingerprint"],
        fingerprint("sk-fifth000000000000000005")
    );

    // Broken settings: a finding with the position; the last good state is not needed for the
    // key, and fixing the file clears the finding.
    save_by_rename(
        &settings,
        "{\n  \"security\": { \"auth\": { \"selectedType\": \"openai\" } }\n  oops\n}\n",
    );
    let ev = events.expect("the parse error", |ev| {
        ev["kind"] == "findings-changed"
            && ev["findings"].to_string().contains("config-parse-error")
    });
    assert!(ev["findings"].to_string().contains("settings.json:3:"), "{ev}");
    save_by_rename(&settings, r#"{ "security": { "auth": { "selectedType": "openai" } } }"#);
    events.expect("the fix", |ev| {
        ev["kind"] == "findings-changed"
            && !ev["findings"].to_string().contains("config-parse-error")
    });

    // status lists the watched files and the context.
    let s: Value = serde_json::from_str(&env.ok(&["status", "--json"])).unwrap();
    let watched = s["watched"].to_string();
    assert!(
        watched.contains(".qwen/settings.json") && watched.contains("proj/a/b/.qwen/.env"),
        "{s:#}"
    );
    assert!(s["contexts"].to_string().contains("proj/a/b"), "{s:#}");
    assert_eq!(s["watch_note"], Value::Null);
}

#[test]
fn at_the_watch_limit_changes_are_still_seen_on_the_next_command() {
    let mut env = TestEnv::new();
    env.set_var("QWEN_ENV_MAX_WATCHES", "1");
    let proj = env.home.join("proj");
    std::fs::create_dir_all(&proj).unwrap();
    write(
        &env.home.join(".qwen/settings.json"),
        r#"{ "security": { "auth": { "selectedType": "openai" } } }"#,
    );
    let j = explain(&env, &proj);
    let limit =
        j["findings"].as_array().unwrap().iter().find(|f| f["code"] == "watch-limit").cloned();
    let limit = limit.unwrap_or_else(|| panic!("no watch-limit finding: {j:#}"));
    assert!(limit["fix"].as_str().unwrap().contains("max_user_watches"), "{limit}");
    let s: Value = serde_json::from_str(&env.ok(&["status", "--json"])).unwrap();
    assert!(s["watch_note"].as_str().unwrap().contains("sysctl"), "{s:#}");
    write(&proj.join(".env"), "OPENAI_API_KEY=sk-unwatched00000000000006\n");
    assert!(wait_until(WAIT, || explain(&env, &proj)["api_key"]["fingerprint"]
        == fingerprint("sk-unwatched00000000000006")));
    // Silenced like any other code (status still has the note).
    env.write_config("silence = [\"watch-limit\"]\n");
    assert!(wait_until(WAIT, || {
        !explain(&env, &proj)["findings"].to_string().contains("watch-limit")
    }));
}

/// Every answer is exact right after an edit, with no wait: in-place rewrites of the same size
/// (same inode, same length, often the same mtime tick) between two requests in a tight loop.
/// The parse cache and the daemon's memo of assessments must both notice each one.
#[test]
fn an_edit_between_two_requests_is_always_seen() {
    let env = TestEnv::new();
    let proj = env.home.join("work/tight");
    let dotenv = proj.join(".env");
    std::fs::create_dir_all(&proj).unwrap();
    let settings = format!(
        r#"{{ "security": {{ "auth": {{ "selectedType": "openai" }} }}, "model": {{ "name": "m" }},
  "modelProviders": {{ "openai": [ {{ "id": "m", "envKey": "DASHSCOPE_API_KEY", "baseUrl": "{}" }} ] }} }}"#,
        "https://dashscope-intl.aliyuncs.com/compatible-mode/v1"
    );
    write(&env.home.join(".qwen/settings.json"), &settings);
    for i in 0..40 {
        // Same length every time: only the content tells the versions apart.
        let key = format!("sk-tight{i:020}");
        std::fs::write(&dotenv, format!("DASHSCOPE_API_KEY={key}\n")).unwrap();
        let first = explain(&env, &proj);
        assert_eq!(first["api_key"]["fingerprint"], fingerprint(&key), "edit {i}: first request");
        // The same question again (the memo's hit path) is still this version.
        let again = explain(&env, &proj);
        assert_eq!(again["api_key"]["fingerprint"], fingerprint(&key), "edit {i}: second request");
    }
}
