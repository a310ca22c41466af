//! OpenClaw's `openclaw.json` (JSON5), parsed exactly as the resolver's source cache does:
//! `json5::from_str::<jsonc::Node>`, then the positions of `json5loc` on the same text.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use qwen_env_resolve::cache::parse_json5;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Err(e) = parse_json5(&text, &Arc::from("f.json5")) {
        assert!(!e.message.is_empty());
    }
});
