//! Positions for JSON5 documents (OpenClaw's files). The `json5` crate parses them as OpenClaw
//! does but keeps no positions, so once it has accepted a document this scanner walks the same
//! text again and gives every value the place [`crate::jsonc`] gives it: a member's key, an array
//! element's start. It validates nothing: the structure it follows is one `json5` has checked, and
//! that the [`Node`] tree it annotates was built from (no deeper than `jsonc::MAX_DEPTH`).

use crate::jsonc::{Node, Value, is_js_space};

/// A value's shape as written, with where each member's key and each element starts.
enum Shape {
    Leaf,
    Object(Vec<(String, (u32, u32), Shape)>),
    Array(Vec<((u32, u32), Shape)>),
}

/// Gives `root` and every value below it the line and column where `text` writes it (the file of
/// each location is left as it is). A member written twice takes the place of the last one, as
/// its value does.
pub fn locate(root: &mut Node, text: &str) {
    let chars: Vec<char> = text.chars().collect();
    let mut scan = Scan { s: &chars, i: 0, line: 1, col: 1 };
    scan.skip();
    (root.loc.line, root.loc.col) = (scan.line, scan.col);
    let shape = scan.value();
    assign(root, &shape);
}

fn assign(node: &mut Node, shape: &Shape) {
    match (&mut node.value, shape) {
        (Value::Object(members), Shape::Object(written)) => {
            for (key, child) in members {
                if let Some((_, at, sub)) = written.iter().rev().find(|(k, _, _)| k == key) {
                    (child.loc.line, child.loc.col) = *at;
                    assign(child, sub);
                }
            }
        }
        (Value::Array(items), Shape::Array(written)) => {
            for (child, (at, sub)) in items.iter_mut().zip(written) {
                (child.loc.line, child.loc.col) = *at;
                assign(child, sub);
            }
        }
        _ => {}
    }
}

struct Scan<'a> {
    s: &'a [char],
    i: usize,
    line: u32,
    col: u32,
}

impl Scan<'_> {
    fn peek_at(&self, n: usize) -> Option<char> {
        self.s.get(self.i + n).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek_at(0)?;
        self.i += 1;
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    /// Whitespace and comments.
    fn skip(&mut self) {
        loop {
            match (self.peek_at(0), self.peek_at(1)) {
                (Some(c), _) if is_js_space(c) => {
                    self.bump();
                }
                (Some('/'), Some('/')) => {
                    while self
                        .peek_at(0)
                        .is_some_and(|c| !matches!(c, '\n' | '\r' | '\u{2028}' | '\u{2029}'))
                    {
                        self.bump();
                    }
                }
                (Some('/'), Some('*')) => {
                    self.bump();
                    self.bump();
                    while self.peek_at(0).is_some()
                        && !(self.peek_at(0) == Some('*') && self.peek_at(1) == Some('/'))
                    {
                        self.bump();
                    }
                    self.bump();
                    self.bump();
                }
                _ => return,
            }
        }
    }

    fn value(&mut self) -> Shape {
        self.skip();
        match self.peek_at(0) {
            Some('{') => self.object(),
            Some('[') => self.array(),
            Some('"' | '\'') => {
                self.string();
                Shape::Leaf
            }
            _ => {
                self.bare();
                Shape::Leaf
            }
        }
    }

    fn object(&mut self) -> Shape {
        self.bump();
        let mut members = Vec::new();
        loop {
            self.skip();
            let start = self.i;
            match self.peek_at(0) {
                None => break,
                Some('}') => {
                    self.bump();
                    break;
                }
                Some(q) => {
                    let at = (self.line, self.col);
                    let key = if q == '"' || q == '\'' { self.string() } else { self.bare() };
                    self.skip();
                    if self.peek_at(0) == Some(':') {
                        self.bump();
                    }
                    let value = self.value();
                    members.push((key, at, value));
                }
            }
            self.skip();
            if self.peek_at(0) == Some(',') {
                self.bump();
            }
            if self.i == start {
                // Not JSON5 json5 accepted; move on rather than loop.
                self.bump();
            }
        }
        Shape::Object(members)
    }

    fn array(&mut self) -> Shape {
        self.bump();
        let mut items = Vec::new();
        loop {
            self.skip();
            let start = self.i;
            match self.peek_at(0) {
                None => break,
                Some(']') => {
                    self.bump();
                    break;
                }
                Some(_) => {
                    let at = (self.line, self.col);
                    items.push((at, self.value()));
                }
            }
            self.skip();
            if self.peek_at(0) == Some(',') {
                self.bump();
            }
            if self.i == start {
                self.bump();
            }
        }
        Shape::Array(items)
    }

    /// A quoted string, unescaped as far as keys need (single-character escapes, `\x`, `\u`,
    /// line continuations).
    fn string(&mut self) -> String {
        let quote = self.bump();
        let mut out = String::new();
        while let Some(c) = self.bump() {
            if Some(c) == quote {
                break;
            }
            if c != '\\' {
                out.push(c);
                continue;
            }
            match self.bump() {
                Some('b') => out.push('\u{8}'),
                Some('f') => out.push('\u{c}'),
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some('t') => out.push('\t'),
                Some('v') => out.push('\u{b}'),
                Some('0') => out.push('\0'),
                Some(x @ ('x' | 'u')) => {
                    let digits: String =
                        (0..if x == 'x' { 2 } else { 4 }).filter_map(|_| self.bump()).collect();
                    out.extend(u32::from_str_radix(&digits, 16).ok().and_then(char::from_u32));
                }
                Some('\r') => {
                    if self.peek_at(0) == Some('\n') {
                        self.bump();
                    }
                }
                Some('\n' | '\u{2028}' | '\u{2029}') | None => {}
                Some(other) => out.push(other),
            }
        }
        out
    }

    /// An unquoted key (an identifier) or a bare value (`true`, `-0x1F`, `Infinity`).
    fn bare(&mut self) -> String {
        let mut out = String::new();
        while let Some(c) = self.peek_at(0) {
            if is_js_space(c) || matches!(c, ',' | ':' | ']' | '}' | '[' | '{' | '/' | '"' | '\'') {
                break;
            }
            out.push(c);
            self.bump();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn members_at_their_keys_elements_where_they_start() {
        let text =
            "// c\n{ a: 1, 'b': [ 2, { \"c\": 'x' } ],\n  /* k */ d: { e: \"y\\\n\" }, a: 3, }";
        let mut n: Node = json5::from_str(text).unwrap();
        n.set_file(&Arc::from("f.json5"));
        locate(&mut n, text);
        assert_eq!(n.loc.to_string(), "f.json5:2:1");
        // `a` is written twice: its value and its place are the second's.
        assert_eq!(n.get("a").unwrap().loc.to_string(), "f.json5:4:6");
        let b = n.get("b").unwrap();
        assert_eq!(b.loc.to_string(), "f.json5:2:9");
        let items = b.as_array().unwrap();
        assert_eq!(items[0].loc.to_string(), "f.json5:2:16");
        assert_eq!(items[1].loc.to_string(), "f.json5:2:19");
        assert_eq!(items[1].get("c").unwrap().loc.to_string(), "f.json5:2:21");
        let d = n.get("d").unwrap();
        assert_eq!(d.loc.to_string(), "f.json5:3:11");
        assert_eq!(d.get("e").unwrap().loc.to_string(), "f.json5:3:16");
    }

    #[test]
    fn brackets_and_quotes_inside_strings_and_comments_are_not_structure() {
        let text = "{ /* } ] */ \"a}\": 'x\\'y', b: \"// ]\", c: [/*]*/ 1, ':'], d: 2 }";
        let mut n: Node = json5::from_str(text).unwrap();
        locate(&mut n, text);
        let at = |k: &str| (n.get(k).unwrap().loc.line, n.get(k).unwrap().loc.col);
        assert_eq!(at("a}"), (1, 13));
        assert_eq!(at("b"), (1, 27));
        assert_eq!(at("c"), (1, 38));
        assert_eq!(at("d"), (1, 57));
        let c = n.get("c").unwrap().as_array().unwrap();
        assert_eq!((c[1].loc.line, c[1].loc.col), (1, 51));
    }
}
