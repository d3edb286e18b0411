//! Image sharing over TCP (SPEC section 5): length-framed pickled dicts with
//! PUT, GET and LIST, read as data only, backed by the named-file store.
//!
//! `frame` owns the framing and its limits, `scan` the data-only gate for
//! pickles, `message` the request and reply dicts, `handler` the command
//! rules and `server` the listener and connections.

pub mod frame;
pub mod handler;
pub mod message;
pub mod scan;
pub mod server;

pub use crate::config::TcpSettings;
pub use message::{decode_request, Command, Reply, Request};
pub use server::serve;
