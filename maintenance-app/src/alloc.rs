//! The global allocator: the system's, with hyper's per-connection buffers recycled.
//!
//! hyper gives every connection an 8 KiB read buffer and an 8 KiB write buffer. musl's allocator
//! (the static build's) keeps blocks of that size in groups of three, maps a group when it needs
//! one and unmaps it as soon as it is empty while another group has room. Under connections that
//! open and close at a steady few dozen at a time, that is nearly every connection: strace showed
//! 28 KiB mapped and unmapped per connection, and with the page faults in between, a fresh server
//! spent 40 % more CPU per new connection than after a burst of 1000 connections had left musl
//! with larger groups. Freed blocks of that size are kept here instead, up to [`KEEP`], and handed
//! out again; other sizes go straight to the system allocator.
//!
//! The list only ever holds blocks that were in use at the same time before, so it never raises
//! the peak; after a burst it keeps at most [`KEEP`] × 8 KiB of address space, resident only where
//! a buffer was written.
#![allow(unsafe_code)]

use std::{
    alloc::{GlobalAlloc, Layout, System},
    ptr,
    sync::Mutex,
};

/// Size of the recycled blocks: hyper's initial read and write buffers.
pub const BLOCK: usize = 8 * 1024;

/// Freed blocks kept for reuse: both buffers of 128 connections.
pub const KEEP: usize = 256;

/// Alignment of every recycled block, the same as malloc's on 64-bit Linux.
const ALIGN: usize = 16;

/// [`System`], with freed blocks of hyper's buffer size kept for reuse (see the module docs).
#[derive(Debug)]
pub struct Recycling {
    free: Mutex<FreeList>,
}

/// Free blocks linked through their first word.
#[derive(Debug)]
struct FreeList {
    head: *mut u8,
    len: usize,
}

// SAFETY: the list owns its blocks (nobody else holds them) and the mutex serialises their use.
unsafe impl Send for FreeList {}

impl Recycling {
    /// An allocator with an empty list.
    pub const fn new() -> Recycling {
        Recycling { free: Mutex::new(FreeList { head: ptr::null_mut(), len: 0 }) }
    }

    /// Blocks currently kept for reuse.
    pub fn kept(&self) -> usize {
        self.free.lock().map_or(0, |list| list.len)
    }

    /// Whether a layout is served from the list: sizes over half a block (smaller ones would
    /// waste more than they save) up to a block, with ordinary alignment.
    fn recycles(layout: Layout) -> bool {
        layout.align() <= ALIGN && layout.size() > BLOCK / 2 && layout.size() <= BLOCK
    }

    fn block() -> Layout {
        // BLOCK is a non-zero multiple of ALIGN, a power of two: always a valid layout.
        Layout::from_size_align(BLOCK, ALIGN).unwrap_or_else(|_| unreachable!())
    }

    /// A kept block, or null when there is none.
    fn take(&self) -> *mut u8 {
        let Ok(mut list) = self.free.lock() else { return ptr::null_mut() };
        let block = list.head;
        if !block.is_null() {
            // SAFETY: a block on the list is ours, BLOCK bytes aligned to ALIGN; its first word
            // holds the next block.
            list.head = unsafe { block.cast::<*mut u8>().read() };
            list.len -= 1;
        }
        block
    }

    /// Keeps `block`; false when the list is full and the block must be freed instead.
    fn keep(&self, block: *mut u8) -> bool {
        let Ok(mut list) = self.free.lock() else { return false };
        if list.len >= KEEP {
            return false;
        }
        // SAFETY: the caller gives up the block, BLOCK bytes aligned to ALIGN.
        unsafe { block.cast::<*mut u8>().write(list.head) };
        list.head = block;
        list.len += 1;
        true
    }
}

impl Default for Recycling {
    fn default() -> Recycling {
        Recycling::new()
    }
}

// SAFETY: every recycled block comes from System with the layout `block()` and goes back to it
// with the same one; a block is on the list only while no caller holds it. Everything else is
// System's, untouched.
unsafe impl GlobalAlloc for Recycling {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !Recycling::recycles(layout) {
            return unsafe { System.alloc(layout) };
        }
        let block = self.take();
        if block.is_null() { unsafe { System.alloc(Recycling::block()) } } else { block }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !Recycling::recycles(layout) {
            return unsafe { System.dealloc(ptr, layout) };
        }
        if !self.keep(ptr) {
            unsafe { System.dealloc(ptr, Recycling::block()) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !Recycling::recycles(layout) {
            return unsafe { System.alloc_zeroed(layout) };
        }
        let block = unsafe { self.alloc(layout) };
        if !block.is_null() {
            unsafe { block.write_bytes(0, layout.size()) };
        }
        block
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: GlobalAlloc's contract makes `new_size` with this alignment a valid layout.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (Recycling::recycles(layout), Recycling::recycles(new_layout)) {
            (false, false) => unsafe { System.realloc(ptr, layout, new_size) },
            // A recycled block is BLOCK bytes whatever was asked: the new size fits in place.
            (true, true) => ptr,
            _ => {
                let moved = unsafe { self.alloc(new_layout) };
                if !moved.is_null() {
                    unsafe {
                        ptr::copy_nonoverlapping(ptr, moved, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                }
                moved
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: usize) -> Layout {
        Layout::from_size_align(size, 1).expect("layout")
    }

    #[test]
    fn a_freed_buffer_is_handed_out_again() {
        let a = Recycling::new();
        unsafe {
            let first = a.alloc(layout(BLOCK));
            assert!(!first.is_null());
            first.write_bytes(0xAB, BLOCK);
            a.dealloc(first, layout(BLOCK));
            assert_eq!(a.kept(), 1);
            // Any size the list serves gets the same block back.
            let second = a.alloc(layout(BLOCK / 2 + 1));
            assert_eq!(second, first);
            assert_eq!(a.kept(), 0);
            a.dealloc(second, layout(BLOCK / 2 + 1));
        }
    }

    #[test]
    fn other_sizes_and_alignments_bypass_the_list() {
        let a = Recycling::new();
        for l in
            [layout(BLOCK / 2), layout(BLOCK + 1), layout(64), Layout::from_size_align(BLOCK, 4096).expect("layout")]
        {
            unsafe {
                let p = a.alloc(l);
                assert!(!p.is_null());
                assert_eq!(p as usize % l.align(), 0);
                a.dealloc(p, l);
            }
            assert_eq!(a.kept(), 0, "{l:?} was kept");
        }
    }

    #[test]
    fn the_list_is_bounded() {
        let a = Recycling::new();
        let blocks: Vec<_> = (0..KEEP + 10).map(|_| unsafe { a.alloc(layout(BLOCK)) }).collect();
        assert!(blocks.iter().all(|b| !b.is_null()));
        for &b in &blocks {
            unsafe { a.dealloc(b, layout(BLOCK)) };
        }
        assert_eq!(a.kept(), KEEP);
        // Every kept block is a distinct one of those freed.
        let again: std::collections::HashSet<_> =
            (0..KEEP).map(|_| unsafe { a.alloc(layout(BLOCK)) } as usize).collect();
        assert_eq!(again.len(), KEEP);
        assert!(again.iter().all(|p| blocks.contains(&(*p as *mut u8))));
        for p in again {
            unsafe { a.dealloc(p as *mut u8, layout(BLOCK)) };
        }
    }

    #[test]
    fn zeroed_blocks_are_zero_even_when_recycled() {
        let a = Recycling::new();
        unsafe {
            let p = a.alloc(layout(BLOCK));
            p.write_bytes(0xFF, BLOCK);
            a.dealloc(p, layout(BLOCK));
            let z = a.alloc_zeroed(layout(BLOCK));
            assert_eq!(z, p);
            assert!(std::slice::from_raw_parts(z, BLOCK).iter().all(|&b| b == 0));
            a.dealloc(z, layout(BLOCK));
        }
    }

    #[test]
    fn realloc_keeps_the_contents_across_the_boundary() {
        let a = Recycling::new();
        unsafe {
            // Small to recycled, recycled within its block, recycled to large, and back down.
            let mut size = 100;
            let mut p = a.alloc(layout(size));
            for i in 0..size {
                p.add(i).write(i as u8);
            }
            for next in [BLOCK - 10, BLOCK, 3 * BLOCK, 200, 50] {
                p = a.realloc(p, layout(size), next);
                assert!(!p.is_null());
                let kept = size.min(next).min(100);
                assert!((0..kept).all(|i| p.add(i).read() == i as u8), "contents lost at {size} → {next}");
                size = next;
            }
            a.dealloc(p, layout(size));
        }
    }
}
