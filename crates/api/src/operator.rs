//! The v1 operator API calls of the master (reference §3): the reads, policy (weights,
//! quota, dynamic reservations), agent control, maintenance, TEARDOWN, SET_LOGGING_LEVEL,
//! and Mantle's KILL_TASK extension (Mesos has no operator call to kill one task).

use crate::json::lenient_f64;
use crate::maintenance::{DrainAgent, Machines, UpdateMaintenanceSchedule};
use crate::resources::Resource;
use crate::{AgentId, DurationInfo, FrameworkId, KillPolicy, TaskId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OperatorCall {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_weights: Option<UpdateWeights>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_quota: Option<UpdateQuota>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserve_resources: Option<ReserveResources>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreserve_resources: Option<ReserveResources>,
    /// `{"agent_id": {"value": ...}}` of the agent calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deactivate_agent: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reactivate_agent: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark_agent_gone: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_agent: Option<DrainAgent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_maintenance_schedule: Option<UpdateMaintenanceSchedule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_maintenance: Option<Machines>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_maintenance: Option<Machines>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teardown: Option<Teardown>,
    /// Mantle's extension: the master kills a task on its framework's behalf.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_task: Option<KillTask>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_logging_level: Option<SetLoggingLevel>,
    /// GET_METRICS `{timeout}`: accepted and ignored (the metrics are always at hand).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub get_metrics: Option<serde_json::Value>,
}

/// TEARDOWN `{framework_id}`: removes the framework as its own TEARDOWN would.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Teardown {
    pub framework_id: FrameworkId,
}

/// KILL_TASK `{framework_id, task_id, kill_policy?}` (a Mantle extension).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KillTask {
    pub framework_id: FrameworkId,
    pub task_id: TaskId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_policy: Option<KillPolicy>,
}

/// SET_LOGGING_LEVEL `{level, duration}`: `level` is glog's verbosity (0 is INFO, higher
/// is more verbose), and the level reverts after `duration`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SetLoggingLevel {
    pub level: u32,
    pub duration: DurationInfo,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WeightInfo {
    pub role: String,
    #[serde(deserialize_with = "lenient_f64")]
    pub weight: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdateWeights {
    #[serde(default)]
    pub weight_infos: Vec<WeightInfo>,
}

/// `{"value": 4}`: how v1 quota configs spell a scalar.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScalarValue {
    #[serde(deserialize_with = "lenient_f64")]
    pub value: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct QuotaConfig {
    pub role: String,
    #[serde(default)]
    pub guarantees: BTreeMap<String, ScalarValue>,
    #[serde(default)]
    pub limits: BTreeMap<String, ScalarValue>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdateQuota {
    #[serde(default)]
    pub force: bool,
    #[serde(default)]
    pub quota_configs: Vec<QuotaConfig>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReserveResources {
    pub agent_id: AgentId,
    #[serde(default)]
    pub source: Vec<Resource>,
    #[serde(default)]
    pub resources: Vec<Resource>,
}
