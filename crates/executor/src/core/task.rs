//! One task inside the executor (reference §2, "Command executor"): it is launched (its
//! command is being spawned), runs, may be killed (TASK_KILLING when the framework wants
//! it, SIGTERM to its process group, SIGKILL once the grace period is over) or run past
//! its `max_completion_time`, and ends with exactly one terminal update. The core decides
//! what happens to which task; this module keeps the state of one.
//!
//! A task runs either as a process or in a Docker container (reference §7, "Docker
//! containerizer"). The two live the same life; they differ in how a kill starts (a
//! SIGTERM to the process group, or `docker stop` with the grace period, which honours
//! the container's stop signal) and in how their end is worded.

use super::{send, status, Action, KillCause, Signal};
use crate::exit_status::{describe, describe_container, terminal_state, Exit};
use crate::timing::{duration_of, kill_grace};
use mantle_api::{Reason, TaskId, TaskInfo, TaskState, TaskStatus};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq)]
struct Killing {
    cause: KillCause,
    /// When SIGKILL follows the SIGTERM.
    escalate_at: Instant,
    escalated: bool,
}

#[derive(Clone, Debug, PartialEq)]
enum Phase {
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

/// What a task runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Runtime {
    /// A process (group) the driver spawns.
    Process,
    /// A Docker container the driver creates through the engine.
    Docker,
}

/// A task the executor was given, and where it is in its life.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Task {
    pub(super) info: TaskInfo,
    /// The launch (one LAUNCH or one LAUNCH_GROUP) that brought the task; tasks of the
    /// same launch live and die together.
    pub(super) group: usize,
    runtime: Runtime,
    phase: Phase,
}

impl Task {
    /// A task whose command or container the driver is about to start.
    pub(super) fn launching(info: TaskInfo, group: usize, runtime: Runtime) -> Task {
        Task {
            info,
            group,
            runtime,
            phase: Phase::Launching { pending_kill: None },
        }
    }

    /// A task whose terminal update went out before it started.
    pub(super) fn ended(info: TaskInfo, group: usize, now: Instant) -> Task {
        Task {
            info,
            group,
            runtime: Runtime::Process,
            phase: Phase::Terminated { at: now },
        }
    }

    pub(super) fn id(&self) -> &TaskId {
        &self.info.task_id
    }

    /// When the terminal update went out, if it did.
    pub(super) fn terminated_at(&self) -> Option<Instant> {
        match self.phase {
            Phase::Terminated { at } => Some(at),
            Phase::Launching { .. } | Phase::Running { .. } => None,
        }
    }

    pub(super) fn is_terminal(&self) -> bool {
        self.terminated_at().is_some()
    }

    /// Whether the task has a process that has not been seen to end.
    pub(super) fn has_process(&self) -> bool {
        matches!(self.phase, Phase::Running { .. })
    }

    /// Starts killing the task, or shortens a kill in progress.
    pub(super) fn kill(
        &mut self,
        cause: KillCause,
        grace: Duration,
        now: Instant,
        task_killing_state: bool,
    ) -> Vec<Action> {
        let escalate_at = now + grace;
        match &mut self.phase {
            Phase::Terminated { .. } => Vec::new(),
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
                if task_killing_state {
                    actions.push(send(
                        self.info.task_id.clone(),
                        TaskState::Killing,
                        None,
                        None,
                    ));
                }
                actions.push(self.terminate(grace));
                actions
            }
        }
    }

    /// The first step of a kill: SIGTERM to a process group (the core sends SIGKILL
    /// after the grace period), or `docker stop` with the grace period, so that the
    /// container gets the stop signal its image or parameters name. The core's SIGKILL
    /// at the end of the grace period still follows, in case the engine does not.
    fn terminate(&self, grace: Duration) -> Action {
        match self.runtime {
            Runtime::Process => self.signal(Signal::Term),
            Runtime::Docker => Action::StopContainer {
                task_id: self.info.task_id.clone(),
                grace,
            },
        }
    }

    /// The command started: TASK_RUNNING, then any kill that arrived meanwhile.
    pub(super) fn spawned(&mut self, now: Instant, task_killing_state: bool) -> Vec<Action> {
        let Phase::Launching { pending_kill } = self.phase else {
            return Vec::new();
        };
        self.phase = Phase::Running {
            started_at: now,
            killing: None,
        };
        let mut actions = vec![send(
            self.info.task_id.clone(),
            TaskState::Running,
            None,
            None,
        )];
        if let Some((cause, escalate_at)) = pending_kill {
            let grace = escalate_at.saturating_duration_since(now);
            actions.extend(self.kill(cause, grace, now, task_killing_state));
        }
        actions
    }

    /// The command could not start; returns the terminal update.
    pub(super) fn spawn_failed(&mut self, error: &str, now: Instant) -> Option<TaskStatus> {
        let Phase::Launching { .. } = self.phase else {
            return None;
        };
        self.phase = Phase::Terminated { at: now };
        let (message, reason) = match self.runtime {
            Runtime::Process => (
                format!("Failed to launch the command: {error}"),
                Reason::CommandExecutorFailed,
            ),
            Runtime::Docker => (
                format!("Failed to launch container: {error}"),
                Reason::ContainerLaunchFailed,
            ),
        };
        Some(status(
            self.info.task_id.clone(),
            TaskState::Failed,
            Some(message),
            Some(reason),
        ))
    }

    /// The task's process ended; returns the terminal update.
    pub(super) fn exited(&mut self, exit: Exit, now: Instant) -> Option<TaskStatus> {
        let Phase::Running { killing, .. } = &self.phase else {
            return None;
        };
        let (state, reason) = terminal_state(exit, killing.map(|k| k.cause));
        self.phase = Phase::Terminated { at: now };
        Some(status(
            self.info.task_id.clone(),
            state,
            Some(describe(exit)),
            reason,
        ))
    }

    /// The task's Docker container ended with `status`; returns the terminal update. A
    /// container the kernel's OOM killer ended fails with the memory limitation, as a
    /// Mesos container does, unless the executor was killing it anyway.
    pub(super) fn container_exited(
        &mut self,
        status_code: i64,
        oom_killed: bool,
        now: Instant,
    ) -> Option<TaskStatus> {
        let Phase::Running { killing, .. } = &self.phase else {
            return None;
        };
        let code = i32::try_from(status_code).unwrap_or(-1);
        let (state, mut reason) = terminal_state(Exit::Code(code), killing.map(|k| k.cause));
        if oom_killed && state == TaskState::Failed && reason.is_none() {
            reason = Some(Reason::ContainerLimitationMemory);
        }
        self.phase = Phase::Terminated { at: now };
        Some(status(
            self.info.task_id.clone(),
            state,
            Some(describe_container(status_code, oom_killed)),
            reason,
        ))
    }

    /// Time passed: SIGKILL once the grace period is over, or a kill once the task ran
    /// past its `max_completion_time`.
    pub(super) fn tick(&mut self, now: Instant, task_killing_state: bool) -> Vec<Action> {
        let started_at = match &mut self.phase {
            Phase::Running {
                killing: Some(killing),
                ..
            } => {
                if killing.escalated || now < killing.escalate_at {
                    return Vec::new();
                }
                killing.escalated = true;
                tracing::info!(task_id = %self.info.task_id, "the grace period is over; sending SIGKILL");
                return vec![self.signal(Signal::Kill)];
            }
            Phase::Running {
                started_at,
                killing: None,
            } => *started_at,
            Phase::Launching { .. } | Phase::Terminated { .. } => return Vec::new(),
        };
        match self.completion_deadline(started_at) {
            Some(deadline) if now >= deadline => {
                let grace = kill_grace(None, self.info.kill_policy.as_ref());
                tracing::info!(
                    task_id = %self.info.task_id,
                    grace_secs = grace.as_secs_f64(),
                    "the task reached its max_completion_time"
                );
                self.kill(KillCause::MaxCompletionTime, grace, now, task_killing_state)
            }
            _ => Vec::new(),
        }
    }

    /// When the task needs a [`tick`](Task::tick) next, if at all.
    pub(super) fn deadline(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Running {
                killing: Some(killing),
                ..
            } => (!killing.escalated).then_some(killing.escalate_at),
            Phase::Running {
                started_at,
                killing: None,
            } => self.completion_deadline(*started_at),
            Phase::Launching { .. } | Phase::Terminated { .. } => None,
        }
    }

    pub(super) fn signal(&self, signal: Signal) -> Action {
        Action::Signal {
            task_id: self.info.task_id.clone(),
            signal,
        }
    }

    fn completion_deadline(&self, started_at: Instant) -> Option<Instant> {
        let limit = self.info.max_completion_time.as_ref()?;
        Some(started_at + duration_of(limit))
    }
}
