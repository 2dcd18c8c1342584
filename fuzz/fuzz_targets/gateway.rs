//! Arbitrary gateway frames, one per line, fed to a connected session (READY, showing a
//! track) on its current connection; `f<n>`, `E…`, `C<code>` lines fire timers and drop
//! the socket between them (see `World::script`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| nd::World::ready().script(data));
