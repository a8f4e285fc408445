//! The simulated containerizer (`--containerizers=simulated`) and the in-process form
//! that runs thousands of simulated agents in one process ([`fleet`]).
//!
//! A simulated agent is the real agent: the same core (status update manager,
//! acknowledgements, reconciliation, kills, checkpoints of frameworks that checkpoint),
//! the same event loop and the same master link over the real master-agent protocol.
//! Only the containerizer differs: instead of starting `mantle-launcher` and an
//! executor process, the event loop hands each container to a simulated executor
//! ([`executors`]) that lives inside the agent and "runs" each task as a timer whose
//! length and outcome come from the task ([`plan`]). No sandbox, cgroup or process is
//! created per task; the sandbox paths the agent reports name directories that do not
//! exist.
//!
//! An agent restarted over the same `--work_dir` recovers what the core checkpointed,
//! but its simulated executors ended with the earlier process: every recovered container
//! is reported exited (SIGKILL), so its live tasks fail as those of a dead executor do.

pub mod executors;
pub mod fleet;
pub mod plan;
#[cfg(test)]
mod tests;

pub use executors::{Settings, Stats};
pub use fleet::{
    start_many, AgentSpec, Counters, Fleet, FleetConfig, DEFAULT_AGENTS_PER_CONNECTION,
};

use crate::core::{Action, Input, Now};
use std::collections::VecDeque;

/// What a simulated agent's event loop keeps besides the core: its executors and the
/// inputs they gave that the core has not taken yet.
pub(crate) struct Simulation {
    pub executors: executors::Executors,
    pending: VecDeque<Input>,
    /// Whether `Checkpoint` actions are written (an agent with a work_dir of its own);
    /// agents of a fleet keep nothing on disk.
    checkpoints: bool,
    /// Where an agent of a fleet reports.
    observer: Option<fleet::Observer>,
}

impl Simulation {
    pub fn new(settings: Settings, checkpoints: bool, observer: Option<fleet::Observer>) -> Self {
        Simulation {
            executors: executors::Executors::new(settings),
            pending: VecDeque::new(),
            checkpoints,
            observer,
        }
    }

    /// Carries out an action that concerns containers or executor streams; other actions
    /// are given back for the event loop.
    pub fn act(&mut self, now: Now, action: Action) -> Option<Action> {
        let inputs = match action {
            Action::Launch(spec) => self.executors.launch(&spec),
            Action::Reattach(spec) => self.executors.reattach(&spec),
            Action::Kill { container_id } => self.executors.kill(&container_id),
            // Nothing enforces limits on a timer.
            Action::Update { .. } => Vec::new(),
            Action::ToExecutor { stream, event } if self.executors.owns_stream(stream) => {
                self.executors.event(now, stream, event)
            }
            Action::CloseStream { stream } if self.executors.owns_stream(stream) => {
                self.executors.stream_closed(stream);
                Vec::new()
            }
            Action::Checkpoint(_) if !self.checkpoints => Vec::new(),
            other => return Some(other),
        };
        self.pending.extend(inputs);
        None
    }

    /// Fires the executors' timers due by `now`.
    pub fn fire(&mut self, now: Now) {
        let inputs = self.executors.due(now);
        self.pending.extend(inputs);
    }

    /// The next input the simulated executors gave, in the order they gave them.
    pub fn next_input(&mut self) -> Option<Input> {
        self.pending.pop_front()
    }

    /// Notes what an agent of a fleet reports: its registration and its tasks.
    pub fn observe(&mut self, input: &Input) {
        if let Some(observer) = &mut self.observer {
            observer.input(input);
        }
    }

    /// Adds what the executors did since the last report to the fleet's counters.
    pub fn report(&mut self) {
        if let Some(observer) = &mut self.observer {
            observer.stats(self.executors.stats);
        }
    }
}
