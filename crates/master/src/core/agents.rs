//! Agents: registration and re-registration over Mantle's agent protocol, disconnection,
//! and the calls agents make (status updates, executor exits, executor messages, pongs).
//! Reference §5.1; failure detection is in `health.rs`.

use super::frameworks::allocator_options;
use super::{Action, Framework, KeptInfo, Master, StreamId, Task};
use mantle_api::internal::{
    AgentCall, ExecutorExited, ExecutorMessage, Register, Registered, ToAgent,
};
use mantle_api::scheduler::{Event, Failure, FrameworkMessage};
use mantle_api::*;
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

#[derive(Clone, Debug)]
pub struct Agent {
    pub id: AgentId,
    /// With `id` set, and without its `resources`: those are `total`, and
    /// [`Agent::full_info`] puts them back (a copy per agent of the wire list cost
    /// about 1.5 KB).
    pub info: AgentInfo,
    /// `slave(1)@ip:port`.
    pub pid: String,
    pub version: String,
    pub stream: Option<StreamId>,
    pub total: Resources,
    pub registered_time: f64,
    pub reregistered_time: Option<f64>,
    pub disconnected_since: Option<f64>,
    /// When the agent last answered a ping or made a call.
    pub last_heard: f64,
}

impl Agent {
    /// `ip:port` of the agent's HTTP server, taken from its pid.
    pub fn endpoint(&self) -> &str {
        self.pid.split_once('@').map_or("", |(_, addr)| addr)
    }

    pub fn url(&self) -> Url {
        let (ip, port) = self.endpoint().rsplit_once(':').unwrap_or(("", "5051"));
        Url {
            scheme: "http".into(),
            address: Address {
                hostname: Some(self.info.hostname.clone()),
                ip: Some(ip.to_string()),
                port: port.parse().unwrap_or(5051),
            },
            path: Some("/slave(1)".into()),
        }
    }

    pub fn active(&self) -> bool {
        self.stream.is_some()
    }

    /// The AgentInfo as Mesos shows and stores it: `info` with `total` as its resources.
    pub fn full_info(&self) -> AgentInfo {
        AgentInfo {
            resources: self.total.to_wire(),
            ..self.info.clone()
        }
    }
}

fn validate_register(register: &Register, cache: &mut ResourcesCache) -> Result<Resources, String> {
    if register.agent_info.hostname.is_empty() {
        return Err("'agent_info.hostname' must not be empty".into());
    }
    let Some((name, addr)) = register.pid.split_once('@') else {
        return Err(format!(
            "'pid' must look like slave(1)@ip:port, got '{}'",
            register.pid
        ));
    };
    if name.is_empty()
        || addr
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok())
            .is_none()
    {
        return Err(format!(
            "'pid' must look like slave(1)@ip:port, got '{}'",
            register.pid
        ));
    }
    if let Some(id) = &register.agent_info.id {
        validate_id("agent_info.id", &id.value)?;
    }
    cache.from_wire("agent_info.resources", &register.agent_info.resources)
}

/// What a framework's tasks and executors hold under one role on an agent.
type Held = (FrameworkId, String, Resources);

impl Master {
    /// Registers or re-registers an agent on a new stream.
    pub fn register_agent(
        &mut self,
        now: f64,
        stream: StreamId,
        mut register: Register,
    ) -> Result<AgentId, ApiError> {
        let total = validate_register(&register, &mut self.resources_cache)
            .map_err(ApiError::bad_request)?;
        self.check_machine_up(&register.agent_info.hostname, &register.pid)?;
        if let Some(id) = register
            .agent_info
            .id
            .as_ref()
            .filter(|id| self.gone.contains_key(*id))
        {
            return Err(ApiError::forbidden(format!(
                "agent '{id}' has been marked gone"
            )));
        }
        if register.agent_info.id.is_none() {
            self.registering_at_known_address(now, &mut register);
        }
        let id = match register.agent_info.id.clone() {
            Some(id) => {
                self.counters.agent_reregistrations += 1;
                id
            }
            None => {
                self.counters.agent_registrations += 1;
                let id = AgentId::new(format!("{}-S{}", self.info.id, self.next_agent));
                self.next_agent += 1;
                id
            }
        };
        let total = self.with_reservations(&id, total);
        let removed = self.removed_frameworks_reported(&register);
        // The wire resources are `total` now (nothing below reads them): dropped instead
        // of copied with the rest.
        register.agent_info.resources = Vec::new();
        let mut info = register.agent_info.clone();
        info.id = Some(id.clone());
        let to_kill;
        if let Some(agent) = self.agents.get_mut(&id) {
            if let Some(old) = agent.stream.replace(stream.clone()) {
                if old != stream {
                    self.agent_streams.remove(&old);
                    self.actions.push(Action::CloseAgent { stream: old });
                }
            }
            self.agent_streams.insert(stream.clone(), id.clone());
            agent.reregistered_time = Some(now);
            agent.disconnected_since = None;
            agent.last_heard = now;
            let old = address_of(&agent.pid, &agent.info);
            agent.pid = register.pid.clone();
            let info_changed = agent.info != info;
            agent.info = info;
            let new = address_of(&register.pid, &register.agent_info);
            if old != new {
                self.forget_agent_address(old, &id);
                self.agent_addresses.insert(new, id.clone());
            }
            if info_changed {
                self.agent_entry_changed(&id);
            }
            self.allocator
                .set_agent_active(&id, !self.deactivated.contains(&id));
            self.cancel_unreachable(&id);
            to_kill = self.unknown_reported_tasks(&register);
            self.reconcile_known_agent(now, &id, &register);
            tracing::info!(agent_id = %id, "agent re-registered");
        } else {
            let agent = Agent {
                id: id.clone(),
                info,
                pid: register.pid.clone(),
                version: register.version.clone(),
                stream: Some(stream.clone()),
                total: total.clone(),
                registered_time: now,
                reregistered_time: register.agent_info.id.is_some().then_some(now),
                disconnected_since: None,
                last_heard: now,
            };
            // A new agent, or one known only from the registry or as unreachable. An
            // agent of the registry that comes back as it was stored changes nothing
            // there, so a crowd of them after a master restart costs no store.
            let stored = self.health.recovered.get(&id).map(|(info, _)| info);
            if stored != Some(&agent.full_info()) {
                self.agent_entry_changed(&id);
            }
            self.agents.insert(id.clone(), agent);
            self.agent_streams.insert(stream.clone(), id.clone());
            self.agent_addresses
                .insert(address_of(&register.pid, &register.agent_info), id.clone());
            let mut used = self.readmit_unreachable(now, &id, &register);
            let (adopted, retired) = self.adopt_reported_tasks(now, &id, &mut register);
            used.extend(adopted);
            to_kill = retired;
            self.allocator.add_agent(&id, &total, &used);
            if self.deactivated.contains(&id) {
                self.allocator.set_agent_active(&id, false);
            }
            tracing::info!(agent_id = %id, pid = %register.pid, "agent registered");
        }
        self.agent_added(&id);
        // REGISTERED goes first: the agent takes anything else before it as a failed
        // registration.
        self.actions.push(Action::Agent {
            stream,
            message: ToAgent::Registered(Registered {
                agent_id: id.clone(),
                master_info: self.info.clone(),
                ping_interval_seconds: self.config.agent_ping_interval,
            }),
        });
        for framework_id in removed {
            self.send_to_agent(
                &id,
                ToAgent::ShutdownFramework(mantle_api::internal::ShutdownFramework {
                    framework_id,
                }),
            );
        }
        // Live tasks the master does not know (any more) of frameworks it knows: it told
        // their framework they are lost, so they must not run on (Mesos kills such tasks
        // when a known agent re-registers).
        for (framework_id, task_id) in to_kill {
            tracing::warn!(agent_id = %id, task_id = %task_id, "agent reports a task that is supposed to be dead; killing it");
            self.send_to_agent(
                &id,
                ToAgent::KillTask(mantle_api::internal::KillTask {
                    framework_id,
                    task_id,
                    kill_policy: None,
                }),
            );
        }
        // A drain goes on when its agent comes back (Mesos resends the drain then).
        self.kill_for_drain(now, &id);
        self.check_drained(now, &id);
        self.dirty = true;
        Ok(id)
    }

    /// After a master restart, an agent's report is how the master learns about running
    /// tasks and about frameworks that have not re-subscribed yet. The reported tasks and
    /// executors are moved out of `register`, not copied: a crowd of agents re-registering
    /// after a failover brings hundreds of thousands of them. Returns what the adopted
    /// tasks and executors hold, and the live tasks the master had retired (declared
    /// lost, say), which are killed instead.
    fn adopt_reported_tasks(
        &mut self,
        now: f64,
        agent_id: &AgentId,
        register: &mut Register,
    ) -> (Vec<Held>, Vec<(FrameworkId, TaskId)>) {
        let mut used = Vec::new();
        let mut retired_live = Vec::new();
        for info in &register.frameworks {
            let Some(id) = info.id.clone() else { continue };
            if self.frameworks.contains_key(&id)
                || self.completed_frameworks.iter().any(|f| f.id == id)
            {
                continue;
            }
            let mut framework = Framework::new(info.clone(), None, now);
            framework.recovered = true;
            self.allocator
                .add_framework(&id, &allocator_options(info), false);
            // Not stored before the agent is answered: after another restart the agents
            // would report the framework again.
            self.frameworks.insert(id, framework);
        }
        for mut report in std::mem::take(&mut register.tasks) {
            let Some(framework) = self.frameworks.get_mut(&report.framework_id) else {
                continue;
            };
            let resources = self
                .resources_cache
                .from_wire("task.resources", &report.task.resources)
                .unwrap_or_default();
            let role = allocation_role(&report.task.resources, framework);
            // The task keeps its executor's ID only, as Mesos's master does: the
            // ExecutorInfo is the framework's, once per agent, not once per task.
            let info = KeptInfo::keep(&report.task, agent_id);
            let executor_id = report.task.executor.take().map(|e| e.executor_id);
            let task_id = report.task.task_id.clone();
            let task = Task {
                info,
                executor_id: report.executor_id.or(executor_id),
                resources,
                role: role.into(),
                state: report.state,
                status_update_state: None,
                status_update_uuid: None,
                statuses: Vec::new(),
                launched_at: now,
                unreachable_time: None,
            };
            // Inserted without looking first (new tasks are what a crowd of agents
            // brings); a task the master knew already keeps the master's record.
            let held =
                (!task.state.is_terminal()).then(|| (task.resources.clone(), task.role.clone()));
            if let Some(known) = framework.tasks.insert(task_id.clone(), task) {
                framework.tasks.insert(task_id, known);
                continue;
            }
            if framework.retired(&task_id) {
                let task = framework.tasks.remove(&task_id).expect("inserted above");
                if !task.state.is_terminal() {
                    retired_live.push((framework.id.clone(), task_id));
                }
                continue;
            }
            self.agent_tasks.add(agent_id, &framework.id, &task_id);
            // A task that ended holds nothing; it is known until its end is acknowledged.
            if let Some((resources, role)) = held {
                hold(&mut used, &framework.id, &role, &resources);
            }
        }
        for executor in std::mem::take(&mut register.executors) {
            let Some(framework) =
                (executor.framework_id.as_ref()).and_then(|fid| self.frameworks.get_mut(fid))
            else {
                continue;
            };
            let resources = self
                .resources_cache
                .from_wire("executor.resources", &executor.resources)
                .unwrap_or_default();
            let role = allocation_role(&executor.resources, framework);
            let known = framework
                .executors
                .get(agent_id)
                .is_some_and(|e| e.contains_key(&executor.executor_id));
            if !known {
                hold(&mut used, &framework.id, &role, &resources);
            }
            let id = executor.executor_id.clone();
            framework.add_executor(agent_id, id, || executor, resources, &role);
        }
        (used, retired_live)
    }

    /// Live tasks a known agent reports that the master does not know of frameworks it
    /// knows.
    fn unknown_reported_tasks(&self, register: &Register) -> Vec<(FrameworkId, TaskId)> {
        register
            .tasks
            .iter()
            .filter(|r| !r.state.is_terminal())
            .filter(|r| {
                self.frameworks.get(&r.framework_id).is_some_and(|f| {
                    !f.tasks.contains_key(&r.task.task_id)
                        && !f.unreachable_tasks.contains_key(&r.task.task_id)
                })
            })
            .map(|r| (r.framework_id.clone(), r.task.task_id.clone()))
            .collect()
    }

    /// The removed frameworks whose tasks an agent reports: the agent is told to shut
    /// them down.
    fn removed_frameworks_reported(&self, register: &Register) -> BTreeSet<FrameworkId> {
        if self.completed_frameworks.is_empty() {
            return BTreeSet::new();
        }
        register
            .tasks
            .iter()
            .map(|t| &t.framework_id)
            .filter(|fid| self.completed_frameworks.iter().any(|f| &f.id == *fid))
            .cloned()
            .collect()
    }

    /// The agent a stream belongs to, if it is that agent's current stream.
    pub fn agent_for_stream(&self, stream: &str) -> Option<AgentId> {
        let id = self.agent_streams.get(stream)?;
        let current = self.agents.get(id)?.stream.as_deref() == Some(stream);
        current.then(|| id.clone())
    }

    /// Calls an agent makes on its current stream.
    pub fn agent_call(&mut self, now: f64, stream: &str, call: AgentCall) -> Result<(), ApiError> {
        let Some(agent_id) = self.agent_for_stream(stream) else {
            return Err(ApiError::forbidden(format!(
                "agent stream '{stream}' is not registered"
            )));
        };
        match call {
            AgentCall::Register(_) => {
                return Err(ApiError::bad_request("REGISTER must open a new stream"));
            }
            AgentCall::StatusUpdate(update) => self.agent_status_update(now, &agent_id, update),
            AgentCall::ExecutorExited(exited) => self.executor_exited(now, &agent_id, exited),
            AgentCall::ExecutorMessage(message) => self.executor_message(&agent_id, message),
            AgentCall::Pong => {}
        }
        self.heard_from(now, &agent_id);
        Ok(())
    }

    fn executor_exited(&mut self, now: f64, agent_id: &AgentId, exited: ExecutorExited) {
        let Some(framework) = self.frameworks.get_mut(&exited.framework_id) else {
            return;
        };
        let removed = framework
            .executors
            .get_mut(agent_id)
            .and_then(|executors| executors.remove(&exited.executor_id));
        if framework
            .executors
            .get(agent_id)
            .is_some_and(|e| e.is_empty())
        {
            framework.executors.remove(agent_id);
        }
        if let Some(executor) = removed {
            self.allocator.recover(
                &exited.framework_id,
                &executor.role,
                agent_id,
                &executor.resources,
                None,
                now,
            );
        }
        self.send(
            &exited.framework_id,
            Event::Failure(Failure {
                agent_id: Some(agent_id.clone()),
                executor_id: Some(exited.executor_id),
                status: Some(exited.status),
            }),
        );
        self.dirty = true;
    }

    fn executor_message(&mut self, agent_id: &AgentId, message: ExecutorMessage) {
        self.send(
            &message.framework_id,
            Event::Message(FrameworkMessage {
                agent_id: agent_id.clone(),
                executor_id: message.executor_id,
                data: message.data,
            }),
        );
    }

    /// A registration without an id from the address (pid) of a registered agent, as
    /// Mesos takes it: while that agent is connected it is the same agent retrying, and
    /// gets its id again; a disconnected one is removed (its tasks are lost) so that the
    /// new agent registers afresh. The hostname must match too, which only matters for
    /// simulated agents, which may share a nominal pid.
    fn registering_at_known_address(&mut self, now: f64, register: &mut Register) {
        let address = address_of(&register.pid, &register.agent_info);
        let Some(id) = self.agent_addresses.get(&address).cloned() else {
            return;
        };
        let connected = self
            .agents
            .get(&id)
            .is_some_and(|a| a.stream.is_some() && a.disconnected_since.is_none());
        if connected {
            tracing::info!(agent_id = %id, pid = %register.pid, "agent already registered; answering its retry");
            register.agent_info.id = Some(id);
            return;
        }
        tracing::warn!(agent_id = %id, pid = %register.pid, "a new agent registers at the address of a disconnected one; removing that one");
        self.remove_agent(
            now,
            &id,
            "a new agent registered at the same address",
            &super::agent_control::Ending {
                kept: TaskState::Gone,
                partition_aware: TaskState::Gone,
                others: TaskState::Lost,
                reason: Reason::AgentRemoved,
                message: "Agent was removed: a new agent registered at its address".into(),
            },
        );
    }

    /// Drops `address` from the index if it still names `agent_id`.
    pub(super) fn forget_agent_address(&mut self, address: (String, String), agent_id: &AgentId) {
        if self.agent_addresses.get(&address) == Some(agent_id) {
            self.agent_addresses.remove(&address);
        }
    }

    /// Drops a removed agent from the indexes by address and by stream.
    pub(super) fn forget_removed_agent(&mut self, agent: &Agent) {
        self.forget_agent_address(address_of(&agent.pid, &agent.info), &agent.id);
        if let Some(stream) = &agent.stream {
            self.agent_streams.remove(stream);
        }
    }

    /// The agent's stream went away: it is deactivated, its offers are rescinded, and the
    /// tasks of frameworks that do not checkpoint are lost (reference §5.1).
    pub fn agent_stream_closed(&mut self, now: f64, stream: &str) {
        let Some(agent_id) = self.agent_for_stream(stream) else {
            return;
        };
        tracing::info!(agent_id = %agent_id, "agent disconnected");
        let agent = self.agents.get_mut(&agent_id).expect("found above");
        agent.stream = None;
        self.agent_streams.remove(stream);
        agent.disconnected_since = Some(now);
        self.allocator.set_agent_active(&agent_id, false);
        self.rescind_agent_offers(now, &agent_id);
        self.rescind_agent_inverse_offers(&agent_id);
        self.retire_tasks(
            now,
            &agent_id,
            |f, _| (!f.info.checkpoint).then_some(TaskState::Lost),
            Reason::AgentDisconnected,
            "Agent disconnected",
        );
        self.check_drained(now, &agent_id);
        self.dirty = true;
    }

    /// Retires the agent's non-terminal tasks that `pick` gives a state to, in that state,
    /// and tells their frameworks (a TCP disconnect loses the tasks of frameworks that do
    /// not checkpoint at once; see `health.rs` for unreachable agents).
    fn retire_tasks(
        &mut self,
        now: f64,
        agent_id: &AgentId,
        pick: impl Fn(&Framework, &TaskId) -> Option<TaskState>,
        reason: Reason,
        message: &str,
    ) {
        let mut retired: Vec<(FrameworkId, TaskId, String, Resources, TaskState)> = Vec::new();
        let on_agent = self.tasks_on(agent_id);
        for group in on_agent.chunk_by(|a, b| a.0 == b.0) {
            let Some(framework) = self.frameworks.get_mut(&group[0].0) else {
                continue;
            };
            for (_, id) in group {
                if framework
                    .tasks
                    .get(id)
                    .is_none_or(|t| t.state.is_terminal())
                {
                    continue;
                }
                let Some(state) = pick(framework, id) else {
                    continue;
                };
                let mut task = self
                    .agent_tasks
                    .take_task(framework, id)
                    .expect("found above");
                task.state = state;
                retired.push((
                    framework.id.clone(),
                    task.info.task_id.clone(),
                    task.role.to_string(),
                    task.resources.clone(),
                    state,
                ));
                framework.completed_tasks.push_back(Arc::new(task));
            }
            while framework.completed_tasks.len() > self.config.max_completed_tasks_per_framework {
                framework.completed_tasks.pop_front();
            }
        }
        for (framework_id, task_id, role, resources, state) in retired {
            self.allocator
                .recover(&framework_id, &role, agent_id, &resources, None, now);
            *self
                .counters
                .tasks_by_terminal_state
                .entry(state)
                .or_default() += 1;
            self.send_master_update(&framework_id, &task_id, agent_id, state, reason, message);
        }
    }

    /// A known agent re-registered on a new stream (it restarted, or gave its stream
    /// up): what the master placed on it that it does not report will never run there.
    /// Tasks whose RunTask was lost on the old stream are dropped (TASK_DROPPED, or
    /// TASK_LOST for frameworks that are not partition-aware; REASON_RECONCILIATION, as
    /// Mesos's agent answers for tasks unknown to it), and executors that ended while
    /// the agent could not say so are forgotten, as Mesos's master does.
    fn reconcile_known_agent(&mut self, now: f64, agent_id: &AgentId, register: &Register) {
        let reported: HashSet<(&FrameworkId, &TaskId)> = register
            .tasks
            .iter()
            .map(|r| (&r.framework_id, &r.task.task_id))
            .collect();
        self.retire_tasks(
            now,
            agent_id,
            |framework, task_id| {
                if reported.contains(&(&framework.id, task_id)) {
                    return None;
                }
                tracing::warn!(agent_id = %agent_id, task_id = %task_id, "a re-registered agent does not know a task placed on it");
                Some(match framework.is_partition_aware() {
                    true => TaskState::Dropped,
                    false => TaskState::Lost,
                })
            },
            Reason::Reconciliation,
            "Task was not reported by the re-registered agent",
        );
        let running: HashSet<(&FrameworkId, &ExecutorId)> = register
            .executors
            .iter()
            .filter_map(|e| Some((e.framework_id.as_ref()?, &e.executor_id)))
            .collect();
        let mut gone = Vec::new();
        for framework in self.frameworks.values_mut() {
            let Some(executors) = framework.executors.get_mut(agent_id) else {
                continue;
            };
            let ids: Vec<ExecutorId> = executors
                .keys()
                .filter(|id| !running.contains(&(&framework.id, *id)))
                .cloned()
                .collect();
            for id in ids {
                tracing::warn!(agent_id = %agent_id, executor_id = %id, "a re-registered agent does not run an executor the master counts; forgetting it");
                let executor = executors.remove(&id).expect("listed above");
                gone.push((framework.id.clone(), executor.role, executor.resources));
            }
            if executors.is_empty() {
                framework.executors.remove(agent_id);
            }
        }
        for (framework_id, role, resources) in gone {
            self.allocator
                .recover(&framework_id, &role, agent_id, &resources, None, now);
        }
    }

    /// A stream closed: either a framework's or an agent's.
    pub fn stream_closed(&mut self, now: f64, stream: &str) {
        self.framework_stream_closed(now, stream);
        self.agent_stream_closed(now, stream);
    }
}

/// Adds what a task or executor holds to its framework's and role's sum on the agent: the
/// allocator then takes one holding per framework instead of one per task.
fn hold(used: &mut Vec<Held>, framework_id: &FrameworkId, role: &str, resources: &Resources) {
    match used
        .iter_mut()
        .find(|(f, r, _)| f == framework_id && r == role)
    {
        Some((_, _, sum)) => sum.add(resources),
        None => used.push((framework_id.clone(), role.to_string(), resources.clone())),
    }
}

/// The role resources were allocated to, from their `allocation_info`, else the
/// framework's first role.
fn allocation_role(resources: &[Resource], framework: &Framework) -> String {
    resources
        .iter()
        .find_map(|r| r.allocation_info.as_ref()?.role.as_deref())
        .unwrap_or_else(|| framework.first_role())
        .to_string()
}

/// An agent's address for [`Master::registering_at_known_address`].
pub(super) fn address_of(pid: &str, info: &AgentInfo) -> (String, String) {
    (pid.to_string(), info.hostname.clone())
}
