//! Mantle's benchmarks. Each prints one JSON line per result on stdout and its progress
//! on stderr. Run them through `bench/run NAME [ARGS]`.
//!
//! `launch`: N `true` command tasks through the v1 scheduler API on a master and A agents
//! (real processes, the built-in command executor); reports the launch rate, the latency
//! from ACCEPT to TASK_RUNNING, and the master's resident memory idle and afterwards.
//!
//! `allocator`: allocation cycles of the offer allocator alone, in the shapes of Apache
//! Mesos's allocator benchmarks (DeclineOffers, or with `--quota` LargeAndSmallQuota);
//! reports how long one cycle takes.
//!
//! `containers`: container launches and destroys on this machine through the agent's
//! containerizer and `mantle-launcher`, with cgroups and a pid namespace (needs root).
//!
//! `failover`: `bench/run failover --agents 10000` registers N simulated agents (inside
//! this process, over the real agent protocol) with a `mantle master` process, kills it
//! with SIGKILL, starts it again on the same port and work directory, and times how long
//! it takes until every agent has re-registered with its tasks (Mesos's
//! `MasterFailover_BENCHMARK_Test`: 10 running tasks per agent across 5 frameworks, 10
//! labels each); reports the master's CPU time and resident memory afterwards.
//!
//! `ha-failover`: `bench/run ha-failover --agents 1000` kills the leader of three masters
//! elected through ZooKeeper and times how long until a framework following the election
//! holds an offer from the new leader, once per ZooKeeper session timeout (10 s and 2 s).

mod agent_link;
mod allocator;
mod cluster;
mod containers;
mod failover;
mod ha_failover;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use mantle_api::scheduler::Event;
use mantle_api::*;
use mantle_sdk::scheduler::{Scheduler, SchedulerEvent};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Cli {
    /// The mantle binary to benchmark.
    #[arg(long, default_value = "target/release/mantle")]
    mantle: PathBuf,
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// Launch N `true` tasks on A agents and measure the rate and latency.
    Launch {
        #[arg(long, default_value_t = 10_000)]
        tasks: usize,
        #[arg(long, default_value_t = 4)]
        agents: usize,
        /// cpus per task; with the agents' cpus this bounds how many run at once.
        #[arg(long, default_value_t = 0.1)]
        task_cpus: f64,
        /// Resources of each agent.
        #[arg(long, default_value = "cpus:4;mem:16384;disk:10000")]
        agent_resources: String,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
        /// Drive an existing cluster at HOST:PORT instead of starting one (no memory or
        /// CPU figures then).
        #[arg(long)]
        master: Option<String>,
    },
    /// Time allocation cycles of the allocator alone: F frameworks declining offers on
    /// A agents for ever, or with --quota one cycle satisfying many roles' quota.
    Allocator {
        /// Agents [default: 1000; with --quota, what Mesos uses for the roles].
        #[arg(long)]
        agents: Option<usize>,
        /// Frameworks [default: 50; with --quota, one per role].
        #[arg(long)]
        frameworks: Option<usize>,
        /// Allocation cycles to time [default: frameworks * 2, as Mesos does].
        #[arg(long, conflicts_with = "quota")]
        rounds: Option<usize>,
        /// The LargeAndSmallQuota shape instead of DeclineOffers.
        #[arg(long)]
        quota: bool,
        /// Quota roles, five in six small and one in six large [default: --frameworks,
        /// else 3000].
        #[arg(long, requires = "quota")]
        roles: Option<usize>,
        /// Seeds the allocator's agent shuffle.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Launch N `true` containers on this machine, then destroy N running `sleep`
    /// containers (cgroups/cpu, cgroups/mem, namespaces/pid; needs root).
    Containers {
        #[arg(long, default_value_t = 1000)]
        tasks: usize,
        /// Launches (and destroys) in flight at once.
        #[arg(long, default_value_t = 1)]
        parallel: usize,
        /// The agent's --isolation for the containers.
        #[arg(long, default_value = "cgroups/cpu,cgroups/mem,namespaces/pid")]
        isolation: String,
    },
    /// Kill the master under N registered agents, restart it, and time until every agent
    /// has re-registered with its tasks.
    Failover {
        #[arg(long, default_value_t = 10_000)]
        agents: usize,
        #[arg(long, default_value_t = 10)]
        tasks_per_agent: usize,
        #[arg(long, default_value_t = 5)]
        frameworks: usize,
        /// Registrations in flight at once (the master's listen backlog is 1024).
        #[arg(long, default_value_t = 512)]
        concurrency: usize,
        /// Give up on a phase after this many seconds.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
        /// Skip reading `/master/state` afterwards to check every task is there.
        #[arg(long)]
        no_state_check: bool,
    },
    /// Kill the leading master of three and time until a framework has an offer from
    /// the new leader.
    HaFailover {
        #[arg(long, default_value_t = 1_000)]
        agents: usize,
        #[arg(long, default_value_t = 10)]
        tasks_per_agent: usize,
        #[arg(long, default_value_t = 5)]
        frameworks: usize,
        /// The masters' ZooKeeper session timeouts to run with, in seconds (1 to 10).
        #[arg(long, value_delimiter = ',', default_value = "10,2")]
        session_timeouts: Vec<f64>,
        /// Registrations in flight at once.
        #[arg(long, default_value_t = 512)]
        concurrency: usize,
        /// Give up on a phase after this many seconds.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
}

/// What one launch run measured.
struct LaunchRun {
    seconds: f64,
    latencies_ms: Vec<f64>,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.bench {
        Bench::Launch {
            tasks,
            agents,
            task_cpus,
            agent_resources,
            timeout,
            master,
        } => {
            let timeout = Duration::from_secs(timeout);
            match master {
                Some(master) => {
                    let run = run_launches(&master, tasks, task_cpus, timeout).await?;
                    print_launch(tasks, agents, &run);
                    Ok(())
                }
                None => {
                    launch(
                        &cli.mantle,
                        tasks,
                        agents,
                        task_cpus,
                        &agent_resources,
                        timeout,
                    )
                    .await
                }
            }
        }
        Bench::Allocator {
            agents,
            frameworks,
            rounds,
            quota,
            roles,
            seed,
        } => {
            if quota {
                let roles = roles.or(frameworks).unwrap_or(3000);
                if frameworks.is_some_and(|f| f != roles) {
                    bail!(
                        "with --quota each role has one framework: --frameworks must equal --roles"
                    );
                }
                allocator::quota(agents, roles, seed)
            } else {
                let agents = agents.unwrap_or(1000);
                let frameworks = frameworks.unwrap_or(50);
                allocator::decline_offers(agents, frameworks, rounds, seed)
            }
        }
        Bench::Containers {
            tasks,
            parallel,
            isolation,
        } => containers::run(&cli.mantle, tasks, parallel, &isolation),
        Bench::Failover {
            agents,
            tasks_per_agent,
            frameworks,
            concurrency,
            timeout,
            no_state_check,
        } => {
            let shape = failover::Shape {
                agents,
                tasks_per_agent,
                frameworks,
            };
            let timeout = Duration::from_secs(timeout);
            failover::run(&cli.mantle, shape, concurrency, timeout, !no_state_check).await
        }
        Bench::HaFailover {
            agents,
            tasks_per_agent,
            frameworks,
            session_timeouts,
            concurrency,
            timeout,
        } => {
            let options = ha_failover::Options {
                shape: failover::Shape {
                    agents,
                    tasks_per_agent,
                    frameworks,
                },
                concurrency,
                timeout: Duration::from_secs(timeout),
            };
            ha_failover::run(&cli.mantle, &options, &session_timeouts).await
        }
    }
}

/// Starts a cluster, runs the launches, and reports them with the master's memory.
async fn launch(
    mantle: &std::path::Path,
    total: usize,
    agents: usize,
    task_cpus: f64,
    agent_resources: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    let cluster = cluster::Cluster::start(mantle, agents, agent_resources).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss = cluster.master_rss_mb()?;
    eprintln!("bench launch: {total} tasks on {agents} agents, master idle rss {idle_rss:.1} MB");
    let run = run_launches(&cluster.master, total, task_cpus, timeout).await?;
    let (master_cpu, agents_cpu, executors_cpu) = cluster.cpu();
    eprintln!(
        "bench launch: cpu seconds: master {master_cpu:.2}, agents {agents_cpu:.2}, executors and tasks {executors_cpu:.2}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after_rss = cluster.master_rss_mb()?;
    print_launch(total, agents, &run);
    println!(
        "{}",
        serde_json::json!({
            "bench": "master_memory",
            "agents": agents,
            "idle_rss_mb": (idle_rss * 10.0).round() / 10.0,
            "rss_after_tasks_mb": (after_rss * 10.0).round() / 10.0,
            "finished_tasks": total,
        })
    );
    Ok(())
}

fn print_launch(total: usize, agents: usize, run: &LaunchRun) {
    println!(
        "{}",
        serde_json::json!({
            "bench": "launch",
            "tasks": total,
            "agents": agents,
            "seconds": (run.seconds * 100.0).round() / 100.0,
            "tasks_per_s": (total as f64 / run.seconds * 10.0).round() / 10.0,
            "p50_ms": (percentile(&run.latencies_ms, 50.0) * 10.0).round() / 10.0,
            "p99_ms": (percentile(&run.latencies_ms, 99.0) * 10.0).round() / 10.0,
        })
    );
}

/// Launches `total` `true` tasks through the scheduler API of `master` and waits until
/// all have finished; the framework is torn down afterwards.
async fn run_launches(
    master: &str,
    total: usize,
    task_cpus: f64,
    timeout: Duration,
) -> anyhow::Result<LaunchRun> {
    let info: FrameworkInfo =
        serde_json::from_value(serde_json::json!({"user": "root", "name": "bench-launch"}))?;
    let (scheduler, mut events) = Scheduler::subscribe(master, info).await?;
    let task_resources = Resources::parse_text(&format!("cpus:{task_cpus};mem:16"), "*")
        .map_err(anyhow::Error::msg)?;
    let mut accepted_at: HashMap<TaskId, Instant> = HashMap::new();
    let mut latencies_ms: Vec<f64> = Vec::with_capacity(total);
    let mut launched = 0usize;
    let mut calls = tokio::task::JoinSet::new();
    let mut finished = 0usize;
    let started = Instant::now();
    let deadline = started + timeout;
    let mut last_report = Instant::now();
    while finished < total {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = match tokio::time::timeout(left, events.next()).await {
            Err(_) => bail!("timed out after {timeout:?} with {finished}/{total} tasks finished"),
            Ok(None) => bail!("the event stream ended"),
            Ok(Some(SchedulerEvent::Event(event))) => event,
            Ok(Some(_)) => continue,
        };
        match event {
            Event::Offers(offers) => {
                for offer in offers.offers {
                    let mut available = Resources::from_wire("offer", &offer.resources)
                        .map_err(anyhow::Error::msg)?;
                    let mut batch = Vec::new();
                    while launched < total && available.contains(&task_resources) {
                        available.subtract(&task_resources);
                        let id = TaskId::new(format!("t{launched}"));
                        launched += 1;
                        batch.push(serde_json::from_value::<TaskInfo>(serde_json::json!({
                            "name": id.value, "task_id": id, "agent_id": offer.agent_id,
                            "resources": task_resources.to_wire(), "command": {"value": "true"}
                        }))?);
                    }
                    if batch.is_empty() {
                        scheduler
                            .decline(
                                vec![offer.id],
                                Some(Filters {
                                    refuse_seconds: 1.0,
                                }),
                            )
                            .await?;
                        continue;
                    }
                    let now = Instant::now();
                    for task in &batch {
                        accepted_at.insert(task.task_id.clone(), now);
                    }
                    // The ACCEPT goes out without waiting for its answer, so events
                    // keep being read while it is in flight.
                    let launcher = scheduler.clone();
                    let filters = Some(Filters {
                        refuse_seconds: 0.0,
                    });
                    calls.spawn(async move { launcher.launch(offer.id, batch, filters).await });
                }
            }
            Event::Update(update) => {
                let status = update.status;
                // Acknowledge without waiting for the answer, as a high-rate framework
                // would.
                let acker = scheduler.clone();
                let ack_status = status.clone();
                calls.spawn(async move { acker.acknowledge(&ack_status).await });
                while let Some(done) = calls.try_join_next() {
                    done.context("acknowledgement task")?
                        .context("acknowledge")?;
                }
                match status.state {
                    TaskState::Running => {
                        if let Some(at) = accepted_at.remove(&status.task_id) {
                            latencies_ms.push(at.elapsed().as_secs_f64() * 1e3);
                        }
                    }
                    TaskState::Finished => finished += 1,
                    state if state.is_terminal() => {
                        bail!(
                            "task {} ended {state}: {:?}",
                            status.task_id,
                            status.message
                        )
                    }
                    _ => {}
                }
            }
            _ => {}
        }
        if last_report.elapsed() > Duration::from_secs(2) {
            last_report = Instant::now();
            eprintln!("bench launch: {launched} launched, {finished} finished");
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    while let Some(ack) = calls.join_next().await {
        ack.context("acknowledgement task")?
            .context("acknowledge")?;
    }
    scheduler.teardown().await.context("teardown")?;
    latencies_ms.sort_by(f64::total_cmp);
    Ok(LaunchRun {
        seconds,
        latencies_ms,
    })
}
