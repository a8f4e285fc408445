//! The offer allocator: a pure, deterministic model that decides which framework is
//! offered which agent's free resources. It does no I/O and reads no clock; the master
//! passes the time in.
//!
//! [`Allocator`] is the interface the master drives. [`FairAllocator`] is the simple
//! implementation used until the hierarchical DRF allocator arrives: each agent's whole
//! free remainder goes to the active framework with the lowest dominant share that has
//! not filtered that agent (Mesos's decline-filter subset rule, reference §5.2).

use mantle_api::{AgentId, FrameworkId, Resources};
use std::collections::{BTreeMap, HashMap};

/// One offer's worth of resources for one framework on one agent.
#[derive(Clone, Debug, PartialEq)]
pub struct Allocation {
    pub framework: FrameworkId,
    pub agent: AgentId,
    pub resources: Resources,
}

/// What the master asks of an allocator.
pub trait Allocator: Send {
    /// Adds an agent; `used` lists what frameworks already run there.
    fn add_agent(&mut self, agent: &AgentId, total: Resources, used: &[(FrameworkId, Resources)]);
    fn remove_agent(&mut self, agent: &AgentId);
    /// A deactivated agent keeps its allocations but is offered to nobody.
    fn set_agent_active(&mut self, agent: &AgentId, active: bool);
    fn add_framework(&mut self, framework: &FrameworkId, active: bool);
    fn remove_framework(&mut self, framework: &FrameworkId);
    fn set_framework_active(&mut self, framework: &FrameworkId, active: bool);
    /// Stops offers to the framework; its outstanding offers stay.
    fn suppress(&mut self, framework: &FrameworkId);
    /// Resumes offers and clears the framework's decline filters.
    fn revive(&mut self, framework: &FrameworkId);
    /// Records resources a framework starts using without an allocation (for example
    /// tasks an agent reports on re-registration).
    fn add_used(&mut self, framework: &FrameworkId, agent: &AgentId, resources: &Resources);
    /// Takes resources back from a framework: a declined or rescinded offer, the unused
    /// part of an accepted one, or a finished task. With `refuse_seconds` the framework is
    /// not offered a subset of them on that agent again until `now + refuse_seconds`.
    fn recover(
        &mut self,
        framework: &FrameworkId,
        agent: &AgentId,
        resources: &Resources,
        refuse_seconds: Option<f64>,
        now: f64,
    );
    /// One allocation cycle over every agent.
    fn allocate(&mut self, now: f64) -> Vec<Allocation>;
}

/// `--min_allocatable_resources`: alternatives separated by `|`, each a resources text
/// whose quantities must all be present (`cpus:0.01|mem:32`).
#[derive(Clone, Debug, PartialEq)]
pub struct MinAllocatable(Vec<Resources>);

impl MinAllocatable {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut alternatives = Vec::new();
        for part in text.split('|').map(str::trim).filter(|s| !s.is_empty()) {
            let resources = Resources::parse_text(part, "*")
                .map_err(|e| format!("--min_allocatable_resources: {e}"))?;
            alternatives.push(resources);
        }
        Ok(MinAllocatable(alternatives))
    }

    /// True when `available` satisfies at least one alternative (or none are set).
    pub fn admits(&self, available: &Resources) -> bool {
        self.0.is_empty()
            || self.0.iter().any(|alt| {
                alt.scalar_names()
                    .into_iter()
                    .all(|name| available.scalar(name) + 1e-9 >= alt.scalar(name))
            })
    }
}

impl Default for MinAllocatable {
    fn default() -> Self {
        MinAllocatable::parse("cpus:0.01|mem:32").expect("the default parses")
    }
}

#[derive(Debug)]
struct AgentEntry {
    total: Resources,
    allocated: Resources,
    active: bool,
}

#[derive(Debug)]
struct Filter {
    resources: Resources,
    expires: f64,
}

#[derive(Debug, Default)]
struct FrameworkEntry {
    active: bool,
    suppressed: bool,
    allocated: Resources,
    allocations: u64,
    filters: HashMap<AgentId, Vec<Filter>>,
}

impl FrameworkEntry {
    fn filtered(&mut self, agent: &AgentId, available: &Resources, now: f64) -> bool {
        let Some(filters) = self.filters.get_mut(agent) else {
            return false;
        };
        filters.retain(|f| f.expires > now);
        let blocked = filters.iter().any(|f| f.resources.contains(available));
        if filters.is_empty() {
            self.filters.remove(agent);
        }
        blocked
    }
}

/// Dominant-share ordering over cpus, mem, disk and gpus; the whole free remainder of an
/// agent goes to one framework per cycle.
#[derive(Debug, Default)]
pub struct FairAllocator {
    agents: BTreeMap<AgentId, AgentEntry>,
    frameworks: BTreeMap<FrameworkId, FrameworkEntry>,
    total: Resources,
    min_allocatable: MinAllocatable,
    cycle: u64,
}

const SHARE_KINDS: [&str; 4] = ["cpus", "mem", "disk", "gpus"];

impl FairAllocator {
    pub fn new(min_allocatable: MinAllocatable) -> Self {
        FairAllocator {
            min_allocatable,
            ..Default::default()
        }
    }

    fn share(&self, allocated: &Resources) -> f64 {
        SHARE_KINDS
            .iter()
            .map(|kind| {
                let total = self.total.scalar(kind);
                if total > 0.0 {
                    allocated.scalar(kind) / total
                } else {
                    0.0
                }
            })
            .fold(0.0, f64::max)
    }

    /// The framework's dominant share, for display.
    pub fn dominant_share(&self, framework: &FrameworkId) -> f64 {
        self.frameworks
            .get(framework)
            .map_or(0.0, |f| self.share(&f.allocated))
    }
}

impl Allocator for FairAllocator {
    fn add_agent(&mut self, agent: &AgentId, total: Resources, used: &[(FrameworkId, Resources)]) {
        self.remove_agent(agent);
        self.total.add(&total);
        let mut allocated = Resources::new();
        for (framework, resources) in used {
            allocated.add(resources);
            if let Some(f) = self.frameworks.get_mut(framework) {
                f.allocated.add(resources);
            }
        }
        self.agents.insert(
            agent.clone(),
            AgentEntry {
                total,
                allocated,
                active: true,
            },
        );
    }

    fn remove_agent(&mut self, agent: &AgentId) {
        if let Some(entry) = self.agents.remove(agent) {
            self.total.subtract(&entry.total);
        }
        for f in self.frameworks.values_mut() {
            f.filters.remove(agent);
        }
    }

    fn set_agent_active(&mut self, agent: &AgentId, active: bool) {
        if let Some(entry) = self.agents.get_mut(agent) {
            entry.active = active;
        }
    }

    fn add_framework(&mut self, framework: &FrameworkId, active: bool) {
        self.frameworks.entry(framework.clone()).or_default().active = active;
    }

    fn remove_framework(&mut self, framework: &FrameworkId) {
        self.frameworks.remove(framework);
    }

    fn set_framework_active(&mut self, framework: &FrameworkId, active: bool) {
        if let Some(f) = self.frameworks.get_mut(framework) {
            f.active = active;
        }
    }

    fn suppress(&mut self, framework: &FrameworkId) {
        if let Some(f) = self.frameworks.get_mut(framework) {
            f.suppressed = true;
        }
    }

    fn revive(&mut self, framework: &FrameworkId) {
        if let Some(f) = self.frameworks.get_mut(framework) {
            f.suppressed = false;
            f.filters.clear();
        }
    }

    fn add_used(&mut self, framework: &FrameworkId, agent: &AgentId, resources: &Resources) {
        if let Some(a) = self.agents.get_mut(agent) {
            a.allocated.add(resources);
        }
        if let Some(f) = self.frameworks.get_mut(framework) {
            f.allocated.add(resources);
        }
    }

    fn recover(
        &mut self,
        framework: &FrameworkId,
        agent: &AgentId,
        resources: &Resources,
        refuse_seconds: Option<f64>,
        now: f64,
    ) {
        if let Some(a) = self.agents.get_mut(agent) {
            a.allocated.subtract(resources);
        }
        let Some(f) = self.frameworks.get_mut(framework) else {
            return;
        };
        f.allocated.subtract(resources);
        if let Some(seconds) = refuse_seconds.filter(|s| *s > 0.0 && !resources.is_empty()) {
            f.filters.entry(agent.clone()).or_default().push(Filter {
                resources: resources.clone(),
                expires: now + seconds,
            });
        }
    }

    fn allocate(&mut self, now: f64) -> Vec<Allocation> {
        self.cycle += 1;
        let mut out = Vec::new();
        // Rotate the starting agent each cycle so no agent is always served first.
        let agent_ids: Vec<AgentId> = self.agents.keys().cloned().collect();
        let start = if agent_ids.is_empty() {
            0
        } else {
            (self.cycle as usize) % agent_ids.len()
        };
        for agent_id in agent_ids[start..].iter().chain(agent_ids[..start].iter()) {
            let Some(agent) = self.agents.get(agent_id) else {
                continue;
            };
            if !agent.active {
                continue;
            }
            let available = agent
                .total
                .minus(&agent.allocated)
                .without("ephemeral_ports");
            if available.is_empty() || !self.min_allocatable.admits(&available) {
                continue;
            }
            let mut candidates: Vec<(f64, u64, FrameworkId)> = self
                .frameworks
                .iter()
                .filter(|(_, f)| f.active && !f.suppressed)
                .map(|(id, f)| (self.share(&f.allocated), f.allocations, id.clone()))
                .collect();
            candidates.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
            for (_, _, framework_id) in candidates {
                let entry = self
                    .frameworks
                    .get_mut(&framework_id)
                    .expect("listed above");
                if entry.filtered(agent_id, &available, now) {
                    continue;
                }
                entry.allocated.add(&available);
                entry.allocations += 1;
                self.agents
                    .get_mut(agent_id)
                    .expect("listed above")
                    .allocated
                    .add(&available);
                out.push(Allocation {
                    framework: framework_id,
                    agent: agent_id.clone(),
                    resources: available,
                });
                break;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(text: &str) -> Resources {
        Resources::parse_text(text, "*").unwrap()
    }

    fn fw(id: &str) -> FrameworkId {
        FrameworkId::new(id)
    }

    fn ag(id: &str) -> AgentId {
        AgentId::new(id)
    }

    fn summary(allocations: &[Allocation]) -> Vec<String> {
        allocations
            .iter()
            .map(|a| format!("{}@{}={}", a.framework, a.agent, a.resources.to_text()))
            .collect()
    }

    fn setup(agents: &[&str], frameworks: &[&str]) -> FairAllocator {
        let mut alloc = FairAllocator::default();
        for a in agents {
            alloc.add_agent(&ag(a), res("cpus:4;mem:1024"), &[]);
        }
        for f in frameworks {
            alloc.add_framework(&fw(f), true);
        }
        alloc
    }

    #[test]
    fn whole_agent_goes_to_lowest_share() {
        let mut alloc = setup(&["a1", "a2"], &["f1", "f2"]);
        let got = summary(&alloc.allocate(0.0));
        assert_eq!(got.len(), 2);
        assert!(
            got.contains(&"f1@a1=cpus:4;mem:1024".to_string())
                || got.contains(&"f1@a2=cpus:4;mem:1024".to_string())
        );
        assert!(got.iter().any(|g| g.starts_with("f2@")));
        // Nothing left to offer.
        assert!(alloc.allocate(0.0).is_empty());
    }

    #[test]
    fn decline_filter_blocks_subset_until_expiry() {
        let mut alloc = setup(&["a1"], &["f1"]);
        let first = alloc.allocate(0.0);
        alloc.recover(&fw("f1"), &ag("a1"), &first[0].resources, Some(30.0), 0.0);
        assert!(alloc.allocate(1.0).is_empty(), "filtered");
        assert_eq!(alloc.allocate(31.0).len(), 1, "filter expired");
    }

    #[test]
    fn filtered_agent_goes_to_the_next_framework() {
        let mut alloc = setup(&["a1"], &["f1"]);
        let first = alloc.allocate(0.0);
        alloc.recover(&fw("f1"), &ag("a1"), &first[0].resources, Some(30.0), 0.0);
        alloc.add_framework(&fw("f2"), true);
        assert_eq!(summary(&alloc.allocate(1.0)), vec!["f2@a1=cpus:4;mem:1024"]);
    }

    #[test]
    fn a_bigger_offer_passes_the_filter() {
        let mut alloc = setup(&["a1"], &["f1"]);
        alloc.add_used(&fw("other"), &ag("a1"), &res("cpus:2"));
        let first = alloc.allocate(0.0);
        assert_eq!(first[0].resources, res("cpus:2;mem:1024"));
        alloc.recover(&fw("f1"), &ag("a1"), &first[0].resources, Some(30.0), 0.0);
        alloc.recover(&fw("other"), &ag("a1"), &res("cpus:2"), None, 0.0);
        assert_eq!(summary(&alloc.allocate(1.0)), vec!["f1@a1=cpus:4;mem:1024"]);
    }

    #[test]
    fn zero_refuse_seconds_sets_no_filter() {
        let mut alloc = setup(&["a1"], &["f1"]);
        let first = alloc.allocate(0.0);
        alloc.recover(&fw("f1"), &ag("a1"), &first[0].resources, Some(0.0), 0.0);
        assert_eq!(alloc.allocate(0.0).len(), 1);
    }

    #[test]
    fn suppress_and_revive() {
        let mut alloc = setup(&["a1"], &["f1"]);
        alloc.suppress(&fw("f1"));
        assert!(alloc.allocate(0.0).is_empty());
        alloc.revive(&fw("f1"));
        assert_eq!(alloc.allocate(0.0).len(), 1);
    }

    #[test]
    fn revive_clears_filters() {
        let mut alloc = setup(&["a1"], &["f1"]);
        let first = alloc.allocate(0.0);
        alloc.recover(&fw("f1"), &ag("a1"), &first[0].resources, Some(1000.0), 0.0);
        alloc.revive(&fw("f1"));
        assert_eq!(alloc.allocate(1.0).len(), 1);
    }

    #[test]
    fn inactive_agents_and_frameworks_get_nothing() {
        let mut alloc = setup(&["a1"], &["f1"]);
        alloc.set_agent_active(&ag("a1"), false);
        assert!(alloc.allocate(0.0).is_empty());
        alloc.set_agent_active(&ag("a1"), true);
        alloc.set_framework_active(&fw("f1"), false);
        assert!(alloc.allocate(0.0).is_empty());
    }

    #[test]
    fn min_allocatable() {
        let check = |min: &str, available: &str, want: bool| {
            assert_eq!(
                MinAllocatable::parse(min).unwrap().admits(&res(available)),
                want,
                "{min} {available}"
            )
        };
        check("cpus:0.01|mem:32", "cpus:0.01", true);
        check("cpus:0.01|mem:32", "mem:31", false);
        check("cpus:0.01|mem:32", "mem:32", true);
        check("cpus:1;mem:64", "cpus:1;mem:32", false);
        check("", "disk:1", true);
        let mut alloc = setup(&["a1"], &["f1"]);
        alloc.add_used(&fw("x"), &ag("a1"), &res("cpus:3.995;mem:1000"));
        assert!(
            alloc.allocate(0.0).is_empty(),
            "0.005 cpus and 24 MB is below the minimum"
        );
    }

    #[test]
    fn shares_balance_over_many_agents() {
        let agents: Vec<String> = (0..10).map(|i| format!("a{i}")).collect();
        let names: Vec<&str> = agents.iter().map(String::as_str).collect();
        let mut alloc = setup(&names, &["f1", "f2"]);
        let got = alloc.allocate(0.0);
        let f1 = got.iter().filter(|a| a.framework == fw("f1")).count();
        assert_eq!(f1, 5);
        assert!((alloc.dominant_share(&fw("f1")) - 0.5).abs() < 1e-9);
    }
}
