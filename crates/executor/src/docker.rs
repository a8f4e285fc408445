//! The executor's Docker containers, as `mesos-docker-executor` runs them (reference §7,
//! "Docker containerizer"): for each task the core asks to run in Docker, a runner pulls
//! the image when it is missing (or always, with `force_pull_image`), creates and starts
//! the container, copies its output into the sandbox's `stdout` and `stderr`, waits for
//! it, and removes it before reporting its end, so that no container outlives its task.
//! Kills go to the engine (`docker stop -t`, `docker kill`); the executor removes what
//! is left when it stops, and the agent removes the container by name once the executor
//! is gone.
//!
//! The runners report to the driver in the core's own inputs: [`Input::Spawned`] or
//! [`Input::SpawnFailed`], then [`Input::ContainerExited`].

use crate::container_info::DockerTask;
use crate::core::{Input, Signal};
use mantle_api::TaskId;
use mantle_containerizer::docker::Docker;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How long the output of a container that ended may take to reach the sandbox: the
/// engine closes the log stream when the container ends, so this is only a bound for an
/// engine that does not.
const LOG_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// How long removing the remaining containers may take when the executor stops.
const REMOVE_TIMEOUT: Duration = Duration::from_secs(20);

/// A container whose end the driver has not heard of yet.
struct Live {
    task_id: TaskId,
    name: String,
    runner: JoinHandle<()>,
}

/// The executor's Docker containers.
pub struct Containers {
    docker: Option<Docker>,
    /// Where the containers' output goes: the sandbox as the executor sees it.
    sandbox: PathBuf,
    reports: mpsc::UnboundedSender<Input>,
    live: Vec<Live>,
}

impl Containers {
    /// The containers on the engine at `docker` (`None` when the agent runs no Docker
    /// containerizer); their runners report on the returned channel.
    pub fn new(
        docker: Option<Docker>,
        sandbox: PathBuf,
    ) -> (Containers, mpsc::UnboundedReceiver<Input>) {
        let (reports, received) = mpsc::unbounded_channel();
        let containers = Containers {
            docker,
            sandbox,
            reports,
            live: Vec::new(),
        };
        (containers, received)
    }

    /// Starts the runner of `task`'s container.
    pub fn run(&mut self, task: DockerTask) {
        let Some(docker) = self.docker.clone() else {
            // The core asks only when the agent gave a socket; answer anyway.
            let _ = self.reports.send(Input::SpawnFailed {
                task_id: task.task_id,
                error: "the executor has no docker engine".into(),
            });
            return;
        };
        let (task_id, name) = (task.task_id.clone(), task.name.clone());
        let runner = tokio::spawn(run(
            docker,
            task,
            self.sandbox.join("stdout"),
            self.sandbox.join("stderr"),
            self.reports.clone(),
        ));
        self.live.push(Live {
            task_id,
            name,
            runner,
        });
    }

    /// Whether `task_id` runs in one of these containers.
    pub fn holds(&self, task_id: &TaskId) -> bool {
        self.live.iter().any(|live| &live.task_id == task_id)
    }

    /// Notes a report the driver received: a container that failed to start or ended
    /// has been removed by its runner already.
    pub fn saw(&mut self, report: &Input) {
        if let Input::SpawnFailed { task_id, .. } | Input::ContainerExited { task_id, .. } = report
        {
            self.live.retain(|live| &live.task_id != task_id);
        }
    }

    /// `docker stop -t <grace>`, off the driver's loop: the engine answers only once the
    /// container is gone. The runner reports the end.
    pub fn stop(&self, task_id: &TaskId, grace: Duration) {
        let Some((docker, name)) = self.find(task_id) else {
            return;
        };
        tracing::info!(task_id = %task_id, container = %name, grace_secs = grace.as_secs_f64(), "stopping the task's container");
        tokio::spawn(async move {
            if let Err(err) = docker.stop(&name, grace).await {
                tracing::warn!(container = %name, error = %err, "stopping the container failed");
            }
        });
    }

    /// Sends `signal` to the container's main process (`docker kill -s`).
    pub fn signal(&self, task_id: &TaskId, signal: Signal) {
        let Some((docker, name)) = self.find(task_id) else {
            return;
        };
        let signal = match signal {
            Signal::Term => "TERM",
            Signal::Kill => "KILL",
        };
        tracing::info!(task_id = %task_id, container = %name, signal, "signalling the task's container");
        tokio::spawn(async move {
            // The engine answers 409 for a container that stopped meanwhile.
            if let Err(err) = docker.kill(&name, signal).await {
                tracing::debug!(container = %name, signal, error = %err, "signalling the container failed");
            }
        });
    }

    /// The executor stops with containers still there (it gave up on the agent, or was
    /// told to stop before they ended): their runners stop and the containers are
    /// removed, killed first if they run.
    pub async fn reap(self) {
        let Some(docker) = self.docker else {
            return;
        };
        for live in &self.live {
            live.runner.abort();
        }
        for live in self.live {
            tracing::info!(task_id = %live.task_id, container = %live.name, "removing the task's container as the executor stops");
            remove(&docker, &live.name).await;
        }
    }

    fn find(&self, task_id: &TaskId) -> Option<(Docker, String)> {
        let docker = self.docker.clone()?;
        let live = self.live.iter().find(|live| &live.task_id == task_id)?;
        Some((docker, live.name.clone()))
    }
}

/// One container's life, reported as the core's inputs.
async fn run(
    docker: Docker,
    task: DockerTask,
    stdout: PathBuf,
    stderr: PathBuf,
    reports: mpsc::UnboundedSender<Input>,
) {
    let task_id = task.task_id.clone();
    let name = task.name.clone();
    if let Err(error) = start(&docker, &task).await {
        tracing::error!(task_id = %task_id, container = %name, error = %error, "starting the task's container failed");
        let _ = reports.send(Input::SpawnFailed { task_id, error });
        return;
    }
    tracing::info!(task_id = %task_id, container = %name, "started the task's container");
    let _ = reports.send(Input::Spawned(task_id.clone()));

    let mut logs = tokio::spawn(copy_output(docker.clone(), name.clone(), stdout, stderr));
    let status = match docker.wait(&name).await {
        Ok(status) => status,
        Err(err) => {
            // The container's end is unknown; it is removed (killed if it still runs)
            // below, so the task fails rather than runs unsupervised.
            tracing::error!(container = %name, error = %err, "waiting for the container failed");
            -1
        }
    };
    let oom_killed = match docker.inspect(&name).await {
        Ok(state) => state.is_some_and(|state| state.oom_killed),
        Err(err) => {
            tracing::warn!(container = %name, error = %err, "inspecting the ended container failed");
            false
        }
    };
    // The terminal update follows the output, so that a framework that reads the
    // sandbox on TASK_FINISHED finds all of it.
    if tokio::time::timeout(LOG_DRAIN_TIMEOUT, &mut logs)
        .await
        .is_err()
    {
        logs.abort();
        tracing::warn!(container = %name, "the container's output did not end in time");
    }
    remove(&docker, &name).await;
    tracing::info!(task_id = %task_id, container = %name, status, oom_killed, "the task's container ended");
    let _ = reports.send(Input::ContainerExited {
        task_id,
        status,
        oom_killed,
    });
}

/// Pulls the image if needed, then creates and starts the container; the error says
/// which step failed and carries the engine's message.
async fn start(docker: &Docker, task: &DockerTask) -> Result<(), String> {
    let image = task.spec.image.as_str();
    let present = match task.force_pull {
        true => false,
        false => docker
            .image_exists(image)
            .await
            .map_err(|err| format!("inspecting image '{image}' failed: {err}"))?,
    };
    if !present {
        tracing::info!(image, force = task.force_pull, "pulling the task's image");
        docker
            .pull(image)
            .await
            .map_err(|err| format!("pulling image '{image}' failed: {err}"))?;
    }
    docker
        .create(&task.name, &task.spec)
        .await
        .map_err(|err| format!("creating container {} failed: {err}", task.name))?;
    if let Err(err) = docker.start(&task.name).await {
        remove(docker, &task.name).await;
        return Err(format!("starting container {} failed: {err}", task.name));
    }
    Ok(())
}

/// Appends the container's output to the sandbox files until it ends.
async fn copy_output(docker: Docker, name: String, stdout: PathBuf, stderr: PathBuf) {
    if let Err(err) = docker
        .stream_logs(&name, Path::new(&stdout), Path::new(&stderr))
        .await
    {
        tracing::warn!(container = %name, error = %err, "copying the container's output failed");
    }
}

/// Removes the container, killing it first if it runs; one already gone counts.
async fn remove(docker: &Docker, name: &str) {
    match tokio::time::timeout(REMOVE_TIMEOUT, docker.remove(name, true)).await {
        Ok(Ok(())) => tracing::debug!(container = name, "removed the container"),
        Ok(Err(err)) => {
            tracing::warn!(container = name, error = %err, "removing the container failed")
        }
        Err(_) => tracing::warn!(container = name, "removing the container timed out"),
    }
}
