//! What really happened, recorded as the simulation runs, and the invariants checked
//! against it: on every update a scheduler receives, and once the cluster has settled.
//! The list of invariants and their exceptions is in the crate documentation.

use crate::agent::{AgentNode, Link};
use crate::world::{Ev, Phase, World};
use mantle_api::{AgentId, FrameworkId, Reason, Source, TaskId, TaskState, TaskStatus};
use std::collections::{BTreeSet, HashMap};
use std::fmt::Write;

pub type TaskKey = (FrameworkId, TaskId);

/// What a task was launched to do.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// How long it runs; `None` runs until killed.
    pub duration: Option<f64>,
    /// How it ends when it runs its course.
    pub outcome: TaskState,
}

/// One update as a scheduler received it.
#[derive(Clone, Debug)]
struct Seen {
    at: f64,
    state: TaskState,
    source: Option<Source>,
    reason: Option<Reason>,
    uuid: bool,
}

pub struct TaskTruth {
    pub plan: Plan,
    /// The states its executor reported, in order.
    sent: Vec<TaskState>,
    /// The agent (and its life) whose executor runs it right now.
    pub running: Option<(usize, u64)>,
    seen: Vec<Seen>,
    /// The final state its scheduler was told; nothing else may follow.
    final_state: Option<TaskState>,
    /// That final state came from the master (reconciliation, re-registration), not
    /// from the task's own update stream.
    final_from_master: bool,
    /// That final state is the master's TASK_LOST of a framework that does not
    /// checkpoint, given when the agent disconnected while the task may still run.
    given_up: bool,
    /// Its scheduler was told it is unreachable (or lost with its agent), in the
    /// subscription with this number; it may come back only with
    /// REASON_AGENT_REREGISTERED (the Mesos 1.5 rule).
    away: Option<u64>,
}

/// An update an executor sent.
struct SentUpdate {
    key: TaskKey,
    state: TaskState,
    agent: usize,
    /// The agent life that acknowledged it to the executor.
    taken: Option<u64>,
    /// Its executor died before it saw the update acknowledged.
    orphaned: bool,
    /// A scheduler of its framework received it.
    delivered: bool,
}

#[derive(Default)]
pub struct Truth {
    pub tasks: HashMap<TaskKey, TaskTruth>,
    updates: HashMap<String, SentUpdate>,
    /// Frameworks the master removed.
    pub removed: BTreeSet<FrameworkId>,
    /// Frameworks that subscribed, and whether they checkpoint.
    pub frameworks: HashMap<FrameworkId, bool>,
}

impl Truth {
    pub fn launch(&mut self, key: &TaskKey, plan: Plan) {
        self.tasks.insert(
            key.clone(),
            TaskTruth {
                plan,
                sent: Vec::new(),
                running: None,
                seen: Vec::new(),
                final_state: None,
                final_from_master: false,
                given_up: false,
                away: None,
            },
        );
    }

    pub fn launched(&self) -> usize {
        self.tasks.len()
    }

    pub fn plan(&self, key: &TaskKey) -> Option<Plan> {
        self.tasks.get(key).map(|t| t.plan)
    }

    pub fn checkpointing(&self, framework_id: &FrameworkId) -> bool {
        self.frameworks.get(framework_id).copied().unwrap_or(false)
    }

    pub fn set_running(&mut self, key: &TaskKey, at: Option<(usize, u64)>) {
        if let Some(task) = self.tasks.get_mut(key) {
            task.running = at;
        }
    }

    pub fn executor_sent(&mut self, key: &TaskKey, state: TaskState, uuid: String, agent: usize) {
        if let Some(task) = self.tasks.get_mut(key) {
            task.sent.push(state);
        }
        self.updates.insert(
            uuid,
            SentUpdate {
                key: key.clone(),
                state,
                agent,
                taken: None,
                orphaned: false,
                delivered: false,
            },
        );
    }

    /// An agent acknowledged an update to its executor (having checkpointed it first,
    /// when the framework checkpoints).
    pub fn taken(&mut self, uuid: &str, life: u64) {
        if let Some(update) = self.updates.get_mut(uuid) {
            update.taken.get_or_insert(life);
        }
    }

    /// The executor of an update died without seeing it acknowledged.
    pub fn orphaned(&mut self, uuid: &str) {
        if let Some(update) = self.updates.get_mut(uuid) {
            update.orphaned = true;
        }
    }

    fn history(&self, key: &TaskKey) -> String {
        let Some(task) = self.tasks.get(key) else {
            return "no record".into();
        };
        let mut text = format!("executor sent {:?}; scheduler saw [", task.sent);
        for (i, seen) in task.seen.iter().enumerate() {
            if i > 0 {
                text.push_str(", ");
            }
            let _ = write!(
                text,
                "{:.3} {} {:?} {:?}{}",
                seen.at,
                seen.state,
                seen.source.map(|s| s.as_str()),
                seen.reason.map(|r| r.as_str()),
                if seen.uuid { " uuid" } else { "" }
            );
        }
        text.push(']');
        text
    }
}

/// A terminal state that is not the end: the task's agent became unreachable and may
/// come back (reference §5.1), or reconciliation could not say.
fn may_come_back(status: &TaskStatus) -> bool {
    status.source == Some(Source::Master)
        && matches!(
            status.state,
            TaskState::Lost | TaskState::Unreachable | TaskState::Unknown
        )
        && matches!(
            status.reason,
            Some(Reason::AgentRemoved | Reason::Reconciliation)
        )
}

/// A reconciliation answer about a task the master does not know.
fn unknown_answer(status: &TaskStatus) -> bool {
    status.source == Some(Source::Master)
        && status.reason == Some(Reason::Reconciliation)
        && status
            .message
            .as_deref()
            .is_some_and(|m| m.contains("unknown"))
}

impl World {
    /// Checks an update a scheduler received against what happened, and returns whether
    /// it is final for the scheduler.
    pub fn check_update(&mut self, key: &TaskKey, status: &TaskStatus, subscription: u64) -> bool {
        let from_master = status.source == Some(Source::Master);
        let checkpointing = self.truth.checkpointing(&key.0);
        let task_id = &key.1;
        match (from_master, status.uuid.is_some()) {
            (true, true) => self.fail(format!(
                "a master-generated update for task {task_id} carries a uuid"
            )),
            (false, false) => self.fail(format!(
                "an update for task {task_id} from {:?} has no uuid",
                status.source
            )),
            _ => {}
        }
        if let Some(update) = status
            .uuid
            .as_ref()
            .and_then(|u| self.truth.updates.get_mut(u))
        {
            update.delivered = true;
        }
        if status.reason == Some(Reason::ExecutorReregistrationTimeout) && status.uuid.is_some() {
            self.recovery.reregistration_timeouts += 1;
        }
        let at = self.secs();
        let Some(task) = self.truth.tasks.get_mut(key) else {
            return status.state.is_terminal();
        };
        task.seen.push(Seen {
            at,
            state: status.state,
            source: status.source,
            reason: status.reason,
            uuid: status.uuid.is_some(),
        });
        let state = status.state;
        let made_up = matches!(
            state,
            TaskState::Starting | TaskState::Running | TaskState::Killing
        ) && !task.sent.contains(&state);
        // LOST may be said of a running task whose framework does not checkpoint: the
        // master gives such tasks up when their agent disconnects. A checkpointing
        // framework's task outlives its agent, so only an unreachable agent excuses it.
        let dead = matches!(
            state,
            TaskState::Finished
                | TaskState::Failed
                | TaskState::Killed
                | TaskState::Error
                | TaskState::Dropped
                | TaskState::Gone
                | TaskState::GoneByOperator
        ) || (checkpointing && state.is_terminal() && !may_come_back(status));
        let dead_but_running = dead
            && task.running.is_some()
            // The master answers reconciliation for a task it retired without waiting
            // for the kill it sent; the end of the run checks that nothing runs on.
            && !unknown_answer(status);
        let unknown = unknown_answer(status);
        // The master may tell the end (answering reconciliation with the state an agent
        // reported on re-registration) before the agent's stream delivers the older
        // updates it still holds; those may follow, as long as they do not contradict
        // the end.
        let stale_replay = task.final_from_master
            && status.uuid.is_some()
            && !state.is_terminal()
            && task.sent.contains(&state);
        // The task the master gave up at a disconnect is killed when its agent comes
        // back; a master that failed over since learns that real end from the agent.
        let real_end = task.given_up && state.is_terminal();
        let after_final = task
            .final_state
            .filter(|f| *f != state && !unknown && !stale_replay && !real_end);
        let reregistered = status.reason == Some(Reason::AgentReregistered)
            || status.reason == Some(Reason::Reconciliation);
        // Master-generated updates are not retried: a scheduler that was disconnected
        // when the agent came back missed its notice, and must reconcile.
        let returned_silently = task.away == Some(subscription)
            && !state.is_terminal()
            && !matches!(state, TaskState::Unreachable | TaskState::Unknown)
            && !reregistered;
        let mut done = task.final_state.is_some();
        if !done {
            if may_come_back(status) {
                let unreachable = status.reason == Some(Reason::AgentRemoved)
                    || status.unreachable_time.is_some();
                task.away = unreachable.then_some(subscription);
            } else if state.is_terminal() {
                task.final_state = Some(state);
                task.final_from_master = from_master;
                task.given_up = from_master
                    && state == TaskState::Lost
                    && status.reason == Some(Reason::AgentDisconnected);
                task.away = None;
                done = true;
            } else {
                task.away = None;
            }
        }
        let problem = if made_up {
            Some(format!(
                "task {task_id} reported {state}, which its executor never sent"
            ))
        } else if dead_but_running {
            Some(format!("task {task_id} reported {state} while it runs"))
        } else if let Some(previous) = after_final {
            Some(format!(
                "task {task_id} reported {state} after its final {previous}"
            ))
        } else if returned_silently {
            Some(format!(
                "task {task_id} reported {state} after its agent was unreachable, without REASON_AGENT_REREGISTERED"
            ))
        } else {
            None
        };
        if let Some(problem) = problem {
            let history = self.truth.history(key);
            self.fail(format!("{problem}: {history}"));
        }
        done
    }

    pub fn settle_start(&mut self) {
        self.phase = Phase::Settle;
        self.note(|| "settle: healing every fault".to_string());
        for agent in 0..self.agents.len() {
            self.heal_now(agent);
            if !self.agents[agent].up() {
                self.agent_start(agent);
            }
        }
        if self.master.core.is_none() {
            self.master_start();
        }
        for fw in 0..self.scheds.len() {
            self.sched_start(fw);
        }
        self.at(5.0, Ev::SettleCheck);
    }

    pub fn settle_check(&mut self) {
        if self.unsettled().is_none() {
            self.settled = true;
        } else {
            self.at(5.0, Ev::SettleCheck);
        }
    }

    pub fn final_checks(&mut self) {
        if let Some(reason) = self.unsettled() {
            let secs = self.config.settle_secs;
            self.fail(format!(
                "the cluster did not settle within {secs}s of healing: {reason}"
            ));
        }
    }

    /// An executor the master counts on an agent (holding its resources) that does not
    /// run there. Excused: one that the registration report the master last took from
    /// the agent listed, or that was launched after that report was built; it ended
    /// since, and its EXECUTOR_EXITED may have been lost (that call is not retried).
    fn master_executor_gone(&self) -> Option<String> {
        let core = self.master.core.as_ref()?;
        let agents: HashMap<&AgentId, &AgentNode> = self
            .agents
            .iter()
            .filter_map(|a| Some((a.agent_id.as_ref()?, a)))
            .collect();
        for framework in core.frameworks() {
            for (agent_id, executors) in &framework.executors {
                for executor_id in executors.keys() {
                    let node = agents.get(agent_id);
                    // The latest process of that executor on that agent.
                    let proc = node.and_then(|a| {
                        a.procs.values().rev().find(|p| {
                            p.framework_id == framework.id && &p.executor_id == executor_id
                        })
                    });
                    let excused = match (proc, node.and_then(|a| a.report.as_ref())) {
                        (Some(p), _) if p.alive => true,
                        (Some(p), Some(report)) => {
                            let key = (framework.id.clone(), executor_id.clone());
                            report.executors.contains(&key) || p.launched_at >= report.at
                        }
                        (Some(_), None) => true,
                        (None, _) => false,
                    };
                    if !excused {
                        return Some(format!(
                            "the master counts executor {executor_id} of {} on agent {agent_id}, which it reported gone or never ran",
                            framework.id
                        ));
                    }
                }
            }
        }
        None
    }

    /// Why the cluster has not settled yet, or `None` once it has: everything is up and
    /// connected, every acknowledged update reached its scheduler, every task its
    /// scheduler launched ended for it, and no executor runs anything.
    fn unsettled(&self) -> Option<String> {
        if self.master.core.is_none() {
            return Some("the master is down".into());
        }
        for (i, agent) in self.agents.iter().enumerate() {
            if !matches!(agent.link, Link::Connected { .. } | Link::Stopped) {
                return Some(format!("agent {i} is not registered ({:?})", agent.link));
            }
        }
        for (i, s) in self.scheds.iter().enumerate() {
            if !s.subscribed {
                return Some(format!("scheduler {i} is not subscribed"));
            }
        }
        let truth = &self.truth;
        let mut lost: Vec<(&String, &SentUpdate)> = truth
            .updates
            .iter()
            .filter(|(_, u)| {
                // Without checkpoints the agent's update streams die with it, and the
                // master gives such a framework's tasks up when their agent disconnects
                // (swallowing what the agent says of them later).
                let excused = truth.removed.contains(&u.key.0)
                    || !truth.checkpointing(&u.key.0)
                    || (u.taken.is_none() && u.orphaned);
                !u.delivered && !excused
            })
            .collect();
        lost.sort_by(|a, b| a.0.cmp(b.0));
        if let Some((uuid, update)) = lost.first() {
            let how = match update.taken {
                Some(life) => format!("that agent {} (life {life}) acknowledged", update.agent),
                None => format!("that its executor on agent {} still holds", update.agent),
            };
            return Some(format!(
                "the {} update {uuid} of task {} {how} never reached its scheduler: {}",
                update.state,
                update.key.1,
                truth.history(&update.key)
            ));
        }
        for s in &self.scheds {
            let Some(framework_id) = &s.framework_id else {
                continue;
            };
            if truth.removed.contains(framework_id) {
                continue;
            }
            for (task_id, task) in &s.tasks {
                if task.state.is_terminal() || task.state == TaskState::Unknown {
                    continue;
                }
                let key = (framework_id.clone(), task_id.clone());
                return Some(format!(
                    "task {task_id} of {framework_id} is {} for its scheduler: {}",
                    task.state,
                    truth.history(&key)
                ));
            }
        }
        if let Some(problem) = self.master_executor_gone() {
            return Some(problem);
        }
        let mut running: Vec<(&TaskKey, &TaskTruth)> = truth
            .tasks
            .iter()
            .filter(|(_, t)| t.running.is_some())
            .collect();
        running.sort_by(|a, b| a.0.cmp(b.0));
        if let Some((key, task)) = running.first() {
            return Some(format!(
                "task {} of {} still runs on agent {:?}: {}",
                key.1,
                key.0,
                task.running,
                truth.history(key)
            ));
        }
        None
    }
}
