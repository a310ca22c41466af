//! Support for the end-to-end tests: an isolated environment that runs the real binaries.
pub mod mock;
