//! The decisions of the command executor (reference §2, "Command executor"): a state
//! machine that takes one input and the current time and returns what to do. It runs one
//! task: LAUNCH sends TASK_STARTING and spawns the command, a successful spawn sends
//! TASK_RUNNING, the process's end sends the terminal update, and KILL or SHUTDOWN send
//! SIGTERM to the task's process group and SIGKILL after the grace period.
//!
//! Nothing here touches processes, sockets or clocks; the driver performs the actions
//! and feeds back their results.

use crate::exit_status::{describe, terminal_state, Exit};
use crate::timing::{duration_of, kill_grace};
use mantle_api::{KillPolicy, Reason, TaskId, TaskInfo, TaskState, TaskStatus};
use std::time::{Duration, Instant};

/// What the core needs to know about its surroundings.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The framework checkpoints, so an agent disconnection is survived by resubscribing.
    pub checkpoint: bool,
    /// The grace period a SHUTDOWN gives the task.
    pub shutdown_grace: Duration,
    /// How long to wait for the terminal update's acknowledgement before exiting anyway.
    pub ack_timeout: Duration,
}

/// Something that happened.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// SUBSCRIBED; whether the framework has the TASK_KILLING_STATE capability.
    Subscribed {
        task_killing_state: bool,
    },
    Launch(Box<TaskInfo>),
    /// LAUNCH_GROUP with these tasks; the command executor does not run task groups.
    LaunchGroup(Vec<TaskId>),
    Kill {
        task_id: TaskId,
        kill_policy: Option<KillPolicy>,
    },
    Shutdown,
    /// The command asked for by [`Action::Spawn`] started.
    Spawned,
    /// The command asked for by [`Action::Spawn`] could not start.
    SpawnFailed(String),
    /// The task's process ended.
    Exited(Exit),
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
    /// Signal the task's process group.
    Signal(Signal),
    /// Stop now.
    Exit,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Term,
    Kill,
}

/// Why the executor is killing its task; it decides the terminal state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KillCause {
    /// A KILL event.
    Requested,
    /// A SHUTDOWN event (or a SIGTERM to the executor).
    Shutdown,
    /// The task ran past its `max_completion_time`.
    MaxCompletionTime,
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Killing {
    cause: KillCause,
    /// When SIGKILL follows the SIGTERM.
    escalate_at: Instant,
    escalated: bool,
}

#[derive(Clone, Debug, PartialEq)]
enum Phase {
    /// No task yet.
    Idle,
    /// The command is being spawned; a kill that arrives meanwhile waits here.
    Launching {
        pending_kill: Option<(KillCause, Instant)>,
    },
    Running {
        started_at: Instant,
        killing: Option<Killing>,
    },
    /// The terminal update went out at this time.
    Terminated { at: Instant },
}

/// The command executor's state.
pub struct Core {
    config: Config,
    task_killing_state: bool,
    task: Option<TaskInfo>,
    phase: Phase,
    exit: bool,
}

const MULTIPLE_TASKS: &str = "Attempted to run multiple tasks using a \"command\" executor";

impl Core {
    pub fn new(config: Config) -> Core {
        Core {
            config,
            task_killing_state: false,
            task: None,
            phase: Phase::Idle,
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
            Input::LaunchGroup(task_ids) => task_ids
                .into_iter()
                .map(|task_id| {
                    tracing::warn!(task_id = %task_id, "the command executor does not run task groups");
                    send(task_id, TaskState::Failed, Some(MULTIPLE_TASKS.to_string()), None)
                })
                .collect(),
            Input::Kill { task_id, kill_policy } => {
                let Some(task) = self.task.as_ref().filter(|t| t.task_id == task_id) else {
                    tracing::warn!(task_id = %task_id, "ignoring a kill for a task this executor does not run");
                    return Vec::new();
                };
                let grace = kill_grace(kill_policy.as_ref(), task.kill_policy.as_ref());
                tracing::info!(task_id = %task_id, grace_secs = grace.as_secs_f64(), "killing the task");
                self.kill(KillCause::Requested, grace, now)
            }
            Input::Shutdown => match self.phase {
                Phase::Idle | Phase::Terminated { .. } => self.exit_now(),
                Phase::Launching { .. } | Phase::Running { .. } => {
                    tracing::info!(grace_secs = self.config.shutdown_grace.as_secs_f64(), "shutting down");
                    self.kill(KillCause::Shutdown, self.config.shutdown_grace, now)
                }
            },
            Input::Spawned => self.spawned(now),
            Input::SpawnFailed(error) => {
                let Phase::Launching { .. } = self.phase else { return Vec::new() };
                let Some(task) = &self.task else { return Vec::new() };
                let message = format!("Failed to launch the command: {error}");
                let task_id = task.task_id.clone();
                self.phase = Phase::Terminated { at: now };
                vec![send(task_id, TaskState::Failed, Some(message), Some(Reason::CommandExecutorFailed))]
            }
            Input::Exited(exit) => {
                let Phase::Running { killing, .. } = &self.phase else { return Vec::new() };
                let Some(task) = &self.task else { return Vec::new() };
                let (state, reason) = terminal_state(exit, killing.map(|k| k.cause));
                let task_id = task.task_id.clone();
                self.phase = Phase::Terminated { at: now };
                vec![send(task_id, state, Some(describe(exit)), reason)]
            }
            Input::Disconnected if self.config.checkpoint => Vec::new(),
            Input::Disconnected | Input::GaveUp => self.abandon(),
            Input::Tick => self.tick(now),
        }
    }

    fn launch(&mut self, task: TaskInfo, now: Instant) -> Vec<Action> {
        if let Some(current) = &self.task {
            if current.task_id == task.task_id {
                tracing::warn!(task_id = %task.task_id, "ignoring a repeated launch of the running task");
                return Vec::new();
            }
            tracing::warn!(task_id = %task.task_id, "refusing a second task");
            return vec![send(
                task.task_id,
                TaskState::Failed,
                Some(MULTIPLE_TASKS.to_string()),
                None,
            )];
        }
        if task.command.is_none() {
            let task_id = task.task_id.clone();
            self.task = Some(task);
            self.phase = Phase::Terminated { at: now };
            return vec![send(
                task_id,
                TaskState::Failed,
                Some("Task has no command".to_string()),
                None,
            )];
        }
        tracing::info!(task_id = %task.task_id, "launching the task");
        self.task = Some(task.clone());
        self.phase = Phase::Launching { pending_kill: None };
        vec![
            send(task.task_id.clone(), TaskState::Starting, None, None),
            Action::Spawn(Box::new(task)),
        ]
    }

    fn spawned(&mut self, now: Instant) -> Vec<Action> {
        let Phase::Launching { pending_kill } = self.phase else {
            return Vec::new();
        };
        let Some(task) = &self.task else {
            return Vec::new();
        };
        let mut actions = vec![send(task.task_id.clone(), TaskState::Running, None, None)];
        self.phase = Phase::Running {
            started_at: now,
            killing: None,
        };
        if let Some((cause, escalate_at)) = pending_kill {
            actions.extend(self.kill(cause, escalate_at.saturating_duration_since(now), now));
        }
        actions
    }

    /// Starts killing the task, or shortens a kill in progress.
    fn kill(&mut self, cause: KillCause, grace: Duration, now: Instant) -> Vec<Action> {
        let escalate_at = now + grace;
        match &mut self.phase {
            Phase::Idle | Phase::Terminated { .. } => Vec::new(),
            Phase::Launching { pending_kill } => {
                *pending_kill = match *pending_kill {
                    Some((first, at)) => Some((first, at.min(escalate_at))),
                    None => Some((cause, escalate_at)),
                };
                Vec::new()
            }
            Phase::Running {
                killing: Some(killing),
                ..
            } => {
                // A repeated kill (schedulers retry them) may bring SIGKILL closer but
                // never push it back.
                if !killing.escalated && escalate_at < killing.escalate_at {
                    killing.escalate_at = escalate_at;
                }
                Vec::new()
            }
            Phase::Running { killing, .. } => {
                *killing = Some(Killing {
                    cause,
                    escalate_at,
                    escalated: false,
                });
                let mut actions = Vec::new();
                if self.task_killing_state {
                    if let Some(task) = &self.task {
                        actions.push(send(task.task_id.clone(), TaskState::Killing, None, None));
                    }
                }
                actions.push(Action::Signal(Signal::Term));
                actions
            }
        }
    }

    fn tick(&mut self, now: Instant) -> Vec<Action> {
        let Phase::Running {
            started_at,
            killing,
        } = &mut self.phase
        else {
            return Vec::new();
        };
        if let Some(killing) = killing {
            if !killing.escalated && now >= killing.escalate_at {
                killing.escalated = true;
                tracing::info!("the grace period is over; sending SIGKILL");
                return vec![Action::Signal(Signal::Kill)];
            }
            return Vec::new();
        }
        let started_at = *started_at;
        match self.completion_deadline(started_at) {
            Some(deadline) if now >= deadline => {
                let task_policy = self.task.as_ref().and_then(|t| t.kill_policy.as_ref());
                let grace = kill_grace(None, task_policy);
                tracing::info!(
                    grace_secs = grace.as_secs_f64(),
                    "the task reached its max_completion_time"
                );
                self.kill(KillCause::MaxCompletionTime, grace, now)
            }
            _ => Vec::new(),
        }
    }

    /// Gives up on the agent: kills the task outright and stops.
    fn abandon(&mut self) -> Vec<Action> {
        let mut actions = Vec::new();
        if let Phase::Running { .. } = self.phase {
            actions.push(Action::Signal(Signal::Kill));
        }
        actions.extend(self.exit_now());
        actions
    }

    fn exit_now(&mut self) -> Vec<Action> {
        self.exit = true;
        vec![Action::Exit]
    }

    fn completion_deadline(&self, started_at: Instant) -> Option<Instant> {
        let limit = self.task.as_ref()?.max_completion_time.as_ref()?;
        Some(started_at + duration_of(limit))
    }

    /// When the driver must send [`Input::Tick`] next, if at all.
    pub fn next_deadline(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Running {
                killing: Some(killing),
                ..
            } if !killing.escalated => Some(killing.escalate_at),
            Phase::Running {
                killing: Some(_), ..
            } => None,
            Phase::Running {
                started_at,
                killing: None,
            } => self.completion_deadline(*started_at),
            Phase::Terminated { at } => Some(*at + self.config.ack_timeout),
            Phase::Idle | Phase::Launching { .. } => None,
        }
    }

    /// Whether the executor should stop: it was told to, or its terminal update is
    /// acknowledged (no update is outstanding) or waited for long enough.
    pub fn should_exit(&self, now: Instant, unacknowledged: usize) -> bool {
        match self.phase {
            _ if self.exit => true,
            Phase::Terminated { at } => unacknowledged == 0 || now >= at + self.config.ack_timeout,
            _ => false,
        }
    }
}

fn send(
    task_id: TaskId,
    state: TaskState,
    message: Option<String>,
    reason: Option<Reason>,
) -> Action {
    let mut status = TaskStatus::new(task_id, state);
    status.message = message;
    status.reason = reason;
    Action::Send(Box::new(status))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mantle_api::DurationInfo;
    use std::fmt::Write;

    fn config() -> Config {
        Config {
            checkpoint: false,
            shutdown_grace: Duration::from_secs(3),
            ack_timeout: Duration::from_secs(60),
        }
    }

    fn task(extra: serde_json::Value) -> TaskInfo {
        let mut value = serde_json::json!({
            "name": "t1", "task_id": {"value": "t1"}, "agent_id": {"value": "a1"},
            "command": {"value": "sleep 30"}
        });
        if let (Some(base), Some(extra)) = (value.as_object_mut(), extra.as_object()) {
            base.extend(extra.clone());
        }
        serde_json::from_value(value).expect("a valid task")
    }

    fn launch() -> Input {
        Input::Launch(Box::new(task(serde_json::json!({}))))
    }

    fn launch_with(extra: serde_json::Value) -> Input {
        Input::Launch(Box::new(task(extra)))
    }

    fn kill(grace_secs: Option<f64>) -> Input {
        kill_task("t1", grace_secs)
    }

    fn kill_task(id: &str, grace_secs: Option<f64>) -> Input {
        Input::Kill {
            task_id: TaskId::new(id),
            kill_policy: grace_secs.map(|s| KillPolicy {
                grace_period: Some(DurationInfo::from_secs_f64(s)),
            }),
        }
    }

    fn subscribed(task_killing_state: bool) -> Input {
        Input::Subscribed { task_killing_state }
    }

    fn label(input: &Input) -> String {
        match input {
            Input::Subscribed { task_killing_state } => {
                format!("subscribed killing={task_killing_state}")
            }
            Input::Launch(task) => format!("launch {}", task.task_id),
            Input::LaunchGroup(ids) => format!("launch_group {}", ids.len()),
            Input::Kill {
                task_id,
                kill_policy,
            } => match kill_policy.as_ref().and_then(|p| p.grace_period) {
                Some(grace) => format!("kill {task_id} grace={}", grace.as_secs_f64()),
                None => format!("kill {task_id}"),
            },
            Input::Shutdown => "shutdown".into(),
            Input::Spawned => "spawned".into(),
            Input::SpawnFailed(error) => format!("spawn_failed {error}"),
            Input::Exited(Exit::Code(code)) => format!("exited {code}"),
            Input::Exited(Exit::Signal(signal)) => format!("signaled {signal}"),
            Input::Disconnected => "disconnected".into(),
            Input::GaveUp => "gave_up".into(),
            Input::Tick => "tick".into(),
        }
    }

    fn render(action: &Action) -> String {
        match action {
            Action::Send(status) => {
                let mut text = format!("send {} {}", status.task_id, status.state);
                if let Some(message) = &status.message {
                    write!(text, " {message:?}").unwrap();
                }
                if let Some(reason) = status.reason {
                    write!(text, " {reason}").unwrap();
                }
                text
            }
            Action::Spawn(task) => format!("spawn {}", task.task_id),
            Action::Signal(Signal::Term) => "SIGTERM".into(),
            Action::Signal(Signal::Kill) => "SIGKILL".into(),
            Action::Exit => "exit".into(),
        }
    }

    /// Runs `steps` (seconds since the start, input) and compares the transcript: per
    /// step, the actions and the next deadline in seconds.
    fn check_with(config: Config, steps: Vec<(f64, Input)>, expected: &str) {
        let base = Instant::now();
        let mut core = Core::new(config);
        let mut transcript = String::new();
        for (secs, input) in steps {
            let line_label = label(&input);
            let actions = core.handle(input, base + Duration::from_secs_f64(secs));
            let rendered: Vec<String> = actions.iter().map(render).collect();
            let rendered = if rendered.is_empty() {
                "nothing".to_string()
            } else {
                rendered.join("; ")
            };
            write!(transcript, "{secs} {line_label}: {rendered}").unwrap();
            if let Some(deadline) = core.next_deadline() {
                write!(transcript, " | wake {}", (deadline - base).as_secs_f64()).unwrap();
            }
            transcript.push('\n');
        }
        let expected: Vec<&str> = expected
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let actual: Vec<&str> = transcript.lines().collect();
        assert_eq!(actual, expected, "\ntranscript:\n{transcript}");
    }

    fn check(steps: Vec<(f64, Input)>, expected: &str) {
        check_with(config(), steps, expected)
    }

    #[test]
    fn runs_to_completion() {
        check(
            vec![
                (0.0, subscribed(false)),
                (0.0, launch()),
                (0.0, Input::Spawned),
                (5.0, Input::Exited(Exit::Code(0))),
            ],
            r#"
            0 subscribed killing=false: nothing
            0 launch t1: send t1 TASK_STARTING; spawn t1
            0 spawned: send t1 TASK_RUNNING
            5 exited 0: send t1 TASK_FINISHED "Command exited with status 0" | wake 65
            "#,
        );
        check(
            vec![
                (0.0, launch()),
                (0.0, Input::Spawned),
                (1.0, Input::Exited(Exit::Code(3))),
            ],
            r#"
            0 launch t1: send t1 TASK_STARTING; spawn t1
            0 spawned: send t1 TASK_RUNNING
            1 exited 3: send t1 TASK_FAILED "Command exited with status 3" | wake 61
            "#,
        );
        check(
            vec![
                (0.0, launch()),
                (0.0, Input::Spawned),
                (1.0, Input::Exited(Exit::Signal(11))),
            ],
            r#"
            0 launch t1: send t1 TASK_STARTING; spawn t1
            0 spawned: send t1 TASK_RUNNING
            1 signaled 11: send t1 TASK_FAILED "Command terminated with signal Segmentation fault" | wake 61
            "#,
        );
    }

    #[test]
    fn launch_failures() {
        check(
            vec![
                (0.0, launch()),
                (
                    0.0,
                    Input::SpawnFailed("No such file or directory (os error 2)".into()),
                ),
            ],
            r#"
            0 launch t1: send t1 TASK_STARTING; spawn t1
            0 spawn_failed No such file or directory (os error 2): send t1 TASK_FAILED "Failed to launch the command: No such file or directory (os error 2)" REASON_COMMAND_EXECUTOR_FAILED | wake 60
            "#,
        );
        check(
            vec![
                (0.0, launch_with(serde_json::json!({"command": null}))),
                (1.0, kill(None)),
            ],
            r#"
            0 launch t1: send t1 TASK_FAILED "Task has no command" | wake 60
            1 kill t1: nothing | wake 60
            "#,
        );
        check(
            vec![
                (0.0, launch()),
                (0.0, Input::Spawned),
                (
                    1.0,
                    launch_with(serde_json::json!({"task_id": {"value": "t2"}})),
                ),
                (1.0, launch()),
                (1.0, Input::LaunchGroup(vec![TaskId::new("g1")])),
            ],
            r#"
            0 launch t1: send t1 TASK_STARTING; spawn t1
            0 spawned: send t1 TASK_RUNNING
            1 launch t2: send t2 TASK_FAILED "Attempted to run multiple tasks using a \"command\" executor"
            1 launch t1: nothing
            1 launch_group 1: send g1 TASK_FAILED "Attempted to run multiple tasks using a \"command\" executor"
            "#,
        );
    }

    #[test]
    fn kills() {
        // Without TASK_KILLING_STATE, no TASK_KILLING; 3 s by default.
        check(
            vec![
                (0.0, subscribed(false)),
                (0.0, launch()),
                (0.0, Input::Spawned),
                (1.0, kill(None)),
                (4.0, Input::Tick),
                (4.0, Input::Tick),
                (4.5, Input::Exited(Exit::Signal(9))),
            ],
            r#"
            0 subscribed killing=false: nothing
            0 launch t1: send t1 TASK_STARTING; spawn t1
            0 spawned: send t1 TASK_RUNNING
            1 kill t1: SIGTERM | wake 4
            4 tick: SIGKILL
            4 tick: nothing
            4.5 signaled 9: send t1 TASK_KILLED "Command terminated with signal Killed" | wake 64.5
            "#,
        );
        // With TASK_KILLING_STATE; the event's grace period; later kills only shorten it.
        check(
            vec![
                (0.0, subscribed(true)),
                (
                    0.0,
                    launch_with(
                        serde_json::json!({"kill_policy": {"grace_period": {"nanoseconds": 20_000_000_000i64}}}),
                    ),
                ),
                (0.0, Input::Spawned),
                (1.0, kill(Some(10.0))),
                (2.0, kill(Some(30.0))),
                (3.0, kill(Some(2.0))),
                (3.0, kill(None)),
                (4.0, Input::Tick),
                (4.0, Input::Exited(Exit::Signal(15))),
            ],
            r#"
            0 subscribed killing=true: nothing
            0 launch t1: send t1 TASK_STARTING; spawn t1
            0 spawned: send t1 TASK_RUNNING
            1 kill t1 grace=10: send t1 TASK_KILLING; SIGTERM | wake 11
            2 kill t1 grace=30: nothing | wake 11
            3 kill t1 grace=2: nothing | wake 5
            3 kill t1: nothing | wake 5
            4 tick: nothing | wake 5
            4 signaled 15: send t1 TASK_KILLED "Command terminated with signal Terminated" | wake 64
            "#,
        );
        // The task's kill policy applies when the event has none; a task that exits on
        // its own after SIGTERM still counts as killed.
        check(
            vec![
                (
                    0.0,
                    launch_with(
                        serde_json::json!({"kill_policy": {"grace_period": {"nanoseconds": 7_000_000_000i64}}}),
                    ),
                ),
                (0.0, Input::Spawned),
                (1.0, kill(None)),
                (2.0, Input::Exited(Exit::Code(0))),
            ],
            r#"
            0 launch t1: send t1 TASK_STARTING; spawn t1
            0 spawned: send t1 TASK_RUNNING
            1 kill t1: SIGTERM | wake 8
            2 exited 0: send t1 TASK_KILLED "Command exited with status 0" | wake 62
            "#,
        );
        // Kills of other tasks, before a launch and after the end are ignored.
        check(
            vec![
                (0.0, kill(None)),
                (0.0, launch()),
                (0.0, Input::Spawned),
                (1.0, kill_task("t9", None)),
                (2.0, Input::Exited(Exit::Code(0))),
                (3.0, kill(None)),
            ],
            r#"
            0 kill t1: nothing
            0 launch t1: send t1 TASK_STARTING; spawn t1
            0 spawned: send t1 TASK_RUNNING
            1 kill t9: nothing
            2 exited 0: send t1 TASK_FINISHED "Command exited with status 0" | wake 62
            3 kill t1: nothing | wake 62
            "#,
        );
        // A kill while the command is being spawned takes effect once it runs.
        check(
            vec![
                (0.0, subscribed(true)),
                (0.0, launch()),
                (0.0, kill(Some(1.0))),
                (0.5, Input::Spawned),
            ],
            r#"
            0 subscribed killing=true: nothing
            0 launch t1: send t1 TASK_STARTING; spawn t1
            0 kill t1 grace=1: nothing
            0.5 spawned: send t1 TASK_RUNNING; send t1 TASK_KILLING; SIGTERM | wake 1
            "#,
        );
    }

    #[test]
    fn shutdowns() {
        check(
            vec![(0.0, subscribed(true)), (0.0, Input::Shutdown)],
            r#"
            0 subscribed killing=true: nothing
            0 shutdown: exit
            "#,
        );
        check(
            vec![
                (0.0, subscribed(true)),
                (0.0, launch()),
                (0.0, Input::Spawned),
                (1.0, Input::Shutdown),
                (2.0, kill(Some(10.0))),
                (4.0, Input::Tick),
                (4.0, Input::Exited(Exit::Signal(9))),
                (5.0, Input::Shutdown),
            ],
            r#"
            0 subscribed killing=true: nothing
            0 launch t1: send t1 TASK_STARTING; spawn t1
            0 spawned: send t1 TASK_RUNNING
            1 shutdown: send t1 TASK_KILLING; SIGTERM | wake 4
            2 kill t1 grace=10: nothing | wake 4
            4 tick: SIGKILL
            4 signaled 9: send t1 TASK_KILLED "Command terminated with signal Killed" | wake 64
            5 shutdown: exit | wake 64
            "#,
        );
        // A shutdown after a longer kill brings SIGKILL closer.
        check(
            vec![
                (0.0, launch()),
                (0.0, Input::Spawned),
                (1.0, kill(Some(30.0))),
                (2.0, Input::Shutdown),
            ],
            r#"
            0 launch t1: send t1 TASK_STARTING; spawn t1
            0 spawned: send t1 TASK_RUNNING
            1 kill t1 grace=30: SIGTERM | wake 31
            2 shutdown: nothing | wake 5
            "#,
        );
    }

    #[test]
    fn max_completion_time() {
        check(
            vec![
                (
                    0.0,
                    launch_with(
                        serde_json::json!({"max_completion_time": {"nanoseconds": 5_000_000_000i64}}),
                    ),
                ),
                (1.0, Input::Spawned),
                (3.0, Input::Tick),
                (6.0, Input::Tick),
                (7.0, Input::Exited(Exit::Signal(15))),
            ],
            r#"
            0 launch t1: send t1 TASK_STARTING; spawn t1
            1 spawned: send t1 TASK_RUNNING | wake 6
            3 tick: nothing | wake 6
            6 tick: SIGTERM | wake 9
            7 signaled 15: send t1 TASK_FAILED "Command terminated with signal Terminated" REASON_MAX_COMPLETION_TIME_REACHED | wake 67
            "#,
        );
        // A scheduler's kill before the deadline wins.
        check(
            vec![
                (
                    0.0,
                    launch_with(
                        serde_json::json!({"max_completion_time": {"nanoseconds": 5_000_000_000i64}}),
                    ),
                ),
                (0.0, Input::Spawned),
                (1.0, kill(Some(10.0))),
                (6.0, Input::Tick),
                (7.0, Input::Exited(Exit::Signal(15))),
            ],
            r#"
            0 launch t1: send t1 TASK_STARTING; spawn t1
            0 spawned: send t1 TASK_RUNNING | wake 5
            1 kill t1 grace=10: SIGTERM | wake 11
            6 tick: nothing | wake 11
            7 signaled 15: send t1 TASK_KILLED "Command terminated with signal Terminated" | wake 67
            "#,
        );
    }

    #[test]
    fn disconnections() {
        check(
            vec![
                (0.0, launch()),
                (0.0, Input::Spawned),
                (1.0, Input::Disconnected),
            ],
            r#"
            0 launch t1: send t1 TASK_STARTING; spawn t1
            0 spawned: send t1 TASK_RUNNING
            1 disconnected: SIGKILL; exit
            "#,
        );
        check(
            vec![(0.0, Input::Disconnected)],
            r#"
            0 disconnected: exit
            "#,
        );
        check_with(
            Config {
                checkpoint: true,
                ..config()
            },
            vec![
                (0.0, launch()),
                (0.0, Input::Spawned),
                (1.0, Input::Disconnected),
                (2.0, Input::Exited(Exit::Code(0))),
                (3.0, Input::GaveUp),
            ],
            r#"
            0 launch t1: send t1 TASK_STARTING; spawn t1
            0 spawned: send t1 TASK_RUNNING
            1 disconnected: nothing
            2 exited 0: send t1 TASK_FINISHED "Command exited with status 0" | wake 62
            3 gave_up: exit | wake 62
            "#,
        );
        check_with(
            Config {
                checkpoint: true,
                ..config()
            },
            vec![(0.0, launch()), (0.0, Input::Spawned), (1.0, Input::GaveUp)],
            r#"
            0 launch t1: send t1 TASK_STARTING; spawn t1
            0 spawned: send t1 TASK_RUNNING
            1 gave_up: SIGKILL; exit
            "#,
        );
    }

    #[test]
    fn exit_waits_for_the_terminal_acknowledgement() {
        let check = |steps: Vec<Input>, at_secs: u64, unacknowledged: usize, expected: bool| {
            let base = Instant::now();
            let mut core = Core::new(config());
            for input in steps.clone() {
                core.handle(input, base);
            }
            let now = base + Duration::from_secs(at_secs);
            assert_eq!(
                core.should_exit(now, unacknowledged),
                expected,
                "{steps:?} at {at_secs}s, {unacknowledged} unacknowledged"
            );
        };
        let finished = || vec![launch(), Input::Spawned, Input::Exited(Exit::Code(0))];
        check(vec![], 0, 0, false);
        check(vec![launch()], 0, 0, false);
        check(vec![launch(), Input::Spawned], 100, 0, false);
        check(finished(), 0, 1, false);
        check(finished(), 59, 2, false);
        check(finished(), 0, 0, true);
        check(finished(), 60, 1, true);
        check(vec![Input::Shutdown], 0, 3, true);
        check(
            vec![launch(), Input::Spawned, Input::Disconnected],
            0,
            3,
            true,
        );
    }
}
