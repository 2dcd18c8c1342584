//! The plugin's modules compiled by path, every one but its allocator: `wee_alloc` takes
//! its place.
#![no_std]

extern crate alloc;

#[global_allocator]
static ALLOC: wee_alloc::WeeAlloc = wee_alloc::WeeAlloc::INIT;

#[path = "../../src/abi.rs"]
mod abi;
#[path = "../../src/config.rs"]
mod config;
#[path = "../../src/enrich.rs"]
mod enrich;
#[path = "../../src/gateway/mod.rs"]
mod gateway;
#[path = "../../src/host.rs"]
mod host;
#[path = "../../src/ids.rs"]
mod ids;
#[path = "../../src/input.rs"]
mod input;
#[path = "../../src/json.rs"]
mod json;
#[path = "../../src/players.rs"]
mod players;
#[path = "../../src/plugin.rs"]
mod plugin;
#[path = "../../src/presence.rs"]
mod presence;
#[path = "../../src/store.rs"]
mod store;
#[path = "../../src/text.rs"]
mod text;
#[path = "../../src/url.rs"]
mod url;
