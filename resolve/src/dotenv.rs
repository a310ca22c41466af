//! `.env` parsing with Node dotenv 16/17's `parse` (the one Qwen Code bundles, HOST_TOOLS.md 2.1).
//!
//! Why not the `dotenvy` crate: dotenvy expands `$VAR`/`${VAR}`, which dotenv 16/17 never does, and
//! the two differ on quoting (dotenv keeps `\'` as is and only turns `\n`/`\r` into newlines inside
//! double quotes), multi-line quoted values, `KEY: value` lines and inline `#` comments. A value
//! that differs from what Qwen Code reads would make every source we report wrong, so we
//! reproduce dotenv's single `LINE` regex instead:
//!
//! ```js
//! const LINE = /(?:^|^)\s*(?:export\s+)?([\w.-]+)(?:\s*=\s*?|:\s+?)(\s*'(?:\\'|[^'])*'|\s*"(?:\\"|[^"])*"|\s*`(?:\\`|[^`])*`|[^#\r\n]+)?\s*(?:#.*)?(?:$|$)/mg
//! ```
//!
//! Translation to the `regex` crate, which has JavaScript's leftmost-first (backtracking) match
//! preference for this regex: `\s` is spelled out as JavaScript's set (Unicode `\s` differs: it
//! has U+0085 and lacks U+FEFF), `\w` as ASCII, `.` as "not a line terminator", and the `m`-flag
//! anchors, which in JavaScript also fire at U+2028/U+2029, consume the terminator instead (the
//! regex crate has no lookaround). Consuming it does not change which alternative wins, and the
//! scan resumes at the terminator exactly as `lastIndex` would.

use std::sync::LazyLock;

use regex::Regex;

/// JavaScript's `\s`.
const WS: &str = r"[\t\n\x0B\x0C\r \u{A0}\u{1680}\u{2000}-\u{200A}\u{2028}\u{2029}\u{202F}\u{205F}\u{3000}\u{FEFF}]";
/// Line terminators left after `\r\n?` → `\n`.
const LT: &str = r"[\n\u{2028}\u{2029}]";

static LINE: LazyLock<Regex> = LazyLock::new(|| {
    let pat = format!(
        r#"(?:\A|{LT}){WS}*(?:export{WS}+)?([A-Za-z0-9_.\-]+)(?:{WS}*={WS}*?|:{WS}+?)({WS}*'(?:\\'|[^'])*'|{WS}*"(?:\\"|[^"])*"|{WS}*`(?:\\`|[^`])*`|[^#\r\n]+)?{WS}*(?:#[^\n\r\u{{2028}}\u{{2029}}]*)?(\z|{LT})"#
    );
    Regex::new(&pat).expect("dotenv LINE regex compiles")
});

/// One `KEY=value` as dotenv reads it, with the 1-based line of its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The variable name.
    pub key: String,
    /// The value after dotenv's unquoting.
    pub value: String,
    /// Line of the key (after `\r\n` normalisation, which keeps line numbers).
    pub line: u32,
    /// 1-based column of the key, in characters (a byte-order mark not counted).
    pub col: u32,
}

impl Entry {
    /// Where the entry is, in the file shown as `label`.
    pub fn loc(&self, label: &std::sync::Arc<str>) -> crate::jsonc::Loc {
        crate::jsonc::Loc { file: label.clone(), line: self.line, col: self.col }
    }
}

fn js_trim(s: &str) -> &str {
    s.trim_matches(crate::jsonc::is_js_space)
}

/// Parse `.env` text. Later duplicates win in dotenv's object; all entries are returned in order
/// (use [`to_map`] for dotenv's object).
pub fn parse(src: &str) -> Vec<Entry> {
    // lines.replace(/\r\n?/mg, '\n')
    let lines = src.replace("\r\n", "\n").replace('\r', "\n");
    let mut out = Vec::new();
    let mut at = 0;
    // Line counting resumes where the previous key was (counting from the start each time is
    // quadratic: a 1 MB `.env` in a cloned repository would stall the daemon).
    let (mut counted_to, mut line_no) = (0, 1usize);
    while at <= lines.len() {
        let Some(caps) = LINE.captures_at(&lines, at) else { break };
        let whole = caps.get(0).expect("group 0");
        let key = caps.get(1).expect("key group");
        let term = caps.get(3).map_or(0, |m| m.len());
        let value = caps.get(2).map_or("", |m| m.as_str());
        let value = js_trim(value);
        let quote = value.chars().next();
        // value.replace(/^(['"`])([\s\S]*)\1$/mg, '$2'): as argued in the module docs, for what
        // LINE can capture this strips one pair of matching outer quotes.
        let mut v = match quote {
            Some(q @ ('\'' | '"' | '`')) if value.len() >= 2 && value.ends_with(q) => {
                value[1..value.len() - 1].to_string()
            }
            _ => value.to_string(),
        };
        if quote == Some('"') {
            v = v.replace("\\n", "\n").replace("\\r", "\r");
        }
        line_no += lines[counted_to..key.start()].matches('\n').count();
        counted_to = key.start();
        let line = u32::try_from(line_no).unwrap_or(u32::MAX);
        let line_start = lines[..key.start()].rfind('\n').map_or(0, |i| i + 1);
        let col = lines[line_start..key.start()].chars().filter(|&c| c != '\u{FEFF}').count() + 1;
        let col = u32::try_from(col).unwrap_or(u32::MAX);
        out.push(Entry { key: key.as_str().to_string(), value: v, line, col });
        // lastIndex = end of match; our match consumed the line terminator, so step back. The
        // match always holds a key character, so this moves forward.
        at = whole.end() - term;
    }
    out
}

/// dotenv's object as the entries that make it, by index into `entries`: for each key its last
/// entry (whose value the object holds, and whose line a finding names), in first-seen order.
/// What a tool that loads the file sees: a key written twice has its later value.
pub fn effective(entries: &[Entry]) -> Vec<usize> {
    let mut m: Vec<usize> = Vec::new();
    let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (at, e) in entries.iter().enumerate() {
        if let Some(&i) = index.get(e.key.as_str()) {
            m[i] = at;
        } else {
            index.insert(&e.key, m.len());
            m.push(at);
        }
    }
    m
}

/// dotenv's object: the last value of each key, in first-seen order.
pub fn to_map(entries: &[Entry]) -> Vec<(String, String)> {
    let value = |i: usize| (entries[i].key.clone(), entries[i].value.clone());
    effective(entries).into_iter().map(value).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(s: &str) -> Vec<(String, String)> {
        to_map(&parse(s))
    }

    fn one(s: &str) -> String {
        let m = map(s);
        assert_eq!(m.len(), 1, "{s:?} → {m:?}");
        m[0].1.clone()
    }

    #[test]
    fn basic_forms() {
        assert_eq!(one("A=b"), "b");
        assert_eq!(one("export A=b"), "b");
        assert_eq!(one("A: b"), "b");
        assert_eq!(one("A = b  "), "b");
        assert_eq!(one("A=b # comment"), "b");
        assert_eq!(one("A=b#c"), "b");
        assert_eq!(one("A=\"b # not comment\""), "b # not comment");
        assert_eq!(one("A='single \\n'"), "single \\n");
        assert_eq!(one("A=\"double \\n\""), "double \n");
        assert_eq!(one("A=`back`"), "back");
        assert_eq!(one("A="), "");
        assert_eq!(one("A=$HOME/x"), "$HOME/x");
        assert!(map("A:b").is_empty(), "KEY:value needs a space after the colon");
    }

    #[test]
    fn multiline_and_crlf() {
        let m = map("A=\"line1\nline2\"\nB=x\r\nC=y\r");
        assert_eq!(m[0], ("A".into(), "line1\nline2".into()));
        assert_eq!(m[1], ("B".into(), "x".into()));
        assert_eq!(m[2], ("C".into(), "y".into()));
        let e = parse("A=\"l1\nl2\"\nB=x\n\n  export  C=1");
        assert_eq!((e[1].line, e[1].col), (3, 1));
        assert_eq!((e[2].line, e[2].col), (5, 11));
    }

    #[test]
    fn odd_quotes() {
        assert_eq!(one("A=\"abc\"def\""), "abc\"def");
        assert_eq!(one("A='abc"), "'abc");
        assert_eq!(one("A=\"abc\" # c"), "abc");
        assert_eq!(one("A='it\\'s'"), "it\\'s");
    }

    #[test]
    fn duplicates_blank_lines_and_junk() {
        let m = map("# c\n\nA=1\n  junk line\nA=2\n.dot.key-1=v\n");
        assert_eq!(m, vec![("A".into(), "2".into()), (".dot.key-1".into(), "v".into())]);
        assert_eq!(one("\u{FEFF}K=v"), "v");
    }

    /// Compares against Node's own dotenv: the npm package when it can be installed, else an
    /// inline copy of dotenv 16's parse (the same regex and function). Skipped without node.
    #[test]
    fn matches_node_dotenv() {
        let corpus: &[&str] = &[
            "A=b",
            "export A=b",
            "A: b",
            "A:b",
            "A = b # c",
            "A=\"q # x\" # c",
            "A='s\\'q'",
            "A=\"d\\\"q\"",
            "A=\"multi\nline\"\nB=2",
            "A=`b\nc` x\nB=3",
            "A=\"unterminated\nB=2",
            "A='x' 'y'",
            "A=\"\\n\\r\\t\"",
            "  export   SPACED = value with spaces   ",
            "A=b\r\nC=d\rE=f",
            "A=b\u{2028}C=d",
            "\u{FEFF}A=b",
            "KEY.with-dots=1",
            "A==b",
            "A= \"lead space\"",
            "A=#nocomment",
            "A=x#y",
            "exportA=1",
            "A=\"a\"b\"",
            "A=\nB=2",
            "A:\nB=2",
            "A=  'x'  # trailing",
            "A=\"x\" y",
            "A=`x`\n\n\nB=`y`",
            "A=\u{A0}b\u{A0}",
        ];
        let Ok(node) = std::process::Command::new("node").arg("--version").output() else {
            eprintln!("note: node not found; skipping the dotenv differential test");
            return;
        };
        if !node.status.success() {
            eprintln!("note: node not runnable; skipping the dotenv differential test");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("corpus.json");
        std::fs::write(&input, serde_json::to_string(corpus).unwrap()).unwrap();
        // The real package, if npm can fetch it (a few seconds; offline it fails and we fall back).
        let installed = std::process::Command::new("npm")
            .args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
            .arg(dir.path())
            .arg("dotenv@16")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        let script = format!(
            r#"
let parse;
try {{ parse = require({dir:?} + '/node_modules/dotenv').parse; }} catch (e) {{
  const LINE = /(?:^|^)\s*(?:export\s+)?([\w.-]+)(?:\s*=\s*?|:\s+?)(\s*'(?:\\'|[^'])*'|\s*"(?:\\"|[^"])*"|\s*`(?:\\`|[^`])*`|[^#\r\n]+)?\s*(?:#.*)?(?:$|$)/mg;
  parse = function (src) {{
    const obj = {{}}; let lines = src.toString(); lines = lines.replace(/\r\n?/mg, '\n'); let match;
    while ((match = LINE.exec(lines)) != null) {{
      const key = match[1]; let value = (match[2] || ''); value = value.trim();
      const maybeQuote = value[0]; value = value.replace(/^(['"`])([\s\S]*)\1$/mg, '$2');
      if (maybeQuote === '"') {{ value = value.replace(/\\n/g, '\n'); value = value.replace(/\\r/g, '\r'); }}
      obj[key] = value;
    }}
    return obj;
  }};
}}
const corpus = JSON.parse(require('fs').readFileSync({input:?}, 'utf8'));
console.log(JSON.stringify(corpus.map(s => Object.entries(parse(Buffer.from(s))))));
"#,
            dir = dir.path().to_str().unwrap(),
            input = input.to_str().unwrap(),
        );
        let out = std::process::Command::new("node").arg("-e").arg(script).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let expected: Vec<Vec<(String, String)>> = serde_json::from_slice(&out.stdout).unwrap();
        eprintln!(
            "dotenv differential: {} cases against {}",
            corpus.len(),
            if installed {
                "the npm dotenv@16 package"
            } else {
                "an inline copy of dotenv 16 parse"
            }
        );
        for (case, want) in corpus.iter().zip(expected) {
            assert_eq!(map(case), want, "case {case:?}");
        }
    }
}
