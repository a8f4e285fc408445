//! `mantle agents`, `mantle frameworks` and `mantle tasks`: the master's `/master/state`
//! as tables, or its own objects as JSON; and the lookups the other verbs share (a task
//! or a framework by the id a user typed).

use super::table::{age, matches_id, megabytes, now, number, short_id, state_name, Table};
use anyhow::{anyhow, bail};
use mantle_api::TaskState;
use serde_json::Value;

/// The entries of an array field, none when it is missing.
pub fn list<'a>(value: &'a Value, field: &str) -> &'a [Value] {
    value[field].as_array().map_or(&[], Vec::as_slice)
}

/// A scalar of a flattened resources object (`{"cpus": 2, "mem": 1024, ...}`).
pub fn scalar(resources: &Value, name: &str) -> f64 {
    resources[name].as_f64().unwrap_or(0.0)
}

fn text<'a>(value: &'a Value, field: &str) -> &'a str {
    value[field].as_str().unwrap_or_default()
}

/// "used/total" of one scalar, formatted by `unit`.
fn used_of(used: &Value, total: &Value, name: &str, unit: fn(f64) -> String) -> String {
    format!("{}/{}", unit(scalar(used, name)), unit(scalar(total, name)))
}

/// Active and completed frameworks (`completed` only when asked for).
pub fn frameworks(state: &Value, completed: bool) -> Vec<&Value> {
    let mut out: Vec<&Value> = list(state, "frameworks").iter().collect();
    if completed {
        out.extend(list(state, "completed_frameworks"));
    }
    out
}

/// Every task the master knows: those of active and completed frameworks, active,
/// unreachable and completed, in that order.
pub fn all_tasks(state: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for framework in frameworks(state, true) {
        for field in ["tasks", "unreachable_tasks", "completed_tasks"] {
            out.extend(list(framework, field));
        }
    }
    out
}

/// `--state`: `running`, `RUNNING` and `TASK_RUNNING` all name TASK_RUNNING.
pub fn parse_state(typed: &str) -> anyhow::Result<TaskState> {
    let upper = typed.trim().to_ascii_uppercase();
    let full = if upper.starts_with("TASK_") {
        upper
    } else {
        format!("TASK_{upper}")
    };
    full.parse().map_err(|_| {
        anyhow!("--state: unknown task state '{typed}' (use a Mesos state such as running, finished, failed or killed)")
    })
}

pub fn agents_table(state: &Value) -> Table {
    let now = now();
    let mut table = Table::new(&[
        "ID", "HOSTNAME", "ADDRESS", "STATE", "TASKS>", "CPUS>", "MEM>", "DISK>", "AGE>",
    ]);
    let active_tasks: Vec<&Value> = frameworks(state, false)
        .into_iter()
        .flat_map(|f| list(f, "tasks"))
        .collect();
    for agent in list(state, "slaves") {
        let id = text(agent, "id");
        let tasks = active_tasks
            .iter()
            .filter(|t| text(t, "slave_id") == id)
            .count();
        let status = if agent["deactivated"].as_bool() == Some(true) {
            "deactivated"
        } else if agent["active"].as_bool() == Some(true) {
            "active"
        } else {
            "disconnected"
        };
        let (used, total) = (&agent["used_resources"], &agent["resources"]);
        table.row(vec![
            short_id(id),
            text(agent, "hostname").to_string(),
            super::client::agent_address(agent).unwrap_or_default(),
            status.to_string(),
            tasks.to_string(),
            used_of(used, total, "cpus", number),
            used_of(used, total, "mem", megabytes),
            used_of(used, total, "disk", megabytes),
            age(now, agent["registered_time"].as_f64().unwrap_or(0.0)),
        ]);
    }
    table
}

/// The role column: `roles` of a multi-role framework, else `role`.
fn roles(framework: &Value) -> String {
    let roles: Vec<&str> = list(framework, "roles")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    if !roles.is_empty() {
        return roles.join(",");
    }
    framework["role"].as_str().unwrap_or("*").to_string()
}

pub fn frameworks_table(frameworks: &[&Value]) -> Table {
    let now = now();
    let mut table = Table::new(&[
        "ID", "NAME", "USER", "ROLE", "STATE", "TASKS>", "CPUS>", "MEM>", "DISK>", "AGE>",
    ]);
    for framework in frameworks {
        let status = if framework["unregistered_time"].as_f64().unwrap_or(0.0) > 0.0 {
            "completed"
        } else if framework["active"].as_bool() != Some(true) {
            "inactive"
        } else if framework["connected"].as_bool() == Some(false) {
            "disconnected"
        } else {
            "active"
        };
        let used = &framework["used_resources"];
        table.row(vec![
            short_id(text(framework, "id")),
            text(framework, "name").to_string(),
            text(framework, "user").to_string(),
            roles(framework),
            status.to_string(),
            list(framework, "tasks").len().to_string(),
            number(scalar(used, "cpus")),
            megabytes(scalar(used, "mem")),
            megabytes(scalar(used, "disk")),
            age(now, framework["registered_time"].as_f64().unwrap_or(0.0)),
        ]);
    }
    table
}

/// When a task started: the time of its first status update.
fn started(task: &Value) -> f64 {
    list(task, "statuses")
        .iter()
        .filter_map(|s| s["timestamp"].as_f64())
        .fold(f64::INFINITY, f64::min)
}

pub fn tasks_table(tasks: &[&Value]) -> Table {
    let now = now();
    let mut table = Table::new(&[
        "ID",
        "NAME",
        "STATE",
        "FRAMEWORK",
        "AGENT",
        "CPUS>",
        "MEM>",
        "AGE>",
    ]);
    for task in tasks {
        let resources = &task["resources"];
        let started = started(task);
        table.row(vec![
            text(task, "id").to_string(),
            text(task, "name").to_string(),
            state_name(text(task, "state")).to_string(),
            short_id(text(task, "framework_id")),
            short_id(text(task, "slave_id")),
            number(scalar(resources, "cpus")),
            megabytes(scalar(resources, "mem")),
            if started.is_finite() {
                age(now, started)
            } else {
                "-".into()
            },
        ]);
    }
    table
}

/// The task `id` (of framework `framework` when given) among `tasks`; an unknown or
/// ambiguous id is an error naming it. A task that has not ended wins over ended tasks
/// of the same id (a framework may reuse an id once its task ended); among those, the
/// first listed.
pub fn find_task<'a>(
    tasks: &[&'a Value],
    id: &str,
    framework: Option<&str>,
) -> anyhow::Result<&'a Value> {
    let matching: Vec<&Value> = tasks
        .iter()
        .copied()
        .filter(|t| text(t, "id") == id)
        .filter(|t| framework.is_none_or(|f| matches_id(text(t, "framework_id"), f)))
        .collect();
    let Some(first) = matching.first() else {
        return Err(match framework {
            Some(framework) => anyhow!("unknown task id '{id}' of framework '{framework}'"),
            None => anyhow!("unknown task id '{id}'"),
        });
    };
    let frameworks: std::collections::BTreeSet<&str> =
        matching.iter().map(|t| text(t, "framework_id")).collect();
    if frameworks.len() > 1 {
        bail!(
            "task id '{id}' is used by {} frameworks ({}): name one with --framework",
            frameworks.len(),
            frameworks.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    Ok(matching.iter().find(|t| !is_terminal(t)).unwrap_or(first))
}

/// Whether a task (a master or agent task object) has ended.
pub fn is_terminal(task: &Value) -> bool {
    text(task, "state")
        .parse::<TaskState>()
        .is_ok_and(TaskState::is_terminal)
}

/// The framework a user named by its id or short id, active or completed.
pub fn find_framework<'a>(state: &'a Value, typed: &str) -> anyhow::Result<&'a Value> {
    let matching: Vec<&Value> = frameworks(state, true)
        .into_iter()
        .filter(|f| matches_id(text(f, "id"), typed))
        .collect();
    match matching.as_slice() {
        [] => Err(anyhow!("unknown framework id '{typed}'")),
        [one] => Ok(one),
        many => {
            // The same id as active and completed cannot happen; a short id shared by
            // two frameworks of different masters can.
            let ids: Vec<&str> = many.iter().map(|f| text(f, "id")).collect();
            bail!(
                "framework id '{typed}' is ambiguous: it names {}",
                ids.join(", ")
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const FW: &str = "5b1f3a2c-0d4e-4f5a-9b6c-7d8e9f0a1b2c-0000";
    const AGENT: &str = "5b1f3a2c-0d4e-4f5a-9b6c-7d8e9f0a1b2c-S0";

    fn state() -> Value {
        json!({
            "slaves": [{
                "id": AGENT, "hostname": "host-a", "pid": "slave(1)@10.0.0.1:5051",
                "active": true, "deactivated": false, "registered_time": 0.0,
                "resources": {"cpus": 4.0, "mem": 3584.0, "disk": 10240.0},
                "used_resources": {"cpus": 1.5, "mem": 512.0, "disk": 0.0}
            }],
            "frameworks": [{
                "id": FW, "name": "web", "user": "root", "roles": ["eng"], "active": true,
                "connected": true, "unregistered_time": 0.0,
                "used_resources": {"cpus": 1.5, "mem": 512.0, "disk": 0.0},
                "tasks": [{"id": "t1", "name": "one", "state": "TASK_RUNNING",
                           "framework_id": FW, "slave_id": AGENT,
                           "resources": {"cpus": 1.5, "mem": 512.0}, "statuses": []}],
                "unreachable_tasks": [],
                "completed_tasks": [{"id": "t0", "name": "zero", "state": "TASK_FINISHED",
                                     "framework_id": FW, "slave_id": AGENT,
                                     "resources": {"cpus": 1.0, "mem": 32.0}, "statuses": []}]
            }],
            "completed_frameworks": [{
                "id": "other-0001", "name": "gone", "user": "u", "active": false,
                "unregistered_time": 5.0, "tasks": [], "completed_tasks": [
                    {"id": "t1", "state": "TASK_KILLED", "framework_id": "other-0001",
                     "slave_id": AGENT, "statuses": []}]
            }]
        })
    }

    #[test]
    fn agents_as_a_table() {
        let text = agents_table(&state()).render();
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
        assert_eq!(
            header,
            ["ID", "HOSTNAME", "ADDRESS", "STATE", "TASKS", "CPUS", "MEM", "DISK", "AGE"]
        );
        let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
        assert_eq!(
            row,
            [
                "5b1f3a2c-S0",
                "host-a",
                "10.0.0.1:5051",
                "active",
                "1",
                "1.5/4",
                "512",
                "MiB/3.5",
                "GiB",
                "0",
                "MiB/10.0",
                "GiB",
                "-"
            ]
        );
    }

    #[test]
    fn frameworks_as_a_table() {
        let state = state();
        let text = frameworks_table(&frameworks(&state, true)).render();
        let rows: Vec<Vec<&str>> = text
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            rows[0][..6],
            ["5b1f3a2c-0000", "web", "root", "eng", "active", "1"]
        );
        assert_eq!(
            rows[1][..6],
            ["other-0001", "gone", "u", "*", "completed", "0"]
        );
        assert_eq!(frameworks(&state, false).len(), 1);
    }

    #[test]
    fn tasks_by_id_and_state() {
        let state = state();
        assert_eq!(all_tasks(&state).len(), 3);
        assert_eq!(parse_state("running").unwrap(), TaskState::Running);
        assert_eq!(parse_state("TASK_KILLED").unwrap(), TaskState::Killed);
        let err = parse_state("sleeping").unwrap_err().to_string();
        assert!(err.contains("--state") && err.contains("sleeping"), "{err}");

        let tasks = all_tasks(&state);
        assert_eq!(find_task(&tasks, "t0", None).unwrap()["name"], "zero");
        let err = find_task(&tasks, "nope", None).unwrap_err().to_string();
        assert_eq!(err, "unknown task id 'nope'");
        let err = find_task(&tasks, "t1", None).unwrap_err().to_string();
        assert!(err.contains("--framework") && err.contains(FW), "{err}");
        let found = find_task(&tasks, "t1", Some("5b1f3a2c-0000")).unwrap();
        assert_eq!(found["state"], "TASK_RUNNING");
        let found = find_task(&tasks, "t1", Some("other-0001")).unwrap();
        assert_eq!(found["state"], "TASK_KILLED");
        let err = find_task(&tasks, "t0", Some("other-0001"))
            .unwrap_err()
            .to_string();
        assert_eq!(err, "unknown task id 't0' of framework 'other-0001'");
        // A reused id: the task that has not ended is the one meant.
        let ended = json!({"id": "r", "framework_id": FW, "state": "TASK_FAILED"});
        let live = json!({"id": "r", "framework_id": FW, "state": "TASK_STAGING"});
        assert_eq!(
            find_task(&[&ended, &live], "r", None).unwrap()["state"],
            "TASK_STAGING"
        );
        assert_eq!(
            find_task(&[&ended], "r", None).unwrap()["state"],
            "TASK_FAILED"
        );

        let text = tasks_table(&all_tasks(&state)).render();
        let row: Vec<&str> = text.lines().nth(1).unwrap().split_whitespace().collect();
        assert_eq!(
            row,
            [
                "t1",
                "one",
                "RUNNING",
                "5b1f3a2c-0000",
                "5b1f3a2c-S0",
                "1.5",
                "512",
                "MiB",
                "-"
            ]
        );
    }

    #[test]
    fn frameworks_by_id() {
        let state = state();
        assert_eq!(find_framework(&state, FW).unwrap()["name"], "web");
        assert_eq!(
            find_framework(&state, "5b1f3a2c-0000").unwrap()["name"],
            "web"
        );
        assert_eq!(
            find_framework(&state, "other-0001").unwrap()["name"],
            "gone"
        );
        let err = find_framework(&state, "5b1f").unwrap_err().to_string();
        assert_eq!(err, "unknown framework id '5b1f'");
    }
}
