//! Sending the startup report ([`qwen_env_proto::ready::Report`]) on the file descriptor the
//! starter passed with `--ready-fd`. The client waits for it, so a startup error reaches the
//! user's terminal instead of a log nobody reads.

use std::io::Write;

use qwen_env_proto::ready::Report;

/// Where the report goes, if anyone is listening. Reports at most once.
pub struct Ready {
    out: Option<std::fs::File>,
}

impl Ready {
    /// Reports on `fd` (taken over by this value), or nowhere.
    pub fn new(fd: Option<i32>) -> Self {
        #[cfg(unix)]
        let out = fd.filter(|fd| *fd >= 0).map(|fd| {
            use std::os::fd::FromRawFd;
            // SAFETY: the starter passed this descriptor for us alone; we own it from here.
            unsafe { std::fs::File::from_raw_fd(fd) }
        });
        #[cfg(not(unix))]
        let out = fd.and(None);
        Self { out }
    }

    /// The daemon is listening.
    pub fn ready(&mut self) {
        self.send(&Report::Ready(std::process::id()));
    }

    /// Another daemon is already running.
    pub fn running(&mut self, holder: &str) {
        if self.out.is_none() {
            eprintln!("qwen-envd: another qwen-envd is already running (pid {holder})");
        }
        self.send(&Report::Running(holder.to_owned()));
    }

    /// Startup failed.
    pub fn error(&mut self, message: &str) {
        self.send(&Report::Error(message.to_owned()));
    }

    fn send(&mut self, report: &Report) {
        if let Some(mut out) = self.out.take() {
            let _ = writeln!(out, "{}", report.line());
            #[cfg(unix)]
            {
                use std::os::fd::IntoRawFd;
                redirect_to_null(&out);
                // Keep the descriptor open on /dev/null: if it was stdout, closing it would let
                // the next file we open take fd 1.
                let _ = out.into_raw_fd();
            }
        }
    }
}

/// If the report went to stdout or stderr, point that descriptor at /dev/null so the starter's
/// pipe closes and later writes go nowhere.
#[cfg(unix)]
fn redirect_to_null(out: &std::fs::File) {
    use std::os::fd::AsRawFd;
    let fd = out.as_raw_fd();
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        // SAFETY: dup2 onto a descriptor we own; both are valid.
        unsafe { libc::dup2(null.as_raw_fd(), fd) };
    }
}
