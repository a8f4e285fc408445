//! Simulated schedulers, one per framework. Each subscribes (again with its framework
//! id after a failover), keeps a target number of tasks alive by accepting offers and
//! launching command tasks or tasks on a custom executor, declines what it does not
//! use, SUPPRESSes when it needs nothing and REVIVEs when it does, acknowledges every
//! update that carries a uuid, kills some tasks, and reconciles after subscribing and
//! periodically (reference §5.5). Its task list survives its own restarts, as a real
//! framework keeps it in a store. In the settle phase it launches nothing and kills
//! every task it believes alive.

use crate::net::{ConnId, Down, Msg, Peer, Up};
use crate::truth::Plan;
use crate::world::{Ev, Phase, World};
use mantle_api::scheduler::{
    Accept, Acknowledge, CallBody, Decline, Event, Kill, Reconcile, ReconcileTask, Roles, Subscribe,
};
use mantle_api::*;
use rand::rngs::StdRng;
use rand::Rng;
use std::collections::BTreeMap;

/// How often a scheduler looks at its tasks.
const TICK_INTERVAL: f64 = 5.0;
/// How often it reconciles its live tasks explicitly.
const RECONCILE_INTERVAL: f64 = 30.0;
const MAX_BACKOFF: f64 = 10.0;

/// A task as the scheduler knows it.
#[derive(Clone, Debug)]
pub struct SchedTask {
    pub agent_id: AgentId,
    /// The state of the latest update it took.
    pub state: TaskState,
    /// It took a final state; later updates do not change its mind.
    pub done: bool,
    pub kill_sent: Option<f64>,
}

#[derive(Default)]
pub struct SchedNode {
    pub name: String,
    pub failover_timeout: f64,
    pub checkpoint: bool,
    pub partition_aware: bool,
    /// How many live tasks it wants.
    target: usize,
    pub framework_id: Option<FrameworkId>,
    /// Bumped by every start, crash and failover; events of an older life are ignored.
    pub life: u64,
    pub up: bool,
    pub conn: Option<ConnId>,
    pub subscribed: bool,
    backoff: f64,
    pub tasks: BTreeMap<TaskId, SchedTask>,
    offers: BTreeMap<OfferId, Offer>,
    next_task: u64,
    suppressed: bool,
    deciding: bool,
    last_reconcile: f64,
    /// How many times it subscribed.
    subscriptions: u64,
}

impl SchedNode {
    pub fn new(fw: usize, rng: &mut StdRng) -> SchedNode {
        let failover_timeout = match rng.random_range(0..20) {
            0 => 0.0,
            1..=7 => 15.0,
            8..=14 => 60.0,
            _ => 600.0,
        };
        SchedNode {
            name: format!("fw{fw}"),
            failover_timeout,
            checkpoint: rng.random_bool(0.85),
            partition_aware: rng.random_bool(0.5),
            target: rng.random_range(2..7),
            backoff: 0.2,
            ..SchedNode::default()
        }
    }

    fn info(&self) -> FrameworkInfo {
        let capabilities = if self.partition_aware {
            vec![Capability {
                kind: "PARTITION_AWARE".into(),
            }]
        } else {
            Vec::new()
        };
        FrameworkInfo {
            user: "sim".into(),
            name: self.name.clone(),
            id: self.framework_id.clone(),
            failover_timeout: self.failover_timeout,
            checkpoint: self.checkpoint,
            role: None,
            roles: Vec::new(),
            hostname: None,
            principal: None,
            webui_url: None,
            capabilities,
            labels: None,
            offer_filters: None,
        }
    }

    /// Tasks it counts as alive: launched and not known to have ended.
    fn live(&self) -> usize {
        self.tasks
            .values()
            .filter(|t| !t.done && !t.state.is_terminal())
            .count()
    }
}

impl World {
    pub fn sched_start(&mut self, fw: usize) {
        if self.scheds[fw].up {
            return;
        }
        let s = &mut self.scheds[fw];
        s.life += 1;
        s.up = true;
        s.conn = None;
        s.subscribed = false;
        s.offers.clear();
        s.backoff = 0.2;
        let life = s.life;
        self.note(|| format!("scheduler {fw} starts"));
        let tick = self.delay(0.0, TICK_INTERVAL);
        self.at(tick, Ev::SchedTick { fw, life });
        self.sched_connect(fw);
    }

    fn sched_connect(&mut self, fw: usize) {
        let conn = self.net.new_conn();
        let s = &mut self.scheds[fw];
        s.conn = Some(conn);
        let subscribe = Subscribe {
            framework_info: s.info(),
            suppressed_roles: Vec::new(),
            offer_constraints: None,
        };
        let sent = self.secs();
        self.send(Msg::Master {
            from: Peer::Sched(fw),
            sent,
            up: Up::Subscribe {
                conn,
                subscribe: Box::new(subscribe),
            },
        });
    }

    fn sched_call(&mut self, fw: usize, body: CallBody) {
        let s = &self.scheds[fw];
        let (Some(conn), Some(framework_id), true) = (s.conn, s.framework_id.clone(), s.subscribed)
        else {
            return;
        };
        let sent = self.secs();
        self.send(Msg::Master {
            from: Peer::Sched(fw),
            sent,
            up: Up::Call {
                conn,
                framework_id,
                body: Box::new(body),
            },
        });
    }

    /// The scheduler process dies; it comes back after `restart_after`.
    pub fn sched_crash(&mut self, fw: usize, restart_after: f64) {
        if !self.scheds[fw].up {
            return;
        }
        self.note(|| format!("scheduler {fw} crashes, restarts in {restart_after:.1}s"));
        self.sched_drop_conn(fw);
        let s = &mut self.scheds[fw];
        s.up = false;
        s.life += 1;
        s.subscribed = false;
        s.offers.clear();
        self.at(restart_after, Ev::SchedStart { fw });
    }

    /// A new scheduler instance takes over while the old one is still connected; the
    /// master fences the old one ("Framework failed over").
    pub fn sched_failover(&mut self, fw: usize) {
        let s = &mut self.scheds[fw];
        if !s.up || !s.subscribed {
            return;
        }
        s.life += 1;
        s.subscribed = false;
        s.offers.clear();
        s.deciding = false;
        let life = s.life;
        self.note(|| format!("scheduler {fw} fails over to a new instance"));
        let tick = self.delay(0.0, TICK_INTERVAL);
        self.at(tick, Ev::SchedTick { fw, life });
        self.sched_connect(fw);
    }

    /// The scheduler's connection resets: both sides see the stream end.
    pub fn sched_reset_conn(&mut self, fw: usize) {
        if self.scheds[fw].conn.is_none() {
            return;
        }
        self.note(|| format!("scheduler {fw} connection resets"));
        self.sched_drop_conn(fw);
        self.sched_lost(fw);
    }

    fn sched_drop_conn(&mut self, fw: usize) {
        if let Some(conn) = self.scheds[fw].conn.take() {
            let sent = self.secs();
            self.send(Msg::Master {
                from: Peer::Sched(fw),
                sent,
                up: Up::Closed { conn },
            });
        }
    }

    fn sched_lost(&mut self, fw: usize) {
        let s = &mut self.scheds[fw];
        s.conn = None;
        s.subscribed = false;
        s.offers.clear();
        let delay = s.backoff;
        s.backoff = (s.backoff * 2.0).min(MAX_BACKOFF);
        let life = s.life;
        self.at(delay, Ev::SchedReconnect { fw, life });
    }

    pub fn sched_reconnect(&mut self, fw: usize, life: u64) {
        let s = &self.scheds[fw];
        if s.life == life && s.up && s.conn.is_none() {
            self.sched_connect(fw);
        }
    }

    pub fn sched_receive(&mut self, fw: usize, conn: ConnId, down: Down<Event>) {
        let s = &self.scheds[fw];
        if !s.up || s.conn != Some(conn) {
            return;
        }
        match down {
            Down::Refused | Down::End => {
                self.note(|| format!("scheduler {fw} stream ended"));
                self.sched_lost(fw);
            }
            Down::Msg(event) => self.sched_event(fw, event),
        }
    }

    fn sched_event(&mut self, fw: usize, event: Event) {
        match event {
            Event::Subscribed(subscribed) => {
                let id = subscribed.framework_id;
                self.note(|| format!("scheduler {fw} subscribed as {id}"));
                let s = &mut self.scheds[fw];
                s.framework_id = Some(id.clone());
                s.subscribed = true;
                s.backoff = 0.2;
                s.suppressed = false;
                s.subscriptions += 1;
                let checkpoint = s.checkpoint;
                self.truth.frameworks.insert(id, checkpoint);
                self.sched_reconcile(fw, true);
            }
            Event::Offers(offers) => {
                let s = &mut self.scheds[fw];
                for offer in offers.offers {
                    s.offers.insert(offer.id.clone(), offer);
                }
                if !s.deciding {
                    s.deciding = true;
                    let life = s.life;
                    let delay = self.delay(0.005, 0.2);
                    self.at(delay, Ev::SchedDecide { fw, life });
                }
            }
            Event::Rescind(rescind) => {
                self.scheds[fw].offers.remove(&rescind.offer_id);
            }
            Event::Update(update) => self.sched_update(fw, update.status),
            Event::Error(error) => {
                self.note(|| format!("scheduler {fw} error: {}", error.message));
                if error.message.contains("removed") {
                    // Its framework is gone for good: start over as a new one.
                    let s = &mut self.scheds[fw];
                    if let Some(id) = s.framework_id.take() {
                        self.truth.removed.insert(id);
                    }
                    s.tasks.clear();
                }
            }
            _ => {}
        }
    }

    fn sched_update(&mut self, fw: usize, status: TaskStatus) {
        let Some(framework_id) = self.scheds[fw].framework_id.clone() else {
            return;
        };
        let key = (framework_id, status.task_id.clone());
        if self.config.trace > 0 {
            let line = format!(
                "scheduler {fw} <- {} {} {:?} {:?} uuid={}",
                status.task_id,
                status.state,
                status.source.map(|s| s.as_str()),
                status.reason.map(|r| r.as_str()),
                status.uuid.is_some()
            );
            self.note(|| line);
        }
        let subscription = self.scheds[fw].subscriptions;
        let done = self.check_update(&key, &status, subscription);
        let s = &mut self.scheds[fw];
        if let Some(task) = s.tasks.get_mut(&status.task_id) {
            if !task.done {
                task.state = status.state;
                task.done = done;
            }
        }
        if let (Some(uuid), Some(agent_id)) = (status.uuid, status.agent_id) {
            let ack = Acknowledge {
                agent_id,
                task_id: status.task_id,
                uuid,
            };
            self.sched_call(fw, CallBody::Acknowledge(ack));
        }
    }

    pub fn sched_decide(&mut self, fw: usize, life: u64) {
        let s = &mut self.scheds[fw];
        if s.life != life {
            return;
        }
        s.deciding = false;
        if !s.subscribed {
            return;
        }
        let offers: Vec<Offer> = std::mem::take(&mut s.offers).into_values().collect();
        let mut demand = match self.phase {
            Phase::Chaos => s.target.saturating_sub(s.live()),
            Phase::Settle => 0,
        };
        let mut unused = Vec::new();
        for offer in offers {
            let tasks = if demand > 0 {
                self.sched_tasks_for(fw, &offer, demand)
            } else {
                Vec::new()
            };
            if tasks.is_empty() {
                unused.push(offer.id);
                continue;
            }
            demand -= tasks.len();
            let refuse_seconds = self.delay(1.0, 10.0);
            let accept = Accept {
                offer_ids: vec![offer.id],
                operations: vec![Operation::launch(tasks)],
                filters: Some(Filters { refuse_seconds }),
            };
            self.sched_call(fw, CallBody::Accept(accept));
        }
        if demand == 0 && !self.scheds[fw].suppressed {
            // It needs nothing more for now.
            self.scheds[fw].suppressed = true;
            self.sched_call(fw, CallBody::Suppress(Roles::default()));
        }
        if !unused.is_empty() {
            // One DECLINE for all the offers it does not use.
            let refuse_seconds = self.delay(10.0, 60.0);
            let decline = Decline {
                offer_ids: unused,
                filters: Some(Filters { refuse_seconds }),
            };
            self.sched_call(fw, CallBody::Decline(decline));
        }
    }

    /// Up to `demand` tasks that fit in the offer, recorded as launched.
    fn sched_tasks_for(&mut self, fw: usize, offer: &Offer, demand: usize) -> Vec<TaskInfo> {
        let Ok(mut free) = Resources::from_wire("offer", &offer.resources) else {
            return Vec::new();
        };
        let framework_id = offer.framework_id.clone();
        let executor_id = ExecutorId::new(format!("ex-{}", offer.agent_id));
        let mut executor_running = offer.executor_ids.contains(&executor_id);
        let mut tasks = Vec::new();
        let count = self.rng.random_range(1..=demand.min(3));
        for _ in 0..count {
            let custom = self.chance(0.3);
            let cpus = if self.chance(0.5) { 0.5 } else { 1.0 };
            let mem = if self.chance(0.5) { 128 } else { 256 };
            let Some(port) = first_port(&free) else {
                break;
            };
            let text = format!("cpus:{cpus};mem:{mem};ports:[{port}-{port}]");
            let own = Resources::parse_text(&text, "*").expect("valid resources");
            let mut needed = own.clone();
            let executor = custom.then(|| ExecutorInfo {
                kind: None,
                executor_id: executor_id.clone(),
                framework_id: Some(framework_id.clone()),
                command: Some(CommandInfo::shell(crate::executor::CUSTOM_EXECUTOR)),
                container: None,
                resources: Resources::parse_text("cpus:0.1;mem:32", "*")
                    .expect("valid resources")
                    .to_wire(),
                name: None,
                source: None,
                data: None,
                discovery: None,
                shutdown_grace_period: None,
                labels: None,
            });
            if let (Some(e), false) = (&executor, executor_running) {
                needed.add(&Resources::from_wire("executor", &e.resources).unwrap_or_default());
            }
            if !free.contains(&needed) {
                break;
            }
            free.subtract(&needed);
            if custom {
                executor_running = true;
            }
            let s = &mut self.scheds[fw];
            s.next_task += 1;
            let task_id = TaskId::new(format!("{}-t{}", s.name, s.next_task));
            let long = self.chance(0.2);
            let duration = (!long).then(|| self.delay(20.0, 90.0));
            let outcome = if self.chance(0.2) {
                TaskState::Failed
            } else {
                TaskState::Finished
            };
            self.truth.launch(
                &(framework_id.clone(), task_id.clone()),
                Plan { duration, outcome },
            );
            self.scheds[fw].tasks.insert(
                task_id.clone(),
                SchedTask {
                    agent_id: offer.agent_id.clone(),
                    state: TaskState::Staging,
                    done: false,
                    kill_sent: None,
                },
            );
            tasks.push(TaskInfo {
                name: task_id.value.to_string(),
                task_id,
                agent_id: offer.agent_id.clone(),
                resources: own.to_wire(),
                command: (!custom).then(|| CommandInfo::shell("sleep")),
                executor: executor.map(Box::new),
                container: None,
                health_check: None,
                check: None,
                kill_policy: None,
                data: None,
                labels: None,
                discovery: None,
                max_completion_time: None,
                limits: None,
            });
        }
        tasks
    }

    pub fn sched_tick(&mut self, fw: usize, life: u64) {
        let s = &self.scheds[fw];
        if s.life != life || !s.up {
            return;
        }
        let subscribed = s.subscribed;
        self.at(TICK_INTERVAL, Ev::SchedTick { fw, life });
        if !subscribed {
            return;
        }
        let s = &self.scheds[fw];
        let now = self.secs();
        let settling = self.phase == Phase::Settle;
        let demand = !settling && s.live() < s.target;
        if demand && s.suppressed {
            self.scheds[fw].suppressed = false;
            self.sched_call(fw, CallBody::Revive(Roles::default()));
        } else if !demand && !s.suppressed {
            self.scheds[fw].suppressed = true;
            self.sched_call(fw, CallBody::Suppress(Roles::default()));
        }
        let to_kill: Vec<(TaskId, AgentId)> = {
            let live = self.scheds[fw]
                .tasks
                .iter()
                .filter(|(_, t)| !t.done && !t.state.is_terminal());
            if settling {
                live.filter(|(_, t)| t.kill_sent.is_none_or(|at| now - at >= 10.0))
                    .map(|(id, t)| (id.clone(), t.agent_id.clone()))
                    .collect()
            } else {
                let live: Vec<(TaskId, AgentId)> = live
                    .map(|(id, t)| (id.clone(), t.agent_id.clone()))
                    .collect();
                match live.len() {
                    0 => Vec::new(),
                    n if self.rng.random_bool(0.3) => {
                        vec![live[self.rng.random_range(0..n)].clone()]
                    }
                    _ => Vec::new(),
                }
            }
        };
        for (task_id, agent_id) in to_kill {
            if let Some(task) = self.scheds[fw].tasks.get_mut(&task_id) {
                task.kill_sent = Some(now);
            }
            let kill = Kill {
                task_id,
                agent_id: Some(agent_id),
                kill_policy: None,
            };
            self.sched_call(fw, CallBody::Kill(kill));
        }
        if now - self.scheds[fw].last_reconcile >= RECONCILE_INTERVAL {
            self.sched_reconcile(fw, false);
        }
    }

    /// Explicit reconciliation of the tasks it believes alive, and after subscribing an
    /// implicit one too.
    fn sched_reconcile(&mut self, fw: usize, implicit: bool) {
        self.scheds[fw].last_reconcile = self.secs();
        if implicit {
            self.sched_call(fw, CallBody::Reconcile(Reconcile { tasks: Vec::new() }));
        }
        let tasks: Vec<ReconcileTask> = self.scheds[fw]
            .tasks
            .iter()
            .filter(|(_, t)| !t.done)
            .map(|(id, t)| ReconcileTask {
                task_id: id.clone(),
                agent_id: Some(t.agent_id.clone()),
            })
            .collect();
        if !tasks.is_empty() {
            self.sched_call(fw, CallBody::Reconcile(Reconcile { tasks }));
        }
    }
}

/// The lowest port in the resources.
fn first_port(resources: &Resources) -> Option<u64> {
    resources
        .entries()
        .find_map(|(key, quantity)| match quantity {
            resources::Quantity::Ranges(ranges) if key.name == "ports" => {
                ranges.first().map(|(b, _)| *b)
            }
            _ => None,
        })
}
