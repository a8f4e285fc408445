//! Failure detection (reference §5.1, "Health"): an agent that answers no ping for
//! `max_agent_ping_timeouts` x `agent_ping_timeout`, or that stays disconnected for
//! `agent_reregister_timeout`, becomes unreachable, at most as fast as
//! `--agent_removal_rate_limit` allows. Its offers are rescinded, frameworks get
//! `FAILURE{agent_id}`, and its tasks become TASK_UNREACHABLE (TASK_LOST for frameworks
//! that are not PARTITION_AWARE) while the master keeps tracking them. When the agent
//! re-registers, the tasks it reports come back and their state is sent again with
//! REASON_AGENT_REREGISTERED (the Mesos 1.5 rule).

use super::{Action, Master};
use mantle_api::internal::Register;
use mantle_api::scheduler::{Event, Failure, Update};
use mantle_api::*;
use std::collections::{BTreeMap, VecDeque};
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
    /// Agents found failed and waiting for the removal rate limit.
    pending: VecDeque<AgentId>,
    /// When the next removal is allowed under the rate limit.
    next_removal: f64,
    pub scheduled: u64,
    pub completed: u64,
    pub canceled: u64,
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
        let before = self.health.pending.len();
        self.health.pending.retain(|a| a != agent_id);
        if self.health.pending.len() < before {
            self.health.canceled += 1;
            tracing::info!(agent_id = %agent_id, "agent is back before being marked unreachable");
        }
    }

    /// Finds agents that missed too many pings or stayed disconnected too long, and
    /// marks as many unreachable as the rate limit allows.
    pub(super) fn detect_failures(&mut self, now: f64) {
        let silence =
            self.config.agent_ping_interval * f64::from(self.config.max_agent_ping_timeouts);
        let reregister = self.config.agent_reregister_timeout;
        let failed: Vec<AgentId> = self
            .agents
            .values()
            .filter(|a| match a.disconnected_since {
                Some(since) => now - since >= reregister,
                None => now - a.last_heard > silence,
            })
            .map(|a| a.id.clone())
            .filter(|id| !self.health.pending.contains(id))
            .collect();
        let overdue: Vec<AgentId> = self
            .health
            .recovered
            .iter()
            .filter(|(id, (_, deadline))| now >= *deadline && !self.health.pending.contains(id))
            .map(|(id, _)| id.clone())
            .collect();
        for agent_id in failed.into_iter().chain(overdue) {
            tracing::warn!(agent_id = %agent_id, "agent failed health checks; scheduling it to be marked unreachable");
            self.health.scheduled += 1;
            self.health.pending.push_back(agent_id);
        }
        while !self.health.pending.is_empty() && now >= self.health.next_removal {
            let agent_id = self.health.pending.pop_front().expect("not empty");
            if let Some(rate) = self.config.agent_removal_rate_limit {
                self.health.next_removal = now + rate.per_seconds / f64::from(rate.count);
            }
            self.mark_unreachable(now, &agent_id);
        }
    }

    /// The agent becomes unreachable: its stream is closed, its offers rescinded, its
    /// tasks reported UNREACHABLE (or LOST) and kept, and every framework told.
    fn mark_unreachable(&mut self, now: f64, agent_id: &AgentId) {
        if let Some((info, _)) = self.health.recovered.remove(agent_id) {
            // Known from the registry only: no task of it is known either.
            tracing::warn!(agent_id = %agent_id, "agent did not re-register after the master restarted; it is unreachable");
            self.health.completed += 1;
            self.registry_version += 1;
            self.health
                .unreachable
                .insert(agent_id.clone(), UnreachableAgent { info, since: now });
            self.dirty = true;
            return;
        }
        let Some(agent) = self.agents.remove(agent_id) else {
            return;
        };
        self.forget_removed_agent(&agent);
        self.agent_removed(agent_id);
        self.registry_version += 1;
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
        let message = format!("Agent {} is unreachable", agent.info.hostname);
        let frameworks: Vec<FrameworkId> = self.frameworks.keys().cloned().collect();
        for framework_id in frameworks {
            let framework = self.frameworks.get_mut(&framework_id).expect("listed");
            framework.executors.remove(agent_id);
            let partition_aware = framework.is_partition_aware();
            let ids = framework.live_tasks_on(agent_id);
            let mut updates = Vec::new();
            for id in ids {
                let mut task = framework.tasks.remove(&id).expect("listed");
                task.state = TaskState::Unreachable;
                task.unreachable_time = Some(now);
                updates.push(task.info.clone());
                framework.unreachable_tasks.insert(id, task);
            }
            let state = if partition_aware {
                TaskState::Unreachable
            } else {
                TaskState::Lost
            };
            for info in updates {
                let mut status = TaskStatus::new(info.task_id.clone(), state);
                status.agent_id = Some(agent_id.clone());
                status.source = Some(Source::Master);
                status.reason = Some(Reason::AgentRemoved);
                status.message = Some(message.clone());
                status.unreachable_time = Some(TimeInfo {
                    nanoseconds: (now * 1e9) as i64,
                });
                self.send(&framework_id, Event::Update(Update { status }));
            }
            self.send_agent_lost(&framework_id, agent_id);
        }
        self.health.unreachable.insert(
            agent_id.clone(),
            UnreachableAgent {
                info: agent.full_info(),
                since: now,
            },
        );
        self.dirty = true;
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
                .filter(|t| &t.agent_id == agent_id)
                .map(|t| t.info.task_id.clone())
                .collect();
            let mut updates = Vec::new();
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
                                task.role.clone(),
                                task.resources.clone(),
                            ));
                        }
                        updates.push((
                            task.info.clone(),
                            report.state,
                            "Unreachable agent re-reregistered",
                        ));
                        framework.tasks.insert(id, task);
                    }
                    None => {
                        let state = if partition_aware {
                            TaskState::Gone
                        } else {
                            TaskState::Lost
                        };
                        task.state = state;
                        updates.push((
                            task.info.clone(),
                            state,
                            "Task was not reported by the re-registered agent",
                        ));
                        framework.completed_tasks.push_back(Arc::new(task));
                    }
                }
            }
            for (info, state, message) in updates {
                let mut status = TaskStatus::new(info.task_id.clone(), state);
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
        self.send(
            framework_id,
            Event::Failure(Failure {
                agent_id: Some(agent_id.clone()),
                executor_id: None,
                status: None,
            }),
        );
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

#[cfg(test)]
mod tests {
    use super::*;

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
