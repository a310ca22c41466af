//! Shared checks for the fuzz targets: message round trips.

use qwen_env_proto::codec::{decode, encode};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// For bytes that decode as `T`: re-encoding gives a canonical form that decodes to the same
/// value and re-encodes to the same bytes. (Postcard accepts some non-canonical varints, so the
/// canonical bytes need not equal the input.)
pub fn round_trip<T>(body: &[u8])
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let Ok(msg) = decode::<T>(body) else { return };
    let canon = encode(&msg);
    let again: T = decode(&canon).expect("a re-encoded message decodes");
    assert_eq!(again, msg, "decode(encode(m)) != m");
    assert_eq!(*encode(&again), *canon, "encoding is not stable");
    // The canonical form is never longer than what we decoded.
    assert!(canon.len() <= body.len(), "canonical encoding longer than the input");
}
