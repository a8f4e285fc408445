//! `cluster`: the scalability experiment of the Mesos paper (NSDI'11, §6.5). For each
//! cluster size, a `mantle master` process and that many simulated agents inside this
//! process; `--frameworks` load frameworks keep the cluster busy with tasks of 30 s on
//! average (5 to 55 s, so that the tasks of the first wave do not all end together and
//! leave the cluster full in between; relaunched as they end); then a probe framework, again and again,
//! subscribes, waits for its first offer, launches one 10 s task and waits for its
//! TASK_FINISHED. The overhead is the probe's whole time beyond the 10 s: subscription,
//! offer, launch and the status updates' way back, while the master serves the load.
//! One line per size with the overhead's p50 and p99 and the master's resident memory
//! and CPU.

use crate::cluster::{cpu_seconds, rss_mb, TempMaster};
use crate::driver::{percentile, task_info, Calls};
use crate::failover::{agent_connections, raise_open_files};
use crate::throughput::start_fleet;
use anyhow::{bail, Context};
use mantle_api::scheduler::Event;
use mantle_api::*;
use mantle_sdk::scheduler::{Scheduler, SchedulerEvent, SubscribeOptions};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Options {
    pub sizes: Vec<usize>,
    pub frameworks: usize,
    pub probes: usize,
    pub agent_resources: String,
    pub task_resources: String,
    /// How long the load frameworks run before the first probe.
    pub warmup: Duration,
    /// Simulated agents per HTTP/2 connection to the master; 0: one HTTP/1.1 each.
    pub agents_per_connection: usize,
}

/// The probe's task runs this long on its simulated agent.
const PROBE_TASK: Duration = Duration::from_secs(10);
/// Calls a load framework has in flight at most.
const CALLS_IN_FLIGHT: usize = 8;

pub async fn run(mantle: &Path, options: &Options) -> anyhow::Result<()> {
    if options.sizes.is_empty() || options.frameworks == 0 || options.probes == 0 {
        bail!("--agents, --frameworks and --probes must be positive");
    }
    for &agents in &options.sizes {
        raise_open_files(agent_connections(agents, options.agents_per_connection) + 4096)?;
        let master = TempMaster::start(mantle)?;
        one_size(&master.address, master.pid, agents, options)
            .await
            .with_context(|| format!("with {agents} agents"))?;
    }
    Ok(())
}

async fn one_size(master: &str, pid: u32, agents: usize, options: &Options) -> anyhow::Result<()> {
    let fleet = start_fleet(
        "cluster",
        master,
        agents,
        options.agents_per_connection,
        &options.agent_resources,
        Duration::from_secs(600),
    )
    .await?;
    let task_resources =
        Resources::parse_text(&options.task_resources, "*").map_err(anyhow::Error::msg)?;
    let stop = Arc::new(AtomicBool::new(false));
    let launched = Arc::new(AtomicU64::new(0));
    let mut load = tokio::task::JoinSet::new();
    for index in 0..options.frameworks {
        let (master, stop, launched) = (master.to_string(), stop.clone(), launched.clone());
        let resources = task_resources.clone();
        load.spawn(async move { load_framework(&master, index, resources, stop, launched).await });
    }
    tokio::time::sleep(options.warmup).await;
    let (cpu_before, _) = cpu_seconds(pid);
    let probing_since = Instant::now();
    let mut overheads = Vec::with_capacity(options.probes);
    for probe in 0..options.probes {
        let steps = probe_once(master, probe, &task_resources).await?;
        overheads.push(steps.finished.saturating_sub(PROBE_TASK).as_secs_f64() * 1e3);
        let ms = |d: Duration| d.as_millis();
        eprintln!(
            "bench cluster: {agents} agents: probe {probe}: {:.0} ms overhead (subscribed {} ms, offer {} ms, running {} ms, finished {} ms); {} load tasks launched so far",
            overheads[probe],
            ms(steps.subscribed),
            ms(steps.offered),
            ms(steps.running),
            ms(steps.finished),
            launched.load(Ordering::Relaxed)
        );
        if let Some(done) = load.try_join_next() {
            done.context("load framework")??;
            bail!("a load framework stopped early");
        }
    }
    let master_cpu = cpu_seconds(pid).0 - cpu_before;
    let cpu_share = master_cpu / probing_since.elapsed().as_secs_f64();
    let rss = rss_mb(pid)?;
    stop.store(true, Ordering::Relaxed);
    while let Some(done) = load.join_next().await {
        done.context("load framework")??;
    }
    overheads.sort_by(f64::total_cmp);
    let counters = fleet.counters();
    let round = |x: f64| (x * 10.0).round() / 10.0;
    println!(
        "{}",
        serde_json::json!({
            "bench": "cluster",
            "agents": agents,
            "frameworks": options.frameworks,
            "probes": options.probes,
            "overhead_p50_ms": round(percentile(&overheads, 50.0)),
            "overhead_p99_ms": round(percentile(&overheads, 99.0)),
            "overhead_max_ms": round(overheads.last().copied().unwrap_or(0.0)),
            "master_rss_mb": round(rss),
            "master_cpu_share": (cpu_share * 100.0).round() / 100.0,
            "load_tasks_launched": counters.tasks_launched,
        })
    );
    fleet.shutdown().await;
    Ok(())
}

/// When a probe reached each step, from its start.
#[derive(Default)]
struct Steps {
    subscribed: Duration,
    offered: Duration,
    running: Duration,
    finished: Duration,
}

/// One probe: a new framework, its first offer, one 10 s task, its TASK_FINISHED.
async fn probe_once(master: &str, probe: usize, resources: &Resources) -> anyhow::Result<Steps> {
    let started = Instant::now();
    let mut steps = Steps::default();
    let info: FrameworkInfo = serde_json::from_value(serde_json::json!({
        "user": "root",
        "name": format!("probe-{probe}"),
    }))?;
    let (scheduler, mut events) = Scheduler::subscribe(master, info).await?;
    steps.subscribed = started.elapsed();
    let deadline = started + Duration::from_secs(120);
    let task_id = TaskId::new(format!("probe-{probe}"));
    let mut launched = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = match tokio::time::timeout(left, events.next()).await {
            Err(_) => bail!("probe {probe}: no TASK_FINISHED within 120 s (launched: {launched})"),
            Ok(None) => bail!("probe {probe}: the event stream ended"),
            Ok(Some(SchedulerEvent::Event(event))) => event,
            Ok(Some(_)) => continue,
        };
        match event {
            Event::Offers(offers) => {
                for offer in offers.offers {
                    let available = Resources::from_wire("offer", &offer.resources)
                        .map_err(anyhow::Error::msg)?;
                    if launched || !available.contains(resources) {
                        scheduler.decline(vec![offer.id], None).await?;
                        continue;
                    }
                    launched = true;
                    steps.offered = started.elapsed();
                    let task = task_info(&task_id, &offer, resources, "sleep 10")?;
                    scheduler.launch(offer.id, vec![task], None).await?;
                }
            }
            Event::Update(update) => {
                let status = update.status;
                if status.uuid.is_some() {
                    scheduler.acknowledge(&status).await?;
                }
                if status.task_id == task_id && status.state == TaskState::Running {
                    steps.running = started.elapsed();
                }
                if status.task_id == task_id && status.state.is_terminal() {
                    if status.state != TaskState::Finished {
                        bail!("probe {probe}: its task ended {}", status.state);
                    }
                    steps.finished = started.elapsed();
                    scheduler.teardown().await?;
                    return Ok(steps);
                }
            }
            _ => {}
        }
    }
}

/// A framework that fills every offer with tasks of 5 to 55 s until `stop`, then
/// tears itself down.
async fn load_framework(
    master: &str,
    index: usize,
    resources: Resources,
    stop: Arc<AtomicBool>,
    launched: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let info: FrameworkInfo = serde_json::from_value(serde_json::json!({
        "user": "root",
        "name": format!("load-{index}"),
    }))?;
    // Over HTTP/2, as the throughput benchmark's frameworks: the load's acknowledgements
    // are most of the master's requests.
    let options = SubscribeOptions {
        http2: true,
        ..SubscribeOptions::default()
    };
    let (scheduler, mut events) = Scheduler::subscribe_with(master, info, options).await?;
    let mut calls = Calls::new(&format!("load framework {index}"));
    let mut next = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let next_event = tokio::select! {
            next = tokio::time::timeout(Duration::from_millis(500), events.next()) => next,
            ended = calls.next_ended() => {
                ended?;
                continue;
            }
        };
        let event = match next_event {
            Err(_) => continue,
            Ok(None) => bail!("load framework {index}: the event stream ended"),
            Ok(Some(SchedulerEvent::Event(event))) => event,
            Ok(Some(_)) => continue,
        };
        match event {
            Event::Offers(offers) => {
                for offer in offers.offers {
                    let mut available = Resources::from_wire("offer", &offer.resources)
                        .map_err(anyhow::Error::msg)?;
                    let mut batch = Vec::new();
                    while available.contains(&resources) {
                        available.subtract(&resources);
                        let id = TaskId::new(format!("load-{index}-{next}"));
                        let command = format!("sleep {}", 5 + (next * 7919 + index * 31) % 51);
                        next += 1;
                        batch.push(task_info(&id, &offer, &resources, &command)?);
                    }
                    launched.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    let caller = scheduler.clone();
                    calls.push(async move {
                        if batch.is_empty() {
                            caller.decline(vec![offer.id], None).await
                        } else {
                            caller.launch(offer.id, batch, None).await
                        }
                    });
                }
            }
            Event::Update(update) if update.status.uuid.is_some() => {
                let caller = scheduler.clone();
                calls.push(async move { caller.acknowledge(&update.status).await });
            }
            _ => {}
        }
        calls.wait_below(CALLS_IN_FLIGHT).await?;
    }
    calls.wait_below(1).await?;
    scheduler.teardown().await?;
    Ok(())
}
