//! Checkpoints and recovery (reference §7, "Recovery"): what the core asks the shell to
//! write under `meta/` for frameworks that set `checkpoint`, and how a restarted agent
//! rebuilds its frameworks, executors, tasks and update streams from what the shell read
//! back. Recovered executors get `--executor_reregistration_timeout` to subscribe again;
//! the agent registers with the master only once that is settled, so what it reports is
//! what runs.

use super::updates::UpdateRecord;
use super::{container_limits, Action, Core, Executor, ExecutorState, Framework, Now, Out, Task};
use mantle_api::{
    AgentId, AgentInfo, ContainerId, ExecutorId, ExecutorInfo, FrameworkId, FrameworkInfo, Reason,
    TaskId, TaskInfo, TaskState,
};
use std::collections::{BTreeMap, VecDeque};

/// Names one run of an executor: where its checkpoints live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunKey {
    pub agent_id: AgentId,
    pub framework_id: FrameworkId,
    pub executor_id: ExecutorId,
    pub container_id: ContainerId,
}

/// One durable write the shell must finish before it carries out the actions after it
/// (DESIGN invariant 5: an update is on disk before the executor hears it was taken).
// Always boxed inside an `Action`, so the size of its largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Checkpoint {
    /// `slave.info`, the `slaves/latest` link and the boot id.
    Agent(AgentInfo),
    /// `framework.info`.
    Framework {
        agent_id: AgentId,
        info: FrameworkInfo,
    },
    /// `executor.info` and the `runs/latest` link.
    Executor {
        run: RunKey,
        info: ExecutorInfo,
        command_executor: bool,
    },
    /// `task.info`.
    Task { run: RunKey, info: TaskInfo },
    /// One record appended to `task.updates`.
    Record {
        run: RunKey,
        task_id: TaskId,
        record: UpdateRecord,
    },
    /// The executor is done and its tasks are acknowledged: its checkpoints go.
    Forget { run: RunKey },
}

/// What the shell read back from `meta/` after a restart.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Recovered {
    /// The agent this work_dir belonged to.
    pub agent: Option<AgentInfo>,
    /// The host rebooted since the checkpoints were written: no executor survived.
    pub rebooted: bool,
    pub frameworks: Vec<RecoveredFramework>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RecoveredFramework {
    pub info: FrameworkInfo,
    pub executors: Vec<RecoveredExecutor>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RecoveredExecutor {
    pub info: ExecutorInfo,
    pub command_executor: bool,
    /// The latest run.
    pub container_id: ContainerId,
    pub tasks: Vec<RecoveredTask>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RecoveredTask {
    pub info: TaskInfo,
    pub records: Vec<UpdateRecord>,
}

/// The wait status recorded for executors that a reboot ended: killed by SIGKILL.
const REBOOT_WAIT_STATUS: i32 = 9;

impl Core {
    /// Rebuilds the state a previous run of the agent checkpointed. Returns the actions:
    /// reattach to each executor's container (the shell finds out whether its process
    /// still lives), or, after a reboot, the updates for tasks whose executors are gone.
    pub fn recover(&mut self, now: Now, recovered: Recovered) -> Vec<Action> {
        let mut out = Out {
            actions: Vec::new(),
        };
        let Some(agent_id) = recovered.agent.and_then(|a| a.id) else {
            return out.actions;
        };
        tracing::info!(agent_id = %agent_id, rebooted = recovered.rebooted, frameworks = recovered.frameworks.len(), "recovering checkpointed state");
        self.agent_id = Some(agent_id.clone());
        for framework in recovered.frameworks {
            let Some(framework_id) = framework.info.id.clone() else {
                continue;
            };
            let role = super::executors::framework_role(&framework.info);
            let mut executors = BTreeMap::new();
            for recovered_executor in framework.executors {
                let executor = self.recover_executor(now, &framework_id, &role, recovered_executor);
                self.containers.insert(
                    executor.container_id.clone(),
                    (framework_id.clone(), executor.info.executor_id.clone()),
                );
                executors.insert(executor.info.executor_id.clone(), executor);
            }
            self.frameworks.insert(
                framework_id.clone(),
                Framework {
                    id: framework_id,
                    info: framework.info,
                    terminating: false,
                    executors,
                    completed_executors: VecDeque::new(),
                },
            );
        }
        let executors: Vec<(FrameworkId, ExecutorId)> = self
            .frameworks
            .values()
            .flat_map(|f| f.executors.keys().map(|e| (f.id.clone(), e.clone())))
            .collect();
        for (framework_id, executor_id) in executors {
            if recovered.rebooted {
                // Nothing of the container is left to kill or wait for.
                let state = self.gone_state(&framework_id);
                self.fail_tasks(
                    now,
                    &mut out,
                    &framework_id,
                    &executor_id,
                    state,
                    Reason::ExecutorTerminated,
                    "the agent's host rebooted; the executor did not survive it",
                );
                self.executor_gone(
                    now,
                    &mut out,
                    &framework_id,
                    &executor_id,
                    REBOOT_WAIT_STATUS,
                );
                continue;
            }
            let (Some(framework), Some(agent_id)) =
                (self.frameworks.get(&framework_id), &self.agent_id)
            else {
                continue;
            };
            let Some(executor) = framework.executors.get(&executor_id) else {
                continue;
            };
            let mut spec = self.launch_spec(
                &framework.info,
                &executor.info,
                &executor.container_id,
                agent_id,
            );
            spec.limits = container_limits(executor);
            out.push(Action::Reattach(Box::new(spec)));
        }
        if recovered.rebooted {
            // The agent keeps its id, so registering writes no `slave.info`; without
            // this the boot id would stay the old one and the next restart, even
            // without a reboot, would take the executors running now for gone.
            checkpoint(&mut out, Checkpoint::Agent(self.agent_info()));
        }
        out.actions
    }

    fn recover_executor(
        &mut self,
        now: Now,
        framework_id: &FrameworkId,
        role: &str,
        recovered: RecoveredExecutor,
    ) -> Executor {
        let deadline = now.mono + self.config.executor_reregistration_timeout;
        let mut executor = Executor {
            directory: Default::default(),
            info: recovered.info,
            container_id: recovered.container_id,
            command_executor: recovered.command_executor,
            state: ExecutorState::Registering,
            recovering: true,
            stream: None,
            pid: None,
            registration_deadline: Some(deadline),
            kill_deadline: None,
            kill_sent: false,
            exit_status: None,
            queue: Vec::new(),
            tasks: BTreeMap::new(),
            completed_tasks: VecDeque::new(),
        };
        if let Some(agent_id) = &self.agent_id {
            executor.directory = crate::sandbox::sandbox_dir(
                &self.config.work_dir,
                agent_id,
                framework_id,
                &executor.info.executor_id,
                &executor.container_id,
            );
        }
        for task in recovered.tasks {
            let (taken, ended) =
                self.updates
                    .recover(framework_id, &task.info.task_id, &task.records);
            let statuses: Vec<_> = taken
                .into_iter()
                .map(|mut s| {
                    s.data = None;
                    s
                })
                .collect();
            let recovered_task = Task {
                role: super::executors::task_role(role, &task.info),
                framework_id: framework_id.clone(),
                executor_id: executor.info.executor_id.clone(),
                state: statuses.last().map_or(TaskState::Staging, |s| s.state),
                statuses,
                // Handed to the executor before the restart, or lost with it: the
                // executor's SUBSCRIBE tells which.
                queued: false,
                kill_requested: false,
                info: task.info,
            };
            if ended {
                executor.completed_tasks.push_back(recovered_task);
            } else {
                executor
                    .tasks
                    .insert(recovered_task.info.task_id.clone(), recovered_task);
            }
        }
        executor
    }

    /// Whether recovered executors may still subscribe again: the agent registers with
    /// the master only after that is settled.
    pub fn recovering(&self) -> bool {
        self.frameworks
            .values()
            .flat_map(|f| f.executors.values())
            .any(|e| e.recovering && e.state == ExecutorState::Registering)
    }

    /// A recovered executor subscribed again: the tasks it does not know, and for which
    /// it sent nothing, never reached it before the restart.
    pub(super) fn reconnected(
        &mut self,
        now: Now,
        out: &mut Out,
        framework_id: &FrameworkId,
        executor_id: &ExecutorId,
        known: &[TaskId],
    ) {
        let Some(executor) = self
            .frameworks
            .get_mut(framework_id)
            .and_then(|f| f.executors.get_mut(executor_id))
        else {
            return;
        };
        executor.recovering = false;
        let unknown: Vec<TaskId> = executor
            .tasks
            .values()
            .filter(|t| t.state == TaskState::Staging && !known.contains(&t.info.task_id))
            .map(|t| t.info.task_id.clone())
            .collect();
        let Some(info) = self.frameworks.get(framework_id).map(|f| f.info.clone()) else {
            return;
        };
        for task_id in unknown {
            tracing::warn!(task_id = %task_id, "a task staged before the restart is unknown to its executor");
            self.agent_update(
                now,
                out,
                framework_id,
                executor_id,
                &task_id,
                super::executors::lost_state(&info),
                Reason::AgentRestarted,
                "Task was not delivered to its executor before the agent restarted".to_string(),
            );
        }
    }

    /// Every live task of an executor whose process is gone for a reason outside it
    /// (a reboot, no re-subscription after a restart) becomes TASK_GONE, or TASK_LOST for
    /// frameworks that are not partition-aware, and the container is killed.
    pub(super) fn executor_lost(
        &mut self,
        now: Now,
        out: &mut Out,
        framework_id: &FrameworkId,
        executor_id: &ExecutorId,
        reason: Reason,
        message: &str,
    ) {
        let state = self.gone_state(framework_id);
        self.fail_tasks(now, out, framework_id, executor_id, state, reason, message);
        if let Some(executor) = self
            .frameworks
            .get_mut(framework_id)
            .and_then(|f| f.executors.get_mut(executor_id))
        {
            executor.recovering = false;
            executor.registration_deadline = None;
            executor.queue.clear();
            executor.state = ExecutorState::Terminating;
            super::executors::kill(executor, out);
        }
    }

    /// TASK_GONE, or TASK_LOST for frameworks that are not partition-aware.
    fn gone_state(&self, framework_id: &FrameworkId) -> TaskState {
        let partition_aware = self
            .frameworks
            .get(framework_id)
            .is_some_and(|f| f.info.has_capability("PARTITION_AWARE"));
        if partition_aware {
            TaskState::Gone
        } else {
            TaskState::Lost
        }
    }

    /// The checkpoint location of an executor's run, when its framework checkpoints.
    pub(super) fn run_key(
        &self,
        framework_id: &FrameworkId,
        executor_id: &ExecutorId,
    ) -> Option<RunKey> {
        let framework = self.frameworks.get(framework_id)?;
        if !framework.info.checkpoint {
            return None;
        }
        let executor = framework.executors.get(executor_id)?;
        Some(RunKey {
            agent_id: self.agent_id.clone()?,
            framework_id: framework_id.clone(),
            executor_id: executor_id.clone(),
            container_id: executor.container_id.clone(),
        })
    }

    /// The run holding a task, when its framework checkpoints.
    pub(super) fn task_run_key(
        &self,
        framework_id: &FrameworkId,
        task_id: &TaskId,
    ) -> Option<RunKey> {
        let executor_id = self
            .frameworks
            .get(framework_id)?
            .executor_of(task_id)?
            .info
            .executor_id
            .clone();
        self.run_key(framework_id, &executor_id)
    }
}

pub(super) fn checkpoint(out: &mut Out, checkpoint: Checkpoint) {
    out.push(Action::Checkpoint(Box::new(checkpoint)));
}
