//! RecordIO framing of Mesos event streams: `<decimal byte count>\n<bytes>`, records back
//! to back with no separator, chunk boundaries anywhere.

use bytes::{Buf, Bytes, BytesMut};
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{ready, Poll};
use tokio::io::{AsyncRead, ReadBuf};

/// Bytes taken from a reader at a time by [`Decoder::read_from`].
const READ_BYTES: usize = 8 * 1024;

/// Frames one record.
pub fn encode(record: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(record.len() + 12);
    out.extend_from_slice(record.len().to_string().as_bytes());
    out.extend_from_slice(b"\n");
    out.extend_from_slice(record);
    out.freeze()
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordIoError {
    #[error("recordio: invalid length header {0:?}")]
    BadLength(String),
    #[error("recordio: record of {0} bytes exceeds the limit of {1} bytes")]
    TooLarge(u64, u64),
}

/// Incremental decoder: feed it chunks as they arrive, take whole records out.
#[derive(Debug)]
pub struct Decoder {
    buffer: BytesMut,
    max_record: u64,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new(64 * 1024 * 1024)
    }
}

impl Decoder {
    pub fn new(max_record: u64) -> Self {
        Self {
            buffer: BytesMut::new(),
            max_record,
        }
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        self.buffer.extend_from_slice(chunk);
    }

    /// Feeds what `reader` has ready: the number of bytes, 0 at its end. The read's
    /// buffer lives only while the reader is polled, so a connection waiting for its
    /// next record holds none (an agent's socket in the master is idle most of the time).
    pub async fn read_from<R: AsyncRead + Unpin>(&mut self, reader: &mut R) -> io::Result<usize> {
        poll_fn(|cx| {
            let mut buffer = [0u8; READ_BYTES];
            let mut read = ReadBuf::new(&mut buffer);
            ready!(Pin::new(&mut *reader).poll_read(cx, &mut read))?;
            self.feed(read.filled());
            Poll::Ready(Ok(read.filled().len()))
        })
        .await
    }

    /// The bytes fed and not yet taken out as records.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Returns the next complete record, `Ok(None)` when more input is needed.
    pub fn next_record(&mut self) -> Result<Option<Bytes>, RecordIoError> {
        let Some(newline) = self.buffer.iter().position(|&b| b == b'\n') else {
            if self.buffer.len() > 20 {
                let head = String::from_utf8_lossy(&self.buffer[..20]).into_owned();
                return Err(RecordIoError::BadLength(head));
            }
            return Ok(None);
        };
        let header = &self.buffer[..newline];
        let text = std::str::from_utf8(header).unwrap_or("");
        let length: u64 = match text.parse() {
            Ok(n) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => {
                return Err(RecordIoError::BadLength(
                    String::from_utf8_lossy(header).into_owned(),
                ))
            }
        };
        if length > self.max_record {
            return Err(RecordIoError::TooLarge(length, self.max_record));
        }
        let total = newline + 1 + length as usize;
        if self.buffer.len() < total {
            return Ok(None);
        }
        self.buffer.advance(newline + 1);
        Ok(Some(self.buffer.split_to(length as usize).freeze()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn mesos_example() {
        let mut out = Vec::new();
        out.extend_from_slice(&encode(br#"{"type":"HEARTBEAT"}"#));
        assert_eq!(out, b"20\n{\"type\":\"HEARTBEAT\"}");
    }

    #[test]
    fn rejects_garbage_header() {
        let mut d = Decoder::default();
        d.feed(b"x12\nabc");
        assert!(d.next_record().is_err());
        let mut d = Decoder::default();
        d.feed(b"\r\n");
        assert!(d.next_record().is_err());
    }

    #[test]
    fn rejects_oversized_record() {
        let mut d = Decoder::new(10);
        d.feed(b"11\n");
        assert_eq!(d.next_record(), Err(RecordIoError::TooLarge(11, 10)));
    }

    proptest! {
        #[test]
        fn round_trip_any_chunking(
            records in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..200), 0..20),
            cuts in prop::collection::vec(1usize..50, 1..40),
        ) {
            let mut stream = Vec::new();
            for r in &records {
                stream.extend_from_slice(&encode(r));
            }
            let mut decoder = Decoder::default();
            let mut got = Vec::new();
            let mut pos = 0;
            let mut cut = cuts.iter().cycle();
            while pos < stream.len() {
                let end = (pos + cut.next().unwrap()).min(stream.len());
                decoder.feed(&stream[pos..end]);
                pos = end;
                while let Some(record) = decoder.next_record().unwrap() {
                    got.push(record.to_vec());
                }
            }
            prop_assert_eq!(got, records);
        }
    }
}
