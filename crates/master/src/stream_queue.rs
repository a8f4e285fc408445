//! The queue between the event loop and one open event stream's HTTP body: records in
//! order, taken by the body in chunks. One exists per subscribed framework and per
//! registered agent, so it is small: an empty queue is one allocation of about 80 bytes
//! (a tokio unbounded channel allocated about 1.6 KB up front, a fifth of what the
//! master held per agent), and an emptied queue holds no room.

use bytes::Bytes;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};

/// Records waiting together are joined into one chunk until it holds this much.
const CHUNK_BYTES: usize = 64 * 1024;

#[derive(Default)]
struct State {
    records: VecDeque<Bytes>,
    /// The body waiting for the next record.
    waker: Option<Waker>,
    /// The event loop dropped its end: the body ends after the records queued.
    closed: bool,
    /// The body was dropped (the client went away): records are refused.
    gone: bool,
}

type Shared = Arc<Mutex<State>>;

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    // A panic while holding the lock leaves the queue consistent (every change is a
    // single push, pop or flag), so a poisoned lock is used as it is.
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The event loop's end.
pub struct Sender(Shared);

/// The HTTP body's end.
pub struct Receiver(Shared);

pub fn queue() -> (Sender, Receiver) {
    let shared = Shared::default();
    (Sender(shared.clone()), Receiver(shared))
}

impl Sender {
    /// Queues a record; gives it back when the body is gone.
    pub fn send(&self, record: Bytes) -> Result<(), Bytes> {
        let mut state = lock(&self.0);
        if state.gone {
            return Err(record);
        }
        state.records.push_back(record);
        let waker = state.waker.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        let mut state = lock(&self.0);
        state.closed = true;
        let waker = state.waker.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl Receiver {
    /// The next record, with the records already waiting behind it in the same chunk (up
    /// to [`CHUNK_BYTES`]; chunk boundaries mean nothing in RecordIO): a framework
    /// launching thousands of tasks gets its updates in a few writes instead of one
    /// each. `None` once the event loop closed the stream and every record is taken.
    pub async fn next_chunk(&mut self) -> Option<Bytes> {
        poll_fn(|cx| {
            let mut state = lock(&self.0);
            let Some(first) = state.records.pop_front() else {
                if state.closed {
                    return Poll::Ready(None);
                }
                if !state
                    .waker
                    .as_ref()
                    .is_some_and(|w| w.will_wake(cx.waker()))
                {
                    state.waker = Some(cx.waker().clone());
                }
                return Poll::Pending;
            };
            let chunk = if state.records.is_empty() || first.len() >= CHUNK_BYTES {
                first
            } else {
                let mut chunk = first.to_vec();
                while chunk.len() < CHUNK_BYTES {
                    let Some(next) = state.records.pop_front() else {
                        break;
                    };
                    chunk.extend_from_slice(&next);
                }
                Bytes::from(chunk)
            };
            if state.records.is_empty() {
                // Most streams are idle most of the time (an agent's gets a PING every
                // 15 s): an empty queue holds no room.
                state.records = VecDeque::new();
            }
            Poll::Ready(Some(chunk))
        })
        .await
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let mut state = lock(&self.0);
        state.gone = true;
        state.records = VecDeque::new();
        state.waker = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiting_records_share_a_chunk_up_to_its_size() {
        let (tx, mut rx) = queue();
        tx.send(Bytes::from_static(b"1\na")).unwrap();
        assert_eq!(rx.next_chunk().await.unwrap(), "1\na");
        for record in ["1\na", "2\nbc", "1\nd"] {
            tx.send(Bytes::from(record)).unwrap();
        }
        assert_eq!(rx.next_chunk().await.unwrap(), "1\na2\nbc1\nd");
        let half = Bytes::from(vec![b'x'; CHUNK_BYTES / 2]);
        for _ in 0..3 {
            tx.send(half.clone()).unwrap();
        }
        assert_eq!(rx.next_chunk().await.unwrap().len(), CHUNK_BYTES);
        assert_eq!(rx.next_chunk().await.unwrap(), half);
        let big = Bytes::from(vec![b'y'; CHUNK_BYTES]);
        tx.send(big.clone()).unwrap();
        tx.send(half.clone()).unwrap();
        assert_eq!(rx.next_chunk().await.unwrap(), big);
        assert_eq!(rx.next_chunk().await.unwrap(), half);
        drop(tx);
        assert_eq!(rx.next_chunk().await, None);
    }

    #[tokio::test]
    async fn a_waiting_body_wakes_for_a_record_and_for_the_close() {
        let (tx, mut rx) = queue();
        let waiting = tokio::spawn(async move {
            let first = rx.next_chunk().await;
            let end = rx.next_chunk().await;
            (first, end)
        });
        tokio::task::yield_now().await;
        tx.send(Bytes::from_static(b"1\na")).unwrap();
        tokio::task::yield_now().await;
        drop(tx);
        let (first, end) = waiting.await.unwrap();
        assert_eq!(first.unwrap(), "1\na");
        assert_eq!(end, None);
    }

    #[test]
    fn records_are_refused_once_the_body_is_gone() {
        let (tx, rx) = queue();
        tx.send(Bytes::from_static(b"1\na")).unwrap();
        drop(rx);
        assert_eq!(
            tx.send(Bytes::from_static(b"1\nb")),
            Err(Bytes::from_static(b"1\nb"))
        );
    }

    #[tokio::test]
    async fn an_emptied_queue_gives_back_its_room() {
        let (tx, mut rx) = queue();
        for _ in 0..100 {
            tx.send(Bytes::from_static(b"1\na")).unwrap();
        }
        rx.next_chunk().await.unwrap();
        assert_eq!(lock(&rx.0).records.capacity(), 0);
    }
}
