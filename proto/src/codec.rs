//! Framing and encoding: a 4-byte big-endian length, then a postcard body.
//!
//! This is the only file that names the codec crate. The client uses the blocking
//! [`read_frame`]/[`write_frame`]; the daemon does its own async framing with the same limits and
//! calls [`encode`]/[`decode`] on the bodies.

use std::io::{self, Read, Write};

use serde::Serialize;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use crate::MAX_FRAME;

/// Why a frame could not be read or decoded.
#[derive(Debug)]
pub enum FrameError {
    /// The peer closed the connection cleanly, between frames.
    Closed,
    /// The peer closed the connection in the middle of a frame.
    Truncated,
    /// The length prefix exceeds [`MAX_FRAME`].
    TooLarge(usize),
    /// The body is not a valid encoding of the expected message.
    Malformed(String),
    /// The transport failed (including read timeouts).
    Io(io::Error),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Closed => f.write_str("connection closed"),
            Self::Truncated => f.write_str("connection closed in the middle of a frame"),
            Self::TooLarge(n) => write!(f, "frame of {n} bytes exceeds the {MAX_FRAME}-byte limit"),
            Self::Malformed(e) => write!(f, "malformed message: {e}"),
            Self::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Encodes a message body (without the length prefix).
pub fn encode<T: Serialize>(msg: &T) -> Zeroizing<Vec<u8>> {
    // Serialising plain data into a Vec cannot fail; an error here is a bug in a message type.
    Zeroizing::new(postcard::to_stdvec(msg).expect("message types always serialise"))
}

/// Decodes a message body. Trailing bytes are an error: a frame holds exactly one message.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    let (msg, rest) =
        postcard::take_from_bytes(body).map_err(|e| FrameError::Malformed(e.to_string()))?;
    if rest.is_empty() {
        Ok(msg)
    } else {
        Err(FrameError::Malformed(format!("{} trailing bytes", rest.len())))
    }
}

/// Encodes a whole frame: length prefix and body.
pub fn encode_frame<T: Serialize>(msg: &T) -> Zeroizing<Vec<u8>> {
    let body = encode(msg);
    let len = u32::try_from(body.len()).expect("frame length fits in u32");
    let mut frame = Zeroizing::new(Vec::with_capacity(4 + body.len()));
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&body);
    frame
}

/// Writes one frame in a single `write_all`.
pub fn write_frame<W: Write, T: Serialize>(w: &mut W, msg: &T) -> io::Result<()> {
    let frame = encode_frame(msg);
    if frame.len() - 4 > MAX_FRAME {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "message exceeds MAX_FRAME"));
    }
    w.write_all(&frame)?;
    w.flush()
}

/// Reads one frame body. The buffer is zeroized on drop because bodies can carry secrets.
pub fn read_frame_body<R: Read>(r: &mut R) -> Result<Zeroizing<Vec<u8>>, FrameError> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut len[got..]) {
            Ok(0) if got == 0 => return Err(FrameError::Closed),
            Ok(0) => return Err(FrameError::Truncated),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(FrameError::Io(e)),
        }
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    let mut body = Zeroizing::new(vec![0u8; len]);
    r.read_exact(&mut body).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => FrameError::Truncated,
        _ => FrameError::Io(e),
    })?;
    Ok(body)
}

/// Reads and decodes one frame.
pub fn read_frame<R: Read, T: DeserializeOwned>(r: &mut R) -> Result<T, FrameError> {
    decode(&read_frame_body(r)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Hello, Request};

    #[test]
    fn round_trip_over_a_byte_stream() {
        let mut buf = Vec::new();
        write_frame(&mut buf, &Request::Status).unwrap();
        write_frame(&mut buf, &Hello { protocol: 7, client_version: "x".into() }).unwrap();
        let mut r = &buf[..];
        assert!(matches!(read_frame::<_, Request>(&mut r).unwrap(), Request::Status));
        let h: Hello = read_frame(&mut r).unwrap();
        assert_eq!(h.protocol, 7);
        assert!(matches!(read_frame::<_, Request>(&mut r), Err(FrameError::Closed)));
    }

    #[test]
    fn oversized_truncated_and_garbage_frames_are_errors() {
        let big = u32::try_from(MAX_FRAME + 1).unwrap().to_be_bytes();
        assert!(matches!(read_frame_body(&mut &big[..]), Err(FrameError::TooLarge(_))));
        assert!(matches!(read_frame_body(&mut &[0u8, 0][..]), Err(FrameError::Truncated)));
        assert!(matches!(read_frame_body(&mut &[0u8, 0, 0, 9, 1][..]), Err(FrameError::Truncated)));
        assert!(matches!(decode::<Request>(&[0xff, 0xff, 0xff]), Err(FrameError::Malformed(_))));
        // A valid message followed by junk is not a valid frame either.
        assert!(matches!(decode::<Request>(&[1, 0]), Err(FrameError::Malformed(_))));
    }
}
