//! Tasks: launch validation (reference §5.2), status updates and their acknowledgements
//! (§5.3), KILL, and reconciliation (§5.5).

use super::drain::rewrite_drain_update;
use super::{KeptStatus, Master};
use mantle_api::internal::{
    KillTask, RunTask, RunTaskGroup, StatusUpdate, StatusUpdateAck, ToAgent,
};
use mantle_api::scheduler::{Acknowledge, Event, Kill, Reconcile, Update};
use mantle_api::*;
use std::collections::BTreeSet;
use std::sync::Arc;

#[derive(Clone, Debug)]
pub struct Task {
    pub info: KeptInfo,
    /// `None` for command tasks.
    pub executor_id: Option<ExecutorId>,
    pub resources: Resources,
    /// The role its resources were allocated to. The task's strings are boxed rather
    /// than `String`s: 8 bytes less each.
    pub role: Box<str>,
    /// The latest state the master has received.
    pub state: TaskState,
    /// The update being delivered to the framework, until it is acknowledged.
    pub status_update_state: Option<TaskState>,
    pub status_update_uuid: Option<Box<str>>,
    /// Received statuses without their `data`, oldest first.
    pub statuses: Vec<KeptStatus>,
    pub launched_at: f64,
    /// When its agent became unreachable, while it is in `unreachable_tasks`.
    pub unreachable_time: Option<f64>,
}

/// What a task needs from its offer: its own resources plus, for a new executor, the
/// executor's.
/// `resources` is the task's wire resources converted (through the master's
/// [`ResourcesCache`], so that tasks of one shape share one value); its error is
/// reported only after the checks that come first.
fn validate_task(
    task: &TaskInfo,
    agent_id: &AgentId,
    known_tasks: &dyn Fn(&TaskId) -> bool,
    resources: Result<Resources, String>,
) -> Result<Resources, String> {
    validate_id("task_id", &task.task_id.value)?;
    if known_tasks(&task.task_id) {
        return Err(format!("Task {} already exists", task.task_id));
    }
    if &task.agent_id != agent_id {
        return Err(format!(
            "Task uses agent {} but the offers are for agent {agent_id}",
            task.agent_id
        ));
    }
    match (&task.executor, &task.command) {
        (Some(_), Some(_)) => {
            return Err("Task should have at most one of 'executor' and 'command'".into())
        }
        (None, None) => {
            return Err("Task should have at least one of 'executor' or 'command'".into())
        }
        (None, Some(command)) => {
            if command.shell && command.value.is_none() {
                return Err("'command.value' must be set when 'command.shell' is true".into());
            }
        }
        (Some(executor), None) => {
            validate_id("executor.executor_id", &executor.executor_id.value)?;
        }
    }
    if task.resources.is_empty() {
        return Err("Task uses no resources".into());
    }
    let resources = resources?;
    if resources.is_empty() {
        return Err("Task uses no resources".into());
    }
    Ok(resources)
}

fn check_fits(what: &str, needed: &Resources, available: &Resources) -> Result<(), String> {
    if available.contains(needed) {
        return Ok(());
    }
    Err(format!(
        "{what} uses more resources ({}) than available in the offers ({})",
        needed.to_text(),
        available.to_text()
    ))
}

impl Master {
    /// A master-generated update: no uuid, SOURCE_MASTER (reference §5.3).
    pub(super) fn send_master_update(
        &mut self,
        framework_id: &FrameworkId,
        task_id: &TaskId,
        agent_id: &AgentId,
        state: TaskState,
        reason: Reason,
        message: &str,
    ) {
        let mut status = TaskStatus::new(task_id.clone(), state);
        status.agent_id = Some(agent_id.clone());
        status.source = Some(Source::Master);
        status.reason = Some(reason);
        status.message = Some(message.to_string());
        self.send(framework_id, Event::Update(Update { status }));
    }

    fn executor_needs(
        &self,
        framework_id: &FrameworkId,
        agent_id: &AgentId,
        executor: &ExecutorInfo,
    ) -> Result<Option<Resources>, String> {
        let running = self
            .frameworks
            .get(framework_id)
            .and_then(|f| f.executors.get(agent_id))
            .is_some_and(|e| e.contains_key(&executor.executor_id));
        if running {
            return Ok(None);
        }
        if let Some(fid) = &executor.framework_id {
            if fid != framework_id {
                return Err(format!(
                    "ExecutorInfo has framework {fid} but the task is for {framework_id}"
                ));
            }
        }
        Resources::from_wire("executor.resources", &executor.resources).map(Some)
    }

    pub(super) fn launch_task(
        &mut self,
        now: f64,
        framework_id: &FrameworkId,
        agent_id: &AgentId,
        role: &str,
        available: &mut Resources,
        mut task: TaskInfo,
    ) {
        let parsed = self.resources_cache.from_wire("resources", &task.resources);
        let framework = self.frameworks.get(framework_id).expect("caller checked");
        let known = |id: &TaskId| framework.tasks.contains_key(id);
        let checked = validate_task(&task, agent_id, &known, parsed).and_then(|resources| {
            let executor = match &task.executor {
                Some(e) => self.executor_needs(framework_id, agent_id, e)?,
                None => None,
            };
            let needed = resources.plus(executor.as_ref().unwrap_or(&Resources::new()));
            check_fits("Task", &needed, available)?;
            Ok((resources, executor))
        });
        let (resources, executor_resources) = match checked {
            Ok(ok) => ok,
            Err(message) => {
                tracing::info!(framework_id = %framework_id, task_id = %task.task_id, error = %message, "invalid task");
                self.send_master_update(
                    framework_id,
                    &task.task_id,
                    &task.agent_id,
                    TaskState::Error,
                    Reason::TaskInvalid,
                    &message,
                );
                return;
            }
        };
        if let Some(executor) = task.executor.as_mut() {
            executor
                .framework_id
                .get_or_insert_with(|| framework_id.clone());
        }
        available.subtract(&resources);
        if let Some(extra) = &executor_resources {
            available.subtract(extra);
        }
        let framework = self
            .frameworks
            .get_mut(framework_id)
            .expect("caller checked");
        if let Some(executor) = &task.executor {
            framework.add_executor(
                agent_id,
                executor.executor_id.clone(),
                || ExecutorInfo::clone(executor),
                executor_resources.unwrap_or_default(),
                role,
            );
        }
        self.agent_tasks
            .insert_task(framework, new_task(agent_id, &task, resources, role, now));
        self.task_added(framework_id, &task.task_id);
        let framework_info = self.frameworks[framework_id].info.clone();
        self.send_to_agent(
            agent_id,
            ToAgent::RunTask(RunTask {
                framework_info,
                task,
            }),
        );
        self.dirty = true;
    }

    pub(super) fn launch_group(
        &mut self,
        now: f64,
        framework_id: &FrameworkId,
        agent_id: &AgentId,
        role: &str,
        available: &mut Resources,
        mut group: LaunchGroup,
    ) {
        let mut parsed: Vec<_> = (group.task_group.tasks.iter())
            .map(|task| self.resources_cache.from_wire("resources", &task.resources))
            .collect();
        let framework = self.frameworks.get(framework_id).expect("caller checked");
        let mut ids = BTreeSet::new();
        let known = |id: &TaskId| framework.tasks.contains_key(id);
        let checked: Result<(Vec<Resources>, Option<Resources>), String> = (|| {
            if group.task_group.tasks.is_empty() {
                return Err("Task group is empty".to_string());
            }
            let executor = self.executor_needs(framework_id, agent_id, &group.executor)?;
            let mut needed = executor.clone().unwrap_or_default();
            let mut each = Vec::new();
            for (task, resources) in group.task_group.tasks.iter().zip(parsed.drain(..)) {
                if !ids.insert(task.task_id.clone()) {
                    return Err(format!("Task {} appears twice in the group", task.task_id));
                }
                if task.executor.is_some() {
                    return Err(format!(
                        "Task {} in a group must not set 'executor'",
                        task.task_id
                    ));
                }
                let mut probe = task.clone();
                probe
                    .command
                    .get_or_insert_with(|| CommandInfo::shell("true"));
                let resources = validate_task(&probe, agent_id, &known, resources)?;
                needed.add(&resources);
                each.push(resources);
            }
            check_fits("Task group", &needed, available)?;
            Ok((each, executor))
        })();
        let (each, executor_resources) = match checked {
            Ok(ok) => ok,
            Err(message) => {
                for task in &group.task_group.tasks {
                    self.send_master_update(
                        framework_id,
                        &task.task_id,
                        &task.agent_id,
                        TaskState::Error,
                        Reason::TaskGroupInvalid,
                        &message,
                    );
                }
                return;
            }
        };
        group
            .executor
            .framework_id
            .get_or_insert_with(|| framework_id.clone());
        if let Some(extra) = &executor_resources {
            available.subtract(extra);
        }
        let framework = self
            .frameworks
            .get_mut(framework_id)
            .expect("caller checked");
        framework.add_executor(
            agent_id,
            group.executor.executor_id.clone(),
            || group.executor.clone(),
            executor_resources.unwrap_or_default(),
            role,
        );
        for (task, resources) in group.task_group.tasks.iter().zip(each) {
            available.subtract(&resources);
            let mut entry = new_task(agent_id, task, resources, role, now);
            entry.executor_id = Some(group.executor.executor_id.clone());
            self.agent_tasks.insert_task(framework, entry);
        }
        let framework_info = framework.info.clone();
        for task in &group.task_group.tasks {
            self.task_added(framework_id, &task.task_id);
        }
        self.send_to_agent(
            agent_id,
            ToAgent::RunTaskGroup(RunTaskGroup {
                framework_info,
                executor: group.executor,
                task_group: group.task_group,
            }),
        );
        self.dirty = true;
    }

    /// A status update from an agent, forwarded to the framework (reference §5.3).
    pub fn agent_status_update(&mut self, now: f64, agent_id: &AgentId, update: StatusUpdate) {
        let mut status = update.status;
        let Some(uuid) = status.uuid.clone() else {
            self.counters.invalid_status_updates += 1;
            tracing::warn!(agent_id = %agent_id, task_id = %status.task_id, "status update without uuid dropped");
            return;
        };
        status.agent_id = Some(agent_id.clone());
        let framework_id = update.framework_id;
        // The framework is gone, or the task is and this is a retransmission of an update
        // that was acknowledged already: acknowledge so the agent stops retrying.
        let settled = |master: &mut Master, framework_id, status: TaskStatus, uuid| {
            let ack = StatusUpdateAck {
                framework_id,
                task_id: status.task_id,
                uuid,
            };
            master.send_to_agent(agent_id, ToAgent::StatusUpdateAck(ack));
        };
        let drain_marks_gone = self.draining.get(agent_id).map(|d| d.info.config.mark_gone);
        let Some(framework) = self.frameworks.get_mut(&framework_id) else {
            self.counters.invalid_status_updates += 1;
            settled(self, framework_id, status, uuid);
            return;
        };
        self.counters.valid_status_updates += 1;
        if let Some(mark_gone) = drain_marks_gone {
            rewrite_drain_update(&mut status, mark_gone, framework.is_partition_aware());
        }
        let mut freed = None;
        let mut fresh = false;
        if let Some(task) = framework.tasks.get_mut(&status.task_id) {
            if task.status_update_uuid.as_deref() != Some(uuid.as_str()) {
                fresh = true;
                let was_terminal = task.state.is_terminal();
                // `state` is the latest state known. An agent resends its unacknowledged
                // updates oldest first, so one that comes after the master learnt the
                // end (from a re-registration) must not bring the task back to life.
                if !was_terminal {
                    task.state = status.state;
                }
                task.status_update_state = Some(status.state);
                task.status_update_uuid = Some(uuid.as_str().into());
                let kept =
                    KeptStatus::keep(&status, &task.info.agent_id, task.executor_id.as_ref());
                // A task keeps two or three statuses; doubling would leave room for four.
                task.statuses.reserve_exact(1);
                task.statuses.push(kept);
                if !was_terminal && status.state.is_terminal() {
                    freed = Some((
                        task.info.agent_id.clone(),
                        task.role.clone(),
                        task.resources.clone(),
                    ));
                    *self
                        .counters
                        .tasks_by_terminal_state
                        .entry(status.state)
                        .or_default() += 1;
                }
            }
        } else if framework.retired(&status.task_id) {
            settled(self, framework_id, status, uuid);
            return;
        }
        if let Some((agent, role, resources)) = freed {
            self.allocator
                .recover(&framework_id, &role, &agent, &resources, None, now);
        }
        // Operators hear of each update once, not of the agent's retransmissions.
        if fresh {
            let latest = self
                .frameworks
                .get(&framework_id)
                .and_then(|f| f.tasks.get(&status.task_id))
                .map_or(status.state, |t| t.state);
            self.task_updated(&framework_id, &status, latest);
        }
        self.send(&framework_id, Event::Update(Update { status }));
        self.dirty = true;
    }

    /// ACKNOWLEDGE from a framework: passes the acknowledgement to the agent and retires
    /// a terminal task once its terminal update is acknowledged.
    pub(super) fn acknowledge(
        &mut self,
        now: f64,
        framework_id: &FrameworkId,
        ack: Acknowledge,
    ) -> Result<(), ApiError> {
        validate_status_uuid("acknowledge.uuid", &ack.uuid).map_err(ApiError::bad_request)?;
        let framework = self
            .frameworks
            .get_mut(framework_id)
            .expect("caller checked");
        let acknowledged_terminal = framework.tasks.get(&ack.task_id).is_some_and(|t| {
            t.status_update_uuid.as_deref() == Some(ack.uuid.as_str())
                && t.status_update_state.is_some_and(TaskState::is_terminal)
        });
        let mut retired_from = None;
        if acknowledged_terminal {
            let mut task = self
                .agent_tasks
                .take_task(framework, &ack.task_id)
                .expect("present");
            task.status_update_uuid = None;
            retired_from = Some(task.info.agent_id.clone());
            framework.completed_tasks.push_back(Arc::new(task));
            while framework.completed_tasks.len() > self.config.max_completed_tasks_per_framework {
                framework.completed_tasks.pop_front();
            }
        }
        self.send_to_agent(
            &ack.agent_id,
            ToAgent::StatusUpdateAck(StatusUpdateAck {
                framework_id: framework_id.clone(),
                task_id: ack.task_id,
                uuid: ack.uuid,
            }),
        );
        if let Some(agent_id) = retired_from {
            self.check_drained(now, &agent_id);
        }
        Ok(())
    }

    /// Every framework's tasks on `agent_id`, in any state, by framework and task ID:
    /// from the index, which debug builds check against a walk over every task.
    pub(super) fn tasks_on(&self, agent_id: &AgentId) -> Vec<(FrameworkId, TaskId)> {
        let tasks = self.agent_tasks.on(agent_id);
        #[cfg(debug_assertions)]
        {
            let mut walked: Vec<(FrameworkId, TaskId)> = self
                .frameworks
                .values()
                .flat_map(|f| {
                    f.tasks
                        .iter()
                        .filter(|(_, t)| &t.info.agent_id == agent_id)
                        .map(|(id, _)| (f.id.clone(), id.clone()))
                })
                .collect();
            walked.sort_unstable();
            debug_assert_eq!(tasks, walked, "the task index of agent {agent_id}");
        }
        tasks
    }

    pub(super) fn kill_task(&mut self, now: f64, framework_id: &FrameworkId, kill: Kill) {
        let framework = self.frameworks.get(framework_id).expect("caller checked");
        match framework.tasks.get(&kill.task_id) {
            Some(task) => {
                let agent_id = task.info.agent_id.clone();
                self.send_to_agent(
                    &agent_id,
                    ToAgent::KillTask(KillTask {
                        framework_id: framework_id.clone(),
                        task_id: kill.task_id,
                        kill_policy: kill.kill_policy,
                    }),
                );
            }
            None => {
                // Unknown tasks are answered as explicit reconciliation answers them.
                let reconcile = Reconcile {
                    tasks: vec![mantle_api::scheduler::ReconcileTask {
                        task_id: kill.task_id,
                        agent_id: kill.agent_id,
                    }],
                };
                self.reconcile(now, framework_id, reconcile);
            }
        }
    }

    /// RECONCILE, implicit (no tasks) or explicit (reference §5.5). Answers carry no uuid.
    pub(super) fn reconcile(
        &mut self,
        _now: f64,
        framework_id: &FrameworkId,
        reconcile: Reconcile,
    ) {
        let framework = self.frameworks.get(framework_id).expect("caller checked");
        let partition_aware = framework.is_partition_aware();
        let mut answers = Vec::new();
        let answer_for = |task: &Task| {
            let state = match task.unreachable_time {
                Some(_) if !partition_aware => TaskState::Lost,
                Some(_) => TaskState::Unreachable,
                None => task.status_update_state.unwrap_or(task.state),
            };
            let mut status = TaskStatus::new(task.info.task_id.clone(), state);
            status.unreachable_time = task.unreachable_time.map(|t| TimeInfo {
                nanoseconds: (t * 1e9) as i64,
            });
            status.agent_id = Some(task.info.agent_id.clone());
            status.executor_id = task.executor_id.clone();
            status.source = Some(Source::Master);
            status.reason = Some(Reason::Reconciliation);
            status.message = Some("Reconciliation: Latest task state".into());
            if let Some(last) = task.statuses.last() {
                let last = last.status(task);
                status.healthy = last.healthy;
                status.check_status = last.check_status.clone();
                status.container_status = last.container_status.clone();
                status.timestamp = last.timestamp;
            }
            status
        };
        if reconcile.tasks.is_empty() {
            answers.extend(framework.tasks.values().map(answer_for));
            answers.extend(framework.unreachable_tasks.values().map(answer_for));
        } else {
            for wanted in &reconcile.tasks {
                let known = framework
                    .tasks
                    .get(&wanted.task_id)
                    .or_else(|| framework.unreachable_tasks.get(&wanted.task_id));
                if let Some(task) = known {
                    answers.push(answer_for(task));
                    continue;
                }
                // The task is unknown. While a recovered agent has not re-registered
                // it may be there, so nothing is answered (for a task without an
                // agent id, while any has not).
                let agent = wanted.agent_id.as_ref();
                let recovering = match agent {
                    Some(a) => self.health.recovered.contains_key(a),
                    None => !self.health.recovered.is_empty(),
                };
                if recovering {
                    continue;
                }
                let unreachable = agent.and_then(|a| self.health.unreachable.get(a));
                let (state, message) = if agent.is_some_and(|a| self.agents.contains_key(a)) {
                    (
                        TaskState::Gone,
                        "Reconciliation: Task is unknown to the agent",
                    )
                } else if unreachable.is_some() {
                    (
                        TaskState::Unreachable,
                        "Reconciliation: Task is unreachable",
                    )
                } else if agent.is_some_and(|a| self.gone.contains_key(a)) {
                    (TaskState::GoneByOperator, "Reconciliation: Task is gone")
                } else {
                    (TaskState::Unknown, "Reconciliation: Task is unknown")
                };
                let state = if partition_aware {
                    state
                } else {
                    TaskState::Lost
                };
                let mut status = TaskStatus::new(wanted.task_id.clone(), state);
                status.agent_id = wanted.agent_id.clone();
                status.source = Some(Source::Master);
                status.reason = Some(Reason::Reconciliation);
                status.message = Some(message.into());
                status.unreachable_time = unreachable.map(|u| TimeInfo {
                    nanoseconds: (u.since * 1e9) as i64,
                });
                answers.push(status);
            }
        }
        for status in answers {
            self.send(framework_id, Event::Update(Update { status }));
        }
    }
}

/// The master's record of a launched task. Its agent's ID is the master's own, which
/// shares its text with every other copy, instead of the one the call carried. (Its
/// framework is the one whose map holds it.)
fn new_task(
    agent_id: &AgentId,
    info: &TaskInfo,
    resources: Resources,
    role: &str,
    now: f64,
) -> Task {
    Task {
        info: KeptInfo::keep(info, agent_id),
        executor_id: info.executor.as_ref().map(|e| e.executor_id.clone()),
        resources,
        role: role.into(),
        state: TaskState::Staging,
        status_update_state: None,
        status_update_uuid: None,
        statuses: Vec::new(),
        launched_at: now,
        unreachable_time: None,
    }
}

/// What the master keeps of a launched task's TaskInfo: the parts Mesos's `Task` shows.
/// Not its executor (kept once per agent in the framework's `executors`; the task names
/// it by `executor_id`), its wire `resources` (the task's `resources` hold them,
/// converted and shared), `data`, `check` or `max_completion_time`, and of its command
/// (or its executor's) only the `user`. A `Task` is 224 bytes with it; it was 432 with
/// the TaskInfo.
#[derive(Clone, Debug)]
pub struct KeptInfo {
    pub name: Box<str>,
    pub task_id: TaskId,
    /// The master's own copy of the agent's ID, which shares its text with the others.
    pub agent_id: AgentId,
    /// The command's user, else its executor's command's.
    pub user: Option<Box<str>>,
    pub labels: Option<Box<Labels>>,
    pub container: Option<Box<serde_json::Value>>,
    pub health_check: Option<Box<serde_json::Value>>,
    pub discovery: Option<Box<serde_json::Value>>,
    pub limits: Option<Box<serde_json::Value>>,
    pub kill_policy: Option<Box<KillPolicy>>,
}

impl KeptInfo {
    pub fn keep(info: &TaskInfo, agent_id: &AgentId) -> KeptInfo {
        KeptInfo {
            name: info.name.as_str().into(),
            task_id: info.task_id.clone(),
            agent_id: agent_id.clone(),
            // Mesos's `Task.user`: the command's, else its executor's command's.
            user: [
                info.command.as_ref(),
                info.executor.as_ref().and_then(|e| e.command.as_ref()),
            ]
            .into_iter()
            .flatten()
            .find_map(|c| c.user.as_deref())
            .map(Into::into),
            labels: info.labels.clone(),
            container: info.container.clone(),
            health_check: info.health_check.clone(),
            discovery: info.discovery.clone(),
            limits: info.limits.clone(),
            kill_policy: info.kill_policy.clone().map(Box::new),
        }
    }
}
