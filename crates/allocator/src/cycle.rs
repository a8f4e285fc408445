//! One allocation cycle (reference §6): stage 1 serves roles below their quota
//! guarantee; stage 2 offers each agent's remainder role by role in DRF order, within
//! quota limits and the headroom that unmet guarantees still need.

use crate::bundle::{at, Bundle, Offered};
use crate::drf::{DrfAllocator, Idle, Wake, ROOT};
use crate::{is_within, Allocation};
use mantle_api::{Quantity, Resources};
use std::borrow::Cow;
use std::collections::HashMap;

/// A role's quota as per-kind vectors in thousandths; `i64::MAX` where unlimited.
#[derive(Clone, Debug)]
struct QuotaView {
    guarantee: Vec<i64>,
    limit: Vec<i64>,
    /// Every kind is at its limit: the role's subtree can take nothing.
    exhausted: bool,
}

/// Quota views indexed by role.
type Quotas = Vec<Option<QuotaView>>;

/// What one agent visit needs besides the allocator itself. What is left to hand out
/// is the agent's `available`, which every grant shrinks. One `Visit` serves a whole
/// cycle, so the per-role marks are allocated once.
struct Visit {
    agent: usize,
    /// No grant yet: `available` is still what the filter bits were computed for.
    untouched: bool,
    /// A quota limit or the headroom cut an offer, so the outcome may change without
    /// this agent changing.
    capped: bool,
    /// Roles already served or found unable to take anything in this visit: those
    /// whose mark equals `stamp`.
    done: Vec<u32>,
    stamp: u32,
}

impl Visit {
    fn is_done(&self, role: usize) -> bool {
        self.done[role] == self.stamp
    }

    fn mark_done(&mut self, role: usize) {
        self.done[role] = self.stamp;
    }
}

/// A grant found in a visit: the client, and what it takes (`None`: everything the
/// agent has left).
type Found = (usize, Option<Bundle>);

impl DrfAllocator {
    /// One allocation cycle over every active agent with something to offer, in shuffled
    /// order.
    pub fn allocate(&mut self, now: f64) -> Vec<Allocation> {
        if self.shares_dirty {
            self.resort();
        }
        self.min_kinds = self.min_allocatable_kinds();
        if self.epoch != self.order_epoch {
            self.order_dirty = true;
        }
        self.wake_agents(now);
        let mut order = self.shuffled_agents();
        let mut quotas = self.quota_views();
        let mut grants: Vec<(usize, usize, Offered)> = Vec::with_capacity(order.len());
        let mut visit = Visit {
            agent: 0,
            untouched: true,
            capped: false,
            done: vec![0; self.roles.len()],
            stamp: 0,
        };

        // Stage 1: roles below their guarantee, lowest share first.
        let mut unmet: Vec<usize> = self.roles[ROOT]
            .children
            .iter()
            .copied()
            .filter(|r| self.roles[*r].eligible > 0 && self.below_guarantee(*r, &quotas))
            .collect();
        if !unmet.is_empty() {
            let mut met = vec![false; self.roles.len()];
            for &a in &order {
                self.start_visit(&mut visit, a, now);
                let mut any_met = false;
                for &t in &unmet {
                    if self.agents[a].available.is_empty() {
                        break;
                    }
                    if met[t] {
                        continue;
                    }
                    if let Some(found) = self.find(t, &mut visit, &quotas, None, true, now) {
                        self.apply(&mut visit, found, None, &mut quotas, &mut grants);
                        if !self.below_guarantee(t, &quotas) {
                            met[t] = true;
                            any_met = true;
                        }
                    }
                }
                if any_met {
                    unmet.retain(|t| !met[*t]);
                }
                if unmet.is_empty() {
                    break;
                }
            }
        }

        let stage_one = !grants.is_empty();

        // Stage 2: everything else.
        let mut slack = self.headroom_slack(&quotas);
        for (i, &a) in order.iter().enumerate() {
            // The visit order is random, so the hardware cannot see the next agent
            // coming: load its record a few visits ahead and its free resources a
            // little later, once the record is there.
            if let Some(&ahead) = order.get(i + 8) {
                self.agents.prefetch(ahead);
            }
            if let Some(&ahead) = order.get(i + 4) {
                self.agents[ahead].prefetch();
            }
            if !self.agents[a].active || self.agents[a].available.is_empty() {
                continue;
            }
            if self.agents[a]
                .idle_until(self.epoch)
                .is_some_and(|until| now < until)
            {
                continue;
            }
            self.start_visit(&mut visit, a, now);
            let mut granted = false;
            while let Some(found) =
                self.find(ROOT, &mut visit, &quotas, slack.as_deref(), false, now)
            {
                self.apply(&mut visit, found, slack.as_mut(), &mut quotas, &mut grants);
                granted = true;
                if self.agents[a].available.is_empty() {
                    break;
                }
            }
            let agent = &mut self.agents[a];
            agent.idle = (!granted && !visit.capped).then_some(Idle {
                version: agent.version,
                epoch: self.epoch,
                until: agent.filters.next_expiry,
            });
        }
        // Idle agents leave the list until a change or an expiring filter brings them
        // back: otherwise every cycle of a cluster whose frameworks declined most agents
        // walks them all (at 100,000 agents, most of the master's event loop).
        let epoch = self.epoch;
        order.retain(|&a| {
            let agent = &mut self.agents[a];
            let idle_until = agent.idle_until(epoch);
            agent.listed = agent.worth_visiting() && idle_until.is_none();
            if let Some(at) = idle_until.filter(|until| until.is_finite()) {
                self.sleeping.push(Wake { at, agent: a });
            }
            agent.listed
        });
        self.order = order;
        self.collect(grants, stage_one)
    }

    /// The listed agents in a fresh random order. The caller hands the vector back
    /// through `self.order` when the cycle is over.
    fn shuffled_agents(&mut self) -> Vec<usize> {
        let mut order = std::mem::take(&mut self.order);
        if self.order_dirty {
            order.clear();
            self.sleeping.clear();
            self.order_epoch = self.epoch;
            for (i, agent) in self.agents.iter_mut() {
                agent.listed = agent.worth_visiting();
                if agent.listed {
                    order.push(i);
                }
            }
            self.order_dirty = false;
        }
        for i in (1..order.len()).rev() {
            // xorshift64: deterministic for a given seed.
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            order.swap(i, (self.rng % (i as u64 + 1)) as usize);
        }
        order
    }

    /// Lists again the idle agents whose earliest decline filter has expired.
    fn wake_agents(&mut self, now: f64) {
        while let Some(wake) = self.sleeping.peek().copied() {
            if wake.at > now {
                break;
            }
            self.sleeping.pop();
            let Some(agent) = self.agents.get_mut(wake.agent) else {
                continue;
            };
            // An agent that went idle again since waits for its own later entry.
            let later = agent.idle.is_some_and(|idle| idle.until > now);
            if !agent.listed && agent.worth_visiting() && !later {
                agent.listed = true;
                self.order.push(wake.agent);
            }
        }
    }

    fn start_visit(&mut self, visit: &mut Visit, a: usize, now: f64) {
        let agent = &mut self.agents[a];
        agent.filters.refresh(&agent.available, agent.version, now);
        visit.agent = a;
        visit.untouched = true;
        visit.capped = false;
        visit.stamp += 1;
    }

    /// Walks the subtree of `node` in DRF order and returns the first client that takes
    /// something from the agent, with what it takes. Roles that cannot take anything are
    /// remembered in the visit, since less remaining never lets them take more.
    fn find(
        &self,
        node: usize,
        visit: &mut Visit,
        quotas: &Quotas,
        slack: Option<&[i64]>,
        guarantee_stage: bool,
        now: f64,
    ) -> Option<Found> {
        let role = &self.roles[node];
        if role.eligible == 0 {
            return None;
        }
        if let Some(quota) = &quotas[node] {
            if quota.exhausted {
                visit.capped = true;
                return None;
            }
        }
        if node != ROOT && !role.clients.is_empty() && !visit.is_done(node) {
            if let Some(found) =
                self.offer_in_role(node, visit, quotas, slack, guarantee_stage, now)
            {
                return Some(found);
            }
            visit.mark_done(node);
        }
        for &child in &role.children {
            if let Some(found) = self.find(child, visit, quotas, slack, guarantee_stage, now) {
                return Some(found);
            }
        }
        None
    }

    fn offer_in_role(
        &self,
        r: usize,
        visit: &mut Visit,
        quotas: &Quotas,
        slack: Option<&[i64]>,
        guarantee_stage: bool,
        now: f64,
    ) -> Option<Found> {
        let usable = self.usable(
            r,
            visit.agent,
            &self.agents[visit.agent].available,
            &mut visit.capped,
            quotas,
            slack,
            guarantee_stage,
        )?;
        let full = visit.untouched && matches!(usable, Cow::Borrowed(_));
        let agent = &self.agents[visit.agent];
        let filters = &agent.filters;
        let any_filters = !filters.is_empty();
        for &c in &self.roles[r].clients {
            if any_filters && (filters.bit(c) || (!full && filters.covers(c, &usable, now))) {
                continue;
            }
            let framework = &self.frameworks[self.clients[c].framework];
            if agent.has_gpus && self.config.filter_gpu_resources && !framework.gpu_resources {
                continue;
            }
            return Some(match usable {
                Cow::Borrowed(_) => (c, None),
                Cow::Owned(part) => (c, Some(part)),
            });
        }
        None
    }

    /// What role `r` may take from what is left on the agent: its own and its
    /// ancestors' reservations, unreserved non-scalars, and unreserved scalars within
    /// its quota limit and the headroom (or, in the guarantee stage, only scalars that
    /// move it toward its guarantee). `None` when that is below the minimum offer.
    #[allow(clippy::too_many_arguments)]
    fn usable<'v>(
        &self,
        r: usize,
        agent: usize,
        remaining: &'v Bundle,
        capped: &mut bool,
        quotas: &Quotas,
        slack: Option<&[i64]>,
        guarantee_stage: bool,
    ) -> Option<Cow<'v, Bundle>> {
        let top = self.top_role(r);
        let quota = quotas[top].as_ref();
        let left = quota.map(|q| self.quota_left(top, q, guarantee_stage));
        if let Some(left) = &left {
            if left.iter().all(|v| *v <= 0) {
                *capped = true;
                return None;
            }
        }
        let plain = !self.agents[agent].has_reserved && left.is_none() && slack.is_none();
        let usable = if plain {
            Cow::Borrowed(remaining)
        } else {
            let name = &*self.roles[r].name;
            let mut out = Vec::with_capacity(remaining.0.len());
            for (id, q) in &remaining.0 {
                let info = &self.catalog.keys[*id as usize];
                if let Some(owner) = &info.reserved_to {
                    if is_within(name, owner) {
                        out.push((*id, q.clone()));
                    }
                    continue;
                }
                let (Some(kind), Quantity::Scalar(have)) = (info.kind, q) else {
                    out.push((*id, q.clone()));
                    continue;
                };
                let mut cap = *have;
                if let Some(left) = &left {
                    cap = cap.min(at(left, kind).max(0));
                }
                if let Some(slack) = slack {
                    cap = cap.min(at(slack, kind).max(0));
                }
                if cap < *have {
                    *capped = true;
                }
                if cap > 0 {
                    out.push((*id, Quantity::Scalar(cap)));
                }
            }
            Cow::Owned(Bundle(out))
        };
        if usable.is_empty() || !self.admits(&usable) {
            return None;
        }
        Some(usable)
    }

    /// True when `bundle` meets one alternative of `--min_allocatable_resources`.
    fn admits(&self, bundle: &Bundle) -> bool {
        let scalar = |kind: usize| -> i64 {
            bundle
                .0
                .iter()
                .filter(|(id, _)| self.catalog.kind(*id) == Some(kind))
                .map(|(_, q)| if let Quantity::Scalar(v) = q { *v } else { 0 })
                .sum()
        };
        self.min_kinds.is_empty()
            || self.min_kinds.iter().any(|alternative| {
                alternative.iter().all(|(kind, min)| match kind {
                    Some(kind) => scalar(*kind) >= *min,
                    None => *min <= 0,
                })
            })
    }

    /// `--min_allocatable_resources` by kind index, in thousandths, for [`Self::admits`].
    fn min_allocatable_kinds(&self) -> Vec<Vec<(Option<usize>, i64)>> {
        self.config
            .min_allocatable
            .alternatives()
            .iter()
            .map(|alternative| {
                alternative
                    .iter()
                    .map(|(name, min)| {
                        let min = (min * 1000.0).round() as i64;
                        (self.catalog.kind_index(name), min)
                    })
                    .collect()
            })
            .collect()
    }

    /// Hands what `found` names to its client: the agent's whole remainder moves into
    /// the holding without a copy.
    fn apply(
        &mut self,
        visit: &mut Visit,
        (c, part): Found,
        slack: Option<&mut Vec<i64>>,
        quotas: &mut Quotas,
        grants: &mut Vec<(usize, usize, Offered)>,
    ) {
        let available = &mut self.agents[visit.agent].available;
        let bundle = match part {
            Some(part) => {
                available.subtract(&part);
                part
            }
            None => std::mem::take(available),
        };
        if let Some(slack) = slack {
            bundle.add_scalars(&self.catalog, slack, -1, true);
        }
        visit.untouched = false;
        let role = self.clients[c].role;
        visit.mark_done(role);
        grants.push((visit.agent, c, self.catalog.offered(&bundle)));
        self.grant(visit.agent, c, bundle);
        let top = self.top_role(role);
        if let Some(mut view) = quotas[top].take() {
            view.exhausted = self.limit_reached(top, &view);
            quotas[top] = Some(view);
        }
    }

    /// Merges grants to the same client on the same agent (a stage-1 grant topped up
    /// in stage 2) into one allocation each.
    fn collect(&self, grants: Vec<(usize, usize, Offered)>, merge: bool) -> Vec<Allocation> {
        let mut merged: Vec<(usize, usize, Offered)> = Vec::with_capacity(grants.len());
        let mut seen: HashMap<(usize, usize), usize> = HashMap::new();
        for (a, c, offered) in grants {
            if !merge {
                merged.push((a, c, offered));
                continue;
            }
            match seen.get(&(a, c)) {
                Some(&i) => merged[i].2.merge(offered),
                None => {
                    seen.insert((a, c), merged.len());
                    merged.push((a, c, offered));
                }
            }
        }
        merged
            .into_iter()
            .map(|(a, c, resources)| {
                let client = &self.clients[c];
                Allocation {
                    framework: self.frameworks[client.framework].id.clone(),
                    role: self.roles[client.role].name.clone(),
                    agent: self.agents[a].id.clone(),
                    resources,
                }
            })
            .collect()
    }

    fn top_role(&self, mut r: usize) -> usize {
        while let Some(p) = self.roles[r].parent.filter(|p| *p != ROOT) {
            r = p;
        }
        r
    }

    fn quota_views(&mut self) -> Quotas {
        let mut views: Quotas = vec![None; self.roles.len()];
        let quotas: Vec<(usize, crate::Quota)> = self
            .roles
            .iter()
            .enumerate()
            .filter_map(|(r, role)| Some((r, role.quota.clone()?)))
            .collect();
        for (r, quota) in quotas {
            let guarantee = self.kind_vector(&quota.guarantees, 0);
            let limit = if quota.limits.is_empty() {
                Vec::new()
            } else {
                self.kind_vector(&quota.limits, i64::MAX)
            };
            let mut view = QuotaView {
                guarantee,
                limit,
                exhausted: false,
            };
            view.exhausted = self.limit_reached(r, &view);
            views[r] = Some(view);
        }
        views
    }

    fn limit_reached(&self, r: usize, quota: &QuotaView) -> bool {
        !quota.limit.is_empty() && self.quota_left(r, quota, false).iter().all(|v| *v <= 0)
    }

    /// Per-kind values of `resources`; kinds it does not name get `absent`.
    fn kind_vector(&mut self, resources: &Resources, absent: i64) -> Vec<i64> {
        let bundle = self.catalog.bundle(resources);
        let mut out = vec![absent; self.catalog.kinds.len()];
        for (id, q) in &bundle.0 {
            if let (Some(kind), Quantity::Scalar(v)) = (self.catalog.kind(*id), q) {
                if out[kind] == absent {
                    out[kind] = 0;
                }
                out[kind] += v;
            }
        }
        out
    }

    /// How much more the role may take per kind: up to its limit, and in the guarantee
    /// stage also only up to its guarantee. Kinds past the vector end are unlimited.
    fn quota_left(&self, r: usize, quota: &QuotaView, guarantee_stage: bool) -> Vec<i64> {
        let consumed = self.consumed(r);
        let kinds = self.catalog.kinds.len();
        (0..kinds)
            .map(|k| {
                let limit = quota.limit.get(k).copied().unwrap_or(i64::MAX);
                let mut left = limit.saturating_sub(at(&consumed, k));
                if guarantee_stage {
                    left = left.min(at(&quota.guarantee, k) - at(&consumed, k));
                }
                left
            })
            .collect()
    }

    fn below_guarantee(&self, r: usize, quotas: &Quotas) -> bool {
        let Some(quota) = &quotas[r] else {
            return false;
        };
        let consumed = self.consumed(r);
        quota
            .guarantee
            .iter()
            .enumerate()
            .any(|(k, g)| *g > at(&consumed, k))
    }

    /// Unreserved resources free across active agents minus what unmet guarantees
    /// still need; `None` when no role has a guarantee.
    fn headroom_slack(&self, quotas: &Quotas) -> Option<Vec<i64>> {
        if quotas
            .iter()
            .flatten()
            .all(|q| q.guarantee.iter().all(|g| *g <= 0))
        {
            return None;
        }
        let mut slack = Vec::new();
        for (_, agent) in self.agents.iter().filter(|(_, a)| a.active) {
            agent
                .available
                .add_scalars(&self.catalog, &mut slack, 1, true);
        }
        for (r, quota) in quotas.iter().enumerate() {
            let Some(quota) = quota else {
                continue;
            };
            let consumed = self.consumed(r);
            for (k, g) in quota.guarantee.iter().enumerate() {
                let need = (g - at(&consumed, k)).max(0);
                if slack.len() <= k {
                    slack.resize(k + 1, 0);
                }
                slack[k] -= need;
            }
        }
        Some(slack)
    }
}
