//! The command line (clap derive).

use std::ffi::OsString;

use clap::{Args, Parser, Subcommand};

/// What a new user does first, above the list of commands (README, "First steps").
const START_HERE: &str = "\
Start here:
  qwen-env key set DASHSCOPE_API_KEY   store your key in the OS keychain (paste it at the prompt)
  qwen-env doctor                      check this directory's setup; every problem has its fix
  qwen-env run -- qwen                 start Qwen Code with the keychain's key (or -- openclaw)";

/// Launch AI coding CLIs with the right credentials from the OS keychain.
#[derive(Parser, Debug)]
// The version is the top level's only (`qwen-env --version`): propagated, it made clap answer a
// mistyped `doctor --verbose` with "a similar argument exists: '--version'".
#[command(
    name = "qwen-env",
    version,
    about,
    before_help = START_HERE,
    help_template = "{about-with-newline}\n{before-help}{usage-heading} {usage}\n\n{all-args}{after-help}"
)]
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
    /// Stream what the daemon notices: file changes and new findings, as they happen.
    Events {
        /// Print JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Trust a directory's own files (workspace settings, project `.env`) to choose where a key
    /// goes; until then qwen-env sends keys only to the key's provider and to URLs from your own
    /// files. Trust lapses when one of those files changes.
    Trust(TrustArgs),
    /// Start, stop or inspect the daemon.
    #[command(subcommand)]
    Daemon(DaemonCommand),
    /// Print the shell integration: `eval "$(qwen-env hook bash)"` in ~/.bashrc (see README).
    Hook {
        /// The shell to print it for.
        shell: HookShell,
    },
    /// The prompt hook's check: one line when this directory's setup has errors, else nothing.
    /// Never starts the daemon, never fails, answers within a few milliseconds.
    #[command(hide = true)]
    HookStatus,
    /// Names the completion scripts offer (stored keys, profiles, this directory's finding
    /// codes), one a line, from a running daemon; prints nothing (and exits 0) when none answers
    /// quickly. Never starts one.
    #[command(name = "__complete", hide = true)]
    Complete {
        /// What to list.
        what: CompleteWhat,
    },
    /// Print a completion script for SHELL to standard output.
    Completions {
        /// The shell to print it for.
        shell: clap_complete::Shell,
    },
    /// Print the main man page (roff), or write one page per command into DIR.
    Man {
        /// Write qwen-env.1, qwen-env-run.1, qwen-env-key-set.1, … into DIR (created if missing).
        #[arg(long, value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
        dir: Option<std::path::PathBuf>,
    },
    /// Start the daemon at login: a systemd user unit, a launchd agent or a logon task.
    #[command(subcommand)]
    Service(ServiceCommand),
}

/// What `__complete` lists.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompleteWhat {
    /// Stored keys' names.
    Keys,
    /// The config's profiles.
    Profiles,
    /// The codes of the findings `doctor` reports in the current directory.
    Codes,
}

/// Shells `hook` supports.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookShell {
    /// GNU Bash 4 and later.
    Bash,
    /// Zsh.
    Zsh,
    /// Fish 3 and later.
    Fish,
    /// PowerShell 7 (pwsh) and Windows PowerShell 5.1.
    #[value(alias = "pwsh")]
    Powershell,
}

#[derive(Subcommand, Debug)]
pub enum ServiceCommand {
    /// Install the login service and start it (systemd user units, launchd agent, logon task).
    Install,
    /// Stop the login service and remove its files.
    Uninstall,
    /// Say what is installed and whether the service manager runs it.
    Status,
}

#[derive(Args, Debug, Default, PartialEq, Eq)]
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
    pub command: Vec<OsString>,
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
    /// The command to resolve for (default: `qwen`, or the config's `default_command`).
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<std::ffi::OsString>,
}

#[derive(Args, Debug)]
pub struct TrustArgs {
    /// The directory (default: the current one).
    #[arg(value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
    pub dir: Option<std::path::PathBuf>,
    /// List every trusted file and whether its trust still holds.
    #[arg(long, conflicts_with_all = ["revoke", "dir"])]
    pub list: bool,
    /// Forget the trust of every file in or below DIR.
    #[arg(long)]
    pub revoke: bool,
}

#[derive(Args, Debug)]
pub struct DoctorArgs {
    /// Print JSON (`"schema": 1`).
    #[arg(long)]
    pub json: bool,
    /// Check the key against the endpoint now (free requests) and wait for the answer.
    #[arg(long)]
    pub verify: bool,
    /// Leave out findings with this code, here and in the exit status (repeatable); the
    /// config's `silence = [...]` does it for good.
    #[arg(long = "silence", value_name = "CODE")]
    pub silence: Vec<String>,
    /// The command to check (default: `qwen`, or the config's `default_command`).
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
    /// Move literal keys from settings, .env and OpenClaw files into the keychain.
    Import {
        /// Also remove each imported key from its file (a private backup of the file is kept under
        /// the state directory, `~/.local/state/qwen-env/backups/`).
        #[arg(long)]
        scrub: bool,
        /// Replace a different value that the keychain already holds.
        #[arg(long)]
        force: bool,
        /// Print JSON (`"schema": 1`).
        #[arg(long)]
        json: bool,
        /// Only these files (default: every file Qwen Code and OpenClaw read here).
        #[arg(value_name = "PATH")]
        paths: Vec<std::path::PathBuf>,
    },
    /// Delete a stored key.
    Rm {
        /// The key's name.
        name: String,
    },
    /// Move keys stored while the daemon used another keychain backend into the one it uses now
    /// (`key ls` names the backend of a key it cannot read).
    Migrate {
        /// The backend the keys are in now.
        #[arg(long, value_name = "BACKEND", value_parser = ["keyutils", "secret-service", "macos", "windows"])]
        from: String,
        /// Only these keys (default: every key `key ls` lists).
        #[arg(value_name = "NAME")]
        names: Vec<String>,
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

/// `run`'s everyday command lines, parsed without clap.
///
/// `run` sits on the launch path of every `qwen` start, and building clap's full command tree
/// costs it about 85 KB of heap and the code pages to match, a tenth of a millisecond of page
/// faults (README, "Performance"). This accepts only spellings whose meaning is plain: `--bare`,
/// `--strict`, `--with NAME`, `--with=NAME`, `--profile P`, `--profile=P`, then `--` and a
/// command. Anything else (help, a repeated `--profile`, a value starting with `-`, an unknown
/// flag) returns `None` and goes to clap, so usage errors and help read the same as ever. A
/// test below checks every short command line against clap.
pub fn fast_run(args: &[OsString]) -> Option<RunArgs> {
    let mut args = args.get(1..)?.iter();
    if args.next()? != "run" {
        return None;
    }
    let mut run = RunArgs::default();
    loop {
        let arg = args.next()?.to_str()?;
        match arg {
            "--" => break,
            "--bare" if !run.bare => run.bare = true,
            "--strict" if !run.strict => run.strict = true,
            "--with" => run.with.push(plain_value(args.next()?.to_str()?)?),
            "--profile" if run.profile.is_none() => {
                run.profile = Some(plain_value(args.next()?.to_str()?)?);
            }
            _ => {
                if let Some(value) = arg.strip_prefix("--with=") {
                    run.with.push(plain_value(value)?);
                } else if let Some(value) = arg.strip_prefix("--profile=")
                    && run.profile.is_none()
                {
                    run.profile = Some(plain_value(value)?);
                } else {
                    return None;
                }
            }
        }
    }
    run.command = args.cloned().collect();
    (!run.command.is_empty()).then_some(run)
}

/// For `run`, `explain` and `doctor` lines whose command lacks the `--` before it
/// (`qwen-env run qwen -p hi`), the same line with `--` put in, to follow clap's error.
pub fn separator_hint(args: &[OsString], kind: clap::error::ErrorKind) -> Option<String> {
    use clap::error::ErrorKind;
    if !matches!(kind, ErrorKind::UnknownArgument | ErrorKind::MissingRequiredArgument) {
        return None;
    }
    let words: Vec<String> =
        args.get(1..)?.iter().map(|a| a.to_string_lossy().into_owned()).collect();
    let sub = words.first()?;
    if !["run", "explain", "doctor"].contains(&sub.as_str()) || words.iter().any(|w| w == "--") {
        return None;
    }
    let mut at = None;
    let mut i = 1;
    while i < words.len() {
        match words[i].as_str() {
            "--with" | "--profile" => i += 2,
            w if w.starts_with('-') => i += 1,
            _ if sub == "explain" => return None,
            _ => {
                at = Some(i);
                break;
            }
        }
    }
    let at = at?;
    let quote = |w: &String| {
        if !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric() || "-_=./:@%+,".contains(c))
        {
            w.clone()
        } else {
            format!("'{}'", w.replace('\'', r"'\''"))
        }
    };
    let before: Vec<String> = words[..at].iter().map(quote).collect();
    let after: Vec<String> = words[at..].iter().map(quote).collect();
    Some(format!(
        "hint: put `--` before the command, so its own flags stay its own: `qwen-env {} -- {}`",
        before.join(" "),
        after.join(" ")
    ))
}

/// A value clap would take as is: not empty and not looking like a flag.
fn plain_value(value: &str) -> Option<String> {
    (!value.is_empty() && !value.starts_with('-')).then(|| value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<OsString> {
        ["qwen-env", "run"].iter().chain(words).map(OsString::from).collect()
    }

    fn clap_run(args: &[OsString]) -> Option<RunArgs> {
        match Cli::try_parse_from(args).ok()?.command {
            Command::Run(run) => Some(run),
            _ => None,
        }
    }

    #[test]
    fn everyday_lines_take_the_fast_path() {
        for words in [
            &["--", "qwen"][..],
            &["--with", "DASHSCOPE_API_KEY", "--", "qwen", "-p", "hi"],
            &["--with=A", "--with", "B", "--bare", "--strict", "--profile", "work", "--", "x"],
            &["--profile=p", "--", "qwen", "--", "--with"],
        ] {
            let args = argv(words);
            let fast = fast_run(&args).unwrap_or_else(|| panic!("{words:?} went to clap"));
            assert_eq!(Some(fast), clap_run(&args), "{words:?}");
        }
    }

    /// Every command line of up to five words from an alphabet of flags, values, near-misses and
    /// separators: whenever the fast path answers, clap parses the same line to the same thing.
    #[test]
    fn fast_path_agrees_with_clap() {
        const WORDS: &[&str] = &[
            "--",
            "cmd",
            "--bare",
            "--strict",
            "--with",
            "K",
            "--with=K",
            "--with=",
            "--profile",
            "P",
            "--profile=P",
            "-x",
            "--help",
            "-h",
            "--wit",
            "",
            "--bare=1",
        ];
        let mut fast_hits = 0;
        let mut line = Vec::new();
        let mut stack = vec![0usize];
        // Depth-first over every sequence of 1 to 5 words: stack[d] is the next word to try at d.
        while let Some(next) = stack.pop() {
            if next < WORDS.len() {
                stack.push(next + 1);
                line.truncate(stack.len() - 1);
                line.push(WORDS[next]);
                let args = argv(&line);
                if let Some(fast) = fast_run(&args) {
                    fast_hits += 1;
                    assert_eq!(Some(fast), clap_run(&args), "{line:?}");
                }
                if stack.len() < 5 {
                    stack.push(0);
                }
            }
        }
        assert!(fast_hits > 1000, "the fast path answered only {fast_hits} lines");
    }

    #[test]
    fn a_command_without_the_separator_gets_the_separated_line() {
        use clap::error::ErrorKind::UnknownArgument;
        let hint = |words: &[&str]| {
            let args: Vec<OsString> =
                ["qwen-env"].iter().chain(words).map(OsString::from).collect();
            let err = Cli::try_parse_from(&args).expect_err("a usage error");
            separator_hint(&args, err.kind())
        };
        assert_eq!(
            hint(&["run", "qwen", "-p", "hi"]).unwrap(),
            "hint: put `--` before the command, so its own flags stay its own: \
             `qwen-env run -- qwen -p hi`"
        );
        assert!(
            hint(&["run", "--with", "K", "qwen", "it's"])
                .unwrap()
                .ends_with("`qwen-env run --with K -- qwen 'it'\\''s'`")
        );
        assert!(hint(&["doctor", "qwen"]).unwrap().ends_with("`qwen-env doctor -- qwen`"));
        assert_eq!(hint(&["run", "--nope"]), None, "no command to separate");
        let args: Vec<OsString> = ["qwen-env", "key", "ls", "x"].map(OsString::from).to_vec();
        assert_eq!(separator_hint(&args, UnknownArgument), None);
    }

    #[test]
    fn other_commands_and_odd_lines_go_to_clap() {
        let some = |words: &[&str]| -> Vec<OsString> { words.iter().map(OsString::from).collect() };
        assert_eq!(fast_run(&some(&["qwen-env", "explain", "--", "qwen"])), None);
        assert_eq!(fast_run(&some(&["qwen-env"])), None);
        assert_eq!(fast_run(&argv(&["--with", "K"])), None, "no command");
        assert_eq!(fast_run(&argv(&["--"])), None, "empty command");
        assert_eq!(fast_run(&argv(&["--with", "--bare", "--", "x"])), None, "value like a flag");
        assert_eq!(fast_run(&argv(&["--profile=a", "--profile=b", "--", "x"])), None);
    }
}
