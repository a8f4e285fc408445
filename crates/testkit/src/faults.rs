//! The faults a seed injects during the chaos phase, each modelled on what the real
//! shells and network do: partitions of one or several agents (short ones that the
//! timeouts do not notice, and long ones that make agents unreachable), agent process
//! crashes and host reboots (mostly of agents that run executors), dropped agent
//! connections, executor crashes, scheduler crashes with a restart within or beyond the
//! framework's failover timeout, scheduler failovers to a new instance, dropped
//! scheduler connections, and master crashes with a restart from the stored registry.

use crate::world::{Ev, Phase, World};
use rand::Rng;

/// At most this many master crashes per run: each one makes every agent re-register.
const MAX_MASTER_CRASHES: usize = 2;

impl World {
    pub fn inject_fault(&mut self) {
        if self.phase != Phase::Chaos {
            return;
        }
        self.faults += 1;
        let agents = self.agents.len();
        let frameworks = self.scheds.len();
        match self.rng.random_range(0..100) {
            0..=24 => {
                let agent = self.rng.random_range(0..agents);
                let secs = self.partition_length();
                self.partition(agent, secs);
            }
            25..=32 => {
                let secs = self.partition_length();
                for _ in 0..self.rng.random_range(2..8) {
                    let agent = self.rng.random_range(0..agents);
                    self.partition(agent, secs);
                }
            }
            33..=46 => {
                let agent = self.busy_agent();
                let restart = self.delay(1.0, 40.0);
                self.agent_crash(agent, restart);
            }
            47..=54 => {
                let agent = self.rng.random_range(0..agents);
                self.agent_reset_conn(agent);
            }
            55..=69 => self.exec_crash_random(),
            70..=79 => {
                let fw = self.rng.random_range(0..frameworks);
                let timeout = self.scheds[fw].failover_timeout;
                let restart = if self.chance(0.5) {
                    self.delay(0.5, timeout.clamp(1.0, 60.0))
                } else {
                    timeout + self.delay(1.0, 30.0)
                };
                self.sched_crash(fw, restart);
            }
            80..=85 => {
                let fw = self.rng.random_range(0..frameworks);
                self.sched_failover(fw);
            }
            86..=92 => {
                let fw = self.rng.random_range(0..frameworks);
                self.sched_reset_conn(fw);
            }
            _ => {
                if self.master.crashes < MAX_MASTER_CRASHES {
                    let restart = self.delay(1.0, 15.0);
                    self.master_crash(restart);
                }
            }
        }
        let gap = self.fault_gap * self.delay(0.2, 1.8);
        self.at(gap, Ev::Fault);
    }

    /// Mostly an agent that runs executors, so that crashes exercise recovery: most
    /// agents run nothing at a given time.
    fn busy_agent(&mut self) -> usize {
        let busy: Vec<usize> = (0..self.agents.len())
            .filter(|&a| self.agents[a].procs.values().any(|p| p.alive))
            .collect();
        if busy.is_empty() || self.chance(0.25) {
            return self.rng.random_range(0..self.agents.len());
        }
        busy[self.rng.random_range(0..busy.len())]
    }

    /// Short partitions go unnoticed, middling ones make the agent reconnect, long ones
    /// make it unreachable.
    fn partition_length(&mut self) -> f64 {
        match self.rng.random_range(0..10) {
            0..=3 => self.delay(0.5, 10.0),
            4..=7 => self.delay(10.0, 45.0),
            _ => self.delay(45.0, 90.0),
        }
    }
}
