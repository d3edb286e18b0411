//! pixpress: an image compression job queue and real-time image sharing
//! server. One process, one pipeline (`pixpress_pipeline`), five protocols.

pub mod app;
pub mod backend;
pub mod config;
pub mod http;
pub mod jobs;
pub mod rooms;
pub mod storage;
pub mod tcp;

pub use pixpress_pipeline as pipeline;
