//! `qwen-env service install|uninstall|status` against a temporary XDG_CONFIG_HOME, and the
//! daemon's systemd socket activation.
//!
//! The service manager itself is never driven here: `QWEN_ENV_SERVICE_MANAGER=none` writes the
//! files only, as `install` does where systemd is not running (CI runs in a container). The
//! plist and the task XML are parsed in `client/src/service/tests.rs`.

use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use qwen_env_tests::{TestEnv, bin, describe, have, set_mode, wait_until};

fn unit_dir(env: &TestEnv) -> PathBuf {
    env.root.path().join("config/systemd/user")
}

fn files_only() -> TestEnv {
    let mut env = TestEnv::new();
    env.set_var("QWEN_ENV_SERVICE_MANAGER", "none");
    env
}

#[test]
fn install_writes_the_units_and_uninstall_removes_them() {
    let env = files_only();
    let out = env.ok(&["service", "install"]);
    assert!(out.contains("so nothing will start these units"), "{out}");
    assert!(out.contains("qwen-env daemon start"), "says what to do instead: {out}");

    let (service, socket) =
        (unit_dir(&env).join("qwen-envd.service"), unit_dir(&env).join("qwen-envd.socket"));
    let unit = std::fs::read_to_string(&service).unwrap();
    let expected = format!("\nExecStart={} --foreground\n", bin("qwen-envd").display());
    assert!(unit.contains(&expected), "the absolute daemon path is filled in: {unit}");
    assert!(!unit.contains("@QWEN_ENVD@"));
    assert!(unit.contains("\nRequires=qwen-envd.socket\n"));
    let sock = std::fs::read_to_string(&socket).unwrap();
    for line in ["ListenStream=%t/qwen-env/sock", "SocketMode=0600", "DirectoryMode=0700"] {
        assert!(sock.lines().any(|l| l == line), "{line} missing: {sock}");
    }

    // systemd-analyze comes with the `systemd` package, which CI's container does not install
    // (it is a whole init system): this check may skip there too, and runs where it exists.
    if have("systemd-analyze") {
        let out = env
            .command("systemd-analyze")
            .args(["--user", "verify"])
            .arg(&socket)
            .arg(&service)
            .output()
            .unwrap();
        assert!(out.status.success() && out.stderr.is_empty(), "verify: {}", describe(&out));
    } else {
        eprintln!("SKIPPED: systemd-analyze is not installed");
    }

    let status = env.ok(&["service", "status"]);
    assert!(status.contains("qwen-envd.service: installed ("), "{status}");
    assert!(status.contains("qwen-envd.socket: installed ("), "{status}");
    assert!(status.contains("nothing runs these units"), "{status}");
    assert!(status.contains("daemon: not running"), "{status}");

    // Installing again is fine (a new daemon path, say).
    env.ok(&["service", "install"]);

    let out = env.ok(&["service", "uninstall"]);
    assert!(out.contains(&format!("removed {}", service.display())), "{out}");
    assert!(!service.exists() && !socket.exists());
    let out = env.ok(&["service", "uninstall"]);
    assert!(out.contains("nothing to remove"), "{out}");
    let status = env.ok(&["service", "status"]);
    assert!(status.contains("qwen-envd.service: not installed"), "{status}");
}

#[test]
fn status_notices_a_unit_for_another_daemon() {
    let env = files_only();
    env.ok(&["service", "install"]);
    let service = unit_dir(&env).join("qwen-envd.service");
    let unit = std::fs::read_to_string(&service).unwrap();
    let old = bin("qwen-envd").display().to_string();
    std::fs::write(&service, unit.replace(&old, "/opt/old/qwen-envd")).unwrap();
    let status = env.ok(&["service", "status"]);
    assert!(status.contains("runs something other than"), "{status}");
}

#[test]
fn install_needs_the_daemon_binary() {
    let mut env = files_only();
    env.set_var("QWEN_ENV_DAEMON", "/nonexistent/qwen-envd");
    let out = env.run(&["service", "install"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("QWEN_ENV_DAEMON"), "{}", describe(&out));
    assert!(!unit_dir(&env).join("qwen-envd.service").exists());
}

/// Plays systemd: binds the socket, passes it as fd 3 with LISTEN_FDS=1 and LISTEN_PID set to
/// the daemon's pid (a `sh` wrapper learns its own pid with `$$` and execs the daemon, which keeps
/// it), then checks clients are served on that very socket and that the daemon leaves it in place.
#[test]
fn socket_activation_serves_the_passed_socket() {
    let env = TestEnv::new();
    let dir = env.daemon_dir();
    std::fs::create_dir_all(&dir).unwrap();
    set_mode(&dir, 0o700);
    let path = dir.join("sock");
    let listener = UnixListener::bind(&path).unwrap();
    set_mode(&path, 0o600);
    let inode = std::fs::metadata(&path).unwrap().ino();

    let fd = listener.as_raw_fd();
    let mut cmd = env.command("sh");
    cmd.args(["-c", r#"export LISTEN_PID=$$; exec "$0" --foreground"#])
        .arg(bin("qwen-envd"))
        .env("LISTEN_FDS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: between fork and exec we only call dup2 and fcntl, which are async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            // dup2 leaves the copy without FD_CLOEXEC; if the listener already is fd 3, clear
            // the flag std set on it.
            let rc = if fd == 3 { libc::fcntl(3, libc::F_SETFD, 0) } else { libc::dup2(fd, 3) };
            if rc == -1 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
        });
    }
    let mut child = cmd.spawn().expect("spawn the daemon");
    let pid = child.id();
    assert!(
        wait_until(Duration::from_secs(10), || env.daemon_running()),
        "the daemon did not start: {}",
        env.log()
    );
    let status: serde_json::Value = serde_json::from_str(&env.ok(&["status", "--json"])).unwrap();
    assert_eq!(status["pid"], pid, "answered by the socket-activated daemon: {status}");
    assert_eq!(std::fs::metadata(&path).unwrap().ino(), inode, "the daemon must not rebind");
    assert!(env.log().contains("socket-activated"), "{}", env.log());

    // SAFETY: kill with the pid of our own child.
    unsafe { libc::kill(i32::try_from(pid).unwrap(), libc::SIGTERM) };
    let exit = child.wait().unwrap();
    assert!(exit.success(), "{exit}");
    assert!(path.exists(), "the socket is systemd's to remove, not the daemon's");
    drop(listener);
}

#[test]
fn a_listen_pid_for_another_process_is_ignored() {
    let env = TestEnv::new();
    let out = env
        .client(&["status", "--json"])
        .env("LISTEN_PID", "1")
        .env("LISTEN_FDS", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    assert!(!env.log().contains("socket-activated"), "{}", env.log());
}
