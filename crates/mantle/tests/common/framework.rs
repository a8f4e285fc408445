//! A test framework on the Rust SDK: subscribes, and waits for the events a test expects
//! (acknowledging every update as it goes).

use mantle_api::scheduler::Event;
use mantle_api::*;
use mantle_sdk::scheduler::{Scheduler, SchedulerEvent, SchedulerEvents, SubscribeOptions};
use std::time::{Duration, Instant};

pub struct Framework {
    pub scheduler: Scheduler,
    pub events: SchedulerEvents,
    pub id: FrameworkId,
    /// Every status update seen, in order, so a wait can find one that came earlier.
    pub statuses: Vec<TaskStatus>,
    /// Tasks whose terminal updates are not acknowledged.
    pub hold_acks: std::collections::HashSet<String>,
    /// Offers that arrived while a wait looked for something else (and were not
    /// rescinded since); `next_offers` hands them out first.
    pub unused_offers: Vec<Offer>,
}

pub fn framework_info(name: &str) -> FrameworkInfo {
    serde_json::from_value(serde_json::json!({"user": "root", "name": name})).unwrap()
}

pub fn command_task(id: &str, offer: &Offer, command: &str, resources: &str) -> TaskInfo {
    serde_json::from_value(serde_json::json!({
        "name": id,
        "task_id": {"value": id},
        "agent_id": offer.agent_id,
        "resources": Resources::parse_text(resources, "*").unwrap().to_wire(),
        "command": {"value": command},
    }))
    .unwrap()
}

impl Framework {
    pub async fn subscribe(master: &str, name: &str) -> Framework {
        Framework::subscribe_with(master, framework_info(name)).await
    }

    pub async fn subscribe_with(master: &str, info: FrameworkInfo) -> Framework {
        Framework::subscribe_with_options(master, info, SubscribeOptions::default()).await
    }

    pub async fn subscribe_with_options(
        master: &str,
        info: FrameworkInfo,
        options: SubscribeOptions,
    ) -> Framework {
        let (scheduler, events) = Scheduler::subscribe_with(master, info, options)
            .await
            .expect("subscribe");
        let id = scheduler.framework_id().expect("framework id");
        Framework {
            scheduler,
            events,
            id,
            statuses: Vec::new(),
            hold_acks: Default::default(),
            unused_offers: Vec::new(),
        }
    }

    /// The next event for which `pick` returns something, within `timeout`.
    pub async fn next<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut pick: impl FnMut(&Event) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let event = match tokio::time::timeout(left, self.events.next()).await {
                Err(_) => panic!(
                    "timed out waiting for {what}; updates seen: {:#?}",
                    self.statuses
                ),
                Ok(None) => panic!("event stream ended while waiting for {what}"),
                Ok(Some(SchedulerEvent::Event(event))) => event,
                Ok(Some(_)) => continue,
            };
            if let Event::Update(update) = &event {
                let held = update.status.state.is_terminal()
                    && self.hold_acks.contains(update.status.task_id.as_str());
                if !held {
                    self.scheduler
                        .acknowledge(&update.status)
                        .await
                        .expect("acknowledge");
                }
                self.statuses.push(update.status.clone());
            }
            if let Some(found) = pick(&event) {
                return found;
            }
            match &event {
                Event::Offers(offers) => self.unused_offers.extend(offers.offers.iter().cloned()),
                Event::Rescind(rescind) => self.unused_offers.retain(|o| o.id != rescind.offer_id),
                _ => {}
            }
        }
    }

    pub async fn next_offers(&mut self) -> Vec<Offer> {
        if !self.unused_offers.is_empty() {
            return std::mem::take(&mut self.unused_offers);
        }
        self.next("offers", Duration::from_secs(30), |e| match e {
            Event::Offers(o) => Some(o.offers.clone()),
            _ => None,
        })
        .await
    }

    /// The first terminal update of `task` (or one seen before), within `timeout`.
    pub async fn wait_terminal(&mut self, task: &str, timeout: Duration) -> TaskStatus {
        if let Some(seen) = self
            .statuses
            .iter()
            .find(|s| s.task_id.as_str() == task && s.state.is_terminal())
        {
            return seen.clone();
        }
        let what = format!("{task} to end");
        self.next(&what, timeout, |e| match e {
            Event::Update(u)
                if u.status.task_id.as_str() == task && u.status.state.is_terminal() =>
            {
                Some(u.status.clone())
            }
            _ => None,
        })
        .await
    }

    /// Waits for an update of `task` in `state` (or finds one seen before), failing on any
    /// other terminal state.
    pub async fn wait_state(&mut self, task: &str, state: TaskState) -> TaskStatus {
        if let Some(seen) = self
            .statuses
            .iter()
            .find(|s| s.task_id.as_str() == task && s.state == state)
        {
            return seen.clone();
        }
        let what = format!("{task} to reach {state}");
        self.next(&what, Duration::from_secs(30), |e| match e {
            Event::Update(u) if u.status.task_id.as_str() == task => {
                if u.status.state == state {
                    Some(u.status.clone())
                } else if u.status.state.is_terminal() {
                    panic!(
                        "{task} ended {} ({:?}) while waiting for {state}",
                        u.status.state, u.status.message
                    )
                } else {
                    None
                }
            }
            _ => None,
        })
        .await
    }
}
