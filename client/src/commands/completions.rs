//! `qwen-env completions SHELL`: generated from the clap definition, so they
//! never drift from the real command line, plus what clap cannot know: the names of stored keys
//! (`key rm`, `key migrate`, `--with`), of the config's profiles (`--profile`) and of the
//! finding codes reported in the current directory (`doctor --silence`), which the scripts ask a
//! running daemon for with the hidden `qwen-env __complete keys|profiles|codes`, and the values
//! of positionals such as `hook SHELL` (fish offered file names there).

use std::time::Duration;

use clap::CommandFactory;
use qwen_env_proto::endpoint::Endpoint;
use qwen_env_proto::{NameKind, Request, Response};

use crate::cli::{Cli, CompleteWhat};
use crate::error::CliError;
use crate::out;
use crate::transport::Client;

/// How long a completion waits for the daemon: a tab press must not hang.
const NAMES_TIMEOUT: Duration = Duration::from_millis(300);

/// `qwen-env __complete keys|profiles|codes`: one name a line, or nothing at all when no daemon
/// of this version answers in time (no autostart: a tab press must not start a daemon).
pub fn names(what: CompleteWhat) {
    let Ok(mut client) = Client::connect_quick(&Endpoint::from_env().socket(), NAMES_TIMEOUT)
    else {
        return;
    };
    let names = match what {
        CompleteWhat::Keys => listed(&mut client, NameKind::Keys),
        CompleteWhat::Profiles => listed(&mut client, NameKind::Profiles),
        CompleteWhat::Codes => super::explain::codes_here(&mut client),
    };
    if let Some(names) = names.filter(|n| !n.is_empty()) {
        let _ = out(&(names.join("\n") + "\n"));
    }
}

fn listed(client: &mut Client, kind: NameKind) -> Option<Vec<String>> {
    match client.request(&Request::Names(kind)) {
        Ok(Response::Names(names)) => Some(names),
        _ => None,
    }
}

/// Bash: a wrapper in front of clap's function that answers for stored keys and profiles and
/// hands every other position to it.
const BASH_DYNAMIC: &str = r#"
_qwen_env_dynamic() {
    local cur="${COMP_WORDS[COMP_CWORD]}" prev="" kind=""
    (( COMP_CWORD > 0 )) && prev="${COMP_WORDS[COMP_CWORD-1]}"
    local i
    for (( i = 1; i < COMP_CWORD; i++ )); do
        [[ ${COMP_WORDS[i]} == -- ]] && { _qwen__env "$@"; return; }
    done
    case "$prev" in
        --with) kind=keys ;;
        --profile) kind=profiles ;;
        --silence) kind=codes ;;
    esac
    if [[ -z $kind && ${COMP_WORDS[1]-} == key && $cur != -* && $prev != --from ]]; then
        case "${COMP_WORDS[2]-}" in
            rm) (( COMP_CWORD == 3 )) && kind=keys ;;
            migrate) (( COMP_CWORD >= 3 )) && kind=keys ;;
        esac
    fi
    if [[ -n $kind ]]; then
        local IFS=$'
'
        COMPREPLY=($(compgen -W "$("${COMP_WORDS[0]}" __complete "$kind" 2>/dev/null)" -- "$cur"))
        return 0
    fi
    _qwen__env "$@"
}
"#;

/// Zsh: the functions the `_arguments` specs below are pointed at.
const ZSH_DYNAMIC: &str = r#"
(( $+functions[_qwen_env_names] )) ||
_qwen_env_names() {
    local -a names
    # `words` is the subcommand's by now (`_arguments` shifts it): name the program itself.
    names=(${(f)"$(command qwen-env __complete $1 2>/dev/null)"})
    compadd -a names
}
(( $+functions[_qwen_env_keys] )) ||
_qwen_env_keys() { _qwen_env_names keys }
(( $+functions[_qwen_env_profiles] )) ||
_qwen_env_profiles() { _qwen_env_names profiles }
(( $+functions[_qwen_env_codes] )) ||
_qwen_env_codes() { _qwen_env_names codes }
"#;

/// Fish: names for `--with`, `--profile`, `key rm` and `key migrate`, codes for
/// `doctor --silence`; shells for `hook` and `completions`.
fn fish_dynamic() -> String {
    let names = "function __qwen_env_names\n    set -l program (commandline -opc)[1]\n    command $program __complete $argv 2>/dev/null\nend\n";
    let cmd = |cond: &str, rest: &str| {
        format!("complete -c qwen-env -n \"__fish_qwen_env_using_subcommand {cond}\" {rest}\n")
    };
    let mut s = String::from(names);
    for sub in ["run", "explain"] {
        s += &cmd(sub, "-l with -r -f -a \"(__qwen_env_names keys)\"");
        s += &cmd(sub, "-l profile -r -f -a \"(__qwen_env_names profiles)\"");
    }
    s += &cmd("doctor", "-l silence -r -f -a \"(__qwen_env_names codes)\"");
    s += &cmd(
        "key; and __fish_seen_subcommand_from rm migrate; and not __fish_prev_arg_in --from",
        "-f -a \"(__qwen_env_names keys)\"",
    );
    // Positionals with fixed values (`hook SHELL`, `completions SHELL`): the values, no files.
    for sub in Cli::command().get_subcommands().filter(|c| !c.is_hide_set()) {
        for arg in sub.get_positionals() {
            let values: Vec<String> =
                arg.get_possible_values().iter().map(|v| v.get_name().to_owned()).collect();
            if !values.is_empty() {
                s += &cmd(sub.get_name(), &format!("-f -a \"{}\"", values.join(" ")));
            }
        }
    }
    s
}

pub fn completions(shell: clap_complete::Shell) -> Result<(), CliError> {
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut visible(&Cli::command()), "qwen-env", &mut buf);
    let mut script = String::from_utf8_lossy(&buf).into_owned();
    match shell {
        clap_complete::Shell::Bash => {
            // clap_complete 4.6 names the states of a dashed binary two ways: the word loop sets
            // `qwen__env__subcmd__key` but the dispatch matches `qwen__subcmd__env__subcmd__key`,
            // so nothing past the first word completed. One spelling for both.
            script = script.replace("qwen__subcmd__env", "qwen__env");
            script = script.replace("complete -F _qwen__env ", "complete -F _qwen_env_dynamic ");
            let at = script.rfind("\nif [[ \"${BASH_VERSINFO").unwrap_or(script.len());
            script.insert_str(at, BASH_DYNAMIC);
        }
        clap_complete::Shell::Zsh => {
            script = zsh_dynamic(&script);
        }
        clap_complete::Shell::Fish => {
            script += &fish_dynamic();
        }
        _ => {}
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
        .subcommands(subcommands);
    if let Some(about) = cmd.get_about() {
        rebuilt = rebuilt.about(about.clone());
    }
    rebuilt
}

/// Points zsh's `_arguments` specs for key names, profiles and codes at [`ZSH_DYNAMIC`]'s
/// functions.
fn zsh_dynamic(script: &str) -> String {
    let mut out = String::with_capacity(script.len() + ZSH_DYNAMIC.len());
    let mut section = "";
    for line in script.lines() {
        if line.starts_with('(') && line.ends_with(')') {
            section = if line == "(rm)" || line == "(migrate)" { "keys" } else { "" };
        }
        let line = if line.starts_with("'*--with=") {
            line.replacen(":NAME:_default'", ":NAME:_qwen_env_keys'", 1)
        } else if line.starts_with("'--profile=") {
            line.replacen(":P:_default'", ":P:_qwen_env_profiles'", 1)
        } else if line.starts_with("'*--silence=") {
            line.replacen(":CODE:_default'", ":CODE:_qwen_env_codes'", 1)
        } else if section == "keys"
            && (line.starts_with("':name ") || line.starts_with("'*::names "))
        {
            line.replacen(":_default'", ":_qwen_env_keys'", 1)
        } else {
            line.to_owned()
        };
        if line.starts_with("if [ \"$funcstack[1]\" = \"_qwen-env\" ]") {
            out += ZSH_DYNAMIC;
        }
        out += &line;
        out.push('\n');
    }
    out
}
