//! The whole pipeline on arbitrary bytes: decode, orientation, colour,
//! encode. The first byte picks the output format; the rest is the input.
//! Any input ends in an `Output` or a `PipelineError`, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pixpress_pipeline::{process, Format, Limits, Options};

fuzz_target!(|data: &[u8]| {
    let Some((&choice, input)) = data.split_first() else {
        return;
    };
    // AVIF is left out: at any speed it is too slow for a fuzzing loop.
    let format = match choice % 3 {
        0 => Format::Webp,
        1 => Format::Jpeg,
        _ => Format::Png,
    };
    let options = Options {
        format,
        quality: Some(1 + choice % 100),
        limits: Limits {
            max_input_bytes: 1 << 20,
            max_pixels: 1 << 18,
            max_dimension: 2048,
        },
        ..Options::new(format)
    };
    if let Ok(output) = process(input, &options) {
        assert_eq!(output.size, output.bytes.len());
        assert!(u64::from(output.width) * u64::from(output.height) <= 1 << 18);
    }
});
