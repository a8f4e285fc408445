//! The async shell around [`Core`]: feeds it the agent's events, the tasks' exits, the
//! reports of their Docker containers, timer ticks and SIGTERM, and performs the actions
//! it returns (send an update through the SDK client, spawn a task's command or run its
//! container, signal a task's process group or its container, stop).

use crate::command;
use crate::connection::{self, Feed};
use crate::container_info::DockerContext;
use crate::core::{Action, Config, Core, Input, Signal};
use crate::docker::Containers;
use crate::exit_status::Exit;
use crate::settings::Settings;
use crate::timing::shutdown_kill_grace;
use mantle_api::executor::Event;
use mantle_api::TaskId;
use mantle_containerizer::docker::Docker;
use mantle_sdk::executor::Executor;
use std::collections::VecDeque;
use std::future::Future;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::task::Poll;
use std::time::{Duration, Instant};
use tokio::process::Child;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

/// How long to wait for the killed tasks' processes when stopping.
const REAP_TIMEOUT: Duration = Duration::from_secs(5);

/// The core's input for an event, if the event concerns it.
pub fn input_for(event: Event) -> Option<Input> {
    match event {
        Event::Subscribed(subscribed) => Some(Input::Subscribed {
            task_killing_state: subscribed
                .framework_info
                .has_capability("TASK_KILLING_STATE"),
        }),
        Event::Launch(launch) => Some(Input::Launch(Box::new(launch.task))),
        Event::LaunchGroup(group) => Some(Input::LaunchGroup(group.task_group.tasks)),
        Event::Kill(kill) => Some(Input::Kill {
            task_id: kill.task_id,
            kill_policy: kill.kill_policy,
        }),
        Event::Shutdown => Some(Input::Shutdown),
        Event::Error(error) => {
            tracing::warn!(message = %error.message, "the agent reported an error");
            None
        }
        // The SDK client has already cleared acknowledged updates; the loop re-checks
        // whether it may exit after every event.
        Event::Acknowledged(_) | Event::Message(_) | Event::Heartbeat | Event::Other(_) => None,
    }
}

/// A task's process, from its spawn until the driver has seen it end. Signals go only
/// to processes listed here, which are not reaped yet, so their group ids cannot have
/// been reused.
struct Process {
    task_id: TaskId,
    child: Child,
    pid: u32,
}

pub async fn drive(executor: Executor, settings: Settings) -> anyhow::Result<()> {
    let env = executor.env().clone();
    let cwd: Option<PathBuf> = env.sandbox.clone().or_else(|| env.directory.clone());
    // The sandbox as this process sees it, for the containers' output files, and as the
    // host sees it, for the engine's bind mount; they differ when the executor runs in
    // a mount namespace (`filesystem/linux`).
    let local_sandbox = cwd
        .clone()
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_default();
    let host_sandbox = env
        .directory
        .clone()
        .unwrap_or_else(|| local_sandbox.clone());
    let docker = settings.docker.as_ref().map(|docker| DockerContext {
        container_name: docker.container_name.clone(),
        agent_label: docker.agent_label.clone(),
        sandbox: host_sandbox,
    });
    let (mut containers, mut container_reports) = Containers::new(
        settings
            .docker
            .as_ref()
            .map(|docker| Docker::new(&docker.socket)),
        local_sandbox,
    );
    let mut core = Core::new(Config {
        checkpoint: env.checkpoint,
        shutdown_grace: shutdown_kill_grace(env.shutdown_grace_period),
        ack_timeout: settings.ack_timeout,
        docker,
    });
    tracing::info!(
        executor_id = %env.executor_id,
        framework_id = %env.framework_id,
        agent = %env.agent_endpoint,
        checkpoint = env.checkpoint,
        docker = settings.docker.is_some(),
        "starting the executor"
    );
    let mut sigterm = match settings.handle_sigterm {
        true => Some(signal(SignalKind::terminate())?),
        false => None,
    };
    let (feed_tx, mut feed) = mpsc::unbounded_channel();
    let link = tokio::spawn(connection::run(executor.clone(), settings, feed_tx));
    let _stop_link = AbortOnDrop(link);

    let mut processes: Vec<Process> = Vec::new();
    let mut feed_open = true;
    loop {
        if core.should_exit(Instant::now(), executor.unacknowledged()) {
            break;
        }
        let deadline = core.next_deadline();
        let input = tokio::select! {
            item = feed.recv(), if feed_open => match item {
                Some(Feed::Event(event)) => input_for(event),
                Some(Feed::Disconnected) => Some(Input::Disconnected),
                Some(Feed::GaveUp) => Some(Input::GaveUp),
                None => {
                    feed_open = false;
                    Some(Input::GaveUp)
                }
            },
            (index, status) = wait_any(&mut processes) => {
                let process = processes.swap_remove(index);
                let exit = match status {
                    Ok(status) => Exit::from_status(status),
                    Err(err) => {
                        tracing::error!(task_id = %process.task_id, pid = process.pid, error = %err, "waiting for the task failed");
                        Exit::Code(-1)
                    }
                };
                tracing::info!(task_id = %process.task_id, pid = process.pid, exit = ?exit, "the task's process ended");
                Some(Input::Exited { task_id: process.task_id, exit })
            },
            Some(report) = container_reports.recv() => {
                containers.saw(&report);
                Some(report)
            },
            () = sleep_until(deadline) => Some(Input::Tick),
            () = terminated(&mut sigterm) => {
                tracing::info!("received SIGTERM; shutting down");
                Some(Input::Shutdown)
            },
        };
        let Some(input) = input else { continue };
        let mut actions: VecDeque<Action> = core.handle(input, Instant::now()).into();
        let mut stop = false;
        while let Some(action) = actions.pop_front() {
            match action {
                Action::Send(status) => {
                    let (task_id, state) = (status.task_id.clone(), status.state);
                    match executor.send_status(*status).await {
                        Ok(uuid) => {
                            tracing::info!(task_id = %task_id, state = %state, uuid = %uuid, "sent a status update")
                        }
                        Err(err) => {
                            tracing::warn!(task_id = %task_id, state = %state, error = %err, "sending a status update failed")
                        }
                    }
                }
                Action::Spawn(info) => {
                    let task_id = info.task_id.clone();
                    let spawned = match info.command.as_ref() {
                        Some(command_info) => command::spawn(command_info, cwd.as_deref()),
                        None => Err("the task has no command".to_string()),
                    };
                    let next = match spawned {
                        Ok(child) => {
                            let pid = child.id().unwrap_or_default();
                            tracing::info!(task_id = %task_id, pid, "started the task's process");
                            processes.push(Process {
                                task_id: task_id.clone(),
                                child,
                                pid,
                            });
                            Input::Spawned(task_id)
                        }
                        Err(error) => {
                            tracing::error!(task_id = %task_id, error = %error, "starting the task's process failed");
                            Input::SpawnFailed { task_id, error }
                        }
                    };
                    actions.extend(core.handle(next, Instant::now()));
                }
                Action::RunContainer(docker) => containers.run(*docker),
                Action::StopContainer { task_id, grace } => containers.stop(&task_id, grace),
                Action::Signal { task_id, signal } if containers.holds(&task_id) => {
                    containers.signal(&task_id, signal)
                }
                Action::Signal { task_id, signal } => {
                    let Some(process) = processes.iter().find(|p| p.task_id == task_id) else {
                        tracing::debug!(task_id = %task_id, signal = ?signal, "not signalling a task whose process ended");
                        continue;
                    };
                    match command::signal_group(process.pid, signal) {
                        Ok(()) => {
                            tracing::info!(task_id = %task_id, pid = process.pid, signal = ?signal, "signalled the task's process group")
                        }
                        Err(err) => {
                            tracing::warn!(task_id = %task_id, pid = process.pid, signal = ?signal, error = %err, "signalling the task failed")
                        }
                    }
                }
                Action::Exit => stop = true,
            }
        }
        if stop {
            break;
        }
    }

    reap(processes).await;
    containers.reap().await;
    tracing::info!(
        unacknowledged = executor.unacknowledged(),
        "the executor is exiting"
    );
    Ok(())
}

/// Stopping with tasks still running (the agent is gone, or the executor was told to
/// stop before its tasks ended): they must not outlive the executor.
async fn reap(mut processes: Vec<Process>) {
    for process in &processes {
        if let Err(err) = command::signal_group(process.pid, Signal::Kill) {
            tracing::warn!(task_id = %process.task_id, pid = process.pid, error = %err, "killing the task failed");
        }
    }
    let deadline = tokio::time::Instant::now() + REAP_TIMEOUT;
    while !processes.is_empty() {
        match tokio::time::timeout_at(deadline, wait_any(&mut processes)).await {
            Ok((index, _)) => {
                processes.swap_remove(index);
            }
            Err(_) => {
                for process in &processes {
                    tracing::warn!(task_id = %process.task_id, pid = process.pid, "the killed task did not exit in time");
                }
                return;
            }
        }
    }
}

/// Waits until one of the processes ends; returns its index and exit status. Never
/// returns when there are none.
async fn wait_any(processes: &mut [Process]) -> (usize, std::io::Result<ExitStatus>) {
    if processes.is_empty() {
        return std::future::pending().await;
    }
    std::future::poll_fn(|cx| {
        for (index, process) in processes.iter_mut().enumerate() {
            // `Child::wait` is cancel safe: the child keeps its wake-up registration and
            // exit status, so a fresh wait per poll loses nothing.
            let wait = std::pin::pin!(process.child.wait());
            if let Poll::Ready(status) = wait.poll(cx) {
                return Poll::Ready((index, status));
            }
        }
        Poll::Pending
    })
    .await
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

async fn terminated(sigterm: &mut Option<tokio::signal::unix::Signal>) {
    if let Some(sigterm) = sigterm {
        if sigterm.recv().await.is_some() {
            return;
        }
    }
    std::future::pending().await
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(event: serde_json::Value, expected: Option<Input>) {
        let parsed = Event::from_value(event.clone()).expect("a valid event");
        assert_eq!(input_for(parsed), expected, "{event}");
    }

    fn subscribed(capabilities: serde_json::Value) -> serde_json::Value {
        json!({"type": "SUBSCRIBED", "subscribed": {
            "executor_info": {"executor_id": {"value": "t1"}},
            "framework_info": {"user": "u", "name": "n", "id": {"value": "f1"}, "capabilities": capabilities},
            "agent_info": {"hostname": "h"}}})
    }

    #[test]
    fn events_to_inputs() {
        check(
            subscribed(json!([])),
            Some(Input::Subscribed {
                task_killing_state: false,
            }),
        );
        check(
            subscribed(json!([{"type": "PARTITION_AWARE"}, {"type": "TASK_KILLING_STATE"}])),
            Some(Input::Subscribed {
                task_killing_state: true,
            }),
        );
        check(
            json!({"type": "KILL", "kill": {"task_id": {"value": "t1"}}}),
            Some(Input::Kill {
                task_id: "t1".into(),
                kill_policy: None,
            }),
        );
        let tasks = json!([
            {"name": "a", "task_id": {"value": "a"}, "agent_id": {"value": "s"},
                "command": {"value": "true"}},
            {"name": "b", "task_id": {"value": "b"}, "agent_id": {"value": "s"}}]);
        check(
            json!({"type": "LAUNCH_GROUP", "launch_group": {"task_group": {"tasks": tasks.clone()}}}),
            Some(Input::LaunchGroup(
                serde_json::from_value(tasks).expect("valid tasks"),
            )),
        );
        check(json!({"type": "SHUTDOWN"}), Some(Input::Shutdown));
        check(json!({"type": "HEARTBEAT"}), None);
        check(json!({"type": "ERROR", "error": {"message": "boom"}}), None);
        check(
            json!({"type": "MESSAGE", "message": {"data": "aGk="}}),
            None,
        );
        check(
            json!({"type": "ACKNOWLEDGED", "acknowledged": {"task_id": {"value": "t1"}, "uuid": "x"}}),
            None,
        );
        check(json!({"type": "SOMETHING_NEW"}), None);
    }
}
