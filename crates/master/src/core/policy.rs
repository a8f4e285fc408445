//! Policy the operator sets (reference §3, §6): role weights, quota and dynamic
//! reservations, through the v1 operator calls and the legacy endpoints; and what the
//! role endpoints show. The [`Policy`] is what the event loop stores before answering.

use super::Master;
use mantle_allocator::Quota;
use mantle_api::operator::{OperatorCall, QuotaConfig, ReserveResources, UpdateQuota, WeightInfo};
use mantle_api::validation::validate_role;
use mantle_api::*;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Master operator calls Mesos defines that Mantle does not serve yet: answered 501,
/// where a type Mesos does not know is a 400.
const MESOS_CALLS_NOT_SUPPORTED: &[&str] = &[
    "LIST_FILES",
    "READ_FILE",
    "GET_OPERATIONS",
    "CREATE_VOLUMES",
    "DESTROY_VOLUMES",
    "GROW_VOLUME",
    "SHRINK_VOLUME",
    "SET_QUOTA",
    "REMOVE_QUOTA",
];

/// What survives a master restart.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    #[serde(default)]
    pub weights: BTreeMap<String, f64>,
    #[serde(default)]
    pub quotas: BTreeMap<String, QuotaConfig>,
    /// Dynamic reservations per agent, in wire form.
    #[serde(default)]
    pub reservations: BTreeMap<String, Vec<Resource>>,
}

/// A successful operator call: 200 with an optional JSON body, or 202.
#[derive(Clone, Debug, PartialEq)]
pub enum OperatorReply {
    Ok(Option<Value>),
    Accepted,
}

pub(super) fn required<T>(value: Option<T>, field: &str) -> Result<T, ApiError> {
    value.ok_or_else(|| ApiError::bad_request(format!("expecting '{field}' to be present")))
}

fn scalars(
    field: &str,
    map: &BTreeMap<String, operator::ScalarValue>,
) -> Result<Resources, ApiError> {
    let mut out = Resources::new();
    for (name, value) in map {
        if !value.value.is_finite() || value.value < 0.0 {
            return Err(ApiError::bad_request(format!(
                "{field}.{name}: must be a non-negative number"
            )));
        }
        out.add(
            &Resources::from_wire(field, &[Resource::scalar(name, value.value)])
                .map_err(ApiError::bad_request)?,
        );
    }
    Ok(out)
}

fn to_quota(config: &QuotaConfig, field: &str) -> Result<Quota, ApiError> {
    let guarantees = scalars(&format!("{field}.guarantees"), &config.guarantees)?;
    let limits = scalars(&format!("{field}.limits"), &config.limits)?;
    for (name, g) in &config.guarantees {
        if let Some(l) = config.limits.get(name) {
            if g.value > l.value {
                return Err(ApiError::bad_request(format!(
                    "{field}: guarantee of '{name}' ({}) is above its limit ({})",
                    g.value, l.value
                )));
            }
        }
    }
    Ok(Quota { guarantees, limits })
}

impl Master {
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn policy_version(&self) -> u64 {
        self.policy_version
    }

    /// Applies a stored policy at startup. Reservations are applied as agents register.
    pub fn restore_policy(&mut self, policy: Policy) {
        for (role, weight) in &policy.weights {
            self.allocator.set_weight(role, *weight);
        }
        for (role, config) in &policy.quotas {
            if let Ok(quota) = to_quota(config, "quota") {
                self.allocator.set_quota(role, Some(quota));
            }
        }
        self.policy = policy;
    }

    /// A v1 operator call that reads or sets policy.
    pub fn operator_call(
        &mut self,
        now: f64,
        call: OperatorCall,
    ) -> Result<OperatorReply, ApiError> {
        let body = |kind: &str, field: &str, value: Value| {
            Ok(OperatorReply::Ok(Some(json!({"type": kind, field: value}))))
        };
        match call.kind.as_str() {
            "GET_ROLES" => body(
                "GET_ROLES",
                "get_roles",
                json!({"roles": self.roles_json(true)}),
            ),
            "GET_WEIGHTS" => body(
                "GET_WEIGHTS",
                "get_weights",
                json!({"weight_infos": self.weights_json()}),
            ),
            "GET_QUOTA" => body(
                "GET_QUOTA",
                "get_quota",
                json!({"status": self.quota_status_json()}),
            ),
            "UPDATE_WEIGHTS" => {
                let update = required(call.update_weights, "update_weights")?;
                self.update_weights(&update.weight_infos, "update_weights.weight_infos")?;
                Ok(OperatorReply::Ok(None))
            }
            "UPDATE_QUOTA" => {
                self.update_quota(required(call.update_quota, "update_quota")?)?;
                Ok(OperatorReply::Ok(None))
            }
            "RESERVE_RESOURCES" => {
                let call = required(call.reserve_resources, "reserve_resources")?;
                self.reserve(now, &call, false, "reserve_resources")?;
                Ok(OperatorReply::Accepted)
            }
            "UNRESERVE_RESOURCES" => {
                let call = required(call.unreserve_resources, "unreserve_resources")?;
                self.reserve(now, &call, true, "unreserve_resources")?;
                Ok(OperatorReply::Accepted)
            }
            "DEACTIVATE_AGENT" => {
                self.agent_control(now, "DEACTIVATE_AGENT", call.deactivate_agent.as_ref())
            }
            "REACTIVATE_AGENT" => {
                self.agent_control(now, "REACTIVATE_AGENT", call.reactivate_agent.as_ref())
            }
            "MARK_AGENT_GONE" => {
                self.agent_control(now, "MARK_AGENT_GONE", call.mark_agent_gone.as_ref())
            }
            "DRAIN_AGENT" => {
                self.drain_agent(now, required(call.drain_agent, "drain_agent")?)?;
                Ok(OperatorReply::Ok(None))
            }
            "GET_MAINTENANCE_SCHEDULE"
            | "GET_MAINTENANCE_STATUS"
            | "UPDATE_MAINTENANCE_SCHEDULE"
            | "START_MAINTENANCE"
            | "STOP_MAINTENANCE" => self.maintenance_call(now, call),
            "TEARDOWN" => {
                let teardown = required(call.teardown, "teardown")?;
                self.operator_teardown(now, teardown, "teardown.framework_id")?;
                Ok(OperatorReply::Ok(None))
            }
            "KILL_TASK" => {
                self.operator_kill_task(required(call.kill_task, "kill_task")?)?;
                Ok(OperatorReply::Accepted)
            }
            "" => Err(ApiError::bad_request("expecting 'type' to be present")),
            other if MESOS_CALLS_NOT_SUPPORTED.contains(&other) => Err(ApiError::new(
                ErrorKind::NotImplemented,
                format!("operator call '{other}' is not supported yet"),
            )),
            other => Err(ApiError::bad_request(format!(
                "type: unknown operator call type '{other}'"
            ))),
        }
    }

    pub fn update_weights(&mut self, infos: &[WeightInfo], field: &str) -> Result<(), ApiError> {
        for (i, info) in infos.iter().enumerate() {
            validate_role(&format!("{field}[{i}].role"), &info.role)
                .map_err(ApiError::bad_request)?;
            if !info.weight.is_finite() || info.weight <= 0.0 {
                return Err(ApiError::bad_request(format!(
                    "{field}[{i}].weight: must be a positive number"
                )));
            }
        }
        for info in infos {
            self.allocator.set_weight(&info.role, info.weight);
            self.policy.weights.insert(info.role.clone(), info.weight);
        }
        self.policy_version += 1;
        self.dirty = true;
        Ok(())
    }

    /// UPDATE_QUOTA: all configs are checked before any is applied. A config with no
    /// guarantees and no limits removes the role's quota.
    pub fn update_quota(&mut self, update: UpdateQuota) -> Result<(), ApiError> {
        let consumed: BTreeMap<String, BTreeMap<String, f64>> = self
            .allocator
            .roles()
            .into_iter()
            .map(|r| (r.name, r.consumed))
            .collect();
        let mut checked = Vec::new();
        for (i, config) in update.quota_configs.iter().enumerate() {
            let field = format!("update_quota.quota_configs[{i}]");
            validate_role(&format!("{field}.role"), &config.role).map_err(ApiError::bad_request)?;
            if config.role == "*" || config.role.contains('/') {
                return Err(ApiError::bad_request(format!(
                    "{field}.role: quota cannot be set for '{}' (the default role and nested roles have none)",
                    config.role
                )));
            }
            let quota = to_quota(config, &field)?;
            if !update.force {
                for (name, limit) in &config.limits {
                    let used = consumed
                        .get(&config.role)
                        .and_then(|c| c.get(name))
                        .copied()
                        .unwrap_or(0.0);
                    if used > limit.value + 1e-9 {
                        return Err(ApiError::bad_request(format!(
                            "{field}.limits.{name}: role '{}' already consumes {used}, above the limit {}; set 'force' to apply it anyway",
                            config.role, limit.value
                        )));
                    }
                }
            }
            checked.push((config.clone(), quota));
        }
        for (config, quota) in checked {
            if quota.guarantees.is_empty() && quota.limits.is_empty() {
                self.allocator.set_quota(&config.role, None);
                self.policy.quotas.remove(&config.role);
            } else {
                self.allocator.set_quota(&config.role, Some(quota));
                self.policy.quotas.insert(config.role.clone(), config);
            }
        }
        self.policy_version += 1;
        self.dirty = true;
        Ok(())
    }

    /// RESERVE_RESOURCES / UNRESERVE_RESOURCES by the operator: the agent's free
    /// resources are relabelled. Offers on the agent are rescinded first so that what is
    /// merely offered can be reserved.
    pub fn reserve(
        &mut self,
        now: f64,
        call: &ReserveResources,
        unreserve: bool,
        field: &str,
    ) -> Result<(), ApiError> {
        let agent_id = &call.agent_id;
        if !self.agents.contains_key(agent_id) {
            return Err(ApiError::bad_request(format!(
                "{field}.agent_id: unknown agent '{agent_id}'"
            )));
        }
        let reserved = reserved_resources(&call.resources, &format!("{field}.resources"))?;
        let (from, to) = relabelling(&reserved, unreserve);
        self.rescind_agent_offers(now, agent_id);
        let free = self.allocator.available(agent_id).unwrap_or_default();
        if !free.contains(&from) {
            return Err(ApiError::new(
                ErrorKind::Conflict,
                format!(
                    "{field}.resources: agent '{agent_id}' does not have {} free (free: {})",
                    from.to_text(),
                    free.to_text()
                ),
            ));
        }
        self.relabel(agent_id, &from, &to);
        self.record_reservation(agent_id, &reserved, unreserve);
        tracing::info!(agent_id = %agent_id, resources = %reserved.to_text(), unreserve, "reservation changed by the operator");
        Ok(())
    }

    /// Replaces `from` by `to` in an agent's total.
    pub(super) fn relabel(&mut self, agent_id: &AgentId, from: &Resources, to: &Resources) {
        let Some(agent) = self.agents.get_mut(agent_id) else {
            return;
        };
        agent.total = agent.total.minus(from).plus(to);
        self.allocator.update_agent_total(agent_id, &agent.total);
        self.dirty = true;
    }

    pub(super) fn record_reservation(
        &mut self,
        agent_id: &AgentId,
        reserved: &Resources,
        unreserve: bool,
    ) {
        let key = agent_id.to_string();
        let mut current = self
            .policy
            .reservations
            .get(&key)
            .and_then(|wire| Resources::from_wire("reservations", wire).ok())
            .unwrap_or_default();
        if unreserve {
            current.subtract(reserved);
        } else {
            current.add(reserved);
        }
        if current.is_empty() {
            self.policy.reservations.remove(&key);
        } else {
            self.policy.reservations.insert(key, current.to_wire());
        }
        self.policy_version += 1;
    }

    /// An agent's reported total with the stored dynamic reservations applied.
    pub(super) fn with_reservations(&self, agent_id: &AgentId, total: Resources) -> Resources {
        let Some(wire) = self.policy.reservations.get(agent_id.as_str()) else {
            return total;
        };
        let Ok(reserved) = Resources::from_wire("reservations", wire) else {
            return total;
        };
        let unreserved = reserved.unreserved();
        if !total.contains(&unreserved) {
            tracing::warn!(agent_id = %agent_id, "stored reservations no longer fit the agent; ignored");
            return total;
        }
        total.minus(&unreserved).plus(&reserved)
    }

    pub fn weights_json(&self) -> Vec<Value> {
        self.policy
            .weights
            .iter()
            .map(|(role, weight)| json!({"role": role, "weight": weight}))
            .collect()
    }

    /// `QuotaStatus`: the configs, and the older `infos` form with guarantees as a list.
    pub fn quota_status_json(&self) -> Value {
        let configs: Vec<Value> = self.policy.quotas.values().map(|c| json!(c)).collect();
        let infos: Vec<Value> = self
            .policy
            .quotas
            .values()
            .map(|c| {
                let guarantee: Vec<Resource> = c
                    .guarantees
                    .iter()
                    .map(|(name, v)| {
                        let mut r = Resource::scalar(name, v.value);
                        r.role = Some("*".into());
                        r
                    })
                    .collect();
                json!({"role": c.role, "guarantee": guarantee})
            })
            .collect();
        json!({"infos": infos, "configs": configs})
    }
}

/// What a reservation change replaces by what: unreserved by reserved, or back.
pub(super) fn relabelling(reserved: &Resources, unreserve: bool) -> (Resources, Resources) {
    let unreserved = reserved.unreserved();
    if unreserve {
        (reserved.clone(), unreserved)
    } else {
        (unreserved, reserved.clone())
    }
}

/// Validates resources to reserve or unreserve: each must name its role.
pub(super) fn reserved_resources(wire: &[Resource], field: &str) -> Result<Resources, ApiError> {
    let resources = Resources::from_wire(field, wire).map_err(ApiError::bad_request)?;
    if resources.is_empty() {
        return Err(ApiError::bad_request(format!("{field}: must not be empty")));
    }
    for (i, (key, _)) in resources.entries().enumerate() {
        if key.role == "*" {
            return Err(ApiError::bad_request(format!(
                "{field}[{i}]: resource '{}' must name the role it is reserved to",
                key.name
            )));
        }
        validate_role(&format!("{field}[{i}].role"), &key.role).map_err(ApiError::bad_request)?;
    }
    Ok(resources)
}
