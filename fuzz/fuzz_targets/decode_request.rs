//! Every request body the daemon decodes: `Request` (all variants) and `Hello`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qwen_env_proto::{Hello, Request};

fuzz_target!(|data: &[u8]| {
    qwen_env_fuzz::round_trip::<Request>(data);
    qwen_env_fuzz::round_trip::<Hello>(data);
});
