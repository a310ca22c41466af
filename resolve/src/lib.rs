//! Pure resolution for qwen-env (DESIGN.md sections 6 and 7).
//!
//! Reads the host tools' configuration sources ([`Sources`], the only I/O, cached by
//! [`SourceCache`]), reproduces Qwen Code 0.24.4's and OpenClaw's resolution exactly as
//! HOST_TOOLS.md describes, overlays the keychain for `run`, and runs the static rules.
//!
//! # Layout
//! - `jsonc`, `dotenv`: the two parsers whose exact behaviour matters.
//! - `sources`, `cache`, `fsread`: reading files (the only I/O, regular files only, capped) and
//!   the per-file parse cache.
//! - `settings`: Qwen Code's settings layers, `$VAR` expansion and merge.
//! - `envfiles`: the `.env` walk-up and the first-writer-wins environment overlay.
//! - `qwen` (one file per step group), `openclaw`, `generic`: one resolver per host.
//! - `display`: the one field builder, the one finding builder, how secrets are shown.
//! - `secrets`: the one scanner for literal keys in files (`doctor`, `key import`, masking).
//! - `import`: `key import`'s literals and the scrubbing of files.
//! - `rules`: the static findings; `mask`: masking and fingerprints; `config`: our own config.
//! - `catalog`: the endpoint catalogue (families, endpoints, detection, where a key may go).

pub mod cache;
pub mod catalog;
pub mod config;
pub mod display;
pub mod dotenv;
pub mod envfiles;
pub mod fsread;
pub mod generic;
pub mod import;
pub mod json5loc;
pub mod jsonc;
pub mod mask;
pub mod openclaw;
pub mod qwen;
mod resolve;
pub mod rules;
pub mod secrets;
pub mod settings;
pub mod sources;

pub use cache::SourceCache;
pub use catalog::Catalog;
pub use config::Config;
pub use resolve::{KeyMeta, KeyRef, KeychainView, Params, Plan, resolve};
pub use sources::Sources;

#[cfg(test)]
mod tests;
