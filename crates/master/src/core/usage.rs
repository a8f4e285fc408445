//! Resource sums over many tasks for the read endpoints: what each agent, framework and
//! role uses and is offered. `/master/state` adds every live task to three sums (per
//! agent, per framework, per role) as it writes it, so the sums add the common entries (unreserved `cpus`,
//! `mem`, `disk` and `gpus` without metadata) as integers by position, and only the
//! others through the ordered map of [`Resources`], whose lookups compare key strings.

use super::offers::OfferEntry;
use super::prefetch::each_task;
use super::{Framework, StateView};
use mantle_api::*;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// The names summed by position, in [`Sum::common`].
const COMMON: [&str; 4] = ["cpus", "disk", "gpus", "mem"];

/// A sum of resources; [`Sum::total`] gives the same [`Resources`] as adding each with
/// [`Resources::add`].
#[derive(Default)]
pub(super) struct Sum {
    /// Unreserved scalars of the [`COMMON`] names without metadata, in thousandths.
    common: [i64; COMMON.len()],
    rest: Resources,
    /// The resources added last, when they hold only [`COMMON`] entries, with those
    /// entries by position: the tasks of one shape share their entries (the master
    /// converts them through a cache), so adding the next is a pointer compare and four
    /// additions.
    last: Option<(Resources, [i64; COMMON.len()])>,
    /// Resources added so far, and the first of them until a second comes: the sum of
    /// one (an agent's one offer) is that one, sharing its entries, never taken apart.
    added: usize,
    only: Option<Resources>,
}

impl Sum {
    pub fn add(&mut self, resources: &Resources) {
        self.added += 1;
        match (self.added, self.only.take()) {
            (1, _) => {
                self.only = Some(resources.clone());
                return;
            }
            (_, Some(first)) => self.add_entries(&first),
            _ => {}
        }
        self.add_entries(resources);
    }

    fn add_entries(&mut self, resources: &Resources) {
        if let Some((seen, common)) = &self.last {
            if seen.shares_entries(resources) {
                self.add_common(*common);
                return;
            }
        }
        let mut common = [0; COMMON.len()];
        let mut only_common = true;
        for (key, quantity) in resources.entries() {
            if let Quantity::Scalar(value) = quantity {
                if key.role == "*" && key.meta.is_empty() {
                    // A match on constants compiles to length and word compares, where
                    // comparing with each name called `memcmp`.
                    let at = match key.name.as_str() {
                        "cpus" => Some(0),
                        "disk" => Some(1),
                        "gpus" => Some(2),
                        "mem" => Some(3),
                        _ => None,
                    };
                    if let Some(at) = at {
                        common[at] += value;
                        continue;
                    }
                }
            }
            only_common = false;
            self.rest.add_entry(key, quantity);
        }
        self.add_common(common);
        if only_common {
            self.last = Some((resources.clone(), common));
        }
    }

    /// Adds what `other` summed.
    pub fn merge(&mut self, other: Sum) {
        if let Some(only) = &other.only {
            self.add(only);
            return;
        }
        if other.added == 0 {
            return;
        }
        if let Some(first) = self.only.take() {
            self.add_entries(&first);
        }
        self.added += other.added;
        self.add_common(other.common);
        for (key, quantity) in other.rest.entries() {
            self.rest.add_entry(key, quantity);
        }
    }

    fn add_common(&mut self, common: [i64; COMMON.len()]) {
        for (sum, value) in self.common.iter_mut().zip(common) {
            *sum += value;
        }
    }

    pub fn total(self) -> Resources {
        if let Some(only) = self.only {
            return only;
        }
        let mut total = self.rest;
        for (name, value) in COMMON.iter().zip(self.common) {
            let key = ResourceKey {
                name: name.to_string(),
                role: "*".into(),
                meta: String::new(),
            };
            total.insert(key, Quantity::Scalar(value));
        }
        total
    }
}

/// Used (tasks and executors) and offered resources of one agent.
pub(super) type Usage = (Resources, Resources);

/// Hashes an agent id by its last bytes and length: ids share a long prefix (the
/// master's id) and differ at the end, and hashing all of each with SipHash cost more
/// than the lookup.
#[derive(Default)]
struct IdTail(u64);

impl Hasher for IdTail {
    fn write(&mut self, bytes: &[u8]) {
        let tail = &bytes[bytes.len().saturating_sub(8)..];
        let mut word = [0u8; 8];
        word[..tail.len()].copy_from_slice(tail);
        let mixed = (u64::from_le_bytes(word) ^ bytes.len() as u64 ^ self.0.rotate_left(5))
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = mixed ^ (mixed >> 29);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The position of each agent in the view's order, by id, built once per render and
/// shared by its threads. The ids are borrowed from one contiguous copy
/// ([`StateView::agent_ids`]): comparing with each agent's own copy waited on memory for
/// most of a lookup.
pub(super) struct AgentSlots<'i>(HashMap<&'i str, usize, BuildHasherDefault<IdTail>>);

impl<'i> AgentSlots<'i> {
    /// No agents: for sums per role only.
    pub fn none() -> AgentSlots<'i> {
        AgentSlots(HashMap::default())
    }

    pub fn new(view: &StateView, ids: &'i str) -> AgentSlots<'i> {
        let mut start = 0;
        let index = (view.agents.values().enumerate())
            .map(|(i, agent)| {
                start += agent.id.as_str().len();
                (&ids[start - agent.id.as_str().len()..start], i)
            })
            .collect();
        AgentSlots(index)
    }
}

/// What live tasks and executors use, summed per agent (in the view's order) and per
/// role: `/master/state` sums them while it writes the tasks, one thread per part of
/// the frameworks, and merges the parts.
pub(super) struct LiveSums<'s, 'v> {
    slots: &'s AgentSlots<'s>,
    /// The agent found last: tasks of one agent often follow each other.
    last: Option<(&'v str, usize)>,
    pub agents: Vec<Sum>,
    pub roles: HashMap<&'v str, Sum>,
}

impl<'s, 'v> LiveSums<'s, 'v> {
    pub fn new(slots: &'s AgentSlots<'s>) -> LiveSums<'s, 'v> {
        let mut agents = Vec::new();
        agents.resize_with(slots.0.len(), Sum::default);
        LiveSums {
            slots,
            last: None,
            agents,
            roles: HashMap::new(),
        }
    }

    pub fn add(&mut self, agent: &'v AgentId, role: &'v str, resources: &Resources) {
        let id = agent.as_str();
        let slot = match self.last {
            Some((seen, at)) if seen == id => Some(at),
            _ => self.slots.0.get(id).copied(),
        };
        if let Some(at) = slot {
            self.last = Some((id, at));
            self.agents[at].add(resources);
        }
        self.roles.entry(role).or_default().add(resources);
    }

    /// A framework's live tasks and executors.
    pub fn add_framework(&mut self, framework: &'v Framework) {
        each_task(framework.tasks.values(), |task| {
            if !task.state.is_terminal() {
                self.add(&task.info.agent_id, &task.role, &task.resources);
            }
        });
        for (agent, executors) in &framework.executors {
            for executor in executors.values() {
                self.add(agent, &executor.role, &executor.resources);
            }
        }
    }

    pub fn merge(&mut self, other: LiveSums<'s, 'v>) {
        for (sum, part) in self.agents.iter_mut().zip(other.agents) {
            sum.merge(part);
        }
        for (role, part) in other.roles {
            self.roles.entry(role).or_default().merge(part);
        }
    }
}

/// See [`StateView::framework_offers`].
pub(super) struct FrameworkOffers<'v>(HashMap<&'v str, Vec<&'v OfferEntry>>);

impl<'v> FrameworkOffers<'v> {
    pub fn of(&self, framework: &Framework) -> &[&'v OfferEntry] {
        let offers = self.0.get(framework.id.as_str());
        offers.map_or(&[], Vec::as_slice)
    }
}

impl StateView {
    /// The agents' ids copied next to each other, for [`AgentSlots`].
    pub(super) fn agent_ids(&self) -> String {
        self.agents.values().map(|a| a.id.as_str()).collect()
    }

    /// What the live tasks and executors use, per agent and per role: one pass.
    pub(super) fn live_sums<'s>(&self, slots: &'s AgentSlots<'s>) -> LiveSums<'s, '_> {
        let mut live = LiveSums::new(slots);
        for framework in self.frameworks.values() {
            live.add_framework(framework);
        }
        live
    }

    /// Used and offered resources of each agent, in the order of `self.agents`.
    pub(super) fn agent_usage(&self) -> Vec<Usage> {
        let ids = self.agent_ids();
        let slots = AgentSlots::new(self, &ids);
        self.agent_usage_from(&slots, self.live_sums(&slots).agents)
    }

    /// [`StateView::agent_usage`] from what each agent's tasks and executors use.
    pub(super) fn agent_usage_from(&self, slots: &AgentSlots, used: Vec<Sum>) -> Vec<Usage> {
        let mut offered: Vec<Sum> = Vec::new();
        offered.resize_with(self.agents.len(), Default::default);
        for entry in self.offers.values() {
            if let Some(&at) = slots.0.get(entry.offer.agent_id.as_str()) {
                offered[at].add(&entry.resources);
            }
        }
        used.into_iter()
            .zip(offered)
            .map(|(used, offered)| (used.total(), offered.total()))
            .collect()
    }

    /// What a framework's live tasks and its executors use.
    pub(super) fn framework_usage(framework: &Framework) -> Resources {
        let mut used = Sum::default();
        each_task(framework.tasks.values(), |task| {
            if !task.state.is_terminal() {
                used.add(&task.resources);
            }
        });
        for executors in framework.executors.values() {
            for executor in executors.values() {
                used.add(&executor.resources);
            }
        }
        used.total()
    }

    /// Each framework's outstanding offers in id order, found in one pass over the
    /// offers: looking each up by id compared ids along a tree path, waiting on memory
    /// at each step.
    pub(super) fn framework_offers(&self) -> FrameworkOffers<'_> {
        let mut by_framework: HashMap<&str, Vec<&OfferEntry>> = HashMap::new();
        for entry in self.offers.values() {
            let framework = entry.offer.framework_id.as_str();
            by_framework.entry(framework).or_default().push(entry);
        }
        FrameworkOffers(by_framework)
    }

    /// What `offers` hold together.
    pub(super) fn offered(offers: &[&OfferEntry]) -> Resources {
        let mut offered = Sum::default();
        for entry in offers {
            offered.add(&entry.resources);
        }
        offered.total()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sum_equals_adding_one_by_one() {
        let parts = [
            "cpus:1;mem:128",
            "cpus:0.5;disk:10;gpus:1",
            "cpus(eng):2;mem(eng):64",
            "ports:[31000-31005];cpus:0.001",
            "ports:[31003-31010,32000-32000];bogus:3",
            "",
        ];
        let mut expected = Resources::new();
        let mut sum = Sum::default();
        for text in parts {
            let resources = Resources::parse_text(text, "*").unwrap();
            expected.add(&resources);
            sum.add(&resources);
        }
        let total = sum.total();
        assert_eq!(total, expected);
        assert_eq!(total.scalar("cpus"), 3.501);
        assert_eq!(
            total.to_text(),
            "bogus:3;cpus:1.501;cpus(eng):2;disk:10;gpus:1;mem:128;mem(eng):64;ports:[31000-31010,32000-32000]"
        );
        assert!(Sum::default().total().is_empty());
    }

    #[test]
    fn merged_sums_equal_one_sum() {
        let parts = [
            "cpus:1;mem:128",
            "cpus:1;mem:128",
            "cpus(eng):2;mem(eng):64",
            "ports:[31000-31005];cpus:0.5",
            "disk:10",
        ];
        let parse = |text| Resources::parse_text(text, "*").unwrap();
        let mut expected = Resources::new();
        for text in parts {
            expected.add(&parse(text));
        }
        // Every split of the list into two sums, each of none, one or several.
        for split in 0..=parts.len() {
            let (mut left, mut right) = (Sum::default(), Sum::default());
            parts[..split].iter().for_each(|t| left.add(&parse(t)));
            parts[split..].iter().for_each(|t| right.add(&parse(t)));
            left.merge(right);
            assert_eq!(left.total(), expected, "split at {split}");
        }
        let mut one = Sum::default();
        one.merge(Sum::default());
        assert!(one.total().is_empty());
    }

    #[test]
    fn shared_entries_are_added_each_time() {
        let task = Resources::parse_text("cpus:1;mem:32", "*").unwrap();
        let ports = Resources::parse_text("cpus:0.5;ports:[31000-31001]", "*").unwrap();
        let other = Resources::parse_text("cpus:1;mem:32", "*").unwrap();
        let mut expected = Resources::new();
        let mut sum = Sum::default();
        for resources in [&task, &task.clone(), &ports, &ports, &task, &other, &task] {
            expected.add(resources);
            sum.add(resources);
        }
        let total = sum.total();
        assert_eq!(total, expected);
        assert_eq!(total.to_text(), "cpus:6;mem:160;ports:[31000-31001]");
    }
}
