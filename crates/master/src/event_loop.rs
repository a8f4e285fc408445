//! The master's event loop: the one task that owns the [`Master`] core (DESIGN invariant
//! 3). HTTP handlers send it [`Command`]s and await replies; it executes the core's
//! actions on the open streams and publishes an immutable [`Snapshot`] of the core for
//! the read-only endpoints when someone asks for one (at most every 50 ms). A publish
//! shares the core's maps instead of copying them, and the readers render JSON on their
//! own threads, so slow readers never stall the loop.

use crate::core::{Action, CallReply, Master, OperatorReply, StreamId};
use crate::snapshot::{AllocationRuns, Snapshot};
use crate::store::Store;
use crate::stream_queue;
use bytes::Bytes;
use mantle_api::internal::{AgentCall, Register};
use mantle_api::json::to_ascii_json;
use mantle_api::operator::OperatorCall;
use mantle_api::recordio;
use mantle_api::scheduler::{CallBody, Subscribe};
use mantle_api::{ApiError, FrameworkId};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot, watch};

pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

pub type Reply<T> = oneshot::Sender<Result<T, ApiError>>;

/// A change of the core's state, given the current time.
pub type Change = Box<dyn FnOnce(&mut Master, f64) -> Result<OperatorReply, ApiError> + Send>;

pub enum Command {
    Subscribe {
        subscribe: Box<Subscribe>,
        reply: Reply<EventStream>,
    },
    SchedulerCall {
        framework_id: FrameworkId,
        stream_id: Option<String>,
        body: Box<CallBody>,
        reply: Reply<CallReply>,
    },
    RegisterAgent {
        register: Box<Register>,
        reply: Reply<EventStream>,
    },
    /// Calls an agent sent in one request, taken in order.
    AgentCalls {
        stream_id: String,
        calls: Vec<AgentCall>,
        reply: Reply<()>,
    },
    StreamClosed {
        stream: StreamId,
    },
    /// A v1 operator call or a legacy operator endpoint; answered once any policy or
    /// registry change is stored.
    Operator {
        call: Box<OperatorCall>,
        reply: Reply<OperatorReply>,
    },
    /// A change a legacy operator endpoint makes through the core's own entry points
    /// (so its errors name the fields of that endpoint's body); answered like
    /// [`Command::Operator`].
    Change {
        change: Change,
        reply: Reply<OperatorReply>,
    },
    /// A small read of the core's state (the legacy policy endpoints).
    Inspect {
        read: fn(&Master) -> serde_json::Value,
        reply: Reply<serde_json::Value>,
    },
    /// A reader of the read-only endpoints wants a current snapshot; answered once one is
    /// published.
    Refresh {
        reply: Reply<()>,
    },
    /// An operator SUBSCRIBE: a new stream of the operator events, with the view of the
    /// core when it opened.
    OperatorSubscribe {
        reply: Reply<crate::operator_api::Subscription>,
    },
}

/// An open event stream: RecordIO-framed records in order. Dropping it (the client went
/// away) tells the event loop.
pub struct EventStream {
    pub id: StreamId,
    pub records: stream_queue::Receiver,
    _guard: CloseGuard,
}

struct CloseGuard {
    stream: StreamId,
    commands: mpsc::UnboundedSender<Command>,
}

impl Drop for CloseGuard {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::StreamClosed {
            stream: self.stream.clone(),
        });
    }
}

/// A handle for sending commands to the loop.
#[derive(Clone)]
pub struct LoopHandle {
    commands: mpsc::UnboundedSender<Command>,
    pub snapshot: watch::Receiver<Arc<Snapshot>>,
}

impl LoopHandle {
    /// A snapshot no older than the last change (or rendered within the last
    /// [`MIN_RENDER_GAP`] while changes pour in).
    pub async fn current_snapshot(&self) -> Result<Arc<Snapshot>, ApiError> {
        self.request(|reply| Command::Refresh { reply }).await?;
        Ok(self.snapshot.borrow().clone())
    }

    pub async fn request<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, ApiError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .map_err(|_| ApiError::unavailable("the master is shutting down"))?;
        rx.await
            .map_err(|_| ApiError::unavailable("the master is shutting down"))?
    }
}

pub struct EventLoop {
    core: Master,
    commands_tx: mpsc::UnboundedSender<Command>,
    commands: mpsc::UnboundedReceiver<Command>,
    streams: HashMap<StreamId, stream_queue::Sender>,
    snapshot: watch::Sender<Arc<Snapshot>>,
    allocation_interval: Duration,
    /// Readers waiting for a current snapshot.
    readers: Vec<Reply<()>>,
    /// The published snapshot lags the core.
    stale: bool,
    published_at: Option<Instant>,
    /// Where the policy and registry are stored (none in tests), and the policy version
    /// last stored.
    store: Option<Box<dyn Store>>,
    stored_policy: u64,
    /// The agent registry version last written to the store.
    stored_registry: u64,
    /// The frameworks version last written to the store; none at first, so the first
    /// write also stores the frameworks recovered (with the deadlines given them now, and
    /// apart from the agents when the registry read held both).
    stored_frameworks: Option<u64>,
    /// Registrations waiting to be taken in with the next registry write.
    registering: Vec<(Box<Register>, Reply<EventStream>)>,
    /// When the last batch of registrations was stored, and how long that took.
    last_admission: Option<(Instant, Duration)>,
    /// The operator SUBSCRIBE streams (also in `streams`), and when they get their next
    /// heartbeat.
    operator_streams: HashSet<StreamId>,
    next_operator_heartbeat: Instant,
    /// How long the allocation runs take, for `/metrics/snapshot`.
    allocation_runs: Arc<Mutex<AllocationRuns>>,
}

/// Snapshots are rendered only when someone reads them, and at most this often: rendering
/// costs time proportional to the state, and readers can poll in a tight loop.
const MIN_RENDER_GAP: Duration = Duration::from_millis(50);
/// Metrics hold times (uptime), so they are re-rendered at least this often when read.
const METRICS_MAX_AGE: Duration = Duration::from_secs(1);
/// Commands handled between two allocation runs at most, so allocation keeps up under load.
const BATCH: usize = 512;
/// Allocation runs that commands ask for come at most this often; those asked for
/// meanwhile are taken together in the next. A loop that wakes for every few commands
/// would otherwise run the allocator (a millisecond or more at 10,000 agents) for each.
const MIN_ALLOCATION_GAP: Duration = Duration::from_millis(10);
/// `--max_operator_event_stream_subscribers`'s default in Mesos.
const MAX_OPERATOR_SUBSCRIBERS: usize = 1000;

impl EventLoop {
    pub fn new(
        core: Master,
        allocation_interval: Duration,
        store: Option<Box<dyn Store>>,
    ) -> (EventLoop, LoopHandle) {
        let core_policy_version = core.policy_version();
        let core_registry_version = core.registry_version();
        let (commands_tx, commands) = mpsc::unbounded_channel();
        let allocation_runs = Arc::new(Mutex::new(AllocationRuns::default()));
        let (snapshot, snapshot_rx) = watch::channel(Arc::new(Snapshot::new(
            core.view(),
            allocation_runs.clone(),
        )));
        let handle = LoopHandle {
            commands: commands_tx.clone(),
            snapshot: snapshot_rx,
        };
        let event_loop = EventLoop {
            core,
            commands_tx,
            commands,
            streams: HashMap::new(),
            snapshot,
            allocation_interval,
            readers: Vec::new(),
            stale: true,
            published_at: None,
            stored_policy: core_policy_version,
            stored_registry: core_registry_version,
            stored_frameworks: None,
            store,
            registering: Vec::new(),
            last_admission: None,
            operator_streams: HashSet::new(),
            next_operator_heartbeat: Instant::now(),
            allocation_runs,
        };
        (event_loop, handle)
    }

    /// Runs the loop on a thread of its own until `shutdown`; the handle completes when
    /// it has stopped. On the runtime's shared workers, the allocation runs waited behind
    /// the connections' work: with 10 clients polling `/master/state` at 20,000 agents a
    /// run of 1.4 ms took 8 ms. The kernel schedules a thread that sleeps most of the time
    /// as soon as it wakes.
    pub fn spawn(self, shutdown: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let started = std::thread::Builder::new()
            .name("master-loop".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                match runtime {
                    Ok(runtime) => runtime.block_on(self.run(shutdown)),
                    Err(err) => tracing::error!("cannot start the event loop's runtime: {err}"),
                }
                let _ = done_tx.send(());
            });
        if let Err(err) = started {
            tracing::error!("cannot start the event loop's thread: {err}");
        }
        tokio::spawn(async move {
            let _ = done_rx.await;
        })
    }

    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut ticker = tokio::time::interval(Duration::from_millis(100));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut next_allocation = Instant::now() + self.allocation_interval;
        let mut last_allocation = Instant::now();
        // An allocation asked for and held back by MIN_ALLOCATION_GAP.
        let mut deferred = false;
        loop {
            let mut allocate = false;
            tokio::select! {
                _ = tokio::time::sleep_until((last_allocation + MIN_ALLOCATION_GAP).into()), if deferred => {
                    allocate = true;
                }
                command = self.commands.recv() => {
                    let Some(command) = command else { break };
                    allocate |= self.handle(command);
                    for _ in 0..BATCH {
                        match self.commands.try_recv() {
                            Ok(command) => allocate |= self.handle(command),
                            Err(_) => break,
                        }
                    }
                }
                _ = ticker.tick() => {
                    self.core.tick(unix_now());
                    self.heartbeat_operators();
                    let _ = self.store_registry();
                    if Instant::now() >= next_allocation {
                        next_allocation = Instant::now() + self.allocation_interval;
                        allocate = true;
                    }
                }
                _ = shutdown.changed() => break,
            }
            allocate |= self.take_in_agents();
            if allocate && last_allocation.elapsed() < MIN_ALLOCATION_GAP {
                deferred = true;
                allocate = false;
            }
            if allocate {
                deferred = false;
                let started = Instant::now();
                last_allocation = started;
                self.core.allocate(unix_now());
                if let Ok(mut runs) = self.allocation_runs.lock() {
                    runs.record(started.elapsed());
                }
            }
            self.execute();
            self.stale |= self.core.take_dirty();
            self.serve_readers();
        }
        for (_, stream) in self.streams.drain() {
            drop(stream);
        }
    }

    fn open_stream(&mut self) -> (StreamId, EventStream) {
        let id: StreamId = uuid::Uuid::new_v4().to_string().into();
        let (tx, rx) = stream_queue::queue();
        self.streams.insert(id.clone(), tx);
        let guard = CloseGuard {
            stream: id.clone(),
            commands: self.commands_tx.clone(),
        };
        (
            id.clone(),
            EventStream {
                id,
                records: rx,
                _guard: guard,
            },
        )
    }

    /// Opens a stream, lets the core take it, and answers with it (or with the core's
    /// error, closing it again).
    fn answer_with_stream(
        &mut self,
        reply: Reply<EventStream>,
        take: impl FnOnce(&mut Master, StreamId) -> Result<(), ApiError>,
    ) {
        let (id, stream) = self.open_stream();
        match take(&mut self.core, id.clone()) {
            Ok(()) => {
                let _ = reply.send(Ok(stream));
            }
            Err(err) => {
                self.streams.remove(&id);
                let _ = reply.send(Err(err));
            }
        }
    }

    /// Stores the policy if it changed since it was last stored (invariant 5: durable
    /// before acknowledged). A failed write is reported to the caller as a 503.
    fn store_policy(&mut self) -> Result<(), ApiError> {
        let version = self.core.policy_version();
        if version == self.stored_policy {
            return Ok(());
        }
        if let Some(store) = &mut self.store {
            if let Err(err) = store.save_policy(self.core.policy()) {
                tracing::error!(error = %err, "cannot store the policy");
                return Err(ApiError::unavailable(format!(
                    "cannot store the policy: {err}"
                )));
            }
        }
        self.stored_policy = version;
        Ok(())
    }

    /// Stores the registry if it changed since it was last stored: an agent is admitted
    /// only once it is stored (invariant 5). A failed write is a 503.
    fn store_registry(&mut self) -> Result<(), ApiError> {
        let unavailable = |err: std::io::Error| {
            tracing::error!(error = %err, "cannot store the registry");
            ApiError::unavailable(format!("cannot store the registry: {err}"))
        };
        // The frameworks first: a registry written by an older master holds them, and
        // the agents' part written without them must not be the only copy.
        let frameworks = self.core.frameworks_version();
        if self.stored_frameworks != Some(frameworks) {
            if let Some(store) = &mut self.store {
                store
                    .save_frameworks(&self.core.stored_frameworks())
                    .map_err(unavailable)?;
            }
            self.stored_frameworks = Some(frameworks);
        }
        let version = self.core.registry_version();
        if version != self.stored_registry {
            // The changes are built only for a store that appends them (each changed
            // agent's info copied); a whole save holds them all. A store that takes no
            // changes now, or did not take these, gets the whole registry.
            match &mut self.store {
                None => self.core.forget_registry_changes(),
                Some(store) => {
                    let appended = store.takes_changes()
                        && store
                            .append_registry(&self.core.take_registry_changes())
                            .map_err(unavailable)?;
                    if !appended {
                        self.core.forget_registry_changes();
                        store
                            .save_registry(self.core.agent_registry())
                            .map_err(unavailable)?;
                    }
                }
            }
            self.stored_registry = version;
        }
        Ok(())
    }

    /// Answers an operator's change once what it changed is stored (invariant 5).
    fn answer_change(
        &mut self,
        result: Result<OperatorReply, ApiError>,
        reply: Reply<OperatorReply>,
    ) {
        let result = self.store_policy().and(self.store_registry()).and(result);
        let _ = reply.send(result);
    }

    /// Handles one command; returns whether an allocation run should follow: one that
    /// may have freed resources or changed who wants them. The rest wait for the
    /// periodic run; under load a run after every acknowledgement and status update
    /// (hundreds a second, each run walking every agent with free resources) left the
    /// loop too little time for the calls themselves.
    fn handle(&mut self, command: Command) -> bool {
        let now = unix_now();
        match command {
            Command::Subscribe { subscribe, reply } => {
                self.answer_with_stream(reply, |core, id| {
                    core.subscribe(now, *subscribe, id).map(drop)
                });
                let _ = self.store_registry();
                true
            }
            Command::SchedulerCall {
                framework_id,
                stream_id,
                body,
                reply,
            } => {
                let allocate = may_change_offers(&body);
                let result =
                    self.core
                        .scheduler_call(now, &framework_id, stream_id.as_deref(), *body);
                let result = self.store_policy().and(self.store_registry()).and(result);
                let _ = reply.send(result);
                allocate
            }
            Command::Inspect { read, reply } => {
                let _ = reply.send(Ok(read(&self.core)));
                false
            }
            Command::Operator { call, reply } => {
                let result = self.core.operator_call(now, *call);
                self.answer_change(result, reply);
                true
            }
            Command::Change { change, reply } => {
                let result = change(&mut self.core, now);
                self.answer_change(result, reply);
                true
            }
            Command::RegisterAgent { register, reply } => {
                self.registering.push((register, reply));
                false
            }
            Command::AgentCalls {
                stream_id,
                calls,
                reply,
            } => {
                let mut allocate = false;
                let mut answer = Ok(());
                for call in calls {
                    allocate |= match &call {
                        // Only a terminal update frees resources.
                        AgentCall::StatusUpdate(update) => update.status.state.is_terminal(),
                        AgentCall::Pong | AgentCall::ExecutorMessage(_) => false,
                        AgentCall::Register(_) | AgentCall::ExecutorExited(_) => true,
                    };
                    // Each call is taken on its own; the answer is the first refusal.
                    let taken = self.core.agent_call(now, &stream_id, call);
                    if answer.is_ok() {
                        answer = taken;
                    }
                }
                let _ = reply.send(answer);
                allocate
            }
            Command::StreamClosed { stream } => {
                if self.operator_streams.remove(&stream) {
                    self.streams.remove(&stream);
                    self.core
                        .set_operator_subscribers(!self.operator_streams.is_empty());
                    return false;
                }
                if self.streams.remove(&stream).is_some() {
                    self.core.stream_closed(now, &stream);
                    let _ = self.store_registry();
                }
                true
            }
            Command::Refresh { reply } => {
                self.readers.push(reply);
                false
            }
            Command::OperatorSubscribe { reply } => {
                if self.operator_streams.len() >= MAX_OPERATOR_SUBSCRIBERS {
                    let _ = reply.send(Err(ApiError::unavailable(format!(
                        "the maximum of {MAX_OPERATOR_SUBSCRIBERS} operator event subscribers is reached"
                    ))));
                    return false;
                }
                // Events of changes already in the view go out before the new stream
                // joins, so it sees each change once: in its state or as an event.
                self.execute();
                let (id, stream) = self.open_stream();
                self.operator_streams.insert(id);
                self.core.set_operator_subscribers(true);
                let snapshot = Arc::new(self.snapshot_now());
                let _ = reply.send(Ok((stream, snapshot)));
                false
            }
        }
    }

    /// Sends a HEARTBEAT on every operator stream every 15 s.
    fn heartbeat_operators(&mut self) {
        if self.operator_streams.is_empty() || Instant::now() < self.next_operator_heartbeat {
            return;
        }
        self.next_operator_heartbeat =
            Instant::now() + Duration::from_secs_f64(crate::operator_api::HEARTBEAT_SECONDS);
        let record = recordio::encode(br#"{"type":"HEARTBEAT"}"#);
        self.broadcast_operators(record);
    }

    fn broadcast_operators(&mut self, record: Bytes) {
        let streams: Vec<StreamId> = self.operator_streams.iter().cloned().collect();
        for stream in streams {
            self.send(&stream, record.clone());
        }
    }

    /// Takes in the waiting registrations and stores them in one registry write; returns
    /// whether an allocation run should follow. The write blocks the loop, and the
    /// registry of a large cluster takes long to write (at 70,000 agents a write took
    /// seconds, and a write after every batch of commands left too little time for the
    /// agents' pongs, so agents were marked unreachable while others registered): a new
    /// write waits at least as long as the previous one took, so writes take at most
    /// half of the loop's time and each admits all the agents that arrived meanwhile.
    fn take_in_agents(&mut self) -> bool {
        if self.registering.is_empty() {
            return false;
        }
        if let Some((ended, took)) = self.last_admission {
            if ended.elapsed() < took {
                return false;
            }
        }
        let now = unix_now();
        let mut admitting = Vec::new();
        for (register, reply) in std::mem::take(&mut self.registering) {
            let (id, stream) = self.open_stream();
            match self.core.register_agent(now, id.clone(), *register) {
                Ok(_) => admitting.push((id, stream, reply)),
                Err(err) => {
                    self.streams.remove(&id);
                    let _ = reply.send(Err(err));
                }
            }
        }
        let started = Instant::now();
        self.admit_agents(admitting);
        self.last_admission = Some((Instant::now(), started.elapsed()));
        // An agent's resources can only be offered to a connected framework; after a
        // master restart none is, and a cycle per batch of returning agents would walk
        // every agent for nothing.
        self.core.frameworks().any(|f| f.active)
    }

    /// Answers the agents registered in this batch once the registry holds them: one
    /// write covers the whole batch (as Mesos's registrar batches its operations), so a
    /// crowd of agents costs a store per batch instead of one each. When the write fails
    /// none is admitted: nothing it was told reaches it, and the agent tries again.
    fn admit_agents(&mut self, admitting: Vec<(StreamId, EventStream, Reply<EventStream>)>) {
        if admitting.is_empty() {
            return;
        }
        let stored = self.store_registry();
        let now = unix_now();
        for (id, stream, reply) in admitting {
            match &stored {
                Ok(()) => {
                    let _ = reply.send(Ok(stream));
                }
                Err(err) => {
                    self.streams.remove(&id);
                    self.core.stream_closed(now, &id);
                    let _ = reply.send(Err(err.clone()));
                }
            }
        }
    }

    /// Publishes a current snapshot for the waiting readers, unless one was rendered less
    /// than [`MIN_RENDER_GAP`] ago; then they wait for the next tick.
    fn serve_readers(&mut self) {
        if self.readers.is_empty() {
            return;
        }
        let age = self.published_at.map(|t| t.elapsed());
        let outdated = self.stale || age.is_none_or(|a| a >= METRICS_MAX_AGE);
        if outdated {
            if age.is_some_and(|a| a < MIN_RENDER_GAP) {
                return;
            }
            self.publish();
        }
        for reader in self.readers.drain(..) {
            let _ = reader.send(Ok(()));
        }
    }

    fn execute(&mut self) {
        for action in self.core.take_actions() {
            match action {
                Action::Framework { stream, event } => {
                    let record = recordio::encode(&to_ascii_json(&event));
                    self.send(&stream, record);
                }
                Action::Agent { stream, message } => {
                    let record = recordio::encode(&to_ascii_json(&message));
                    self.send(&stream, record);
                }
                Action::CloseFramework { stream } | Action::CloseAgent { stream } => {
                    // Dropping the sender ends the HTTP body after what was queued.
                    self.streams.remove(&stream);
                }
                Action::Operator { event } => {
                    self.broadcast_operators(recordio::encode(&to_ascii_json(&event)));
                }
            }
        }
    }

    fn send(&mut self, stream: &str, record: Bytes) {
        if let Some(tx) = self.streams.get(stream) {
            if tx.send(record).is_err() {
                self.streams.remove(stream);
                if self.operator_streams.remove(stream) {
                    self.core
                        .set_operator_subscribers(!self.operator_streams.is_empty());
                } else {
                    self.core.stream_closed(unix_now(), stream);
                }
            }
        }
    }

    /// Publishes the core's current view: a few pointer copies (the large maps are
    /// shared), so a publish costs the loop next to nothing; readers render from it.
    fn publish(&mut self) {
        self.stale = false;
        self.published_at = Some(Instant::now());
        let _ = self.snapshot.send(Arc::new(self.snapshot_now()));
    }

    fn snapshot_now(&self) -> Snapshot {
        Snapshot::new(self.core.view(), self.allocation_runs.clone())
    }
}

/// Whether a scheduler call can change what should be offered: it returns or takes
/// resources, changes filters, roles or suppression, or ends a framework. Kills free
/// resources only with the terminal update that follows; acknowledgements, reconciliation
/// and messages never change them.
fn may_change_offers(body: &CallBody) -> bool {
    !matches!(
        body,
        CallBody::Acknowledge(_)
            | CallBody::AcknowledgeOperationStatus
            | CallBody::Reconcile(_)
            | CallBody::ReconcileOperations
            | CallBody::Message(_)
            | CallBody::Request
            | CallBody::Kill(_)
    )
}
