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
