//! The legacy JSON of `/master/state` and `/metrics/snapshot` (reference §4), rendered
//! by the readers from a published [`StateView`], off the event loop.

use super::{Agent, Executor, Framework, StateView, Task};
use mantle_api::*;
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
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

/// A task's legacy JSON, written straight to the output: `/master/state` holds every
/// task, and building a `Value` tree for each costs several times the writing.
struct LegacyTask<'a>(&'a Task);

/// A task status of the legacy JSON, written straight to the output.
struct LegacyStatus<'a>(&'a TaskStatus);

impl Serialize for LegacyStatus<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let s = self.0;
        let mut map = serializer.serialize_map(None)?;
        if let Some(container) = &s.container_status {
            map.serialize_entry("container_status", container)?;
        }
        if let Some(healthy) = s.healthy {
            map.serialize_entry("healthy", &healthy)?;
        }
        if let Some(labels) = &s.labels {
            map.serialize_entry("labels", &labels.labels)?;
        }
        map.serialize_entry("state", &s.state)?;
        map.serialize_entry("timestamp", &s.timestamp.unwrap_or(0.0))?;
        map.end()
    }
}

struct Statuses<'a>(&'a [TaskStatus]);

impl Serialize for Statuses<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(LegacyStatus))
    }
}

impl Serialize for LegacyTask<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let task = self.0;
        let info = &task.info;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("id", &info.task_id.value)?;
        map.serialize_entry("name", &info.name)?;
        map.serialize_entry("framework_id", &task.framework_id.value)?;
        let executor_id = task.executor_id.as_ref().map_or("", |e| e.value.as_str());
        map.serialize_entry("executor_id", executor_id)?;
        map.serialize_entry("slave_id", &task.agent_id.value)?;
        map.serialize_entry("state", &task.state)?;
        map.serialize_entry("resources", &task.resources.legacy())?;
        map.serialize_entry("role", &task.role)?;
        map.serialize_entry("statuses", &Statuses(&task.statuses))?;
        if let Some(labels) = &info.labels {
            map.serialize_entry("labels", &labels.labels)?;
        }
        if let Some(time) = task.unreachable_time {
            map.serialize_entry(
                "unreachable_time",
                &json!({"nanoseconds": (time * 1e9) as i64}),
            )?;
        }
        for (key, value) in [
            ("discovery", &info.discovery),
            ("container", &info.container),
            ("health_check", &info.health_check),
        ] {
            if let Some(v) = value {
                map.serialize_entry(key, v)?;
            }
        }
        if let Some(user) = info.command.as_ref().and_then(|c| c.user.as_ref()) {
            map.serialize_entry("user", user)?;
        }
        map.end()
    }
}

pub(super) fn task_json(task: &Task) -> Value {
    serde_json::to_value(LegacyTask(task)).unwrap_or_default()
}

/// Threads that render the frameworks of `/master/state` at most.
const RENDER_THREADS: usize = 4;

fn write_json(out: &mut Vec<u8>, value: &impl Serialize) {
    // Writing to a Vec fails only for a value that cannot be JSON, which none is.
    let _ = serde_json::to_writer(out, value);
}

/// The lists of a framework's tasks, written straight to the output.
const TASK_LISTS: [&str; 3] = ["tasks", "unreachable_tasks", "completed_tasks"];

fn task_list<'a>(framework: &'a Framework, list: &str) -> Box<dyn Iterator<Item = &'a Task> + 'a> {
    match list {
        "tasks" => Box::new(framework.tasks.values()),
        "unreachable_tasks" => Box::new(framework.unreachable_tasks.values()),
        _ => Box::new(framework.completed_tasks.iter().map(|t| &**t)),
    }
}

struct Tasks<'a>(&'a Framework, &'static str);

impl Serialize for Tasks<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(task_list(self.0, self.1).map(LegacyTask))
    }
}

/// A framework of `/master/state`: its fields, then its task lists streamed.
struct FrameworkDoc<'a>(&'a StateView, &'a Framework);

impl Serialize for FrameworkDoc<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let fields = match self.0.framework_fields(self.1) {
            Value::Object(fields) => fields,
            _ => Map::new(),
        };
        let mut map = serializer.serialize_map(None)?;
        for (key, value) in &fields {
            map.serialize_entry(key, value)?;
        }
        for list in TASK_LISTS {
            map.serialize_entry(list, &Tasks(self.1, list))?;
        }
        map.end()
    }
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
    pub(super) fn framework_usage(framework: &Framework) -> Resources {
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

    /// A framework of the legacy JSON, with its task lists.
    pub(super) fn framework_json(&self, framework: &Framework) -> Value {
        let mut out = self.framework_fields(framework);
        for list in TASK_LISTS {
            out[list] = task_list(framework, list).map(task_json).collect();
        }
        out
    }

    /// A framework of the legacy JSON without its task lists.
    pub(super) fn framework_fields(&self, framework: &Framework) -> Value {
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
    /// Keyed by reference: a key per task would cost an allocation per task.
    pub(super) fn agent_usage(&self) -> BTreeMap<&AgentId, (Resources, Resources)> {
        let mut usage: BTreeMap<&AgentId, (Resources, Resources)> = BTreeMap::new();
        for framework in self.frameworks.values() {
            for task in framework.tasks.values().filter(|t| !t.state.is_terminal()) {
                usage
                    .entry(&task.agent_id)
                    .or_default()
                    .0
                    .add(&task.resources);
            }
            for (agent, executors) in &framework.executors {
                for executor in executors.values() {
                    usage.entry(agent).or_default().0.add(&executor.resources);
                }
            }
        }
        for entry in self.offers.values() {
            usage
                .entry(&entry.offer.agent_id)
                .or_default()
                .1
                .add(&entry.resources);
        }
        usage
    }

    /// `/master/state` as a `Value` (tests and tools), read back from its bytes.
    pub fn state_json(&self) -> Value {
        serde_json::from_slice(&self.state_bytes()).unwrap_or_default()
    }

    /// `/master/state` rendered: the frameworks (almost all of its bytes) written
    /// straight to the output in parallel parts, the other fields meanwhile as a `Value`.
    pub fn state_bytes(&self) -> Vec<u8> {
        let frameworks: Vec<&Framework> = self.frameworks.values().collect();
        let completed: Vec<&Framework> = self.completed_frameworks.iter().map(|f| &**f).collect();
        let (fields, active, done) = std::thread::scope(|scope| {
            let fields = scope.spawn(|| self.state_fields());
            let active = self.frameworks_bytes(scope, &frameworks);
            let done = self.frameworks_bytes(scope, &completed);
            (fields.join().unwrap_or_default(), active, done)
        });
        let mut out = Vec::with_capacity(active.len() + done.len() + (1 << 20));
        out.push(b'{');
        if let Value::Object(fields) = fields {
            for (key, value) in &fields {
                write_json(&mut out, key);
                out.push(b':');
                write_json(&mut out, value);
                out.push(b',');
            }
        }
        out.extend_from_slice(b"\"frameworks\":");
        out.extend_from_slice(&active);
        out.extend_from_slice(b",\"completed_frameworks\":");
        out.extend_from_slice(&done);
        out.push(b'}');
        out
    }

    /// A JSON array of frameworks, rendered in parts of about equal task counts on
    /// scoped threads (one per core, at most [`RENDER_THREADS`]) and joined.
    fn frameworks_bytes<'s, 'v: 's>(
        &'v self,
        scope: &'s std::thread::Scope<'s, 'v>,
        frameworks: &'v [&'v Framework],
    ) -> Vec<u8> {
        let weight =
            |f: &Framework| 1 + f.tasks.len() + f.unreachable_tasks.len() + f.completed_tasks.len();
        let total: usize = frameworks.iter().map(|f| weight(f)).sum();
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, RENDER_THREADS);
        let share = total.div_ceil(threads).max(1);
        let mut parts = Vec::new();
        let mut start = 0;
        let mut weight_so_far = 0;
        for (index, framework) in frameworks.iter().enumerate() {
            weight_so_far += weight(framework);
            if weight_so_far >= share || index + 1 == frameworks.len() {
                let chunk = &frameworks[start..=index];
                parts.push(scope.spawn(move || {
                    let mut out = Vec::new();
                    for (i, framework) in chunk.iter().enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        write_json(&mut out, &FrameworkDoc(self, framework));
                    }
                    out
                }));
                start = index + 1;
                weight_so_far = 0;
            }
        }
        let parts: Vec<Vec<u8>> = parts
            .into_iter()
            .map(|p| p.join().unwrap_or_default())
            .collect();
        let mut out =
            Vec::with_capacity(parts.iter().map(Vec::len).sum::<usize>() + parts.len() + 2);
        out.push(b'[');
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(part);
        }
        out.push(b']');
        out
    }

    /// The fields of `/master/state` but its frameworks.
    fn state_fields(&self) -> Value {
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
        let mut state = json!({
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
            "orphan_tasks": [],
            "unregistered_frameworks": [],
            "roles": self.roles_json(false),
        });
        // Present only when set, as in Mesos.
        for flag in ["cluster", "log_dir", "external_log_file"] {
            if let Some(value) = self.flags.get(flag).filter(|v| !v.is_empty()) {
                state[flag] = json!(value);
            }
        }
        state
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
            let Some(used) = usage.get(role.name.as_str()) else {
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
