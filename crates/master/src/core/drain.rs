//! Agent draining (reference §3, DRAIN_AGENT; Mesos's automatic agent draining): the
//! agent is deactivated (no offers, its offers rescinded), every task on it is killed
//! with a grace period of at most `max_grace_period`, and once the master tracks no task
//! on it any more (every terminal update acknowledged) the drain is DRAINED, or with
//! `mark_gone` the agent is marked gone. In Mesos the agent kills its own tasks; here the
//! master sends the kills, so agents need no drain support. A drain cannot be cancelled;
//! REACTIVATE_AGENT ends a finished one. Drains are in the registry.

use super::maintenance::machine_of;
use super::Master;
use mantle_api::internal::{KillTask, ToAgent};
use mantle_api::maintenance::{DrainAgent, DrainConfig, DrainInfo, DrainState};
use mantle_api::*;

/// A drain the master runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Drain {
    pub info: DrainInfo,
    /// When the kills went out (Mesos's `estimated_drain_start_time`); not stored, as in
    /// Mesos.
    pub started: Option<f64>,
}

/// The kill policy of a task killed by a drain: `max_grace_period` when the task's own
/// grace period is longer or unset; none when there is no maximum or the task's own is
/// shorter, so that the task's own policy applies.
pub(super) fn drain_kill_policy(
    max_grace_period: Option<DurationInfo>,
    task_policy: Option<&KillPolicy>,
) -> Option<KillPolicy> {
    let max = max_grace_period?;
    match task_policy.and_then(|p| p.grace_period) {
        Some(own) if own.nanoseconds <= max.nanoseconds => None,
        _ => Some(KillPolicy {
            grace_period: Some(max),
        }),
    }
}

/// What a draining agent's updates say: TASK_KILLING and TASK_KILLED carry
/// REASON_AGENT_DRAINING, and become TASK_GONE_BY_OPERATOR for partition-aware
/// frameworks when the agent is marked gone afterwards. Mesos's agent rewrites these;
/// the master does it here because it sent the kills.
pub(super) fn rewrite_drain_update(
    status: &mut TaskStatus,
    mark_gone: bool,
    partition_aware: bool,
) {
    if !matches!(status.state, TaskState::Killing | TaskState::Killed) {
        return;
    }
    status.reason = Some(Reason::AgentDraining);
    if mark_gone && partition_aware {
        status.state = TaskState::GoneByOperator;
    }
}

impl Master {
    /// The drain of an agent, if one was asked for.
    pub fn drain_of(&self, agent_id: &AgentId) -> Option<&Drain> {
        self.draining.get(agent_id)
    }

    /// DRAIN_AGENT. An agent on a machine in the maintenance schedule cannot be drained
    /// (Mesos keeps the two mechanisms apart).
    pub(super) fn drain_agent(&mut self, now: f64, call: DrainAgent) -> Result<(), ApiError> {
        let agent_id = call.agent_id;
        self.check_known_agent(&agent_id, "drain_agent")?;
        if call.max_grace_period.is_some_and(|d| d.nanoseconds < 0) {
            return Err(ApiError::bad_request(
                "drain_agent.max_grace_period: must not be negative",
            ));
        }
        if let Some(agent) = self.agents.get(&agent_id) {
            let machine = machine_of(agent);
            if self.maintenance.is_scheduled(&machine) {
                return Err(ApiError::bad_request(format!(
                    "drain_agent.agent_id: agent '{agent_id}' is part of a maintenance schedule under machine '{}'",
                    machine.to_json_text()
                )));
            }
        }
        tracing::info!(agent_id = %agent_id, mark_gone = call.mark_gone, "draining agent");
        let info = DrainInfo {
            state: DrainState::Draining,
            config: DrainConfig {
                max_grace_period: call.max_grace_period,
                mark_gone: call.mark_gone,
            },
        };
        self.draining.insert(
            agent_id.clone(),
            Drain {
                info,
                started: None,
            },
        );
        self.set_deactivated(now, &agent_id, true);
        self.registry_rest_changed();
        self.dirty = true;
        self.kill_for_drain(now, &agent_id);
        self.check_drained(now, &agent_id);
        Ok(())
    }

    /// Sends a kill for every live task of a draining agent that is registered; an
    /// unreachable or recovered one gets its kills when it comes back.
    pub(super) fn kill_for_drain(&mut self, now: f64, agent_id: &AgentId) {
        if !self.agents.contains_key(agent_id) {
            return;
        }
        let Some(drain) = self.draining.get_mut(agent_id) else {
            return;
        };
        drain.started.get_or_insert(now);
        let max = drain.info.config.max_grace_period;
        let kills: Vec<KillTask> = (self.tasks_on(agent_id).into_iter())
            .filter_map(|(framework_id, task_id)| {
                let task = self.frameworks.get(&framework_id)?.tasks.get(&task_id)?;
                let kill_policy = drain_kill_policy(max, task.info.kill_policy.as_deref());
                (!task.state.is_terminal()).then_some(KillTask {
                    framework_id,
                    task_id,
                    kill_policy,
                })
            })
            .collect();
        for kill in kills {
            self.send_to_agent(agent_id, ToAgent::KillTask(kill));
        }
        self.dirty = true;
    }

    /// A draining agent the master tracks no task on any more is DRAINED, or marked
    /// gone when the drain asked for it. Tasks count until their terminal update is
    /// acknowledged, as in Mesos.
    pub(super) fn check_drained(&mut self, now: f64, agent_id: &AgentId) {
        let Some(drain) = self.draining.get(agent_id) else {
            return;
        };
        if drain.info.state == DrainState::Drained || !self.agents.contains_key(agent_id) {
            return;
        }
        if !self.tasks_on(agent_id).is_empty() {
            return;
        }
        if drain.info.config.mark_gone {
            tracing::info!(agent_id = %agent_id, "drained agent is marked gone");
            self.mark_gone(now, agent_id);
            return;
        }
        tracing::info!(agent_id = %agent_id, "agent drained");
        if let Some(drain) = self.draining.get_mut(agent_id) {
            drain.info.state = DrainState::Drained;
        }
        self.registry_rest_changed();
        self.dirty = true;
    }

    /// Ends a finished drain (REACTIVATE_AGENT); one still DRAINING cannot be ended.
    pub(super) fn end_drain(&mut self, agent_id: &AgentId, field: &str) -> Result<(), ApiError> {
        if self
            .draining
            .get(agent_id)
            .is_some_and(|d| d.info.state == DrainState::Draining)
        {
            return Err(ApiError::bad_request(format!(
                "{field}.agent_id: agent '{agent_id}' is still in the DRAINING state"
            )));
        }
        if self.draining.remove(agent_id).is_some() {
            self.registry_rest_changed();
            self.dirty = true;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(secs: Option<i64>) -> Option<KillPolicy> {
        secs.map(|s| KillPolicy {
            grace_period: Some(DurationInfo {
                nanoseconds: s * 1_000_000_000,
            }),
        })
    }

    #[test]
    fn kill_policies_are_capped_by_the_drain() {
        let max = |s: i64| {
            Some(DurationInfo {
                nanoseconds: s * 1_000_000_000,
            })
        };
        let cases = [
            (None, policy(Some(30)), None),
            (max(5), None, policy(Some(5))),
            (max(5), policy(Some(30)), policy(Some(5))),
            (max(5), policy(Some(2)), None),
            (
                max(5),
                Some(KillPolicy { grace_period: None }),
                policy(Some(5)),
            ),
        ];
        for (max, task, expected) in cases {
            assert_eq!(
                drain_kill_policy(max, task.as_ref()),
                expected,
                "{max:?} {task:?}"
            );
        }
    }

    #[test]
    fn draining_updates_name_the_drain() {
        let check = |state, mark_gone, aware, expected: (TaskState, Option<Reason>)| {
            let mut status = TaskStatus::new(TaskId::new("t"), state);
            rewrite_drain_update(&mut status, mark_gone, aware);
            assert_eq!(
                (status.state, status.reason),
                expected,
                "{state} {mark_gone} {aware}"
            );
        };
        let drained = Some(Reason::AgentDraining);
        let gone = TaskState::GoneByOperator;
        let cases = [
            // (state, mark_gone, partition-aware) -> what the framework sees
            (
                (TaskState::Killed, false, true),
                (TaskState::Killed, drained),
            ),
            (
                (TaskState::Killing, false, true),
                (TaskState::Killing, drained),
            ),
            ((TaskState::Killing, true, true), (gone, drained)),
            ((TaskState::Killed, true, true), (gone, drained)),
            (
                (TaskState::Killed, true, false),
                (TaskState::Killed, drained),
            ),
            (
                (TaskState::Finished, true, true),
                (TaskState::Finished, None),
            ),
        ];
        for ((state, mark_gone, aware), expected) in cases {
            check(state, mark_gone, aware, expected);
        }
    }
}
