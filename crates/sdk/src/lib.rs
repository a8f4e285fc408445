//! Rust clients for the Mesos v1 HTTP APIs: a scheduler client for frameworks and an
//! executor client for executors, on a small shared HTTP layer that reads RecordIO
//! event streams.

pub mod detect;
pub mod executor;
pub mod http;
pub mod scheduler;

pub use http::{ClientError, HttpClient, RecordStream};
