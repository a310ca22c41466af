# qwen-env shell integration for PowerShell. In $PROFILE:
#   Invoke-Expression (& qwen-env hook powershell | Out-String)
# Printed by `qwen-env hook powershell`; regenerate it rather than edit it.

# The tools run through `qwen-env run`, which hands them their credentials from the keychain.
# PowerShell has no `command`; bypass the wrapper with
#   & (Get-Command qwen -CommandType Application)
# Under `qwen-env run` (QWEN_ENV is set) the credentials are already in place and qwen-env
# refuses to nest, so the tool runs directly.
function global:qwen {
    if ($env:QWEN_ENV) { & (Get-Command qwen -CommandType Application | Select-Object -First 1) @args }
    else { & @QWEN_ENV@ run -- qwen @args }
}
function global:openclaw {
    if ($env:QWEN_ENV) { & (Get-Command openclaw -CommandType Application | Select-Object -First 1) @args }
    else { & @QWEN_ENV@ run -- openclaw @args }
}

# Before each prompt: one line when this directory's Qwen Code setup has errors, printed only
# when that changes. `hook-status` never starts the daemon, prints nothing when it is down and
# gives up after a few milliseconds. The original prompt runs first, so it sees the command's
# own $? and $LASTEXITCODE; $LASTEXITCODE is restored after our check.
# Sourcing twice must not wrap the prompt twice.
if (-not $global:__QwenEnvHooked) {
    $global:__QwenEnvHooked = $true
    $global:__QwenEnvLast = ''
    $global:__QwenEnvPrompt = $function:prompt
    function global:prompt {
        $qeText = & $global:__QwenEnvPrompt
        $qeCode = $global:LASTEXITCODE
        $qeNow = (& @QWEN_ENV@ hook-status 2>$null) -join ''
        if ($qeNow -ne $global:__QwenEnvLast) {
            $global:__QwenEnvLast = $qeNow
            if ($qeNow) { [Console]::Error.WriteLine($qeNow) }
        }
        $global:LASTEXITCODE = $qeCode
        $qeText
    }
}
