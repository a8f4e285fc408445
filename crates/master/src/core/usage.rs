//! Resource sums over many tasks for the read endpoints: what each agent, framework and
//! role uses and is offered. `/master/state` sums every live task three ways (per agent,
//! per framework, per role), so the sums add the common entries (unreserved `cpus`,
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

/// The position of each agent in the view's order, by id.
struct AgentIndex<'v> {
    index: HashMap<&'v str, usize, BuildHasherDefault<IdTail>>,
    /// The agent found last: tasks of one agent often follow each other.
    last: Option<(&'v str, usize)>,
}

impl<'v> AgentIndex<'v> {
    fn find(&mut self, id: &'v AgentId) -> Option<usize> {
        let id = id.as_str();
        if let Some((seen, at)) = self.last {
            if seen == id {
                return Some(at);
            }
        }
        let at = *self.index.get(id)?;
        self.last = Some((id, at));
        Some(at)
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
    /// Used and offered resources of each agent, in the order of `self.agents`: one
    /// pass over the tasks, executors and offers.
    pub(super) fn agent_usage(&self) -> Vec<Usage> {
        // The ids copied next to each other: comparing with each agent's own copy waited
        // on memory for most of a lookup.
        let ids: String = self.agents.values().map(|a| a.id.as_str()).collect();
        let mut start = 0;
        let mut agents = AgentIndex {
            index: (self.agents.values().enumerate())
                .map(|(i, agent)| {
                    start += agent.id.as_str().len();
                    (&ids[start - agent.id.as_str().len()..start], i)
                })
                .collect(),
            last: None,
        };
        let mut sums: Vec<(Sum, Sum)> = Vec::new();
        sums.resize_with(self.agents.len(), Default::default);
        let mut slot = |id| agents.find(id);
        for framework in self.frameworks.values() {
            each_task(framework.tasks.values(), |task| {
                if task.state.is_terminal() {
                    return;
                }
                if let Some(at) = slot(&task.agent_id) {
                    sums[at].0.add(&task.resources);
                }
            });
            for (agent, executors) in &framework.executors {
                let Some(at) = slot(agent) else { continue };
                for executor in executors.values() {
                    sums[at].0.add(&executor.resources);
                }
            }
        }
        for entry in self.offers.values() {
            if let Some(at) = slot(&entry.offer.agent_id) {
                sums[at].1.add(&entry.resources);
            }
        }
        sums.into_iter()
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
