//! Wire types and framing shared by the `qwen-env` client and the `qwen-envd` daemon.
//!
//! # Protocol
//!
//! Every message is a frame: a 4-byte big-endian length, then a postcard body of at most
//! [`MAX_FRAME`] bytes ([`codec`]). The first frame a client sends is a [`Hello`], answered by a
//! [`Welcome`]; after that the client sends [`Request`]s and reads one [`Response`] for each.
//!
//! # Compatibility rules
//!
//! - [`Hello`] and [`Welcome`] never change layout: any two versions can tell each other apart.
//! - [`Request`] and [`Response`] are append-only: postcard encodes the variant *index*, so new
//!   variants go at the end and nothing is renamed or reordered. `Request::Shutdown` is index 0
//!   forever, so a newer client can always stop an older daemon.
//! - Any other change to a message's layout bumps [`PROTOCOL_VERSION`] by hand. A client that meets
//!   a daemon of another protocol asks it to exit and starts its own.
//!
//! The unit tests in [`message`] pin the encoded bytes of every message.
#![warn(missing_docs)]

pub mod codec;
pub mod endpoint;
pub mod message;
pub mod ready;
pub mod secret;

pub use message::*;
pub use secret::SecretValue;

/// Version of the request/response layout. Bumped by hand on any incompatible change.
pub const PROTOCOL_VERSION: u32 = 2;

/// Largest frame body either side accepts, in bytes.
pub const MAX_FRAME: usize = 1 << 20;

/// Version of the crate that built this binary, as sent in the handshake.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Variable set in every child that `qwen-env run` starts; `run` refuses to nest when it is set.
pub const NESTING_MARKER: &str = "QWEN_ENV";

/// The name (`comm`) of the `qwen-env run` process that keeps a command's descendants under it
/// (Linux). The daemon refuses key requests from anything that descends from a live one.
pub const KEEPER_NAME: &str = "qwen-env-keeper";
