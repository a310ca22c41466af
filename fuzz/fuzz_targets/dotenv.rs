//! Node dotenv's `parse`, reproduced. Keys are dotenv's `[\w.-]+`, every entry's line lies in
//! the file, entries come in file order, and `to_map` keeps the last value of each key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qwen_env_resolve::dotenv;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let entries = dotenv::parse(&text);
    let norm = text.replace("\r\n", "\n").replace('\r', "\n");
    let lines = norm.matches('\n').count() + norm.matches(['\u{2028}', '\u{2029}']).count() + 1;
    let mut last_line = 0;
    for e in &entries {
        assert!(!e.key.is_empty());
        assert!(
            e.key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-'),
            "key {:?} is not [\\w.-]+",
            e.key
        );
        assert!(e.line >= 1 && (e.line as usize) <= lines, "line {} of {lines}", e.line);
        assert!(e.line >= last_line, "entries out of order");
        last_line = e.line;
    }
    let map = dotenv::to_map(&entries);
    for (k, v) in &map {
        let last = entries.iter().rev().find(|e| &e.key == k).unwrap();
        assert_eq!(&last.value, v);
    }
});
