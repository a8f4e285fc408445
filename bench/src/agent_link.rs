//! A simulated agent's stream from the master over one raw HTTP/1.1 connection: the
//! REGISTER POST of Mantle's agent protocol and the chunked RecordIO stream that answers
//! it. Tens of thousands of these fit in one process: each is a socket and two small
//! buffers, read by the agent's own task.

use bytes::{Buf, Bytes, BytesMut};
use mantle_api::internal::{AGENT_API_PATH, AGENT_STREAM_HEADER};
use mantle_api::recordio::{Decoder, RecordIoError};
use std::net::{Ipv4Addr, SocketAddr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("the master closed the connection before answering")]
    Closed,
    #[error("invalid answer: {0}")]
    Http(String),
    #[error("the master answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error(transparent)]
    Record(#[from] RecordIoError),
}

/// Where the decoder is in the chunked body.
enum Chunk {
    /// Reading a `<hex size>\r\n` line.
    Size,
    /// This many bytes of chunk data are still to come.
    Data(usize),
    /// The `\r\n` after a chunk's data.
    DataEnd,
    /// The last (empty) chunk was read.
    Done,
}

pub struct Link {
    socket: TcpStream,
    /// Bytes read from the socket and not yet decoded.
    input: BytesMut,
    chunk: Chunk,
    records: Decoder,
    /// The value of the stream-id header, which every other call must carry.
    pub stream_id: String,
}

/// Answers larger than this before the end of their head are refused.
const MAX_HEAD: usize = 16 * 1024;

impl Link {
    /// Connects from `source` (so that many connections can share one destination port
    /// without running out of local ports), POSTs `body` and reads the answer's head.
    pub async fn register(
        source: Ipv4Addr,
        master: SocketAddr,
        body: &[u8],
    ) -> Result<Link, LinkError> {
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(source.into(), 0))?;
        socket.set_nodelay(true)?;
        let mut socket = socket.connect(master).await?;
        let head = format!(
            "POST {AGENT_API_PATH} HTTP/1.1\r\nHost: {master}\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        // One write, so that the request leaves in as few segments as it can.
        let mut request = Vec::with_capacity(head.len() + body.len());
        request.extend_from_slice(head.as_bytes());
        request.extend_from_slice(body);
        socket.write_all(&request).await?;
        drop(request);

        let mut input = BytesMut::with_capacity(1024);
        loop {
            if socket.read_buf(&mut input).await? == 0 {
                return Err(LinkError::Closed);
            }
            let mut headers = [httparse::EMPTY_HEADER; 16];
            let mut response = httparse::Response::new(&mut headers);
            let parsed = response
                .parse(&input)
                .map_err(|e| LinkError::Http(e.to_string()))?;
            let httparse::Status::Complete(head_len) = parsed else {
                if input.len() > MAX_HEAD {
                    return Err(LinkError::Http("the answer's head is too long".into()));
                }
                continue;
            };
            let status = response.code.unwrap_or(0);
            let header = |name: &str| {
                response
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case(name))
                    .map(|h| String::from_utf8_lossy(h.value).into_owned())
            };
            if status != 200 {
                // Errors come with a short plain-text body; what arrived with the head is
                // enough to say what went wrong.
                let body = String::from_utf8_lossy(&input[head_len..]).into_owned();
                return Err(LinkError::Status { status, body });
            }
            let chunked =
                header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
            if !chunked {
                return Err(LinkError::Http("the stream is not chunked".into()));
            }
            let stream_id = header(AGENT_STREAM_HEADER).ok_or_else(|| {
                LinkError::Http(format!("the answer has no {AGENT_STREAM_HEADER} header"))
            })?;
            input.advance(head_len);
            return Ok(Link {
                socket,
                input,
                chunk: Chunk::Size,
                records: Decoder::default(),
                stream_id,
            });
        }
    }

    /// The next record of the stream; `Ok(None)` once the master ended it.
    pub async fn next_record(&mut self) -> Result<Option<Bytes>, LinkError> {
        loop {
            self.decode_chunks()?;
            if let Some(record) = self.records.next_record()? {
                return Ok(Some(record));
            }
            if matches!(self.chunk, Chunk::Done) {
                return Ok(None);
            }
            if self.socket.read_buf(&mut self.input).await? == 0 {
                return Ok(None);
            }
        }
    }

    /// Moves the data of every complete piece of chunked encoding in `input` into the
    /// record decoder.
    fn decode_chunks(&mut self) -> Result<(), LinkError> {
        loop {
            match self.chunk {
                Chunk::Size => {
                    let Some(end) = self.input.windows(2).position(|w| w == b"\r\n") else {
                        return Ok(());
                    };
                    let line = std::str::from_utf8(&self.input[..end]).unwrap_or("");
                    let digits = line.split(';').next().unwrap_or("").trim();
                    let size = usize::from_str_radix(digits, 16)
                        .map_err(|_| LinkError::Http(format!("bad chunk size {line:?}")))?;
                    self.input.advance(end + 2);
                    self.chunk = if size == 0 {
                        Chunk::Done
                    } else {
                        Chunk::Data(size)
                    };
                }
                Chunk::Data(left) => {
                    if self.input.is_empty() {
                        return Ok(());
                    }
                    let take = left.min(self.input.len());
                    self.records.feed(&self.input[..take]);
                    self.input.advance(take);
                    self.chunk = if take == left {
                        Chunk::DataEnd
                    } else {
                        Chunk::Data(left - take)
                    };
                }
                Chunk::DataEnd => {
                    if self.input.len() < 2 {
                        return Ok(());
                    }
                    self.input.advance(2);
                    self.chunk = Chunk::Size;
                }
                Chunk::Done => return Ok(()),
            }
        }
    }
}
