//! The agent's `/state` JSON (reference §4, `/slave(1)/state`), rendered off the event
//! loop from the snapshot it publishes (`view.rs`); readers never touch the core.

use crate::core::{Executor, Framework, Task};
use crate::view::View;
use mantle_api::{Resources, MESOS_VERSION};
use serde_json::{json, Map, Value};

/// Build facts for `/version` and `/state`. Mantle has no build script, so the date and
/// time are unknown and left empty.
pub fn version_json() -> Value {
    json!({
        "version": MESOS_VERSION,
        "build_date": "",
        "build_time": 0,
        "build_user": "mantle",
        "git_tag": format!("mantle-{}", env!("CARGO_PKG_VERSION")),
    })
}

pub(crate) fn state_json(view: &View) -> Value {
    let config = &view.config;
    let agent_id = view
        .agent_id
        .as_ref()
        .map(|a| a.value.clone())
        .unwrap_or_default();
    let mut out = match version_json() {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    let resources = &config.resources;
    let (reserved, unreserved) = split_by_reservation(resources);
    let (reserved_used, unreserved_used) = split_by_reservation(&used_resources(view));
    let by_role = |split: &std::collections::BTreeMap<String, Resources>| -> Map<String, Value> {
        split
            .iter()
            .map(|(role, r)| (role.clone(), Value::Object(r.legacy_json())))
            .collect()
    };
    let reserved_json = by_role(&reserved);
    let reserved_full: Map<String, Value> = reserved
        .iter()
        .map(|(role, r)| (role.clone(), to_value(&r.to_wire())))
        .collect();
    let attributes: Map<String, Value> = config
        .attributes
        .iter()
        .map(|a| (a.name.clone(), a.legacy_value()))
        .collect();
    let flags: Map<String, Value> = config
        .flags
        .iter()
        .map(|(k, v)| (k.clone(), Value::from(v.clone())))
        .collect();
    let mut put = |key: &str, value: Value| {
        out.insert(key.to_string(), value);
    };
    put("start_time", json!(config.start_time));
    put("id", json!(agent_id));
    put("pid", json!(config.pid()));
    put("hostname", json!(config.hostname));
    put("resources", Value::Object(resources.legacy_json()));
    put("reserved_resources", Value::Object(reserved_json));
    put(
        "unreserved_resources",
        Value::Object(unreserved.legacy_json()),
    );
    put("reserved_resources_full", Value::Object(reserved_full));
    put("unreserved_resources_full", to_value(&unreserved.to_wire()));
    put(
        "reserved_resources_allocated",
        Value::Object(by_role(&reserved_used)),
    );
    put(
        "unreserved_resources_allocated",
        Value::Object(unreserved_used.legacy_json()),
    );
    put("resource_providers", json!([]));
    put("attributes", Value::Object(attributes));
    put(
        "capabilities",
        to_value(&kinds(&view.agent_info.capabilities)),
    );
    if let Some(hostname) = view.master_info.as_ref().and_then(|m| m.hostname.clone()) {
        put("master_hostname", json!(hostname));
    }
    put("flags", Value::Object(flags));
    put(
        "frameworks",
        Value::Array(
            view.frameworks
                .values()
                .map(|f| framework_json(&agent_id, f))
                .collect(),
        ),
    );
    put(
        "completed_frameworks",
        Value::Array(
            view.completed_frameworks
                .iter()
                .rev()
                .map(|f| framework_json(&agent_id, f))
                .collect(),
        ),
    );
    Value::Object(out)
}

pub(crate) fn to_value<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

fn kinds(capabilities: &[mantle_api::Capability]) -> Vec<&str> {
    capabilities.iter().map(|c| c.kind.as_str()).collect()
}

/// What an executor holds: its own resources and those of its tasks that are launched
/// or queued and not terminal (Mesos's allocated resources of an executor).
pub(crate) fn executor_resources(executor: &Executor) -> Resources {
    let mut resources =
        Resources::from_wire("resources", &executor.info.resources).unwrap_or_default();
    for task in executor.tasks.values().filter(|t| !t.state.is_terminal()) {
        resources.add(&Resources::from_wire("resources", &task.info.resources).unwrap_or_default());
    }
    resources
}

/// What the live executors hold together (`slave/cpus_used` and friends).
pub(crate) fn used_resources(view: &View) -> Resources {
    let mut used = Resources::default();
    for executor in view.live_executors() {
        used.add(&executor_resources(executor));
    }
    used
}

/// Splits resources into the reserved ones by role and the unreserved (`*`) ones.
fn split_by_reservation(
    resources: &Resources,
) -> (std::collections::BTreeMap<String, Resources>, Resources) {
    let mut reserved: std::collections::BTreeMap<String, Vec<mantle_api::Resource>> =
        Default::default();
    let mut unreserved = Vec::new();
    for r in resources.to_wire() {
        match r.role.as_deref() {
            None | Some("*") => unreserved.push(r),
            Some(role) => reserved.entry(role.to_string()).or_default().push(r),
        }
    }
    let reserved = reserved
        .into_iter()
        .map(|(role, list)| {
            (
                role,
                Resources::from_wire("resources", &list).unwrap_or_default(),
            )
        })
        .collect();
    (
        reserved,
        Resources::from_wire("resources", &unreserved).unwrap_or_default(),
    )
}

fn framework_json(agent_id: &str, framework: &Framework) -> Value {
    let info = &framework.info;
    let mut out = json!({
        "id": framework.id.value,
        "name": info.name,
        "user": info.user,
        "failover_timeout": info.failover_timeout,
        "checkpoint": info.checkpoint,
        "hostname": info.hostname.clone().unwrap_or_default(),
        "capabilities": kinds(&info.capabilities),
        "executors": framework.executors.values().map(|e| executor_json(agent_id, e)).collect::<Vec<_>>(),
        "completed_executors": framework.completed_executors.iter().rev().map(|e| executor_json(agent_id, e)).collect::<Vec<_>>(),
    });
    if let Some(principal) = &info.principal {
        out["principal"] = json!(principal);
    }
    if info.has_capability("MULTI_ROLE") {
        out["roles"] = json!(info.roles);
    } else {
        out["role"] = json!(info.role.clone().unwrap_or_else(|| "*".to_string()));
    }
    out
}

fn executor_json(agent_id: &str, executor: &Executor) -> Value {
    let info = &executor.info;
    let resources = executor_resources(executor);
    let mut tasks = Vec::new();
    let mut queued = Vec::new();
    for task in executor.tasks.values() {
        if task.queued {
            queued.push(task_json(agent_id, executor, task));
        } else {
            tasks.push(task_json(agent_id, executor, task));
        }
    }
    let mut out = json!({
        "id": info.executor_id.value,
        "name": info.name.clone().unwrap_or_default(),
        "source": info.source.clone().unwrap_or_default(),
        "container": executor.container_id.value,
        "directory": executor.directory.to_string_lossy(),
        "resources": resources.legacy_json(),
        "tasks": tasks,
        "queued_tasks": queued,
        "completed_tasks": executor.completed_tasks.iter().rev().map(|t| task_json(agent_id, executor, t)).collect::<Vec<_>>(),
    });
    if let Some(labels) = &info.labels {
        out["labels"] = to_value(&labels.labels);
    }
    if let Some(kind) = &info.kind {
        out["type"] = json!(kind);
    }
    out
}

fn task_json(agent_id: &str, executor: &Executor, task: &Task) -> Value {
    let resources = Resources::from_wire("resources", &task.info.resources).unwrap_or_default();
    let statuses: Vec<Value> = task
        .statuses
        .iter()
        .map(|s| {
            let mut status =
                json!({"state": s.state, "timestamp": s.timestamp.unwrap_or_default()});
            if let Some(labels) = &s.labels {
                status["labels"] = to_value(&labels.labels);
            }
            if let Some(container_status) = &s.container_status {
                status["container_status"] = container_status.clone();
            }
            if let Some(healthy) = s.healthy {
                status["healthy"] = json!(healthy);
            }
            status
        })
        .collect();
    // Command tasks have no executor of their own in Mesos's task model.
    let executor_id = if executor.command_executor {
        String::new()
    } else {
        task.executor_id.value.to_string()
    };
    let mut out = json!({
        "id": task.info.task_id.value,
        "name": task.info.name,
        "framework_id": task.framework_id.value,
        "executor_id": executor_id,
        "slave_id": agent_id,
        "state": task.state,
        "resources": resources.legacy_json(),
        "role": task.role,
        "statuses": statuses,
    });
    if let Some(labels) = &task.info.labels {
        out["labels"] = to_value(&labels.labels);
    }
    put_optional_task_fields(&mut out, &task.info);
    out
}

/// The fields a task carries in both its legacy and its v1 JSON when its `TaskInfo`
/// set them.
pub(crate) fn put_optional_task_fields(out: &mut Value, info: &mantle_api::TaskInfo) {
    let optional = [
        ("discovery", info.discovery.clone()),
        ("container", info.container.clone()),
        ("health_check", info.health_check.clone()),
        ("limits", info.limits.clone()),
        (
            "user",
            info.command
                .as_ref()
                .and_then(|c| c.user.clone())
                .map(|user| Box::new(Value::from(user))),
        ),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            out[key] = *value;
        }
    }
}
