//! The snapshot the event loop publishes for readers (DESIGN invariant 3): a copy of the
//! core's frameworks, executors and tasks, its counters and its configuration, taken on
//! the loop and rendered off it by `/state`, `/metrics/snapshot`, `/files/*` and the
//! operator API. Rendering never touches the core.

use crate::core::{Core, CoreConfig, Counters, Executor, ExecutorState, Framework};
use mantle_api::{AgentId, AgentInfo, ExecutorId, FrameworkId, MasterInfo};
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;

/// What the agent knew when the snapshot was taken.
pub(crate) struct View {
    pub config: CoreConfig,
    pub agent_id: Option<AgentId>,
    pub agent_info: AgentInfo,
    pub master_info: Option<MasterInfo>,
    /// Registered with a master and connected to it.
    pub connected: bool,
    pub frameworks: BTreeMap<FrameworkId, Framework>,
    pub completed_frameworks: VecDeque<Framework>,
    pub counters: Counters,
}

/// One executor run whose sandbox `/files` serves.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Sandbox {
    pub framework_id: FrameworkId,
    pub executor_id: ExecutorId,
    /// The run directory, `<work_dir>/slaves/<aid>/frameworks/<fid>/executors/<eid>/runs/<cid>`.
    pub directory: PathBuf,
    /// The newest run of its executor: the `runs/latest` paths name it.
    pub latest: bool,
}

impl View {
    pub fn of(core: &Core) -> View {
        View {
            config: core.config.clone(),
            agent_id: core.agent_id.clone(),
            agent_info: core.agent_info(),
            master_info: core.master_info.clone(),
            connected: core.connected,
            frameworks: core.frameworks.clone(),
            completed_frameworks: core.completed_frameworks.clone(),
            counters: core.counters.clone(),
        }
    }

    /// Every framework, the live ones first.
    pub fn all_frameworks(&self) -> impl Iterator<Item = &Framework> {
        self.frameworks
            .values()
            .chain(self.completed_frameworks.iter().rev())
    }

    /// The live executors of live frameworks.
    pub fn live_executors(&self) -> impl Iterator<Item = &Executor> {
        self.frameworks.values().flat_map(|f| f.executors.values())
    }

    /// The sandboxes of every executor run the agent remembers, live or completed; for
    /// each executor id, the live run (else the newest completed one) is the latest.
    pub fn sandboxes(&self) -> Vec<Sandbox> {
        let mut out: Vec<Sandbox> = Vec::new();
        let mut latest: BTreeMap<(FrameworkId, ExecutorId), usize> = BTreeMap::new();
        // Oldest first, so that a later run of the same executor id takes `latest` over.
        let frameworks = self
            .completed_frameworks
            .iter()
            .chain(self.frameworks.values());
        for framework in frameworks {
            let runs = framework
                .completed_executors
                .iter()
                .chain(framework.executors.values());
            for executor in runs {
                let key = (framework.id.clone(), executor.info.executor_id.clone());
                latest.insert(key.clone(), out.len());
                out.push(Sandbox {
                    framework_id: key.0,
                    executor_id: key.1,
                    directory: executor.directory.clone(),
                    latest: false,
                });
            }
        }
        for index in latest.into_values() {
            out[index].latest = true;
        }
        out
    }

    /// Executors by Mesos's states, for the metrics.
    pub fn executors_in(&self, state: ExecutorState) -> usize {
        self.live_executors().filter(|e| e.state == state).count()
    }
}
