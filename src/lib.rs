//! Discord Rich Presence for Navidrome as a raw-ABI WebAssembly plugin.
//!
//! Only `abi` touches the Extism kernel and Navidrome's host functions; everything else is
//! plain Rust that runs natively under `cargo test`.

#![cfg_attr(not(test), no_std)]

extern crate alloc;

#[cfg(target_arch = "wasm32")]
mod abi;
#[cfg(target_arch = "wasm32")]
mod bump;
mod config;
mod enrich;
/// Navidrome's host services in memory, for the unit tests (and the fuzz targets).
#[cfg(test)]
#[path = "../tests/support/fake.rs"]
mod fake;
mod gateway;
mod host;
mod ids;
mod input;
mod json;
mod players;
mod plugin;
mod presence;
mod store;
mod text;
mod url;
