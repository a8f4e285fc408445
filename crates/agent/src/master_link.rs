//! The agent's side of Mantle's master-agent protocol (`mantle_api::internal`): register
//! with a POST whose answer is the master's message stream, send every other call as a
//! POST carrying the stream's id, and reconnect with backoff (random first delay up to
//! 1 s, doubling, capped at 1 min) when the stream ends, fails, or stays silent for five
//! ping intervals. Re-registration reports what the agent runs. With a `zk://` master the
//! leader is followed through ZooKeeper, and a change of leader reconnects at once.
//! A real agent makes one connection per registration: its REGISTER asks the master to
//! switch the connection to [`AGENT_UPGRADE`], after which the socket carries the
//! master's messages and the agent's calls as RecordIO, and is closed when the stream
//! ends (one open file in the master per agent, and no HTTP buffers kept there). Agents
//! of a simulated fleet connect the same way, or share one HTTP/2 connection per few
//! hundred agents and POST their calls over it, and bound their registrations and calls
//! in flight together ([`LinkOptions`]); tests cut a link through its [`LinkControl`].

use crate::core::Input;
use crate::event_loop::Command;
use bytes::Bytes;
use mantle_api::internal::{
    AgentCall, ToAgent, AGENT_API_PATH, AGENT_STREAM_HEADER, AGENT_UPGRADE,
};
use mantle_api::recordio::{self, Decoder};
use mantle_sdk::detect::MasterSource;
use mantle_sdk::http::{ClientError, HttpClient, RecordStream, UpgradedIo};
use rand::Rng;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};

/// The cap of the reconnection backoff.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How long a call or the start of the stream may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// The ping interval assumed when the master gives none that makes sense.
const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(15);
/// Pings that may be missed before the master counts as lost.
const MISSED_PINGS: u32 = 5;

/// How a link connects, beyond the master's address.
#[derive(Clone)]
pub(crate) struct LinkOptions {
    /// The client the links of a fleet share; `None` for a socket of the link's own,
    /// made anew for each registration.
    pub client: Option<HttpClient>,
    /// Bounds the registrations in flight of the agents that share it, so that many
    /// agents starting at once do not overflow the master's listen backlog.
    pub registering: Option<Arc<Semaphore>>,
    /// Bounds the calls in flight of the agents that share it (and so the connections
    /// their shared client opens).
    pub calls: Option<Arc<Semaphore>>,
    /// Cuts and restores the connection on demand.
    pub control: Option<watch::Receiver<LinkControl>>,
    /// The address the link's own socket leaves from; the system's choice when `None`.
    pub source: Option<std::net::IpAddr>,
}

impl LinkOptions {
    /// A link of its own, as a real agent has.
    pub fn single() -> LinkOptions {
        LinkOptions {
            client: None,
            registering: None,
            calls: None,
            control: None,
            source: None,
        }
    }

    /// A client whose one HTTP/2 connection carries the streams and calls of all the
    /// links that share it.
    pub fn multiplexed_client() -> HttpClient {
        HttpClient::http2(REQUEST_TIMEOUT)
    }
}

/// What the link's controller wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkControl {
    /// Connected; a new generation drops the current connection, which is then made
    /// again as after any lost connection.
    Up { generation: u64 },
    /// The connection is closed and not made again until the link is up.
    Down,
}

/// Where calls go.
#[derive(Clone)]
enum Connection {
    /// POSTed to the master with the current stream's id, by the shared client.
    Http {
        master: String,
        stream_id: String,
        client: HttpClient,
    },
    /// Written as RecordIO records to the link's own socket.
    Socket {
        master: String,
        socket: Arc<tokio::sync::Mutex<WriteHalf<UpgradedIo>>>,
    },
}

/// The master's messages, from an HTTP stream or from the link's socket.
enum MasterStream {
    Http(RecordStream),
    Socket {
        socket: ReadHalf<UpgradedIo>,
        decoder: Decoder,
    },
}

impl MasterStream {
    /// The next message; `Ok(None)` when the master closed the stream.
    async fn next_record(&mut self) -> Result<Option<Bytes>, LinkError> {
        match self {
            MasterStream::Http(stream) => Ok(stream.next_record().await?),
            MasterStream::Socket { socket, decoder } => loop {
                if let Some(record) = decoder
                    .next_record()
                    .map_err(|e| LinkError::Invalid(e.to_string()))?
                {
                    return Ok(Some(record));
                }
                if decoder.read_from(socket).await? == 0 {
                    return Ok(None);
                }
            },
        }
    }
}

/// Runs the link until the agent stops (the task is aborted then). `master` is
/// `host:port` or a `zk://` URL whose leader is followed.
pub(crate) async fn run(
    master: String,
    commands: mpsc::UnboundedSender<Command>,
    calls: mpsc::UnboundedReceiver<Box<AgentCall>>,
    mut options: LinkOptions,
) {
    let (connection_tx, connection_rx) = watch::channel(None);
    let sender = tokio::spawn(send_calls(connection_rx, calls, options.calls.clone()));
    // The sender ends with the link, which is aborted when the agent stops.
    let _sender = AbortOnDrop(sender);
    let mut source = match MasterSource::parse(&master) {
        Ok(source) => source,
        Err(err) => {
            tracing::error!(master = %master, error = %err, "cannot follow the master");
            return;
        }
    };
    let mut backoff: Option<Duration> = None;
    // A standby's answer names the leader: tried next, then the source again.
    let mut redirected: Option<String> = None;
    loop {
        wait_until_up(&mut options.control).await;
        let master = match redirected.take() {
            Some(leader) => leader,
            None => match source.wait(Duration::from_secs(3600)).await {
                Some(master) => master,
                None => continue,
            },
        };
        match connect(
            &master,
            &mut source,
            &commands,
            &connection_tx,
            &mut options,
        )
        .await
        {
            Ok(Session::Registered) => backoff = None,
            Ok(Session::Redirected(target)) => {
                tracing::info!(from = %master, to = %target, "master redirected to the leader");
                redirected = Some(target);
            }
            Ok(Session::Stopped) => return,
            Err(err) => {
                tracing::warn!(master = %master, error = %err, "cannot register with the master")
            }
        }
        if connection_tx.send_replace(None).is_some() {
            let _ = commands.send(Command::input(Input::Disconnected));
        }
        let delay = match backoff {
            None => Duration::from_secs_f64(rand::rng().random_range(0.0..1.0)),
            Some(previous) => (previous * 2).clamp(Duration::from_millis(100), MAX_BACKOFF),
        };
        backoff = Some(delay);
        tracing::debug!(
            delay_ms = delay.as_millis() as u64,
            "reconnecting to the master"
        );
        tokio::time::sleep(delay).await;
    }
}

/// How a connection ended, when not with an error.
enum Session {
    /// Registered, then lost the master.
    Registered,
    /// A standby named the leader.
    Redirected(String),
    /// The agent is stopping.
    Stopped,
}

#[derive(Debug, thiserror::Error)]
enum LinkError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("the connection to the master failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("the answer has no {AGENT_STREAM_HEADER} header")]
    NoStreamId,
    #[error("the stream ended before the master answered")]
    Closed,
    #[error("expected REGISTERED first, got {0}")]
    NotRegistered(String),
    #[error("invalid message from the master: {0}")]
    Invalid(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

async fn connect(
    master: &str,
    source: &mut MasterSource,
    commands: &mpsc::UnboundedSender<Command>,
    connection: &watch::Sender<Option<Connection>>,
    options: &mut LinkOptions,
) -> Result<Session, LinkError> {
    let (reply, answer) = oneshot::channel();
    if commands.send(Command::RegisterCall(reply)).is_err() {
        return Ok(Session::Stopped);
    }
    let Ok(register) = answer.await else {
        return Ok(Session::Stopped);
    };
    let url = format!("http://{master}{AGENT_API_PATH}");
    let reregister = register.agent_info.id.is_some();
    let body =
        mantle_api::json::to_ascii_json(&AgentCall::Register(register.without_task_executors()));
    // Held until the master's first message arrives, or the attempt fails.
    let permit = match &options.registering {
        Some(gate) => gate.clone().acquire_owned().await.ok(),
        None => None,
    };
    // A socket of the link's own ends with the stream: the calls' clone of its writing
    // half goes when the connection is replaced, and the reading half when this returns.
    let answer = match &options.client {
        Some(client) => client
            .stream(&url, body, &[])
            .await
            .map(|(headers, stream)| {
                let calls = Connection::Http {
                    master: master.to_string(),
                    stream_id: String::new(),
                    client: client.clone(),
                };
                (headers, MasterStream::Http(stream), calls)
            }),
        None => {
            mantle_sdk::http::upgrade(&url, body, AGENT_UPGRADE, REQUEST_TIMEOUT, options.source)
                .await
                .map(|(headers, socket)| {
                    let (read, write) = tokio::io::split(socket);
                    let stream = MasterStream::Socket {
                        socket: read,
                        decoder: Decoder::default(),
                    };
                    let calls = Connection::Socket {
                        master: master.to_string(),
                        socket: Arc::new(tokio::sync::Mutex::new(write)),
                    };
                    (headers, stream, calls)
                })
        }
    };
    let (headers, mut stream, mut calls) = match answer {
        Ok(answer) => answer,
        Err(err) => match err.redirect_target() {
            Some(target) if !target.is_empty() => return Ok(Session::Redirected(target)),
            _ => return Err(err.into()),
        },
    };
    let stream_id = headers
        .get(AGENT_STREAM_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or(LinkError::NoStreamId)?;
    if let Connection::Http { stream_id: id, .. } = &mut calls {
        *id = stream_id;
    }
    let first = tokio::time::timeout(REQUEST_TIMEOUT, stream.next_record())
        .await
        .map_err(|_| LinkError::Timeout(REQUEST_TIMEOUT))??
        .ok_or(LinkError::Closed)?;
    drop(permit);
    let registered = match serde_json::from_slice::<ToAgent>(&first) {
        Ok(ToAgent::Registered(registered)) => registered,
        Ok(other) => return Err(LinkError::NotRegistered(format!("{other:?}"))),
        Err(err) => return Err(LinkError::Invalid(err.to_string())),
    };
    let ping = Duration::try_from_secs_f64(registered.ping_interval_seconds)
        .ok()
        .filter(|d| !d.is_zero())
        .unwrap_or(DEFAULT_PING_INTERVAL);
    let silence = ping * MISSED_PINGS;
    tracing::info!(master = %master, agent_id = %registered.agent_id, reregister, "connected to the master");
    connection.send_replace(Some(calls));
    let input = Input::Registered {
        agent_id: registered.agent_id,
        master_info: registered.master_info,
    };
    if commands.send(Command::input(input)).is_err() {
        return Ok(Session::Stopped);
    }
    loop {
        let next = tokio::select! {
            next = tokio::time::timeout(silence, stream.next_record()) => next,
            // Another master leads now: this one will close the stream, or is cut off.
            _ = source.changed() => {
                if source.current().is_some_and(|leader| leader != master) {
                    tracing::info!(master = %master, leader = ?source.current(), "a new master leads; reconnecting");
                    return Ok(Session::Registered);
                }
                continue;
            }
            // The controller cut the link, or asked for a new connection.
            _ = control_changed(&mut options.control) => {
                tracing::info!(master = %master, "the link was cut; closing the connection to the master");
                return Ok(Session::Registered);
            }
        };
        let record = match next {
            Err(_) => {
                tracing::warn!(master = %master, silence_secs = silence.as_secs_f64(), "no message from the master; reconnecting");
                return Ok(Session::Registered);
            }
            Ok(Err(err)) => {
                tracing::warn!(master = %master, error = %err, "master stream failed; reconnecting");
                return Ok(Session::Registered);
            }
            Ok(Ok(None)) => {
                tracing::warn!(master = %master, "master closed the stream; reconnecting");
                return Ok(Session::Registered);
            }
            Ok(Ok(Some(record))) => record,
        };
        match serde_json::from_slice::<ToAgent>(&record) {
            Ok(ToAgent::Shutdown(shutdown)) => {
                // A gone agent must not come back: its executors stop and the link ends.
                let input = Input::Master(Box::new(ToAgent::Shutdown(shutdown)));
                let _ = commands.send(Command::input(input));
                return Ok(Session::Stopped);
            }
            Ok(message) => {
                if commands
                    .send(Command::input(Input::Master(Box::new(message))))
                    .is_err()
                {
                    return Ok(Session::Stopped);
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "ignoring a message from the master that cannot be read")
            }
        }
    }
}

/// Calls sent together in one request at most, and the size past which a request
/// takes no more (a status update may carry up to megabytes of data; the master takes
/// bodies of up to 16 MB).
const CALLS_PER_REQUEST: usize = 64;
const REQUEST_BYTES: usize = 1 << 20;

/// Sends calls one request after another, so that the master sees them in order; the
/// calls waiting when a request leaves go together, as a JSON array (a task's
/// TASK_STARTING and TASK_RUNNING, or the updates of many tasks launched at once, cost
/// one request instead of one each). Calls made while there is no connection are
/// dropped: status updates are resent after re-registration, and the rest is reported
/// in it.
async fn send_calls(
    mut connection: watch::Receiver<Option<Connection>>,
    mut calls: mpsc::UnboundedReceiver<Box<AgentCall>>,
    gate: Option<Arc<Semaphore>>,
) {
    let mut batch = Vec::with_capacity(CALLS_PER_REQUEST);
    while calls.recv_many(&mut batch, CALLS_PER_REQUEST).await > 0 {
        let _permit = match &gate {
            Some(gate) => gate.acquire().await.ok(),
            None => None,
        };
        let Some(current) = connection.borrow_and_update().clone() else {
            tracing::debug!(
                calls = batch.len(),
                "not connected to the master; dropping calls"
            );
            batch.clear();
            continue;
        };
        for body in request_bodies(batch.drain(..)) {
            match &current {
                Connection::Http {
                    master,
                    stream_id,
                    client,
                } => {
                    let url = format!("http://{master}{AGENT_API_PATH}");
                    let headers = [(AGENT_STREAM_HEADER, stream_id.clone())];
                    if let Err(err) = client.post(&url, body, &headers).await {
                        tracing::warn!(master = %master, error = %err, "call to the master failed");
                    }
                }
                Connection::Socket { master, socket } => {
                    let sent = tokio::select! {
                        sent = write_record(socket, &body) => sent.map_err(|err| err.to_string()),
                        // A socket the master does not read waits, unless the link gives
                        // it up (silence, a cut, a new leader): its calls go with it.
                        _ = connection.changed() => Err("the connection was closed".to_string()),
                    };
                    if let Err(err) = sent {
                        // The socket is gone or cut mid-record: the batch's other calls
                        // cannot follow on it.
                        tracing::warn!(master = %master, error = %err, "calls to the master failed");
                        break;
                    }
                }
            }
        }
    }
}

/// Writes one RecordIO record to the socket.
async fn write_record(
    socket: &tokio::sync::Mutex<WriteHalf<UpgradedIo>>,
    body: &[u8],
) -> std::io::Result<()> {
    let mut socket = socket.lock().await;
    socket.write_all(&recordio::encode(body)).await
}

/// The bodies of the requests carrying `calls` in order: a call alone as itself, calls
/// together as a JSON array of at most about [`REQUEST_BYTES`].
fn request_bodies(calls: impl IntoIterator<Item = Box<AgentCall>>) -> Vec<Vec<u8>> {
    let mut groups: Vec<Vec<Vec<u8>>> = Vec::new();
    let mut size = 0;
    for call in calls {
        let json = mantle_api::json::to_ascii_json(&call);
        match groups.last_mut() {
            Some(group) if size + json.len() <= REQUEST_BYTES => {
                size += json.len() + 1;
                group.push(json);
            }
            _ => {
                size = json.len() + 1;
                groups.push(vec![json]);
            }
        }
    }
    groups
        .into_iter()
        .map(|mut group| match group.len() {
            1 => group.pop().expect("one call"),
            _ => {
                let mut body = b"[".to_vec();
                body.extend_from_slice(&group.join(&b","[..]));
                body.push(b']');
                body
            }
        })
        .collect()
}

/// Waits while the controller holds the link down.
async fn wait_until_up(control: &mut Option<watch::Receiver<LinkControl>>) {
    if let Some(control) = control {
        // A controller that is gone leaves the link as it is.
        let _ = control
            .wait_for(|state| matches!(state, LinkControl::Up { .. }))
            .await;
        control.mark_unchanged();
    }
}

/// Completes when the controller changes its mind; never without a controller.
async fn control_changed(control: &mut Option<watch::Receiver<LinkControl>>) {
    match control {
        Some(control) => {
            if control.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending::<()>().await,
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::Request;
    use axum::http::StatusCode;
    use axum::response::Response;
    use mantle_api::internal::ExecutorMessage;

    fn message(bytes: usize) -> Box<AgentCall> {
        Box::new(AgentCall::ExecutorMessage(ExecutorMessage {
            framework_id: "f".into(),
            executor_id: "e".into(),
            data: "x".repeat(bytes),
        }))
    }

    #[test]
    fn waiting_calls_share_requests_in_order_and_within_the_size() {
        let decode = |body: &[u8]| -> Vec<AgentCall> {
            match body.first() {
                Some(b'[') => serde_json::from_slice(body).unwrap(),
                _ => vec![serde_json::from_slice(body).unwrap()],
            }
        };
        // Alone, a call is sent as itself.
        let bodies = request_bodies([Box::new(AgentCall::Pong)]);
        assert_eq!(bodies, [br#"{"type":"PONG"}"#.to_vec()]);
        // Small calls go together; large ones split the requests, in order.
        let calls = vec![
            Box::new(AgentCall::Pong),
            message(10),
            message(REQUEST_BYTES / 2),
            message(REQUEST_BYTES / 2),
            Box::new(AgentCall::Pong),
        ];
        let bodies = request_bodies(calls.clone());
        assert_eq!(bodies.len(), 2);
        assert!(bodies.iter().all(|b| b.len() <= REQUEST_BYTES + 100));
        let sent: Vec<AgentCall> = bodies.iter().flat_map(|b| decode(b)).collect();
        let calls: Vec<AgentCall> = calls.into_iter().map(|c| *c).collect();
        assert_eq!(sent, calls);
    }

    /// A master end that switches every request to a socket and then reads nothing
    /// (`records` is `None`) or sends each record it reads to `records`.
    async fn socket_server(records: Option<mpsc::UnboundedSender<Bytes>>) -> String {
        let app = axum::Router::new().fallback(move |mut request: Request| {
            let records = records.clone();
            async move {
                let upgrade = request
                    .extensions_mut()
                    .remove::<hyper::upgrade::OnUpgrade>()
                    .unwrap();
                tokio::spawn(async move {
                    let mut socket = hyper_util::rt::TokioIo::new(upgrade.await.unwrap());
                    let Some(records) = records else {
                        return std::future::pending().await;
                    };
                    let mut decoder = Decoder::default();
                    while let Ok(1..) = decoder.read_from(&mut socket).await {
                        while let Ok(Some(record)) = decoder.next_record() {
                            let _ = records.send(record);
                        }
                    }
                });
                Response::builder()
                    .status(StatusCode::SWITCHING_PROTOCOLS)
                    .header("connection", "upgrade")
                    .header("upgrade", AGENT_UPGRADE)
                    .body(axum::body::Body::empty())
                    .unwrap()
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        address
    }

    async fn socket_to(master: &str) -> Connection {
        let url = format!("http://{master}{AGENT_API_PATH}");
        let (_, socket) =
            mantle_sdk::http::upgrade(&url, b"{}".to_vec(), AGENT_UPGRADE, REQUEST_TIMEOUT, None)
                .await
                .unwrap();
        let (_, write) = tokio::io::split(socket);
        Connection::Socket {
            master: master.to_string(),
            socket: Arc::new(tokio::sync::Mutex::new(write)),
        }
    }

    /// A call blocked on a socket the master does not read waits for it, is given up
    /// when the link drops that connection, and the next calls go on the next one.
    #[tokio::test]
    async fn a_blocked_call_is_given_up_with_its_connection() {
        let stuck = socket_server(None).await;
        let (records_tx, mut records) = mpsc::unbounded_channel();
        let reading = socket_server(Some(records_tx)).await;
        let (connection_tx, connection_rx) = watch::channel(Some(socket_to(&stuck).await));
        let (calls_tx, calls_rx) = mpsc::unbounded_channel();
        let _sender = AbortOnDrop(tokio::spawn(send_calls(connection_rx, calls_rx, None)));
        // More than both ends' socket buffers hold (at most 4 and 32 MB here): the
        // write cannot finish while the master does not read.
        calls_tx.send(message(64 << 20)).unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        connection_tx.send_replace(Some(socket_to(&reading).await));
        calls_tx.send(message(5)).unwrap();
        let record = tokio::time::timeout(Duration::from_secs(10), records.recv())
            .await
            .expect("the next call reaches the new connection")
            .unwrap();
        let call: AgentCall = serde_json::from_slice(&record).unwrap();
        assert_eq!(call, *message(5));
    }
}
