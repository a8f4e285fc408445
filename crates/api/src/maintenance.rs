//! Maintenance and draining on the wire (reference §3, "Maintenance" and "Agent
//! control"): machine IDs, unavailability windows, the schedule, the cluster status with
//! the frameworks' answers to inverse offers, inverse offers themselves, and the drain
//! configuration an operator gives to DRAIN_AGENT. Shapes follow Mesos's
//! `mesos.v1.maintenance` and `mesos.v1` messages.

use crate::ids::*;
use crate::messages::{wire_enum, DurationInfo, TimeInfo, Url};
use crate::resources::Resource;
use crate::Filters;
use serde::{Deserialize, Serialize};

/// A machine as the operator names it. Either field may be absent; two IDs are the same
/// machine when both have the same fields set, the hostnames agree ignoring ASCII case
/// and the IPs agree exactly (Mesos's equality).
#[derive(Clone, Debug, Default, Eq, Serialize, Deserialize)]
pub struct MachineId {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
}

impl PartialEq for MachineId {
    fn eq(&self, other: &Self) -> bool {
        let hostnames = match (&self.hostname, &other.hostname) {
            (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
            (None, None) => true,
            _ => false,
        };
        hostnames && self.ip == other.ip
    }
}

impl MachineId {
    /// The machine an agent runs on: its hostname and the IP of its address, both set.
    pub fn of_agent(hostname: &str, ip: &str) -> MachineId {
        MachineId {
            hostname: Some(hostname.to_string()),
            ip: Some(ip.to_string()),
        }
    }

    /// Whether this is the machine of an agent with that hostname and IP: equal to
    /// [`MachineId::of_agent`] without building it.
    pub fn is_agent_machine(&self, hostname: &str, ip: &str) -> bool {
        self.hostname
            .as_deref()
            .is_some_and(|h| h.eq_ignore_ascii_case(hostname))
            && self.ip.as_deref() == Some(ip)
    }

    /// The compact JSON Mesos quotes in its error messages.
    pub fn to_json_text(&self) -> String {
        serde_json::to_string(self).expect("machine ids serialize")
    }
}

/// When a machine is expected to be unavailable: from `start`, for `duration` (unset:
/// an unknown length).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unavailability {
    pub start: TimeInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<DurationInfo>,
}

/// Machines that go into maintenance in the same `unavailability`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub machine_ids: Vec<MachineId>,
    pub unavailability: Unavailability,
}

/// The cluster's one maintenance schedule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<Window>,
}

wire_enum!(
    /// A framework's answer to an inverse offer.
    InverseOfferAnswer {
        Unknown = "UNKNOWN",
        Accept = "ACCEPT",
        Decline = "DECLINE",
    }
);

/// The latest answer of one framework to the inverse offers for one agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InverseOfferStatus {
    pub status: InverseOfferAnswer,
    pub framework_id: FrameworkId,
    pub timestamp: TimeInfo,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainingMachine {
    pub id: MachineId,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub statuses: Vec<InverseOfferStatus>,
}

/// GET_MAINTENANCE_STATUS and `/maintenance/status`: machines by mode (UP machines are
/// not listed).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub draining_machines: Vec<DrainingMachine>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub down_machines: Vec<MachineId>,
}

/// The master asking a framework to give an agent back before its unavailability.
/// Maintenance inverse offers name no resources: the whole agent is meant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InverseOffer {
    pub id: OfferId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<Url>,
    pub framework_id: FrameworkId,
    pub agent_id: AgentId,
    pub unavailability: Unavailability,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<Resource>,
}

/// The body of ACCEPT_INVERSE_OFFERS and DECLINE_INVERSE_OFFERS.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InverseOfferIds {
    #[serde(default)]
    pub inverse_offer_ids: Vec<OfferId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filters: Option<Filters>,
}

/// How an agent is drained: the longest kill grace period its tasks get, and whether it
/// is marked gone once drained.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_grace_period: Option<DurationInfo>,
    #[serde(default)]
    pub mark_gone: bool,
}

wire_enum!(
    /// Where a drain is: tasks still being killed, or none left.
    DrainState {
        Draining = "DRAINING",
        Drained = "DRAINED",
    }
);

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainInfo {
    pub state: DrainState,
    pub config: DrainConfig,
}

/// The body of the operator's DRAIN_AGENT.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainAgent {
    pub agent_id: AgentId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_grace_period: Option<DurationInfo>,
    #[serde(default)]
    pub mark_gone: bool,
}

/// The body of UPDATE_MAINTENANCE_SCHEDULE.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateMaintenanceSchedule {
    pub schedule: Schedule,
}

/// The body of START_MAINTENANCE and STOP_MAINTENANCE.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machines {
    #[serde(default)]
    pub machines: Vec<MachineId>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn machine(hostname: Option<&str>, ip: Option<&str>) -> MachineId {
        MachineId {
            hostname: hostname.map(str::to_string),
            ip: ip.map(str::to_string),
        }
    }

    #[test]
    fn machine_equality_follows_mesos() {
        let cases = [
            (
                machine(Some("Host"), Some("1.2.3.4")),
                machine(Some("host"), Some("1.2.3.4")),
                true,
            ),
            (
                machine(Some("host"), None),
                machine(Some("host"), Some("1.2.3.4")),
                false,
            ),
            (
                machine(None, Some("1.2.3.4")),
                machine(None, Some("1.2.3.4")),
                true,
            ),
            (
                machine(Some("a"), Some("1.2.3.4")),
                machine(Some("b"), Some("1.2.3.4")),
                false,
            ),
            (machine(Some(""), None), machine(None, None), false),
        ];
        for (a, b, equal) in cases {
            assert_eq!(a == b, equal, "{a:?} {b:?}");
        }
        let agent = MachineId::of_agent("Node-1", "10.0.0.1");
        for id in [
            machine(Some("node-1"), Some("10.0.0.1")),
            machine(Some("node-1"), None),
            machine(None, Some("10.0.0.1")),
            machine(Some("node-1"), Some("10.0.0.2")),
        ] {
            assert_eq!(
                id.is_agent_machine("Node-1", "10.0.0.1"),
                id == agent,
                "{id:?}"
            );
        }
    }

    #[test]
    fn schedule_shape_round_trips() {
        let text = json!({"windows": [{
            "machine_ids": [{"hostname": "m1", "ip": "10.0.0.1"}],
            "unavailability": {"start": {"nanoseconds": 1443830400000000000i64},
                               "duration": {"nanoseconds": 3600000000000i64}}}]});
        let schedule: Schedule = serde_json::from_value(text.clone()).unwrap();
        assert_eq!(serde_json::to_value(&schedule).unwrap(), text);
        assert_eq!(
            serde_json::to_value(Schedule::default()).unwrap(),
            json!({})
        );
        // Mesos accepts int64 values written as strings.
        let lenient: Unavailability =
            serde_json::from_value(json!({"start": {"nanoseconds": "5"}})).unwrap();
        assert_eq!(lenient.start.nanoseconds, 5);
    }

    #[test]
    fn drain_info_emits_mark_gone() {
        let info = DrainInfo {
            state: DrainState::Draining,
            config: DrainConfig::default(),
        };
        assert_eq!(
            serde_json::to_value(&info).unwrap(),
            json!({"state": "DRAINING", "config": {"mark_gone": false}})
        );
    }
}
