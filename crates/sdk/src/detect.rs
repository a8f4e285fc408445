//! Finding the leading master: a fixed `host:port`, or a `zk://` URL whose leader is
//! followed through ZooKeeper the way Mesos clients do (the lowest `json.info_` node
//! under the path holds the leader's MasterInfo; reference §5.6).

use crate::http::ClientError;
use mantle_zk::{Options, ZkUrl};
use std::time::Duration;
use tokio::sync::watch;

/// Where the leading master is. Clones follow the same election.
#[derive(Clone)]
pub enum MasterSource {
    /// A master named by the user (`host:port`); a standby redirects to the leader.
    Fixed(String),
    /// The leader's candidacy data, followed in ZooKeeper.
    Zk(watch::Receiver<Option<Vec<u8>>>),
}

impl MasterSource {
    /// A `zk://` URL starts following the election (needs a tokio runtime); anything
    /// else is taken as `host:port` and returned as it is.
    pub fn parse(master: &str) -> Result<MasterSource, ClientError> {
        if !master.trim().starts_with("zk://") {
            return Ok(MasterSource::Fixed(master.to_string()));
        }
        let url: ZkUrl = master
            .trim()
            .parse()
            .map_err(|err| ClientError::Request(format!("master '{master}': {err}")))?;
        Ok(MasterSource::Zk(mantle_zk::election::detect(
            url,
            Options::default(),
        )))
    }

    /// The leader's `host:port` as known right now.
    pub fn current(&self) -> Option<String> {
        match self {
            MasterSource::Fixed(master) => Some(master.clone()),
            MasterSource::Zk(leader) => leader
                .borrow()
                .as_deref()
                .and_then(|data| serde_json::from_slice::<mantle_api::MasterInfo>(data).ok())
                .and_then(|info| info.http_address()),
        }
    }

    /// The leader's `host:port`, waiting up to `timeout` for one to be known.
    pub async fn wait(&mut self, timeout: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(master) = self.current() {
                return Some(master);
            }
            let MasterSource::Zk(leader) = self else {
                return None;
            };
            match tokio::time::timeout_at(deadline, leader.changed()).await {
                Ok(Ok(())) => continue,
                _ => return None,
            }
        }
    }

    /// Whether the leader comes from an election (so that it, not the last master that
    /// answered, is where to go next).
    pub fn is_elected(&self) -> bool {
        matches!(self, MasterSource::Zk(_))
    }

    /// Resolves when the leader changes (never for a fixed master).
    pub async fn changed(&mut self) {
        match self {
            MasterSource::Fixed(_) => std::future::pending().await,
            MasterSource::Zk(leader) => {
                if leader.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        }
    }
}
