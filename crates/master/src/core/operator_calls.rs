//! The operator's calls that act on frameworks and tasks: TEARDOWN (reference §3, the
//! same removal as a scheduler's own TEARDOWN) and Mantle's KILL_TASK extension (Mesos has
//! none; the master kills on the framework's behalf as it does for DRAIN_AGENT, and the
//! framework sees the resulting TASK_KILLED update).

use super::Master;
use mantle_api::internal::ToAgent;
use mantle_api::operator::{self, Teardown};
use mantle_api::*;

impl Master {
    /// TEARDOWN `{framework_id}`: 400 for a framework the master does not run, as Mesos
    /// answers ("No framework found with specified ID").
    pub fn operator_teardown(
        &mut self,
        now: f64,
        teardown: Teardown,
        field: &str,
    ) -> Result<(), ApiError> {
        let id = teardown.framework_id;
        if !self.frameworks.contains_key(&id) {
            return Err(ApiError::bad_request(format!(
                "{field}: no framework found with id '{id}'"
            )));
        }
        tracing::info!(framework_id = %id, "framework torn down by the operator");
        self.remove_framework(now, &id);
        Ok(())
    }

    /// KILL_TASK `{framework_id, task_id, kill_policy?}`: the kill goes to the task's
    /// agent as the framework's KILL would. A task that ended, or that the master does not
    /// know, is an error naming the field (the operator gets no update stream to be told
    /// asynchronously, unlike a framework).
    pub fn operator_kill_task(&mut self, kill: operator::KillTask) -> Result<(), ApiError> {
        let Some(framework) = self.frameworks.get(&kill.framework_id) else {
            return Err(ApiError::bad_request(format!(
                "kill_task.framework_id: no framework found with id '{}'",
                kill.framework_id
            )));
        };
        if framework.unreachable_tasks.contains_key(&kill.task_id) {
            return Err(ApiError::new(
                ErrorKind::Conflict,
                format!(
                    "kill_task.task_id: task '{}' is on an unreachable agent",
                    kill.task_id
                ),
            ));
        }
        let Some(task) = framework
            .tasks
            .get(&kill.task_id)
            .filter(|t| !t.state.is_terminal())
        else {
            return Err(ApiError::bad_request(format!(
                "kill_task.task_id: framework '{}' has no live task '{}'",
                kill.framework_id, kill.task_id
            )));
        };
        let agent_id = task.info.agent_id.clone();
        tracing::info!(framework_id = %kill.framework_id, task_id = %kill.task_id, "task killed by the operator");
        self.send_to_agent(&agent_id, ToAgent::KillTask(kill));
        Ok(())
    }
}
