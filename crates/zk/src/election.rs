//! Leader election and detection the way Mesos masters do it (reference §5.6): every
//! contender creates an ephemeral sequential node `<path>/json.info_NNNNNNNNNN` holding
//! its data (a MasterInfo as JSON), and the contender with the lowest sequence number
//! leads. Other nodes under the path (a replicated registry) are ignored, as pymesos and
//! mesoshttp ignore them, so they must sort after `json.info_`.
//!
//! [`Contender`] keeps one candidacy for the life of its session and reports whether it
//! leads; [`detect`] follows the leader's data for clients (agents, schedulers), across
//! session expiries.

use std::time::Duration;

use tokio::sync::watch;

use crate::{Client, CreateMode, Error, Options, Result, SessionState, ZkUrl};

/// The name prefix of a candidacy node.
pub const CANDIDATE_PREFIX: &str = "json.info_";

/// The sequence number of a candidacy node's name, if it is one.
pub fn candidate_sequence(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(CANDIDATE_PREFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The leading candidacy among a path's children: the lowest sequence number.
pub fn leader_of(children: &[String]) -> Option<&str> {
    children
        .iter()
        .filter_map(|name| candidate_sequence(name).map(|seq| (seq, name)))
        .min()
        .map(|(_, name)| name.as_str())
}

/// Where a candidacy stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Candidacy {
    /// Not known yet.
    Pending,
    /// This contender leads: its node has the lowest sequence number and its session
    /// lives.
    Leading,
    /// Another contender leads; its node's data, when it could be read.
    Following(Option<Vec<u8>>),
    /// The session ended: this candidacy is over. A leader must stop acting at once;
    /// contend again with a new session.
    Lost,
}

/// One candidacy: a node under the path for as long as the session lives.
pub struct Contender {
    client: Client,
    node: String,
    candidacy: watch::Receiver<Candidacy>,
}

impl Contender {
    /// Creates the candidacy node with `data` and starts following the election.
    pub async fn start(client: Client, path: &str, data: &[u8]) -> Result<Contender> {
        client.ensure_path(path).await?;
        let prefix = format!("{}/{CANDIDATE_PREFIX}", path.trim_end_matches('/'));
        let node = client
            .create(&prefix, data, CreateMode::EphemeralSequential)
            .await?;
        let (tx, candidacy) = watch::channel(Candidacy::Pending);
        tokio::spawn(follow_election(
            client.clone(),
            path.to_string(),
            node.clone(),
            tx,
        ));
        Ok(Contender {
            client,
            node,
            candidacy,
        })
    }

    /// The full path of this candidacy's node.
    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn candidacy(&self) -> watch::Receiver<Candidacy> {
        self.candidacy.clone()
    }

    /// Withdraws: closes the session, which removes the node at once.
    pub async fn withdraw(self) {
        self.client.close().await;
    }
}

/// Publishes the candidacy until the session ends or nobody listens.
async fn follow_election(client: Client, path: String, node: String, tx: watch::Sender<Candidacy>) {
    let mine = node.rsplit('/').next().unwrap_or_default().to_string();
    let mut states = client.state_changes();
    loop {
        let state = *states.borrow();
        if state.is_terminal() {
            break;
        }
        // While disconnected the session may still live, and no other contender can lead
        // before it expires on the servers, which the client reports first (`Expired`):
        // a leader keeps leading until then.
        if state == SessionState::Disconnected {
            if states.changed().await.is_err() {
                break;
            }
            continue;
        }
        let next = match client.get_children_watch(&path).await {
            Ok((children, changed)) => {
                let candidacy = match leader_of(&children) {
                    Some(leader) if leader == mine => Candidacy::Leading,
                    // Our node is gone although the session lives: not a candidate.
                    _ if !children.contains(&mine) => break,
                    Some(leader) => {
                        let data = client
                            .get_data(&format!("{path}/{leader}"))
                            .await
                            .ok()
                            .map(|(data, _)| data);
                        Candidacy::Following(data)
                    }
                    None => Candidacy::Pending,
                };
                tx.send_if_modified(|current| {
                    let changed = *current != candidacy;
                    *current = candidacy;
                    changed
                });
                Some(changed)
            }
            Err(Error::SessionExpired | Error::Closed) => break,
            Err(_) => None,
        };
        tokio::select! {
            _ = async { match next { Some(watch) => { let _ = watch.await; } None => tokio::time::sleep(Duration::from_millis(200)).await } } => {}
            changed = states.changed() => if changed.is_err() { break },
            _ = tx.closed() => return,
        }
    }
    let _ = tx.send(Candidacy::Lost);
}

/// Follows the leader under `url`'s path and publishes its node's data (`None` while no
/// leader is known), reconnecting with a new session when one expires. Runs until the
/// receiver is dropped.
pub fn detect(url: ZkUrl, options: Options) -> watch::Receiver<Option<Vec<u8>>> {
    let (tx, rx) = watch::channel(None);
    tokio::spawn(async move {
        while !tx.is_closed() {
            let client = match Client::connect(&url, options.clone()).await {
                Ok(client) => client,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot reach zookeeper to detect the leader");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        _ = tx.closed() => return,
                    }
                }
            };
            watch_leader(&client, &url.path, &tx).await;
            client.close().await;
        }
    });
    rx
}

/// Publishes the leader's data until the session ends.
async fn watch_leader(client: &Client, path: &str, tx: &watch::Sender<Option<Vec<u8>>>) {
    let mut states = client.state_changes();
    loop {
        if states.borrow().is_terminal() {
            return;
        }
        let (leader, changed) = match client.get_children_watch(path).await {
            Ok((children, changed)) => match leader_of(&children) {
                Some(leader) => {
                    let data = client
                        .get_data(&format!("{path}/{leader}"))
                        .await
                        .ok()
                        .map(|(data, _)| data);
                    (data, Some(changed))
                }
                None => (None, Some(changed)),
            },
            // No such path yet: no master ever contended. Look again shortly.
            Err(Error::NoNode { .. }) => (None, None),
            Err(Error::SessionExpired | Error::Closed) => return,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        tx.send_if_modified(|current| {
            let changed = *current != leader;
            *current = leader;
            changed
        });
        tokio::select! {
            _ = async { match changed { Some(watch) => { let _ = watch.await; } None => tokio::time::sleep(Duration::from_millis(500)).await } } => {}
            changed = states.changed() => if changed.is_err() { return },
            _ = tx.closed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lowest_sequence_leads_and_other_nodes_are_ignored() {
        let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let check = |children: &[&str], expected: Option<&str>| {
            assert_eq!(leader_of(&names(children)), expected, "{children:?}");
        };
        check(&[], None);
        check(&["registry", "log_replicas"], None);
        check(
            &["json.info_0000000007", "json.info_0000000003", "registry"],
            Some("json.info_0000000003"),
        );
        check(&["json.info_", "json.info_x1", "info_0000000001"], None);
        check(
            &["json.info_0000000010", "json.info_0000000009"],
            Some("json.info_0000000009"),
        );
        assert_eq!(candidate_sequence("json.info_0000000042"), Some(42));
    }
}
