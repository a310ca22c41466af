//! Benchmarks for the targets of DESIGN.md section 11, against the real binaries.
//!
//! `cargo build --release --workspace --bins && ./target/release/bench` (see README). Runs in an
//! isolated environment like the tests, with kernel keyutils. Reports figures; asserts nothing.
#![allow(clippy::cast_precision_loss)] // figures for people: a rounding error in the 15th digit is fine

use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use qwen_env_proto::{
    CallerContext, Hello, PROTOCOL_VERSION, Request, Response, RunRequest, VERSION, Welcome, codec,
};
use qwen_env_tests::{TestEnv, bin};

fn main() {
    let env = TestEnv::new();
    env.set_key("BENCH_API_KEY", "sk-bench-0123456789abcdef");
    let socket = env.daemon_dir().join("sock");
    let size = std::fs::metadata(bin("qwen-env")).map_or(0, |m| m.len());
    println!("client binary: {:.2} MiB ({} bytes)", size as f64 / 1_048_576.0, size);

    run_overhead(&env);
    round_trip(&socket);
    throughput(&socket, 64, Duration::from_secs(3));
    daemon_memory(&env);
}

/// `qwen-env run --with K -- true` against bare `true`, interleaved so drift hits both.
fn run_overhead(env: &TestEnv) {
    let n = 400;
    let mut bare = Vec::with_capacity(n);
    let mut wrapped = Vec::with_capacity(n);
    let spawn = |cmd: &mut Command| {
        let t = Instant::now();
        let status = cmd.stdout(Stdio::null()).stderr(Stdio::null()).status().unwrap();
        assert!(status.success());
        t.elapsed()
    };
    for i in 0..n + 20 {
        let b = spawn(&mut env.command("/bin/true"));
        let w = spawn(&mut env.client(&["run", "--with", "BENCH_API_KEY", "--", "/bin/true"]));
        if i >= 20 {
            bare.push(b);
            wrapped.push(w);
        }
    }
    let (b, w) = (median(&mut bare), median(&mut wrapped));
    println!(
        "run --with K -- true: median {:.3} ms, bare true {:.3} ms, added {:.3} ms (target <= 1.0 ms)",
        ms(w),
        ms(b),
        ms(w.saturating_sub(b))
    );
}

fn connect(socket: &std::path::Path) -> UnixStream {
    let mut s = UnixStream::connect(socket).expect("daemon socket");
    codec::write_frame(
        &mut s,
        &Hello { protocol: PROTOCOL_VERSION, client_version: VERSION.into() },
    )
    .unwrap();
    let _: Welcome = codec::read_frame(&mut s).unwrap();
    s
}

fn run_request() -> Request {
    Request::Run(RunRequest {
        caller: CallerContext { cwd: "/".into(), argv: vec!["true".into()], env: vec![] },
        with: vec!["BENCH_API_KEY".into()],
        profile: None,
        bare: false,
    })
}

fn ask(s: &mut UnixStream, request: &Request) {
    codec::write_frame(s, request).unwrap();
    let response: Response = codec::read_frame(s).unwrap();
    assert!(!matches!(response, Response::Error { .. }), "{response:?}");
}

/// One client, one request at a time: the latency `run` pays for its request.
fn round_trip(socket: &std::path::Path) {
    let mut s = connect(socket);
    let request = run_request();
    for _ in 0..1000 {
        ask(&mut s, &request);
    }
    let mut samples: Vec<Duration> = (0..20_000)
        .map(|_| {
            let t = Instant::now();
            ask(&mut s, &request);
            t.elapsed()
        })
        .collect();
    samples.sort();
    println!(
        "run request round trip, 1 client: p50 {:.1} us, p99 {:.1} us (target p99 <= 250 us)",
        us(samples[samples.len() / 2]),
        us(samples[samples.len() * 99 / 100])
    );
}

/// Many clients at once, each with its own connection.
fn throughput(socket: &std::path::Path, clients: usize, length: Duration) {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (stop, done, socket) = (stop.clone(), done.clone(), socket.to_owned());
            std::thread::spawn(move || {
                let mut s = connect(&socket);
                let request = run_request();
                while !stop.load(Ordering::Relaxed) {
                    ask(&mut s, &request);
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(length);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let rate = done.load(Ordering::Relaxed) as f64 / length.as_secs_f64();
    println!("run requests/s, {clients} concurrent clients: {rate:.0} (target >= 20000)");
}

fn daemon_memory(env: &TestEnv) {
    let Some(pid) = env.daemon_pid() else { return };
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    if let Some(rss) = status.lines().find(|l| l.starts_with("VmRSS")) {
        println!("daemon {rss}");
    }
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
