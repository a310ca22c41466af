//! Qwen Code's settings parser (`JSON.parse(stripJsonComments(text))`). Besides not panicking,
//! an error's position must lie inside the text (it is shown as file:line:col), and every value's
//! position too.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use qwen_env_resolve::jsonc::{self, Node, Value};

fn lines_of(text: &str) -> u32 {
    u32::try_from(text.matches('\n').count() + 1).unwrap_or(u32::MAX)
}

fn check_locs(n: &Node, lines: u32) {
    assert!(n.loc.line >= 1 && n.loc.line <= lines && n.loc.col >= 1, "bad position {}", n.loc);
    match &n.value {
        Value::Array(items) => items.iter().for_each(|i| check_locs(i, lines)),
        Value::Object(members) => members.iter().for_each(|(_, v)| check_locs(v, lines)),
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    // The cache reads files the same way: UTF-8 with replacement characters.
    let text = String::from_utf8_lossy(data);
    let file: Arc<str> = Arc::from("settings.json");
    let lines = lines_of(&text);
    match jsonc::parse(&text, &file) {
        Ok(node) => {
            check_locs(&node, lines);
            // Object keys are unique (last duplicate wins in the first key's place).
            if let Value::Object(m) = &node.value {
                let mut seen = std::collections::HashSet::new();
                for (k, _) in m {
                    assert!(seen.insert(k), "duplicate key {k:?}");
                }
            }
        }
        Err(e) => {
            assert!(e.line >= 1 && e.line <= lines && e.col >= 1, "error outside the text: {e}");
            assert!(!e.to_string().is_empty());
        }
    }
});
