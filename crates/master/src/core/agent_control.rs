//! The operator's agent calls (reference §3, "Agent control"; §5.1): DEACTIVATE_AGENT and
//! REACTIVATE_AGENT (a deactivated agent keeps its tasks and is offered to nobody), and
//! MARK_AGENT_GONE (the agent is recorded as gone for good: its tasks become
//! TASK_GONE_BY_OPERATOR, or TASK_LOST for frameworks that are not PARTITION_AWARE, it is
//! told to shut down, and it may not re-register). Both states are in the registry.
//! REACTIVATE_AGENT also ends a finished drain (`drain.rs`); the removal of an agent on
//! the operator's word is shared with maintenance (a machine going DOWN).

use super::{Master, OperatorReply};
use mantle_api::internal::ToAgent;
use mantle_api::scheduler::{Event, Update};
use mantle_api::*;
use std::sync::Arc;

impl Master {
    /// Connected and not deactivated by the operator: what `/master/state` calls active.
    pub fn is_active(&self, agent: &super::Agent) -> bool {
        agent.active() && !self.deactivated.contains(&agent.id)
    }

    /// `agent_id` of a `{"<field>": {"agent_id": {"value": ...}}}` call.
    fn agent_of(&self, body: Option<&serde_json::Value>, field: &str) -> Result<AgentId, ApiError> {
        let value = body.and_then(|b| b.get("agent_id")).ok_or_else(|| {
            ApiError::bad_request(format!("expecting '{field}.agent_id' to be present"))
        })?;
        let id: AgentId = serde_json::from_value(value.clone())
            .map_err(|e| ApiError::bad_request(format!("{field}.agent_id: {e}")))?;
        self.check_known_agent(&id, field)?;
        Ok(id)
    }

    /// Registered, unreachable, or known from the registry and not back yet: the agents
    /// the operator's agent calls may name. Mesos answers 400 for the others.
    pub(super) fn check_known_agent(&self, id: &AgentId, field: &str) -> Result<(), ApiError> {
        let known = self.agents.contains_key(id)
            || self.health.unreachable.contains_key(id)
            || self.health.recovered.contains_key(id);
        if !known {
            return Err(ApiError::bad_request(format!(
                "{field}.agent_id: agent '{id}' is not known"
            )));
        }
        Ok(())
    }

    pub(super) fn agent_control(
        &mut self,
        now: f64,
        kind: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<OperatorReply, ApiError> {
        match kind {
            "DEACTIVATE_AGENT" => {
                let id = self.agent_of(body, "deactivate_agent")?;
                self.set_deactivated(now, &id, true);
            }
            "REACTIVATE_AGENT" => {
                let id = self.agent_of(body, "reactivate_agent")?;
                // A drain cannot be cancelled, only ended once it is complete (Mesos).
                if self.draining.contains_key(&id) {
                    self.end_drain(&id, "reactivate_agent")?;
                }
                self.set_deactivated(now, &id, false);
            }
            "MARK_AGENT_GONE" => {
                let id = self.agent_of(body, "mark_agent_gone")?;
                self.mark_gone(now, &id);
            }
            other => unreachable!("not an agent call: {other}"),
        }
        Ok(OperatorReply::Ok(None))
    }

    pub(super) fn set_deactivated(&mut self, now: f64, agent_id: &AgentId, deactivated: bool) {
        let changed = if deactivated {
            self.deactivated.insert(agent_id.clone())
        } else {
            self.deactivated.remove(agent_id)
        };
        if !changed {
            return;
        }
        tracing::info!(agent_id = %agent_id, deactivated, "agent activity changed by the operator");
        if let Some(agent) = self.agents.get(agent_id) {
            let active = self.is_active(agent);
            self.allocator.set_agent_active(agent_id, active);
        }
        if deactivated {
            self.rescind_agent_offers(now, agent_id);
            self.rescind_agent_inverse_offers(agent_id);
        }
        self.registry_rest_changed();
        self.dirty = true;
    }

    /// Records the agent as gone: its tasks end, frameworks are told, and the agent is
    /// asked to shut down.
    pub(super) fn mark_gone(&mut self, now: f64, agent_id: &AgentId) {
        tracing::warn!(agent_id = %agent_id, "agent marked gone by the operator");
        self.health.unreachable.remove(agent_id);
        self.health.recovered.remove(agent_id);
        self.gone.insert(agent_id.clone(), now);
        self.remove_agent(
            now,
            agent_id,
            "the operator marked this agent gone",
            &Ending {
                kept: TaskState::GoneByOperator,
                partition_aware: TaskState::GoneByOperator,
                others: TaskState::Lost,
                reason: Reason::AgentRemovedByOperator,
                message: "Agent was marked as gone by the operator".into(),
            },
        );
    }

    /// Removes an agent on the operator's word (MARK_AGENT_GONE, or its machine going
    /// DOWN): it is told to shut down and its link is closed, its offers and inverse
    /// offers are rescinded, its drain and deactivation end, its tasks end as `ending`
    /// says, and every framework gets FAILURE for it.
    pub(super) fn remove_agent(
        &mut self,
        now: f64,
        agent_id: &AgentId,
        shutdown_message: &str,
        ending: &Ending,
    ) {
        self.send_to_agent(
            agent_id,
            ToAgent::Shutdown(mantle_api::internal::Shutdown {
                message: shutdown_message.into(),
            }),
        );
        if let Some(stream) = self.agents.get(agent_id).and_then(|a| a.stream.clone()) {
            self.actions.push(super::Action::CloseAgent { stream });
        }
        self.rescind_agent_offers(now, agent_id);
        self.rescind_agent_inverse_offers(agent_id);
        self.forget_agent_answers(agent_id);
        if let Some(agent) = self.agents.remove(agent_id) {
            self.forget_removed_agent(&agent);
            self.allocator.remove_agent(agent_id);
            self.agent_removed(agent_id);
        }
        self.deactivated.remove(agent_id);
        self.draining.remove(agent_id);
        let on_agent = self.tasks_on(agent_id);
        let frameworks: Vec<FrameworkId> = self.frameworks.keys().cloned().collect();
        for framework_id in frameworks {
            let framework = self.frameworks.get_mut(&framework_id).expect("listed");
            framework.executors.remove(agent_id);
            let state = if framework.is_partition_aware() {
                ending.partition_aware
            } else {
                ending.others
            };
            let mut ended = Vec::new();
            for (_, id) in on_agent.iter().filter(|(f, _)| *f == framework_id) {
                if framework
                    .tasks
                    .get(id)
                    .is_some_and(|t| !t.state.is_terminal())
                {
                    let task = self.agent_tasks.take_task(framework, id);
                    ended.push(task.expect("found above"));
                }
            }
            let unreachable: Vec<TaskId> = framework
                .unreachable_tasks
                .values()
                .filter(|t| &t.info.agent_id == agent_id)
                .map(|t| t.info.task_id.clone())
                .collect();
            for id in unreachable {
                ended.push(framework.unreachable_tasks.remove(&id).expect("listed"));
            }
            let mut updates = Vec::new();
            for mut task in ended {
                task.state = ending.kept;
                task.unreachable_time = None;
                updates.push(task.info.task_id.clone());
                framework.completed_tasks.push_back(Arc::new(task));
            }
            while framework.completed_tasks.len() > self.config.max_completed_tasks_per_framework {
                framework.completed_tasks.pop_front();
            }
            *self
                .counters
                .tasks_by_terminal_state
                .entry(ending.kept)
                .or_default() += updates.len() as u64;
            for task_id in updates {
                let mut status = TaskStatus::new(task_id, state);
                status.agent_id = Some(agent_id.clone());
                status.source = Some(Source::Master);
                status.reason = Some(ending.reason);
                status.message = Some(ending.message.clone());
                self.send(&framework_id, Event::Update(Update { status }));
            }
            self.send_agent_lost(&framework_id, agent_id);
        }
        self.counters.agent_removals += 1;
        self.agent_entry_changed(agent_id);
        self.registry_rest_changed();
        self.dirty = true;
    }
}

/// How the tasks of an agent the operator removes end: the state the master keeps, the
/// states frameworks are sent (partition-aware ones or the others), and why.
pub(super) struct Ending {
    pub kept: TaskState,
    pub partition_aware: TaskState,
    pub others: TaskState,
    pub reason: Reason,
    pub message: String,
}
