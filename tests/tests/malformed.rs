//! The malformed-input corpus (`tests/fixtures/malformed/`), through the real binaries.
//!
//! Every broken settings, `.env` and OpenClaw file is put where the host tool reads it, and
//! `doctor --json` and `explain --json` must give a clear answer: a `config-parse-error` finding
//! with `file:line:col` where the file does not parse, valid JSON output otherwise. After each,
//! the same daemon still answers `status`, and no file under HOME changed (Qwen Code itself
//! rewrites a broken workspace `settings.json` to `{}`; we must not). Frame files are raw bytes
//! sent to the socket; none may take the daemon down.
//!
//! Also the regression tests for what fuzzing (`fuzz/`) found.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use qwen_env_tests::{TestEnv, describe};
use serde_json::Value;

/// Literal keys planted in some fixtures: they must never appear in any output.
const PLANTED: &[&str] = &["sk-leakleakleak0123456789abcd"];

fn corpus(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/malformed").join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    files
}

fn name(p: &Path) -> &str {
    p.file_name().unwrap().to_str().unwrap()
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// Every file under `dir` with its mode and bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u32, Vec<u8>)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                stack.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap_or_default();
                out.insert(p, (meta.permissions().mode(), bytes));
            }
        }
    }
    out
}

fn assert_unchanged(before: &BTreeMap<PathBuf, (u32, Vec<u8>)>, home: &Path, what: &str) {
    let after = snapshot(home);
    let b: Vec<&PathBuf> = before.keys().collect();
    let a: Vec<&PathBuf> = after.keys().collect();
    assert_eq!(a, b, "{what}: files under HOME were created or removed");
    for (p, v) in before {
        assert!(after[p] == *v, "{what}: {} was modified", p.display());
    }
}

fn status_pid(env: &TestEnv) -> u64 {
    let out = env.run(&["status", "--json"]);
    assert!(out.status.success(), "status failed: {}", describe(&out));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    json["pid"].as_u64().unwrap()
}

/// Runs `qwen-env ARGS` in `dir`; it must exit 0 or 1 (findings) and print JSON.
fn json_in(env: &TestEnv, dir: &Path, args: &[&str], what: &str) -> Value {
    let out = env.client(args).current_dir(dir).output().unwrap();
    assert!(
        out.status.code().is_some_and(|c| c <= 1),
        "{what}: qwen-env {args:?}: {}",
        describe(&out)
    );
    let all =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    for s in PLANTED {
        assert!(!all.contains(s), "{what}: a literal key from the file reached the output:\n{all}");
    }
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{what}: {e}: {}", describe(&out)))
}

fn findings(v: &Value) -> Vec<&Value> {
    v["findings"].as_array().unwrap().iter().collect()
}

fn parse_errors(v: &Value) -> Vec<&Value> {
    findings(v).into_iter().filter(|f| f["code"] == "config-parse-error").collect()
}

/// `location` is `<path>:<line>:<col>` with a position inside the file.
fn position_in(loc: &str, path: &Path, text_lines: usize) -> Option<(usize, usize)> {
    let rest = loc.strip_prefix(&path.display().to_string())?.strip_prefix(':')?;
    let (l, c) = rest.split_once(':')?;
    let (l, c): (usize, usize) = (l.parse().ok()?, c.parse().ok()?);
    (l >= 1 && c >= 1 && l <= text_lines).then_some((l, c))
}

fn lines_of(bytes: &[u8]) -> usize {
    bytes.split(|&b| b == b'\n').count()
}

/// Settings fixtures that `JSON.parse(stripJsonComments(…))` accepts: they must not raise
/// `config-parse-error` for syntax (the top level is an object).
const SETTINGS_THAT_PARSE: &[&str] = &[
    "huge-number.json",
    // Read as UTF-8 with replacement characters, as Node does: `"\u{FFFD}"` is a fine string.
    "invalid-utf8-truncated.json",
    "model-providers-wrong-type.json",
];

/// Positions pinned independently (Python's `json` module reports the same line:col, 1-based).
const SETTINGS_POSITIONS: &[(&str, (usize, usize))] = &[
    ("trailing-comma-object.json", (3, 1)),
    ("trailing-comma-array.json", (2, 50)),
    ("trailing-comma-nested.json", (1, 53)),
    ("missing-comma.json", (3, 3)),
    ("double-comma.json", (1, 10)),
    ("missing-colon.json", (1, 11)),
    ("unquoted-key.json", (2, 3)),
    ("single-quoted-string.json", (1, 22)),
    ("unterminated-block-comment.json", (5, 1)),
    ("extra-closing-brace.json", (5, 1)),
    ("two-top-level-values.json", (2, 1)),
    ("top-level-array.json", (1, 1)),
    ("crlf-trailing-comma.json", (3, 1)),
    ("literal-key-then-syntax-error.json", (3, 28)),
];

#[test]
fn broken_settings_give_a_positioned_parse_error_and_touch_nothing() {
    let env = TestEnv::new();
    let proj = env.home.join("work/proj");
    std::fs::create_dir_all(&proj).unwrap();
    let pid = status_pid(&env);
    let files = corpus("settings");
    let mut checked = 0;
    for fixture in &files {
        let bytes = std::fs::read(fixture).unwrap();
        let fname = name(fixture);
        for target in [env.home.join(".qwen/settings.json"), proj.join(".qwen/settings.json")] {
            let what = format!("{fname} as {}", target.display());
            let _ = std::fs::remove_file(env.home.join(".qwen/settings.json"));
            let _ = std::fs::remove_file(proj.join(".qwen/settings.json"));
            write(&target, &bytes);
            let before = snapshot(&env.home);

            let doctor = json_in(&env, &proj, &["doctor", "--json"], &what);
            let explain = json_in(&env, &proj, &["explain", "--json"], &what);
            for out in [&doctor, &explain] {
                let errs = parse_errors(out);
                if SETTINGS_THAT_PARSE.contains(&fname) {
                    assert!(errs.is_empty(), "{what}: unexpected parse error: {errs:?}");
                    continue;
                }
                assert_eq!(errs.len(), 1, "{what}: want one config-parse-error: {out:#}");
                let f = errs[0];
                assert_eq!(f["severity"], "error", "{what}: {f}");
                let loc = f["location"].as_str().unwrap_or_default();
                let pos = position_in(loc, &target, lines_of(&bytes))
                    .unwrap_or_else(|| panic!("{what}: location {loc:?} is not file:line:col"));
                if let Some((_, want)) = SETTINGS_POSITIONS.iter().find(|(n, _)| *n == fname) {
                    assert_eq!(pos, *want, "{what}: {f}");
                }
                assert!(!f["fix"].as_str().unwrap_or_default().is_empty(), "{what}: no fix");
            }
            assert_unchanged(&before, &env.home, &what);
            assert_eq!(status_pid(&env), pid, "{what}: the daemon restarted");
            checked += 1;
        }
    }
    assert!(checked >= 80, "only {checked} settings cases ran");
}

#[test]
fn broken_env_files_resolve_and_touch_nothing() {
    let env = TestEnv::new();
    let proj = env.home.join("work/proj");
    std::fs::create_dir_all(&proj).unwrap();
    let pid = status_pid(&env);
    let mut cases: Vec<(String, Vec<u8>)> =
        corpus("env").iter().map(|p| (name(p).to_owned(), std::fs::read(p).unwrap())).collect();
    // Too big to keep in the repository: a 1 MiB line, and a 1 MiB unterminated quoted value.
    let mut long = b"OPENAI_MODEL=".to_vec();
    long.resize(1 << 20, b'x');
    long.extend_from_slice(b"\nOPENAI_BASE_URL=http://127.0.0.1:9/v1\n");
    cases.push(("one-mib-line.env".into(), long));
    let mut quoted = b"OPENAI_MODEL=\"".to_vec();
    quoted.resize(1 << 20, b'y');
    cases.push(("one-mib-unterminated-quote.env".into(), quoted));

    for (fname, bytes) in &cases {
        for (target, args) in [
            (proj.join(".env"), &["--", "qwen"][..]),
            (env.home.join(".env"), &["--", "qwen"][..]),
            (env.home.join(".openclaw/.env"), &["--", "openclaw"][..]),
        ] {
            let what = format!("{fname} as {}", target.display());
            for t in [proj.join(".env"), env.home.join(".env"), env.home.join(".openclaw/.env")] {
                let _ = std::fs::remove_file(t);
            }
            write(&target, bytes);
            let before = snapshot(&env.home);
            let mut doctor_args = vec!["doctor", "--json"];
            doctor_args.extend_from_slice(args);
            let mut explain_args = vec!["explain", "--json"];
            explain_args.extend_from_slice(args);
            for out in [
                json_in(&env, &proj, &doctor_args, &what),
                json_in(&env, &proj, &explain_args, &what),
            ] {
                // dotenv never rejects a file; a finding that points into it names the line and
                // column (or the whole file: permissions).
                for f in findings(&out) {
                    let loc = f["location"].as_str().unwrap_or_default();
                    if let Some(rest) = loc.strip_prefix(&target.display().to_string())
                        && !rest.is_empty()
                    {
                        // `:line:col`, as every file location is.
                        let line = rest
                            .strip_prefix(':')
                            .and_then(|l| l.split_once(':'))
                            .filter(|(_, col)| {
                                let col = col.split(' ').next().unwrap_or_default();
                                col.parse::<usize>().is_ok_and(|c| c >= 1)
                            })
                            .and_then(|(l, _)| l.parse::<usize>().ok());
                        assert!(
                            line.is_some_and(|l| l >= 1 && l <= lines_of(bytes)),
                            "{what}: location {loc:?} has no line: {f}"
                        );
                    }
                }
            }
            assert_unchanged(&before, &env.home, &what);
            assert_eq!(status_pid(&env), pid, "{what}: the daemon restarted");
        }
    }
}

/// OpenClaw fixtures that JSON5 accepts.
const OPENCLAW_THAT_PARSE: &[&str] = &[
    "invalid-utf8.json5",
    "providers-wrong-types.json5",
    // Valid JSON5 but not an object: OpenClaw's own validation rejects it; qwen-env does not flag
    // it yet (openclaw.rs has no "top level is not an object" finding, unlike settings).
    "top-level-array.json5",
];

#[test]
fn broken_openclaw_config_gives_a_parse_error_and_touches_nothing() {
    let env = TestEnv::new();
    let proj = env.home.join("work/proj");
    std::fs::create_dir_all(&proj).unwrap();
    let pid = status_pid(&env);
    let target = env.home.join(".openclaw/openclaw.json");
    for fixture in corpus("openclaw") {
        let bytes = std::fs::read(&fixture).unwrap();
        let fname = name(&fixture);
        let what = format!("{fname} as {}", target.display());
        write(&target, &bytes);
        let before = snapshot(&env.home);
        for args in [
            &["doctor", "--json", "--", "openclaw"][..],
            &["explain", "--json", "--", "openclaw"][..],
        ] {
            let out = json_in(&env, &proj, args, &what);
            let errs = parse_errors(&out);
            if OPENCLAW_THAT_PARSE.contains(&fname) {
                assert!(errs.is_empty(), "{what}: unexpected parse error: {errs:?}");
                continue;
            }
            assert_eq!(errs.len(), 1, "{what}: want one config-parse-error: {out:#}");
            let f = errs[0];
            let loc = f["location"].as_str().unwrap_or_default();
            assert!(loc.starts_with(&target.display().to_string()), "{what}: {f}");
            // The position: in the location, or at least in the message.
            let msg = f["message"].as_str().unwrap_or_default();
            let positioned = position_in(loc, &target, lines_of(&bytes)).is_some()
                || msg.contains(" line ")
                || msg.contains("-->");
            assert!(positioned, "{what}: no position: {f}");
        }
        assert_unchanged(&before, &env.home, &what);
        assert_eq!(status_pid(&env), pid, "{what}: the daemon restarted");
    }
}

#[test]
fn raw_frame_files_never_take_the_daemon_down() {
    let env = TestEnv::new();
    let pid = status_pid(&env);
    let sock = env.daemon_dir().join("sock");
    for fixture in corpus("frames") {
        let bytes = std::fs::read(&fixture).unwrap();
        let what = name(&fixture);
        let mut s = UnixStream::connect(&sock).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        // The daemon may close early (oversized length): a failed write is fine.
        let _ = s.write_all(&bytes);
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut answer = Vec::new();
        let started = std::time::Instant::now();
        let _ = s.read_to_end(&mut answer);
        assert!(
            started.elapsed() < Duration::from_secs(14),
            "{what}: the daemon kept a half-closed connection open"
        );
        assert_eq!(status_pid(&env), pid, "{what}: the daemon restarted");
    }
    // The handshake with the wrong protocol did not let a key in.
    let keys: Value = serde_json::from_str(&env.ok(&["key", "ls", "--json"])).unwrap();
    assert!(!keys.to_string().contains("\"K\""), "{keys}");
}

// Regression tests for what fuzzing and this corpus found.

/// Nesting past `jsonc::MAX_DEPTH` (128) overflowed the daemon's stack (settings at 1000 levels,
/// OpenClaw JSON5 at 1000): any cloned repository's `.qwen/settings.json` could kill the daemon.
/// Now 128 levels parse and 129 are a positioned `config-parse-error`.
#[test]
fn nesting_depth_is_bounded_with_a_position() {
    let env = TestEnv::new();
    let proj = env.home.join("work/proj");
    std::fs::create_dir_all(&proj).unwrap();
    let pid = status_pid(&env);
    let ws = proj.join(".qwen/settings.json");
    // `{"a":` is one level, then n-1 arrays.
    let nested = |n: usize| format!("{{\"a\":{}{}}}", "[".repeat(n - 1), "]".repeat(n - 1));
    write(&ws, nested(128).as_bytes());
    let out = json_in(&env, &proj, &["doctor", "--json"], "128 levels");
    assert!(parse_errors(&out).is_empty(), "{out:#}");
    write(&ws, nested(129).as_bytes());
    let out = json_in(&env, &proj, &["doctor", "--json"], "129 levels");
    let errs = parse_errors(&out);
    assert_eq!(errs.len(), 1, "{out:#}");
    assert_eq!(errs[0]["location"], format!("{}:1:133", ws.display()), "{out:#}");
    assert!(errs[0]["message"].as_str().unwrap().contains("nesting deeper than 128"), "{out:#}");
    for n in [1_000, 100_000] {
        write(&ws, nested(n).as_bytes());
        json_in(&env, &proj, &["doctor", "--json"], "deep settings");
        write(&env.home.join(".openclaw/openclaw.json"), nested(n).as_bytes());
        let out = json_in(&env, &proj, &["doctor", "--json", "--", "openclaw"], "deep JSON5");
        assert_eq!(parse_errors(&out).len(), 1, "{out:#}");
    }
    assert_eq!(status_pid(&env), pid, "the daemon restarted");
}

/// A JSON5 syntax error quoted the offending source line in the finding, literal key and all.
#[test]
fn json5_errors_do_not_quote_the_file() {
    let env = TestEnv::new();
    let key = "sk-quotedquoted0123456789abcdef";
    write(
        &env.home.join(".openclaw/openclaw.json"),
        format!("{{\n  models: {{ providers: {{ qwen: {{ apiKey: \"{key}\" ]]] }} }} }}\n}}\n")
            .as_bytes(),
    );
    let out = env.client(&["doctor", "--json", "--", "openclaw"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains(key), "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    let errs = parse_errors(&v);
    assert_eq!(errs.len(), 1, "{v:#}");
    assert!(errs[0]["message"].as_str().unwrap().contains("at line 2 column"), "{v:#}");
}

/// Key lookups were linear per key (JSONC objects, settings merge, dotenv line numbers and
/// `to_map`): a 1 MB settings file or `.env` in a cloned repository kept the daemon busy for
/// minutes and every other client timed out.
#[test]
fn megabyte_files_with_many_keys_resolve_quickly() {
    let env = TestEnv::new();
    let proj = env.home.join("work/proj");
    let keys: Vec<String> = (0..100_000).map(|i| format!("\"k{i}\":0")).collect();
    write(&proj.join(".qwen/settings.json"), format!("{{{}}}", keys.join(",")).as_bytes());
    write(&env.home.join(".qwen/settings.json"), format!("{{{}}}", keys.join(",")).as_bytes());
    let lines: String = (0..100_000).fold(String::new(), |mut s, i| {
        use std::fmt::Write;
        let _ = writeln!(s, "K{i}=1");
        s
    });
    write(&proj.join(".env"), lines.as_bytes());
    status_pid(&env);
    let started = std::time::Instant::now();
    json_in(&env, &proj, &["doctor", "--json"], "1 MB files");
    // Debug build; about 2 s here, and it was over 5 minutes.
    assert!(started.elapsed() < Duration::from_secs(25), "took {:?}", started.elapsed());
}

/// Found while fuzzing the resolver: a settings string that references a secret variable
/// (`"model": {"name": "$DASHSCOPE_API_KEY"}`, or inside a `baseUrl`) is expanded as Qwen Code
/// does, and the expanded value must still never be shown (model / base URL fields, findings).
#[test]
fn secret_referenced_from_a_settings_string_is_masked() {
    let mut env = TestEnv::new();
    let key = "sk-expandedexpanded0123456789";
    env.set_var("DASHSCOPE_API_KEY", key);
    write(
        &env.home.join(".qwen/settings.json"),
        br#"{ "security": { "auth": { "selectedType": "openai" } },
  "model": { "name": "$DASHSCOPE_API_KEY" },
  "modelProviders": { "openai": [ { "id": "$DASHSCOPE_API_KEY", "envKey": "DASHSCOPE_API_KEY",
    "baseUrl": "https://x.example/${DASHSCOPE_API_KEY}" } ] } }"#,
    );
    let proj = env.home.join("p");
    std::fs::create_dir_all(&proj).unwrap();
    for args in [&["explain", "--json"][..], &["doctor", "--json"][..], &["explain"][..]] {
        let out = env.client(args).current_dir(&proj).output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!text.contains(key), "qwen-env {args:?} shows the key:\n{text}");
    }
}

/// `key import FILE` fell back to `json5::from_str::<serde_json::Value>`, which has no depth
/// bound: a deeply nested JSON5 file named on the command line overflowed the daemon's stack.
#[test]
fn key_import_of_a_deeply_nested_file_is_an_error_not_a_crash() {
    let env = TestEnv::new();
    let pid = status_pid(&env);
    let deep = env.home.join("deep.json");
    // Unquoted key: not JSON, so the JSON5 fallback runs.
    write(&deep, format!("{{ a: {}{} }}", "[".repeat(3000), "]".repeat(3000)).as_bytes());
    let before = snapshot(&env.home);
    let out = env.run(&["key", "import", deep.to_str().unwrap()]);
    assert_ne!(out.status.code(), Some(3), "the daemon died: {}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not parse"), "{}", describe(&out));
    assert_unchanged(&before, &env.home, "key import");
    assert_eq!(status_pid(&env), pid, "the daemon restarted");
}
