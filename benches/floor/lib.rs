//! Nine exports with Navidrome's `() -> i32` signature that return success at once.
#![no_std]

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}

macro_rules! nothing {
    ($($name:ident),*) => {$(
        #[no_mangle]
        pub extern "C" fn $name() -> i32 {
            0
        }
    )*};
}

nothing!(
    nd_scrobbler_is_authorized,
    nd_scrobbler_now_playing,
    nd_scrobbler_scrobble,
    nd_scrobbler_playback_report,
    nd_websocket_on_text_message,
    nd_websocket_on_binary_message,
    nd_websocket_on_error,
    nd_websocket_on_close,
    nd_scheduler_callback
);
