//! The operator API calls answered without changing the core (reference §3): the reads
//! (GET_HEALTH, GET_FLAGS, GET_VERSION, GET_METRICS, GET_LOGGING_LEVEL, GET_STATE,
//! GET_AGENTS, GET_FRAMEWORKS, GET_EXECUTORS, GET_TASKS, GET_ROLES, GET_MASTER), rendered
//! off the event loop from a snapshot; SET_LOGGING_LEVEL; and SUBSCRIBE, the operator
//! event stream. Every other call goes to the core (`operator.rs`).

use crate::core::ascii_json;
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
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::sync::Arc;

/// Seconds between HEARTBEAT events on operator streams, as in Mesos.
pub const HEARTBEAT_SECONDS: f64 = 15.0;

fn typed(kind: &str, body: Value) -> Response {
    typed_response(typed_bytes(kind, &body))
}

/// `{"<kind in lowercase>": body, "type": kind}` in ASCII JSON.
fn typed_bytes(kind: &str, body: &impl Serialize) -> Vec<u8> {
    struct Typed<'a, B>(&'a str, &'a str, &'a B);
    impl<B: Serialize> Serialize for Typed<'_, B> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let mut map = serializer.serialize_map(Some(2))?;
            map.serialize_entry(self.1, self.2)?;
            map.serialize_entry("type", self.0)?;
            map.end()
        }
    }
    ascii_json(&Typed(kind, &kind.to_ascii_lowercase(), body))
}

fn typed_response(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Renders a typed answer from a current snapshot off the loop.
async fn from_snapshot(
    state: &AppState,
    render_body: impl FnOnce(&Snapshot) -> Vec<u8> + Send + 'static,
) -> Result<Response, ApiError> {
    let body = render(state, move |s| Ok(render_body(s))).await?;
    Ok(typed_response(body))
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
        // Written straight to the output: GET_STATE and GET_TASKS hold every task.
        "GET_STATE" => {
            from_snapshot(state, |s| typed_bytes("GET_STATE", &s.view.get_state())).await
        }
        "GET_AGENTS" => {
            from_snapshot(state, |s| typed_bytes("GET_AGENTS", &s.view.get_agents())).await
        }
        "GET_FRAMEWORKS" => {
            from_snapshot(state, |s| {
                typed_bytes("GET_FRAMEWORKS", &s.view.get_frameworks())
            })
            .await
        }
        "GET_EXECUTORS" => {
            from_snapshot(state, |s| {
                typed_bytes("GET_EXECUTORS", &s.view.get_executors())
            })
            .await
        }
        "GET_TASKS" => {
            from_snapshot(state, |s| typed_bytes("GET_TASKS", &s.view.get_tasks())).await
        }
        "GET_MASTER" => {
            from_snapshot(state, |s| typed_bytes("GET_MASTER", &s.view.get_master())).await
        }
        "GET_ROLES" => {
            let roles = |s: &Snapshot| json!({"roles": s.view.roles_json(true)});
            from_snapshot(state, move |s| typed_bytes("GET_ROLES", &roles(s))).await
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
        let subscribed = Subscribed(&snapshot);
        recordio::encode(&typed_bytes("SUBSCRIBED", &subscribed))
    })
    .await
    .map_err(|e| ApiError::new(ErrorKind::Internal, format!("render: {e}")))?;
    Ok(stream_body(first, stream, recordio_accepted))
}

/// SUBSCRIBED's body: the state and the heartbeat interval.
struct Subscribed<'a>(&'a Snapshot);

impl Serialize for Subscribed<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("get_state", &self.0.view.get_state())?;
        map.serialize_entry("heartbeat_interval_seconds", &HEARTBEAT_SECONDS)?;
        map.end()
    }
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
