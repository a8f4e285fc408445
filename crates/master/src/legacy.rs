//! The legacy read-only JSON endpoints (reference §4): `/master/state`,
//! `/master/state-summary`, `/master/frameworks`, `/master/slaves`, `/master/tasks`,
//! `/master/roles`, `/master/flags`, `/metrics/snapshot`, and `/metrics` in the
//! Prometheus text format. Each answer is rendered off the event loop from a snapshot
//! (`snapshot.rs`); `?jsonp=` wraps any of them.

use crate::core::TasksQuery;
use crate::event_loop::unix_now;
use crate::http::{error_response, json_response, AppState};
use crate::leadership::Role;
use crate::prometheus;
use crate::snapshot::{render, serve, serve_state, to_bytes};
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use mantle_api::ApiError;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};

type Params = Query<HashMap<String, String>>;

pub async fn state(State(state): State<AppState>, Query(query): Params) -> Response {
    serve_state(&state, query).await
}

pub async fn state_summary(State(state): State<AppState>, Query(query): Params) -> Response {
    serve(&state, query, |s, _| Ok(to_bytes(&s.view.state_summary()))).await
}

pub async fn frameworks(State(state): State<AppState>, Query(query): Params) -> Response {
    serve(&state, query, |s, q| {
        let id = q.get("framework_id").map(String::as_str);
        Ok(Bytes::from(s.view.frameworks_bytes(id)))
    })
    .await
}

pub async fn slaves(State(state): State<AppState>, Query(query): Params) -> Response {
    serve(&state, query, |s, q| {
        let id = q.get("slave_id").map(String::as_str);
        Ok(to_bytes(&s.view.slaves_doc(id)))
    })
    .await
}

pub async fn tasks(State(state): State<AppState>, Query(query): Params) -> Response {
    let tasks_query = match TasksQuery::parse(&query) {
        Ok(parsed) => parsed,
        Err(message) => return error_response(&ApiError::bad_request(message)),
    };
    serve(&state, query, move |s, _| {
        Ok(to_bytes(&s.view.tasks_json(&tasks_query)))
    })
    .await
}

pub async fn roles(State(state): State<AppState>, Query(query): Params) -> Response {
    serve(&state, query, |s, _| {
        Ok(to_bytes(&json!({"roles": s.view.roles_json(false)})))
    })
    .await
}

/// `/master/flags`: served by every master, leading or not (reference §4).
pub async fn flags(State(state): State<AppState>, Query(query): Params) -> Response {
    json_response(to_bytes(&json!({"flags": *state.flags})), &query)
}

/// The metrics of this master: the core's when it leads; a standby runs no core and
/// reports that it does not lead, and its uptime.
pub async fn metrics(state: &AppState) -> Result<BTreeMap<String, f64>, ApiError> {
    if let Role::Following(_) = state.handle.role() {
        return Ok(BTreeMap::from([
            ("master/elected".to_string(), 0.0),
            ("master/uptime_secs".to_string(), unix_now() - state.started),
        ]));
    }
    render(state, |s| Ok(s.metrics(unix_now()))).await
}

pub async fn metrics_snapshot(State(state): State<AppState>, Query(query): Params) -> Response {
    match metrics(&state).await {
        Ok(metrics) => json_response(to_bytes(&metrics), &query),
        Err(err) => error_response(&err),
    }
}

pub async fn prometheus_metrics(State(state): State<AppState>) -> Response {
    match metrics(&state).await {
        Ok(metrics) => (
            [(header::CONTENT_TYPE, prometheus::CONTENT_TYPE)],
            Bytes::from(prometheus::render(&metrics)),
        )
            .into_response(),
        Err(err) => error_response(&err),
    }
}
