# qwen-env shell integration for fish. In ~/.config/fish/config.fish:
#   qwen-env hook fish | source
# Printed by `qwen-env hook fish`; regenerate it rather than edit it.

# The tools run through `qwen-env run`, which hands them their credentials from the keychain.
# `command qwen` bypasses the wrapper. Under `qwen-env run` (QWEN_ENV is set) the credentials are
# already in place and qwen-env refuses to nest, so the tool runs directly.
function qwen --description 'qwen through qwen-env run (bypass: command qwen)'
    if test -n "$QWEN_ENV"
        command qwen $argv
    else
        @QWEN_ENV@ run -- qwen $argv
    end
end
function openclaw --description 'openclaw through qwen-env run (bypass: command openclaw)'
    if test -n "$QWEN_ENV"
        command openclaw $argv
    else
        @QWEN_ENV@ run -- openclaw $argv
    end
end

# Before each prompt: one line when this directory's Qwen Code setup has errors, printed only
# when that changes. `hook-status` never starts the daemon, prints nothing when it is down and
# gives up after a few milliseconds. Redefining the function replaces its event handler, so
# sourcing twice installs it once; the exit status of the user's command is handed on.
function __qwen_env_prompt --on-event fish_prompt
    set -l __qe_status $status
    set -l __qe_now (@QWEN_ENV@ hook-status 2>/dev/null)
    if test "$__qe_now" != "$__qwen_env_last"
        set -g __qwen_env_last "$__qe_now"
        if test -n "$__qe_now"
            printf '%s\n' "$__qe_now" >&2
        end
    end
    return $__qe_status
end

# Sourcing twice must not repeat the last line.
if not set -q __qwen_env_hooked
    set -g __qwen_env_hooked 1
    set -g __qwen_env_last ''
end
