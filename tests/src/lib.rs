//! Support for the end-to-end tests: an isolated environment that runs the real binaries.
//!
//! Each [`TestEnv`] has its own HOME, XDG directories, runtime dir and keychain namespace, and a
//! cleared environment, so tests never see the user's keys, config or daemon. Dropping it stops
//! the daemon it started.
//!
//! The binaries are the workspace's own `target/<host tuple>/<profile>/qwen-env` and `qwen-envd`
//! (.cargo/config.toml names the target): run
//! `cargo build --workspace --bins` before `cargo test` (the README's test command does).

pub mod mock;

use std::ffi::OsStr;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// `target/<host tuple>/<profile>`, found from the running executable: a test is
/// `…/<profile>/deps/<test>`, the bench binary `…/<profile>/bench`.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let mut dir = exe.parent().expect("target dir").to_owned();
    if dir.ends_with("deps") {
        dir.pop();
    }
    for bin in ["qwen-env", "qwen-envd"] {
        assert!(
            dir.join(bin).is_file(),
            "{} is missing: run `cargo build --workspace --bins` before the tests",
            dir.join(bin).display()
        );
    }
    dir
}

/// Path of a workspace binary.
pub fn bin(name: &str) -> PathBuf {
    target_dir().join(name)
}

/// Runs `cmd` with `input` on its standard input and collects its output.
pub fn output_with_stdin(cmd: &mut Command, input: &str) -> Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

/// An isolated user environment.
pub struct TestEnv {
    /// Owns every directory below.
    pub root: tempfile::TempDir,
    /// `$HOME`.
    pub home: PathBuf,
    /// `$XDG_RUNTIME_DIR` (the daemon's dir is `run/qwen-env`).
    pub runtime: PathBuf,
    /// Keychain namespace, unique per environment.
    pub namespace: String,
    /// Extra variables for every command.
    pub vars: Vec<(String, String)>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl TestEnv {
    /// A fresh environment using kernel keyutils.
    pub fn new() -> Self {
        let root = tempfile::Builder::new().prefix("qe").tempdir().expect("tempdir");
        let home = root.path().join("home");
        let runtime = root.path().join("run");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&runtime).unwrap();
        set_mode(&runtime, 0o700);
        let namespace = format!(
            "t{}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos() % 100_000)
        );
        Self {
            root,
            home,
            runtime,
            namespace,
            vars: vec![
                ("QWEN_ENV_KEYRING".into(), "keyutils".into()),
                // No probe leaves the machine unless a test asks for it (and points the
                // catalogue at loopback mocks with `QWEN_ENV_CATALOG`): tests/tests/probe.rs.
                ("QWEN_ENV_PROBE".into(), "off".into()),
            ],
        }
    }

    /// Sets (or replaces) a variable for every later command.
    pub fn set_var(&mut self, name: &str, value: &str) {
        self.vars.retain(|(k, _)| k != name);
        self.vars.push((name.to_owned(), value.to_owned()));
    }

    /// The daemon's runtime directory.
    pub fn daemon_dir(&self) -> PathBuf {
        self.runtime.join("qwen-env")
    }

    /// The daemon's log file.
    pub fn log_file(&self) -> PathBuf {
        self.root.path().join("state/qwen-env/qwen-envd.log")
    }

    /// The base environment every command gets.
    pub fn env_pairs(&self) -> Vec<(String, String)> {
        let r = self.root.path();
        let mut v = vec![
            ("PATH".to_owned(), "/usr/local/bin:/usr/bin:/bin".to_owned()),
            ("HOME".to_owned(), self.home.display().to_string()),
            ("XDG_RUNTIME_DIR".to_owned(), self.runtime.display().to_string()),
            ("XDG_CONFIG_HOME".to_owned(), r.join("config").display().to_string()),
            ("XDG_DATA_HOME".to_owned(), r.join("data").display().to_string()),
            ("XDG_STATE_HOME".to_owned(), r.join("state").display().to_string()),
            ("QWEN_ENV_NAMESPACE".to_owned(), self.namespace.clone()),
            ("QWEN_ENV_DAEMON".to_owned(), bin("qwen-envd").display().to_string()),
            ("QWEN_ENV_LOG".to_owned(), "debug".to_owned()),
        ];
        v.extend(self.vars.iter().cloned());
        v
    }

    /// A `Command` for a program in this environment (cleared env, cwd = HOME).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear().envs(self.env_pairs()).current_dir(&self.home).stdin(Stdio::null());
        cmd
    }

    /// A `qwen-env` command.
    pub fn client(&self, args: &[&str]) -> Command {
        let mut cmd = self.command(bin("qwen-env"));
        cmd.args(args);
        cmd
    }

    /// Runs `qwen-env ARGS` and returns its output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.client(args).output().expect("run qwen-env")
    }

    /// Runs `qwen-env ARGS` with `input` on stdin.
    pub fn run_with_stdin(&self, args: &[&str], input: &str) -> Output {
        output_with_stdin(&mut self.client(args), input)
    }

    /// Runs `qwen-env ARGS`, asserts success, returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "qwen-env {args:?} failed: {}", describe(&out));
        String::from_utf8(out.stdout).unwrap()
    }

    /// Stores a key through `qwen-env key set --no-verify NAME` with the value on stdin.
    pub fn set_key(&self, name: &str, value: &str) {
        let out = self.run_with_stdin(&["key", "set", "--no-verify", name], value);
        assert!(out.status.success(), "key set {name} failed: {}", describe(&out));
    }

    /// The running daemon's pid, from its pidfile.
    pub fn daemon_pid(&self) -> Option<i32> {
        let text = std::fs::read_to_string(self.daemon_dir().join("qwen-envd.pid")).ok()?;
        text.split_whitespace().next()?.parse().ok()
    }

    /// Whether a daemon holds the pidfile lock.
    pub fn daemon_running(&self) -> bool {
        let Ok(f) = File::open(self.daemon_dir().join("qwen-envd.pid")) else { return false };
        match f.try_lock() {
            Ok(()) => false,
            Err(_) => true,
        }
    }

    /// Waits (bounded) until no daemon holds the pidfile lock.
    pub fn wait_daemon_gone(&self, limit: Duration) -> bool {
        wait_until(limit, || !self.daemon_running())
    }

    /// Runs the `sh` script in a private D-Bus session whose Secret Service (gnome-keyring) is
    /// unlocked, with `$Q` naming the client; the daemon it starts picks the Secret Service (the
    /// keyutils default of [`TestEnv`] is lifted, everything else stays, probes off included).
    /// `None` when the tools are missing outside CI.
    pub fn with_secret_service(&self, script: &str) -> Option<Output> {
        if !require("dbus-run-session") || !require("gnome-keyring-daemon") {
            return None;
        }
        let full = format!(
            "printf %s test-password | gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>&1\n\
             Q='{}'\n{script}\n\
             # A keyring activated on demand would outlive the bus and hold our output open.\n\
             pkill -x gnome-keyring-d || true\n",
            bin("qwen-env").display()
        );
        let mut cmd = self.command("dbus-run-session");
        cmd.env_remove("QWEN_ENV_KEYRING").args(["--", "sh", "-c", &full]);
        Some(cmd.output().expect("dbus-run-session"))
    }

    /// Writes qwen-env's own `config.toml`.
    pub fn write_config(&self, text: &str) {
        let path = self.root.path().join("config/qwen-env/config.toml");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_file()).unwrap_or_default()
    }
}

impl Default for TestEnv {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if let Some(pid) = self.daemon_pid().filter(|_| self.daemon_running()) {
            // SAFETY: kill with a pid we read from our own daemon's pidfile.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            if !self.wait_daemon_gone(Duration::from_secs(5)) {
                // SAFETY: as above.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        self.remove_stored_keys();
    }
}

impl TestEnv {
    /// Deletes the keys this environment stored in kernel keyutils (the per-user persistent
    /// keyring outlives the test, and a user other than root may hold only 200 keys): the ones
    /// `/proc/keys` lists under this namespace, invalidated by keyctl in a session keyring of
    /// its own with the persistent keyring linked in (only a possessor may).
    fn remove_stored_keys(&self) {
        let Ok(keys) = std::fs::read_to_string("/proc/keys") else { return };
        let suffix = format!("@qwen-env-{}:", self.namespace);
        let ids: Vec<String> = keys
            .lines()
            .filter(|l| l.split_whitespace().any(|f| f.ends_with(&suffix)))
            .filter_map(|l| l.split_whitespace().next())
            .filter_map(|id| u32::from_str_radix(id, 16).ok())
            .map(|id| id.to_string())
            .collect();
        if ids.is_empty() || !have("keyctl") {
            return;
        }
        let script = r#"keyctl get_persistent @s >/dev/null || exit 0
for id; do keyctl invalidate "$id"; done"#;
        let _ = Command::new("keyctl")
            .args(["session", "-", "sh", "-c", script, "sh"])
            .args(&ids)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Polls `cond` every 10 ms until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Exit status, stdout and stderr, for assertion messages.
pub fn describe(out: &Output) -> String {
    format!(
        "{}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `sha256:` + 12 hex digits, computed independently of the daemon with `sha256sum`.
pub fn fingerprint(secret: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sha256sum");
    child.stdin.take().unwrap().write_all(secret.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    format!("sha256:{}", &String::from_utf8(out.stdout).unwrap()[..12])
}

/// Sets a file's mode.
pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A file's permission bits.
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Whether a program is on PATH.
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Skips a test whose tool is missing locally; in CI (`CI=true`) a missing tool is a failure,
/// because `.ci/run` installs everything.
pub fn require(program: &str) -> bool {
    if have(program) {
        return true;
    }
    assert!(std::env::var("CI").is_err(), "{program} is required in CI (.ci/run installs it)");
    eprintln!("SKIPPED: {program} is not installed");
    false
}
