//! The v1 executor API (`POST /api/v1/executor` on the agent): calls from executors and
//! the events of their subscription stream.

use crate::error::ApiError;
use crate::ids::*;
use crate::messages::Tagged;
use crate::messages::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Call {
    pub executor_id: ExecutorId,
    pub framework_id: FrameworkId,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscribe: Option<Subscribe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<UpdateCall>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<MessageCall>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Subscribe {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unacknowledged_tasks: Vec<TaskInfo>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unacknowledged_updates: Vec<UpdateCall>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UpdateCall {
    pub status: TaskStatus,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MessageCall {
    /// Base64.
    pub data: String,
}

// One value exists per request and is consumed at once, so the size spread between
// variants costs nothing worth boxing for.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum CallBody {
    Subscribe(Subscribe),
    Update(TaskStatus),
    Message(MessageCall),
    Heartbeat,
}

impl Call {
    pub fn new(framework_id: FrameworkId, executor_id: ExecutorId, kind: &str) -> Call {
        Call {
            executor_id,
            framework_id,
            kind: Some(kind.to_string()),
            subscribe: None,
            update: None,
            message: None,
        }
    }

    pub fn into_body(self) -> Result<CallBody, ApiError> {
        let missing = |key: &str, kind: &str| {
            ApiError::bad_request(format!("expecting '{key}' to be present for call {kind}"))
        };
        match self.kind.as_deref() {
            None => Err(ApiError::bad_request("expecting 'type' to be present")),
            Some("SUBSCRIBE") => Ok(CallBody::Subscribe(self.subscribe.unwrap_or_default())),
            Some("UPDATE") => {
                let status = self
                    .update
                    .ok_or_else(|| missing("update", "UPDATE"))?
                    .status;
                let Some(uuid) = &status.uuid else {
                    return Err(ApiError::bad_request(
                        "'update.status.uuid' must be present",
                    ));
                };
                validate_status_uuid("update.status.uuid", uuid).map_err(ApiError::bad_request)?;
                if status.state == TaskState::Staging {
                    return Err(ApiError::bad_request(
                        "'update.status.state' must not be TASK_STAGING",
                    ));
                }
                if status.source.is_some_and(|s| s != Source::Executor) {
                    return Err(ApiError::bad_request(
                        "'update.status.source' must be SOURCE_EXECUTOR",
                    ));
                }
                if status
                    .executor_id
                    .as_ref()
                    .is_some_and(|e| e != &self.executor_id)
                {
                    return Err(ApiError::bad_request(
                        "'update.status.executor_id' does not match the call's 'executor_id'",
                    ));
                }
                Ok(CallBody::Update(status))
            }
            Some("MESSAGE") => Ok(CallBody::Message(
                self.message.ok_or_else(|| missing("message", "MESSAGE"))?,
            )),
            Some("HEARTBEAT") => Ok(CallBody::Heartbeat),
            Some("UNKNOWN") => Err(ApiError::new(
                crate::ErrorKind::NotImplemented,
                "received an unexpected 'UNKNOWN' call",
            )),
            Some(other) => Err(ApiError::bad_request(format!(
                "unknown call type '{other}' in field 'type'"
            ))),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Subscribed {
    pub executor_info: ExecutorInfo,
    pub framework_info: FrameworkInfo,
    pub agent_info: AgentInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<ContainerId>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LaunchEvent {
    pub task: TaskInfo,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LaunchGroupEvent {
    pub task_group: TaskGroupInfo,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KillEvent {
    pub task_id: TaskId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_policy: Option<KillPolicy>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Acknowledged {
    pub task_id: TaskId,
    pub uuid: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MessageEvent {
    pub data: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorEvent {
    pub message: String,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    Subscribed(Box<Subscribed>),
    Launch(Box<LaunchEvent>),
    LaunchGroup(Box<LaunchGroupEvent>),
    Kill(KillEvent),
    Acknowledged(Acknowledged),
    Message(MessageEvent),
    Error(ErrorEvent),
    Shutdown,
    Heartbeat,
    Other(Value),
}

impl Event {
    pub fn to_value(&self) -> Value {
        match self {
            Event::Subscribed(b) => tagged("SUBSCRIBED", Some(b)),
            Event::Launch(b) => tagged("LAUNCH", Some(b)),
            Event::LaunchGroup(b) => tagged("LAUNCH_GROUP", Some(b)),
            Event::Kill(b) => tagged("KILL", Some(b)),
            Event::Acknowledged(b) => tagged("ACKNOWLEDGED", Some(b)),
            Event::Message(b) => tagged("MESSAGE", Some(b)),
            Event::Error(b) => tagged("ERROR", Some(b)),
            Event::Shutdown => tagged::<()>("SHUTDOWN", None),
            Event::Heartbeat => tagged::<()>("HEARTBEAT", None),
            Event::Other(v) => v.clone(),
        }
    }

    pub fn from_value(value: Value) -> Result<Event, String> {
        let tagged = Tagged::new(&value);
        Ok(match tagged.kind {
            "SUBSCRIBED" => Event::Subscribed(Box::new(tagged.body()?)),
            "LAUNCH" => Event::Launch(Box::new(tagged.body()?)),
            "LAUNCH_GROUP" => Event::LaunchGroup(Box::new(tagged.body()?)),
            "KILL" => Event::Kill(tagged.body()?),
            "ACKNOWLEDGED" => Event::Acknowledged(tagged.body()?),
            "MESSAGE" => Event::Message(tagged.body()?),
            "ERROR" => Event::Error(tagged.body()?),
            "SHUTDOWN" => Event::Shutdown,
            "HEARTBEAT" => Event::Heartbeat,
            _ => Event::Other(value),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pymesos_update_call() {
        let call: Call = serde_json::from_value(json!({
            "type": "UPDATE", "executor_id": {"value": "e"}, "framework_id": {"value": "f"},
            "update": {"status": {"task_id": {"value": "t"}, "state": "TASK_RUNNING",
                "timestamp": 17, "uuid": "AAAAAAAAAAAAAAAAAAAAAA==", "source": "SOURCE_EXECUTOR"}}
        }))
        .unwrap();
        let CallBody::Update(status) = call.into_body().unwrap() else {
            panic!()
        };
        assert_eq!(status.state, TaskState::Running);
    }

    #[test]
    fn update_rules() {
        let base = |status: Value| -> Result<CallBody, ApiError> {
            serde_json::from_value::<Call>(json!({
                "type": "UPDATE", "executor_id": {"value": "e"}, "framework_id": {"value": "f"},
                "update": {"status": status}}))
            .unwrap()
            .into_body()
        };
        let err = base(json!({"task_id": {"value": "t"}, "state": "TASK_RUNNING"})).unwrap_err();
        assert!(err.message.contains("uuid"));
        let err = base(json!({"task_id": {"value": "t"}, "state": "TASK_STAGING",
            "uuid": "AAAAAAAAAAAAAAAAAAAAAA=="}))
        .unwrap_err();
        assert!(err.message.contains("TASK_STAGING"));
    }

    #[test]
    fn acknowledged_shape() {
        let e = Event::Acknowledged(Acknowledged {
            task_id: TaskId::new("t"),
            uuid: "u".into(),
        });
        assert_eq!(
            e.to_value(),
            json!({"type":"ACKNOWLEDGED","acknowledged":{"task_id":{"value":"t"},"uuid":"u"}})
        );
        assert_eq!(Event::Shutdown.to_value(), json!({"type":"SHUTDOWN"}));
    }
}
