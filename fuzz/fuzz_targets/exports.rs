//! Every export's payload through its handler, over a Fake host configured with a user:
//! one step per line (see `World::script`), e.g. `p{"username":"alice",…}` for a
//! playback report or `{"op":10,…}` for a gateway frame on the current connection.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| nd::World::new().script(data));
