//! Messages that must not send the user the wrong way: a missing daemon binary is not to be run,
//! a mistyped flag is not `--version`.

use qwen_env_tests::{TestEnv, describe};

/// A daemon binary that is not there: the message says how to point qwen-env at one, and does
/// not suggest running the missing binary or reading a log it never wrote.
#[test]
fn a_missing_daemon_binary_is_named_without_a_hint_to_run_it() {
    let mut env = TestEnv::new();
    env.set_var("QWEN_ENV_DAEMON", "/nonexistent/qwen-envd");
    let out = env.run(&["status"]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/qwen-envd") && err.contains("QWEN_ENV_DAEMON"), "{err}");
    assert!(!err.contains("qwen-envd --foreground") && !err.contains("log is"), "{err}");
}

/// A mistyped flag is not answered with `--version` (which only the top level has).
#[test]
fn a_mistyped_flag_is_not_pointed_at_version() {
    let env = TestEnv::new();
    let out = env.run(&["doctor", "--verbose"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("--version"), "{}", describe(&out));
    assert!(env.ok(&["--version"]).starts_with("qwen-env "));
}

/// The first screen of `--help` (and of a bare `qwen-env`) says what to do first, and the
/// commands it names are real: each one's own `--help` answers.
#[test]
fn help_starts_with_what_to_do_first() {
    let env = TestEnv::new();
    let help = env.ok(&["--help"]);
    let top: Vec<&str> = help.lines().take(8).collect();
    let start = top.iter().position(|l| *l == "Start here:").unwrap_or_else(|| panic!("{help}"));
    let steps: Vec<&str> =
        top[start + 1..].iter().take_while(|l| l.starts_with("  qwen-env ")).copied().collect();
    assert_eq!(steps.len(), 3, "{help}");
    assert!(
        steps[0].contains("key set")
            && steps[1].contains("doctor")
            && steps[2].contains("run -- qwen")
    );
    for step in steps {
        // `  qwen-env key set NAME   what it does`: the command, up to its argument.
        let command = step.trim_start().split("   ").next().unwrap_or_default();
        let words: Vec<&str> = command
            .split_whitespace()
            .skip(1)
            .take_while(|w| w.chars().all(|c| c.is_ascii_lowercase()))
            .collect();
        let mut args = words.clone();
        args.push("--help");
        let out = env.run(&args);
        assert!(out.status.success(), "{step}: {}", describe(&out));
    }
    // A bare `qwen-env` (a usage error) shows the same start.
    let out = env.run(&[]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("Start here:"), "{}", describe(&out));
}
