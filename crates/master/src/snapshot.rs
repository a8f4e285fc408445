//! The snapshot the event loop publishes for the read-only endpoints, and the helper
//! that renders an answer from it off the loop (DESIGN invariant 3): the loop hands over
//! a [`StateView`] sharing its maps, and each reader renders on a blocking thread, so a
//! large `/master/state` costs the reader's time, never the loop's. The rendered
//! `/master/state` is kept with its snapshot: readers arriving together render it once.

use crate::core::StateView;
use crate::http::{error_response, json_response, AppState};
use axum::body::Bytes;
use axum::response::Response;
use mantle_api::ApiError;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

pub struct Snapshot {
    pub view: StateView,
    state: OnceLock<Bytes>,
}

impl Snapshot {
    pub fn new(view: StateView) -> Snapshot {
        Snapshot {
            view,
            state: OnceLock::new(),
        }
    }

    /// `/master/state`, rendered once per snapshot.
    pub fn state(&self) -> Bytes {
        self.state
            .get_or_init(|| to_bytes(&self.view.state_json()))
            .clone()
    }
}

pub fn to_bytes(value: &impl serde::Serialize) -> Bytes {
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}

/// Runs `render` on a current snapshot on a blocking thread.
pub async fn render<T: Send + 'static>(
    state: &AppState,
    render: impl FnOnce(&Snapshot) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let snapshot: Arc<Snapshot> = state.handle.current_snapshot().await?;
    tokio::task::spawn_blocking(move || render(&snapshot))
        .await
        .map_err(|e| ApiError::new(mantle_api::ErrorKind::Internal, format!("render: {e}")))?
}

/// A JSON answer (with `?jsonp=`) rendered from a current snapshot off the loop.
pub async fn serve(
    state: &AppState,
    query: HashMap<String, String>,
    render_body: impl FnOnce(&Snapshot, &HashMap<String, String>) -> Result<Bytes, ApiError>
        + Send
        + 'static,
) -> Response {
    let params = query.clone();
    match render(state, move |snapshot| render_body(snapshot, &params)).await {
        Ok(body) => json_response(body, &query),
        Err(err) => error_response(&err),
    }
}
