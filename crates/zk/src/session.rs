//! The session task: owns the connection to one server of the ensemble, matches replies
//! to requests, pings, routes watch notifications, moves the session to another server
//! when the connection breaks, and decides when the session is lost for good.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{sleep, sleep_until, timeout, Instant};
use tracing::{debug, error, info, warn};

use crate::error::{code, Error};
use crate::proto::{self, op, xid, ConnectRequest, ConnectResponse};
use crate::url::{Credentials, Server};
use crate::watches::{WatchKind, WatchSender, Watches};

/// Where a session stands, as published on [`Client::state_changes`](crate::Client::state_changes).
///
/// The states mean precisely:
///
/// - `Connected`: the client holds a connection to a server that accepted the session.
///   The session is alive on the ensemble, so its ephemeral nodes exist and requests are
///   being served.
/// - `Disconnected`: the connection broke; the client is trying the other servers with
///   the same session id and password. The session may still be alive (its ephemeral
///   nodes still exist and other clients still see them) or the servers may be about to
///   expire it. Requests made now wait for a connection, within their request timeout;
///   requests that were on the broken connection failed with
///   [`Error::ConnectionLoss`]. A leader should stop acting here if it cannot tolerate
///   the doubt; it must stop at `Expired`.
/// - `Expired`: terminal. Either a server refused the session as expired, or no server
///   answered for the whole session timeout, counted from the moment the client sent
///   the last request a server answered. The servers expire a session only after the
///   timeout has passed since they last heard from it, which is no earlier than that
///   moment, so when the client reports `Expired` on its own no other client can yet
///   have seen this session's ephemeral nodes go (provided the clocks of client and
///   servers run at the same rate). Every request fails with
///   [`Error::SessionExpired`]; watches end with it.
/// - `Closed`: terminal. The client was closed or every handle to it was dropped; the
///   session was closed on the server when a connection allowed it (its ephemeral nodes
///   are gone at once), otherwise it will expire there. A server refusing the client's
///   credentials also ends here (digest credentials are never refused in practice).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionState {
    Connected,
    Disconnected,
    Expired,
    Closed,
}

impl SessionState {
    /// Whether the session has ended for good.
    pub fn is_terminal(self) -> bool {
        matches!(self, SessionState::Expired | SessionState::Closed)
    }
}

/// What a session needs to be resumed by another client (`Options::resume`).
#[derive(Clone, PartialEq, Eq)]
pub struct SessionCredentials {
    pub session_id: i64,
    pub password: Vec<u8>,
}

impl std::fmt::Debug for SessionCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SessionCredentials {{ session_id: {:#x}, password: \"***\" }}",
            self.session_id
        )
    }
}

/// What the session task publishes for the handles.
pub(crate) struct Shared {
    pub state: watch::Sender<SessionState>,
    pub info: Mutex<Info>,
}

#[derive(Clone)]
pub(crate) struct Info {
    pub credentials: SessionCredentials,
    pub timeout: Duration,
    pub server: Option<Server>,
}

/// Which watch a read asks for; the kind registered depends on the outcome.
#[derive(Clone, Copy, Debug)]
pub(crate) enum WatchOn {
    Data,
    Exists,
    Children,
}

pub(crate) struct Request {
    pub opcode: i32,
    pub body: Bytes,
    pub reply: oneshot::Sender<Result<Reply, Error>>,
    pub watch: Option<(WatchOn, String, WatchSender)>,
}

/// A server's reply to a request: its error code (0 for success) and body.
pub(crate) struct Reply {
    pub err: i32,
    pub body: Bytes,
}

pub(crate) enum Command {
    Request(Request),
    Close(oneshot::Sender<()>),
}

/// A request written to the current connection and not yet answered.
struct Pending {
    xid: i32,
    opcode: i32,
    sent_at: Instant,
    reply: oneshot::Sender<Result<Reply, Error>>,
    watch: Option<(WatchOn, String, WatchSender)>,
}

/// One TCP connection carrying the session.
pub(crate) struct Connection {
    server: Server,
    reader: OwnedReadHalf,
    writer: OwnedWriteHalf,
    buf: BytesMut,
    pending: VecDeque<Pending>,
    /// Send times of unanswered pings; servers answer them in order.
    pings: VecDeque<Instant>,
    last_sent: Instant,
    last_received: Instant,
    /// When the `ConnectRequest` that the server accepted was sent.
    connect_sent: Instant,
    response: ConnectResponse,
}

/// How serving a connection ended.
enum Ended {
    Lost(String),
    Closed,
    AuthFailed,
}

/// Opens a connection to `server` and performs the handshake. A server that refuses
/// the session as expired gives [`Error::SessionExpired`]; anything else that goes
/// wrong is [`Error::ConnectionLoss`] naming the server.
pub(crate) async fn handshake(
    server: &Server,
    request: &ConnectRequest,
) -> Result<Connection, Error> {
    let lost = |what: String| Error::ConnectionLoss(format!("{what} {server}"));
    let stream = TcpStream::connect((server.host.as_str(), server.port))
        .await
        .map_err(|err| lost(format!("cannot connect ({err}) to")))?;
    // Requests are small and latency matters more than packet count.
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let connect_sent = Instant::now();
    writer
        .write_all(&request.encode())
        .await
        .map_err(|err| lost(format!("cannot send the session request ({err}) to")))?;
    let mut buf = BytesMut::with_capacity(4096);
    let frame = loop {
        if let Some(frame) = proto::take_frame(&mut buf)? {
            break frame;
        }
        match reader.read_buf(&mut buf).await {
            Ok(0) => {
                return Err(lost(
                    "the session request was refused (connection closed) by".to_string(),
                ))
            }
            Ok(_) => {}
            Err(err) => return Err(lost(format!("no session reply ({err}) from"))),
        }
    };
    let response = ConnectResponse::decode(&frame)?;
    if response.timeout_ms <= 0 {
        return Err(Error::SessionExpired);
    }
    let now = Instant::now();
    Ok(Connection {
        server: server.clone(),
        reader,
        writer,
        buf,
        pending: VecDeque::new(),
        pings: VecDeque::new(),
        last_sent: now,
        last_received: now,
        connect_sent,
        response,
    })
}

impl Connection {
    pub(crate) fn server(&self) -> &Server {
        &self.server
    }

    pub(crate) fn negotiated_timeout(&self) -> Duration {
        Duration::from_millis(self.response.timeout_ms.max(0) as u64)
    }

    async fn write(&mut self, frame: &[u8], limit: Duration) -> Result<(), String> {
        match timeout(limit, self.writer.write_all(frame)).await {
            Ok(Ok(())) => {
                self.last_sent = Instant::now();
                Ok(())
            }
            Ok(Err(err)) => Err(format!("writing to {}: {err}", self.server)),
            Err(_) => Err(format!("writing to {} stalled for {limit:?}", self.server)),
        }
    }
}

/// The task that owns a session after its first handshake.
pub(crate) struct Session {
    servers: Vec<Server>,
    next_server: usize,
    requested_timeout_ms: i32,
    credentials: Option<Credentials>,
    commands: mpsc::UnboundedReceiver<Command>,
    shared: Arc<Shared>,
    session_id: i64,
    password: Vec<u8>,
    timeout: Duration,
    last_zxid: i64,
    /// The send time of the last request a server answered: the servers have heard
    /// from this session no earlier than this, so it cannot expire before
    /// `touched + timeout`.
    touched: Instant,
    /// Requests made while no connection is up.
    queued: VecDeque<Request>,
    watches: Watches,
    next_xid: i32,
    close_waiters: Vec<oneshot::Sender<()>>,
    closing: bool,
}

pub(crate) struct SessionConfig {
    pub servers: Vec<Server>,
    pub next_server: usize,
    pub requested_timeout_ms: i32,
    pub credentials: Option<Credentials>,
}

impl Session {
    pub(crate) fn new(
        config: SessionConfig,
        commands: mpsc::UnboundedReceiver<Command>,
        shared: Arc<Shared>,
        first: &Connection,
    ) -> Session {
        Session {
            servers: config.servers,
            next_server: config.next_server,
            requested_timeout_ms: config.requested_timeout_ms,
            credentials: config.credentials,
            commands,
            shared,
            session_id: first.response.session_id,
            password: first.response.password.clone(),
            timeout: first.negotiated_timeout(),
            last_zxid: 0,
            touched: first.connect_sent,
            queued: VecDeque::new(),
            watches: Watches::default(),
            next_xid: 1,
            close_waiters: Vec::new(),
            closing: false,
        }
    }

    pub(crate) fn credentials(&self) -> SessionCredentials {
        SessionCredentials {
            session_id: self.session_id,
            password: self.password.clone(),
        }
    }

    pub(crate) async fn run(mut self, mut conn: Connection) {
        loop {
            let ended = match self.on_connected(&mut conn).await {
                Ok(()) => self.serve(&mut conn).await,
                Err(reason) => Ended::Lost(reason),
            };
            let reason = match ended {
                Ended::Lost(_) if self.closing => {
                    return self.finish(SessionState::Closed, Some(conn))
                }
                Ended::Lost(reason) => reason,
                Ended::Closed => return self.finish(SessionState::Closed, Some(conn)),
                Ended::AuthFailed => {
                    error!(server = %conn.server, "zookeeper refused the session's credentials");
                    return self.finish(SessionState::Closed, Some(conn));
                }
            };
            warn!(
                session_id = format_args!("{:#x}", self.session_id),
                server = %conn.server,
                "zookeeper connection lost: {reason}"
            );
            self.fail_pending(&mut conn, &reason);
            self.publish(SessionState::Disconnected, None);
            conn = match self.reconnect().await {
                Ok(conn) => conn,
                Err(state) => return self.finish(state, None),
            };
        }
    }

    /// Records a (re)established connection, publishes it, and sends what must precede
    /// the caller's requests: the credentials, the watches to restore, then the
    /// requests that waited for a connection.
    async fn on_connected(&mut self, conn: &mut Connection) -> Result<(), String> {
        self.session_id = conn.response.session_id;
        self.password = conn.response.password.clone();
        self.timeout = conn.negotiated_timeout();
        self.touched = self.touched.max(conn.connect_sent);
        info!(
            session_id = format_args!("{:#x}", self.session_id),
            server = %conn.server,
            timeout_ms = self.timeout.as_millis() as u64,
            "zookeeper session connected"
        );
        self.publish(SessionState::Connected, Some(conn.server.clone()));
        let limit = self.read_timeout();
        if let Some(credentials) = &self.credentials {
            let auth = format!("{}:{}", credentials.user, credentials.password);
            let body = proto::auth_body("digest", auth.as_bytes());
            conn.write(&proto::request_frame(xid::AUTH, op::AUTH, &body), limit)
                .await?;
        }
        let (data, exist, child) = self.watches.live_paths();
        for body in proto::set_watches_bodies(self.last_zxid, &data, &exist, &child) {
            conn.write(
                &proto::request_frame(xid::SET_WATCHES, op::SET_WATCHES, &body),
                limit,
            )
            .await?;
        }
        while let Some(request) = self.queued.pop_front() {
            self.send_request(conn, request).await?;
        }
        Ok(())
    }

    /// ZooKeeper's own clients ping after a third of the timeout without traffic and
    /// give up on a server after two thirds without hearing from it, which leaves a
    /// third of the timeout to find another server before the session expires.
    fn read_timeout(&self) -> Duration {
        self.timeout * 2 / 3
    }

    async fn serve(&mut self, conn: &mut Connection) -> Ended {
        let ping_every = self.timeout / 3;
        let read_timeout = self.read_timeout();
        loop {
            // Room for a large reply to arrive in few reads.
            if conn.buf.capacity() - conn.buf.len() < 4096 {
                conn.buf.reserve(64 * 1024);
            }
            let ping_at = conn.last_sent + ping_every;
            let silent_at = conn.last_received + read_timeout;
            tokio::select! {
                read = conn.reader.read_buf(&mut conn.buf) => {
                    match read {
                        Ok(0) => return Ended::Lost(format!("{} closed the connection", conn.server)),
                        Err(err) => return Ended::Lost(format!("reading from {}: {err}", conn.server)),
                        Ok(_) => conn.last_received = Instant::now(),
                    }
                    loop {
                        match proto::take_frame(&mut conn.buf) {
                            Ok(Some(frame)) => {
                                if let Some(ended) = self.on_frame(conn, frame) {
                                    return ended;
                                }
                            }
                            Ok(None) => break,
                            Err(err) => return Ended::Lost(err.to_string()),
                        }
                    }
                }
                command = self.commands.recv(), if !self.closing => {
                    let result = match command {
                        Some(Command::Request(request)) => self.send_request(conn, request).await,
                        Some(Command::Close(done)) => {
                            self.close_waiters.push(done);
                            self.send_close(conn).await
                        }
                        // Every handle is gone: close the session so that its ephemeral
                        // nodes go now rather than after the timeout.
                        None => self.send_close(conn).await,
                    };
                    if let Err(reason) = result {
                        return Ended::Lost(reason);
                    }
                }
                _ = sleep_until(ping_at) => {
                    let frame = proto::request_frame(xid::PING, op::PING, &[]);
                    if let Err(reason) = conn.write(&frame, read_timeout).await {
                        return Ended::Lost(reason);
                    }
                    conn.pings.push_back(conn.last_sent);
                }
                _ = sleep_until(silent_at) => {
                    return Ended::Lost(format!("no answer from {} for {read_timeout:?}", conn.server));
                }
            }
        }
    }

    fn next_xid(&mut self) -> i32 {
        let xid = self.next_xid;
        self.next_xid = if xid == i32::MAX { 1 } else { xid + 1 };
        xid
    }

    async fn send_request(
        &mut self,
        conn: &mut Connection,
        request: Request,
    ) -> Result<(), String> {
        if request.reply.is_closed() {
            // The caller gave up (its request timeout passed) while it waited here.
            return Ok(());
        }
        let xid = self.next_xid();
        let frame = proto::request_frame(xid, request.opcode, &request.body);
        // Pending before written: if the write fails, the request is failed with the
        // connection, as it may have reached the server.
        conn.pending.push_back(Pending {
            xid,
            opcode: request.opcode,
            sent_at: Instant::now(),
            reply: request.reply,
            watch: request.watch,
        });
        let limit = self.read_timeout();
        conn.write(&frame, limit).await?;
        if let Some(pending) = conn.pending.back_mut() {
            pending.sent_at = conn.last_sent;
        }
        Ok(())
    }

    async fn send_close(&mut self, conn: &mut Connection) -> Result<(), String> {
        self.closing = true;
        // Nobody waits on this reply itself; its arrival ends `serve`.
        let (reply, _) = oneshot::channel();
        let xid = self.next_xid();
        conn.pending.push_back(Pending {
            xid,
            opcode: op::CLOSE_SESSION,
            sent_at: Instant::now(),
            reply,
            watch: None,
        });
        let frame = proto::request_frame(xid, op::CLOSE_SESSION, &[]);
        let limit = self.read_timeout();
        conn.write(&frame, limit).await
    }

    /// Handles one frame from the server; `Some` ends the connection.
    fn on_frame(&mut self, conn: &mut Connection, frame: Bytes) -> Option<Ended> {
        let (header, body) = match proto::decode_reply(&frame) {
            Ok(reply) => reply,
            Err(err) => return Some(Ended::Lost(err.to_string())),
        };
        if header.zxid > self.last_zxid {
            self.last_zxid = header.zxid;
        }
        match header.xid {
            xid::NOTIFICATION => match proto::decode_event(&body) {
                Ok(Some(event)) => {
                    debug!(path = %event.path, event = ?event.event_type, "zookeeper watch fired");
                    self.watches.trigger(&event);
                }
                Ok(None) => {}
                Err(err) => return Some(Ended::Lost(err.to_string())),
            },
            xid::PING => {
                if let Some(sent) = conn.pings.pop_front() {
                    self.touched = self.touched.max(sent);
                }
            }
            xid::AUTH => {
                if header.err != code::OK {
                    return Some(Ended::AuthFailed);
                }
            }
            xid::SET_WATCHES => {
                if header.err != code::OK {
                    warn!(
                        code = header.err,
                        "zookeeper refused to restore the session's watches"
                    );
                }
            }
            xid => {
                let Some(pending) = conn.pending.pop_front() else {
                    return Some(Ended::Lost(format!("reply with xid {xid} to no request")));
                };
                if pending.xid != xid {
                    // Servers answer in order; anything else means the stream is not
                    // what this client thinks it is.
                    return Some(Ended::Lost(format!(
                        "reply with xid {xid} while expecting {}",
                        pending.xid
                    )));
                }
                self.touched = self.touched.max(pending.sent_at);
                if pending.opcode == op::CLOSE_SESSION {
                    return Some(Ended::Closed);
                }
                if let Some((on, path, tx)) = pending.watch {
                    let kind = match (on, header.err) {
                        (WatchOn::Data | WatchOn::Exists, code::OK) => Some(WatchKind::Data),
                        (WatchOn::Exists, code::NO_NODE) => Some(WatchKind::Exist),
                        (WatchOn::Children, code::OK) => Some(WatchKind::Child),
                        // The server set no watch when the read failed.
                        _ => None,
                    };
                    if let Some(kind) = kind {
                        self.watches.add(kind, path, tx);
                    }
                }
                let _ = pending.reply.send(Ok(Reply {
                    err: header.err,
                    body,
                }));
            }
        }
        None
    }

    fn fail_pending(&mut self, conn: &mut Connection, reason: &str) {
        for pending in conn.pending.drain(..) {
            let _ = pending
                .reply
                .send(Err(Error::ConnectionLoss(reason.to_string())));
        }
        conn.pings.clear();
    }

    /// Tries the servers in turn, from the one after the last used, until one accepts
    /// the session, a server declares it expired, or the session timeout has passed
    /// since the servers last heard from it. Requests made meanwhile are queued.
    async fn reconnect(&mut self) -> Result<Connection, SessionState> {
        let count = self.servers.len();
        // Spreading one timeout over the servers lets every one be tried within it.
        let per_server = (self.timeout / count as u32).max(Duration::from_millis(500));
        loop {
            let expires_at = self.touched + self.timeout;
            let now = Instant::now();
            if now >= expires_at {
                warn!(
                    session_id = format_args!("{:#x}", self.session_id),
                    timeout_ms = self.timeout.as_millis() as u64,
                    "zookeeper session expired: no server answered within the session timeout"
                );
                return Err(SessionState::Expired);
            }
            let server = self.servers[self.next_server % count].clone();
            self.next_server = (self.next_server + 1) % count;
            let request = ConnectRequest {
                last_zxid_seen: self.last_zxid,
                timeout_ms: self.requested_timeout_ms,
                session_id: self.session_id,
                password: self.password.clone(),
            };
            let attempt = timeout(
                per_server.min(expires_at - now),
                handshake(&server, &request),
            );
            match self.while_disconnected(attempt).await {
                None => return Err(SessionState::Closed),
                Some(Ok(Ok(conn))) => return Ok(conn),
                Some(Ok(Err(Error::SessionExpired))) => {
                    warn!(
                        session_id = format_args!("{:#x}", self.session_id),
                        server = %server,
                        "zookeeper session expired: the server refused it"
                    );
                    return Err(SessionState::Expired);
                }
                Some(Ok(Err(err))) => debug!(server = %server, "zookeeper reconnect failed: {err}"),
                Some(Err(_)) => debug!(server = %server, "zookeeper reconnect timed out"),
            }
            if self.next_server == 0 || count == 1 {
                // A whole round failed: pause a little (with jitter, so that clients
                // do not all come back at the same instant), never past the deadline.
                let pause = Duration::from_millis(rand::rng().random_range(100..=400));
                let until = (Instant::now() + pause).min(expires_at);
                if self.while_disconnected(sleep_until(until)).await.is_none() {
                    return Err(SessionState::Closed);
                }
            }
        }
    }

    /// Runs `future` while queueing the requests that arrive; `None` when the client is
    /// closed meanwhile.
    async fn while_disconnected<F: Future>(&mut self, future: F) -> Option<F::Output> {
        tokio::pin!(future);
        loop {
            tokio::select! {
                output = &mut future => return Some(output),
                command = self.commands.recv() => match command {
                    Some(Command::Request(request)) => {
                        self.queued.retain(|queued| !queued.reply.is_closed());
                        self.queued.push_back(request);
                    }
                    Some(Command::Close(done)) => {
                        self.close_waiters.push(done);
                        return None;
                    }
                    None => return None,
                }
            }
        }
    }

    fn publish(&self, state: SessionState, server: Option<Server>) {
        if let Ok(mut info) = self.shared.info.lock() {
            info.credentials = SessionCredentials {
                session_id: self.session_id,
                password: self.password.clone(),
            };
            info.timeout = self.timeout;
            info.server = server;
        }
        // Only real changes wake the watchers of the state.
        self.shared.state.send_if_modified(|current| {
            let changed = *current != state;
            *current = state;
            changed
        });
    }

    /// Ends the session: publishes the terminal state first (so a handle that finds the
    /// task gone reports the right error), then fails everything still waiting.
    fn finish(mut self, state: SessionState, conn: Option<Connection>) {
        let error = match state {
            SessionState::Expired => Error::SessionExpired,
            _ => Error::Closed,
        };
        if state == SessionState::Closed {
            info!(
                session_id = format_args!("{:#x}", self.session_id),
                "zookeeper session closed"
            );
        }
        self.publish(state, None);
        if let Some(mut conn) = conn {
            for pending in conn.pending.drain(..) {
                let _ = pending.reply.send(Err(error.clone()));
            }
        }
        for request in self.queued.drain(..) {
            let _ = request.reply.send(Err(error.clone()));
        }
        self.watches.fail_all(&error);
        self.commands.close();
        while let Ok(command) = self.commands.try_recv() {
            match command {
                Command::Request(request) => {
                    let _ = request.reply.send(Err(error.clone()));
                }
                Command::Close(done) => self.close_waiters.push(done),
            }
        }
        for done in self.close_waiters.drain(..) {
            let _ = done.send(());
        }
    }
}

/// A short pause between rounds of the first connection attempts.
pub(crate) async fn first_connect_pause() {
    // The generator is not Send; it must not live across the await.
    let pause = rand::rng().random_range(100..=300);
    sleep(Duration::from_millis(pause)).await;
}
