//! The offer allocator: a pure, deterministic hierarchical DRF model that decides which
//! framework is offered which agent's free resources. It does no I/O and reads no clock;
//! the master passes the time in, and agent order is shuffled with a seeded generator.
//!
//! [`DrfAllocator`] follows Mesos's hierarchical allocator (reference §6): roles form a
//! tree (`eng/backend`); roles are ordered by weighted dominant share, frameworks inside
//! a role by dominant share; a cycle first serves roles below their quota guarantee, then
//! offers each agent's whole remainder role by role, honouring reservations, quota limits,
//! the headroom unmet guarantees need, decline filters (subset rule), suppression and the
//! minimum offer size.

mod bundle;
mod cycle;
mod drf;
mod slab;
#[cfg(test)]
mod tests;

pub use bundle::Offered;
pub use drf::DrfAllocator;

use mantle_api::{AgentId, FrameworkId, Resources};
use std::collections::BTreeMap;
use std::sync::Arc;

/// One offer's worth of resources for one framework, in one role, on one agent. The IDs
/// are shared with the allocator's own records, so a cycle that makes thousands of
/// offers copies no strings.
#[derive(Clone, Debug, PartialEq)]
pub struct Allocation {
    pub framework: Arc<FrameworkId>,
    pub role: Arc<str>,
    pub agent: Arc<AgentId>,
    pub resources: Offered,
}

/// What the allocator needs to know about a framework.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FrameworkOptions {
    /// The roles the framework subscribes to (one unless it is MULTI_ROLE).
    pub roles: Vec<String>,
    /// The GPU_RESOURCES capability: without it, agents with GPUs are not offered.
    pub gpu_resources: bool,
}

/// A role's quota: scalar guarantees (held back as headroom until met) and limits (never
/// exceeded). An empty `limits` means no limit.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Quota {
    pub guarantees: Resources,
    pub limits: Resources,
}

/// The allocator's flags.
#[derive(Clone, Debug)]
pub struct AllocatorConfig {
    pub min_allocatable: MinAllocatable,
    /// `--fair_sharing_excluded_resource_names`: kinds left out of dominant shares.
    pub fair_sharing_excluded: Vec<String>,
    /// `--filter_gpu_resources`: offer agents with GPUs only to GPU-capable frameworks.
    pub filter_gpu_resources: bool,
    /// Seeds the agent shuffle, so a run can be replayed.
    pub seed: u64,
}

impl Default for AllocatorConfig {
    fn default() -> Self {
        AllocatorConfig {
            min_allocatable: MinAllocatable::default(),
            fair_sharing_excluded: Vec::new(),
            filter_gpu_resources: true,
            seed: 1,
        }
    }
}

/// What `/roles`, GET_ROLES and the metrics show for one role.
#[derive(Clone, Debug, PartialEq)]
pub struct RoleSummary {
    pub name: String,
    pub weight: f64,
    /// The role's weighted dominant share of unreserved resources.
    pub share: f64,
    pub frameworks: Vec<FrameworkId>,
    pub quota: Option<Quota>,
    /// Quota consumption per scalar kind: allocated (offers included) plus reserved.
    pub consumed: BTreeMap<String, f64>,
}

/// `--min_allocatable_resources`: alternatives separated by `|`, each a resources text
/// whose quantities must all be present (`cpus:0.01|mem:32`).
#[derive(Clone, Debug, PartialEq)]
pub struct MinAllocatable(Vec<Vec<(String, f64)>>);

impl MinAllocatable {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut alternatives = Vec::new();
        for part in text.split('|').map(str::trim).filter(|s| !s.is_empty()) {
            let resources = Resources::parse_text(part, "*")
                .map_err(|e| format!("--min_allocatable_resources: {e}"))?;
            let names = resources.scalar_names();
            if names.is_empty() {
                return Err(format!(
                    "--min_allocatable_resources: '{part}' names no scalar resource"
                ));
            }
            alternatives.push(
                names
                    .into_iter()
                    .map(|name| (name.to_string(), resources.scalar(name)))
                    .collect(),
            );
        }
        Ok(MinAllocatable(alternatives))
    }

    /// True when `available` satisfies at least one alternative (or none are set).
    pub fn admits(&self, available: &Resources) -> bool {
        self.0.is_empty()
            || self.0.iter().any(|alternative| {
                alternative
                    .iter()
                    .all(|(name, min)| available.scalar(name) + 1e-9 >= *min)
            })
    }

    pub(crate) fn alternatives(&self) -> &[Vec<(String, f64)>] {
        &self.0
    }
}

impl Default for MinAllocatable {
    fn default() -> Self {
        MinAllocatable::parse("cpus:0.01|mem:32").expect("the default parses")
    }
}

/// True when `role` is `ancestor` or lies below it (`eng/backend` under `eng`).
pub fn is_within(role: &str, ancestor: &str) -> bool {
    role == ancestor
        || (role.len() > ancestor.len()
            && role.starts_with(ancestor)
            && role.as_bytes()[ancestor.len()] == b'/')
}
