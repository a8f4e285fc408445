//! `mantle task log`, `mantle task kill` and `mantle framework teardown`.
//!
//! A task's log is found as the Mesos web UI finds it: the master's state names the
//! task's agent and executor, the agent's `/slave(1)/state` names the executor's sandbox
//! `directory`, and the agent's `/files/read` serves `stdout` or `stderr` from it in
//! pages (reference §4). Kills and teardowns are operator calls on `POST /api/v1`:
//! `TEARDOWN` is Mesos's, `KILL_TASK` is Mantle's own.

use super::client::{agent_address, Master};
use super::lists::{find_framework, find_task, is_terminal, list};
use anyhow::{anyhow, bail};
use serde_json::{json, Value};
use std::io::Write;
use std::time::{Duration, Instant};

/// The most `/files/read` serves at once (16 pages of 4 KiB).
const PAGE: u64 = 64 * 1024;

/// How often `--follow` asks for more output.
const POLL: Duration = Duration::from_millis(500);

/// How often `--follow` asks the master whether the task ended.
const STATE_POLL: Duration = Duration::from_secs(2);

fn text<'a>(value: &'a Value, field: &str) -> &'a str {
    value[field].as_str().unwrap_or_default()
}

/// The task `id` as the master's `/master/tasks` finds it (active, unreachable or
/// completed), of `framework` when given.
async fn lookup_task(master: &Master, id: &str, framework: Option<&str>) -> anyhow::Result<Value> {
    let path = format!(
        "/master/tasks?task_id={}&limit=-1",
        mantle_sdk::http::query_value(id)
    );
    let answer = master.get_json(&path).await?;
    let tasks: Vec<&Value> = list(&answer, "tasks").iter().collect();
    find_task(&tasks, id, framework).cloned()
}

/// Where a task's sandbox is.
struct Sandbox {
    agent: String,
    directory: String,
}

/// The executor a task runs under: its own for command tasks (Mesos lists those with an
/// empty `executor_id`; the command executor takes the task's id).
fn executor_of(task: &Value) -> &str {
    match text(task, "executor_id") {
        "" => text(task, "id"),
        executor => executor,
    }
}

/// The sandbox `directory` of `executor` of `framework` in an agent's `/state`: the run
/// that holds `task`, else the newest run of that executor.
fn find_directory<'a>(
    agent_state: &'a Value,
    framework: &str,
    executor: &str,
    task: &str,
) -> Option<&'a str> {
    let runs: Vec<&Value> = ["frameworks", "completed_frameworks"]
        .iter()
        .flat_map(|field| list(agent_state, field))
        .filter(|f| text(f, "id") == framework)
        .flat_map(|f| {
            // The agent lists its completed executors newest first.
            list(f, "executors")
                .iter()
                .chain(list(f, "completed_executors"))
        })
        .filter(|e| text(e, "id") == executor)
        .collect();
    let holds_task = |run: &&&Value| {
        ["tasks", "queued_tasks", "completed_tasks"]
            .iter()
            .flat_map(|field| list(run, field))
            .any(|t| text(t, "id") == task)
    };
    runs.iter()
        .find(holds_task)
        .or(runs.first())
        .map(|run| text(run, "directory"))
        .filter(|d| !d.is_empty())
}

async fn locate(master: &Master, task: &Value) -> anyhow::Result<Sandbox> {
    let id = text(task, "id");
    let agent_id = text(task, "slave_id");
    let path = format!(
        "/master/slaves?slave_id={}",
        mantle_sdk::http::query_value(agent_id)
    );
    let agents = master.get_json(&path).await?;
    let agent = list(&agents, "slaves")
        .iter()
        .find(|a| text(a, "id") == agent_id)
        .ok_or_else(|| {
            anyhow!("agent {agent_id} of task '{id}' is not registered with the master (it may be unreachable or gone)")
        })?;
    let address = agent_address(agent).ok_or_else(|| {
        anyhow!(
            "agent {agent_id} has no address in its pid {}",
            agent["pid"]
        )
    })?;
    let agent_state = master.agent_json(&address, "/slave(1)/state").await?;
    let directory = find_directory(
        &agent_state,
        text(task, "framework_id"),
        executor_of(task),
        id,
    )
    .ok_or_else(|| {
        anyhow!("agent {agent_id} no longer knows the sandbox of task '{id}' (it may have been removed)")
    })?;
    Ok(Sandbox {
        agent: address,
        directory: directory.to_string(),
    })
}

/// One `/files/read` page: the bytes at `offset`, or `None` when the file is not there
/// (yet).
async fn read_page(
    master: &Master,
    sandbox: &Sandbox,
    path: &str,
    offset: u64,
) -> anyhow::Result<Option<String>> {
    let query = format!(
        "/files/read?path={}&offset={offset}&length={PAGE}",
        mantle_sdk::http::query_value(path)
    );
    let page = master.agent_json_if_found(&sandbox.agent, &query).await?;
    Ok(page.map(|page| text(&page, "data").to_string()))
}

/// `mantle task log`: prints the task's `stdout` (or `stderr`); with `follow`, keeps
/// printing what is appended until the task ended and its file is read to the end.
pub async fn log(
    master: &Master,
    id: &str,
    framework: Option<&str>,
    stderr: bool,
    follow: bool,
) -> anyhow::Result<()> {
    let task = lookup_task(master, id, framework).await?;
    let framework_id = text(&task, "framework_id").to_string();
    let mut ended = is_terminal(&task);
    let sandbox = locate(master, &task).await?;
    let file = if stderr { "stderr" } else { "stdout" };
    let path = format!("{}/{file}", sandbox.directory);
    let mut offset = 0u64;
    let mut checked = Instant::now();
    let mut out = std::io::stdout().lock();
    loop {
        let data = match read_page(master, &sandbox, &path, offset).await? {
            Some(data) => data,
            None if follow => String::new(),
            None => bail!(
                "task '{id}' has no {file} in its sandbox {}",
                sandbox.directory
            ),
        };
        if !data.is_empty() {
            offset += data.len() as u64;
            out.write_all(data.as_bytes())?;
            out.flush()?;
            continue;
        }
        // At the end of the file: done, unless following a task that still runs. Once
        // it ended, the loop reads once more, so what it wrote last is printed too.
        if !follow || ended {
            return Ok(());
        }
        tokio::time::sleep(POLL).await;
        if checked.elapsed() >= STATE_POLL {
            checked = Instant::now();
            // A task the master no longer knows counts as ended.
            ended = match lookup_task(master, id, Some(&framework_id)).await {
                Ok(task) => is_terminal(&task),
                Err(_) => true,
            };
        }
    }
}

/// `mantle task kill`: asks the master to kill a task that has not ended.
pub async fn kill(
    master: &Master,
    id: &str,
    framework: Option<&str>,
    as_json: bool,
) -> anyhow::Result<()> {
    let task = lookup_task(master, id, framework).await?;
    if is_terminal(&task) {
        bail!("task '{id}' already ended ({})", text(&task, "state"));
    }
    let framework_id = text(&task, "framework_id");
    let call = json!({
        "type": "KILL_TASK",
        "kill_task": {
            "framework_id": {"value": framework_id},
            "task_id": {"value": id},
        }
    });
    master.operator_call(&call).await?;
    if as_json {
        println!(
            "{}",
            json!({"task_id": id, "framework_id": framework_id, "agent_id": text(&task, "slave_id"), "state": text(&task, "state")})
        );
    } else {
        println!("killing task '{id}' of framework {framework_id}");
    }
    Ok(())
}

/// `mantle framework teardown`: removes a framework and kills its tasks.
pub async fn teardown(master: &Master, typed: &str, as_json: bool) -> anyhow::Result<()> {
    let state = master.state().await?;
    let framework = find_framework(&state, typed)?;
    let id = text(framework, "id");
    if framework["unregistered_time"].as_f64().unwrap_or(0.0) > 0.0 {
        bail!("framework {id} already ended");
    }
    let call = json!({"type": "TEARDOWN", "teardown": {"framework_id": {"value": id}}});
    master.operator_call(&call).await?;
    let tasks = list(framework, "tasks").len();
    if as_json {
        println!(
            "{}",
            json!({"framework_id": id, "name": text(framework, "name"), "tasks": tasks})
        );
    } else {
        println!(
            "tore down framework {id} ({}) and its {tasks} task(s)",
            text(framework, "name")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_run_holding_the_task_is_found() {
        let agent_state = json!({
            "frameworks": [{"id": "f1", "executors": [
                {"id": "e", "directory": "/w/runs/new", "tasks": [{"id": "t2"}]}
            ], "completed_executors": [
                {"id": "e", "directory": "/w/runs/old", "completed_tasks": [{"id": "t1"}]}
            ]}],
            "completed_frameworks": [{"id": "f0", "executors": [], "completed_executors": [
                {"id": "c", "directory": "/w/c", "completed_tasks": [{"id": "c"}]}
            ]}]
        });
        let check = |fw: &str, ex: &str, task: &str, expected: Option<&str>| {
            assert_eq!(
                find_directory(&agent_state, fw, ex, task),
                expected,
                "{fw} {ex} {task}"
            );
        };
        check("f1", "e", "t1", Some("/w/runs/old"));
        check("f1", "e", "t2", Some("/w/runs/new"));
        check("f1", "e", "t3", Some("/w/runs/new"));
        check("f0", "c", "c", Some("/w/c"));
        check("f1", "x", "t1", None);
        check("f9", "e", "t1", None);
    }

    #[test]
    fn command_tasks_run_under_their_own_id() {
        assert_eq!(executor_of(&json!({"id": "t", "executor_id": ""})), "t");
        assert_eq!(executor_of(&json!({"id": "t", "executor_id": "ex"})), "ex");
        assert!(is_terminal(&json!({"state": "TASK_FAILED"})));
        assert!(!is_terminal(&json!({"state": "TASK_RUNNING"})));
    }
}
