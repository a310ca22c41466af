//! The shell integration scripts: one template per shell, filled in with the quoted path of this
//! executable (STYLE.md 22; starship's `include_str!` + placeholder).
//!
//! The scripts call the absolute path, not `qwen-env` on PATH, so a prompt never depends on PATH
//! and the hook keeps working in shells whose PATH a tool has changed.

use std::path::Path;

use crate::cli::HookShell;

/// Where the quoted executable goes in the templates.
const PLACEHOLDER: &str = "@QWEN_ENV@";

const BASH: &str = include_str!("bash.sh");
const ZSH: &str = include_str!("zsh.zsh");
const FISH: &str = include_str!("fish.fish");
const POWERSHELL: &str = include_str!("powershell.ps1");

/// The init script for `shell`, calling `exe`. `None` when the path is not UTF-8 (no shell
/// quoting we print could be trusted to round-trip it).
pub fn render(shell: HookShell, exe: &Path) -> Option<String> {
    let exe = exe.to_str()?;
    let (template, quoted) = match shell {
        HookShell::Bash => (BASH, posix_quote(exe)),
        HookShell::Zsh => (ZSH, posix_quote(exe)),
        HookShell::Fish => (FISH, fish_quote(exe)),
        HookShell::Powershell => (POWERSHELL, powershell_quote(exe)),
    };
    Some(template.replace(PLACEHOLDER, &quoted))
}

/// Single-quoted for sh, bash and zsh: nothing inside is special but `'`, written `'\''`.
pub fn posix_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Single-quoted for fish, where `\` and `'` are escaped with a backslash inside single quotes.
pub fn fish_quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', r"\\").replace('\'', r"\'"))
}

/// Single-quoted for PowerShell, which doubles a quote inside, and counts the typographic single
/// quotes (U+2018 to U+201B) as quotes too.
pub fn powershell_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if matches!(c, '\'' | '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}') {
            out.push(c);
        }
        out.push(c);
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An awkward path: a space, a quote, a backslash and a dollar sign.
    const EXE: &str = r"/opt/it's a \$HOME/bin/qwen-env";

    #[test]
    fn quoting() {
        assert_eq!(posix_quote("/usr/bin/qwen-env"), "'/usr/bin/qwen-env'");
        assert_eq!(posix_quote("a'b"), r"'a'\''b'");
        assert_eq!(fish_quote(r"a'b\c"), r"'a\'b\\c'");
        assert_eq!(powershell_quote("C:\\it's\u{2019}"), "'C:\\it''s\u{2019}\u{2019}'");
    }

    #[test]
    fn every_placeholder_is_filled() {
        for shell in [HookShell::Bash, HookShell::Zsh, HookShell::Fish, HookShell::Powershell] {
            let script = render(shell, Path::new(EXE)).unwrap();
            assert!(!script.contains(PLACEHOLDER), "{shell:?}");
            assert!(script.contains("hook-status"), "{shell:?}");
        }
    }

    #[test]
    fn snapshot_bash() {
        insta::assert_snapshot!(render(HookShell::Bash, Path::new(EXE)).unwrap());
    }

    #[test]
    fn snapshot_zsh() {
        insta::assert_snapshot!(render(HookShell::Zsh, Path::new(EXE)).unwrap());
    }

    #[test]
    fn snapshot_fish() {
        insta::assert_snapshot!(render(HookShell::Fish, Path::new(EXE)).unwrap());
    }

    #[test]
    fn snapshot_powershell() {
        insta::assert_snapshot!(render(HookShell::Powershell, Path::new(EXE)).unwrap());
    }
}
