//! Mantle's own master-agent protocol (not Mesos's libprocess messages).
//!
//! The agent POSTs [`AgentCall::Register`] to [`AGENT_API_PATH`]; the answer is a chunked
//! RecordIO stream of [`ToAgent`] messages that lives as long as the agent is connected,
//! and whose response header [`AGENT_STREAM_HEADER`] names the connection. Every other
//! call is POSTed with that header, one call or a JSON array of calls taken in order;
//! the master answers 202 once it has taken them. Status updates are acknowledged on the stream with
//! [`ToAgent::StatusUpdateAck`] only after the framework acknowledged them.
//!
//! A REGISTER sent over HTTP/1.1 with `Connection: upgrade` and `Upgrade:`
//! [`AGENT_UPGRADE`] gets `101 Switching Protocols` (with the stream header) instead: the
//! connection then carries the master's messages as RecordIO, and the agent's calls the
//! other way, each RecordIO record one call or a JSON array of calls. A real agent does
//! this, so that between messages the master holds little more than the socket.

use crate::ids::*;
use crate::messages::*;
use serde::{Deserialize, Serialize};

pub const AGENT_API_PATH: &str = "/mantle/v1/agent";
pub const AGENT_STREAM_HEADER: &str = "Mantle-Agent-Stream-Id";
pub const AGENT_UPGRADE: &str = "mantle-agent";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AgentCall {
    Register(Register),
    StatusUpdate(StatusUpdate),
    ExecutorExited(ExecutorExited),
    ExecutorMessage(ExecutorMessage),
    /// The answer to a PING: the agent's event loop is alive.
    Pong,
}

/// Registration, or re-registration when `agent_info.id` is set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Register {
    pub agent_info: AgentInfo,
    /// `slave(1)@ip:port`, the address of the agent's HTTP server.
    pub pid: String,
    pub version: String,
    /// What the agent runs, reported on re-registration.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub frameworks: Vec<FrameworkInfo>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub executors: Vec<ExecutorInfo>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<TaskReport>,
}

impl Register {
    /// The registration as it goes on the wire: each reported task names its executor by
    /// `executor_id` instead of carrying a copy of its ExecutorInfo, which `executors`
    /// holds once (as Mesos's agent reports `Task`s, which name their executor by id,
    /// next to its `ExecutorInfo`s). The master keeps only that id of a task's executor,
    /// and the copies were about a third of a re-registration's body and of its decoding.
    pub fn without_task_executors(mut self) -> Register {
        for report in &mut self.tasks {
            if let Some(executor) = report.task.executor.take() {
                report.executor_id.get_or_insert(executor.executor_id);
            }
        }
        self
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskReport {
    pub framework_id: FrameworkId,
    pub task: TaskInfo,
    pub state: TaskState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor_id: Option<ExecutorId>,
}

/// A status update on its way from an executor (or the agent itself) to the scheduler.
/// `status.uuid`, `status.agent_id` and `status.executor_id` are always set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusUpdate {
    pub framework_id: FrameworkId,
    pub status: TaskStatus,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExecutorExited {
    pub framework_id: FrameworkId,
    pub executor_id: ExecutorId,
    /// The raw wait status, as Mesos reports it in FAILURE events.
    pub status: i32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExecutorMessage {
    pub framework_id: FrameworkId,
    pub executor_id: ExecutorId,
    /// Base64.
    pub data: String,
}

// Messages are serialized and sent as soon as they are made, so their size spread does
// not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ToAgent {
    Registered(Registered),
    RunTask(RunTask),
    RunTaskGroup(RunTaskGroup),
    KillTask(KillTask),
    ShutdownExecutor(ShutdownExecutor),
    ShutdownFramework(ShutdownFramework),
    StatusUpdateAck(StatusUpdateAck),
    FrameworkMessage(ExecutorMessage),
    Ping,
    /// The agent must stop: it was marked gone. Its executors are shut down.
    Shutdown(Shutdown),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Shutdown {
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Registered {
    pub agent_id: AgentId,
    pub master_info: MasterInfo,
    /// Seconds between pings; the agent treats five missed pings as a lost master.
    pub ping_interval_seconds: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunTask {
    /// With `id` set.
    pub framework_info: FrameworkInfo,
    pub task: TaskInfo,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunTaskGroup {
    pub framework_info: FrameworkInfo,
    pub executor: ExecutorInfo,
    pub task_group: TaskGroupInfo,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KillTask {
    pub framework_id: FrameworkId,
    pub task_id: TaskId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_policy: Option<KillPolicy>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShutdownExecutor {
    pub framework_id: FrameworkId,
    pub executor_id: ExecutorId,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShutdownFramework {
    pub framework_id: FrameworkId,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusUpdateAck {
    pub framework_id: FrameworkId,
    pub task_id: TaskId,
    pub uuid: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let msg = ToAgent::StatusUpdateAck(StatusUpdateAck {
            framework_id: FrameworkId::new("f"),
            task_id: TaskId::new("t"),
            uuid: "u".into(),
        });
        let json = serde_json::to_value(&msg).unwrap();
        assert_eq!(json["type"], "STATUS_UPDATE_ACK");
        assert_eq!(serde_json::from_value::<ToAgent>(json).unwrap(), msg);
        let ping = serde_json::to_value(ToAgent::Ping).unwrap();
        assert_eq!(ping, serde_json::json!({"type":"PING"}));
    }

    #[test]
    fn a_reported_task_names_its_executor_by_id() {
        let executor: ExecutorInfo = serde_json::from_value(serde_json::json!({
            "executor_id": {"value": "e1"},
            "command": {"value": "run"},
        }))
        .unwrap();
        let task = |executor: Option<ExecutorInfo>| -> TaskInfo {
            let task: TaskInfo = serde_json::from_value(serde_json::json!({
                "name": "t", "task_id": {"value": "t"}, "agent_id": {"value": "a"},
            }))
            .unwrap();
            TaskInfo {
                executor: executor.map(Box::new),
                ..task
            }
        };
        let report = |executor, executor_id: Option<&str>| TaskReport {
            framework_id: FrameworkId::new("f"),
            task: task(executor),
            state: TaskState::Running,
            executor_id: executor_id.map(ExecutorId::new),
        };
        let register = Register {
            agent_info: serde_json::from_value(serde_json::json!({"hostname": "h"})).unwrap(),
            pid: "slave(1)@127.0.0.1:5051".into(),
            version: "1.11.0".into(),
            frameworks: vec![],
            executors: vec![executor.clone()],
            tasks: vec![
                report(Some(executor.clone()), None),
                report(Some(executor.clone()), Some("e1")),
                report(None, None),
            ],
        };
        let sent = register.clone().without_task_executors();
        let ids: Vec<Option<&str>> = sent
            .tasks
            .iter()
            .map(|r| r.executor_id.as_ref().map(|id| id.as_str()))
            .collect();
        assert_eq!(ids, [Some("e1"), Some("e1"), None]);
        assert!(sent.tasks.iter().all(|r| r.task.executor.is_none()));
        assert_eq!(sent.executors, register.executors);
        let body = serde_json::to_string(&AgentCall::Register(sent)).unwrap();
        assert_eq!(body.matches("\"command\"").count(), 1, "{body}");
    }
}
