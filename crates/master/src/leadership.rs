//! High availability (reference §5.6): with `--zk`, every master contends through
//! ZooKeeper ([`mantle_zk::election`]) and only the leader runs an event loop; the others
//! redirect to it. The leader's registry and policy live in ZooKeeper ([`ZkStore`]) and
//! every write is conditional on its candidacy node, so a master that lost its session
//! cannot change them. A leader whose session expires stops at once: its event loop ends,
//! its streams close, and it contends again with a new session.

use crate::core::{Master, MasterConfig, Policy, Registry, RegistryChanges, StoredFramework};
use crate::event_loop::{unix_now, EventLoop, LoopHandle};
use crate::store::{LogBudget, Store};
use mantle_api::ApiError;
use mantle_zk::election::{Candidacy, Contender};
use mantle_zk::{Client, CreateMode, Error as ZkError, Op, Options, ZkUrl};
use std::time::Duration;
use tokio::sync::watch;

/// What this master is doing right now.
#[derive(Clone)]
pub enum Role {
    /// It leads: requests go to this event loop.
    Leading(LoopHandle),
    /// Another master leads, at this `host:port` when known.
    Following(Option<String>),
}

/// The current role, for the HTTP handlers.
#[derive(Clone)]
pub struct RoleHandle {
    role: watch::Receiver<Role>,
}

impl RoleHandle {
    pub fn new(role: watch::Receiver<Role>) -> RoleHandle {
        RoleHandle { role }
    }

    pub fn role(&self) -> Role {
        self.role.borrow().clone()
    }

    /// The event loop, when this master leads; else 503 (the HTTP layer redirects
    /// before it gets here when a leader is known).
    pub fn leader_loop(&self) -> Result<LoopHandle, ApiError> {
        match self.role() {
            Role::Leading(handle) => Ok(handle),
            Role::Following(_) => Err(ApiError::unavailable("this master is not the leader")),
        }
    }

    /// [`LoopHandle::request`] on the leader's loop.
    pub async fn request<T>(
        &self,
        make: impl FnOnce(crate::event_loop::Reply<T>) -> crate::event_loop::Command,
    ) -> Result<T, ApiError> {
        self.leader_loop()?.request(make).await
    }

    /// [`LoopHandle::current_snapshot`] of the leader's loop.
    pub async fn current_snapshot(
        &self,
    ) -> Result<std::sync::Arc<crate::snapshot::Snapshot>, ApiError> {
        self.leader_loop()?.current_snapshot().await
    }
}

/// The names of the znodes holding the registry and its frameworks, under the election
/// path. They must sort after `json.info_`: pymesos takes the smallest child name as
/// the leader.
const REGISTRY_NODE: &str = "registry";
const FRAMEWORKS_NODE: &str = "registry-frameworks";
const POLICY_NODE: &str = "policy";
/// Chunks stay well under ZooKeeper's packet limit.
const CHUNK: usize = 512 * 1024;

/// The registry and policy in ZooKeeper. A document is the pointer node
/// `<path>/<name>` holding `{"version": v, "chunks": n}` and the chunk nodes
/// `<path>/<name>/<v>-<i>`; a new version's chunks are written first, then the pointer is
/// switched in a `multi` that also checks the leader's candidacy node, then the old
/// chunks go. The registry's changes between whole writes (`Store::append_registry`) are
/// the nodes `<path>/registry/<v>-c<i>`, each created in a `multi` with the candidacy
/// check and the pointer's new count of them (`"changes"`), so a change is stored exactly
/// when the pointer counts it.
pub struct ZkStore {
    client: Client,
    path: String,
    /// This leader's candidacy node: every switch checks it still exists.
    node: String,
    runtime: tokio::runtime::Handle,
    /// The registry as this leader last stored it; none before its first whole write and
    /// after a failed append (the next save is whole).
    registry: Option<ChangeLog>,
}

#[derive(Clone, Copy)]
struct ChangeLog {
    pointer: Pointer,
    budget: LogBudget,
}

#[derive(serde::Serialize, serde::Deserialize, Default, Clone, Copy)]
struct Pointer {
    version: u64,
    chunks: usize,
    #[serde(default, skip_serializing_if = "is_zero")]
    changes: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl ZkStore {
    pub fn new(client: Client, path: &str, node: &str) -> ZkStore {
        ZkStore {
            client,
            path: path.trim_end_matches('/').to_string(),
            node: node.to_string(),
            runtime: tokio::runtime::Handle::current(),
            registry: None,
        }
    }

    async fn pointer(&self, name: &str) -> Result<Option<Pointer>, ZkError> {
        match self.client.get_data(&format!("{}/{name}", self.path)).await {
            Ok((data, _)) if data.is_empty() => Ok(Some(Pointer::default())),
            Ok((data, _)) => Ok(Some(serde_json::from_slice(&data).unwrap_or_default())),
            Err(ZkError::NoNode { .. }) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Reads a document; an absent one is `None`.
    async fn load(&self, name: &str) -> anyhow::Result<Option<Vec<u8>>> {
        Ok(self.load_with_changes(name).await?.map(|(bytes, _)| bytes))
    }

    /// Reads a document with the changes appended to it.
    async fn load_with_changes(
        &self,
        name: &str,
    ) -> anyhow::Result<Option<(Vec<u8>, Vec<Vec<u8>>)>> {
        let Some(pointer) = self.pointer(name).await? else {
            return Ok(None);
        };
        if pointer.chunks == 0 {
            return Ok(None);
        }
        let node = format!("{}/{name}", self.path);
        let mut bytes = Vec::new();
        for index in 0..pointer.chunks {
            let chunk = format!("{node}/{}-{index}", pointer.version);
            let (data, _) = self.client.get_data(&chunk).await?;
            bytes.extend_from_slice(&data);
        }
        let mut changes = Vec::with_capacity(pointer.changes);
        for index in 0..pointer.changes {
            let change = format!("{node}/{}-c{index}", pointer.version);
            changes.push(self.client.get_data(&change).await?.0);
        }
        Ok(Some((bytes, changes)))
    }

    /// Appends a change to the document at `pointer`, if this master still leads;
    /// returns the new pointer.
    async fn append(&self, name: &str, pointer: Pointer, bytes: &[u8]) -> Result<Pointer, ZkError> {
        let node = format!("{}/{name}", self.path);
        let next = Pointer {
            changes: pointer.changes + 1,
            ..pointer
        };
        let change = format!("{node}/{}-c{}", pointer.version, pointer.changes);
        self.client
            .multi(&[
                Op::check(self.node.clone(), None),
                Op::create(change, bytes.to_vec(), CreateMode::Persistent),
                Op::set_data(node, serde_json::to_vec(&next).unwrap_or_default(), None),
            ])
            .await?;
        Ok(next)
    }

    /// Writes a document as a new version and switches to it, if this master still leads;
    /// returns the new pointer.
    async fn save(&self, name: &str, bytes: &[u8]) -> Result<Pointer, ZkError> {
        let pointer_path = format!("{}/{name}", self.path);
        let old = match self.pointer(name).await? {
            Some(old) => old,
            None => {
                match self
                    .client
                    .create(&pointer_path, b"", CreateMode::Persistent)
                    .await
                {
                    Ok(_) | Err(ZkError::NodeExists { .. }) => {}
                    Err(err) => return Err(err),
                }
                Pointer::default()
            }
        };
        let version = old.version + 1;
        let chunks: Vec<&[u8]> = bytes.chunks(CHUNK).collect();
        for (index, chunk) in chunks.iter().enumerate() {
            let path = format!("{pointer_path}/{version}-{index}");
            match self
                .client
                .create(&path, chunk, CreateMode::Persistent)
                .await
            {
                Ok(_) => {}
                // Left by an attempt that failed before its switch.
                Err(ZkError::NodeExists { .. }) => {
                    self.client.set_data(&path, chunk, None).await?;
                }
                Err(err) => return Err(err),
            }
        }
        let pointer = Pointer {
            version,
            chunks: chunks.len(),
            changes: 0,
        };
        self.client
            .multi(&[
                Op::check(self.node.clone(), None),
                Op::set_data(
                    pointer_path.clone(),
                    serde_json::to_vec(&pointer).unwrap_or_default(),
                    None,
                ),
            ])
            .await?;
        let old_chunks = (0..old.chunks).map(|index| format!("{}-{index}", old.version));
        let old_changes = (0..old.changes).map(|index| format!("{}-c{index}", old.version));
        for node in old_chunks.chain(old_changes) {
            let path = format!("{pointer_path}/{node}");
            if let Err(err) = self.client.delete(&path, None).await {
                tracing::debug!(path, error = %err, "cannot delete an old registry chunk");
            }
        }
        Ok(pointer)
    }

    /// Runs a write from the event loop, which stores before it answers (invariant 5), on
    /// a thread of its own that may wait for the round trips; they run on the main
    /// runtime, waited for from a thread outside any runtime (the loop's own may not
    /// block on another).
    fn blocking<T: Send>(
        &self,
        write: impl std::future::Future<Output = Result<T, ZkError>> + Send,
    ) -> std::io::Result<T> {
        std::thread::scope(|scope| scope.spawn(|| self.runtime.block_on(write)).join())
            .map_err(|_| std::io::Error::other("writing to ZooKeeper panicked"))?
            .map_err(std::io::Error::other)
    }

    /// The policy and registry as stored; absent documents are the defaults.
    pub async fn load_state(&self) -> anyhow::Result<(Policy, Registry)> {
        let policy = match self.load(POLICY_NODE).await? {
            Some(bytes) => serde_json::from_slice(&bytes)?,
            None => Policy::default(),
        };
        let mut registry = Registry::default();
        if let Some((bytes, changes)) = self.load_with_changes(REGISTRY_NODE).await? {
            registry = serde_json::from_slice(&bytes)?;
            let changes: Vec<RegistryChanges> = changes
                .iter()
                .map(|change| serde_json::from_slice(change))
                .collect::<Result<_, _>>()?;
            registry.apply(changes);
        }
        // Kept apart from the agents; a registry stored before then holds them.
        if let Some(bytes) = self.load(FRAMEWORKS_NODE).await? {
            registry.frameworks = serde_json::from_slice(&bytes)?;
        }
        Ok((policy, registry))
    }
}

impl Store for ZkStore {
    fn save_policy(&mut self, policy: &Policy) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(policy).map_err(std::io::Error::other)?;
        self.blocking(self.save(POLICY_NODE, &bytes)).map(drop)
    }

    fn save_registry(&mut self, registry: Registry) -> std::io::Result<()> {
        self.registry = None;
        let bytes = serde_json::to_vec(&registry).map_err(std::io::Error::other)?;
        let pointer = self.blocking(self.save(REGISTRY_NODE, &bytes))?;
        self.registry = Some(ChangeLog {
            pointer,
            budget: LogBudget::after_whole(bytes.len() as u64),
        });
        Ok(())
    }

    fn takes_changes(&self) -> bool {
        self.registry.is_some_and(|log| !log.budget.spent())
    }

    fn append_registry(&mut self, changes: &RegistryChanges) -> std::io::Result<bool> {
        let Some(mut log) = self.registry else {
            return Ok(false);
        };
        if changes.is_empty() {
            return Ok(true);
        }
        let bytes = serde_json::to_vec(changes).map_err(std::io::Error::other)?;
        if bytes.len() > CHUNK {
            // More than a node holds: the whole registry is written in chunks instead.
            return Ok(false);
        }
        match self.blocking(self.append(REGISTRY_NODE, log.pointer, &bytes)) {
            Ok(pointer) => {
                log.pointer = pointer;
                log.budget.appended(bytes.len());
                self.registry = Some(log);
                Ok(true)
            }
            Err(err) => {
                self.registry = None;
                Err(err)
            }
        }
    }

    fn save_frameworks(&mut self, frameworks: &[StoredFramework]) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(frameworks).map_err(std::io::Error::other)?;
        self.blocking(self.save(FRAMEWORKS_NODE, &bytes)).map(drop)
    }
}

/// `host:port` of a master from the MasterInfo JSON in its candidacy node.
pub fn master_address(data: &[u8]) -> Option<String> {
    serde_json::from_slice::<mantle_api::MasterInfo>(data)
        .ok()?
        .http_address()
}

/// Contends for leadership for as long as the process runs: publishes the role, runs an
/// event loop while leading, and starts over with a new session when one ends.
pub async fn supervise(
    config: MasterConfig,
    allocation_interval: Duration,
    url: ZkUrl,
    session_timeout: Duration,
    role: watch::Sender<Role>,
) {
    loop {
        let options = Options::default().session_timeout(session_timeout);
        let client = match Client::connect(&url, options).await {
            Ok(client) => client,
            Err(err) => {
                tracing::warn!(error = %err, "cannot reach zookeeper; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(err) = term(&config, allocation_interval, &url, client, &role).await {
            tracing::warn!(error = %err, "leadership term ended with an error");
        }
        role.send_replace(Role::Following(None));
        if role.is_closed() {
            return;
        }
    }
}

/// One session: contend, follow or lead until the candidacy is lost.
async fn term(
    config: &MasterConfig,
    allocation_interval: Duration,
    url: &ZkUrl,
    client: Client,
    role: &watch::Sender<Role>,
) -> anyhow::Result<()> {
    let id = uuid::Uuid::new_v4().to_string();
    let info = crate::core::master_info(&id, config);
    let data = mantle_api::json::to_ascii_json(&info);
    let contender = Contender::start(client.clone(), &url.path, &data).await?;
    let mut candidacy = contender.candidacy();
    loop {
        let current = candidacy.borrow_and_update().clone();
        match current {
            Candidacy::Pending => {
                role.send_replace(Role::Following(None));
            }
            Candidacy::Following(leader) => {
                let leader = leader.as_deref().and_then(master_address);
                tracing::info!(leader = ?leader, "following the leading master");
                role.send_replace(Role::Following(leader));
            }
            Candidacy::Lost => {
                tracing::warn!("lost the zookeeper session; contending again");
                return Ok(());
            }
            Candidacy::Leading => {
                tracing::info!(master_id = %id, node = contender.node(), "elected the leading master");
                lead(
                    &id,
                    config,
                    allocation_interval,
                    url,
                    &contender,
                    &mut candidacy,
                    role,
                )
                .await?;
                contender.withdraw().await;
                return Ok(());
            }
        }
        if candidacy.changed().await.is_err() {
            return Ok(());
        }
    }
}

/// Leads until the candidacy is lost: recovers the stored state, runs an event loop.
async fn lead(
    id: &str,
    config: &MasterConfig,
    allocation_interval: Duration,
    url: &ZkUrl,
    contender: &Contender,
    candidacy: &mut watch::Receiver<Candidacy>,
    role: &watch::Sender<Role>,
) -> anyhow::Result<()> {
    let store = ZkStore::new(contender.client().clone(), &url.path, contender.node());
    let (policy, registry) = store.load_state().await?;
    let now = unix_now();
    let mut core = Master::new(id.to_string(), config.clone(), now);
    core.restore_policy(policy);
    core.recover_registry(now, registry);
    let (event_loop, handle) = EventLoop::new(core, allocation_interval, Some(Box::new(store)));
    let (stop, stop_rx) = watch::channel(false);
    let running = event_loop.spawn(stop_rx);
    role.send_replace(Role::Leading(handle));
    while *candidacy.borrow_and_update() == Candidacy::Leading {
        if candidacy.changed().await.is_err() {
            break;
        }
    }
    // Stop acting at once: no request reaches the loop any more, and its streams close.
    tracing::warn!("no longer the leading master; stopping");
    role.send_replace(Role::Following(None));
    let _ = stop.send(true);
    let _ = running.await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::AgentEntry;
    use crate::store::tests::agent;
    use mantle_zk::testing::{require_zookeeper, ZkServers};

    async fn children(client: &Client) -> Vec<String> {
        let mut names = client.get_children("/mantle/registry").await.unwrap();
        names.sort();
        names
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn registry_changes_are_appended_as_nodes_and_a_whole_write_replaces_them() {
        if !require_zookeeper("registry_changes_are_appended_as_nodes") {
            return;
        }
        let zk = ZkServers::standalone().await.expect("zookeeper");
        let client = Client::connect(&zk.url("/"), Options::default())
            .await
            .unwrap();
        client
            .create("/mantle", b"", CreateMode::Persistent)
            .await
            .unwrap();
        let node = client
            .create("/mantle/leader", b"", CreateMode::Ephemeral)
            .await
            .unwrap();
        let mut store = ZkStore::new(client.clone(), "/mantle", &node);
        let whole = Registry {
            agents: vec![agent(0), agent(1)],
            ..Registry::default()
        };
        let changes = [
            RegistryChanges {
                agents: vec![AgentEntry::Admitted(agent(2))],
                rest: None,
            },
            RegistryChanges {
                agents: vec![
                    AgentEntry::Unreachable(agent(0), 7.5),
                    AgentEntry::Removed(agent(1).id.unwrap()),
                ],
                rest: None,
            },
        ];
        let (store, expected) = tokio::task::spawn_blocking(move || {
            assert!(!store.takes_changes(), "whole first");
            store.save_registry(whole.clone()).unwrap();
            assert!(store.takes_changes());
            let mut expected = whole;
            for change in changes {
                assert!(store.append_registry(&change).unwrap());
                expected.apply([change]);
            }
            (store, expected)
        })
        .await
        .unwrap();
        assert_eq!(children(&client).await, ["1-0", "1-c0", "1-c1"]);
        let (_, loaded) = store.load_state().await.unwrap();
        assert_eq!(loaded, expected);
        assert_eq!(
            (loaded.agents.len(), loaded.unreachable.len()),
            (1, 1),
            "{loaded:?}"
        );

        // A whole write starts a new version without the changes.
        let store = tokio::task::spawn_blocking(move || {
            let mut store = store;
            store.save_registry(expected).unwrap();
            store
        })
        .await
        .unwrap();
        assert_eq!(children(&client).await, ["2-0"]);

        // A master that no longer leads cannot append.
        client.delete(&node, None).await.unwrap();
        let refused = tokio::task::spawn_blocking(move || {
            let mut store = store;
            let change = RegistryChanges {
                agents: vec![AgentEntry::Admitted(agent(3))],
                rest: None,
            };
            store.append_registry(&change).is_err()
        })
        .await
        .unwrap();
        assert!(refused);
        assert_eq!(children(&client).await, ["2-0"]);
    }
}
