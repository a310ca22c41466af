//! Qwen Code's settings parser, reproduced: `JSON.parse(stripJsonComments(stripUtf8Bom(text)))`
//! (HOST_TOOLS.md section 1.1), with a position on every value so findings can say `file:line:col`.
//!
//! Hand-written rather than serde_json because we need positions for every value, object key
//! order as JavaScript keeps it (`modelProviders` candidates are concatenated in key order) and
//! JSON.parse's exact strictness: no trailing commas (stripJsonComments' `trailingCommas` option
//! defaults to off), only `\t \n \r space` as whitespace, last duplicate key wins in the first
//! key's place.

use std::fmt;
use std::sync::Arc;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// Deepest nesting of arrays and objects we build (serde_json's limit too). JSON.parse has none,
/// but every walk over a [`Node`] recurses, and a deeper file (say a cloned repository's
/// `.qwen/settings.json`) would overflow the daemon's stack. No real settings file comes close.
pub const MAX_DEPTH: u32 = 128;

/// Where a value is written: for a member of an object, where its key starts (a finding about
/// `"envKey": "sk-…"` points at `"envKey"`, whatever the value is); for an array element or a
/// whole document, where the value starts. `line`/`col` are 1-based; 0 means unknown.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Loc {
    /// The file, as shown to the user.
    pub file: Arc<str>,
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub col: u32,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file)
        } else {
            write!(f, "{}:{}:{}", self.file, self.line, self.col)
        }
    }
}

/// A JSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// A number (JavaScript has only doubles).
    Number(f64),
    /// A string.
    String(String),
    /// An array.
    Array(Vec<Node>),
    /// An object, keys in JavaScript's order.
    Object(Vec<(String, Node)>),
}

/// A value and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The value.
    pub value: Value,
    /// Its position.
    pub loc: Loc,
}

impl Node {
    /// A value without a position.
    pub fn new(value: Value) -> Self {
        Self { value, loc: Loc::default() }
    }

    /// The member `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Object(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Follow a path of object keys.
    pub fn path(&self, keys: &[&str]) -> Option<&Node> {
        keys.iter().try_fold(self, |n, k| n.get(k))
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The members, if this is an object.
    pub fn as_object(&self) -> Option<&[(String, Node)]> {
        match &self.value {
            Value::Object(m) => Some(m),
            _ => None,
        }
    }

    /// The elements, if this is an array.
    pub fn as_array(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// Set the file of this node and all below (for JSON5 sources).
    pub fn set_file(&mut self, file: &Arc<str>) {
        self.loc.file = file.clone();
        match &mut self.value {
            Value::Array(a) => a.iter_mut().for_each(|n| n.set_file(file)),
            Value::Object(m) => m.iter_mut().for_each(|(_, n)| n.set_file(file)),
            _ => {}
        }
    }

    /// Apply `f` to every string below this node (settings `$VAR` expansion).
    pub fn map_strings(&mut self, f: &mut impl FnMut(&str) -> Option<String>) {
        match &mut self.value {
            Value::String(s) => {
                if let Some(new) = f(s) {
                    *s = new;
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|n| n.map_strings(f)),
            Value::Object(m) => m.iter_mut().for_each(|(_, n)| n.map_strings(f)),
            _ => {}
        }
    }
}

/// A parse failure, worded like JSON.parse's `SyntaxError`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// What is wrong.
    pub message: String,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub col: u32,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at line {} column {}", self.message, self.line, self.col)
    }
}

/// JavaScript's `\s` (WhiteSpace + LineTerminator), which `stripJsonComments` keeps inside
/// comments (it replaces `/\S/g` with a space).
pub fn is_js_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{0B}' | '\u{0C}' | '\r' | ' ' | '\u{A0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200A}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202F}'
                | '\u{205F}'
                | '\u{3000}'
                | '\u{FEFF}'
    )
}

fn is_escaped(s: &[char], quote: usize) -> bool {
    s[..quote].iter().rev().take_while(|&&c| c == '\\').count() % 2 == 1
}

/// `strip-json-comments` with its defaults (`whitespace: true`, `trailingCommas: false`):
/// comment characters that are not whitespace become spaces, so positions are kept.
pub fn strip_json_comments(src: &[char]) -> Vec<char> {
    #[derive(PartialEq, Clone, Copy)]
    enum C {
        No,
        Single,
        Multi,
    }
    let blank = |c: char| if is_js_space(c) { c } else { ' ' };
    let mut out = src.to_vec();
    let mut in_string = false;
    let mut comment = C::No;
    let mut i = 0;
    while i < src.len() {
        let c = src[i];
        let next = src.get(i + 1).copied();
        if comment == C::No && c == '"' && !is_escaped(src, i) {
            in_string = !in_string;
        }
        if in_string {
            i += 1;
            continue;
        }
        match comment {
            C::No if c == '/' && next == Some('/') => {
                out[i] = ' ';
                out[i + 1] = ' ';
                comment = C::Single;
                i += 2;
                continue;
            }
            C::No if c == '/' && next == Some('*') => {
                out[i] = ' ';
                out[i + 1] = ' ';
                comment = C::Multi;
                i += 2;
                continue;
            }
            C::Single if c == '\n' => comment = C::No,
            C::Single if c == '\r' && next == Some('\n') => {
                comment = C::No;
                i += 2;
                continue;
            }
            C::Multi if c == '*' && next == Some('/') => {
                out[i] = ' ';
                out[i + 1] = ' ';
                comment = C::No;
                i += 2;
                continue;
            }
            C::Single | C::Multi => out[i] = blank(c),
            C::No => {}
        }
        i += 1;
    }
    out
}

/// Parse a settings file's text as Qwen Code does. `file` labels every node's position.
pub fn parse(text: &str, file: &Arc<str>) -> Result<Node, ParseError> {
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    let chars: Vec<char> = text.chars().collect();
    let stripped = strip_json_comments(&chars);
    let mut p = Parser { s: &stripped, i: 0, line: 1, col: 1, file, depth: 0 };
    p.ws();
    let v = p.value()?;
    p.ws();
    if p.i < p.s.len() {
        return Err(p.unexpected());
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [char],
    i: usize,
    line: u32,
    col: u32,
    file: &'a Arc<str>,
    depth: u32,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.s.get(self.i).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.i += 1;
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t' | '\n' | '\r')) {
            self.bump();
        }
    }

    fn err(&self, message: String) -> ParseError {
        ParseError { message, line: self.line, col: self.col }
    }

    fn unexpected(&self) -> ParseError {
        match self.peek() {
            None => self.err("Unexpected end of JSON input".into()),
            Some(c) => self.err(format!("Unexpected token '{c}'")),
        }
    }

    fn loc(&self) -> Loc {
        Loc { file: self.file.clone(), line: self.line, col: self.col }
    }

    fn expect(&mut self, c: char) -> Result<(), ParseError> {
        if self.peek() == Some(c) {
            self.bump();
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    fn literal(&mut self, word: &str, v: Value) -> Result<Value, ParseError> {
        for w in word.chars() {
            if self.peek() != Some(w) {
                return Err(self.unexpected());
            }
            self.bump();
        }
        Ok(v)
    }

    fn value(&mut self) -> Result<Node, ParseError> {
        let loc = self.loc();
        let value = match self.peek() {
            Some(c @ ('{' | '[')) => {
                if self.depth >= MAX_DEPTH {
                    return Err(self.err(format!("nesting deeper than {MAX_DEPTH} levels")));
                }
                self.depth += 1;
                let v = if c == '{' { self.object() } else { self.array() };
                self.depth -= 1;
                v?
            }
            Some('"') => Value::String(self.string()?),
            Some('t') => self.literal("true", Value::Bool(true))?,
            Some('f') => self.literal("false", Value::Bool(false))?,
            Some('n') => self.literal("null", Value::Null)?,
            Some('-' | '0'..='9') => self.number()?,
            _ => return Err(self.unexpected()),
        };
        Ok(Node { value, loc })
    }

    fn object(&mut self) -> Result<Value, ParseError> {
        self.bump();
        let mut members: Vec<(String, Node)> = Vec::new();
        // Key → place in `members`: a linear search per key is quadratic in the file's size.
        let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        self.ws();
        if self.peek() == Some('}') {
            self.bump();
            return Ok(Value::Object(members));
        }
        loop {
            self.ws();
            if self.peek() != Some('"') {
                // Also where a trailing comma fails: JSON.parse rejects `{"a":1,}`.
                return Err(self.unexpected());
            }
            let at_key = self.loc();
            let key = self.string()?;
            self.ws();
            self.expect(':')?;
            self.ws();
            let mut v = self.value()?;
            v.loc = at_key;
            // JSON.parse: a repeated key updates the value, the key keeps its first place.
            if let Some(&i) = index.get(&key) {
                members[i].1 = v;
            } else {
                index.insert(key.clone(), members.len());
                members.push((key, v));
            }
            self.ws();
            match self.peek() {
                Some(',') => {
                    self.bump();
                }
                Some('}') => {
                    self.bump();
                    return Ok(Value::Object(members));
                }
                _ => return Err(self.unexpected()),
            }
        }
    }

    fn array(&mut self) -> Result<Value, ParseError> {
        self.bump();
        let mut items = Vec::new();
        self.ws();
        if self.peek() == Some(']') {
            self.bump();
            return Ok(Value::Array(items));
        }
        loop {
            self.ws();
            items.push(self.value()?);
            self.ws();
            match self.peek() {
                Some(',') => {
                    self.bump();
                }
                Some(']') => {
                    self.bump();
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.unexpected()),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, ParseError> {
        let mut v = 0;
        for _ in 0..4 {
            let d = self
                .peek()
                .and_then(|c| c.to_digit(16))
                .ok_or_else(|| self.err("Bad Unicode escape in JSON".into()))?;
            self.bump();
            v = v * 16 + d;
        }
        Ok(v)
    }

    fn string(&mut self) -> Result<String, ParseError> {
        self.bump();
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(self.err("Unterminated string in JSON".into()));
            };
            match c {
                '"' => {
                    self.bump();
                    return Ok(out);
                }
                '\\' => {
                    self.bump();
                    let e = self.peek().ok_or_else(|| self.err("Unterminated string".into()))?;
                    let ch = match e {
                        '"' => '"',
                        '\\' => '\\',
                        '/' => '/',
                        'b' => '\u{8}',
                        'f' => '\u{c}',
                        'n' => '\n',
                        'r' => '\r',
                        't' => '\t',
                        'u' => {
                            self.bump();
                            let hi = self.hex4()?;
                            let cp = if (0xD800..0xDC00).contains(&hi)
                                && self.peek() == Some('\\')
                                && self.s.get(self.i + 1) == Some(&'u')
                            {
                                let save = (self.i, self.line, self.col);
                                self.bump();
                                self.bump();
                                let lo = self.hex4()?;
                                if (0xDC00..0xE000).contains(&lo) {
                                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                                } else {
                                    (self.i, self.line, self.col) = save;
                                    hi
                                }
                            } else {
                                hi
                            };
                            // JSON.parse keeps lone surrogates; a Rust string cannot.
                            out.push(char::from_u32(cp).unwrap_or('\u{FFFD}'));
                            continue;
                        }
                        _ => return Err(self.err("Bad escaped character in JSON".into())),
                    };
                    self.bump();
                    out.push(ch);
                }
                c if (c as u32) < 0x20 => {
                    return Err(self.err("Bad control character in string literal in JSON".into()));
                }
                c => {
                    self.bump();
                    out.push(c);
                }
            }
        }
    }

    fn number(&mut self) -> Result<Value, ParseError> {
        let start = self.i;
        if self.peek() == Some('-') {
            self.bump();
        }
        match self.peek() {
            Some('0') => {
                self.bump();
            }
            Some('1'..='9') => {
                while matches!(self.peek(), Some('0'..='9')) {
                    self.bump();
                }
            }
            _ => return Err(self.err("No number after minus sign in JSON".into())),
        }
        if self.peek() == Some('.') {
            self.bump();
            if !matches!(self.peek(), Some('0'..='9')) {
                return Err(self.err("Unterminated fractional number in JSON".into()));
            }
            while matches!(self.peek(), Some('0'..='9')) {
                self.bump();
            }
        }
        if matches!(self.peek(), Some('e' | 'E')) {
            self.bump();
            if matches!(self.peek(), Some('+' | '-')) {
                self.bump();
            }
            if !matches!(self.peek(), Some('0'..='9')) {
                return Err(self.err("Exponent part is missing a number in JSON".into()));
            }
            while matches!(self.peek(), Some('0'..='9')) {
                self.bump();
            }
        }
        let text: String = self.s[start..self.i].iter().collect();
        Ok(Value::Number(text.parse().unwrap_or(f64::NAN)))
    }
}

thread_local! {
    static DESER_DEPTH: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// [`MAX_DEPTH`] for deserialised nodes (JSON5 files): one level per guard alive on this thread.
struct DepthGuard;

impl DepthGuard {
    fn enter<E: de::Error>() -> Result<DepthGuard, E> {
        DESER_DEPTH.with(|d| {
            if d.get() >= MAX_DEPTH {
                return Err(E::custom(format!("nesting deeper than {MAX_DEPTH} levels")));
            }
            d.set(d.get() + 1);
            Ok(DepthGuard)
        })
    }
}

impl Drop for DepthGuard {
    fn drop(&mut self) {
        DESER_DEPTH.with(|d| d.set(d.get() - 1));
    }
}

/// Lets JSON5 (OpenClaw) and other serde formats produce a [`Node`] tree with key order kept.
impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Node;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
                Ok(Node::new(Value::Bool(v)))
            }
            #[allow(clippy::cast_precision_loss)]
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
                Ok(Node::new(Value::Number(v as f64)))
            }
            #[allow(clippy::cast_precision_loss)]
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
                Ok(Node::new(Value::Number(v as f64)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
                Ok(Node::new(Value::Number(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
                Ok(Node::new(Value::String(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Node, E> {
                Ok(Node::new(Value::String(v)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
                Ok(Node::new(Value::Null))
            }
            fn visit_none<E: de::Error>(self) -> Result<Node, E> {
                Ok(Node::new(Value::Null))
            }
            fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Node, D2::Error> {
                Node::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
                let _depth = DepthGuard::enter()?;
                let mut items = Vec::new();
                while let Some(n) = a.next_element()? {
                    items.push(n);
                }
                Ok(Node::new(Value::Array(items)))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
                let _depth = DepthGuard::enter()?;
                let mut members: Vec<(String, Node)> = Vec::new();
                let mut index: std::collections::HashMap<String, usize> =
                    std::collections::HashMap::new();
                while let Some((k, v)) = a.next_entry::<String, Node>()? {
                    if let Some(&i) = index.get(&k) {
                        members[i].1 = v;
                    } else {
                        index.insert(k.clone(), members.len());
                        members.push((k, v));
                    }
                }
                Ok(Node::new(Value::Object(members)))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Node, ParseError> {
        parse(s, &Arc::from("f.json"))
    }

    #[test]
    fn comments_bom_and_positions() {
        let n = p("\u{FEFF}{\n  // c \"quoted\"\n  \"a\": /* x */ \"v//not\",\n  \"b\": [1, {\"c\": null}]\n}")
            .unwrap();
        let a = n.get("a").unwrap();
        assert_eq!(a.as_str(), Some("v//not"));
        // A member is located at its key, an array element where it starts.
        assert_eq!((a.loc.line, a.loc.col), (3, 3));
        assert_eq!(a.loc.to_string(), "f.json:3:3");
        let c = &n.get("b").unwrap().as_array().unwrap()[1];
        assert_eq!((c.loc.line, c.loc.col), (4, 12));
    }

    #[test]
    fn trailing_commas_are_rejected_like_json_parse() {
        assert!(p("{\"a\": 1,}").is_err());
        assert!(p("[1,]").is_err());
        assert!(p("{\"a\": 1, // c\n}").is_err());
    }

    #[test]
    fn strictness_matches_json_parse() {
        assert!(p("").is_err());
        assert!(p("{'a': 1}").is_err());
        assert!(p("{\"a\": 01}").is_err());
        assert!(p("{\"a\": .5}").is_err());
        assert!(p("{\"a\": \"tab\there\"}").is_err());
        assert!(p("{\"a\": \"x\\q\"}").is_err());
        assert!(p("{\"a\": 1} x").is_err());
        // NBSP is whitespace for JavaScript's \s but not for JSON.parse.
        assert!(p("{\u{A0}\"a\": 1}").is_err());
        // ... and stripJsonComments keeps it inside a comment, so this fails in Qwen Code too.
        assert!(p("{/*\u{A0}*/\"a\": 1}").is_err());
        assert!(p("{\"a\": -1.5e+3, \"b\": true, \"c\": false}").is_ok());
    }

    #[test]
    fn escapes_and_surrogates() {
        let n = p(r#"{"a": "\u0041\n\"\/", "b": "\ud83d\ude00", "c": "\ud800x"}"#).unwrap();
        assert_eq!(n.get("a").unwrap().as_str(), Some("A\n\"/"));
        assert_eq!(n.get("b").unwrap().as_str(), Some("😀"));
        assert_eq!(n.get("c").unwrap().as_str(), Some("\u{FFFD}x"));
    }

    #[test]
    fn escaped_quote_before_comment_marker() {
        // The string is "a\"//b"; the // inside it is not a comment.
        let n = p(r#"{"k": "a\"//b"}"#).unwrap();
        assert_eq!(n.get("k").unwrap().as_str(), Some("a\"//b"));
        // An even number of backslashes ends the string; the // after it is a comment.
        let n = p("{\"k\": \"a\\\\\" // c\n}").unwrap();
        assert_eq!(n.get("k").unwrap().as_str(), Some("a\\"));
    }

    #[test]
    fn duplicate_keys_last_wins_first_place() {
        let n = p(r#"{"x": 1, "y": 2, "x": 3}"#).unwrap();
        let m = n.as_object().unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].0, "x");
        assert_eq!(m[0].1.value, Value::Number(3.0));
    }

    #[test]
    fn unterminated_block_comment_is_blanked() {
        assert!(p("{\"a\": 1} /* never closed").is_ok());
        assert!(p("{\"a\": 1 /* never closed").is_err());
        let n = p("{\"a\": 1} // crlf\r\n").unwrap();
        assert!(n.get("a").is_some());
    }

    #[test]
    fn json5_through_serde_keeps_order() {
        let n: Node = json5::from_str("{b: 1, a: 'x', // c\n c: [1,2,],}").unwrap();
        let keys: Vec<&str> = n.as_object().unwrap().iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["b", "a", "c"]);
    }
}
