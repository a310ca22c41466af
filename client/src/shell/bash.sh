# shellcheck shell=bash
# qwen-env shell integration for bash. In ~/.bashrc:  eval "$(qwen-env hook bash)"
# Printed by `qwen-env hook bash`; regenerate it rather than edit it.

# The tools run through `qwen-env run`, which hands them their credentials from the keychain.
# `command qwen` bypasses the wrapper. Under `qwen-env run` (QWEN_ENV is set) the credentials are
# already in place and qwen-env refuses to nest, so the tool runs directly. The `function`
# keyword keeps a user's alias of the same name from being expanded into the definition.
function qwen {
    if [[ -n "${QWEN_ENV-}" ]]; then command qwen "$@"; else @QWEN_ENV@ run -- qwen "$@"; fi
}
function openclaw {
    if [[ -n "${QWEN_ENV-}" ]]; then command openclaw "$@"; else @QWEN_ENV@ run -- openclaw "$@"; fi
}

# Before each prompt: one line when this directory's Qwen Code setup has errors, printed only
# when that changes. `hook-status` never starts the daemon, prints nothing when it is down and
# gives up after a few milliseconds. The exit status of the user's command is handed on to the
# prompt and to any later hook.
function __qwen_env_prompt {
    local __qe_status=$?
    local __qe_now
    __qe_now="$(@QWEN_ENV@ hook-status 2>/dev/null)"
    if [[ "$__qe_now" != "${__qwen_env_last-}" ]]; then
        __qwen_env_last=$__qe_now
        if [[ -n "$__qe_now" ]]; then printf '%s\n' "$__qe_now" >&2; fi
    fi
    return "$__qe_status"
}

# Sourcing twice must not install the hook twice, nor repeat the last line.
if [[ -z "${__qwen_env_hooked-}" ]]; then
    __qwen_env_hooked=1
    __qwen_env_last=''
    # bash 5.1 allows PROMPT_COMMAND to be an array; assigning a string would replace its
    # first element. We go first, so we see the command's own exit status.
    if [[ "$(declare -p PROMPT_COMMAND 2>/dev/null)" == "declare -a"* ]]; then
        PROMPT_COMMAND=(__qwen_env_prompt "${PROMPT_COMMAND[@]}")
    else
        # shellcheck disable=SC2128,SC2178 # the string case of the test above
        PROMPT_COMMAND="__qwen_env_prompt${PROMPT_COMMAND:+;$PROMPT_COMMAND}"
    fi
fi
