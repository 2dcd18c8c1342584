//! The Discord gateway client (discord-presence spec §1): what goes over the socket
//! (`wire`), the sans-IO machines that decide what to do with it (`session`), and what
//! each close code means (`close`). The driver in `plugin.rs` performs the actions.

mod close;
mod session;
mod wire;

pub use session::*;
pub use wire::*;
