//! A simulated agent host's disk: the checkpoints of `crates/agent/src/checkpoint.rs`,
//! kept in memory in the same `meta/` layout (a map per directory level, `latest`
//! links as names), changed the way `checkpoint::write` changes the files and read back
//! into a [`Recovered`] the way `checkpoint::read` reads them. The real shell writes
//! each checkpoint synchronously before the actions after it, so applying them as the
//! actions come keeps exactly what a crash at any instant would leave. Values are kept
//! typed rather than as JSON: the encoding and torn last records are `checkpoint.rs`'s
//! own tests' business.

use mantle_agent::core::{
    Checkpoint, Recovered, RecoveredExecutor, RecoveredFramework, RecoveredTask, RunKey,
    UpdateRecord,
};
use mantle_api::{AgentId, AgentInfo, ContainerId, ExecutorInfo, FrameworkInfo, TaskInfo};
use std::collections::BTreeMap;

/// `meta/`. Maps are keyed by directory name, so they list in the order `read` sorts
/// directories in.
#[derive(Debug, Default)]
pub struct Disk {
    /// `meta/boot_id`: the boot the agent's info was last checkpointed in.
    boot_id: Option<u64>,
    /// `meta/slaves/latest`.
    latest: Option<AgentId>,
    /// `meta/slaves/<agent_id>/`.
    agents: BTreeMap<String, AgentDir>,
}

#[derive(Debug, Default)]
struct AgentDir {
    /// `slave.info`.
    info: Option<AgentInfo>,
    /// `frameworks/<framework_id>/`.
    frameworks: BTreeMap<String, FrameworkDir>,
}

#[derive(Debug, Default)]
struct FrameworkDir {
    /// `framework.info`.
    info: Option<FrameworkInfo>,
    /// `executors/<executor_id>/`.
    executors: BTreeMap<String, ExecutorDir>,
}

#[derive(Debug, Default)]
struct ExecutorDir {
    /// `executor.info`: the ExecutorInfo and whether it is a command executor.
    info: Option<(ExecutorInfo, bool)>,
    /// `runs/latest`.
    latest: Option<ContainerId>,
    /// `runs/<container_id>/tasks/<task_id>/`.
    runs: BTreeMap<String, BTreeMap<String, TaskDir>>,
}

#[derive(Debug, Default)]
struct TaskDir {
    /// `task.info`.
    info: Option<TaskInfo>,
    /// `task.updates`, one record per line.
    records: Vec<UpdateRecord>,
}

impl Disk {
    fn executor_dir(&mut self, run: &RunKey) -> &mut ExecutorDir {
        self.agents
            .entry(run.agent_id.as_str().to_string())
            .or_default()
            .frameworks
            .entry(run.framework_id.as_str().to_string())
            .or_default()
            .executors
            .entry(run.executor_id.as_str().to_string())
            .or_default()
    }

    /// The directory of one task of one run, created with its parents as
    /// `checkpoint::write` creates them.
    fn task_dir(&mut self, run: &RunKey, task_id: &str) -> &mut TaskDir {
        self.executor_dir(run)
            .runs
            .entry(run.container_id.as_str().to_string())
            .or_default()
            .entry(task_id.to_string())
            .or_default()
    }

    /// Applies one checkpoint as `checkpoint::write` does; `boot` is the host's current
    /// boot.
    pub fn write(&mut self, boot: u64, checkpoint: &Checkpoint) {
        match checkpoint {
            Checkpoint::Agent(info) => {
                let Some(agent_id) = &info.id else {
                    return;
                };
                let dir = self
                    .agents
                    .entry(agent_id.as_str().to_string())
                    .or_default();
                dir.info = Some(info.clone());
                self.boot_id = Some(boot);
                self.latest = Some(agent_id.clone());
            }
            Checkpoint::Framework { agent_id, info } => {
                let Some(framework_id) = &info.id else {
                    return;
                };
                let dir = self
                    .agents
                    .entry(agent_id.as_str().to_string())
                    .or_default()
                    .frameworks
                    .entry(framework_id.as_str().to_string())
                    .or_default();
                dir.info = Some(info.clone());
            }
            Checkpoint::Executor {
                run,
                info,
                command_executor,
            } => {
                let dir = self.executor_dir(run);
                dir.runs
                    .entry(run.container_id.as_str().to_string())
                    .or_default();
                dir.info = Some((info.clone(), *command_executor));
                dir.latest = Some(run.container_id.clone());
            }
            Checkpoint::Task { run, info } => {
                self.task_dir(run, info.task_id.as_str()).info = Some(info.clone());
            }
            Checkpoint::Record {
                run,
                task_id,
                record,
            } => self
                .task_dir(run, task_id.as_str())
                .records
                .push(record.clone()),
            Checkpoint::Forget { run } => {
                let Some(agent) = self.agents.get_mut(run.agent_id.as_str()) else {
                    return;
                };
                let framework_id = run.framework_id.as_str();
                if let Some(framework) = agent.frameworks.get_mut(framework_id) {
                    framework.executors.remove(run.executor_id.as_str());
                    // The framework's checkpoints go with its last executor.
                    if framework.executors.is_empty() {
                        agent.frameworks.remove(framework_id);
                    }
                }
            }
        }
    }

    /// Reads everything back as `checkpoint::read` does on a host now in boot `boot`.
    /// A `latest` link whose agent has no `slave.info` is the error `read` would give.
    pub fn read(&self, boot: u64) -> Result<Recovered, String> {
        let Some(agent_id) = &self.latest else {
            return Ok(Recovered::default());
        };
        let dir = self.agents.get(agent_id.as_str());
        let Some(agent) = dir.and_then(|d| d.info.clone()) else {
            return Err(format!("cannot read slave.info of agent {agent_id}"));
        };
        let rebooted = self.boot_id.is_some_and(|then| then != boot);
        let mut frameworks = Vec::new();
        for framework in dir.map(|d| d.frameworks.values()).into_iter().flatten() {
            // A framework directory without its info holds nothing to recover.
            let Some(info) = framework.info.clone() else {
                continue;
            };
            let executors = framework
                .executors
                .values()
                .filter_map(read_executor)
                .collect();
            frameworks.push(RecoveredFramework { info, executors });
        }
        Ok(Recovered {
            agent: Some(agent),
            rebooted,
            frameworks,
        })
    }
}

/// An executor's latest run, if its info and `runs/latest` are there.
fn read_executor(dir: &ExecutorDir) -> Option<RecoveredExecutor> {
    let (info, command_executor) = dir.info.clone()?;
    let container_id = dir.latest.clone()?;
    let tasks = dir
        .runs
        .get(container_id.as_str())
        .into_iter()
        .flat_map(|tasks| tasks.values())
        .filter_map(|task| {
            Some(RecoveredTask {
                info: task.info.clone()?,
                records: task.records.clone(),
            })
        })
        .collect();
    Some(RecoveredExecutor {
        info,
        command_executor,
        container_id,
        tasks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mantle_api::{TaskState, TaskStatus};

    fn run(container: &str) -> RunKey {
        RunKey {
            agent_id: "a1".into(),
            framework_id: "f1".into(),
            executor_id: "e1".into(),
            container_id: container.into(),
        }
    }

    fn json<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
        serde_json::from_value(value).unwrap()
    }

    fn task(id: &str) -> TaskInfo {
        json(serde_json::json!({
            "name": id, "task_id": {"value": id}, "agent_id": {"value": "a1"}, "resources": []
        }))
    }

    /// Writes the agent, its framework and a run `container` of e1 holding `task_id`
    /// with one update.
    fn write_run(disk: &mut Disk, container: &str, task_id: &str) {
        let agent: AgentInfo = json(serde_json::json!({
            "hostname": "h", "port": 5051, "id": {"value": "a1"}
        }));
        let framework: FrameworkInfo = json(serde_json::json!({
            "user": "u", "name": "n", "id": {"value": "f1"}, "checkpoint": true
        }));
        let executor: ExecutorInfo = json(serde_json::json!({"executor_id": {"value": "e1"}}));
        let mut status = TaskStatus::new(task_id.into(), TaskState::Running);
        status.uuid = Some("u1".into());
        for checkpoint in [
            Checkpoint::Agent(agent),
            Checkpoint::Framework {
                agent_id: "a1".into(),
                info: framework,
            },
            Checkpoint::Executor {
                run: run(container),
                info: executor,
                command_executor: false,
            },
            Checkpoint::Task {
                run: run(container),
                info: task(task_id),
            },
            Checkpoint::Record {
                run: run(container),
                task_id: task_id.into(),
                record: UpdateRecord::Update(Box::new(status)),
            },
        ] {
            disk.write(1, &checkpoint);
        }
    }

    #[test]
    fn reads_back_the_latest_run_and_forgets_with_the_last_executor() {
        let mut disk = Disk::default();
        assert_eq!(disk.read(1), Ok(Recovered::default()));
        write_run(&mut disk, "c1", "t1");
        write_run(&mut disk, "c2", "t2");
        let recovered = disk.read(1).unwrap();
        assert!(!recovered.rebooted);
        assert_eq!(recovered.agent.and_then(|a| a.id), Some("a1".into()));
        let executor = &recovered.frameworks[0].executors[0];
        assert_eq!(executor.container_id.as_str(), "c2");
        let tasks: Vec<&str> = executor
            .tasks
            .iter()
            .map(|t| t.info.task_id.as_str())
            .collect();
        assert_eq!(tasks, ["t2"]);
        assert_eq!(executor.tasks[0].records.len(), 1);
        // Another boot: the same checkpoints, read as a reboot.
        assert!(disk.read(2).unwrap().rebooted);
        disk.write(1, &Checkpoint::Forget { run: run("c2") });
        assert!(disk.read(1).unwrap().frameworks.is_empty());
    }
}
