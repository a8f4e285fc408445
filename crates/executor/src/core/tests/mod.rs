//! Transcript tests of the core: each case feeds inputs at given times and compares,
//! line by line, the actions and the next wake-up. `command` covers the command executor
//! (one LAUNCH), `group` the default executor (LAUNCH_GROUP), `docker` a LAUNCH that asks
//! for a Docker container.

mod command;
mod docker;
mod group;

use super::*;
use mantle_api::DurationInfo;
use serde_json::{json, Value};
use std::fmt::Write;

fn config() -> Config {
    Config {
        checkpoint: false,
        shutdown_grace: Duration::from_secs(3),
        ack_timeout: Duration::from_secs(60),
        docker: None,
    }
}

/// A task `id` running `sleep 30`, with the fields of `extra` on top.
fn task_named(id: &str, extra: Value) -> TaskInfo {
    let mut value = json!({
        "name": id, "task_id": {"value": id}, "agent_id": {"value": "a1"},
        "command": {"value": "sleep 30"}
    });
    if let (Some(base), Some(extra)) = (value.as_object_mut(), extra.as_object()) {
        base.extend(extra.clone());
    }
    serde_json::from_value(value).expect("a valid task")
}

fn task(extra: Value) -> TaskInfo {
    task_named("t1", extra)
}

fn launch() -> Input {
    Input::Launch(Box::new(task(json!({}))))
}

fn launch_with(extra: Value) -> Input {
    Input::Launch(Box::new(task(extra)))
}

/// A LAUNCH_GROUP of tasks `(id, extra fields)`.
fn launch_group(tasks: &[(&str, Value)]) -> Input {
    Input::LaunchGroup(
        tasks
            .iter()
            .map(|(id, extra)| task_named(id, extra.clone()))
            .collect(),
    )
}

fn kill(grace_secs: Option<f64>) -> Input {
    kill_task("t1", grace_secs)
}

fn kill_task(id: &str, grace_secs: Option<f64>) -> Input {
    Input::Kill {
        task_id: TaskId::new(id),
        kill_policy: grace_secs.map(|s| KillPolicy {
            grace_period: Some(DurationInfo::from_secs_f64(s)),
        }),
    }
}

fn subscribed(task_killing_state: bool) -> Input {
    Input::Subscribed { task_killing_state }
}

fn spawned(id: &str) -> Input {
    Input::Spawned(TaskId::new(id))
}

fn spawn_failed(id: &str, error: &str) -> Input {
    Input::SpawnFailed {
        task_id: TaskId::new(id),
        error: error.into(),
    }
}

fn exited(id: &str, code: i32) -> Input {
    Input::Exited {
        task_id: TaskId::new(id),
        exit: Exit::Code(code),
    }
}

fn signaled(id: &str, signal: i32) -> Input {
    Input::Exited {
        task_id: TaskId::new(id),
        exit: Exit::Signal(signal),
    }
}

fn label(input: &Input) -> String {
    match input {
        Input::Subscribed { task_killing_state } => {
            format!("subscribed killing={task_killing_state}")
        }
        Input::Launch(task) => format!("launch {}", task.task_id),
        Input::LaunchGroup(tasks) => {
            let ids: Vec<String> = tasks.iter().map(|t| t.task_id.to_string()).collect();
            format!("launch_group {}", ids.join(","))
        }
        Input::Kill {
            task_id,
            kill_policy,
        } => match kill_policy.as_ref().and_then(|p| p.grace_period) {
            Some(grace) => format!("kill {task_id} grace={}", grace.as_secs_f64()),
            None => format!("kill {task_id}"),
        },
        Input::Shutdown => "shutdown".into(),
        Input::Spawned(task_id) => format!("spawned {task_id}"),
        Input::SpawnFailed { task_id, error } => format!("spawn_failed {task_id} {error}"),
        Input::Exited {
            task_id,
            exit: Exit::Code(code),
        } => format!("exited {task_id} {code}"),
        Input::Exited {
            task_id,
            exit: Exit::Signal(signal),
        } => format!("signaled {task_id} {signal}"),
        Input::ContainerExited {
            task_id,
            status,
            oom_killed,
        } => match oom_killed {
            true => format!("container_exited {task_id} {status} oom"),
            false => format!("container_exited {task_id} {status}"),
        },
        Input::Disconnected => "disconnected".into(),
        Input::GaveUp => "gave_up".into(),
        Input::Tick => "tick".into(),
    }
}

fn render(action: &Action) -> String {
    match action {
        Action::Send(status) => {
            let mut text = format!("send {} {}", status.task_id, status.state);
            if let Some(message) = &status.message {
                write!(text, " {message:?}").unwrap();
            }
            if let Some(reason) = status.reason {
                write!(text, " {reason}").unwrap();
            }
            text
        }
        Action::Spawn(task) => format!("spawn {}", task.task_id),
        Action::RunContainer(docker) => {
            format!(
                "run {} in {} ({})",
                docker.task_id, docker.name, docker.spec.image
            )
        }
        Action::StopContainer { task_id, grace } => {
            format!("stop {task_id} grace={}", grace.as_secs_f64())
        }
        Action::Signal {
            task_id,
            signal: Signal::Term,
        } => format!("SIGTERM {task_id}"),
        Action::Signal {
            task_id,
            signal: Signal::Kill,
        } => format!("SIGKILL {task_id}"),
        Action::Exit => "exit".into(),
    }
}

/// Runs `steps` (seconds since the start, input) and compares the transcript: per
/// step, the actions and the next deadline in seconds.
fn check_with(config: Config, steps: Vec<(f64, Input)>, expected: &str) {
    let base = Instant::now();
    let mut core = Core::new(config);
    let mut transcript = String::new();
    for (secs, input) in steps {
        let line_label = label(&input);
        let actions = core.handle(input, base + Duration::from_secs_f64(secs));
        let rendered: Vec<String> = actions.iter().map(render).collect();
        let rendered = if rendered.is_empty() {
            "nothing".to_string()
        } else {
            rendered.join("; ")
        };
        write!(transcript, "{secs} {line_label}: {rendered}").unwrap();
        if let Some(deadline) = core.next_deadline() {
            write!(transcript, " | wake {}", (deadline - base).as_secs_f64()).unwrap();
        }
        transcript.push('\n');
    }
    let expected: Vec<&str> = expected
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let actual: Vec<&str> = transcript.lines().collect();
    assert_eq!(actual, expected, "\ntranscript:\n{transcript}");
}

fn check(steps: Vec<(f64, Input)>, expected: &str) {
    check_with(config(), steps, expected)
}

/// Feeds `steps` (all at the start) and asks whether the executor should exit
/// `at_secs` later with `unacknowledged` updates outstanding.
fn check_exit(steps: Vec<Input>, at_secs: u64, unacknowledged: usize, expected: bool) {
    let base = Instant::now();
    let mut core = Core::new(config());
    for input in steps.clone() {
        core.handle(input, base);
    }
    let now = base + Duration::from_secs(at_secs);
    assert_eq!(
        core.should_exit(now, unacknowledged),
        expected,
        "{steps:?} at {at_secs}s, {unacknowledged} unacknowledged"
    );
}
