//! Jute, ZooKeeper's binary record encoding: big-endian integers, length-prefixed
//! buffers and strings (length -1 for null), counted vectors, one byte per boolean.

use bytes::{BufMut, BytesMut};

use crate::error::Error;

/// Appends jute values to a buffer.
#[derive(Default)]
pub(crate) struct Writer {
    buf: BytesMut,
}

impl Writer {
    pub(crate) fn new() -> Writer {
        Writer::default()
    }

    pub(crate) fn int(&mut self, value: i32) -> &mut Self {
        self.buf.put_i32(value);
        self
    }

    pub(crate) fn long(&mut self, value: i64) -> &mut Self {
        self.buf.put_i64(value);
        self
    }

    pub(crate) fn boolean(&mut self, value: bool) -> &mut Self {
        self.buf.put_u8(u8::from(value));
        self
    }

    /// A `buffer`: its length as an int, then its bytes.
    pub(crate) fn buffer(&mut self, value: &[u8]) -> &mut Self {
        self.buf.put_i32(len_i32(value.len()));
        self.buf.put_slice(value);
        self
    }

    /// A `ustring`: encoded as a buffer of its UTF-8 bytes.
    pub(crate) fn string(&mut self, value: &str) -> &mut Self {
        self.buffer(value.as_bytes())
    }

    /// A `vector<ustring>`: the count as an int, then each string.
    pub(crate) fn strings<S: AsRef<str>>(&mut self, values: &[S]) -> &mut Self {
        self.buf.put_i32(len_i32(values.len()));
        for value in values {
            self.string(value.as_ref());
        }
        self
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn into_bytes(self) -> BytesMut {
        self.buf
    }
}

/// Lengths beyond `i32::MAX` cannot be sent; the callers bound every length to about
/// one megabyte (the packet limit) long before, so saturating never reaches the wire.
fn len_i32(len: usize) -> i32 {
    i32::try_from(len).unwrap_or(i32::MAX)
}

/// Reads jute values from a received frame; every read checks the remaining length
/// and names what it was reading when the frame ends early.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf }
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], Error> {
        if self.buf.len() < n {
            return Err(Error::Protocol(format!(
                "reply ends inside {what}: need {n} bytes, {} left",
                self.buf.len()
            )));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    pub(crate) fn int(&mut self, what: &str) -> Result<i32, Error> {
        let bytes = self.take(4, what)?;
        Ok(i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    pub(crate) fn long(&mut self, what: &str) -> Result<i64, Error> {
        let bytes = self.take(8, what)?;
        let mut array = [0u8; 8];
        array.copy_from_slice(bytes);
        Ok(i64::from_be_bytes(array))
    }

    pub(crate) fn boolean(&mut self, what: &str) -> Result<bool, Error> {
        Ok(self.take(1, what)?[0] != 0)
    }

    /// A `buffer`; a null buffer (length -1) reads as empty, as ZooKeeper's own clients
    /// treat a node created without data.
    pub(crate) fn buffer(&mut self, what: &str) -> Result<Vec<u8>, Error> {
        let len = self.int(what)?;
        if len < 0 {
            return Ok(Vec::new());
        }
        Ok(self.take(len as usize, what)?.to_vec())
    }

    pub(crate) fn string(&mut self, what: &str) -> Result<String, Error> {
        let bytes = self.buffer(what)?;
        String::from_utf8(bytes).map_err(|_| Error::Protocol(format!("{what} is not utf-8")))
    }

    pub(crate) fn strings(&mut self, what: &str) -> Result<Vec<String>, Error> {
        let count = self.int(what)?;
        if count < 0 {
            return Ok(Vec::new());
        }
        // Each string takes at least its four length bytes, so a count larger than that
        // cannot be honest; checking it first keeps a corrupt count from reserving memory.
        if count as usize > self.buf.len() / 4 {
            return Err(Error::Protocol(format!(
                "{what} claims {count} entries in {} bytes",
                self.buf.len()
            )));
        }
        (0..count).map(|_| self.string(what)).collect()
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

/// The metadata ZooKeeper keeps for every node (jute record `Stat`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stat {
    /// The zxid of the change that created the node.
    pub czxid: i64,
    /// The zxid of the change that last modified the node's data.
    pub mzxid: i64,
    /// Creation time, milliseconds since the epoch (the server's clock).
    pub ctime: i64,
    /// Last modification time, milliseconds since the epoch.
    pub mtime: i64,
    /// The number of changes to the data; conditional writes compare against it.
    pub version: i32,
    /// The number of changes to the children.
    pub cversion: i32,
    /// The number of changes to the ACL.
    pub aversion: i32,
    /// The owning session of an ephemeral node, 0 for a persistent one.
    pub ephemeral_owner: i64,
    /// The length of the data.
    pub data_length: i32,
    /// The number of children.
    pub num_children: i32,
    /// The zxid of the change that last modified the children.
    pub pzxid: i64,
}

impl Stat {
    pub(crate) fn read(reader: &mut Reader<'_>) -> Result<Stat, Error> {
        Ok(Stat {
            czxid: reader.long("stat.czxid")?,
            mzxid: reader.long("stat.mzxid")?,
            ctime: reader.long("stat.ctime")?,
            mtime: reader.long("stat.mtime")?,
            version: reader.int("stat.version")?,
            cversion: reader.int("stat.cversion")?,
            aversion: reader.int("stat.aversion")?,
            ephemeral_owner: reader.long("stat.ephemeralOwner")?,
            data_length: reader.int("stat.dataLength")?,
            num_children: reader.int("stat.numChildren")?,
            pzxid: reader.long("stat.pzxid")?,
        })
    }

    #[cfg(test)]
    pub(crate) fn write(&self, writer: &mut Writer) {
        writer
            .long(self.czxid)
            .long(self.mzxid)
            .long(self.ctime)
            .long(self.mtime)
            .int(self.version)
            .int(self.cversion)
            .int(self.aversion)
            .long(self.ephemeral_owner)
            .int(self.data_length)
            .int(self.num_children)
            .long(self.pzxid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(write: impl FnOnce(&mut Writer) -> &mut Writer, expected: &[u8]) {
        let mut writer = Writer::new();
        write(&mut writer);
        assert_eq!(&writer.into_bytes()[..], expected);
    }

    #[test]
    fn encodes_primitives_big_endian() {
        check(|w| w.int(1), &[0, 0, 0, 1]);
        check(|w| w.int(-2), &[0xff, 0xff, 0xff, 0xfe]);
        check(|w| w.long(0x0102_0304_0506_0708), &[1, 2, 3, 4, 5, 6, 7, 8]);
        check(|w| w.boolean(true).boolean(false), &[1, 0]);
        check(|w| w.buffer(b""), &[0, 0, 0, 0]);
        check(|w| w.buffer(b"ab"), &[0, 0, 0, 2, b'a', b'b']);
        check(|w| w.string("/é"), &[0, 0, 0, 3, b'/', 0xc3, 0xa9]);
        check(
            |w| w.strings(&["a", "bc"]),
            &[0, 0, 0, 2, 0, 0, 0, 1, b'a', 0, 0, 0, 2, b'b', b'c'],
        );
        check(|w| w.strings::<&str>(&[]), &[0, 0, 0, 0]);
    }

    #[test]
    fn decodes_what_it_encodes() {
        let mut w = Writer::new();
        w.int(-112)
            .long(i64::MIN)
            .boolean(true)
            .buffer(b"data")
            .string("/mantle")
            .strings(&["x", "y"]);
        let bytes = w.into_bytes();
        let mut r = Reader::new(&bytes);
        assert_eq!(r.int("a").unwrap(), -112);
        assert_eq!(r.long("b").unwrap(), i64::MIN);
        assert!(r.boolean("c").unwrap());
        assert_eq!(r.buffer("d").unwrap(), b"data");
        assert_eq!(r.string("e").unwrap(), "/mantle");
        assert_eq!(r.strings("f").unwrap(), vec!["x", "y"]);
        assert!(r.is_empty());
    }

    #[test]
    fn null_buffers_and_vectors_read_as_empty() {
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(r.buffer("data").unwrap(), Vec::<u8>::new());
        assert_eq!(r.strings("children").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn short_or_corrupt_frames_are_errors_naming_the_field() {
        let check_err =
            |bytes: &[u8], read: fn(&mut Reader<'_>) -> Result<(), Error>, want: &str| {
                let err = read(&mut Reader::new(bytes)).unwrap_err().to_string();
                assert!(err.contains(want), "{err:?} should contain {want:?}");
            };
        check_err(
            &[0, 0, 1],
            |r| r.int("xid").map(drop),
            "reply ends inside xid",
        );
        check_err(
            &[0, 0, 0, 5, b'a'],
            |r| r.buffer("data").map(drop),
            "inside data",
        );
        check_err(
            &[0, 0, 0, 1, 0xff],
            |r| r.string("path").map(drop),
            "path is not utf-8",
        );
        check_err(
            &[0x7f, 0, 0, 0, 0, 0, 0, 0],
            |r| r.strings("children").map(drop),
            "children claims 2130706432 entries",
        );
    }

    #[test]
    fn stat_is_68_bytes_and_round_trips() {
        let stat = Stat {
            czxid: 1,
            mzxid: 2,
            ctime: 3,
            mtime: 4,
            version: 5,
            cversion: 6,
            aversion: 7,
            ephemeral_owner: 8,
            data_length: 9,
            num_children: 10,
            pzxid: 11,
        };
        let mut w = Writer::new();
        stat.write(&mut w);
        assert_eq!(w.len(), 68);
        let bytes = w.into_bytes();
        assert_eq!(Stat::read(&mut Reader::new(&bytes)).unwrap(), stat);
    }
}
