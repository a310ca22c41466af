//! Build the child's environment from a [`RunPlan`] and start the child.
//!
//! **Linux: a keeper.** A process started with keys must not be able to ask the daemon for more,
//! and the daemon tells such processes by their ancestry (daemon/src/lineage.rs). With a plain
//! `exec`, the child could leave its own ancestry by re-parenting to init (`setsid -f`,
//! `nohup … &` with its parent exiting, a double fork). So `run` is two small processes:
//!
//! - the **waiter**, the process the shell started and waits for: it forks the keeper first
//!   thing ([`split`]), relays the signals it is sent, and exits as the command did (its exit
//!   code, or the same signal, re-raised);
//! - the **keeper** (named [`KEEPER_NAME`]): it asks the daemon for the plan (so the daemon
//!   records *it*), becomes a child subreaper (`PR_SET_CHILD_SUBREAPER`), spawns the command,
//!   relays signals to it, tells the waiter how it ended, and then stays alive, without a
//!   terminal, until every process that re-parented to it has exited. Nothing the command starts
//!   can re-parent past a live subreaper, so everything stays its descendant, and refused.
//!
//! All three stay in the shell's process group: the terminal's Ctrl-C, Ctrl-\ and Ctrl-Z reach
//! the command directly (waiter and keeper pass over signals the kernel sent and relay only those
//! a process sent), and a Ctrl-Z stops the whole job as before. A command that stops itself alone
//! stops the waiter too, so the shell sees the job stop; `fg` continues it.
//!
//! The limit: the kernel gives an unprivileged process no way to keep a process of the same user
//! from killing it, and a descendant that kills the keeper (`kill -9`) re-parents to init. The
//! README says so, with what to do against a hostile agent (another user, a sandbox).
//!
//! **Other Unix:** the client `exec`s, so the child keeps our pid and receives signals directly,
//! and its exit status is the one the shell sees; re-parenting is not closed there (no
//! subreaper), and the daemon reads no process tree. Elsewhere it spawns, waits and returns the
//! child's code.

use std::ffi::OsString;
use std::process::Command;

use qwen_env_proto::{NESTING_MARKER, RunPlan};

use crate::error::{CliError, exit};

#[cfg(target_os = "linux")]
pub use keeper::split;
#[cfg(target_os = "linux")]
pub use qwen_env_proto::KEEPER_NAME;

/// Without a keeper there is nothing to split off.
#[cfg(not(target_os = "linux"))]
pub fn split() -> Result<(), CliError> {
    Ok(())
}

/// Runs `command` with the plan applied. The plan (with its secrets) is dropped, and so zeroized,
/// as soon as the child has it. Returns with the child's exit code (Linux: after the processes
/// it left behind have exited too; elsewhere than Unix, when it exits), or only on failure (other
/// Unix, which execs).
pub fn exec(command: &[OsString], plan: RunPlan) -> Result<u8, CliError> {
    let (program, args) =
        command.split_first().ok_or_else(|| CliError::usage("no command to run"))?;
    let mut cmd = Command::new(program);
    cmd.args(&plan.extra_args).args(args);
    for name in &plan.unset {
        cmd.env_remove(name);
    }
    for (name, value) in &plan.vars {
        cmd.env(name, value);
    }
    for (name, secret) in &plan.secrets {
        cmd.env(name, secret.expose_secret());
    }
    cmd.env(NESTING_MARKER, "1");
    drop(plan);
    run(cmd, program)
}

#[cfg(target_os = "linux")]
fn run(cmd: Command, program: &OsString) -> Result<u8, CliError> {
    keeper::supervise(cmd, program)
}

#[cfg(all(unix, not(target_os = "linux")))]
fn run(mut cmd: Command, program: &OsString) -> Result<u8, CliError> {
    use std::os::unix::process::CommandExt;
    let err = cmd.exec();
    Err(spawn_error(&err, program))
}

#[cfg(not(unix))]
fn run(mut cmd: Command, program: &OsString) -> Result<u8, CliError> {
    let status = cmd.status().map_err(|e| spawn_error(&e, program))?;
    Ok(status.code().and_then(|c| u8::try_from(c).ok()).unwrap_or(1))
}

fn spawn_error(err: &std::io::Error, program: &OsString) -> CliError {
    let name = program.to_string_lossy();
    match err.kind() {
        std::io::ErrorKind::NotFound => CliError {
            code: exit::NOT_FOUND,
            message: Some(format!("{name}: command not found (check its spelling and your PATH)")),
        },
        std::io::ErrorKind::PermissionDenied => CliError {
            code: exit::NOT_EXECUTABLE,
            message: Some(format!("{name}: permission denied (is it executable?)")),
        },
        _ => CliError { code: exit::NOT_EXECUTABLE, message: Some(format!("{name}: {err}")) },
    }
}

#[cfg(target_os = "linux")]
mod keeper {
    //! The waiter and the keeper (see the module docs above).

    use std::ffi::{OsString, c_int, c_void};
    use std::process::Command;
    use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};

    use qwen_env_proto::KEEPER_NAME;

    use crate::error::CliError;

    /// Signals a process may send to `run` that belong to the command: relayed down the chain.
    /// (Job-control signals are left at their defaults: a stop stops the whole job.)
    const RELAYED: [c_int; 8] = [
        libc::SIGHUP,
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGTERM,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGALRM,
        libc::SIGWINCH,
    ];

    /// Where the relay handler sends signals: the keeper (in the waiter), the command (in the
    /// keeper, while it runs). 0 = not yet (kept in `EARLY`), -1 = nowhere any more.
    static TARGET: AtomicI32 = AtomicI32::new(0);
    /// Signals sent to the keeper while it spawned the command (a bit per signal number).
    static EARLY: AtomicU32 = AtomicU32::new(0);
    /// How often the keeper has been continued (SIGCONT), to tell a stop of the whole job from
    /// a command that stopped itself.
    static CONTINUED: AtomicU32 = AtomicU32::new(0);
    /// The keeper's end of the report pipe, and the waiter's pid.
    static REPORT: AtomicI32 = AtomicI32::new(-1);
    static WAITER: AtomicI32 = AtomicI32::new(0);

    /// How the command ended, as the keeper reports it: `[kind, value, lingering]`.
    const EXITED: u8 = 0;
    const SIGNALLED: u8 = 1;

    /// Forks the keeper. Returns `Ok` in the keeper; in the waiter it returns, once the command
    /// has ended, the exit code to end with (after re-raising the signal that ended it, if one
    /// did). Called before anything talks to the daemon, so the keeper is the one it
    /// records.
    pub fn split() -> Result<(), CliError> {
        let mut fds = [0; 2];
        // SAFETY: pipe2 writes two descriptors into a valid array.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(os_error("cannot create a pipe"));
        }
        // SAFETY: the client is single-threaded here (nothing has spawned a thread yet), so the
        // child may go on running Rust code.
        let waiter = unsafe { libc::getpid() };
        match unsafe { libc::fork() } {
            -1 => Err(os_error("cannot fork")),
            0 => {
                // SAFETY: closing our copy of the waiter's end; prctl with valid arguments.
                unsafe {
                    libc::close(fds[0]);
                    let mut name = [0u8; 16];
                    name[..KEEPER_NAME.len()].copy_from_slice(KEEPER_NAME.as_bytes());
                    libc::prctl(libc::PR_SET_NAME, name.as_ptr());
                    // The plan's secrets pass through this process: no core dump, no ptrace by
                    // other processes of the user (the command itself is dumpable again after
                    // its exec).
                    libc::prctl(libc::PR_SET_DUMPABLE, 0);
                    // If the waiter is killed, the command is told (SIGTERM, relayed).
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                    if libc::getppid() != waiter {
                        libc::_exit(1);
                    }
                }
                REPORT.store(fds[1], Ordering::Relaxed);
                WAITER.store(waiter, Ordering::Relaxed);
                Ok(())
            }
            keeper => {
                // SAFETY: closing the keeper's end in the waiter.
                unsafe { libc::close(fds[1]) };
                Err(CliError::silent(wait_for_keeper(keeper, fds[0])))
            }
        }
    }

    /// The waiter: relays signals to the keeper, reads its report and ends as the command did.
    fn wait_for_keeper(keeper: libc::pid_t, fd: c_int) -> u8 {
        TARGET.store(keeper, Ordering::Relaxed);
        for sig in RELAYED {
            handle(sig, relay);
        }
        let mut report = [0u8; 3];
        let mut got = 0;
        while got < report.len() {
            // SAFETY: reading into the unfilled part of a valid buffer.
            let n =
                unsafe { libc::read(fd, report[got..].as_mut_ptr().cast(), report.len() - got) };
            match n {
                n if n > 0 => got += n.cast_unsigned(),
                0 => break,
                _ if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => {}
                _ => break,
            }
        }
        if got == report.len() {
            if report[2] == 0 {
                // The keeper exits right after its report: reap it, so nothing is left once we
                // have returned.
                let mut status = 0;
                // SAFETY: waiting for our own child.
                unsafe { libc::waitpid(keeper, &raw mut status, 0) };
            }
            return finish(report[0], report[1]);
        }
        // No report: the keeper ended before the command did (a refusal, an error it printed,
        // a signal). End as it did.
        let mut status = 0;
        // SAFETY: waiting for our own child.
        while unsafe { libc::waitpid(keeper, &raw mut status, 0) } == -1 {
            if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                return 1;
            }
        }
        if libc::WIFSIGNALED(status) {
            return finish(SIGNALLED, u8::try_from(libc::WTERMSIG(status)).unwrap_or(1));
        }
        finish(EXITED, u8::try_from(libc::WEXITSTATUS(status)).unwrap_or(1))
    }

    /// The exit code `value` (`EXITED`), or dies of signal `value` as the command did, so that a
    /// shell sees what it would have seen without `run` (bash stops a script on a child's SIGINT).
    fn finish(kind: u8, value: u8) -> u8 {
        if kind == SIGNALLED {
            let sig = c_int::from(value);
            // SAFETY: plain libc calls with valid arguments; the signal's default action ends us.
            unsafe {
                // The command dumped core if it was going to; we need not add our own.
                let none = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
                libc::setrlimit(libc::RLIMIT_CORE, &raw const none);
                libc::signal(sig, libc::SIG_DFL);
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&raw mut set);
                libc::sigaddset(&raw mut set, sig);
                libc::sigprocmask(libc::SIG_UNBLOCK, &raw const set, std::ptr::null_mut());
                libc::raise(sig);
            }
            // A signal whose default is not to end the process: say it as a shell would.
            return value.saturating_add(128);
        }
        value
    }

    /// The keeper: becomes a subreaper, spawns the command, relays signals to it, reports how it
    /// ended, and reaps until no process is left under it. Returns the command's exit code.
    pub fn supervise(mut cmd: Command, program: &OsString) -> Result<u8, CliError> {
        // Only now: the daemon this process may have started (it forks into the background)
        // must re-parent to init, not to us.
        // SAFETY: prctl with valid arguments.
        if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) } != 0 {
            return Err(os_error("cannot become a child subreaper"));
        }
        // Signals sent while spawning are kept and relayed once the child's pid is known. (Not
        // blocked: the spawned child would inherit the mask.)
        TARGET.store(0, Ordering::Relaxed);
        for sig in RELAYED {
            handle(sig, relay);
        }
        handle(libc::SIGCONT, continued);
        let spawned = cmd.spawn();
        // The environment with the secrets; this process's memory is not readable by others
        // (not dumpable), and it holds no copy from here on.
        drop(cmd);
        let child = match spawned {
            Ok(child) => child.id().cast_signed(),
            Err(e) => {
                for sig in RELAYED {
                    // SAFETY: restoring the default action.
                    unsafe { libc::signal(sig, libc::SIG_DFL) };
                }
                return Err(super::spawn_error(&e, program));
            }
        };
        TARGET.store(child, Ordering::Relaxed);
        let early = EARLY.swap(0, Ordering::Relaxed);
        for sig in RELAYED {
            if early & (1 << sig) != 0 {
                // SAFETY: a signal to our own child.
                unsafe { libc::kill(child, sig) };
            }
        }
        detach_stdio();
        let code = reap(child);
        Ok(code)
    }

    /// Waits for the command, then for everything left under us; reports the command's end to
    /// the waiter as soon as it is known.
    fn reap(child: libc::pid_t) -> u8 {
        let mut code = None;
        loop {
            let seen = CONTINUED.load(Ordering::Relaxed);
            let mut status = 0;
            // SAFETY: waiting for any child of ours; `status` is a valid location.
            let pid = unsafe { libc::waitpid(-1, &raw mut status, libc::WUNTRACED) };
            if pid == -1 {
                match std::io::Error::last_os_error().raw_os_error() {
                    Some(libc::EINTR) => continue,
                    // ECHILD: nothing is left under us.
                    _ => break,
                }
            }
            if pid != child || code.is_some() {
                continue;
            }
            if libc::WIFSTOPPED(status) {
                // Stopped alone (not with the whole job, which would have stopped us too and
                // continued us since): stop the waiter, so the shell sees the job stop, and
                // ourselves; on `fg`, continue the command.
                if CONTINUED.load(Ordering::Relaxed) == seen {
                    let sig = libc::WSTOPSIG(status);
                    // SAFETY: signals to our parent, ourselves and our child.
                    unsafe {
                        libc::kill(WAITER.load(Ordering::Relaxed), sig);
                        libc::kill(libc::getpid(), sig);
                        libc::kill(child, libc::SIGCONT);
                    }
                }
                continue;
            }
            TARGET.store(-1, Ordering::Relaxed);
            let (kind, value) = if libc::WIFSIGNALED(status) {
                (SIGNALLED, u8::try_from(libc::WTERMSIG(status)).unwrap_or(1))
            } else {
                (EXITED, u8::try_from(libc::WEXITSTATUS(status)).unwrap_or(1))
            };
            code = Some(if kind == SIGNALLED { value.saturating_add(128) } else { value });
            let lingering = !reap_now();
            report(kind, value, lingering);
            if !lingering {
                break;
            }
        }
        code.unwrap_or(1)
    }

    /// Reaps the children that have already exited; `true` when none is left.
    fn reap_now() -> bool {
        loop {
            let mut status = 0;
            // SAFETY: as in `reap`.
            match unsafe { libc::waitpid(-1, &raw mut status, libc::WNOHANG) } {
                0 => return false,
                -1 if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) => {
                    return true;
                }
                _ => {}
            }
        }
    }

    /// Tells the waiter how the command ended (it may be gone: then nobody is told).
    fn report(kind: u8, value: u8, lingering: bool) {
        let fd = REPORT.swap(-1, Ordering::Relaxed);
        if fd < 0 {
            return;
        }
        let message = [kind, value, u8::from(lingering)];
        // SAFETY: writing a valid buffer to our own pipe end, then closing it. Three bytes are
        // below PIPE_BUF: written at once or not at all.
        unsafe {
            libc::write(fd, message.as_ptr().cast(), message.len());
            libc::close(fd);
        }
    }

    /// The keeper needs no terminal: holding it (or a pipe) open would keep a reader of `run`'s
    /// output waiting until the last process under us exits.
    fn detach_stdio() {
        // SAFETY: open and dup2 with valid arguments.
        unsafe {
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
            if null >= 0 {
                for fd in 0..3 {
                    libc::dup2(null, fd);
                }
                libc::close(null);
            }
        }
    }

    /// Relays a signal that a process sent (not one the kernel sent: the terminal's reach the
    /// command directly, in the same process group).
    extern "C" fn relay(sig: c_int, info: *mut libc::siginfo_t, _: *mut c_void) {
        // SAFETY: with SA_SIGINFO the kernel passes a valid siginfo; errno is saved and
        // restored around kill, which is async-signal-safe.
        unsafe {
            let errno = *libc::__errno_location();
            let target = TARGET.load(Ordering::Relaxed);
            if (*info).si_code <= 0 {
                if target > 0 {
                    libc::kill(target, sig);
                } else if target == 0 {
                    EARLY.fetch_or(1 << sig, Ordering::Relaxed);
                }
            }
            *libc::__errno_location() = errno;
        }
    }

    extern "C" fn continued(_: c_int, _: *mut libc::siginfo_t, _: *mut c_void) {
        CONTINUED.fetch_add(1, Ordering::Relaxed);
    }

    fn handle(sig: c_int, f: extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void)) {
        // SAFETY: a zeroed sigaction with a valid handler, flags and an empty mask.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = f as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
            libc::sigemptyset(&raw mut action.sa_mask);
            libc::sigaction(sig, &raw const action, std::ptr::null_mut());
        }
    }

    fn os_error(what: &str) -> CliError {
        CliError::failed(format!("{what}: {}", std::io::Error::last_os_error()))
    }
}
