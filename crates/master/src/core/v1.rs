//! The v1 operator API's read answers (reference §3): GET_STATE, GET_AGENTS,
//! GET_FRAMEWORKS, GET_EXECUTORS, GET_TASKS and GET_MASTER in the Mesos mapper's JSON
//! (v1 Resource arrays, `TimeInfo` times, `{"value": ...}` IDs), and the objects of the
//! operator event stream (TASK_ADDED's task, AGENT_ADDED's agent, FRAMEWORK_ADDED's
//! framework). Rendered from a [`StateView`] by readers, or from the core for events.

use super::offers::OfferEntry;
use super::summary::Seq;
use super::{Agent, Drain, Framework, SharedMap, StateView, Task};
use mantle_api::*;
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::{json, Value};

fn time(seconds: f64) -> Value {
    json!({"nanoseconds": (seconds * 1e9) as i64})
}

/// A v1 `Task` of `framework_id` (TASK_ADDED and TASK_UPDATED events).
pub fn task_v1(framework_id: &FrameworkId, task: &Task) -> Value {
    serde_json::to_value(TaskV1(framework_id, task)).unwrap_or_default()
}

/// A v1 `Task`, with its framework's ID, written straight to the output: GET_STATE
/// holds every task, and a `Value` tree per task cost several times the writing. Keys
/// in name order.
struct TaskV1<'a>(&'a FrameworkId, &'a Task);

impl Serialize for TaskV1<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (framework_id, task) = (self.0, self.1);
        let info = &task.info;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("agent_id", &task.info.agent_id)?;
        for (key, value) in [
            ("container", &info.container),
            ("discovery", &info.discovery),
        ] {
            if let Some(value) = value {
                map.serialize_entry(key, value)?;
            }
        }
        if let Some(executor_id) = &task.executor_id {
            map.serialize_entry("executor_id", executor_id)?;
        }
        map.serialize_entry("framework_id", framework_id)?;
        if let Some(value) = &info.health_check {
            map.serialize_entry("health_check", value)?;
        }
        if let Some(policy) = &info.kill_policy {
            map.serialize_entry("kill_policy", policy)?;
        }
        if let Some(labels) = &info.labels {
            map.serialize_entry("labels", labels)?;
        }
        if let Some(value) = &info.limits {
            map.serialize_entry("limits", value)?;
        }
        map.serialize_entry("name", &info.name)?;
        map.serialize_entry("resources", &task.resources.to_wire())?;
        map.serialize_entry("state", &task.state)?;
        if let Some(state) = task.status_update_state {
            map.serialize_entry("status_update_state", &state)?;
        }
        if let Some(uuid) = &task.status_update_uuid {
            map.serialize_entry("status_update_uuid", uuid)?;
        }
        let statuses: Vec<_> = task.statuses.iter().map(|s| s.status(task)).collect();
        map.serialize_entry("statuses", &statuses)?;
        map.serialize_entry("task_id", &info.task_id)?;
        if let Some(user) = &info.user {
            map.serialize_entry("user", user)?;
        }
        map.end()
    }
}

/// A v1 `GetAgents.Agent`.
pub fn agent_v1(
    agent: &Agent,
    active: bool,
    deactivated: bool,
    drain: Option<&Drain>,
    allocated: &Resources,
    offered: &Resources,
) -> Value {
    let mut out = json!({
        "agent_info": agent.full_info(),
        "active": active,
        "deactivated": deactivated,
        "version": agent.version,
        "pid": agent.pid,
        "registered_time": time(agent.registered_time),
        "total_resources": agent.total.to_wire(),
        "allocated_resources": allocated.to_wire(),
        "offered_resources": offered.to_wire(),
        "capabilities": agent.info.capabilities,
    });
    if let Some(t) = agent.reregistered_time {
        out["reregistered_time"] = time(t);
    }
    if let Some(drain) = drain {
        out["drain_info"] = json!(drain.info);
        if let Some(started) = drain.started {
            out["estimated_drain_start_time"] = time(started);
        }
    }
    out
}

/// A v1 `GetFrameworks.Framework`; `offers` are the framework's outstanding offers.
pub fn framework_v1(framework: &Framework, offers: &[&Offer], allocated: &Resources) -> Value {
    let mut offered = Resources::new();
    for offer in offers {
        if let Ok(resources) = Resources::from_wire("resources", &offer.resources) {
            offered.add(&resources);
        }
    }
    let mut out = json!({
        "framework_info": framework.info,
        "active": framework.active,
        "connected": framework.stream.is_some(),
        "recovered": framework.recovered,
        "registered_time": time(framework.registered_time),
        "offers": offers,
        "allocated_resources": allocated.to_wire(),
        "offered_resources": offered.to_wire(),
    });
    if let Some(t) = framework.reregistered_time {
        out["reregistered_time"] = time(t);
    }
    if let Some(t) = framework.unregistered_time {
        out["unregistered_time"] = time(t);
    }
    out
}

/// A framework's outstanding offers.
pub fn framework_offers<'a>(
    framework: &Framework,
    offers: &'a SharedMap<OfferId, OfferEntry>,
) -> Vec<&'a Offer> {
    framework
        .offers
        .iter()
        .filter_map(|id| offers.get(id))
        .map(|entry| &entry.offer)
        .collect()
}

impl StateView {
    pub fn get_agents(&self) -> Value {
        let usage = self.agent_usage();
        let agents: Vec<Value> = self
            .agents
            .values()
            .zip(&usage)
            .map(|(agent, (used, offered))| {
                agent_v1(
                    agent,
                    self.is_active(agent),
                    self.deactivated.contains(&agent.id),
                    self.draining.get(&agent.id),
                    used,
                    offered,
                )
            })
            .collect();
        json!({"agents": agents, "recovered_agents": self.recovered_agents})
    }

    fn framework_entry(&self, framework: &Framework) -> Value {
        let offers = framework_offers(framework, &self.offers);
        framework_v1(framework, &offers, &Self::framework_usage(framework))
    }

    pub fn get_frameworks(&self) -> Value {
        json!({
            "frameworks": self.frameworks.values().map(|f| self.framework_entry(f)).collect::<Vec<_>>(),
            "completed_frameworks": self.completed_frameworks.iter().map(|f| self.framework_entry(f)).collect::<Vec<_>>(),
        })
    }

    pub fn get_executors(&self) -> Value {
        let executors: Vec<Value> = self
            .frameworks
            .values()
            .flat_map(|f| f.executors.iter())
            .flat_map(|(agent_id, executors)| {
                executors
                    .values()
                    .map(move |e| json!({"executor_info": e.info, "agent_id": agent_id}))
            })
            .collect();
        json!({ "executors": executors })
    }

    pub fn get_tasks(&self) -> impl Serialize + '_ {
        GetTasks(self)
    }

    /// GET_STATE: the other reads' answers in one.
    pub fn get_state(&self) -> impl Serialize + '_ {
        GetState(self)
    }

    pub fn get_master(&self) -> Value {
        json!({
            "master_info": self.info,
            "start_time": self.start_time,
            "elected_time": self.start_time,
        })
    }
}

struct GetTasks<'a>(&'a StateView);

impl Serialize for GetTasks<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let view = self.0;
        let frameworks = || {
            view.frameworks
                .values()
                .chain(view.completed_frameworks.iter().map(|f| &**f))
        };
        let completed =
            frameworks().flat_map(|f| (f.completed_tasks.iter()).map(|t| TaskV1(&f.id, t)));
        let tasks = frameworks().flat_map(|f| f.tasks.values().map(|t| TaskV1(&f.id, t)));
        let unreachable =
            frameworks().flat_map(|f| (f.unreachable_tasks.values()).map(|t| TaskV1(&f.id, t)));
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("completed_tasks", &Seq::new(completed))?;
        map.serialize_entry("tasks", &Seq::new(tasks))?;
        map.serialize_entry("unreachable_tasks", &Seq::new(unreachable))?;
        map.end()
    }
}

struct GetState<'a>(&'a StateView);

impl Serialize for GetState<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let view = self.0;
        let mut map = serializer.serialize_map(Some(4))?;
        map.serialize_entry("get_agents", &view.get_agents())?;
        map.serialize_entry("get_executors", &view.get_executors())?;
        map.serialize_entry("get_frameworks", &view.get_frameworks())?;
        map.serialize_entry("get_tasks", &view.get_tasks())?;
        map.end()
    }
}

/// Compact JSON with every character outside ASCII escaped as `\uXXXX` as it is
/// written (the operator API's rule, `mantle_api::json::to_ascii_json`), in one pass.
pub fn ascii_json(value: &impl Serialize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, AsciiFormatter);
    // Writing to a Vec fails only for a value that cannot be JSON, which none is.
    let _ = value.serialize(&mut serializer);
    out
}

struct AsciiFormatter;

impl serde_json::ser::Formatter for AsciiFormatter {
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        if fragment.is_ascii() {
            return writer.write_all(fragment.as_bytes());
        }
        for c in fragment.chars() {
            if c.is_ascii() {
                writer.write_all(&[c as u8])?;
            } else {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write!(writer, "\\u{unit:04x}")?;
                }
            }
        }
        Ok(())
    }
}
