//! The registry (reference §5.4) as the store keeps it: the admitted agents, the
//! unreachable ones with the time they became so, the operator's deactivated, drained
//! and gone agents, the maintenance schedule with the DOWN machines, and the frameworks
//! with their failover deadlines, which therefore survive a master restart (Mesos loses
//! them). Whenever [`Master::registry_version`] moves the event loop stores the agents'
//! part: the changes since the last store ([`Master::take_registry_changes`]) where the
//! store appends them, else the whole of it; the frameworks, apart, whenever
//! [`Master::frameworks_version`] does.

use super::{Agent, Drain, Framework, Master, UnreachableAgent};
use crate::core::frameworks::allocator_options;
use mantle_api::maintenance::{DrainInfo, MachineId, Schedule};
use mantle_api::*;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Registry {
    pub agents: Vec<AgentInfo>,
    pub unreachable: Vec<(AgentInfo, f64)>,
    /// Stored apart (`Store::save_frameworks`); a registry written before that holds them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub frameworks: Vec<StoredFramework>,
    /// The store's mark of the change log that continues this registry (`store.rs`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub generation: u64,
    #[serde(flatten)]
    pub rest: RegistryRest,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The registry's parts that are not one agent's each, stored whole when one changes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RegistryRest {
    /// Agents the operator deactivated.
    #[serde(default)]
    pub deactivated: Vec<AgentId>,
    /// Agents the operator marked gone, with the time.
    #[serde(default)]
    pub gone: Vec<(AgentId, f64)>,
    /// Agents being drained or drained, with their drain.
    #[serde(default)]
    pub draining: Vec<(AgentId, DrainInfo)>,
    /// The maintenance schedule.
    #[serde(default)]
    pub maintenance: Schedule,
    /// Machines in DOWN mode (all of them in the schedule).
    #[serde(default)]
    pub down_machines: Vec<MachineId>,
}

/// Where one agent stands in the registry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentEntry {
    Admitted(AgentInfo),
    Unreachable(AgentInfo, f64),
    Removed(AgentId),
}

/// What changed in the registry since the store last took it: each changed agent as it
/// stands now, and the rest whole if any of it changed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RegistryChanges {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<AgentEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rest: Option<RegistryRest>,
}

impl RegistryChanges {
    pub fn is_empty(&self) -> bool {
        self.agents.is_empty() && self.rest.is_none()
    }
}

/// The changes the core has made since the store last took them.
#[derive(Debug, Default)]
pub struct RegistryDirty {
    agents: HashSet<AgentId>,
    rest: bool,
}

impl Registry {
    /// Applies changes in the order they were made.
    pub fn apply(&mut self, changes: impl IntoIterator<Item = RegistryChanges>) {
        let mut entries: HashMap<AgentId, AgentEntry> = HashMap::new();
        for info in std::mem::take(&mut self.agents) {
            if let Some(id) = info.id.clone() {
                entries.insert(id, AgentEntry::Admitted(info));
            }
        }
        for (info, since) in std::mem::take(&mut self.unreachable) {
            if let Some(id) = info.id.clone() {
                entries.insert(id, AgentEntry::Unreachable(info, since));
            }
        }
        for change in changes {
            for entry in change.agents {
                match entry {
                    AgentEntry::Removed(id) => {
                        entries.remove(&id);
                    }
                    AgentEntry::Admitted(ref info) | AgentEntry::Unreachable(ref info, _) => {
                        if let Some(id) = info.id.clone() {
                            entries.insert(id, entry);
                        }
                    }
                }
            }
            if let Some(rest) = change.rest {
                self.rest = rest;
            }
        }
        let mut entries: Vec<(AgentId, AgentEntry)> = entries.into_iter().collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        for (_, entry) in entries {
            match entry {
                AgentEntry::Admitted(info) => self.agents.push(info),
                AgentEntry::Unreachable(info, since) => self.unreachable.push((info, since)),
                AgentEntry::Removed(_) => {}
            }
        }
    }
}

/// A framework the master knows, and when it is removed unless it re-subscribes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredFramework {
    pub info: FrameworkInfo,
    pub failover_deadline: Option<f64>,
}

impl Master {
    /// Moves with every change of the registry but its frameworks.
    pub fn registry_version(&self) -> u64 {
        self.registry_version
    }

    /// Moves with every change of the stored frameworks (a subscription, a disconnection,
    /// a removal), which the store keeps apart: at 10,000 agents rewriting the whole
    /// registry for each framework that subscribes took the event loop 24 ms a time.
    pub fn frameworks_version(&self) -> u64 {
        self.frameworks_version
    }

    /// What the store keeps: [`Master::agent_registry`] with [`Master::stored_frameworks`].
    pub fn registry(&self) -> Registry {
        Registry {
            frameworks: self.stored_frameworks(),
            ..self.agent_registry()
        }
    }

    /// The frameworks with their failover deadlines.
    pub fn stored_frameworks(&self) -> Vec<StoredFramework> {
        self.frameworks
            .values()
            .map(|f| StoredFramework {
                info: f.info.clone(),
                failover_deadline: f.failover_deadline,
            })
            .collect()
    }

    /// The registry without its frameworks.
    pub fn agent_registry(&self) -> Registry {
        // Sized up front: grown by doubling, the vector of 100,000 agents' copies and
        // page faults were two fifths of building the registry.
        let mut agents = Vec::with_capacity(self.agents.len() + self.health.recovered.len());
        agents.extend(self.agents.values().map(Agent::full_info));
        agents.extend(self.health.recovered.values().map(|(info, _)| info.clone()));
        Registry {
            agents,
            unreachable: self
                .health
                .unreachable
                .values()
                .map(|u| (u.info.clone(), u.since))
                .collect(),
            frameworks: Vec::new(),
            generation: 0,
            rest: self.registry_rest(),
        }
    }

    fn registry_rest(&self) -> RegistryRest {
        RegistryRest {
            deactivated: self.deactivated.iter().cloned().collect(),
            gone: self.gone.iter().map(|(id, t)| (id.clone(), *t)).collect(),
            draining: self
                .draining
                .iter()
                .map(|(id, d)| (id.clone(), d.info.clone()))
                .collect(),
            maintenance: self.maintenance.schedule.clone(),
            down_machines: self.maintenance.down.clone(),
        }
    }

    /// An agent's entry in the registry changed: admitted, unreachable or removed.
    pub(super) fn agent_entry_changed(&mut self, agent_id: &AgentId) {
        self.registry_version += 1;
        self.registry_dirty.agents.insert(agent_id.clone());
    }

    /// The registry's other parts ([`RegistryRest`]) changed.
    pub(super) fn registry_rest_changed(&mut self) {
        self.registry_version += 1;
        self.registry_dirty.rest = true;
    }

    /// The registry's changes since they were last taken, for a store that appends them.
    pub fn take_registry_changes(&mut self) -> RegistryChanges {
        let dirty = std::mem::take(&mut self.registry_dirty);
        RegistryChanges {
            agents: dirty.agents.iter().map(|id| self.agent_entry(id)).collect(),
            rest: dirty.rest.then(|| self.registry_rest()),
        }
    }

    /// Drops the changes noted since they were last taken: the next store is whole.
    pub fn forget_registry_changes(&mut self) {
        self.registry_dirty = Default::default();
    }

    fn agent_entry(&self, agent_id: &AgentId) -> AgentEntry {
        if let Some(agent) = self.agents.get(agent_id) {
            AgentEntry::Admitted(agent.full_info())
        } else if let Some((info, _)) = self.health.recovered.get(agent_id) {
            AgentEntry::Admitted(info.clone())
        } else if let Some(u) = self.health.unreachable.get(agent_id) {
            AgentEntry::Unreachable(u.info.clone(), u.since)
        } else {
            AgentEntry::Removed(agent_id.clone())
        }
    }

    /// Takes the registry a restarted master found. Its agents must re-register within
    /// `agent_reregister_timeout`, else they become unreachable; the unreachable stay so.
    /// Its frameworks wait to re-subscribe until their failover deadline; those that were
    /// connected when the master stopped get their `failover_timeout` from now, and at
    /// least as long as the agents (a restart must not remove a framework whose
    /// timeout is zero before it could reconnect).
    pub fn recover_registry(&mut self, now: f64, registry: Registry) {
        let deadline = now + self.config.agent_reregister_timeout;
        for info in registry.agents {
            if let Some(id) = info.id.clone() {
                self.health.recovered.insert(id, (info, deadline));
            }
        }
        for (info, since) in registry.unreachable {
            if let Some(id) = info.id.clone() {
                self.health
                    .unreachable
                    .insert(id, UnreachableAgent { info, since });
            }
        }
        let rest = registry.rest;
        self.deactivated.extend(rest.deactivated);
        self.gone.extend(rest.gone);
        for (id, info) in rest.draining {
            self.draining.insert(
                id,
                Drain {
                    info,
                    started: None,
                },
            );
        }
        self.recover_maintenance(rest.maintenance, rest.down_machines);
        for stored in registry.frameworks {
            let Some(id) = stored.info.id.clone() else {
                continue;
            };
            let grace = stored
                .info
                .failover_timeout
                .max(self.config.agent_reregister_timeout);
            let mut framework = Framework::new(stored.info, None, now);
            framework.active = false;
            framework.recovered = true;
            framework.failover_deadline = Some(stored.failover_deadline.unwrap_or(now + grace));
            self.allocator
                .add_framework(&id, &allocator_options(&framework.info), false);
            self.frameworks.insert(id, framework);
        }
        tracing::info!(
            agents = self.health.recovered.len(),
            unreachable = self.health.unreachable.len(),
            frameworks = self.frameworks.len(),
            draining = self.draining.len(),
            down_machines = self.maintenance.down.len(),
            "recovered the registry"
        );
    }
}
