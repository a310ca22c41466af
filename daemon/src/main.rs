//! `qwen-envd [--foreground] [--ready-fd N]`: parse, daemonize before the runtime, run.

/// mimalloc instead of glibc's malloc: a resolve allocates a few hundred small objects (the
/// request's environment, the parsed sources it shares, the answer) on whichever worker thread
/// runs it, and glibc's arenas spent about a fifth of the daemon's CPU on them (`_int_malloc`,
/// `_int_free`, `malloc_consolidate` in `perf`); with mimalloc the daemon answers about 30 % more
/// resolves per second, for 1.5-2 MiB more resident memory (README, "Performance"). The `no_thp`
/// feature keeps mimalloc from asking for transparent huge pages: with them its arenas are backed
/// by 2 MiB pages and the daemon's RSS after the bench is 24 MiB instead of 10.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::Parser;
use qwen_env_proto::endpoint::Dirs;
use qwen_envd::ready::Ready;

/// The qwen-env daemon: keeps API keys in the OS keychain and answers the `qwen-env` client.
#[derive(Parser)]
#[command(name = "qwen-envd", version)]
struct Args {
    /// Stay in the foreground (what systemd, launchd and the client's autostart run).
    #[arg(long)]
    foreground: bool,
    /// Write a one-line startup report to this file descriptor (used by `qwen-env`).
    #[arg(long, value_name = "FD", hide = true)]
    ready_fd: Option<i32>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    #[cfg(unix)]
    // SAFETY: umask has no preconditions. Everything the daemon creates is private to the user.
    unsafe {
        libc::umask(0o077);
    }
    let mut ready = if args.foreground {
        Ready::new(args.ready_fd)
    } else {
        // Daemonize before any thread exists (the runtime, the keychain helpers).
        match daemonize::detach(args.ready_fd) {
            daemonize::Role::Parent(code) => return code,
            daemonize::Role::Child(fd) => Ready::new(Some(fd)),
        }
    };
    qwen_envd::hardening::harden_process();
    qwen_envd::logging::init(&Dirs::from_env().log_file());
    match qwen_envd::run(&mut ready) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ready.error(&format!("{e:#}"));
            ExitCode::FAILURE
        }
    }
}

#[cfg(unix)]
mod daemonize {
    use std::io::{BufRead, BufReader};
    use std::os::fd::FromRawFd;
    use std::process::ExitCode;

    use qwen_env_proto::ready::Report;

    pub enum Role {
        /// The foreground process, with the exit code to return once the child reported.
        Parent(ExitCode),
        /// The detached daemon, with the write end of the report pipe.
        Child(i32),
    }

    /// Forks; the child starts a new session with stdio on /dev/null, the parent prints the
    /// child's startup report and exits with its outcome.
    pub fn detach(relay: Option<i32>) -> Role {
        let mut fds = [0; 2];
        // SAFETY: pipe writes two descriptors into a valid array; fork is called while the
        // process is still single-threaded.
        unsafe {
            if libc::pipe(fds.as_mut_ptr()) != 0 {
                eprintln!("qwen-envd: pipe failed: {}", std::io::Error::last_os_error());
                return Role::Parent(ExitCode::FAILURE);
            }
            match libc::fork() {
                -1 => {
                    eprintln!("qwen-envd: fork failed: {}", std::io::Error::last_os_error());
                    Role::Parent(ExitCode::FAILURE)
                }
                0 => {
                    libc::close(fds[0]);
                    libc::setsid();
                    let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
                    for fd in 0..3 {
                        libc::dup2(null, fd);
                    }
                    Role::Child(fds[1])
                }
                pid => {
                    libc::close(fds[1]);
                    let report = std::fs::File::from_raw_fd(fds[0]);
                    let mut line = String::new();
                    let _ = BufReader::new(report).read_line(&mut line);
                    Role::Parent(report_outcome(line.trim(), pid, relay))
                }
            }
        }
    }

    /// Prints the child's report for a person, or relays it verbatim to `relay` for a program
    /// (the client spawns `qwen-envd --ready-fd 1` and reads the line).
    fn report_outcome(line: &str, pid: i32, relay: Option<i32>) -> ExitCode {
        let report = Report::parse(line).unwrap_or_else(|| {
            Report::Error("the daemon exited during startup; see its log".to_owned())
        });
        let code = if report.serving() { ExitCode::SUCCESS } else { ExitCode::FAILURE };
        if let Some(fd) = relay {
            // SAFETY: the caller passed this descriptor for the report; we own it now.
            let mut out = unsafe { std::fs::File::from_raw_fd(fd) };
            let _ = std::io::Write::write_all(&mut out, format!("{}\n", report.line()).as_bytes());
            return code;
        }
        match report {
            Report::Ready(_) => println!("qwen-envd started (pid {pid})"),
            Report::Running(holder) => println!("qwen-envd is already running (pid {holder})"),
            Report::Error(message) => eprintln!("qwen-envd: {message}"),
        }
        code
    }
}
