//! A framework that launches tasks as fast as its offers allow, through the Rust SDK: it
//! packs every offer with as many tasks as fit, declines the offers it cannot use in one
//! call per OFFERS event, sends each ACCEPT and ACKNOWLEDGE without
//! waiting for the answer before reading the next event (as a high-rate framework
//! would), and records the time from the ACCEPT that carries a task to its TASK_RUNNING.
//! It checks that no task ends twice.

use anyhow::{bail, Context};
use mantle_api::scheduler::Event;
use mantle_api::*;
use mantle_sdk::scheduler::{Scheduler, SchedulerEvent, SubscribeOptions};
use std::collections::{HashMap, HashSet};
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
    let mut calls = tokio::task::JoinSet::new();
    let started = Instant::now();
    let deadline = started + timeout;
    let mut last_report = Instant::now();
    let done = |running: usize, ended: usize| match workload.until {
        Until::AllRunning => running >= workload.tasks,
        Until::AllEnded => ended >= workload.tasks,
    };
    while !done(running, ended.len()) {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = match tokio::time::timeout(left, events.next()).await {
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
                    wait_below(&mut calls, CALLS_IN_FLIGHT, &workload.name).await?;
                    let now = Instant::now();
                    for task in &batch {
                        accepted_at.insert(task.task_id.clone(), now);
                    }
                    let caller = scheduler.clone();
                    let filters = Some(Filters {
                        refuse_seconds: 0.0,
                    });
                    calls.spawn(async move { caller.launch(offer.id, batch, filters).await });
                }
                if !unused.is_empty() {
                    wait_below(&mut calls, CALLS_IN_FLIGHT, &workload.name).await?;
                    let caller = scheduler.clone();
                    let filters = Some(Filters {
                        refuse_seconds: 5.0,
                    });
                    calls.spawn(async move { caller.decline(unused, filters).await });
                }
                if workload.suppress_when_launched && launched == workload.tasks && !suppressed {
                    suppressed = true;
                    wait_below(&mut calls, CALLS_IN_FLIGHT, &workload.name).await?;
                    let caller = scheduler.clone();
                    calls.spawn(async move { caller.suppress(Vec::new()).await });
                }
            }
            Event::Update(update) => {
                let status = update.status;
                if status.uuid.is_some() {
                    wait_below(&mut calls, CALLS_IN_FLIGHT, &workload.name).await?;
                    let caller = scheduler.clone();
                    let ack = status.clone();
                    calls.spawn(async move { caller.acknowledge(&ack).await });
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
        while let Some(call) = calls.try_join_next() {
            call.context("call task")?
                .with_context(|| format!("{}: a call failed", workload.name))?;
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
    while let Some(call) = calls.join_next().await {
        call.context("call task")?
            .with_context(|| format!("{}: a call failed", workload.name))?;
    }
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

/// Waits until fewer than `limit` calls are in flight; a failed call fails the run. Each
/// call in flight holds a connection (idle in the SDK's pool for 90 s afterwards):
/// unbounded, a framework offered thousands of agents at once, or a burst of updates to
/// acknowledge, runs a process out of open files.
async fn wait_below(
    calls: &mut tokio::task::JoinSet<Result<(), mantle_sdk::ClientError>>,
    limit: usize,
    name: &str,
) -> anyhow::Result<()> {
    while calls.len() >= limit {
        if let Some(call) = calls.join_next().await {
            call.context("call task")?
                .with_context(|| format!("{name}: a call failed"))?;
        }
    }
    Ok(())
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
