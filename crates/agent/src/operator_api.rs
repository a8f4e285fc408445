//! The agent operator API on `POST /api/v1`, also served at `/api/v1/operator` where
//! pymesos's `MesosOperatorAgentDriver` posts (reference §3, "Agent calls"): the reads
//! GET_HEALTH, GET_FLAGS, GET_VERSION, GET_METRICS, GET_LOGGING_LEVEL, GET_STATE,
//! GET_CONTAINERS, GET_FRAMEWORKS, GET_EXECUTORS, GET_TASKS and GET_AGENT, the files
//! calls LIST_FILES and READ_FILE, and SET_LOGGING_LEVEL. Answers are v1 JSON
//! `{"type":"GET_X","get_x":{...}}`, rendered from the event loop's snapshot.

use crate::core::{Executor, Framework, Task};
use crate::executor_api::{check_accept, check_content_type, read_body};
use crate::files::{Attachments, FileInfo};
use crate::http::{current_view, error_response, json_response, post_only, AppState};
use crate::state::to_value;
use crate::view::View;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use mantle_api::error::ApiError;
use mantle_api::operator::OperatorCall;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

pub(crate) async fn handle(State(app): State<AppState>, request: Request) -> Response {
    if let Some(refusal) = post_only(request.method()) {
        return refusal;
    }
    match handle_call(app, request).await {
        Ok(response) => response,
        Err(err) => error_response(err.status(), err.message),
    }
}

async fn handle_call(app: AppState, request: Request) -> Result<Response, ApiError> {
    check_content_type(request.headers().get(header::CONTENT_TYPE))?;
    check_accept(request.headers().get(header::ACCEPT))?;
    let body = read_body(request.into_body()).await?;
    let call: Value = mantle_api::json::decode(&body)?;
    let Some(kind) = call.get("type").and_then(Value::as_str) else {
        return Err(ApiError::bad_request("'type' is missing"));
    };
    let kind = kind.to_string();
    let answer = match kind.as_str() {
        "GET_HEALTH" => json!({"healthy": true}),
        "GET_VERSION" => json!({"version_info": crate::state::version_json()}),
        "GET_LOGGING_LEVEL" => {
            json!({"level": mantle_api::logging::level()})
        }
        "SET_LOGGING_LEVEL" => {
            set_logging_level(&call)?;
            return Ok(StatusCode::OK.into_response());
        }
        "GET_CONTAINERS" => {
            let containers = crate::monitor::containers_v1(&app)
                .await
                .ok_or_else(unavailable)?;
            json!({"containers": containers})
        }
        "GET_FLAGS" | "GET_METRICS" | "GET_STATE" | "GET_FRAMEWORKS" | "GET_EXECUTORS"
        | "GET_TASKS" | "GET_AGENT" | "LIST_FILES" | "READ_FILE" => {
            let view = current_view(&app).await.ok_or_else(unavailable)?;
            let kind = kind.clone();
            tokio::task::spawn_blocking(move || from_view(&kind, &view, &call))
                .await
                .map_err(|err| ApiError::new(mantle_api::ErrorKind::Internal, err.to_string()))??
        }
        other => {
            return Err(ApiError::bad_request(format!(
                "'type': the agent does not serve {other}"
            )))
        }
    };
    let mut response = Map::new();
    response.insert("type".into(), Value::from(kind.clone()));
    response.insert(kind.to_ascii_lowercase(), without_empty_lists(answer));
    Ok(json_response(&Value::Object(response), &HashMap::new()))
}

fn unavailable() -> ApiError {
    ApiError::unavailable("the agent is shutting down")
}

/// `{"level": N, "duration": {"nanoseconds": D}}`: both required, as in Mesos.
fn set_logging_level(call: &Value) -> Result<(), ApiError> {
    // Decoded again as the typed call, so that an error names the field.
    let call: OperatorCall = mantle_api::json::decode(call.to_string().as_bytes())?;
    mantle_api::logging::set_logging_level(call.set_logging_level.as_ref())?;
    tracing::info!(
        level = mantle_api::logging::level(),
        "logging level changed"
    );
    Ok(())
}

/// An integer given as a JSON number or a numeric string (Mesos's mapper takes both).
fn lenient_u64(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The calls answered from the snapshot; file calls touch the disk, so this runs off
/// the runtime's workers.
fn from_view(kind: &str, view: &View, call: &Value) -> Result<Value, ApiError> {
    Ok(match kind {
        "GET_FLAGS" => {
            let flags: Vec<Value> = view
                .config
                .flags
                .iter()
                .map(|(name, value)| json!({"name": name, "value": value}))
                .collect();
            json!({"flags": flags})
        }
        "GET_METRICS" => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or_default();
            let metrics: Vec<Value> = crate::metrics::snapshot(view, now)
                .into_iter()
                .map(|(name, value)| json!({"name": name, "value": value}))
                .collect();
            json!({"metrics": metrics})
        }
        "GET_STATE" => get_state(view),
        "GET_FRAMEWORKS" => get_frameworks(view),
        "GET_EXECUTORS" => get_executors(view),
        "GET_TASKS" => get_tasks(view),
        "GET_AGENT" => json!({"agent_info": to_value(&view.agent_info)}),
        "LIST_FILES" => list_files(view, call)?,
        "READ_FILE" => read_file(view, call)?,
        other => {
            return Err(ApiError::bad_request(format!(
                "'type': the agent does not serve {other}"
            )))
        }
    })
}

/// `get_state{get_tasks, get_executors, get_frameworks}`.
pub(crate) fn get_state(view: &View) -> Value {
    json!({
        "get_tasks": get_tasks(view),
        "get_executors": get_executors(view),
        "get_frameworks": get_frameworks(view),
    })
}

fn framework_info(framework: &Framework) -> Value {
    let mut info = framework.info.clone();
    info.id = Some(framework.id.clone());
    json!({"framework_info": to_value(&info)})
}

fn get_frameworks(view: &View) -> Value {
    json!({
        "frameworks": view.frameworks.values().map(framework_info).collect::<Vec<_>>(),
        "completed_frameworks": view
            .completed_frameworks
            .iter()
            .rev()
            .map(framework_info)
            .collect::<Vec<_>>(),
    })
}

fn executor_info(framework: &Framework, executor: &Executor) -> Value {
    let mut info = executor.info.clone();
    info.framework_id = Some(framework.id.clone());
    json!({"executor_info": to_value(&info)})
}

fn get_executors(view: &View) -> Value {
    let mut executors = Vec::new();
    let mut completed = Vec::new();
    for framework in view.frameworks.values() {
        for executor in framework.executors.values() {
            executors.push(executor_info(framework, executor));
        }
    }
    for framework in view.all_frameworks() {
        for executor in framework.completed_executors.iter().rev() {
            completed.push(executor_info(framework, executor));
        }
    }
    json!({"executors": executors, "completed_executors": completed})
}

/// The agent's task lists: queued (waiting for their executor to subscribe), launched,
/// terminated (their end not acknowledged yet) and completed. `pending_tasks` stays
/// empty: a task reaches an executor, or queues for one, as soon as it arrives.
fn get_tasks(view: &View) -> Value {
    let agent_id = view.agent_id.as_ref().map(|a| a.as_str());
    let mut queued = Vec::new();
    let mut launched = Vec::new();
    let mut terminated = Vec::new();
    let mut completed = Vec::new();
    for framework in view.all_frameworks() {
        let runs = framework
            .executors
            .values()
            .chain(framework.completed_executors.iter().rev());
        for executor in runs {
            for task in executor.tasks.values() {
                let list = if task.state.is_terminal() {
                    &mut terminated
                } else if task.queued {
                    &mut queued
                } else {
                    &mut launched
                };
                list.push(v1_task(agent_id, executor, task));
            }
            for task in executor.completed_tasks.iter().rev() {
                completed.push(v1_task(agent_id, executor, task));
            }
        }
    }
    json!({
        "pending_tasks": [],
        "queued_tasks": queued,
        "launched_tasks": launched,
        "terminated_tasks": terminated,
        "completed_tasks": completed,
    })
}

/// A v1 `Task`. Command tasks carry no `executor_id`, as in Mesos's task model.
fn v1_task(agent_id: Option<&str>, executor: &Executor, task: &Task) -> Value {
    let info = &task.info;
    let mut out = json!({
        "name": info.name,
        "task_id": info.task_id,
        "framework_id": task.framework_id,
        "agent_id": {"value": agent_id.unwrap_or(info.agent_id.as_str())},
        "state": task.state,
        "resources": info.resources,
        "statuses": task.statuses,
    });
    if !executor.command_executor {
        out["executor_id"] = to_value(&task.executor_id);
    }
    if let Some(labels) = &info.labels {
        out["labels"] = to_value(labels);
    }
    if let Some(kill_policy) = &info.kill_policy {
        out["kill_policy"] = to_value(kill_policy);
    }
    crate::state::put_optional_task_fields(&mut out, info);
    out
}

/// The call's body object for `field`, or a 400 naming it.
fn body<'a>(call: &'a Value, field: &str) -> Result<&'a Value, ApiError> {
    call.get(field)
        .filter(|v| v.is_object())
        .ok_or_else(|| ApiError::bad_request(format!("'{field}' is missing")))
}

fn files_error(err: crate::files::FilesError) -> ApiError {
    use crate::files::FilesError;
    let kind = match err {
        FilesError::BadRequest(_) => mantle_api::ErrorKind::BadRequest,
        FilesError::Forbidden(_) => mantle_api::ErrorKind::Forbidden,
        FilesError::NotFound(_) => mantle_api::ErrorKind::NotFound,
        FilesError::Internal(_) => mantle_api::ErrorKind::Internal,
    };
    ApiError::new(kind, err.message().to_string())
}

fn required_path<'a>(body: &'a Value, call: &str) -> Result<&'a str, ApiError> {
    body.get("path")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ApiError::bad_request(format!("'{call}.path' is missing")))
}

/// LIST_FILES `{path}` → `file_infos[]`.
fn list_files(view: &View, call: &Value) -> Result<Value, ApiError> {
    let path = required_path(body(call, "list_files")?, "list_files")?;
    let listing = Attachments::of(view).browse(path).map_err(files_error)?;
    let infos: Vec<Value> = listing.iter().map(FileInfo::v1_json).collect();
    Ok(json!({"file_infos": infos}))
}

/// READ_FILE `{path, offset, length?}` → `{size, data}`, the data in base64 as protobuf
/// bytes are in Mesos's JSON.
fn read_file(view: &View, call: &Value) -> Result<Value, ApiError> {
    let body = body(call, "read_file")?;
    let path = required_path(body, "read_file")?;
    let offset = body.get("offset").and_then(lenient_u64).ok_or_else(|| {
        ApiError::bad_request("'read_file.offset' must be a non-negative integer")
    })?;
    let length = match body.get("length") {
        None | Some(Value::Null) => None,
        Some(length) => Some(lenient_u64(length).ok_or_else(|| {
            ApiError::bad_request("'read_file.length' must be a non-negative integer")
        })?),
    };
    let chunk = Attachments::of(view)
        .read(path, Some(offset), length)
        .map_err(files_error)?;
    let data = base64::engine::general_purpose::STANDARD.encode(&chunk.data);
    Ok(json!({"size": chunk.size, "data": data}))
}

/// Mesos's JSON mapper leaves out empty repeated fields.
fn without_empty_lists(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.as_array().is_some_and(Vec::is_empty))
                .map(|(k, v)| (k, without_empty_lists(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_empty_lists).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_lists_are_left_out() {
        let value = json!({"a": [], "b": [{"c": [], "d": 1}], "e": {"f": []}});
        assert_eq!(
            without_empty_lists(value),
            json!({"b": [{"d": 1}], "e": {}})
        );
    }
}
