//! `memory`: the master's memory per registered agent and per running task (issue 8).
//! For each cluster size, a fresh `mantle master` process is read idle, again once N
//! simulated agents (inside this process, over HTTP/2) are registered and its memory has
//! settled, and again once `--tasks-per-agent` x N long-running tasks launched by a few
//! frameworks all run. The costs are the differences of the master's anonymous memory
//! (its heap: `Anonymous` in /proc/PID/smaps_rollup), which unlike the resident set
//! leaves out the binary's file-backed pages. Meanwhile `/metrics/snapshot` is polled to
//! check that no agent is marked unreachable, deactivated or disconnected.

use crate::cluster::{open_files, TempMaster};
use crate::driver::{self, Until, Workload};
use crate::failover::{agent_connections, raise_open_files};
use crate::throughput::start_fleet_with;
use anyhow::{bail, Context};
use mantle_agent::simulated::FleetConfig;
use mantle_api::Resources;
use mantle_sdk::http::HttpClient;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct Options {
    /// The cluster sizes to measure, each with a fresh master.
    #[arg(long = "agents", value_delimiter = ',', default_value = "10000,100000")]
    pub sizes: Vec<usize>,
    /// Long-running (`sleep infinity`) tasks per agent; 0 measures agents alone.
    #[arg(long, default_value_t = 10)]
    pub tasks_per_agent: usize,
    /// Frameworks sharing the tasks.
    #[arg(long, default_value_t = 10)]
    pub frameworks: usize,
    /// [default: exactly --tasks-per-agent tasks of one cpu, and a port range]
    #[arg(long)]
    pub agent_resources: Option<String>,
    #[arg(long, default_value = "cpus:1;mem:64;disk:16")]
    pub task_resources: String,
    /// Simulated agents per HTTP/2 connection; 0: a socket of its own each.
    #[arg(long, default_value_t = 500)]
    pub agents_per_connection: usize,
    /// Calls (PONGs, status updates) the simulated agents have in flight at once.
    #[arg(long, default_value_t = 256)]
    pub calls_in_flight: usize,
    /// Give up on a phase after this many seconds.
    #[arg(long = "timeout", default_value_t = 1800)]
    pub timeout_seconds: u64,
}

impl Options {
    fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_seconds)
    }
}

/// A process's memory at one moment, in KiB.
#[derive(Clone, Copy, Debug)]
struct Memory {
    rss_kb: f64,
    anon_kb: f64,
}

impl Memory {
    fn of(pid: u32) -> anyhow::Result<Memory> {
        let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
            .with_context(|| format!("cannot read /proc/{pid}/smaps_rollup"))?;
        let field = |name: &str| -> anyhow::Result<f64> {
            rollup
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .with_context(|| format!("no {name} in /proc/{pid}/smaps_rollup"))
        };
        Ok(Memory {
            rss_kb: field("Rss:")?,
            anon_kb: field("Anonymous:")?,
        })
    }

    fn mb(kb: f64) -> f64 {
        (kb / 1024.0 * 10.0).round() / 10.0
    }
}

/// What the metrics polls saw of the agents while the watch was armed.
#[derive(Clone, Debug, Default)]
struct Watch {
    polls: u64,
    failed_polls: u64,
    /// Highest `master/slaves_unreachable` and `master/slave_unreachable_scheduled`.
    unreachable: f64,
    unreachable_scheduled: f64,
    /// Lowest `master/slaves_active` and highest `master/slaves_disconnected`.
    min_active: Option<f64>,
    disconnected: f64,
}

impl Watch {
    fn record(&mut self, metrics: &serde_json::Value) {
        let read = |name: &str| metrics[name].as_f64().unwrap_or(0.0);
        self.polls += 1;
        self.unreachable = self.unreachable.max(read("master/slaves_unreachable"));
        self.unreachable_scheduled = self
            .unreachable_scheduled
            .max(read("master/slave_unreachable_scheduled"));
        self.disconnected = self.disconnected.max(read("master/slaves_disconnected"));
        let active = read("master/slaves_active");
        self.min_active = Some(self.min_active.map_or(active, |m: f64| m.min(active)));
    }
}

async fn metrics(client: &HttpClient, master: &str) -> anyhow::Result<serde_json::Value> {
    let answer = client
        .get(&format!("http://{master}/metrics/snapshot"))
        .await?;
    Ok(serde_json::from_slice(&answer.body)?)
}

/// Polls the master's metrics every 2 s into `watch` until aborted.
async fn poll_metrics(master: String, watch: Arc<Mutex<Watch>>) {
    let client = HttpClient::new(Duration::from_secs(30));
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let answer = metrics(&client, &master).await;
        let Ok(mut watch) = watch.lock() else { return };
        match answer {
            Ok(metrics) => watch.record(&metrics),
            Err(_) => watch.failed_polls += 1,
        }
    }
}

/// How far apart two reads of a settled master are: more than the memory allocator's
/// delay before it gives freed pages back to the system (mimalloc: 1 s for pages, 10 s
/// for whole arenas), so that pages kept from the registrations' and launches'
/// transient messages are not counted as the agents' or tasks' own.
const SETTLE_SPAN: Duration = Duration::from_secs(12);

/// Reads the master's memory every 2 s until two reads [`SETTLE_SPAN`] apart differ by
/// less than 0.5% (or two minutes passed): registrations and launches leave buffers and
/// queues that drain for a while after the last answer.
async fn settled(pid: u32) -> anyhow::Result<Memory> {
    let started = Instant::now();
    let mut reads = std::collections::VecDeque::from([(started, Memory::of(pid)?)]);
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = Memory::of(pid)?;
        while reads.len() > 1 && reads[1].0.elapsed() >= SETTLE_SPAN {
            reads.pop_front();
        }
        let (at, earlier) = reads[0];
        let spanned = at.elapsed() >= SETTLE_SPAN;
        if (spanned && (now.anon_kb - earlier.anon_kb).abs() < earlier.anon_kb * 0.005)
            || started.elapsed() > Duration::from_secs(120)
        {
            return Ok(now);
        }
        reads.push_back((Instant::now(), now));
    }
}

pub async fn run(mantle: &Path, options: &Options) -> anyhow::Result<()> {
    if options.sizes.is_empty() || options.sizes.contains(&0) || options.frameworks == 0 {
        bail!("--agents and --frameworks must be positive");
    }
    for &agents in &options.sizes {
        raise_open_files(agent_connections(agents, options.agents_per_connection) + 4096)?;
        let master = TempMaster::start(mantle)?;
        one_size(&master, agents, options)
            .await
            .with_context(|| format!("with {agents} agents"))?;
    }
    Ok(())
}

async fn one_size(master: &TempMaster, agents: usize, options: &Options) -> anyhow::Result<()> {
    let pid = master.pid;
    let tpa = options.tasks_per_agent;
    let agent_resources = options.agent_resources.clone().unwrap_or_else(|| {
        // Each task holds one cpu: an agent is full with exactly its share, so every
        // agent runs the same number of tasks and nothing is left to offer afterwards.
        format!(
            "cpus:{};mem:{};disk:{};ports:[31000-32000]",
            tpa.max(1),
            64 * tpa.max(1),
            16 * tpa.max(1)
        )
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = Memory::of(pid)?;
    eprintln!(
        "bench memory: master idle: rss {} MB, anonymous {} MB",
        Memory::mb(idle.rss_kb),
        Memory::mb(idle.anon_kb)
    );
    let watch = Arc::new(Mutex::new(Watch::default()));
    let config = FleetConfig {
        agents_per_connection: options.agents_per_connection,
        calls_in_flight: options.calls_in_flight,
        ..FleetConfig::new(&master.address)
    };
    let timeout = options.timeout();
    let fleet = match start_fleet_with("memory", config, agents, &agent_resources, timeout).await {
        Ok(fleet) => fleet,
        Err(err) => {
            // What the master saw is the finding then: how many agents it took in, and
            // how many it marked unreachable while the others were still registering.
            let client = HttpClient::new(Duration::from_secs(30));
            if let Ok(m) = metrics(&client, &master.address).await {
                eprintln!(
                    "bench memory: the master counts {} agents active, {} marked unreachable; master rss {} MB",
                    m["master/slaves_active"],
                    m["master/slave_unreachable_scheduled"],
                    Memory::of(pid).map_or(0.0, |m| Memory::mb(m.rss_kb)),
                );
            }
            return Err(err);
        }
    };
    // Registered at the agents is not yet counted by the master's published metrics.
    let client = HttpClient::new(Duration::from_secs(30));
    let deadline = Instant::now() + options.timeout();
    loop {
        let m = metrics(&client, &master.address).await?;
        if m["master/slaves_active"].as_f64() == Some(agents as f64) {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "the master counts {} active agents of {agents}",
                m["master/slaves_active"]
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let poller = tokio::spawn(poll_metrics(master.address.clone(), watch.clone()));
    let with_agents = settled(pid).await?;
    let bench_kb = Memory::of(std::process::id())?.rss_kb;
    eprintln!(
        "bench memory: {agents} agents: master rss {} MB, anonymous {} MB; this process {} MB",
        Memory::mb(with_agents.rss_kb),
        Memory::mb(with_agents.anon_kb),
        Memory::mb(bench_kb)
    );

    let tasks = launch(&master.address, agents * tpa, options).await?;
    let with_tasks = if tasks > 0 {
        settled(pid).await?
    } else {
        with_agents
    };
    let bench_kb = Memory::of(std::process::id())?.rss_kb;
    // One more poll after the tasks settled, so the watch covers the whole run.
    tokio::time::sleep(Duration::from_secs(3)).await;
    poller.abort();
    let seen = watch.lock().map(|w| w.clone()).unwrap_or_default();
    let counters = fleet.counters();
    let reregistrations = counters.registrations.saturating_sub(agents as u64);
    let no_false_unreachable = seen.polls > 0
        && seen.unreachable == 0.0
        && seen.unreachable_scheduled == 0.0
        && seen.min_active == Some(agents as f64)
        && seen.disconnected == 0.0
        && reregistrations == 0;
    eprintln!(
        "bench memory: {tasks} tasks: master rss {} MB, anonymous {} MB; this process {} MB; {} metrics polls ({} failed), at least {:?} agents active",
        Memory::mb(with_tasks.rss_kb),
        Memory::mb(with_tasks.anon_kb),
        Memory::mb(bench_kb),
        seen.polls,
        seen.failed_polls,
        seen.min_active,
    );
    let per = |kb: f64, count: usize| ((kb * 1024.0) / count.max(1) as f64).round();
    println!(
        "{}",
        serde_json::json!({
            "bench": "memory",
            "agents": agents,
            "tasks": tasks,
            "master_rss_mb": Memory::mb(with_tasks.rss_kb),
            "master_anon_mb": Memory::mb(with_tasks.anon_kb),
            "idle_anon_mb": Memory::mb(idle.anon_kb),
            "agents_anon_mb": Memory::mb(with_agents.anon_kb),
            "bytes_per_agent": per(with_agents.anon_kb - idle.anon_kb, agents),
            "bytes_per_task": per(with_tasks.anon_kb - with_agents.anon_kb, tasks),
            "rss_bytes_per_agent": per(with_agents.rss_kb - idle.rss_kb, agents),
            "rss_bytes_per_task": per(with_tasks.rss_kb - with_agents.rss_kb, tasks),
            "bench_rss_mb": Memory::mb(bench_kb),
            "master_fds": open_files(pid),
            "bench_fds": open_files(std::process::id()),
            "no_false_unreachable": no_false_unreachable,
            "max_slaves_unreachable": seen.unreachable,
            "max_slave_unreachable_scheduled": seen.unreachable_scheduled,
            "min_slaves_active": seen.min_active,
            "max_slaves_disconnected": seen.disconnected,
            "agent_reregistrations": reregistrations,
            "metrics_polls": seen.polls,
        })
    );
    fleet.shutdown().await;
    Ok(())
}

/// Launches `total` `sleep infinity` tasks through `--frameworks` frameworks and waits
/// until every one runs; returns how many run.
async fn launch(master: &str, total: usize, options: &Options) -> anyhow::Result<usize> {
    if total == 0 {
        return Ok(0);
    }
    let task_resources =
        Resources::parse_text(&options.task_resources, "*").map_err(anyhow::Error::msg)?;
    let started = Instant::now();
    let mut runs = tokio::task::JoinSet::new();
    for (index, share) in driver::shares(total, options.frameworks) {
        let workload = Workload {
            name: format!("memory-{index}"),
            tasks: share,
            task_resources: task_resources.clone(),
            command: "sleep infinity".into(),
            until: Until::AllRunning,
            must_finish: true,
            suppress_when_launched: true,
            teardown_when_done: false,
            http2: false,
        };
        let (master, timeout) = (master.to_string(), options.timeout());
        runs.spawn(async move { driver::run(&master, &workload, timeout, index == 0).await });
    }
    let mut running = 0;
    while let Some(run) = runs.join_next().await {
        let outcome = run.context("framework task")??;
        let ended = outcome.finished + outcome.failed + outcome.ended_twice;
        if ended > 0 {
            bail!("{ended} tasks ended although they sleep for ever");
        }
        // The driver has closed its event stream: the framework is disconnected, and
        // its tasks stay for its failover timeout of an hour.
        running += outcome.running_latencies_ms.len();
    }
    eprintln!(
        "bench memory: {running} tasks running after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(running)
}
