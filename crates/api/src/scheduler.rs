//! The v1 scheduler API (`POST /api/v1/scheduler`): calls from frameworks and the events
//! of their subscription stream.

use crate::error::ApiError;
use crate::ids::*;
use crate::maintenance::{InverseOffer, InverseOfferIds};
use crate::messages::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Call {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub framework_id: Option<FrameworkId>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscribe: Option<Subscribe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accept: Option<Accept>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decline: Option<Decline>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accept_inverse_offers: Option<InverseOfferIds>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decline_inverse_offers: Option<InverseOfferIds>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revive: Option<Roles>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suppress: Option<Roles>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill: Option<Kill>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shutdown: Option<Shutdown>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledge: Option<Acknowledge>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledge_operation_status: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconcile: Option<Reconcile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconcile_operations: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<FrameworkMessage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_framework: Option<Subscribe>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Subscribe {
    pub framework_info: FrameworkInfo,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suppressed_roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer_constraints: Option<Value>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Accept {
    #[serde(default)]
    pub offer_ids: Vec<OfferId>,
    #[serde(default)]
    pub operations: Vec<Operation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filters: Option<Filters>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decline {
    #[serde(default)]
    pub offer_ids: Vec<OfferId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filters: Option<Filters>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Roles {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Kill {
    pub task_id: TaskId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<AgentId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_policy: Option<KillPolicy>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Shutdown {
    pub executor_id: ExecutorId,
    pub agent_id: AgentId,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Acknowledge {
    pub agent_id: AgentId,
    pub task_id: TaskId,
    pub uuid: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reconcile {
    #[serde(default)]
    pub tasks: Vec<ReconcileTask>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReconcileTask {
    pub task_id: TaskId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<AgentId>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrameworkMessage {
    pub agent_id: AgentId,
    pub executor_id: ExecutorId,
    /// Base64.
    pub data: String,
}

/// A call after its type and body have been checked against each other.
// One value exists per request and is consumed at once, so the size spread between
// variants costs nothing worth boxing for.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum CallBody {
    Subscribe(Subscribe),
    Teardown,
    Accept(Accept),
    Decline(Decline),
    AcceptInverseOffers(InverseOfferIds),
    DeclineInverseOffers(InverseOfferIds),
    Revive(Roles),
    Suppress(Roles),
    Kill(Kill),
    Shutdown(Shutdown),
    Acknowledge(Acknowledge),
    AcknowledgeOperationStatus,
    Reconcile(Reconcile),
    ReconcileOperations,
    Message(FrameworkMessage),
    Request,
    UpdateFramework(Subscribe),
}

fn required<T>(body: Option<T>, key: &str, kind: &str) -> Result<T, ApiError> {
    body.ok_or_else(|| {
        ApiError::bad_request(format!("expecting '{key}' to be present for call {kind}"))
    })
}

impl Call {
    /// Checks the type against the body, as Mesos's call validation does.
    pub fn into_body(self) -> Result<CallBody, ApiError> {
        let Some(kind) = self.kind.as_deref() else {
            return Err(ApiError::bad_request("expecting 'type' to be present"));
        };
        let kind = kind.to_string();
        Ok(match kind.as_str() {
            "SUBSCRIBE" => CallBody::Subscribe(required(self.subscribe, "subscribe", &kind)?),
            "TEARDOWN" => CallBody::Teardown,
            "ACCEPT" => CallBody::Accept(required(self.accept, "accept", &kind)?),
            "DECLINE" => CallBody::Decline(required(self.decline, "decline", &kind)?),
            "ACCEPT_INVERSE_OFFERS" => CallBody::AcceptInverseOffers(required(
                self.accept_inverse_offers,
                "accept_inverse_offers",
                &kind,
            )?),
            "DECLINE_INVERSE_OFFERS" => CallBody::DeclineInverseOffers(required(
                self.decline_inverse_offers,
                "decline_inverse_offers",
                &kind,
            )?),
            "REVIVE" => CallBody::Revive(self.revive.unwrap_or_default()),
            "SUPPRESS" => CallBody::Suppress(self.suppress.unwrap_or_default()),
            "KILL" => CallBody::Kill(required(self.kill, "kill", &kind)?),
            "SHUTDOWN" => CallBody::Shutdown(required(self.shutdown, "shutdown", &kind)?),
            "ACKNOWLEDGE" => {
                CallBody::Acknowledge(required(self.acknowledge, "acknowledge", &kind)?)
            }
            "ACKNOWLEDGE_OPERATION_STATUS" => CallBody::AcknowledgeOperationStatus,
            "RECONCILE" => CallBody::Reconcile(required(self.reconcile, "reconcile", &kind)?),
            "RECONCILE_OPERATIONS" => CallBody::ReconcileOperations,
            "MESSAGE" => CallBody::Message(required(self.message, "message", &kind)?),
            "REQUEST" => CallBody::Request,
            "UPDATE_FRAMEWORK" => CallBody::UpdateFramework(required(
                self.update_framework,
                "update_framework",
                &kind,
            )?),
            "UNKNOWN" => {
                return Err(ApiError::new(
                    crate::ErrorKind::NotImplemented,
                    "received an unexpected 'UNKNOWN' call",
                ))
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown call type '{other}' in field 'type'"
                )))
            }
        })
    }

    /// Builds a call of `kind` with its body under the lower-cased key.
    pub fn new(framework_id: Option<FrameworkId>, kind: &str) -> Call {
        Call {
            framework_id,
            kind: Some(kind.to_string()),
            ..Call::default()
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Subscribed {
    pub framework_id: FrameworkId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_interval_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_info: Option<MasterInfo>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Offers {
    #[serde(default)]
    pub offers: Vec<Offer>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rescind {
    pub offer_id: OfferId,
}

/// INVERSE_OFFERS: Mesos 1.x sends inverse offers in their own event, not inside OFFERS
/// (pymesos reads them there only from masters older than 1.0).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InverseOffers {
    #[serde(default)]
    pub inverse_offers: Vec<InverseOffer>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RescindInverseOffer {
    pub inverse_offer_id: OfferId,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Update {
    pub status: TaskStatus,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<AgentId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor_id: Option<ExecutorId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<i32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorEvent {
    pub message: String,
}

/// Events on a framework's stream.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    Subscribed(Subscribed),
    Offers(Offers),
    InverseOffers(InverseOffers),
    Rescind(Rescind),
    RescindInverseOffer(RescindInverseOffer),
    Update(Update),
    Message(FrameworkMessage),
    Failure(Failure),
    Error(ErrorEvent),
    Heartbeat,
    /// An event type this crate does not model, kept whole.
    Other(Value),
}

/// An event is written as Mesos writes it: its `type` first, then its body under the
/// lower-cased type; straight to the output, without a `Value` tree first.
impl Serialize for Event {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        fn tagged<S: serde::Serializer, B: Serialize>(
            serializer: S,
            kind: &str,
            key: &str,
            body: &B,
        ) -> Result<S::Ok, S::Error> {
            let mut map = serializer.serialize_map(Some(2))?;
            map.serialize_entry("type", kind)?;
            map.serialize_entry(key, body)?;
            map.end()
        }
        match self {
            Event::Subscribed(b) => tagged(serializer, "SUBSCRIBED", "subscribed", b),
            Event::Offers(b) => tagged(serializer, "OFFERS", "offers", b),
            Event::InverseOffers(b) => tagged(serializer, "INVERSE_OFFERS", "inverse_offers", b),
            Event::Rescind(b) => tagged(serializer, "RESCIND", "rescind", b),
            Event::RescindInverseOffer(b) => tagged(
                serializer,
                "RESCIND_INVERSE_OFFER",
                "rescind_inverse_offer",
                b,
            ),
            Event::Update(b) => tagged(serializer, "UPDATE", "update", b),
            Event::Message(b) => tagged(serializer, "MESSAGE", "message", b),
            Event::Failure(b) => tagged(serializer, "FAILURE", "failure", b),
            Event::Error(b) => tagged(serializer, "ERROR", "error", b),
            Event::Heartbeat => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("type", "HEARTBEAT")?;
                map.end()
            }
            Event::Other(value) => value.serialize(serializer),
        }
    }
}

impl Event {
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("wire types serialize")
    }

    /// Decodes an event from its JSON text straight into its type, without a `Value`
    /// tree first (a framework reads one per offer and status update). An event type
    /// this crate does not model is kept whole as [`Event::Other`].
    pub fn from_json(text: &[u8]) -> Result<Event, String> {
        // Every body this crate models, each under its lower-cased type; others are
        // skipped.
        #[derive(Deserialize)]
        struct Wire {
            #[serde(rename = "type", default)]
            kind: String,
            subscribed: Option<Subscribed>,
            offers: Option<Offers>,
            inverse_offers: Option<InverseOffers>,
            rescind: Option<Rescind>,
            rescind_inverse_offer: Option<RescindInverseOffer>,
            update: Option<Update>,
            message: Option<FrameworkMessage>,
            failure: Option<Failure>,
            error: Option<ErrorEvent>,
        }
        let wire: Wire = serde_json::from_slice(text).map_err(|e| format!("event: {e}"))?;
        fn body<T>(kind: &str, body: Option<T>) -> Result<T, String> {
            body.ok_or_else(|| format!("event {kind} has no '{}'", kind.to_ascii_lowercase()))
        }
        let kind = wire.kind.as_str();
        Ok(match kind {
            "SUBSCRIBED" => Event::Subscribed(body(kind, wire.subscribed)?),
            "OFFERS" => Event::Offers(body(kind, wire.offers)?),
            "INVERSE_OFFERS" => Event::InverseOffers(body(kind, wire.inverse_offers)?),
            "RESCIND" => Event::Rescind(body(kind, wire.rescind)?),
            "RESCIND_INVERSE_OFFER" => {
                Event::RescindInverseOffer(body(kind, wire.rescind_inverse_offer)?)
            }
            "UPDATE" => Event::Update(body(kind, wire.update)?),
            "MESSAGE" => Event::Message(body(kind, wire.message)?),
            "FAILURE" => Event::Failure(body(kind, wire.failure)?),
            "ERROR" => Event::Error(body(kind, wire.error)?),
            "HEARTBEAT" => Event::Heartbeat,
            _ => Event::Other(serde_json::from_slice(text).map_err(|e| format!("event: {e}"))?),
        })
    }

    /// [`Event::from_json`] of a value already parsed.
    pub fn from_value(value: Value) -> Result<Event, String> {
        Event::from_json(&serde_json::to_vec(&value).expect("a Value serializes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check_event(event: Event, expected: Value) {
        assert_eq!(event.to_value(), expected);
        // The type comes first, as in Mesos's JSON.
        let written = String::from_utf8(serde_json::to_vec(&event).unwrap()).unwrap();
        assert!(written.starts_with(r#"{"type":"#), "{written}");
        let text = serde_json::to_vec(&expected).unwrap();
        assert_eq!(Event::from_json(&text).unwrap(), event);
        assert_eq!(Event::from_value(expected).unwrap(), event);
    }

    #[test]
    fn events_decode_from_text_as_from_values() {
        let other = json!({"type": "FROM_THE_FUTURE", "from_the_future": {"x": 1}});
        let text = serde_json::to_vec(&other).unwrap();
        assert_eq!(Event::from_json(&text).unwrap(), Event::Other(other));
        assert_eq!(
            Event::from_json(br#"{"type":"UPDATE"}"#).unwrap_err(),
            "event UPDATE has no 'update'"
        );
        let bad = Event::from_json(br#"{"type":"OFFERS","offers":{"offers":7}}"#).unwrap_err();
        assert!(bad.starts_with("event: invalid type"), "{bad}");
        assert!(Event::from_json(b"{not json").is_err());
    }

    #[test]
    fn event_shapes() {
        check_event(Event::Heartbeat, json!({"type":"HEARTBEAT"}));
        check_event(
            Event::Rescind(Rescind {
                offer_id: OfferId::new("o1"),
            }),
            json!({"type":"RESCIND","rescind":{"offer_id":{"value":"o1"}}}),
        );
        check_event(
            Event::Error(ErrorEvent {
                message: "Framework failed over".into(),
            }),
            json!({"type":"ERROR","error":{"message":"Framework failed over"}}),
        );
        check_event(
            Event::Failure(Failure {
                agent_id: Some(AgentId::new("a")),
                executor_id: None,
                status: None,
            }),
            json!({"type":"FAILURE","failure":{"agent_id":{"value":"a"}}}),
        );
        let mut status = TaskStatus::new(TaskId::new("t"), TaskState::Running);
        status.agent_id = Some(AgentId::new("a"));
        status.source = Some(Source::Executor);
        status.uuid = Some("AAAAAAAAAAAAAAAAAAAAAA==".into());
        status.timestamp = Some(1.5);
        check_event(
            Event::Update(Update { status }),
            json!({"type":"UPDATE","update":{"status":{
                "task_id":{"value":"t"},"state":"TASK_RUNNING","source":"SOURCE_EXECUTOR",
                "agent_id":{"value":"a"},"timestamp":1.5,"uuid":"AAAAAAAAAAAAAAAAAAAAAA=="}}}),
        );
        check_event(
            Event::Subscribed(Subscribed {
                framework_id: FrameworkId::new("f"),
                heartbeat_interval_seconds: Some(15.0),
                master_info: None,
            }),
            json!({"type":"SUBSCRIBED","subscribed":{"framework_id":{"value":"f"},"heartbeat_interval_seconds":15.0}}),
        );
    }

    #[test]
    fn inverse_offer_shapes() {
        let unavailability = crate::maintenance::Unavailability {
            start: TimeInfo { nanoseconds: 7 },
            duration: None,
        };
        check_event(
            Event::InverseOffers(InverseOffers {
                inverse_offers: vec![InverseOffer {
                    id: OfferId::new("m-O2"),
                    url: None,
                    framework_id: FrameworkId::new("f"),
                    agent_id: AgentId::new("a"),
                    unavailability,
                    resources: vec![],
                }],
            }),
            json!({"type":"INVERSE_OFFERS","inverse_offers":{"inverse_offers":[{
                "id":{"value":"m-O2"},"framework_id":{"value":"f"},"agent_id":{"value":"a"},
                "unavailability":{"start":{"nanoseconds":7}}}]}}),
        );
        check_event(
            Event::RescindInverseOffer(RescindInverseOffer {
                inverse_offer_id: OfferId::new("m-O2"),
            }),
            json!({"type":"RESCIND_INVERSE_OFFER","rescind_inverse_offer":{"inverse_offer_id":{"value":"m-O2"}}}),
        );
    }

    #[test]
    fn offer_shape() {
        let offer = Offer {
            id: OfferId::new("m-O1"),
            framework_id: FrameworkId::new("m-0000"),
            agent_id: AgentId::new("m-S0"),
            hostname: "h".into(),
            url: None,
            resources: crate::Resources::parse_text("cpus:1", "*")
                .unwrap()
                .to_wire(),
            attributes: vec![],
            executor_ids: vec![],
            unavailability: None,
            allocation_info: None,
        };
        check_event(
            Event::Offers(Offers {
                offers: vec![offer],
            }),
            json!({"type":"OFFERS","offers":{"offers":[{
                "id":{"value":"m-O1"},"framework_id":{"value":"m-0000"},"agent_id":{"value":"m-S0"},
                "hostname":"h","resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":1.0},"role":"*"}]}]}}),
        );
    }

    fn check_call(body: Value, expected: Result<&str, &str>) {
        let call: Call = serde_json::from_value(body).unwrap();
        match (call.into_body(), expected) {
            (Ok(b), Ok(name)) => assert!(format!("{b:?}").starts_with(name), "{b:?}"),
            (Err(e), Err(needle)) => assert!(e.message.contains(needle), "{}", e.message),
            (got, want) => panic!("got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn call_validation() {
        check_call(json!({"type":"TEARDOWN"}), Ok("Teardown"));
        check_call(json!({"type":"REVIVE"}), Ok("Revive"));
        check_call(
            json!({"type":"DECLINE","decline":{"offer_ids":[]}}),
            Ok("Decline"),
        );
        check_call(json!({"type":"DECLINE"}), Err("'decline'"));
        check_call(
            json!({"type":"ACCEPT_INVERSE_OFFERS","accept_inverse_offers":{"inverse_offer_ids":[{"value":"i"}]}}),
            Ok("AcceptInverseOffers"),
        );
        check_call(
            json!({"type":"DECLINE_INVERSE_OFFERS"}),
            Err("'decline_inverse_offers'"),
        );
        check_call(
            json!({"type":"FROBNICATE"}),
            Err("unknown call type 'FROBNICATE'"),
        );
        check_call(json!({}), Err("'type'"));
        let call: Call = serde_json::from_value(json!({"type":"UNKNOWN"})).unwrap();
        assert_eq!(
            call.into_body().unwrap_err().status(),
            http::StatusCode::NOT_IMPLEMENTED
        );
    }

    #[test]
    fn pymesos_accept_call_parses() {
        let call: Call = serde_json::from_value(json!({
            "type": "ACCEPT", "framework_id": {"value": "f"},
            "accept": {"offer_ids": [{"value": "o"}], "operations": [{"type": "LAUNCH", "launch": {"task_infos": [{
                "name": "t", "task_id": {"value": "1"}, "agent_id": {"value": "a"},
                "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}}],
                "command": {"value": "true"}, "slave_id": {"value": "ignored"}}]}}],
                "filters": {"refuse_seconds": 5}}
        }))
        .unwrap();
        let CallBody::Accept(accept) = call.into_body().unwrap() else {
            panic!()
        };
        assert_eq!(
            accept.operations[0].launch.as_ref().unwrap().task_infos[0].name,
            "t"
        );
    }
}
