//! Transcript tests of the simulated executors: what they tell the core, and when.

use super::executors::{Executors, Settings, SIGKILL_STATUS};
use crate::core::{ContainerLimits, Input, LaunchSpec, Now};
use mantle_api::executor::{
    Acknowledged, Event, KillEvent, LaunchEvent, LaunchGroupEvent, Subscribed,
};
use mantle_api::{
    AgentId, AgentInfo, Capability, CommandInfo, ContainerId, DurationInfo, ExecutorId,
    ExecutorInfo, FrameworkId, FrameworkInfo, KillPolicy, Source, TaskGroupInfo, TaskId, TaskInfo,
    TaskState,
};
use std::path::PathBuf;
use std::time::Duration;

const LAUNCHER: &str = "/usr/bin/mantle";

/// One simulated executor driven by hand, with the clock in milliseconds.
struct Harness {
    executors: Executors,
    now_ms: u64,
    stream: u64,
    container_id: ContainerId,
}

fn now(ms: u64) -> Now {
    Now {
        mono: Duration::from_millis(ms),
        unix: 1_700_000_000.0 + ms as f64 / 1000.0,
    }
}

fn command(text: &str) -> CommandInfo {
    CommandInfo::shell(text)
}

fn task(id: &str, text: Option<&str>) -> TaskInfo {
    serde_json::from_value(serde_json::json!({
        "name": id,
        "task_id": {"value": id},
        "agent_id": {"value": "a"},
    }))
    .map(|mut t: TaskInfo| {
        t.command = text.map(command);
        t
    })
    .unwrap()
}

/// The message of an update.
fn message(input: &Input) -> &str {
    match input {
        Input::Update { status, .. } => status.message.as_deref().unwrap_or_default(),
        other => panic!("not an update: {other:?}"),
    }
}

/// The updates among `inputs`, as `(task, state)`.
fn updates(inputs: &[Input]) -> Vec<(String, TaskState)> {
    inputs
        .iter()
        .filter_map(|input| match input {
            Input::Update { status, .. } => Some((status.task_id.value.to_string(), status.state)),
            _ => None,
        })
        .collect()
}

impl Harness {
    /// Launches an executor: the built-in one, or a custom one.
    fn start(builtin: bool, killing_state: bool) -> Harness {
        let mut executors = Executors::new(Settings {
            task_duration: Duration::from_millis(500),
            kill_delay: Duration::from_millis(100),
            launcher: PathBuf::from(LAUNCHER),
            seed: 7,
        });
        let mut spec_command = command("/opt/my-executor");
        if builtin {
            spec_command.shell = false;
            spec_command.value = Some(LAUNCHER.into());
            spec_command.arguments = vec![LAUNCHER.into(), "executor".into()];
        }
        let container_id = ContainerId::new("c1");
        let spec = LaunchSpec {
            framework_id: FrameworkId::new("f"),
            executor_id: ExecutorId::new("e"),
            container_id: container_id.clone(),
            agent_id: AgentId::new("a"),
            directory: PathBuf::from("/nonexistent"),
            command: spec_command,
            env: Vec::new(),
            limits: ContainerLimits::default(),
            user: None,
            container: None,
            checkpoint: false,
        };
        let inputs = executors.launch(&spec);
        let [Input::Subscribe {
            framework_id,
            executor_id,
            stream,
            ..
        }] = inputs.as_slice()
        else {
            panic!("expected one SUBSCRIBE, got {inputs:?}");
        };
        assert_eq!((framework_id.as_str(), executor_id.as_str()), ("f", "e"));
        assert!(executors.owns_stream(*stream));
        let mut harness = Harness {
            executors,
            now_ms: 0,
            stream: *stream,
            container_id,
        };
        let mut framework: FrameworkInfo = serde_json::from_value(serde_json::json!({
            "user": "u", "name": "fw", "id": {"value": "f"}
        }))
        .unwrap();
        if killing_state {
            framework.capabilities.push(Capability {
                kind: "TASK_KILLING_STATE".into(),
            });
        }
        let subscribed = Event::Subscribed(Box::new(Subscribed {
            executor_info: serde_json::from_value::<ExecutorInfo>(serde_json::json!({
                "executor_id": {"value": "e"}
            }))
            .unwrap(),
            framework_info: framework,
            agent_info: AgentInfo {
                hostname: "h".into(),
                port: 5051,
                resources: Vec::new(),
                attributes: Vec::new(),
                id: None,
                capabilities: Vec::new(),
            },
            container_id: None,
        }));
        assert!(harness.event(subscribed).is_empty());
        harness
    }

    fn event(&mut self, event: Event) -> Vec<Input> {
        self.executors.event(now(self.now_ms), self.stream, event)
    }

    fn launch(&mut self, task: TaskInfo) -> Vec<Input> {
        self.event(Event::Launch(Box::new(LaunchEvent { task })))
    }

    /// Acknowledges every update among `inputs`, as the agent does once it took them.
    fn acknowledge(&mut self, inputs: &[Input]) -> Vec<Input> {
        let mut out = Vec::new();
        for input in inputs {
            if let Input::Update { status, .. } = input {
                let ack = Acknowledged {
                    task_id: status.task_id.clone(),
                    uuid: status.uuid.clone().unwrap(),
                };
                out.extend(self.event(Event::Acknowledged(ack)));
            }
        }
        out
    }

    /// Moves the clock to `ms` and fires what is due.
    fn at(&mut self, ms: u64) -> Vec<Input> {
        self.now_ms = ms;
        self.executors.due(now(ms))
    }

    fn next_deadline_ms(&self) -> Option<u128> {
        self.executors.next_deadline().map(|d| d.as_millis())
    }

    /// Asserts that the executor exits with `status` in `inputs` (its stream closes
    /// first).
    fn assert_exit(&self, inputs: &[Input], status: i32) {
        let exit = &inputs[inputs.len() - 2..];
        assert_eq!(
            exit[0],
            Input::StreamClosed {
                stream: self.stream
            }
        );
        assert_eq!(
            exit[1],
            Input::Exited {
                container_id: self.container_id.clone(),
                status
            }
        );
    }
}

#[test]
fn command_task_runs_for_its_sleep_then_finishes_and_its_executor_exits() {
    let mut h = Harness::start(true, false);
    let started = h.launch(task("t", Some("sleep 2")));
    assert_eq!(
        updates(&started),
        [
            ("t".into(), TaskState::Starting),
            ("t".into(), TaskState::Running)
        ]
    );
    let Input::Update { status, .. } = &started[0] else {
        panic!()
    };
    assert_eq!(status.source, Some(Source::Executor));
    assert_eq!(status.executor_id, Some(ExecutorId::new("e")));
    assert_eq!(status.timestamp, Some(1_700_000_000.0));
    assert_eq!(
        mantle_api::validate_status_uuid("uuid", status.uuid.as_deref().unwrap()),
        Ok(())
    );
    // Acknowledging the first two updates is not the end of the executor.
    assert!(h.acknowledge(&started).is_empty());
    assert_eq!(h.next_deadline_ms(), Some(2000));
    assert!(h.at(1999).is_empty());
    let ended = h.at(2000);
    assert_eq!(updates(&ended), [("t".into(), TaskState::Finished)]);
    assert_eq!(message(&ended[0]), "Command exited with status 0");
    assert_eq!(h.next_deadline_ms(), None);
    let exit = h.acknowledge(&ended);
    h.assert_exit(&exit, 0);
    assert!(h.executors.is_empty());
    assert_eq!(h.executors.stats.launched, 1);
    assert_eq!(h.executors.stats.finished, 1);
}

#[test]
fn failing_command_fails_after_the_default_duration() {
    let mut h = Harness::start(true, false);
    h.now_ms = 100;
    let started = h.launch(task("t", Some("exit 3")));
    assert_eq!(h.next_deadline_ms(), Some(600));
    h.acknowledge(&started);
    let ended = h.at(600);
    assert_eq!(updates(&ended), [("t".into(), TaskState::Failed)]);
    assert_eq!(message(&ended[0]), "Command exited with status 3");
    assert_eq!(h.executors.stats.failed, 1);
}

#[test]
fn kill_reports_killing_then_killed_after_the_kill_delay() {
    let mut h = Harness::start(true, true);
    let started = h.launch(task("t", Some("sleep infinity")));
    assert_eq!(
        h.next_deadline_ms(),
        None,
        "a task that sleeps forever has no timer"
    );
    h.acknowledge(&started);
    h.now_ms = 1000;
    let kill = h.event(Event::Kill(KillEvent {
        task_id: TaskId::new("t"),
        kill_policy: None,
    }));
    assert_eq!(updates(&kill), [("t".into(), TaskState::Killing)]);
    h.acknowledge(&kill);
    assert_eq!(h.next_deadline_ms(), Some(1100));
    // A second kill changes nothing.
    let again = h.event(Event::Kill(KillEvent {
        task_id: TaskId::new("t"),
        kill_policy: None,
    }));
    assert!(again.is_empty());
    let killed = h.at(1100);
    assert_eq!(updates(&killed), [("t".into(), TaskState::Killed)]);
    let exit = h.acknowledge(&killed);
    h.assert_exit(&exit, 0);
    assert_eq!(h.executors.stats.killed, 1);
}

#[test]
fn kill_without_the_killing_capability_and_a_short_grace_period() {
    let mut h = Harness::start(true, false);
    let started = h.launch(task("t", Some("sleep 10")));
    h.acknowledge(&started);
    let policy = KillPolicy {
        grace_period: Some(DurationInfo {
            nanoseconds: 20_000_000,
        }),
    };
    let kill = h.event(Event::Kill(KillEvent {
        task_id: TaskId::new("t"),
        kill_policy: Some(policy),
    }));
    assert!(kill.is_empty(), "no TASK_KILLING: {kill:?}");
    // The kill replaced the timer that would have finished the task.
    assert_eq!(h.next_deadline_ms(), Some(20));
    assert_eq!(updates(&h.at(20)), [("t".into(), TaskState::Killed)]);
    assert_eq!(h.next_deadline_ms(), None);
    assert!(h.at(10_000).is_empty());
}

#[test]
fn custom_executor_stays_until_shutdown_which_kills_its_tasks() {
    let mut h = Harness::start(false, false);
    let quick = h.launch(task("quick", None));
    let long = h.launch(task("long", Some("sleep 60")));
    h.acknowledge(&quick);
    h.acknowledge(&long);
    let finished = h.at(500);
    assert_eq!(updates(&finished), [("quick".into(), TaskState::Finished)]);
    assert!(
        h.acknowledge(&finished).is_empty(),
        "a custom executor stays"
    );
    h.now_ms = 700;
    let shutdown = h.event(Event::Shutdown);
    assert!(updates(&shutdown).is_empty());
    let killed = h.at(800);
    assert_eq!(updates(&killed), [("long".into(), TaskState::Killed)]);
    let exit = h.acknowledge(&killed);
    h.assert_exit(&exit, 0);
}

#[test]
fn shutdown_of_an_idle_custom_executor_exits_at_once() {
    let mut h = Harness::start(false, false);
    let shutdown = h.event(Event::Shutdown);
    h.assert_exit(&shutdown, 0);
}

#[test]
fn a_failed_task_takes_its_group_with_it() {
    let mut h = Harness::start(true, false);
    let group = TaskGroupInfo {
        tasks: vec![
            task("a", Some("sleep 1; exit 1")),
            task("b", Some("sleep 30")),
            task("c", Some("sleep 2")),
        ],
    };
    let started = h.event(Event::LaunchGroup(Box::new(LaunchGroupEvent {
        task_group: group,
    })));
    assert_eq!(updates(&started).len(), 6);
    h.acknowledge(&started);
    let failed = h.at(1000);
    assert_eq!(updates(&failed), [("a".into(), TaskState::Failed)]);
    h.acknowledge(&failed);
    let killed = h.at(1100);
    assert_eq!(
        updates(&killed),
        [
            ("b".into(), TaskState::Killed),
            ("c".into(), TaskState::Killed)
        ]
    );
    let exit = h.acknowledge(&killed);
    h.assert_exit(&exit, 0);
    assert!(h.at(30_000).is_empty());
}

#[test]
fn a_killed_container_says_nothing_more() {
    let mut h = Harness::start(true, false);
    let started = h.launch(task("t", Some("sleep 5")));
    h.acknowledge(&started);
    let container_id = h.container_id.clone();
    let inputs = h.executors.kill(&container_id);
    h.assert_exit(&inputs, SIGKILL_STATUS);
    assert_eq!(h.next_deadline_ms(), None);
    assert!(h.at(5000).is_empty());
    // Events for its stream are ignored.
    let late = h.launch(task("u", Some("sleep 1")));
    assert!(late.is_empty());
}

#[test]
fn tasks_that_take_no_time_end_at_once() {
    let mut h = Harness::start(true, false);
    let started = h.launch(task("t", Some("sleep 0")));
    assert_eq!(h.next_deadline_ms(), Some(0));
    h.acknowledge(&started);
    assert_eq!(updates(&h.at(0)), [("t".into(), TaskState::Finished)]);
}
