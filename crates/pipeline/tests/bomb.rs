//! Decompression bombs are refused from the header, before any pixel buffer
//! exists: this test binary counts every allocation to show it.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use pixpress_pipeline::{probe, process, Limits, Options, PipelineError};

struct Counting;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// A valid PNG whose IHDR claims `w`x`h` RGBA, with a little zero IDAT.
fn png_bomb(w: u32, h: u32) -> Vec<u8> {
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
    // zlib stream of a few zero bytes (stored block).
    let idat = [
        0x78, 0x01, 0x01, 0x04, 0x00, 0xFB, 0xFF, 0, 0, 0, 0, 0, 0, 0, 1,
    ];
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(png_chunk(b"IHDR", &ihdr));
    png.extend(png_chunk(b"IDAT", &idat));
    png.extend(png_chunk(b"IEND", &[]));
    png
}

#[test]
fn a_png_claiming_100000x100000_is_refused_without_a_big_allocation() {
    let bomb = png_bomb(100_000, 100_000);
    LARGEST.store(0, Ordering::Relaxed);
    let err = process(&bomb, &Options::default()).unwrap_err();
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(
        matches!(
            err,
            PipelineError::TooManyPixels {
                width: 100_000,
                height: 100_000,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.code(), "too_many_pixels");
    // 40 GB would be needed for the pixels; nothing near even 1 MB is asked for.
    assert!(largest < 1 << 20, "largest allocation {largest} bytes");
    assert!(probe(&bomb, &Limits::default()).is_err());
}

#[test]
fn a_bomb_within_side_limits_but_over_the_pixel_limit_is_refused() {
    // 10000x10000 = 100 MP: each side is fine, the pixel count is not.
    let bomb = png_bomb(10_000, 10_000);
    LARGEST.store(0, Ordering::Relaxed);
    let err = process(&bomb, &Options::default()).unwrap_err();
    assert_eq!(err.code(), "too_many_pixels");
    assert!(LARGEST.load(Ordering::Relaxed) < 1 << 20);
}

#[test]
fn the_committed_corpus_bomb_is_refused_the_same_way() {
    let bomb = fixture("bad/crafted-png-bomb-100000x100000.png");
    LARGEST.store(0, Ordering::Relaxed);
    let err = process(&bomb, &Options::default()).unwrap_err();
    assert_eq!(err.code(), "too_many_pixels");
    assert!(LARGEST.load(Ordering::Relaxed) < 1 << 20);
}
