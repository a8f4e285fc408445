//! `cluster`: the scalability experiment of the Mesos paper (NSDI'11, §6.5). For each
//! cluster size, a `mantle master` process and that many simulated agents inside this
//! process; `--frameworks` load frameworks keep the cluster busy with tasks of 30 s on
//! average (normally distributed with a standard deviation of 10 s, as in the paper,
//! relaunched as they end; an agent holds two); then a probe framework, again and
//! again, subscribes, waits for its first offer, launches one 10 s task and waits for
//! its TASK_FINISHED (`--concurrent-probes` such frameworks at once, each doing its
//! share of the probes). The overhead is the probe's whole time beyond the 10 s: subscription,
//! offer, launch and the status updates' way back, while the master serves the load.
//! One line per size with the overhead's p50 and p99, the master's resident memory and
//! CPU, and the CPU each launch of the load took in the master and in this process
//! while the probes ran.

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
    pub concurrent_probes: usize,
    pub agent_resources: String,
    pub task_resources: String,
    /// How long the load frameworks run before the first probe.
    pub warmup: Duration,
    /// Simulated agents per HTTP/2 connection to the master; 0: a socket of its own each.
    pub agents_per_connection: usize,
}

/// The probe's task runs this long on its simulated agent.
const PROBE_TASK: Duration = Duration::from_secs(10);
/// Calls a load framework has in flight at most.
const CALLS_IN_FLIGHT: usize = 8;

pub async fn run(mantle: &Path, options: &Options) -> anyhow::Result<()> {
    if options.sizes.is_empty()
        || options.frameworks == 0
        || options.probes == 0
        || options.concurrent_probes == 0
    {
        bail!("--agents, --frameworks, --probes and --concurrent-probes must be positive");
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
    let (bench_cpu_before, _) = cpu_seconds(std::process::id());
    let launched_before = launched.load(Ordering::Relaxed);
    let probing_since = Instant::now();
    let mut probes = tokio::task::JoinSet::new();
    for first in 0..options.concurrent_probes.min(options.probes) {
        let (master, resources) = (master.to_string(), task_resources.clone());
        let (launched, stride) = (launched.clone(), options.concurrent_probes);
        let numbers: Vec<usize> = (first..options.probes).step_by(stride).collect();
        probes.spawn(async move {
            // Spread over a probe's task: a probe waiting for an offer then seldom
            // competes with another for the next freed slot.
            tokio::time::sleep(PROBE_TASK * first as u32 / stride as u32).await;
            let mut overheads = Vec::with_capacity(numbers.len());
            for probe in numbers {
                let steps = probe_once(&master, probe, &resources).await?;
                let overhead = steps.finished.saturating_sub(PROBE_TASK).as_secs_f64() * 1e3;
                let ms = |d: Duration| d.as_millis();
                eprintln!(
                    "bench cluster: {agents} agents: probe {probe}: {overhead:.0} ms overhead (subscribed {} ms, offer {} ms, running {} ms, finished {} ms, {} offers declined); {} load tasks launched so far",
                    ms(steps.subscribed),
                    ms(steps.offered),
                    ms(steps.running),
                    ms(steps.finished),
                    steps.declined,
                    launched.load(Ordering::Relaxed)
                );
                overheads.push(overhead);
            }
            anyhow::Ok(overheads)
        });
    }
    let mut overheads = Vec::with_capacity(options.probes);
    while let Some(done) = probes.join_next().await {
        overheads.extend(done.context("probe")??);
    }
    if let Some(done) = load.try_join_next() {
        done.context("load framework")??;
        bail!("a load framework stopped early");
    }
    let master_cpu = cpu_seconds(pid).0 - cpu_before;
    let probing = probing_since.elapsed().as_secs_f64();
    let cpu_share = master_cpu / probing;
    let bench_cpu = cpu_seconds(std::process::id()).0 - bench_cpu_before;
    let bench_cpu_share = bench_cpu / probing;
    let launches = launched.load(Ordering::Relaxed) - launched_before;
    // What decides the largest size this machine runs: CPU per launch, both processes.
    let ms_per_launch = |cpu: f64| (cpu * 1e3 / launches.max(1) as f64 * 1e3).round() / 1e3;
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
            "concurrent_probes": options.concurrent_probes,
            "overhead_p50_ms": round(percentile(&overheads, 50.0)),
            "overhead_p99_ms": round(percentile(&overheads, 99.0)),
            "overhead_max_ms": round(overheads.last().copied().unwrap_or(0.0)),
            "master_rss_mb": round(rss),
            "master_cpu_share": (cpu_share * 100.0).round() / 100.0,
            // The agents and frameworks in this process, in cores.
            "bench_cpu_share": (bench_cpu_share * 100.0).round() / 100.0,
            "load_tasks_launched": counters.tasks_launched,
            "load_launches_per_s": (launches as f64 / probing).round(),
            "master_cpu_ms_per_launch": ms_per_launch(master_cpu),
            "bench_cpu_ms_per_launch": ms_per_launch(bench_cpu),
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
    /// Offers the probe declined: those that did not fit or came after its launch,
    /// before its SUPPRESS took effect.
    declined: usize,
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
                        steps.declined += 1;
                        continue;
                    }
                    launched = true;
                    steps.offered = started.elapsed();
                    let task = task_info(&task_id, &offer, resources, "sleep 10")?;
                    scheduler.launch(offer.id, vec![task], None).await?;
                    // Nothing more to launch: as a Mesos framework should, the probe
                    // asks for no more offers, instead of declining every slot freed
                    // during its 10 s (several thousand at 10,000 agents).
                    scheduler.suppress(Vec::new()).await?;
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

/// A framework that fills every offer with tasks of [`load_task_seconds`] until `stop`,
/// then tears itself down.
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
                        let command = format!("sleep {:.1}", load_task_seconds(index, next));
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

/// How long load framework `framework`'s task number `task` runs: drawn from a normal
/// distribution of mean 30 s and standard deviation 10 s (the paper's), at least 1 s;
/// the same for the same numbers in every run.
fn load_task_seconds(framework: usize, task: usize) -> f64 {
    // splitmix64 of the two numbers, then Box-Muller.
    let mut state = ((framework as u64) << 40) ^ task as u64;
    let mut uniform = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        // In (0, 1]: never 0, whose logarithm is not finite.
        ((z >> 11) + 1) as f64 / (1u64 << 53) as f64
    };
    let (u, v) = (uniform(), uniform());
    let normal = (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos();
    (30.0 + 10.0 * normal).max(1.0)
}

#[cfg(test)]
mod tests {
    use super::load_task_seconds;

    #[test]
    fn load_tasks_last_30_s_on_average_with_10_s_of_spread() {
        let samples: Vec<f64> = (0..200)
            .flat_map(|f| (0..100).map(move |t| load_task_seconds(f, t)))
            .collect();
        let n = samples.len() as f64;
        let mean = samples.iter().sum::<f64>() / n;
        let sd = (samples.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
        assert!((mean - 30.0).abs() < 0.5, "mean {mean}");
        assert!((sd - 10.0).abs() < 0.5, "standard deviation {sd}");
        assert!(samples.iter().all(|x| *x >= 1.0));
        assert_eq!(load_task_seconds(3, 7), load_task_seconds(3, 7));
    }
}
