//! Simulated executors, one per container the agent launches. They behave as the
//! built-in command executor and the SDK's executor do (reference §2): subscribe once
//! started, answer LAUNCH with STARTING (command tasks) and RUNNING, run each task as a
//! timer ending in FINISHED or FAILED, answer KILL with KILLED after a short grace, kill
//! everything and exit on SHUTDOWN, and keep every update until the agent acknowledges
//! it, sending the unacknowledged updates and tasks again with a new SUBSCRIBE. A
//! command executor exits once its task's terminal update is acknowledged; a custom one
//! exits after it has been idle for a while. Executors of frameworks that checkpoint
//! outlive the agent process (`MESOS_CHECKPOINT=1`): they try to subscribe again every
//! so often up to `MESOS_SUBSCRIPTION_BACKOFF_MAX`, for at most `MESOS_RECOVERY_TIMEOUT`;
//! the others exit with their agent.

use crate::agent::{RECOVERY_TIMEOUT, SUBSCRIPTION_BACKOFF_MAX};
use crate::queue::Micros;
use crate::world::{Ev, World};
use base64::Engine;
use mantle_agent::core::{Input, LaunchSpec};
use mantle_api::executor::{Event, Subscribe, UpdateCall};
use mantle_api::{
    ContainerId, ExecutorId, FrameworkId, Source, TaskId, TaskInfo, TaskState, TaskStatus,
};
use rand::{Rng, RngCore};
use std::collections::BTreeMap;

/// The command of the custom executors the simulated schedulers use.
pub const CUSTOM_EXECUTOR: &str = "/sim/custom-executor";
/// How long a custom executor without tasks lives on.
const IDLE_EXIT: f64 = 10.0;
/// The wait status of a process killed with SIGKILL.
pub const SIGKILL_STATUS: i32 = 9;
/// The wait status of an executor that gives up (exit code 1).
const GAVE_UP_STATUS: i32 = 1 << 8;

pub struct Proc {
    pub container_id: ContainerId,
    pub framework_id: FrameworkId,
    pub executor_id: ExecutorId,
    /// The built-in command executor: one task, exits after it.
    pub command: bool,
    /// Its framework checkpoints: it outlives the agent process.
    pub checkpoint: bool,
    pub alive: bool,
    pub started: bool,
    /// When the agent launched it.
    pub launched_at: f64,
    kill_on_start: bool,
    /// The wait status its launcher recorded when it ended, for a restarted agent.
    pub exit_status: Option<i32>,
    pub stream: Option<u64>,
    /// Numbers its planned subscription attempts: only the latest one counts.
    attempt: u64,
    /// Since when it has been trying to reach an agent that went away.
    disconnected_at: Option<f64>,
    /// It hung when its agent went away and never subscribes again.
    silent: bool,
    /// Tasks given to it and the state it last reported for each.
    pub tasks: BTreeMap<TaskId, TaskState>,
    infos: Vec<TaskInfo>,
    unacked: Vec<TaskStatus>,
    /// Its calls to the agent arrive in order.
    last_call: Micros,
}

impl Proc {
    /// The tasks it runs.
    fn live(&self) -> Vec<TaskId> {
        self.tasks
            .iter()
            .filter(|(_, s)| !s.is_terminal())
            .map(|(id, _)| id.clone())
            .collect()
    }

    fn idle(&self) -> bool {
        self.unacked.is_empty() && self.tasks.values().all(|s| s.is_terminal())
    }
}

impl World {
    fn proc_mut(&mut self, agent: usize, proc: u64) -> Option<&mut Proc> {
        self.agents[agent].procs.get_mut(&proc).filter(|p| p.alive)
    }

    pub fn exec_launch(&mut self, agent: usize, spec: LaunchSpec) {
        let node = &mut self.agents[agent];
        node.next_proc += 1;
        let id = node.next_proc;
        let command = spec.command.value.as_deref() != Some(CUSTOM_EXECUTOR);
        let launched_at = self.now_us as f64 / 1e6;
        node.by_container.insert(spec.container_id.clone(), id);
        node.procs.insert(
            id,
            Proc {
                container_id: spec.container_id,
                framework_id: spec.framework_id,
                executor_id: spec.executor_id,
                command,
                checkpoint: spec.checkpoint,
                alive: true,
                started: false,
                launched_at,
                kill_on_start: false,
                exit_status: None,
                stream: None,
                attempt: 0,
                disconnected_at: None,
                silent: false,
                tasks: BTreeMap::new(),
                infos: Vec::new(),
                unacked: Vec::new(),
                last_call: 0,
            },
        );
        self.note(|| format!("agent {agent} launches executor {id}"));
        let delay = self.delay(0.005, 0.1);
        self.at(delay, Ev::ExecStarted { agent, proc: id });
    }

    pub fn exec_started(&mut self, agent: usize, proc: u64) {
        let fail_launch = self.chance(0.01);
        let hang = self.chance(0.01);
        let Some(p) = self.proc_mut(agent, proc) else {
            return;
        };
        let container_id = p.container_id.clone();
        if fail_launch {
            p.alive = false;
            p.exit_status = Some(GAVE_UP_STATUS);
            let error = "simulated launch failure".to_string();
            self.agent_handle(
                agent,
                Input::LaunchFailed {
                    container_id,
                    error,
                },
            )
            .ok();
            return;
        }
        p.started = true;
        let kill = p.kill_on_start;
        let pid = proc as u32 + 1000;
        self.agent_handle(agent, Input::Launched { container_id, pid })
            .ok();
        if kill {
            self.exec_die(agent, proc, SIGKILL_STATUS);
        } else if !hang {
            // A hung executor never subscribes; the registration timeout ends it.
            let delay = self.delay(0.05, 0.5);
            self.exec_subscribe_in(agent, proc, delay);
        }
    }

    /// Plans the next subscription attempt, replacing any planned before.
    fn exec_subscribe_in(&mut self, agent: usize, proc: u64, delay: f64) {
        let Some(p) = self.proc_mut(agent, proc) else {
            return;
        };
        p.attempt += 1;
        let attempt = p.attempt;
        self.at(
            delay,
            Ev::ExecSubscribe {
                agent,
                proc,
                attempt,
            },
        );
    }

    pub fn exec_subscribe(&mut self, agent: usize, proc: u64, attempt: u64) {
        let now = self.secs();
        let up = self.agents[agent].up();
        let Some(p) = self.proc_mut(agent, proc) else {
            return;
        };
        if p.attempt != attempt || p.silent {
            return;
        }
        if !up {
            // The connection is refused: a checkpointing executor tries again until its
            // recovery timeout, others give up.
            let since = *p.disconnected_at.get_or_insert(now);
            if !p.checkpoint || now - since > RECOVERY_TIMEOUT {
                self.exec_die(agent, proc, GAVE_UP_STATUS);
            } else {
                let delay = self.delay(0.05, SUBSCRIPTION_BACKOFF_MAX);
                self.exec_subscribe_in(agent, proc, delay);
            }
            return;
        }
        let reconnecting = p.disconnected_at.take().is_some();
        let node = &mut self.agents[agent];
        node.next_stream += 1;
        let stream = node.next_stream;
        let Some(p) = node.procs.get_mut(&proc) else {
            return;
        };
        p.stream = Some(stream);
        let input = Input::Subscribe {
            framework_id: p.framework_id.clone(),
            executor_id: p.executor_id.clone(),
            subscribe: Subscribe {
                unacknowledged_tasks: p.infos.clone(),
                unacknowledged_updates: p
                    .unacked
                    .iter()
                    .map(|status| UpdateCall {
                        status: status.clone(),
                    })
                    .collect(),
            },
            stream,
        };
        node.streams.insert(stream, proc);
        self.note(|| format!("agent {agent} executor {proc} subscribes"));
        if self.agent_handle(agent, input).is_err() {
            self.agents[agent].streams.remove(&stream);
            // The executor cannot subscribe; it exits with an error.
            self.exec_die(agent, proc, GAVE_UP_STATUS);
        } else if reconnecting {
            self.recovery.resubscribed += 1;
        }
    }

    pub fn exec_event(&mut self, agent: usize, stream: u64, event: Event) {
        let Some(&proc) = self.agents[agent].streams.get(&stream) else {
            return;
        };
        let Some(p) = self.proc_mut(agent, proc) else {
            return;
        };
        if p.stream != Some(stream) {
            return;
        }
        match event {
            Event::Launch(launch) => self.exec_start_task(agent, proc, launch.task),
            Event::LaunchGroup(group) => {
                for task in group.task_group.tasks {
                    self.exec_start_task(agent, proc, task);
                }
            }
            Event::Kill(kill) => {
                let running = p.tasks.get(&kill.task_id).is_some_and(|s| !s.is_terminal());
                if running {
                    let delay = self.delay(0.01, 1.0);
                    let task = kill.task_id;
                    self.at(delay, Ev::ExecKilled { agent, proc, task });
                }
            }
            Event::Acknowledged(ack) => {
                p.unacked
                    .retain(|s| s.uuid.as_deref() != Some(ack.uuid.as_str()));
                p.infos.retain(|t| t.task_id != ack.task_id);
                if p.idle() {
                    let (command, delay) = (p.command, self.delay(0.001, 0.05));
                    if command {
                        self.exec_exit_in(delay, agent, proc, 0);
                    } else {
                        self.at(IDLE_EXIT, Ev::ExecIdle { agent, proc });
                    }
                }
            }
            Event::Shutdown => {
                for task in p.live() {
                    self.exec_update(agent, proc, &task, TaskState::Killed);
                }
                let delay = self.delay(0.01, 1.0);
                self.exec_exit_in(delay, agent, proc, 0);
            }
            _ => {}
        }
    }

    fn exec_start_task(&mut self, agent: usize, proc: u64, task: TaskInfo) {
        let life = self.agents[agent].life;
        self.note(|| format!("agent {agent} executor {proc} starts {}", task.task_id));
        let Some(p) = self.agents[agent].procs.get_mut(&proc) else {
            return;
        };
        if p.tasks.contains_key(&task.task_id) {
            return;
        }
        let key = (p.framework_id.clone(), task.task_id.clone());
        let command = p.command;
        p.tasks.insert(task.task_id.clone(), TaskState::Staging);
        p.infos.push(task.clone());
        let duration = self.truth.plan(&key).and_then(|plan| plan.duration);
        self.truth.set_running(&key, Some((agent, life)));
        if command {
            self.exec_update(agent, proc, &task.task_id, TaskState::Starting);
        }
        self.exec_update(agent, proc, &task.task_id, TaskState::Running);
        if let Some(secs) = duration {
            let task = task.task_id;
            self.at(secs, Ev::ExecTaskEnd { agent, proc, task });
        }
    }

    /// Sends an UPDATE for one of its tasks; it counts as unacknowledged until the
    /// agent's ACKNOWLEDGED arrives. A call that finds the agent down (or restarted and
    /// not subscribed to yet) fails; the update goes again with the next SUBSCRIBE.
    fn exec_update(&mut self, agent: usize, proc: u64, task: &TaskId, state: TaskState) {
        let mut bytes = [0u8; 16];
        self.rng.fill_bytes(&mut bytes);
        let uuid = base64::engine::general_purpose::STANDARD.encode(bytes);
        let delay = self.delay(0.0002, 0.003);
        let (now, unix) = (self.now_us, self.unix());
        let node = &mut self.agents[agent];
        let life = node.life;
        let Some(p) = node.procs.get_mut(&proc) else {
            return;
        };
        let mut status = TaskStatus::new(task.clone(), state);
        status.uuid = Some(uuid.clone());
        status.source = Some(Source::Executor);
        status.executor_id = Some(p.executor_id.clone());
        status.timestamp = Some(unix);
        p.tasks.insert(task.clone(), state);
        p.unacked.push(status.clone());
        let at = (now + (delay * 1e6) as Micros).max(p.last_call + 1);
        p.last_call = at;
        let key = (p.framework_id.clone(), task.clone());
        let input = Input::Update {
            framework_id: p.framework_id.clone(),
            executor_id: p.executor_id.clone(),
            status,
        };
        self.truth.executor_sent(&key, state, uuid, agent);
        if state.is_terminal() {
            self.truth.set_running(&key, None);
        }
        self.at_us(
            at,
            Ev::AgentInput {
                agent,
                life,
                input: Box::new(input),
            },
        );
    }

    pub fn exec_task_end(&mut self, agent: usize, proc: u64, task: TaskId) {
        let Some(p) = self.proc_mut(agent, proc) else {
            return;
        };
        if p.tasks.get(&task).is_none_or(|s| s.is_terminal()) {
            return;
        }
        let key = (p.framework_id.clone(), task.clone());
        let outcome = self
            .truth
            .plan(&key)
            .map_or(TaskState::Finished, |plan| plan.outcome);
        self.exec_update(agent, proc, &task, outcome);
    }

    pub fn exec_killed(&mut self, agent: usize, proc: u64, task: TaskId) {
        let Some(p) = self.proc_mut(agent, proc) else {
            return;
        };
        if p.tasks.get(&task).is_some_and(|s| !s.is_terminal()) {
            self.exec_update(agent, proc, &task, TaskState::Killed);
        }
    }

    fn exec_exit_in(&mut self, delay: f64, agent: usize, proc: u64, status: i32) {
        let exit = Ev::ExecExit {
            agent,
            proc,
            status,
        };
        self.at(delay, exit);
    }

    pub fn exec_exit(&mut self, agent: usize, proc: u64, status: i32) {
        if self.proc_mut(agent, proc).is_some() {
            self.exec_die(agent, proc, status);
        }
    }

    pub fn exec_idle(&mut self, agent: usize, proc: u64) {
        if self.proc_mut(agent, proc).is_some_and(|p| p.idle()) {
            self.exec_die(agent, proc, 0);
        }
    }

    /// The agent killed the container.
    pub fn exec_kill(&mut self, agent: usize, proc: u64) {
        let Some(p) = self.proc_mut(agent, proc) else {
            return;
        };
        if p.started {
            self.exec_die(agent, proc, SIGKILL_STATUS);
        } else {
            p.kill_on_start = true;
        }
    }

    /// The agent closed the executor's event stream while the executor lives: a
    /// checkpointing executor subscribes again, others exit (reference §2, "Disconnect").
    pub fn exec_stream_ended(&mut self, agent: usize, proc: u64, stream: u64) {
        let Some(p) = self.proc_mut(agent, proc) else {
            return;
        };
        if p.stream != Some(stream) {
            return;
        }
        p.stream = None;
        if p.checkpoint {
            let delay = self.delay(0.5, 2.0);
            self.exec_subscribe_in(agent, proc, delay);
        } else {
            self.exec_die(agent, proc, 0);
        }
    }

    /// The agent process died, or its host went down with it (`reboot`). Executors of
    /// frameworks that checkpoint live on unless the host went down or they had not
    /// started yet: their connection is gone and they try to subscribe again. Some of
    /// them (seeded) die or hang meanwhile, so that the restarted agent also meets
    /// executors that do not come back. The others end with the agent.
    pub fn exec_agent_gone(&mut self, agent: usize, proc: u64, reboot: bool, downtime: f64) {
        let survives = !reboot
            && self.agents[agent]
                .procs
                .get(&proc)
                .is_some_and(|p| p.alive && p.started && p.checkpoint);
        if !survives {
            self.exec_vanish(agent, proc, SIGKILL_STATUS);
            return;
        }
        let fate = self.rng.random_range(0..100);
        let now = self.secs();
        let Some(p) = self.proc_mut(agent, proc) else {
            return;
        };
        p.stream = None;
        p.disconnected_at = Some(now);
        p.silent = false;
        match fate {
            0..=7 => {
                p.attempt += 1;
                let delay = self.delay(0.0, downtime + 1.0);
                self.note(|| format!("agent {agent} executor {proc} will die in {delay:.1}s"));
                self.exec_exit_in(delay, agent, proc, SIGKILL_STATUS);
            }
            8..=15 => {
                p.silent = true;
                self.note(|| format!("agent {agent} executor {proc} hangs"));
            }
            _ => {
                let delay = self.delay(0.05, SUBSCRIPTION_BACKOFF_MAX);
                self.exec_subscribe_in(agent, proc, delay);
            }
        }
    }

    /// A random running executor dies (a fault).
    pub fn exec_crash_random(&mut self) {
        let agent = self.rng.random_range(0..self.agents.len());
        let procs: Vec<u64> = self.agents[agent]
            .procs
            .iter()
            .filter(|(_, p)| p.alive && p.started)
            .map(|(id, _)| *id)
            .collect();
        if procs.is_empty() {
            return;
        }
        let proc = procs[self.rng.random_range(0..procs.len())];
        self.note(|| format!("executor {proc} on agent {agent} crashes"));
        self.exec_die(agent, proc, SIGKILL_STATUS);
    }

    /// The executor's process ends: the agent sees its stream close and then its exit.
    /// An agent that is down learns of it from the launcher's record when it restarts.
    pub fn exec_die(&mut self, agent: usize, proc: u64, status: i32) {
        let life = self.agents[agent].life;
        self.note(|| format!("agent {agent} executor {proc} exits with {status}"));
        let Some(stream) = self.exec_vanish(agent, proc, status) else {
            return;
        };
        let container_id = self.agents[agent].procs[&proc].container_id.clone();
        let delay = self.delay(0.0005, 0.005);
        if let Some(stream) = stream {
            self.agents[agent].streams.remove(&stream);
            let input = Input::StreamClosed { stream };
            self.agent_input_in(delay / 2.0, agent, life, input);
        }
        let input = Input::Exited {
            container_id,
            status,
        };
        self.agent_input_in(delay, agent, life, input);
    }

    /// Ends the process with `status` without telling the agent. Returns its stream, or
    /// `None` when it was not alive. The updates it still held unacknowledged are lost
    /// with it.
    pub fn exec_vanish(&mut self, agent: usize, proc: u64, status: i32) -> Option<Option<u64>> {
        let p = self.proc_mut(agent, proc)?;
        p.alive = false;
        p.exit_status = Some(status);
        let framework_id = p.framework_id.clone();
        let stream = p.stream;
        let unacked: Vec<String> = p.unacked.iter().filter_map(|s| s.uuid.clone()).collect();
        for task in p.live() {
            self.truth.set_running(&(framework_id.clone(), task), None);
        }
        for uuid in unacked {
            self.truth.orphaned(&uuid);
        }
        Some(stream)
    }
}
