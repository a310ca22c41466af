//! `qwen-env completions SHELL` and `qwen-env man`: generated from the clap definition, so they
//! never drift from the real command line.

use clap::CommandFactory;

use crate::cli::Cli;
use crate::error::CliError;
use crate::out;

pub fn completions(shell: clap_complete::Shell) -> Result<(), CliError> {
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "qwen-env", &mut buf);
    out(&String::from_utf8_lossy(&buf))
}

pub fn man() -> Result<(), CliError> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut buf)
        .map_err(|e| CliError::failed(format!("failed to render the man page: {e}")))?;
    out(&String::from_utf8_lossy(&buf))
}
