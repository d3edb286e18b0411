//! Why a job failed, with the stable code every protocol reports.

use crate::pipeline::PipelineError;

/// A job's failure: the pipeline's own errors, or the pool's.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JobError {
    /// The bounded queue is full; the client should retry later.
    #[error("the processing queue is full, try again in a moment")]
    QueueFull,
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// The job ran past its deadline.
    #[error("processing took too long and was stopped")]
    Timeout,
    /// The job panicked; only this job failed.
    #[error("processing failed unexpectedly")]
    Panicked,
    /// The server is shutting down and takes no new jobs.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// The shared job backend (Redis) did not answer.
    #[error("the job backend is unavailable, try again in a moment")]
    BackendUnavailable,
}

impl JobError {
    /// Stable machine code, shared by HTTP, WebSocket and TCP answers.
    pub fn code(&self) -> &'static str {
        match self {
            Self::QueueFull => "queue_full",
            Self::Pipeline(e) => e.code(),
            Self::Timeout => "processing_timeout",
            Self::Panicked => "internal_error",
            Self::ShuttingDown => "shutting_down",
            Self::BackendUnavailable => "backend_unavailable",
        }
    }

    /// Whether a later retry of the same job could succeed (such errors are
    /// never cached as the job's result).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::QueueFull
                | Self::Timeout
                | Self::Panicked
                | Self::ShuttingDown
                | Self::BackendUnavailable
        )
    }
}
