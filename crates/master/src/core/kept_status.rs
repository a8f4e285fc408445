//! The statuses the master keeps of each task, in a compact record. A task keeps two or
//! three (`TASK_STARTING`, `TASK_RUNNING`, the end) for as long as it is known, and a
//! whole `TaskStatus` is about 300 bytes before its strings (the task's and agent's ids
//! again, the uuid as text). Most statuses carry only a state, source, reason, health,
//! timestamp, uuid and message, and name the task's own agent and executor: those are
//! kept in a few bytes and rebuilt when shown; any other is kept whole.

use super::Task;
use base64::Engine;
use mantle_api::*;
use std::borrow::Cow;

/// A status the master keeps of a task, without its `data`.
#[derive(Clone, Debug)]
pub enum KeptStatus {
    Compact(Compact),
    Whole(Box<TaskStatus>),
}

/// A status whose other fields are the task's or unset.
#[derive(Clone, Debug)]
pub struct Compact {
    state: TaskState,
    source: Option<Source>,
    reason: Option<Reason>,
    healthy: Option<bool>,
    /// Whether it named the task's agent.
    names_agent: bool,
    names_executor: Named,
    timestamp: Option<f64>,
    /// Its uuid's 16 bytes: the text is their standard base64.
    uuid: Option<[u8; 16]>,
    message: Option<Box<str>>,
}

/// The executor a compact status named.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Named {
    None,
    /// The task's executor.
    Executor,
    /// A command task's: its executor is named after the task.
    TaskId,
}

fn uuid_bytes(text: &str) -> Option<[u8; 16]> {
    let engine = &base64::engine::general_purpose::STANDARD;
    let bytes: [u8; 16] = engine.decode(text).ok()?.try_into().ok()?;
    // Only a text that its bytes give back is kept as bytes.
    (engine.encode(bytes) == text).then_some(bytes)
}

impl KeptStatus {
    /// What the master keeps of `status`, an update of a task on `agent_id` with
    /// `executor_id` (`None` for a command task).
    pub fn keep(
        status: &TaskStatus,
        agent_id: &AgentId,
        executor_id: Option<&ExecutorId>,
    ) -> KeptStatus {
        let uuid = status.uuid.as_deref().map(uuid_bytes);
        let named = match &status.executor_id {
            None => Some(Named::None),
            Some(named) if Some(named) == executor_id => Some(Named::Executor),
            Some(named) if executor_id.is_none() && named.value == status.task_id.value => {
                Some(Named::TaskId)
            }
            Some(_) => None,
        };
        let compact = uuid != Some(None)
            && named.is_some()
            && status.agent_id.as_ref().is_none_or(|a| a == agent_id)
            && status.check_status.is_none()
            && status.labels.is_none()
            && status.container_status.is_none()
            && status.unreachable_time.is_none()
            && status.limitation.is_none();
        if !compact {
            let mut whole = status.clone();
            whole.data = None;
            return KeptStatus::Whole(Box::new(whole));
        }
        KeptStatus::Compact(Compact {
            state: status.state,
            source: status.source,
            reason: status.reason,
            healthy: status.healthy,
            names_agent: status.agent_id.is_some(),
            names_executor: named.unwrap_or(Named::None),
            timestamp: status.timestamp,
            uuid: uuid.flatten(),
            message: status.message.as_deref().map(Box::from),
        })
    }

    pub fn state(&self) -> TaskState {
        match self {
            KeptStatus::Compact(c) => c.state,
            KeptStatus::Whole(s) => s.state,
        }
    }

    pub fn timestamp(&self) -> Option<f64> {
        match self {
            KeptStatus::Compact(c) => c.timestamp,
            KeptStatus::Whole(s) => s.timestamp,
        }
    }

    pub fn healthy(&self) -> Option<bool> {
        match self {
            KeptStatus::Compact(c) => c.healthy,
            KeptStatus::Whole(s) => s.healthy,
        }
    }

    /// The status kept whole, when it is.
    pub fn whole(&self) -> Option<&TaskStatus> {
        match self {
            KeptStatus::Compact(_) => None,
            KeptStatus::Whole(s) => Some(s),
        }
    }

    /// The status as it was received (without its `data`), of `task`.
    pub fn status(&self, task: &Task) -> Cow<'_, TaskStatus> {
        let c = match self {
            KeptStatus::Compact(c) => c,
            KeptStatus::Whole(s) => return Cow::Borrowed(s),
        };
        let mut status = TaskStatus::new(task.info.task_id.clone(), c.state);
        status.source = c.source;
        status.reason = c.reason;
        status.healthy = c.healthy;
        status.timestamp = c.timestamp;
        status.message = c.message.as_deref().map(String::from);
        if c.names_agent {
            status.agent_id = Some(task.info.agent_id.clone());
        }
        status.executor_id = match c.names_executor {
            Named::None => None,
            Named::Executor => task.executor_id.clone(),
            Named::TaskId => Some(ExecutorId::new(task.info.task_id.value.clone())),
        };
        let engine = &base64::engine::general_purpose::STANDARD;
        status.uuid = c.uuid.map(|bytes| engine.encode(bytes));
        Cow::Owned(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::KeptInfo;

    fn task() -> Task {
        let info: TaskInfo = serde_json::from_value(serde_json::json!({
            "name": "t", "task_id": {"value": "t1"}, "agent_id": {"value": "a1"},
            "resources": [],
        }))
        .unwrap();
        Task {
            info: KeptInfo::keep(&info, &info.agent_id),
            executor_id: Some(ExecutorId::new("e1")),
            resources: Resources::new(),
            role: "*".into(),
            state: TaskState::Running,
            status_update_state: None,
            status_update_uuid: None,
            statuses: Vec::new(),
            launched_at: 0.0,
            unreachable_time: None,
        }
    }

    fn shown(kept: &KeptStatus, task: &Task) -> serde_json::Value {
        serde_json::to_value(kept.status(task)).unwrap()
    }

    #[test]
    fn a_common_status_is_compact_and_shown_as_received() {
        let task = task();
        let mut status = TaskStatus::new(TaskId::new("t1"), TaskState::Finished);
        status.source = Some(Source::Executor);
        status.reason = Some(Reason::CommandExecutorFailed);
        status.message = Some("Command exited with status 0".into());
        status.agent_id = Some(AgentId::new("a1"));
        status.executor_id = Some(ExecutorId::new("e1"));
        status.timestamp = Some(1.5);
        status.healthy = Some(true);
        status.uuid = Some(new_status_uuid());
        let kept = KeptStatus::keep(&status, &task.info.agent_id, task.executor_id.as_ref());
        assert!(kept.whole().is_none());
        assert!(std::mem::size_of::<KeptStatus>() < std::mem::size_of::<TaskStatus>() / 3);
        assert_eq!(shown(&kept, &task), serde_json::to_value(&status).unwrap());
        assert_eq!(
            (kept.state(), kept.timestamp(), kept.healthy()),
            (TaskState::Finished, Some(1.5), Some(true))
        );
        // A command task's status names the executor after the task.
        let mut command = task.clone();
        command.executor_id = None;
        status.executor_id = Some(ExecutorId::new("t1"));
        let kept = KeptStatus::keep(&status, &command.info.agent_id, None);
        assert!(kept.whole().is_none());
        assert_eq!(
            shown(&kept, &command),
            serde_json::to_value(&status).unwrap()
        );
        // Unset fields stay unset.
        let bare = TaskStatus::new(TaskId::new("t1"), TaskState::Starting);
        let kept = KeptStatus::keep(&bare, &task.info.agent_id, None);
        assert_eq!(shown(&kept, &task), serde_json::to_value(&bare).unwrap());
    }

    #[test]
    fn an_unusual_status_is_kept_whole_without_its_data() {
        let task = task();
        let mut status = TaskStatus::new(TaskId::new("t1"), TaskState::Running);
        status.data = Some("ZGF0YQ==".into());
        let mut expected = status.clone();
        expected.data = None;
        let unusual: [&dyn Fn(&mut TaskStatus); 5] = [
            &|s| s.container_status = Some(serde_json::json!({"executor_pid": 7})),
            &|s| s.executor_id = Some(ExecutorId::new("another")),
            &|s| s.agent_id = Some(AgentId::new("another")),
            &|s| s.uuid = Some("not base64".into()),
            &|s| s.labels = Some(Labels { labels: Vec::new() }),
        ];
        for change in unusual {
            let (mut status, mut expected) = (status.clone(), expected.clone());
            change(&mut status);
            change(&mut expected);
            let kept = KeptStatus::keep(&status, &task.info.agent_id, task.executor_id.as_ref());
            assert!(kept.whole().is_some());
            assert_eq!(
                shown(&kept, &task),
                serde_json::to_value(&expected).unwrap()
            );
        }
    }
}
