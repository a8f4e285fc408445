//! The HTTP layer shared by all clients: JSON POSTs and chunked RecordIO streams over
//! plain HTTP/1.1 (hyper), with keep-alive connections reused between calls, or over one
//! multiplexed HTTP/2 connection per server (h2c with prior knowledge,
//! [`HttpClient::http2`]), which a simulated fleet uses to carry many agents' streams.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http2::{self, SendRequest};
use hyper::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, CONTENT_TYPE, LOCATION};
use hyper::{Request, StatusCode};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use mantle_api::recordio::Decoder;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: hyper_util::client::legacy::Error,
    },
    #[error("{url} answered {status}: {body}")]
    Status {
        url: String,
        status: StatusCode,
        body: String,
    },
    #[error("{url} redirected to {location}")]
    Redirect { url: String, location: String },
    #[error("reading the response of {url}: {message}")]
    Body { url: String, message: String },
    #[error("{url} timed out")]
    Timeout { url: String },
    #[error("invalid message from {url}: {message}")]
    Decode { url: String, message: String },
    #[error("invalid request: {0}")]
    Request(String),
    #[error("cannot reach {url} over HTTP/2: {message}")]
    Http2 { url: String, message: String },
    #[error("cannot reach {url} over HTTP/1.1: {message}")]
    Http1 { url: String, message: String },
}

impl ClientError {
    /// The `host:port` a 307 pointed to, for following a leader.
    pub fn redirect_target(&self) -> Option<String> {
        match self {
            ClientError::Redirect { location, .. } => {
                let rest = location
                    .trim_start_matches("http://")
                    .trim_start_matches("https://")
                    .trim_start_matches("//");
                Some(rest.split('/').next().unwrap_or(rest).to_string())
            }
            _ => None,
        }
    }
}

/// A cheap-to-clone HTTP client: HTTP/1.1 with a connection pool, or HTTP/2 with one
/// connection per server.
#[derive(Clone)]
pub struct HttpClient {
    transport: Transport,
    timeout: Duration,
}

#[derive(Clone)]
enum Transport {
    /// Shared, as the client is several hundred bytes and cloned with every handle.
    Pool(Arc<Client<HttpConnector, Full<Bytes>>>),
    Http2(Arc<Http2Connections>),
}

/// The one HTTP/2 connection to each server (`host:port`), made by the first request and
/// made again by the first request after it closed. The lock is held while connecting,
/// so requests that arrive meanwhile wait for that connection rather than open their
/// own: one connection per server by construction, rather than by the pooling rules of
/// hyper-util's client.
#[derive(Default)]
struct Http2Connections {
    senders: tokio::sync::Mutex<HashMap<String, SendRequest<Full<Bytes>>>>,
}

impl Http2Connections {
    /// A handle on the open connection to `authority`, connecting first if there is none.
    async fn sender(&self, authority: &str) -> Result<SendRequest<Full<Bytes>>, String> {
        let mut senders = self.senders.lock().await;
        if let Some(sender) = senders.get(authority) {
            if !sender.is_closed() {
                return Ok(sender.clone());
            }
        }
        senders.remove(authority);
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(authority))
            .await
            .map_err(|_| format!("connecting timed out after {CONNECT_TIMEOUT:?}"))?
            .map_err(|e| e.to_string())?;
        let _ = tcp.set_nodelay(true);
        let (sender, connection) = http2::Builder::new(TokioExecutor::new())
            .initial_stream_window_size(HTTP2_STREAM_WINDOW)
            .initial_connection_window_size(HTTP2_CONNECTION_WINDOW)
            .handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "http/2 connection ended with an error");
            }
        });
        senders.insert(authority.to_string(), sender.clone());
        Ok(sender)
    }
}

impl Default for HttpClient {
    fn default() -> Self {
        Self::new(Duration::from_secs(30))
    }
}

pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// How long making a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// What the server may send on one HTTP/2 stream before the client reads it: the events
/// of an agent's stream are small, and a larger answer waits for the window.
const HTTP2_STREAM_WINDOW: u32 = 256 * 1024;
/// What the server may send on the whole HTTP/2 connection before the client reads it.
const HTTP2_CONNECTION_WINDOW: u32 = 8 * 1024 * 1024;

impl HttpClient {
    /// HTTP/1.1 with a pool of keep-alive connections (idle ones close after 90 s).
    pub fn new(timeout: Duration) -> Self {
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector());
        HttpClient {
            transport: Transport::Pool(Arc::new(client)),
            timeout,
        }
    }

    /// HTTP/2 only, without upgrade (the server must speak h2c with prior knowledge, as
    /// the Mantle master does): every request and stream to one server shares a single
    /// connection, opened by the first request and kept while the client lives (made
    /// again once it closed); requests beyond the server's limit of concurrent streams
    /// wait for a free one.
    pub fn http2(timeout: Duration) -> Self {
        HttpClient {
            transport: Transport::Http2(Arc::default()),
            timeout,
        }
    }

    fn request(
        &self,
        url: &str,
        body: Vec<u8>,
        headers: &[(&str, String)],
    ) -> Result<Request<Full<Bytes>>, ClientError> {
        let mut builder = Request::post(url)
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json");
        for (name, value) in headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| ClientError::Request(format!("header {name}: {e}")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|e| ClientError::Request(format!("header {name} value: {e}")))?;
            builder = builder.header(name, value);
        }
        builder
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| ClientError::Request(e.to_string()))
    }

    async fn send(
        &self,
        url: &str,
        request: Request<Full<Bytes>>,
    ) -> Result<hyper::Response<Incoming>, ClientError> {
        // Boxed: hyper's request futures are several kilobytes, and every future that
        // awaits this one (each call a framework spawns) would carry and move them.
        let sent = Box::pin(async {
            match &self.transport {
                Transport::Pool(client) => {
                    client
                        .request(request)
                        .await
                        .map_err(|source| ClientError::Connect {
                            url: url.to_string(),
                            source,
                        })
                }
                Transport::Http2(connections) => {
                    let http2_error = |message: String| ClientError::Http2 {
                        url: url.to_string(),
                        message,
                    };
                    let authority = request
                        .uri()
                        .authority()
                        .map(|a| a.to_string())
                        .ok_or_else(|| ClientError::Request(format!("{url}: no host")))?;
                    let mut sender = connections.sender(&authority).await.map_err(http2_error)?;
                    sender
                        .ready()
                        .await
                        .map_err(|e| http2_error(e.to_string()))?;
                    sender
                        .send_request(request)
                        .await
                        .map_err(|e| http2_error(e.to_string()))
                }
            }
        });
        tokio::time::timeout(self.timeout, sent)
            .await
            .map_err(|_| ClientError::Timeout {
                url: url.to_string(),
            })?
    }

    /// POSTs a JSON body and reads the whole answer. Non-2xx answers are errors; a 307
    /// becomes [`ClientError::Redirect`].
    pub async fn post(
        &self,
        url: &str,
        body: Vec<u8>,
        headers: &[(&str, String)],
    ) -> Result<Response, ClientError> {
        let response = self.raw(self.request(url, body, headers)?).await?;
        check_status(url, response.status, &response.headers, &response.body)?;
        Ok(response)
    }

    /// GETs a URL and reads the whole answer; non-2xx answers are errors.
    pub async fn get(&self, url: &str) -> Result<Response, ClientError> {
        let request = Request::get(url)
            .body(Full::new(Bytes::new()))
            .map_err(|e| ClientError::Request(e.to_string()))?;
        let response = self.raw(request).await?;
        check_status(url, response.status, &response.headers, &response.body)?;
        Ok(response)
    }

    /// Sends a request exactly as given and returns the whole answer whatever its status
    /// (tests of error answers use it directly).
    pub async fn raw(&self, request: Request<Full<Bytes>>) -> Result<Response, ClientError> {
        let url = request.uri().to_string();
        let response = self.send(&url, request).await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = tokio::time::timeout(self.timeout, response.into_body().collect())
            .await
            .map_err(|_| ClientError::Timeout { url: url.clone() })?
            .map_err(|e| ClientError::Body {
                url: url.clone(),
                message: e.to_string(),
            })?
            .to_bytes();
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    /// POSTs a JSON body whose answer is a RecordIO stream (SUBSCRIBE).
    pub async fn stream(
        &self,
        url: &str,
        body: Vec<u8>,
        headers: &[(&str, String)],
    ) -> Result<(HeaderMap, RecordStream), ClientError> {
        let request = self.request(url, body, headers)?;
        let response = self.send(url, request).await?;
        let status = response.status();
        let headers = response.headers().clone();
        if !status.is_success() {
            return Err(unexpected_answer(url, response, String::new()).await);
        }
        let stream = RecordStream {
            url: url.to_string(),
            body: response.into_body(),
            decoder: Decoder::default(),
        };
        Ok((headers, stream))
    }
}

/// Connects to `authority` (`host:port`), from `local` when given.
async fn connect_from(
    authority: &str,
    local: Option<std::net::IpAddr>,
) -> std::io::Result<TcpStream> {
    let Some(local) = local else {
        return TcpStream::connect(authority).await;
    };
    let mut last = None;
    for address in tokio::net::lookup_host(authority).await? {
        let socket = match address {
            std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        socket.bind((local, 0).into())?;
        match socket.connect(address).await {
            Ok(stream) => return Ok(stream),
            Err(err) => last = Some(err),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other(format!("{authority}: no address"))))
}

/// The error for an answer other than the one expected: the server's message for an
/// error status (its body, read for up to 5 s), a [`ClientError::Redirect`] for a 307,
/// else `otherwise` as the message.
async fn unexpected_answer(
    url: &str,
    response: hyper::Response<Incoming>,
    otherwise: String,
) -> ClientError {
    let status = response.status();
    let headers = response.headers().clone();
    let body = tokio::time::timeout(Duration::from_secs(5), response.into_body().collect())
        .await
        .ok()
        .and_then(Result::ok)
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    match check_status(url, status, &headers, &body) {
        Err(err) => err,
        Ok(()) => ClientError::Status {
            url: url.to_string(),
            status,
            body: otherwise,
        },
    }
}

/// A connection handed over by a `101 Switching Protocols` answer, read and written as
/// a plain byte stream.
pub type UpgradedIo = TokioIo<hyper::upgrade::Upgraded>;

/// POSTs a JSON body over a new HTTP/1.1 connection asking to switch it to `protocol`
/// (`Connection: upgrade`), and gives back the answer's headers and the connection once
/// the server switched. Any other answer is an error, a 307 a
/// [`ClientError::Redirect`]; the whole exchange is bounded by `timeout`. The connection
/// leaves from `local` when given (a simulated fleet spreads its agents' sockets over
/// loopback addresses, as one address has about 28,000 ports to connect from).
pub async fn upgrade(
    url: &str,
    body: Vec<u8>,
    protocol: &'static str,
    timeout: Duration,
    local: Option<std::net::IpAddr>,
) -> Result<(HeaderMap, UpgradedIo), ClientError> {
    let failed = |message: String| ClientError::Http1 {
        url: url.to_string(),
        message,
    };
    let exchange = async {
        let request = Request::post(url)
            .header(CONTENT_TYPE, "application/json")
            .header(hyper::header::CONNECTION, "upgrade")
            .header(hyper::header::UPGRADE, protocol)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| ClientError::Request(e.to_string()))?;
        let authority = request
            .uri()
            .authority()
            .map(|a| a.to_string())
            .ok_or_else(|| ClientError::Request(format!("{url}: no host")))?;
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, connect_from(&authority, local))
            .await
            .map_err(|_| failed(format!("connecting timed out after {CONNECT_TIMEOUT:?}")))?
            .map_err(|e| failed(format!("cannot connect: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| failed(e.to_string()))?;
        tokio::spawn(async move {
            if let Err(err) = connection.with_upgrades().await {
                tracing::debug!(error = %err, "connection ended with an error before its upgrade");
            }
        });
        let mut response = sender
            .send_request(request)
            .await
            .map_err(|e| failed(e.to_string()))?;
        let status = response.status();
        let headers = response.headers().clone();
        if status != StatusCode::SWITCHING_PROTOCOLS {
            let expected = format!("expected 101 Switching Protocols to {protocol}");
            return Err(unexpected_answer(url, response, expected).await);
        }
        let upgraded = hyper::upgrade::on(&mut response)
            .await
            .map_err(|e| failed(e.to_string()))?;
        Ok((headers, TokioIo::new(upgraded)))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| ClientError::Timeout {
            url: url.to_string(),
        })?
}

/// Plain TCP with Nagle off (calls are small) and a bounded connect.
fn connector() -> HttpConnector {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
    connector
}

fn check_status(
    url: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), ClientError> {
    if status.is_success() {
        return Ok(());
    }
    if status.is_redirection() {
        let location = headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        return Err(ClientError::Redirect {
            url: url.to_string(),
            location,
        });
    }
    Err(ClientError::Status {
        url: url.to_string(),
        status,
        body: String::from_utf8_lossy(body).into_owned(),
    })
}

/// The records of a chunked RecordIO response, in order.
pub struct RecordStream {
    url: String,
    body: Incoming,
    decoder: Decoder,
}

impl RecordStream {
    /// The next record; `Ok(None)` when the server closed the stream.
    pub async fn next_record(&mut self) -> Result<Option<Bytes>, ClientError> {
        loop {
            if let Some(record) = self
                .decoder
                .next_record()
                .map_err(|e| ClientError::Decode {
                    url: self.url.clone(),
                    message: e.to_string(),
                })?
            {
                return Ok(Some(record));
            }
            match self.body.frame().await {
                None => return Ok(None),
                Some(Err(e)) => {
                    return Err(ClientError::Body {
                        url: self.url.clone(),
                        message: e.to_string(),
                    })
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.decoder.feed(&data);
                    }
                }
            }
        }
    }

    /// The next record parsed as JSON.
    pub async fn next_json(&mut self) -> Result<Option<serde_json::Value>, ClientError> {
        match self.next_record().await? {
            None => Ok(None),
            Some(record) => {
                serde_json::from_slice(&record)
                    .map(Some)
                    .map_err(|e| ClientError::Decode {
                        url: self.url.clone(),
                        message: e.to_string(),
                    })
            }
        }
    }
}

/// Percent-encodes a query parameter value (a sandbox path for `/files/read?path=`):
/// RFC 3986's unreserved characters and `/` stay, every other byte becomes `%XX`.
pub fn query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod query_tests {
    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(
            super::query_value("/tmp/a b/c&d=é"),
            "/tmp/a%20b/c%26d%3D%C3%A9"
        );
        assert_eq!(super::query_value("runs/latest"), "runs/latest");
    }
}

#[cfg(test)]
mod http2_tests {
    use super::HttpClient;
    use axum::serve::ListenerExt;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    /// A server answering each request with its HTTP version, counting its connections.
    async fn version_server() -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        let listener = listener.tap_io(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        let app = axum::Router::new().route(
            "/version",
            axum::routing::get(|request: axum::extract::Request| async move {
                format!("{:?}", request.version())
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{address}/version"), accepted)
    }

    #[tokio::test]
    async fn http2_client_multiplexes_concurrent_requests_over_one_connection() {
        let (url, accepted) = version_server().await;
        let client = HttpClient::http2(Duration::from_secs(10));
        let answers = futures_util::future::join_all((0..50).map(|_| client.get(&url))).await;
        for answer in answers {
            assert_eq!(answer.unwrap().body, "HTTP/2.0");
        }
        assert_eq!(client.get(&url).await.unwrap().body, "HTTP/2.0");
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        // The same port still answers HTTP/1.1 clients.
        let http1 = HttpClient::new(Duration::from_secs(10));
        assert_eq!(http1.get(&url).await.unwrap().body, "HTTP/1.1");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }
}
