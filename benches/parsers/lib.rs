//! `parse(ptr, len)` decodes a Navidrome playback report and returns the title length:
//! enough use of every field that neither build can drop the parsing.
#![no_std]
extern crate alloc;

use alloc::string::String;

#[cfg(feature = "miniserde")]
mod imp {
    use alloc::string::String;
    use alloc::vec::Vec;
    use miniserde::{json, Deserialize};

    #[derive(Deserialize)]
    pub struct Track {
        pub id: String,
        pub title: String,
        pub artist: String,
        pub album: String,
        pub duration: f64,
    }

    #[derive(Deserialize)]
    #[allow(non_snake_case)]
    pub struct Report {
        pub username: String,
        pub state: String,
        pub positionMs: i64,
        pub playbackRate: f64,
        pub playerId: String,
        pub timestamp: i64,
        pub track: Track,
    }

    pub fn parse(b: &[u8]) -> Option<(String, i64)> {
        let r: Report = json::from_str(core::str::from_utf8(b).ok()?).ok()?;
        let _: Vec<u8> = Vec::new();
        Some((r.track.title, r.positionMs + r.timestamp + (r.playbackRate * 1000.0) as i64 + r.track.duration as i64 + (r.username.len() + r.state.len() + r.playerId.len() + r.track.id.len() + r.track.artist.len() + r.track.album.len()) as i64))
    }
}

#[cfg(not(feature = "miniserde"))]
#[allow(dead_code)]
#[path = "../../src/json.rs"]
mod json;

#[cfg(not(feature = "miniserde"))]
#[allow(dead_code)]
#[path = "../../src/input.rs"]
mod input;
#[cfg(not(feature = "miniserde"))]
#[allow(dead_code)]
#[path = "../../src/store.rs"]
mod store;
#[cfg(not(feature = "miniserde"))]
#[allow(dead_code)]
#[path = "../../src/ids.rs"]
mod ids;
#[cfg(not(feature = "miniserde"))]
#[allow(dead_code)]
#[path = "../../src/gateway/mod.rs"]
mod gateway;
#[cfg(not(feature = "miniserde"))]
#[allow(dead_code)]
#[path = "../../src/presence.rs"]
mod presence;
#[cfg(not(feature = "miniserde"))]
#[allow(dead_code)]
#[path = "../../src/config.rs"]
mod config;

#[cfg(not(feature = "miniserde"))]
#[allow(dead_code)]
#[path = "../../src/text.rs"]
mod text;
#[cfg(not(feature = "miniserde"))]
#[allow(dead_code)]
#[path = "../../src/host.rs"]
mod host;

/// The plugin's own decoding of the report (`src/input.rs`).
#[cfg(not(feature = "miniserde"))]
mod imp {
    use alloc::string::String;

    pub fn parse(b: &[u8]) -> Option<(String, i64)> {
        let mut r = crate::input::Report::default();
        crate::input::report(b, &mut r)?;
        let t = r.track;
        let n = r.position_ms + r.timestamp + r.rate_milli + r.duration_s + (r.username.len() + r.state.len() + r.player_id.len() + t.track_id.len() + t.artist.len() + t.album.len()) as i64;
        Some((t.title, n))
    }
}

#[no_mangle]
pub unsafe extern "C" fn parse(ptr: *const u8, len: usize) -> i64 {
    let b = core::slice::from_raw_parts(ptr, len);
    imp::parse(b).map_or(-1, |(t, n): (String, i64)| t.len() as i64 + n)
}

#[no_mangle]
pub extern "C" fn buf(len: usize) -> *mut u8 {
    alloc::vec::Vec::with_capacity(len).leak().as_mut_ptr()
}

struct Bump;
static mut NEXT: usize = 0;
extern "C" {
    static __heap_base: u8;
}
unsafe impl core::alloc::GlobalAlloc for Bump {
    #[inline(never)]
    unsafe fn alloc(&self, l: core::alloc::Layout) -> *mut u8 {
        if NEXT == 0 {
            NEXT = core::ptr::addr_of!(__heap_base) as usize;
        }
        let start = (NEXT + l.align() - 1) & !(l.align() - 1);
        let end = start + l.size();
        let have = core::arch::wasm32::memory_size(0) * 65536;
        if end > have && core::arch::wasm32::memory_grow(0, (end - have + 65535) / 65536) == usize::MAX {
            return core::ptr::null_mut();
        }
        NEXT = end;
        start as *mut u8
    }
    #[inline(never)]
    unsafe fn dealloc(&self, _: *mut u8, _: core::alloc::Layout) {}
}
#[global_allocator]
static A: Bump = Bump;

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}
