//! The shell integration in real shells (`qwen-env hook SHELL`), the completion scripts, and
//! the man page.
//!
//! Each hook script runs in bash, zsh and fish from the distribution (`.ci/run` installs them)
//! with a fake `qwen` on PATH that prints what it was given. PowerShell is not packaged by
//! Debian, so its script is covered by the snapshot test in `client/src/shell` only. bash and zsh
//! also run a real interactive prompt cycle (`-i` reading commands from a pipe), which shows the
//! hook really runs before each prompt and the prompt still sees the command's `$?`.

use std::path::{Path, PathBuf};
use std::process::Output;

use qwen_env_tests::{TestEnv, bin, describe, output_with_stdin, require};

/// The line the prompt hook prints for an empty HOME (Qwen Code has no auth type: one error).
const LINE: &str =
    "qwen-env: 1 error in this directory's Qwen Code setup (no-auth-type); run `qwen-env doctor`";

/// A shell under test: how to source a file, run the hook once, and print the last status.
struct Shell {
    name: &'static str,
    /// Sources the script at the given path.
    source: fn(&str) -> String,
    /// Runs the prompt hook as the shell would before a prompt.
    prompt: &'static str,
    /// Prints `status=N` for the last command.
    status: &'static str,
    /// Prints the registered prompt hooks, one per line.
    list_hooks: &'static str,
    /// Runs a script file.
    run: fn(&Path) -> Vec<String>,
}

const SHELLS: [Shell; 3] = [
    Shell {
        name: "bash",
        source: |p| format!("source '{p}'"),
        prompt: "__qwen_env_prompt",
        status: r#"echo "status=$?""#,
        // PROMPT_COMMAND is `a;b` (or an array); one hook per line.
        list_hooks: r#"printf '%s\n' "${PROMPT_COMMAND[@]}" | tr ';' '\n'"#,
        run: |p| {
            vec!["bash".into(), "--norc".into(), "--noprofile".into(), p.display().to_string()]
        },
    },
    Shell {
        name: "zsh",
        source: |p| format!("source '{p}'"),
        prompt: "for f in $precmd_functions; do $f; done",
        status: r#"echo "status=$?""#,
        list_hooks: "print -rl -- $precmd_functions",
        run: |p| vec!["zsh".into(), "-f".into(), p.display().to_string()],
    },
    Shell {
        name: "fish",
        source: |p| format!("source '{p}'"),
        // `emit` runs the handlers as the prompt does, but sets $status itself; the direct call
        // below shows the handler hands the status on.
        prompt: "emit fish_prompt",
        status: r#"echo "status=$status""#,
        list_hooks: "functions --handlers-type generic | string match '*fish_prompt*'",
        run: |p| vec!["fish".into(), "--no-config".into(), p.display().to_string()],
    },
];

/// An environment with a fake `qwen` and `openclaw` first on PATH, and the hook script for
/// `shell` written out.
fn setup(shell: &Shell) -> (TestEnv, PathBuf) {
    let mut env = TestEnv::new();
    let fake = env.root.path().join("fake-bin");
    std::fs::create_dir_all(&fake).unwrap();
    for tool in ["qwen", "openclaw"] {
        let path = fake.join(tool);
        std::fs::write(
            &path,
            format!("#!/bin/sh\necho \"fake-{tool} QWEN_ENV=${{QWEN_ENV:-unset}} args=$*\"\n"),
        )
        .unwrap();
        qwen_env_tests::set_mode(&path, 0o755);
    }
    env.set_var("PATH", &format!("{}:/usr/local/bin:/usr/bin:/bin", fake.display()));
    env.set_var("QE", &bin("qwen-env").display().to_string());
    let out = env.run(&["hook", shell.name]);
    assert!(out.status.success(), "hook {}: {}", shell.name, describe(&out));
    let script = env.root.path().join(format!("hook.{}", shell.name));
    std::fs::write(&script, &out.stdout).unwrap();
    (env, script)
}

/// Runs `body` in `shell` in `env`.
fn run(env: &TestEnv, shell: &Shell, body: &str) -> Output {
    let file = env.root.path().join(format!("test.{}", shell.name));
    std::fs::write(&file, body).unwrap();
    let argv = (shell.run)(&file);
    env.command(&argv[0]).args(&argv[1..]).output().expect("run the shell")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn scripts_pass_the_shells_own_checks() {
    for shell in &SHELLS {
        if !require(shell.name) {
            continue;
        }
        let (env, script) = setup(shell);
        let out = env.command(shell.name).arg("-n").arg(&script).output().unwrap();
        assert!(out.status.success(), "{} -n: {}", shell.name, describe(&out));
        if shell.name == "bash" && require("shellcheck") {
            let out = env.command("shellcheck").arg(&script).output().unwrap();
            assert!(out.status.success(), "shellcheck: {}", describe(&out));
        }
    }
}

#[test]
fn wrappers_route_through_run_and_sourcing_twice_installs_once() {
    for shell in &SHELLS {
        if !require(shell.name) {
            continue;
        }
        let (env, script) = setup(shell);
        let p = script.display().to_string();
        let body = format!(
            "{src}\n{src}\n{list}\nqwen one two\ncommand qwen three\nopenclaw four\n",
            src = (shell.source)(&p),
            list = shell.list_hooks,
        );
        let out = run(&env, shell, &body);
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{}: {}", shell.name, describe(&out));
        assert_eq!(
            stdout.matches("__qwen_env_").count(),
            1,
            "{}: the prompt hook is installed once: {}",
            shell.name,
            describe(&out)
        );
        assert!(
            stdout.contains("fake-qwen QWEN_ENV=1 args=one two\n"),
            "{}: `qwen` runs through qwen-env run: {}",
            shell.name,
            describe(&out)
        );
        assert!(
            stdout.contains("fake-qwen QWEN_ENV=unset args=three\n"),
            "{}: `command qwen` bypasses the wrapper: {}",
            shell.name,
            describe(&out)
        );
        assert!(stdout.contains("fake-openclaw QWEN_ENV=1 args=four\n"), "{}", describe(&out));
    }
}

#[test]
fn bash_keeps_an_existing_prompt_command() {
    if !require("bash") {
        return;
    }
    let (env, script) = setup(&SHELLS[0]);
    let body = format!(
        "PROMPT_COMMAND='echo mine'\nsource '{p}'\nsource '{p}'\necho \"pc=$PROMPT_COMMAND\"\n\
         PROMPT_COMMAND=(one two)\nunset __qwen_env_hooked\nsource '{p}'\n\
         echo \"array=${{PROMPT_COMMAND[*]}}\"\n",
        p = script.display()
    );
    let out = run(&env, &SHELLS[0], &body);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("pc=__qwen_env_prompt;echo mine\n"), "{}", describe(&out));
    assert!(stdout.contains("array=__qwen_env_prompt one two\n"), "{}", describe(&out));
}

#[test]
fn prompt_line_shows_once_per_change_and_status_is_kept() {
    for shell in &SHELLS {
        if !require(shell.name) {
            continue;
        }
        let (env, script) = setup(shell);
        env.ok(&["daemon", "start"]);
        // Errors (empty HOME: no auth type), the same again (silent), the daemon gone (silent,
        // and the state resets), the daemon back (the line again).
        let body = format!(
            "{src}\n{prompt}\n{prompt}\n\"$QE\" daemon stop >/dev/null\n{prompt}\n\
             \"$QE\" daemon start >/dev/null\n{prompt}\n\
             false\n__qwen_env_{direct}\n{status}\ntrue\n__qwen_env_{direct}\n{status}\n",
            src = (shell.source)(&script.display().to_string()),
            prompt = shell.prompt,
            direct = if shell.name == "zsh" { "precmd" } else { "prompt" },
            status = shell.status,
        );
        let out = run(&env, shell, &body);
        let stderr = text(&out.stderr);
        assert_eq!(
            stderr.lines().filter(|l| *l == LINE).count(),
            2,
            "{}: one line per change: {}",
            shell.name,
            describe(&out)
        );
        assert_eq!(stderr.lines().count(), 2, "{}: nothing else: {}", shell.name, describe(&out));
        assert!(
            text(&out.stdout).ends_with("status=1\nstatus=0\n"),
            "{}: the hook keeps $?: {}",
            shell.name,
            describe(&out)
        );
    }
}

#[test]
fn silent_and_no_autostart_when_the_daemon_is_down() {
    for shell in &SHELLS {
        if !require(shell.name) {
            continue;
        }
        let (env, script) = setup(shell);
        let body = format!(
            "{src}\n{prompt}\n{prompt}\nfalse\n__qwen_env_{direct}\n{status}\n",
            src = (shell.source)(&script.display().to_string()),
            prompt = shell.prompt,
            direct = if shell.name == "zsh" { "precmd" } else { "prompt" },
            status = shell.status,
        );
        let out = run(&env, shell, &body);
        assert!(out.stderr.is_empty(), "{}: silent: {}", shell.name, describe(&out));
        assert_eq!(text(&out.stdout), "status=1\n", "{}: {}", shell.name, describe(&out));
        assert!(!env.daemon_running(), "{}: the prompt hook must not start the daemon", shell.name);
    }
}

/// The status a real interactive prompt shows after `false`, with the hook installed.
#[test]
fn interactive_prompt_runs_the_hook_and_sees_the_status() {
    let cases: [(&str, &[&str], &str); 2] = [
        ("bash", &["--norc", "--noprofile", "-i"], "PS1='[$?] '"),
        ("zsh", &["-f", "-i", "+o", "prompt_sp"], "PS1='[%?] '"),
    ];
    for (name, args, ps1) in cases {
        let shell = SHELLS.iter().find(|s| s.name == name).unwrap();
        if !require(name) {
            continue;
        }
        let (env, script) = setup(shell);
        env.ok(&["daemon", "start"]);
        let input = format!("{ps1}\nsource '{}'\nfalse\ntrue\n", script.display());
        let out = output_with_stdin(env.command(name).args(args), &input);
        // Interactive shells print their prompts on stderr.
        let all = text(&out.stderr) + &text(&out.stdout);
        assert_eq!(all.matches(LINE).count(), 1, "{name}: {}", describe(&out));
        assert!(
            all.contains("[1] "),
            "{name}: the prompt after `false` shows 1: {}",
            describe(&out)
        );
        let after = &all[all.find(LINE).unwrap()..];
        assert!(after.contains("[0] ") && after.contains("[1] "), "{name}: {}", describe(&out));
    }
}

#[test]
fn hook_status_prints_nothing_for_a_clean_directory_or_no_daemon() {
    let env = TestEnv::new();
    let out = env.run(&["hook-status"]);
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "{}",
        describe(&out)
    );
    assert!(!env.daemon_running());
    env.ok(&["daemon", "start"]);
    assert_eq!(env.ok(&["hook-status"]), format!("{LINE}\n"));
    // A complete OpenAI triple in the environment: nothing to report.
    let out = env
        .client(&["hook-status"])
        .env("OPENAI_API_KEY", "sk-test-0000000000000000")
        .env("OPENAI_MODEL", "qwen3-coder-plus")
        .env("OPENAI_BASE_URL", "https://dashscope.aliyuncs.com/compatible-mode/v1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let doctor = env
        .client(&["doctor"])
        .env("OPENAI_API_KEY", "sk-test-0000000000000000")
        .env("OPENAI_MODEL", "qwen3-coder-plus")
        .env("OPENAI_BASE_URL", "https://dashscope.aliyuncs.com/compatible-mode/v1")
        .output()
        .unwrap();
    // hook-status reports exactly when doctor finds errors.
    assert_eq!(out.stdout.is_empty(), doctor.status.success(), "{}", describe(&doctor));
}

/// `default_command = "openclaw"`: the prompt hook, `doctor` and `explain` check OpenClaw when no
/// command is given, and an explicit `-- qwen` still checks Qwen Code.
#[test]
fn default_command_picks_the_tool_checked_without_a_command() {
    let env = TestEnv::new();
    env.ok(&["daemon", "start"]);
    assert_eq!(env.ok(&["hook-status"]), format!("{LINE}\n"));
    env.write_config("default_command = \"openclaw\"\n");
    assert_eq!(
        env.ok(&["hook-status"]),
        "qwen-env: 1 error in this directory's OpenClaw setup (key-missing); run `qwen-env doctor`\n"
    );
    let doctor = env.run(&["doctor", "--json"]);
    let j: serde_json::Value = serde_json::from_slice(&doctor.stdout).unwrap();
    assert_eq!(j["tool"], "openclaw", "{}", describe(&doctor));
    let explain = env.run(&["explain", "--json", "--", "qwen"]);
    let j: serde_json::Value = serde_json::from_slice(&explain.stdout).unwrap();
    assert_eq!(j["tool"], "qwen-code", "{}", describe(&explain));
}

#[test]
fn completion_scripts_parse_and_name_the_subcommands() {
    let env = TestEnv::new();
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let script = env.ok(&["completions", shell]);
        for sub in ["run", "doctor", "explain", "key", "hook", "service", "completions"] {
            assert!(script.contains(sub), "{shell} completions lack {sub}");
        }
        assert!(!script.contains("hook-status"), "{shell}: hidden commands stay hidden");
        if ["bash", "zsh", "fish"].contains(&shell) && require(shell) {
            let path = env.root.path().join(format!("completions.{shell}"));
            std::fs::write(&path, &script).unwrap();
            let out = env.command(shell).arg("-n").arg(&path).output().unwrap();
            assert!(out.status.success(), "{shell} -n: {}", describe(&out));
        }
    }
    let out = env.run(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
}

/// bash completes past the first word: `complete -p` names the function, and calling it with
/// `COMP_WORDS`/`COMP_CWORD` as bash would gives each level's subcommands and flags.
#[test]
fn bash_completion_completes_every_level() {
    if !require("bash") {
        return;
    }
    let env = TestEnv::new();
    let path = env.root.path().join("completions.bash");
    std::fs::write(&path, env.ok(&["completions", "bash"])).unwrap();
    let body = format!(
        "source '{}'\nfn=$(complete -p qwen-env | sed -n 's/.*-F \\([^ ]*\\) .*/\\1/p')\n\
         for line in 'qwen-env ' 'qwen-env key ' 'qwen-env daemon logs --' 'qwen-env key set --'; do\n\
         read -ra COMP_WORDS <<<\"$line\"; [[ $line == *' ' ]] && COMP_WORDS+=('')\n\
         COMP_CWORD=$((${{#COMP_WORDS[@]}}-1)); COMPREPLY=()\n\
         \"$fn\" qwen-env \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"\n\
         echo \"$line=> ${{COMPREPLY[*]}}\"; done\n",
        path.display()
    );
    let out = run(&env, &SHELLS[0], &body);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", describe(&out));
    for (line, want) in [
        ("qwen-env => ", "run explain doctor key"),
        ("qwen-env key => ", "set ls import rm"),
        ("qwen-env daemon logs --=> ", "--lines"),
        ("qwen-env key set --=> ", "--no-verify"),
    ] {
        let got = stdout.lines().find(|l| l.starts_with(line)).unwrap_or_default();
        for word in want.split(' ') {
            assert!(got.contains(word), "`{line}` lacks {word}: {}", describe(&out));
        }
    }
}

#[test]
fn man_page_is_roff() {
    let env = TestEnv::new();
    let page = env.ok(&["man"]);
    assert!(page.contains(".TH qwen-env 1"), "{page}");
    for sub in ["run", "doctor", "hook", "service", "trust"] {
        assert!(page.contains(sub), "the man page lacks {sub}");
    }
    assert!(env.ok(&["--help"]).contains("\n  man "), "`man` is listed in --help");
}

/// `man --dir`: one page per command, each with the extra sections and at least one example, and
/// every page a SUBCOMMANDS or SEE ALSO section names exists.
#[test]
fn man_dir_writes_a_page_per_command() {
    let env = TestEnv::new();
    let dir = env.root.path().join("man1");
    let out = env.run(&["man", "--dir", &dir.display().to_string()]);
    assert!(out.status.success(), "{}", describe(&out));
    for name in [
        "qwen-env",
        "qwen-env-run",
        "qwen-env-explain",
        "qwen-env-doctor",
        "qwen-env-key",
        "qwen-env-key-set",
        "qwen-env-key-ls",
        "qwen-env-key-import",
        "qwen-env-key-rm",
        "qwen-env-key-migrate",
        "qwen-env-status",
        "qwen-env-events",
        "qwen-env-trust",
        "qwen-env-daemon",
        "qwen-env-daemon-logs",
        "qwen-env-hook",
        "qwen-env-completions",
        "qwen-env-man",
        "qwen-env-service",
        "qwen-env-service-install",
    ] {
        let path = dir.join(format!("{name}.1"));
        let page = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}.1: {e}"));
        for section in ["ENVIRONMENT", "FILES", "\"EXIT STATUS\"", "EXAMPLES", "\"SEE ALSO\""] {
            assert!(page.contains(&format!(".SH {section}")), "{name}.1 lacks {section}");
        }
        let examples =
            &page[page.find(".SH EXAMPLES").unwrap()..page.find(".SH \"SEE ALSO\"").unwrap()];
        assert!(examples.contains(".TP"), "{name}.1 has no example: {examples}");
        assert!(page.contains("QWEN_ENV_KEYRING") && page.contains("qwen\\-envd.log"), "{name}.1");
        if name == "qwen-env-run" {
            assert!(page.contains("127"), "run's exit status names 127");
        }
    }
    assert!(!dir.join("qwen-env-hook-status.1").exists(), "hidden commands get no page");
    // Every `qwen-env-…(1)` a page refers to was written.
    for entry in std::fs::read_dir(&dir).unwrap() {
        let page = std::fs::read_to_string(entry.unwrap().path()).unwrap().replace("\\-", "-");
        for (at, _) in page.match_indices("(1)") {
            let start = page[..at]
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .map_or(0, |i| i + 1);
            let name = &page[start..at];
            if name.starts_with("qwen-env") {
                assert!(
                    dir.join(format!("{name}.1")).is_file(),
                    "{name}(1) is referred to but missing"
                );
            }
        }
    }
    if qwen_env_tests::have("man") {
        let out = env
            .command("man")
            .arg("-l")
            .arg(dir.join("qwen-env-key-set.1"))
            .env("MANPAGER", "cat")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", describe(&out));
        assert!(String::from_utf8_lossy(&out.stdout).contains("EXIT STATUS"), "{}", describe(&out));
    }
}
