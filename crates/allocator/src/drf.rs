//! The allocator's state and the bookkeeping calls the master makes between cycles:
//! agents, frameworks and their roles, allocations, filters, weights and quota. Shares
//! stay sorted as allocations change (invariant 4): every change that moves a share
//! repositions that one entry with a binary search.

use crate::bundle::{at, Bundle, Catalog};
use crate::slab::Slab;
use crate::{AllocatorConfig, FrameworkOptions, Quota, RoleSummary};
use mantle_api::{AgentId, FrameworkId, Resources};
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

#[derive(Debug)]
pub(crate) struct Filter {
    pub resources: Bundle,
    pub expires: f64,
}

/// Decline filters on one agent. `blocked` caches, per client, whether some filter covers
/// the whole of `blocked_for` (the agent's free resources when the cache was built), so a
/// cycle tests one bit per filtered framework. An agent without filters keeps neither
/// list nor cache: most agents of a large cluster have none most of the time.
#[derive(Debug)]
pub(crate) struct AgentFilters {
    /// Each filter with the client it applies to, in the order they were added.
    pub list: Vec<(usize, Filter)>,
    pub blocked: Vec<u64>,
    pub blocked_for: Option<Bundle>,
    /// The agent version `blocked_for` is known to equal, so that a visit need not
    /// compare the bundles (a declined offer comes back equal to what was offered).
    pub checked_version: Option<u64>,
    pub next_expiry: f64,
}

impl Default for AgentFilters {
    fn default() -> Self {
        AgentFilters {
            list: Vec::new(),
            blocked: Vec::new(),
            blocked_for: None,
            checked_version: None,
            next_expiry: f64::INFINITY,
        }
    }
}

impl AgentFilters {
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn bit(&self, client: usize) -> bool {
        self.blocked
            .get(client / 64)
            .is_some_and(|w| w & (1 << (client % 64)) != 0)
    }

    fn set_bit(&mut self, client: usize) {
        if self.blocked.len() <= client / 64 {
            self.blocked.resize(client / 64 + 1, 0);
        }
        self.blocked[client / 64] |= 1 << (client % 64);
    }

    /// The clients with a filter here, each once.
    pub fn clients(&self) -> Vec<usize> {
        let mut clients: Vec<usize> = self.list.iter().map(|(c, _)| *c).collect();
        clients.sort_unstable();
        clients.dedup();
        clients
    }

    /// Forgets the cache, and gives back the room of an emptied list.
    fn invalidate(&mut self) {
        self.blocked_for = None;
        self.checked_version = None;
        if self.list.is_empty() {
            self.list = Vec::new();
            self.blocked = Vec::new();
        }
    }

    /// Makes the cache valid for `available` (the agent's free resources at `version`)
    /// at `now`: drops expired filters and recomputes the bits when the free resources
    /// changed.
    pub fn refresh(&mut self, available: &Bundle, version: u64, now: f64) {
        if now >= self.next_expiry {
            self.list.retain(|(_, f)| f.expires > now);
            self.next_expiry = (self.list.iter()).fold(f64::INFINITY, |t, (_, f)| t.min(f.expires));
            self.invalidate();
        }
        if self.list.is_empty() || self.checked_version == Some(version) {
            return;
        }
        self.checked_version = Some(version);
        if self.blocked_for.as_ref() == Some(available) {
            return;
        }
        self.blocked.clear();
        let covered: Vec<usize> = (self.list.iter())
            .filter(|(_, f)| f.resources.contains(available))
            .map(|(c, _)| *c)
            .collect();
        for c in covered {
            self.set_bit(c);
        }
        self.blocked_for = Some(available.clone());
    }

    fn add(&mut self, client: usize, mut filter: Filter) {
        self.next_expiry = self.next_expiry.min(filter.expires);
        match &self.blocked_for {
            Some(b) if filter.resources.contains(b) => self.set_bit(client),
            Some(_) => {}
            // No cache yet (the list was empty): the next visit builds it.
            None => self.checked_version = None,
        }
        filter.resources.0.shrink_to_fit();
        if self.list.is_empty() {
            // Most filtered agents have one filter: room for that, not for four.
            self.list.reserve_exact(1);
        }
        self.list.push((client, filter));
    }

    fn clear(&mut self, client: usize) {
        let before = self.list.len();
        self.list.retain(|(c, _)| *c != client);
        if self.list.len() != before {
            self.invalidate();
        }
    }

    /// True when a live filter of `client` covers `offer`.
    pub fn covers(&self, client: usize, offer: &Bundle, now: f64) -> bool {
        (self.list.iter())
            .any(|(c, f)| *c == client && f.expires > now && f.resources.contains(offer))
    }
}

/// Remembers that a visit to an agent found no taker, and under which conditions that
/// stays true: same free resources, no framework became eligible, no filter expired.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Idle {
    pub version: u64,
    pub epoch: u64,
    pub until: f64,
}

/// When an idle agent's earliest decline filter expires; the heap's top is the
/// earliest (the order is reversed for `BinaryHeap`, a max-heap).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Wake {
    pub at: f64,
    pub agent: usize,
}

impl PartialEq for Wake {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Wake {}

impl PartialOrd for Wake {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Wake {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at.total_cmp(&self.at)).then(other.agent.cmp(&self.agent))
    }
}

#[derive(Debug)]
pub(crate) struct Agent {
    pub id: Arc<AgentId>,
    pub total: Bundle,
    /// What is neither allocated nor offered: `total` minus every holding.
    pub available: Bundle,
    pub active: bool,
    pub has_gpus: bool,
    pub has_reserved: bool,
    /// What each client holds here.
    pub holdings: Vec<(usize, Bundle)>,
    /// Bumped whenever `available` changes.
    pub version: u64,
    pub filters: AgentFilters,
    pub idle: Option<Idle>,
    /// In the allocator's `order`: the next cycle visits it.
    pub listed: bool,
}

impl Agent {
    /// Whether cycles should visit it: active, with something left to offer.
    pub fn worth_visiting(&self) -> bool {
        self.active && !self.available.is_empty()
    }

    /// Until when its last visit's finding that nobody can take it holds, if nothing
    /// changed since (its free resources, or the allocator's `epoch`).
    pub fn idle_until(&self, epoch: u64) -> Option<f64> {
        let idle = self.idle?;
        (idle.version == self.version && idle.epoch == epoch).then_some(idle.until)
    }

    /// Starts loading what a visit reads besides the record itself.
    pub fn prefetch(&self) {
        use crate::slab::prefetch_bytes;
        self.available.prefetch();
        let blocked = &self.filters.blocked;
        prefetch_bytes(
            blocked.as_ptr() as *const u8,
            size_of_val(blocked.as_slice()),
        );
        let holdings = &self.holdings;
        prefetch_bytes(
            holdings.as_ptr() as *const u8,
            size_of_val(holdings.as_slice()),
        );
    }
}

#[derive(Debug)]
pub(crate) struct Framework {
    pub id: Arc<FrameworkId>,
    pub active: bool,
    pub gpu_resources: bool,
    pub clients: Vec<usize>,
}

/// A framework in one of its roles: what the framework sorter of that role orders.
#[derive(Debug)]
pub(crate) struct Client {
    pub framework: usize,
    pub role: usize,
    pub alloc: Vec<i64>,
    pub allocations: u64,
    pub share: f64,
    pub subscribed: bool,
    pub suppressed: bool,
    pub listed: bool,
    pub filtered_agents: Vec<usize>,
}

#[derive(Debug)]
pub(crate) struct Role {
    pub name: Arc<str>,
    pub parent: Option<usize>,
    /// Children sorted by (share, allocations, name).
    pub children: Vec<usize>,
    /// Eligible clients sorted by (share, allocations, framework id).
    pub clients: Vec<usize>,
    pub weight: f64,
    pub quota: Option<Quota>,
    /// Unreserved scalars allocated in the subtree: what the share is computed from.
    pub alloc: Vec<i64>,
    /// Reserved scalars on agents for this subtree.
    pub reserved: Vec<i64>,
    pub allocations: u64,
    pub share: f64,
    /// Eligible clients in the subtree; a role with none is skipped.
    pub eligible: usize,
    /// Every client of this role, eligible or not.
    pub members: Vec<usize>,
}

impl Role {
    fn new(name: Arc<str>, parent: Option<usize>) -> Self {
        Role {
            name,
            parent,
            children: Vec::new(),
            clients: Vec::new(),
            weight: 1.0,
            quota: None,
            alloc: Vec::new(),
            reserved: Vec::new(),
            allocations: 0,
            share: 0.0,
            eligible: 0,
            members: Vec::new(),
        }
    }
}

pub(crate) const ROOT: usize = 0;

/// Hierarchical DRF over roles and frameworks. See the crate documentation.
#[derive(Debug)]
pub struct DrfAllocator {
    pub(crate) config: AllocatorConfig,
    pub(crate) catalog: Catalog,
    pub(crate) agents: Slab<Agent>,
    pub(crate) agent_ids: HashMap<AgentId, usize>,
    pub(crate) frameworks: Slab<Framework>,
    pub(crate) framework_ids: HashMap<FrameworkId, usize>,
    pub(crate) clients: Slab<Client>,
    pub(crate) roles: Vec<Role>,
    pub(crate) role_ids: HashMap<String, usize>,
    /// Scalars of all agents, per kind.
    pub(crate) total: Vec<i64>,
    /// Bumped whenever a framework may have become eligible for an agent it was not.
    pub(crate) epoch: u64,
    pub(crate) shares_dirty: bool,
    pub(crate) rng: u64,
    /// A reusable per-kind vector for [`DrfAllocator::charge`].
    scratch: Vec<i64>,
    /// The agents a cycle visits, reshuffled in place by every cycle: active agents with
    /// something left to offer. An agent that gets resources back joins at the end; a
    /// cycle drops those it leaves with nothing, so that a full cluster's cycles do not
    /// walk every agent. Rebuilt when agents come, go or change activity
    /// (`order_dirty`).
    pub(crate) order: Vec<usize>,
    pub(crate) order_dirty: bool,
    /// The epoch `order` was last rebuilt at: a newer one may have made any agent
    /// worth a visit again, so the next cycle rebuilds it.
    pub(crate) order_epoch: u64,
    /// Agents a cycle took off `order` because nobody could take their free resources
    /// ([`Idle`]), each with when its earliest decline filter expires; an idle agent
    /// with no filter is not here and waits for a change. Stale entries are skipped.
    pub(crate) sleeping: BinaryHeap<Wake>,
    /// The minimum offer by kind, refreshed at the start of each cycle.
    pub(crate) min_kinds: Vec<Vec<(Option<usize>, i64)>>,
}

impl DrfAllocator {
    pub fn new(config: AllocatorConfig) -> Self {
        let rng = config.seed.max(1);
        DrfAllocator {
            config,
            catalog: Catalog::default(),
            agents: Slab::default(),
            agent_ids: HashMap::new(),
            frameworks: Slab::default(),
            framework_ids: HashMap::new(),
            clients: Slab::default(),
            roles: vec![Role::new(Arc::from(""), None)],
            role_ids: HashMap::new(),
            total: Vec::new(),
            epoch: 0,
            shares_dirty: false,
            rng,
            scratch: Vec::new(),
            min_kinds: Vec::new(),
            order: Vec::new(),
            order_dirty: false,
            order_epoch: 0,
            sleeping: BinaryHeap::new(),
        }
    }

    // ----- agents -----

    /// Adds (or replaces) an agent; `used` lists what frameworks already hold there,
    /// per role. Unknown frameworks are added inactive.
    pub fn add_agent(
        &mut self,
        agent: &AgentId,
        total: &Resources,
        used: &[(FrameworkId, String, Resources)],
    ) {
        self.remove_agent(agent);
        let total = self.catalog.bundle(&total.without("ephemeral_ports"));
        let has_gpus = self.catalog.kind_index("gpus").is_some_and(|k| {
            total
                .0
                .iter()
                .any(|(id, _)| self.catalog.kind(*id) == Some(k))
        });
        let index = self.agents.insert(Agent {
            id: Arc::new(agent.clone()),
            available: total.clone(),
            has_reserved: total.has_reserved(&self.catalog),
            total,
            active: true,
            has_gpus,
            holdings: Vec::new(),
            version: 0,
            filters: AgentFilters::default(),
            idle: None,
            listed: false,
        });
        self.agent_ids.insert(agent.clone(), index);
        // A new agent joins the list at its end, unless the list is being rebuilt
        // anyway: while thousands of agents register, a rebuild at every cycle walked
        // the whole cluster.
        let new = &mut self.agents[index];
        if !self.order_dirty && new.worth_visiting() {
            new.listed = true;
            self.order.push(index);
        }
        self.count_total(index, 1);
        for (framework, role, resources) in used {
            self.add_used(framework, role, agent, resources);
        }
    }

    fn count_total(&mut self, agent: usize, sign: i64) {
        let total = self.agents[agent].total.clone();
        total.add_scalars(&self.catalog, &mut self.total, sign, false);
        for (id, q) in &total.0 {
            let info = &self.catalog.keys[*id as usize];
            let (Some(role), Some(kind), mantle_api::Quantity::Scalar(v)) =
                (info.reserved_to.clone(), info.kind, q)
            else {
                continue;
            };
            let mut node = Some(self.ensure_role(&role));
            while let Some(r) = node.filter(|r| *r != ROOT) {
                let reserved = &mut self.roles[r].reserved;
                if reserved.len() <= kind {
                    reserved.resize(kind + 1, 0);
                }
                reserved[kind] += sign * v;
                node = self.roles[r].parent;
            }
        }
        self.shares_dirty = true;
        self.epoch += 1;
    }

    pub fn remove_agent(&mut self, agent: &AgentId) {
        let Some(index) = self.agent_ids.remove(agent) else {
            return;
        };
        let holdings = std::mem::take(&mut self.agents[index].holdings);
        for (client, bundle) in holdings {
            self.charge(client, &bundle, -1);
        }
        self.count_total(index, -1);
        for c in self.agents[index].filters.clients() {
            if let Some(client) = self.clients.get_mut(c) {
                client.filtered_agents.retain(|a| *a != index);
            }
        }
        self.agents.remove(index);
        self.order_dirty = true;
    }

    /// Replaces an agent's total, for example after a reservation changed how its
    /// resources are labelled. What is allocated there stays allocated.
    pub fn update_agent_total(&mut self, agent: &AgentId, total: &Resources) {
        let Some(&index) = self.agent_ids.get(agent) else {
            return;
        };
        self.count_total(index, -1);
        let total = self.catalog.bundle(&total.without("ephemeral_ports"));
        let a = &mut self.agents[index];
        a.has_reserved = total.has_reserved(&self.catalog);
        a.available = total.clone();
        for (_, held) in &a.holdings {
            a.available.subtract(held);
        }
        a.total = total;
        a.version += 1;
        self.order_dirty = true;
        self.count_total(index, 1);
    }

    /// What is neither allocated nor offered on the agent.
    pub fn available(&self, agent: &AgentId) -> Option<Resources> {
        let index = *self.agent_ids.get(agent)?;
        Some(
            self.catalog
                .offered(&self.agents[index].available)
                .to_resources(),
        )
    }

    /// A deactivated agent keeps its allocations but is offered to nobody.
    pub fn set_agent_active(&mut self, agent: &AgentId, active: bool) {
        if let Some(&index) = self.agent_ids.get(agent) {
            self.agents[index].active = active;
            self.order_dirty = true;
            self.epoch += 1;
        }
    }

    // ----- frameworks -----

    /// Adds a framework, or updates its roles and capabilities when it is known.
    pub fn add_framework(
        &mut self,
        framework: &FrameworkId,
        options: &FrameworkOptions,
        active: bool,
    ) {
        let index = match self.framework_ids.get(framework) {
            Some(&i) => i,
            None => {
                let i = self.frameworks.insert(Framework {
                    id: Arc::new(framework.clone()),
                    active,
                    gpu_resources: false,
                    clients: Vec::new(),
                });
                self.framework_ids.insert(framework.clone(), i);
                i
            }
        };
        self.frameworks[index].active = active;
        self.frameworks[index].gpu_resources = options.gpu_resources;
        let clients = self.frameworks[index].clients.clone();
        for c in clients {
            let role = self.roles[self.clients[c].role].name.clone();
            self.clients[c].subscribed = options.roles.iter().any(|r| **r == *role);
        }
        for role in &options.roles {
            let c = self.client(index, role);
            self.clients[c].subscribed = true;
        }
        self.refresh_framework(index);
    }

    pub fn remove_framework(&mut self, framework: &FrameworkId) {
        let Some(index) = self.framework_ids.remove(framework) else {
            return;
        };
        let clients = self.frameworks[index].clients.clone();
        for c in clients {
            self.set_listed(c, false);
            self.clear_filters(c);
            let held: Vec<(usize, Bundle)> = self
                .agents
                .iter()
                .filter_map(|(a, agent)| {
                    let (_, bundle) = agent.holdings.iter().find(|(h, _)| *h == c)?;
                    Some((a, bundle.clone()))
                })
                .collect();
            for (a, bundle) in held {
                self.take_back(a, c, &bundle);
            }
            let role = self.clients[c].role;
            self.roles[role].members.retain(|m| *m != c);
            self.clients.remove(c);
        }
        self.frameworks.remove(index);
        self.epoch += 1;
    }

    pub fn set_framework_active(&mut self, framework: &FrameworkId, active: bool) {
        if let Some(&index) = self.framework_ids.get(framework) {
            self.frameworks[index].active = active;
            self.refresh_framework(index);
        }
    }

    /// Stops offers to the framework in `roles` (all its roles when empty); outstanding
    /// offers stay.
    pub fn suppress(&mut self, framework: &FrameworkId, roles: &[String]) {
        self.set_suppressed(framework, roles, true);
    }

    /// Resumes offers in `roles` (all when empty) and clears their decline filters.
    pub fn revive(&mut self, framework: &FrameworkId, roles: &[String]) {
        self.set_suppressed(framework, roles, false);
    }

    fn set_suppressed(&mut self, framework: &FrameworkId, roles: &[String], suppressed: bool) {
        let Some(&index) = self.framework_ids.get(framework) else {
            return;
        };
        for c in self.frameworks[index].clients.clone() {
            let name = &*self.roles[self.clients[c].role].name;
            if !roles.is_empty() && !roles.iter().any(|r| r == name) {
                continue;
            }
            self.clients[c].suppressed = suppressed;
            if !suppressed {
                self.clear_filters(c);
            }
        }
        self.refresh_framework(index);
    }

    /// The client of `framework` in `role`, created on first use.
    fn client(&mut self, framework: usize, role: &str) -> usize {
        let role = self.ensure_role(role);
        if let Some(c) = self.find_client(framework, role) {
            return c;
        }
        let c = self.clients.insert(Client {
            framework,
            role,
            alloc: Vec::new(),
            allocations: 0,
            share: 0.0,
            subscribed: false,
            suppressed: false,
            listed: false,
            filtered_agents: Vec::new(),
        });
        self.frameworks[framework].clients.push(c);
        self.roles[role].members.push(c);
        c
    }

    fn find_client(&self, framework: usize, role: usize) -> Option<usize> {
        self.frameworks[framework]
            .clients
            .iter()
            .copied()
            .find(|c| self.clients[*c].role == role)
    }

    /// Drops every decline filter of client `c`.
    fn clear_filters(&mut self, c: usize) {
        for agent in std::mem::take(&mut self.clients[c].filtered_agents) {
            if let Some(a) = self.agents.get_mut(agent) {
                a.filters.clear(c);
            }
        }
    }

    fn refresh_framework(&mut self, framework: usize) {
        let active = self.frameworks[framework].active;
        for c in self.frameworks[framework].clients.clone() {
            let client = &self.clients[c];
            let eligible = active && client.subscribed && !client.suppressed;
            self.set_listed(c, eligible);
        }
        self.epoch += 1;
    }

    // ----- allocations -----

    /// Records resources a framework holds without an offer from this allocator (tasks
    /// an agent reports when it re-registers).
    pub fn add_used(
        &mut self,
        framework: &FrameworkId,
        role: &str,
        agent: &AgentId,
        resources: &Resources,
    ) {
        let Some(&a) = self.agent_ids.get(agent) else {
            return;
        };
        let f = match self.framework_ids.get(framework) {
            Some(&f) => f,
            None => {
                self.add_framework(framework, &FrameworkOptions::default(), false);
                self.framework_ids[framework]
            }
        };
        let c = self.client(f, role);
        let bundle = self.catalog.bundle(resources);
        self.agents[a].available.subtract(&bundle);
        self.grant(a, c, bundle);
    }

    /// Takes resources back from a framework: a declined or rescinded offer, the unused
    /// part of an accepted one, or a finished task. With `refuse_seconds` the framework
    /// is not offered a subset of them on that agent in that role until then.
    pub fn recover(
        &mut self,
        framework: &FrameworkId,
        role: &str,
        agent: &AgentId,
        resources: &Resources,
        refuse_seconds: Option<f64>,
        now: f64,
    ) {
        let (Some(&a), Some(&f)) = (self.agent_ids.get(agent), self.framework_ids.get(framework))
        else {
            return;
        };
        let Some(&role) = self.role_ids.get(role) else {
            return;
        };
        let Some(c) = self.find_client(f, role) else {
            return;
        };
        let bundle = self.catalog.bundle(resources);
        let returned = self.take_back(a, c, &bundle);
        if let Some(seconds) = refuse_seconds.filter(|s| *s > 0.0 && !returned.is_empty()) {
            self.agents[a].filters.add(
                c,
                Filter {
                    resources: returned,
                    expires: now + seconds,
                },
            );
            if !self.clients[c].filtered_agents.contains(&a) {
                self.clients[c].filtered_agents.push(a);
            }
        }
    }

    /// Returns to agent `a` whatever part of `bundle` client `c` holds there, and says
    /// what that was.
    fn take_back(&mut self, a: usize, c: usize, bundle: &Bundle) -> Bundle {
        let agent = &mut self.agents[a];
        let Some(pos) = agent.holdings.iter().position(|(h, _)| *h == c) else {
            return Bundle::default();
        };
        let held = &mut agent.holdings[pos].1;
        let returned = held.minus(&held.minus(bundle));
        held.subtract(&returned);
        if held.is_empty() {
            agent.holdings.swap_remove(pos);
        }
        agent.available.add(&returned);
        agent.version += 1;
        if agent.active && !agent.listed && !returned.is_empty() {
            agent.listed = true;
            self.order.push(a);
        }
        if agent.filters.blocked_for.as_ref() == Some(&agent.available) {
            agent.filters.checked_version = Some(agent.version);
        }
        self.charge(c, &returned, -1);
        returned
    }

    /// Records that client `c` holds `bundle` of agent `a`; the caller has already taken
    /// it out of the agent's `available`.
    pub(crate) fn grant(&mut self, a: usize, c: usize, bundle: Bundle) {
        self.charge(c, &bundle, 1);
        let agent = &mut self.agents[a];
        agent.version += 1;
        match agent.holdings.iter_mut().find(|(h, _)| *h == c) {
            Some((_, held)) => held.add(&bundle),
            None => {
                // Most agents are held by one or two clients: room for exactly those,
                // not the four a first push makes (at 100,000 agents, 10 MB).
                agent.holdings.reserve_exact(1);
                agent.holdings.push((c, bundle));
            }
        }
    }

    /// Adds or removes `bundle` to a client's and its roles' shares, keeping the sorted
    /// lists in order.
    fn charge(&mut self, c: usize, bundle: &Bundle, sign: i64) {
        let position = if self.clients[c].listed {
            self.client_position(c)
        } else {
            None
        };
        let mut alloc = std::mem::take(&mut self.clients[c].alloc);
        bundle.add_scalars(&self.catalog, &mut alloc, sign, false);
        let share = self.share_of(&alloc, 1.0);
        let client = &mut self.clients[c];
        client.alloc = alloc;
        client.share = share;
        if sign > 0 {
            client.allocations += 1;
        }
        if let Some(position) = position {
            self.reposition_client(c, position);
        }
        let mut unreserved = std::mem::take(&mut self.scratch);
        unreserved.clear();
        bundle.add_scalars(&self.catalog, &mut unreserved, sign, true);
        let role = self.clients[c].role;
        self.charge_roles(role, &unreserved, sign > 0);
        self.scratch = unreserved;
    }

    /// Adds `delta` to the allocation of `role` and its ancestors, counting one more
    /// allocation when `counted`.
    fn charge_roles(&mut self, role: usize, delta: &[i64], counted: bool) {
        let mut node = Some(role);
        while let Some(r) = node {
            if r != ROOT {
                self.unlist_role(r);
            }
            let alloc = &mut self.roles[r].alloc;
            if alloc.len() < delta.len() {
                alloc.resize(delta.len(), 0);
            }
            for (have, d) in alloc.iter_mut().zip(delta) {
                *have += d;
            }
            if counted {
                self.roles[r].allocations += 1;
            }
            if r != ROOT {
                self.roles[r].share = self.share_of(&self.roles[r].alloc, self.roles[r].weight);
                self.list_role(r);
            }
            node = self.roles[r].parent;
        }
    }

    // ----- roles, weights, quota -----

    pub(crate) fn ensure_role(&mut self, name: &str) -> usize {
        if let Some(&r) = self.role_ids.get(name) {
            return r;
        }
        let parent = match name.rsplit_once('/') {
            Some((parent, _)) => self.ensure_role(parent),
            None => ROOT,
        };
        let r = self.roles.len();
        self.roles.push(Role::new(Arc::from(name), Some(parent)));
        self.role_ids.insert(name.to_string(), r);
        self.list_role(r);
        r
    }

    pub fn set_weight(&mut self, role: &str, weight: f64) {
        let r = self.ensure_role(role);
        self.unlist_role(r);
        self.roles[r].weight = if weight > 0.0 { weight } else { 1.0 };
        self.roles[r].share = self.share_of(&self.roles[r].alloc, self.roles[r].weight);
        self.list_role(r);
    }

    pub fn weight(&self, role: &str) -> f64 {
        self.role_ids
            .get(role)
            .map_or(1.0, |r| self.roles[*r].weight)
    }

    /// Sets (or with `None` removes) a role's quota.
    pub fn set_quota(&mut self, role: &str, quota: Option<Quota>) {
        let r = self.ensure_role(role);
        self.roles[r].quota = quota;
        self.epoch += 1;
    }

    /// A role's quota consumption per kind: allocated unreserved plus reserved.
    pub(crate) fn consumed(&self, r: usize) -> Vec<i64> {
        let role = &self.roles[r];
        let len = role.alloc.len().max(role.reserved.len());
        (0..len)
            .map(|k| at(&role.alloc, k) + at(&role.reserved, k))
            .collect()
    }

    /// Every known role, by name.
    pub fn roles(&self) -> Vec<RoleSummary> {
        let mut out: Vec<RoleSummary> = self
            .roles
            .iter()
            .enumerate()
            .skip(1)
            .map(|(r, role)| RoleSummary {
                name: role.name.to_string(),
                weight: role.weight,
                share: role.share,
                frameworks: role
                    .members
                    .iter()
                    .filter(|c| self.clients[**c].subscribed)
                    .map(|c| FrameworkId::clone(&self.frameworks[self.clients[*c].framework].id))
                    .collect(),
                quota: role.quota.clone(),
                consumed: self
                    .consumed(r)
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| **v != 0)
                    .map(|(k, v)| (self.catalog.kinds[k].clone(), *v as f64 / 1000.0))
                    .collect(),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// The framework's largest dominant share over its roles.
    pub fn dominant_share(&self, framework: &FrameworkId) -> f64 {
        self.framework_ids.get(framework).map_or(0.0, |f| {
            self.frameworks[*f]
                .clients
                .iter()
                .map(|c| self.clients[*c].share)
                .fold(0.0, f64::max)
        })
    }

    // ----- sorting -----

    pub(crate) fn share_of(&self, alloc: &[i64], weight: f64) -> f64 {
        let mut share: f64 = 0.0;
        for (k, &have) in alloc.iter().enumerate() {
            let total = at(&self.total, k);
            if total <= 0 || have <= 0 {
                continue;
            }
            if !self.config.fair_sharing_excluded.is_empty()
                && self
                    .config
                    .fair_sharing_excluded
                    .contains(&self.catalog.kinds[k])
            {
                continue;
            }
            share = share.max(have as f64 / total as f64);
        }
        share / weight
    }

    fn client_order(&self, a: usize, b: usize) -> Ordering {
        let (x, y) = (&self.clients[a], &self.clients[b]);
        x.share
            .total_cmp(&y.share)
            .then(x.allocations.cmp(&y.allocations))
            // Mesos breaks ties by name; the slot index is as deterministic and avoids
            // comparing long IDs in every binary search.
            .then(x.framework.cmp(&y.framework))
    }

    fn role_order(&self, a: usize, b: usize) -> Ordering {
        let (x, y) = (&self.roles[a], &self.roles[b]);
        x.share
            .total_cmp(&y.share)
            .then(x.allocations.cmp(&y.allocations))
            .then_with(|| x.name.cmp(&y.name))
    }

    fn set_listed(&mut self, c: usize, listed: bool) {
        if self.clients[c].listed == listed {
            return;
        }
        if listed {
            self.list_client(c);
        } else {
            self.unlist_client(c);
        }
        self.clients[c].listed = listed;
        let mut node = Some(self.clients[c].role);
        while let Some(r) = node {
            if listed {
                self.roles[r].eligible += 1;
            } else {
                self.roles[r].eligible -= 1;
            }
            node = self.roles[r].parent;
        }
    }

    fn list_client(&mut self, c: usize) {
        let r = self.clients[c].role;
        let mut list = std::mem::take(&mut self.roles[r].clients);
        let pos = list.partition_point(|x| self.client_order(*x, c) == Ordering::Less);
        list.insert(pos, c);
        self.roles[r].clients = list;
    }

    fn unlist_client(&mut self, c: usize) {
        if let Some(pos) = self.client_position(c) {
            self.roles[self.clients[c].role].clients.remove(pos);
        }
    }

    /// Where a listed client sits in its role's sorted list.
    fn client_position(&self, c: usize) -> Option<usize> {
        let list = &self.roles[self.clients[c].role].clients;
        list.binary_search_by(|x| self.client_order(*x, c)).ok()
    }

    /// Moves client `c`, whose share changed, from `pos` to its sorted place with one
    /// rotation of the entries in between.
    fn reposition_client(&mut self, c: usize, pos: usize) {
        let r = self.clients[c].role;
        let mut list = std::mem::take(&mut self.roles[r].clients);
        let less = |x: &usize| self.client_order(*x, c) == Ordering::Less;
        let right = pos + 1 + list[pos + 1..].partition_point(less);
        if right > pos + 1 {
            list[pos..right].rotate_left(1);
        } else {
            let left = list[..pos].partition_point(less);
            list[left..=pos].rotate_right(1);
        }
        self.roles[r].clients = list;
    }

    fn list_role(&mut self, r: usize) {
        let Some(p) = self.roles[r].parent else {
            return;
        };
        let mut list = std::mem::take(&mut self.roles[p].children);
        let pos = list.partition_point(|x| self.role_order(*x, r) == Ordering::Less);
        list.insert(pos, r);
        self.roles[p].children = list;
    }

    fn unlist_role(&mut self, r: usize) {
        let Some(p) = self.roles[r].parent else {
            return;
        };
        let mut list = std::mem::take(&mut self.roles[p].children);
        if let Ok(pos) = list.binary_search_by(|x| self.role_order(*x, r)) {
            list.remove(pos);
        }
        self.roles[p].children = list;
    }

    /// Recomputes every share against the current cluster total and re-sorts.
    pub(crate) fn resort(&mut self) {
        let shares: Vec<(usize, f64)> = self
            .clients
            .iter()
            .map(|(c, client)| (c, self.share_of(&client.alloc, 1.0)))
            .collect();
        for (c, share) in shares {
            self.clients[c].share = share;
        }
        for r in 1..self.roles.len() {
            self.roles[r].share = self.share_of(&self.roles[r].alloc, self.roles[r].weight);
        }
        for r in 0..self.roles.len() {
            let mut clients = std::mem::take(&mut self.roles[r].clients);
            clients.sort_by(|a, b| self.client_order(*a, *b));
            self.roles[r].clients = clients;
            let mut children = std::mem::take(&mut self.roles[r].children);
            children.sort_by(|a, b| self.role_order(*a, *b));
            self.roles[r].children = children;
        }
        self.shares_dirty = false;
    }
}
