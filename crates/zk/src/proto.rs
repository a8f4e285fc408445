//! The ZooKeeper client wire protocol: length-prefixed frames, the session handshake
//! (`ConnectRequest`/`ConnectResponse`), request and reply headers, the special xids
//! (notification -1, ping -2, auth -4, set-watches -8) and watcher events.

use bytes::{Buf, Bytes, BytesMut};

use crate::error::Error;
use crate::jute::{Reader, Writer};

/// Request types (`ZooDefs.OpCode`).
pub(crate) mod op {
    pub const CREATE: i32 = 1;
    pub const DELETE: i32 = 2;
    pub const EXISTS: i32 = 3;
    pub const GET_DATA: i32 = 4;
    pub const SET_DATA: i32 = 5;
    pub const GET_CHILDREN: i32 = 8;
    pub const PING: i32 = 11;
    pub const CHECK: i32 = 13;
    pub const MULTI: i32 = 14;
    pub const CLOSE_SESSION: i32 = -11;
    pub const AUTH: i32 = 100;
    pub const SET_WATCHES: i32 = 101;
    /// The type of a failed operation's result inside a multi reply.
    pub const ERROR: i32 = -1;
}

/// Xids the server treats specially; ordinary requests use positive ones.
pub(crate) mod xid {
    pub const NOTIFICATION: i32 = -1;
    pub const PING: i32 = -2;
    pub const AUTH: i32 = -4;
    pub const SET_WATCHES: i32 = -8;
}

/// The largest frame a server accepts by default (`jute.maxbuffer`, 0xfffff bytes); a
/// longer one makes it drop the connection.
pub const MAX_PACKET_LEN: usize = 0xfffff;

/// The largest node data this client sends: the packet limit less room for the
/// request header, the path (up to 1,000 bytes) and the ACL. Larger values must be
/// split by the caller (see the crate documentation).
pub const MAX_DATA_LEN: usize = MAX_PACKET_LEN - 2048;

/// The largest frame accepted from a server. Replies are not bound by the request
/// limit (a long child list, for example); this only keeps a corrupt length from
/// allocating gigabytes.
pub(crate) const MAX_REPLY_LEN: usize = 64 << 20;

/// The length of the session password the server hands out.
pub(crate) const PASSWORD_LEN: usize = 16;

/// Prefixes a frame body with its length.
pub(crate) fn frame(body: BytesMut) -> Bytes {
    let mut out = BytesMut::with_capacity(body.len() + 4);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out.freeze()
}

/// A request frame: header (xid, type) and an already encoded body.
pub(crate) fn request_frame(xid: i32, opcode: i32, body: &[u8]) -> Bytes {
    let mut w = Writer::new();
    w.int(xid).int(opcode);
    let mut out = w.into_bytes();
    out.extend_from_slice(body);
    frame(out)
}

/// Takes one complete frame off the front of `buf`, if it holds one.
pub(crate) fn take_frame(buf: &mut BytesMut) -> Result<Option<Bytes>, Error> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if len > MAX_REPLY_LEN {
        return Err(Error::Protocol(format!(
            "frame of {len} bytes exceeds the {MAX_REPLY_LEN} byte limit"
        )));
    }
    if buf.len() < 4 + len {
        return Ok(None);
    }
    buf.advance(4);
    Ok(Some(buf.split_to(len).freeze()))
}

/// The first frame of every connection: a new session (id 0) or the resumption of an
/// existing one with its password.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ConnectRequest {
    pub last_zxid_seen: i64,
    pub timeout_ms: i32,
    pub session_id: i64,
    pub password: Vec<u8>,
}

impl ConnectRequest {
    pub(crate) fn encode(&self) -> Bytes {
        let mut w = Writer::new();
        w.int(0) // protocol version
            .long(self.last_zxid_seen)
            .int(self.timeout_ms)
            .long(self.session_id)
            .buffer(&self.password)
            // Not read-only: this client wants a server that is part of a quorum.
            .boolean(false);
        frame(w.into_bytes())
    }
}

/// The server's answer to a `ConnectRequest`. A timeout of zero or less means the
/// session it named has expired.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ConnectResponse {
    pub timeout_ms: i32,
    pub session_id: i64,
    pub password: Vec<u8>,
}

impl ConnectResponse {
    pub(crate) fn decode(frame: &[u8]) -> Result<ConnectResponse, Error> {
        let mut r = Reader::new(frame);
        let _protocol_version = r.int("connect response protocol version")?;
        let timeout_ms = r.int("connect response timeout")?;
        let session_id = r.long("connect response session id")?;
        let password = r.buffer("connect response password")?;
        // Servers since 3.3 append a read-only flag; older ones do not, and this client
        // never asks for read-only mode, so it is not read.
        Ok(ConnectResponse {
            timeout_ms,
            session_id,
            password,
        })
    }
}

/// The header of every frame the server sends after the handshake.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ReplyHeader {
    pub xid: i32,
    pub zxid: i64,
    pub err: i32,
}

/// Splits a reply frame into its header and body.
pub(crate) fn decode_reply(frame: &Bytes) -> Result<(ReplyHeader, Bytes), Error> {
    let mut r = Reader::new(frame);
    let header = ReplyHeader {
        xid: r.int("reply xid")?,
        zxid: r.long("reply zxid")?,
        err: r.int("reply error code")?,
    };
    Ok((header, frame.slice(16..)))
}

/// What happened to a watched node (`Watcher.Event.EventType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    NodeCreated,
    NodeDeleted,
    NodeDataChanged,
    NodeChildrenChanged,
}

/// A watch firing: what changed, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchedEvent {
    pub event_type: EventType,
    pub path: String,
}

/// Decodes the body of a notification (xid -1). Events without a node (session state
/// changes, which servers do not send over the wire) and types this client does not
/// register for give `None`.
pub(crate) fn decode_event(body: &[u8]) -> Result<Option<WatchedEvent>, Error> {
    let mut r = Reader::new(body);
    let event_type = r.int("watcher event type")?;
    let _state = r.int("watcher event state")?;
    let path = r.string("watcher event path")?;
    let event_type = match event_type {
        1 => EventType::NodeCreated,
        2 => EventType::NodeDeleted,
        3 => EventType::NodeDataChanged,
        4 => EventType::NodeChildrenChanged,
        _ => return Ok(None),
    };
    Ok(Some(WatchedEvent { event_type, path }))
}

/// The body of an `addauth` packet (sent with xid -4).
pub(crate) fn auth_body(scheme: &str, auth: &[u8]) -> BytesMut {
    let mut w = Writer::new();
    w.int(0).string(scheme).buffer(auth);
    w.into_bytes()
}

/// The bodies of the `SetWatches` requests that re-register a session's watches on a
/// new connection, split so that none exceeds 128 KiB (a server refuses packets above
/// its limit, and a session may watch many nodes).
pub(crate) fn set_watches_bodies(
    relative_zxid: i64,
    data: &[String],
    exist: &[String],
    child: &[String],
) -> Vec<BytesMut> {
    const BATCH_BYTES: usize = 128 * 1024;
    let mut bodies = Vec::new();
    let (mut d, mut e, mut c) = (0, 0, 0);
    while d < data.len() || e < exist.len() || c < child.len() {
        let mut budget = BATCH_BYTES;
        let mut take = |list: &[String], start: &mut usize| {
            let begin = *start;
            while *start < list.len() {
                let cost = list[*start].len() + 4;
                // Always take one path, so that a huge one still makes progress.
                if cost > budget && *start > begin {
                    break;
                }
                budget = budget.saturating_sub(cost);
                *start += 1;
            }
            list[begin..*start].to_vec()
        };
        let data_batch = take(data, &mut d);
        let exist_batch = take(exist, &mut e);
        let child_batch = take(child, &mut c);
        let mut w = Writer::new();
        w.long(relative_zxid)
            .strings(&data_batch)
            .strings(&exist_batch)
            .strings(&child_batch);
        bodies.push(w.into_bytes());
    }
    bodies
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_request_layout() {
        let request = ConnectRequest {
            last_zxid_seen: 0x10,
            timeout_ms: 10_000,
            session_id: 0,
            password: vec![0; 16],
        };
        let bytes = request.encode();
        // 4 (len) + 4 (version) + 8 (zxid) + 4 (timeout) + 8 (session) + 4 + 16 + 1
        assert_eq!(bytes.len(), 49);
        assert_eq!(&bytes[..4], &[0, 0, 0, 45]);
        assert_eq!(&bytes[4..8], &[0, 0, 0, 0]);
        assert_eq!(&bytes[8..16], &[0, 0, 0, 0, 0, 0, 0, 0x10]);
        assert_eq!(&bytes[16..20], &10_000i32.to_be_bytes());
        assert_eq!(&bytes[28..32], &[0, 0, 0, 16]);
        assert_eq!(bytes[48], 0);
    }

    #[test]
    fn connect_response_with_and_without_read_only_flag() {
        let mut w = Writer::new();
        w.int(0).int(4000).long(0x1234).buffer(&[7; 16]);
        let without = w.into_bytes();
        let mut with = without.clone();
        with.extend_from_slice(&[0]);
        for bytes in [without, with] {
            let response = ConnectResponse::decode(&bytes).unwrap();
            assert_eq!(
                response,
                ConnectResponse {
                    timeout_ms: 4000,
                    session_id: 0x1234,
                    password: vec![7; 16]
                }
            );
        }
        assert!(ConnectResponse::decode(&[0, 0, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn frames_split_from_a_stream() {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&request_frame(7, op::PING, &[]));
        buf.extend_from_slice(&[0, 0, 0, 3, 1, 2]);
        let first = take_frame(&mut buf).unwrap().unwrap();
        assert_eq!(&first[..], &[0, 0, 0, 7, 0, 0, 0, 11]);
        assert_eq!(take_frame(&mut buf).unwrap(), None);
        buf.extend_from_slice(&[3]);
        assert_eq!(&take_frame(&mut buf).unwrap().unwrap()[..], &[1, 2, 3]);
        assert!(buf.is_empty());
        let mut huge = BytesMut::from(&[0x7f, 0, 0, 0][..]);
        assert!(take_frame(&mut huge).is_err());
    }

    #[test]
    fn reply_header_and_event() {
        let mut w = Writer::new();
        w.int(xid::NOTIFICATION)
            .long(-1)
            .int(0)
            .int(3)
            .int(3)
            .string("/a");
        let frame = w.into_bytes().freeze();
        let (header, body) = decode_reply(&frame).unwrap();
        assert_eq!(
            header,
            ReplyHeader {
                xid: -1,
                zxid: -1,
                err: 0
            }
        );
        assert_eq!(
            decode_event(&body).unwrap(),
            Some(WatchedEvent {
                event_type: EventType::NodeDataChanged,
                path: "/a".to_string()
            })
        );
        let mut w = Writer::new();
        w.int(-1).int(-112).string("");
        assert_eq!(decode_event(&w.into_bytes()).unwrap(), None);
    }

    #[test]
    fn set_watches_split_into_batches() {
        let small = set_watches_bodies(5, &["/a".into()], &[], &["/b".into()]);
        assert_eq!(small.len(), 1);
        let mut r = Reader::new(&small[0]);
        assert_eq!(r.long("zxid").unwrap(), 5);
        assert_eq!(r.strings("data").unwrap(), vec!["/a"]);
        assert_eq!(r.strings("exist").unwrap(), Vec::<String>::new());
        assert_eq!(r.strings("child").unwrap(), vec!["/b"]);

        let many: Vec<String> = (0..5000).map(|i| format!("/node/{i:050}")).collect();
        let bodies = set_watches_bodies(5, &many, &[], &many);
        assert!(bodies.len() > 1);
        let mut seen = 0;
        for body in &bodies {
            assert!(body.len() <= 128 * 1024 + 64);
            let mut r = Reader::new(body);
            r.long("zxid").unwrap();
            seen += r.strings("data").unwrap().len();
            r.strings("exist").unwrap();
            seen += r.strings("child").unwrap().len();
        }
        assert_eq!(seen, 10_000);
        assert!(set_watches_bodies(5, &[], &[], &[]).is_empty());
    }
}
