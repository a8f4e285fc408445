//! The Mantle agent: registers with the master, runs executors for its tasks in
//! sandboxes, serves the executor API, and reports status updates reliably.
//!
//! Code map: [`core`] is the pure state machine (with the status update manager in
//! `core::updates`); [`event_loop`] owns it and carries out its actions; [`launcher`]
//! starts and kills executor processes; [`master_link`] talks to the master;
//! [`http`] and [`executor_api`] serve HTTP, with `files`, `metrics`, `monitor` and
//! `operator_api` for the operator-facing endpoints, all rendered from the snapshot in
//! `view`; [`state`] renders `/state`; [`config`] and
//! [`detect`] turn flags into settings; [`sandbox`] holds the work_dir layout and the
//! executor environment; [`simulated`] holds the simulated containerizer
//! (`--containerizers=simulated`) and the in-process fleet of simulated agents.

pub mod checkpoint;
pub mod config;
pub mod containers;
pub mod core;
pub mod detect;
pub mod error;
mod event_loop;
pub mod executor_api;
mod files;
mod http;
pub mod launcher;
pub mod launcher_server;
mod master_link;
mod metrics;
mod monitor;
mod operator_api;
pub mod sandbox;
pub mod simulated;
pub mod state;
mod view;

pub use config::AgentConfig;
pub use error::AgentError;

use crate::core::{Core, CoreConfig};
use crate::event_loop::EventLoop;
use mantle_containerizer::docker::Docker;
use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// A running agent.
pub struct AgentHandle {
    address: SocketAddr,
    /// Carries whether every container is to be killed, checkpointed ones included.
    shutdown: Option<oneshot::Sender<bool>>,
    event_loop: Option<JoinHandle<()>>,
    server: JoinHandle<()>,
    master_link: JoinHandle<()>,
}

impl AgentHandle {
    /// The address the agent's HTTP server listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Stops the agent as Mesos does: the executors of frameworks that do not checkpoint
    /// are killed, the others keep running for the next run to recover; its server and
    /// master link end.
    pub async fn shutdown(self) {
        self.stop(false).await
    }

    /// Stops the agent and kills every container it runs.
    pub async fn shutdown_all(self) {
        self.stop(true).await
    }

    async fn stop(mut self, kill_all: bool) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(kill_all);
        }
        if let Some(event_loop) = self.event_loop.take() {
            let _ = event_loop.await;
        }
        self.master_link.abort();
        self.server.abort();
        let _ = (&mut self.master_link).await;
        let _ = (&mut self.server).await;
    }
}

impl Drop for AgentHandle {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(false);
        }
        self.master_link.abort();
        self.server.abort();
    }
}

/// How long looking for, and removing, Docker containers left by an earlier run may
/// delay the agent's start.
const LEFTOVER_CLEANUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Removes the Docker containers an earlier run of this agent left behind: those named
/// `mesos-*` whose `mantle.agent` label is this agent's work_dir, except those of the
/// containers being recovered (their executors still supervise them). Containers of
/// other agents on the same engine carry another work_dir and stay. An engine that does
/// not answer only costs a warning: tasks that ask for Docker will then fail with the
/// engine's error.
async fn remove_leftover_containers(docker: &Docker, work_dir: &Path, keep: &HashSet<String>) {
    let work_dir = work_dir.to_string_lossy();
    let cleanup = async {
        let listed = match docker.list("mesos-").await {
            Ok(listed) => listed,
            Err(err) => {
                tracing::warn!(socket = %docker.socket().display(), error = %err, "cannot list docker containers left by an earlier run");
                return;
            }
        };
        let ours = listed.into_iter().filter(|container| {
            let mine = container
                .labels
                .get(mantle_containerizer::docker::AGENT_LABEL)
                .map(String::as_str)
                == Some(&*work_dir);
            let kept = container
                .names
                .iter()
                .any(|name| keep.contains(name.trim_start_matches('/')));
            mine && !kept
        });
        for container in ours {
            let names = container.names.join(",");
            match docker.remove(&container.id, true).await {
                Ok(()) => tracing::info!(
                    container = %names,
                    id = %container.id,
                    state = %container.state,
                    "removed a docker container left by an earlier run of this agent"
                ),
                Err(err) => {
                    tracing::warn!(container = %names, error = %err, "cannot remove a docker container left by an earlier run")
                }
            }
        }
    };
    if tokio::time::timeout(LEFTOVER_CLEANUP_TIMEOUT, cleanup)
        .await
        .is_err()
    {
        tracing::warn!("removing docker containers left by an earlier run timed out");
    }
}

/// Kills the processes of recorded containers that will not be recovered (those of
/// frameworks that do not checkpoint, which die with the agent as in Mesos, and any
/// left behind otherwise) and forgets their records.
fn kill_orphans(
    containers: &containers::Containerizer,
    work_dir: &Path,
    recovered: &core::Recovered,
) -> HashSet<String> {
    let kept: HashSet<String> = recovered
        .frameworks
        .iter()
        .flat_map(|f| &f.executors)
        .map(|e| e.container_id.to_string())
        .collect();
    for (container_id, rundir) in checkpoint::recorded_runs(work_dir) {
        if kept.contains(container_id.as_str()) && !recovered.rebooted {
            continue;
        }
        let running = matches!(mantle_containerizer::launch::read_status(&rundir), Ok(None));
        if running && !recovered.rebooted {
            if let Ok(Some(pid)) = mantle_containerizer::launch::read_pid(&rundir) {
                // The pid may have been reused since: only the container's own executor
                // carries its id in its environment.
                if runs_container(pid, container_id.as_str()) {
                    tracing::info!(container_id = %container_id, pid, "killing a container that is not recovered");
                    launcher::kill_group(pid as u32);
                }
            }
        }
        containers.destroy_orphan(&container_id);
        if !kept.contains(container_id.as_str()) {
            if let Err(err) = std::fs::remove_dir_all(&rundir) {
                tracing::warn!(path = %rundir.display(), error = %err, "cannot remove the records of an old container");
            }
        }
    }
    kept.iter()
        .map(|id| core::docker_container_name(&mantle_api::ContainerId::new(id.as_str())))
        .collect()
}

/// Whether process `pid` is the executor of `container_id` (its environment says so).
fn runs_container(pid: i32, container_id: &str) -> bool {
    let wanted = format!("MESOS_CONTAINER_ID={container_id}");
    std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|environ| {
        environ
            .split(|b| *b == 0)
            .any(|variable| variable == wanted.as_bytes())
    })
}

/// `--recover=cleanup`: kills every container an earlier run recorded, forgets its
/// checkpoints (the next start registers as a new agent) and returns how many
/// containers it found.
pub fn cleanup(config: &AgentConfig) -> anyhow::Result<usize> {
    let settings = config::validate(config)?;
    let containers = containers::Containerizer::new(settings.containers.clone())?;
    let runs = checkpoint::recorded_runs(&settings.work_dir);
    let count = runs.len();
    kill_orphans(&containers, &settings.work_dir, &core::Recovered::default());
    checkpoint::forget_all(&settings.work_dir)?;
    Ok(count)
}

/// Validates the configuration, recovers what an earlier run checkpointed, binds the
/// HTTP server and starts the agent.
pub async fn start(config: AgentConfig) -> anyhow::Result<AgentHandle> {
    let settings = config::validate(&config)?;
    let containers = Arc::new(match settings.simulated {
        Some(_) => containers::Containerizer::simulated(),
        None => containers::Containerizer::new(settings.containers.clone())?,
    });
    let docker = settings
        .docker_enabled
        .then(|| Docker::new(&settings.docker_socket));
    let (recovered, recovery_errors) =
        checkpoint::read_counting(&settings.work_dir, settings.strict)?;
    let keep = kill_orphans(&containers, &settings.work_dir, &recovered);
    // Before anything can launch: a container of this run must not look like a leftover.
    if let Some(docker) = &docker {
        remove_leftover_containers(docker, &settings.work_dir, &keep).await;
    }
    let bind = SocketAddr::from((settings.ip, settings.port));
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|source| AgentError::Bind {
            address: bind,
            source,
        })?;
    let address = listener.local_addr()?;
    let start_time = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default();
    let mut core = Core::new(CoreConfig {
        hostname: settings.hostname.clone(),
        ip: settings.ip,
        port: address.port(),
        resources: settings.resources.clone(),
        attributes: settings.attributes.clone(),
        work_dir: settings.work_dir.clone(),
        launcher: settings.launcher.clone(),
        executor_registration_timeout: settings.executor_registration_timeout,
        executor_shutdown_grace_period: settings.executor_shutdown_grace_period,
        executor_reregistration_timeout: settings.executor_reregistration_timeout,
        recovery_timeout: settings.recovery_timeout,
        docker_socket: settings
            .docker_enabled
            .then(|| settings.docker_socket.clone()),
        flags: settings.flags.clone(),
        start_time,
        seed: rand::random(),
    });
    let seed = rand::random();
    core.counters.recovery_errors = recovery_errors;
    tracing::info!(
        address = %address,
        master = %settings.master,
        work_dir = %settings.work_dir.display(),
        resources = %settings.resources.to_text(),
        docker = settings.docker_enabled,
        simulated = settings.simulated.is_some(),
        "starting agent"
    );

    let (commands_tx, commands_rx) = mpsc::unbounded_channel();
    let (calls_tx, calls_rx) = mpsc::unbounded_channel();
    let (snapshot_tx, snapshot_rx) = watch::channel(Arc::new(view::View::of(&core)));
    let mut event_loop = EventLoop::new(
        core,
        commands_rx,
        commands_tx.clone(),
        calls_tx,
        snapshot_tx,
        settings.work_dir.clone(),
        containers.clone(),
    )
    .with_docker(docker);
    if let Some(task_duration) = settings.simulated {
        let settings = simulated::Settings {
            task_duration,
            kill_delay: simulated::executors::DEFAULT_KILL_DELAY,
            launcher: settings.launcher.clone(),
            seed,
        };
        let simulation = simulated::Simulation::new(settings, true, None);
        event_loop = event_loop.with_simulation(simulation);
    }
    event_loop.recover(recovered);
    let (shutdown_tx, shutdown_rx) = oneshot::channel();
    let event_loop = tokio::spawn(event_loop.run(shutdown_rx));

    let app = http::AppState {
        commands: commands_tx.clone(),
        snapshot: snapshot_rx,
        next_stream: Arc::new(AtomicU64::new(1)),
        containers,
    };
    let server = tokio::spawn(async move {
        // Executors and the master's tools talk to the agent in small writes (RecordIO
        // events, status updates): without TCP_NODELAY a write behind an unacknowledged
        // one waits for the peer's delayed ACK.
        use axum::serve::ListenerExt;
        let listener = listener.tap_io(|stream| {
            let _ = stream.set_nodelay(true);
        });
        if let Err(err) = axum::serve(listener, http::service(app)).await {
            tracing::error!(error = %err, "agent http server failed");
        }
    });
    let master_link = tokio::spawn(master_link::run(
        settings.master.clone(),
        commands_tx,
        calls_rx,
        master_link::LinkOptions::single(),
    ));
    Ok(AgentHandle {
        address,
        shutdown: Some(shutdown_tx),
        event_loop: Some(event_loop),
        server,
        master_link,
    })
}

/// Runs the agent until `shutdown` completes; with `--recover=cleanup` cleans up and
/// returns instead.
pub async fn run(
    config: AgentConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    if config.recover == config::Recover::Cleanup {
        let killed = cleanup(&config)?;
        tracing::info!(
            containers = killed,
            "--recover=cleanup: killed the recorded containers and forgot the checkpoints; exiting"
        );
        return Ok(());
    }
    let handle = start(config).await?;
    shutdown.await;
    tracing::info!("agent shutting down");
    handle.shutdown().await;
    Ok(())
}
