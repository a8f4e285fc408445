//! The decisions of the built-in executor: a state machine that takes one input and the
//! current time and returns what to do. It plays two Mesos executors, chosen by the
//! first launch it receives:
//!
//! - the command executor (reference §2, "Command executor"): a LAUNCH runs its one task;
//!   any further task is refused;
//! - the default executor (reference §1.5, ExecutorInfo type DEFAULT): every LAUNCH_GROUP
//!   runs all tasks of its group, each from its own CommandInfo and in its own process
//!   group. A group lives and dies together (reference §1.2, KILL): a KILL of one task,
//!   or a task ending unsuccessfully, kills the group's other tasks, which end
//!   TASK_KILLED; a task that exits 0 leaves its siblings alone.
//!
//! For each task: TASK_STARTING and the spawn, TASK_RUNNING once it started, the terminal
//! update when it ends; kills send SIGTERM to the task's process group and SIGKILL after
//! the grace period. The executor stops once every task it was given is terminal and the
//! updates are acknowledged (or waited for long enough).
//!
//! A LAUNCH whose task has a ContainerInfo of type DOCKER runs in a Docker container
//! instead, as under Mesos's Docker containerizer and `mesos-docker-executor` (reference
//! §7): the same life, with [`Action::RunContainer`] for the spawn and
//! [`Action::StopContainer`] for the SIGTERM. The agent says through the environment
//! whether it runs that containerizer ([`Config::docker`]); a task of a LAUNCH_GROUP may
//! not ask for Docker, as in Mesos.
//!
//! Nothing here touches processes, sockets or clocks; the driver performs the actions
//! and feeds back their results.

mod task;
#[cfg(test)]
mod tests;

use crate::container_info::{docker_task, wants_docker, DockerContext, DockerTask};
use crate::exit_status::Exit;
use crate::timing::kill_grace;
use mantle_api::{KillPolicy, Reason, TaskId, TaskInfo, TaskState, TaskStatus};
use std::time::{Duration, Instant};
use task::{Runtime, Task};

/// What the core needs to know about its surroundings.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The framework checkpoints, so an agent disconnection is survived by resubscribing.
    pub checkpoint: bool,
    /// The grace period a SHUTDOWN gives the tasks.
    pub shutdown_grace: Duration,
    /// How long to wait for the terminal updates' acknowledgements before exiting anyway.
    pub ack_timeout: Duration,
    /// The Docker containerizer, when the agent runs it (`--containerizers` holds
    /// `docker`); without it a task that asks for Docker fails.
    pub docker: Option<DockerContext>,
}

/// Something that happened.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// SUBSCRIBED; whether the framework has the TASK_KILLING_STATE capability.
    Subscribed {
        task_killing_state: bool,
    },
    Launch(Box<TaskInfo>),
    /// LAUNCH_GROUP with the tasks of its task group.
    LaunchGroup(Vec<TaskInfo>),
    Kill {
        task_id: TaskId,
        kill_policy: Option<KillPolicy>,
    },
    Shutdown,
    /// The command asked for by [`Action::Spawn`] (or the container asked for by
    /// [`Action::RunContainer`]) for this task started.
    Spawned(TaskId),
    /// The command asked for by [`Action::Spawn`] (or the container asked for by
    /// [`Action::RunContainer`]) for this task could not start.
    SpawnFailed {
        task_id: TaskId,
        error: String,
    },
    /// The task's process ended.
    Exited {
        task_id: TaskId,
        exit: Exit,
    },
    /// The task's Docker container ended with this status (128 + the signal when a
    /// signal ended it); `oom_killed` when the engine saw the OOM killer end it.
    ContainerExited {
        task_id: TaskId,
        status: i64,
        oom_killed: bool,
    },
    /// The event stream closed.
    Disconnected,
    /// The executor cannot reach the agent and has given up trying.
    GaveUp,
    /// Time passed; the driver sends this at [`Core::next_deadline`].
    Tick,
}

/// Something to do, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Send this status update (the client fills uuid, source and timestamp).
    Send(Box<TaskStatus>),
    /// Start this task's command; answer with [`Input::Spawned`] or [`Input::SpawnFailed`].
    Spawn(Box<TaskInfo>),
    /// Pull the image if needed, create and start the task's Docker container, copy its
    /// output into the sandbox and wait for it; answer with [`Input::Spawned`] or
    /// [`Input::SpawnFailed`], then [`Input::ContainerExited`] once it ended and was
    /// removed.
    RunContainer(Box<DockerTask>),
    /// Stop the task's container like `docker stop -t <grace>`: its stop signal now,
    /// SIGKILL once the grace period is over.
    StopContainer { task_id: TaskId, grace: Duration },
    /// Signal the task's process group (or its container's main process).
    Signal { task_id: TaskId, signal: Signal },
    /// Stop now.
    Exit,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Term,
    Kill,
}

/// Why the executor is killing a task; it decides the terminal state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KillCause {
    /// A KILL event, for this task or another task of its group.
    Requested,
    /// A SHUTDOWN event (or a SIGTERM to the executor).
    Shutdown,
    /// The task ran past its `max_completion_time`.
    MaxCompletionTime,
    /// Another task of its group ended unsuccessfully.
    GroupFailed,
}

/// Which Mesos executor this one is playing; the first launch decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// No task yet.
    Waiting,
    /// A LAUNCH came first: one task, as `mesos-executor`.
    Command,
    /// A LAUNCH_GROUP came first: task groups, as `mesos-default-executor`.
    Default,
}

/// The executor's state.
pub struct Core {
    config: Config,
    task_killing_state: bool,
    mode: Mode,
    /// Every task given to the executor, in launch order.
    tasks: Vec<Task>,
    /// Per launch (see `Task::group`): whether the executor is killing that group, so
    /// that the deaths it causes do not start the kill again.
    groups_killing: Vec<bool>,
    shutting_down: bool,
    exit: bool,
}

const MULTIPLE_TASKS: &str = "Attempted to run multiple tasks using a \"command\" executor";
const LAUNCH_ON_DEFAULT: &str =
    "Attempted to run a single task using the \"default\" executor, which runs task groups";
const SHUTTING_DOWN: &str = "The executor is shutting down";
const NO_COMMAND: &str = "Task has no command";
/// Mesos's master refuses these with the same words; here the executor does.
const DOCKER_IN_GROUP: &str = "Docker ContainerInfo is not supported on the task";
const NO_DOCKER: &str = "The agent does not run the docker containerizer \
     (its --containerizers flag does not include docker)";

impl Core {
    pub fn new(config: Config) -> Core {
        Core {
            config,
            task_killing_state: false,
            mode: Mode::Waiting,
            tasks: Vec::new(),
            groups_killing: Vec::new(),
            shutting_down: false,
            exit: false,
        }
    }

    /// Handles one input at time `now`.
    pub fn handle(&mut self, input: Input, now: Instant) -> Vec<Action> {
        match input {
            Input::Subscribed { task_killing_state } => {
                self.task_killing_state = task_killing_state;
                Vec::new()
            }
            Input::Launch(task) => self.launch(*task, now),
            Input::LaunchGroup(tasks) => self.launch_group(tasks, now),
            Input::Kill {
                task_id,
                kill_policy,
            } => self.kill_requested(&task_id, kill_policy.as_ref(), now),
            Input::Shutdown => self.shutdown(now),
            Input::Spawned(task_id) => {
                let task_killing_state = self.task_killing_state;
                match self.find(&task_id) {
                    Some(index) => self.tasks[index].spawned(now, task_killing_state),
                    None => Vec::new(),
                }
            }
            Input::SpawnFailed { task_id, error } => {
                let Some(index) = self.find(&task_id) else {
                    return Vec::new();
                };
                match self.tasks[index].spawn_failed(&error, now) {
                    Some(update) => self.ended(index, update, now),
                    None => Vec::new(),
                }
            }
            Input::Exited { task_id, exit } => {
                let Some(index) = self.find(&task_id) else {
                    return Vec::new();
                };
                match self.tasks[index].exited(exit, now) {
                    Some(update) => self.ended(index, update, now),
                    None => Vec::new(),
                }
            }
            Input::ContainerExited {
                task_id,
                status,
                oom_killed,
            } => {
                let Some(index) = self.find(&task_id) else {
                    return Vec::new();
                };
                match self.tasks[index].container_exited(status, oom_killed, now) {
                    Some(update) => self.ended(index, update, now),
                    None => Vec::new(),
                }
            }
            Input::Disconnected if self.config.checkpoint => Vec::new(),
            Input::Disconnected | Input::GaveUp => self.abandon(),
            Input::Tick => {
                let task_killing_state = self.task_killing_state;
                self.tasks
                    .iter_mut()
                    .flat_map(|task| task.tick(now, task_killing_state))
                    .collect()
            }
        }
    }

    fn launch(&mut self, info: TaskInfo, now: Instant) -> Vec<Action> {
        if self.find(&info.task_id).is_some() {
            tracing::warn!(task_id = %info.task_id, "ignoring a repeated launch of a known task");
            return Vec::new();
        }
        match self.mode {
            Mode::Waiting => {}
            Mode::Command => {
                tracing::warn!(task_id = %info.task_id, "refusing a second task");
                return vec![refusal(info.task_id, MULTIPLE_TASKS)];
            }
            Mode::Default => {
                tracing::warn!(task_id = %info.task_id, "refusing a single task on an executor of task groups");
                return vec![refusal(info.task_id, LAUNCH_ON_DEFAULT)];
            }
        }
        self.mode = Mode::Command;
        let group = self.new_group();
        let task_id = info.task_id.clone();
        if info.command.is_none() {
            tracing::warn!(task_id = %task_id, "the task has no command");
            self.tasks.push(Task::ended(info, group, now));
            return vec![refusal(task_id, NO_COMMAND)];
        }
        if wants_docker(&info) {
            return self.launch_in_docker(info, group, now);
        }
        tracing::info!(task_id = %task_id, "launching the task");
        self.tasks
            .push(Task::launching(info.clone(), group, Runtime::Process));
        vec![
            send(task_id, TaskState::Starting, None, None),
            Action::Spawn(Box::new(info)),
        ]
    }

    /// A LAUNCH of a task that asks for a Docker container: it runs in one, or fails at
    /// once with REASON_CONTAINER_LAUNCH_FAILED when the agent has no Docker
    /// containerizer or its ContainerInfo cannot be run (the message names the field).
    fn launch_in_docker(&mut self, info: TaskInfo, group: usize, now: Instant) -> Vec<Action> {
        let task_id = info.task_id.clone();
        let docker = match &self.config.docker {
            None => Err(NO_DOCKER.to_string()),
            Some(context) => docker_task(&info, context)
                .map_err(|error| format!("Failed to launch container: {error}")),
        };
        match docker {
            Ok(docker) => {
                tracing::info!(task_id = %task_id, image = %docker.spec.image, container = %docker.name, "launching the task in docker");
                self.tasks
                    .push(Task::launching(info, group, Runtime::Docker));
                vec![
                    send(task_id, TaskState::Starting, None, None),
                    Action::RunContainer(Box::new(docker)),
                ]
            }
            Err(message) => {
                tracing::warn!(task_id = %task_id, error = %message, "not launching the task in docker");
                self.tasks.push(Task::ended(info, group, now));
                vec![send(
                    task_id,
                    TaskState::Failed,
                    Some(message),
                    Some(Reason::ContainerLaunchFailed),
                )]
            }
        }
    }

    fn launch_group(&mut self, infos: Vec<TaskInfo>, now: Instant) -> Vec<Action> {
        let mut accepted: Vec<TaskInfo> = Vec::new();
        for info in infos {
            let repeated = accepted.iter().any(|t| t.task_id == info.task_id);
            if repeated || self.find(&info.task_id).is_some() {
                tracing::warn!(task_id = %info.task_id, "ignoring a repeated launch of a known task");
                continue;
            }
            accepted.push(info);
        }
        if accepted.is_empty() {
            tracing::warn!("ignoring a task group without new tasks");
            return Vec::new();
        }
        if self.mode == Mode::Command {
            return accepted
                .into_iter()
                .map(|info| {
                    tracing::warn!(task_id = %info.task_id, "the command executor does not run task groups");
                    refusal(info.task_id, MULTIPLE_TASKS)
                })
                .collect();
        }
        if self.shutting_down {
            return accepted
                .into_iter()
                .map(|info| {
                    tracing::warn!(task_id = %info.task_id, "refusing a task while shutting down");
                    send(
                        info.task_id,
                        TaskState::Killed,
                        Some(SHUTTING_DOWN.into()),
                        None,
                    )
                })
                .collect();
        }
        self.mode = Mode::Default;
        let group = self.new_group();
        let task_ids: Vec<String> = accepted.iter().map(|t| t.task_id.to_string()).collect();
        tracing::info!(group, task_ids = ?task_ids, "launching a task group");

        // A group that cannot run whole does not start at all: the task without a command
        // (or asking for Docker) fails, and the others, killed with their group, never
        // start.
        let bad = accepted
            .iter()
            .find_map(|t| group_problem(t).map(|(_, why)| (t.task_id.clone(), why)));
        if let Some((bad, why)) = bad {
            tracing::warn!(group, task_id = %bad, why, "a task of the group cannot run; not starting the group");
            self.groups_killing[group] = true;
            let mut actions = Vec::new();
            for info in accepted {
                actions.push(match group_problem(&info) {
                    Some((message, _)) => send(
                        info.task_id.clone(),
                        TaskState::Failed,
                        Some(message.into()),
                        Some(Reason::TaskGroupInvalid),
                    ),
                    None => send(
                        info.task_id.clone(),
                        TaskState::Killed,
                        Some(format!("Task not started: task {bad} of its group {why}")),
                        Some(Reason::TaskGroupInvalid),
                    ),
                });
                self.tasks.push(Task::ended(info, group, now));
            }
            return actions;
        }

        let mut actions = Vec::new();
        for info in accepted {
            actions.push(send(info.task_id.clone(), TaskState::Starting, None, None));
            actions.push(Action::Spawn(Box::new(info.clone())));
            self.tasks
                .push(Task::launching(info, group, Runtime::Process));
        }
        actions
    }

    /// A KILL: the task and every other live task of its group.
    fn kill_requested(
        &mut self,
        task_id: &TaskId,
        policy: Option<&KillPolicy>,
        now: Instant,
    ) -> Vec<Action> {
        let Some(index) = self.find(task_id) else {
            tracing::warn!(task_id = %task_id, "ignoring a kill for a task this executor does not run");
            return Vec::new();
        };
        if self.tasks[index].is_terminal() {
            tracing::info!(task_id = %task_id, "ignoring a kill for a task that already ended");
            return Vec::new();
        }
        let group = self.tasks[index].group;
        self.groups_killing[group] = true;
        let task_killing_state = self.task_killing_state;
        let mut actions = Vec::new();
        // The named task first, then the rest of its group in launch order.
        let others = (0..self.tasks.len()).filter(|&i| i != index);
        for i in std::iter::once(index).chain(others) {
            let task = &mut self.tasks[i];
            if task.group != group || task.is_terminal() {
                continue;
            }
            let grace = kill_grace(policy, task.info.kill_policy.as_ref());
            tracing::info!(task_id = %task.id(), kill_for = %task_id, grace_secs = grace.as_secs_f64(), "killing the task");
            actions.extend(task.kill(KillCause::Requested, grace, now, task_killing_state));
        }
        actions
    }

    fn shutdown(&mut self, now: Instant) -> Vec<Action> {
        if self.tasks.iter().all(Task::is_terminal) {
            return self.exit_now();
        }
        let grace = self.config.shutdown_grace;
        tracing::info!(grace_secs = grace.as_secs_f64(), "shutting down");
        self.shutting_down = true;
        self.groups_killing
            .iter_mut()
            .for_each(|killing| *killing = true);
        let task_killing_state = self.task_killing_state;
        self.tasks
            .iter_mut()
            .flat_map(|task| task.kill(KillCause::Shutdown, grace, now, task_killing_state))
            .collect()
    }

    /// The task at `index` ended with `update`. A task of a group that ends other than
    /// TASK_FINISHED takes the rest of its group with it, unless the group is already
    /// being killed.
    fn ended(&mut self, index: usize, update: TaskStatus, now: Instant) -> Vec<Action> {
        let state = update.state;
        let mut actions = vec![Action::Send(Box::new(update))];
        let group = self.tasks[index].group;
        if state == TaskState::Finished || self.groups_killing[group] {
            return actions;
        }
        self.groups_killing[group] = true;
        let failed = self.tasks[index].id().clone();
        let task_killing_state = self.task_killing_state;
        for task in &mut self.tasks {
            if task.group != group || task.is_terminal() {
                continue;
            }
            let grace = kill_grace(None, task.info.kill_policy.as_ref());
            tracing::info!(
                task_id = %task.id(),
                failed = %failed,
                state = %state,
                grace_secs = grace.as_secs_f64(),
                "killing the task because another task of its group ended"
            );
            actions.extend(task.kill(KillCause::GroupFailed, grace, now, task_killing_state));
        }
        actions
    }

    /// Gives up on the agent: kills every task outright and stops.
    fn abandon(&mut self) -> Vec<Action> {
        let mut actions: Vec<Action> = self
            .tasks
            .iter()
            .filter(|task| task.has_process())
            .map(|task| task.signal(Signal::Kill))
            .collect();
        actions.extend(self.exit_now());
        actions
    }

    fn exit_now(&mut self) -> Vec<Action> {
        self.exit = true;
        vec![Action::Exit]
    }

    fn new_group(&mut self) -> usize {
        self.groups_killing.push(false);
        self.groups_killing.len() - 1
    }

    fn find(&self, task_id: &TaskId) -> Option<usize> {
        self.tasks.iter().position(|task| task.id() == task_id)
    }

    /// When the last task ended, if every task has.
    fn all_ended_at(&self) -> Option<Instant> {
        let mut last: Option<Instant> = None;
        for task in &self.tasks {
            let at = task.terminated_at()?;
            last = Some(last.map_or(at, |last| last.max(at)));
        }
        last
    }

    /// When the driver must send [`Input::Tick`] next, if at all: a task's SIGKILL or
    /// `max_completion_time`, or, once all tasks ended, the end of the wait for their
    /// acknowledgements.
    pub fn next_deadline(&self) -> Option<Instant> {
        if let Some(last) = self.all_ended_at() {
            return Some(last + self.config.ack_timeout);
        }
        self.tasks.iter().filter_map(Task::deadline).min()
    }

    /// Whether the executor should stop: it was told to, or every task it was given has
    /// ended and their updates are acknowledged (none is outstanding) or were waited for
    /// long enough.
    pub fn should_exit(&self, now: Instant, unacknowledged: usize) -> bool {
        if self.exit {
            return true;
        }
        match self.all_ended_at() {
            Some(last) => unacknowledged == 0 || now >= last + self.config.ack_timeout,
            None => false,
        }
    }
}

/// Why a task of a group cannot run: its TASK_FAILED message, and the words for its
/// siblings' TASK_KILLED.
fn group_problem(info: &TaskInfo) -> Option<(&'static str, &'static str)> {
    if info.command.is_none() {
        return Some((NO_COMMAND, "has no command"));
    }
    if wants_docker(info) {
        return Some((DOCKER_IN_GROUP, "asks for a Docker container"));
    }
    None
}

/// A TASK_FAILED for a task the executor will not run.
fn refusal(task_id: TaskId, message: &str) -> Action {
    send(task_id, TaskState::Failed, Some(message.to_string()), None)
}

fn status(
    task_id: TaskId,
    state: TaskState,
    message: Option<String>,
    reason: Option<Reason>,
) -> TaskStatus {
    let mut status = TaskStatus::new(task_id, state);
    status.message = message;
    status.reason = reason;
    status
}

fn send(
    task_id: TaskId,
    state: TaskState,
    message: Option<String>,
    reason: Option<Reason>,
) -> Action {
    Action::Send(Box::new(status(task_id, state, message, reason)))
}
