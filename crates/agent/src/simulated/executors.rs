//! The simulated executors of one agent: a pure state machine (DESIGN invariant 2) that
//! stands in for executor processes. The agent's shell hands it the containers the core
//! launches and the events the core sends to executor streams; it answers with the
//! inputs a real executor's calls and its process's exit would give the core
//! (SUBSCRIBE, UPDATE, stream closed, exited), at once or when one of its timers is due.
//!
//! Each simulated executor behaves as the executor it stands for (reference §2): it
//! subscribes as soon as it is launched; answers LAUNCH and every task of a LAUNCH_GROUP
//! with TASK_STARTING and TASK_RUNNING; ends each task after its planned run time
//! (`plan.rs`) in TASK_FINISHED or TASK_FAILED; answers KILL with TASK_KILLING (when the
//! framework has the TASK_KILLING_STATE capability) and TASK_KILLED after the kill delay
//! (shortened to the kill policy's grace period when that is shorter); on SHUTDOWN kills
//! its tasks the same way and exits. The built-in executors (the command executor, and
//! the default executor of task groups) exit once all their tasks ended and the agent
//! acknowledged every update, and a task of a group that fails or is killed takes the
//! rest of its group with it; a custom executor stays until it is shut down, as a real
//! one would. A killed container is gone at once: its executor says nothing more.

use super::plan::{plan, Plan};
use crate::core::{Input, LaunchSpec, Now, StreamId};
use base64::Engine;
use mantle_api::executor::{Event, Subscribe};
use mantle_api::{
    ContainerId, ExecutorId, FrameworkId, KillPolicy, Source, TaskId, TaskInfo, TaskState,
    TaskStatus,
};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

/// The wait status of an executor killed with SIGKILL.
pub const SIGKILL_STATUS: i32 = 9;
/// How long a kill takes unless the task's grace period is shorter.
pub const DEFAULT_KILL_DELAY: Duration = Duration::from_millis(100);
/// Streams of simulated executors are numbered from here, far from those the HTTP
/// executor API numbers from 1.
const FIRST_STREAM: StreamId = 1 << 62;

/// How simulated executors behave.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The run time of tasks that do not say (`--simulated_task_duration`).
    pub task_duration: Duration,
    /// How long a killed task takes to end.
    pub kill_delay: Duration,
    /// The `mantle` binary the core names as the built-in executor's program.
    pub launcher: PathBuf,
    /// Seeds the status update uuids.
    pub seed: u64,
}

/// One simulated task.
#[derive(Debug)]
struct Task {
    state: TaskState,
    plan: Plan,
    /// The LAUNCH_GROUP it came with.
    group: Option<u64>,
    /// The timer that ends it, by its key in `Executors::timers`.
    timer: Option<TimerKey>,
    killing: bool,
}

/// One simulated executor.
#[derive(Debug)]
struct Executor {
    framework_id: FrameworkId,
    executor_id: ExecutorId,
    stream: StreamId,
    /// The command or default executor: exits once it has nothing left to do.
    builtin: bool,
    /// Its framework takes TASK_KILLING.
    killing_state: bool,
    tasks: BTreeMap<TaskId, Task>,
    /// Updates the agent has not acknowledged yet, by uuid.
    unacknowledged: usize,
    shutting_down: bool,
    next_group: u64,
}

/// What a timer does when due.
#[derive(Clone, Debug, PartialEq)]
enum Timer {
    /// The task ends as planned.
    End(TaskId),
    /// The killed task is gone.
    Killed(TaskId),
}

type TimerKey = (Duration, u64);

/// Every simulated executor of one agent.
pub struct Executors {
    settings: Settings,
    rng: StdRng,
    by_container: HashMap<ContainerId, Executor>,
    by_stream: HashMap<StreamId, ContainerId>,
    timers: BTreeMap<TimerKey, (ContainerId, Timer)>,
    next_timer: u64,
    next_stream: StreamId,
    /// Tasks handed to these executors, and their terminal updates by state, since the
    /// start.
    pub stats: Stats,
}

/// What the simulated executors did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub launched: u64,
    pub finished: u64,
    pub failed: u64,
    pub killed: u64,
}

impl Stats {
    fn count(&mut self, state: TaskState) {
        match state {
            TaskState::Finished => self.finished += 1,
            TaskState::Failed => self.failed += 1,
            TaskState::Killed => self.killed += 1,
            _ => {}
        }
    }
}

impl Executors {
    pub fn new(settings: Settings) -> Executors {
        Executors {
            rng: StdRng::seed_from_u64(settings.seed),
            settings,
            by_container: HashMap::new(),
            by_stream: HashMap::new(),
            timers: BTreeMap::new(),
            next_timer: 0,
            next_stream: FIRST_STREAM,
            stats: Stats::default(),
        }
    }

    /// Whether `stream` is a simulated executor's.
    pub fn owns_stream(&self, stream: StreamId) -> bool {
        stream >= FIRST_STREAM
    }

    /// How many executors run.
    pub fn len(&self) -> usize {
        self.by_container.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_container.is_empty()
    }

    /// The core launched a container: its executor starts and subscribes.
    pub fn launch(&mut self, spec: &LaunchSpec) -> Vec<Input> {
        let stream = self.next_stream;
        self.next_stream += 1;
        let launcher = self.settings.launcher.to_string_lossy();
        let builtin = spec.command.value.as_deref() == Some(&*launcher)
            && spec.command.arguments.last().map(String::as_str) == Some("executor");
        self.by_stream.insert(stream, spec.container_id.clone());
        self.by_container.insert(
            spec.container_id.clone(),
            Executor {
                framework_id: spec.framework_id.clone(),
                executor_id: spec.executor_id.clone(),
                stream,
                builtin,
                killing_state: false,
                tasks: BTreeMap::new(),
                unacknowledged: 0,
                shutting_down: false,
                next_group: 0,
            },
        );
        vec![Input::Subscribe {
            framework_id: spec.framework_id.clone(),
            executor_id: spec.executor_id.clone(),
            subscribe: Subscribe::default(),
            stream,
        }]
    }

    /// The core wants the container of an executor an earlier agent process ran: its
    /// simulated executor ended with that process.
    pub fn reattach(&mut self, spec: &LaunchSpec) -> Vec<Input> {
        vec![Input::Exited {
            container_id: spec.container_id.clone(),
            status: SIGKILL_STATUS,
        }]
    }

    /// The core killed a container: its executor is gone without another word.
    pub fn kill(&mut self, container_id: &ContainerId) -> Vec<Input> {
        let mut inputs = Vec::new();
        self.exit(container_id, SIGKILL_STATUS, &mut inputs);
        inputs
    }

    /// The core closed an executor's stream (it only does so for one that is gone, or
    /// subscribed again, which simulated executors never do).
    pub fn stream_closed(&mut self, stream: StreamId) {
        self.by_stream.remove(&stream);
    }

    /// An event the core sent to a simulated executor's stream.
    pub fn event(&mut self, now: Now, stream: StreamId, event: Event) -> Vec<Input> {
        let mut inputs = Vec::new();
        let Some(container_id) = self.by_stream.get(&stream).cloned() else {
            return inputs;
        };
        match event {
            Event::Subscribed(subscribed) => {
                if let Some(executor) = self.by_container.get_mut(&container_id) {
                    executor.killing_state = subscribed
                        .framework_info
                        .has_capability("TASK_KILLING_STATE");
                }
            }
            Event::Launch(launch) => {
                self.start_task(now, &container_id, launch.task, None, &mut inputs);
            }
            Event::LaunchGroup(group) => {
                let Some(executor) = self.by_container.get_mut(&container_id) else {
                    return inputs;
                };
                let id = executor.next_group;
                executor.next_group += 1;
                for task in group.task_group.tasks {
                    self.start_task(now, &container_id, task, Some(id), &mut inputs);
                }
            }
            Event::Kill(kill) => {
                self.kill_task(
                    now,
                    &container_id,
                    &kill.task_id,
                    kill.kill_policy,
                    &mut inputs,
                );
            }
            Event::Acknowledged(_) => {
                if let Some(executor) = self.by_container.get_mut(&container_id) {
                    executor.unacknowledged = executor.unacknowledged.saturating_sub(1);
                }
                self.exit_if_done(&container_id, &mut inputs);
            }
            Event::Shutdown => {
                let live = match self.by_container.get_mut(&container_id) {
                    Some(executor) => {
                        executor.shutting_down = true;
                        live_tasks(executor)
                    }
                    None => return inputs,
                };
                for task_id in live {
                    self.kill_task(now, &container_id, &task_id, None, &mut inputs);
                }
                self.exit_if_done(&container_id, &mut inputs);
            }
            Event::Message(_) | Event::Error(_) | Event::Heartbeat | Event::Other(_) => {}
        }
        inputs
    }

    /// When the next timer is due.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.timers.keys().next().map(|(at, _)| *at)
    }

    /// Fires every timer due by `now`.
    pub fn due(&mut self, now: Now) -> Vec<Input> {
        let mut inputs = Vec::new();
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now.mono {
                break;
            }
            let (container_id, timer) = entry.remove();
            match timer {
                Timer::End(task_id) => {
                    let Some(task) = self.task_mut(&container_id, &task_id) else {
                        continue;
                    };
                    task.timer = None;
                    let (state, reason, message) =
                        (task.plan.state, task.plan.reason, task.plan.message.clone());
                    let mut status = TaskStatus::new(task_id.clone(), state);
                    status.reason = reason;
                    status.message = Some(message);
                    self.update(now, &container_id, status, &mut inputs);
                    self.end_group(now, &container_id, &task_id, state, &mut inputs);
                }
                Timer::Killed(task_id) => {
                    if let Some(task) = self.task_mut(&container_id, &task_id) {
                        task.timer = None;
                    }
                    let mut status = TaskStatus::new(task_id, TaskState::Killed);
                    status.message = Some("Command terminated with signal Terminated".into());
                    self.update(now, &container_id, status, &mut inputs);
                }
            }
            self.exit_if_done(&container_id, &mut inputs);
        }
        inputs
    }

    fn task_mut(&mut self, container_id: &ContainerId, task_id: &TaskId) -> Option<&mut Task> {
        self.by_container
            .get_mut(container_id)?
            .tasks
            .get_mut(task_id)
            .filter(|t| !t.state.is_terminal())
    }

    fn start_task(
        &mut self,
        now: Now,
        container_id: &ContainerId,
        task: TaskInfo,
        group: Option<u64>,
        inputs: &mut Vec<Input>,
    ) {
        let Some(executor) = self.by_container.get_mut(container_id) else {
            return;
        };
        if executor.tasks.contains_key(&task.task_id) {
            return;
        }
        let plan = plan(&task, self.settings.task_duration);
        let run_time = plan.run_time;
        executor.tasks.insert(
            task.task_id.clone(),
            Task {
                state: TaskState::Staging,
                plan,
                group,
                timer: None,
                killing: false,
            },
        );
        self.stats.launched += 1;
        for state in [TaskState::Starting, TaskState::Running] {
            let status = TaskStatus::new(task.task_id.clone(), state);
            self.update(now, container_id, status, inputs);
        }
        if let Some(run_time) = run_time {
            self.set_timer(container_id, &task.task_id, now.mono + run_time, false);
        }
    }

    fn kill_task(
        &mut self,
        now: Now,
        container_id: &ContainerId,
        task_id: &TaskId,
        policy: Option<KillPolicy>,
        inputs: &mut Vec<Input>,
    ) {
        let kill_delay = self.settings.kill_delay;
        let Some(executor) = self.by_container.get_mut(container_id) else {
            return;
        };
        let killing_state = executor.killing_state;
        let Some(task) = executor.tasks.get_mut(task_id) else {
            return;
        };
        if task.state.is_terminal() || task.killing {
            return;
        }
        task.killing = true;
        let grace = policy
            .and_then(|p| p.grace_period)
            .map(|d| Duration::from_nanos(d.nanoseconds.max(0) as u64));
        let delay = grace.map_or(kill_delay, |grace| grace.min(kill_delay));
        if killing_state {
            let status = TaskStatus::new(task_id.clone(), TaskState::Killing);
            self.update(now, container_id, status, inputs);
        }
        self.set_timer(container_id, task_id, now.mono + delay, true);
    }

    /// A task of a group failed or was killed: the rest of the group is killed.
    fn end_group(
        &mut self,
        now: Now,
        container_id: &ContainerId,
        task_id: &TaskId,
        state: TaskState,
        inputs: &mut Vec<Input>,
    ) {
        if state == TaskState::Finished {
            return;
        }
        let Some(executor) = self.by_container.get(container_id) else {
            return;
        };
        let Some(group) = executor.tasks.get(task_id).and_then(|t| t.group) else {
            return;
        };
        let others: Vec<TaskId> = executor
            .tasks
            .iter()
            .filter(|(id, t)| *id != task_id && t.group == Some(group) && !t.state.is_terminal())
            .map(|(id, _)| id.clone())
            .collect();
        for other in others {
            self.kill_task(now, container_id, &other, None, inputs);
        }
    }

    /// Replaces the task's timer.
    fn set_timer(
        &mut self,
        container_id: &ContainerId,
        task_id: &TaskId,
        at: Duration,
        kill: bool,
    ) {
        let key = (at, self.next_timer);
        self.next_timer += 1;
        let Some(task) = self
            .by_container
            .get_mut(container_id)
            .and_then(|e| e.tasks.get_mut(task_id))
        else {
            return;
        };
        if let Some(old) = task.timer.replace(key) {
            self.timers.remove(&old);
        }
        let timer = match kill {
            true => Timer::Killed(task_id.clone()),
            false => Timer::End(task_id.clone()),
        };
        self.timers.insert(key, (container_id.clone(), timer));
    }

    /// Sends an UPDATE for one of an executor's tasks.
    fn update(
        &mut self,
        now: Now,
        container_id: &ContainerId,
        mut status: TaskStatus,
        inputs: &mut Vec<Input>,
    ) {
        let mut uuid = [0u8; 16];
        self.rng.fill_bytes(&mut uuid);
        let Some(executor) = self.by_container.get_mut(container_id) else {
            return;
        };
        let Some(task) = executor.tasks.get_mut(&status.task_id) else {
            return;
        };
        task.state = status.state;
        if status.state.is_terminal() {
            self.stats.count(status.state);
            if let Some(timer) = task.timer.take() {
                self.timers.remove(&timer);
            }
        }
        executor.unacknowledged += 1;
        status.source = Some(Source::Executor);
        status.executor_id = Some(executor.executor_id.clone());
        status.uuid = Some(base64::engine::general_purpose::STANDARD.encode(uuid));
        status.timestamp = Some(now.unix);
        inputs.push(Input::Update {
            framework_id: executor.framework_id.clone(),
            executor_id: executor.executor_id.clone(),
            status,
        });
    }

    /// A built-in executor, or one shutting down, exits once its tasks ended and its
    /// updates were acknowledged.
    fn exit_if_done(&mut self, container_id: &ContainerId, inputs: &mut Vec<Input>) {
        let done = self.by_container.get(container_id).is_some_and(|e| {
            (e.builtin || e.shutting_down)
                && e.unacknowledged == 0
                && live_tasks(e).is_empty()
                && (e.shutting_down || !e.tasks.is_empty())
        });
        if done {
            self.exit(container_id, 0, inputs);
        }
    }

    /// The executor's process ends with `status`.
    fn exit(&mut self, container_id: &ContainerId, status: i32, inputs: &mut Vec<Input>) {
        let Some(executor) = self.by_container.remove(container_id) else {
            return;
        };
        for task in executor.tasks.values() {
            if let Some(timer) = task.timer {
                self.timers.remove(&timer);
            }
        }
        if self.by_stream.remove(&executor.stream).is_some() {
            inputs.push(Input::StreamClosed {
                stream: executor.stream,
            });
        }
        inputs.push(Input::Exited {
            container_id: container_id.clone(),
            status,
        });
    }
}

fn live_tasks(executor: &Executor) -> Vec<TaskId> {
    executor
        .tasks
        .iter()
        .filter(|(_, t)| !t.state.is_terminal())
        .map(|(id, _)| id.clone())
        .collect()
}
