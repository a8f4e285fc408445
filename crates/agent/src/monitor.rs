//! Container usage: `/monitor/statistics` (Mesos's `ResourceUsage` JSON) and the
//! containers of the operator call GET_CONTAINERS (`operator_api.rs`). The list of running containers comes
//! from the event loop; their usage is read off the loop, from cgroups or `/proc`.

use crate::containers::{Containerizer, Usage};
use crate::core::LaunchSpec;
use crate::event_loop::Command;
use crate::http::{json_response, shutting_down, AppState};
use axum::extract::{Query, State};
use axum::response::Response;
use mantle_api::ExecutorInfo;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// One running container, as the event loop knows it.
pub(crate) struct Running {
    pub spec: Arc<LaunchSpec>,
    pub launcher_pid: Option<u32>,
    pub executor: Option<ExecutorInfo>,
}

/// Mesos's `ResourceStatistics` for one container.
fn statistics(running: &Running, usage: &Usage) -> Value {
    let limits = &running.spec.limits;
    let stats = &usage.stats;
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default();
    let mut out = json!({
        "timestamp": timestamp,
        "cpus_user_time_secs": stats.cpus_user_time_secs,
        "cpus_system_time_secs": stats.cpus_system_time_secs,
        "cpus_limit": limits.cpus,
        "cpus_nr_periods": stats.cpus_nr_periods,
        "cpus_nr_throttled": stats.cpus_nr_throttled,
        "cpus_throttled_time_secs": stats.cpus_throttled_time_secs,
        "mem_rss_bytes": stats.mem_rss_bytes,
        "mem_cache_bytes": stats.mem_cache_bytes,
        "mem_total_bytes": stats.mem_total_bytes,
        "mem_limit_bytes": stats
            .mem_limit_bytes
            .unwrap_or((limits.mem_mb * 1048576.0) as u64),
        "disk_limit_bytes": (limits.disk_mb * 1048576.0) as u64,
    });
    if let Some(max) = stats.mem_max_bytes {
        out["mem_max_bytes"] = json!(max);
    }
    if let Some(used) = usage.disk_used_bytes {
        out["disk_used_bytes"] = json!(used);
    }
    if let Some(pids) = stats.pids_current {
        out["processes"] = json!(pids);
    }
    out
}

/// Asks the event loop for the running containers and reads their usage.
async fn usage(app: &AppState) -> Option<Vec<(Running, Usage)>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    app.commands.send(Command::Containers(tx)).ok()?;
    let running = rx.await.ok()?;
    let containers: Arc<Containerizer> = app.containers.clone();
    tokio::task::spawn_blocking(move || {
        running
            .into_iter()
            .map(|r| {
                let usage = containers.usage(&r.spec, r.launcher_pid);
                (r, usage)
            })
            .collect()
    })
    .await
    .ok()
}

fn executor_name(running: &Running) -> String {
    running
        .executor
        .as_ref()
        .and_then(|e| e.name.clone())
        .unwrap_or_default()
}

fn source(running: &Running) -> String {
    running
        .executor
        .as_ref()
        .and_then(|e| e.source.clone())
        .unwrap_or_default()
}

/// `GET /monitor/statistics`.
pub(crate) async fn statistics_endpoint(
    State(app): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some(all) = usage(&app).await else {
        return shutting_down();
    };
    let entries: Vec<Value> = all
        .iter()
        .map(|(running, usage)| {
            let spec = &running.spec;
            json!({
                "framework_id": spec.framework_id.as_str(),
                "executor_id": spec.executor_id.as_str(),
                "executor_name": executor_name(running),
                "source": source(running),
                "container_id": spec.container_id.as_str(),
                "statistics": statistics(running, usage),
            })
        })
        .collect();
    json_response(&Value::Array(entries), &query)
}

/// The `containers[]` of the operator call GET_CONTAINERS; none when the agent is
/// shutting down.
pub(crate) async fn containers_v1(app: &AppState) -> Option<Vec<Value>> {
    let all = usage(app).await?;
    let containers = all
        .iter()
        .map(|(running, usage)| {
            let spec = &running.spec;
            json!({
                "framework_id": {"value": spec.framework_id.as_str()},
                "executor_id": {"value": spec.executor_id.as_str()},
                "executor_name": executor_name(running),
                "container_id": {"value": spec.container_id.as_str()},
                "container_status": {
                    "container_id": {"value": spec.container_id.as_str()},
                    "executor_pid": running.launcher_pid,
                },
                "resource_statistics": statistics(running, usage),
            })
        })
        .collect();
    Some(containers)
}
