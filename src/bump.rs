//! The plugin's allocator. The benches build the plugin with `wee_alloc` in its place
//! (`benches/wee_alloc/`).

use core::alloc::{GlobalAlloc, Layout};

/// Bump allocator: an instance lives for one call (ABI §2.2), so memory is never given
/// back; growing the newest block works in place. Grows memory by the pages a block
/// needs past its current size (read each time: nothing to keep in step). `dealloc` does
/// nothing, which lets the compiler drop all drop glue: reclaiming the newest block
/// instead cost 5 KB of code and saved no page in any harness scenario (README).
struct Bump;

extern "C" {
    static __heap_base: u8;
}

/// Where the next block may start: the heap starts where the linker put the program's
/// data and stack.
static mut NEXT: *const u8 = core::ptr::addr_of!(__heap_base);

unsafe impl GlobalAlloc for Bump {
    #[inline(never)]
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let start = (NEXT as usize + l.align() - 1) & !(l.align() - 1);
        let Some(end) = start.checked_add(l.size()) else { return core::ptr::null_mut() };
        let have = core::arch::wasm32::memory_size(0) * 65536;
        if end > have && core::arch::wasm32::memory_grow(0, (end - have + 65535) / 65536) == usize::MAX {
            return core::ptr::null_mut();
        }
        NEXT = end as *const u8;
        start as *mut u8
    }

    #[inline(always)]
    unsafe fn dealloc(&self, _: *mut u8, _: Layout) {}

    #[inline(never)]
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        // The newest block is given back first, so that it grows in place (the new one
        // starts where it did); any other is copied.
        let next = NEXT;
        if p.add(l.size()).cast_const() == next {
            NEXT = p;
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
