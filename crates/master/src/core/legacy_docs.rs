//! The agents and frameworks of the legacy JSON endpoints (`/master/state`,
//! `/master/state-summary`, `/master/slaves`, `/master/frameworks`, reference §4),
//! written straight to the output by `Serialize` on borrowed data, and the per-agent
//! resource sums they show, computed in one pass over the tasks.
//!
//! Building a `serde_json::Value` tree per agent and framework cost more than writing
//! it. The keys of each object are written in the byte order of their names: the order
//! in which the `Value` maps these objects used to be built from wrote them, so the
//! output is the same (the unit tests in `tests_render.rs` compare it with that).

use super::offers::OfferEntry;
use super::usage::Usage;
use super::{Agent, Framework, StateView};
use mantle_api::*;
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::Value;
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

/// The task states `/master/state-summary` counts, in the byte order of their names.
pub(super) const SUMMARY_STATES: [TaskState; 10] = [
    TaskState::Error,
    TaskState::Failed,
    TaskState::Finished,
    TaskState::Killed,
    TaskState::Killing,
    TaskState::Lost,
    TaskState::Running,
    TaskState::Staging,
    TaskState::Starting,
    TaskState::Unreachable,
];

/// Task counts per state, plus the IDs of the other side (frameworks of an agent,
/// agents of a framework), as `/master/state-summary` shows them.
#[derive(Default)]
pub(super) struct Summary<'a> {
    pub counts: [u64; SUMMARY_STATES.len()],
    pub peers: BTreeSet<&'a str>,
}

impl<'a> Summary<'a> {
    pub fn count(&mut self, state: TaskState, peer: &'a str) {
        if let Some(at) = SUMMARY_STATES.iter().position(|s| *s == state) {
            self.counts[at] += 1;
        }
        self.peers.insert(peer);
    }

    fn write_counts<M: SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
        for (state, count) in SUMMARY_STATES.iter().zip(self.counts) {
            map.serialize_entry(state.as_str(), &count)?;
        }
        Ok(())
    }
}

/// Resources flattened as the legacy endpoints show them, by role.
struct ByRole<'a>(&'a BTreeMap<&'a str, Resources>);

impl Serialize for ByRole<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(role, r)| (role, r.legacy())))
    }
}

/// The same, as v1 Resource arrays (`reserved_resources_full`).
struct WireByRole<'a>(&'a BTreeMap<&'a str, Resources>);

impl Serialize for WireByRole<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(role, r)| (role, r.to_wire())))
    }
}

/// An agent's resources reserved to each role, and its unreserved ones; borrowed
/// whole when nothing is reserved, the usual case.
pub(super) fn by_role(total: &Resources) -> (BTreeMap<&str, Resources>, Cow<'_, Resources>) {
    let mut reserved: BTreeMap<&str, Resources> = BTreeMap::new();
    if !total.is_reserved() {
        return (reserved, Cow::Borrowed(total));
    }
    let mut unreserved = Resources::new();
    for (key, quantity) in total.entries() {
        let into = if key.role == "*" {
            &mut unreserved
        } else {
            reserved.entry(&key.role).or_default()
        };
        into.insert(key.clone(), quantity.clone());
    }
    (reserved, Cow::Owned(unreserved))
}

/// Which endpoint an agent object is written for.
pub(super) enum AgentExtra<'a> {
    /// `/master/state`.
    Plain,
    /// `/master/slaves`: the resources also as v1 Resource arrays (`_full`).
    Full,
    /// `/master/state-summary`: task counts per state and `framework_ids`.
    Summary(&'a Summary<'a>),
}

/// An agent of the legacy endpoints.
pub(super) struct AgentDoc<'a> {
    pub view: &'a StateView,
    pub agent: &'a Agent,
    pub usage: &'a Usage,
    pub extra: AgentExtra<'a>,
}

impl Serialize for AgentDoc<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (view, agent) = (self.view, self.agent);
        let (used, offered) = self.usage;
        let (reserved, unreserved) = by_role(&agent.total);
        let full = matches!(self.extra, AgentExtra::Full);
        let mut map = serializer.serialize_map(None)?;
        if let AgentExtra::Summary(summary) = self.extra {
            summary.write_counts(&mut map)?;
        }
        map.serialize_entry("active", &view.is_active(agent))?;
        // A later attribute of the same name replaces an earlier one, as in a map.
        let attributes: BTreeMap<&str, Value> = agent
            .info
            .attributes
            .iter()
            .map(|a| (a.name.as_str(), a.legacy_value()))
            .collect();
        map.serialize_entry("attributes", &attributes)?;
        map.serialize_entry("capabilities", &Kinds(&agent.info.capabilities))?;
        map.serialize_entry("deactivated", &view.deactivated.contains(&agent.id))?;
        let drain = view.draining.get(&agent.id);
        if let Some(drain) = drain {
            // Through a `Value`, whose keys are sorted as they always were.
            map.serialize_entry("drain_info", &serde_json::to_value(&drain.info).ok())?;
            if let Some(started) = drain.started {
                map.serialize_entry("estimated_drain_start_time_seconds", &started)?;
            }
        }
        if let AgentExtra::Summary(summary) = self.extra {
            map.serialize_entry("framework_ids", &summary.peers)?;
        }
        map.serialize_entry("hostname", &agent.info.hostname)?;
        map.serialize_entry("id", &agent.id.value)?;
        map.serialize_entry("offered_resources", &offered.legacy())?;
        if full {
            map.serialize_entry("offered_resources_full", &offered.to_wire())?;
        }
        map.serialize_entry("pid", &agent.pid)?;
        map.serialize_entry("port", &agent_port(agent))?;
        map.serialize_entry("registered_time", &agent.registered_time)?;
        if let Some(t) = agent.reregistered_time {
            map.serialize_entry("reregistered_time", &t)?;
        }
        map.serialize_entry("reserved_resources", &ByRole(&reserved))?;
        if full {
            map.serialize_entry("reserved_resources_full", &WireByRole(&reserved))?;
        }
        map.serialize_entry("resources", &agent.total.legacy())?;
        map.serialize_entry("unreserved_resources", &unreserved.legacy())?;
        if full {
            map.serialize_entry("unreserved_resources_full", &unreserved.to_wire())?;
        }
        map.serialize_entry("used_resources", &used.legacy())?;
        if full {
            map.serialize_entry("used_resources_full", &used.to_wire())?;
        }
        map.serialize_entry("version", &agent.version)?;
        map.end()
    }
}

/// The port of the agent's pid, as `Agent::url` reads it, without building the URL.
fn agent_port(agent: &Agent) -> u32 {
    let port = agent.endpoint().rsplit_once(':').map_or("5051", |(_, p)| p);
    port.parse().unwrap_or(5051)
}

/// Capabilities as the list of their types.
struct Kinds<'a>(&'a [Capability]);

impl Serialize for Kinds<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|c| &c.kind))
    }
}

/// Which endpoint a framework object is written for.
pub(super) enum FrameworkExtra<'a> {
    /// `/master/state` and `/master/frameworks`: every field; the caller adds the task
    /// lists after them.
    Full,
    /// `/master/state-summary`: the summary's fields, task counts and `slave_ids`.
    Summary(&'a Summary<'a>),
}

/// A framework of the legacy endpoints, without its task lists.
pub(super) struct FrameworkFields<'a> {
    pub framework: &'a Framework,
    /// The framework's outstanding offers.
    pub offers: &'a [&'a OfferEntry],
    /// What its live tasks and executors use, when the caller summed it already.
    pub used: Option<Resources>,
    pub extra: FrameworkExtra<'a>,
}

impl FrameworkFields<'_> {
    /// Writes the fields into an open map, so that a caller can add entries after them.
    pub fn write<M: SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
        let framework = self.framework;
        let info = &framework.info;
        let summed;
        let used = match &self.used {
            Some(used) => used,
            None => {
                summed = StateView::framework_usage(framework);
                &summed
            }
        };
        let offered = StateView::offered(self.offers);
        let summary = match self.extra {
            FrameworkExtra::Summary(summary) => Some(summary),
            FrameworkExtra::Full => None,
        };
        let full = summary.is_none();
        if let Some(summary) = summary {
            summary.write_counts(map)?;
        }
        map.serialize_entry("active", &framework.active)?;
        map.serialize_entry("capabilities", &Kinds(&info.capabilities))?;
        if full {
            map.serialize_entry("checkpoint", &info.checkpoint)?;
        }
        map.serialize_entry("connected", &framework.stream.is_some())?;
        if full {
            let executors: Vec<Value> = framework
                .executors
                .iter()
                .flat_map(|(agent, executors)| {
                    executors.values().map(move |e| executor_json(agent, e))
                })
                .collect();
            map.serialize_entry("executors", &executors)?;
            map.serialize_entry("failover_timeout", &info.failover_timeout)?;
        }
        map.serialize_entry("hostname", info.hostname.as_deref().unwrap_or_default())?;
        map.serialize_entry("id", &framework.id.value)?;
        if full {
            if let Some(labels) = &info.labels {
                map.serialize_entry("labels", &labels.labels)?;
            }
        }
        map.serialize_entry("name", &info.name)?;
        if full {
            map.serialize_entry("offer_constraints", &serde_json::Map::new())?;
        }
        map.serialize_entry("offered_resources", &offered.legacy())?;
        if full {
            map.serialize_entry("offers", &Offers(self.offers, &framework.role()))?;
        }
        if let Some(principal) = &info.principal {
            map.serialize_entry("principal", principal)?;
        }
        map.serialize_entry("recovered", &framework.recovered)?;
        if full {
            map.serialize_entry("registered_time", &framework.registered_time)?;
            if let Some(t) = framework.reregistered_time {
                map.serialize_entry("reregistered_time", &t)?;
            }
            map.serialize_entry("resources", &used.plus(&offered).legacy())?;
        }
        if info.has_capability("MULTI_ROLE") {
            map.serialize_entry("roles", &info.roles)?;
        } else {
            map.serialize_entry("role", info.role.as_deref().unwrap_or("*"))?;
        }
        if let Some(summary) = summary {
            map.serialize_entry("slave_ids", &summary.peers)?;
        }
        if full {
            let unregistered = framework.unregistered_time.unwrap_or(0.0);
            map.serialize_entry("unregistered_time", &unregistered)?;
        }
        map.serialize_entry("used_resources", &used.legacy())?;
        if full {
            map.serialize_entry("user", &info.user)?;
        }
        map.serialize_entry("webui_url", info.webui_url.as_deref().unwrap_or_default())
    }
}

impl Serialize for FrameworkFields<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        self.write(&mut map)?;
        map.end()
    }
}

/// A framework's outstanding offers.
/// A framework's offers, written with its role.
struct Offers<'a>(&'a [&'a OfferEntry], &'a str);

impl Serialize for Offers<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (offers, role) = (self.0, self.1);
        serializer.collect_seq(offers.iter().map(|o| OfferDoc {
            id: &o.offer.id.value,
            framework_id: &o.offer.framework_id.value,
            slave_id: &o.offer.agent_id.value,
            role,
            resources: &o.resources,
        }))
    }
}

struct OfferDoc<'a> {
    id: &'a str,
    framework_id: &'a str,
    slave_id: &'a str,
    role: &'a str,
    resources: &'a Resources,
}

impl Serialize for OfferDoc<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(5))?;
        map.serialize_entry("allocation_info", &BTreeMap::from([("role", self.role)]))?;
        map.serialize_entry("framework_id", self.framework_id)?;
        map.serialize_entry("id", self.id)?;
        map.serialize_entry("resources", &self.resources.legacy())?;
        map.serialize_entry("slave_id", self.slave_id)?;
        map.end()
    }
}

/// An executor of a framework (only frameworks with their own executors have any).
pub(super) fn executor_json(agent_id: &AgentId, executor: &super::Executor) -> Value {
    let resources = &executor.resources;
    let executor = &executor.info;
    let command = executor.command.as_ref().map(|c| {
        serde_json::json!({"shell": c.shell, "value": c.value.clone().unwrap_or_default(), "argv": c.arguments,
               "uris": c.uris.iter().map(|u| serde_json::json!({"value": u.value, "executable": u.executable.unwrap_or(false)})).collect::<Vec<_>>()})
    });
    serde_json::json!({
        "executor_id": executor.executor_id.value,
        "name": executor.name.clone().unwrap_or_default(),
        "framework_id": executor.framework_id.as_ref().map(|f| f.value.clone()).unwrap_or_default(),
        "command": command,
        "resources": Value::Object(resources.legacy_json()),
        "type": executor.kind.clone().unwrap_or_else(|| "CUSTOM".into()),
        "slave_id": agent_id.value,
    })
}
