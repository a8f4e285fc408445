//! `throughput`: the sustained end-to-end launch rate of one master. A `mantle master`
//! process; N simulated agents inside this process (the real agent core over the real
//! protocol, tasks run as timers); F frameworks through the Rust SDK, each launching its
//! share of the tasks as fast as its offers allow. A task counts from the ACCEPT that
//! carries it to its TASK_RUNNING at the scheduler; the rate is all tasks over the time
//! until the last one runs. The master's resident memory is read idle, with the agents
//! registered and with the tasks running, for its cost per agent and per task.

use crate::cluster::{cpu_seconds, open_files, rss_mb, TempMaster};
use crate::driver::{self, percentile, Until, Workload};
use crate::failover::{agent_connections, raise_open_files};
use anyhow::{bail, Context};
use mantle_agent::simulated::{start_many, AgentSpec, Fleet, FleetConfig};
use mantle_api::Resources;
use std::path::Path;
use std::time::{Duration, Instant};

pub struct Options {
    pub agents: usize,
    pub frameworks: usize,
    pub tasks: usize,
    pub agent_resources: String,
    pub task_resources: String,
    /// Simulated agents sharing one HTTP/2 connection; 0 for HTTP/1.1.
    pub agents_per_connection: usize,
    /// The frameworks speak HTTP/1.1, as pymesos does, rather than HTTP/2.
    pub frameworks_http1: bool,
    pub timeout: Duration,
}

pub async fn run(mantle: &Path, options: &Options) -> anyhow::Result<()> {
    if options.agents == 0 || options.frameworks == 0 || options.tasks == 0 {
        bail!("--agents, --frameworks and --tasks must be positive");
    }
    raise_open_files(agent_connections(options.agents, options.agents_per_connection) + 4096)?;
    let master = TempMaster::start(mantle)?;
    measure(&master.address, master.pid, options).await
}

/// Starts `agents` simulated agents alike inside this process, `per_connection` to an
/// HTTP/2 connection (0: HTTP/1.1), and waits until all are registered with `master`.
pub async fn start_fleet(
    bench: &str,
    master: &str,
    agents: usize,
    per_connection: usize,
    resources: &str,
    timeout: Duration,
) -> anyhow::Result<Fleet> {
    let config = FleetConfig {
        agents_per_connection: per_connection,
        ..FleetConfig::new(master)
    };
    start_fleet_with(bench, config, agents, resources, timeout).await
}

/// [`start_fleet`] with the fleet configured by the caller.
pub async fn start_fleet_with(
    bench: &str,
    config: FleetConfig,
    agents: usize,
    resources: &str,
    timeout: Duration,
) -> anyhow::Result<Fleet> {
    let specs = AgentSpec::uniform(agents, resources, "")?;
    let started = Instant::now();
    let fleet = start_many(config, specs);
    fleet
        .wait_registered(agents, timeout)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    eprintln!(
        "bench {bench}: {agents} simulated agents registered in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(fleet)
}

async fn measure(master: &str, pid: u32, options: &Options) -> anyhow::Result<()> {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_rss = rss_mb(pid)?;
    let fleet = start_fleet(
        "throughput",
        master,
        options.agents,
        options.agents_per_connection,
        &options.agent_resources,
        options.timeout,
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let agents_rss = rss_mb(pid)?;

    let task_resources =
        Resources::parse_text(&options.task_resources, "*").map_err(anyhow::Error::msg)?;
    let (cpu_before, _) = cpu_seconds(pid);
    let launched_at = Instant::now();
    let mut runs = tokio::task::JoinSet::new();
    for (index, share) in driver::shares(options.tasks, options.frameworks) {
        let workload = Workload {
            name: format!("throughput-{index}"),
            tasks: share,
            task_resources: task_resources.clone(),
            // Runs until the benchmark ends: every task holds its resources.
            command: "sleep 3600".into(),
            until: Until::AllRunning,
            must_finish: true,
            suppress_when_launched: true,
            teardown_when_done: false,
            http2: !options.frameworks_http1,
        };
        let master = master.to_string();
        let timeout = options.timeout;
        runs.spawn(async move { driver::run(&master, &workload, timeout, index == 0).await });
    }
    let mut latencies = Vec::with_capacity(options.tasks);
    let mut tasks = 0;
    while let Some(run) = runs.join_next().await {
        let outcome = run.context("framework task")??;
        let ended = outcome.finished + outcome.failed + outcome.ended_twice;
        if ended > 0 || outcome.launched != outcome.running_latencies_ms.len() {
            bail!(
                "a framework launched {} tasks, {} ran and {ended} ended although they sleep for an hour",
                outcome.launched,
                outcome.running_latencies_ms.len()
            );
        }
        tasks += outcome.running_latencies_ms.len();
        latencies.extend_from_slice(&outcome.running_latencies_ms);
    }
    let seconds = launched_at.elapsed().as_secs_f64();
    let master_cpu = cpu_seconds(pid).0 - cpu_before;
    let (master_fds, bench_fds) = (open_files(pid), open_files(std::process::id()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let tasks_rss = rss_mb(pid)?;
    latencies.sort_by(f64::total_cmp);
    let counters = fleet.counters();
    eprintln!(
        "bench throughput: {tasks} tasks running after {seconds:.2} s; master cpu {master_cpu:.1} s; rss idle {idle_rss:.0} MB, with agents {agents_rss:.0} MB, with tasks {tasks_rss:.0} MB; agents launched {}",
        counters.tasks_launched
    );
    let round = |x: f64| (x * 10.0).round() / 10.0;
    println!(
        "{}",
        serde_json::json!({
            "bench": "throughput",
            "agents": options.agents,
            "frameworks": options.frameworks,
            "tasks": tasks,
            "tasks_per_s": round(tasks as f64 / seconds),
            "p50_ms": round(percentile(&latencies, 50.0)),
            "p99_ms": round(percentile(&latencies, 99.0)),
            "master_cpu_s": round(master_cpu),
            "agents_per_connection": options.agents_per_connection,
            "frameworks_http": if options.frameworks_http1 { "1.1" } else { "2" },
            "master_fds": master_fds,
            "bench_fds": bench_fds,
        })
    );
    println!(
        "{}",
        serde_json::json!({
            "bench": "master_memory",
            "agents": options.agents,
            "running_tasks": tasks,
            "kb_per_agent": round((agents_rss - idle_rss) * 1024.0 / options.agents as f64),
            "kb_per_task": round((tasks_rss - agents_rss) * 1024.0 / tasks.max(1) as f64),
            "master_rss_mb": round(tasks_rss),
        })
    );
    fleet.shutdown().await;
    Ok(())
}
