//! The TCP frame reader over a stream of arbitrary bytes: every frame it
//! returns is within the limit, and it ends on the stream's end with an
//! error, never a panic or an allocation of the announced length.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use pixpress::protocols::tcp::frame::{read_frame, FrameLimits};

fuzz_target!(|data: &[u8]| {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let limits = FrameLimits {
        max_frame_bytes: 4096,
        idle_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(5),
        frame_timeout: Duration::from_secs(5),
    };
    runtime.block_on(async {
        let mut stream = data;
        while let Ok(frame) = read_frame(&mut stream, &limits).await {
            assert!(frame.len() <= limits.max_frame_bytes);
        }
    });
});
