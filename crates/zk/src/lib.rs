//! A small ZooKeeper client on tokio, written for Mantle's leader election, leader
//! detection and replicated registry (what Mesos does with ZooKeeper, reference §5.6).
//!
//! ```no_run
//! # async fn f() -> mantle_zk::Result<()> {
//! use mantle_zk::{Client, CreateMode, Options, ZkUrl};
//! let url: ZkUrl = "zk://h1:2181,h2:2181/mantle".parse()?;
//! let zk = Client::connect(&url, Options::default()).await?;
//! zk.ensure_path(&url.path).await?;
//! let me = zk
//!     .create(&format!("{}/json.info_", url.path), b"{}", CreateMode::EphemeralSequential)
//!     .await?;
//! let (children, changed) = zk.get_children_watch(&url.path).await?;
//! # let _ = (me, children, changed);
//! # Ok(()) }
//! ```
//!
//! What it does: one session per [`Client`], established with one of the URL's servers
//! (in random order); the server's negotiated session timeout is reported by
//! [`Client::session_timeout`]. The client pings after a third of the timeout without
//! traffic, gives up on a server it has not heard from for two thirds of it, and then
//! moves the session to another server of the ensemble with the same id and password,
//! re-sending its credentials and re-registering its watches. Requests that were on a
//! broken connection fail with [`Error::ConnectionLoss`] (a write may or may not have
//! been applied); requests made while disconnected wait for the next connection within
//! [`Options::request_timeout`]. The session's [`SessionState`] is published on
//! [`Client::state_changes`]; its documentation says what each state guarantees, in
//! particular when a leader must stop.
//!
//! Node data is limited to [`MAX_DATA_LEN`] bytes (ZooKeeper's default packet limit,
//! `jute.maxbuffer`, is 1 MiB less one byte, and a request carries its path and header
//! too); a whole request, `multi` included, to [`MAX_PACKET_LEN`]. A larger value must
//! be split by the caller: write it as numbered child nodes of a fresh node
//! (`registry/v42/0000`, `0001`, ... each under the limit, in as many requests or
//! `multi`s as needed), then publish it by a conditional `set_data` of a small pointer
//! node naming `v42` (checked with the leader's node in one `multi`), and delete the
//! previous version's chunks afterwards. Readers read the pointer, then the chunks, and
//! start again if the pointer moved meanwhile.
//!
//! Not implemented: chroot paths (the URL's path is returned to the caller instead),
//! ACLs other than open and "creator all, world read", read-only mode, SASL, TLS,
//! persistent and recursive watches, and `sync`.

mod client;
pub mod election;
mod error;
mod jute;
mod ops;
mod proto;
mod session;
mod url;
mod watches;

#[cfg(feature = "testing")]
pub mod testing;

pub use client::{Client, Options};
pub use error::{Error, Result};
pub use jute::Stat;
pub use ops::{CreateMode, Op, OpResult};
pub use proto::{EventType, WatchedEvent, MAX_DATA_LEN, MAX_PACKET_LEN};
pub use session::{SessionCredentials, SessionState};
pub use url::{Credentials, Server, ZkUrl, DEFAULT_PORT};
pub use watches::Watch;
