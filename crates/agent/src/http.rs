//! The agent's HTTP routes: `/api/v1/executor`, `/api/v1` (the operator API), `/state`,
//! `/monitor/statistics`, `/files/*`, `/health` and `/version`.
//! Requests are rewritten before routing so that every path also answers under the
//! `/slave(1)` prefix, with a `.json` suffix and with a trailing slash (reference §0.4);
//! GET data endpoints support `?jsonp=CB` and allow any origin.

use crate::event_loop::Command;
use crate::view::View;
use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct AppState {
    pub commands: mpsc::UnboundedSender<Command>,
    /// The latest snapshot the event loop published.
    pub snapshot: watch::Receiver<Arc<View>>,
    /// Names executor event streams.
    pub next_stream: Arc<AtomicU64>,
    /// Reads container usage.
    pub containers: Arc<crate::containers::Containerizer>,
}

/// The router behind the path rewriting.
pub(crate) type Rewritten = tower::util::MapRequest<Router, fn(Request) -> Request>;

/// The agent's routes, wrapped in the path rewriting.
pub(crate) fn service(state: AppState) -> axum::routing::IntoMakeService<Rewritten> {
    let router = Router::new()
        .route("/api/v1/executor", any(crate::executor_api::handle))
        .route("/api/v1", any(crate::operator_api::handle))
        .route("/api/v1/operator", any(crate::operator_api::handle))
        .route("/flags", get(flags))
        .route("/metrics/snapshot", get(metrics))
        .route(
            "/monitor/statistics",
            get(crate::monitor::statistics_endpoint),
        )
        .route("/state", get(state_endpoint))
        .route("/health", get(health))
        .route("/version", get(version))
        .route("/files/browse", get(crate::files::browse_endpoint))
        .route("/files/read", get(crate::files::read_endpoint))
        .route("/files/download", get(crate::files::download_endpoint))
        .route("/files/debug", get(crate::files::debug_endpoint))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(allow_any_origin))
        .with_state(state);
    let rewrite: fn(Request) -> Request = rewrite;
    let service = tower::ServiceExt::map_request(router, rewrite);
    axum::ServiceExt::<Request>::into_make_service(service)
}

/// Lets a page served by the master read the agent's GET endpoints from the browser
/// (Mesos's web UI uses JSONP instead; both work).
async fn allow_any_origin(request: Request, next: axum::middleware::Next) -> Response {
    let get = request.method() == axum::http::Method::GET;
    let mut response = next.run(request).await;
    if get {
        response.headers_mut().insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
    }
    response
}

/// Maps every alias of a path to its canonical form, keeping the query.
fn rewrite(mut request: Request) -> Request {
    let original = request.uri().path();
    let decoded;
    let encoded_prefix = original
        .get(..13)
        .is_some_and(|p| p.eq_ignore_ascii_case("/slave%281%29"));
    let path = if encoded_prefix {
        decoded = format!("/slave(1){}", original.get(13..).unwrap_or_default());
        decoded.as_str()
    } else {
        original
    };
    let canonical = mantle_api::routing::canonical_path(path, "slave(1)");
    if canonical == original {
        return request;
    }
    let path_and_query = match request.uri().query() {
        Some(query) => format!("{canonical}?{query}"),
        None => canonical,
    };
    let mut parts = request.uri().clone().into_parts();
    if let Ok(pq) = path_and_query.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(uri) = Uri::from_parts(parts) {
            *request.uri_mut() = uri;
        }
    }
    request
}

/// Answers JSON, or `CB(<json>)` as JavaScript for `?jsonp=CB`.
pub(crate) fn json_response(value: &Value, query: &HashMap<String, String>) -> Response {
    let body = mantle_api::json::to_ascii_json(value);
    match query.get("jsonp") {
        None => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Some(callback) => match mantle_api::routing::jsonp(callback, &body) {
            Some(wrapped) => ([(header::CONTENT_TYPE, "text/javascript")], wrapped).into_response(),
            None => (StatusCode::BAD_REQUEST, "invalid 'jsonp' callback name").into_response(),
        },
    }
}

/// A snapshot at least as new as every change made before the call, or none when the
/// agent is shutting down.
pub(crate) async fn current_view(app: &AppState) -> Option<Arc<View>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    app.commands.send(Command::Refresh(tx)).ok()?;
    rx.await.ok()?;
    let view = app.snapshot.borrow().clone();
    Some(view)
}

/// The answer while the event loop is gone.
pub(crate) fn shutting_down() -> Response {
    error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        "the agent is shutting down",
    )
}

async fn state_endpoint(
    State(app): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    match current_view(&app).await {
        Some(view) => json_response(&crate::state::state_json(&view), &query),
        None => shutting_down(),
    }
}

/// `GET /flags`: `{"flags": {name: "value"}}`.
async fn flags(
    State(app): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    match current_view(&app).await {
        Some(view) => json_response(&serde_json::json!({"flags": view.config.flags}), &query),
        None => shutting_down(),
    }
}

/// `GET /metrics/snapshot`: flat `{name: number}`.
async fn metrics(
    State(app): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some(view) = current_view(&app).await else {
        return shutting_down();
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default();
    let metrics = tokio::task::spawn_blocking(move || crate::metrics::snapshot(&view, now)).await;
    match metrics {
        Ok(metrics) => json_response(&serde_json::json!(metrics), &query),
        Err(err) => error_response(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()),
    }
}

async fn version(Query(query): Query<HashMap<String, String>>) -> Response {
    json_response(&crate::state::version_json(), &query)
}

async fn health() -> Response {
    StatusCode::OK.into_response()
}

async fn not_found(request: Request) -> Response {
    let message = format!("no endpoint at '{}'", request.uri().path());
    (StatusCode::NOT_FOUND, message).into_response()
}

/// A plain-text error answer.
pub(crate) fn error_response(status: StatusCode, message: impl Into<String>) -> Response {
    let mut response = (status, message.into()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The 405 of the v1 APIs for anything but a POST.
pub(crate) fn post_only(method: &axum::http::Method) -> Option<Response> {
    if method == axum::http::Method::POST {
        return None;
    }
    let mut response = error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("expecting a 'POST' request, received '{method}'"),
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    Some(response)
}

/// An empty 202.
pub(crate) fn accepted() -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::ACCEPTED;
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(path: &str, expected: &str) {
        let request = Request::builder().uri(path).body(Body::empty()).unwrap();
        assert_eq!(rewrite(request).uri().to_string(), expected, "{path}");
    }

    #[test]
    fn aliases() {
        check("/state", "/state");
        check("/slave(1)/state", "/state");
        check("/slave(1)/state.json?jsonp=cb", "/state?jsonp=cb");
        check("/slave%281%29/state", "/state");
        check("/state/", "/state");
        check("/state.json", "/state");
        check("/slave(1)/api/v1/executor", "/api/v1/executor");
        check("/api/v1/executor/", "/api/v1/executor");
        check("/slave(1)/health", "/health");
        check("/other", "/other");
    }
}
