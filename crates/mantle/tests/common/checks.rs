//! Helpers the failure tests share: launching many command tasks, the executor pids the
//! launcher recorded, metrics, and waits for an agent's re-registration.

use super::framework::{command_task, framework_info, Framework};
use super::Cluster;
use mantle_api::scheduler::Event;
use mantle_api::{Filters, FrameworkInfo, TaskState, TaskStatus};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub fn checkpointing(name: &str) -> FrameworkInfo {
    let mut info = framework_info(name);
    info.checkpoint = true;
    info
}

/// Launches `count` tasks `prefix-N` running `command`, using as many offers as it
/// takes, and waits until each runs.
pub async fn launch(fw: &mut Framework, prefix: &str, count: usize, command: &str) -> Vec<String> {
    launch_on(fw, None, prefix, count, command).await
}

/// Like [`launch`], on the agent with id `on` only (others' offers are declined).
pub async fn launch_on(
    fw: &mut Framework,
    on: Option<&str>,
    prefix: &str,
    count: usize,
    command: &str,
) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    while ids.len() < count {
        for offer in fw.next_offers().await {
            let wanted = on.is_none_or(|agent| offer.agent_id.as_str() == agent);
            let mut tasks = Vec::new();
            let mut cpus = offer
                .resources
                .iter()
                .find(|r| r.name == "cpus")
                .and_then(|r| r.scalar.as_ref())
                .map_or(0.0, |s| s.value);
            while wanted && ids.len() < count && cpus >= 0.1 {
                let id = format!("{prefix}-{}", ids.len());
                tasks.push(command_task(&id, &offer, command, "cpus:0.1;mem:8"));
                ids.push(id);
                cpus -= 0.1;
            }
            let call = if tasks.is_empty() {
                let filters = Filters {
                    refuse_seconds: 0.2,
                };
                fw.scheduler
                    .decline(vec![offer.id.clone()], Some(filters))
                    .await
            } else {
                fw.scheduler.launch(offer.id.clone(), tasks, None).await
            };
            call.expect("answer an offer");
        }
    }
    for id in &ids {
        fw.wait_state(id, TaskState::Running).await;
    }
    // Offers that came meanwhile go back, or another framework could never get them.
    let unused: Vec<_> = std::mem::take(&mut fw.unused_offers)
        .into_iter()
        .map(|o| o.id)
        .collect();
    if !unused.is_empty() {
        let filters = Filters {
            refuse_seconds: 0.2,
        };
        fw.scheduler
            .decline(unused, Some(filters))
            .await
            .expect("decline the offers left");
    }
    ids
}

/// The executor pid the launcher recorded for each command task on agent `agent`.
pub fn executor_pids(cluster: &Cluster, agent: usize) -> BTreeMap<String, i32> {
    let mut pids = BTreeMap::new();
    let slaves = cluster.agent_dir(agent).join("meta/slaves");
    for path in glob_runs(&slaves) {
        let executor = path
            .parent()
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // One run per executor here; frameworks that do not checkpoint have no
        // `latest` link under meta/.
        for run in std::fs::read_dir(&path).into_iter().flatten().flatten() {
            if let Ok(text) = std::fs::read_to_string(run.path().join("pid")) {
                pids.insert(executor.clone(), text.trim().parse().unwrap());
            }
        }
    }
    pids
}

/// `meta/slaves/*/frameworks/*/executors/*/runs` directories.
pub fn glob_runs(slaves: &Path) -> Vec<PathBuf> {
    let children = |dir: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir() && !p.is_symlink())
            .collect()
    };
    let mut runs = Vec::new();
    for agent in children(slaves) {
        for framework in children(&agent.join("frameworks")) {
            for executor in children(&framework.join("executors")) {
                runs.push(executor.join("runs"));
            }
        }
    }
    runs
}

pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    })
}

/// The master's `/metrics/snapshot`.
pub async fn metrics(cluster: &Cluster) -> serde_json::Value {
    let response = cluster
        .http
        .get(&cluster.url("/metrics/snapshot"))
        .await
        .expect("metrics");
    serde_json::from_slice(&response.body).expect("metrics are JSON")
}

pub async fn metric(cluster: &Cluster, name: &str) -> f64 {
    metrics(cluster).await[name].as_f64().unwrap_or_default()
}

/// The master's entry for agent `agent`.
pub fn agent_entry<'a>(
    state: &'a serde_json::Value,
    cluster: &Cluster,
    agent: usize,
) -> &'a serde_json::Value {
    let pid = format!("slave(1)@{}", cluster.agents[agent]);
    state["slaves"]
        .as_array()
        .and_then(|agents| agents.iter().find(|a| a["pid"] == pid.as_str()))
        .unwrap_or(&serde_json::Value::Null)
}

/// Waits until the master shows agent `agent` connected again after a restart.
pub async fn wait_reregistered(cluster: &Cluster, agent: usize) -> serde_json::Value {
    cluster
        .wait_until("the agent re-registered", |state| {
            let entry = agent_entry(state, cluster, agent);
            entry["active"] == true && entry["reregistered_time"].is_number()
        })
        .await
}

/// The update of `task` in `state` that arrives next, whatever came before it.
pub async fn next_update(fw: &mut Framework, task: &str, state: TaskState) -> TaskStatus {
    let what = format!("{task} in {state}");
    fw.next(&what, Duration::from_secs(30), |e| match e {
        Event::Update(u) if u.status.task_id.as_str() == task && u.status.state == state => {
            Some(u.status.clone())
        }
        _ => None,
    })
    .await
}

/// Fails naming the keys `object` lacks.
pub fn check_keys(what: &str, object: &serde_json::Value, keys: &[&str]) {
    let Some(map) = object.as_object() else {
        panic!("{what} is not an object: {object}")
    };
    let missing: Vec<&&str> = keys.iter().filter(|k| !map.contains_key(**k)).collect();
    assert!(missing.is_empty(), "{what} lacks {missing:?}: {object:#}");
}

/// The top-level keys of `/master/state` (reference §4).
pub const MASTER_STATE_KEYS: &[&str] = &[
    "version",
    "build_date",
    "build_time",
    "build_user",
    "start_time",
    "elected_time",
    "id",
    "pid",
    "hostname",
    "capabilities",
    "activated_slaves",
    "deactivated_slaves",
    "unreachable_slaves",
    "leader",
    "leader_info",
    "flags",
    "slaves",
    "recovered_slaves",
    "frameworks",
    "completed_frameworks",
    "orphan_tasks",
    "unregistered_frameworks",
];
