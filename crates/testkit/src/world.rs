//! The simulated world: every node, the network between them, the event queue and the
//! seeded generator, and the loop that runs events in time order. Each node kind adds
//! its own `impl World` block in its module; this one holds what they share.

use crate::agent::AgentNode;
use crate::master::MasterNode;
use crate::net::{Msg, Net};
use crate::queue::{Micros, Queue};
use crate::scheduler::SchedNode;
use crate::truth::Truth;
use mantle_agent::core::Input;
use mantle_api::executor::Event as ExecutorEvent;
use mantle_api::TaskId;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::VecDeque;

/// The Unix time the simulated clock starts at; cores see `START_UNIX + elapsed`.
pub const START_UNIX: f64 = 1_700_000_000.0;

/// What one run simulates.
#[derive(Clone, Debug)]
pub struct Config {
    pub agents: usize,
    pub frameworks: usize,
    /// Simulated seconds during which faults are injected and schedulers launch work.
    pub chaos_secs: f64,
    /// The longest the run waits, after every fault is healed, for the cluster to
    /// settle before the final checks.
    pub settle_secs: f64,
    /// How many of the last events to keep as text for a failure report (0: none,
    /// which is faster; a failing seed is replayed with a trace).
    pub trace: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            agents: 100,
            frameworks: 10,
            chaos_secs: 40.0,
            settle_secs: 900.0,
            trace: 0,
        }
    }
}

/// What a passing run did.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub seed: u64,
    pub events: u64,
    pub tasks_launched: usize,
    pub faults: usize,
    pub simulated_secs: f64,
    pub recovery: Recovery,
}

/// How much of agent recovery a run went through.
#[derive(Clone, Copy, Debug, Default)]
pub struct Recovery {
    /// Agent restarts that recovered an agent id from the disk.
    pub restarts: usize,
    /// Those of them after a host reboot.
    pub reboots: usize,
    /// Executors that subscribed again to a restarted agent.
    pub resubscribed: usize,
    /// Recovered executors whose death the restarted agent found in the launcher's
    /// records.
    pub found_dead: usize,
    /// Updates with REASON_EXECUTOR_REREGISTRATION_TIMEOUT that reached a scheduler.
    pub reregistration_timeouts: usize,
}

impl std::ops::AddAssign for Recovery {
    fn add_assign(&mut self, other: Recovery) {
        self.restarts += other.restarts;
        self.reboots += other.reboots;
        self.resubscribed += other.resubscribed;
        self.found_dead += other.found_dead;
        self.reregistration_timeouts += other.reregistration_timeouts;
    }
}

/// An invariant that did not hold, with the seed that replays it.
#[derive(Clone, Debug)]
pub struct Failure {
    pub seed: u64,
    pub at: f64,
    pub message: String,
    /// The last events before the failure, oldest first (empty unless traced).
    pub trace: Vec<String>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "seed {} failed at t={:.3}s: {}",
            self.seed, self.at, self.message
        )?;
        for line in &self.trace {
            writeln!(f, "  {line}")?;
        }
        write!(f, "replay with MANTLE_SIM_SEED={}", self.seed)
    }
}

/// Which part of a run is going on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Faults are injected and schedulers launch tasks.
    Chaos,
    /// Faults are healed; schedulers kill what they run and wait for the end.
    Settle,
}

/// One thing that happens at one instant.
// The big payloads are boxed: the queue moves events around as it sorts them.
pub enum Ev {
    /// A network message arrives (or is held, when its link is cut).
    Deliver {
        seq: u64,
        msg: Box<Msg>,
    },
    MasterStart,
    MasterTick {
        epoch: u64,
    },
    MasterAllocate {
        epoch: u64,
    },
    AgentStart {
        agent: usize,
    },
    AgentTick {
        agent: usize,
        life: u64,
        at: Micros,
    },
    AgentReconnect {
        agent: usize,
        life: u64,
        attempt: u64,
    },
    AgentRegisterTimeout {
        agent: usize,
        life: u64,
        attempt: u64,
    },
    AgentSilence {
        agent: usize,
        life: u64,
        conn: u64,
    },
    /// A local input for an agent's core (an executor's call, a process exit).
    AgentInput {
        agent: usize,
        life: u64,
        input: Box<Input>,
    },
    // Executor processes may outlive the agent process (frameworks that checkpoint), so
    // their events name the process, not the agent's life.
    ExecStarted {
        agent: usize,
        proc: u64,
    },
    /// An executor (re)subscribes; only its latest planned attempt counts.
    ExecSubscribe {
        agent: usize,
        proc: u64,
        attempt: u64,
    },
    ExecEvent {
        agent: usize,
        stream: u64,
        event: Box<ExecutorEvent>,
    },
    ExecTaskEnd {
        agent: usize,
        proc: u64,
        task: TaskId,
    },
    ExecKilled {
        agent: usize,
        proc: u64,
        task: TaskId,
    },
    ExecExit {
        agent: usize,
        proc: u64,
        status: i32,
    },
    ExecIdle {
        agent: usize,
        proc: u64,
    },
    SchedStart {
        fw: usize,
    },
    SchedReconnect {
        fw: usize,
        life: u64,
    },
    SchedDecide {
        fw: usize,
        life: u64,
    },
    SchedTick {
        fw: usize,
        life: u64,
    },
    /// Inject the next fault.
    Fault,
    /// End the partition of one agent.
    Heal {
        agent: usize,
        cut: u64,
    },
    SettleStart,
    SettleCheck,
}

pub struct World {
    pub seed: u64,
    pub config: Config,
    pub rng: StdRng,
    queue: Queue<Ev>,
    pub now_us: Micros,
    pub phase: Phase,
    pub net: Net,
    pub master: MasterNode,
    pub agents: Vec<AgentNode>,
    pub scheds: Vec<SchedNode>,
    pub truth: Truth,
    pub failure: Option<Failure>,
    pub events: u64,
    pub faults: usize,
    pub recovery: Recovery,
    pub settled: bool,
    /// The mean time between two faults in this run, in seconds.
    pub fault_gap: f64,
    trace: VecDeque<String>,
}

impl World {
    pub fn new(seed: u64, config: Config) -> World {
        let rng = StdRng::seed_from_u64(seed);
        let agents = (0..config.agents).map(|_| AgentNode::new()).collect();
        let scheds = (0..config.frameworks)
            .map(|_| SchedNode::default())
            .collect();
        let mut world = World {
            seed,
            rng,
            queue: Queue::new(),
            now_us: 0,
            phase: Phase::Chaos,
            net: Net::new(config.agents),
            master: MasterNode::default(),
            agents,
            scheds,
            truth: Truth::default(),
            failure: None,
            events: 0,
            faults: 0,
            recovery: Recovery::default(),
            settled: false,
            fault_gap: 0.0,
            trace: VecDeque::new(),
            config,
        };
        for fw in 0..world.scheds.len() {
            world.scheds[fw] = SchedNode::new(fw, &mut world.rng);
        }
        world.fault_gap = world.rng.random_range(2.0..8.0);
        world
    }

    /// Seconds since the start of the run.
    pub fn secs(&self) -> f64 {
        self.now_us as f64 / 1e6
    }

    /// The Unix time the cores see.
    pub fn unix(&self) -> f64 {
        START_UNIX + self.secs()
    }

    pub fn at(&mut self, delay_secs: f64, event: Ev) {
        let at = self.now_us + (delay_secs.max(0.0) * 1e6) as Micros;
        self.queue.push(at, event);
    }

    pub fn at_us(&mut self, at: Micros, event: Ev) {
        self.queue.push(at.max(self.now_us), event);
    }

    /// A uniformly random delay in `[lo, hi)` seconds.
    pub fn delay(&mut self, lo: f64, hi: f64) -> f64 {
        self.rng.random_range(lo..hi)
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p.clamp(0.0, 1.0))
    }

    /// Keeps a line for the failure report, formatted only when a trace is wanted.
    pub fn note(&mut self, line: impl FnOnce() -> String) {
        if self.config.trace == 0 {
            return;
        }
        if self.trace.len() == self.config.trace {
            self.trace.pop_front();
        }
        let text = format!("{:10.4} {}", self.secs(), line());
        self.trace.push_back(text);
    }

    /// Records the first invariant violation; the run stops after the current event.
    pub fn fail(&mut self, message: String) {
        if self.failure.is_some() {
            return;
        }
        self.note(|| format!("VIOLATION: {message}"));
        self.failure = Some(Failure {
            seed: self.seed,
            at: self.secs(),
            message,
            trace: self.trace.iter().cloned().collect(),
        });
    }

    /// Runs until the cluster settled after the chaos phase, an invariant failed, or
    /// time ran out.
    pub fn run(mut self) -> Result<Report, Failure> {
        self.at(0.0, Ev::MasterStart);
        for agent in 0..self.agents.len() {
            let d = self.delay(0.0, 2.0);
            self.at(d, Ev::AgentStart { agent });
        }
        for fw in 0..self.scheds.len() {
            let d = self.delay(0.5, 3.0);
            self.at(d, Ev::SchedStart { fw });
        }
        let first_fault = self.delay(5.0, 15.0);
        self.at(first_fault, Ev::Fault);
        let chaos = self.config.chaos_secs;
        self.at(chaos, Ev::SettleStart);
        let limit = ((chaos + self.config.settle_secs) * 1e6) as Micros;
        while let Some((at, event)) = self.queue.pop() {
            if at > limit {
                break;
            }
            self.now_us = at;
            self.events += 1;
            self.dispatch(event);
            if self.failure.is_some() || self.settled {
                break;
            }
        }
        if self.failure.is_none() {
            self.final_checks();
        }
        match self.failure.take() {
            Some(failure) => Err(failure),
            None => Ok(Report {
                seed: self.seed,
                events: self.events,
                tasks_launched: self.truth.launched(),
                faults: self.faults,
                simulated_secs: self.secs(),
                recovery: self.recovery,
            }),
        }
    }

    fn dispatch(&mut self, event: Ev) {
        match event {
            Ev::Deliver { seq, msg } => self.deliver(seq, *msg),
            Ev::MasterStart => self.master_start(),
            Ev::MasterTick { epoch } => self.master_tick(epoch),
            Ev::MasterAllocate { epoch } => self.master_allocate(epoch),
            Ev::AgentStart { agent } => self.agent_start(agent),
            Ev::AgentTick { agent, life, at } => self.agent_tick(agent, life, at),
            Ev::AgentReconnect {
                agent,
                life,
                attempt,
            } => self.agent_reconnect(agent, life, attempt),
            Ev::AgentRegisterTimeout {
                agent,
                life,
                attempt,
            } => self.agent_register_timeout(agent, life, attempt),
            Ev::AgentSilence { agent, life, conn } => self.agent_silence(agent, life, conn),
            Ev::AgentInput { agent, life, input } => self.agent_local_input(agent, life, *input),
            Ev::ExecStarted { agent, proc } => self.exec_started(agent, proc),
            Ev::ExecSubscribe {
                agent,
                proc,
                attempt,
            } => self.exec_subscribe(agent, proc, attempt),
            Ev::ExecEvent {
                agent,
                stream,
                event,
            } => self.exec_event(agent, stream, *event),
            Ev::ExecTaskEnd { agent, proc, task } => self.exec_task_end(agent, proc, task),
            Ev::ExecKilled { agent, proc, task } => self.exec_killed(agent, proc, task),
            Ev::ExecExit {
                agent,
                proc,
                status,
            } => self.exec_exit(agent, proc, status),
            Ev::ExecIdle { agent, proc } => self.exec_idle(agent, proc),
            Ev::SchedStart { fw } => self.sched_start(fw),
            Ev::SchedReconnect { fw, life } => self.sched_reconnect(fw, life),
            Ev::SchedDecide { fw, life } => self.sched_decide(fw, life),
            Ev::SchedTick { fw, life } => self.sched_tick(fw, life),
            Ev::Fault => self.inject_fault(),
            Ev::Heal { agent, cut } => self.heal(agent, cut),
            Ev::SettleStart => self.settle_start(),
            Ev::SettleCheck => self.settle_check(),
        }
    }
}
