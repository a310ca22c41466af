//! Daemon lifecycle and endpoint security: autostart, stale sockets, racing clients, modes,
//! foreign uids, bad frames, protocol mismatch, signals.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::Duration;

use qwen_env_proto::{Hello, PROTOCOL_VERSION, Request, Response, Welcome, codec};
use qwen_env_tests::{TestEnv, bin, describe, mode, set_mode, wait_until};

fn status_pid(env: &TestEnv) -> u64 {
    let json: serde_json::Value = serde_json::from_str(&env.ok(&["status", "--json"])).unwrap();
    json["pid"].as_u64().unwrap()
}

#[test]
fn autostarts_from_cold_with_private_modes() {
    let env = TestEnv::new();
    assert!(!env.daemon_running());
    let pid = status_pid(&env);
    assert!(env.daemon_running());
    assert_eq!(Some(pid), env.daemon_pid().map(|p| u64::try_from(p).unwrap()));
    assert_eq!(mode(&env.daemon_dir()), 0o700);
    assert_eq!(mode(&env.daemon_dir().join("sock")), 0o600);
    assert_eq!(mode(&env.daemon_dir().join("qwen-envd.pid")), 0o600);
    assert_eq!(mode(&env.log_file()), 0o600);
    // Core dumps off and not dumpable: other processes of the user cannot read its memory.
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    assert!(
        limits.lines().any(|l| l.starts_with("Max core file size") && l.contains(" 0 ")),
        "{limits}"
    );
    assert!(!status.is_empty());
}

#[test]
fn restarts_after_kill_9_leaves_a_stale_socket() {
    let env = TestEnv::new();
    let first = status_pid(&env);
    // SAFETY: our own daemon.
    unsafe { libc::kill(i32::try_from(first).unwrap(), libc::SIGKILL) };
    assert!(env.wait_daemon_gone(Duration::from_secs(5)));
    assert!(env.daemon_dir().join("sock").exists(), "kill -9 leaves the socket behind");
    let second = status_pid(&env);
    assert_ne!(first, second);
    assert!(env.log().contains("removed a stale socket") || env.daemon_running());
}

#[test]
fn twenty_racing_clients_start_one_daemon() {
    let env = TestEnv::new();
    let children: Vec<_> = (0..20)
        .map(|_| {
            env.client(&["status", "--json"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut pids = std::collections::BTreeSet::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", describe(&out));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        pids.insert(json["pid"].as_u64().unwrap());
    }
    assert_eq!(pids.len(), 1, "more than one daemon answered: {pids:?}");
    // And only one qwen-envd process exists for this runtime dir.
    let ours = count_daemons_for(&env);
    assert_eq!(ours, 1);
}

/// qwen-envd processes whose environment points at this test's runtime dir.
fn count_daemons_for(env: &TestEnv) -> usize {
    let needle = format!("XDG_RUNTIME_DIR={}", env.runtime.display());
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| {
            let p = e.path();
            let exe_ok = std::fs::read_link(p.join("exe")).is_ok_and(|x| x.ends_with("qwen-envd"));
            // The daemon is not dumpable, so its environ may be unreadable even to us: fall back
            // to the pidfile's pid.
            let environ = std::fs::read(p.join("environ")).unwrap_or_default();
            let env_ok = String::from_utf8_lossy(&environ).split('\0').any(|v| v == needle);
            let pid_ok =
                e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) == env.daemon_pid();
            exe_ok && (env_ok || pid_ok)
        })
        .count()
}

#[test]
fn refuses_unsafe_runtime_dirs() {
    // Group/other-accessible.
    let env = TestEnv::new();
    std::fs::create_dir_all(env.daemon_dir()).unwrap();
    set_mode(&env.daemon_dir(), 0o755);
    let out = env.command(bin("qwen-envd")).arg("--foreground").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("chmod 700"), "{}", describe(&out));
    // And the client relays the daemon's reason.
    let out = env.run(&["status"]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("lets group or others in"),
        "{}",
        describe(&out)
    );

    // A symlink.
    let env = TestEnv::new();
    let elsewhere = env.root.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    set_mode(&elsewhere, 0o700);
    std::os::unix::fs::symlink(&elsewhere, env.daemon_dir()).unwrap();
    let out = env.command(bin("qwen-envd")).arg("--foreground").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is a symlink"), "{}", describe(&out));

    // Owned by someone else (needs root to arrange).
    if qwen_env_proto::endpoint::euid() == 0 {
        let env = TestEnv::new();
        std::fs::create_dir_all(env.daemon_dir()).unwrap();
        set_mode(&env.daemon_dir(), 0o700);
        std::os::unix::fs::chown(env.daemon_dir(), Some(65534), Some(65534)).unwrap();
        let out = env.command(bin("qwen-envd")).arg("--foreground").output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("owned by uid 65534"),
            "{}",
            describe(&out)
        );
    }
}

#[test]
fn refuses_clients_of_another_uid() {
    if qwen_env_proto::endpoint::euid() != 0 || !qwen_env_tests::require("setpriv") {
        eprintln!("SKIPPED: needs root to run a client as nobody");
        return;
    }
    let env = TestEnv::new();
    env.set_key("SECRET_KEY", "sk-secret-cccccccccccccc");
    // Simulate a misconfiguration that lets others reach the socket, so that the daemon's own
    // peer check is what stands in the way.
    for dir in [env.root.path().to_path_buf(), env.runtime.clone(), env.daemon_dir()] {
        set_mode(&dir, 0o711);
    }
    set_mode(&env.daemon_dir().join("sock"), 0o666);
    let out = env
        .command("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(bin("qwen-env"))
        .args(["run", "--with", "SECRET_KEY", "--", "env"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("sk-secret"));
    // That client stops at the runtime dir, which is not its own; a raw connection goes on to
    // the daemon, whose own peer check must refuse it.
    if !qwen_env_tests::require("python3") {
        return;
    }
    let out = env
        .command("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--", "python3", "-c"])
        .arg(format!(
            "import socket\ns=socket.socket(socket.AF_UNIX)\ns.settimeout(5)\ns.connect('{}')\nprint(len(s.recv(64)))",
            env.daemon_dir().join("sock").display()
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        wait_until(Duration::from_secs(5), || env.log().contains("refused a client of uid 65534")),
        "{}",
        env.log()
    );
    // The daemon keeps serving its owner.
    for dir in [env.runtime.clone(), env.daemon_dir()] {
        set_mode(&dir, 0o700);
    }
    status_pid(&env);
}

#[test]
fn client_refuses_a_daemon_of_another_uid() {
    if qwen_env_proto::endpoint::euid() != 0
        || !qwen_env_tests::require("setpriv")
        || !qwen_env_tests::require("python3")
    {
        eprintln!("SKIPPED: needs root to run an impostor as nobody");
        return;
    }
    let env = TestEnv::new();
    std::fs::create_dir_all(env.daemon_dir()).unwrap();
    set_mode(&env.daemon_dir(), 0o700);
    // The impostor binds where it may write; root then moves its socket into our private
    // runtime dir (the client refuses a dir that is not private before connecting, so this
    // is the only way left for a foreign socket to sit where the daemon's should).
    let theirs = env.root.path().join("theirs");
    std::fs::create_dir_all(&theirs).unwrap();
    for dir in [env.root.path().to_path_buf(), theirs.clone()] {
        set_mode(&dir, 0o777);
    }
    let their_sock = theirs.join("sock");
    let sock = env.daemon_dir().join("sock");
    let mut impostor = env
        .command("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--", "python3", "-c"])
        .arg(format!(
            "import socket,time\ns=socket.socket(socket.AF_UNIX)\ns.bind('{}')\ns.listen(8)\nc,_=s.accept()\ntime.sleep(5)",
            their_sock.display()
        ))
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(5), || their_sock.exists()));
    std::fs::rename(&their_sock, &sock).unwrap();
    let out = env.run(&["status"]);
    let _ = impostor.kill();
    let _ = impostor.wait();
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("runs as uid 65534"),
        "{}",
        describe(&out)
    );
}

fn raw_connect(env: &TestEnv) -> UnixStream {
    let s = UnixStream::connect(env.daemon_dir().join("sock")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

fn hello(s: &mut UnixStream, protocol: u32) -> Welcome {
    codec::write_frame(s, &Hello { protocol, client_version: "test".into() }).unwrap();
    codec::read_frame(s).unwrap()
}

#[test]
fn garbage_truncated_and_oversized_frames_close_only_that_connection() {
    let env = TestEnv::new();
    let pid = status_pid(&env);

    // A client that is mid-conversation while others misbehave.
    let mut good = raw_connect(&env);
    assert_eq!(hello(&mut good, PROTOCOL_VERSION).protocol, PROTOCOL_VERSION);

    let cases: [&[u8]; 4] = [
        b"GET / HTTP/1.1\r\n\r\n",       // garbage: a huge length prefix
        &[0xff, 0xff, 0xff, 0xff],       // oversized
        &[0, 0, 0, 3, 0xff, 0xff, 0xff], // a complete frame that does not decode
        &[0, 0, 0, 100, 1, 2],           // truncated: closes mid-frame
    ];
    for bytes in cases {
        let mut s = raw_connect(&env);
        s.write_all(bytes).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        assert!(rest.is_empty(), "the daemon answered a bad handshake: {rest:?}");
    }
    // A bad request after a good handshake.
    let mut s = raw_connect(&env);
    hello(&mut s, PROTOCOL_VERSION);
    s.write_all(&[0, 0, 0, 2, 200, 200]).unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(rest.is_empty());

    codec::write_frame(&mut good, &Request::Status).unwrap();
    let resp: Response = codec::read_frame(&mut good).unwrap();
    assert!(matches!(resp, Response::Status(_)), "{resp:?}");
    assert_eq!(status_pid(&env), pid, "the daemon restarted");
    let log = env.log();
    assert!(log.contains("exceeds") || log.contains("frame"), "{log}");
    assert!(log.contains("malformed"), "{log}");
}

#[test]
fn a_mismatched_protocol_may_only_shut_the_daemon_down() {
    let env = TestEnv::new();
    let pid = status_pid(&env);
    let mut s = raw_connect(&env);
    let w = hello(&mut s, PROTOCOL_VERSION + 1);
    assert_eq!(w.protocol, PROTOCOL_VERSION);
    assert_eq!(u64::from(w.pid), pid);
    codec::write_frame(&mut s, &Request::Status).unwrap();
    match codec::read_frame::<_, Response>(&mut s).unwrap() {
        Response::Error { message, .. } => {
            assert!(message.contains("protocol mismatch"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let mut s = raw_connect(&env);
    hello(&mut s, PROTOCOL_VERSION + 1);
    codec::write_frame(&mut s, &Request::Shutdown).unwrap();
    assert_eq!(codec::read_frame::<_, Response>(&mut s).unwrap(), Response::ShuttingDown);
    assert!(env.wait_daemon_gone(Duration::from_secs(5)));
    assert!(!env.daemon_dir().join("sock").exists(), "socket removed on exit");
}

/// An old daemon (another protocol) is asked to exit and replaced by a current one.
#[test]
fn client_replaces_a_daemon_of_another_protocol() {
    let env = TestEnv::new();
    std::fs::create_dir_all(env.daemon_dir()).unwrap();
    set_mode(&env.daemon_dir(), 0o700);
    let pidfile = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(env.daemon_dir().join("qwen-envd.pid"))
        .unwrap();
    pidfile.lock().unwrap();
    let listener = UnixListener::bind(env.daemon_dir().join("sock")).unwrap();
    let old = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let _: Hello = codec::read_frame(&mut s).unwrap();
        codec::write_frame(
            &mut s,
            &Welcome { protocol: 0, daemon_version: "0.0.1".into(), pid: 1 },
        )
        .unwrap();
        let req: Request = codec::read_frame(&mut s).unwrap();
        codec::write_frame(&mut s, &Response::ShuttingDown).unwrap();
        drop(listener);
        drop(pidfile); // releases the lock: the old daemon has exited
        req
    });
    let json: serde_json::Value = serde_json::from_str(&env.ok(&["status", "--json"])).unwrap();
    assert_eq!(old.join().unwrap(), Request::Shutdown);
    assert_eq!(json["protocol"], PROTOCOL_VERSION);
    assert!(env.daemon_running());
}

#[test]
fn stops_on_sigterm_and_on_request() {
    let env = TestEnv::new();
    let pid = status_pid(&env);
    // SAFETY: our own daemon.
    unsafe { libc::kill(i32::try_from(pid).unwrap(), libc::SIGTERM) };
    assert!(env.wait_daemon_gone(Duration::from_secs(5)));
    assert!(!env.daemon_dir().join("sock").exists());
    assert!(env.log().contains("SIGTERM"));

    let started = env.ok(&["daemon", "start"]);
    assert!(started.contains("running (pid"), "{started}");
    assert!(env.ok(&["daemon", "stop"]).contains("stopped"));
    assert!(!env.daemon_running());
    assert!(env.ok(&["daemon", "stop"]).contains("not running"));
    assert!(env.ok(&["daemon", "logs", "-n", "5"]).contains("qwen-envd stopped"));
}

#[test]
fn a_second_daemon_refuses_to_start() {
    let env = TestEnv::new();
    let pid = status_pid(&env);
    let out = env.command(bin("qwen-envd")).arg("--foreground").output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("already running (pid {pid}")),
        "{}",
        describe(&out)
    );
    let out = env.command(bin("qwen-envd")).output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("already running"), "{}", describe(&out));
    assert_eq!(status_pid(&env), pid);
}
