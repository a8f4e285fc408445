//! The legacy JSON of `/master/state` and `/metrics/snapshot` (reference §4), rendered
//! by the readers from a published [`StateView`], off the event loop.

use super::{Agent, Executor, Framework, StateView, Task};
use mantle_api::*;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

pub(super) fn flat(resources: &Resources) -> Value {
    Value::Object(resources.legacy_json())
}

/// An agent's resources reserved to each role, and its unreserved ones.
pub(super) fn by_role(total: &Resources) -> (BTreeMap<String, Resources>, Resources) {
    let mut reserved: BTreeMap<String, Resources> = BTreeMap::new();
    let mut unreserved = Resources::new();
    for (key, quantity) in total.entries() {
        let into = if key.role == "*" {
            &mut unreserved
        } else {
            reserved.entry(key.role.clone()).or_default()
        };
        into.insert(key.clone(), quantity.clone());
    }
    (reserved, unreserved)
}

pub(super) fn task_json(task: &Task) -> Value {
    let statuses: Vec<Value> = task
        .statuses
        .iter()
        .map(|s| {
            let mut status = json!({"state": s.state, "timestamp": s.timestamp.unwrap_or(0.0)});
            if let Some(healthy) = s.healthy {
                status["healthy"] = json!(healthy);
            }
            if let Some(labels) = &s.labels {
                status["labels"] = json!(labels.labels);
            }
            if let Some(container) = &s.container_status {
                status["container_status"] = container.clone();
            }
            status
        })
        .collect();
    let mut out = json!({
        "id": task.info.task_id.value,
        "name": task.info.name,
        "framework_id": task.framework_id.value,
        "executor_id": task.executor_id.as_ref().map(|e| e.value.clone()).unwrap_or_default(),
        "slave_id": task.agent_id.value,
        "state": task.state,
        "resources": flat(&task.resources),
        "role": task.role,
        "statuses": statuses,
    });
    if let Some(labels) = &task.info.labels {
        out["labels"] = json!(labels.labels);
    }
    if let Some(time) = task.unreachable_time {
        out["unreachable_time"] = json!({"nanoseconds": (time * 1e9) as i64});
    }
    for (key, value) in [
        ("discovery", &task.info.discovery),
        ("container", &task.info.container),
        ("health_check", &task.info.health_check),
    ] {
        if let Some(v) = value {
            out[key] = v.clone();
        }
    }
    if let Some(user) = task.info.command.as_ref().and_then(|c| c.user.clone()) {
        out["user"] = json!(user);
    }
    out
}

fn executor_json(agent_id: &AgentId, executor: &Executor) -> Value {
    let resources = &executor.resources;
    let executor = &executor.info;
    let command = executor.command.as_ref().map(|c| {
        json!({"shell": c.shell, "value": c.value.clone().unwrap_or_default(), "argv": c.arguments,
               "uris": c.uris.iter().map(|u| json!({"value": u.value, "executable": u.executable.unwrap_or(false)})).collect::<Vec<_>>()})
    });
    json!({
        "executor_id": executor.executor_id.value,
        "name": executor.name.clone().unwrap_or_default(),
        "framework_id": executor.framework_id.as_ref().map(|f| f.value.clone()).unwrap_or_default(),
        "command": command,
        "resources": flat(resources),
        "type": executor.kind.clone().unwrap_or_else(|| "CUSTOM".into()),
        "slave_id": agent_id.value,
    })
}

impl StateView {
    fn framework_usage(framework: &Framework) -> Resources {
        let mut used = Resources::new();
        for task in framework.tasks.values().filter(|t| !t.state.is_terminal()) {
            used.add(&task.resources);
        }
        for executors in framework.executors.values() {
            for executor in executors.values() {
                used.add(&executor.resources);
            }
        }
        used
    }

    fn framework_offered(&self, framework: &Framework) -> Resources {
        let mut offered = Resources::new();
        for id in &framework.offers {
            if let Some(entry) = self.offers.get(id) {
                offered.add(&entry.resources);
            }
        }
        offered
    }

    pub(super) fn framework_json(&self, framework: &Framework) -> Value {
        let used = Self::framework_usage(framework);
        let offered = self.framework_offered(framework);
        let info = &framework.info;
        let mut out = json!({
            "id": framework.id.value,
            "name": info.name,
            "user": info.user,
            "hostname": info.hostname.clone().unwrap_or_default(),
            "webui_url": info.webui_url.clone().unwrap_or_default(),
            "failover_timeout": info.failover_timeout,
            "checkpoint": info.checkpoint,
            "capabilities": info.capabilities.iter().map(|c| c.kind.clone()).collect::<Vec<_>>(),
            "active": framework.active,
            "connected": framework.stream.is_some(),
            "recovered": framework.recovered,
            "registered_time": framework.registered_time,
            "unregistered_time": framework.unregistered_time.unwrap_or(0.0),
            "used_resources": flat(&used),
            "offered_resources": flat(&offered),
            "resources": flat(&used.plus(&offered)),
            "tasks": framework.tasks.values().map(task_json).collect::<Vec<_>>(),
            "unreachable_tasks": framework.unreachable_tasks.values().map(task_json).collect::<Vec<_>>(),
            "completed_tasks": framework.completed_tasks.iter().map(|t| task_json(t)).collect::<Vec<_>>(),
            "offers": framework.offers.iter().filter_map(|id| self.offers.get(id)).map(|o| json!({
                "id": o.offer.id.value,
                "framework_id": o.offer.framework_id.value,
                "slave_id": o.offer.agent_id.value,
                "allocation_info": {"role": framework.role()},
                "resources": flat(&o.resources),
            })).collect::<Vec<_>>(),
            "executors": framework.executors.iter()
                .flat_map(|(agent, executors)| executors.values().map(move |e| executor_json(agent, e)))
                .collect::<Vec<_>>(),
            "offer_constraints": {},
        });
        if let Some(t) = framework.reregistered_time {
            out["reregistered_time"] = json!(t);
        }
        if let Some(p) = &info.principal {
            out["principal"] = json!(p);
        }
        if let Some(labels) = &info.labels {
            out["labels"] = json!(labels.labels);
        }
        if info.has_capability("MULTI_ROLE") {
            out["roles"] = json!(info.roles);
        } else {
            out["role"] = json!(info.role.clone().unwrap_or_else(|| "*".into()));
        }
        out
    }

    pub(super) fn agent_json(&self, agent: &Agent, used: &Resources, offered: &Resources) -> Value {
        let (reserved, unreserved) = by_role(&agent.total);
        let attributes: Map<String, Value> = agent
            .info
            .attributes
            .iter()
            .map(|a| (a.name.clone(), a.legacy_value()))
            .collect();
        let mut out = json!({
            "id": agent.id.value,
            "hostname": agent.info.hostname,
            "port": agent.url().address.port,
            "attributes": attributes,
            "pid": agent.pid,
            "registered_time": agent.registered_time,
            "resources": flat(&agent.total),
            "used_resources": flat(used),
            "offered_resources": flat(offered),
            "reserved_resources": reserved.iter().map(|(role, r)| (role.clone(), flat(r))).collect::<Map<String, Value>>(),
            "unreserved_resources": flat(&unreserved),
            "active": self.is_active(agent),
            "deactivated": self.deactivated.contains(&agent.id),
            "version": agent.version,
            "capabilities": agent.info.capabilities.iter().map(|c| c.kind.clone()).collect::<Vec<_>>(),
        });
        if let Some(t) = agent.reregistered_time {
            out["reregistered_time"] = json!(t);
        }
        if let Some(drain) = self.draining.get(&agent.id) {
            out["drain_info"] = json!(drain.info);
            if let Some(started) = drain.started {
                out["estimated_drain_start_time_seconds"] = json!(started);
            }
        }
        out
    }

    /// Used and offered resources per agent.
    pub(super) fn agent_usage(&self) -> BTreeMap<AgentId, (Resources, Resources)> {
        let mut usage: BTreeMap<AgentId, (Resources, Resources)> = BTreeMap::new();
        for framework in self.frameworks.values() {
            for task in framework.tasks.values().filter(|t| !t.state.is_terminal()) {
                usage
                    .entry(task.agent_id.clone())
                    .or_default()
                    .0
                    .add(&task.resources);
            }
            for (agent, executors) in &framework.executors {
                for executor in executors.values() {
                    usage
                        .entry(agent.clone())
                        .or_default()
                        .0
                        .add(&executor.resources);
                }
            }
        }
        for entry in self.offers.values() {
            usage
                .entry(entry.offer.agent_id.clone())
                .or_default()
                .1
                .add(&entry.resources);
        }
        usage
    }

    /// `/master/state`.
    pub fn state_json(&self) -> Value {
        let usage = self.agent_usage();
        let empty = (Resources::new(), Resources::new());
        let slaves: Vec<Value> = self
            .agents
            .values()
            .map(|a| {
                let (used, offered) = usage.get(&a.id).unwrap_or(&empty);
                self.agent_json(a, used, offered)
            })
            .collect();
        let active = self.agents.values().filter(|a| self.is_active(a)).count();
        let pid = self.info.pid.clone().unwrap_or_default();
        json!({
            "version": MESOS_VERSION,
            "build_date": "",
            "build_time": 0,
            "build_user": "",
            "start_time": self.start_time,
            "elected_time": self.start_time,
            "id": self.info.id,
            "pid": pid,
            "hostname": self.hostname,
            "capabilities": self.info.capabilities.iter().map(|c| c.kind.clone()).collect::<Vec<_>>(),
            "activated_slaves": active,
            "deactivated_slaves": self.agents.len() - active,
            "unreachable_slaves": self.unreachable_agents,
            "leader": pid,
            "leader_info": {
                "id": self.info.id,
                "pid": pid,
                "port": self.info.port,
                "hostname": self.hostname,
                "ip": self.info.ip,
                "address": self.info.address,
                "version": MESOS_VERSION,
            },
            "flags": self.flags,
            "slaves": slaves,
            "recovered_slaves": self.recovered_slaves_json(),
            "frameworks": self.frameworks.values().map(|f| self.framework_json(f)).collect::<Vec<_>>(),
            "completed_frameworks": self.completed_frameworks.iter().map(|f| self.framework_json(f)).collect::<Vec<_>>(),
            "orphan_tasks": [],
            "unregistered_frameworks": [],
            "roles": self.roles_json(false),
        })
    }

    /// `/metrics/snapshot` for the master (a first set of the Mesos names).
    pub fn metrics(&self, now: f64) -> BTreeMap<String, f64> {
        let mut m = BTreeMap::new();
        m.insert("master/elected".into(), 1.0);
        m.insert("master/uptime_secs".into(), now - self.start_time);
        let usage = self.agent_usage();
        let mut total = Resources::new();
        let mut used = Resources::new();
        for agent in self.agents.values().filter(|a| a.active()) {
            total.add(&agent.total);
        }
        for (u, _) in usage.values() {
            used.add(u);
        }
        for kind in ["cpus", "mem", "disk", "gpus"] {
            let t = total.scalar(kind);
            let u = used.scalar(kind);
            m.insert(format!("master/{kind}_total"), t);
            m.insert(format!("master/{kind}_used"), u);
            m.insert(
                format!("master/{kind}_percent"),
                if t > 0.0 { u / t } else { 0.0 },
            );
        }
        let active_agents = self.agents.values().filter(|a| self.is_active(a)).count() as f64;
        let connected_agents = self.agents.values().filter(|a| a.active()).count() as f64;
        m.insert("master/slaves_active".into(), active_agents);
        m.insert("master/slaves_connected".into(), connected_agents);
        m.insert(
            "master/slaves_inactive".into(),
            self.agents.len() as f64 - active_agents,
        );
        m.insert(
            "master/slaves_disconnected".into(),
            self.agents.len() as f64 - connected_agents,
        );
        let (unreachable_agents, unreachable_tasks) =
            (self.unreachable_agents, self.unreachable_tasks());
        m.insert(
            "master/slaves_unreachable".into(),
            unreachable_agents as f64,
        );
        for (name, value) in [
            ("scheduled", self.unreachable_scheduled),
            ("completed", self.unreachable_completed),
            ("canceled", self.unreachable_canceled),
        ] {
            m.insert(format!("master/slave_unreachable_{name}"), value as f64);
        }
        let active_fw = self.frameworks.values().filter(|f| f.active).count() as f64;
        m.insert("master/frameworks_active".into(), active_fw);
        m.insert(
            "master/frameworks_inactive".into(),
            self.frameworks.len() as f64 - active_fw,
        );
        let connected = self
            .frameworks
            .values()
            .filter(|f| f.stream.is_some())
            .count() as f64;
        m.insert("master/frameworks_connected".into(), connected);
        m.insert(
            "master/frameworks_disconnected".into(),
            self.frameworks.len() as f64 - connected,
        );
        m.insert("master/outstanding_offers".into(), self.offers.len() as f64);
        let mut live: BTreeMap<TaskState, f64> = BTreeMap::new();
        for framework in self.frameworks.values() {
            for task in framework.tasks.values().filter(|t| !t.state.is_terminal()) {
                *live.entry(task.state).or_default() += 1.0;
            }
        }
        live.insert(TaskState::Unreachable, unreachable_tasks as f64);
        for state in TaskState::ALL {
            let name = state
                .as_str()
                .trim_start_matches("TASK_")
                .to_ascii_lowercase();
            let value = if state.is_terminal() {
                self.counters
                    .tasks_by_terminal_state
                    .get(&state)
                    .copied()
                    .unwrap_or(0) as f64
            } else {
                live.get(&state).copied().unwrap_or(0.0)
            };
            m.insert(format!("master/tasks_{name}"), value);
        }
        m.insert(
            "master/slave_registrations".into(),
            self.counters.agent_registrations as f64,
        );
        m.insert(
            "master/slave_reregistrations".into(),
            self.counters.agent_reregistrations as f64,
        );
        m.insert(
            "master/slave_removals".into(),
            self.counters.agent_removals as f64,
        );
        m.insert(
            "master/valid_status_updates".into(),
            self.counters.valid_status_updates as f64,
        );
        m.insert(
            "master/invalid_status_updates".into(),
            self.counters.invalid_status_updates as f64,
        );
        let usage = self.role_usage();
        for role in &self.roles {
            let prefix = format!("allocator/mesos/roles/{}", role.name);
            m.insert(format!("{prefix}/shares/dominant"), role.share);
            let Some(used) = usage.get(&role.name) else {
                continue;
            };
            for (what, resources) in [
                ("allocated", &used.allocated),
                ("offered", &used.offered),
                ("reserved", &used.reserved),
            ] {
                for kind in resources.scalar_names() {
                    m.insert(
                        format!("{prefix}/resources/{kind}/{what}"),
                        resources.scalar(kind),
                    );
                }
            }
            if let Some(quota) = &role.quota {
                let quota_prefix = format!("allocator/mesos/quota/roles/{}/resources", role.name);
                for kind in quota.guarantees.scalar_names() {
                    m.insert(
                        format!("{quota_prefix}/{kind}/guarantee"),
                        quota.guarantees.scalar(kind),
                    );
                }
                for kind in quota.limits.scalar_names() {
                    m.insert(
                        format!("{quota_prefix}/{kind}/limit"),
                        quota.limits.scalar(kind),
                    );
                }
                for (kind, value) in &role.consumed {
                    m.insert(
                        format!("{quota_prefix}/{kind}/offered_or_allocated"),
                        *value,
                    );
                }
            }
        }
        m
    }
}
