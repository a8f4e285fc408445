//! Mantle's own master-agent protocol (not Mesos's libprocess messages).
//!
//! The agent POSTs [`AgentCall::Register`] to [`AGENT_API_PATH`]; the answer is a chunked
//! RecordIO stream of [`ToAgent`] messages that lives as long as the agent is connected,
//! and whose response header [`AGENT_STREAM_HEADER`] names the connection. Every other
//! call is a separate POST carrying that header; the master answers 202 once it has taken
//! the call. Status updates are acknowledged on the stream with
//! [`ToAgent::StatusUpdateAck`] only after the framework acknowledged them.

use crate::ids::*;
use crate::messages::*;
use serde::{Deserialize, Serialize};

pub const AGENT_API_PATH: &str = "/mantle/v1/agent";
pub const AGENT_STREAM_HEADER: &str = "Mantle-Agent-Stream-Id";

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
}
