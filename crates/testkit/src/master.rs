//! The simulated master process: the real [`Master`] core driven the way its event loop
//! drives it (`crates/master/src/event_loop.rs`). Calls and registrations are handled as
//! they arrive, the registry is stored after every step (an agent is admitted only once
//! stored, so a crash between two events loses nothing the store acknowledged), ticks
//! run every second with an allocation, and calls trigger an allocation shortly after,
//! as the loop's batching does. A crash closes every stream; a restart builds a new core
//! and recovers the stored registry.

use crate::net::{stream_name, ConnId, Down, Msg, Peer, Up};
use crate::world::{Ev, World};
use mantle_api::resources::Quantity;
use mantle_api::{AgentId, FrameworkId, Resources};
use mantle_master::core::{Action, Master, MasterConfig, Registry};
use std::collections::{BTreeMap, BTreeSet};

/// The master's timers, shortened so that failure detection happens within a run.
pub const AGENT_PING_INTERVAL: f64 = 10.0;
pub const MAX_AGENT_PING_TIMEOUTS: u32 = 3;
pub const AGENT_REREGISTER_TIMEOUT: f64 = 30.0;
/// How long after a call the allocation it triggers runs (the event loop's batching).
const ALLOCATION_DELAY: f64 = 0.5;

#[derive(Default)]
pub struct MasterNode {
    pub core: Option<Master>,
    /// Bumped by every start, so that timers of a dead master are ignored.
    pub epoch: u64,
    /// What the store holds. The event loop stores the registry after every step in
    /// which it changed; as `registry()` is a function of the core's state and a crash
    /// falls between two steps, taking it when the master crashes stores the same.
    stored: Registry,
    /// The open streams of the running master.
    streams: BTreeMap<String, (ConnId, Peer)>,
    allocation_pending: bool,
    frameworks: BTreeSet<FrameworkId>,
    /// The number of the newest offer already checked for overlaps.
    offers_checked: u64,
    pub crashes: usize,
}

impl World {
    fn master_config(&self) -> MasterConfig {
        let mut config = MasterConfig {
            agent_ping_interval: AGENT_PING_INTERVAL,
            max_agent_ping_timeouts: MAX_AGENT_PING_TIMEOUTS,
            agent_reregister_timeout: AGENT_REREGISTER_TIMEOUT,
            ..MasterConfig::default()
        };
        config.allocator.seed = self.seed ^ self.master.epoch;
        config
    }

    pub fn master_start(&mut self) {
        if self.master.core.is_some() {
            return;
        }
        self.master.epoch += 1;
        let epoch = self.master.epoch;
        let now = self.unix();
        let mut core = Master::new(format!("m{epoch}"), self.master_config(), now);
        core.recover_registry(now, self.master.stored.clone());
        self.master.frameworks = core.framework_ids();
        self.master.core = Some(core);
        self.master.allocation_pending = false;
        self.master.offers_checked = 0;
        self.note(|| format!("master m{epoch} started"));
        self.at(1.0, Ev::MasterTick { epoch });
    }

    /// The master process dies: every stream it had ends.
    pub fn master_crash(&mut self, restart_after: f64) {
        let Some(core) = self.master.core.take() else {
            return;
        };
        self.master.stored = core.registry();
        self.master.crashes += 1;
        self.note(|| format!("master crashes, restarts in {restart_after:.1}s"));
        let streams: Vec<(ConnId, Peer)> = std::mem::take(&mut self.master.streams)
            .into_values()
            .collect();
        for (conn, peer) in streams {
            self.send_down(conn, peer, false);
        }
        self.at(restart_after, Ev::MasterStart);
    }

    /// Ends a peer's stream (`refused`: the request that would have opened it failed).
    fn send_down(&mut self, conn: ConnId, peer: Peer, refused: bool) {
        let msg = match peer {
            Peer::Agent(agent) => Msg::Agent {
                agent,
                conn,
                down: if refused { Down::Refused } else { Down::End },
            },
            Peer::Sched(fw) => Msg::Sched {
                fw,
                conn,
                down: if refused { Down::Refused } else { Down::End },
            },
        };
        self.send(msg);
    }

    pub fn master_tick(&mut self, epoch: u64) {
        if epoch != self.master.epoch || self.master.core.is_none() {
            return;
        }
        let now = self.unix();
        if let Some(core) = self.master.core.as_mut() {
            core.tick(now);
            core.allocate(now);
        }
        self.master_after_step();
        self.check_offers();
        self.at(1.0, Ev::MasterTick { epoch });
    }

    pub fn master_allocate(&mut self, epoch: u64) {
        if epoch != self.master.epoch {
            return;
        }
        self.master.allocation_pending = false;
        let now = self.unix();
        let Some(core) = self.master.core.as_mut() else {
            return;
        };
        core.allocate(now);
        self.master_after_step();
        self.check_offers();
    }

    fn request_allocation(&mut self) {
        if !self.master.allocation_pending {
            self.master.allocation_pending = true;
            let epoch = self.master.epoch;
            self.at(ALLOCATION_DELAY, Ev::MasterAllocate { epoch });
        }
    }

    pub fn master_receive(&mut self, from: Peer, _sent: f64, up: Up) {
        let now = self.unix();
        let Some(core) = self.master.core.as_mut() else {
            // Nobody listens: opening a stream is refused at once, calls fail.
            match up {
                Up::Register { conn, .. } | Up::Subscribe { conn, .. } => {
                    self.send_down(conn, from, true)
                }
                _ => {}
            }
            return;
        };
        match up {
            Up::Register { conn, register, .. } => {
                let stream = stream_name(conn);
                if self.config.trace > 0 {
                    let line = format!(
                        "master <- register {from:?} id {:?} with tasks {:?}",
                        register.agent_info.id.as_ref().map(|id| id.to_string()),
                        register
                            .tasks
                            .iter()
                            .map(|t| format!("{}:{}:{}", t.framework_id, t.task.task_id, t.state))
                            .collect::<Vec<_>>()
                    );
                    self.note(|| line);
                }
                let Some(core) = self.master.core.as_mut() else {
                    return;
                };
                self.master.streams.insert(stream.clone(), (conn, from));
                if core
                    .register_agent(now, stream.as_str().into(), *register)
                    .is_err()
                {
                    self.master.streams.remove(&stream);
                    core.stream_closed(now, &stream);
                    self.send_down(conn, from, true);
                }
            }
            Up::AgentCall { conn, call } => {
                let _ = core.agent_call(now, &stream_name(conn), *call);
            }
            Up::Subscribe {
                conn, subscribe, ..
            } => {
                let stream = stream_name(conn);
                self.master.streams.insert(stream.clone(), (conn, from));
                if core
                    .subscribe(now, *subscribe, stream.as_str().into())
                    .is_err()
                {
                    self.master.streams.remove(&stream);
                    self.send_down(conn, from, true);
                }
            }
            Up::Call {
                conn,
                framework_id,
                body,
            } => {
                let stream = stream_name(conn);
                let _ = core.scheduler_call(now, &framework_id, Some(&stream), *body);
            }
            Up::Closed { conn } => {
                let stream = stream_name(conn);
                if self.master.streams.remove(&stream).is_some() {
                    core.stream_closed(now, &stream);
                }
            }
        }
        self.master_after_step();
        self.request_allocation();
    }

    /// What the event loop does after each command: carry out the actions on the
    /// streams (the registry is taken when the master crashes; see `stored`).
    fn master_after_step(&mut self) {
        let Some(core) = self.master.core.as_mut() else {
            return;
        };
        let frameworks = core.framework_ids();
        let actions = core.take_actions();
        let removed: Vec<FrameworkId> = self
            .master
            .frameworks
            .difference(&frameworks)
            .cloned()
            .collect();
        self.master.frameworks = frameworks;
        for id in removed {
            self.note(|| format!("master removed framework {id}"));
            self.truth.removed.insert(id);
        }
        for action in actions {
            match action {
                Action::Framework { stream, event } => {
                    if let Some(&(conn, Peer::Sched(fw))) = self.master.streams.get(&*stream) {
                        self.send(Msg::Sched {
                            fw,
                            conn,
                            down: Down::Msg(event),
                        });
                    }
                }
                Action::Agent { stream, message } => {
                    if let Some(&(conn, Peer::Agent(agent))) = self.master.streams.get(&*stream) {
                        self.send(Msg::Agent {
                            agent,
                            conn,
                            down: Down::Msg(message),
                        });
                    }
                }
                Action::CloseFramework { stream } | Action::CloseAgent { stream } => {
                    if let Some((conn, peer)) = self.master.streams.remove(&*stream) {
                        self.send_down(conn, peer, false);
                    }
                }
                // The simulation opens no operator event stream.
                Action::Operator { .. } => {}
            }
        }
    }

    /// No resource is offered twice at once: on every agent that got a new offer, the
    /// outstanding offers and what the master's live tasks and executors hold fit in the
    /// agent's total, and no port appears twice. Only a new offer can break this, so
    /// only the agents of new offers are checked.
    pub fn check_offers(&mut self) {
        let Some(core) = self.master.core.as_ref() else {
            return;
        };
        let checked = self.master.offers_checked;
        let mut newest = checked;
        let mut fresh: BTreeSet<&AgentId> = BTreeSet::new();
        for offer in core.offers() {
            let number = offer_number(offer.id.as_str());
            if number > checked {
                fresh.insert(&offer.agent_id);
                newest = newest.max(number);
            }
        }
        if fresh.is_empty() {
            return;
        }
        let mut held: BTreeMap<&AgentId, Holdings> = BTreeMap::new();
        for offer in core.offers().filter(|o| fresh.contains(&o.agent_id)) {
            let holdings = held.entry(&offer.agent_id).or_default();
            for r in &offer.resources {
                let who = Holder::Offer(offer.id.as_str());
                if let Some(scalar) = &r.scalar {
                    holdings.add_scalar(&r.name, (scalar.value * 1000.0).round() as i64, who);
                }
                for range in r.ranges.iter().flat_map(|rs| &rs.range) {
                    holdings.ports.push((range.begin, range.end, who));
                }
            }
        }
        for framework in core.frameworks() {
            for task in framework.tasks.values() {
                if !task.state.is_terminal() && fresh.contains(&task.info.agent_id) {
                    let who = Holder::Task(task.info.task_id.as_str());
                    held.entry(&task.info.agent_id)
                        .or_default()
                        .add(&task.resources, who);
                }
            }
            for (agent, executors) in &framework.executors {
                let Some(agent) = fresh.get(agent) else {
                    continue;
                };
                for (id, executor) in executors {
                    let who = Holder::Executor(id.as_str());
                    held.entry(agent).or_default().add(&executor.resources, who);
                }
            }
        }
        let mut problem = None;
        for agent in core.agents().filter(|a| fresh.contains(&a.id)) {
            if let Some(p) = held.get(&agent.id).and_then(|h| h.overlap(&agent.total)) {
                problem = Some(format!("agent {}: {p}", agent.id));
                break;
            }
        }
        self.master.offers_checked = newest;
        if let Some(problem) = problem {
            self.fail(format!("resources held twice: {problem}"));
        }
    }
}

/// The sequence number in an offer id (`<master>-O<n>`).
fn offer_number(id: &str) -> u64 {
    id.rsplit_once("-O")
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or(u64::MAX)
}

/// Who holds some of an agent's resources.
#[derive(Clone, Copy)]
enum Holder<'a> {
    Offer(&'a str),
    Task(&'a str),
    Executor(&'a str),
}

impl std::fmt::Debug for Holder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Holder::Offer(id) => write!(f, "offer {id}"),
            Holder::Task(id) => write!(f, "task {id}"),
            Holder::Executor(id) => write!(f, "executor {id}"),
        }
    }
}

/// What the holders of one agent's resources hold together.
#[derive(Default)]
struct Holdings<'a> {
    /// Per scalar name, the sum in thousandths and who holds some.
    scalars: BTreeMap<&'a str, (i64, Vec<Holder<'a>>)>,
    ports: Vec<(u64, u64, Holder<'a>)>,
}

impl<'a> Holdings<'a> {
    fn add_scalar(&mut self, name: &'a str, thousandths: i64, who: Holder<'a>) {
        let entry = self.scalars.entry(name).or_default();
        entry.0 += thousandths;
        entry.1.push(who);
    }

    fn add(&mut self, resources: &'a Resources, who: Holder<'a>) {
        for (key, quantity) in resources.entries() {
            match quantity {
                Quantity::Scalar(v) => self.add_scalar(&key.name, *v, who),
                Quantity::Ranges(ranges) => {
                    self.ports.extend(ranges.iter().map(|(b, e)| (*b, *e, who)))
                }
                Quantity::Set(_) => {}
            }
        }
    }

    /// Why the holders do not fit in `total`, if they do not: a scalar summed past the
    /// total, or a port held twice.
    fn overlap(&self, total: &Resources) -> Option<String> {
        for (name, (sum, who)) in &self.scalars {
            let limit = total
                .entries()
                .filter(|(k, _)| k.name == *name)
                .map(|(_, q)| match q {
                    Quantity::Scalar(v) => *v,
                    _ => 0,
                })
                .sum::<i64>();
            if *sum > limit {
                return Some(format!(
                    "{name} held {} of {} by {who:?}",
                    *sum as f64 / 1000.0,
                    limit as f64 / 1000.0
                ));
            }
        }
        let mut ports = self.ports.clone();
        ports.sort_by_key(|(b, e, _)| (*b, *e));
        ports
            .windows(2)
            .find(|p| p[1].0 <= p[0].1)
            .map(|p| format!("port {} held by {:?} and {:?}", p[1].0, p[0].2, p[1].2))
    }
}
