//! The tasks on each agent: every entry of the frameworks' `tasks` maps, by the agent
//! it was placed on. An agent that disconnects or re-registers finds its tasks here
//! instead of walking every task of every framework (at 100,000 agents with ten tasks
//! each, that walk was a million tasks per agent, and a failover re-registers every
//! agent). The snapshot does not need it, so it is a plain map outside the shared ones.

use super::{Framework, Task};
use mantle_api::{AgentId, FrameworkId, TaskId};
use std::collections::HashMap;

#[derive(Default)]
pub(super) struct TaskIndex(HashMap<AgentId, Vec<(FrameworkId, TaskId)>>);

impl TaskIndex {
    /// Notes that the framework's `tasks` holds `task_id` on `agent_id`.
    pub fn add(&mut self, agent_id: &AgentId, framework_id: &FrameworkId, task_id: &TaskId) {
        let on_agent = self.0.entry(agent_id.clone()).or_default();
        // Most agents run a handful of tasks: room for those, not for eight.
        on_agent.reserve_exact(1);
        on_agent.push((framework_id.clone(), task_id.clone()));
    }

    /// Notes that the framework's `tasks` no longer holds `task_id`.
    pub fn remove(&mut self, agent_id: &AgentId, framework_id: &FrameworkId, task_id: &TaskId) {
        let Some(on_agent) = self.0.get_mut(agent_id) else {
            return;
        };
        if let Some(i) = on_agent
            .iter()
            .position(|(f, t)| f == framework_id && t == task_id)
        {
            on_agent.swap_remove(i);
        }
        if on_agent.is_empty() {
            self.0.remove(agent_id);
        } else if on_agent.capacity() > 2 * on_agent.len() + 4 {
            on_agent.shrink_to_fit();
        }
    }

    /// Puts a task into its framework's `tasks`, and notes it here.
    pub fn insert_task(&mut self, framework: &mut Framework, task: Task) {
        let task_id = task.info.task_id.clone();
        self.add(&task.info.agent_id, &framework.id, &task_id);
        framework.tasks.insert(task_id, task);
    }

    /// Takes a task out of its framework's `tasks`, and out of the index.
    pub fn take_task(&mut self, framework: &mut Framework, task_id: &TaskId) -> Option<Task> {
        let task = framework.tasks.remove(task_id)?;
        self.remove(&task.info.agent_id, &framework.id, task_id);
        Some(task)
    }

    /// The tasks on `agent_id`, ordered by framework and task ID (the order in which the
    /// frameworks' maps hold them).
    pub fn on(&self, agent_id: &AgentId) -> Vec<(FrameworkId, TaskId)> {
        let mut tasks = self.0.get(agent_id).cloned().unwrap_or_default();
        tasks.sort_unstable();
        tasks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_each_agents_tasks_in_order_and_forgets_removed_ones() {
        let (a1, a2) = (AgentId::new("a1"), AgentId::new("a2"));
        let (f1, f2) = (FrameworkId::new("f1"), FrameworkId::new("f2"));
        let t = TaskId::new;
        let mut index = TaskIndex::default();
        index.add(&a1, &f2, &t("x"));
        index.add(&a1, &f1, &t("y"));
        index.add(&a1, &f1, &t("b"));
        index.add(&a2, &f1, &t("z"));
        assert_eq!(
            index.on(&a1),
            vec![
                (f1.clone(), t("b")),
                (f1.clone(), t("y")),
                (f2.clone(), t("x"))
            ]
        );
        index.remove(&a1, &f1, &t("y"));
        // Unknown entries are ignored.
        index.remove(&a1, &f2, &t("y"));
        index.remove(&AgentId::new("a3"), &f1, &t("b"));
        assert_eq!(
            index.on(&a1),
            vec![(f1.clone(), t("b")), (f2.clone(), t("x"))]
        );
        index.remove(&a2, &f1, &t("z"));
        assert!(index.on(&a2).is_empty());
        assert!(!index.0.contains_key(&a2));
    }
}
