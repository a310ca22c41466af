//! Soak test: many clients doing mixed requests for minutes while files change underneath.
//!
//! `soak [SECONDS] [CLIENTS]` (defaults 120 s, 64 clients; `scripts/soak.sh` builds and runs it).
//! Fails (exit 1) on any failed request, on the daemon dying, or on growth of its RSS or open
//! file descriptors beyond a bound between the warm-up and the end.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use qwen_env_proto::{
    CallerContext, Hello, PROTOCOL_VERSION, Request, ResolveRequest, Response, RunRequest, VERSION,
    Welcome, codec,
};
use qwen_env_tests::TestEnv;

/// Allowed growth between the end of the warm-up and the end of the run.
const MAX_RSS_GROWTH_KIB: u64 = 32 * 1024;
const MAX_FD_GROWTH: u64 = 32;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1).filter_map(|a| a.to_str()?.parse::<u64>().ok());
    let seconds = args.next().unwrap_or(120);
    let clients = usize::try_from(args.next().unwrap_or(64)).unwrap_or(64);
    let env = TestEnv::new();
    // One process asks for many runs here, as no real client does (a client execs after its one
    // run); without this the daemon would rightly treat the later runs as nested.
    env.write_config("allow_nesting = true\n");
    for (name, value) in [
        ("DASHSCOPE_API_KEY", "sk-soak-dashscope-000000001"),
        ("OPENROUTER_API_KEY", "sk-or-v1-soak-0000000000002"),
    ] {
        env.set_key(name, value);
    }
    let dirs: Vec<PathBuf> = (0..8).map(|i| project(&env, i)).collect();
    let socket = env.daemon_dir().join("sock");
    let pid = env.daemon_pid().expect("daemon running");

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, dirs) = (stop.clone(), dirs.clone());
        std::thread::spawn(move || rewrite_files(&dirs, &stop))
    };
    let workers: Vec<_> = (0..clients)
        .map(|n| {
            let (stop, ok, failed, socket, dirs) =
                (stop.clone(), ok.clone(), failed.clone(), socket.clone(), dirs.clone());
            let env_pairs = env.env_pairs();
            std::thread::spawn(move || client(n, &socket, &dirs, &env_pairs, &stop, &ok, &failed))
        })
        .collect();

    std::thread::sleep(Duration::from_secs(5.min(seconds)));
    let (rss0, fd0) = (rss_kib(pid), fds(pid));
    println!("warm: rss {rss0} KiB, {fd0} fds, {} requests so far", ok.load(Ordering::Relaxed));
    std::thread::sleep(Duration::from_secs(seconds.saturating_sub(5)));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    let _ = writer.join();
    let (rss1, fd1) = (rss_kib(pid), fds(pid));
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    let alive = env.run(&["status"]).status.success() && env.daemon_pid() == Some(pid);
    println!(
        "end: {ok} requests ok, {failed} failed, {clients} clients, {seconds} s; rss {rss1} KiB ({:+} KiB), {fd1} fds ({:+}); daemon alive: {alive}",
        i128::from(rss1) - i128::from(rss0),
        i128::from(fd1) - i128::from(fd0)
    );
    let grew =
        rss1.saturating_sub(rss0) > MAX_RSS_GROWTH_KIB || fd1.saturating_sub(fd0) > MAX_FD_GROWTH;
    if failed > 0 || !alive || grew || ok == 0 {
        println!("SOAK FAILED");
        return ExitCode::FAILURE;
    }
    println!("soak passed");
    ExitCode::SUCCESS
}

fn project(env: &TestEnv, i: usize) -> PathBuf {
    let dir = env.home.join(format!("p{i}"));
    std::fs::create_dir_all(dir.join(".qwen")).unwrap();
    std::fs::write(
        dir.join(".qwen/settings.json"),
        r#"{ "modelProviders": { "openai": [ { "id": "m", "envKey": "DASHSCOPE_API_KEY", "baseUrl": "https://dashscope-intl.aliyuncs.com/compatible-mode/v1" } ] },
             "security": { "auth": { "selectedType": "openai" } }, "model": { "name": "m" } }"#,
    )
    .unwrap();
    std::fs::write(dir.join(".env"), "LOG=1\n").unwrap();
    dir
}

/// Rewrites `.env` files by rename (and now and then breaks a settings file) until stopped.
fn rewrite_files(dirs: &[PathBuf], stop: &AtomicBool) {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let dir = &dirs[usize::try_from(n).unwrap_or(0) % dirs.len()];
        let tmp = dir.join(".env.tmp");
        let _ = std::fs::write(&tmp, format!("LOG={n}\nOPENAI_MODEL=m{}\n", n % 7));
        let _ = std::fs::rename(&tmp, dir.join(".env"));
        if n.is_multiple_of(50) {
            let s = dir.join(".qwen/settings.json");
            if let Ok(text) = std::fs::read_to_string(&s) {
                let _ = std::fs::write(&s, format!("{text}\n"));
            }
        }
        n += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn connect(socket: &Path) -> std::io::Result<UnixStream> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    codec::write_frame(
        &mut s,
        &Hello { protocol: PROTOCOL_VERSION, client_version: VERSION.into() },
    )?;
    let _: Welcome = codec::read_frame(&mut s).map_err(std::io::Error::other)?;
    Ok(s)
}

fn client(
    n: usize,
    socket: &Path,
    dirs: &[PathBuf],
    env: &[(String, String)],
    stop: &AtomicBool,
    ok: &AtomicU64,
    failed: &AtomicU64,
) {
    let mut i = n;
    let mut conn: Option<UnixStream> = None;
    let started = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        // Reconnect now and then, so accept and close are soaked too.
        if conn.is_none() || i.is_multiple_of(50) {
            match connect(socket) {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    eprintln!("client {n}: connect failed after {:?}: {e}", started.elapsed());
                    failed.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            }
        }
        let dir = dirs[i % dirs.len()].display().to_string();
        let caller = CallerContext { cwd: dir, argv: vec!["qwen".into()], env: env.to_vec() };
        let request = match i % 4 {
            0 => Request::Resolve(ResolveRequest { caller, ..ResolveRequest::default() }),
            1 => Request::Run(RunRequest { caller, ..RunRequest::default() }),
            2 => Request::Status,
            _ => Request::KeyList,
        };
        let s = conn.as_mut().expect("connected");
        let answer = codec::write_frame(s, &request)
            .map_err(|e| e.to_string())
            .and_then(|()| codec::read_frame::<_, Response>(s).map_err(|e| e.to_string()));
        match answer {
            Ok(Response::Error { message, .. }) => {
                eprintln!("client {n}: error answer: {message}");
                failed.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) => {
                ok.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                eprintln!("client {n}: request failed: {e}");
                failed.fetch_add(1, Ordering::Relaxed);
                conn = None;
            }
        }
        i += 1;
    }
}

fn rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS"))?.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}

fn fds(pid: i32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64)
}
