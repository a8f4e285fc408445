//! Events of the operator API's SUBSCRIBE stream (reference §3): TASK_ADDED,
//! TASK_UPDATED, AGENT_ADDED, AGENT_REMOVED, FRAMEWORK_ADDED, FRAMEWORK_UPDATED and
//! FRAMEWORK_REMOVED, queued as [`Action::Operator`] for the event loop to send to every
//! operator stream. Nothing is built while nobody subscribes.

use super::v1::{agent_v1, framework_offers, framework_v1, task_v1};
use super::{Action, Master, StateView};
use mantle_api::*;
use serde_json::{json, Value};

impl Master {
    /// Whether any operator stream is open; the event loop keeps it current.
    pub fn set_operator_subscribers(&mut self, any: bool) {
        self.operator_subscribers = any;
    }

    fn operator_event(&mut self, kind: &str, body: Value) {
        let field = kind.to_ascii_lowercase();
        self.actions.push(Action::Operator {
            event: json!({"type": kind, field: body}),
        });
    }

    pub(super) fn task_added(&mut self, framework_id: &FrameworkId, task_id: &TaskId) {
        if !self.operator_subscribers {
            return;
        }
        let Some(task) = self
            .frameworks
            .get(framework_id)
            .and_then(|f| f.tasks.get(task_id))
        else {
            return;
        };
        let body = json!({ "task": task_v1(framework_id, task) });
        self.operator_event("TASK_ADDED", body);
    }

    pub(super) fn task_updated(
        &mut self,
        framework_id: &FrameworkId,
        status: &TaskStatus,
        state: TaskState,
    ) {
        if !self.operator_subscribers {
            return;
        }
        let mut status = status.clone();
        status.data = None;
        let body = json!({"framework_id": framework_id, "status": status, "state": state});
        self.operator_event("TASK_UPDATED", body);
    }

    /// AGENT_ADDED. The agent's allocated and offered resources are left empty: working
    /// them out means walking every task, and a crowd of agents registers at once after
    /// a failover.
    pub(super) fn agent_added(&mut self, agent_id: &AgentId) {
        if !self.operator_subscribers {
            return;
        }
        let Some(agent) = self.agents.get(agent_id) else {
            return;
        };
        let none = Resources::new();
        let agent = agent_v1(
            agent,
            self.is_active(agent),
            self.deactivated.contains(agent_id),
            self.draining.get(agent_id),
            &none,
            &none,
        );
        self.operator_event("AGENT_ADDED", json!({ "agent": agent }));
    }

    pub(super) fn agent_removed(&mut self, agent_id: &AgentId) {
        if self.operator_subscribers {
            self.operator_event("AGENT_REMOVED", json!({ "agent_id": agent_id }));
        }
    }

    /// FRAMEWORK_ADDED (`added`) or FRAMEWORK_UPDATED.
    pub(super) fn framework_changed(&mut self, framework_id: &FrameworkId, added: bool) {
        if !self.operator_subscribers {
            return;
        }
        let Some(framework) = self.frameworks.get(framework_id) else {
            return;
        };
        let offers = framework_offers(framework, &self.offers);
        let allocated = StateView::framework_usage(framework);
        let body = json!({ "framework": framework_v1(framework, &offers, &allocated) });
        let kind = if added {
            "FRAMEWORK_ADDED"
        } else {
            "FRAMEWORK_UPDATED"
        };
        self.operator_event(kind, body);
    }

    pub(super) fn framework_removed(&mut self, info: &FrameworkInfo) {
        if self.operator_subscribers {
            self.operator_event("FRAMEWORK_REMOVED", json!({ "framework_info": info }));
        }
    }
}
