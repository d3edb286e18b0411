//! The job service: task keys and variants, the checked admission, the
//! bounded worker pool and the result store. Every protocol's image work
//! goes through here.

mod admission;
mod error;
pub mod pool;
pub mod record;
mod request;
pub mod store;
mod variant;
pub mod worker;

pub use admission::check_header;
pub use error::JobError;
pub use pool::{Admission, PoolStats, WorkerPool};
pub use request::{OptionError, UploadOptions};
pub use store::{
    Finished, JobObserver, JobStore, StoreSettings, Submitted, Task, Variant, VariantState,
};
pub use variant::{TaskKey, VariantSpec};
