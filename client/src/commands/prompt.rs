//! The hidden prompt of `key set`.
//!
//! On Unix it reads one line from the controlling terminal with echo off. Ctrl-D on an empty line
//! is "no key" (`Ok(None)`), and Ctrl-C (or a hang-up, or a kill) at the prompt restores the
//! terminal's echo, says nothing was stored and exits 130 (128 + the signal): without the handler
//! the default action would end the process with echo still off, leaving a shell whose typing is
//! invisible.

/// Prints `prompt` on the terminal and reads one line with echo off. `Ok(None)` on Ctrl-D.
#[cfg(unix)]
pub fn hidden(prompt: &str) -> std::io::Result<Option<String>> {
    unix::hidden(prompt)
}

/// Prints `prompt` on the terminal and reads one line with echo off. `Ok(None)` on Ctrl-D.
#[cfg(not(unix))]
pub fn hidden(prompt: &str) -> std::io::Result<Option<String>> {
    match rpassword::prompt_password(prompt) {
        Ok(line) => Ok(Some(line)),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(unix)]
mod unix {
    use std::fs::OpenOptions;
    use std::io::{self, Read, Write};
    use std::os::fd::AsRawFd;
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicI32, Ordering};

    /// The terminal's fd while the prompt runs, for the signal handler (-1 otherwise).
    static TTY: AtomicI32 = AtomicI32::new(-1);
    /// The terminal's settings before the prompt turned echo off.
    static SAVED: OnceLock<libc::termios> = OnceLock::new();

    /// Signals whose default action would leave the terminal without echo.
    const SIGNALS: [libc::c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

    /// The longest line read (a terminal's canonical line holds 4096 bytes).
    const MAX: usize = 64 * 1024;

    extern "C" fn on_signal(signal: libc::c_int) {
        let fd = TTY.load(Ordering::SeqCst);
        if fd >= 0
            && let Some(saved) = SAVED.get()
        {
            // SAFETY: tcsetattr is async-signal-safe; `saved` was filled by tcgetattr.
            unsafe { libc::tcsetattr(fd, libc::TCSANOW, saved) };
        }
        let message: &[u8] =
            b"\nqwen-env: interrupted; nothing stored. Run `qwen-env key set NAME` \
            again, or pipe the key in: `printf %s \"$KEY\" | qwen-env key set NAME`\n";
        // SAFETY: write and _exit are async-signal-safe; the buffer is a static byte string.
        unsafe {
            libc::write(2, message.as_ptr().cast(), message.len());
            libc::_exit(128 + signal);
        }
    }

    pub fn hidden(prompt: &str) -> io::Result<Option<String>> {
        let mut tty = OpenOptions::new().read(true).write(true).open("/dev/tty")?;
        let fd = tty.as_raw_fd();
        // SAFETY: termios is plain data; tcgetattr fills it for a valid fd.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        if unsafe { libc::tcgetattr(fd, &raw mut saved) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let saved = *SAVED.get_or_init(|| saved);
        TTY.store(fd, Ordering::SeqCst);
        let previous = SIGNALS.map(|signal| {
            // SAFETY: installs a handler that only calls async-signal-safe functions.
            unsafe { libc::signal(signal, on_signal as *const () as libc::sighandler_t) }
        });
        let result = read_hidden(&mut tty, fd, &saved, prompt);
        // SAFETY: restores the settings read above on the same fd.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &raw const saved) };
        TTY.store(-1, Ordering::SeqCst);
        for (signal, handler) in SIGNALS.into_iter().zip(previous) {
            // SAFETY: puts back the handler that was there before.
            unsafe { libc::signal(signal, handler) };
        }
        result
    }

    fn read_hidden(
        tty: &mut std::fs::File,
        fd: libc::c_int,
        saved: &libc::termios,
        prompt: &str,
    ) -> io::Result<Option<String>> {
        let mut quiet = *saved;
        // No echo, but the newline the user types still moves the cursor on.
        quiet.c_lflag &= !(libc::ECHO | libc::ECHOE | libc::ECHOK);
        quiet.c_lflag |= libc::ECHONL | libc::ICANON | libc::ISIG;
        // SAFETY: sets plain termios data on a valid fd.
        if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &raw const quiet) } != 0 {
            return Err(io::Error::last_os_error());
        }
        tty.write_all(prompt.as_bytes())?;
        tty.flush()?;
        let mut line = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = match tty.read(&mut chunk) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            line.extend_from_slice(&chunk[..n]);
            chunk.fill(0);
            // Ctrl-D on an empty line (or after the text, pressed twice) ends the input.
            if n == 0 || line.ends_with(b"\n") || line.len() > MAX {
                break;
            }
        }
        if line.is_empty() {
            // The cursor still sits after the prompt.
            tty.write_all(b"\n")?;
            return Ok(None);
        }
        if line.ends_with(b"\n") {
            line.pop();
        }
        String::from_utf8(line)
            .map(Some)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "the key is not UTF-8 text"))
    }
}
