//! Process hardening at start: no core dumps, no ptrace by other processes of the same user.

/// Disables core dumps and makes the process non-dumpable, which also stops same-uid ptrace and
/// hides `/proc/<pid>/mem` and `environ` from other processes. Best effort: logs what failed.
pub fn harden_process() {
    #[cfg(unix)]
    {
        let zero = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: setrlimit reads a valid, initialised rlimit.
        if unsafe { libc::setrlimit(libc::RLIMIT_CORE, &raw const zero) } != 0 {
            tracing::warn!(cause = %std::io::Error::last_os_error(), "failed to disable core dumps");
        }
    }
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_DUMPABLE takes one integer argument; the rest are ignored.
        if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
            tracing::warn!(cause = %std::io::Error::last_os_error(), "failed to clear dumpable");
        }
    }
}
