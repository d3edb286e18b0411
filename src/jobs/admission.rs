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
        self.try_admit()
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
