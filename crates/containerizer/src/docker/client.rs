//! The Docker engine client: one HTTP/1.1 exchange per unix-socket connection, the API
//! version negotiated once, and one method per engine call the Docker containerizer makes
//! (what Mesos's containerizer does through the `docker` CLI: pull, run, stop, kill, rm,
//! inspect, ps, logs and stats).

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, Limited};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio::net::UnixStream;
use tokio::sync::OnceCell;

use super::frames::{engine_error, Demuxer, Output, ProgressLines};
use super::spec::{create_body, ContainerSpec};
use super::{ContainerState, ContainerSummary, DockerStats};
use crate::ContainerError;

/// Where the engine listens unless the agent's `--docker_socket` says otherwise.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// The API version spoken unless the engine is older: 1.41 is Docker 20.10, the oldest
/// engine Debian ships, and has everything used here (`one-shot` stats among them).
const API_VERSION: (u32, u32) = (1, 41);

/// How long connecting to the socket may take. The socket is local, so a slow connect
/// means a wedged engine, which the caller should hear about rather than wait on.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a whole non-streaming exchange may take, and how long a streaming one may
/// take to answer with its headers.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a pull may take to answer with its headers: the engine sends them only once
/// the registry has answered the first time.
const PULL_HEAD_TIMEOUT: Duration = Duration::from_secs(300);

/// How long an import may take to answer: the whole tarball is uploaded first.
const IMPORT_TIMEOUT: Duration = Duration::from_secs(600);

/// The largest non-streaming answer read; inspect and list answers are far smaller, and
/// a bound keeps a misbehaving engine from exhausting the agent's memory.
const MAX_BODY: usize = 64 * 1024 * 1024;

type RequestBody = BoxBody<Bytes, io::Error>;

/// A client for the Docker engine on a unix socket. Cheap to clone: clones share the
/// negotiated API version.
#[derive(Debug, Clone)]
pub struct Docker {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    socket: PathBuf,
    /// `/v1.41`, or the engine's own version when it is older; learnt from the first
    /// successful `GET /version` and kept, since an engine's version only changes when it
    /// restarts, and an older engine after an upgrade still understands it.
    prefix: OnceCell<String>,
}

impl Default for Docker {
    fn default() -> Docker {
        Docker::new(DEFAULT_SOCKET)
    }
}

impl Docker {
    /// A client for the engine listening on `socket`. Nothing is connected until the
    /// first call.
    pub fn new(socket: impl Into<PathBuf>) -> Docker {
        Docker {
            inner: Arc::new(Inner {
                socket: socket.into(),
                prefix: OnceCell::new(),
            }),
        }
    }

    /// The socket this client talks to.
    pub fn socket(&self) -> &Path {
        &self.inner.socket
    }

    /// Succeeds when the engine answers `GET /_ping`.
    pub async fn ping(&self) -> Result<(), ContainerError> {
        let (status, body) = self
            .exchange(Method::GET, "/_ping", None, REQUEST_TIMEOUT)
            .await?;
        expect(status, &body, &[200])
    }

    /// Whether `image` is present locally.
    pub async fn image_exists(&self, image: &str) -> Result<bool, ContainerError> {
        check_image("image", image)?;
        let path = format!("/images/{}/json", encode_path(image));
        let (status, body) = self.call(Method::GET, &path, None).await?;
        match status {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(engine_error(status, &body)),
        }
    }

    /// Pulls `image` (`name`, `name:tag` or `name@digest`; the tag defaults to `latest`),
    /// following the progress stream to its end.
    pub async fn pull(&self, image: &str) -> Result<(), ContainerError> {
        check_image("image", image)?;
        let (repository, tag) = split_image(image);
        let path = format!(
            "/images/create?fromImage={}&tag={}",
            encode(repository),
            encode(tag)
        );
        let response = self
            .stream(Method::POST, &path, empty(), None, PULL_HEAD_TIMEOUT)
            .await?;
        tracing::debug!(image, "pulling docker image");
        follow_progress(response).await.map(drop)
    }

    /// Creates the image `repository:tag` from a root filesystem tarball, like
    /// `docker import`; the tests use it to make images without a registry.
    pub async fn import(
        &self,
        tarball: &Path,
        repository: &str,
        tag: &str,
    ) -> Result<(), ContainerError> {
        check_image("repository", repository)?;
        if tag.is_empty() || tag.contains(['/', ':', '@']) {
            return Err(ContainerError::invalid("tag", format!("bad tag {tag:?}")));
        }
        let file = tokio::fs::File::open(tarball)
            .await
            .map_err(|err| ContainerError::io("open image tarball", tarball, err))?;
        let body = FileBody {
            file,
            buf: vec![0; 64 * 1024].into_boxed_slice(),
        };
        let path = format!(
            "/images/create?fromSrc=-&repo={}&tag={}",
            encode(repository),
            encode(tag)
        );
        let response = self
            .stream(
                Method::POST,
                &path,
                body.boxed(),
                Some("application/x-tar"),
                IMPORT_TIMEOUT,
            )
            .await?;
        let id = follow_progress(response).await?;
        tracing::debug!(repository, tag, id = ?id, "imported docker image");
        Ok(())
    }

    /// Removes a local image; one that is not there counts as removed.
    pub async fn remove_image(&self, image: &str, force: bool) -> Result<(), ContainerError> {
        check_image("image", image)?;
        let path = format!("/images/{}?force={}", encode_path(image), force);
        let (status, body) = self.call(Method::DELETE, &path, None).await?;
        expect(status, &body, &[200, 404])
    }

    /// Creates the container `name` from `spec` and returns its ID.
    pub async fn create(&self, name: &str, spec: &ContainerSpec) -> Result<String, ContainerError> {
        check_name("name", name)?;
        let body = create_body(spec)?;
        let path = format!("/containers/create?name={}", encode(name));
        let (status, answer) = self.call(Method::POST, &path, Some(body)).await?;
        expect(status, &answer, &[201])?;
        let answer = parse(&answer)?;
        for warning in answer["Warnings"].as_array().into_iter().flatten() {
            tracing::warn!(container = name, warning = %warning, "docker create warning");
        }
        match answer["Id"].as_str() {
            Some(id) if !id.is_empty() => Ok(id.to_string()),
            _ => Err(ContainerError::DockerTransport(format!(
                "create {name}: answer has no Id"
            ))),
        }
    }

    /// Starts a created container; one already running counts as started.
    pub async fn start(&self, id: &str) -> Result<(), ContainerError> {
        check_name("id", id)?;
        let path = format!("/containers/{id}/start");
        let (status, body) = self.call(Method::POST, &path, None).await?;
        expect(status, &body, &[204, 304])
    }

    /// Waits until the container is not running and returns its exit code. Call it after
    /// `start`: a container that was never started counts as not running.
    ///
    /// There is no overall timeout: a task may run for weeks. The engine answers with
    /// its headers at once and the body when the container ends.
    pub async fn wait(&self, id: &str) -> Result<i64, ContainerError> {
        check_name("id", id)?;
        let path = format!("/containers/{id}/wait?condition=not-running");
        // Engines before API 1.30 hold the headers back until the container ends too,
        // so there they get no time bound either.
        let legacy = parse_version(self.prefix().await?.trim_start_matches("/v"))
            .is_some_and(|version| version < (1, 30));
        let head_limit = (!legacy).then_some(REQUEST_TIMEOUT);
        let response = self
            .stream_with(Method::POST, &path, empty(), None, head_limit)
            .await?;
        let status = response.status().as_u16();
        let body = read_body(response).await?;
        expect(status, &body, &[200])?;
        let answer = parse(&body)?;
        if let Some(message) = answer["Error"]["Message"]
            .as_str()
            .filter(|m| !m.is_empty())
        {
            return Err(ContainerError::Docker {
                status,
                message: message.to_string(),
            });
        }
        answer["StatusCode"].as_i64().ok_or_else(|| {
            ContainerError::DockerTransport(format!("wait {id}: answer has no StatusCode"))
        })
    }

    /// Follows the container's output (`GET logs?follow=1&stdout=1&stderr=1`) and appends
    /// its stdout and stderr to the two files, creating them if needed, until the
    /// container ends and the engine closes the stream. This is what
    /// `mesos-docker-executor` does to fill the sandbox's `stdout` and `stderr`.
    ///
    /// Output comes in 8-byte-header frames, or raw when the container has a TTY (then
    /// everything goes to `stdout`, since a TTY merges the two). The logs start from the
    /// container's first line, so calling this late loses nothing.
    pub async fn stream_logs(
        &self,
        id: &str,
        stdout: &Path,
        stderr: &Path,
    ) -> Result<(), ContainerError> {
        check_name("id", id)?;
        let tty = {
            let (status, body) = self
                .call(Method::GET, &format!("/containers/{id}/json"), None)
                .await?;
            expect(status, &body, &[200])?;
            parse(&body)?["Config"]["Tty"].as_bool().unwrap_or(false)
        };
        let mut out_file = open_append(stdout).await?;
        let mut err_file = open_append(stderr).await?;
        let path = format!("/containers/{id}/logs?follow=1&stdout=1&stderr=1");
        let response = self
            .stream(Method::GET, &path, empty(), None, REQUEST_TIMEOUT)
            .await?;
        let status = response.status().as_u16();
        if status != 200 {
            let body = read_body(response).await?;
            return Err(engine_error(status, &body));
        }
        let mut demuxer = if tty {
            Demuxer::raw()
        } else {
            Demuxer::multiplexed()
        };
        let mut body = response.into_body();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|err| transport("read log stream", err))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            let mut pieces = Vec::new();
            demuxer.push(&data, &mut pieces)?;
            for (output, bytes) in &pieces {
                let (file, path) = match output {
                    Output::Stdout => (&mut out_file, stdout),
                    Output::Stderr => (&mut err_file, stderr),
                };
                file.write_all(bytes)
                    .await
                    .map_err(|err| ContainerError::io("append container output to", path, err))?;
            }
        }
        for (file, path) in [(&mut out_file, stdout), (&mut err_file, stderr)] {
            file.flush()
                .await
                .map_err(|err| ContainerError::io("append container output to", path, err))?;
        }
        demuxer.finish(status)
    }

    /// Stops the container like `docker stop -t`: SIGTERM (or the image's stop signal),
    /// then SIGKILL after `grace`, rounded up to whole seconds as the engine counts them.
    /// A container already stopped counts as stopped.
    pub async fn stop(&self, id: &str, grace: Duration) -> Result<(), ContainerError> {
        check_name("id", id)?;
        let secs = grace.as_secs() + u64::from(grace.subsec_nanos() > 0);
        let path = format!("/containers/{id}/stop?t={secs}");
        // The engine answers only once the container is gone, so the exchange may take
        // the whole grace period before the usual bound starts to count.
        let (status, body) = self
            .call_with(Method::POST, &path, None, grace + REQUEST_TIMEOUT)
            .await?;
        expect(status, &body, &[204, 304])
    }

    /// Sends `signal` (`SIGKILL`, `TERM`, `9`, ...) to the container's main process. The
    /// engine answers 409 when the container is not running.
    pub async fn kill(&self, id: &str, signal: &str) -> Result<(), ContainerError> {
        check_name("id", id)?;
        if signal.is_empty() || !signal.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(ContainerError::invalid(
                "signal",
                format!("bad signal {signal:?}"),
            ));
        }
        let path = format!("/containers/{id}/kill?signal={signal}");
        let (status, body) = self.call(Method::POST, &path, None).await?;
        expect(status, &body, &[204])
    }

    /// Removes the container and its anonymous volumes (which nothing else could reuse);
    /// `force` kills it first if it runs. A container that is not there counts as removed.
    pub async fn remove(&self, id: &str, force: bool) -> Result<(), ContainerError> {
        check_name("id", id)?;
        let path = format!("/containers/{id}?force={force}&v=true");
        let (status, body) = self.call(Method::DELETE, &path, None).await?;
        expect(status, &body, &[204, 404])
    }

    /// The container's state, or `None` when the engine does not know it.
    pub async fn inspect(&self, id: &str) -> Result<Option<ContainerState>, ContainerError> {
        check_name("id", id)?;
        let (status, body) = self
            .call(Method::GET, &format!("/containers/{id}/json"), None)
            .await?;
        if status == 404 {
            return Ok(None);
        }
        expect(status, &body, &[200])?;
        Ok(Some(container_state(&parse(&body)?)))
    }

    /// Every container, running or not, with a name starting with `name_prefix`; the
    /// agent lists `mesos-` to find its own after a restart (`--docker_kill_orphans`).
    pub async fn list(&self, name_prefix: &str) -> Result<Vec<ContainerSummary>, ContainerError> {
        // The engine's name filter is an unanchored regular expression, so the prefix is
        // escaped and anchored there to narrow the answer, and checked again here.
        let pattern: String = name_prefix
            .chars()
            .flat_map(|c| {
                let escape = (!c.is_ascii_alphanumeric()).then_some('\\');
                escape.into_iter().chain([c])
            })
            .collect();
        let filters = serde_json::json!({"name": [format!("^/{pattern}")]}).to_string();
        let path = format!("/containers/json?all=1&filters={}", encode(&filters));
        let (status, body) = self.call(Method::GET, &path, None).await?;
        expect(status, &body, &[200])?;
        let answer = parse(&body)?;
        let Some(list) = answer.as_array() else {
            return Err(ContainerError::DockerTransport(
                "container list is not an array".into(),
            ));
        };
        Ok(list
            .iter()
            .map(container_summary)
            .filter(|c| c.names.iter().any(|n| n.starts_with(name_prefix)))
            .collect())
    }

    /// One sample of the container's resource usage (`GET stats?stream=false`). A
    /// container that is not running reports zeros.
    pub async fn stats(&self, id: &str) -> Result<DockerStats, ContainerError> {
        check_name("id", id)?;
        // `one-shot` skips the second sample the engine would otherwise wait a second
        // for; only cumulative counters are read here, so one sample is enough.
        let path = format!("/containers/{id}/stats?stream=false&one-shot=true");
        let (status, body) = self.call(Method::GET, &path, None).await?;
        expect(status, &body, &[200])?;
        Ok(docker_stats(&parse(&body)?))
    }

    /// The API path prefix, negotiated on first use.
    async fn prefix(&self) -> Result<&str, ContainerError> {
        let prefix = self
            .inner
            .prefix
            .get_or_try_init(|| async {
                let (status, body) = self
                    .exchange(Method::GET, "/version", None, REQUEST_TIMEOUT)
                    .await?;
                expect(status, &body, &[200])?;
                let engine = parse(&body)?;
                let version = negotiate(engine["ApiVersion"].as_str());
                tracing::debug!(socket = %self.inner.socket.display(), version, "docker api version");
                Ok::<_, ContainerError>(format!("/v{version}"))
            })
            .await?;
        Ok(prefix)
    }

    /// A versioned call with the usual time bound.
    async fn call(
        &self,
        method: Method,
        path: &str,
        json: Option<Value>,
    ) -> Result<(u16, Bytes), ContainerError> {
        self.call_with(method, path, json, REQUEST_TIMEOUT).await
    }

    async fn call_with(
        &self,
        method: Method,
        path: &str,
        json: Option<Value>,
        limit: Duration,
    ) -> Result<(u16, Bytes), ContainerError> {
        let full = format!("{}{path}", self.prefix().await?);
        self.exchange(method, &full, json, limit).await
    }

    /// One request and its whole answer, all within `limit`.
    async fn exchange(
        &self,
        method: Method,
        path: &str,
        json: Option<Value>,
        limit: Duration,
    ) -> Result<(u16, Bytes), ContainerError> {
        let (body, content_type) = match json {
            Some(json) => (full(json.to_string()), Some("application/json")),
            None => (empty(), None),
        };
        let what = format!("{method} {path}");
        let exchange = async {
            let response = self.send(method, path, body, content_type).await?;
            let status = response.status().as_u16();
            Ok::<_, ContainerError>((status, read_body(response).await?))
        };
        tokio::time::timeout(limit, exchange).await.map_err(|_| {
            ContainerError::DockerTransport(format!("{what}: no answer within {limit:?}"))
        })?
    }

    /// A versioned request whose answer's headers must come within `head_limit`; the body
    /// is left to the caller to follow for as long as the engine sends it.
    async fn stream(
        &self,
        method: Method,
        path: &str,
        body: RequestBody,
        content_type: Option<&str>,
        head_limit: Duration,
    ) -> Result<Response<Incoming>, ContainerError> {
        self.stream_with(method, path, body, content_type, Some(head_limit))
            .await
    }

    async fn stream_with(
        &self,
        method: Method,
        path: &str,
        body: RequestBody,
        content_type: Option<&str>,
        head_limit: Option<Duration>,
    ) -> Result<Response<Incoming>, ContainerError> {
        let full = format!("{}{path}", self.prefix().await?);
        let send = self.send(method, &full, body, content_type);
        let Some(head_limit) = head_limit else {
            return send.await;
        };
        tokio::time::timeout(head_limit, send).await.map_err(|_| {
            ContainerError::DockerTransport(format!("{full}: no answer within {head_limit:?}"))
        })?
    }

    /// Opens a connection, sends one request on it and returns the answer's headers. The
    /// connection lives in a task of its own until the answer's body has been read or
    /// dropped. A connection per request keeps long streams (logs, wait) from holding up
    /// other calls, and costs little on a local socket.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: RequestBody,
        content_type: Option<&str>,
    ) -> Result<Response<Incoming>, ContainerError> {
        let socket = &self.inner.socket;
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, UnixStream::connect(socket))
            .await
            .map_err(|_| {
                ContainerError::DockerTransport(format!(
                    "connect {}: timed out after {CONNECT_TIMEOUT:?}",
                    socket.display()
                ))
            })?
            .map_err(|err| {
                ContainerError::DockerTransport(format!("connect {}: {err}", socket.display()))
            })?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|err| transport("http handshake", err))?;
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(%err, "docker engine connection ended");
            }
        });
        // The engine is reached by path, but HTTP/1.1 still requires a Host header.
        let mut request = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(header::HOST, "docker");
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        let request = request
            .body(body)
            .map_err(|err| ContainerError::invalid("path", format!("{path:?}: {err}")))?;
        tracing::trace!(%method, path, "docker request");
        sender
            .send_request(request)
            .await
            .map_err(|err| transport(&format!("{method} {path}"), err))
    }
}

/// Reads a whole answer body, at most [`MAX_BODY`] bytes of it.
async fn read_body(response: Response<Incoming>) -> Result<Bytes, ContainerError> {
    Limited::new(response.into_body(), MAX_BODY)
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .map_err(|err| ContainerError::DockerTransport(format!("read answer: {err}")))
}

/// Follows a pull or import progress stream to its end; returns its last status line.
async fn follow_progress(response: Response<Incoming>) -> Result<Option<String>, ContainerError> {
    let status = response.status().as_u16();
    if status != 200 {
        let body = read_body(response).await?;
        return Err(engine_error(status, &body));
    }
    let mut lines = ProgressLines::new();
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|err| transport("read progress", err))?;
        if let Ok(data) = frame.into_data() {
            lines.push(&data)?;
        }
    }
    lines.finish(status)
}

fn expect(status: u16, body: &[u8], ok: &[u16]) -> Result<(), ContainerError> {
    if ok.contains(&status) {
        Ok(())
    } else {
        Err(engine_error(status, body))
    }
}

fn parse(body: &[u8]) -> Result<Value, ContainerError> {
    serde_json::from_slice(body)
        .map_err(|err| ContainerError::DockerTransport(format!("answer is not json: {err}")))
}

fn transport(what: &str, err: impl std::fmt::Display) -> ContainerError {
    ContainerError::DockerTransport(format!("{what}: {err}"))
}

fn empty() -> RequestBody {
    Empty::new().map_err(|never| match never {}).boxed()
}

fn full(text: String) -> RequestBody {
    Full::new(Bytes::from(text))
        .map_err(|never| match never {})
        .boxed()
}

async fn open_append(path: &Path) -> Result<tokio::fs::File, ContainerError> {
    tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await
        .map_err(|err| ContainerError::io("open container output file", path, err))
}

/// A request body read from a file a piece at a time, so a large image tarball is never
/// held in memory whole.
struct FileBody {
    file: tokio::fs::File,
    buf: Box<[u8]>,
}

impl hyper::body::Body for FileBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        let mut buf = ReadBuf::new(&mut this.buf);
        match Pin::new(&mut this.file).poll_read(cx, &mut buf) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(err)) => Poll::Ready(Some(Err(err))),
            Poll::Ready(Ok(())) if buf.filled().is_empty() => Poll::Ready(None),
            Poll::Ready(Ok(())) => {
                Poll::Ready(Some(Ok(Frame::data(Bytes::copy_from_slice(buf.filled())))))
            }
        }
    }
}

/// The API version to speak: ours, or the engine's when it is older.
fn negotiate(engine: Option<&str>) -> String {
    let ours = format!("{}.{}", API_VERSION.0, API_VERSION.1);
    let Some(engine) = engine else {
        return ours;
    };
    match parse_version(engine) {
        Some(version) if version < API_VERSION => format!("{}.{}", version.0, version.1),
        _ => ours,
    }
}

/// `1.41` as `(1, 41)`.
fn parse_version(version: &str) -> Option<(u32, u32)> {
    let (major, minor) = version.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// Splits an image reference into the repository and tag `POST /images/create` wants.
/// A colon after the last slash starts the tag; one before it belongs to a registry
/// port (`registry:5000/app`). A digest is passed as the tag, as the docker CLI does.
fn split_image(image: &str) -> (&str, &str) {
    if let Some((repository, digest)) = image.split_once('@') {
        return (repository, digest);
    }
    let last_slash = image.rfind('/').unwrap_or(0);
    match image.rfind(':') {
        Some(colon) if colon > last_slash => (&image[..colon], &image[colon + 1..]),
        _ => (image, "latest"),
    }
}

fn check_image(field: &str, image: &str) -> Result<(), ContainerError> {
    if image.is_empty() || image.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ContainerError::invalid(
            field,
            format!("bad image reference {image:?}"),
        ));
    }
    Ok(())
}

/// Container names and IDs go into URL paths, so they are held to the engine's own rule
/// for names (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`), which IDs meet too.
fn check_name(field: &str, name: &str) -> Result<(), ContainerError> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    if !first_ok
        || name.len() > 255
        || !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        return Err(ContainerError::invalid(
            field,
            format!("{name:?} is not a container name or id"),
        ));
    }
    Ok(())
}

/// Percent-encodes a query value, keeping only RFC 3986's unreserved characters.
fn encode(value: &str) -> String {
    encode_keeping(value, "")
}

/// Percent-encodes an image reference for a URL path, where its `/`, `:` and `@` may
/// stay as they are.
fn encode_path(value: &str) -> String {
    encode_keeping(value, "/:@")
}

fn encode_keeping(value: &str, keep: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric()
            || b"-._~".contains(&byte)
            || keep.as_bytes().contains(&byte)
        {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn labels(value: &Value) -> BTreeMap<String, String> {
    value
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect()
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_string()
}

/// The parts of `GET /containers/{id}/json` the agent uses.
fn container_state(answer: &Value) -> ContainerState {
    let state = &answer["State"];
    ContainerState {
        id: text(&answer["Id"]),
        name: text(&answer["Name"]).trim_start_matches('/').to_string(),
        running: state["Running"].as_bool().unwrap_or(false),
        pid: state["Pid"].as_i64().unwrap_or(0),
        exit_code: state["ExitCode"].as_i64().unwrap_or(0),
        oom_killed: state["OOMKilled"].as_bool().unwrap_or(false),
        status: text(&state["Status"]),
        labels: labels(&answer["Config"]["Labels"]),
        memory_bytes: answer["HostConfig"]["Memory"]
            .as_u64()
            .filter(|&memory| memory > 0),
    }
}

/// One entry of `GET /containers/json`.
fn container_summary(entry: &Value) -> ContainerSummary {
    ContainerSummary {
        id: text(&entry["Id"]),
        names: entry["Names"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| Some(n.as_str()?.trim_start_matches('/').to_string()))
            .collect(),
        image: text(&entry["Image"]),
        state: text(&entry["State"]),
        status: text(&entry["Status"]),
        labels: labels(&entry["Labels"]),
    }
}

/// The counters of `GET /containers/{id}/stats`, in the units Mesos's
/// `ResourceStatistics` uses.
fn docker_stats(answer: &Value) -> DockerStats {
    let cpu = &answer["cpu_stats"]["cpu_usage"];
    let memory = &answer["memory_stats"];
    let secs = |ns: &Value| ns.as_u64().unwrap_or(0) as f64 / 1e9;
    DockerStats {
        cpus_user_time_secs: secs(&cpu["usage_in_usermode"]),
        cpus_system_time_secs: secs(&cpu["usage_in_kernelmode"]),
        mem_usage_bytes: memory["usage"].as_u64().unwrap_or(0),
        mem_limit_bytes: memory["limit"].as_u64().unwrap_or(0),
        // cgroups v1 report `rss`; v2 has no such counter and `anon` is its nearest.
        mem_rss_bytes: memory["stats"]["rss"]
            .as_u64()
            .or_else(|| memory["stats"]["anon"].as_u64()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn api_version_negotiation() {
        for (engine, want) in [
            (Some("1.41"), "1.41"),
            (Some("1.43"), "1.41"),
            (Some("1.50"), "1.41"),
            (Some("2.0"), "1.41"),
            (Some("1.40"), "1.40"),
            (Some("1.25"), "1.25"),
            (Some("garbage"), "1.41"),
            (Some("1."), "1.41"),
            (None, "1.41"),
        ] {
            assert_eq!(negotiate(engine), want, "engine {engine:?}");
        }
    }

    #[test]
    fn image_references_split_into_repository_and_tag() {
        for (image, want) in [
            ("busybox", ("busybox", "latest")),
            ("busybox:1.36", ("busybox", "1.36")),
            ("library/busybox:musl", ("library/busybox", "musl")),
            ("registry:5000/app", ("registry:5000/app", "latest")),
            ("registry:5000/app:v2", ("registry:5000/app", "v2")),
            ("app@sha256:abcd", ("app", "sha256:abcd")),
            (
                "registry:5000/app@sha256:ab",
                ("registry:5000/app", "sha256:ab"),
            ),
        ] {
            assert_eq!(split_image(image), want, "image {image}");
        }
    }

    #[test]
    fn names_and_encoding() {
        for ok in ["mesos-abc", "a", "0123abcdef", "mesos-agent.c1_2"] {
            assert!(check_name("id", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-x",
            "a/b",
            "a?b",
            "a b",
            "../x",
            ".x",
            &"a".repeat(256),
        ] {
            assert!(
                matches!(check_name("id", bad), Err(ContainerError::Invalid { ref field, .. }) if field == "id"),
                "{bad}"
            );
        }
        assert_eq!(encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
        assert_eq!(encode("Az09-._~"), "Az09-._~");
        assert_eq!(
            encode_path("registry:5000/app@sha256:ab?x"),
            "registry:5000/app@sha256:ab%3Fx"
        );
        assert!(check_image("image", "bad image").is_err());
        assert!(check_image("image", "").is_err());
    }

    #[test]
    fn inspect_answers() {
        let answer = json!({
            "Id": "abc123",
            "Name": "/mesos-1",
            "State": {"Status": "exited", "Running": false, "Pid": 0, "ExitCode": 7, "OOMKilled": true},
            "Config": {"Labels": {"a": "b", "n": 1}},
            "HostConfig": {"Memory": 67108864},
        });
        assert_eq!(
            container_state(&answer),
            ContainerState {
                id: "abc123".into(),
                name: "mesos-1".into(),
                running: false,
                pid: 0,
                exit_code: 7,
                oom_killed: true,
                status: "exited".into(),
                labels: [("a".to_string(), "b".to_string())].into(),
                memory_bytes: Some(64 << 20),
            }
        );
        // Null labels and a missing state read as empty, not as an error.
        let sparse = container_state(
            &json!({"Id": "x", "Config": {"Labels": null}, "HostConfig": {"Memory": 0}}),
        );
        assert_eq!(
            (sparse.running, sparse.labels.len(), sparse.memory_bytes),
            (false, 0, None)
        );
    }

    #[test]
    fn list_and_stats_answers() {
        let entry = json!({
            "Id": "abc", "Names": ["/mesos-1", "/alias"], "Image": "busybox",
            "State": "running", "Status": "Up 2 seconds", "Labels": {"k": "v"},
        });
        let summary = container_summary(&entry);
        assert_eq!(summary.names, vec!["mesos-1", "alias"]);
        assert_eq!(
            (summary.state.as_str(), summary.labels["k"].as_str()),
            ("running", "v")
        );

        let v1 = json!({
            "cpu_stats": {"cpu_usage": {"total_usage": 5, "usage_in_usermode": 1_500_000_000u64, "usage_in_kernelmode": 250_000_000u64}},
            "memory_stats": {"usage": 1000, "limit": 67108864, "stats": {"rss": 600}},
        });
        assert_eq!(
            docker_stats(&v1),
            DockerStats {
                cpus_user_time_secs: 1.5,
                cpus_system_time_secs: 0.25,
                mem_usage_bytes: 1000,
                mem_limit_bytes: 67108864,
                mem_rss_bytes: Some(600),
            }
        );
        let v2 = json!({"memory_stats": {"usage": 10, "limit": 20, "stats": {"anon": 5}}});
        assert_eq!(docker_stats(&v2).mem_rss_bytes, Some(5));
        let stopped = json!({"cpu_stats": {}, "memory_stats": {}});
        assert_eq!(docker_stats(&stopped), DockerStats::default());
    }

    #[tokio::test]
    async fn unreachable_socket_is_a_transport_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let docker = Docker::new(dir.path().join("no.sock"));
        assert!(matches!(
            docker.ping().await,
            Err(ContainerError::DockerTransport(_))
        ));
        assert!(matches!(
            docker.inspect("mesos-x").await,
            Err(ContainerError::DockerTransport(_))
        ));
        // Bad input is refused before any connection is tried.
        assert!(matches!(
            docker.inspect("a/b").await,
            Err(ContainerError::Invalid { .. })
        ));
        assert!(matches!(
            docker.kill("mesos-x", "KILL; rm").await,
            Err(ContainerError::Invalid { .. })
        ));
    }
}
