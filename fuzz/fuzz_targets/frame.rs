//! The byte stream a client sends the daemon: length-prefixed frames, a `Hello` first, then
//! `Request`s. Checks that framing never panics or over-reads, that the length limit holds and
//! that every frame that decodes survives a round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qwen_env_proto::codec::{FrameError, decode, encode_frame, read_frame_body};
use qwen_env_proto::{Hello, MAX_FRAME, Request};

fuzz_target!(|data: &[u8]| {
    let mut r = data;
    let mut first = true;
    loop {
        let before = r.len();
        match read_frame_body(&mut r) {
            Ok(body) => {
                assert!(body.len() <= MAX_FRAME);
                assert_eq!(before - r.len(), 4 + body.len(), "frame consumed the wrong length");
                if first {
                    qwen_env_fuzz::round_trip::<Hello>(&body);
                    if let Ok(h) = decode::<Hello>(&body) {
                        // A whole re-encoded frame reads back as the same message.
                        let frame = encode_frame(&h);
                        let got: Hello =
                            qwen_env_proto::codec::read_frame(&mut &frame[..]).unwrap();
                        assert_eq!(got, h);
                    }
                } else {
                    qwen_env_fuzz::round_trip::<Request>(&body);
                }
                first = false;
            }
            Err(FrameError::Closed) => {
                assert_eq!(before, 0);
                break;
            }
            Err(FrameError::TooLarge(n)) => {
                assert!(n > MAX_FRAME);
                break;
            }
            Err(FrameError::Truncated) => break,
            Err(e) => panic!("unexpected error from an in-memory reader: {e}"),
        }
    }
});
