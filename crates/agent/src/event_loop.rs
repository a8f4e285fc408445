//! The agent's event loop (DESIGN invariant 3): the one owner of the core. HTTP
//! handlers, the master link and process watchers send it commands; it feeds them to the
//! core, carries out the actions, and publishes a snapshot of the core (`view.rs`) when
//! a reader asks for one. A simulated agent's loop hands containers and executor
//! streams to its simulated executors (`simulated/`) instead of processes, and feeds
//! what they say back to the core as their calls would.

use crate::containers::Containerizer;
use crate::core::{Action, Core, Input, LaunchSpec, Now, StreamId};
use bytes::Bytes;
use mantle_api::error::ApiError;
use mantle_api::internal::{AgentCall, Register};
use mantle_api::ContainerId;
use mantle_containerizer::docker::Docker;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

/// The snapshot is taken only when someone reads it, and at most this often: copying
/// costs time proportional to the state, and readers can poll in a tight loop.
const MIN_RENDER_GAP: Duration = Duration::from_millis(50);
/// Commands handled before the snapshot is published and timers get a turn.
const MAX_BATCH: usize = 256;

pub(crate) enum Command {
    /// An input for the core; executor calls wait for the reply. Boxed, as in
    /// `Subscribe`: every channel of commands allocates room for 32 of them at once,
    /// which counts when one process runs thousands of simulated agents.
    Input {
        input: Box<Input>,
        reply: Option<oneshot::Sender<Result<(), ApiError>>>,
    },
    /// SUBSCRIBE: events for `stream` go to `sender` from now on.
    Subscribe {
        input: Box<Input>,
        stream: StreamId,
        sender: mpsc::UnboundedSender<Bytes>,
        reply: oneshot::Sender<Result<(), ApiError>>,
    },
    /// The master link asks what to register with.
    RegisterCall(oneshot::Sender<Register>),
    /// A reader (`/state`, `/files`, metrics, the operator API) wants a current
    /// snapshot; answered once one is published.
    Refresh(oneshot::Sender<()>),
    /// `/monitor/statistics` and GET_CONTAINERS want the running containers.
    Containers(oneshot::Sender<Vec<crate::monitor::Running>>),
}

impl Command {
    /// An input that needs no answer.
    pub fn input(input: Input) -> Command {
        Command::Input {
            input: Box::new(input),
            reply: None,
        }
    }
}

/// How often a running container is checked against its memory limit (an OOM kill in
/// its cgroup); terminal updates from its executor are checked at once as well.
const LIMIT_CHECK_INTERVAL: Duration = Duration::from_millis(250);

/// The agent's own view of a container.
struct Process {
    spec: Arc<LaunchSpec>,
    /// The launcher's pid, once started.
    pid: Option<u32>,
    /// A kill arrived before the pid.
    kill: bool,
    /// A limitation was reported for it already.
    limited: bool,
}

pub(crate) struct EventLoop {
    core: Core,
    started: Instant,
    commands: mpsc::UnboundedReceiver<Command>,
    /// For the tasks this loop starts (process watchers).
    commands_tx: mpsc::UnboundedSender<Command>,
    to_master: mpsc::UnboundedSender<Box<AgentCall>>,
    snapshot: watch::Sender<Arc<crate::view::View>>,
    work_dir: PathBuf,
    streams: HashMap<StreamId, mpsc::UnboundedSender<Bytes>>,
    processes: HashMap<ContainerId, Process>,
    containers: Arc<Containerizer>,
    /// The Docker engine, when `--containerizers` holds `docker`.
    docker: Option<Docker>,
    dirty: bool,
    /// The master link asked what to register with while recovered executors could
    /// still subscribe again; answered once that is settled.
    pending_register: Option<oneshot::Sender<Register>>,
    /// The simulated executors, for `--containerizers=simulated`.
    simulation: Option<crate::simulated::Simulation>,
}

impl EventLoop {
    pub fn new(
        core: Core,
        commands: mpsc::UnboundedReceiver<Command>,
        commands_tx: mpsc::UnboundedSender<Command>,
        to_master: mpsc::UnboundedSender<Box<AgentCall>>,
        snapshot: watch::Sender<Arc<crate::view::View>>,
        work_dir: PathBuf,
        containers: Arc<Containerizer>,
    ) -> EventLoop {
        EventLoop {
            core,
            started: Instant::now(),
            commands,
            commands_tx,
            to_master,
            snapshot,
            work_dir,
            streams: HashMap::new(),
            processes: HashMap::new(),
            containers,
            docker: None,
            dirty: true,
            pending_register: None,
            simulation: None,
        }
    }

    /// Runs containers as simulated executors.
    pub fn with_simulation(mut self, simulation: crate::simulated::Simulation) -> EventLoop {
        self.simulation = Some(simulation);
        self
    }

    /// Runs with the Docker containerizer: the Docker container of each executor's
    /// task is removed once the executor ends, and when the agent stops.
    pub fn with_docker(mut self, docker: Option<Docker>) -> EventLoop {
        self.docker = docker;
        self
    }

    /// Runs until `shutdown` says whether to kill every container or only those of
    /// frameworks that do not checkpoint.
    pub async fn run(mut self, mut shutdown: oneshot::Receiver<bool>) {
        let mut readers: Vec<oneshot::Sender<()>> = Vec::new();
        let mut published_at: Option<Instant> = None;
        // Two timers, each reset only when its deadline changes: the core's next one
        // (or the end of the render gap readers wait for), and the simulated
        // executors' next one. Nothing ticks: an agent with nothing timed sleeps.
        let far = || Instant::now() + Duration::from_secs(86400 * 365);
        let core_timer = tokio::time::sleep_until(far());
        let timer = tokio::time::sleep_until(far());
        tokio::pin!(core_timer, timer);
        let mut core_armed: Option<Instant> = None;
        let mut armed: Option<Instant> = None;
        let kill_all = loop {
            let render = published_at
                .filter(|_| !readers.is_empty())
                .map(|at| at + MIN_RENDER_GAP);
            let core_next = self.core.next_timer().map(|at| self.started + at);
            let next = core_next.into_iter().chain(render).min();
            if next != core_armed {
                core_armed = next;
                core_timer.as_mut().reset(next.unwrap_or_else(far));
            }
            let next = self
                .simulation
                .as_ref()
                .and_then(|s| s.executors.next_deadline())
                .map(|at| self.started + at);
            if next != armed {
                armed = next;
                timer.as_mut().reset(next.unwrap_or_else(far));
            }
            tokio::select! {
                kill_all = &mut shutdown => break kill_all.unwrap_or(false),
                command = self.commands.recv() => {
                    let Some(command) = command else { break false };
                    self.dispatch(command, &mut readers);
                    for _ in 1..MAX_BATCH {
                        match self.commands.try_recv() {
                            Ok(command) => self.dispatch(command, &mut readers),
                            Err(_) => break,
                        }
                    }
                }
                _ = &mut core_timer, if core_armed.is_some() => {
                    core_armed = None;
                    core_timer.as_mut().reset(far());
                    if core_next.is_some_and(|at| at <= Instant::now()) {
                        self.input(Input::Tick, None);
                    }
                }
                _ = &mut timer, if armed.is_some() => {
                    armed = None;
                    timer.as_mut().reset(far());
                    let now = self.now();
                    if let Some(simulation) = &mut self.simulation {
                        simulation.fire(now);
                    }
                    self.run_simulated();
                }
            }
            // Readers get a snapshot rendered after the changes they may have seen, unless
            // one was rendered very recently; then they wait for the gap's end.
            if !readers.is_empty() {
                let recent = published_at.is_some_and(|t| t.elapsed() < MIN_RENDER_GAP);
                if !(self.dirty && recent) {
                    if self.publish() {
                        published_at = Some(Instant::now());
                    }
                    for reader in readers.drain(..) {
                        let _ = reader.send(());
                    }
                }
            }
        };
        let stopped = self.stop(kill_all);
        if let Some(docker) = &self.docker {
            for container_id in &stopped {
                remove_docker_container(docker, container_id).await;
            }
        }
    }

    fn now(&self) -> Now {
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        Now {
            mono: self.started.elapsed(),
            unix,
        }
    }

    /// Publishes the snapshot if anything changed; returns whether it did.
    fn publish(&mut self) -> bool {
        if !self.dirty {
            return false;
        }
        self.dirty = false;
        self.snapshot
            .send_replace(Arc::new(crate::view::View::of(&self.core)));
        true
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Input { input, reply } => self.input(*input, reply),
            Command::Subscribe {
                input,
                stream,
                sender,
                reply,
            } => {
                self.streams.insert(stream, sender);
                self.input(*input, Some(reply));
            }
            Command::RegisterCall(reply) => {
                self.pending_register = Some(reply);
                self.answer_register();
            }
            // Gathered by `dispatch`; one that gets here anyway is answered at once.
            Command::Refresh(reply) => {
                let _ = reply.send(());
            }
            Command::Containers(reply) => {
                let running = self
                    .processes
                    .values()
                    .map(|p| crate::monitor::Running {
                        spec: p.spec.clone(),
                        launcher_pid: p.pid,
                        executor: self.core.container_executor(&p.spec.container_id).cloned(),
                    })
                    .collect();
                let _ = reply.send(running);
            }
        }
    }

    /// Handles a command, setting `/state` readers aside to be answered after the batch.
    fn dispatch(&mut self, command: Command, readers: &mut Vec<oneshot::Sender<()>>) {
        match command {
            Command::Refresh(reply) => readers.push(reply),
            command => self.command(command),
        }
    }

    /// Applies an input, then whatever the simulated executors answer to it.
    fn input(&mut self, input: Input, reply: Option<oneshot::Sender<Result<(), ApiError>>>) {
        self.input_one(input, reply);
        self.run_simulated();
    }

    /// Feeds the core what the simulated executors said, until they are quiet.
    fn run_simulated(&mut self) {
        while let Some(input) = self.simulation.as_mut().and_then(|s| s.next_input()) {
            self.input_one(input, None);
        }
        if let Some(simulation) = &mut self.simulation {
            simulation.report();
        }
    }

    fn input_one(&mut self, input: Input, reply: Option<oneshot::Sender<Result<(), ApiError>>>) {
        let tick = matches!(input, Input::Tick);
        if let Some(simulation) = &mut self.simulation {
            simulation.observe(&input);
        }
        let subscribe = match &input {
            Input::Subscribe { stream, .. } => Some(*stream),
            _ => None,
        };
        match &input {
            Input::Launched { container_id, pid } => self.launched(container_id, *pid),
            Input::Exited { container_id, .. } | Input::LaunchFailed { container_id, .. } => {
                self.processes.remove(container_id);
            }
            Input::Update {
                framework_id,
                executor_id,
                status,
            } if status.state.is_terminal() => {
                // The executor may report a task the kernel's OOM killer ended before
                // the watcher sees the kill: the limitation has to win that race.
                if let Some(container_id) = self.core.container_of(framework_id, executor_id) {
                    self.check_limits(&container_id);
                }
            }
            Input::Limited { container_id, .. } => {
                if let Some(process) = self.processes.get_mut(container_id) {
                    process.limited = true;
                }
            }
            Input::StreamClosed { stream } => {
                self.streams.remove(stream);
            }
            _ => {}
        }
        let now = self.now();
        let output = self.core.handle(now, input);
        if let (Some(stream), Err(_)) = (subscribe, &output.reply) {
            self.streams.remove(&stream);
        }
        if !tick || !output.actions.is_empty() {
            self.dirty = true;
        }
        // The answer goes last: an update is on disk before its executor hears that
        // it was taken.
        self.act_all(output.actions);
        if let Some(reply) = reply {
            let _ = reply.send(output.reply);
        }
        self.answer_register();
    }

    /// Takes the state an earlier run checkpointed and reattaches to its containers.
    pub fn recover(&mut self, recovered: crate::core::Recovered) {
        let now = self.now();
        let actions = self.core.recover(now, recovered);
        self.act_all(actions);
        self.run_simulated();
    }

    /// Carries out actions in order.
    fn act_all(&mut self, actions: Vec<Action>) {
        for action in actions {
            self.act(action);
        }
    }

    /// Answers the master link's registration question once recovery is settled.
    fn answer_register(&mut self) {
        if self.pending_register.is_some() && !self.core.recovering() {
            if let Some(reply) = self.pending_register.take() {
                let _ = reply.send(self.core.register_call());
            }
        }
    }

    fn act(&mut self, action: Action) {
        let now = self.simulation.is_some().then(|| self.now());
        let action = match (&mut self.simulation, now) {
            (Some(simulation), Some(now)) => match simulation.act(now, action) {
                Some(action) => action,
                None => return,
            },
            _ => action,
        };
        match action {
            Action::ToMaster(call) => {
                let _ = self.to_master.send(call);
            }
            Action::ToExecutor { stream, event } => {
                let record = mantle_api::recordio::encode(&mantle_api::json::to_ascii_json(
                    &event.to_value(),
                ));
                let delivered = self
                    .streams
                    .get(&stream)
                    .is_some_and(|s| s.send(record).is_ok());
                if !delivered {
                    tracing::debug!(stream, "executor stream is gone");
                    self.streams.remove(&stream);
                    let input = Input::StreamClosed { stream };
                    let _ = self.commands_tx.send(Command::input(input));
                }
            }
            Action::CloseStream { stream } => {
                self.streams.remove(&stream);
            }
            Action::Launch(spec) => {
                let spec = self.track(*spec);
                tokio::spawn(launch(
                    self.work_dir.clone(),
                    spec,
                    self.containers.clone(),
                    self.docker.clone(),
                    self.commands_tx.clone(),
                ));
            }
            Action::Kill { container_id } => {
                let Some(process) = self.processes.get_mut(&container_id) else {
                    return;
                };
                match process.pid {
                    Some(pid) => {
                        tracing::info!(container_id = %container_id, pid, "killing container");
                        let spec = process.spec.clone();
                        self.kill(spec, Some(pid));
                    }
                    None => process.kill = true,
                }
            }
            Action::Update {
                container_id,
                limits,
            } => {
                let containers = self.containers.clone();
                tokio::task::spawn_blocking(move || containers.update(&container_id, &limits));
            }
            Action::Checkpoint(checkpoint) => {
                // Synchronous on purpose: the actions after it (the executor's
                // acknowledgement, the update to the master) must not overtake it.
                if let Err(err) = crate::checkpoint::write(&self.work_dir, &checkpoint) {
                    tracing::error!(error = %err, "checkpoint failed; a restart may lose this state");
                }
            }
            Action::Reattach(spec) => {
                let spec = self.track(*spec);
                tokio::spawn(watch(
                    self.work_dir.clone(),
                    spec,
                    Watched::Recovered,
                    self.containers.clone(),
                    self.docker.clone(),
                    self.commands_tx.clone(),
                ));
            }
        }
    }

    /// Starts tracking a container whose process is being started or looked for.
    fn track(&mut self, spec: LaunchSpec) -> Arc<LaunchSpec> {
        let spec = Arc::new(spec);
        self.processes.insert(
            spec.container_id.clone(),
            Process {
                spec: spec.clone(),
                pid: None,
                kill: false,
                limited: false,
            },
        );
        spec
    }

    /// Kills a container off the event loop (a cgroup kill waits for the processes).
    fn kill(&self, spec: Arc<LaunchSpec>, pid: Option<u32>) {
        let containers = self.containers.clone();
        let work_dir = self.work_dir.clone();
        tokio::task::spawn_blocking(move || containers.kill(&work_dir, &spec, pid));
    }

    /// Feeds the core a limitation the container hit, once.
    fn check_limits(&mut self, container_id: &ContainerId) {
        let Some(process) = self.processes.get(container_id).filter(|p| !p.limited) else {
            return;
        };
        if let Some(limitation) = self.containers.limitation(&process.spec, false) {
            let input = Input::Limited {
                container_id: container_id.clone(),
                limitation,
            };
            self.input(input, None);
        }
    }

    fn launched(&mut self, container_id: &ContainerId, pid: u32) {
        if let Some(process) = self.processes.get_mut(container_id) {
            process.pid = Some(pid);
            if process.kill {
                let spec = process.spec.clone();
                self.kill(spec, Some(pid));
            }
        }
    }

    /// The agent stops: the containers of frameworks that do not checkpoint are killed,
    /// since nothing would supervise them any more; the others keep running for the
    /// next run of the agent to recover, as in Mesos. Returns the ids of those killed,
    /// so that their Docker containers can be removed too.
    fn stop(&mut self, kill_all: bool) -> Vec<ContainerId> {
        let mut stopped = Vec::new();
        for (container_id, process) in self.processes.drain() {
            if process.spec.checkpoint && !kill_all {
                tracing::info!(container_id = %container_id, "leaving a checkpointed container running as the agent stops");
                continue;
            }
            tracing::info!(container_id = %container_id, "killing container as the agent stops");
            self.containers
                .kill(&self.work_dir, &process.spec, process.pid);
            self.containers.destroy(&container_id);
            stopped.push(container_id);
        }
        self.streams.clear();
        stopped
    }
}

/// Removes the Docker container `mesos-<container_id>` the executor of that container
/// may have left running (it was killed, or died, before it could remove it itself).
/// One that is not there counts as removed.
async fn remove_docker_container(docker: &Docker, container_id: &ContainerId) {
    let name = crate::core::docker_container_name(container_id);
    match docker.remove(&name, true).await {
        Ok(()) => {
            tracing::debug!(container_id = %container_id, container = %name, "no docker container left")
        }
        Err(err) => {
            tracing::warn!(container_id = %container_id, container = %name, error = %err, "removing the docker container failed")
        }
    }
}

/// Creates the sandbox and the container, starts the launcher and watches it until it
/// exits, checking the container's limits meanwhile.
async fn launch(
    work_dir: PathBuf,
    spec: Arc<LaunchSpec>,
    containers: Arc<Containerizer>,
    docker: Option<Docker>,
    commands: mpsc::UnboundedSender<Command>,
) {
    let container_id = spec.container_id.clone();
    let send = |input: Input| {
        let _ = commands.send(Command::input(input));
    };
    // Creating files and cgroups and starting the launcher block; none of it runs on a
    // runtime worker.
    let started = {
        let (containers, work_dir, spec) = (containers.clone(), work_dir.clone(), spec.clone());
        tokio::task::spawn_blocking(move || containers.start(&work_dir, &spec)).await
    };
    let started = match started {
        Ok(Ok(started)) => started,
        Ok(Err(err)) => {
            let containers = containers.clone();
            let id = container_id.clone();
            let _ = tokio::task::spawn_blocking(move || containers.destroy(&id)).await;
            send(Input::LaunchFailed {
                container_id,
                error: err.to_string(),
            });
            return;
        }
        Err(join) => {
            send(Input::LaunchFailed {
                container_id,
                error: format!("launching failed: {join}"),
            });
            return;
        }
    };
    let pid = started.pid;
    // A restarted agent finds the launcher by this record.
    let rundir = crate::containers::run_dir(&work_dir, &spec);
    if let Err(err) = crate::checkpoint::write_launcher_pid(&rundir, pid, started.start_time) {
        tracing::warn!(container_id = %container_id, error = %err, "cannot record the launcher's pid");
    }
    send(Input::Launched {
        container_id: container_id.clone(),
        pid,
    });
    if commands.is_closed() {
        // The agent stopped while this container was starting.
        containers.kill(&work_dir, &spec, Some(pid));
    }
    watch(
        work_dir,
        spec,
        Watched::Started(started),
        containers,
        docker,
        commands,
    )
    .await;
}

/// How a container's end is noticed.
pub(crate) enum Watched {
    /// The launcher this agent started: its exit is awaited.
    Started(crate::launcher_server::Started),
    /// A container an earlier run of the agent started: found through the pids it
    /// recorded, and polled.
    Recovered,
}

/// What is left to poll of a recovered container.
#[derive(Clone, Copy)]
enum Recorded {
    /// The launcher, identified by its pid and start time (or, as recorded by an older
    /// agent, by its command line naming this run's config).
    Launcher { pid: u32, start_time: Option<u64> },
    /// Only the executor's pid was recorded (the agent stopped before it wrote the
    /// launcher's).
    Executor(u32),
}

/// The raw wait status assumed for a recovered executor whose launcher left no status:
/// killed by SIGKILL along with its launcher.
const UNRECORDED_WAIT_STATUS: i32 = libc::SIGKILL;
/// How often a recovered container's processes are looked at.
const RECOVERED_POLL_INTERVAL: Duration = Duration::from_millis(250);

impl Recorded {
    fn find(rundir: &std::path::Path) -> Option<Recorded> {
        if let Some((pid, start_time)) = crate::checkpoint::read_launcher_pid(rundir) {
            let launcher = Recorded::Launcher { pid, start_time };
            if launcher.alive(rundir) {
                return Some(launcher);
            }
        }
        let pid = mantle_containerizer::launch::read_pid(rundir).ok()??;
        let executor = Recorded::Executor(u32::try_from(pid).ok()?);
        executor.alive(rundir).then_some(executor)
    }

    fn pid(&self) -> u32 {
        match self {
            Recorded::Launcher { pid, .. } | Recorded::Executor(pid) => *pid,
        }
    }

    /// Whether the process still runs (a zombie does not). A launcher must still be the
    /// one recorded, so that a reused pid is not mistaken for it.
    fn alive(&self, rundir: &std::path::Path) -> bool {
        let proc_dir = PathBuf::from(format!("/proc/{}", self.pid()));
        let stat = std::fs::read_to_string(proc_dir.join("stat")).unwrap_or_default();
        let running = stat
            .rsplit_once(')')
            .and_then(|(_, fields)| fields.trim_start().chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X');
        match *self {
            Recorded::Executor(_) => running,
            Recorded::Launcher {
                start_time: Some(start_time),
                ..
            } => {
                running && mantle_containerizer::launch::stat_start_time(&stat) == Some(start_time)
            }
            Recorded::Launcher {
                start_time: None, ..
            } => {
                let config = rundir.join(mantle_containerizer::launch::CONFIG_FILE);
                running
                    && std::fs::read(proc_dir.join("cmdline")).is_ok_and(|cmdline| {
                        cmdline
                            .split(|b| *b == 0)
                            .any(|arg| arg == config.as_os_str().as_encoded_bytes())
                    })
            }
        }
    }
}

/// Watches a container until its executor is gone, checking its limits meanwhile, then
/// cleans up what it left and reports how it ended.
async fn watch(
    work_dir: PathBuf,
    spec: Arc<LaunchSpec>,
    watched: Watched,
    containers: Arc<Containerizer>,
    docker: Option<Docker>,
    commands: mpsc::UnboundedSender<Command>,
) {
    let container_id = spec.container_id.clone();
    let send = |input: Input| {
        let _ = commands.send(Command::input(input));
    };
    let rundir = crate::containers::run_dir(&work_dir, &spec);
    let (exit_report, recorded) = match watched {
        // Should the server die before the launcher, the launcher is polled instead.
        Watched::Started(started) => (
            Some(started.exit),
            Some(Recorded::Launcher {
                pid: started.pid,
                start_time: Some(started.start_time).filter(|start| *start != 0),
            }),
        ),
        Watched::Recovered => {
            let dir = rundir.clone();
            let found = tokio::task::spawn_blocking(move || Recorded::find(&dir))
                .await
                .ok()
                .flatten();
            match &found {
                Some(process) => {
                    tracing::info!(container_id = %container_id, pid = process.pid(), "reattached to a recovered container");
                    send(Input::Launched {
                        container_id: container_id.clone(),
                        pid: process.pid(),
                    });
                }
                None => {
                    tracing::info!(container_id = %container_id, "a recovered container is no longer running")
                }
            }
            (None, found)
        }
    };
    let launcher_status = {
        let exit = async {
            if let Some(exit_report) = exit_report {
                if let Ok(status) = exit_report.await {
                    return status;
                }
            }
            if let Some(process) = &recorded {
                loop {
                    let (dir, process) = (rundir.clone(), *process);
                    let alive = tokio::task::spawn_blocking(move || process.alive(&dir));
                    if !alive.await.unwrap_or(false) {
                        break;
                    }
                    tokio::time::sleep(RECOVERED_POLL_INTERVAL).await;
                }
                // The launcher records the executor's status just after reaping it.
                for _ in 0..20 {
                    if matches!(
                        mantle_containerizer::launch::read_status(&rundir),
                        Ok(Some(_))
                    ) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            UNRECORDED_WAIT_STATUS
        };
        tokio::pin!(exit);
        let mut limit_check = tokio::time::interval(LIMIT_CHECK_INTERVAL);
        limit_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_disk_check = Instant::now();
        // Nothing to watch is as good as a limitation already found.
        let mut limited = !containers.has_limits_to_watch();
        loop {
            tokio::select! {
                status = &mut exit => break status,
                _ = limit_check.tick(), if !limited => {
                    let check_disk = containers
                        .disk_watch()
                        .is_some_and(|every| last_disk_check.elapsed() >= every);
                    if check_disk {
                        last_disk_check = Instant::now();
                    }
                    let (c, s) = (containers.clone(), spec.clone());
                    let found = tokio::task::spawn_blocking(move || c.limitation(&s, check_disk)).await;
                    if let Ok(Some(limitation)) = found {
                        limited = true;
                        send(Input::Limited { container_id: container_id.clone(), limitation });
                    }
                }
            }
        }
    };
    // The container ends with its executor: whatever it left behind is killed, and the
    // executor's own exit status is what the launcher recorded.
    let ended = {
        let (c, s, w) = (containers.clone(), spec.clone(), work_dir.clone());
        tokio::task::spawn_blocking(move || {
            c.kill_and_destroy(&w, &s);
            (
                c.exit_status(&w, &s),
                c.launch_error(&w, &s, launcher_status),
            )
        })
        .await
    };
    // A task's Docker container is not in the executor's container: it goes now, before
    // the executor's end is reported, so that the tasks' terminal updates mean it is gone.
    if let Some(docker) = &docker {
        remove_docker_container(docker, &container_id).await;
    }
    match ended {
        Ok((_, Some(error))) => send(Input::LaunchFailed {
            container_id,
            error,
        }),
        Ok((status, None)) => send(Input::Exited {
            container_id,
            status: status.unwrap_or(launcher_status),
        }),
        Err(_) => send(Input::Exited {
            container_id,
            status: launcher_status,
        }),
    }
}
