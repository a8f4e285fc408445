//! `StateView`: the immutable picture of the core that the event loop publishes for the
//! read-only endpoints (DESIGN invariant 3). Taking one is cheap: the large collections
//! are [`SharedMap`]s shared with the core, so the loop copies a few pointers and the
//! small tables, and the readers render JSON from it on their own threads (`state.rs`,
//! `summary.rs`, `v1.rs`). The per-role and per-agent sums are computed here, by the
//! readers, never by the loop.

use super::offers::OfferEntry;
use super::usage::{AgentSlots, Sum};
use super::{Agent, Counters, Drain, Framework, Master, SharedMap};
use mantle_allocator::RoleSummary;
use mantle_api::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

pub struct StateView {
    pub info: MasterInfo,
    pub hostname: String,
    pub start_time: f64,
    pub flags: BTreeMap<String, String>,
    pub frameworks: SharedMap<FrameworkId, Framework>,
    pub completed_frameworks: VecDeque<Arc<Framework>>,
    pub agents: SharedMap<AgentId, Agent>,
    pub offers: SharedMap<OfferId, OfferEntry>,
    pub deactivated: BTreeSet<AgentId>,
    pub draining: BTreeMap<AgentId, Drain>,
    pub unreachable_agents: usize,
    /// Agents of the registry that have not re-registered since this master started.
    pub recovered_agents: Vec<AgentInfo>,
    /// Unreachable agents marked, marked after the rate limit, and spared.
    pub unreachable_scheduled: u64,
    pub unreachable_completed: u64,
    pub unreachable_canceled: u64,
    pub counters: Counters,
    pub roles: Vec<RoleSummary>,
}

/// Allocated, offered and reserved resources of one role.
#[derive(Clone, Debug, Default)]
pub struct RoleUsage {
    pub allocated: Resources,
    pub offered: Resources,
    pub reserved: Resources,
}

impl Master {
    /// The view the event loop publishes; costs O(roles + small tables), not O(tasks).
    pub fn view(&self) -> StateView {
        StateView {
            info: self.info.clone(),
            hostname: self.config.hostname.clone(),
            start_time: self.start_time,
            flags: self.config.flags.clone(),
            frameworks: self.frameworks.clone(),
            completed_frameworks: self.completed_frameworks.clone(),
            agents: self.agents.clone(),
            offers: self.offers.clone(),
            deactivated: self.deactivated.clone(),
            draining: self.draining.clone(),
            unreachable_agents: self.health.unreachable.len(),
            recovered_agents: self
                .health
                .recovered
                .values()
                .map(|(info, _)| info.clone())
                .collect(),
            unreachable_scheduled: self.health.scheduled,
            unreachable_completed: self.health.completed,
            unreachable_canceled: self.health.canceled,
            counters: self.counters.clone(),
            roles: self.allocator.roles(),
        }
    }

    /// `/master/state` (tests and tools; the HTTP layer renders from a published view).
    pub fn state_json(&self) -> Value {
        self.view().state_json()
    }

    /// `/metrics/snapshot`.
    pub fn metrics(&self, now: f64) -> BTreeMap<String, f64> {
        self.view().metrics(now)
    }

    /// The roles as `/master/roles` (`v1` false) or GET_ROLES (`v1` true) show them.
    pub fn roles_json(&self, v1: bool) -> Vec<Value> {
        self.view().roles_json(v1)
    }
}

fn scalar_map(resources: &Resources, v1: bool) -> Value {
    let mut out = serde_json::Map::new();
    for name in resources.scalar_names() {
        let value = resources.scalar(name);
        let value = if v1 {
            json!({ "value": value })
        } else {
            json!(value)
        };
        out.insert(name.to_string(), value);
    }
    Value::Object(out)
}

impl StateView {
    pub fn is_active(&self, agent: &Agent) -> bool {
        agent.active() && !self.deactivated.contains(&agent.id)
    }

    pub fn unreachable_tasks(&self) -> usize {
        self.frameworks
            .values()
            .map(|f| f.unreachable_tasks.len())
            .sum()
    }

    /// Allocated (tasks and executors), offered and reserved resources per role.
    /// Keyed by reference: a key per task would cost an allocation per task.
    pub fn role_usage(&self) -> BTreeMap<&str, RoleUsage> {
        let slots = AgentSlots::none();
        self.role_usage_from(self.live_sums(&slots).roles)
    }

    /// [`StateView::role_usage`] from what each role's tasks and executors use.
    pub(super) fn role_usage_from<'v>(
        &'v self,
        allocated: HashMap<&'v str, Sum>,
    ) -> BTreeMap<&'v str, RoleUsage> {
        #[derive(Default)]
        struct Sums {
            allocated: Sum,
            offered: Sum,
            reserved: Resources,
        }
        let mut sums: BTreeMap<&str, Sums> = BTreeMap::new();
        for (role, sum) in allocated {
            sums.entry(role).or_default().allocated = sum;
        }
        for entry in self.offers.values() {
            sums.entry(&entry.role)
                .or_default()
                .offered
                .add(&entry.resources);
        }
        for agent in self.agents.values() {
            for (key, quantity) in agent.total.entries().filter(|(k, _)| k.role != "*") {
                let role = sums.entry(&key.role).or_default();
                role.reserved.insert(key.clone(), quantity.clone());
            }
        }
        sums.into_iter()
            .map(|(role, sums)| {
                let usage = RoleUsage {
                    allocated: sums.allocated.total(),
                    offered: sums.offered.total(),
                    reserved: sums.reserved,
                };
                (role, usage)
            })
            .collect()
    }

    /// The roles as `/master/roles` (`v1` false: flattened resources, the quota's
    /// `guarantee`/`limit`/`consumed` as `{name: number}`) or GET_ROLES (`v1` true:
    /// Resource arrays, `guarantees`/`limits` as `{name: {value}}`).
    pub fn roles_json(&self, v1: bool) -> Vec<Value> {
        self.roles_json_from(v1, &self.role_usage())
    }

    /// [`StateView::roles_json`] from the roles' usage.
    pub(super) fn roles_json_from(
        &self,
        v1: bool,
        usage: &BTreeMap<&str, RoleUsage>,
    ) -> Vec<Value> {
        self.roles
            .iter()
            .map(|role| {
                let used = usage.get(role.name.as_str()).cloned().unwrap_or_default();
                let show = |r: &Resources| {
                    if v1 {
                        json!(r.to_wire())
                    } else {
                        Value::Object(r.legacy_json())
                    }
                };
                let frameworks: Vec<Value> = role
                    .frameworks
                    .iter()
                    .map(|f| if v1 { json!(f) } else { json!(f.as_str()) })
                    .collect();
                let mut out = json!({
                    "name": role.name,
                    "weight": role.weight,
                    "frameworks": frameworks,
                    "resources": show(&used.allocated.plus(&used.offered)),
                    "allocated": show(&used.allocated),
                    "offered": show(&used.offered),
                    "reserved": show(&used.reserved),
                    "dominant_share": role.share,
                });
                let consumed: serde_json::Map<String, Value> = role
                    .consumed
                    .iter()
                    .map(|(k, v)| {
                        let value = if v1 { json!({ "value": v }) } else { json!(v) };
                        (k.clone(), value)
                    })
                    .collect();
                let (guarantees, limits) = match &role.quota {
                    Some(quota) => (
                        scalar_map(&quota.guarantees, v1),
                        scalar_map(&quota.limits, v1),
                    ),
                    None => (json!({}), json!({})),
                };
                out["quota"] = if v1 {
                    json!({"role": role.name, "guarantees": guarantees, "limits": limits,
                           "consumed": consumed})
                } else {
                    json!({"role": role.name, "guarantee": guarantees, "limit": limits,
                           "consumed": consumed})
                };
                out
            })
            .collect()
    }
}
