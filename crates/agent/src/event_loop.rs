//! The agent's event loop (DESIGN invariant 3): the one owner of the core. HTTP
//! handlers, the master link and process watchers send it commands; it feeds them to the
//! core, carries out the actions, and publishes the `/state` snapshot when it is read.

use crate::core::{Action, Core, Input, LaunchSpec, Now, StreamId};
use crate::launcher;
use bytes::Bytes;
use mantle_api::error::ApiError;
use mantle_api::internal::{AgentCall, Register};
use mantle_api::ContainerId;
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
}

/// The agent's own view of an executor process.
enum Process {
    /// Being started; `kill` is set when a kill arrived before the pid.
    Starting {
        kill: bool,
    },
    Running {
        pid: u32,
    },
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
            dirty: true,
        }
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
        self.stop();
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
                self.processes
                    .insert(spec.container_id.clone(), Process::Starting { kill: false });
                tokio::spawn(launch(
                    self.work_dir.clone(),
                    *spec,
                    self.commands_tx.clone(),
                ));
            }
            Action::Kill { container_id } => match self.processes.get_mut(&container_id) {
                Some(Process::Running { pid }) => {
                    tracing::info!(container_id = %container_id, pid = *pid, "killing executor process group");
                    launcher::kill_group(*pid);
                }
                Some(Process::Starting { kill }) => *kill = true,
                None => {}
            },
        }
    }

    fn launched(&mut self, container_id: &ContainerId, pid: u32) {
        if let Some(process) = self.processes.get_mut(container_id) {
            if matches!(process, Process::Starting { kill: true }) {
                launcher::kill_group(pid);
            }
            *process = Process::Running { pid };
        }
    }

    /// The agent stops: every executor it started is killed, since nothing would
    /// supervise it any more (executors do not outlive the agent yet).
    fn stop(&mut self) {
        for (container_id, process) in self.processes.drain() {
            if let Process::Running { pid } = process {
                tracing::info!(container_id = %container_id, pid, "killing executor as the agent stops");
                launcher::kill_group(pid);
            }
        }
        self.streams.clear();
    }
}

/// Creates the sandbox, starts the process and watches it until it exits.
async fn launch(work_dir: PathBuf, spec: LaunchSpec, commands: mpsc::UnboundedSender<Command>) {
    let container_id = spec.container_id.clone();
    let send = |input: Input| {
        let _ = commands.send(Command::Input { input, reply: None });
    };
    // Creating files and forking block; neither runs on a runtime worker.
    let started = tokio::task::spawn_blocking(move || launcher::start(&work_dir, &spec)).await;
    let mut child = match started {
        Ok(Ok(child)) => child,
        Ok(Err(err)) => {
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
            error: "the executor exited before it could be watched".into(),
        });
        return;
    };
    send(Input::Launched {
        container_id: container_id.clone(),
        pid,
    });
    if commands.is_closed() {
        // The agent stopped while this executor was starting.
        launcher::kill_group(pid);
    }
    let status = match child.wait().await {
        Ok(status) => status.into_raw(),
        Err(err) => {
            tracing::warn!(container_id = %container_id, error = %err, "cannot wait for the executor");
            -1
        }
    };
    // The executor's process group may hold processes it left behind; the container
    // ends with its leader, as with the Mesos posix launcher.
    launcher::kill_group(pid);
    send(Input::Exited {
        container_id,
        status,
    });
}
