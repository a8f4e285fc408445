//! The agent core: a pure, deterministic state machine (DESIGN invariant 2) holding the
//! agent's frameworks, executors, tasks and status update streams. It takes inputs
//! (messages from the master, executor calls, process launches and exits, timer ticks
//! with the current time) and returns actions (messages to the master and to executor
//! streams, processes to launch or kill). It follows the Mesos agent (reference §7).

mod executors;
mod recovery;
#[cfg(test)]
mod tests;
pub mod updates;

use executors::container_limits;
pub use recovery::{
    Checkpoint, Recovered, RecoveredExecutor, RecoveredFramework, RecoveredTask, RunKey,
};
pub use updates::UpdateRecord;

use crate::sandbox;
use base64::Engine;
use mantle_api::error::ApiError;
use mantle_api::executor::{Event, Subscribe};
use mantle_api::internal::{AgentCall, Register, TaskReport, ToAgent};
use mantle_api::{
    AgentId, AgentInfo, Attribute, Capability, CommandInfo, ContainerId, ExecutorId, ExecutorInfo,
    FrameworkId, FrameworkInfo, MasterInfo, Reason, Resources, Source, TaskId, TaskInfo, TaskState,
    TaskStatus,
};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use std::collections::{BTreeMap, VecDeque};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;
use updates::StatusUpdateManager;

/// Names one executor event stream (one SUBSCRIBE connection); chosen by the shell.
pub type StreamId = u64;

/// Mesos keeps this many completed executors per framework in memory.
pub const MAX_COMPLETED_EXECUTORS_PER_FRAMEWORK: usize = 150;
/// Mesos keeps this many completed tasks per executor in memory.
pub const MAX_COMPLETED_TASKS_PER_EXECUTOR: usize = 200;
/// Completed frameworks kept for `/state`.
pub const MAX_COMPLETED_FRAMEWORKS: usize = 50;
/// How many statuses a task keeps for `/state` (the first one is always kept).
pub const MAX_STATUSES_PER_TASK: usize = 100;
/// How often subscribed executors get a HEARTBEAT event, as in Mesos.
pub const EXECUTOR_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(30 * 60);
/// The wait status reported for an executor whose process could not be started: exit
/// code 127, what a shell reports for a command it cannot run.
pub const LAUNCH_FAILED_WAIT_STATUS: i32 = 127 << 8;

/// The current time, as the shell reads it: a monotonic clock for deadlines and the wall
/// clock for status update timestamps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Now {
    /// Time since the agent started.
    pub mono: Duration,
    /// Seconds since the Unix epoch.
    pub unix: f64,
}

/// What the core needs to know about the agent it runs in.
#[derive(Clone, Debug)]
pub struct CoreConfig {
    pub hostname: String,
    pub ip: Ipv4Addr,
    pub port: u16,
    pub resources: Resources,
    pub attributes: Vec<Attribute>,
    pub work_dir: PathBuf,
    /// The `mantle` binary; the command executor is `<launcher> executor`.
    pub launcher: PathBuf,
    pub executor_registration_timeout: Duration,
    pub executor_shutdown_grace_period: Duration,
    /// How long executors recovered after a restart have to subscribe again.
    pub executor_reregistration_timeout: Duration,
    /// How long a checkpointing executor keeps trying to reach a restarting agent
    /// (`MESOS_RECOVERY_TIMEOUT`).
    pub recovery_timeout: Duration,
    /// The Docker engine's socket when `--containerizers` holds `docker`: executors are
    /// told to run tasks that ask for Docker on it.
    pub docker_socket: Option<PathBuf>,
    /// Flag values for `/state`.
    pub flags: BTreeMap<String, String>,
    /// Seconds since the Unix epoch when the agent started.
    pub start_time: f64,
    /// Seeds the generator of container ids and status update uuids.
    pub seed: u64,
}

impl CoreConfig {
    /// `ip:port` of the agent's HTTP server.
    pub fn endpoint(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }

    /// `slave(1)@ip:port`.
    pub fn pid(&self) -> String {
        format!("slave(1)@{}", self.endpoint())
    }
}

/// One input to the core.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// The master accepted the (re)registration.
    Registered {
        agent_id: AgentId,
        master_info: MasterInfo,
    },
    /// The connection to the master is gone.
    Disconnected,
    /// A message on the master's stream (other than `Registered`).
    Master(Box<ToAgent>),
    /// SUBSCRIBE on `/api/v1/executor`; events go to `stream`.
    Subscribe {
        framework_id: FrameworkId,
        executor_id: ExecutorId,
        subscribe: Subscribe,
        stream: StreamId,
    },
    /// UPDATE, already checked by `executor::Call::into_body`.
    Update {
        framework_id: FrameworkId,
        executor_id: ExecutorId,
        status: TaskStatus,
    },
    /// MESSAGE from an executor (`data` in base64).
    Message {
        framework_id: FrameworkId,
        executor_id: ExecutorId,
        data: String,
    },
    /// HEARTBEAT call from an executor.
    Heartbeat {
        framework_id: FrameworkId,
        executor_id: ExecutorId,
    },
    /// The executor closed its event stream (or the agent could not write to it).
    StreamClosed { stream: StreamId },
    /// The executor process of a container started.
    Launched { container_id: ContainerId, pid: u32 },
    /// The executor process of a container could not be started.
    LaunchFailed {
        container_id: ContainerId,
        error: String,
    },
    /// The executor process of a container exited with this raw wait status.
    Exited {
        container_id: ContainerId,
        status: i32,
    },
    /// A container hit a resource limit: its live tasks fail with it and it is killed.
    Limited {
        container_id: ContainerId,
        limitation: Limitation,
    },
    /// Time passed; timers fire.
    Tick,
}

/// Everything the shell needs to start one executor process.
#[derive(Clone, Debug, PartialEq)]
pub struct LaunchSpec {
    pub framework_id: FrameworkId,
    pub executor_id: ExecutorId,
    pub container_id: ContainerId,
    pub agent_id: AgentId,
    /// The sandbox; it does not exist yet.
    pub directory: PathBuf,
    pub command: CommandInfo,
    /// Variables set on top of the agent's own environment, applied in order.
    pub env: Vec<(String, String)>,
    /// What the container may use: the executor's resources plus its tasks'.
    pub limits: ContainerLimits,
    /// The user the executor runs as (`CommandInfo.user`, else `FrameworkInfo.user`).
    pub user: Option<String>,
    /// The executor's (or the command task's) `ContainerInfo`, as given.
    pub container: Option<serde_json::Value>,
    /// Its framework checkpoints: the container outlives the agent.
    pub checkpoint: bool,
}

/// The scalar resources a container is limited to.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ContainerLimits {
    pub cpus: f64,
    pub mem_mb: f64,
    pub disk_mb: f64,
}

impl ContainerLimits {
    fn add(&mut self, resources: &[mantle_api::Resource]) {
        for r in resources {
            let value = r.scalar.as_ref().map_or(0.0, |s| s.value);
            match r.name.as_str() {
                "cpus" => self.cpus += value,
                "mem" => self.mem_mb += value,
                "disk" => self.disk_mb += value,
                _ => {}
            }
        }
    }
}

/// Why the containerizer ended a container: a resource limit it hit.
#[derive(Clone, Debug, PartialEq)]
pub struct Limitation {
    /// `REASON_CONTAINER_LIMITATION_MEMORY` or `..._DISK`.
    pub reason: Reason,
    pub message: String,
    /// `TaskStatus.limitation`: `{"resources": [...]}` naming the exceeded resource.
    pub limitation: serde_json::Value,
}

/// One thing the shell must do.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    ToMaster(Box<AgentCall>),
    ToExecutor {
        stream: StreamId,
        event: Event,
    },
    /// End an executor's event stream.
    CloseStream {
        stream: StreamId,
    },
    /// Create the sandbox and start the executor process in its own process group.
    Launch(Box<LaunchSpec>),
    /// Kill every process of a container.
    Kill {
        container_id: ContainerId,
    },
    /// A running container's tasks changed: apply its new limits.
    Update {
        container_id: ContainerId,
        limits: ContainerLimits,
    },
    /// Write a checkpoint, durably, before the actions after it.
    Checkpoint(Box<Checkpoint>),
    /// A container recovered after a restart: find its process and watch it, or report
    /// it exited.
    Reattach(Box<LaunchSpec>),
}

/// The result of one input: the answer for an executor call and the actions to take.
#[derive(Debug)]
pub struct Output {
    pub reply: Result<(), ApiError>,
    pub actions: Vec<Action>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ExecutorState {
    /// Launched (or launching); not subscribed yet. Tasks queue.
    Registering,
    /// Subscribed at least once.
    Running,
    /// Asked to shut down, or killed.
    Terminating,
    /// The process is gone.
    Terminated,
}

#[derive(Clone, Debug)]
pub(crate) struct Task {
    pub info: TaskInfo,
    pub framework_id: FrameworkId,
    pub executor_id: ExecutorId,
    /// The state of the latest update the agent took.
    pub state: TaskState,
    /// The updates taken, without their `data`.
    pub statuses: Vec<TaskStatus>,
    /// Not yet handed to the executor.
    pub queued: bool,
    pub kill_requested: bool,
    pub role: String,
}

/// Tasks handed to an executor together: one LAUNCH, or one LAUNCH_GROUP.
#[derive(Clone, Debug)]
pub(crate) struct Pending {
    pub tasks: Vec<TaskId>,
    pub group: bool,
}

#[derive(Clone, Debug)]
pub(crate) struct Executor {
    pub info: ExecutorInfo,
    pub container_id: ContainerId,
    pub directory: PathBuf,
    pub command_executor: bool,
    pub state: ExecutorState,
    pub stream: Option<StreamId>,
    pub pid: Option<u32>,
    pub registration_deadline: Option<Duration>,
    /// When a SHUTDOWN that was sent turns into a SIGKILL.
    pub kill_deadline: Option<Duration>,
    pub kill_sent: bool,
    /// The raw wait status its process ended with.
    pub exit_status: Option<i32>,
    /// Recovered after a restart and not subscribed again yet.
    pub recovering: bool,
    pub queue: Vec<Pending>,
    /// Queued and launched tasks whose terminal update is not acknowledged yet.
    pub tasks: BTreeMap<TaskId, Task>,
    pub completed_tasks: VecDeque<Task>,
}

impl Executor {
    pub fn subscribed(&self) -> Option<StreamId> {
        if matches!(
            self.state,
            ExecutorState::Running | ExecutorState::Terminating
        ) {
            self.stream
        } else {
            None
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Framework {
    pub id: FrameworkId,
    pub info: FrameworkInfo,
    /// ShutdownFramework arrived: no new tasks, and the master will not acknowledge.
    pub terminating: bool,
    pub executors: BTreeMap<ExecutorId, Executor>,
    pub completed_executors: VecDeque<Executor>,
}

impl Framework {
    /// The executor holding a live task. A command task's executor has the task's id,
    /// so that one is looked at first; only a task of the framework's own executors
    /// (or an absent one) costs a look through every executor.
    pub fn executor_of_mut(&mut self, task_id: &TaskId) -> Option<&mut Executor> {
        let own = task_id.as_str();
        if self
            .executors
            .get(own)
            .is_some_and(|e| e.tasks.contains_key(task_id))
        {
            return self.executors.get_mut(own);
        }
        self.executors
            .values_mut()
            .find(|e| e.tasks.contains_key(task_id))
    }

    pub fn executor_of(&self, task_id: &TaskId) -> Option<&Executor> {
        match self.executors.get(task_id.as_str()) {
            Some(e) if e.tasks.contains_key(task_id) => Some(e),
            _ => self
                .executors
                .values()
                .find(|e| e.tasks.contains_key(task_id)),
        }
    }
}

/// Mesos's agent counters (`slave/tasks_finished` and the like): they only grow, unlike
/// the gauges, which are counted off the state when read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counters {
    /// Tasks that reached each terminal state here, by state name (`TASK_FINISHED`).
    pub terminal_tasks: BTreeMap<&'static str, u64>,
    pub executors_terminated: u64,
    pub container_launch_errors: u64,
    pub valid_status_updates: u64,
    pub invalid_status_updates: u64,
    pub valid_framework_messages: u64,
    pub invalid_framework_messages: u64,
    /// Checkpoints that could not be read back at start (`--strict=false` skips them).
    pub recovery_errors: u64,
}

/// The agent's state.
pub struct Core {
    pub(crate) config: CoreConfig,
    rng: StdRng,
    pub(crate) agent_id: Option<AgentId>,
    pub(crate) master_info: Option<MasterInfo>,
    pub(crate) connected: bool,
    pub(crate) frameworks: BTreeMap<FrameworkId, Framework>,
    pub(crate) completed_frameworks: VecDeque<Framework>,
    /// Which executor runs in which container.
    containers: BTreeMap<ContainerId, (FrameworkId, ExecutorId)>,
    updates: StatusUpdateManager,
    next_heartbeat: Option<Duration>,
    pub(crate) counters: Counters,
}

/// Collects the actions of one input.
pub(crate) struct Out {
    pub actions: Vec<Action>,
}

impl Out {
    fn push(&mut self, action: Action) {
        self.actions.push(action);
    }

    fn event(&mut self, stream: StreamId, event: Event) {
        self.actions.push(Action::ToExecutor { stream, event });
    }
}

impl Core {
    pub fn new(config: CoreConfig) -> Core {
        let rng = StdRng::seed_from_u64(config.seed);
        Core {
            config,
            rng,
            agent_id: None,
            master_info: None,
            connected: false,
            frameworks: BTreeMap::new(),
            completed_frameworks: VecDeque::new(),
            containers: BTreeMap::new(),
            updates: StatusUpdateManager::default(),
            next_heartbeat: None,
            counters: Counters::default(),
        }
    }

    pub fn config(&self) -> &CoreConfig {
        &self.config
    }

    pub fn agent_id(&self) -> Option<&AgentId> {
        self.agent_id.as_ref()
    }

    /// Applies one input.
    pub fn handle(&mut self, now: Now, input: Input) -> Output {
        let mut out = Out {
            actions: Vec::new(),
        };
        let reply = match input {
            Input::Registered {
                agent_id,
                master_info,
            } => {
                self.registered(now, &mut out, agent_id, master_info);
                Ok(())
            }
            Input::Disconnected => {
                if self.connected {
                    tracing::info!("disconnected from the master");
                }
                self.connected = false;
                self.updates.pause();
                Ok(())
            }
            Input::Master(message) => {
                self.master_message(now, &mut out, *message);
                Ok(())
            }
            Input::Subscribe {
                framework_id,
                executor_id,
                subscribe,
                stream,
            } => self.subscribe(
                now,
                &mut out,
                &framework_id,
                &executor_id,
                subscribe,
                stream,
            ),
            Input::Update {
                framework_id,
                executor_id,
                status,
            } => self.executor_update(now, &mut out, &framework_id, &executor_id, status),
            Input::Message {
                framework_id,
                executor_id,
                data,
            } => self.executor_message(&mut out, &framework_id, &executor_id, data),
            Input::Heartbeat {
                framework_id,
                executor_id,
            } => self.find_executor(&framework_id, &executor_id).map(|_| ()),
            Input::StreamClosed { stream } => {
                self.stream_closed(stream);
                Ok(())
            }
            Input::Launched { container_id, pid } => {
                self.launched(&container_id, pid);
                Ok(())
            }
            Input::LaunchFailed {
                container_id,
                error,
            } => {
                self.launch_failed(now, &mut out, &container_id, &error);
                Ok(())
            }
            Input::Exited {
                container_id,
                status,
            } => {
                self.exited(now, &mut out, &container_id, status);
                Ok(())
            }
            Input::Limited {
                container_id,
                limitation,
            } => {
                self.limited(now, &mut out, &container_id, limitation);
                Ok(())
            }
            Input::Tick => {
                self.tick(now, &mut out);
                Ok(())
            }
        };
        Output {
            reply,
            actions: out.actions,
        }
    }

    /// The registration call: first registration without an id, later ones with the id
    /// and everything the agent runs.
    pub fn register_call(&self) -> Register {
        let mut frameworks = Vec::new();
        let mut executors = Vec::new();
        let mut tasks = Vec::new();
        for framework in self.frameworks.values() {
            frameworks.push(framework.info.clone());
            for executor in framework.executors.values() {
                if executor.state != ExecutorState::Terminated {
                    executors.push(executor.info.clone());
                }
                // Tasks whose terminal update is not acknowledged yet are reported too,
                // as Mesos does: a master that did not know of their end learns it here,
                // instead of calling them gone before that update reaches the framework.
                for task in executor.tasks.values() {
                    tasks.push(TaskReport {
                        framework_id: framework.id.clone(),
                        task: task.info.clone(),
                        state: task.state,
                        executor_id: (!executor.command_executor)
                            .then(|| executor.info.executor_id.clone()),
                    });
                }
            }
        }
        Register {
            agent_info: self.agent_info(),
            pid: self.config.pid(),
            version: mantle_api::MESOS_VERSION.to_string(),
            frameworks,
            executors,
            tasks,
        }
    }

    pub(crate) fn agent_info(&self) -> AgentInfo {
        let capabilities = ["MULTI_ROLE", "HIERARCHICAL_ROLE", "RESERVATION_REFINEMENT"]
            .into_iter()
            .map(|kind| Capability {
                kind: kind.to_string(),
            })
            .collect();
        AgentInfo {
            hostname: self.config.hostname.clone(),
            port: u32::from(self.config.port),
            resources: self.config.resources.to_wire(),
            attributes: self.config.attributes.clone(),
            id: self.agent_id.clone(),
            capabilities,
        }
    }

    fn registered(&mut self, now: Now, out: &mut Out, agent_id: AgentId, master_info: MasterInfo) {
        if let Some(old) = &self.agent_id {
            if old != &agent_id {
                // The master has forgotten this agent, and with it every task here:
                // what runs belongs to an agent that no longer exists.
                tracing::warn!(old = %old, new = %agent_id, "master assigned a new agent id; shutting down all executors");
                let ids: Vec<(FrameworkId, ExecutorId)> = self
                    .frameworks
                    .values()
                    .flat_map(|f| f.executors.keys().map(|e| (f.id.clone(), e.clone())))
                    .collect();
                for (framework_id, executor_id) in ids {
                    self.shutdown_executor(now, out, &framework_id, &executor_id);
                }
            }
        }
        tracing::info!(agent_id = %agent_id, master = %master_info.id, "registered with the master");
        let new_id = self.agent_id.as_ref() != Some(&agent_id);
        self.agent_id = Some(agent_id);
        if new_id {
            recovery::checkpoint(out, Checkpoint::Agent(self.agent_info()));
        }
        self.master_info = Some(master_info);
        self.connected = true;
        for update in self.updates.resend_all(now.mono) {
            out.push(Action::ToMaster(Box::new(AgentCall::StatusUpdate(update))));
        }
    }

    fn master_message(&mut self, now: Now, out: &mut Out, message: ToAgent) {
        match message {
            ToAgent::Registered(r) => self.registered(now, out, r.agent_id, r.master_info),
            // The master counts an agent whose event loop stops answering as failed.
            ToAgent::Ping => self.to_master(out, AgentCall::Pong),
            ToAgent::RunTask(run) => self.run_task(now, out, run.framework_info, run.task),
            ToAgent::RunTaskGroup(run) => self.run_task_group(
                now,
                out,
                run.framework_info,
                run.executor,
                run.task_group.tasks,
            ),
            ToAgent::KillTask(kill) => self.kill_task(
                now,
                out,
                &kill.framework_id,
                &kill.task_id,
                kill.kill_policy,
            ),
            ToAgent::ShutdownExecutor(s) => {
                self.shutdown_executor(now, out, &s.framework_id, &s.executor_id)
            }
            ToAgent::ShutdownFramework(s) => self.shutdown_framework(now, out, &s.framework_id),
            ToAgent::Shutdown(s) => {
                tracing::warn!(message = %s.message, "the master shut this agent down; stopping every executor");
                let frameworks: Vec<FrameworkId> = self.frameworks.keys().cloned().collect();
                for framework_id in frameworks {
                    self.shutdown_framework(now, out, &framework_id);
                }
            }
            ToAgent::StatusUpdateAck(ack) => {
                self.acknowledge(now, out, &ack.framework_id, &ack.task_id, &ack.uuid)
            }
            ToAgent::FrameworkMessage(m) => {
                let stream = match self.find_executor(&m.framework_id, &m.executor_id) {
                    Ok(executor) => executor.subscribed(),
                    Err(_) => {
                        self.counters.invalid_framework_messages += 1;
                        tracing::warn!(framework_id = %m.framework_id, executor_id = %m.executor_id, "dropping a framework message for an unknown executor");
                        return;
                    }
                };
                match stream {
                    Some(stream) => {
                        self.counters.valid_framework_messages += 1;
                        out.event(
                            stream,
                            Event::Message(mantle_api::executor::MessageEvent { data: m.data }),
                        )
                    }
                    None => {
                        self.counters.invalid_framework_messages += 1;
                        tracing::warn!(executor_id = %m.executor_id, "dropping a framework message for an executor that is not subscribed")
                    }
                }
            }
        }
    }

    /// When the next [`Input::Tick`] has something to do (an executor's deadline, an
    /// update's retry, the executors' heartbeat), on the monotonic clock; `None` while
    /// nothing is timed. The shell sleeps until then rather than ticking, so that an
    /// idle agent, and a fleet of tens of thousands of simulated ones, costs no wakeups.
    pub fn next_timer(&self) -> Option<Duration> {
        let executors = || self.frameworks.values().flat_map(|f| f.executors.values());
        let deadlines = executors().flat_map(|e| {
            let registering = e.state == ExecutorState::Registering;
            [
                e.kill_deadline,
                e.registration_deadline.filter(|_| registering),
            ]
        });
        let retry = self.connected.then(|| self.updates.next_retry()).flatten();
        // The first tick after an executor subscribed sets the heartbeat's deadline.
        let heartbeat = executors()
            .any(|e| e.subscribed().is_some())
            .then(|| self.next_heartbeat.unwrap_or_default());
        deadlines.flatten().chain(retry).chain(heartbeat).min()
    }

    fn tick(&mut self, now: Now, out: &mut Out) {
        self.executor_timers(now, out);
        if self.connected {
            for update in self.updates.due(now.mono) {
                tracing::debug!(task_id = %update.status.task_id, "resending an unacknowledged status update");
                out.push(Action::ToMaster(Box::new(AgentCall::StatusUpdate(update))));
            }
        }
        match self.next_heartbeat {
            None => self.next_heartbeat = Some(now.mono + EXECUTOR_HEARTBEAT_INTERVAL),
            Some(at) if at <= now.mono => {
                self.next_heartbeat = Some(now.mono + EXECUTOR_HEARTBEAT_INTERVAL);
                let streams: Vec<StreamId> = self
                    .frameworks
                    .values()
                    .flat_map(|f| f.executors.values())
                    .filter_map(Executor::subscribed)
                    .collect();
                for stream in streams {
                    out.event(stream, Event::Heartbeat);
                }
            }
            Some(_) => {}
        }
    }

    /// A fresh random id from the seeded generator: 16 bytes.
    fn random_bytes(&mut self) -> [u8; 16] {
        let mut bytes = [0u8; 16];
        self.rng.fill_bytes(&mut bytes);
        bytes
    }

    fn new_container_id(&mut self) -> ContainerId {
        let bytes = self.random_bytes();
        ContainerId::new(
            uuid::Builder::from_random_bytes(bytes)
                .into_uuid()
                .to_string(),
        )
    }

    fn new_status_uuid(&mut self) -> String {
        let bytes = self.random_bytes();
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    /// Sends a message to the master when connected; otherwise it is dropped, because
    /// what matters is resent after re-registration (status updates) or reported in it
    /// (executors).
    fn to_master(&self, out: &mut Out, call: AgentCall) {
        if self.connected {
            out.push(Action::ToMaster(Box::new(call)));
        } else {
            tracing::debug!("not connected to the master; dropping a message");
        }
    }

    /// Generates an update of the agent's own (SOURCE_AGENT) and takes it like an
    /// executor's.
    #[allow(clippy::too_many_arguments)]
    fn agent_update(
        &mut self,
        now: Now,
        out: &mut Out,
        framework_id: &FrameworkId,
        executor_id: &ExecutorId,
        task_id: &TaskId,
        state: TaskState,
        reason: Reason,
        message: String,
    ) {
        let mut status = TaskStatus::new(task_id.clone(), state);
        status.source = Some(Source::Agent);
        status.reason = Some(reason);
        status.message = Some(message);
        status.executor_id = Some(executor_id.clone());
        status.uuid = Some(self.new_status_uuid());
        self.take_update(now, out, framework_id, status);
    }

    /// Records an update on its task and appends it to the task's update stream; the
    /// stream's head goes to the master.
    fn take_update(
        &mut self,
        now: Now,
        out: &mut Out,
        framework_id: &FrameworkId,
        mut status: TaskStatus,
    ) {
        status.agent_id = self.agent_id.clone();
        if status.timestamp.is_none() {
            status.timestamp = Some(now.unix);
        }
        let task_id = status.task_id.clone();
        let run = self.task_run_key(framework_id, &task_id);
        let kept = status.clone();
        let taken = match self
            .updates
            .update(framework_id, status, now.mono, self.connected)
        {
            Ok(taken) => taken,
            Err(err) => {
                self.counters.invalid_status_updates += 1;
                tracing::warn!(error = %err, "status update not taken");
                return;
            }
        };
        self.counters.valid_status_updates += 1;
        tracing::info!(
            task_id = %task_id,
            state = %kept.state,
            source = ?kept.source.map(|s| s.as_str()),
            "status update"
        );
        if let Some(run) = run {
            let record = UpdateRecord::Update(Box::new(kept.clone()));
            recovery::checkpoint(
                out,
                Checkpoint::Record {
                    run,
                    task_id: task_id.clone(),
                    record,
                },
            );
        }
        let ends = kept.state.is_terminal()
            && self
                .find_task_mut(framework_id, &task_id)
                .is_some_and(|t| !t.state.is_terminal());
        if ends {
            *self
                .counters
                .terminal_tasks
                .entry(kept.state.as_str())
                .or_default() += 1;
        }
        match self.find_task_mut(framework_id, &task_id) {
            Some(task) => {
                task.state = kept.state;
                if task.statuses.len() >= MAX_STATUSES_PER_TASK {
                    task.statuses.remove(1);
                }
                let mut kept = kept;
                kept.data = None;
                task.statuses.push(kept);
            }
            None => {
                tracing::warn!(task_id = %task_id, framework_id = %framework_id, "status update for an unknown task")
            }
        }
        if let Some(update) = taken {
            out.push(Action::ToMaster(Box::new(AgentCall::StatusUpdate(update))));
        }
    }

    fn acknowledge(
        &mut self,
        now: Now,
        out: &mut Out,
        framework_id: &FrameworkId,
        task_id: &TaskId,
        uuid: &str,
    ) {
        let acked =
            match self
                .updates
                .acknowledge(framework_id, task_id, uuid, now.mono, self.connected)
            {
                Ok(acked) => acked,
                Err(err) => {
                    tracing::warn!(error = %err, "ignoring a status update acknowledgement");
                    return;
                }
            };
        if let Some(run) = self.task_run_key(framework_id, task_id) {
            let record = UpdateRecord::Ack(uuid.to_string());
            recovery::checkpoint(
                out,
                Checkpoint::Record {
                    run,
                    task_id: task_id.clone(),
                    record,
                },
            );
        }
        if let Some(next) = acked.next {
            out.push(Action::ToMaster(Box::new(AgentCall::StatusUpdate(next))));
        }
        if acked.status.state.is_terminal() {
            self.complete_task(out, framework_id, task_id);
        }
    }

    pub(crate) fn find_executor(
        &self,
        framework_id: &FrameworkId,
        executor_id: &ExecutorId,
    ) -> Result<&Executor, ApiError> {
        let Some(framework) = self.frameworks.get(framework_id) else {
            return Err(ApiError::bad_request(format!(
                "framework '{framework_id}' is not known on this agent"
            )));
        };
        framework.executors.get(executor_id).ok_or_else(|| {
            ApiError::bad_request(format!(
                "executor '{executor_id}' of framework '{framework_id}' is not known on this agent"
            ))
        })
    }

    fn find_task_mut(&mut self, framework_id: &FrameworkId, task_id: &TaskId) -> Option<&mut Task> {
        self.frameworks
            .get_mut(framework_id)?
            .executor_of_mut(task_id)?
            .tasks
            .get_mut(task_id)
    }

    /// The environment and sandbox of a new run of an executor.
    fn launch_spec(
        &self,
        framework: &FrameworkInfo,
        info: &ExecutorInfo,
        container_id: &ContainerId,
        agent_id: &AgentId,
    ) -> LaunchSpec {
        let framework_id = info
            .framework_id
            .clone()
            .unwrap_or_else(|| FrameworkId::new(""));
        let directory = sandbox::sandbox_dir(
            &self.config.work_dir,
            agent_id,
            &framework_id,
            &info.executor_id,
            container_id,
        );
        let command = info
            .command
            .clone()
            .unwrap_or_else(|| self.builtin_executor_command());
        let grace = info
            .shutdown_grace_period
            .map(|d| Duration::from_nanos(d.nanoseconds.max(0) as u64))
            .unwrap_or(self.config.executor_shutdown_grace_period);
        let endpoint = self.config.endpoint();
        let mut env = sandbox::executor_env(&sandbox::EnvInputs {
            framework_id: &framework_id,
            executor_id: &info.executor_id,
            agent_id,
            container_id,
            directory: &directory,
            agent_endpoint: &endpoint,
            checkpoint: framework.checkpoint,
            shutdown_grace_period: grace,
            recovery_timeout: self.config.recovery_timeout,
            subscription_backoff_max: self.config.executor_reregistration_timeout,
            command: &command,
        });
        // The built-in executor runs a DOCKER task through the engine's socket, which
        // only the agent's user may be able to reach; Mesos runs `mesos-docker-executor`
        // as the agent's user too. The task itself runs as its image says.
        let docker_executor = self.config.docker_socket.is_some()
            && wants_docker(info.container.as_ref())
            && command.value.as_deref() == Some(&*self.config.launcher.to_string_lossy());
        let user = match docker_executor {
            true => None,
            false => command
                .user
                .clone()
                .or_else(|| Some(framework.user.clone()))
                .filter(|user| !user.is_empty()),
        };
        // Last, so that neither the command's variables nor the agent's own environment
        // decide whether the executor uses Docker: an empty socket means it does not.
        match &self.config.docker_socket {
            Some(socket) => env.extend([
                (
                    "MANTLE_DOCKER_SOCKET".to_string(),
                    socket.to_string_lossy().into_owned(),
                ),
                (
                    "MANTLE_DOCKER_NAME".to_string(),
                    docker_container_name(container_id),
                ),
                (
                    "MANTLE_DOCKER_LABEL_AGENT".to_string(),
                    self.config.work_dir.to_string_lossy().into_owned(),
                ),
            ]),
            None => env.push(("MANTLE_DOCKER_SOCKET".to_string(), String::new())),
        }
        LaunchSpec {
            framework_id,
            executor_id: info.executor_id.clone(),
            container_id: container_id.clone(),
            agent_id: agent_id.clone(),
            directory,
            user,
            command,
            env,
            limits: ContainerLimits::default(),
            container: info.container.clone(),
            checkpoint: framework.checkpoint,
        }
    }

    /// `<launcher> executor`, the built-in executor.
    fn builtin_executor_command(&self) -> CommandInfo {
        let launcher = self.config.launcher.to_string_lossy().into_owned();
        CommandInfo {
            uris: Vec::new(),
            environment: None,
            shell: false,
            value: Some(launcher.clone()),
            arguments: vec![launcher, "executor".to_string()],
            user: None,
        }
    }
}

/// The name of the Docker container a command task of `container_id` runs in, as the
/// Docker containerizer names it (reference §7): `mesos-<container_id>`.
pub fn docker_container_name(container_id: &ContainerId) -> String {
    format!("mesos-{container_id}")
}

/// Whether a ContainerInfo asks for Docker: its `type` is DOCKER (1).
fn wants_docker(container: Option<&serde_json::Value>) -> bool {
    match container.map(|c| &c["type"]) {
        Some(serde_json::Value::String(kind)) => kind == "DOCKER",
        Some(serde_json::Value::Number(kind)) => kind.as_u64() == Some(1),
        _ => false,
    }
}
