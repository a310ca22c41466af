//! `qwen-env man [--dir DIR]`: the man pages, generated from the clap definition (so they never
//! drift from the real command line) plus the sections clap does not know: ENVIRONMENT, FILES,
//! EXIT STATUS, EXAMPLES and SEE ALSO.
//!
//! One page per visible command: `qwen-env(1)`, `qwen-env-run(1)`, `qwen-env-key(1)`,
//! `qwen-env-key-set(1)`, … (the names clap_mangen's SUBCOMMANDS sections point to).

use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_mangen::roff::{Roff, bold, italic, roman};

use crate::cli::Cli;
use crate::error::CliError;
use crate::out;

/// Every example, as (command line, what it does). Each page shows the ones that use its command
/// (`qwen-env key set` shows those containing `qwen-env key set`); the main page shows the ones
/// marked for it in [`MAIN_EXAMPLES`].
const EXAMPLES: &[(&str, &str)] = &[
    (
        "qwen-env key set DASHSCOPE_API_KEY",
        "Store a key from a hidden prompt and check where it works.",
    ),
    (
        "printf %s \"$KEY\" | qwen-env key set --no-verify OPENAI_API_KEY",
        "Store a key from standard input without checking it.",
    ),
    ("qwen-env key ls", "List stored keys by name and fingerprint (never the value)."),
    ("qwen-env key ls --json", "The same as JSON (\"schema\": 1)."),
    (
        "qwen-env key import --scrub",
        "Move literal keys from settings, .env and OpenClaw files into the keychain and remove \
         them from the files (a backup is kept).",
    ),
    ("qwen-env key import .env", "Import only the keys of ./.env."),
    ("qwen-env key rm OPENAI_API_KEY", "Delete a stored key."),
    (
        "qwen-env key migrate --from keyutils",
        "Move the keys stored while the daemon used kernel keyutils into the backend it uses now \
         (`key ls` names the backend of a key it cannot read).",
    ),
    ("qwen-env run -- qwen -p hi", "Run Qwen Code with the key its settings need injected."),
    ("qwen-env run --with OPENROUTER_API_KEY -- openclaw", "Also inject a named key."),
    ("qwen-env run --profile work -- qwen", "Inject the keys of the config's [profile.work]."),
    ("qwen-env run --bare --strict -- qwen", "Hermetic Qwen Code; refuse to start on errors."),
    ("qwen-env explain", "Show what Qwen Code will use here, where each value comes from."),
    ("qwen-env explain --as-is --json", "What it resolves today without qwen-env, as JSON."),
    ("qwen-env explain OPENAI_BASE_URL -- openclaw", "Also explain one variable, for OpenClaw."),
    ("qwen-env doctor", "List this directory's problems, each with its fix."),
    ("qwen-env doctor --verify", "Also check the key against its endpoint now."),
    ("qwen-env doctor --json -- openclaw", "Check OpenClaw's setup, as JSON."),
    ("qwen-env status", "Show the daemon's state."),
    ("qwen-env status --json", "The same as JSON."),
    ("qwen-env events", "Follow file changes and new findings as they happen."),
    ("qwen-env events --json", "The same as JSON lines."),
    ("qwen-env trust", "Trust this directory's own files to choose where a key goes."),
    ("qwen-env trust --list", "List trusted files and whether their trust still holds."),
    ("qwen-env trust --revoke ~/src/app", "Forget the trust of every file under ~/src/app."),
    ("qwen-env daemon start", "Start the daemon if it is not running."),
    ("qwen-env daemon stop", "Ask the daemon to exit."),
    ("qwen-env daemon restart", "Stop, then start."),
    ("qwen-env daemon logs -n 50", "Print the last 50 lines of the daemon's log."),
    ("eval \"$(qwen-env hook bash)\"", "In ~/.bashrc: the shell integration (zsh alike)."),
    ("qwen-env hook fish | source", "In ~/.config/fish/config.fish."),
    (
        "qwen-env completions bash > ~/.local/share/bash-completion/completions/qwen-env",
        "Install bash completions for this user.",
    ),
    (
        "qwen-env completions fish > ~/.config/fish/completions/qwen-env.fish",
        "Install fish completions for this user.",
    ),
    ("qwen-env man --dir ~/.local/share/man/man1", "Install every man page for this user."),
    ("qwen-env man | man -l -", "Read the main page without installing it."),
    ("qwen-env service install", "Start the daemon at login (systemd, launchd or a logon task)."),
    ("qwen-env service status", "Say what is installed and whether it runs."),
    ("qwen-env service uninstall", "Stop the login service and remove its files."),
];

/// The examples on `qwen-env(1)`.
const MAIN_EXAMPLES: &[&str] = &[
    "qwen-env key set DASHSCOPE_API_KEY",
    "qwen-env run -- qwen -p hi",
    "qwen-env doctor",
    "eval \"$(qwen-env hook bash)\"",
];

/// The environment variables qwen-env and qwen-envd read.
const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "QWEN_ENV_KEYRING",
        "Force a keychain backend (e.g. keyutils or secret-service) instead of the platform's \
         default.",
    ),
    (
        "QWEN_ENV_NAMESPACE",
        "Keep keychain entries, key metadata and trust records apart under this name (tests, \
         several setups); the daemon, its socket and its config stay the same.",
    ),
    ("QWEN_ENV_DAEMON", "The qwen-envd binary to start (default: beside qwen-env, else on PATH)."),
    ("QWEN_ENV_LOG", "The daemon's log level (error, warn, info, debug)."),
    ("QWEN_ENV_PROBE", "off: never check keys against their endpoints over the network."),
    ("QWEN_ENV_CATALOG", "A provider catalogue file to use instead of the built-in one."),
    ("XDG_RUNTIME_DIR", "Holds the daemon's socket (default: a private dir under $TMPDIR)."),
    ("XDG_CONFIG_HOME", "Holds qwen-env/config.toml (default: ~/.config)."),
    ("XDG_DATA_HOME", "Holds the key metadata and trust records (default: ~/.local/share)."),
    ("XDG_STATE_HOME", "Holds the daemon's log (default: ~/.local/state)."),
    ("HOME", "The base of the defaults above, and of the host tools' own settings."),
];

/// The files qwen-env uses.
const FILES: &[(&str, &str)] = &[
    (
        "$XDG_CONFIG_HOME/qwen-env/config.toml",
        "qwen-env's config: default_command, [profile.NAME] key lists, [generic] keys.",
    ),
    (
        "$XDG_DATA_HOME/qwen-env/keys.json",
        "Key metadata: names, fingerprints, backends, ages. Never a value; the values live in \
         the OS keychain.",
    ),
    ("$XDG_DATA_HOME/qwen-env/trust.json", "The files `qwen-env trust` trusted, by content."),
    ("$XDG_RUNTIME_DIR/qwen-env/sock", "The daemon's socket (directory mode 0700)."),
    ("$XDG_STATE_HOME/qwen-env/qwen-envd.log", "The daemon's log (`qwen-env daemon logs`)."),
];

/// `qwen-env man` prints the main page; `--dir DIR` writes every page into DIR.
pub fn man(dir: Option<&Path>) -> Result<(), CliError> {
    let mut root = Cli::command().disable_help_subcommand(true);
    root.build();
    let Some(dir) = dir else {
        return out(&String::from_utf8_lossy(&page(&root, &[])?));
    };
    std::fs::create_dir_all(dir).map_err(|e| {
        CliError::failed(format!(
            "cannot create {}: {e}; pick a directory you can write to with `--dir`",
            dir.display()
        ))
    })?;
    let mut written = Vec::new();
    write_all(&root, &mut Vec::new(), dir, &mut written)?;
    let mut text = format!("wrote {} man pages to {}:\n", written.len(), dir.display());
    for path in &written {
        text += &format!("  {}\n", path.display());
    }
    text += "read one with `man -l FILE`, or add the directory's parent to MANPATH\n";
    out(&text)
}

fn write_all(
    cmd: &clap::Command,
    path: &mut Vec<String>,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> Result<(), CliError> {
    let name =
        std::iter::once("qwen-env").chain(path.iter().map(String::as_str)).collect::<Vec<_>>();
    let file = dir.join(format!("{}.1", name.join("-")));
    std::fs::write(&file, page(cmd, path)?)
        .map_err(|e| CliError::failed(format!("cannot write {}: {e}", file.display())))?;
    written.push(file);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        path.push(sub.get_name().to_owned());
        write_all(sub, path, dir, written)?;
        path.pop();
    }
    Ok(())
}

/// One page: clap_mangen's sections, then ours. `path` is the command's words after `qwen-env`.
fn page(cmd: &clap::Command, path: &[String]) -> Result<Vec<u8>, CliError> {
    let fail = |e: std::io::Error| CliError::failed(format!("failed to render the man page: {e}"));
    // Every page names the version (VERSION section); only the top level has a --version flag.
    let man = clap_mangen::Man::new(cmd.clone().version(env!("CARGO_PKG_VERSION")))
        .source(concat!("qwen-env ", env!("CARGO_PKG_VERSION")))
        .manual("qwen-env manual");
    let mut buf = Vec::new();
    man.render_title(&mut buf).map_err(fail)?;
    man.render_name_section(&mut buf).map_err(fail)?;
    man.render_synopsis_section(&mut buf).map_err(fail)?;
    man.render_description_section(&mut buf).map_err(fail)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut buf).map_err(fail)?;
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        man.render_subcommands_section(&mut buf).map_err(fail)?;
    }
    let mut roff = Roff::new();
    list(&mut roff, "ENVIRONMENT", ENVIRONMENT);
    list(&mut roff, "FILES", FILES);
    exit_status(&mut roff, path);
    examples(&mut roff, path);
    see_also(&mut roff, cmd, path);
    roff.to_writer(&mut buf).map_err(fail)?;
    man.render_version_section(&mut buf).map_err(fail)?;
    Ok(buf)
}

fn list(roff: &mut Roff, title: &str, items: &[(&str, &str)]) {
    roff.control("SH", [title]);
    for (name, what) in items {
        roff.control("TP", []);
        roff.text([bold(*name)]);
        roff.text([roman(*what)]);
    }
}

fn exit_status(roff: &mut Roff, path: &[String]) {
    roff.control("SH", ["EXIT STATUS"]);
    let mut codes: Vec<(&str, &str)> = Vec::new();
    if path.first().is_some_and(|p| p == "run") {
        codes.push((
            "N",
            "The command's own exit status once it ran (128+N when a signal N ended it).",
        ));
        codes.push(("1", "Nothing ran: a key is missing, or --strict found errors."));
    } else {
        codes.push(("0", "Success."));
        codes.push(("1", "Failure, or findings of severity error (doctor, key set)."));
    }
    codes.push(("2", "Usage error: a wrong flag, argument or value."));
    codes.push(("3", "The daemon is unreachable or could not be started (see its log)."));
    if path.first().is_some_and(|p| p == "run") {
        codes.push(("126", "The command was found but is not executable."));
        codes.push(("127", "The command was not found."));
    }
    for (code, what) in codes {
        roff.control("TP", []);
        roff.text([bold(code)]);
        roff.text([roman(what)]);
    }
}

fn examples(roff: &mut Roff, path: &[String]) {
    roff.control("SH", ["EXAMPLES"]);
    for (line, what) in page_examples(path) {
        roff.control("TP", []);
        roff.text([bold(line)]);
        roff.text([roman(what)]);
    }
}

/// The examples a page shows: those that use its command, or the main page's choice.
pub fn page_examples(path: &[String]) -> Vec<(&'static str, &'static str)> {
    if path.is_empty() {
        return EXAMPLES.iter().filter(|(l, _)| MAIN_EXAMPLES.contains(l)).copied().collect();
    }
    let command = format!("qwen-env {} ", path.join(" "));
    EXAMPLES.iter().filter(|(l, _)| format!("{l} ").contains(&command)).copied().collect()
}

fn see_also(roff: &mut Roff, cmd: &clap::Command, path: &[String]) {
    let mut pages: Vec<String> = Vec::new();
    if let Some((_, parent)) = path.split_last() {
        pages.push(
            std::iter::once("qwen-env")
                .chain(parent.iter().map(String::as_str))
                .collect::<Vec<_>>()
                .join("-"),
        );
    }
    let here = std::iter::once("qwen-env".to_owned())
        .chain(path.iter().cloned())
        .collect::<Vec<_>>()
        .join("-");
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        pages.push(format!("{here}-{}", sub.get_name()));
    }
    roff.control("SH", ["SEE ALSO"]);
    let mut line = Vec::new();
    for (i, page) in pages.iter().enumerate() {
        if i > 0 {
            line.push(roman(", "));
        }
        line.push(bold(page.clone()));
        line.push(roman("(1)"));
    }
    roff.text(line);
    roff.control("PP", []);
    roff.text([
        roman("The daemon: "),
        bold("qwen-envd --help"),
        roman(". The README: "),
        italic(env!("CARGO_PKG_REPOSITORY")),
    ]);
}
