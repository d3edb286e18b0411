//! The TCP protocol's data-only pickle gate and request decoder: any frame
//! body is a request or a refusal, never a panic, and nothing is called.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pixpress::protocols::tcp::scan::{scan, ScanLimits};

fuzz_target!(|data: &[u8]| {
    if let Ok(cleaned) = scan(data, ScanLimits::for_frame(data.len())) {
        assert!(cleaned.len() <= data.len() + 16);
    }
    let _ = pixpress::protocols::tcp::decode_request(data);
});
