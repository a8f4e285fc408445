//! The snapshot the event loop publishes for the read-only endpoints, and the helper
//! that renders an answer from it off the loop (DESIGN invariant 3): the loop hands over
//! a [`StateView`] sharing its maps, and each reader renders on a blocking thread, so a
//! large `/master/state` costs the reader's time, never the loop's. The rendered
//! `/master/state` is kept with its snapshot: readers arriving together render it once,
//! and it is sent as the parts it is rendered in, each as soon as it is written (so
//! the transfer overlaps the render), never joined.

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
use std::time::{Duration, Instant};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

pub struct Snapshot {
    pub view: StateView,
    state: OnceLock<Arc<Progressive>>,
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

    /// `/master/state`, rendered once per snapshot on a thread of its own: the parts
    /// written so far, and the others as they are written.
    pub fn state(self: &Arc<Self>) -> (Vec<Bytes>, Option<UnboundedReceiver<Bytes>>) {
        let progressive = self.state.get_or_init(|| {
            let progressive = Arc::new(Progressive::default());
            let (snapshot, out) = (self.clone(), Finished(progressive.clone()));
            let render = move || {
                lower_priority();
                snapshot.render_state(&out.0)
            };
            let thread = std::thread::Builder::new().name("state-render".into());
            if let Err(err) = thread.spawn(render) {
                // Without a thread of its own, this reader renders it.
                tracing::warn!("cannot start a thread to render /master/state: {err}");
                self.render_state(&progressive);
            }
            progressive
        });
        progressive.reader()
    }
}

/// Gives the calling thread, and the threads it starts, a lower scheduling priority
/// (nice 10), so that a render of many megabytes takes the cores the event loop and the
/// connections leave: with 10 clients polling `/master/state` at 20,000 agents the
/// allocation runs took twice as long without it. Linux keeps the nice value per
/// thread, and a new thread inherits its creator's.
fn lower_priority() {
    // SAFETY: setpriority only reads its arguments; `who` 0 is the calling thread.
    let failed = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 10) } != 0;
    if failed {
        let err = std::io::Error::last_os_error();
        tracing::debug!("cannot lower the priority of the /master/state render: {err}");
    }
}

impl Snapshot {
    fn render_state(&self, out: &Progressive) {
        let buffer = |room| BUFFERS.take(room);
        self.view
            .render_state(&buffer, &|part| out.publish(Bytes::from(part)));
    }
}

/// Finishes its render when dropped, also by a panic: its readers then see the end of
/// their body rather than wait for ever.
struct Finished(Arc<Progressive>);

impl Drop for Finished {
    fn drop(&mut self) {
        self.0.finish();
    }
}

/// A render's parts as they are written, kept for the readers of its snapshot: a
/// reader gets those written before it came and is sent the others.
#[derive(Default)]
pub struct Progressive(Mutex<Parts>);

#[derive(Default)]
struct Parts {
    written: Vec<Bytes>,
    readers: Vec<UnboundedSender<Bytes>>,
    done: bool,
}

impl Drop for Parts {
    /// The render's buffers go back to [`BUFFERS`] when no reader still sends them,
    /// to be freed if no render takes them soon (off a runtime, where no timer can
    /// free them, they are freed now).
    fn drop(&mut self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut kept = false;
        for part in self.written.drain(..) {
            if let Ok(buffer) = part.try_into_mut() {
                kept |= BUFFERS.give(buffer.into());
            }
        }
        if kept {
            runtime.spawn(async {
                tokio::time::sleep(Buffers::KEEP).await;
                BUFFERS.trim();
            });
        }
    }
}

/// The large output buffers of past `/master/state` renders, for the next: a render
/// of many megabytes into fresh memory spent a sixth of its time in the kernel, which
/// zeroes each new page. A buffer is freed when no render took it for
/// [`Buffers::KEEP`].
static BUFFERS: Buffers = Buffers(Mutex::new(Vec::new()));

struct Buffers(Mutex<Vec<(Vec<u8>, Instant)>>);

impl Buffers {
    const KEEP: Duration = Duration::from_secs(10);
    /// Smaller buffers are not worth keeping.
    const LEAST: usize = 1 << 20;

    fn kept(&self) -> std::sync::MutexGuard<'_, Vec<(Vec<u8>, Instant)>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// An empty buffer with room for `room` bytes: the smallest kept one that has it,
    /// else the largest kept one (which grows), else a new one.
    fn take(&self, room: usize) -> Vec<u8> {
        let mut kept = self.kept();
        let fits = (kept.iter().enumerate())
            .filter(|(_, (b, _))| b.capacity() >= room)
            .min_by_key(|(_, (b, _))| b.capacity());
        let largest = || {
            (kept.iter().enumerate())
                .max_by_key(|(_, (b, _))| b.capacity())
                .map(|(i, _)| i)
        };
        let chosen = fits.map(|(i, _)| i).or_else(largest);
        let Some(at) = chosen.filter(|_| room >= Self::LEAST) else {
            return Vec::with_capacity(room);
        };
        let (mut buffer, _) = kept.swap_remove(at);
        buffer.clear();
        buffer.reserve(room);
        buffer
    }

    /// Keeps `buffer` if it is large; tells whether it did.
    fn give(&self, buffer: Vec<u8>) -> bool {
        if buffer.capacity() < Self::LEAST {
            return false;
        }
        self.kept().push((buffer, Instant::now()));
        true
    }

    /// Frees the buffers kept for [`Buffers::KEEP`] or longer.
    fn trim(&self) {
        let freed: Vec<_> = {
            let mut kept = self.kept();
            let (old, young) = kept
                .drain(..)
                .partition(|(_, at)| at.elapsed() >= Self::KEEP);
            *kept = young;
            old
        };
        drop(freed);
    }
}

impl Progressive {
    fn parts(&self) -> std::sync::MutexGuard<'_, Parts> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn publish(&self, part: Bytes) {
        // Nothing to send, as before the parts were streamed.
        if part.is_empty() {
            return;
        }
        let mut parts = self.parts();
        // A reader that went away is dropped.
        parts
            .readers
            .retain(|reader| reader.send(part.clone()).is_ok());
        parts.written.push(part);
    }

    /// The render ended: readers see the end of their body after the last part.
    fn finish(&self) {
        let mut parts = self.parts();
        parts.done = true;
        parts.readers.clear();
    }

    /// The parts written so far, and the others to come unless all are written.
    fn reader(&self) -> (Vec<Bytes>, Option<UnboundedReceiver<Bytes>>) {
        let mut parts = self.parts();
        let written = parts.written.clone();
        if parts.done {
            return (written, None);
        }
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        parts.readers.push(sender);
        (written, Some(receiver))
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

/// `/master/state` (with `?jsonp=`), sent part by part as it is rendered from a current
/// snapshot, off the loop.
pub async fn serve_state(state: &AppState, query: HashMap<String, String>) -> Response {
    let snapshot = match state.handle.current_snapshot().await {
        Ok(snapshot) => snapshot,
        Err(err) => return error_response(&err),
    };
    let (written, to_come) = snapshot.state();
    let mut body = PartsBody {
        ready: written.into(),
        to_come,
        last: None,
    };
    let mut content_type = "application/json";
    if let Some(callback) = query.get("jsonp") {
        // Wrapping nothing checks the name and gives the text before and after the JSON.
        let Some(mut open) = jsonp(callback, b"") else {
            // The same refusal as every other endpoint's.
            return json_response(Bytes::new(), &query);
        };
        body.last = Some(Bytes::from(open.split_off(open.len() - 2)));
        body.ready.push_front(Bytes::from(open));
        content_type = "text/javascript";
    }
    ([(header::CONTENT_TYPE, content_type)], Body::new(body)).into_response()
}

/// A body of parts sent one after another: those ready, those still to come (until
/// their sender finishes), and a last one. Its length is announced when known.
struct PartsBody {
    ready: VecDeque<Bytes>,
    to_come: Option<UnboundedReceiver<Bytes>>,
    last: Option<Bytes>,
}

impl http_body::Body for PartsBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if let Some(part) = this.ready.pop_front() {
            return Poll::Ready(Some(Ok(Frame::data(part))));
        }
        if let Some(to_come) = &mut this.to_come {
            match to_come.poll_recv(cx) {
                Poll::Ready(Some(part)) => return Poll::Ready(Some(Ok(Frame::data(part)))),
                Poll::Ready(None) => this.to_come = None,
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(this.last.take().map(|part| Ok(Frame::data(part))))
    }

    fn is_end_stream(&self) -> bool {
        self.ready.is_empty() && self.to_come.is_none() && self.last.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        if self.to_come.is_some() {
            return SizeHint::default();
        }
        let ready: usize = self.ready.iter().chain(&self.last).map(Bytes::len).sum();
        SizeHint::with_exact(ready as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_get_parts_written_before_and_after_they_came() {
        let progressive = Progressive::default();
        progressive.publish(Bytes::from_static(b"{\"a\":"));
        let (early, Some(mut to_come)) = progressive.reader() else {
            panic!("the render is not done");
        };
        assert_eq!(early, [Bytes::from_static(b"{\"a\":")]);
        progressive.publish(Bytes::from_static(b"1}"));
        progressive.finish();
        assert_eq!(to_come.try_recv().unwrap(), Bytes::from_static(b"1}"));
        // The render is done: the sender is gone.
        assert!(to_come.try_recv().is_err());
        let (late, to_come) = progressive.reader();
        assert_eq!(late.concat(), b"{\"a\":1}");
        assert!(to_come.is_none());
    }

    #[test]
    fn large_buffers_are_kept_for_the_next_render_then_freed() {
        let buffers = Buffers(Mutex::new(Vec::new()));
        assert!(!buffers.give(Vec::with_capacity(1000)));
        assert!(buffers.give(vec![7; 3 << 20]));
        assert!(buffers.give(Vec::with_capacity(2 << 20)));
        // The smallest that fits, emptied; small requests get a buffer of their own.
        let taken = buffers.take(Buffers::LEAST + 1);
        assert_eq!((taken.len(), taken.capacity()), (0, 2 << 20));
        assert_eq!(buffers.take(10).capacity(), 10);
        // None fits: the largest, grown.
        assert!(buffers.take(4 << 20).capacity() >= 4 << 20);
        assert!(buffers.kept().is_empty());
        buffers.give(taken);
        buffers.trim();
        assert_eq!(buffers.kept().len(), 1);
        buffers.kept()[0].1 -= Buffers::KEEP;
        buffers.trim();
        assert!(buffers.kept().is_empty());
    }

    #[test]
    fn a_body_sends_ready_parts_then_those_to_come_then_the_last() {
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        let body = PartsBody {
            ready: [Bytes::from_static(b"cb(")].into(),
            to_come: Some(receiver),
            last: Some(Bytes::from_static(b");")),
        };
        assert_eq!(http_body::Body::size_hint(&body).exact(), None);
        sender.send(Bytes::from_static(b"{}")).unwrap();
        drop(sender);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let sent = runtime.block_on(axum::body::to_bytes(Body::new(body), usize::MAX));
        let sent = sent.unwrap();
        assert_eq!(sent, Bytes::from_static(b"cb({});"));
        let done = PartsBody {
            ready: [Bytes::from_static(b"{}")].into(),
            to_come: None,
            last: None,
        };
        assert_eq!(http_body::Body::size_hint(&done).exact(), Some(2));
    }
}
