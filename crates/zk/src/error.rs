//! The crate's one error type, with the mapping from ZooKeeper's numeric error codes.

use std::time::Duration;

/// Everything an operation of this crate can fail with.
///
/// Errors the server returns for a node carry the path the request named.
/// [`Error::ConnectionLoss`] and [`Error::Timeout`] leave the outcome of a write unknown:
/// the server may or may not have applied it, so callers re-read before deciding.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The node (or, for a create, its parent) does not exist.
    #[error("zookeeper node {path} does not exist")]
    NoNode { path: String },
    /// A create found the node already there.
    #[error("zookeeper node {path} already exists")]
    NodeExists { path: String },
    /// A conditional write or check named a version the node no longer has.
    #[error("zookeeper node {path} is not at the expected version")]
    BadVersion { path: String },
    /// A delete found children under the node.
    #[error("zookeeper node {path} has children")]
    NotEmpty { path: String },
    /// A create tried to put a node under an ephemeral node.
    #[error("zookeeper node {path} is ephemeral and cannot have children")]
    NoChildrenForEphemerals { path: String },
    /// The node's ACL does not allow this session the operation.
    #[error("zookeeper denied access to {path}")]
    NoAuth { path: String },
    /// The server refused the ACL of a create.
    #[error("zookeeper refused the acl for {path}")]
    InvalidAcl { path: String },
    /// The server refused the request's arguments (a malformed path, for example).
    #[error("zookeeper refused the arguments for {path}")]
    BadArguments { path: String },
    /// The session is gone: the server said so, or no server was heard from for the
    /// session timeout. Ephemeral nodes of the session are (or are about to be) deleted.
    /// Terminal: connect a new client.
    #[error("zookeeper session expired")]
    SessionExpired,
    /// The connection carrying the request broke before its reply arrived.
    #[error("zookeeper connection lost: {0}")]
    ConnectionLoss(String),
    /// No reply within the request timeout.
    #[error("zookeeper {op} {path} got no reply within {after:?}")]
    Timeout {
        op: &'static str,
        path: String,
        after: Duration,
    },
    /// The client was closed (or dropped) before or while the request ran. Terminal.
    #[error("zookeeper client is closed")]
    Closed,
    /// The server rejected the session's credentials. Terminal.
    #[error("zookeeper authentication failed")]
    AuthFailed,
    /// Any other error code the server returned.
    #[error("zookeeper error {code} ({name}) for {path}", name = code_name(*code))]
    Server { code: i32, path: String },
    /// A path this client refuses to send; ZooKeeper would refuse it too.
    #[error("invalid zookeeper path {path:?}: {reason}")]
    InvalidPath { path: String, reason: &'static str },
    /// A `zk://` URL that cannot be used.
    #[error("invalid zookeeper url {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    /// The request would exceed the server's packet limit (`jute.maxbuffer`).
    #[error("zookeeper {what} for {path} is {len} bytes, more than the {max} a server accepts")]
    TooLarge {
        what: &'static str,
        path: String,
        len: usize,
        max: usize,
    },
    /// The server sent something this client cannot read.
    #[error("zookeeper protocol error: {0}")]
    Protocol(String),
    /// One operation of a `multi` failed, so none was applied.
    #[error("zookeeper multi operation {index} failed: {source}")]
    Multi { index: usize, source: Box<Error> },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Error codes of the wire protocol (`KeeperException.Code`).
pub(crate) mod code {
    pub const OK: i32 = 0;
    pub const RUNTIME_INCONSISTENCY: i32 = -2;
    pub const CONNECTION_LOSS: i32 = -4;
    pub const BAD_ARGUMENTS: i32 = -8;
    pub const NO_NODE: i32 = -101;
    pub const NO_AUTH: i32 = -102;
    pub const BAD_VERSION: i32 = -103;
    pub const NO_CHILDREN_FOR_EPHEMERALS: i32 = -108;
    pub const NODE_EXISTS: i32 = -110;
    pub const NOT_EMPTY: i32 = -111;
    pub const SESSION_EXPIRED: i32 = -112;
    pub const INVALID_ACL: i32 = -114;
    pub const AUTH_FAILED: i32 = -115;
}

impl Error {
    /// The error for a non-zero code the server returned for a request on `path`.
    pub(crate) fn from_code(code: i32, path: &str) -> Error {
        let path = path.to_string();
        match code {
            code::NO_NODE => Error::NoNode { path },
            code::NODE_EXISTS => Error::NodeExists { path },
            code::BAD_VERSION => Error::BadVersion { path },
            code::NOT_EMPTY => Error::NotEmpty { path },
            code::NO_CHILDREN_FOR_EPHEMERALS => Error::NoChildrenForEphemerals { path },
            code::NO_AUTH => Error::NoAuth { path },
            code::INVALID_ACL => Error::InvalidAcl { path },
            code::BAD_ARGUMENTS => Error::BadArguments { path },
            code::SESSION_EXPIRED => Error::SessionExpired,
            code::AUTH_FAILED => Error::AuthFailed,
            code::CONNECTION_LOSS => {
                Error::ConnectionLoss(format!("the server reported connection loss for {path}"))
            }
            code => Error::Server { code, path },
        }
    }
}

/// The name ZooKeeper gives an error code, for messages.
fn code_name(code: i32) -> &'static str {
    match code {
        0 => "ok",
        -1 => "system error",
        -2 => "runtime inconsistency",
        -3 => "data inconsistency",
        -4 => "connection loss",
        -5 => "marshalling error",
        -6 => "unimplemented",
        -7 => "operation timeout",
        -8 => "bad arguments",
        -12 => "unknown session",
        -13 => "new config no quorum",
        -14 => "reconfig in progress",
        -100 => "api error",
        -101 => "no node",
        -102 => "no auth",
        -103 => "bad version",
        -108 => "no children for ephemerals",
        -110 => "node exists",
        -111 => "not empty",
        -112 => "session expired",
        -113 => "invalid callback",
        -114 => "invalid acl",
        -115 => "auth failed",
        -118 => "session moved",
        -119 => "not read only",
        -120 => "ephemeral on local session",
        -121 => "no watcher",
        -122 => "request timeout",
        -123 => "reconfig disabled",
        -124 => "session closed require sasl auth",
        _ => "unknown code",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(code: i32, expected: &str) {
        assert_eq!(Error::from_code(code, "/a/b").to_string(), expected);
    }

    #[test]
    fn codes_map_to_errors_naming_the_path() {
        check(-101, "zookeeper node /a/b does not exist");
        check(-110, "zookeeper node /a/b already exists");
        check(-103, "zookeeper node /a/b is not at the expected version");
        check(-111, "zookeeper node /a/b has children");
        check(
            -108,
            "zookeeper node /a/b is ephemeral and cannot have children",
        );
        check(-102, "zookeeper denied access to /a/b");
        check(-114, "zookeeper refused the acl for /a/b");
        check(-8, "zookeeper refused the arguments for /a/b");
        check(-112, "zookeeper session expired");
        check(-115, "zookeeper authentication failed");
        check(
            -4,
            "zookeeper connection lost: the server reported connection loss for /a/b",
        );
        check(-118, "zookeeper error -118 (session moved) for /a/b");
        check(-999, "zookeeper error -999 (unknown code) for /a/b");
    }
}
