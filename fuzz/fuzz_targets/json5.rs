//! OpenClaw's `openclaw.json` (JSON5), parsed exactly as the resolver's source cache does:
//! `json5::from_str::<jsonc::Node>`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qwen_env_resolve::jsonc::Node;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Err(e) = json5::from_str::<Node>(&text) {
        assert!(!e.to_string().is_empty());
    }
});
