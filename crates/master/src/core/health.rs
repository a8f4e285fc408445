//! Failure detection (reference §5.1, "Health"): an agent that answers no ping for
//! `max_agent_ping_timeouts` x `agent_ping_timeout`, or that stays disconnected for
//! `agent_reregister_timeout`, becomes unreachable, at most as fast as
//! `--agent_removal_rate_limit` allows. Its offers are rescinded, frameworks get
//! `FAILURE{agent_id}`, and its tasks become TASK_UNREACHABLE (TASK_LOST for frameworks
//! that are not PARTITION_AWARE) while the master keeps tracking them. When the agent
//! re-registers, the tasks it reports come back and their state is sent again with
//! REASON_AGENT_REREGISTERED (the Mesos 1.5 rule).

use super::{Action, Agent, Master, StreamId};
use mantle_api::internal::Register;
use mantle_api::scheduler::{Event, Failure, Update};
use mantle_api::*;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

/// `--agent_removal_rate_limit`: at most `count` agents per `per_seconds`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RemovalRate {
    pub count: u32,
    pub per_seconds: f64,
}

impl RemovalRate {
    /// Parses `N/DURATION` (`1/10mins`, `5/1hrs`); durations use the Mesos units.
    pub fn parse(text: &str) -> Result<RemovalRate, String> {
        let flag = "--agent_removal_rate_limit";
        let (count, per) = text
            .split_once('/')
            .ok_or_else(|| format!("{flag}: '{text}' is not of the form N/DURATION"))?;
        let count: u32 = count
            .trim()
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("{flag}: '{count}' is not a positive whole number"))?;
        let per = mantle_api::duration::parse_duration(per.trim())
            .map_err(|e| format!("{flag}: {e}"))?
            .as_secs_f64();
        if per <= 0.0 {
            return Err(format!("{flag}: the duration must be positive"));
        }
        Ok(RemovalRate {
            count,
            per_seconds: per,
        })
    }
}

/// An agent the master stopped hearing from.
#[derive(Clone, Debug)]
pub struct UnreachableAgent {
    pub info: AgentInfo,
    pub since: f64,
}

/// The master's failure-detection state.
#[derive(Clone, Debug, Default)]
pub struct Health {
    /// Unreachable agents, kept until they re-register.
    pub unreachable: BTreeMap<AgentId, UnreachableAgent>,
    /// Agents of the registry that have not re-registered since this master started,
    /// with the time by which they must.
    pub recovered: BTreeMap<AgentId, (AgentInfo, f64)>,
    /// Agents found failed and waiting for the removal rate limit, in order, and as a
    /// set: every pong asks whether its agent is among them.
    pending: VecDeque<AgentId>,
    pending_set: HashSet<AgentId>,
    /// When the next removal is allowed under the rate limit.
    next_removal: f64,
    pub scheduled: u64,
    pub completed: u64,
    pub canceled: u64,
    /// The pings of the current round not sent yet, and how many and when it started.
    ping_queue: VecDeque<StreamId>,
    ping_round: (usize, f64),
    /// When [`Master::detect_failures`] next looks at every agent.
    next_check: f64,
}

/// A ping round's first slice: a smaller cluster is pinged all at once.
const PING_SLICE: usize = 500;

/// How often, at most, every agent is checked for silence.
const FAILURE_CHECK_INTERVAL: f64 = 1.0;

impl Health {
    pub(super) fn start_ping_round(&mut self, now: f64, streams: Vec<StreamId>) {
        // A round still under way when the next is due ends here (its agents are in the
        // new one too).
        self.ping_round = (streams.len(), now);
        self.ping_queue = streams.into();
    }

    /// The pings of the round due by `now`. A round is spread over the first half of
    /// the interval: 20,000 pongs at once kept the master's cores busy for a second,
    /// and a `/master/state` read that came then took twice as long. Each agent is
    /// still pinged once a round, and its pong comes long before the agent counts as
    /// silent (several intervals).
    pub(super) fn pings_due(&mut self, now: f64, interval: f64) -> Vec<StreamId> {
        let (total, started) = self.ping_round;
        let spread = interval / 2.0;
        let share = if spread > 0.0 {
            ((now - started) / spread).clamp(0.0, 1.0)
        } else {
            1.0
        };
        let due = ((total as f64 * share).ceil() as usize).max(PING_SLICE.min(total));
        let sent = total - self.ping_queue.len();
        let count = due.saturating_sub(sent).min(self.ping_queue.len());
        self.ping_queue.drain(..count).collect()
    }
}

impl Master {
    /// Records that the agent on `agent_id` was heard from (a pong or any call); an
    /// agent waiting to be marked unreachable is spared.
    pub(super) fn heard_from(&mut self, now: f64, agent_id: &AgentId) {
        if let Some(agent) = self.agents.get_mut(agent_id) {
            agent.last_heard = now;
        }
        self.cancel_unreachable(agent_id);
    }

    pub(super) fn cancel_unreachable(&mut self, agent_id: &AgentId) {
        if self.health.pending_set.remove(agent_id) {
            self.health.pending.retain(|a| a != agent_id);
            self.health.canceled += 1;
            tracing::info!(agent_id = %agent_id, "agent is back before being marked unreachable");
        }
    }

    /// Finds agents that missed too many pings or stayed disconnected too long, and
    /// marks as many unreachable as the rate limit allows.
    /// The streams of the agents to ping in the round due at `now`. An agent that
    /// (re-)registered since the last round is left for the next one, as long as a pong
    /// to that one still comes a whole interval before the agent counts as silent: as
    /// in Mesos, where each agent's pings are timed from its own registration, pings
    /// then start an interval after an agent's REGISTERED (which resets the agent's own
    /// silence timer too). Pinging every agent at once instead hit a crowd re-registering
    /// after a failover with a pong from each agent already back, in the middle of the
    /// registrations (at 40,000 agents a round of 30,000 pongs slowed the rest of the
    /// re-registrations for about 5 s).
    pub(super) fn agents_to_ping(&self, now: f64) -> Vec<StreamId> {
        let interval = self.config.agent_ping_interval;
        let silence = interval * f64::from(self.config.max_agent_ping_timeouts);
        let can_wait = |agent: &Agent| {
            let registered = agent.reregistered_time.unwrap_or(agent.registered_time);
            now - registered < interval
                && now + 2.0 * interval - agent.last_heard <= silence - interval
        };
        self.agents
            .values()
            .filter(|agent| !can_wait(agent))
            .filter_map(|agent| agent.stream.clone())
            .collect()
    }

    /// Schedules the agents that went silent (or stayed disconnected) too long to be
    /// marked unreachable, and marks those the removal rate limit lets through. Finding
    /// them walks every agent, so it runs at most every [`FAILURE_CHECK_INTERVAL`] (a
    /// quarter of the ping interval when that is shorter), not at every tick: at 100,000
    /// agents ten walks a second took a sixth of the event loop's time.
    pub(super) fn detect_failures(&mut self, now: f64) {
        let interval = self.config.agent_ping_interval;
        if now >= self.health.next_check {
            self.health.next_check = now + FAILURE_CHECK_INTERVAL.min(interval / 4.0);
            self.find_failures(now);
        }
        let mut due = Vec::new();
        while now >= self.health.next_removal {
            let Some(agent_id) = self.health.pending.pop_front() else {
                break;
            };
            self.health.pending_set.remove(&agent_id);
            if let Some(rate) = self.config.agent_removal_rate_limit {
                self.health.next_removal = now + rate.per_seconds / f64::from(rate.count);
            }
            due.push(agent_id);
        }
        self.mark_unreachable(now, &due);
    }

    fn find_failures(&mut self, now: f64) {
        let silence =
            self.config.agent_ping_interval * f64::from(self.config.max_agent_ping_timeouts);
        let reregister = self.config.agent_reregister_timeout;
        let pending = &self.health.pending_set;
        let failed: Vec<AgentId> = self
            .agents
            .values()
            .filter(|a| match a.disconnected_since {
                Some(since) => now - since >= reregister,
                None => now - a.last_heard > silence,
            })
            .map(|a| a.id.clone())
            .filter(|id| !pending.contains(id))
            .collect();
        let overdue: Vec<AgentId> = self
            .health
            .recovered
            .iter()
            .filter(|(id, (_, deadline))| now >= *deadline && !pending.contains(*id))
            .map(|(id, _)| id.clone())
            .collect();
        for agent_id in failed.into_iter().chain(overdue) {
            tracing::warn!(agent_id = %agent_id, "agent failed health checks; scheduling it to be marked unreachable");
            self.health.scheduled += 1;
            self.health.pending_set.insert(agent_id.clone());
            self.health.pending.push_back(agent_id);
        }
    }

    /// The agents become unreachable: their streams are closed, their offers rescinded,
    /// their tasks reported UNREACHABLE (or LOST) and kept, and every framework told.
    /// Their tasks are found through the task index: agents that stop answering
    /// together (a rack, or a crowd whose pongs are late) once cost a walk of every task
    /// each, and held the event loop for seconds at 400,000 tasks.
    fn mark_unreachable(&mut self, now: f64, agent_ids: &[AgentId]) {
        // The hostname of each agent whose tasks move, in the order they were found.
        let mut removed: Vec<(AgentId, String)> = Vec::new();
        for agent_id in agent_ids {
            if let Some((info, _)) = self.health.recovered.remove(agent_id) {
                // Known from the registry only: no task of it is known either.
                tracing::warn!(agent_id = %agent_id, "agent did not re-register after the master restarted; it is unreachable");
                self.health.completed += 1;
                self.agent_entry_changed(agent_id);
                self.health
                    .unreachable
                    .insert(agent_id.clone(), UnreachableAgent { info, since: now });
                self.dirty = true;
                continue;
            }
            let Some(agent) = self.agents.remove(agent_id) else {
                continue;
            };
            self.forget_removed_agent(&agent);
            self.agent_removed(agent_id);
            self.agent_entry_changed(agent_id);
            tracing::warn!(agent_id = %agent_id, hostname = %agent.info.hostname, "agent is unreachable");
            self.health.completed += 1;
            self.counters.agent_removals += 1;
            if let Some(stream) = agent.stream.clone() {
                self.actions.push(Action::CloseAgent { stream });
            }
            self.rescind_agent_offers(now, agent_id);
            self.rescind_agent_inverse_offers(agent_id);
            self.forget_agent_answers(agent_id);
            self.allocator.remove_agent(agent_id);
            removed.push((agent_id.clone(), agent.info.hostname.clone()));
            self.health.unreachable.insert(
                agent_id.clone(),
                UnreachableAgent {
                    info: agent.full_info(),
                    since: now,
                },
            );
            self.dirty = true;
        }
        if removed.is_empty() {
            return;
        }
        // The live tasks of each removed agent, per framework, from the task index (in
        // each framework's task order).
        let mut live: HashMap<FrameworkId, Vec<Vec<TaskId>>> = HashMap::new();
        for (i, (agent_id, _)) in removed.iter().enumerate() {
            for (framework_id, task_id) in self.tasks_on(agent_id) {
                let running = self
                    .frameworks
                    .get(&framework_id)
                    .and_then(|f| f.tasks.get(&task_id))
                    .is_some_and(|t| !t.state.is_terminal());
                if running {
                    live.entry(framework_id)
                        .or_insert_with(|| vec![Vec::new(); removed.len()])[i]
                        .push(task_id);
                }
            }
        }
        let frameworks: Vec<FrameworkId> = self.frameworks.keys().cloned().collect();
        for framework_id in frameworks {
            // Empty for a framework with no task on these agents.
            let mut live = live.remove(&framework_id).unwrap_or_default();
            let framework = self.frameworks.get_mut(&framework_id).expect("listed");
            let partition_aware = framework.is_partition_aware();
            let state = if partition_aware {
                TaskState::Unreachable
            } else {
                TaskState::Lost
            };
            let mut events = Vec::new();
            for (i, (agent_id, hostname)) in removed.iter().enumerate() {
                let ids = live.get_mut(i).map(std::mem::take).unwrap_or_default();
                framework.executors.remove(agent_id);
                let message = format!("Agent {hostname} is unreachable");
                for id in ids {
                    let mut task = self.agent_tasks.take_task(framework, &id).expect("listed");
                    task.state = TaskState::Unreachable;
                    task.unreachable_time = Some(now);
                    let mut status = TaskStatus::new(id.clone(), state);
                    status.agent_id = Some(agent_id.clone());
                    status.source = Some(Source::Master);
                    status.reason = Some(Reason::AgentRemoved);
                    status.message = Some(message.clone());
                    status.unreachable_time = Some(TimeInfo {
                        nanoseconds: (now * 1e9) as i64,
                    });
                    framework.unreachable_tasks.insert(id, task);
                    events.push(Event::Update(Update { status }));
                }
                events.push(agent_lost(agent_id));
            }
            for event in events {
                self.send(&framework_id, event);
            }
        }
    }

    /// An unreachable agent re-registers: the tasks it reports come back from the
    /// frameworks' unreachable lists with their state sent again; those it does not
    /// report are gone (TASK_GONE, or TASK_LOST for frameworks that are not
    /// PARTITION_AWARE).
    /// Returns what the returning tasks hold, for the allocator.
    pub(super) fn readmit_unreachable(
        &mut self,
        now: f64,
        agent_id: &AgentId,
        register: &Register,
    ) -> Vec<(FrameworkId, String, Resources)> {
        let mut used = Vec::new();
        if self.health.recovered.remove(agent_id).is_some() {
            tracing::info!(agent_id = %agent_id, "agent re-registered after the master restarted");
        }
        if self.health.unreachable.remove(agent_id).is_none() {
            return used;
        }
        tracing::info!(agent_id = %agent_id, "unreachable agent re-registered");
        let frameworks: Vec<FrameworkId> = self.frameworks.keys().cloned().collect();
        for framework_id in frameworks {
            let framework = self.frameworks.get_mut(&framework_id).expect("listed");
            let partition_aware = framework.is_partition_aware();
            let ids: Vec<TaskId> = framework
                .unreachable_tasks
                .values()
                .filter(|t| &t.info.agent_id == agent_id)
                .map(|t| t.info.task_id.clone())
                .collect();
            let mut updates = Vec::new();
            // Tasks the agent reports that the master has on neither list: it restarted
            // while the agent was unreachable, so its framework last heard
            // TASK_UNREACHABLE (or an answer to reconciliation saying so). They are
            // adopted after this; the framework hears that they are back first. A task
            // this master has already retired is not back: adopting kills it.
            for report in register.tasks.iter().filter(|r| {
                let id = &r.task.task_id;
                r.framework_id == framework_id
                    && !framework.tasks.contains_key(id)
                    && !framework.unreachable_tasks.contains_key(id)
                    && !framework.retired(id)
            }) {
                updates.push((
                    report.task.task_id.clone(),
                    report.state,
                    "Unreachable agent re-reregistered",
                ));
            }
            for id in ids {
                let mut task = framework.unreachable_tasks.remove(&id).expect("listed");
                let reported = register
                    .tasks
                    .iter()
                    .find(|r| r.framework_id == framework_id && r.task.task_id == id);
                match reported {
                    Some(report) => {
                        // A task that ended while the agent was away comes back with its
                        // end, which its update (still unacknowledged) will confirm.
                        task.state = report.state;
                        task.unreachable_time = None;
                        if !report.state.is_terminal() {
                            used.push((
                                framework_id.clone(),
                                task.role.to_string(),
                                task.resources.clone(),
                            ));
                        }
                        updates.push((
                            id.clone(),
                            report.state,
                            "Unreachable agent re-reregistered",
                        ));
                        self.agent_tasks.insert_task(framework, task);
                    }
                    None => {
                        let state = if partition_aware {
                            TaskState::Gone
                        } else {
                            TaskState::Lost
                        };
                        task.state = state;
                        updates.push((
                            id.clone(),
                            state,
                            "Task was not reported by the re-registered agent",
                        ));
                        framework.completed_tasks.push_back(Arc::new(task));
                    }
                }
            }
            for (task_id, state, message) in updates {
                let mut status = TaskStatus::new(task_id, state);
                status.agent_id = Some(agent_id.clone());
                status.source = Some(Source::Master);
                status.reason = Some(Reason::AgentReregistered);
                status.message = Some(message.to_string());
                status.timestamp = Some(now);
                self.send(&framework_id, Event::Update(Update { status }));
            }
        }
        self.dirty = true;
        used
    }

    /// FAILURE{agent_id}: the framework lost an agent.
    pub(super) fn send_agent_lost(&mut self, framework_id: &FrameworkId, agent_id: &AgentId) {
        self.send(framework_id, agent_lost(agent_id));
    }

    /// Counts for `/master/state` and the metrics: unreachable agents and tasks.
    pub fn unreachable_counts(&self) -> (usize, usize) {
        let tasks = self
            .frameworks
            .values()
            .map(|f| f.unreachable_tasks.len())
            .sum();
        (self.health.unreachable.len(), tasks)
    }
}

/// The FAILURE{agent_id} event of a lost agent.
fn agent_lost(agent_id: &AgentId) -> Event {
    Event::Failure(Failure {
        agent_id: Some(agent_id.clone()),
        executor_id: None,
        status: None,
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{command_task, framework_info, register_call, subscribe_info};
    use super::super::MasterConfig;
    use super::*;
    use mantle_api::internal::{AgentCall, TaskReport, ToAgent};

    /// A master with pings every second (unreachable after 3 missed), a PARTITION_AWARE
    /// framework on `s1` and another on `s2`, and `agents` agents that each came back
    /// after a failover with one running task of each framework.
    fn agents_with_tasks(agents: usize) -> (Master, Vec<AgentId>) {
        let config = MasterConfig {
            agent_ping_interval: 1.0,
            max_agent_ping_timeouts: 3,
            ..MasterConfig::default()
        };
        let mut m = Master::new("M".into(), config, 0.0);
        let mut aware = framework_info("aware");
        aware.capabilities = vec![Capability {
            kind: "PARTITION_AWARE".into(),
        }];
        let frameworks = [
            subscribe_info(&mut m, "s1", aware),
            subscribe_info(&mut m, "s2", framework_info("plain")),
        ];
        let ids = (0..agents)
            .map(|i| {
                let id = AgentId::new(format!("A{i}"));
                let mut register = register_call(Some(id.clone()), "cpus:4;mem:1024");
                register.agent_info.hostname = format!("h{i}");
                register.pid = format!("slave(1)@127.0.0.1:{}", 6000 + i);
                register.tasks = frameworks
                    .iter()
                    .enumerate()
                    .map(|(k, fid)| TaskReport {
                        framework_id: fid.clone(),
                        task: command_task(&format!("t{i}-{k}"), &id, "cpus:1"),
                        state: TaskState::Running,
                        executor_id: None,
                    })
                    .collect();
                m.register_agent(0.0, format!("a{i}").into(), register)
                    .unwrap();
                id
            })
            .collect();
        m.take_actions();
        (m, ids)
    }

    /// What a framework's stream got: `(task, state, agent)` for updates and
    /// `("FAILURE", agent)` for lost agents, in order.
    fn sent_to(actions: &[Action], stream: &str) -> Vec<(String, Option<TaskState>, String)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Framework { stream: s, event } if &**s == stream => Some(event),
                _ => None,
            })
            .map(|event| match event {
                Event::Update(u) => (
                    u.status.task_id.value.to_string(),
                    Some(u.status.state),
                    u.status.agent_id.as_ref().unwrap().value.to_string(),
                ),
                Event::Failure(f) => (
                    "FAILURE".into(),
                    None,
                    f.agent_id.as_ref().unwrap().value.to_string(),
                ),
                other => panic!("unexpected event {other:?}"),
            })
            .collect()
    }

    #[test]
    fn agents_that_go_silent_together_are_marked_in_one_pass() {
        let (mut m, ids) = agents_with_tasks(4);
        // A2 keeps answering; the others go silent.
        for now in [1.0, 2.0, 3.0] {
            m.tick(now);
            m.agent_call(now, "a2", AgentCall::Pong).unwrap();
        }
        m.take_actions();
        m.tick(3.5);
        let actions = m.take_actions();
        let closed: Vec<&str> = actions
            .iter()
            .filter_map(|a| match a {
                Action::CloseAgent { stream } => Some(&**stream),
                _ => None,
            })
            .collect();
        assert_eq!(closed, vec!["a0", "a1", "a3"]);
        // Each lost agent's updates come before its FAILURE, agent after agent.
        let lost = |state: TaskState, k: usize| -> Vec<(String, Option<TaskState>, String)> {
            [0, 1, 3]
                .iter()
                .flat_map(|i| {
                    [
                        (format!("t{i}-{k}"), Some(state), format!("A{i}")),
                        ("FAILURE".into(), None, format!("A{i}")),
                    ]
                })
                .collect()
        };
        assert_eq!(sent_to(&actions, "s1"), lost(TaskState::Unreachable, 0));
        assert_eq!(sent_to(&actions, "s2"), lost(TaskState::Lost, 1));
        assert_eq!(
            m.health.unreachable.keys().collect::<Vec<_>>(),
            vec![&ids[0], &ids[1], &ids[3]]
        );
        assert_eq!(m.unreachable_counts(), (3, 6));
        assert!(m.agents.contains_key(&ids[2]));
        for framework in m.frameworks.values() {
            assert_eq!(framework.tasks.len(), 1, "{}", framework.id);
            assert!(framework.tasks.values().all(|t| t.info.agent_id == ids[2]));
            assert!(framework
                .unreachable_tasks
                .values()
                .all(|t| t.state == TaskState::Unreachable && t.unreachable_time == Some(3.5)));
            assert!(framework.executors.get(&ids[0]).is_none());
        }
        let metrics = m.metrics(4.0);
        assert_eq!(metrics["master/slave_unreachable_scheduled"], 3.0);
        assert_eq!(metrics["master/slave_unreachable_completed"], 3.0);
        assert_eq!(metrics["master/slave_unreachable_canceled"], 0.0);
        // Marked once: the next tick finds nothing more to do.
        m.tick(3.6);
        assert!(sent_to(&m.take_actions(), "s1").is_empty());
    }

    /// The agents pinged at each of `times`, by stream, for agents registered at
    /// `registered` with pings every 15 s and `max_timeouts` missed pings allowed.
    fn pinged(registered: &[f64], max_timeouts: u32, times: &[f64]) -> Vec<Vec<String>> {
        let config = MasterConfig {
            agent_ping_interval: 15.0,
            max_agent_ping_timeouts: max_timeouts,
            ..MasterConfig::default()
        };
        let mut m = Master::new("M".into(), config, 0.0);
        for (i, at) in registered.iter().enumerate() {
            let mut register = register_call(Some(AgentId::new(format!("A{i}"))), "cpus:1");
            register.agent_info.hostname = format!("h{i}");
            register.pid = format!("slave(1)@127.0.0.1:{}", 6000 + i);
            m.register_agent(*at, format!("a{i}").into(), register)
                .unwrap();
        }
        m.take_actions();
        times
            .iter()
            .map(|now| {
                m.tick(*now);
                m.take_actions()
                    .into_iter()
                    .filter_map(|action| match action {
                        Action::Agent {
                            stream,
                            message: ToAgent::Ping,
                        } => Some(stream.to_string()),
                        _ => None,
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn a_large_round_of_pings_is_spread_over_half_the_interval() {
        // 2,000 agents, pinged from the round at 15 s: the first 500 at once, then as
        // many as the share of the time until 22.5 s says; each once.
        let registered = vec![0.0; 2000];
        let times = [15.0, 15.1, 18.75, 22.5, 25.0, 30.0];
        let rounds = pinged(&registered, 5, &times);
        let counts: Vec<usize> = rounds.iter().map(Vec::len).collect();
        assert_eq!(counts, [500, 0, 500, 1000, 0, 500]);
        let mut first: Vec<&String> = rounds[..5].iter().flatten().collect();
        first.sort();
        first.dedup();
        assert_eq!(first.len(), 2000, "every agent pinged once a round");
    }

    #[test]
    fn an_agent_that_just_registered_is_pinged_from_the_next_round() {
        // A1 registered half a second before the round at 15 s, A0 a whole interval
        // before it: A1 is pinged from the round at 30 s on.
        assert_eq!(
            pinged(&[0.0, 14.5], 5, &[15.0, 30.0]),
            [vec!["a0"], vec!["a0", "a1"]]
        );
        // With 3 missed pings allowed, the round at 30 s would leave too little margin.
        assert_eq!(
            pinged(&[0.0, 14.5], 3, &[15.0, 30.0]),
            [vec!["a0", "a1"], vec!["a0", "a1"]]
        );
        // Skipped once only, and its silence counts from its registration: still
        // connected, and pinged, at 75 s without a single pong.
        let rounds: Vec<f64> = (1..=5).map(|k| 15.0 * f64::from(k)).collect();
        let a0 = vec!["a0".to_string()];
        assert_eq!(
            pinged(&[14.5], 5, &rounds),
            [vec![], a0.clone(), a0.clone(), a0.clone(), a0]
        );
    }

    #[test]
    fn removal_rates() {
        assert_eq!(
            RemovalRate::parse("1/10mins"),
            Ok(RemovalRate {
                count: 1,
                per_seconds: 600.0
            })
        );
        assert_eq!(
            RemovalRate::parse("5/1hrs").map(|r| r.per_seconds),
            Ok(3600.0)
        );
        for bad in ["10mins", "0/1secs", "x/1secs", "1/forever"] {
            let err = RemovalRate::parse(bad).unwrap_err();
            assert!(
                err.starts_with("--agent_removal_rate_limit: "),
                "{bad}: {err}"
            );
        }
    }
}
