//! systemd socket activation: take the listening socket the service manager passes instead of
//! binding one (sd_listen_fds(3)).
//!
//! `qwen-envd.socket` owns the socket: systemd creates it at login with mode 0600 in a 0700
//! directory and starts us on the first connection, passing it as fd 3 with `LISTEN_FDS=1` and
//! `LISTEN_PID` set to our pid. The variables are left as they are: the daemon never changes its
//! own environment (clippy.toml), and the `LISTEN_PID` check keeps a child from taking them as
//! its own.

use std::os::fd::FromRawFd;
use std::os::unix::net::UnixListener;

use anyhow::{Context, bail};

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: i32 = 3;

/// The listener systemd passed us, or `None` when we were not socket-activated.
pub fn listener() -> anyhow::Result<Option<UnixListener>> {
    let for_us = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|pid| pid.trim().parse::<u32>().ok())
        .is_some_and(|pid| pid == std::process::id());
    if !for_us {
        return Ok(None);
    }
    let count = std::env::var("LISTEN_FDS").unwrap_or_default();
    if count.trim() != "1" {
        bail!(
            "systemd passed LISTEN_FDS={count:?}; qwen-envd.socket must have exactly one \
             ListenStream= line"
        );
    }
    let fd = LISTEN_FDS_START;
    // SAFETY: fcntl on an integer descriptor only queries it; F_GETFD fails with EBADF when fd 3
    // is not open, which we report instead of adopting a descriptor that is not there.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        bail!("LISTEN_FDS=1 but descriptor 3 is not open: {}", std::io::Error::last_os_error());
    }
    // SAFETY: the service manager passed fd 3 to this process (LISTEN_PID is ours) for us to own;
    // nothing else in the daemon uses it.
    let listener = unsafe { UnixListener::from_raw_fd(fd) };
    // Our children (none today) must not inherit the listening socket.
    // SAFETY: as above, fd 3 is ours and open.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    // getsockname fails to decode anything but a Unix socket address: a TCP socket or a plain
    // file on fd 3 is refused here, not at the first accept.
    listener.local_addr().context("descriptor 3 from systemd is not a Unix socket")?;
    Ok(Some(listener))
}
