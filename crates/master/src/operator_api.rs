//! The operator API calls answered without changing the core (reference §3): the reads
//! (GET_HEALTH, GET_FLAGS, GET_VERSION, GET_METRICS, GET_LOGGING_LEVEL, GET_STATE,
//! GET_AGENTS, GET_FRAMEWORKS, GET_EXECUTORS, GET_TASKS, GET_ROLES, GET_MASTER), rendered
//! off the event loop from a snapshot; SET_LOGGING_LEVEL; and SUBSCRIBE, the operator
//! event stream. Every other call goes to the core (`operator.rs`).

use crate::event_loop::{Command, EventStream};
use crate::http::{accepts_json, records, AppState};
use crate::legacy;
use crate::snapshot::{render, Snapshot};
use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use mantle_api::json::to_ascii_json;
use mantle_api::logging;
use mantle_api::operator::OperatorCall;
use mantle_api::{recordio, ApiError, ErrorKind, MESOS_VERSION};
use serde_json::{json, Value};
use std::convert::Infallible;
use std::sync::Arc;

/// Seconds between HEARTBEAT events on operator streams, as in Mesos.
pub const HEARTBEAT_SECONDS: f64 = 15.0;

fn typed(kind: &str, body: Value) -> Response {
    let field = kind.to_ascii_lowercase();
    let answer = json!({"type": kind, field: body});
    (
        [(header::CONTENT_TYPE, "application/json")],
        to_ascii_json(&answer),
    )
        .into_response()
}

/// Renders a typed answer from a current snapshot off the loop.
async fn from_snapshot(
    state: &AppState,
    kind: &'static str,
    read: fn(&Snapshot) -> Value,
) -> Result<Response, ApiError> {
    let body = render(state, move |s| Ok(read(s))).await?;
    Ok(typed(kind, body))
}

/// Answers `call` when it is one of the calls this module serves; `None` sends it on to
/// the core.
pub async fn answer(
    state: &AppState,
    headers: &HeaderMap,
    call: &OperatorCall,
) -> Option<Result<Response, ApiError>> {
    let kind = call.kind.as_str();
    let response = match kind {
        "GET_HEALTH" => Ok(typed(kind, json!({"healthy": true}))),
        "GET_FLAGS" => {
            let flags: Vec<Value> = state
                .flags
                .iter()
                .map(|(name, value)| json!({"name": name, "value": value}))
                .collect();
            Ok(typed(kind, json!({ "flags": flags })))
        }
        "GET_VERSION" => Ok(typed(
            kind,
            json!({"version_info": {"version": MESOS_VERSION, "build_date": "",
                   "build_time": 0.0, "build_user": ""}}),
        )),
        "GET_METRICS" => legacy::metrics(state).await.map(|metrics| {
            let metrics: Vec<Value> = metrics
                .iter()
                .map(|(name, value)| json!({"name": name, "value": value}))
                .collect();
            typed(kind, json!({ "metrics": metrics }))
        }),
        "GET_LOGGING_LEVEL" => Ok(typed(kind, json!({"level": logging::level()}))),
        "SET_LOGGING_LEVEL" => set_logging_level(call),
        "GET_STATE" => from_snapshot(state, "GET_STATE", |s| s.view.get_state()).await,
        "GET_AGENTS" => from_snapshot(state, "GET_AGENTS", |s| s.view.get_agents()).await,
        "GET_FRAMEWORKS" => {
            from_snapshot(state, "GET_FRAMEWORKS", |s| s.view.get_frameworks()).await
        }
        "GET_EXECUTORS" => from_snapshot(state, "GET_EXECUTORS", |s| s.view.get_executors()).await,
        "GET_TASKS" => from_snapshot(state, "GET_TASKS", |s| s.view.get_tasks()).await,
        "GET_MASTER" => from_snapshot(state, "GET_MASTER", |s| s.view.get_master()).await,
        "GET_ROLES" => {
            from_snapshot(
                state,
                "GET_ROLES",
                |s| json!({"roles": s.view.roles_json(true)}),
            )
            .await
        }
        "SUBSCRIBE" => subscribe(state, headers).await,
        _ => return None,
    };
    Some(response)
}

fn set_logging_level(call: &OperatorCall) -> Result<Response, ApiError> {
    logging::set_logging_level(call.set_logging_level.as_ref())?;
    tracing::info!(level = logging::level(), "logging level changed");
    Ok(StatusCode::OK.into_response())
}

/// SUBSCRIBE: a RecordIO stream of SUBSCRIBED (the state when the stream opened), a
/// HEARTBEAT, then the events of every later change and a HEARTBEAT every 15 s.
async fn subscribe(state: &AppState, headers: &HeaderMap) -> Result<Response, ApiError> {
    let recordio_accepted = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/recordio"));
    if !recordio_accepted && !accepts_json(headers) {
        return Err(ApiError::new(
            ErrorKind::NotAcceptable,
            "expecting 'Accept' to allow 'application/json' or 'application/recordio'",
        ));
    }
    let (stream, snapshot) = state
        .handle
        .request(|reply| Command::OperatorSubscribe { reply })
        .await?;
    // The state is rendered from the view taken when the stream opened, so the events
    // that follow it are exactly the later changes.
    let first = tokio::task::spawn_blocking(move || {
        let subscribed = json!({"type": "SUBSCRIBED", "subscribed": {
            "get_state": snapshot.view.get_state(),
            "heartbeat_interval_seconds": HEARTBEAT_SECONDS,
        }});
        recordio::encode(&to_ascii_json(&subscribed))
    })
    .await
    .map_err(|e| ApiError::new(ErrorKind::Internal, format!("render: {e}")))?;
    Ok(stream_body(first, stream, recordio_accepted))
}

/// The stream's body: `first`, a heartbeat, then the stream's records as they come.
fn stream_body(first: Bytes, stream: EventStream, recordio: bool) -> Response {
    let heartbeat = recordio::encode(&to_ascii_json(&json!({"type": "HEARTBEAT"})));
    let opening =
        futures_util::stream::iter([Ok::<_, Infallible>(first), Ok::<_, Infallible>(heartbeat)]);
    use futures_util::StreamExt;
    let mut response = Response::new(Body::from_stream(opening.chain(records(stream))));
    let headers = response.headers_mut();
    if recordio {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/recordio"),
        );
        headers.insert(
            "Message-Content-Type",
            HeaderValue::from_static("application/json"),
        );
    } else {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    response
}

/// A new operator stream and the snapshot taken when it opened.
pub type Subscription = (EventStream, Arc<Snapshot>);
