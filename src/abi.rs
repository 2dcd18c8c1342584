//! The only room that touches the ABI: raw imports of the Extism kernel
//! (`extism:host/env`), of Navidrome's host functions (`extism:host/user`) and of the WASI
//! clock, the nine `nd_*` exports, the allocator and the panic handler
//! (navidrome-plugin-abi §2–§5).

use crate::host::Level;
use crate::host::{Call, Host};
use crate::plugin;
use alloc::string::String;
use alloc::vec::Vec;

#[link(wasm_import_module = "extism:host/env")]
extern "C" {
    fn input_length() -> u64;
    fn input_load_u8(i: u64) -> u8;
    fn input_load_u64(i: u64) -> u64;
    #[link_name = "alloc"]
    fn kernel_alloc(n: u64) -> u64;
    fn length(h: u64) -> u64;
    fn load_u8(a: u64) -> u8;
    fn load_u64(a: u64) -> u64;
    fn store_u8(a: u64, v: u8);
    fn store_u64(a: u64, v: u64);
    fn output_set(h: u64, n: u64);
    fn error_set(h: u64);
    fn config_get(key: u64) -> u64;
    fn log_debug(h: u64);
    fn log_info(h: u64);
    fn log_warn(h: u64);
    fn log_error(h: u64);
    fn get_log_level() -> i32;
}

// Navidrome instantiates every call with WASI and the real wall clock (ABI §2.2,
// `WithSysWalltime`): gateway and timer callbacks carry no time of their own.
#[link(wasm_import_module = "wasi_snapshot_preview1")]
extern "C" {
    fn clock_time_get(id: u32, precision: u64, time: *mut u64) -> u32;
}

// Every Navidrome host function takes a request handle and returns a response handle
// (ABI §4.0); only those of the manifest's permissions (and Config, always there) exist,
// so only those are imported.
#[link(wasm_import_module = "extism:host/user")]
extern "C" {
    fn websocket_connect(h: u64) -> u64;
    fn websocket_sendtext(h: u64) -> u64;
    fn websocket_closeconnection(h: u64) -> u64;
    fn scheduler_scheduleonetime(h: u64) -> u64;
    fn scheduler_schedulerecurring(h: u64) -> u64;
    fn scheduler_cancelschedule(h: u64) -> u64;
    fn cache_getstring(h: u64) -> u64;
    fn cache_setstring(h: u64) -> u64;
    fn cache_remove(h: u64) -> u64;
    fn http_send(h: u64) -> u64;
    fn artwork_gettrackurl(h: u64) -> u64;
    fn subsonicapi_callraw(h: u64) -> u64;
    fn config_keys(h: u64) -> u64;
}

/// Copies `n` bytes between `p` and offset `at` of a kernel block (`store`: into the
/// block, else out of it; `block` 0 is the input, read only), 8 per host call (the kernel
/// has no bulk copy, ABI §3.3), never touching a u64 across their end: a tail is the last
/// 8 bytes again, overlapping what is already copied (one call instead of up to 7 byte
/// calls); only under 8 bytes go byte by byte.
///
/// SAFETY: `at + n` is within the block (or the input), `p` holds `n` bytes (and is only
/// read when `store`).
unsafe fn copy(p: *mut u8, at: u64, n: u64, block: u64, store: bool) {
    let w = if n < 8 { 1 } else { 8 };
    let mut i = 0;
    while i < n {
        // The input's addresses are its offsets: `block` 0 adds nothing.
        let j = i.min(n - w);
        let (a, q) = (block + at + j, p.add(j as usize));
        match (store, w) {
            (true, 1) => store_u8(a, *q),
            (true, _) => store_u64(a, q.cast::<u64>().read_unaligned()),
            (false, 1) => *q = if block == 0 { input_load_u8(a) } else { load_u8(a) },
            _ => q.cast::<u64>().write_unaligned(if block == 0 { input_load_u64(a) } else { load_u64(a) }),
        }
        i = j + w;
    }
}

/// A whole block (or the input) as a Vec.
///
/// SAFETY: `n` is the length of the block (or of the input).
unsafe fn read(n: u64, block: u64) -> Vec<u8> {
    let mut v = Vec::<u8>::with_capacity(n as usize);
    copy(v.as_mut_ptr(), 0, n, block, false);
    v.set_len(n as usize);
    v
}

/// A new kernel block holding exactly `b` (the host reads requests and errors by block
/// length, so it must not be longer); 0 for empty.
fn write_block(b: &[u8]) -> u64 {
    let n = b.len() as u64;
    // SAFETY: the copy stays within the `n` bytes just allocated, and within `b`.
    unsafe {
        let h = kernel_alloc(n);
        if h != 0 {
            copy(b.as_ptr() as *mut u8, 0, n, h, true);
        }
        h
    }
}

/// Kernel blocks are never freed: the kernel's memory is reset for every call and goes
/// with the instance, which lives for one call (ABI §2.2, §3.1), so a `free` would be one
/// more host call for nothing.
struct Kernel;

impl Host for Kernel {
    #[inline(never)]
    fn call(&mut self, f: Call, request: &[u8]) -> Vec<u8> {
        let req = write_block(request);
        // SAFETY: each import takes a request handle and returns a response handle.
        unsafe {
            let resp = match f {
                Call::WsConnect => websocket_connect(req),
                Call::WsSend => websocket_sendtext(req),
                Call::WsClose => websocket_closeconnection(req),
                Call::Once => scheduler_scheduleonetime(req),
                Call::Every => scheduler_schedulerecurring(req),
                Call::Cancel => scheduler_cancelschedule(req),
                Call::CacheGet => cache_getstring(req),
                Call::CacheSet => cache_setstring(req),
                Call::CacheRemove => cache_remove(req),
                Call::Http => http_send(req),
                Call::TrackArt => artwork_gettrackurl(req),
                Call::SubsonicRaw => subsonicapi_callraw(req),
                Call::ConfigKeys => config_keys(req),
            };
            // A response of two bytes is `{}`: nothing in it to read.
            let n = length(resp);
            if n > 2 { read(n, resp) } else { Vec::new() }
        }
    }

    #[inline(always)]
    fn config(&mut self, key: &str) -> Option<String> {
        let k = write_block(key.as_bytes());
        // SAFETY: config_get does not keep the key; 0 means absent (ABI §3.5).
        unsafe {
            let v = config_get(k);
            if v == 0 {
                return None;
            }
            Some(crate::text::utf8(read(length(v), v)))
        }
    }

    fn now_ms(&mut self) -> i64 {
        let mut ns = 0u64;
        // SAFETY: writes one u64 to a valid local; clock 0 is the realtime clock. On an
        // error `ns` stays 0, which callers treat as an unknown time.
        unsafe { clock_time_get(0, 1_000_000, &mut ns) };
        (ns / 1_000_000) as i64
    }

    fn log(&mut self, level: Level, msg: &str) {
        // SAFETY: the log imports take ownership of the block (ABI §3.6).
        unsafe {
            if (level as i32) < get_log_level() {
                return;
            }
            let h = write_block(msg.as_bytes());
            match level {
                Level::Debug => log_debug(h),
                Level::Info => log_info(h),
                Level::Warn => log_warn(h),
                Level::Error => log_error(h),
            }
        }
    }
}

/// The input of the given length, read a window at a time: a payload may be megabytes (a
/// READY).
struct Input(usize);

impl crate::gateway::Source for Input {
    fn fill(&mut self, at: usize, buf: &mut [u8]) -> usize {
        let n = self.0.saturating_sub(at).min(buf.len());
        // SAFETY: the copy stays within the input and within `buf`.
        unsafe { copy(buf.as_mut_ptr(), at as u64, n as u64, 0, false) };
        n
    }
}

/// Reads the input, runs one handler, hands back its output or error.
#[inline(never)]
fn run(f: fn(&mut Kernel, &[u8]) -> plugin::Result) -> i32 {
    // SAFETY: input bytes are read below the input length only.
    let input = unsafe { read(input_length(), 0) };
    done(f(&mut Kernel, &input))
}

/// Hands back a handler's output or error (ABI §2.6: an error set with `error_set` is the
/// failure Navidrome logs).
#[inline(never)]
fn done(r: plugin::Result) -> i32 {
    match r {
        Ok(None) => 0,
        Ok(Some(out)) => {
            // SAFETY: output_set takes ownership of a block of exactly out.len() bytes.
            unsafe { output_set(write_block(&out), out.len() as u64) };
            0
        }
        Err(e) => {
            // SAFETY: error_set takes ownership of the block.
            unsafe { error_set(write_block(e.as_bytes())) };
            1
        }
    }
}

#[no_mangle]
pub extern "C" fn nd_scrobbler_is_authorized() -> i32 {
    run(plugin::is_authorized)
}

#[no_mangle]
pub extern "C" fn nd_scrobbler_playback_report() -> i32 {
    run(plugin::playback_report)
}

/// Newer hosts send playback reports too: then there is nothing to do, known before the
/// input is even read.
#[no_mangle]
pub extern "C" fn nd_scrobbler_now_playing() -> i32 {
    if plugin::reports_seen(&mut Kernel) {
        return 0;
    }
    run(plugin::now_playing)
}

/// Scrobbles need no work but the export must exist and succeed (ABI §5.2).
#[no_mangle]
pub extern "C" fn nd_scrobbler_scrobble() -> i32 {
    0
}

#[no_mangle]
pub extern "C" fn nd_websocket_on_text_message() -> i32 {
    // SAFETY: the kernel's length of this call's input.
    let n = unsafe { input_length() };
    done(plugin::on_text(&mut Kernel, Input(n as usize)))
}

/// Compression is never requested, so Discord sends no binary frames.
#[no_mangle]
pub extern "C" fn nd_websocket_on_binary_message() -> i32 {
    0
}

#[no_mangle]
pub extern "C" fn nd_websocket_on_error() -> i32 {
    run(|h, i| plugin::on_end(h, i, true))
}

#[no_mangle]
pub extern "C" fn nd_websocket_on_close() -> i32 {
    run(|h, i| plugin::on_end(h, i, false))
}

#[no_mangle]
pub extern "C" fn nd_scheduler_callback() -> i32 {
    run(plugin::on_timer)
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}
