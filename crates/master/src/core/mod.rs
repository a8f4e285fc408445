//! The master core: a deterministic state machine over frameworks, agents, offers and
//! tasks. Every entry point takes the current time and may queue [`Action`]s; the event
//! loop in `event_loop.rs` executes them. There are no sockets, clocks or threads here
//! (DESIGN invariant 2), which is what makes the core testable in-process.

mod agent_control;
mod agents;
mod drain;
mod frameworks;
mod health;
mod inverse_offers;
mod kept_status;
mod legacy_docs;
mod maintenance;
mod offers;
mod operator_calls;
mod policy;
mod prefetch;
mod registry;
pub mod shared_map;
mod state;
mod subscribers;
mod summary;
mod task_index;
mod tasks;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_agents;
#[cfg(test)]
mod tests_maintenance;
#[cfg(test)]
mod tests_render;
mod usage;
mod v1;
mod view;

use mantle_allocator::{AllocatorConfig, DrfAllocator};
use mantle_api::internal::ToAgent;
use mantle_api::scheduler::Event;
use mantle_api::*;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::sync::Arc;

pub use agents::Agent;
pub use drain::Drain;
pub use frameworks::{CallReply, Executor, Framework};
pub use health::{Health, RemovalRate, UnreachableAgent};
pub use kept_status::KeptStatus;
pub use maintenance::Maintenance;
pub use policy::{OperatorReply, Policy};
pub use registry::{AgentEntry, Registry, RegistryChanges, RegistryRest, StoredFramework};
pub use shared_map::{SharedMap, SharedSet};
pub use summary::TasksQuery;
pub use tasks::{KeptInfo, Task};
pub use v1::ascii_json;
pub use view::{RoleUsage, StateView};

/// Identifies one HTTP event stream (a framework subscription or an agent connection).
pub type StreamId = std::sync::Arc<str>;

/// What the event loop must do on the core's behalf.
// Actions live briefly in one vector and are executed at once; boxing would cost an
// allocation per event sent.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Send an event on a framework's stream.
    Framework {
        stream: StreamId,
        event: Event,
    },
    /// Close a framework's stream after the events queued before it.
    CloseFramework {
        stream: StreamId,
    },
    /// Send a message on an agent's stream.
    Agent {
        stream: StreamId,
        message: ToAgent,
    },
    CloseAgent {
        stream: StreamId,
    },
    /// Send an event to every operator SUBSCRIBE stream.
    Operator {
        event: serde_json::Value,
    },
}

/// Settings the core needs; the flags live in the binary.
#[derive(Clone, Debug)]
pub struct MasterConfig {
    pub ip: Ipv4Addr,
    pub port: u16,
    pub hostname: String,
    pub heartbeat_interval: f64,
    pub agent_ping_interval: f64,
    /// Pings an agent may miss before it is unreachable.
    pub max_agent_ping_timeouts: u32,
    pub agent_reregister_timeout: f64,
    /// `--agent_removal_rate_limit`; unlimited when `None`.
    pub agent_removal_rate_limit: Option<RemovalRate>,
    pub allocator: AllocatorConfig,
    /// `--roles`: when set, the only roles frameworks may use.
    pub roles: Option<Vec<String>>,
    /// `--weights`: initial role weights.
    pub weights: Vec<(String, f64)>,
    /// `--work_dir`: where the event loop keeps the policy store (none in tests).
    pub work_dir: Option<std::path::PathBuf>,
    /// `--offer_timeout` in seconds: older offers are rescinded.
    pub offer_timeout: Option<f64>,
    pub max_completed_frameworks: usize,
    pub max_completed_tasks_per_framework: usize,
    /// Every flag with its value, for `/master/flags` and `/master/state`.
    pub flags: BTreeMap<String, String>,
}

impl Default for MasterConfig {
    fn default() -> Self {
        MasterConfig {
            ip: Ipv4Addr::LOCALHOST,
            port: 5050,
            hostname: "127.0.0.1".into(),
            heartbeat_interval: 15.0,
            agent_ping_interval: 15.0,
            max_agent_ping_timeouts: 5,
            agent_reregister_timeout: 600.0,
            agent_removal_rate_limit: None,
            allocator: AllocatorConfig::default(),
            roles: None,
            weights: Vec::new(),
            offer_timeout: None,
            work_dir: None,
            max_completed_frameworks: 50,
            max_completed_tasks_per_framework: 1000,
            flags: BTreeMap::new(),
        }
    }
}

pub struct Master {
    pub config: MasterConfig,
    pub info: MasterInfo,
    pub start_time: f64,
    // The maps a snapshot shares (`shared_map.rs`): publishing one copies nothing.
    frameworks: SharedMap<FrameworkId, Framework>,
    completed_frameworks: VecDeque<Arc<Framework>>,
    agents: SharedMap<AgentId, Agent>,
    /// Registered agents by address (pid and hostname), to tell an agent retrying its
    /// registration from a new agent at the address of one that is gone.
    agent_addresses: HashMap<(String, String), AgentId>,
    /// The agent each open agent stream belongs to, so that a call finds its agent
    /// without a scan; checked against the agent's current stream on every lookup.
    agent_streams: HashMap<StreamId, AgentId>,
    /// Every framework's tasks by the agent they are on.
    agent_tasks: task_index::TaskIndex,
    offers: SharedMap<OfferId, offers::OfferEntry>,
    allocator: DrfAllocator,
    policy: Policy,
    /// Bumped on every policy change, so the event loop knows when to store it.
    policy_version: u64,
    next_framework: u64,
    next_agent: u64,
    next_offer: u64,
    next_heartbeat: f64,
    next_ping: f64,
    actions: Vec<Action>,
    /// Set when something changed that `/master/state` shows.
    dirty: bool,
    pub counters: Counters,
    pub health: Health,
    /// Bumped whenever what [`Master::agent_registry`] returns changes.
    registry_version: u64,
    /// What changed in the registry since the store took the changes.
    registry_dirty: registry::RegistryDirty,
    /// Bumped whenever what [`Master::stored_frameworks`] returns changes.
    frameworks_version: u64,
    /// Agents the operator deactivated: kept, offered to nobody.
    deactivated: BTreeSet<AgentId>,
    /// Agents the operator marked gone, with the time; they may not re-register.
    gone: BTreeMap<AgentId, f64>,
    /// The maintenance schedule, DOWN machines and inverse offers.
    maintenance: Maintenance,
    /// Agents being drained or drained (DRAIN_AGENT); each is also deactivated.
    draining: BTreeMap<AgentId, Drain>,
    /// Whether any operator SUBSCRIBE stream is open (`subscribers.rs`).
    operator_subscribers: bool,
    /// Resource lists converted lately: the tasks agents report mostly share a few.
    resources_cache: ResourcesCache,
}

/// Monotonic counters for `/metrics/snapshot`.
#[derive(Clone, Debug, Default)]
pub struct Counters {
    pub agent_registrations: u64,
    pub agent_reregistrations: u64,
    pub agent_removals: u64,
    pub valid_status_updates: u64,
    pub invalid_status_updates: u64,
    pub tasks_by_terminal_state: BTreeMap<TaskState, u64>,
}

/// The MasterInfo a master with this id and configuration advertises (in its
/// SUBSCRIBED events, and in ZooKeeper when it contends for leadership).
pub fn master_info(id: &str, config: &MasterConfig) -> MasterInfo {
    let pid = format!("master@{}:{}", config.ip, config.port);
    MasterInfo {
        id: id.to_string(),
        ip: ipv4_to_mesos_u32(config.ip),
        port: u32::from(config.port),
        pid: Some(pid),
        hostname: Some(config.hostname.clone()),
        version: Some(MESOS_VERSION.to_string()),
        address: Some(Address {
            hostname: Some(config.hostname.clone()),
            ip: Some(config.ip.to_string()),
            port: u32::from(config.port),
        }),
        capabilities: vec![
            Capability {
                kind: "AGENT_UPDATE".into(),
            },
            Capability {
                kind: "AGENT_DRAINING".into(),
            },
        ],
    }
}

impl Master {
    /// `id` is the master's random UUID, chosen by the caller so the core stays pure.
    pub fn new(id: String, config: MasterConfig, now: f64) -> Master {
        let info = master_info(&id, &config);
        let mut allocator = DrfAllocator::new(config.allocator.clone());
        for (role, weight) in &config.weights {
            allocator.set_weight(role, *weight);
        }
        Master {
            policy: Policy::default(),
            policy_version: 0,
            next_heartbeat: now + config.heartbeat_interval,
            next_ping: now + config.agent_ping_interval,
            config,
            info,
            start_time: now,
            frameworks: SharedMap::new(),
            completed_frameworks: VecDeque::new(),
            agents: SharedMap::new(),
            agent_addresses: HashMap::new(),
            agent_streams: HashMap::new(),
            offers: SharedMap::new(),
            allocator,
            next_framework: 0,
            next_agent: 0,
            next_offer: 0,
            actions: Vec::new(),
            dirty: true,
            counters: Counters::default(),
            health: Health::default(),
            registry_version: 0,
            registry_dirty: Default::default(),
            frameworks_version: 0,
            deactivated: BTreeSet::new(),
            gone: BTreeMap::new(),
            maintenance: Maintenance::default(),
            draining: BTreeMap::new(),
            operator_subscribers: false,
            resources_cache: ResourcesCache::new(),
            agent_tasks: task_index::TaskIndex::default(),
        }
    }

    /// Takes the actions queued since the last call.
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    /// True once after each change visible in the state endpoints.
    pub fn take_dirty(&mut self) -> bool {
        std::mem::replace(&mut self.dirty, false)
    }

    /// Periodic work: heartbeats, pings, timeouts. Call at least once a second.
    pub fn tick(&mut self, now: f64) {
        if now >= self.next_heartbeat {
            self.next_heartbeat = now + self.config.heartbeat_interval;
            let streams: Vec<StreamId> = self
                .frameworks
                .values()
                .filter_map(|f| f.stream.clone())
                .collect();
            for stream in streams {
                self.actions.push(Action::Framework {
                    stream,
                    event: Event::Heartbeat,
                });
            }
        }
        if now >= self.next_ping {
            self.next_ping = now + self.config.agent_ping_interval;
            self.health.start_ping_round(now, self.agents_to_ping(now));
        }
        for stream in self.health.pings_due(now, self.config.agent_ping_interval) {
            self.actions.push(Action::Agent {
                stream,
                message: ToAgent::Ping,
            });
        }
        self.expire_frameworks(now);
        self.detect_failures(now);
        self.expire_offers(now);
        self.expire_inverse_offers(now);
    }

    /// Runs one allocation cycle and sends the offers it makes, then the inverse offers
    /// due for agents on DRAINING machines.
    pub fn allocate(&mut self, now: f64) {
        let allocations = self.allocator.allocate(now);
        self.make_offers(now, allocations);
        self.make_inverse_offers(now);
    }

    fn send(&mut self, framework_id: &FrameworkId, event: Event) {
        if let Some(stream) = self
            .frameworks
            .get(framework_id)
            .and_then(|f| f.stream.clone())
        {
            self.actions.push(Action::Framework { stream, event });
        }
    }

    fn send_to_agent(&mut self, agent_id: &AgentId, message: ToAgent) {
        if let Some(stream) = self.agents.get(agent_id).and_then(|a| a.stream.clone()) {
            self.actions.push(Action::Agent { stream, message });
        }
    }

    pub fn frameworks(&self) -> impl Iterator<Item = &Framework> {
        self.frameworks.values()
    }

    pub fn agents(&self) -> impl Iterator<Item = &Agent> {
        self.agents.values()
    }

    pub fn outstanding_offers(&self) -> usize {
        self.offers.len()
    }

    /// The outstanding offers, for the simulation's check that no resource is offered
    /// twice.
    pub fn offers(&self) -> impl Iterator<Item = &Offer> {
        self.offers.values().map(|entry| &entry.offer)
    }

    /// Framework IDs that are known, for tests and metrics.
    pub fn framework_ids(&self) -> BTreeSet<FrameworkId> {
        self.frameworks.keys().cloned().collect()
    }
}
