//! `state`: how long `/master/state` takes on a large cluster, in the shape of Apache
//! Mesos's `MasterStateQuery_BENCHMARK_Test` (20,000 agents, 200,000 running and 200,000
//! completed tasks). A `mantle master` process; N simulated agents inside this process;
//! frameworks through the Rust SDK, half of them launching `sleep infinity` tasks that
//! keep running and half launching `true` tasks that finish at once (the master keeps
//! 1,000 completed tasks per framework, Mesos's default, so the completed tasks need one
//! framework per thousand). Then it times whole `/master/state` reads, client end to
//! end, each from a fresh snapshot, and compares the master's allocation cycle time
//! (`allocator/mesos/allocation_run_ms`) without and with concurrent pollers.

use crate::cluster::{cpu_seconds, open_files, rss_mb, TempMaster};
use crate::driver::{self, percentile, Until, Workload};
use crate::failover::{agent_connections, raise_open_files};
use anyhow::{bail, Context};

use mantle_api::Resources;
use mantle_sdk::http::HttpClient;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Completed tasks the master keeps per framework (`--max_completed_tasks_per_framework`).
const COMPLETED_PER_FRAMEWORK: usize = 1000;

/// Frameworks launching their tasks at once.
const LOADING_FRAMEWORKS: usize = 16;

pub struct Options {
    pub agents: usize,
    pub running: usize,
    pub completed: usize,
    /// Frameworks that launch the running tasks.
    pub running_frameworks: usize,
    pub agent_resources: String,
    pub task_resources: String,
    /// Timed `/master/state` reads.
    pub queries: usize,
    /// Concurrent `/master/state` pollers while the allocation cycles are timed.
    pub pollers: usize,
    /// How long each allocation phase (without, then with pollers) lasts.
    pub phase: Duration,
    /// Simulated agents sharing one HTTP/2 connection; 0: a socket of its own each.
    pub agents_per_connection: usize,
    pub timeout: Duration,
}

pub async fn run(mantle: &Path, options: &Options) -> anyhow::Result<()> {
    if options.agents == 0 || options.running_frameworks == 0 || options.queries == 0 {
        bail!("--agents, --running-frameworks and --queries must be positive");
    }
    let completed_frameworks = options.completed.div_ceil(COMPLETED_PER_FRAMEWORK);
    // Each agent's connection (or each HTTP/2 connection of agents) is a descriptor at
    // both ends, and each framework a subscription and the connections of its calls in
    // flight: as many descriptors as the hard limit allows, for the master (which
    // inherits them) and for this process.
    let frameworks = options.running_frameworks + completed_frameworks;
    let connections = agent_connections(options.agents, options.agents_per_connection);
    raise_open_files(open_files_hard_limit()?)?;
    if connections + 10 * frameworks as u64 > open_files_hard_limit()? {
        bail!(
            "--agents {} ({connections} connections) and {frameworks} frameworks need more than the open-file hard limit of {}: each framework holds up to 10",
            options.agents,
            open_files_hard_limit()?
        );
    }
    check_room(options)?;
    let master = TempMaster::start(mantle)?;
    measure(&master.address, master.pid, options, completed_frameworks).await
}

async fn measure(
    master: &str,
    pid: u32,
    options: &Options,
    completed_frameworks: usize,
) -> anyhow::Result<()> {
    let fleet = crate::throughput::start_fleet(
        "state",
        master,
        options.agents,
        options.agents_per_connection,
        &options.agent_resources,
        options.timeout,
    )
    .await?;

    let task_resources =
        Resources::parse_text(&options.task_resources, "*").map_err(anyhow::Error::msg)?;
    let mut workloads = Vec::new();
    for (index, share) in driver::shares(options.running, options.running_frameworks) {
        workloads.push(Workload {
            name: format!("state-running-{index}"),
            tasks: share,
            task_resources: task_resources.clone(),
            command: "sleep infinity".into(),
            until: Until::AllRunning,
            must_finish: true,
            // Declining keeps the allocation runs of the timed phases offering.
            suppress_when_launched: false,
            teardown_when_done: false,
            http2: false,
        });
    }
    for index in 0..completed_frameworks {
        let share = COMPLETED_PER_FRAMEWORK.min(
            options
                .completed
                .saturating_sub(COMPLETED_PER_FRAMEWORK * index),
        );
        workloads.push(Workload {
            name: format!("state-completed-{index}"),
            tasks: share,
            task_resources: task_resources.clone(),
            command: "true".into(),
            until: Until::AllEnded,
            must_finish: true,
            // Declining keeps the allocation runs of the timed phases offering.
            suppress_when_launched: false,
            teardown_when_done: false,
            http2: false,
        });
    }
    workloads.retain(|w| w.tasks > 0);

    let loaded_at = Instant::now();
    let mut runs = tokio::task::JoinSet::new();
    // A framework sends its calls without waiting, a connection each: a few frameworks
    // loading at once keep this process under its open-file limit beside the agents.
    let loading = Arc::new(tokio::sync::Semaphore::new(LOADING_FRAMEWORKS));
    for workload in workloads {
        let master = master.to_string();
        let timeout = options.timeout;
        let loading = loading.clone();
        runs.spawn(async move {
            let _turn = loading.acquire_owned().await?;
            let outcome = driver::run(&master, &workload, timeout, false).await;
            outcome.map(|o| (workload, o))
        });
    }
    let (mut running, mut finished) = (0, 0);
    let total = runs.len();
    loop {
        // Progress every few seconds: loading 400,000 tasks takes minutes.
        let run = match tokio::time::timeout(Duration::from_secs(5), runs.join_next()).await {
            Ok(Some(run)) => run,
            Ok(None) => break,
            Err(_) => {
                eprintln!(
                    "bench state: {:.0} s: {} tasks launched on the agents, {}/{total} frameworks done",
                    loaded_at.elapsed().as_secs_f64(),
                    fleet.counters().tasks_launched,
                    total - runs.len()
                );
                continue;
            }
        };
        let (workload, outcome) = run.context("framework task")??;
        let ended = outcome.finished + outcome.failed + outcome.ended_twice;
        match workload.until {
            Until::AllRunning if ended > 0 => bail!(
                "{}: {ended} tasks ended although they sleep for ever",
                workload.name
            ),
            Until::AllRunning => running += outcome.running_latencies_ms.len(),
            Until::AllEnded => finished += outcome.finished,
        }
    }
    let (master_fds, bench_fds) = (open_files(pid), open_files(std::process::id()));
    eprintln!(
        "bench state: {running} tasks running and {finished} finished after {:.0} s; master rss {:.0} MB; open files: master {master_fds}, bench {bench_fds}",
        loaded_at.elapsed().as_secs_f64(),
        rss_mb(pid)?
    );
    tokio::time::sleep(Duration::from_secs(3)).await;

    let client = HttpClient::new(Duration::from_secs(300));
    let url = format!("http://{master}/master/state");
    let bytes = check_state(&client, &url, options, running, finished).await?;

    // Each read gets a fresh snapshot: the master renders a snapshot once for the
    // readers that arrive together and publishes a new one at least every second when
    // read, so reads more than a second apart each pay for a whole render. A read
    // lasts until the answer's last byte arrived at a client that drops it as it comes
    // (the first read above kept and checked the whole document).
    let mut latencies = Vec::with_capacity(options.queries);
    for query in 0..options.queries {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let cpu_before = (cpu_seconds(pid).0, cpu_seconds(std::process::id()).0);
        let started = Instant::now();
        let size = read_and_drop(master, "/master/state").await?;
        let ms = started.elapsed().as_secs_f64() * 1e3;
        // Who had the two cores meanwhile: a slow read with a busy benchmark process
        // (the agents, the frameworks, this reader) shared them.
        let cpu_ms = |pid: u32, before: f64| (cpu_seconds(pid).0 - before) * 1e3;
        eprintln!(
            "bench state: read {} of {}: {} MB in {ms:.0} ms; cpu master {:.0} ms, benchmark {:.0} ms",
            query + 1,
            options.queries,
            size / 1_000_000,
            cpu_ms(pid, cpu_before.0),
            cpu_ms(std::process::id(), cpu_before.1),
        );
        latencies.push(ms);
    }
    latencies.sort_by(f64::total_cmp);
    let round = |x: f64| (x * 10.0).round() / 10.0;
    println!(
        "{}",
        serde_json::json!({
            "bench": "state",
            "agents": options.agents,
            "running_tasks": running,
            "completed_tasks": finished,
            "mb": round(bytes as f64 / 1e6),
            "queries": options.queries,
            "p50_ms": round(percentile(&latencies, 50.0)),
            "p99_ms": round(percentile(&latencies, 99.0)),
            "max_ms": round(latencies.last().copied().unwrap_or(0.0)),
            "master_rss_mb": round(rss_mb(pid)?),
            "agents_per_connection": options.agents_per_connection,
            "master_fds": master_fds,
            "bench_fds": bench_fds,
        })
    );

    let metrics_url = format!("http://{master}/metrics/snapshot");
    let quiet = allocation_runs(&client, &metrics_url, options.phase).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut pollers = tokio::task::JoinSet::new();
    for _ in 0..options.pollers {
        let (master, stop) = (master.to_string(), stop.clone());
        pollers.spawn(async move {
            let mut reads = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                read_and_drop(&master, "/master/state").await?;
                reads.push(started.elapsed().as_secs_f64() * 1e3);
            }
            anyhow::Ok(reads)
        });
    }
    let busy = allocation_runs(&client, &metrics_url, options.phase).await?;
    stop.store(true, Ordering::Relaxed);
    let mut reads = Vec::new();
    while let Some(poller) = pollers.join_next().await {
        reads.extend(poller.context("poller task")??);
    }
    reads.sort_by(f64::total_cmp);
    let (quiet_p50, busy_p50) = (percentile(&quiet, 50.0), percentile(&busy, 50.0));
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    println!(
        "{}",
        serde_json::json!({
            "bench": "state_pollers",
            "agents": options.agents,
            "pollers": options.pollers,
            "allocation_runs": [quiet.len(), busy.len()],
            "allocation_run_p50_ms": [round(quiet_p50), round(busy_p50)],
            "allocation_run_mean_ms": [round(mean(&quiet)), round(mean(&busy))],
            "allocation_run_p50_growth_pct": round((busy_p50 / quiet_p50.max(1e-9) - 1.0) * 100.0),
            "poll_reads": reads.len(),
            "poll_p50_ms": round(percentile(&reads, 50.0)),
            "poll_p99_ms": round(percentile(&reads, 99.0)),
        })
    );
    fleet.shutdown().await;
    Ok(())
}

/// Fails when the running tasks leave no room on the agents: the frameworks would wait
/// for offers that never come (the completed tasks need a little room beside them).
fn check_room(options: &Options) -> anyhow::Result<()> {
    let parse = |text: &str| Resources::parse_text(text, "*").map_err(anyhow::Error::msg);
    let (mut agent, task) = (
        parse(&options.agent_resources)?,
        parse(&options.task_resources)?,
    );
    if task.is_empty() {
        bail!("--task-resources must not be empty");
    }
    let mut per_agent = 0;
    while agent.contains(&task) {
        agent.subtract(&task);
        per_agent += 1;
    }
    if options.running >= per_agent * options.agents {
        bail!(
            "--running {} does not fit: {} agents hold {per_agent} tasks of --task-resources each, {} in all, and the completed tasks need room beside them",
            options.running,
            options.agents,
            per_agent * options.agents
        );
    }
    Ok(())
}

fn open_files_hard_limit() -> anyhow::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only into the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        bail!("getrlimit: {}", std::io::Error::last_os_error());
    }
    Ok(limit.rlim_max)
}

/// Reads `/master/state` once and checks it holds every agent and task; returns its size.
async fn check_state(
    client: &HttpClient,
    url: &str,
    options: &Options,
    running: usize,
    finished: usize,
) -> anyhow::Result<usize> {
    let started = Instant::now();
    let answer = client.get(url).await?;
    // The read alone: parsing the document here takes longer than reading it.
    let read_ms = started.elapsed().as_secs_f64() * 1e3;
    let state: serde_json::Value = serde_json::from_slice(&answer.body)?;
    let frameworks = state["frameworks"].as_array().context("no frameworks")?;
    let count = |list: &str| -> usize {
        frameworks
            .iter()
            .map(|f| f[list].as_array().map_or(0, Vec::len))
            .sum()
    };
    let slaves = state["slaves"].as_array().map_or(0, Vec::len);
    let (tasks, completed) = (count("tasks"), count("completed_tasks"));
    if slaves != options.agents || tasks != running || completed != finished {
        bail!(
            "/master/state shows {slaves} agents, {tasks} tasks and {completed} completed tasks; expected {}, {running} and {finished}",
            options.agents
        );
    }
    eprintln!(
        "bench state: /master/state ({} MB) shows {slaves} agents, {tasks} running and {completed} completed tasks; first read {:.0} ms",
        answer.body.len() / 1_000_000,
        read_ms
    );
    Ok(answer.body.len())
}

/// GETs `path` from `master` and drops the answer as it arrives; returns its size. The
/// pollers stand for dashboards on other machines: collecting ten answers of 175 MB
/// into memory here took the two cores from the master that they measure.
async fn read_and_drop(master: &str, path: &str) -> anyhow::Result<usize> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(master).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {master}\r\nConnection: close\r\n\r\n");
    socket.write_all(request.as_bytes()).await?;
    let mut buffer = vec![0; 1 << 20];
    let mut size = 0;
    loop {
        let read = socket.read(&mut buffer).await?;
        if read == 0 && size == 0 {
            bail!("GET {path}: the master closed the connection without an answer");
        }
        if read == 0 {
            return Ok(size);
        }
        if size == 0 && !buffer[..read].starts_with(b"HTTP/1.1 200") {
            bail!(
                "GET {path}: {}",
                String::from_utf8_lossy(&buffer[..read.min(200)])
            );
        }
        size += read;
    }
}

/// The durations of the allocation runs during `phase`, from the master's
/// `allocator/mesos/allocation_run_ms` (the last run) and its `/count`, sampled often
/// enough to see every run at the default one-second allocation interval.
async fn allocation_runs(
    client: &HttpClient,
    url: &str,
    phase: Duration,
) -> anyhow::Result<Vec<f64>> {
    let until = Instant::now() + phase;
    let mut runs = Vec::new();
    let mut last_count = None;
    while Instant::now() < until {
        let answer = client.get(url).await?;
        let metrics: serde_json::Value = serde_json::from_slice(&answer.body)?;
        let count = metrics["allocator/mesos/allocation_run_ms/count"]
            .as_f64()
            .context("no allocator/mesos/allocation_run_ms/count in /metrics/snapshot")?;
        let last = metrics["allocator/mesos/allocation_run_ms"]
            .as_f64()
            .context("no allocator/mesos/allocation_run_ms in /metrics/snapshot")?;
        if last_count.is_some_and(|c| c != count) {
            runs.push(last);
        }
        last_count = Some(count);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    runs.sort_by(f64::total_cmp);
    Ok(runs)
}
