//! The scheduler client: subscribes a framework to the master's v1 scheduler API
//! (`POST /api/v1/scheduler`, reference §1), follows the leading master through 307
//! redirects, keeps the subscription alive and sends calls.
//!
//! [`Scheduler::subscribe`] opens the event stream and waits for SUBSCRIBED. A background
//! task then reads the stream and forwards its events to [`SchedulerEvents`]. When the
//! stream ends, or no record (heartbeats included) arrives within five heartbeat
//! intervals, the task reports [`SchedulerEvent::Disconnected`] and resubscribes with the
//! same framework id, with jittered exponential backoff, as reference §1.4 asks of
//! clients. An ERROR event, a TEARDOWN, or running out of retries ends the stream.
//!
//! Calls go over their own connections (over HTTP/1.1; with [`SubscribeOptions::http2`]
//! they share the stream's) with `Content-Type: application/json`, the framework id and
//! the `Mesos-Stream-Id` of the current subscription.

use crate::detect::MasterSource;
use crate::http::{ClientError, HttpClient, RecordStream};
use base64::Engine;
use mantle_api::json::to_ascii_json;
use mantle_api::scheduler::{
    Accept, Acknowledge, Call, Decline, ErrorEvent, Event, FrameworkMessage, Kill, Reconcile,
    ReconcileTask, Roles, Shutdown, Subscribe, Subscribed,
};
use mantle_api::{
    AgentId, ExecutorId, Filters, FrameworkId, FrameworkInfo, OfferId, Operation, TaskId, TaskInfo,
    TaskStatus,
};
use rand::Rng;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// The header that ties calls to the subscription they belong to.
pub const STREAM_ID_HEADER: &str = "Mesos-Stream-Id";

/// The heartbeat interval Mesos masters use, assumed until SUBSCRIBED says otherwise.
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(15);

/// How many 307 hops one subscription attempt follows before it counts as failed (the
/// leader is moving, or two masters point at each other).
const MAX_REDIRECTS: usize = 8;

/// Events buffered between the stream reader and the framework.
const EVENT_BUFFER: usize = 256;

/// How the client keeps its subscription alive.
#[derive(Clone, Debug, PartialEq)]
pub struct SubscribeOptions {
    /// How long to keep trying to subscribe, counted from the first attempt (for the
    /// initial subscription) or from the disconnection (for a resubscription). After
    /// that the error is returned, or the event stream ends. Default 15 minutes.
    pub give_up_after: Duration,
    /// The first retry delay; each further retry doubles it. Default 1 s.
    pub initial_backoff: Duration,
    /// The largest retry delay. Default 30 s.
    pub max_backoff: Duration,
    /// How many heartbeat intervals may pass without a record before the connection
    /// counts as lost. Default 5.
    pub missed_heartbeats: u32,
    /// The time limit of one call, and of the answer headers of a SUBSCRIBE. Default 30 s.
    pub request_timeout: Duration,
    /// Talk HTTP/2 (h2c with prior knowledge, which a Mantle master speaks beside
    /// HTTP/1.1): the event stream and every call share one connection. Masters that
    /// speak only HTTP/1.1 (Apache Mesos) refuse it. Default false.
    pub http2: bool,
}

impl Default for SubscribeOptions {
    fn default() -> Self {
        SubscribeOptions {
            give_up_after: Duration::from_secs(15 * 60),
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            missed_heartbeats: 5,
            request_timeout: Duration::from_secs(30),
            http2: false,
        }
    }
}

/// What the framework sees on its event stream.
// Events are moved through a channel one at a time; boxing the common case to shrink the
// rare ones would cost an allocation per event.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum SchedulerEvent {
    /// A subscription (the first or a later one) was accepted. `master` is the
    /// `host:port` of the leading master. The SUBSCRIBED event itself follows as
    /// [`SchedulerEvent::Event`].
    Connected {
        framework_id: FrameworkId,
        master: String,
    },
    /// The subscription was lost (or, as the last event before the stream ends, the
    /// client gave up resubscribing). Calls fail until the next `Connected`.
    Disconnected { reason: String },
    /// An event from the master, in stream order, heartbeats included.
    Event(Event),
}

/// A call ready to send: its URL, body and headers.
type Encoded = (String, Vec<u8>, Vec<(&'static str, String)>);

/// Where the framework is in its life, as the stream reader needs to know it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Running,
    /// A TEARDOWN is on its way: the master closing the stream is expected.
    TearingDown,
    /// The framework is gone: the reader stops.
    Stopped,
}

struct State {
    /// The master the user named (or the leader its `zk://` URL names now); tried again
    /// when the last leader cannot be reached.
    seed: MasterSource,
    /// The master that accepted the last subscription (or the seed before one did).
    leader: String,
    /// Carries the framework id once the master assigned one.
    framework_info: FrameworkInfo,
    stream_id: Option<String>,
}

struct Shared {
    http: HttpClient,
    options: SubscribeOptions,
    state: Mutex<State>,
    phase: watch::Sender<Phase>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // Every holder leaves the state consistent (plain field assignments), so a
        // panicked holder does not make it unusable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A handle for sending calls on behalf of a subscribed framework. Cheap to clone.
#[derive(Clone)]
pub struct Scheduler {
    shared: Arc<Shared>,
}

/// The typed event stream of a subscription; see [`SchedulerEvent`].
pub struct SchedulerEvents {
    events: mpsc::Receiver<SchedulerEvent>,
    reader: tokio::task::AbortHandle,
}

impl SchedulerEvents {
    /// The next event. `None` only after a TEARDOWN, an ERROR event, or once the client
    /// gave up resubscribing (the last event is then a `Disconnected` saying so).
    pub async fn next(&mut self) -> Option<SchedulerEvent> {
        self.events.recv().await
    }
}

impl Drop for SchedulerEvents {
    fn drop(&mut self) {
        // Nobody reads the events any more: close the subscription.
        self.reader.abort();
    }
}

/// One accepted subscription.
struct Subscription {
    master: String,
    stream: RecordStream,
    subscribed: Subscribed,
}

enum Outcome {
    Subscribed(Box<Subscription>),
    /// The master answered the SUBSCRIBE with an ERROR event.
    Refused(String),
}

impl Scheduler {
    /// Subscribes `framework_info` (a new framework when it has no `id`, a failover
    /// otherwise) to the master at `master` (`host:port`, `http://host:port` also
    /// accepted) with the default [`SubscribeOptions`].
    pub async fn subscribe(
        master: &str,
        framework_info: FrameworkInfo,
    ) -> Result<(Scheduler, SchedulerEvents), ClientError> {
        Self::subscribe_with(master, framework_info, SubscribeOptions::default()).await
    }

    /// Like [`Scheduler::subscribe`], with explicit options. Returns once the master
    /// answered SUBSCRIBED; the event stream starts with `Connected` and that SUBSCRIBED.
    /// Redirects are followed; unreachable masters and 5xx answers are retried with
    /// backoff for up to `give_up_after`; 4xx answers fail at once, and so does an ERROR
    /// event in answer to the SUBSCRIBE ([`ClientError::Request`] naming its message).
    pub async fn subscribe_with(
        master: &str,
        framework_info: FrameworkInfo,
        options: SubscribeOptions,
    ) -> Result<(Scheduler, SchedulerEvents), ClientError> {
        let mut seed = match MasterSource::parse(master)? {
            MasterSource::Fixed(master) => MasterSource::Fixed(normalize_master(&master)?),
            zk => zk,
        };
        let master = seed.wait(options.give_up_after).await.ok_or_else(|| {
            ClientError::Request(format!("no leading master is known at {master}"))
        })?;
        let (phase, phase_rx) = watch::channel(Phase::Running);
        let shared = Arc::new(Shared {
            http: if options.http2 {
                HttpClient::http2(options.request_timeout)
            } else {
                HttpClient::new(options.request_timeout)
            },
            options,
            state: Mutex::new(State {
                seed,
                leader: master,
                framework_info,
                stream_id: None,
            }),
            phase,
        });
        let subscription = match subscribe_with_retries(&shared, false).await? {
            Outcome::Subscribed(subscription) => *subscription,
            Outcome::Refused(message) => {
                return Err(ClientError::Request(format!(
                    "the master refused the subscription: {message}"
                )))
            }
        };
        let (tx, rx) = mpsc::channel(EVENT_BUFFER);
        for event in connected_events(&subscription) {
            // The channel is fresh and larger than two events.
            let _ = tx.try_send(event);
        }
        let reader = tokio::spawn(read_events(shared.clone(), subscription, tx, phase_rx));
        let events = SchedulerEvents {
            events: rx,
            reader: reader.abort_handle(),
        };
        Ok((Scheduler { shared }, events))
    }

    /// The id the master assigned to this framework.
    pub fn framework_id(&self) -> Option<FrameworkId> {
        self.shared.state().framework_info.id.clone()
    }

    /// Sends a call to the leading master: fills in `framework_id` when it is unset and
    /// sends the current `Mesos-Stream-Id`. Any 2xx is success; a 307 is
    /// [`ClientError::Redirect`], any other answer [`ClientError::Status`].
    ///
    /// The call is encoded at once; the future that sends it holds only its bytes (a
    /// `Call` is over a kilobyte, and a framework may have many calls in flight).
    pub fn call(&self, call: Call) -> impl Future<Output = Result<(), ClientError>> + Send + '_ {
        self.send_encoded(self.encode(call).map(Some))
    }

    /// Sends an encoded call; none is nothing to send.
    async fn send_encoded(
        &self,
        encoded: Result<Option<Encoded>, ClientError>,
    ) -> Result<(), ClientError> {
        let Some((url, body, headers)) = encoded? else {
            return Ok(());
        };
        self.shared.http.post(&url, body, &headers).await?;
        Ok(())
    }

    /// The URL, body and headers of a call to the current leader.
    fn encode(&self, call: Call) -> Result<Encoded, ClientError> {
        if call.kind.as_deref() == Some("SUBSCRIBE") {
            return Err(ClientError::Request(
                "SUBSCRIBE is sent by Scheduler::subscribe, not by call".into(),
            ));
        }
        let state = self.shared.state();
        let body = encode_call(call, state.framework_info.id.as_ref());
        let headers = state
            .stream_id
            .iter()
            .map(|id| (STREAM_ID_HEADER, id.clone()))
            .collect();
        Ok((scheduler_url(&state.leader), body, headers))
    }

    /// ACCEPT: runs `operations` on the offers; what they leave unused is declined with
    /// `filters`.
    pub fn accept(
        &self,
        offer_ids: Vec<OfferId>,
        operations: Vec<Operation>,
        filters: Option<Filters>,
    ) -> impl Future<Output = Result<(), ClientError>> + Send + '_ {
        self.call(accept_call(offer_ids, operations, filters))
    }

    /// ACCEPT with one LAUNCH operation.
    pub fn launch(
        &self,
        offer_id: OfferId,
        tasks: Vec<TaskInfo>,
        filters: Option<Filters>,
    ) -> impl Future<Output = Result<(), ClientError>> + Send + '_ {
        self.accept(vec![offer_id], vec![Operation::launch(tasks)], filters)
    }

    pub fn decline(
        &self,
        offer_ids: Vec<OfferId>,
        filters: Option<Filters>,
    ) -> impl Future<Output = Result<(), ClientError>> + Send + '_ {
        self.call(decline_call(offer_ids, filters))
    }

    /// REVIVE for `roles` (all of the framework's roles when empty).
    pub fn revive(
        &self,
        roles: Vec<String>,
    ) -> impl Future<Output = Result<(), ClientError>> + Send + '_ {
        self.call(roles_call("REVIVE", roles))
    }

    /// SUPPRESS for `roles` (all of the framework's roles when empty).
    pub fn suppress(
        &self,
        roles: Vec<String>,
    ) -> impl Future<Output = Result<(), ClientError>> + Send + '_ {
        self.call(roles_call("SUPPRESS", roles))
    }

    pub fn kill(
        &self,
        task_id: TaskId,
        agent_id: Option<AgentId>,
    ) -> impl Future<Output = Result<(), ClientError>> + Send + '_ {
        self.call(kill_call(task_id, agent_id))
    }

    /// SHUTDOWN of an executor.
    pub fn shutdown_executor(
        &self,
        executor_id: ExecutorId,
        agent_id: AgentId,
    ) -> impl Future<Output = Result<(), ClientError>> + Send + '_ {
        self.call(shutdown_call(executor_id, agent_id))
    }

    /// ACKNOWLEDGE of a status update. Updates without a `uuid` (those the master made
    /// up) must not be acknowledged, so for them this does nothing.
    pub fn acknowledge(
        &self,
        status: &TaskStatus,
    ) -> impl Future<Output = Result<(), ClientError>> + Send + '_ {
        let encoded = acknowledge_call(status)
            .and_then(|call| call.map(|call| self.encode(call)).transpose());
        self.send_encoded(encoded)
    }

    /// RECONCILE of the given tasks; an empty list asks for every task (implicit
    /// reconciliation).
    pub fn reconcile(
        &self,
        tasks: Vec<(TaskId, Option<AgentId>)>,
    ) -> impl Future<Output = Result<(), ClientError>> + Send + '_ {
        self.call(reconcile_call(tasks))
    }

    /// MESSAGE to an executor (best effort; the bytes go out base64 encoded).
    pub fn message(
        &self,
        agent_id: AgentId,
        executor_id: ExecutorId,
        data: &[u8],
    ) -> impl Future<Output = Result<(), ClientError>> + Send + '_ {
        self.call(message_call(agent_id, executor_id, data))
    }

    /// TEARDOWN: the master removes the framework, kills its tasks and closes the
    /// stream, which then ends without a `Disconnected`.
    pub async fn teardown(&self) -> Result<(), ClientError> {
        // The master may close the stream before its answer to TEARDOWN arrives; the
        // reader must take that for the end, not for a lost connection. It must not
        // close the stream itself before then, either: the master would take that for a
        // disconnection and refuse the TEARDOWN.
        self.shared.phase.send_replace(Phase::TearingDown);
        let result = self.call(Call::new(None, "TEARDOWN")).await;
        self.shared.phase.send_modify(|phase| {
            if *phase == Phase::TearingDown {
                *phase = if result.is_ok() {
                    Phase::Stopped
                } else {
                    Phase::Running
                };
            }
        });
        result
    }
}

/// Accepts `host:port`, `http://host:port` and `http://host:port/`; adds the default
/// master port 5050 when none is given.
pub fn normalize_master(master: &str) -> Result<String, ClientError> {
    let rest = master
        .trim()
        .trim_start_matches("http://")
        .trim_start_matches("//");
    let host_port = rest.split('/').next().unwrap_or_default();
    if host_port.is_empty() {
        return Err(ClientError::Request(format!(
            "master address {master:?} has no host"
        )));
    }
    if host_port.contains(':') {
        Ok(host_port.to_string())
    } else {
        Ok(format!("{host_port}:5050"))
    }
}

fn scheduler_url(master: &str) -> String {
    format!("http://{master}/api/v1/scheduler")
}

/// The JSON body of a call, with the framework id filled in when the call has none.
fn encode_call(mut call: Call, framework_id: Option<&FrameworkId>) -> Vec<u8> {
    if call.framework_id.is_none() {
        call.framework_id = framework_id.cloned();
    }
    to_ascii_json(&call)
}

/// SUBSCRIBE; a framework that has an id carries it at the top level too, as Mesos
/// requires the two to match.
fn subscribe_call(framework_info: FrameworkInfo) -> Call {
    let mut call = Call::new(framework_info.id.clone(), "SUBSCRIBE");
    call.subscribe = Some(Subscribe {
        framework_info,
        suppressed_roles: Vec::new(),
        offer_constraints: None,
    });
    call
}

fn accept_call(
    offer_ids: Vec<OfferId>,
    operations: Vec<Operation>,
    filters: Option<Filters>,
) -> Call {
    let mut call = Call::new(None, "ACCEPT");
    call.accept = Some(Accept {
        offer_ids,
        operations,
        filters,
    });
    call
}

fn decline_call(offer_ids: Vec<OfferId>, filters: Option<Filters>) -> Call {
    let mut call = Call::new(None, "DECLINE");
    call.decline = Some(Decline { offer_ids, filters });
    call
}

/// REVIVE or SUPPRESS. With no roles the body is left out, as pymesos does; Mesos reads
/// both forms as "all roles".
fn roles_call(kind: &str, roles: Vec<String>) -> Call {
    let mut call = Call::new(None, kind);
    let body = (!roles.is_empty()).then_some(Roles { roles });
    match kind {
        "REVIVE" => call.revive = body,
        _ => call.suppress = body,
    }
    call
}

fn kill_call(task_id: TaskId, agent_id: Option<AgentId>) -> Call {
    let mut call = Call::new(None, "KILL");
    call.kill = Some(Kill {
        task_id,
        agent_id,
        kill_policy: None,
    });
    call
}

fn shutdown_call(executor_id: ExecutorId, agent_id: AgentId) -> Call {
    let mut call = Call::new(None, "SHUTDOWN");
    call.shutdown = Some(Shutdown {
        executor_id,
        agent_id,
    });
    call
}

/// ACKNOWLEDGE for an update, `None` when it carries no uuid.
fn acknowledge_call(status: &TaskStatus) -> Result<Option<Call>, ClientError> {
    let Some(uuid) = &status.uuid else {
        return Ok(None);
    };
    let Some(agent_id) = &status.agent_id else {
        return Err(ClientError::Request(format!(
            "cannot acknowledge the update of task {}: it has a uuid but no agent_id",
            status.task_id
        )));
    };
    let mut call = Call::new(None, "ACKNOWLEDGE");
    call.acknowledge = Some(Acknowledge {
        agent_id: agent_id.clone(),
        task_id: status.task_id.clone(),
        uuid: uuid.clone(),
    });
    Ok(Some(call))
}

fn reconcile_call(tasks: Vec<(TaskId, Option<AgentId>)>) -> Call {
    let mut call = Call::new(None, "RECONCILE");
    let tasks = tasks
        .into_iter()
        .map(|(task_id, agent_id)| ReconcileTask { task_id, agent_id })
        .collect();
    call.reconcile = Some(Reconcile { tasks });
    call
}

fn message_call(agent_id: AgentId, executor_id: ExecutorId, data: &[u8]) -> Call {
    let mut call = Call::new(None, "MESSAGE");
    let data = base64::engine::general_purpose::STANDARD.encode(data);
    call.message = Some(FrameworkMessage {
        agent_id,
        executor_id,
        data,
    });
    call
}

/// What a new subscription puts on the event stream.
fn connected_events(subscription: &Subscription) -> [SchedulerEvent; 2] {
    [
        SchedulerEvent::Connected {
            framework_id: subscription.subscribed.framework_id.clone(),
            master: subscription.master.clone(),
        },
        SchedulerEvent::Event(Event::Subscribed(subscription.subscribed.clone())),
    ]
}

/// How long the stream may stay silent before the connection counts as lost.
fn liveness_timeout(heartbeat: Duration, missed_heartbeats: u32) -> Duration {
    heartbeat.saturating_mul(missed_heartbeats.max(1))
}

fn heartbeat_of(subscribed: &Subscribed) -> Duration {
    match subscribed.heartbeat_interval_seconds {
        Some(secs) if secs.is_finite() && secs > 0.0 => Duration::from_secs_f64(secs.min(86400.0)),
        _ => DEFAULT_HEARTBEAT,
    }
}

/// Failures worth another attempt: the master is unreachable, slow, failing over (5xx,
/// redirect loops) or sent a broken stream. A 4xx or a bad request will not get better.
fn is_retryable(error: &ClientError) -> bool {
    match error {
        ClientError::Connect { .. }
        | ClientError::Http2 { .. }
        | ClientError::Http1 { .. }
        | ClientError::Timeout { .. }
        | ClientError::Body { .. }
        | ClientError::Decode { .. }
        | ClientError::Redirect { .. } => true,
        ClientError::Status { status, .. } => status.is_server_error(),
        ClientError::Request(_) => false,
    }
}

/// Retry delays: the n-th is drawn uniformly from the upper half of
/// `min(initial * 2^n, max)`, so that frameworks cut off together do not come back
/// together.
struct Backoff {
    next: Duration,
    max: Duration,
}

/// A newly elected master takes a moment to take office (it loads the registry): the
/// retries towards it start this short.
const ELECTED_BACKOFF: Duration = Duration::from_millis(100);

impl Backoff {
    fn new(options: &SubscribeOptions) -> Self {
        Self::starting_at(options.initial_backoff, options)
    }

    fn starting_at(first: Duration, options: &SubscribeOptions) -> Self {
        Backoff {
            next: first,
            max: options.max_backoff.max(first),
        }
    }

    fn next_delay(&mut self) -> Duration {
        let cap = self.next.min(self.max);
        self.next = cap.saturating_mul(2);
        jitter(cap / 2, cap)
    }
}

fn jitter(low: Duration, high: Duration) -> Duration {
    if high <= low {
        return high;
    }
    let low = u64::try_from(low.as_millis()).unwrap_or(u64::MAX);
    let high = u64::try_from(high.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rand::rng().random_range(low..=high))
}

/// Subscribes, retrying what [`is_retryable`] allows for up to `give_up_after`.
/// A resubscription waits a random part of the initial backoff first, so that many
/// frameworks losing the same master do not all come back at the same instant.
async fn subscribe_with_retries(
    shared: &Shared,
    resubscribing: bool,
) -> Result<Outcome, ClientError> {
    let options = &shared.options;
    let started = Instant::now();
    let mut backoff = Backoff::new(options);
    // A leader elected while waiting ends the wait: it is where to go now.
    let mut election = shared.state().seed.clone();
    if resubscribing {
        tokio::select! {
            _ = tokio::time::sleep(jitter(Duration::ZERO, options.initial_backoff)) => {}
            _ = election.changed() => {}
        }
    }
    let mut attempt = 0usize;
    loop {
        let error = match subscribe_once(shared, attempt).await {
            Ok(outcome) => return Ok(outcome),
            Err(error) if is_retryable(&error) => error,
            Err(error) => return Err(error),
        };
        attempt += 1;
        let delay = backoff.next_delay();
        if started.elapsed() + delay > options.give_up_after {
            tracing::error!(error = %error, attempts = attempt, "giving up subscribing");
            return Err(error);
        }
        tracing::warn!(error = %error, retry_in = ?delay, "subscribing failed; retrying");
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = election.changed() => {
                backoff = Backoff::starting_at(ELECTED_BACKOFF.min(options.initial_backoff), options);
            }
        }
    }
}

/// One SUBSCRIBE, following redirects. An elected leader is always tried first; with
/// a fixed master, odd attempts start from the master the user named rather than the
/// last leader, which may be gone for good while the named master knows the new one.
async fn subscribe_once(shared: &Shared, attempt: usize) -> Result<Outcome, ClientError> {
    let (mut master, framework_info) = {
        let state = shared.state();
        let from_seed = state.seed.is_elected() || attempt & 1 == 1;
        let start = match state.seed.current() {
            Some(seed) if from_seed => seed,
            _ => state.leader.clone(),
        };
        (start, state.framework_info.clone())
    };
    let body = to_ascii_json(&subscribe_call(framework_info));
    let mut redirects = 0;
    let (url, headers, mut stream) = loop {
        let url = scheduler_url(&master);
        match shared.http.stream(&url, body.clone(), &[]).await {
            Ok((headers, stream)) => break (url, headers, stream),
            Err(error) => match error.redirect_target() {
                Some(target) if !target.is_empty() && redirects < MAX_REDIRECTS => {
                    tracing::debug!(from = %master, to = %target, "following the leading master");
                    redirects += 1;
                    master = target;
                }
                _ => return Err(error),
            },
        }
    };
    let stream_id = headers
        .get(STREAM_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| ClientError::Decode {
            url: url.clone(),
            message: format!("the SUBSCRIBE answer has no {STREAM_ID_HEADER} header"),
        })?;
    let wait = liveness_timeout(DEFAULT_HEARTBEAT, shared.options.missed_heartbeats);
    let first = tokio::time::timeout(wait, stream.next_record())
        .await
        .map_err(|_| ClientError::Timeout { url: url.clone() })??
        .ok_or_else(|| ClientError::Body {
            url: url.clone(),
            message: "the stream ended before SUBSCRIBED".into(),
        })?;
    let subscribed = match Event::from_json(&first) {
        Ok(Event::Subscribed(subscribed)) => subscribed,
        Ok(Event::Error(ErrorEvent { message })) => return Ok(Outcome::Refused(message)),
        Ok(other) => {
            let kind = other.to_value().get("type").cloned().unwrap_or_default();
            return Err(ClientError::Decode {
                url,
                message: format!("expected SUBSCRIBED first, got {kind}"),
            });
        }
        Err(message) => return Err(ClientError::Decode { url, message }),
    };
    {
        let mut state = shared.state();
        state.framework_info.id = Some(subscribed.framework_id.clone());
        state.stream_id = Some(stream_id);
        state.leader = master.clone();
    }
    tracing::info!(framework_id = %subscribed.framework_id, master = %master, "subscribed");
    Ok(Outcome::Subscribed(Box::new(Subscription {
        master,
        stream,
        subscribed,
    })))
}

/// Why [`pump`] stopped.
enum Pumped {
    /// The connection is gone; resubscribe.
    Lost(String),
    /// The stream is over for good (ERROR event, or nobody listens).
    End,
}

/// Forwards the events of one subscription until it ends.
async fn pump(
    subscription: &mut Subscription,
    liveness: Duration,
    tx: &mpsc::Sender<SchedulerEvent>,
) -> Pumped {
    let master = subscription.master.clone();
    loop {
        let record = match tokio::time::timeout(liveness, subscription.stream.next_record()).await {
            Err(_) => {
                return Pumped::Lost(format!("no event from master {master} in {liveness:?}"))
            }
            Ok(Err(error)) => return Pumped::Lost(error.to_string()),
            Ok(Ok(None)) => {
                return Pumped::Lost(format!("master {master} closed the event stream"))
            }
            Ok(Ok(Some(record))) => record,
        };
        let event = match Event::from_json(&record) {
            Ok(event) => event,
            Err(error) => {
                // One malformed event is not worth the subscription; an unacknowledged
                // update comes again.
                tracing::warn!(master = %master, error = %error, "ignoring an invalid event");
                continue;
            }
        };
        let fatal = matches!(event, Event::Error(_));
        if fatal {
            tracing::error!(master = %master, event = ?event, "the master sent ERROR; the subscription ends");
        }
        if tx.send(SchedulerEvent::Event(event)).await.is_err() || fatal {
            return Pumped::End;
        }
    }
}

/// The background task: reads events, resubscribes after losing the connection.
async fn read_events(
    shared: Arc<Shared>,
    mut subscription: Subscription,
    tx: mpsc::Sender<SchedulerEvent>,
    mut phase: watch::Receiver<Phase>,
) {
    loop {
        let liveness = liveness_timeout(
            heartbeat_of(&subscription.subscribed),
            shared.options.missed_heartbeats,
        );
        let reason = tokio::select! {
            _ = tx.closed() => return,
            _ = phase.wait_for(|p| *p == Phase::Stopped) => return,
            pumped = pump(&mut subscription, liveness, &tx) => match pumped {
                Pumped::Lost(reason) => reason,
                Pumped::End => return,
            },
        };
        if *phase.borrow() != Phase::Running {
            return;
        }
        tracing::warn!(reason = %reason, "lost the subscription; resubscribing");
        if tx
            .send(SchedulerEvent::Disconnected { reason })
            .await
            .is_err()
        {
            return;
        }
        let outcome = tokio::select! {
            _ = tx.closed() => return,
            _ = phase.wait_for(|p| *p == Phase::Stopped) => return,
            outcome = subscribe_with_retries(&shared, true) => outcome,
        };
        match outcome {
            Ok(Outcome::Subscribed(next)) => {
                subscription = *next;
                for event in connected_events(&subscription) {
                    if tx.send(event).await.is_err() {
                        return;
                    }
                }
            }
            Ok(Outcome::Refused(message)) => {
                tracing::error!(message = %message, "the master refused the resubscription");
                let _ = tx
                    .send(SchedulerEvent::Event(Event::Error(ErrorEvent { message })))
                    .await;
                return;
            }
            Err(error) => {
                let reason = format!("gave up resubscribing: {error}");
                let _ = tx.send(SchedulerEvent::Disconnected { reason }).await;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests;
