//! Request bodies and reply decoding for the node operations (create, delete, exists,
//! get/set data, get children, check) and for `multi`, ZooKeeper's atomic batch.

use bytes::BytesMut;

use crate::error::{code, Error};
use crate::jute::{Reader, Stat, Writer};
use crate::proto::op;

/// How a node is created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreateMode {
    /// Stays until deleted.
    Persistent,
    /// Deleted by the server when the creating session ends (closed or expired).
    Ephemeral,
    /// Persistent, with a 10-digit sequence number appended to the name.
    PersistentSequential,
    /// Ephemeral, with a 10-digit sequence number appended to the name: the building
    /// block of leader election (`json.info_0000000007`).
    EphemeralSequential,
}

impl CreateMode {
    fn flags(self) -> i32 {
        match self {
            CreateMode::Persistent => 0,
            CreateMode::Ephemeral => 1,
            CreateMode::PersistentSequential => 2,
            CreateMode::EphemeralSequential => 3,
        }
    }

    pub fn is_sequential(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentSequential | CreateMode::EphemeralSequential
        )
    }
}

/// One operation of a [`multi`](crate::Client::multi). A version of `None` matches any
/// version; `Check` with `None` only asserts that the node exists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Create {
        path: String,
        data: Vec<u8>,
        mode: CreateMode,
    },
    Delete {
        path: String,
        version: Option<i32>,
    },
    SetData {
        path: String,
        data: Vec<u8>,
        version: Option<i32>,
    },
    Check {
        path: String,
        version: Option<i32>,
    },
}

impl Op {
    pub fn create(path: impl Into<String>, data: impl Into<Vec<u8>>, mode: CreateMode) -> Op {
        Op::Create {
            path: path.into(),
            data: data.into(),
            mode,
        }
    }

    pub fn delete(path: impl Into<String>, version: Option<i32>) -> Op {
        Op::Delete {
            path: path.into(),
            version,
        }
    }

    pub fn set_data(path: impl Into<String>, data: impl Into<Vec<u8>>, version: Option<i32>) -> Op {
        Op::SetData {
            path: path.into(),
            data: data.into(),
            version,
        }
    }

    pub fn check(path: impl Into<String>, version: Option<i32>) -> Op {
        Op::Check {
            path: path.into(),
            version,
        }
    }

    pub fn path(&self) -> &str {
        match self {
            Op::Create { path, .. }
            | Op::Delete { path, .. }
            | Op::SetData { path, .. }
            | Op::Check { path, .. } => path,
        }
    }

    fn opcode(&self) -> i32 {
        match self {
            Op::Create { .. } => op::CREATE,
            Op::Delete { .. } => op::DELETE,
            Op::SetData { .. } => op::SET_DATA,
            Op::Check { .. } => op::CHECK,
        }
    }

    fn write(&self, w: &mut Writer, acl: Acl) {
        match self {
            Op::Create { path, data, mode } => write_create(w, path, data, *mode, acl),
            Op::Delete { path, version } | Op::Check { path, version } => {
                w.string(path).int(version.unwrap_or(-1));
            }
            Op::SetData {
                path,
                data,
                version,
            } => {
                w.string(path).buffer(data).int(version.unwrap_or(-1));
            }
        }
    }
}

/// The result of one operation of a successful `multi`, in the order of the operations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpResult {
    /// The path the node got (with its sequence number, for a sequential node).
    Create {
        path: String,
    },
    Delete,
    SetData {
        stat: Stat,
    },
    Check,
}

/// The ACL given to created nodes: open to all, or, for a client with credentials,
/// everything for the creator and reading for everyone (what Mesos uses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Acl {
    Open,
    CreatorAllWorldRead,
}

mod perms {
    pub const READ: i32 = 1;
    pub const ALL: i32 = 31;
}

fn write_acl(w: &mut Writer, acl: Acl) {
    match acl {
        Acl::Open => {
            w.int(1).int(perms::ALL).string("world").string("anyone");
        }
        Acl::CreatorAllWorldRead => {
            // The `auth` scheme with an empty id stands for the identities this session
            // authenticated with; the server substitutes them.
            w.int(2)
                .int(perms::ALL)
                .string("auth")
                .string("")
                .int(perms::READ)
                .string("world")
                .string("anyone");
        }
    }
}

fn write_create(w: &mut Writer, path: &str, data: &[u8], mode: CreateMode, acl: Acl) {
    w.string(path).buffer(data);
    write_acl(w, acl);
    w.int(mode.flags());
}

pub(crate) fn create_body(path: &str, data: &[u8], mode: CreateMode, acl: Acl) -> BytesMut {
    let mut w = Writer::new();
    write_create(&mut w, path, data, mode, acl);
    w.into_bytes()
}

/// The body of delete and check requests: a path and a version.
pub(crate) fn path_version_body(path: &str, version: Option<i32>) -> BytesMut {
    let mut w = Writer::new();
    w.string(path).int(version.unwrap_or(-1));
    w.into_bytes()
}

/// The body of exists, get-data and get-children requests: a path and a watch flag.
pub(crate) fn path_watch_body(path: &str, watch: bool) -> BytesMut {
    let mut w = Writer::new();
    w.string(path).boolean(watch);
    w.into_bytes()
}

pub(crate) fn set_data_body(path: &str, data: &[u8], version: Option<i32>) -> BytesMut {
    let mut w = Writer::new();
    w.string(path).buffer(data).int(version.unwrap_or(-1));
    w.into_bytes()
}

/// A multi request: each operation behind a header (type, done=false, err=-1), closed
/// by a header with type -1 and done=true.
pub(crate) fn multi_body(ops: &[Op], acl: Acl) -> BytesMut {
    let mut w = Writer::new();
    for op in ops {
        w.int(op.opcode()).boolean(false).int(-1);
        op.write(&mut w, acl);
    }
    w.int(-1).boolean(true).int(-1);
    w.into_bytes()
}

pub(crate) fn decode_create(body: &[u8]) -> Result<String, Error> {
    Reader::new(body).string("created path")
}

pub(crate) fn decode_stat(body: &[u8]) -> Result<Stat, Error> {
    Stat::read(&mut Reader::new(body))
}

pub(crate) fn decode_get_data(body: &[u8]) -> Result<(Vec<u8>, Stat), Error> {
    let mut r = Reader::new(body);
    let data = r.buffer("node data")?;
    let stat = Stat::read(&mut r)?;
    Ok((data, stat))
}

pub(crate) fn decode_children(body: &[u8]) -> Result<Vec<String>, Error> {
    Reader::new(body).strings("children")
}

/// Reads a multi reply. When an operation failed, the server reports every operation
/// as an error result: the failed one with its code, those before it with 0 and those
/// after it with "runtime inconsistency". The first real failure is returned with its
/// index, so the caller learns which condition did not hold.
pub(crate) fn decode_multi(body: &[u8], ops: &[Op]) -> Result<Vec<OpResult>, Error> {
    let mut r = Reader::new(body);
    let mut results = Vec::with_capacity(ops.len());
    let mut failure: Option<(usize, i32)> = None;
    loop {
        let opcode = r.int("multi result type")?;
        let done = r.boolean("multi result done flag")?;
        let err = r.int("multi result error code")?;
        if done {
            break;
        }
        let index = results.len();
        let result = match opcode {
            op::CREATE => OpResult::Create {
                path: r.string("multi created path")?,
            },
            op::DELETE => OpResult::Delete,
            op::SET_DATA => OpResult::SetData {
                stat: Stat::read(&mut r)?,
            },
            op::CHECK => OpResult::Check,
            op::ERROR => {
                let code = r.int("multi error result")?;
                let code = if code != 0 { code } else { err };
                let is_cause = code != code::OK && code != code::RUNTIME_INCONSISTENCY;
                if is_cause && failure.is_none() {
                    failure = Some((index, code));
                }
                OpResult::Check
            }
            other => {
                return Err(Error::Protocol(format!(
                    "multi result {index} has unknown type {other}"
                )))
            }
        };
        results.push(result);
    }
    if let Some((index, code)) = failure {
        let path = ops.get(index).map(Op::path).unwrap_or("");
        return Err(Error::Multi {
            index,
            source: Box::new(Error::from_code(code, path)),
        });
    }
    if results.len() != ops.len() {
        return Err(Error::Protocol(format!(
            "multi reply has {} results for {} operations",
            results.len(),
            ops.len()
        )));
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn check(body: BytesMut, expected: &str) {
        assert_eq!(hex(&body), expected.replace(' ', ""));
    }

    #[test]
    fn request_bodies() {
        check(path_watch_body("/a", true), "00000002 2f61 01");
        check(path_version_body("/a", None), "00000002 2f61 ffffffff");
        check(path_version_body("/a", Some(3)), "00000002 2f61 00000003");
        check(
            set_data_body("/a", b"x", Some(1)),
            "00000002 2f61 00000001 78 00000001",
        );
        // path, data, one ACL (ALL for world:anyone), flags 3
        check(
            create_body("/a", b"", CreateMode::EphemeralSequential, Acl::Open),
            "00000002 2f61 00000000 00000001 0000001f 00000005 776f726c64 00000006 616e796f6e65 00000003",
        );
        check(
            create_body("/a", b"", CreateMode::Persistent, Acl::CreatorAllWorldRead),
            "00000002 2f61 00000000 00000002 0000001f 00000004 61757468 00000000 \
             00000001 00000005 776f726c64 00000006 616e796f6e65 00000000",
        );
    }

    #[test]
    fn multi_request_layout() {
        let ops = [Op::check("/l", Some(0)), Op::delete("/d", None)];
        check(
            multi_body(&ops, Acl::Open),
            "0000000d 00 ffffffff 00000002 2f6c 00000000 \
             00000002 00 ffffffff 00000002 2f64 ffffffff \
             ffffffff 01 ffffffff",
        );
    }

    #[test]
    fn multi_replies() {
        let ops = [
            Op::create("/c", b"", CreateMode::Persistent),
            Op::delete("/d", None),
            Op::set_data("/s", b"", None),
            Op::check("/k", None),
        ];
        let mut w = Writer::new();
        w.int(op::CREATE).boolean(false).int(0).string("/c");
        w.int(op::DELETE).boolean(false).int(0);
        w.int(op::SET_DATA).boolean(false).int(0);
        Stat::default().write(&mut w);
        w.int(op::CHECK).boolean(false).int(0);
        w.int(-1).boolean(true).int(-1);
        let body = w.into_bytes();
        assert_eq!(
            decode_multi(&body, &ops).unwrap(),
            vec![
                OpResult::Create { path: "/c".into() },
                OpResult::Delete,
                OpResult::SetData {
                    stat: Stat::default()
                },
                OpResult::Check
            ]
        );

        // The second operation failed: the first reports 0, the rest -2.
        let mut w = Writer::new();
        w.int(op::ERROR).boolean(false).int(0).int(0);
        w.int(op::ERROR).boolean(false).int(-103).int(-103);
        w.int(op::ERROR).boolean(false).int(-2).int(-2);
        w.int(op::ERROR).boolean(false).int(-2).int(-2);
        w.int(-1).boolean(true).int(-1);
        let err = decode_multi(&w.into_bytes(), &ops).unwrap_err();
        assert_eq!(
            err,
            Error::Multi {
                index: 1,
                source: Box::new(Error::BadVersion { path: "/d".into() })
            }
        );
        assert_eq!(
            err.to_string(),
            "zookeeper multi operation 1 failed: zookeeper node /d is not at the expected version"
        );
    }
}
