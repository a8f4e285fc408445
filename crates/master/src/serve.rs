//! The master's HTTP server: HTTP/1.1 and HTTP/2 over cleartext with prior knowledge
//! (h2c) on one port, told apart by the first bytes of each connection. Browsers, curl,
//! pymesos and the other Mesos clients speak HTTP/1.1 as before; a simulated fleet
//! multiplexes hundreds of agents (each a long-lived RecordIO stream plus its calls)
//! over one HTTP/2 connection, so that a master can serve more agents than it may hold
//! open files.
//!
//! This is `axum::serve` with graceful shutdown, written out because `axum::serve` keeps
//! hyper's HTTP/2 default of 200 concurrent streams per connection.

use crate::http::App;
use axum::body::Body;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::time::Duration;
use tokio::net::TcpListener;
use tower::ServiceExt;

/// Streams one HTTP/2 connection may hold open at once: each agent of a fleet keeps one
/// for its stream and briefly one per call in flight.
pub const MAX_CONCURRENT_STREAMS: u32 = 10_000;
/// What a client may send on one stream before the master reads it. Agent calls are a
/// few KB (a re-registration with many tasks more, which then takes a few round trips).
const STREAM_WINDOW: u32 = 256 * 1024;
/// What a client may send on one connection before the master reads it, across streams.
const CONNECTION_WINDOW: u32 = 4 * 1024 * 1024;
/// Data queued for one stream beyond what the peer's window lets through; events to an
/// agent are small, and a large answer (`/master/state`) just waits for the window.
const MAX_SEND_BUFFER: usize = 256 * 1024;
/// How long to wait after an accept error other than a failed handshake (out of file
/// descriptors, mostly) before accepting again.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// The connection builder: HTTP/1.1 with hyper's defaults (as `axum::serve`), HTTP/2
/// with the limits above.
fn builder() -> Builder<TokioExecutor> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http2()
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_send_buf_size(MAX_SEND_BUFFER)
        .enable_connect_protocol();
    builder
}

/// Serves `app` on `listener` until `shutdown` completes, then stops accepting, asks
/// every connection to finish (HTTP/2 GOAWAY, HTTP/1.1 close after the current answer)
/// and waits for them.
pub async fn serve(listener: TcpListener, app: App, shutdown: impl Future<Output = ()>) {
    let builder = builder();
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    if !is_connection_error(&err) {
                        tracing::error!(error = %err, "accepting a connection failed; pausing");
                        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    }
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        // Calls and their answers are small: do not let them wait for more to send.
        let _ = stream.set_nodelay(true);
        let service = app
            .clone()
            .map_request(|request: Request<Incoming>| request.map(Body::new));
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service))
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::trace!(error = %err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Errors of one incoming connection, not of the listener (as hyper and axum judge).
fn is_connection_error(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}
