//! `qwen-env completions SHELL`: generated from the clap definition, so they
//! never drift from the real command line.

use clap::CommandFactory;

use crate::cli::Cli;
use crate::error::CliError;
use crate::out;

pub fn completions(shell: clap_complete::Shell) -> Result<(), CliError> {
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut visible(&Cli::command()), "qwen-env", &mut buf);
    out(&String::from_utf8_lossy(&buf))
}

/// The command without its hidden subcommands (`hook-status`): clap_complete's static
/// scripts would offer them, and clap has no way to remove a subcommand, so the top level is
/// rebuilt from the visible ones. The top level has no arguments of its own to carry over.
fn visible(cmd: &clap::Command) -> clap::Command {
    let subcommands: Vec<clap::Command> =
        cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned().collect();
    let mut rebuilt = clap::Command::new("qwen-env")
        .version(env!("CARGO_PKG_VERSION"))
        .subcommand_required(cmd.is_subcommand_required_set())
        .propagate_version(true)
        .subcommands(subcommands);
    if let Some(about) = cmd.get_about() {
        rebuilt = rebuilt.about(about.clone());
    }
    rebuilt
}
