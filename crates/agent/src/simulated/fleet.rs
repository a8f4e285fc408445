//! Many simulated agents in one process: [`start_many`] runs each agent as the real
//! agent core and event loop with simulated executors, and its own master link (one
//! stream to the master, calls as POSTs), all on the caller's tokio runtime. There is no
//! HTTP server per agent: nothing but the master talks to these agents, and their
//! executors live inside them. By default every `agents_per_connection` agents share
//! one HTTP/2 connection to the master that carries their streams and calls (as
//! libprocess shares one socket between two processes), so a fleet of 100,000 agents
//! holds a few hundred descriptors, and so does the master for it. With
//! `agents_per_connection` 0 each agent connects as a real agent does: a socket of its
//! own, switched from HTTP/1.1 at registration, carries its stream and its calls; file
//! descriptors (one per agent) then bound the count; with a master on loopback the
//! sockets leave from 127.0.0.1, 127.0.0.2, ... (25,000 each), so that one address's
//! ports do not.
//!
//! What each agent costs in memory is measured by the test `fleet_memory` in
//! `crates/mantle/tests/simulated.rs` and recorded in `docs/ARCHITECTURE.md`.
//!
//! A fleet's agents keep nothing on disk: frameworks that checkpoint are served as the
//! others (the checkpoints are skipped) and the agents never restart.
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! use mantle_agent::simulated::{start_many, AgentSpec, FleetConfig};
//! use std::time::Duration;
//! let specs = AgentSpec::uniform(1000, "cpus:8;mem:16384;disk:100000", "rack:r1")?;
//! let fleet = start_many(FleetConfig::new("127.0.0.1:5050"), specs);
//! fleet.wait_registered(1000, Duration::from_secs(60)).await?;
//! println!("{:?}", fleet.counters());
//! fleet.shutdown().await;
//! # Ok(())
//! # }
//! ```

use super::executors::{Settings, Stats, DEFAULT_KILL_DELAY};
use super::Simulation;
use crate::core::{Core, CoreConfig, Input};
use crate::error::AgentError;
use crate::event_loop::EventLoop;
use crate::master_link::{self, LinkControl, LinkOptions};
use mantle_api::{AgentId, Attribute, Resources};
use mantle_sdk::http::HttpClient;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio::task::JoinHandle;

/// The program simulated agents name as their built-in executor; never run.
const SIMULATED_LAUNCHER: &str = "mantle";

/// Agents sharing one HTTP/2 connection unless the configuration says otherwise.
pub const DEFAULT_AGENTS_PER_CONNECTION: usize = 500;

/// How a fleet runs; [`FleetConfig::new`] gives the defaults.
#[derive(Clone, Debug)]
pub struct FleetConfig {
    /// `host:port` of the master.
    pub master: String,
    /// The address every agent advertises (in its pid `slave(1)@ip:port`).
    pub ip: Ipv4Addr,
    /// The run time of tasks that do not say (`plan.rs`); 0 by default.
    pub task_duration: Duration,
    /// How long a kill takes unless the task's grace period is shorter; 100 ms.
    pub kill_delay: Duration,
    /// `--executor_shutdown_grace_period`.
    pub executor_shutdown_grace_period: Duration,
    /// Registrations in flight at once across the fleet; 256.
    pub registrations_in_flight: usize,
    /// Calls (status updates, pongs) in flight at once on each HTTP/2 connection, or
    /// across the fleet over HTTP/1.1, where each is a connection of the pool; 256.
    /// (Once a bound across the whole fleet over HTTP/2 too: the pongs of tens of
    /// thousands of agents then queued behind each other for longer than the master
    /// waits for them, and it marked them unreachable.)
    pub calls_in_flight: usize,
    /// Agents whose streams and calls share one HTTP/2 connection; 500. 0 gives each
    /// agent a socket of its own, as a real agent has.
    pub agents_per_connection: usize,
    /// Named as the agents' work_dir in the sandbox paths they report; never created.
    pub work_dir: PathBuf,
    /// Seeds the agents' ids and uuids (agent `i` uses `seed + i`).
    pub seed: u64,
}

impl FleetConfig {
    pub fn new(master: impl Into<String>) -> FleetConfig {
        FleetConfig {
            master: master.into(),
            ip: Ipv4Addr::LOCALHOST,
            task_duration: Duration::ZERO,
            kill_delay: DEFAULT_KILL_DELAY,
            executor_shutdown_grace_period: Duration::from_secs(5),
            registrations_in_flight: 256,
            calls_in_flight: 256,
            agents_per_connection: DEFAULT_AGENTS_PER_CONNECTION,
            work_dir: PathBuf::from("/var/lib/mantle-simulated"),
            seed: 0,
        }
    }
}

/// One agent of a fleet.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentSpec {
    pub hostname: String,
    /// Advertised only: nothing listens on it.
    pub port: u16,
    pub resources: Resources,
    pub attributes: Vec<Attribute>,
}

impl AgentSpec {
    /// An agent with resources and attributes in their flag forms (`cpus:4;mem:1024`,
    /// `rack:r1;zone:2`); errors name the field.
    pub fn new(
        hostname: impl Into<String>,
        port: u16,
        resources: &str,
        attributes: &str,
    ) -> Result<AgentSpec, AgentError> {
        let hostname = hostname.into();
        if hostname.trim().is_empty() {
            return Err(AgentError::flag("hostname", "must not be empty"));
        }
        let resources = Resources::parse_flag(resources, "*").map_err(|e| {
            AgentError::flag("resources", e.trim_start_matches("resources: ").to_string())
        })?;
        let attributes = Attribute::parse_list(attributes).map_err(|e| {
            AgentError::flag(
                "attributes",
                e.trim_start_matches("attributes: ").to_string(),
            )
        })?;
        Ok(AgentSpec {
            hostname,
            port,
            resources,
            attributes,
        })
    }

    /// `count` agents alike but for their hostnames, `sim-0`, `sim-1`, ... (port 5051).
    pub fn uniform(
        count: usize,
        resources: &str,
        attributes: &str,
    ) -> Result<Vec<AgentSpec>, AgentError> {
        let first = AgentSpec::new("sim-0", 5051, resources, attributes)?;
        Ok((0..count)
            .map(|i| AgentSpec {
                hostname: format!("sim-{i}"),
                ..first.clone()
            })
            .collect())
    }
}

/// What a fleet's agents did, summed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Agents connected to the master now.
    pub registered: u64,
    /// REGISTERED answers taken, first registrations and later ones.
    pub registrations: u64,
    /// Tasks handed to simulated executors (LAUNCH, or one task of a LAUNCH_GROUP).
    pub tasks_launched: u64,
    /// Terminal updates the simulated executors sent, by state. Tasks the agent itself
    /// ends (killed before delivery, their executor gone) are not counted here.
    pub tasks_finished: u64,
    pub tasks_failed: u64,
    pub tasks_killed: u64,
}

#[derive(Debug, Default)]
struct Shared {
    registered: AtomicU64,
    registrations: AtomicU64,
    launched: AtomicU64,
    finished: AtomicU64,
    failed: AtomicU64,
    killed: AtomicU64,
}

/// One agent's record, written by its event loop.
#[derive(Debug, Default)]
struct Slot {
    agent_id: Mutex<Option<AgentId>>,
    connected: AtomicBool,
}

/// Reports one agent's registrations and tasks to its fleet (called by its event
/// loop).
pub(crate) struct Observer {
    shared: Arc<Shared>,
    slot: Arc<Slot>,
    reported: Stats,
}

impl Observer {
    pub fn input(&mut self, input: &Input) {
        match input {
            Input::Registered { agent_id, .. } => {
                if !self.slot.connected.swap(true, Ordering::Relaxed) {
                    self.shared.registered.fetch_add(1, Ordering::Relaxed);
                }
                self.shared.registrations.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut id) = self.slot.agent_id.lock() {
                    *id = Some(agent_id.clone());
                }
            }
            Input::Disconnected => disconnected(&self.slot, &self.shared),
            _ => {}
        }
    }

    pub fn stats(&mut self, now: Stats) {
        if now == self.reported {
            return;
        }
        let shared = &self.shared;
        let add = |counter: &AtomicU64, now: u64, before: u64| {
            counter.fetch_add(now - before, Ordering::Relaxed);
        };
        add(&shared.launched, now.launched, self.reported.launched);
        add(&shared.finished, now.finished, self.reported.finished);
        add(&shared.failed, now.failed, self.reported.failed);
        add(&shared.killed, now.killed, self.reported.killed);
        self.reported = now;
    }
}

/// Counts an agent that was connected as connected no more.
fn disconnected(slot: &Slot, shared: &Shared) {
    if slot.connected.swap(false, Ordering::Relaxed) {
        shared.registered.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One running agent of a fleet.
struct Member {
    slot: Arc<Slot>,
    control: watch::Sender<LinkControl>,
    shutdown: Option<oneshot::Sender<bool>>,
    event_loop: Option<JoinHandle<()>>,
    link: JoinHandle<()>,
}

/// A running fleet of simulated agents. Dropping it stops them all.
pub struct Fleet {
    members: Vec<Member>,
    shared: Arc<Shared>,
}

/// Starts one simulated agent per spec; must be called inside a tokio runtime. Agents
/// register in the background, at most `registrations_in_flight` at a time; see
/// [`Fleet::wait_registered`].
pub fn start_many(config: FleetConfig, specs: impl IntoIterator<Item = AgentSpec>) -> Fleet {
    let shared = Arc::new(Shared::default());
    let containers = Arc::new(crate::containers::Containerizer::simulated());
    let specs: Vec<AgentSpec> = specs.into_iter().collect();
    let clients = clients(
        specs.len(),
        config.agents_per_connection,
        config.calls_in_flight,
    );
    let registering = Arc::new(Semaphore::new(config.registrations_in_flight.max(1)));
    let spread_sources = config.agents_per_connection == 0
        && config
            .master
            .parse::<std::net::SocketAddr>()
            .is_ok_and(|master| master.ip().is_loopback());
    let start_time = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default();
    let members = specs
        .into_iter()
        .enumerate()
        .map(|(index, spec)| {
            let seed = config.seed.wrapping_add(index as u64);
            let core = Core::new(CoreConfig {
                hostname: spec.hostname,
                ip: config.ip,
                port: spec.port,
                resources: spec.resources,
                attributes: spec.attributes,
                work_dir: config.work_dir.clone(),
                launcher: PathBuf::from(SIMULATED_LAUNCHER),
                executor_registration_timeout: Duration::from_secs(60),
                executor_shutdown_grace_period: config.executor_shutdown_grace_period,
                executor_reregistration_timeout: Duration::from_secs(2),
                recovery_timeout: Duration::from_secs(15 * 60),
                docker_socket: None,
                flags: BTreeMap::new(),
                start_time,
                seed,
            });
            let slot = Arc::new(Slot::default());
            let observer = Observer {
                shared: shared.clone(),
                slot: slot.clone(),
                reported: Stats::default(),
            };
            let settings = Settings {
                task_duration: config.task_duration,
                kill_delay: config.kill_delay,
                launcher: PathBuf::from(SIMULATED_LAUNCHER),
                seed,
            };
            let (commands_tx, commands_rx) = mpsc::unbounded_channel();
            let (calls_tx, calls_rx) = mpsc::unbounded_channel();
            let (snapshot_tx, _) = watch::channel(Arc::new(crate::view::View::of(&core)));
            let event_loop = EventLoop::new(
                core,
                commands_rx,
                commands_tx.clone(),
                calls_tx,
                snapshot_tx,
                config.work_dir.clone(),
                containers.clone(),
            )
            .with_simulation(Simulation::new(settings, false, Some(observer)));
            let (shutdown_tx, shutdown_rx) = oneshot::channel();
            let (control, control_rx) = watch::channel(LinkControl::Up { generation: 0 });
            let (client, calls) = &clients[client_of(index, config.agents_per_connection)];
            let options = LinkOptions {
                client: client.clone(),
                registering: Some(registering.clone()),
                calls: Some(calls.clone()),
                control: Some(control_rx),
                source: spread_sources.then(|| loopback_source(index)),
            };
            let link = tokio::spawn(master_link::run(
                config.master.clone(),
                commands_tx,
                calls_rx,
                options,
            ));
            Member {
                slot,
                control,
                shutdown: Some(shutdown_tx),
                event_loop: Some(tokio::spawn(event_loop.run(shutdown_rx))),
                link,
            }
        })
        .collect();
    Fleet { members, shared }
}

/// The clients of a fleet of `agents`, each with the gate of its calls in flight: one
/// HTTP/2 client per `per_connection` agents, or none (each agent's own socket) when
/// `per_connection` is 0.
fn clients(
    agents: usize,
    per_connection: usize,
    calls_in_flight: usize,
) -> Vec<(Option<HttpClient>, Arc<Semaphore>)> {
    let gate = || Arc::new(Semaphore::new(calls_in_flight.max(1)));
    if per_connection == 0 {
        return vec![(None, gate())];
    }
    (0..agents.div_ceil(per_connection).max(1))
        .map(|_| (Some(LinkOptions::multiplexed_client()), gate()))
        .collect()
}

/// Sockets of their own leaving from one loopback address: one address has about
/// 28,000 ports to connect from (Linux's default range), so a fleet of more agents than
/// that on loopback spreads them over 127.0.0.1, 127.0.0.2, ...
const SOCKETS_PER_SOURCE: usize = 25_000;

/// The loopback address agent `index`'s own socket leaves from.
fn loopback_source(index: usize) -> std::net::IpAddr {
    let [_, _, high, low] = ((index / SOCKETS_PER_SOURCE + 1) as u32).to_be_bytes();
    Ipv4Addr::new(127, 0, high, low).into()
}

/// The index in [`clients`] of agent `index`'s client.
fn client_of(index: usize, per_connection: usize) -> usize {
    index.checked_div(per_connection).unwrap_or(0)
}

#[derive(Debug, thiserror::Error)]
#[error("{registered} of {wanted} simulated agents registered within {waited:?}")]
pub struct NotRegistered {
    pub registered: u64,
    pub wanted: u64,
    pub waited: Duration,
}

impl Fleet {
    /// How many agents the fleet started.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn counters(&self) -> Counters {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let shared = &self.shared;
        Counters {
            registered: read(&shared.registered),
            registrations: read(&shared.registrations),
            tasks_launched: read(&shared.launched),
            tasks_finished: read(&shared.finished),
            tasks_failed: read(&shared.failed),
            tasks_killed: read(&shared.killed),
        }
    }

    /// Waits until at least `count` agents are connected at once.
    pub async fn wait_registered(
        &self,
        count: usize,
        timeout: Duration,
    ) -> Result<(), NotRegistered> {
        let start = Instant::now();
        loop {
            let registered = self.counters().registered;
            if registered >= count as u64 {
                return Ok(());
            }
            if start.elapsed() >= timeout {
                return Err(NotRegistered {
                    registered,
                    wanted: count as u64,
                    waited: start.elapsed(),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The id the master gave agent `index`, once it registered.
    pub fn agent_id(&self, index: usize) -> Option<AgentId> {
        let member = self.members.get(index)?;
        member.slot.agent_id.lock().ok()?.clone()
    }

    /// Whether agent `index` is connected to the master.
    pub fn is_connected(&self, index: usize) -> bool {
        self.members
            .get(index)
            .is_some_and(|m| m.slot.connected.load(Ordering::Relaxed))
    }

    /// Closes agent `index`'s connection to the master; the agent reconnects and
    /// re-registers as after any lost connection (backoff, then REGISTER with its id and
    /// what it runs).
    pub fn drop_link(&self, index: usize) {
        if let Some(member) = self.members.get(index) {
            member.control.send_modify(|state| {
                let generation = match *state {
                    LinkControl::Up { generation } => generation,
                    LinkControl::Down => 0,
                };
                *state = LinkControl::Up {
                    generation: generation + 1,
                };
            });
        }
    }

    /// Closes agent `index`'s connection and keeps it closed until
    /// [`Fleet::restore_link`]: the master sees the agent disconnect and, after its
    /// `--agent_reregister_timeout`, marks it unreachable. Its tasks keep running.
    pub fn cut_link(&self, index: usize) {
        if let Some(member) = self.members.get(index) {
            member.control.send_replace(LinkControl::Down);
        }
    }

    /// Lets a cut link connect again.
    pub fn restore_link(&self, index: usize) {
        self.drop_link(index);
    }

    /// Stops agent `index` as a crash would: its connection closes, its simulated tasks
    /// end with it, and it never comes back.
    pub async fn stop_agent(&mut self, index: usize) {
        if let Some(member) = self.members.get_mut(index) {
            member.stop(&self.shared).await;
        }
    }

    /// Stops every agent.
    pub async fn shutdown(mut self) {
        for member in &mut self.members {
            member.stop(&self.shared).await;
        }
    }
}

impl Member {
    async fn stop(&mut self, shared: &Shared) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(false);
        }
        self.link.abort();
        if let Some(event_loop) = self.event_loop.take() {
            let _ = event_loop.await;
        }
        let _ = (&mut self.link).await;
        // The link ended without a word to the loop: the agent is no longer connected.
        disconnected(&self.slot, shared);
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for member in &mut self.members {
            if let Some(shutdown) = member.shutdown.take() {
                let _ = shutdown.send(false);
            }
            member.link.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_http2_connection_gates_its_own_calls() {
        let multiplexed = clients(1_200, 500, 256);
        assert_eq!(multiplexed.len(), 3);
        assert_eq!(
            [0, 499, 500, 1_199].map(|agent| client_of(agent, 500)),
            [0, 0, 1, 2]
        );
        // The calls of one connection's agents never wait for another's.
        let taken = multiplexed[0]
            .1
            .clone()
            .try_acquire_many_owned(256)
            .unwrap();
        assert_eq!(multiplexed[0].1.available_permits(), 0);
        assert!(multiplexed[1..]
            .iter()
            .all(|(_, gate)| gate.available_permits() == 256));
        drop(taken);
        // Over HTTP/1.1 one gate bounds the pool's connections for the whole fleet.
        let pool = clients(1_200, 0, 256);
        assert_eq!(pool.len(), 1);
        assert_eq!(client_of(1_199, 0), 0);
    }
}
