//! Dynamic completions in the real shells' completion machinery: stored key names for `key rm`,
//! `key migrate` and `--with`, profiles for `--profile`, this directory's finding codes for
//! `doctor --silence`, from the running daemon through the hidden `qwen-env __complete`; fish's `hook <TAB>` and
//! `completions <TAB>` offer shells, not files. bash is driven as
//! its completion would be (`complete -p` plus `COMP_WORDS`/`COMP_CWORD`), zsh through `compinit`
//! in a pseudo-terminal (`zsh/zpty`, with `compadd` reporting what it was given), fish through
//! `complete -C`. And in each of the three, every subcommand and long flag at every level of
//! the command tree (read from the real `--help` of each level) is offered.

use std::process::Output;

use qwen_env_tests::{TestEnv, bin, describe, require};

const KEYS: [&str; 2] = ["DASHSCOPE_API_KEY", "OPENROUTER_API_KEY"];
/// The codes `doctor` reports for [`setup`]'s settings (a base URL with a path suffix, keys in
/// kernel keyutils).
const CODES: [&str; 2] = ["base-url-path-suffix", "keychain-not-durable"];

/// Two stored keys, two profiles, settings with a finding, `qwen-env` first on PATH, a file in
/// the working directory (which must never be offered where a name is expected).
fn setup() -> TestEnv {
    let mut env = TestEnv::new();
    let dir = bin("qwen-env").parent().unwrap().display().to_string();
    env.set_var("PATH", &format!("{dir}:/usr/local/bin:/usr/bin:/bin"));
    env.set_key(KEYS[0], "sk-0123456789abcdef0123a289");
    env.set_key(KEYS[1], "sk-or-v1-0000000000000000000000000000beef");
    env.write_config(
        "[profile.work]\nkeys = [\"DASHSCOPE_API_KEY\"]\n[profile.router]\nkeys = [\"OPENROUTER_API_KEY\"]\n",
    );
    std::fs::write(env.home.join("a-file-in-cwd"), "").unwrap();
    let qwen = env.home.join(".qwen");
    std::fs::create_dir_all(&qwen).unwrap();
    std::fs::write(
        qwen.join("settings.json"),
        r#"{ "modelProviders": { "openai": [ { "id": "qwen3-coder-plus", "envKey": "DASHSCOPE_API_KEY",
               "baseUrl": "https://dashscope-intl.aliyuncs.com/compatible-mode/v1/chat/completions" } ] },
             "security": { "auth": { "selectedType": "openai" } }, "model": { "name": "qwen3-coder-plus" } }"#,
    )
    .unwrap();
    env
}

fn script(env: &TestEnv, shell: &str) -> std::path::PathBuf {
    let dir = env.root.path().join(format!("completions-{shell}"));
    std::fs::create_dir_all(&dir).unwrap();
    let name = if shell == "zsh" { "_qwen-env".to_owned() } else { format!("qwen-env.{shell}") };
    let path = dir.join(name);
    std::fs::write(&path, env.ok(&["completions", shell])).unwrap();
    path
}

fn lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect()
}

/// The candidates for each line, from `out`'s `[line]` blocks.
fn blocks(out: &Output) -> Vec<(String, Vec<String>)> {
    let mut all: Vec<(String, Vec<String>)> = Vec::new();
    for l in lines(out) {
        if let Some(head) = l.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            all.push((head.to_owned(), Vec::new()));
        } else if let Some((_, words)) = all.last_mut() {
            // fish prints `candidate<TAB>description`.
            words.push(l.split('\t').next().unwrap_or_default().to_owned());
        }
    }
    all
}

fn expect(out: &Output, cases: &[(&str, &[&str])]) {
    let got = blocks(out);
    for (line, want) in cases {
        let Some((_, words)) = got.iter().find(|(l, _)| l == line) else {
            panic!("no block for `{line}`: {}", describe(out))
        };
        let mut sorted = words.clone();
        sorted.sort();
        sorted.dedup();
        let mut want: Vec<String> = want.iter().map(|w| (*w).to_owned()).collect();
        want.sort();
        assert_eq!(sorted, want, "`{line}`: {}", describe(out));
    }
}

#[test]
fn complete_lists_names_and_is_silent_without_a_daemon() {
    let env = setup();
    assert_eq!(env.ok(&["__complete", "keys"]), format!("{}\n{}\n", KEYS[0], KEYS[1]));
    assert_eq!(env.ok(&["__complete", "profiles"]), "router\nwork\n");
    assert_eq!(env.ok(&["__complete", "codes"]), format!("{}\n{}\n", CODES[0], CODES[1]));
    env.ok(&["daemon", "stop"]);
    let out = env.run(&["__complete", "keys"]);
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "{}",
        describe(&out)
    );
    assert!(!env.daemon_running(), "a tab press started the daemon");
    // Hidden: not in --help, and not offered by the scripts.
    assert!(!env.ok(&["--help"]).contains("__complete"));
    assert!(!env.ok(&["completions", "bash"]).contains("__complete keys|"));
}

#[test]
fn bash_completes_keys_and_profiles() {
    if !require("bash") {
        return;
    }
    let env = setup();
    let path = script(&env, "bash");
    let body = format!(
        "source '{}'\nfn=$(complete -p qwen-env | sed -n 's/.*-F \\([^ ]*\\) .*/\\1/p')\n\
         for line in 'qwen-env key rm ' 'qwen-env key rm O' 'qwen-env run --with ' 'qwen-env explain --with D' \
         'qwen-env run --profile ' 'qwen-env key migrate --from keyutils ' 'qwen-env key migrate --from ' 'qwen-env key ' 'qwen-env doctor --silence '; do\n\
         read -ra COMP_WORDS <<<\"$line\"; [[ $line == *' ' ]] && COMP_WORDS+=('')\n\
         COMP_CWORD=$((${{#COMP_WORDS[@]}}-1)); COMPREPLY=()\n\
         \"$fn\" qwen-env \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"\n\
         echo \"[$line]\"; printf '%s\\n' \"${{COMPREPLY[@]}}\"; done\n",
        path.display()
    );
    let out = env.command("bash").args(["--norc", "--noprofile", "-c", &body]).output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    expect(
        &out,
        &[
            ("qwen-env key rm ", &KEYS),
            ("qwen-env key rm O", &["OPENROUTER_API_KEY"]),
            ("qwen-env run --with ", &KEYS),
            ("qwen-env explain --with D", &["DASHSCOPE_API_KEY"]),
            ("qwen-env run --profile ", &["router", "work"]),
            ("qwen-env key migrate --from keyutils ", &KEYS),
            ("qwen-env key migrate --from ", &["keyutils", "secret-service", "macos", "windows"]),
            ("qwen-env key ", &["set", "ls", "import", "rm", "migrate", "help", "-h", "--help"]),
            ("qwen-env doctor --silence ", &CODES),
        ],
    );
}

/// Types `line` and a tab into an interactive zsh with `compinit` and the script on `fpath`;
/// `compadd` prints each candidate it is handed (the technique of zsh-capture-completion).
const ZSH_CAPTURE: &str = r#"
zmodload zsh/zpty
typeset got
for line in "$@"; do
  print -r -- "[$line]"
  zpty z zsh -f -i
  zpty -w z "fpath=($FPATH_DIR \$fpath); autoload -Uz compinit; compinit -u -D"
  zpty -w z 'bindkey "^I" complete-word; null-line() { echo -E - $'"'"'\0'"'"' }; compprefuncs=( null-line ); comppostfuncs=( null-line exit )'
  zpty -w z 'zstyle ":completion:*" list-grouped false; zstyle ":completion:*" insert-tab false'
  zpty -w z 'compadd () { if [[ ${@[1,(i)(-|--)]} == *-(O|A|D)\ * ]]; then builtin compadd "$@"; return $?; fi; typeset -a __hits; builtin compadd -A __hits "$@"; local h; for h in $__hits; do echo -E - "HIT:$h"; done }'
  zpty -w z 'PROMPT=""'
  zpty -wn z "$line"$'\t'
  while zpty -r z got; do
    got=${got//$'\r'/}; got=${got%$'\n'}
    [[ $got == HIT:* ]] && print -r -- "${got#HIT:}"
  done
  zpty -d z 2>/dev/null
done
"#;

#[test]
fn zsh_completes_keys_and_profiles() {
    if !require("zsh") {
        return;
    }
    let env = setup();
    let path = script(&env, "zsh");
    let capture = env.root.path().join("capture.zsh");
    std::fs::write(&capture, ZSH_CAPTURE).unwrap();
    let out = env
        .command("timeout")
        .arg("60")
        .arg("zsh")
        .arg("-f")
        .arg(&capture)
        .args([
            "qwen-env key rm ",
            "qwen-env run --with ",
            "qwen-env run --profile ",
            "qwen-env key migrate --from keyutils ",
            "qwen-env key ",
            "qwen-env doctor --silence ",
        ])
        .env("FPATH_DIR", path.parent().unwrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    expect(
        &out,
        &[
            ("qwen-env key rm ", &KEYS),
            ("qwen-env run --with ", &KEYS),
            ("qwen-env run --profile ", &["router", "work"]),
            ("qwen-env key migrate --from keyutils ", &KEYS),
            ("qwen-env key ", &["set", "ls", "import", "rm", "migrate", "help"]),
            ("qwen-env doctor --silence ", &CODES),
        ],
    );
}

#[test]
fn fish_completes_keys_profiles_and_hook_shells() {
    if !require("fish") {
        return;
    }
    let env = setup();
    let path = script(&env, "fish");
    let body = format!(
        "source '{}'\nfor line in 'qwen-env key rm ' 'qwen-env run --with ' 'qwen-env explain --profile ' \
         'qwen-env key migrate --from keyutils ' 'qwen-env hook ' 'qwen-env completions ' 'qwen-env doctor --silence '\n  echo \"[$line]\"; complete -C \"$line\"\nend\n",
        path.display()
    );
    let out = env.command("fish").args(["--no-config", "-c", &body]).output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    expect(
        &out,
        &[
            ("qwen-env key rm ", &KEYS),
            ("qwen-env run --with ", &KEYS),
            ("qwen-env explain --profile ", &["router", "work"]),
            ("qwen-env key migrate --from keyutils ", &KEYS),
            ("qwen-env hook ", &["bash", "zsh", "fish", "powershell"]),
            ("qwen-env completions ", &["bash", "zsh", "fish", "powershell", "elvish"]),
            ("qwen-env doctor --silence ", &CODES),
        ],
    );
}

/// One level of the command tree as `--help` shows it: the words after `qwen-env`, the
/// subcommands and the long flags.
struct Level {
    path: Vec<String>,
    subcommands: Vec<String>,
    flags: Vec<String>,
}

/// The whole command tree, read from the real `--help` of every level (so a subcommand or flag
/// added later is checked without touching this test).
fn tree(env: &TestEnv) -> Vec<Level> {
    let mut out = Vec::new();
    let mut todo = vec![Vec::<String>::new()];
    while let Some(path) = todo.pop() {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let help = env.ok(&args);
        let mut section = "";
        let (mut subcommands, mut flags) = (Vec::new(), Vec::new());
        for line in help.lines() {
            if !line.starts_with(' ') {
                section = line.trim_end_matches(':');
                continue;
            }
            let spec = line.trim_start().split("  ").next().unwrap_or_default();
            match section {
                "Commands" => subcommands.push(spec.to_owned()),
                "Options" => flags.extend(
                    spec.split([',', ' '])
                        .filter(|w| w.starts_with("--") && w.len() > 2)
                        .map(str::to_owned),
                ),
                _ => {}
            }
        }
        for sub in subcommands.iter().filter(|s| *s != "help") {
            todo.push(path.iter().cloned().chain([sub.clone()]).collect());
        }
        out.push(Level { path, subcommands, flags });
    }
    assert!(
        out.len() >= 20,
        "the tree has {} levels: `--help` no longer lists commands",
        out.len()
    );
    out
}

/// The lines to complete for every level (`qwen-env key ` for its subcommands, `qwen-env key
/// set --` for its flags) and what each must offer (at least).
fn tree_lines(env: &TestEnv) -> Vec<(String, Vec<String>)> {
    let mut lines = Vec::new();
    for level in tree(env) {
        let words: String = level.path.iter().flat_map(|w| [w.as_str(), " "]).collect();
        if !level.subcommands.is_empty() {
            lines.push((format!("qwen-env {words}"), level.subcommands));
        }
        if !level.flags.is_empty() {
            lines.push((format!("qwen-env {words}--"), level.flags));
        }
    }
    lines
}

/// Every line's block holds at least what `--help` lists for it.
fn expect_superset(out: &Output, lines: &[(String, Vec<String>)]) {
    let got = blocks(out);
    let mut missing = Vec::new();
    for (line, want) in lines {
        let Some((_, words)) = got.iter().find(|(l, _)| l == line) else {
            panic!("no block for `{line}`: {}", describe(out))
        };
        for w in want.iter().filter(|w| !words.contains(w)) {
            missing.push(format!("`{line}` does not offer {w} (offers {words:?})"));
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

#[test]
fn bash_completes_every_subcommand_and_flag_at_every_level() {
    if !require("bash") {
        return;
    }
    let env = setup();
    let lines = tree_lines(&env);
    let path = script(&env, "bash");
    let quoted: Vec<String> = lines.iter().map(|(l, _)| format!("'{l}'")).collect();
    let body = format!(
        "source '{}'\nfn=$(complete -p qwen-env | sed -n 's/.*-F \\([^ ]*\\) .*/\\1/p')\n\
         for line in {}; do\n\
         read -ra COMP_WORDS <<<\"$line\"; [[ $line == *' ' ]] && COMP_WORDS+=('')\n\
         COMP_CWORD=$((${{#COMP_WORDS[@]}}-1)); COMPREPLY=()\n\
         \"$fn\" qwen-env \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"\n\
         echo \"[$line]\"; printf '%s\\n' \"${{COMPREPLY[@]}}\"; done\n",
        path.display(),
        quoted.join(" ")
    );
    let out = env.command("bash").args(["--norc", "--noprofile", "-c", &body]).output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    expect_superset(&out, &lines);
}

#[test]
fn zsh_completes_every_subcommand_and_flag_at_every_level() {
    if !require("zsh") {
        return;
    }
    let env = setup();
    let lines = tree_lines(&env);
    let path = script(&env, "zsh");
    let capture = env.root.path().join("capture.zsh");
    std::fs::write(&capture, ZSH_CAPTURE).unwrap();
    let out = env
        .command("timeout")
        .arg("300")
        .arg("zsh")
        .arg("-f")
        .arg(&capture)
        .args(lines.iter().map(|(l, _)| l))
        .env("FPATH_DIR", path.parent().unwrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    expect_superset(&out, &lines);
}

#[test]
fn fish_completes_every_subcommand_and_flag_at_every_level() {
    if !require("fish") {
        return;
    }
    let env = setup();
    let lines = tree_lines(&env);
    let path = script(&env, "fish");
    let quoted: Vec<String> = lines.iter().map(|(l, _)| format!("'{l}'")).collect();
    let body = format!(
        "source '{}'\nfor line in {}\n  echo \"[$line]\"; complete -C \"$line\"\nend\n",
        path.display(),
        quoted.join(" ")
    );
    let out = env.command("fish").args(["--no-config", "-c", &body]).output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    expect_superset(&out, &lines);
}
