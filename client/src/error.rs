//! The client's error type: a message for the user and the exit code it maps to.

use std::fmt;

/// Exit codes (DESIGN.md section 10).
pub mod exit {
    /// Findings of severity error (`doctor`, `run --strict`).
    pub const FINDINGS: u8 = 1;
    /// Usage errors.
    pub const USAGE: u8 = 2;
    /// The daemon is unreachable.
    pub const DAEMON: u8 = 3;
    /// The command to run is not executable.
    pub const NOT_EXECUTABLE: u8 = 126;
    /// The command to run was not found.
    pub const NOT_FOUND: u8 = 127;
}

/// A failure, with what to tell the user and which exit code to return.
#[derive(Debug)]
pub struct CliError {
    /// Exit code.
    pub code: u8,
    /// Message (already actionable), or `None` to exit silently.
    pub message: Option<String>,
}

impl CliError {
    /// A usage error (exit 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Self { code: exit::USAGE, message: Some(message.into()) }
    }

    /// The daemon cannot be reached or started (exit 3); names the log and the debug switch.
    pub fn daemon(message: impl fmt::Display) -> Self {
        let log = qwen_env_proto::endpoint::Dirs::from_env().log_file();
        Self {
            code: exit::DAEMON,
            message: Some(format!(
                "{message}\n  the daemon's log is {}; run `QWEN_ENV_LOG=debug qwen-envd --foreground` \
                 to see it start",
                log.display()
            )),
        }
    }

    /// The daemon binary could not be run at all (exit 3): no log to read and nothing to run in
    /// the foreground, so the message says only how to point qwen-env at the binary.
    pub fn daemon_not_started(message: impl Into<String>) -> Self {
        Self { code: exit::DAEMON, message: Some(message.into()) }
    }

    /// A failure reported by the daemon or the system (exit 1).
    pub fn failed(message: impl Into<String>) -> Self {
        Self { code: 1, message: Some(message.into()) }
    }

    /// Exit with `code` without printing.
    pub fn silent(code: u8) -> Self {
        Self { code, message: None }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message.as_deref().unwrap_or(""))
    }
}

impl std::error::Error for CliError {}
