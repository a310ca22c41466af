//! `qwen-env completions SHELL`: generated from the clap definition, so they
//! never drift from the real command line.

use clap::CommandFactory;

use crate::cli::Cli;
use crate::error::CliError;
use crate::out;

pub fn completions(shell: clap_complete::Shell) -> Result<(), CliError> {
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut visible(&Cli::command()), "qwen-env", &mut buf);
    let mut script = String::from_utf8_lossy(&buf).into_owned();
    if shell == clap_complete::Shell::Bash {
        // clap_complete 4.6 names the states of a dashed binary two ways: the word loop sets
        // `qwen__env__subcmd__key` but the dispatch matches `qwen__subcmd__env__subcmd__key`,
        // so nothing past the first word completed. One spelling for both.
        script = script.replace("qwen__subcmd__env", "qwen__env");
    }
    out(&script)
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
