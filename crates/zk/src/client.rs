//! The [`Client`] handle: connecting, the node operations with their optional watches,
//! `multi`, and the session's state.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use rand::seq::SliceRandom;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{timeout, Instant};
use tracing::{debug, info};

use crate::error::{code, Error, Result};
use crate::jute::Stat;
use crate::ops::{self, Acl, CreateMode, Op, OpResult};
use crate::proto::{self, op, ConnectRequest, MAX_DATA_LEN, MAX_PACKET_LEN};
use crate::session::{
    self, Command, Info, Reply, Request, Session, SessionConfig, SessionCredentials, SessionState,
    Shared, WatchOn,
};
use crate::url::{parent, validate_path, Server, ZkUrl};
use crate::watches::{watch_pair, Watch};

/// How a client connects and how long it waits.
#[derive(Clone, Debug)]
pub struct Options {
    /// The session timeout to ask for. The server clamps it to between 2 and 20 times
    /// its tick (4 s to 40 s with the default 2 s tick); [`Client::session_timeout`]
    /// reports the value it granted. Mesos asks for 10 s.
    pub session_timeout: Duration,
    /// How long one request may wait for its reply, including time spent waiting for a
    /// connection while disconnected.
    pub request_timeout: Duration,
    /// How long [`Client::connect`] tries the servers before giving up.
    pub connect_timeout: Duration,
    /// Resume this session instead of starting a new one.
    pub resume: Option<SessionCredentials>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            session_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            resume: None,
        }
    }
}

impl Options {
    pub fn session_timeout(mut self, timeout: Duration) -> Options {
        self.session_timeout = timeout;
        self
    }

    pub fn request_timeout(mut self, timeout: Duration) -> Options {
        self.request_timeout = timeout;
        self
    }

    pub fn connect_timeout(mut self, timeout: Duration) -> Options {
        self.connect_timeout = timeout;
        self
    }

    pub fn resume(mut self, credentials: SessionCredentials) -> Options {
        self.resume = Some(credentials);
        self
    }
}

/// A ZooKeeper session. Cloning gives another handle to the same session; the session is
/// closed when [`close`](Client::close) is called or the last handle is dropped.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("session_id", &format_args!("{:#x}", self.session_id()))
            .field("state", &self.state())
            .field("server", &self.server())
            .finish()
    }
}

struct Inner {
    commands: mpsc::UnboundedSender<Command>,
    shared: Arc<Shared>,
    state: watch::Receiver<SessionState>,
    acl: Acl,
    request_timeout: Duration,
}

impl Client {
    /// Connects to one of the URL's servers (tried in random order) and establishes a
    /// session, authenticating with the URL's credentials if it has any. The URL's path
    /// is not used here: it is where the caller keeps its nodes.
    pub async fn connect(url: &ZkUrl, options: Options) -> Result<Client> {
        let mut servers = url.servers.clone();
        if servers.is_empty() {
            return Err(Error::InvalidUrl {
                url: url.to_string(),
                reason: "names no server".to_string(),
            });
        }
        servers.shuffle(&mut rand::rng());
        let requested_timeout_ms =
            i32::try_from(options.session_timeout.as_millis()).unwrap_or(i32::MAX);
        let (session_id, password) = match &options.resume {
            Some(resume) => (resume.session_id, resume.password.clone()),
            None => (0, vec![0; proto::PASSWORD_LEN]),
        };
        let request = ConnectRequest {
            last_zxid_seen: 0,
            timeout_ms: requested_timeout_ms,
            session_id,
            password,
        };
        let deadline = Instant::now() + options.connect_timeout;
        let mut last_error = None;
        let mut index = 0;
        let first = loop {
            let now = Instant::now();
            if now >= deadline {
                let reason = match last_error {
                    Some(err) => format!(": {err}"),
                    None => String::new(),
                };
                return Err(Error::ConnectionLoss(format!(
                    "no server of {} accepted a session within {:?}{reason}",
                    url.connect_string(),
                    options.connect_timeout
                )));
            }
            let server = &servers[index % servers.len()];
            index += 1;
            // One silent server must not use up the whole connect timeout.
            let per_attempt = (options.session_timeout / servers.len() as u32)
                .max(Duration::from_secs(1))
                .min(deadline - now);
            match timeout(per_attempt, session::handshake(server, &request)).await {
                Ok(Ok(conn)) => break conn,
                Ok(Err(Error::SessionExpired)) => return Err(Error::SessionExpired),
                Ok(Err(err)) => {
                    debug!(server = %server, "zookeeper connect failed: {err}");
                    last_error = Some(err);
                }
                Err(_) => {}
            }
            if index % servers.len() == 0 {
                session::first_connect_pause().await;
            }
        };
        let timeout = first.negotiated_timeout();
        info!(
            server = %first.server(),
            requested_ms = requested_timeout_ms,
            negotiated_ms = timeout.as_millis() as u64,
            "zookeeper session timeout negotiated"
        );
        let (state_tx, state_rx) = watch::channel(SessionState::Connected);
        let shared = Arc::new(Shared {
            state: state_tx,
            info: Mutex::new(Info {
                credentials: SessionCredentials {
                    session_id: 0,
                    password: Vec::new(),
                },
                timeout,
                server: Some(first.server().clone()),
            }),
        });
        let (commands_tx, commands_rx) = mpsc::unbounded_channel();
        let config = SessionConfig {
            servers,
            next_server: index % url.servers.len(),
            requested_timeout_ms,
            credentials: url.credentials.clone(),
        };
        let session = Session::new(config, commands_rx, shared.clone(), &first);
        if let Ok(mut info) = shared.info.lock() {
            info.credentials = session.credentials();
        }
        tokio::spawn(session.run(first));
        Ok(Client {
            inner: Arc::new(Inner {
                commands: commands_tx,
                shared,
                state: state_rx,
                acl: if url.credentials.is_some() {
                    Acl::CreatorAllWorldRead
                } else {
                    Acl::Open
                },
                request_timeout: options.request_timeout,
            }),
        })
    }

    /// The session's current state.
    pub fn state(&self) -> SessionState {
        *self.inner.state.borrow()
    }

    /// A receiver of the session's state changes (see [`SessionState`] for what each
    /// state guarantees). A receiver may miss a short-lived state, never the last one.
    pub fn state_changes(&self) -> watch::Receiver<SessionState> {
        self.inner.state.clone()
    }

    /// The session id the server assigned.
    pub fn session_id(&self) -> i64 {
        self.info().credentials.session_id
    }

    /// The session id and password, with which another client can resume the session.
    pub fn session_credentials(&self) -> SessionCredentials {
        self.info().credentials
    }

    /// The session timeout the server granted.
    pub fn session_timeout(&self) -> Duration {
        self.info().timeout
    }

    /// The server the session is connected to, if it is connected.
    pub fn server(&self) -> Option<Server> {
        self.info().server
    }

    fn info(&self) -> Info {
        match self.inner.shared.info.lock() {
            Ok(info) => info.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Closes the session: its ephemeral nodes are deleted at once and its watches end
    /// with [`Error::Closed`]. Returns when the server confirmed (or the connection is
    /// gone); every handle of the client is closed.
    pub async fn close(&self) {
        let (done, wait) = oneshot::channel();
        if self.inner.commands.send(Command::Close(done)).is_ok() {
            let _ = wait.await;
        }
    }

    /// Creates a node and returns its path (with the sequence number for a sequential
    /// mode: `json.info_` becomes `json.info_0000000007`). The parent must exist.
    pub async fn create(&self, path: &str, data: &[u8], mode: CreateMode) -> Result<String> {
        validate_path(path, mode.is_sequential())?;
        check_data(path, data)?;
        let body = ops::create_body(path, data, mode, self.inner.acl);
        let reply = self.call("create", path, op::CREATE, body, None).await?;
        ops::decode_create(&reply)
    }

    /// Creates a node like [`create`](Client::create), first creating its missing
    /// ancestors as empty persistent nodes.
    pub async fn create_all(&self, path: &str, data: &[u8], mode: CreateMode) -> Result<String> {
        validate_path(path, mode.is_sequential())?;
        match self.create(path, data, mode).await {
            Err(Error::NoNode { .. }) => {
                // A sequential path may end in `/`: its node goes inside that directory.
                let parent = match path.strip_suffix('/') {
                    Some(directory) => Some(directory),
                    None => parent(path),
                };
                if let Some(parent) = parent {
                    self.ensure_path(parent).await?;
                }
                self.create(path, data, mode).await
            }
            result => result,
        }
    }

    /// Makes sure a path exists, creating it and its ancestors as empty persistent
    /// nodes where missing. Nodes already there are left as they are.
    pub async fn ensure_path(&self, path: &str) -> Result<()> {
        validate_path(path, false)?;
        if path == "/" || self.exists(path).await?.is_some() {
            return Ok(());
        }
        let mut end = 0;
        while end < path.len() {
            end = path[end + 1..]
                .find('/')
                .map_or(path.len(), |i| end + 1 + i);
            match self.create(&path[..end], &[], CreateMode::Persistent).await {
                Ok(_) | Err(Error::NodeExists { .. }) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }

    /// Deletes a node, if it is at `version` (any version with `None`).
    pub async fn delete(&self, path: &str, version: Option<i32>) -> Result<()> {
        validate_path(path, false)?;
        let body = ops::path_version_body(path, version);
        self.call("delete", path, op::DELETE, body, None).await?;
        Ok(())
    }

    /// The node's metadata, or `None` if it does not exist.
    pub async fn exists(&self, path: &str) -> Result<Option<Stat>> {
        self.exists_inner(path, None).await
    }

    /// Like [`exists`](Client::exists), and watches the node: the watch fires when it
    /// is created, changed or deleted.
    pub async fn exists_watch(&self, path: &str) -> Result<(Option<Stat>, Watch)> {
        let (tx, watch) = watch_pair();
        let stat = self.exists_inner(path, Some((WatchOn::Exists, tx))).await?;
        Ok((stat, watch))
    }

    async fn exists_inner(
        &self,
        path: &str,
        watch: Option<(WatchOn, crate::watches::WatchSender)>,
    ) -> Result<Option<Stat>> {
        validate_path(path, false)?;
        let body = ops::path_watch_body(path, watch.is_some());
        match self.call("exists", path, op::EXISTS, body, watch).await {
            Ok(reply) => Ok(Some(ops::decode_stat(&reply)?)),
            Err(Error::NoNode { .. }) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// The node's data and metadata.
    pub async fn get_data(&self, path: &str) -> Result<(Vec<u8>, Stat)> {
        let (reply, _) = self.read("get data", op::GET_DATA, path, None).await?;
        ops::decode_get_data(&reply)
    }

    /// Like [`get_data`](Client::get_data), and watches the node: the watch fires when
    /// its data changes or it is deleted.
    pub async fn get_data_watch(&self, path: &str) -> Result<(Vec<u8>, Stat, Watch)> {
        let on = Some(WatchOn::Data);
        let (reply, watch) = self.read("get data", op::GET_DATA, path, on).await?;
        let (data, stat) = ops::decode_get_data(&reply)?;
        Ok((data, stat, watch))
    }

    /// Replaces the node's data if it is at `version` (any version with `None`) and
    /// returns the new metadata.
    pub async fn set_data(&self, path: &str, data: &[u8], version: Option<i32>) -> Result<Stat> {
        validate_path(path, false)?;
        check_data(path, data)?;
        let body = ops::set_data_body(path, data, version);
        let reply = self
            .call("set data", path, op::SET_DATA, body, None)
            .await?;
        ops::decode_stat(&reply)
    }

    /// The names of the node's children, in no particular order.
    pub async fn get_children(&self, path: &str) -> Result<Vec<String>> {
        let (reply, _) = self
            .read("get children", op::GET_CHILDREN, path, None)
            .await?;
        ops::decode_children(&reply)
    }

    /// Like [`get_children`](Client::get_children), and watches the node: the watch
    /// fires when a child is created or deleted, or the node itself is deleted.
    pub async fn get_children_watch(&self, path: &str) -> Result<(Vec<String>, Watch)> {
        let on = Some(WatchOn::Children);
        let (reply, watch) = self
            .read("get children", op::GET_CHILDREN, path, on)
            .await?;
        Ok((ops::decode_children(&reply)?, watch))
    }

    /// A read of one path, with the watch it asks for (without one, the returned
    /// watch ends with `Closed` and is dropped by the caller).
    async fn read(
        &self,
        op_name: &'static str,
        opcode: i32,
        path: &str,
        watch_on: Option<WatchOn>,
    ) -> Result<(bytes::Bytes, Watch)> {
        validate_path(path, false)?;
        let (tx, watch) = watch_pair();
        let body = ops::path_watch_body(path, watch_on.is_some());
        let watch_on = watch_on.map(|on| (on, tx));
        let reply = self.call(op_name, path, opcode, body, watch_on).await?;
        Ok((reply, watch))
    }

    /// Applies all operations atomically, or none. When one fails the error is
    /// [`Error::Multi`] with its index and cause; a `Check` of the leader's node makes
    /// a write conditional on still being the leader:
    ///
    /// ```no_run
    /// # async fn f(zk: &mantle_zk::Client) -> mantle_zk::Result<()> {
    /// use mantle_zk::Op;
    /// zk.multi(&[
    ///     Op::check("/mantle/json.info_0000000003", None),
    ///     Op::set_data("/mantle/registry", b"...".to_vec(), Some(41)),
    /// ])
    /// .await?;
    /// # Ok(()) }
    /// ```
    pub async fn multi(&self, operations: &[Op]) -> Result<Vec<OpResult>> {
        for operation in operations {
            let sequential = matches!(operation, Op::Create { mode, .. } if mode.is_sequential());
            validate_path(operation.path(), sequential)?;
            if let Op::Create { path, data, .. } | Op::SetData { path, data, .. } = operation {
                check_data(path, data)?;
            }
        }
        let path = operations.first().map(Op::path).unwrap_or("/");
        let body = ops::multi_body(operations, self.inner.acl);
        let reply = self.call("multi", path, op::MULTI, body, None).await?;
        ops::decode_multi(&reply, operations)
    }

    /// Sends one request and waits for its reply body; a non-zero error code becomes
    /// the matching [`Error`] for `path`.
    async fn call(
        &self,
        op_name: &'static str,
        path: &str,
        opcode: i32,
        body: BytesMut,
        watch: Option<(WatchOn, crate::watches::WatchSender)>,
    ) -> Result<bytes::Bytes> {
        // The header (xid and type) takes 8 bytes of the packet.
        if body.len() + 8 > MAX_PACKET_LEN {
            return Err(Error::TooLarge {
                what: "request",
                path: path.to_string(),
                len: body.len() + 8,
                max: MAX_PACKET_LEN,
            });
        }
        let (reply_tx, reply_rx) = oneshot::channel();
        let request = Request {
            opcode,
            body: body.freeze(),
            reply: reply_tx,
            watch: watch.map(|(on, tx)| (on, path.to_string(), tx)),
        };
        if self.inner.commands.send(Command::Request(request)).is_err() {
            return Err(self.terminal_error());
        }
        let after = self.inner.request_timeout;
        let reply: Reply = match timeout(after, reply_rx).await {
            Err(_) => {
                return Err(Error::Timeout {
                    op: op_name,
                    path: path.to_string(),
                    after,
                })
            }
            Ok(Err(_)) => return Err(self.terminal_error()),
            Ok(Ok(result)) => result?,
        };
        // A multi whose operation failed comes back with code 0 and the failure among
        // its results; should a server also set the header's code, the results still
        // say more (which operation), so a multi with a body is always read.
        let multi_results = opcode == op::MULTI && !reply.body.is_empty();
        if reply.err != code::OK && !multi_results {
            return Err(Error::from_code(reply.err, path));
        }
        Ok(reply.body)
    }

    fn terminal_error(&self) -> Error {
        match self.state() {
            SessionState::Expired => Error::SessionExpired,
            _ => Error::Closed,
        }
    }
}

fn check_data(path: &str, data: &[u8]) -> Result<()> {
    if data.len() > MAX_DATA_LEN {
        return Err(Error::TooLarge {
            what: "data",
            path: path.to_string(),
            len: data.len(),
            max: MAX_DATA_LEN,
        });
    }
    Ok(())
}
