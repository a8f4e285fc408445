//! The v1 operator API's read answers (reference §3): GET_STATE, GET_AGENTS,
//! GET_FRAMEWORKS, GET_EXECUTORS, GET_TASKS and GET_MASTER in the Mesos mapper's JSON
//! (v1 Resource arrays, `TimeInfo` times, `{"value": ...}` IDs), and the objects of the
//! operator event stream (TASK_ADDED's task, AGENT_ADDED's agent, FRAMEWORK_ADDED's
//! framework). Rendered from a [`StateView`] by readers, or from the core for events.

use super::{Agent, Drain, Framework, StateView, Task};
use mantle_api::*;
use serde_json::{json, Value};

fn time(seconds: f64) -> Value {
    json!({"nanoseconds": (seconds * 1e9) as i64})
}

/// A v1 `Task`.
pub fn task_v1(task: &Task) -> Value {
    let info = &task.info;
    let mut out = json!({
        "name": info.name,
        "task_id": info.task_id,
        "framework_id": task.framework_id,
        "agent_id": task.agent_id,
        "state": task.state,
        "resources": task.resources.to_wire(),
        "statuses": task.statuses,
    });
    if let Some(executor_id) = &task.executor_id {
        out["executor_id"] = json!(executor_id);
    }
    if let Some(state) = task.status_update_state {
        out["status_update_state"] = json!(state);
    }
    if let Some(uuid) = &task.status_update_uuid {
        out["status_update_uuid"] = json!(uuid);
    }
    if let Some(labels) = &info.labels {
        out["labels"] = json!(labels);
    }
    if let Some(policy) = &info.kill_policy {
        out["kill_policy"] = json!(policy);
    }
    if let Some(user) = info.command.as_ref().and_then(|c| c.user.clone()) {
        out["user"] = json!(user);
    }
    for (key, value) in [
        ("discovery", &info.discovery),
        ("container", &info.container),
        ("health_check", &info.health_check),
        ("limits", &info.limits),
    ] {
        if let Some(v) = value {
            out[key] = v.clone();
        }
    }
    out
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
        "agent_info": agent.info,
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

/// What a framework's live tasks and executors hold.
fn framework_allocated(framework: &Framework) -> Resources {
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

impl StateView {
    pub fn get_agents(&self) -> Value {
        let usage = self.agent_usage();
        let none = (Resources::new(), Resources::new());
        let agents: Vec<Value> = self
            .agents
            .values()
            .map(|agent| {
                let (used, offered) = usage.get(&agent.id).unwrap_or(&none);
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
        let offers: Vec<&Offer> = framework
            .offers
            .iter()
            .filter_map(|id| self.offers.get(id))
            .map(|entry| &entry.offer)
            .collect();
        framework_v1(framework, &offers, &framework_allocated(framework))
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

    pub fn get_tasks(&self) -> Value {
        let frameworks = || {
            self.frameworks
                .values()
                .chain(self.completed_frameworks.iter().map(|f| &**f))
        };
        json!({
            "tasks": frameworks().flat_map(|f| f.tasks.values()).map(task_v1).collect::<Vec<_>>(),
            "unreachable_tasks": frameworks().flat_map(|f| f.unreachable_tasks.values()).map(task_v1).collect::<Vec<_>>(),
            "completed_tasks": frameworks().flat_map(|f| f.completed_tasks.iter()).map(|t| task_v1(t)).collect::<Vec<_>>(),
        })
    }

    pub fn get_state(&self) -> Value {
        json!({
            "get_tasks": self.get_tasks(),
            "get_executors": self.get_executors(),
            "get_frameworks": self.get_frameworks(),
            "get_agents": self.get_agents(),
        })
    }

    pub fn get_master(&self) -> Value {
        json!({
            "master_info": self.info,
            "start_time": self.start_time,
            "elected_time": self.start_time,
        })
    }
}
