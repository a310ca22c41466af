//! Every body the client decodes: `Response` (all variants) and `Welcome`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qwen_env_proto::{Response, Welcome};

fuzz_target!(|data: &[u8]| {
    qwen_env_fuzz::round_trip::<Response>(data);
    qwen_env_fuzz::round_trip::<Welcome>(data);
});
