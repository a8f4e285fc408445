//! The snapshot the event loop publishes for the read-only endpoints, and the helper
//! that renders an answer from it off the loop (DESIGN invariant 3): the loop hands over
//! a [`StateView`] sharing its maps, and each reader renders on a blocking thread, so a
//! large `/master/state` costs the reader's time, never the loop's. The rendered
//! `/master/state` is kept with its snapshot: readers arriving together render it once,
//! and it is sent as the parts it was rendered in (with its length), never joined.

use crate::core::StateView;
use crate::http::{error_response, json_response, AppState};
use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};
use mantle_api::routing::jsonp;
use mantle_api::ApiError;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

pub struct Snapshot {
    pub view: StateView,
    state: OnceLock<Vec<Bytes>>,
    /// Shared with the loop (not copied into each snapshot): a reader sees every
    /// allocation run so far, however old its snapshot.
    pub allocation_runs: Arc<Mutex<AllocationRuns>>,
}

/// Mesos's `allocator/mesos/allocation_run_ms` timer: the last run, how many, and
/// percentiles over the latest [`AllocationRuns::WINDOW`] runs.
#[derive(Clone, Default)]
pub struct AllocationRuns {
    count: u64,
    recent: VecDeque<f64>,
}

impl AllocationRuns {
    const WINDOW: usize = 1000;

    pub fn record(&mut self, took: Duration) {
        self.count += 1;
        if self.recent.len() == Self::WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(took.as_secs_f64() * 1e3);
    }

    /// The timer's metrics, named as Mesos names them; none before the first run.
    pub fn metrics(&self, into: &mut BTreeMap<String, f64>) {
        const NAME: &str = "allocator/mesos/allocation_run_ms";
        into.insert("allocator/mesos/allocation_runs".into(), self.count as f64);
        let Some(&last) = self.recent.back() else {
            return;
        };
        let mut sorted: Vec<f64> = self.recent.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        into.insert(NAME.into(), last);
        into.insert(format!("{NAME}/count"), self.count as f64);
        into.insert(format!("{NAME}/min"), sorted[0]);
        into.insert(format!("{NAME}/max"), sorted[sorted.len() - 1]);
        for (suffix, p) in [("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99)] {
            let rank = (p * (sorted.len() - 1) as f64).round() as usize;
            into.insert(format!("{NAME}/{suffix}"), sorted[rank]);
        }
    }
}

impl Snapshot {
    pub fn new(view: StateView, allocation_runs: Arc<Mutex<AllocationRuns>>) -> Snapshot {
        Snapshot {
            view,
            state: OnceLock::new(),
            allocation_runs,
        }
    }

    /// `/metrics/snapshot`: the view's metrics and the allocation timer's.
    pub fn metrics(&self, now: f64) -> BTreeMap<String, f64> {
        let mut metrics = self.view.metrics(now);
        // Copied out first: the loop waits on this lock to record a run.
        let runs = self.allocation_runs.lock().map(|r| r.clone());
        if let Ok(runs) = runs {
            runs.metrics(&mut metrics);
        }
        metrics
    }

    /// `/master/state` in its parts, rendered once per snapshot.
    pub fn state(&self) -> Vec<Bytes> {
        self.state
            .get_or_init(|| {
                let parts = self.view.state_parts().into_iter();
                parts.filter(|p| !p.is_empty()).map(Bytes::from).collect()
            })
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

/// A JSON answer sent as the parts it was rendered in (with `?jsonp=`), rendered from a
/// current snapshot off the loop.
pub async fn serve_parts(
    state: &AppState,
    query: HashMap<String, String>,
    render_parts: impl FnOnce(&Snapshot) -> Vec<Bytes> + Send + 'static,
) -> Response {
    let mut parts = match render(state, move |snapshot| Ok(render_parts(snapshot))).await {
        Ok(parts) => parts,
        Err(err) => return error_response(&err),
    };
    let mut content_type = "application/json";
    if let Some(callback) = query.get("jsonp") {
        // Wrapping nothing checks the name and gives the text before and after the JSON.
        let Some(mut open) = jsonp(callback, b"") else {
            // The same refusal as every other endpoint's.
            return json_response(Bytes::new(), &query);
        };
        let close = open.split_off(open.len() - 2);
        parts.insert(0, Bytes::from(open));
        parts.push(Bytes::from(close));
        content_type = "text/javascript";
    }
    let left = parts.iter().map(|p| p.len() as u64).sum();
    let body = PartsBody {
        parts: parts.into(),
        left,
    };
    ([(header::CONTENT_TYPE, content_type)], Body::new(body)).into_response()
}

/// A body of parts sent one after another, with its length announced up front.
struct PartsBody {
    parts: VecDeque<Bytes>,
    left: u64,
}

impl http_body::Body for PartsBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        let part = this.parts.pop_front();
        if let Some(part) = &part {
            this.left -= part.len() as u64;
        }
        Poll::Ready(part.map(|p| Ok(Frame::data(p))))
    }

    fn is_end_stream(&self) -> bool {
        self.parts.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}
