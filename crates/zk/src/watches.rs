//! One-shot watches: the [`Watch`] future a caller awaits, and the session's registry
//! that routes the server's notifications to them and re-registers them after a
//! reconnection.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::oneshot;

use crate::error::Error;
use crate::proto::{EventType, WatchedEvent};

/// A watch set by an `*_watch` operation. It resolves once, with the first change of the
/// node after the read that set it, or with [`Error::SessionExpired`] or
/// [`Error::Closed`] when the session ends first.
///
/// Watches survive reconnections within the session: the client re-registers them
/// with the new server, which fires them at once if the node changed while the client
/// was away. Dropping a `Watch` abandons it.
#[derive(Debug)]
pub struct Watch {
    rx: oneshot::Receiver<Result<WatchedEvent, Error>>,
}

impl Future for Watch {
    type Output = Result<WatchedEvent, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|result| result.unwrap_or(Err(Error::Closed)))
    }
}

pub(crate) type WatchSender = oneshot::Sender<Result<WatchedEvent, Error>>;

pub(crate) fn watch_pair() -> (WatchSender, Watch) {
    let (tx, rx) = oneshot::channel();
    (tx, Watch { rx })
}

/// The three kinds of watch a server keeps per session and path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WatchKind {
    /// Set by get-data, or by exists on a node that exists.
    Data,
    /// Set by exists on a node that does not exist.
    Exist,
    /// Set by get-children.
    Child,
}

/// The session's outstanding watches by kind and path.
#[derive(Default)]
pub(crate) struct Watches {
    data: HashMap<String, Vec<WatchSender>>,
    exist: HashMap<String, Vec<WatchSender>>,
    child: HashMap<String, Vec<WatchSender>>,
}

impl Watches {
    fn map(&mut self, kind: WatchKind) -> &mut HashMap<String, Vec<WatchSender>> {
        match kind {
            WatchKind::Data => &mut self.data,
            WatchKind::Exist => &mut self.exist,
            WatchKind::Child => &mut self.child,
        }
    }

    pub(crate) fn add(&mut self, kind: WatchKind, path: String, tx: WatchSender) {
        let senders = self.map(kind).entry(path).or_default();
        // Abandoned watches on the same path go now rather than when the node changes.
        senders.retain(|tx| !tx.is_closed());
        senders.push(tx);
    }

    /// Fires the watches a notification concerns; the server fired its own watches
    /// of those kinds on that path, so they all go.
    pub(crate) fn trigger(&mut self, event: &WatchedEvent) {
        let kinds: &[WatchKind] = match event.event_type {
            EventType::NodeCreated | EventType::NodeDataChanged => {
                &[WatchKind::Data, WatchKind::Exist]
            }
            EventType::NodeDeleted => &[WatchKind::Data, WatchKind::Exist, WatchKind::Child],
            EventType::NodeChildrenChanged => &[WatchKind::Child],
        };
        for kind in kinds {
            if let Some(senders) = self.map(*kind).remove(&event.path) {
                for tx in senders {
                    let _ = tx.send(Ok(event.clone()));
                }
            }
        }
    }

    /// Ends every watch with the session's end.
    pub(crate) fn fail_all(&mut self, error: &Error) {
        for map in [&mut self.data, &mut self.exist, &mut self.child] {
            for (_, senders) in map.drain() {
                for tx in senders {
                    let _ = tx.send(Err(error.clone()));
                }
            }
        }
    }

    /// The paths still watched by someone, by kind (data, exist, child), for
    /// re-registration on a new connection. Paths nobody waits on any more are
    /// forgotten here.
    pub(crate) fn live_paths(&mut self) -> (Vec<String>, Vec<String>, Vec<String>) {
        let collect = |map: &mut HashMap<String, Vec<WatchSender>>| {
            map.retain(|_, senders| {
                senders.retain(|tx| !tx.is_closed());
                !senders.is_empty()
            });
            let mut paths: Vec<String> = map.keys().cloned().collect();
            paths.sort();
            paths
        };
        (
            collect(&mut self.data),
            collect(&mut self.exist),
            collect(&mut self.child),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(event_type: EventType, path: &str) -> WatchedEvent {
        WatchedEvent {
            event_type,
            path: path.to_string(),
        }
    }

    /// Registers one watch of each kind on `/n`, fires `fired`, and returns which kinds
    /// saw it.
    fn check(fired: EventType, expected: &[WatchKind]) {
        let mut watches = Watches::default();
        let kinds = [WatchKind::Data, WatchKind::Exist, WatchKind::Child];
        let mut receivers = Vec::new();
        for kind in kinds {
            let (tx, rx) = watch_pair();
            watches.add(kind, "/n".to_string(), tx);
            receivers.push((kind, rx));
        }
        watches.trigger(&event(fired, "/other"));
        watches.trigger(&event(fired, "/n"));
        let mut got = Vec::new();
        for (kind, mut watch) in receivers {
            if let Ok(result) = watch.rx.try_recv() {
                assert_eq!(result, Ok(event(fired, "/n")));
                got.push(kind);
            }
        }
        assert_eq!(got, expected, "{fired:?}");
    }

    #[test]
    fn notifications_reach_the_right_kinds() {
        use WatchKind::*;
        check(EventType::NodeCreated, &[Data, Exist]);
        check(EventType::NodeDataChanged, &[Data, Exist]);
        check(EventType::NodeDeleted, &[Data, Exist, Child]);
        check(EventType::NodeChildrenChanged, &[Child]);
    }

    #[test]
    fn abandoned_watches_are_not_re_registered() {
        let mut watches = Watches::default();
        let (tx, kept) = watch_pair();
        watches.add(WatchKind::Data, "/kept".into(), tx);
        let (tx, dropped) = watch_pair();
        watches.add(WatchKind::Child, "/dropped".into(), tx);
        drop(dropped);
        assert_eq!(
            watches.live_paths(),
            (vec!["/kept".to_string()], vec![], vec![])
        );
        watches.fail_all(&Error::SessionExpired);
        let mut kept = kept;
        assert_eq!(kept.rx.try_recv().unwrap(), Err(Error::SessionExpired));
    }
}
