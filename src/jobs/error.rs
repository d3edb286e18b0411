//! Why a job failed, with the stable code every protocol reports.

use crate::error::{pipeline_code, Code};
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
    /// The job was handed to workers `attempts` times and none finished
    /// it (each died running it): it is set aside, never tried again.
    #[error("processing stopped its worker {attempts} times; the job was set aside")]
    FailedRepeatedly { attempts: u32 },
    /// A failure another instance reported through the shared backend:
    /// its code and message, as that instance saw them.
    #[error("{message}")]
    Reported { code: Code, message: String },
}

impl JobError {
    /// Stable machine code, shared by HTTP, WebSocket and TCP answers.
    pub fn code(&self) -> Code {
        match self {
            Self::QueueFull => Code::QueueFull,
            Self::Pipeline(e) => pipeline_code(e),
            Self::Timeout => Code::ProcessingTimeout,
            Self::Panicked => Code::InternalError,
            Self::ShuttingDown => Code::ShuttingDown,
            Self::BackendUnavailable => Code::BackendUnavailable,
            Self::FailedRepeatedly { .. } => Code::JobFailedRepeatedly,
            Self::Reported { code, .. } => *code,
        }
    }

    /// Whether a later retry of the same job could succeed (such errors are
    /// never cached as the job's result).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::QueueFull
            | Self::Timeout
            | Self::Panicked
            | Self::ShuttingDown
            | Self::BackendUnavailable => true,
            Self::Pipeline(_) | Self::FailedRepeatedly { .. } => false,
            Self::Reported { code, .. } => matches!(
                code,
                Code::QueueFull
                    | Code::ProcessingTimeout
                    | Code::InternalError
                    | Code::ShuttingDown
                    | Code::BackendUnavailable
            ),
        }
    }
}

impl From<JobError> for crate::error::ApiError {
    fn from(err: JobError) -> Self {
        Self::of(err.code(), err.to_string())
    }
}

impl From<PipelineError> for crate::error::ApiError {
    fn from(err: PipelineError) -> Self {
        JobError::Pipeline(err).into()
    }
}
