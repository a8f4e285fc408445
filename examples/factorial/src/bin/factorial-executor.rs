//! `factorial-executor`: the executor of the factorial framework. An agent starts it
//! (with the `MESOS_*` environment of an executor) when `factorial-scheduler` launches
//! the first task on that agent; every later task there runs in it too.
//!
//! For each LAUNCH it sends TASK_RUNNING, computes n! exactly (n is the base64 decimal
//! text in `TaskInfo.data`) and sends TASK_FINISHED with the base64 of the digits in
//! `data`, or TASK_FAILED naming what was wrong with the task data. KILL answers
//! TASK_KILLED. On SHUTDOWN it waits (within the shutdown grace period) until the agent
//! acknowledged its updates, then exits; it also exits when the agent closes the stream.
//! A framework message (MESSAGE) is sent back to the scheduler unchanged.
//! It takes no arguments; set `RUST_LOG` for more logging on stderr.

use anyhow::Context;
use mantle_api::executor::Event;
use mantle_api::{AgentId, TaskId, TaskInfo, TaskState, TaskStatus};
use mantle_sdk::executor::{Executor, ExecutorEnv, ExecutorEvents};
use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::task::AbortHandle;

/// How often, and how far apart, the first SUBSCRIBE is tried: the agent may still be
/// setting up when it starts the executor.
const SUBSCRIBE_ATTEMPTS: u32 = 10;
const SUBSCRIBE_RETRY: Duration = Duration::from_millis(500);

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("factorial-executor: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// The tasks being computed. Whoever takes a task out of it (its computation finishing,
/// or a KILL) sends its terminal update, so exactly one is sent.
#[derive(Clone, Default)]
struct Running {
    tasks: Arc<Mutex<HashMap<TaskId, AbortHandle>>>,
}

impl Running {
    fn lock(&self) -> MutexGuard<'_, HashMap<TaskId, AbortHandle>> {
        self.tasks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn take(&self, task_id: &TaskId) -> Option<AbortHandle> {
        self.lock().remove(task_id)
    }
}

struct Worker {
    executor: Executor,
    running: Running,
    agent_id: Option<AgentId>,
}

impl Worker {
    fn status(&self, task_id: TaskId, state: TaskState, message: Option<String>) -> TaskStatus {
        let mut status = TaskStatus::new(task_id, state);
        status.agent_id = self.agent_id.clone();
        status.message = message;
        status
    }

    fn launch(&self, task: TaskInfo) {
        let task_id = task.task_id.clone();
        let mut running = self.running.lock();
        if running.contains_key(&task_id) {
            tracing::warn!(task_id = %task_id, "ignoring a second launch of a running task");
            return;
        }
        let executor = self.executor.clone();
        let tasks = self.running.clone();
        let running_status = self.status(task_id.clone(), TaskState::Running, None);
        let finished = self.status(task_id.clone(), TaskState::Finished, None);
        // The map stays locked until the task is in it, so the computation cannot
        // finish and look for itself before then.
        let handle = tokio::spawn(async move {
            send(&executor, running_status).await;
            let outcome = tokio::task::spawn_blocking(move || factorial::compute(&task)).await;
            if tasks.take(&finished.task_id).is_none() {
                return; // killed meanwhile; TASK_KILLED went out
            }
            let mut status = finished;
            match outcome {
                Ok(Ok((n, digits))) => {
                    tracing::info!(task_id = %status.task_id, n, digits = digits.len(), "computed");
                    status.data = Some(factorial::encode_result(&digits));
                    status.message = Some(format!("factorial({n}) computed"));
                }
                Ok(Err(problem)) => {
                    status.state = TaskState::Failed;
                    status.message = Some(problem);
                }
                Err(error) => {
                    status.state = TaskState::Failed;
                    status.message = Some(format!("the computation failed: {error}"));
                }
            }
            send(&executor, status).await;
        });
        running.insert(task_id, handle.abort_handle());
    }

    async fn kill(&self, task_id: TaskId) {
        let Some(handle) = self.running.take(&task_id) else {
            tracing::info!(task_id = %task_id, "kill of a task that is not running; ignored");
            return;
        };
        handle.abort();
        let status = self.status(
            task_id,
            TaskState::Killed,
            Some("killed by the framework".into()),
        );
        send(&self.executor, status).await;
    }

    /// Kills what still runs, then reads events until the agent acknowledged every
    /// update or the grace period (less a margin for exiting) is over.
    async fn shutdown(&self, events: &mut ExecutorEvents) {
        let running: Vec<TaskId> = self.running.lock().keys().cloned().collect();
        for task_id in running {
            self.kill(task_id).await;
        }
        let grace = self.executor.env().shutdown_grace_period;
        let deadline =
            tokio::time::Instant::now() + grace.saturating_sub(Duration::from_millis(250));
        while self.executor.unacknowledged() > 0 {
            match tokio::time::timeout_at(deadline, events.next()).await {
                Ok(Ok(Some(_))) => {}
                Ok(Ok(None) | Err(_)) => break,
                Err(_) => {
                    let left = self.executor.unacknowledged();
                    tracing::warn!(unacknowledged = left, "exiting with unacknowledged updates");
                    break;
                }
            }
        }
    }
}

/// Sends an update; a failure is logged, as the client keeps the update for the next
/// subscription and there is nothing better to do here.
async fn send(executor: &Executor, status: TaskStatus) {
    let (task_id, state) = (status.task_id.clone(), status.state);
    if let Err(error) = executor.send_status(status).await {
        tracing::error!(task_id = %task_id, state = %state, error = %error, "sending a status update failed");
    }
}

async fn subscribe(executor: &Executor) -> anyhow::Result<ExecutorEvents> {
    let mut attempt = 1;
    loop {
        match executor.subscribe().await {
            Ok(events) => return Ok(events),
            Err(error) if attempt < SUBSCRIBE_ATTEMPTS => {
                tracing::warn!(error = %error, attempt, "subscribing to the agent failed; retrying");
                attempt += 1;
                tokio::time::sleep(SUBSCRIBE_RETRY).await;
            }
            Err(error) => return Err(error).context("subscribing to the agent"),
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let env = ExecutorEnv::from_env().context("reading the executor environment")?;
    tracing::info!(executor_id = %env.executor_id, framework_id = %env.framework_id,
        agent = %env.agent_endpoint, "starting");
    let executor = Executor::new(env);
    let mut events = subscribe(&executor).await?;
    let mut worker = Worker {
        executor,
        running: Running::default(),
        agent_id: None,
    };
    loop {
        let event = match events.next().await.context("reading the agent's events")? {
            Some(event) => event,
            None => {
                tracing::info!("the agent closed the event stream; exiting");
                return Ok(());
            }
        };
        match event {
            Event::Subscribed(subscribed) => {
                worker.agent_id = subscribed.agent_info.id.clone();
                tracing::info!(agent_id = ?worker.agent_id, "subscribed");
            }
            Event::Launch(launch) => worker.launch(launch.task),
            Event::LaunchGroup(group) => {
                for task in group.task_group.tasks {
                    worker.launch(task);
                }
            }
            Event::Kill(kill) => worker.kill(kill.task_id).await,
            Event::Shutdown => {
                tracing::info!("shutting down");
                worker.shutdown(&mut events).await;
                return Ok(());
            }
            Event::Error(error) => anyhow::bail!("the agent sent an error: {}", error.message),
            Event::Message(message) => {
                // Framework messages are echoed back, so a scheduler can check the path.
                use base64::Engine;
                match base64::engine::general_purpose::STANDARD.decode(&message.data) {
                    Ok(data) => {
                        if let Err(err) = worker.executor.send_message(&data).await {
                            tracing::warn!(error = %err, "cannot echo a framework message");
                        }
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "framework message data is not base64")
                    }
                }
            }
            Event::Acknowledged(_) | Event::Heartbeat | Event::Other(_) => {}
        }
    }
}
