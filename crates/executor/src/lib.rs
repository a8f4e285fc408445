//! The built-in executor that `mantle executor` runs. It plays two Mesos executors:
//!
//! - the command executor (`mesos-executor`, reference §2 "Command executor"): the agent
//!   starts it for a task that carries a CommandInfo, with the executor id equal to the
//!   task id, and sends one LAUNCH. It runs that task's command in its own process
//!   group, reports TASK_STARTING, TASK_RUNNING and the terminal state, kills the task
//!   on KILL, SHUTDOWN or `max_completion_time`, and exits once the terminal update is
//!   acknowledged;
//! - the default executor (`mesos-default-executor`, reference §1.5 ExecutorInfo type
//!   DEFAULT): the agent starts it for a LAUNCH_GROUP and sends LAUNCH_GROUP events. It
//!   runs every task of every group the same way, each in its own process group, kills
//!   a whole group when one of its tasks is killed or fails (reference §1.2, KILL), and
//!   exits once all its tasks are terminal and acknowledged;
//! - for a LAUNCH whose task has a ContainerInfo of type DOCKER, `mesos-docker-executor`
//!   (reference §7, "Docker containerizer"): when the agent runs the Docker containerizer
//!   (it then sets `MANTLE_DOCKER_SOCKET`), the task runs in a Docker container named
//!   `mesos-<container_id>` instead of a process, with the same updates.
//!
//! The decisions live in `core` (pure, table-tested); `driver` is the async shell around
//! it, `command` starts and signals the tasks' processes, `container_info` turns a
//! task's ContainerInfo into the container to run (pure), `docker` runs and stops those
//! containers, `connection` keeps the subscription to the agent.

mod command;
mod connection;
mod container_info;
mod core;
mod docker;
mod driver;
mod exit_status;
mod settings;
mod timing;

pub use settings::{DockerSettings, Settings};

use mantle_sdk::executor::{Executor, ExecutorEnv};

/// The whole `mantle executor` program: a single-threaded runtime (one small process
/// per task starts faster without a pool of workers), the executor run from the process
/// environment, and the exit code. Both `mantle executor` and `mantle-launcher`, which
/// runs it in the task process it forked, call this.
pub fn main() -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("mantle executor: cannot start the async runtime: {err}");
            return 1;
        }
    };
    let code = match runtime.block_on(run()) {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("mantle executor: {err:#}");
            1
        }
    };
    // The process ends right after this returns, and the kernel closes its sockets:
    // tearing the runtime down piece by piece first would be work for nothing.
    std::mem::forget(runtime);
    code
}

/// Runs the executor from the process environment until its tasks are done. Logs
/// go to stderr, which the agent points at the sandbox's `stderr` file.
pub async fn run() -> anyhow::Result<()> {
    init_logging();
    let env = ExecutorEnv::from_env()?;
    let settings = Settings::from_env().map_err(anyhow::Error::msg)?;
    run_with(env, settings).await
}

/// Runs the executor with an explicit environment and settings.
pub async fn run_with(env: ExecutorEnv, settings: Settings) -> anyhow::Result<()> {
    driver::drive(Executor::new(env), settings).await
}

/// Installs a stderr logger unless the binary already installed one, at the level of
/// `MANTLE_LOGGING_LEVEL` (the agent passes its own on), else `RUST_LOG`, else info.
fn init_logging() {
    let filter = std::env::var("MANTLE_LOGGING_LEVEL")
        .ok()
        .and_then(|level| tracing_subscriber::EnvFilter::try_new(level.to_ascii_lowercase()).ok())
        .or_else(|| tracing_subscriber::EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}
