//! The header probe: any bytes give an `ImageInfo` or a `PipelineError`,
//! never a panic, and an accepted header is within the limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pixpress_pipeline::{probe, Limits};

const LIMITS: Limits = Limits {
    max_input_bytes: 1 << 20,
    max_pixels: 1 << 22,
    max_dimension: 4096,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(info) = probe(data, &LIMITS) {
        assert!(info.width <= LIMITS.max_dimension && info.height <= LIMITS.max_dimension);
        assert!(u64::from(info.width) * u64::from(info.height) <= LIMITS.max_pixels);
    }
});
