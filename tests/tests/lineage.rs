//! Issue 12 item 2: a process started by `run` must not get other keys, change or delete keys,
//! trigger probes or stop the daemon — not by re-parenting to init (`setsid -f`, `nohup … &` with
//! its parent exiting, a double fork), not after `run` has returned, not across a daemon restart,
//! not by deleting the lineage file. And `run` passes the command's exit status through.
//!
//! Each attack runs `qwen-env run --with OTHER_API_KEY -- env` from the escaped process, with its
//! output in files; the tests look for OTHER's value there and never print it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use qwen_env_tests::{TestEnv, bin, describe, fingerprint, mode, wait_until};

const GIVEN: &str = "sk-lineagegiven0000000000001";
const OTHER: &str = "sk-lineageother0000000000002";

fn env_with_keys() -> TestEnv {
    let env = TestEnv::new();
    env.set_key("GIVEN_API_KEY", GIVEN);
    env.set_key("OTHER_API_KEY", OTHER);
    env
}

/// Where an escaped process leaves its inner request's output, exit code and a done marker.
struct Escape {
    dir: PathBuf,
}

impl Escape {
    fn new(env: &TestEnv, name: &str) -> Self {
        let dir = env.root.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        Self { dir }
    }

    /// Writes the script the escaped process runs, and returns its path: the inner
    /// `qwen-env ARGS`, with the nesting marker cleared as a hostile agent would, after
    /// `wait_for` exists (if given).
    fn inner(&self, args: &str, wait_for: Option<&Path>) -> String {
        let wait = wait_for.map_or(String::new(), |f| {
            format!(
                "i=0; while [ ! -e '{}' ] && [ $i -lt 1000 ]; do sleep 0.01; i=$((i+1)); done\n",
                f.display()
            )
        });
        let script = format!(
            "{wait}env -u QWEN_ENV '{qe}' {args} >'{d}/out' 2>'{d}/err'\necho $? >'{d}/rc.tmp'\nmv '{d}/rc.tmp' '{d}/rc'\n",
            qe = bin("qwen-env").display(),
            d = self.dir.display()
        );
        let path = self.dir.join("steal.sh");
        std::fs::write(&path, script).unwrap();
        let path = path.display().to_string();
        // Embedded in the tests' quoted shell snippets as it is.
        assert!(!path.contains(|c: char| c.is_whitespace() || "'\"$`\\".contains(c)), "{path}");
        format!("sh {path}")
    }

    /// Waits (bounded) for the inner request to finish; its exit code and stderr.
    fn result(&self) -> (i32, String) {
        let rc = self.dir.join("rc");
        assert!(
            wait_until(Duration::from_secs(20), || rc.exists()),
            "the escaped process never finished"
        );
        let code = std::fs::read_to_string(&rc).unwrap().trim().parse().unwrap();
        (code, std::fs::read_to_string(self.dir.join("err")).unwrap_or_default())
    }

    /// Asserts the inner request was refused and OTHER's value is nowhere in its output.
    fn assert_refused(&self) {
        let (code, err) = self.result();
        let out = std::fs::read_to_string(self.dir.join("out")).unwrap_or_default();
        assert!(
            !out.contains(OTHER) && !err.contains(OTHER),
            "the escaped process got OTHER_API_KEY"
        );
        assert_ne!(code, 0, "the escaped process's request succeeded; stderr: {err}");
        assert!(err.contains("refused") && err.contains("qwen-env run"), "{err}");
        assert!(err.contains("allow_nesting = true") && err.contains("your own shell"), "{err}");
    }
}

/// Runs `qwen-env run --with GIVEN_API_KEY -- sh -c SCRIPT`; asserts it succeeded.
fn run_sh(env: &TestEnv, script: &str) -> std::process::Output {
    let started = Instant::now();
    let out = env.run(&["run", "--with", "GIVEN_API_KEY", "--", "sh", "-c", script]);
    assert!(started.elapsed() < Duration::from_secs(5), "run waited for a background process");
    assert!(out.status.success(), "{}", describe(&out));
    out
}

const STEAL: &str = "run --with OTHER_API_KEY -- env";

#[test]
fn setsid_fork_is_still_refused() {
    let env = env_with_keys();
    let esc = Escape::new(&env, "setsid");
    // setsid -f forks and its parent exits: the child re-parents (to init, before the keeper).
    let inner = esc.inner(STEAL, None);
    run_sh(&env, &format!("setsid -f sh -c 'sleep 0.2; {inner}'"));
    esc.assert_refused();
}

#[test]
fn nohup_with_the_parent_exiting_is_still_refused() {
    let env = env_with_keys();
    let esc = Escape::new(&env, "nohup");
    let inner = esc.inner(STEAL, None);
    // The intermediate shell exits at once; nohup's process is orphaned.
    let script = format!("sh -c \"nohup sh -c 'sleep 0.2; {inner}' >/dev/null 2>&1 &\"; exit 0");
    run_sh(&env, &script);
    esc.assert_refused();
}

#[test]
fn a_double_fork_is_still_refused() {
    let env = env_with_keys();
    let esc = Escape::new(&env, "double");
    let inner = esc.inner(STEAL, None);
    run_sh(&env, &format!("( sh -c 'sleep 0.2; {inner}' & ) ; exit 0"));
    esc.assert_refused();
}

/// The orphan waits until `run` has returned to the shell, then double-forks again and asks:
/// the keeper is still alive (it stays while anything is left under it), so still refused.
/// And `run` itself returned at once, without waiting for the orphan, and without holding its
/// output pipe open.
#[test]
fn an_orphan_that_waits_for_run_to_return_is_still_refused() {
    let env = env_with_keys();
    let esc = Escape::new(&env, "late");
    let go = env.root.path().join("go");
    let path = env.root.path().join("late.sh");
    std::fs::write(&path, format!("setsid -f {}\n", esc.inner(STEAL, Some(&go)))).unwrap();
    run_sh(&env, &format!("setsid -f sh '{}' >/dev/null 2>&1; exit 0", path.display()));
    assert!(!esc.dir.join("rc").exists());
    std::fs::write(&go, "").unwrap();
    esc.assert_refused();
}

/// The user restarts the daemon between: the record is in the runtime dir (0600) and still
/// refuses the orphan.
#[test]
fn a_daemon_restart_by_the_user_does_not_forget() {
    let env = env_with_keys();
    let esc = Escape::new(&env, "restart");
    let go = env.root.path().join("go");
    let inner = esc.inner(STEAL, Some(&go));
    // (Its output elsewhere: holding run's pipes open would keep `output()` reading.)
    run_sh(&env, &format!("setsid -f {inner} >/dev/null 2>&1 </dev/null"));
    let file = env.daemon_dir().join("lineage");
    assert_eq!(mode(&file), 0o600);
    // The keeper (the process that asked for the plan) is recorded by pid and start time.
    let keepers = keepers_for(&env);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        keepers.iter().any(|k| text.lines().any(|l| l.starts_with(&format!("{k} ")))),
        "keepers {keepers:?} not in the record:\n{text}"
    );
    let before = env.daemon_pid();
    env.ok(&["daemon", "restart"]);
    assert_ne!(before, env.daemon_pid(), "the daemon did not restart");
    std::fs::write(&go, "").unwrap();
    esc.assert_refused();
}

/// Even with the record gone (the daemon killed, the file deleted), a live keeper refuses.
#[test]
fn deleting_the_record_and_killing_the_daemon_does_not_help() {
    let env = env_with_keys();
    let esc = Escape::new(&env, "deleted");
    let go = env.root.path().join("go");
    let inner = esc.inner(STEAL, Some(&go));
    // (Its output elsewhere: holding run's pipes open would keep `output()` reading.)
    run_sh(&env, &format!("setsid -f {inner} >/dev/null 2>&1 </dev/null"));
    let pid = env.daemon_pid().unwrap();
    // SAFETY: our own daemon.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    assert!(env.wait_daemon_gone(Duration::from_secs(5)));
    std::fs::remove_file(env.daemon_dir().join("lineage")).unwrap();
    std::fs::write(&go, "").unwrap();
    esc.assert_refused();
}

/// Every request that reveals, changes or deletes a key, can probe, or stops the daemon is
/// refused to a descendant; the keys are unchanged afterwards.
#[test]
fn other_requests_from_a_descendant_are_refused() {
    let env = env_with_keys();
    let qe = bin("qwen-env");
    let qe = qe.display();
    let attempts = [
        format!("printf %s sk-overwritten000000000000003 | {qe} key set --no-verify OTHER_API_KEY"),
        format!("printf %s sk-overwritten000000000000003 | {qe} key set OTHER_API_KEY"),
        format!("{qe} key rm OTHER_API_KEY"),
        format!("{qe} key import"),
        format!("{qe} explain"),
        format!("{qe} doctor"),
        format!("{qe} doctor --verify"),
    ];
    for attempt in &attempts {
        let script = format!("unset QWEN_ENV; {attempt}; echo rc=$?");
        let out = env.run(&["run", "--with", "GIVEN_API_KEY", "--", "sh", "-c", &script]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stdout.contains("rc=0"), "{attempt}: {}", describe(&out));
        assert!(
            stderr.contains("refused: this process was started by `qwen-env run`"),
            "{attempt}: {stderr}"
        );
    }
    let list = env.ok(&["key", "ls", "--json"]);
    assert!(list.contains(&fingerprint(OTHER)), "a descendant changed OTHER_API_KEY: {list}");
    // Metadata stays readable: `status` and `key ls` are not refused.
    let out =
        env.run(&["run", "--", "sh", "-c", &format!("unset QWEN_ENV; {qe} key ls && {qe} status")]);
    assert!(out.status.success(), "{}", describe(&out));
}

// A refused `Shutdown` does not stop the daemon: the server stops only when the handler
// answered `ShuttingDown`.
#[test]
fn a_descendant_cannot_stop_or_restart_the_daemon() {
    let env = env_with_keys();
    let qe = bin("qwen-env");
    for verb in ["stop", "restart"] {
        let pid = env.daemon_pid();
        let script = format!("unset QWEN_ENV; {} daemon {verb}", qe.display());
        let out = env.run(&["run", "--", "sh", "-c", &script]);
        assert!(!out.status.success(), "{}", describe(&out));
        assert!(String::from_utf8_lossy(&out.stderr).contains("refused"), "{}", describe(&out));
        assert!(
            env.daemon_running() && env.daemon_pid() == pid,
            "daemon {verb} from a descendant stopped it"
        );
    }
}

#[test]
fn run_passes_exit_codes_and_signals_through() {
    use std::os::unix::process::ExitStatusExt;
    let env = env_with_keys();
    for (script, code) in [("exit 0", 0), ("exit 7", 7), ("exit 255", 255)] {
        let out = env.run(&["run", "--with", "GIVEN_API_KEY", "--", "sh", "-c", script]);
        assert_eq!(out.status.code(), Some(code), "{script}: {}", describe(&out));
    }
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGKILL] {
        let out = env.run(&["run", "--", "sh", "-c", &format!("kill -{sig} $$")]);
        assert_eq!(out.status.signal(), Some(sig), "{}", describe(&out));
    }
    // A signal sent to `run` (the pid the shell knows) reaches the command.
    let mut child = env
        .client(&[
            "run",
            "--",
            "sh",
            "-c",
            "trap 'echo got-term; exit 42' TERM; echo ready; while :; do sleep 0.05; done",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 6];
    std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
    assert_eq!(&first, b"ready\n");
    // SAFETY: the client we started.
    unsafe { libc::kill(i32::try_from(child.id()).unwrap(), libc::SIGTERM) };
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert!(rest.contains("got-term"), "{rest}");
    assert_eq!(child.wait().unwrap().code(), Some(42));
}

/// The keeper goes away with the last process under it: nothing is left behind.
#[test]
fn the_keeper_exits_with_the_last_process_under_it() {
    let env = env_with_keys();
    let marker = env.root.path().join("bg-done");
    run_sh(&env, &format!("setsid -f sh -c 'sleep 1; touch {}' >/dev/null 2>&1", marker.display()));
    let keepers = || keepers_for(&env);
    assert!(!keepers().is_empty(), "no keeper stayed for the background process");
    assert!(wait_until(Duration::from_secs(10), || marker.exists()));
    assert!(
        wait_until(Duration::from_secs(5), || keepers().is_empty()),
        "the keeper outlived everything under it"
    );
    // Without anything in the background, no keeper is left once run returns.
    run_sh(&env, &format!("true {}", env.root.path().display()));
    assert!(keepers().is_empty());
}

/// Live keepers whose command line names this test's directory.
fn keepers_for(env: &TestEnv) -> Vec<u32> {
    let needle = env.root.path().display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            comm.trim() == qwen_env_proto::KEEPER_NAME
                && String::from_utf8_lossy(&cmdline).contains(&needle)
        })
        .collect()
}

/// A child connects and exits; its parent, started by `run`, then speaks on the socket. The
/// socket's credentials name the dead child, whose ancestry can no longer be read: the daemon
/// must refuse (it used to let the request through). Found by the red team.
#[test]
fn a_request_on_a_socket_whose_connecting_process_exited_is_refused() {
    let env = env_with_keys();
    let script = env.root.path().join("orphaned_socket.py");
    std::fs::write(
        &script,
        r#"import os, socket, struct, sys
def varint(n):
    b = b""
    while True:
        x = n & 0x7f; n >>= 7
        if n: b += bytes([x | 0x80])
        else: return b + bytes([x])
def s(t): t = t.encode(); return varint(len(t)) + t
def frame(body): return struct.pack(">I", len(body)) + body
def read(c):
    h = b""
    while len(h) < 4:
        x = c.recv(4 - len(h))
        if not x: return b""
        h += x
    n = struct.unpack(">I", h)[0]; b = b""
    while len(b) < n:
        x = c.recv(n - len(b))
        if not x: break
        b += x
    return b
c = socket.socket(socket.AF_UNIX); c.settimeout(5)
pid = os.fork()
if pid == 0:
    c.connect(os.environ["XDG_RUNTIME_DIR"] + "/qwen-env/sock"); os._exit(0)
os.waitpid(pid, 0)
c.sendall(frame(varint(int(sys.argv[1])) + s("0.1.0")))
read(c)
c.sendall(frame(varint(3) + s("OTHER_API_KEY")))  # Request::KeyRemove
r = read(c)
print("refused" if b"refused" in r else "answered " + r[:1].hex())
"#,
    )
    .unwrap();
    let protocol = qwen_env_proto::PROTOCOL_VERSION.to_string();
    let out = env
        .client(&["run", "--with", "GIVEN_API_KEY", "--", "python3"])
        .arg(&script)
        .arg(&protocol)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("refused"), "{}", describe(&out));
    let keys = env.ok(&["key", "ls"]);
    assert!(keys.contains("OTHER_API_KEY"), "the key was removed: {keys}");
}
