//! The v1 messages shared by the scheduler, executor and operator APIs, in the JSON shape
//! of the Mesos mapper: optional fields with non-deprecated defaults are always emitted,
//! empty repeated fields are omitted. Fields Mantle only passes through are kept as raw
//! JSON values so nothing a framework sends is lost on the way to its executor.

use crate::ids::*;
use crate::json::{lenient_enum, lenient_f64, lenient_i64, lenient_opt_f64};
use crate::resources::{Range, Resource, Scalar, ValueSet};
use serde::{Deserialize, Serialize};
use serde_json::Value;

fn default_true() -> bool {
    true
}

fn default_refuse_seconds() -> f64 {
    5.0
}

fn default_master_port() -> u32 {
    5050
}

fn default_agent_port() -> u32 {
    5051
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Capability {
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Labels {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<Label>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Label {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DurationInfo {
    #[serde(deserialize_with = "lenient_i64")]
    pub nanoseconds: i64,
}

impl DurationInfo {
    pub fn from_secs_f64(secs: f64) -> Self {
        Self {
            nanoseconds: (secs * 1e9) as i64,
        }
    }
    pub fn as_secs_f64(&self) -> f64 {
        self.nanoseconds as f64 / 1e9
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeInfo {
    #[serde(deserialize_with = "lenient_i64")]
    pub nanoseconds: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrameworkInfo {
    pub user: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<FrameworkId>,
    #[serde(default, deserialize_with = "lenient_f64")]
    pub failover_timeout: f64,
    #[serde(default)]
    pub checkpoint: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webui_url: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<Capability>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Labels>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer_filters: Option<Value>,
}

impl FrameworkInfo {
    pub fn has_capability(&self, kind: &str) -> bool {
        self.capabilities.iter().any(|c| c.kind == kind)
    }

    /// The roles this framework subscribes with: `roles` under MULTI_ROLE, else `role`
    /// (default `*`).
    pub fn effective_roles(&self) -> Vec<String> {
        if self.has_capability("MULTI_ROLE") {
            self.roles.clone()
        } else {
            vec![self.role.clone().unwrap_or_else(|| "*".to_string())]
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Address {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    pub port: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Url {
    pub scheme: String,
    pub address: Address,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attribute {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: crate::resources::ValueType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scalar: Option<Scalar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ranges: Option<crate::resources::Ranges>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set: Option<ValueSet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<Text>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Text {
    pub value: String,
}

impl Attribute {
    /// Parses `--attributes=rack:r1;zone:2`: a number is SCALAR, `[..]` RANGES, `{..}` SET,
    /// anything else TEXT.
    pub fn parse_list(text: &str) -> Result<Vec<Attribute>, String> {
        use crate::resources::{Ranges, ValueType};
        let mut out = Vec::new();
        for item in text.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            let Some((name, value)) = item.split_once(':') else {
                return Err(format!(
                    "attributes: '{item}' is not of the form name:value"
                ));
            };
            let (name, value) = (name.trim(), value.trim());
            let mut attr = Attribute {
                name: name.to_string(),
                kind: ValueType::Text,
                scalar: None,
                ranges: None,
                set: None,
                text: None,
            };
            if let Ok(v) = value.parse::<f64>() {
                attr.kind = ValueType::Scalar;
                attr.scalar = Some(Scalar { value: v });
            } else if let Some(inner) = value.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
                let mut range = Vec::new();
                for part in inner.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let (b, e) = part.split_once('-').unwrap_or((part, part));
                    let (Ok(begin), Ok(end)) = (b.trim().parse(), e.trim().parse()) else {
                        return Err(format!("attributes: '{part}' of '{name}' is not a range"));
                    };
                    range.push(Range { begin, end });
                }
                attr.kind = ValueType::Ranges;
                attr.ranges = Some(Ranges { range });
            } else if let Some(inner) = value.strip_prefix('{').and_then(|v| v.strip_suffix('}')) {
                attr.kind = ValueType::Set;
                let item = inner.split(',').map(|s| s.trim().to_string()).collect();
                attr.set = Some(ValueSet { item });
            } else {
                attr.text = Some(Text {
                    value: value.to_string(),
                });
            }
            out.push(attr);
        }
        Ok(out)
    }

    /// The legacy endpoints' value: a number for scalars, a string otherwise.
    pub fn legacy_value(&self) -> Value {
        if let Some(s) = self.scalar {
            return Value::from(s.value);
        }
        if let Some(t) = &self.text {
            return Value::from(t.value.clone());
        }
        if let Some(r) = &self.ranges {
            let parts: Vec<String> = r
                .range
                .iter()
                .map(|r| format!("{}-{}", r.begin, r.end))
                .collect();
            return Value::from(format!("[{}]", parts.join(", ")));
        }
        if let Some(s) = &self.set {
            return Value::from(format!("{{{}}}", s.item.join(", ")));
        }
        Value::Null
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MasterInfo {
    pub id: String,
    /// IPv4 in network byte order read as a host-endian integer.
    pub ip: u32,
    #[serde(default = "default_master_port")]
    pub port: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<Capability>,
}

impl MasterInfo {
    /// `host:port` to reach this master over HTTP: the address's ip (or hostname) and
    /// port, else the hostname and port, as ZooKeeper-based detectors read them.
    pub fn http_address(&self) -> Option<String> {
        if let Some(address) = &self.address {
            let host = address.ip.clone().or_else(|| address.hostname.clone())?;
            return Some(format!("{host}:{}", address.port));
        }
        Some(format!("{}:{}", self.hostname.clone()?, self.port))
    }
}

/// The integer form of an IPv4 address in `MasterInfo.ip`.
pub fn ipv4_to_mesos_u32(ip: std::net::Ipv4Addr) -> u32 {
    u32::from_ne_bytes(ip.octets())
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentInfo {
    pub hostname: String,
    #[serde(default = "default_agent_port")]
    pub port: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<Resource>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<Attribute>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<AgentId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<Capability>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CommandUri {
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executable: Option<bool>,
    #[serde(default = "default_true")]
    pub extract: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_file: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variables: Vec<Variable>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Variable {
    pub name: String,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Value>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CommandInfo {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uris: Vec<CommandUri>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<Environment>,
    #[serde(default = "default_true")]
    pub shell: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arguments: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

impl CommandInfo {
    pub fn shell(value: impl Into<String>) -> Self {
        CommandInfo {
            uris: Vec::new(),
            environment: None,
            shell: true,
            value: Some(value.into()),
            arguments: Vec::new(),
            user: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExecutorInfo {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub executor_id: ExecutorId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub framework_id: Option<FrameworkId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<Resource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shutdown_grace_period: Option<DurationInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Labels>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KillPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_period: Option<DurationInfo>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskInfo {
    pub name: String,
    pub task_id: TaskId,
    pub agent_id: AgentId,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<Resource>,
    /// Boxed: most tasks have none (command tasks), and the master keeps every task's
    /// TaskInfo without it; inline it took 400 bytes of each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor: Option<Box<ExecutorInfo>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandInfo>,
    // The free-form fields below are boxed for the same reason: the master keeps every
    // running task's TaskInfo, and inline they took 136 bytes of each, mostly empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<Box<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<Box<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<Box<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_policy: Option<KillPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Box<Labels>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery: Option<Box<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_time: Option<DurationInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Box<Value>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskGroupInfo {
    #[serde(default)]
    pub tasks: Vec<TaskInfo>,
}

macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $text:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant,)*
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)*
                    other => Err(format!("unknown {} '{other}'", stringify!($name))),
                }
            }
        }
    };
}
pub(crate) use wire_enum;

wire_enum!(
    /// Task states; see reference §1.5 for which are terminal.
    TaskState {
        Staging = "TASK_STAGING",
        Starting = "TASK_STARTING",
        Running = "TASK_RUNNING",
        Killing = "TASK_KILLING",
        Finished = "TASK_FINISHED",
        Failed = "TASK_FAILED",
        Killed = "TASK_KILLED",
        Error = "TASK_ERROR",
        Lost = "TASK_LOST",
        Dropped = "TASK_DROPPED",
        Unreachable = "TASK_UNREACHABLE",
        Gone = "TASK_GONE",
        GoneByOperator = "TASK_GONE_BY_OPERATOR",
        Unknown = "TASK_UNKNOWN",
    }
);

impl TaskState {
    /// Terminal for resource accounting. TASK_LOST counts as terminal, as in Mesos.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::Finished
                | TaskState::Failed
                | TaskState::Killed
                | TaskState::Error
                | TaskState::Lost
                | TaskState::Dropped
                | TaskState::Gone
                | TaskState::GoneByOperator
        )
    }

    pub const ALL: [TaskState; 14] = [
        TaskState::Staging,
        TaskState::Starting,
        TaskState::Running,
        TaskState::Killing,
        TaskState::Finished,
        TaskState::Failed,
        TaskState::Killed,
        TaskState::Error,
        TaskState::Lost,
        TaskState::Dropped,
        TaskState::Unreachable,
        TaskState::Gone,
        TaskState::GoneByOperator,
        TaskState::Unknown,
    ];
}

wire_enum!(
    /// Who produced a status update.
    Source {
        Master = "SOURCE_MASTER",
        Agent = "SOURCE_AGENT",
        Executor = "SOURCE_EXECUTOR",
    }
);

wire_enum!(
    /// Why a status update was sent.
    Reason {
        CommandExecutorFailed = "REASON_COMMAND_EXECUTOR_FAILED",
        ExecutorTerminated = "REASON_EXECUTOR_TERMINATED",
        ExecutorUnregistered = "REASON_EXECUTOR_UNREGISTERED",
        FrameworkRemoved = "REASON_FRAMEWORK_REMOVED",
        GcError = "REASON_GC_ERROR",
        InvalidFrameworkid = "REASON_INVALID_FRAMEWORKID",
        InvalidOffers = "REASON_INVALID_OFFERS",
        MasterDisconnected = "REASON_MASTER_DISCONNECTED",
        ContainerLimitationMemory = "REASON_CONTAINER_LIMITATION_MEMORY",
        Reconciliation = "REASON_RECONCILIATION",
        AgentDisconnected = "REASON_AGENT_DISCONNECTED",
        AgentRemoved = "REASON_AGENT_REMOVED",
        AgentRestarted = "REASON_AGENT_RESTARTED",
        AgentUnknown = "REASON_AGENT_UNKNOWN",
        TaskInvalid = "REASON_TASK_INVALID",
        TaskUnauthorized = "REASON_TASK_UNAUTHORIZED",
        TaskUnknown = "REASON_TASK_UNKNOWN",
        ContainerPreempted = "REASON_CONTAINER_PREEMPTED",
        ResourcesUnknown = "REASON_RESOURCES_UNKNOWN",
        ContainerLimitation = "REASON_CONTAINER_LIMITATION",
        ContainerLimitationDisk = "REASON_CONTAINER_LIMITATION_DISK",
        ContainerLaunchFailed = "REASON_CONTAINER_LAUNCH_FAILED",
        ContainerUpdateFailed = "REASON_CONTAINER_UPDATE_FAILED",
        ExecutorRegistrationTimeout = "REASON_EXECUTOR_REGISTRATION_TIMEOUT",
        ExecutorReregistrationTimeout = "REASON_EXECUTOR_REREGISTRATION_TIMEOUT",
        TaskGroupInvalid = "REASON_TASK_GROUP_INVALID",
        TaskGroupUnauthorized = "REASON_TASK_GROUP_UNAUTHORIZED",
        IoSwitchboardExited = "REASON_IO_SWITCHBOARD_EXITED",
        TaskCheckStatusUpdated = "REASON_TASK_CHECK_STATUS_UPDATED",
        TaskHealthCheckStatusUpdated = "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED",
        TaskKilledDuringLaunch = "REASON_TASK_KILLED_DURING_LAUNCH",
        AgentRemovedByOperator = "REASON_AGENT_REMOVED_BY_OPERATOR",
        AgentReregistered = "REASON_AGENT_REREGISTERED",
        MaxCompletionTimeReached = "REASON_MAX_COMPLETION_TIME_REACHED",
        AgentDraining = "REASON_AGENT_DRAINING",
    }
);

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskStatus {
    pub task_id: TaskId,
    pub state: TaskState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient_enum",
        skip_serializing_if = "Option::is_none"
    )]
    pub source: Option<Source>,
    #[serde(
        default,
        deserialize_with = "lenient_enum",
        skip_serializing_if = "Option::is_none"
    )]
    pub reason: Option<Reason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<AgentId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor_id: Option<ExecutorId>,
    #[serde(
        default,
        deserialize_with = "lenient_opt_f64",
        skip_serializing_if = "Option::is_none"
    )]
    pub timestamp: Option<f64>,
    /// Base64 of 16 raw bytes; absent on master-generated updates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_status: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Labels>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_status: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreachable_time: Option<TimeInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limitation: Option<Value>,
}

impl TaskStatus {
    pub fn new(task_id: TaskId, state: TaskState) -> Self {
        TaskStatus {
            task_id,
            state,
            message: None,
            source: None,
            reason: None,
            data: None,
            agent_id: None,
            executor_id: None,
            timestamp: None,
            uuid: None,
            healthy: None,
            check_status: None,
            labels: None,
            container_status: None,
            unreachable_time: None,
            limitation: None,
        }
    }
}

/// A fresh status-update UUID: 16 random bytes, base64 encoded.
pub fn new_status_uuid() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(uuid::Uuid::new_v4().as_bytes())
}

/// Checks that a status uuid is base64 of exactly 16 bytes.
pub fn validate_status_uuid(field: &str, value: &str) -> Result<(), String> {
    use base64::Engine;
    match base64::engine::general_purpose::STANDARD.decode(value) {
        Ok(bytes) if bytes.len() == 16 => Ok(()),
        Ok(bytes) => Err(format!("{field} must be 16 bytes, got {}", bytes.len())),
        Err(err) => Err(format!("{field} is not valid base64: {err}")),
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Filters {
    #[serde(default = "default_refuse_seconds", deserialize_with = "lenient_f64")]
    pub refuse_seconds: f64,
}

impl Default for Filters {
    fn default() -> Self {
        Filters {
            refuse_seconds: default_refuse_seconds(),
        }
    }
}

impl Filters {
    /// The effective filter length: negative or invalid values mean 5 s, values are capped
    /// at 365 days, and 0 means no filter.
    pub fn effective_refuse_seconds(&self) -> f64 {
        let value = self.refuse_seconds;
        if !value.is_finite() && value > 0.0 {
            return 365.0 * 86400.0;
        }
        if !value.is_finite() || value < 0.0 {
            return default_refuse_seconds();
        }
        value.min(365.0 * 86400.0)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Offer {
    pub id: OfferId,
    pub framework_id: FrameworkId,
    pub agent_id: AgentId,
    pub hostname: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<Url>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<Resource>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<Attribute>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub executor_ids: Vec<ExecutorId>,
    /// Set when the agent's machine is scheduled for maintenance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailability: Option<crate::maintenance::Unavailability>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocation_info: Option<crate::resources::AllocationInfo>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch: Option<Launch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch_group: Option<LaunchGroup>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserve: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreserve: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destroy: Option<Value>,
}

impl Operation {
    pub fn launch(task_infos: Vec<TaskInfo>) -> Self {
        Operation {
            kind: Some("LAUNCH".into()),
            id: None,
            launch: Some(Launch { task_infos }),
            launch_group: None,
            reserve: None,
            unreserve: None,
            create: None,
            destroy: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Launch {
    #[serde(default)]
    pub task_infos: Vec<TaskInfo>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LaunchGroup {
    pub executor: ExecutorInfo,
    pub task_group: TaskGroupInfo,
}

/// Serializes `{"type": T, "<t lower>": body}`, the shape of every v1 call and event.
pub(crate) fn tagged<B: Serialize>(kind: &str, body: Option<&B>) -> Value {
    let mut map = serde_json::Map::new();
    map.insert("type".into(), Value::from(kind));
    if let Some(body) = body {
        map.insert(
            kind.to_ascii_lowercase(),
            serde_json::to_value(body).expect("wire types serialize"),
        );
    }
    Value::Object(map)
}

/// The `type` of a tagged call or event, and a reader of its body under the lower-cased
/// key, for decoding events.
pub(crate) struct Tagged<'a> {
    pub kind: &'a str,
    value: &'a Value,
}

impl<'a> Tagged<'a> {
    pub fn new(value: &'a Value) -> Self {
        Tagged {
            kind: value.get("type").and_then(Value::as_str).unwrap_or(""),
            value,
        }
    }

    pub fn body<T: serde::de::DeserializeOwned>(&self) -> Result<T, String> {
        let key = self.kind.to_ascii_lowercase();
        let body = self
            .value
            .get(&key)
            .ok_or(format!("event {} has no '{key}'", self.kind))?;
        T::deserialize(body).map_err(|e| format!("event {}: {e}", self.kind))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn framework_info_emits_defaults() {
        let info: FrameworkInfo =
            serde_json::from_value(json!({"user": "u", "name": "n"})).unwrap();
        assert_eq!(
            serde_json::to_value(&info).unwrap(),
            json!({"user":"u","name":"n","failover_timeout":0.0,"checkpoint":false})
        );
    }

    #[test]
    fn command_info_defaults_shell_true() {
        let cmd: CommandInfo = serde_json::from_value(json!({"value": "echo hi"})).unwrap();
        assert!(cmd.shell);
        assert_eq!(
            serde_json::to_value(&cmd).unwrap(),
            json!({"shell":true,"value":"echo hi"})
        );
    }

    #[test]
    fn task_status_round_trip_and_lenient_reason() {
        let status: TaskStatus = serde_json::from_value(json!({
            "task_id": {"value": "t"}, "state": "TASK_RUNNING",
            "reason": "REASON_FROM_THE_FUTURE", "source": "SOURCE_EXECUTOR",
            "timestamp": "12.5"
        }))
        .unwrap();
        assert_eq!(status.reason, None);
        assert_eq!(status.source, Some(Source::Executor));
        assert_eq!(status.timestamp, Some(12.5));
        assert!(serde_json::from_value::<TaskStatus>(
            json!({"task_id":{"value":"t"},"state":"NOPE"})
        )
        .is_err());
    }

    #[test]
    fn filters() {
        let f: Filters = serde_json::from_value(json!({})).unwrap();
        assert_eq!(f.refuse_seconds, 5.0);
        let check = |v: f64, want: f64| {
            assert_eq!(
                Filters { refuse_seconds: v }.effective_refuse_seconds(),
                want,
                "{v}"
            )
        };
        check(30.0, 30.0);
        check(-1.0, 5.0);
        check(0.0, 0.0);
        check(1e12, 365.0 * 86400.0);
        check(f64::INFINITY, 365.0 * 86400.0);
    }

    #[test]
    fn attributes() {
        let attrs = Attribute::parse_list("rack:r1;zone:2;ports:[1-2];s:{a,b}").unwrap();
        let values: Vec<Value> = attrs.iter().map(Attribute::legacy_value).collect();
        assert_eq!(
            values,
            vec![json!("r1"), json!(2.0), json!("[1-2]"), json!("{a, b}")]
        );
        assert_eq!(
            serde_json::to_value(&attrs[0]).unwrap(),
            json!({"name":"rack","type":"TEXT","text":{"value":"r1"}})
        );
    }

    #[test]
    fn master_info_ip() {
        assert_eq!(ipv4_to_mesos_u32("10.0.0.1".parse().unwrap()), 16777226);
    }

    #[test]
    fn status_uuid() {
        assert!(validate_status_uuid("uuid", &new_status_uuid()).is_ok());
        assert!(validate_status_uuid("uuid", "YWJj").is_err());
        assert!(validate_status_uuid("uuid", "***").is_err());
    }
}
