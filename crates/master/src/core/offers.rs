//! Offers: turning allocations into OFFERS events (with the unavailability of agents on
//! machines scheduled for maintenance), DECLINE with filters, RESCIND, and the ACCEPT
//! call with its offer checks (reference §1.2, §5.2).

use super::Master;
use mantle_allocator::Allocation;
use mantle_api::resources::AllocationInfo;
use mantle_api::scheduler::{Accept, Event, Offers, Rescind};
use mantle_api::*;
use std::collections::BTreeMap;

#[derive(Clone, Debug)]
pub struct OfferEntry {
    pub offer: Offer,
    pub resources: Resources,
    /// The role the resources are allocated to.
    pub role: String,
    pub created: f64,
}

impl Master {
    pub(super) fn make_offers(&mut self, now: f64, allocations: Vec<Allocation>) {
        let mut batches: BTreeMap<FrameworkId, Vec<Offer>> = BTreeMap::new();
        for allocation in allocations {
            let Some(agent) = self.agents.get(&*allocation.agent) else {
                continue;
            };
            let Some(framework) = self.frameworks.get(&*allocation.framework) else {
                continue;
            };
            let id = OfferId::new(format!("{}-O{}", self.info.id, self.next_offer));
            self.next_offer += 1;
            let executor_ids = framework
                .executors
                .get(&*allocation.agent)
                .map(|e| e.keys().cloned().collect())
                .unwrap_or_default();
            let resources = allocation.resources.to_resources();
            let allocation_info = AllocationInfo {
                role: Some(allocation.role.to_string()),
            };
            let mut wire = resources.to_wire();
            for r in &mut wire {
                r.allocation_info = Some(allocation_info.clone());
            }
            let unavailability = self.agent_unavailability(agent);
            let framework = self
                .frameworks
                .get_mut(&*allocation.framework)
                .expect("found above");
            let offer = Offer {
                id: id.clone(),
                framework_id: FrameworkId::clone(&allocation.framework),
                agent_id: AgentId::clone(&allocation.agent),
                hostname: agent.info.hostname.clone(),
                url: Some(agent.url()),
                resources: wire,
                attributes: agent.info.attributes.clone(),
                executor_ids,
                unavailability,
                allocation_info: Some(allocation_info),
            };
            framework.offers.insert(id.clone());
            self.offers.insert(
                id,
                OfferEntry {
                    offer: offer.clone(),
                    resources,
                    role: allocation.role.to_string(),
                    created: now,
                },
            );
            batches
                .entry(FrameworkId::clone(&allocation.framework))
                .or_default()
                .push(offer);
        }
        for (framework_id, offers) in batches {
            self.send(&framework_id, Event::Offers(Offers { offers }));
        }
        self.dirty = true;
    }

    /// Removes one of the framework's offers and gives its resources back, with a decline
    /// filter when `refuse_seconds` is set. Unknown offers are ignored, as Mesos does.
    pub(super) fn remove_offer(
        &mut self,
        now: f64,
        framework_id: &FrameworkId,
        offer_id: &OfferId,
        refuse_seconds: Option<f64>,
    ) -> Option<OfferEntry> {
        let entry = self.offers.get(offer_id)?;
        if &entry.offer.framework_id != framework_id {
            return None;
        }
        let entry = self.offers.remove(offer_id)?;
        if let Some(f) = self.frameworks.get_mut(framework_id) {
            f.offers.remove(offer_id);
        }
        if refuse_seconds.is_some() {
            self.allocator.recover(
                framework_id,
                &entry.role,
                &entry.offer.agent_id,
                &entry.resources,
                refuse_seconds,
                now,
            );
        }
        self.dirty = true;
        Some(entry)
    }

    /// `--offer_timeout`: offers older than the timeout are rescinded.
    pub(super) fn expire_offers(&mut self, now: f64) {
        let Some(timeout) = self.config.offer_timeout else {
            return;
        };
        let expired: Vec<OfferId> = self
            .offers
            .values()
            .filter(|o| now - o.created >= timeout)
            .map(|o| o.offer.id.clone())
            .collect();
        for offer_id in expired {
            tracing::info!(offer_id = %offer_id, "offer timed out");
            self.rescind(now, &offer_id, true);
        }
    }

    /// Takes back every offer and inverse offer of a framework; with `notify` the
    /// framework gets RESCIND and RESCIND_INVERSE_OFFER.
    pub(super) fn rescind_framework_offers(
        &mut self,
        now: f64,
        framework_id: &FrameworkId,
        notify: bool,
    ) {
        let ids: Vec<OfferId> = self
            .frameworks
            .get(framework_id)
            .map(|f| f.offers.iter().cloned().collect())
            .unwrap_or_default();
        for offer_id in ids {
            self.rescind(now, &offer_id, notify);
        }
        self.rescind_framework_inverse_offers(framework_id, notify);
    }

    /// Takes back every offer on an agent and tells the frameworks.
    pub(super) fn rescind_agent_offers(&mut self, now: f64, agent_id: &AgentId) {
        let ids: Vec<OfferId> = self
            .offers
            .values()
            .filter(|o| &o.offer.agent_id == agent_id)
            .map(|o| o.offer.id.clone())
            .collect();
        for offer_id in ids {
            self.rescind(now, &offer_id, true);
        }
    }

    fn rescind(&mut self, now: f64, offer_id: &OfferId, notify: bool) {
        let Some(entry) = self.offers.get(offer_id) else {
            return;
        };
        let framework_id = entry.offer.framework_id.clone();
        let entry = self
            .remove_offer(now, &framework_id, offer_id, Some(0.0))
            .expect("present");
        if notify {
            self.send(
                &framework_id,
                Event::Rescind(Rescind {
                    offer_id: entry.offer.id,
                }),
            );
        }
    }

    /// ACCEPT: checks the offers, runs the operations in order, and declines what is left
    /// with the call's filters. Invalid offers make every launch in the call TASK_LOST
    /// (TASK_DROPPED for partition-aware frameworks) with REASON_INVALID_OFFERS.
    pub(super) fn accept(&mut self, now: f64, framework_id: &FrameworkId, accept: Accept) {
        let refuse = accept
            .filters
            .clone()
            .unwrap_or_default()
            .effective_refuse_seconds();
        let problem = self.check_offers(framework_id, &accept.offer_ids);
        if let Some(problem) = problem {
            tracing::info!(framework_id = %framework_id, problem = %problem, "accept with invalid offers");
            for offer_id in &accept.offer_ids {
                self.remove_offer(now, framework_id, offer_id, Some(0.0));
            }
            self.drop_launches(
                framework_id,
                &accept.operations,
                Reason::InvalidOffers,
                &problem,
            );
            return;
        }
        let mut agent_and_role = None;
        let mut available = Resources::new();
        for offer_id in &accept.offer_ids {
            let entry = self
                .remove_offer(now, framework_id, offer_id, None)
                .expect("checked above");
            agent_and_role = Some((entry.offer.agent_id.clone(), entry.role.clone()));
            available.add(&entry.resources);
        }
        let Some((agent_id, role)) = agent_and_role else {
            return;
        };
        // Deactivation rescinds a draining agent's offers, so launches cannot normally
        // reach it; if one does, it is refused as Mesos's agent refuses it.
        let draining = self.draining.contains_key(&agent_id);
        for operation in accept.operations {
            match operation.kind.as_deref() {
                Some("LAUNCH" | "LAUNCH_GROUP") if draining => {
                    let message = "The agent is draining";
                    let dropped = std::slice::from_ref(&operation);
                    self.drop_launches(framework_id, dropped, Reason::AgentDraining, message);
                }
                Some("LAUNCH") => {
                    for task in operation.launch.map(|l| l.task_infos).unwrap_or_default() {
                        self.launch_task(now, framework_id, &agent_id, &role, &mut available, task);
                    }
                }
                Some("LAUNCH_GROUP") => {
                    if let Some(group) = operation.launch_group {
                        self.launch_group(
                            now,
                            framework_id,
                            &agent_id,
                            &role,
                            &mut available,
                            group,
                        );
                    }
                }
                Some(kind @ ("RESERVE" | "UNRESERVE")) => {
                    let unreserve = kind == "UNRESERVE";
                    let body = if unreserve {
                        operation.unreserve
                    } else {
                        operation.reserve
                    };
                    let result = self.reserve_in_offer(
                        now,
                        framework_id,
                        (&agent_id, &role),
                        &mut available,
                        body,
                        unreserve,
                    );
                    if let Err(message) = result {
                        tracing::info!(framework_id = %framework_id, operation = kind, error = %message, "offer operation dropped");
                    }
                }
                other => {
                    tracing::warn!(framework_id = %framework_id, operation = ?other, "offer operation not supported yet, skipped");
                }
            }
        }
        self.allocator.recover(
            framework_id,
            &role,
            &agent_id,
            &available,
            Some(refuse),
            now,
        );
    }

    /// RESERVE or UNRESERVE inside ACCEPT: relabels part of the accepted resources; the
    /// framework keeps holding them under the new label.
    fn reserve_in_offer(
        &mut self,
        now: f64,
        framework_id: &FrameworkId,
        (agent_id, role): (&AgentId, &str),
        available: &mut Resources,
        body: Option<serde_json::Value>,
        unreserve: bool,
    ) -> Result<(), String> {
        let field = if unreserve { "unreserve" } else { "reserve" };
        let wire: Vec<Resource> = body
            .and_then(|b| serde_json::from_value(b.get("resources")?.clone()).ok())
            .ok_or_else(|| format!("{field}.resources: missing or malformed"))?;
        let reserved = super::policy::reserved_resources(&wire, &format!("{field}.resources"))
            .map_err(|e| e.message)?;
        if let Some((key, _)) = reserved.entries().find(|(k, _)| k.role != role) {
            return Err(format!(
                "{field}.resources: role '{}' is not the offer's role '{role}'",
                key.role
            ));
        }
        let (from, to) = super::policy::relabelling(&reserved, unreserve);
        if !available.contains(&from) {
            return Err(format!(
                "{field}.resources: {} is not in the offered {}",
                from.to_text(),
                available.to_text()
            ));
        }
        *available = available.minus(&from).plus(&to);
        self.allocator
            .recover(framework_id, role, agent_id, &from, None, now);
        self.relabel(agent_id, &from, &to);
        self.allocator.add_used(framework_id, role, agent_id, &to);
        self.record_reservation(agent_id, &reserved, unreserve);
        Ok(())
    }

    /// Tells a framework the launches of `operations` never happened: TASK_DROPPED, or
    /// TASK_LOST for frameworks that are not PARTITION_AWARE.
    fn drop_launches(
        &mut self,
        framework_id: &FrameworkId,
        operations: &[Operation],
        reason: Reason,
        message: &str,
    ) {
        let partition_aware = self
            .frameworks
            .get(framework_id)
            .is_some_and(|f| f.is_partition_aware());
        let state = if partition_aware {
            TaskState::Dropped
        } else {
            TaskState::Lost
        };
        for operation in operations {
            let tasks = operation
                .launch
                .iter()
                .flat_map(|l| l.task_infos.iter())
                .chain(
                    operation
                        .launch_group
                        .iter()
                        .flat_map(|g| g.task_group.tasks.iter()),
                );
            for task in tasks {
                self.send_master_update(
                    framework_id,
                    &task.task_id,
                    &task.agent_id,
                    state,
                    reason,
                    message,
                );
            }
        }
    }

    fn check_offers(&self, framework_id: &FrameworkId, offer_ids: &[OfferId]) -> Option<String> {
        if offer_ids.is_empty() {
            return Some("No offers specified".to_string());
        }
        let mut agent: Option<(&AgentId, &String)> = None;
        let mut seen = std::collections::BTreeSet::new();
        for offer_id in offer_ids {
            if !seen.insert(offer_id) {
                return Some(format!("Offer {offer_id} appears more than once"));
            }
            let Some(entry) = self.offers.get(offer_id) else {
                return Some(format!("Offer {offer_id} is no longer valid"));
            };
            if &entry.offer.framework_id != framework_id {
                return Some(format!(
                    "Offer {offer_id} is not for framework {framework_id}"
                ));
            }
            match agent {
                Some((a, _)) if a != &entry.offer.agent_id => {
                    return Some("Aggregated offers must belong to one single agent".to_string())
                }
                Some((_, role)) if role != &entry.role => {
                    return Some("Aggregated offers must be allocated to the same role".to_string())
                }
                _ => agent = Some((&entry.offer.agent_id, &entry.role)),
            }
        }
        None
    }
}
