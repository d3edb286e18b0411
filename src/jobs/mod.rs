//! The job service: task keys and variants (`variant`, `task`), the checked
//! admission, the bounded worker pool, the result store (`store`, its known
//! tasks in `mirror`, and how it follows the shared backend, `shared`), the
//! records the backend keeps (`record`) and the shared worker loop
//! (`worker`). Every protocol's image work goes through here.

mod admission;
mod error;
mod mirror;
pub mod pool;
pub mod record;
mod request;
mod shared;
pub mod store;
mod task;
mod variant;
pub mod worker;

pub use admission::check_header;
pub use error::JobError;
pub use pool::{Admission, IntakeHold, PoolStats, WorkerPool};
pub use request::{OptionError, OptionRules, UploadOptions};
pub use shared::QueueFigures;
pub use store::{JobObserver, JobStore, StoreSettings};
pub use task::{AutoOutcome, Finished, Submitted, Task, Variant, VariantState};
pub use variant::{FormatChoice, QualityChoice, TaskKey, VariantSpec};
