//! Simulated executors, one per container the agent launches. They behave as the
//! built-in command executor and the SDK's executor do (reference §2): subscribe once
//! started, answer LAUNCH with STARTING (command tasks) and RUNNING, run each task as a
//! timer ending in FINISHED or FAILED, answer KILL with KILLED after a short grace, kill
//! everything and exit on SHUTDOWN, and keep every update until the agent acknowledges
//! it, sending the unacknowledged ones again with a new SUBSCRIBE. A command executor
//! exits once its task's terminal update is acknowledged; a custom one exits after it
//! has been idle for a while.

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
const SIGKILL_STATUS: i32 = 9;

pub struct Proc {
    pub container_id: ContainerId,
    pub framework_id: FrameworkId,
    pub executor_id: ExecutorId,
    /// The built-in command executor: one task, exits after it.
    pub command: bool,
    pub alive: bool,
    pub started: bool,
    kill_on_start: bool,
    pub stream: Option<u64>,
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
    fn proc_mut(&mut self, agent: usize, life: u64, proc: u64) -> Option<&mut Proc> {
        let node = &mut self.agents[agent];
        if node.life != life {
            return None;
        }
        node.procs.get_mut(&proc).filter(|p| p.alive)
    }

    pub fn exec_launch(&mut self, agent: usize, spec: LaunchSpec) {
        let node = &mut self.agents[agent];
        node.next_proc += 1;
        let id = node.next_proc;
        let command = spec.command.value.as_deref() != Some(CUSTOM_EXECUTOR);
        node.by_container.insert(spec.container_id.clone(), id);
        node.procs.insert(
            id,
            Proc {
                container_id: spec.container_id,
                framework_id: spec.framework_id,
                executor_id: spec.executor_id,
                command,
                alive: true,
                started: false,
                kill_on_start: false,
                stream: None,
                tasks: BTreeMap::new(),
                infos: Vec::new(),
                unacked: Vec::new(),
                last_call: 0,
            },
        );
        let life = node.life;
        self.note(|| format!("agent {agent} launches executor {id}"));
        let delay = self.delay(0.005, 0.1);
        self.at(
            delay,
            Ev::ExecStarted {
                agent,
                life,
                proc: id,
            },
        );
    }

    pub fn exec_started(&mut self, agent: usize, life: u64, proc: u64) {
        let fail_launch = self.chance(0.01);
        let hang = self.chance(0.01);
        let Some(p) = self.proc_mut(agent, life, proc) else {
            return;
        };
        let container_id = p.container_id.clone();
        if fail_launch {
            p.alive = false;
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
            self.at(delay, Ev::ExecSubscribe { agent, life, proc });
        }
    }

    pub fn exec_subscribe(&mut self, agent: usize, life: u64, proc: u64) {
        let node = &mut self.agents[agent];
        node.next_stream += 1;
        let stream = node.next_stream;
        let Some(p) = self.proc_mut(agent, life, proc) else {
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
        self.agents[agent].streams.insert(stream, proc);
        if self.agent_handle(agent, input).is_err() {
            self.agents[agent].streams.remove(&stream);
            // The executor cannot subscribe; it exits with an error.
            self.exec_die(agent, proc, 1 << 8);
        }
    }

    pub fn exec_event(&mut self, agent: usize, life: u64, stream: u64, event: Event) {
        let Some(&proc) = self.agents[agent].streams.get(&stream) else {
            return;
        };
        let Some(p) = self.proc_mut(agent, life, proc) else {
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
                    self.at(
                        delay,
                        Ev::ExecKilled {
                            agent,
                            life,
                            proc,
                            task,
                        },
                    );
                }
            }
            Event::Acknowledged(ack) => {
                p.unacked
                    .retain(|s| s.uuid.as_deref() != Some(ack.uuid.as_str()));
                p.infos.retain(|t| t.task_id != ack.task_id);
                if p.idle() {
                    let (command, delay) = (p.command, self.delay(0.001, 0.05));
                    if command {
                        self.at(
                            delay,
                            Ev::ExecExit {
                                agent,
                                life,
                                proc,
                                status: 0,
                            },
                        );
                    } else {
                        self.at(IDLE_EXIT, Ev::ExecIdle { agent, life, proc });
                    }
                }
            }
            Event::Shutdown => {
                for task in p.live() {
                    self.exec_update(agent, proc, &task, TaskState::Killed);
                }
                let delay = self.delay(0.01, 1.0);
                self.at(
                    delay,
                    Ev::ExecExit {
                        agent,
                        life,
                        proc,
                        status: 0,
                    },
                );
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
            self.at(
                secs,
                Ev::ExecTaskEnd {
                    agent,
                    life,
                    proc,
                    task,
                },
            );
        }
    }

    /// Sends an UPDATE for one of its tasks; it counts as unacknowledged until the
    /// agent's ACKNOWLEDGED arrives.
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
        self.truth.executor_sent(&key, state, uuid, agent, life);
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

    pub fn exec_task_end(&mut self, agent: usize, life: u64, proc: u64, task: TaskId) {
        let Some(p) = self.proc_mut(agent, life, proc) else {
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

    pub fn exec_killed(&mut self, agent: usize, life: u64, proc: u64, task: TaskId) {
        let Some(p) = self.proc_mut(agent, life, proc) else {
            return;
        };
        if p.tasks.get(&task).is_some_and(|s| !s.is_terminal()) {
            self.exec_update(agent, proc, &task, TaskState::Killed);
        }
    }

    pub fn exec_exit(&mut self, agent: usize, life: u64, proc: u64, status: i32) {
        if self.proc_mut(agent, life, proc).is_some() {
            self.exec_die(agent, proc, status);
        }
    }

    pub fn exec_idle(&mut self, agent: usize, life: u64, proc: u64) {
        if self.proc_mut(agent, life, proc).is_some_and(|p| p.idle()) {
            self.exec_die(agent, proc, 0);
        }
    }

    /// The agent killed the container.
    pub fn exec_kill(&mut self, agent: usize, proc: u64) {
        let Some(p) = self.agents[agent].procs.get_mut(&proc).filter(|p| p.alive) else {
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
        let life = self.agents[agent].life;
        let Some(p) = self.proc_mut(agent, life, proc) else {
            return;
        };
        if p.stream != Some(stream) {
            return;
        }
        p.stream = None;
        let key = (p.framework_id.clone(), TaskId::new(""));
        let checkpoint = self.truth.checkpointing(&key.0);
        if checkpoint {
            let delay = self.delay(0.5, 2.0);
            self.at(delay, Ev::ExecSubscribe { agent, life, proc });
        } else {
            self.exec_die(agent, proc, 0);
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
    pub fn exec_die(&mut self, agent: usize, proc: u64, status: i32) {
        let life = self.agents[agent].life;
        self.note(|| format!("agent {agent} executor {proc} exits with {status}"));
        let Some(stream) = self.exec_vanish(agent, proc) else {
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

    /// Ends the process without telling the agent (it dies with the agent). Returns its
    /// stream, or `None` when it was not alive.
    pub fn exec_vanish(&mut self, agent: usize, proc: u64) -> Option<Option<u64>> {
        let p = self.agents[agent]
            .procs
            .get_mut(&proc)
            .filter(|p| p.alive)?;
        p.alive = false;
        let framework_id = p.framework_id.clone();
        let stream = p.stream;
        for task in p.live() {
            self.truth.set_running(&(framework_id.clone(), task), None);
        }
        Some(stream)
    }
}
