//! Tracing to the log file in the state dir (and to stderr), filtered by `QWEN_ENV_LOG`.
//!
//! Secrets never reach a log: they only exist as `SecretValue`, whose `Debug` is redacted.

use std::fs::OpenOptions;
use std::io::IsTerminal;
use std::path::Path;
use std::sync::Mutex;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The log is rotated to `<name>.1` at start once it exceeds this size.
const MAX_LOG_BYTES: u64 = 8 << 20;

/// Installs the global subscriber. A log file that cannot be opened is a warning on stderr, not
/// a reason to refuse to run.
pub fn init(log_file: &Path) {
    let filter = EnvFilter::try_from_env("QWEN_ENV_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    let file = match open_log(log_file) {
        Ok(f) => Some(
            tracing_subscriber::fmt::layer()
                .with_writer(Mutex::new(f))
                .with_ansi(false)
                .with_target(false),
        ),
        Err(e) => {
            eprintln!(
                "qwen-envd: cannot open log file {}: {e}; logging to stderr only",
                log_file.display()
            );
            None
        }
    };
    if tracing_subscriber::registry().with(filter).with(stderr).with(file).try_init().is_err() {
        eprintln!("qwen-envd: logging was already initialised");
    }
}

fn open_log(path: &Path) -> std::io::Result<std::fs::File> {
    if let Some(dir) = path.parent() {
        crate::paths::create_private_dir(dir).map_err(std::io::Error::other)?;
    }
    if std::fs::metadata(path).is_ok_and(|m| m.len() > MAX_LOG_BYTES) {
        let _ = std::fs::rename(path, path.with_extension("log.1"));
    }
    let mut opts = OpenOptions::new();
    opts.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(path)
}
