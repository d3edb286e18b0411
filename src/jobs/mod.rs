//! Jobs: task keys and variants, the bounded worker pool, the result store.

mod error;
pub mod pool;
mod request;
pub mod store;
mod variant;

pub use error::JobError;
pub use pool::{Admission, PoolStats, WorkerPool};
pub use request::{OptionError, UploadOptions};
pub use store::{
    Finished, JobObserver, JobStore, StoreSettings, Submitted, Task, Variant, VariantState,
};
pub use variant::{TaskKey, VariantSpec};
