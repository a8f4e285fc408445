//! The master's HTTP server: the v1 scheduler API, Mantle's agent protocol, and the routes
//! of the operator API and legacy JSON endpoints (`operator.rs`, `operator_api.rs`,
//! `legacy.rs`), behind the libprocess path aliases (reference §0.4).

use crate::core::CallReply;
use crate::event_loop::{Command, EventStream};
use crate::leadership::{Role, RoleHandle};
use crate::{legacy, operator};
use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, delete, get, post};
use axum::Router;
use mantle_api::internal::{
    AgentCall, Register, AGENT_API_PATH, AGENT_STREAM_HEADER, AGENT_UPGRADE,
};
use mantle_api::json::decode;
use mantle_api::routing::{canonical_path, jsonp};
use mantle_api::scheduler::{Call, CallBody};
use mantle_api::{ApiError, ErrorKind, MESOS_VERSION};
use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::Arc;
use tower::ServiceExt;

/// Request bodies larger than this are refused with 413.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

#[derive(Clone)]
pub struct AppState {
    /// The leader's event loop, while this master leads.
    pub handle: RoleHandle,
    /// `host:port` of this master, for `/master/redirect`.
    pub advertised: String,
    /// When this master started (seconds since the epoch), for a standby's metrics.
    pub started: f64,
    /// Every flag with its value, for `/master/flags` and GET_FLAGS.
    pub flags: Arc<BTreeMap<String, String>>,
}

/// The router wrapped in the path rewriting of [`canonical_path`].
pub type App = tower::util::MapRequest<Router, fn(Request) -> Request>;

fn rewrite_path(mut request: Request) -> Request {
    let path = canonical_path(request.uri().path(), "master");
    if path != request.uri().path() {
        let query = request
            .uri()
            .query()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        if let Ok(uri) = format!("{path}{query}").parse() {
            *request.uri_mut() = uri;
        }
    }
    request
}

pub fn router(state: AppState) -> App {
    // Everything but these goes to the leader: a standby redirects (reference §5.6).
    let local = Router::new()
        .merge(crate::webui::routes())
        .route("/metrics/snapshot", get(legacy::metrics_snapshot))
        .route("/metrics", get(legacy::prometheus_metrics))
        .route("/flags", get(legacy::flags))
        .route("/version", get(version))
        .route("/health", get(health))
        .route("/redirect", get(redirect));
    let leader_only = Router::new()
        .route("/api/v1/scheduler", any(scheduler_api))
        .route(AGENT_API_PATH, any(agent_api))
        .route("/state", get(legacy::state))
        .route("/state-summary", get(legacy::state_summary))
        .route("/frameworks", get(legacy::frameworks))
        .route("/slaves", get(legacy::slaves))
        .route("/tasks", get(legacy::tasks))
        .route("/api/v1", any(operator::operator_api))
        // pymesos's operator driver posts here; Mesos serves it through the `/api/v1`
        // prefix fallback of libprocess (reference §0.4).
        .route("/api/v1/operator", any(operator::operator_api))
        .route("/teardown", post(operator::teardown))
        .route("/roles", get(legacy::roles))
        .route(
            "/weights",
            get(operator::weights)
                .put(operator::weights)
                .post(operator::weights),
        )
        .route("/quota", get(operator::quota).post(operator::quota))
        .route("/quota/{role}", delete(operator::remove_quota))
        .route("/reserve", post(operator::reserve))
        .route("/unreserve", post(operator::unreserve))
        .route(
            "/maintenance/schedule",
            get(operator::maintenance_schedule).post(operator::maintenance_schedule),
        )
        .route("/maintenance/status", get(operator::maintenance_status))
        .route("/machine/down", post(operator::machine_down))
        .route("/machine/up", post(operator::machine_up))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            to_the_leader,
        ));
    let router = local.merge(leader_only).with_state(state);
    router.map_request(rewrite_path as fn(Request) -> Request)
}

/// Lets requests through on the leader; a standby answers 307 to the leader's same path
/// (`Location: //host:port/path`, what Mesos sends and pymesos and mesoshttp follow), or
/// 503 while no leader is known.
async fn to_the_leader(
    State(state): State<AppState>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    match state.handle.role() {
        Role::Leading(_) => next.run(request).await,
        Role::Following(Some(leader)) => {
            let path = request
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_string();
            let location = format!("//{leader}{}", master_path(&path));
            (
                StatusCode::TEMPORARY_REDIRECT,
                [(header::LOCATION, location)],
            )
                .into_response()
        }
        Role::Following(None) => {
            error_response(&ApiError::unavailable("no leading master is known"))
        }
    }
}

/// The path as the client would name it on another master: canonical paths are served
/// under `/master` (the libprocess alias), except the v1 APIs and the agent protocol.
fn master_path(path: &str) -> String {
    let top_level = path.starts_with("/api/") || path.starts_with("/mantle/");
    if top_level || path.starts_with("/master/") {
        path.to_string()
    } else {
        format!("/master{path}")
    }
}

pub fn error_response(err: &ApiError) -> Response {
    (
        err.status(),
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        err.message.clone(),
    )
        .into_response()
}

/// A JSON answer, wrapped for `?jsonp=` when asked.
pub fn json_response(body: Bytes, query: &HashMap<String, String>) -> Response {
    if let Some(callback) = query.get("jsonp") {
        return match jsonp(callback, &body) {
            Some(wrapped) => ([(header::CONTENT_TYPE, "text/javascript")], wrapped).into_response(),
            None => error_response(&ApiError::bad_request(
                "query parameter 'jsonp' is not a valid callback name",
            )),
        };
    }
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Reads a request body up to [`MAX_BODY_BYTES`].
pub async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    mantle_api::body::read_limited(body, MAX_BODY_BYTES).await
}

/// Method and Content-Type rules of the v1 endpoints (reference §0.2).
pub fn check_v1_request(method: &Method, headers: &HeaderMap) -> Result<(), ApiError> {
    if method != Method::POST {
        return Err(ApiError::new(
            ErrorKind::MethodNotAllowed,
            format!("expecting 'POST', received '{method}'"),
        ));
    }
    let Some(content_type) = headers.get(header::CONTENT_TYPE) else {
        return Err(ApiError::bad_request(
            "expecting 'Content-Type' to be present",
        ));
    };
    let content_type = content_type.to_str().unwrap_or("");
    let media = content_type.split(';').next().unwrap_or("").trim();
    match media {
        "application/json" => Ok(()),
        "application/x-protobuf" => Err(ApiError::new(
            ErrorKind::UnsupportedMediaType,
            "Content-Type 'application/x-protobuf' is not supported yet; use 'application/json'",
        )),
        other => Err(ApiError::new(
            ErrorKind::UnsupportedMediaType,
            format!("expecting 'Content-Type' of 'application/json' or 'application/x-protobuf', got '{other}'"),
        )),
    }
}

/// True when the client accepts JSON answers (or says nothing).
pub fn accepts_json(headers: &HeaderMap) -> bool {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    accept.split(',').any(|part| {
        let media = part.split(';').next().unwrap_or("").trim();
        matches!(media, "application/json" | "application/*" | "*/*" | "")
    })
}

/// The records of an event stream as they come, for a streaming body.
pub fn records(stream: EventStream) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> {
    futures_util::stream::unfold(stream, |mut stream| async move {
        let chunk = stream.records.next_chunk().await?;
        Some((Ok::<_, Infallible>(chunk), stream))
    })
}

/// A streaming 200 answer carrying RecordIO records as they come.
pub fn stream_response(stream: EventStream, id_header: &'static str) -> Response {
    let id = stream.id.clone();
    let mut response = Response::new(Body::from_stream(records(stream)));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(value) = HeaderValue::from_str(&id) {
        headers.insert(id_header, value);
    }
    response
}

async fn scheduler_api(State(state): State<AppState>, request: Request) -> Response {
    match scheduler_api_inner(state, request).await {
        Ok(response) => response,
        Err(err) => error_response(&err),
    }
}

async fn scheduler_api_inner(state: AppState, request: Request) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    check_v1_request(&parts.method, &parts.headers)?;
    let body = read_body(body).await?;
    let call: Call = decode(&body)?;
    let framework_id = call.framework_id.clone();
    let body = call.into_body()?;
    let stream_id = parts
        .headers
        .get("Mesos-Stream-Id")
        .map(|v| v.to_str().unwrap_or("").to_string());
    if let CallBody::Subscribe(subscribe) = body {
        if !accepts_json(&parts.headers) {
            return Err(ApiError::new(
                ErrorKind::NotAcceptable,
                "expecting 'Accept' to allow 'application/json'; protobuf answers are not supported yet",
            ));
        }
        if stream_id.is_some() {
            return Err(ApiError::bad_request(
                "subscribe calls should not include the 'Mesos-Stream-Id' header",
            ));
        }
        if framework_id != subscribe.framework_info.id {
            return Err(ApiError::bad_request(
                "'framework_id' differs from 'subscribe.framework_info.id'",
            ));
        }
        let stream = state
            .handle
            .request(|reply| Command::Subscribe {
                subscribe: Box::new(subscribe),
                reply,
            })
            .await?;
        return Ok(stream_response(stream, "Mesos-Stream-Id"));
    }
    let Some(framework_id) = framework_id else {
        return Err(ApiError::bad_request(
            "expecting 'framework_id' to be present",
        ));
    };
    let reply = state
        .handle
        .request(|reply| Command::SchedulerCall {
            framework_id,
            stream_id,
            body: Box::new(body),
            reply,
        })
        .await?;
    Ok(match reply {
        CallReply::Accepted => StatusCode::ACCEPTED.into_response(),
        CallReply::Ok => StatusCode::OK.into_response(),
    })
}

/// The `type` of an agent call; the rest of the body is skipped.
#[derive(serde::Deserialize)]
struct CallType<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
}

/// Whether an agent call is a REGISTER. Agents write the `type` first, which the prefix
/// test sees without reading the rest of the body (about 15 KB for an agent that runs
/// ten tasks); any other layout is read in full.
fn is_register(body: &[u8]) -> bool {
    const PREFIX: &[u8] = br#"{"type":"REGISTER""#;
    if body.starts_with(PREFIX) {
        return true;
    }
    serde_json::from_slice::<CallType>(body).is_ok_and(|call| call.kind == "REGISTER")
}

/// The calls of one agent request or socket record: one call, or the calls the agent
/// had waiting together, as an array.
pub fn decode_agent_calls(body: &[u8]) -> Result<Vec<AgentCall>, ApiError> {
    if body.trim_ascii_start().starts_with(b"[") {
        decode::<Vec<AgentCall>>(body)
    } else {
        Ok(vec![decode::<AgentCall>(body)?])
    }
}

/// Whether an HTTP/1.1 request asks for its connection to become the agent's socket.
fn asks_for_socket(parts: &axum::http::request::Parts) -> bool {
    parts.version == axum::http::Version::HTTP_11
        && parts.headers.get(header::UPGRADE).is_some_and(|value| {
            value
                .as_bytes()
                .eq_ignore_ascii_case(AGENT_UPGRADE.as_bytes())
        })
}

async fn agent_api(State(state): State<AppState>, request: Request) -> Response {
    let result = async {
        let (mut parts, body) = request.into_parts();
        check_v1_request(&parts.method, &parts.headers)?;
        let body = read_body(body).await?;
        // A REGISTER body is decoded straight into its struct: decoding the tagged enum
        // would first copy the whole body into an intermediate tree, a large part of the
        // cost of thousands of agents' reports after a master failover.
        if is_register(&body) {
            let register = Box::new(decode::<Register>(&body)?);
            let upgrade = match asks_for_socket(&parts) {
                true => parts.extensions.remove::<hyper::upgrade::OnUpgrade>(),
                false => None,
            };
            let stream = state
                .handle
                .request(|reply| Command::RegisterAgent { register, reply })
                .await?;
            let Some(upgrade) = upgrade else {
                return Ok(stream_response(stream, AGENT_STREAM_HEADER));
            };
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            let headers = response.headers_mut();
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            headers.insert(header::UPGRADE, HeaderValue::from_static(AGENT_UPGRADE));
            if let Ok(value) = HeaderValue::from_str(&stream.id) {
                headers.insert(AGENT_STREAM_HEADER, value);
            }
            tokio::spawn(crate::agent_socket::serve(
                upgrade,
                stream,
                state.handle.clone(),
            ));
            return Ok(response);
        }
        let calls = decode_agent_calls(&body)?;
        let Some(stream_id) = parts
            .headers
            .get(AGENT_STREAM_HEADER)
            .and_then(|v| v.to_str().ok())
        else {
            return Err(ApiError::bad_request(format!(
                "expecting '{AGENT_STREAM_HEADER}' to be present"
            )));
        };
        let stream_id = stream_id.to_string();
        state
            .handle
            .request(|reply| Command::AgentCalls {
                stream_id,
                calls,
                reply,
            })
            .await?;
        Ok(StatusCode::ACCEPTED.into_response())
    }
    .await;
    result.unwrap_or_else(|err| error_response(&err))
}

pub fn version_json() -> Bytes {
    let body = serde_json::json!({
        "version": MESOS_VERSION,
        "build_date": "",
        "build_time": 0,
        "build_user": "",
        "mantle_version": env!("CARGO_PKG_VERSION"),
    });
    Bytes::from(serde_json::to_vec(&body).unwrap_or_default())
}

async fn version(Query(query): Query<HashMap<String, String>>) -> Response {
    json_response(version_json(), &query)
}

async fn health() -> StatusCode {
    StatusCode::OK
}

/// Always a 307 to the leader, even on the leader itself (reference §4); 503 while no
/// leader is known.
async fn redirect(State(state): State<AppState>) -> Response {
    let leader = match state.handle.role() {
        Role::Leading(_) => state.advertised.clone(),
        Role::Following(Some(leader)) => leader,
        Role::Following(None) => {
            return error_response(&ApiError::unavailable("no leading master is known"))
        }
    };
    let location = format!("//{leader}");
    (
        StatusCode::TEMPORARY_REDIRECT,
        [(header::LOCATION, location)],
    )
        .into_response()
}
