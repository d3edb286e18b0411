//! pixpress: an image compression job queue and real-time image sharing
//! server. One process, one pipeline (`pixpress_pipeline`), five protocols.
//!
//! Layers point one way: `protocols` (HTTP, WebSocket, TCP: they translate
//! wire messages) use the services (`jobs`, `links`, `rooms`, `chat`, `files`,
//! `auth`), which use `backend` (where jobs are stored and shared) and the
//! pipeline. `config` and `error` are read by every layer and import none.

pub mod app;
pub mod auth;
pub mod backend;
pub mod chat;
pub mod config;
pub mod encoding;
pub mod error;
pub mod files;
pub mod jobs;
pub mod links;
pub mod protocols;
pub mod rooms;

pub use pixpress_pipeline as pipeline;
