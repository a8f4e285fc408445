//! The operator's agent calls (reference §3, "Agent control"; §5.1): DEACTIVATE_AGENT and
//! REACTIVATE_AGENT (a deactivated agent keeps its tasks and is offered to nobody), and
//! MARK_AGENT_GONE (the agent is recorded as gone for good: its tasks become
//! TASK_GONE_BY_OPERATOR, or TASK_LOST for frameworks that are not PARTITION_AWARE, it is
//! told to shut down, and it may not re-register). Both states are in the registry.

use super::{Master, OperatorReply};
use mantle_api::internal::ToAgent;
use mantle_api::scheduler::{Event, Update};
use mantle_api::*;

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
        let known = self.agents.contains_key(&id)
            || self.health.unreachable.contains_key(&id)
            || self.health.recovered.contains_key(&id);
        if !known {
            return Err(ApiError::bad_request(format!(
                "{field}.agent_id: agent '{id}' is not known"
            )));
        }
        Ok(id)
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

    fn set_deactivated(&mut self, now: f64, agent_id: &AgentId, deactivated: bool) {
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
        }
        self.registry_version += 1;
        self.dirty = true;
    }

    /// Records the agent as gone: its tasks end, frameworks are told, and the agent is
    /// asked to shut down.
    fn mark_gone(&mut self, now: f64, agent_id: &AgentId) {
        tracing::warn!(agent_id = %agent_id, "agent marked gone by the operator");
        self.send_to_agent(
            agent_id,
            ToAgent::Shutdown(mantle_api::internal::Shutdown {
                message: "the operator marked this agent gone".into(),
            }),
        );
        if let Some(stream) = self.agents.get(agent_id).and_then(|a| a.stream.clone()) {
            self.actions.push(super::Action::CloseAgent { stream });
        }
        self.rescind_agent_offers(now, agent_id);
        if self.agents.remove(agent_id).is_some() {
            self.allocator.remove_agent(agent_id);
        }
        self.health.unreachable.remove(agent_id);
        self.health.recovered.remove(agent_id);
        self.deactivated.remove(agent_id);
        self.gone.insert(agent_id.clone(), now);
        let frameworks: Vec<FrameworkId> = self.frameworks.keys().cloned().collect();
        for framework_id in frameworks {
            let framework = self.frameworks.get_mut(&framework_id).expect("listed");
            framework.executors.remove(agent_id);
            let partition_aware = framework.is_partition_aware();
            let mut ended = Vec::new();
            for id in framework.live_tasks_on(agent_id) {
                ended.push(framework.tasks.remove(&id).expect("listed"));
            }
            let unreachable: Vec<TaskId> = framework
                .unreachable_tasks
                .values()
                .filter(|t| &t.agent_id == agent_id)
                .map(|t| t.info.task_id.clone())
                .collect();
            for id in unreachable {
                ended.push(framework.unreachable_tasks.remove(&id).expect("listed"));
            }
            let state = if partition_aware {
                TaskState::GoneByOperator
            } else {
                TaskState::Lost
            };
            let mut updates = Vec::new();
            for mut task in ended {
                task.state = TaskState::GoneByOperator;
                task.unreachable_time = None;
                updates.push(task.info.task_id.clone());
                framework.completed_tasks.push_back(task);
            }
            for task_id in updates {
                let mut status = TaskStatus::new(task_id, state);
                status.agent_id = Some(agent_id.clone());
                status.source = Some(Source::Master);
                status.reason = Some(Reason::AgentRemovedByOperator);
                status.message = Some("Agent was marked as gone by the operator".into());
                self.send(&framework_id, Event::Update(Update { status }));
            }
            self.send_agent_lost(&framework_id, agent_id);
        }
        self.counters.agent_removals += 1;
        self.registry_version += 1;
        self.dirty = true;
    }
}
