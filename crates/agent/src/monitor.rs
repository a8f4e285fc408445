//! Container usage: `/monitor/statistics` (Mesos's `ResourceUsage` JSON) and the agent
//! operator call GET_CONTAINERS on `POST /api/v1`. The list of running containers comes
//! from the event loop; their usage is read off the loop, from cgroups or `/proc`.

use crate::containers::{Containerizer, Usage};
use crate::core::LaunchSpec;
use crate::event_loop::Command;
use crate::http::{error_response, json_response, AppState};
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
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
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "the agent is shutting down",
        );
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

/// `POST /api/v1`: the agent operator API. GET_CONTAINERS is answered; the other calls
/// come with the rest of the operator API.
pub(crate) async fn operator_endpoint(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let json_content = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json_content {
        return error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/json",
        );
    }
    let call: Value = match serde_json::from_slice(&body) {
        Ok(call) => call,
        Err(err) => return error_response(StatusCode::BAD_REQUEST, format!("invalid JSON: {err}")),
    };
    let Some(kind) = call.get("type").and_then(Value::as_str) else {
        return error_response(StatusCode::BAD_REQUEST, "'type' is missing");
    };
    if kind != "GET_CONTAINERS" {
        return error_response(
            StatusCode::BAD_REQUEST,
            format!("'type': the agent does not serve {kind} yet"),
        );
    }
    let Some(all) = usage(&app).await else {
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "the agent is shutting down",
        );
    };
    let containers: Vec<Value> = all
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
    let answer = json!({
        "type": "GET_CONTAINERS",
        "get_containers": {"containers": containers},
    });
    json_response(&answer, &HashMap::new())
}
