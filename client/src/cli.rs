//! The command line (clap derive).

use clap::{Args, Parser, Subcommand};

/// Launch AI coding CLIs with the right credentials from the OS keychain.
#[derive(Parser, Debug)]
#[command(name = "qwen-env", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run CMD with the resolved credentials injected from the keychain.
    Run(RunArgs),
    /// Show what the host tool will use (auth type, model, base URL, key), where each value comes
    /// from and what it shadows.
    Explain(ExplainArgs),
    /// List the problems in this directory's configuration, each with its fix.
    Doctor(DoctorArgs),
    /// Manage keys in the OS keychain.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Show the daemon's state.
    Status {
        /// Print JSON (`"schema": 1`).
        #[arg(long)]
        json: bool,
    },
    /// Start, stop or inspect the daemon.
    #[command(subcommand)]
    Daemon(DaemonCommand),
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Run Qwen Code hermetically: `--bare` plus the OPENAI_* variables.
    #[arg(long)]
    pub bare: bool,
    /// Refuse to start when the resolution has errors.
    #[arg(long)]
    pub strict: bool,
    /// Also inject the keychain entry NAME (repeatable).
    #[arg(long = "with", value_name = "NAME")]
    pub with: Vec<String>,
    /// Inject the keys of a profile from the config.
    #[arg(long, value_name = "P")]
    pub profile: Option<String>,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<std::ffi::OsString>,
}

#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// Also explain these variables.
    #[arg(value_name = "VAR")]
    pub variables: Vec<String>,
    /// What the host tool resolves today without qwen-env (no keychain overlay).
    #[arg(long)]
    pub as_is: bool,
    /// Print JSON (`"schema": 1`).
    #[arg(long)]
    pub json: bool,
    /// Resolve as `run --with NAME` would.
    #[arg(long = "with", value_name = "NAME")]
    pub with: Vec<String>,
    /// Resolve as `run --profile P` would.
    #[arg(long, value_name = "P")]
    pub profile: Option<String>,
    /// The command to resolve for (default: `qwen`).
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<std::ffi::OsString>,
}

#[derive(Args, Debug)]
pub struct DoctorArgs {
    /// Print JSON (`"schema": 1`).
    #[arg(long)]
    pub json: bool,
    /// Check the key against the endpoint now (free requests) and wait for the answer.
    #[arg(long)]
    pub verify: bool,
    /// The command to check (default: `qwen`).
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<std::ffi::OsString>,
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Store a key (from a hidden prompt, or from standard input when it is not a terminal).
    Set {
        /// The variable the key feeds, e.g. DASHSCOPE_API_KEY.
        name: String,
        /// Store only: do not check where the key works.
        #[arg(long)]
        no_verify: bool,
    },
    /// List stored keys: name, fingerprint, backend, age, detected family and last check.
    Ls {
        /// Print JSON (`"schema": 1`).
        #[arg(long)]
        json: bool,
    },
    /// Delete a stored key.
    Rm {
        /// The key's name.
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum DaemonCommand {
    /// Start the daemon if it is not running.
    Start,
    /// Ask the daemon to exit.
    Stop,
    /// Stop, then start.
    Restart,
    /// Print the end of the daemon's log.
    Logs {
        /// How many lines.
        #[arg(short = 'n', long, default_value_t = 100)]
        lines: usize,
    },
}
