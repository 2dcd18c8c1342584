//! The plugin's allocator. The benches build the plugin with `wee_alloc` in its place
//! (`benches/wee_alloc/`).

use core::alloc::{GlobalAlloc, Layout};

/// Bump allocator: an instance lives for one call (ABI §2.2), so memory is never given
/// back; growing the newest block works in place. Grows memory by pages. `dealloc` does
/// nothing, which lets the compiler drop all drop glue: reclaiming the newest block
/// instead cost 5 KB of code and saved no page in any harness scenario (README).
struct Bump;

static mut NEXT: usize = 0;
static mut END: usize = 0;

extern "C" {
    static __heap_base: u8;
}

unsafe impl GlobalAlloc for Bump {
    #[inline(never)]
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if NEXT == 0 {
            NEXT = core::ptr::addr_of!(__heap_base) as usize;
            END = core::arch::wasm32::memory_size(0) * 65536;
        }
        let start = (NEXT + l.align() - 1) & !(l.align() - 1);
        let Some(end) = start.checked_add(l.size()) else { return core::ptr::null_mut() };
        if end > END {
            let pages = (end - END + 65535) / 65536;
            if core::arch::wasm32::memory_grow(0, pages) == usize::MAX {
                return core::ptr::null_mut();
            }
            END += pages * 65536;
        }
        NEXT = end;
        start as *mut u8
    }

    #[inline(always)]
    unsafe fn dealloc(&self, _: *mut u8, _: Layout) {}

    #[inline(never)]
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        // The newest block is given back first, so that it grows in place (the new one
        // starts where it did); any other is copied.
        let next = NEXT;
        if p as usize + l.size() == next {
            NEXT = p as usize;
        }
        let q = self.alloc(Layout::from_size_align_unchecked(new, l.align()));
        if q.is_null() {
            NEXT = next;
        } else if q != p {
            core::ptr::copy_nonoverlapping(p, q, l.size().min(new));
        }
        q
    }
}

#[global_allocator]
static ALLOC: Bump = Bump;
