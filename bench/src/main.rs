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
//!
//! `throughput`: `bench/run throughput --agents 10000 --frameworks 100` launches tasks
//! on simulated agents (inside this process) through F frameworks as fast as offers
//! allow; reports the launch rate (ACCEPT to TASK_RUNNING), its latency, and the master's
//! memory per agent and per running task.
//!
//! `state`: `bench/run state --agents 20000` loads simulated agents with running and
//! completed tasks (Mesos's `MasterStateQuery_BENCHMARK_Test` shape) and times whole
//! `/master/state` reads, then the allocation cycle without and with concurrent pollers.
//!
//! `cluster`: `bench/run cluster --agents 1000,5000,10000 --frameworks 200` is the Mesos
//! paper's scalability experiment: load frameworks keep simulated agents busy with tasks
//! of 30 s on average while a probe framework subscribes, launches a 10 s task, suppresses
//! its offers and waits for the task to finish, again and again; reports the overhead
//! beyond the 10 s per cluster size.
//!
//! `memory`: `bench/run memory --agents 10000,100000 --tasks-per-agent 10` reads a fresh
//! master's memory idle, with N simulated agents registered and with their long-running
//! tasks; reports the bytes per agent and per task and whether any agent was marked
//! unreachable meanwhile.

mod agent_link;
mod allocator;
mod cluster;
mod containers;
mod driver;
mod failover;
mod ha_failover;
mod memory;
mod scalability;
mod state;
mod throughput;

use anyhow::bail;
use clap::{Parser, Subcommand};
use mantle_api::*;
use std::path::PathBuf;
use std::time::Duration;

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
        /// Allocation cycles to time [default: frameworks * 2, as Mesos does; 1000 with
        /// --busy].
        #[arg(long, conflicts_with = "quota")]
        rounds: Option<usize>,
        /// The busy shape instead of DeclineOffers: a full cluster of two-slot agents
        /// where this many slots free before each cycle.
        #[arg(long, conflicts_with = "quota")]
        busy: Option<usize>,
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
        /// Simulated agents sharing one HTTP/2 connection to the master; 0 gives each
        /// agent a socket of its own, as a real agent has (one descriptor at both ends).
        #[arg(long, default_value_t = 500)]
        agents_per_connection: usize,
        /// Give up on a phase after this many seconds.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
        /// Skip reading `/master/state` afterwards to check every task is there.
        #[arg(long)]
        no_state_check: bool,
    },
    /// Launch tasks through many frameworks on simulated agents and measure the rate.
    Throughput {
        #[arg(long, default_value_t = 10_000)]
        agents: usize,
        #[arg(long, default_value_t = 100)]
        frameworks: usize,
        /// Tasks in all, shared between the frameworks.
        #[arg(long, default_value_t = 100_000)]
        tasks: usize,
        #[arg(
            long,
            default_value = "cpus:16;mem:65536;disk:100000;ports:[31000-32000]"
        )]
        agent_resources: String,
        #[arg(long, default_value = "cpus:0.1;mem:32")]
        task_resources: String,
        /// Simulated agents sharing one HTTP/2 connection to the master; 0 gives each
        /// agent a socket of its own, as a real agent has (one descriptor at both ends).
        #[arg(long, default_value_t = 500)]
        agents_per_connection: usize,
        /// The frameworks speak HTTP/1.1 with a connection per call in flight, as
        /// pymesos does; by default each framework's event stream and calls share one
        /// HTTP/2 connection.
        #[arg(long)]
        frameworks_http1: bool,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
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
        /// Simulated agents sharing one HTTP/2 connection to the master; 0 gives each
        /// agent a socket of its own, as a real agent has (one descriptor at both ends).
        #[arg(long, default_value_t = 500)]
        agents_per_connection: usize,
        /// Give up on a phase after this many seconds.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
    /// Time `/master/state` on simulated agents with running and completed tasks, and
    /// the allocation cycle with concurrent pollers.
    State {
        /// 20,000 in Mesos's benchmark.
        #[arg(long, default_value_t = 20_000)]
        agents: usize,
        /// Running (`sleep infinity`) tasks in all.
        #[arg(long, default_value_t = 200_000)]
        running: usize,
        /// Completed (`true`) tasks in all, 1,000 per framework.
        #[arg(long, default_value_t = 200_000)]
        completed: usize,
        /// Frameworks sharing the running tasks.
        #[arg(long, default_value_t = 20)]
        running_frameworks: usize,
        /// With a whole cpu per task, at most 12 tasks run on an agent: the running tasks
        /// spread over all the agents, about 11 each at 18,000 agents.
        #[arg(long, default_value = "cpus:12;mem:65536;disk:100000")]
        agent_resources: String,
        #[arg(long, default_value = "cpus:1;mem:32")]
        task_resources: String,
        /// Timed `/master/state` reads.
        #[arg(long, default_value_t = 10)]
        queries: usize,
        /// Concurrent `/master/state` pollers while allocation cycles are timed.
        #[arg(long, default_value_t = 10)]
        pollers: usize,
        /// Seconds of each allocation phase (without, then with the pollers).
        #[arg(long, default_value_t = 30)]
        phase: u64,
        /// Simulated agents sharing one HTTP/2 connection to the master; 0 gives each
        /// agent a socket of its own, as a real agent has (one descriptor at both ends).
        #[arg(long, default_value_t = 500)]
        agents_per_connection: usize,
        /// Give up on loading after this many seconds.
        #[arg(long, default_value_t = 1800)]
        timeout: u64,
    },
    /// The Mesos paper's scalability experiment: the overhead of a probe framework's
    /// 10 s task while load frameworks keep the cluster busy, per cluster size.
    Cluster {
        /// The cluster sizes to measure, one after the other.
        #[arg(long, value_delimiter = ',', default_value = "1000,5000,10000")]
        agents: Vec<usize>,
        /// Load frameworks launching tasks of 30 s on average (normally distributed, with
        /// a standard deviation of 10 s, as in the paper).
        #[arg(long, default_value_t = 200)]
        frameworks: usize,
        /// Probe tasks per size (each takes 10 s and its overhead).
        #[arg(long, default_value_t = 10)]
        probes: usize,
        /// Probe frameworks running at the same time, each doing its share of the
        /// probes one after the other (the paper ran one); their starts are spread over
        /// the 10 s of a probe's task, so that they seldom wait for an offer together.
        #[arg(long, default_value_t = 1)]
        concurrent_probes: usize,
        /// An agent holds exactly two tasks, as the paper's slaves did: a full cluster
        /// has no leftovers to offer, so that offers are freed slots, not fragments
        /// every framework declines.
        #[arg(long, default_value = "cpus:2;mem:1024;disk:2048")]
        agent_resources: String,
        #[arg(long, default_value = "cpus:1;mem:512;disk:1024")]
        task_resources: String,
        /// Seconds the load runs before the first probe.
        #[arg(long, default_value_t = 30)]
        warmup: u64,
        /// Simulated agents per HTTP/2 connection; 0: a socket of its own each.
        #[arg(long, default_value_t = 500)]
        agents_per_connection: usize,
    },
    /// The master's memory per registered agent and per running task, per cluster size.
    Memory(memory::Options),
}

// The simulated agents in this process run the agent's code, which the `mantle` binary
// runs on mimalloc: the same allocator here, or glibc's malloc is a fifth of this
// process's time in the throughput benchmark.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Interrupted, the running benchmark is dropped: the processes it started are
    // killed with it (`cluster::Process`) instead of outliving it.
    tokio::select! {
        result = run(cli) => result,
        signal = interrupted() => bail!("interrupted by {signal}; stopped the processes started"),
    }
}

/// Waits for SIGINT or SIGTERM and names it.
async fn interrupted() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
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
            busy,
            quota,
            roles,
            seed,
        } => {
            if let Some(freed) = busy {
                let agents = agents.unwrap_or(1000);
                let frameworks = frameworks.unwrap_or(50);
                allocator::busy(agents, frameworks, freed, rounds.unwrap_or(1000), seed)
            } else if quota {
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
            agents_per_connection,
            timeout,
            no_state_check,
        } => {
            let shape = failover::Shape {
                agents,
                tasks_per_agent,
                frameworks,
                agents_per_connection,
            };
            let timeout = Duration::from_secs(timeout);
            failover::run(&cli.mantle, shape, concurrency, timeout, !no_state_check).await
        }
        Bench::Throughput {
            agents,
            frameworks,
            tasks,
            agent_resources,
            task_resources,
            agents_per_connection,
            frameworks_http1,
            timeout,
        } => {
            let options = throughput::Options {
                agents,
                frameworks,
                tasks,
                agent_resources,
                task_resources,
                agents_per_connection,
                frameworks_http1,
                timeout: Duration::from_secs(timeout),
            };
            throughput::run(&cli.mantle, &options).await
        }
        Bench::HaFailover {
            agents,
            tasks_per_agent,
            frameworks,
            session_timeouts,
            concurrency,
            agents_per_connection,
            timeout,
        } => {
            let options = ha_failover::Options {
                shape: failover::Shape {
                    agents,
                    tasks_per_agent,
                    frameworks,
                    agents_per_connection,
                },
                concurrency,
                timeout: Duration::from_secs(timeout),
            };
            ha_failover::run(&cli.mantle, &options, &session_timeouts).await
        }
        Bench::State {
            agents,
            running,
            completed,
            running_frameworks,
            agent_resources,
            task_resources,
            queries,
            pollers,
            phase,
            agents_per_connection,
            timeout,
        } => {
            let options = state::Options {
                agents,
                running,
                completed,
                running_frameworks,
                agent_resources,
                task_resources,
                queries,
                pollers,
                agents_per_connection,
                phase: Duration::from_secs(phase),
                timeout: Duration::from_secs(timeout),
            };
            state::run(&cli.mantle, &options).await
        }
        Bench::Cluster {
            agents,
            frameworks,
            probes,
            concurrent_probes,
            agent_resources,
            task_resources,
            warmup,
            agents_per_connection,
        } => {
            let options = scalability::Options {
                sizes: agents,
                frameworks,
                probes,
                concurrent_probes,
                agent_resources,
                task_resources,
                warmup: Duration::from_secs(warmup),
                agents_per_connection,
            };
            scalability::run(&cli.mantle, &options).await
        }
        Bench::Memory(options) => memory::run(&cli.mantle, &options).await,
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
    // The framework runs in this process, so its share of the two cores shows too.
    let (scheduler_cpu, _) = cluster::cpu_seconds(std::process::id());
    eprintln!(
        "bench launch: cpu seconds: master {master_cpu:.2}, agents {agents_cpu:.2}, executors and tasks {executors_cpu:.2}, scheduler (this process) {scheduler_cpu:.2}"
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

fn print_launch(total: usize, agents: usize, run: &driver::Outcome) {
    println!(
        "{}",
        serde_json::json!({
            "bench": "launch",
            "tasks": total,
            "agents": agents,
            "seconds": (run.seconds * 100.0).round() / 100.0,
            "tasks_per_s": (total as f64 / run.seconds * 10.0).round() / 10.0,
            "p50_ms": (percentile(&run.running_latencies_ms, 50.0) * 10.0).round() / 10.0,
            "p99_ms": (percentile(&run.running_latencies_ms, 99.0) * 10.0).round() / 10.0,
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
) -> anyhow::Result<driver::Outcome> {
    let workload = driver::Workload {
        name: "bench-launch".into(),
        tasks: total,
        task_resources: Resources::parse_text(&format!("cpus:{task_cpus};mem:16"), "*")
            .map_err(anyhow::Error::msg)?,
        command: "true".into(),
        until: driver::Until::AllEnded,
        must_finish: true,
        suppress_when_launched: true,
        teardown_when_done: true,
        http2: false,
    };
    let outcome = driver::run(master, &workload, timeout, true).await?;
    Ok(outcome)
}

pub use driver::percentile;
