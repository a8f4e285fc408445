//! Helpers shared by the tests against real ZooKeeper servers: a time bound for each
//! test, a recorder of session states, and a TCP proxy that can stall or cut a
//! client's connection while the server stays up.

#![allow(dead_code)]

pub mod proxy;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mantle_zk::{Client, SessionState};
use tokio::time::{timeout, Instant};

/// Skips (outside CI) or fails (in CI) a test when ZooKeeper is not installed.
#[macro_export]
macro_rules! require_zookeeper {
    ($name:expr) => {
        if !mantle_zk::testing::require_zookeeper($name) {
            return Ok(());
        }
    };
}

/// Runs a test body with a time limit, so that a hung server or client fails the test
/// instead of hanging the suite; logs go to the test output with `RUST_LOG`.
pub async fn bounded<F: Future<Output = anyhow::Result<()>>>(
    limit: Duration,
    body: F,
) -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    match timeout(limit, body).await {
        Ok(result) => result,
        Err(_) => anyhow::bail!("test did not finish within {limit:?}"),
    }
}

/// Every session state a client publishes, with when it was seen.
#[derive(Clone)]
pub struct StateLog {
    seen: Arc<Mutex<Vec<(Instant, SessionState)>>>,
}

impl StateLog {
    pub fn record(client: &Client) -> StateLog {
        let seen = Arc::new(Mutex::new(vec![(Instant::now(), client.state())]));
        let mut changes = client.state_changes();
        let log = seen.clone();
        tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                let state = *changes.borrow_and_update();
                log.lock().unwrap().push((Instant::now(), state));
            }
        });
        StateLog { seen }
    }

    pub fn states(&self) -> Vec<SessionState> {
        self.seen.lock().unwrap().iter().map(|(_, s)| *s).collect()
    }

    /// When `state` was first seen after `since`.
    pub fn first(&self, state: SessionState, since: Instant) -> Option<Instant> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .find(|(at, s)| *s == state && *at >= since)
            .map(|(at, _)| *at)
    }
}

/// Waits until the client is in `state`, for at most `limit`; returns how long it took.
pub async fn wait_for_state(
    client: &Client,
    state: SessionState,
    limit: Duration,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let mut changes = client.state_changes();
    let reached = timeout(limit, changes.wait_for(|s| *s == state)).await;
    match reached {
        Ok(Ok(_)) => Ok(start.elapsed()),
        _ => anyhow::bail!(
            "client did not reach {state:?} within {limit:?}; it is {:?}",
            client.state()
        ),
    }
}
