//! The one checked way into the worker pool, for every protocol that runs
//! image work: the bytes must sniff as an image we decode and their header
//! must fit the limits (`limits.*`, and the protocol's input bound) before
//! a pool place is taken, so a decompression bomb or a non-image never
//! costs a slot. The deadline is the pool's (`upload.job_timeout`), or a
//! shorter one the protocol gives.

use std::time::Duration;

use bytes::Bytes;

use super::{Admission, JobError, WorkerPool};
use crate::pipeline::{self, InputFormat, Limits, Options, Output, PipelineError};

/// Refuses what is not an image, or too big, from its header alone (it
/// reads no pixels, in microseconds).
pub fn check_header(bytes: &[u8], limits: &Limits) -> Result<(), JobError> {
    if InputFormat::sniff(bytes).is_none() {
        return Err(PipelineError::UnsupportedFormat.into());
    }
    pipeline::probe(bytes, limits)?;
    Ok(())
}

impl WorkerPool {
    /// Checks the header against `limits`, then takes a pool place at once.
    pub fn admit(&self, bytes: &[u8], limits: &Limits) -> Result<Admission, JobError> {
        check_header(bytes, limits)?;
        self.try_admit_holding(bytes.len())
    }

    /// Checks, admits and runs in one call (for protocols with nothing to
    /// record between admission and the start of processing). `timeout`
    /// shortens the pool's deadline.
    pub async fn run_checked(
        &self,
        input: Bytes,
        options: Options,
        timeout: Option<Duration>,
    ) -> Result<Output, JobError> {
        let admission = self.admit(&input, &options.limits)?;
        let admission = match timeout {
            Some(t) => admission.within(t),
            None => admission,
        };
        admission.run(input, options, || {}).await
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A plain PNG for the job service's unit tests.
    pub(in crate::jobs) fn png(width: u32, height: u32) -> Vec<u8> {
        let img = image::RgbImage::from_pixel(width, height, image::Rgb([10, 20, 30]));
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn a_header_over_the_limits_or_a_non_image_never_takes_a_place() {
        let pool = WorkerPool::new(1, 0, Duration::from_secs(5));
        let limits = Limits {
            max_pixels: 1_000,
            ..Limits::default()
        };
        let big = pool.admit(&png(40, 40), &limits).err().unwrap();
        assert_eq!(big.code(), "too_many_pixels");
        let text = pool.admit(b"just some text", &limits).err().unwrap();
        assert_eq!(text.code(), "unsupported_format");
        // The one slot is still free for an image that fits.
        let slot = pool.admit(&png(20, 20), &limits).expect("a free slot");
        assert!(matches!(pool.try_admit(), Err(JobError::QueueFull)));
        drop(slot);
    }

    #[tokio::test]
    async fn a_deadline_shorter_than_the_pools_stops_the_job() {
        let pool = WorkerPool::new(1, 0, Duration::from_secs(60));
        let input = Bytes::from(png(20, 20));
        let err = pool
            .run_checked(input.clone(), Options::default(), Some(Duration::ZERO))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "processing_timeout");
        let output = pool
            .run_checked(input, Options::default(), None)
            .await
            .expect("the pool's own deadline is long enough");
        assert_eq!((output.width, output.height), (20, 20));
    }
}
