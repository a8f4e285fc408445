//! A framework that launches tasks as fast as its offers allow, through the Rust SDK: it
//! packs every offer with as many tasks as fit, declines the offers it cannot use in one
//! call per OFFERS event, sends each ACCEPT and ACKNOWLEDGE without
//! waiting for the answer before reading the next event (as a high-rate framework
//! would), and records the time from the ACCEPT that carries a task to its TASK_RUNNING.
//! It checks that no task ends twice.

use anyhow::{bail, Context};
use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesUnordered, StreamExt};
use mantle_api::scheduler::Event;
use mantle_api::*;
use mantle_sdk::scheduler::{Scheduler, SchedulerEvent, SubscribeOptions};
use mantle_sdk::ClientError;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::time::{Duration, Instant};

/// Calls (ACCEPT, DECLINE, ACKNOWLEDGE) a framework has in flight at most: each holds a
/// connection, which stays open idle in the SDK's pool for 90 s afterwards, and a
/// benchmark may run hundreds of frameworks beside 16,000 agents under 20,000 files.
const CALLS_IN_FLIGHT: usize = 8;

/// What one framework launches.
#[derive(Clone)]
pub struct Workload {
    pub name: String,
    pub tasks: usize,
    pub task_resources: Resources,
    /// The tasks' shell command (`sleep 30` runs 30 s on a simulated agent).
    pub command: String,
    /// Done once every task runs (long tasks), or once every task ended.
    pub until: Until,
    /// A task that ends in another state than TASK_FINISHED fails the run.
    pub must_finish: bool,
    /// SUPPRESS once every task is launched, as a framework with nothing left to run
    /// does; otherwise it declines each offer for 5 s, and at 100 frameworks and 10,000
    /// agents that churn is most of the master's work.
    pub suppress_when_launched: bool,
    /// TEARDOWN once done, while still subscribed, as a finished batch job ends its
    /// framework. Otherwise the event stream closes when `run` returns and the master
    /// keeps the framework, disconnected, with its tasks for its failover timeout.
    pub teardown_when_done: bool,
    /// The event stream and the calls share one HTTP/2 connection
    /// ([`SubscribeOptions::http2`]) instead of HTTP/1.1 with a connection per call in
    /// flight.
    pub http2: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Until {
    AllRunning,
    AllEnded,
}

pub struct Outcome {
    pub launched: usize,
    /// From the subscription to the last task reaching what the workload waits for.
    pub seconds: f64,
    pub running_latencies_ms: Vec<f64>,
    pub finished: usize,
    /// Ended in another state than TASK_FINISHED.
    pub failed: usize,
    /// A second terminal update for a task that had already ended (never expected).
    pub ended_twice: usize,
}

/// Subscribes a framework to `master` and runs `workload` within `timeout`; progress
/// lines go to stderr every few seconds when `progress` is set.
pub async fn run(
    master: &str,
    workload: &Workload,
    timeout: Duration,
    progress: bool,
) -> anyhow::Result<Outcome> {
    let info: FrameworkInfo = serde_json::from_value(serde_json::json!({
        "user": "root",
        "name": workload.name,
        "failover_timeout": 3600.0,
    }))?;
    let options = SubscribeOptions {
        request_timeout: Duration::from_secs(60),
        http2: workload.http2,
        ..SubscribeOptions::default()
    };
    let (scheduler, mut events) = Scheduler::subscribe_with(master, info, options).await?;
    let mut accepted_at: HashMap<TaskId, Instant> = HashMap::new();
    let mut latencies = Vec::with_capacity(workload.tasks);
    let mut ended: HashSet<TaskId> = HashSet::new();
    let (mut launched, mut running, mut finished, mut failed, mut ended_twice) = (0, 0, 0, 0, 0);
    let mut suppressed = false;
    let mut calls = Calls::new(&workload.name);
    let started = Instant::now();
    let deadline = started + timeout;
    let mut last_report = Instant::now();
    let done = |running: usize, ended: usize| match workload.until {
        Until::AllRunning => running >= workload.tasks,
        Until::AllEnded => ended >= workload.tasks,
    };
    while !done(running, ended.len()) {
        let left = deadline.saturating_duration_since(Instant::now());
        // The calls in flight make progress while the framework waits for events.
        let next = tokio::select! {
            next = tokio::time::timeout(left, events.next()) => next,
            ended = calls.next_ended() => {
                ended?;
                continue;
            }
        };
        let event = match next {
            Err(_) => bail!(
                "{}: timed out after {timeout:?}: {launched} launched, {running} running, {} ended",
                workload.name,
                ended.len()
            ),
            Ok(None) => bail!("{}: the event stream ended", workload.name),
            Ok(Some(SchedulerEvent::Event(event))) => event,
            Ok(Some(_)) => continue,
        };
        match event {
            Event::Offers(offers) => {
                // Offers with nothing to launch are declined together in one call.
                let mut unused = Vec::new();
                for offer in offers.offers {
                    let batch = pack(workload, &offer, &mut launched)?;
                    if batch.is_empty() {
                        unused.push(offer.id);
                        continue;
                    }
                    // One event can carry an offer of every agent: thousands of calls,
                    // a connection each, if they all left at once.
                    calls.wait_below(CALLS_IN_FLIGHT).await?;
                    let now = Instant::now();
                    for task in &batch {
                        accepted_at.insert(task.task_id.clone(), now);
                    }
                    let caller = scheduler.clone();
                    let filters = Some(Filters {
                        refuse_seconds: 0.0,
                    });
                    calls.push(async move { caller.launch(offer.id, batch, filters).await });
                }
                if !unused.is_empty() {
                    calls.wait_below(CALLS_IN_FLIGHT).await?;
                    let caller = scheduler.clone();
                    let filters = Some(Filters {
                        refuse_seconds: 5.0,
                    });
                    calls.push(async move { caller.decline(unused, filters).await });
                }
                if workload.suppress_when_launched && launched == workload.tasks && !suppressed {
                    suppressed = true;
                    calls.wait_below(CALLS_IN_FLIGHT).await?;
                    let caller = scheduler.clone();
                    calls.push(async move { caller.suppress(Vec::new()).await });
                }
            }
            Event::Update(update) => {
                let status = update.status;
                if status.uuid.is_some() {
                    calls.wait_below(CALLS_IN_FLIGHT).await?;
                    let caller = scheduler.clone();
                    let ack = status.clone();
                    calls.push(async move { caller.acknowledge(&ack).await });
                }
                match status.state {
                    TaskState::Running => {
                        if let Some(at) = accepted_at.remove(&status.task_id) {
                            latencies.push(at.elapsed().as_secs_f64() * 1e3);
                            running += 1;
                        }
                    }
                    state if state.is_terminal() => {
                        if !ended.insert(status.task_id.clone()) {
                            ended_twice += 1;
                            continue;
                        }
                        if state == TaskState::Finished {
                            finished += 1;
                        } else if workload.must_finish {
                            bail!(
                                "{}: task {} ended {state}: {:?}",
                                workload.name,
                                status.task_id,
                                status.message
                            );
                        } else {
                            failed += 1;
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
        if progress && last_report.elapsed() > Duration::from_secs(2) {
            last_report = Instant::now();
            eprintln!(
                "bench: {}: {launched} launched, {running} running, {} ended",
                workload.name,
                ended.len()
            );
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    calls.wait_below(1).await?;
    if workload.teardown_when_done {
        scheduler
            .teardown()
            .await
            .with_context(|| format!("{}: teardown", workload.name))?;
    }
    latencies.sort_by(f64::total_cmp);
    Ok(Outcome {
        launched,
        seconds,
        running_latencies_ms: latencies,
        finished,
        failed,
        ended_twice,
    })
}

/// A framework's calls in flight, driven by its own task (a task spawned per call cost
/// the benchmark process more than the calls' own work).
pub struct Calls {
    name: String,
    running: FuturesUnordered<BoxFuture<'static, Result<(), ClientError>>>,
}

impl Calls {
    pub fn new(name: &str) -> Calls {
        Calls {
            name: name.to_string(),
            running: FuturesUnordered::new(),
        }
    }

    pub fn push(&mut self, call: impl Future<Output = Result<(), ClientError>> + Send + 'static) {
        self.running.push(Box::pin(call));
    }

    /// Waits for the next call to end; a failed call fails the run. Never ends while none
    /// is in flight.
    pub async fn next_ended(&mut self) -> anyhow::Result<()> {
        match self.running.next().await {
            Some(ended) => ended.with_context(|| format!("{}: a call failed", self.name)),
            None => std::future::pending().await,
        }
    }

    /// Waits until fewer than `limit` calls are in flight. Each call in flight holds a
    /// connection over HTTP/1.1 (idle in the SDK's pool for 90 s afterwards):
    /// unbounded, a framework offered thousands of agents at once, or a burst of updates
    /// to acknowledge, runs a process out of open files.
    pub async fn wait_below(&mut self, limit: usize) -> anyhow::Result<()> {
        while self.running.len() >= limit {
            self.next_ended().await?;
        }
        Ok(())
    }
}

/// As many of the workload's next tasks as fit in `offer`.
fn pack(workload: &Workload, offer: &Offer, launched: &mut usize) -> anyhow::Result<Vec<TaskInfo>> {
    let mut available =
        Resources::from_wire("offer", &offer.resources).map_err(anyhow::Error::msg)?;
    let mut batch = Vec::new();
    while *launched < workload.tasks && available.contains(&workload.task_resources) {
        available.subtract(&workload.task_resources);
        let id = TaskId::new(format!("t{launched}"));
        *launched += 1;
        batch.push(task_info(
            &id,
            offer,
            &workload.task_resources,
            &workload.command,
        )?);
    }
    Ok(batch)
}

/// A command task with `id` on the offer's agent.
pub fn task_info(
    id: &TaskId,
    offer: &Offer,
    resources: &Resources,
    command: &str,
) -> anyhow::Result<TaskInfo> {
    Ok(serde_json::from_value(serde_json::json!({
        "name": id.value, "task_id": id, "agent_id": offer.agent_id,
        "resources": resources.to_wire(),
        "command": {"value": command},
    }))?)
}

/// `total` tasks shared between `frameworks` frameworks as evenly as whole shares allow:
/// each framework's index and share, the frameworks left without tasks omitted.
pub fn shares(total: usize, frameworks: usize) -> impl Iterator<Item = (usize, usize)> {
    let each = total.div_ceil(frameworks.max(1));
    (0..frameworks)
        .map(move |index| (index, each.min(total.saturating_sub(each * index))))
        .take_while(|&(_, share)| share > 0)
}

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

#[cfg(test)]
mod tests {
    use super::shares;

    #[test]
    fn shares_cover_the_total_and_skip_empty_frameworks() {
        let all = |total, frameworks| shares(total, frameworks).collect::<Vec<_>>();
        assert_eq!(all(10, 3), [(0, 4), (1, 4), (2, 2)]);
        assert_eq!(all(2, 5), [(0, 1), (1, 1)]);
        assert_eq!(all(9, 3), [(0, 3), (1, 3), (2, 3)]);
        assert!(all(0, 3).is_empty());
        assert!(all(5, 0).is_empty());
    }
}
