//! The agent's event loop (DESIGN invariant 3): the one owner of the core. HTTP
//! handlers, the master link and process watchers send it commands; it feeds them to the
//! core, carries out the actions, and publishes the `/state` snapshot when it is read.

use crate::containers::Containerizer;
use crate::core::{Action, Core, Input, LaunchSpec, Now, StreamId};
use bytes::Bytes;
use mantle_api::error::ApiError;
use mantle_api::internal::{AgentCall, Register};
use mantle_api::ContainerId;
use mantle_containerizer::docker::Docker;
use serde_json::Value;
use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

/// How often timers are checked.
const TICK_INTERVAL: Duration = Duration::from_millis(100);
/// The `/state` snapshot is rendered only when someone reads it, and at most this often:
/// rendering costs time proportional to the state, and readers can poll in a tight loop.
const MIN_RENDER_GAP: Duration = Duration::from_millis(50);
/// Commands handled before the snapshot is published and timers get a turn.
const MAX_BATCH: usize = 256;

pub(crate) enum Command {
    /// An input for the core; executor calls wait for the reply.
    Input {
        input: Input,
        reply: Option<oneshot::Sender<Result<(), ApiError>>>,
    },
    /// SUBSCRIBE: events for `stream` go to `sender` from now on.
    Subscribe {
        input: Input,
        stream: StreamId,
        sender: mpsc::UnboundedSender<Bytes>,
        reply: oneshot::Sender<Result<(), ApiError>>,
    },
    /// The master link asks what to register with.
    RegisterCall(oneshot::Sender<Register>),
    /// A reader of `/state` wants a current snapshot; answered once one is published.
    Refresh(oneshot::Sender<()>),
    /// `/monitor/statistics` and GET_CONTAINERS want the running containers.
    Containers(oneshot::Sender<Vec<crate::monitor::Running>>),
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
    to_master: mpsc::UnboundedSender<AgentCall>,
    snapshot: watch::Sender<Arc<Value>>,
    work_dir: PathBuf,
    streams: HashMap<StreamId, mpsc::UnboundedSender<Bytes>>,
    processes: HashMap<ContainerId, Process>,
    containers: Arc<Containerizer>,
    /// The Docker engine, when `--containerizers` holds `docker`.
    docker: Option<Docker>,
    dirty: bool,
}

impl EventLoop {
    pub fn new(
        core: Core,
        commands: mpsc::UnboundedReceiver<Command>,
        commands_tx: mpsc::UnboundedSender<Command>,
        to_master: mpsc::UnboundedSender<AgentCall>,
        snapshot: watch::Sender<Arc<Value>>,
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
        }
    }

    /// Runs with the Docker containerizer: the Docker container of each executor's
    /// task is removed once the executor ends, and when the agent stops.
    pub fn with_docker(mut self, docker: Option<Docker>) -> EventLoop {
        self.docker = docker;
        self
    }

    pub async fn run(mut self, mut shutdown: oneshot::Receiver<()>) {
        let mut tick = tokio::time::interval(TICK_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut readers: Vec<oneshot::Sender<()>> = Vec::new();
        let mut published_at: Option<Instant> = None;
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                command = self.commands.recv() => {
                    let Some(command) = command else { break };
                    self.dispatch(command, &mut readers);
                    for _ in 1..MAX_BATCH {
                        match self.commands.try_recv() {
                            Ok(command) => self.dispatch(command, &mut readers),
                            Err(_) => break,
                        }
                    }
                }
                _ = tick.tick() => self.input(Input::Tick, None),
            }
            // Readers get a snapshot rendered after the changes they may have seen, unless
            // one was rendered very recently; then they wait for the next tick.
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
        }
        let stopped = self.stop();
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
            .send_replace(Arc::new(crate::state::state_json(&self.core)));
        true
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Input { input, reply } => self.input(input, reply),
            Command::Subscribe {
                input,
                stream,
                sender,
                reply,
            } => {
                self.streams.insert(stream, sender);
                self.input(input, Some(reply));
            }
            Command::RegisterCall(reply) => {
                let _ = reply.send(self.core.register_call());
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

    fn input(&mut self, input: Input, reply: Option<oneshot::Sender<Result<(), ApiError>>>) {
        let tick = matches!(input, Input::Tick);
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
        if let Some(reply) = reply {
            let _ = reply.send(output.reply);
        }
        if !tick || !output.actions.is_empty() {
            self.dirty = true;
        }
        for action in output.actions {
            self.act(action);
        }
    }

    fn act(&mut self, action: Action) {
        match action {
            Action::ToMaster(call) => {
                let _ = self.to_master.send(*call);
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
                    let _ = self.commands_tx.send(Command::Input { input, reply: None });
                }
            }
            Action::CloseStream { stream } => {
                self.streams.remove(&stream);
            }
            Action::Launch(spec) => {
                let spec = Arc::new(*spec);
                self.processes.insert(
                    spec.container_id.clone(),
                    Process {
                        spec: spec.clone(),
                        pid: None,
                        kill: false,
                        limited: false,
                    },
                );
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
        }
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

    /// The agent stops: every container it started is killed, since nothing would
    /// supervise it any more (containers do not outlive the agent yet). Returns their
    /// ids, so that their Docker containers can be removed too.
    fn stop(&mut self) -> Vec<ContainerId> {
        let mut stopped = Vec::new();
        for (container_id, process) in self.processes.drain() {
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
        let _ = commands.send(Command::Input { input, reply: None });
    };
    // Creating files and cgroups and forking block; none of it runs on a runtime worker.
    let started = {
        let (containers, work_dir, spec) = (containers.clone(), work_dir.clone(), spec.clone());
        tokio::task::spawn_blocking(move || {
            let command = containers.start(&work_dir, &spec)?;
            crate::launcher::spawn(command)
        })
        .await
    };
    let mut child = match started {
        Ok(Ok(child)) => child,
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
    let Some(pid) = child.id() else {
        send(Input::LaunchFailed {
            container_id,
            error: "the launcher exited before it could be watched".into(),
        });
        return;
    };
    send(Input::Launched {
        container_id: container_id.clone(),
        pid,
    });
    if commands.is_closed() {
        // The agent stopped while this container was starting.
        containers.kill(&work_dir, &spec, Some(pid));
    }
    let mut limit_check = tokio::time::interval(LIMIT_CHECK_INTERVAL);
    limit_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_disk_check = Instant::now();
    // Nothing to watch is as good as a limitation already found.
    let mut limited = !containers.has_limits_to_watch();
    let launcher_status = loop {
        tokio::select! {
            status = child.wait() => break status,
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
    };
    let launcher_status = match launcher_status {
        Ok(status) => status.into_raw(),
        Err(err) => {
            tracing::warn!(container_id = %container_id, error = %err, "cannot wait for the launcher");
            -1
        }
    };
    // The container ends with its executor: whatever it left behind is killed, and the
    // executor's own exit status is what the launcher recorded.
    let ended = {
        let (c, s, w) = (containers.clone(), spec.clone(), work_dir.clone());
        tokio::task::spawn_blocking(move || {
            c.kill(&w, &s, None);
            c.destroy(&s.container_id);
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
