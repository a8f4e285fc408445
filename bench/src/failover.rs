//! `failover`: agent re-registration after a master failover, in the shape of Apache
//! Mesos's `MasterFailover_BENCHMARK_Test.AgentReregistrationDelay`. A real `mantle
//! master` process and N simulated agents inside this process, each speaking the real
//! agent protocol: by default every `agents_per_connection` agents share one HTTP/2
//! connection (their streams and pongs), or with 0 each holds a raw HTTP/1.1 connection
//! of its own (a descriptor per agent at both ends). The agents register, the master is killed
//! with SIGKILL and started again on the same port and work directory, and every agent
//! re-registers with what it runs: its frameworks, executors and tasks (TASK_RUNNING,
//! ten labels each). The time counts from the new master's spawn until every agent holds
//! its REGISTERED answer.

use crate::agent_link::{Link, LinkError};
use crate::cluster::{cpu_seconds, open_files, rss_mb, spawn_master, start_master, Process};
use anyhow::{bail, Context};
use bytes::Bytes;
use mantle_api::internal::{
    AgentCall, Register, TaskReport, ToAgent, AGENT_API_PATH, AGENT_STREAM_HEADER,
};
use mantle_api::*;
use mantle_sdk::http::{ClientError, HttpClient, RecordStream};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch, Semaphore};

/// What each simulated agent runs.
#[derive(Clone, Copy)]
pub struct Shape {
    pub agents: usize,
    pub tasks_per_agent: usize,
    pub frameworks: usize,
    /// Agents sharing one HTTP/2 connection to the master; 0 gives each agent a raw
    /// HTTP/1.1 connection of its own.
    pub agents_per_connection: usize,
}

/// Resources of one task and of one executor; an agent holds all of its own.
const TASK_RESOURCES: &str = "cpus:0.5;mem:256;disk:128";
const EXECUTOR_RESOURCES: &str = "cpus:0.1;mem:32";
const LABELS_PER_TASK: usize = 10;
/// Agents per loopback source address: each address has one ephemeral port range
/// (about 28,000 ports here) towards the master's one port.
const AGENTS_PER_SOURCE: usize = 16_000;
/// How long an HTTP/2 agent waits for the master's answer to its REGISTER (thousands
/// are answered in batches while the master recovers) or to a pong.
const HTTP2_REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// PONGs in flight at once over the HTTP/1.1 pool (a connection each).
const POOL_PONGS_IN_FLIGHT: usize = 256;

/// What the agents tell the coordinator.
pub enum Report {
    Registered { generation: u32, at: Instant },
    Failed { error: String },
}

/// The master the simulated agents register with: a new generation each time the
/// leading master changes (as a master detector would announce it).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Leader {
    pub generation: u32,
    pub address: SocketAddr,
}

/// What every agent task shares.
pub struct Shared {
    shape: Shape,
    frameworks: Vec<FrameworkInfo>,
    /// Bounds the registrations in flight, so that the master's listen backlog never
    /// overflows (a dropped SYN is retried only after a second).
    registering: Semaphore,
    /// With HTTP/2, one client (one connection) per `agents_per_connection` agents,
    /// which carries their streams and pongs; none with HTTP/1.1.
    multiplexed: Vec<HttpClient>,
    /// With HTTP/1.1, PONGs go through a pool of keep-alive connections...
    calls: HttpClient,
    /// ...and this many at most are in flight, so that the pool stays small. Over
    /// HTTP/2 each agent's pong is a stream of its connection, bounded by the master's
    /// limit of concurrent streams.
    pool_pongs: Option<Semaphore>,
    pub pong_stats: PongStats,
    reports: mpsc::UnboundedSender<Report>,
}

/// What the agents did with the master's pings, for the progress lines: a master marks
/// an agent unreachable when its pongs stop arriving, so a slow pong path shows here.
#[derive(Default)]
pub struct PongStats {
    pings: AtomicU64,
    answered: AtomicU64,
    failed: AtomicU64,
    /// The longest time from a PING's arrival to its PONG's answer, in milliseconds.
    max_delay_ms: AtomicU64,
}

impl PongStats {
    fn answered(&self, received: Instant, ok: bool) {
        let counter = if ok { &self.answered } else { &self.failed };
        counter.fetch_add(1, Ordering::Relaxed);
        let delay = received.elapsed().as_millis() as u64;
        self.max_delay_ms.fetch_max(delay, Ordering::Relaxed);
    }

    fn summary(&self) -> String {
        let pings = self.pings.load(Ordering::Relaxed);
        let answered = self.answered.load(Ordering::Relaxed);
        let failed = self.failed.load(Ordering::Relaxed);
        format!(
            "pings {pings}, pongs answered {answered}, failed {failed}, pending {}, slowest {} ms",
            pings.saturating_sub(answered + failed),
            self.max_delay_ms.load(Ordering::Relaxed)
        )
    }
}

fn framework_info(index: usize) -> anyhow::Result<FrameworkInfo> {
    Ok(serde_json::from_value(serde_json::json!({
        "id": {"value": format!("bench-failover-{index}")},
        "user": "root",
        "name": format!("failover-{index}"),
        "checkpoint": true,
        "failover_timeout": 604800.0,
    }))?)
}

/// An agent large enough for its tasks and executors, with room to spare.
fn agent_resources(shape: Shape) -> String {
    let slots = (shape.tasks_per_agent + shape.frameworks) as f64;
    format!(
        "cpus:{};mem:{};disk:{};ports:[31000-32000]",
        4.0 + slots,
        4096.0 + slots * 512.0,
        4096.0 + slots * 256.0
    )
}

impl Shared {
    /// `concurrency` bounds the registrations in flight; every agent reports to `reports`.
    pub fn new(
        shape: Shape,
        concurrency: usize,
        reports: mpsc::UnboundedSender<Report>,
    ) -> anyhow::Result<Arc<Shared>> {
        Ok(Arc::new(Shared {
            shape,
            frameworks: (0..shape.frameworks)
                .map(framework_info)
                .collect::<anyhow::Result<_>>()?,
            registering: Semaphore::new(concurrency.max(1)),
            multiplexed: match shape.agents_per_connection {
                0 => Vec::new(),
                per => (0..shape.agents.div_ceil(per))
                    .map(|_| HttpClient::http2(HTTP2_REQUEST_TIMEOUT))
                    .collect(),
            },
            calls: HttpClient::new(Duration::from_secs(15)),
            pool_pongs: (shape.agents_per_connection == 0)
                .then(|| Semaphore::new(POOL_PONGS_IN_FLIGHT)),
            pong_stats: PongStats::default(),
            reports,
        }))
    }

    fn agent_info(&self, index: usize, id: Option<AgentId>) -> anyhow::Result<AgentInfo> {
        let resources =
            Resources::parse_text(&agent_resources(self.shape), "*").map_err(anyhow::Error::msg)?;
        Ok(AgentInfo {
            hostname: format!("agent-{index}"),
            port: 5051,
            resources: resources.to_wire(),
            attributes: vec![],
            id,
            capabilities: ["MULTI_ROLE", "HIERARCHICAL_ROLE", "RESERVATION_REFINEMENT"]
                .into_iter()
                .map(|kind| Capability { kind: kind.into() })
                .collect(),
        })
    }

    /// The REGISTER body of agent `index`: a first registration without an ID, or the
    /// re-registration of `id` with everything it runs.
    fn register_body(&self, index: usize, id: Option<AgentId>) -> anyhow::Result<Bytes> {
        let mut register = Register {
            agent_info: self.agent_info(index, id.clone())?,
            pid: format!("slave(1)@127.0.0.1:{}", 10_000 + index % 50_000),
            version: MESOS_VERSION.into(),
            frameworks: vec![],
            executors: vec![],
            tasks: vec![],
        };
        if let Some(agent_id) = id {
            let used = self.shape.frameworks.min(self.shape.tasks_per_agent);
            register.frameworks = self.frameworks[..used].to_vec();
            register.executors = (0..used)
                .map(|k| self.executor(k))
                .collect::<anyhow::Result<_>>()?;
            let task_resources =
                Resources::parse_text(TASK_RESOURCES, "*").map_err(anyhow::Error::msg)?;
            for j in 0..self.shape.tasks_per_agent {
                let executor = register.executors[j % used].clone();
                let name = format!("task-{index}-{j}");
                let task: TaskInfo = serde_json::from_value(serde_json::json!({
                    "name": name,
                    "task_id": {"value": name},
                    "agent_id": agent_id,
                    "resources": task_resources.to_wire(),
                    "labels": {"labels": (0..LABELS_PER_TASK)
                        .map(|l| serde_json::json!({"key": format!("key-{l}"), "value": format!("value-{l}")}))
                        .collect::<Vec<_>>()},
                }))?;
                register.tasks.push(TaskReport {
                    framework_id: executor
                        .framework_id
                        .clone()
                        .context("executor framework")?,
                    executor_id: None,
                    task: TaskInfo {
                        executor: Some(Box::new(executor)),
                        ..task
                    },
                    state: TaskState::Running,
                });
            }
        }
        // What a real agent sends (`master_link`): each task names its executor by id.
        Ok(Bytes::from(mantle_api::json::to_ascii_json(
            &AgentCall::Register(register.without_task_executors()),
        )))
    }

    /// The executor of framework `k` on every agent: one runs all of the framework's
    /// tasks there, as a framework's own executor would.
    fn executor(&self, k: usize) -> anyhow::Result<ExecutorInfo> {
        let resources =
            Resources::parse_text(EXECUTOR_RESOURCES, "*").map_err(anyhow::Error::msg)?;
        Ok(serde_json::from_value(serde_json::json!({
            "executor_id": {"value": format!("executor-{k}")},
            "framework_id": self.frameworks[k].id,
            "name": format!("failover executor {k}"),
            "command": {"value": "bench-executor"},
            "resources": resources.to_wire(),
        }))?)
    }

    /// Agent `index`'s HTTP/2 client, or none when it speaks HTTP/1.1.
    fn multiplexed(&self, index: usize) -> Option<&HttpClient> {
        let per = self.shape.agents_per_connection;
        self.multiplexed.get(index.checked_div(per)?)
    }

    fn source_address(&self, index: usize) -> Ipv4Addr {
        let sources = self.shape.agents.div_ceil(AGENTS_PER_SOURCE).max(1);
        Ipv4Addr::new(127, 0, 0, 2 + (index % sources) as u8)
    }
}

/// One simulated agent: registers with every new master it is told of, answers pings,
/// and when its stream ends waits for the next master (as an agent's master detector
/// would tell it), then re-registers with its ID and everything it runs.
pub async fn agent(index: usize, shared: Arc<Shared>, mut leader: watch::Receiver<Option<Leader>>) {
    let mut body = match shared.register_body(index, None) {
        Ok(body) => body,
        Err(err) => {
            let _ = shared.reports.send(Report::Failed {
                error: format!("agent {index}: {err:#}"),
            });
            return;
        }
    };
    let mut agent_id: Option<AgentId> = None;
    // The master generation whose stream this agent lost last.
    let mut lost = 0;
    loop {
        let Ok(Some(Leader {
            generation,
            address,
        })) = leader
            .wait_for(|l| l.is_some_and(|l| l.generation > lost))
            .await
            .map(|l| *l)
        else {
            return;
        };
        let permit = shared.registering.acquire().await;
        let registered = register(&shared, index, address, &body).await;
        drop(permit);
        let (mut link, id) = match registered {
            Ok(answer) => answer,
            Err(err) => {
                let _ = shared.reports.send(Report::Failed {
                    error: format!("agent {index}: {err:#}"),
                });
                // Spread the retries, as agents' backoffs do.
                tokio::time::sleep(Duration::from_millis(50 + (index % 100) as u64)).await;
                continue;
            }
        };
        let at = Instant::now();
        let _ = shared.reports.send(Report::Registered { generation, at });
        if agent_id.as_ref() != Some(&id) {
            body = match shared.register_body(index, Some(id.clone())) {
                Ok(body) => body,
                Err(err) => {
                    let _ = shared.reports.send(Report::Failed {
                        error: format!("agent {index}: {err:#}"),
                    });
                    return;
                }
            };
            agent_id = Some(id);
        }
        follow(&shared, &mut link, address).await;
        lost = generation;
    }
}

/// Registers and reads the master's REGISTERED answer.
async fn register(
    shared: &Shared,
    index: usize,
    master: SocketAddr,
    body: &[u8],
) -> anyhow::Result<(AgentStream, AgentId)> {
    let mut link = match shared.multiplexed(index) {
        None => AgentStream::Own(Link::register(shared.source_address(index), master, body).await?),
        Some(client) => {
            let url = format!("http://{master}{AGENT_API_PATH}");
            let (headers, stream) = client.stream(&url, body.to_vec(), &[]).await?;
            let stream_id = headers
                .get(AGENT_STREAM_HEADER)
                .and_then(|v| v.to_str().ok())
                .with_context(|| format!("the answer has no {AGENT_STREAM_HEADER} header"))?
                .to_string();
            AgentStream::Shared {
                stream: Box::new(stream),
                stream_id,
                client: client.clone(),
            }
        }
    };
    let first = link
        .next_record()
        .await?
        .context("the stream ended before REGISTERED")?;
    match serde_json::from_slice::<ToAgent>(&first)? {
        ToAgent::Registered(registered) => Ok((link, registered.agent_id)),
        other => bail!("expected REGISTERED first, got {other:?}"),
    }
}

/// An agent's stream from the master.
enum AgentStream {
    /// A raw HTTP/1.1 connection of its own; pongs go through the shared pool.
    Own(Link),
    /// One stream of a shared HTTP/2 connection, which carries the pongs too.
    Shared {
        /// Boxed: a hyper body is several times the size of a raw link.
        stream: Box<RecordStream>,
        stream_id: String,
        client: HttpClient,
    },
}

#[derive(Debug, thiserror::Error)]
enum StreamError {
    #[error(transparent)]
    Own(#[from] LinkError),
    #[error(transparent)]
    Shared(#[from] ClientError),
}

impl AgentStream {
    async fn next_record(&mut self) -> Result<Option<Bytes>, StreamError> {
        match self {
            AgentStream::Own(link) => Ok(link.next_record().await?),
            AgentStream::Shared { stream, .. } => Ok(stream.next_record().await?),
        }
    }

    fn stream_id(&self) -> &str {
        match self {
            AgentStream::Own(link) => &link.stream_id,
            AgentStream::Shared { stream_id, .. } => stream_id,
        }
    }

    /// The client a pong goes through.
    fn calls<'a>(&'a self, shared: &'a Shared) -> &'a HttpClient {
        match self {
            AgentStream::Own(_) => &shared.calls,
            AgentStream::Shared { client, .. } => client,
        }
    }
}

/// Reads the stream until it ends, answering each ping before reading on, as a real
/// agent does: one pong in flight per agent, however many agents share the connection.
/// (A bound across all agents, 16 pongs in flight once, let the pongs of 40,000 agents
/// fall minutes behind their pings, and the master rightly marked them unreachable.)
async fn follow(shared: &Arc<Shared>, link: &mut AgentStream, master: SocketAddr) {
    let url = format!("http://{master}{AGENT_API_PATH}");
    while let Ok(Some(record)) = link.next_record().await {
        if !matches!(serde_json::from_slice(&record), Ok(ToAgent::Ping)) {
            continue;
        }
        let received = Instant::now();
        shared.pong_stats.pings.fetch_add(1, Ordering::Relaxed);
        // Over HTTP/1.1 the pongs share a pool of connections, whose size this bounds.
        let _permit = match &shared.pool_pongs {
            Some(gate) if matches!(link, AgentStream::Own(_)) => gate.acquire().await.ok(),
            _ => None,
        };
        let body = mantle_api::json::to_ascii_json(&AgentCall::Pong);
        // A lost pong is what a lost master looks like; the stream tells the rest.
        let sent = link
            .calls(shared)
            .post(
                &url,
                body,
                &[(AGENT_STREAM_HEADER, link.stream_id().to_string())],
            )
            .await;
        shared.pong_stats.answered(received, sent.is_ok());
    }
}

/// Counts registrations of one master generation until all agents have one; returns
/// when each arrived, in order.
pub async fn wait_for_agents(
    shared: &Shared,
    reports: &mut mpsc::UnboundedReceiver<Report>,
    generation: u32,
    agents: usize,
    timeout: Duration,
    what: &str,
) -> anyhow::Result<Vec<Instant>> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut registered = 0usize;
    let mut failures = 0usize;
    let mut times = Vec::with_capacity(agents);
    let mut progress = tokio::time::interval(Duration::from_secs(1));
    progress.tick().await;
    while registered < agents {
        tokio::select! {
            report = reports.recv() => match report {
                Some(Report::Registered { generation: g, at }) if g == generation => {
                    registered += 1;
                    times.push(at);
                }
                Some(Report::Registered { .. }) => {}
                Some(Report::Failed { error }) => {
                    failures += 1;
                    if failures <= 5 {
                        eprintln!("bench: {error}");
                    }
                }
                None => bail!("every agent stopped"),
            },
            _ = progress.tick() => {
                eprintln!(
                    "bench: {what} {registered}/{agents} agents ({failures} failed attempts; {})",
                    shared.pong_stats.summary()
                );
            }
            _ = tokio::time::sleep_until(deadline) => {
                bail!("{what}: only {registered}/{agents} agents within {timeout:?}")
            }
        }
    }
    if failures > 0 {
        eprintln!("bench: {what}: {failures} failed attempts in all");
    }
    times.sort();
    Ok(times)
}

/// Raises the open-file limit of this process (and so of the master it starts) to at
/// least `wanted`: each agent's connection is a descriptor at both ends. Without the
/// privilege to raise the hard limit, the hard limit is as far as it goes.
pub fn raise_open_files(wanted: u64) -> anyhow::Result<()> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only into the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        bail!("getrlimit: {}", std::io::Error::last_os_error());
    }
    if limit.rlim_cur >= wanted {
        return Ok(());
    }
    let raised = libc::rlimit {
        rlim_cur: wanted,
        rlim_max: limit.rlim_max.max(wanted),
    };
    // SAFETY: setrlimit only reads the struct it is given.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        return Ok(());
    }
    let error = std::io::Error::last_os_error();
    if wanted > limit.rlim_max {
        bail!(
            "--agents needs {wanted} open files per process, above the hard limit of {} that this process may not raise ({error})",
            limit.rlim_max
        );
    }
    bail!("cannot raise the open-file limit to {wanted}: {error}")
}

/// The connections `agents` simulated agents hold to the master (a descriptor each at
/// both ends): one per agent with HTTP/1.1 (`per_connection` 0), else one per
/// `per_connection` agents over HTTP/2.
pub fn agent_connections(agents: usize, per_connection: usize) -> u64 {
    match per_connection {
        0 => agents as u64,
        per => agents.div_ceil(per) as u64,
    }
}

/// Kills the master with SIGKILL and reaps it.
fn kill_hard(master: &mut Process) {
    let _ = master.kill();
    let _ = master.wait();
}

/// The master's metrics as numbers.
async fn metrics(client: &HttpClient, master: SocketAddr) -> anyhow::Result<serde_json::Value> {
    let answer = client
        .get(&format!("http://{master}/metrics/snapshot"))
        .await?;
    Ok(serde_json::from_slice(&answer.body)?)
}

/// Checks that `/master/state` shows every reported task under its recovered framework.
async fn check_state(client: &HttpClient, master: SocketAddr, shape: Shape) -> anyhow::Result<()> {
    let started = Instant::now();
    let answer = client.get(&format!("http://{master}/master/state")).await?;
    let state: serde_json::Value = serde_json::from_slice(&answer.body)?;
    let frameworks = state["frameworks"].as_array().context("no frameworks")?;
    let mut tasks = 0;
    for framework in frameworks {
        if framework["recovered"] != true {
            bail!("framework {} is not marked recovered", framework["id"]);
        }
        let list = framework["tasks"].as_array().context("no tasks")?;
        if let Some(task) = list.iter().find(|t| {
            t["state"] != "TASK_RUNNING"
                || t["labels"].as_array().map_or(0, Vec::len) != LABELS_PER_TASK
        }) {
            bail!("task {} is not running with its labels", task["id"]);
        }
        tasks += list.len();
    }
    let expected = shape.agents * shape.tasks_per_agent;
    let expected_frameworks = shape.frameworks.min(shape.tasks_per_agent);
    if frameworks.len() != expected_frameworks || tasks != expected {
        bail!(
            "/master/state shows {} frameworks and {tasks} tasks, expected {expected_frameworks} and {expected}",
            frameworks.len(),
        );
    }
    eprintln!(
        "bench failover: /master/state ({} MB) shows all {tasks} tasks under {} recovered frameworks; read in {:.1} s",
        answer.body.len() / 1_000_000,
        frameworks.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

pub async fn run(
    mantle: &Path,
    shape: Shape,
    concurrency: usize,
    timeout: Duration,
    check: bool,
) -> anyhow::Result<()> {
    if shape.agents == 0 || shape.frameworks == 0 || shape.tasks_per_agent == 0 {
        bail!("--agents, --frameworks and --tasks-per-agent must be positive");
    }
    if shape.agents > AGENTS_PER_SOURCE * 250 {
        bail!("--agents: at most {}", AGENTS_PER_SOURCE * 250);
    }
    raise_open_files(agent_connections(shape.agents, shape.agents_per_connection) + 1024)?;
    let dir = tempfile::tempdir()?;
    let work = dir.path().join("master");
    let (mut master, address) = start_master(mantle, &work, &dir.path().join("master-1.log"))?;
    let address: SocketAddr = address
        .parse()
        .with_context(|| format!("master address {address}"))?;
    let (reports_tx, mut reports) = mpsc::unbounded_channel();
    let shared = Shared::new(shape, concurrency, reports_tx)?;
    let (leader, leader_rx) = watch::channel(Some(Leader {
        generation: 1,
        address,
    }));
    eprintln!(
        "bench failover: {} agents with {} tasks each across {} frameworks, master at {address}",
        shape.agents, shape.tasks_per_agent, shape.frameworks
    );
    let started = Instant::now();
    for index in 0..shape.agents {
        tokio::spawn(agent(index, shared.clone(), leader_rx.clone()));
    }
    wait_for_agents(
        &shared,
        &mut reports,
        1,
        shape.agents,
        timeout,
        "registered",
    )
    .await?;
    let first = started.elapsed().as_secs_f64();
    eprintln!(
        "bench failover: {} agents registered in {first:.2} s; master rss {:.0} MB; killing the master",
        shape.agents,
        rss_mb(master.id())?
    );

    // As a detector would, tell the agents that there is no leader before it goes.
    leader.send_replace(None);
    kill_hard(&mut master);
    let (bench_cpu_before, _) = cpu_seconds(std::process::id());
    let restart = Instant::now();
    let mut master = spawn_master(
        mantle,
        &work,
        address.port(),
        &dir.path().join("master-2.log"),
    )?;
    let pid = master.id();
    let result = async {
        while tokio::net::TcpStream::connect(address).await.is_err() {
            if let Some(status) = master.try_wait()? {
                bail!("the restarted master exited with {status}");
            }
            if restart.elapsed() > timeout {
                bail!("the restarted master did not listen within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let listening = restart.elapsed().as_secs_f64();
        leader.send_replace(Some(Leader {
            generation: 2,
            address,
        }));
        let times = wait_for_agents(&shared, &mut reports, 2, shape.agents, timeout, "re-registered").await?;
        let after = |fraction: f64| {
            let index = ((times.len() - 1) as f64 * fraction) as usize;
            times[index].duration_since(restart).as_secs_f64()
        };
        let seconds = after(1.0);
        eprintln!(
            "bench failover: re-registered after (s): first {:.3}, 10% {:.3}, 50% {:.3}, 90% {:.3}, 99% {:.3}, all {seconds:.3}",
            after(0.0), after(0.1), after(0.5), after(0.9), after(0.99)
        );
        let (cpu, _) = cpu_seconds(pid);
        let bench_cpu = cpu_seconds(std::process::id()).0 - bench_cpu_before;
        let rss = rss_mb(pid)?;
        let (master_fds, bench_fds) = (open_files(pid), open_files(std::process::id()));
        // The master renders its state for its metrics too, which takes a while with
        // hundreds of thousands of tasks.
        let reader = HttpClient::new(timeout);
        let metrics = metrics(&reader, address).await?;
        let expect = |name: &str, want: usize| -> anyhow::Result<()> {
            let got = metrics[name].as_f64().unwrap_or(-1.0);
            if got != want as f64 {
                bail!("{name} is {got}, expected {want}");
            }
            Ok(())
        };
        expect("master/slaves_active", shape.agents)?;
        expect("master/slave_reregistrations", shape.agents)?;
        expect("master/tasks_running", shape.agents * shape.tasks_per_agent)?;
        // Every agent answered its pings: marking one unreachable was a false alarm.
        expect("master/slave_unreachable_scheduled", 0)?;
        expect("master/slave_unreachable_completed", 0)?;
        eprintln!(
            "bench failover: the master listened after {listening:.3} s; all agents re-registered after {seconds:.3} s; master cpu {cpu:.2} s, rss {rss:.0} MB; the simulated agents' cpu {bench_cpu:.2} s"
        );
        if check {
            check_state(&reader, address, shape).await?;
        }
        println!(
            "{}",
            serde_json::json!({
                "bench": "failover",
                "agents": shape.agents,
                "tasks": shape.agents * shape.tasks_per_agent,
                "frameworks": shape.frameworks,
                "seconds": (seconds * 1000.0).round() / 1000.0,
                "listening_s": (listening * 1000.0).round() / 1000.0,
                "agents_per_s": (shape.agents as f64 / seconds).round(),
                "master_cpu_s": (cpu * 100.0).round() / 100.0,
                "agents_cpu_s": (bench_cpu * 100.0).round() / 100.0,
                "master_rss_mb": rss.round(),
                "agents_per_connection": shape.agents_per_connection,
                "master_fds": master_fds,
                "bench_fds": bench_fds,
            })
        );
        Ok(())
    }
    .await;
    kill_hard(&mut master);
    eprintln!("bench failover: {}", shared.pong_stats.summary());
    keep_logs(dir.path());
    result
}

/// Copies the masters' logs to `MANTLE_BENCH_LOG_DIR` when it is set, since the run's
/// own directory goes away with it, and counts the unreachable marks in them.
fn keep_logs(run: &Path) {
    for name in ["master-1.log", "master-2.log"] {
        let log = run.join(name);
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let marked = text.matches("agent is unreachable").count();
        let scheduled = text.matches("failed health checks").count();
        eprintln!(
            "bench failover: {name}: {scheduled} agents failed health checks, {marked} marked unreachable"
        );
        if let Ok(keep) = std::env::var("MANTLE_BENCH_LOG_DIR") {
            let kept = Path::new(&keep).join(name);
            if let Err(err) = std::fs::copy(&log, &kept) {
                eprintln!("bench failover: cannot keep {}: {err}", kept.display());
            }
        }
    }
}
