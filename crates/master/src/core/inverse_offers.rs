//! Inverse offers (reference §1.2, §1.3; Mesos's maintenance primitives): after each
//! allocation run, every active framework that holds offers, tasks or executors on an
//! active agent of a DRAINING machine gets one INVERSE_OFFERS event naming that agent and
//! the machine's unavailability, unless it has one outstanding for the agent or filtered
//! it. ACCEPT_INVERSE_OFFERS and DECLINE_INVERSE_OFFERS record the framework's answer
//! with the time (shown by GET_MAINTENANCE_STATUS) and filter the agent for
//! `refuse_seconds`; a new inverse offer follows when the filter ends. Inverse offers are
//! rescinded (RESCIND_INVERSE_OFFER) when the agent goes away or is deactivated, when its
//! machine's schedule changes, and after `--offer_timeout`; they are dropped silently
//! when their framework disconnects, fails over or is removed, as Mesos does. Answers
//! are advice for the operator: the master acts on none.

use super::Master;
use mantle_api::maintenance::{
    InverseOffer, InverseOfferAnswer, InverseOfferIds, InverseOfferStatus,
};
use mantle_api::scheduler::{Event, InverseOffers as InverseOffersEvent, RescindInverseOffer};
use mantle_api::*;
use std::collections::{BTreeMap, BTreeSet};

/// Outstanding inverse offers, the frameworks' answers and their filters.
#[derive(Clone, Debug, Default)]
pub struct InverseOffers {
    /// With the time each was made.
    outstanding: BTreeMap<OfferId, (InverseOffer, f64)>,
    /// The latest answer of each framework, per agent.
    answers: BTreeMap<AgentId, BTreeMap<FrameworkId, InverseOfferStatus>>,
    /// Until when a framework gets no inverse offer for an agent.
    filters: BTreeMap<(FrameworkId, AgentId), f64>,
}

impl InverseOffers {
    pub fn answers_for(&self, agent_id: &AgentId) -> impl Iterator<Item = &InverseOfferStatus> {
        self.answers
            .get(agent_id)
            .into_iter()
            .flat_map(|a| a.values())
    }

    pub fn outstanding(&self) -> impl Iterator<Item = &InverseOffer> {
        self.outstanding.values().map(|(offer, _)| offer)
    }

    fn is_outstanding(&self, framework_id: &FrameworkId, agent_id: &AgentId) -> bool {
        self.outstanding
            .values()
            .any(|(o, _)| &o.framework_id == framework_id && &o.agent_id == agent_id)
    }

    fn is_filtered(&self, framework_id: &FrameworkId, agent_id: &AgentId, now: f64) -> bool {
        self.filters
            .get(&(framework_id.clone(), agent_id.clone()))
            .is_some_and(|until| *until > now)
    }
}

impl Master {
    /// Sends the inverse offers due after an allocation run.
    pub(super) fn make_inverse_offers(&mut self, now: f64) {
        if self.maintenance.schedule.windows.is_empty() {
            return;
        }
        let mut scheduled = BTreeMap::new();
        for agent in self.agents.values().filter(|a| self.is_active(a)) {
            if let Some(unavailability) = self.agent_unavailability(agent) {
                scheduled.insert(agent.id.clone(), (unavailability, agent.url()));
            }
        }
        if scheduled.is_empty() {
            return;
        }
        // Frameworks with something offered or allocated on those agents.
        let mut users: BTreeSet<(FrameworkId, AgentId)> = BTreeSet::new();
        for entry in self.offers.values() {
            if scheduled.contains_key(&entry.offer.agent_id) {
                users.insert((
                    entry.offer.framework_id.clone(),
                    entry.offer.agent_id.clone(),
                ));
            }
        }
        for framework in self.frameworks.values() {
            let tasks = framework
                .tasks
                .values()
                .filter(|t| !t.state.is_terminal())
                .map(|t| &t.info.agent_id);
            for agent_id in tasks.chain(framework.executors.keys()) {
                if scheduled.contains_key(agent_id) {
                    users.insert((framework.id.clone(), agent_id.clone()));
                }
            }
        }
        let mut batches: BTreeMap<FrameworkId, Vec<InverseOffer>> = BTreeMap::new();
        for (framework_id, agent_id) in users {
            let active = self
                .frameworks
                .get(&framework_id)
                .is_some_and(|f| f.active && f.stream.is_some());
            let inverse = &self.maintenance.inverse;
            if !active
                || inverse.is_outstanding(&framework_id, &agent_id)
                || inverse.is_filtered(&framework_id, &agent_id, now)
            {
                continue;
            }
            let (unavailability, url) = scheduled[&agent_id].clone();
            let offer = InverseOffer {
                id: OfferId::new(format!("{}-O{}", self.info.id, self.next_offer)),
                url: Some(url),
                framework_id: framework_id.clone(),
                agent_id,
                unavailability,
                resources: Vec::new(),
            };
            self.next_offer += 1;
            self.maintenance
                .inverse
                .outstanding
                .insert(offer.id.clone(), (offer.clone(), now));
            batches.entry(framework_id).or_default().push(offer);
        }
        for (framework_id, inverse_offers) in batches {
            tracing::info!(framework_id = %framework_id, count = inverse_offers.len(), "sending inverse offers");
            self.send(
                &framework_id,
                Event::InverseOffers(InverseOffersEvent { inverse_offers }),
            );
        }
    }

    /// ACCEPT_INVERSE_OFFERS or DECLINE_INVERSE_OFFERS. Unknown or foreign IDs are
    /// ignored (the call is still 202), as Mesos does.
    pub(super) fn answer_inverse_offers(
        &mut self,
        now: f64,
        framework_id: &FrameworkId,
        body: InverseOfferIds,
        answer: InverseOfferAnswer,
    ) {
        let refuse = body.filters.unwrap_or_default().effective_refuse_seconds();
        let inverse = &mut self.maintenance.inverse;
        for id in body.inverse_offer_ids {
            let ours = inverse
                .outstanding
                .get(&id)
                .is_some_and(|(o, _)| &o.framework_id == framework_id);
            if !ours {
                tracing::info!(framework_id = %framework_id, inverse_offer_id = %id, "ignoring an answer to an inverse offer that is no longer valid");
                continue;
            }
            let (offer, _) = inverse.outstanding.remove(&id).expect("checked above");
            let status = InverseOfferStatus {
                status: answer,
                framework_id: framework_id.clone(),
                timestamp: TimeInfo {
                    nanoseconds: (now * 1e9) as i64,
                },
            };
            inverse
                .answers
                .entry(offer.agent_id.clone())
                .or_default()
                .insert(framework_id.clone(), status);
            if refuse > 0.0 {
                inverse
                    .filters
                    .insert((framework_id.clone(), offer.agent_id), now + refuse);
            }
        }
        self.dirty = true;
    }

    /// Takes back the inverse offers for an agent and tells their frameworks.
    pub(super) fn rescind_agent_inverse_offers(&mut self, agent_id: &AgentId) {
        self.rescind_inverse_offers(|o| &o.agent_id == agent_id, true);
    }

    /// Drops a framework's inverse offers; with `notify` it gets RESCIND_INVERSE_OFFER.
    pub(super) fn rescind_framework_inverse_offers(
        &mut self,
        framework_id: &FrameworkId,
        notify: bool,
    ) {
        self.rescind_inverse_offers(|o| &o.framework_id == framework_id, notify);
    }

    fn rescind_inverse_offers(&mut self, select: impl Fn(&InverseOffer) -> bool, notify: bool) {
        let ids: Vec<OfferId> = self
            .maintenance
            .inverse
            .outstanding()
            .filter(|o| select(o))
            .map(|o| o.id.clone())
            .collect();
        for id in ids {
            let (offer, _) = self
                .maintenance
                .inverse
                .outstanding
                .remove(&id)
                .expect("listed");
            if notify {
                self.send(
                    &offer.framework_id,
                    Event::RescindInverseOffer(RescindInverseOffer {
                        inverse_offer_id: id,
                    }),
                );
            }
        }
    }

    /// Forgets the answers and filters for an agent: its unavailability changed, or it
    /// is gone. Frameworks are asked again.
    pub(super) fn forget_agent_answers(&mut self, agent_id: &AgentId) {
        let inverse = &mut self.maintenance.inverse;
        inverse.answers.remove(agent_id);
        inverse.filters.retain(|(_, a), _| a != agent_id);
    }

    /// Ends filters that ran out, and rescinds inverse offers older than
    /// `--offer_timeout` (which applies to them too, as in Mesos).
    pub(super) fn expire_inverse_offers(&mut self, now: f64) {
        let inverse = &mut self.maintenance.inverse;
        inverse.filters.retain(|_, until| *until > now);
        let Some(timeout) = self.config.offer_timeout else {
            return;
        };
        let old: BTreeSet<OfferId> = inverse
            .outstanding
            .iter()
            .filter(|(_, (_, made))| now - made >= timeout)
            .map(|(id, _)| id.clone())
            .collect();
        self.rescind_inverse_offers(|o| old.contains(&o.id), true);
    }
}
