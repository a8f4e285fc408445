//! Table tests of the agent core: each row is an input at a time (in seconds) and the
//! actions it must produce, rendered as short strings.

use super::*;
use mantle_api::executor::Event;
use mantle_api::internal::{
    KillTask, RunTask, RunTaskGroup, ShutdownExecutor, ShutdownFramework, StatusUpdateAck,
};
use std::collections::HashMap;

fn config() -> CoreConfig {
    CoreConfig {
        hostname: "agent1".into(),
        ip: Ipv4Addr::new(10, 0, 0, 1),
        port: 5051,
        resources: Resources::parse_flag("cpus:4;mem:1024", "*").unwrap(),
        attributes: Vec::new(),
        work_dir: PathBuf::from("/w"),
        launcher: PathBuf::from("/bin/mantle"),
        executor_registration_timeout: Duration::from_secs(60),
        executor_shutdown_grace_period: Duration::from_secs(5),
        executor_reregistration_timeout: Duration::from_secs(2),
        recovery_timeout: Duration::from_secs(900),
        docker_socket: None,
        flags: BTreeMap::new(),
        start_time: 1_000.0,
        seed: 7,
    }
}

fn framework_info() -> FrameworkInfo {
    serde_json::from_value(serde_json::json!({"user": "u", "name": "fw", "id": {"value": "f1"}}))
        .unwrap()
}

fn task(id: &str) -> TaskInfo {
    serde_json::from_value(serde_json::json!({
        "name": id, "task_id": {"value": id}, "agent_id": {"value": "a1"},
        "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}}]
    }))
    .unwrap()
}

fn executor_info(id: &str) -> ExecutorInfo {
    serde_json::from_value(serde_json::json!({
        "executor_id": {"value": id}, "command": {"value": "./my-executor"}
    }))
    .unwrap()
}

/// One row's input, in the terms of the test.
#[derive(Clone, Copy)]
enum Step {
    Register,
    Disconnect,
    /// Task with a custom executor.
    Run(&'static str, &'static str),
    /// Command task.
    RunCommand(&'static str),
    RunGroup(&'static str, &'static [&'static str]),
    Subscribe(&'static str, StreamId),
    /// Executor UPDATE with a uuid chosen by the test.
    Update(&'static str, &'static str, TaskState, &'static str),
    Message(&'static str),
    /// The master acknowledges the update of this task that it last received.
    Ack(&'static str),
    Kill(&'static str),
    ShutdownExecutor(&'static str),
    ShutdownFramework,
    Launched(&'static str),
    LaunchFailed(&'static str),
    Exited(&'static str, i32),
    /// The container of this executor went over its memory limit.
    OutOfMemory(&'static str),
    StreamClosed(StreamId),
    Tick,
}

use Step::*;
use TaskState::*;

struct Harness {
    core: Core,
    /// Container id to executor id, learnt from Launch actions.
    containers: HashMap<ContainerId, ExecutorId>,
    /// Executor id to container id.
    executors: HashMap<ExecutorId, ContainerId>,
    /// The uuid of the update of each task the master received last.
    last_sent: HashMap<String, String>,
    /// Tasks are run for a framework that checkpoints.
    checkpoint: bool,
}

impl Harness {
    fn new() -> Harness {
        Harness {
            core: Core::new(config()),
            containers: HashMap::new(),
            executors: HashMap::new(),
            last_sent: HashMap::new(),
            checkpoint: false,
        }
    }

    fn framework_info(&self) -> FrameworkInfo {
        let mut info = framework_info();
        info.checkpoint = self.checkpoint;
        info
    }

    fn input(&self, step: Step) -> Input {
        let f = FrameworkId::new("f1");
        let master = |m: ToAgent| Input::Master(Box::new(m));
        match step {
            Register => Input::Registered {
                agent_id: AgentId::new("a1"),
                master_info: MasterInfo {
                    id: "m".into(),
                    ip: 0,
                    port: 5050,
                    pid: None,
                    hostname: None,
                    version: None,
                    address: None,
                    capabilities: Vec::new(),
                },
            },
            Disconnect => Input::Disconnected,
            Run(t, e) => {
                let mut task = task(t);
                task.executor = Some(Box::new(executor_info(e)));
                master(ToAgent::RunTask(RunTask {
                    framework_info: self.framework_info(),
                    task,
                }))
            }
            RunCommand(t) => {
                let mut task = task(t);
                task.command = Some(CommandInfo::shell("sleep 1000"));
                master(ToAgent::RunTask(RunTask {
                    framework_info: self.framework_info(),
                    task,
                }))
            }
            RunGroup(e, ts) => master(ToAgent::RunTaskGroup(RunTaskGroup {
                framework_info: self.framework_info(),
                executor: executor_info(e),
                task_group: mantle_api::TaskGroupInfo {
                    tasks: ts.iter().map(|t| task(t)).collect(),
                },
            })),
            Subscribe(e, stream) => Input::Subscribe {
                framework_id: f,
                executor_id: ExecutorId::new(e),
                subscribe: Default::default(),
                stream,
            },
            Update(e, t, state, uuid) => {
                let mut status = TaskStatus::new(TaskId::new(t), state);
                status.uuid = Some(uuid.to_string());
                Input::Update {
                    framework_id: f,
                    executor_id: ExecutorId::new(e),
                    status,
                }
            }
            Message(e) => Input::Message {
                framework_id: f,
                executor_id: ExecutorId::new(e),
                data: "aGk=".into(),
            },
            Ack(t) => master(ToAgent::StatusUpdateAck(StatusUpdateAck {
                framework_id: f,
                task_id: TaskId::new(t),
                uuid: self.last_sent.get(t).cloned().unwrap_or_default(),
            })),
            Kill(t) => master(ToAgent::KillTask(KillTask {
                framework_id: f,
                task_id: TaskId::new(t),
                kill_policy: None,
            })),
            ShutdownExecutor(e) => master(ToAgent::ShutdownExecutor(ShutdownExecutor {
                framework_id: f,
                executor_id: ExecutorId::new(e),
            })),
            ShutdownFramework => master(ToAgent::ShutdownFramework(ShutdownFramework {
                framework_id: f,
            })),
            Launched(e) => Input::Launched {
                container_id: self.container(e),
                pid: 42,
            },
            LaunchFailed(e) => Input::LaunchFailed {
                container_id: self.container(e),
                error: "no such file".into(),
            },
            Exited(e, status) => Input::Exited {
                container_id: self.container(e),
                status,
            },
            OutOfMemory(e) => Input::Limited {
                container_id: self.container(e),
                limitation: Limitation {
                    reason: Reason::ContainerLimitationMemory,
                    message: "Memory limit exceeded".into(),
                    limitation: serde_json::json!({"resources": []}),
                },
            },
            StreamClosed(stream) => Input::StreamClosed { stream },
            Tick => Input::Tick,
        }
    }

    fn container(&self, executor: &str) -> ContainerId {
        self.executors
            .get(executor)
            .cloned()
            .unwrap_or_else(|| ContainerId::new("unknown"))
    }

    fn step(&mut self, at: u64, step: Step) -> Vec<String> {
        let now = Now {
            mono: Duration::from_secs(at),
            unix: 1_000.0 + at as f64,
        };
        let input = self.input(step);
        let output = self.core.handle(now, input);
        let mut rendered = Vec::new();
        if let Err(err) = &output.reply {
            rendered.push(format!("reply {}", err.status().as_u16()));
        }
        for action in &output.actions {
            rendered.push(self.render(action));
        }
        rendered
    }

    fn render(&mut self, action: &Action) -> String {
        match action {
            Action::ToMaster(call) => match call.as_ref() {
                AgentCall::StatusUpdate(u) => {
                    let s = &u.status;
                    self.last_sent.insert(
                        s.task_id.value.to_string(),
                        s.uuid.clone().unwrap_or_default(),
                    );
                    assert_eq!(
                        s.agent_id,
                        Some(AgentId::new("a1")),
                        "updates carry the agent id"
                    );
                    assert!(s.executor_id.is_some(), "updates carry the executor id");
                    assert!(s.timestamp.is_some(), "updates carry a timestamp");
                    match s.reason {
                        Some(reason) => format!("update {} {} {reason}", s.task_id, s.state),
                        None => format!("update {} {}", s.task_id, s.state),
                    }
                }
                AgentCall::ExecutorExited(e) => {
                    format!("exited {} {}", e.executor_id, e.status)
                }
                AgentCall::ExecutorMessage(m) => format!("message {}", m.executor_id),
                AgentCall::Register(_) => "register".into(),
                AgentCall::Pong => "pong".into(),
            },
            Action::ToExecutor { stream, event } => {
                let what = match event {
                    Event::Subscribed(s) => format!("SUBSCRIBED {}", s.executor_info.executor_id),
                    Event::Launch(l) => format!("LAUNCH {}", l.task.task_id),
                    Event::LaunchGroup(g) => {
                        let ids: Vec<&str> = g
                            .task_group
                            .tasks
                            .iter()
                            .map(|t| t.task_id.as_str())
                            .collect();
                        format!("LAUNCH_GROUP {}", ids.join(","))
                    }
                    Event::Kill(k) => format!("KILL {}", k.task_id),
                    Event::Acknowledged(a) => format!("ACKNOWLEDGED {} {}", a.task_id, a.uuid),
                    Event::Message(m) => format!("MESSAGE {}", m.data),
                    Event::Shutdown => "SHUTDOWN".into(),
                    Event::Heartbeat => "HEARTBEAT".into(),
                    other => format!("{other:?}"),
                };
                format!("exec {stream} {what}")
            }
            Action::CloseStream { stream } => format!("close {stream}"),
            Action::Launch(spec) => {
                self.containers
                    .insert(spec.container_id.clone(), spec.executor_id.clone());
                self.executors
                    .insert(spec.executor_id.clone(), spec.container_id.clone());
                format!("launch {}", spec.executor_id)
            }
            Action::Checkpoint(checkpoint) => match checkpoint.as_ref() {
                Checkpoint::Agent(info) => {
                    format!(
                        "checkpoint agent {}",
                        info.id.as_ref().map_or("", |id| id.as_str())
                    )
                }
                Checkpoint::Framework { info, .. } => {
                    format!(
                        "checkpoint framework {}",
                        info.id.as_ref().map_or("", |id| id.as_str())
                    )
                }
                Checkpoint::Executor { run, .. } => {
                    format!("checkpoint executor {}", run.executor_id)
                }
                Checkpoint::Task { info, .. } => format!("checkpoint task {}", info.task_id),
                Checkpoint::Record {
                    task_id,
                    record: UpdateRecord::Update(status),
                    ..
                } => format!("checkpoint update {task_id} {}", status.state),
                Checkpoint::Record {
                    task_id,
                    record: UpdateRecord::Ack(_),
                    ..
                } => format!("checkpoint ack {task_id}"),
                Checkpoint::Forget { run } => format!("checkpoint forget {}", run.executor_id),
            },
            Action::Reattach(spec) => {
                self.containers
                    .insert(spec.container_id.clone(), spec.executor_id.clone());
                self.executors
                    .insert(spec.executor_id.clone(), spec.container_id.clone());
                format!("reattach {}", spec.executor_id)
            }
            Action::Kill { container_id } => {
                format!(
                    "kill {}",
                    self.containers
                        .get(container_id)
                        .map_or_else(|| container_id.to_string(), ExecutorId::to_string)
                )
            }
            Action::Update {
                container_id,
                limits,
            } => format!(
                "resize {} cpus={} mem={}",
                self.containers
                    .get(container_id)
                    .map(ExecutorId::as_str)
                    .unwrap_or_default(),
                limits.cpus,
                limits.mem_mb
            ),
        }
    }
}

/// Runs the rows in order and compares each row's rendered actions.
fn check(rows: &[(u64, Step, &[&str])]) -> Harness {
    let mut h = Harness::new();
    for (i, (at, step, expected)) in rows.iter().enumerate() {
        let got = h.step(*at, *step);
        assert_eq!(got, *expected, "row {i} at {at}s");
    }
    h
}

#[test]
fn tasks_queue_until_the_executor_subscribes() {
    check(&[
        (0, Register, &["checkpoint agent a1"]),
        (0, Run("t1", "e1"), &["launch e1"]),
        (1, Run("t2", "e1"), &["resize e1 cpus=2 mem=0"]),
        (1, Launched("e1"), &[]),
        (2, Update("e1", "t1", Running, "u1"), &["reply 403"]),
        (2, Message("e1"), &["reply 403"]),
        (
            3,
            Subscribe("e1", 1),
            &[
                "exec 1 SUBSCRIBED e1",
                "exec 1 LAUNCH t1",
                "exec 1 LAUNCH t2",
            ],
        ),
        (
            4,
            Run("t3", "e1"),
            &["resize e1 cpus=3 mem=0", "exec 1 LAUNCH t3"],
        ),
        (
            5,
            Update("e1", "t1", Running, "u1"),
            &["update t1 TASK_RUNNING", "exec 1 ACKNOWLEDGED t1 u1"],
        ),
        (5, Message("e1"), &["message e1"]),
        (6, Subscribe("e1", 2), &["close 1", "exec 2 SUBSCRIBED e1"]),
    ]);
}

#[test]
fn executor_calls_are_checked() {
    check(&[
        (0, Register, &["checkpoint agent a1"]),
        (0, Subscribe("e1", 1), &["reply 400"]),
        (0, Run("t1", "e1"), &["launch e1"]),
        (0, Subscribe("nope", 1), &["reply 400"]),
        (0, Update("nope", "t1", Running, "u1"), &["reply 400"]),
        (
            1,
            Subscribe("e1", 1),
            &["exec 1 SUBSCRIBED e1", "exec 1 LAUNCH t1"],
        ),
        (2, StreamClosed(1), &[]),
        (3, Update("e1", "t1", Running, "u1"), &["reply 403"]),
    ]);
}

#[test]
fn update_streams_are_ordered_and_retried() {
    check(&[
        (0, Register, &["checkpoint agent a1"]),
        (0, Run("t1", "e1"), &["launch e1"]),
        (
            1,
            Subscribe("e1", 1),
            &["exec 1 SUBSCRIBED e1", "exec 1 LAUNCH t1"],
        ),
        (
            2,
            Update("e1", "t1", Running, "u1"),
            &["update t1 TASK_RUNNING", "exec 1 ACKNOWLEDGED t1 u1"],
        ),
        (
            3,
            Update("e1", "t1", Finished, "u2"),
            &["exec 1 ACKNOWLEDGED t1 u2"],
        ),
        // A retry of an update already taken is acknowledged again, not forwarded.
        (
            3,
            Update("e1", "t1", Finished, "u2"),
            &["exec 1 ACKNOWLEDGED t1 u2"],
        ),
        (11, Tick, &[]),
        (12, Tick, &["update t1 TASK_RUNNING"]),
        (31, Tick, &[]),
        (32, Tick, &["update t1 TASK_RUNNING"]),
        (33, Ack("t1"), &["update t1 TASK_FINISHED"]),
        (43, Tick, &["update t1 TASK_FINISHED"]),
        (44, Ack("t1"), &[]),
        (100, Tick, &[]),
        // The task is done, so its executor's exit fails nothing.
        (101, Exited("e1", 0), &["close 1", "exited e1 0"]),
    ]);
}

/// The shell sleeps until `next_timer` instead of ticking: it must name every deadline
/// a tick acts on, and nothing while nothing is timed.
#[test]
fn the_next_timer_is_the_earliest_deadline() {
    let mut h = Harness::new();
    let timer = |h: &Harness| h.core.next_timer().map(|at| at.as_secs());
    assert_eq!(timer(&h), None);
    h.step(0, Register);
    assert_eq!(timer(&h), None, "an idle agent");
    h.step(0, Run("t1", "e1"));
    assert_eq!(timer(&h), Some(60), "the executor's registration timeout");
    h.step(1, Subscribe("e1", 1));
    assert_eq!(timer(&h), Some(0), "the first tick sets the heartbeat");
    h.step(1, Tick);
    assert_eq!(timer(&h), Some(1801), "the executors' heartbeat");
    h.step(2, Update("e1", "t1", Running, "u1"));
    assert_eq!(timer(&h), Some(12), "the update's retry");
    h.step(3, Ack("t1"));
    assert_eq!(timer(&h), Some(1801));
    h.step(4, Update("e1", "t1", Finished, "u2"));
    h.step(5, Disconnect);
    assert_eq!(timer(&h), Some(1801), "no retries while disconnected");
    h.step(6, ShutdownExecutor("e1"));
    assert_eq!(timer(&h), Some(11), "the shutdown's grace period");
    h.step(11, Tick);
    assert_eq!(timer(&h), Some(1801));
}

#[test]
fn a_task_for_an_exited_executor_is_lost_and_the_exit_told_again() {
    check(&[
        (0, Register, &["checkpoint agent a1"]),
        (0, Run("t1", "e1"), &["launch e1"]),
        (
            1,
            Subscribe("e1", 1),
            &["exec 1 SUBSCRIBED e1", "exec 1 LAUNCH t1"],
        ),
        (
            2,
            Update("e1", "t1", Running, "u1"),
            &["update t1 TASK_RUNNING", "exec 1 ACKNOWLEDGED t1 u1"],
        ),
        (2, Ack("t1"), &[]),
        // The executor exits while the master is away: its EXECUTOR_EXITED is lost.
        (3, Disconnect, &[]),
        (4, Exited("e1", 9), &["close 1"]),
        (
            5,
            Register,
            &["update t1 TASK_FAILED REASON_EXECUTOR_TERMINATED"],
        ),
        // The master does not know the executor is gone and counts it again for t2.
        (
            6,
            Run("t2", "e1"),
            &[
                "update t2 TASK_LOST REASON_EXECUTOR_TERMINATED",
                "exited e1 9",
            ],
        ),
    ]);
}

#[test]
fn executor_exit_fails_only_live_tasks() {
    let h = check(&[
        (0, Register, &["checkpoint agent a1"]),
        (0, Run("t1", "e1"), &["launch e1"]),
        (0, Run("t2", "e1"), &["resize e1 cpus=2 mem=0"]),
        (0, Run("t3", "e1"), &["resize e1 cpus=3 mem=0"]),
        (
            1,
            Subscribe("e1", 1),
            &[
                "exec 1 SUBSCRIBED e1",
                "exec 1 LAUNCH t1",
                "exec 1 LAUNCH t2",
                "exec 1 LAUNCH t3",
            ],
        ),
        (
            2,
            Update("e1", "t1", Finished, "u1"),
            &["update t1 TASK_FINISHED", "exec 1 ACKNOWLEDGED t1 u1"],
        ),
        (
            2,
            Update("e1", "t2", Running, "u2"),
            &["update t2 TASK_RUNNING", "exec 1 ACKNOWLEDGED t2 u2"],
        ),
        (3, Kill("t2"), &["exec 1 KILL t2"]),
        (3, Ack("t2"), &[]),
        (
            4,
            Exited("e1", 9),
            &[
                "update t2 TASK_KILLED REASON_EXECUTOR_TERMINATED",
                "update t3 TASK_FAILED REASON_EXECUTOR_TERMINATED",
                "close 1",
                "exited e1 9",
            ],
        ),
        (5, Ack("t1"), &[]),
        (5, Ack("t2"), &[]),
        (5, Ack("t3"), &[]),
    ]);
    // Every terminal update was acknowledged: the executor and framework are completed.
    assert!(h.core.frameworks.is_empty());
    let framework = &h.core.completed_frameworks[0];
    assert_eq!(framework.completed_executors.len(), 1);
    assert_eq!(framework.completed_executors[0].completed_tasks.len(), 3);
}

#[test]
fn killing_a_queued_task() {
    check(&[
        (0, Register, &["checkpoint agent a1"]),
        (0, Run("t1", "e1"), &["launch e1"]),
        (0, Run("t2", "e1"), &["resize e1 cpus=2 mem=0"]),
        (
            1,
            Kill("t1"),
            &["update t1 TASK_KILLED REASON_TASK_KILLED_DURING_LAUNCH"],
        ),
        (
            2,
            Kill("t2"),
            &[
                "update t2 TASK_KILLED REASON_TASK_KILLED_DURING_LAUNCH",
                "kill e1",
            ],
        ),
        (2, Kill("t2"), &[]),
        (2, Kill("unknown"), &[]),
        (3, Exited("e1", 9), &["exited e1 9"]),
    ]);
}

#[test]
fn killing_a_queued_task_group_kills_the_group() {
    check(&[
        (0, Register, &["checkpoint agent a1"]),
        (0, RunGroup("e1", &["t1", "t2"]), &["launch e1"]),
        (0, RunGroup("e1", &["t3"]), &["resize e1 cpus=3 mem=0"]),
        (
            1,
            Kill("t2"),
            &[
                "update t1 TASK_KILLED REASON_TASK_KILLED_DURING_LAUNCH",
                "update t2 TASK_KILLED REASON_TASK_KILLED_DURING_LAUNCH",
            ],
        ),
        (
            2,
            Subscribe("e1", 1),
            &["exec 1 SUBSCRIBED e1", "exec 1 LAUNCH_GROUP t3"],
        ),
    ]);
}

#[test]
fn registration_timeout() {
    check(&[
        (0, Register, &["checkpoint agent a1"]),
        (0, Run("t1", "e1"), &["launch e1"]),
        (59, Tick, &[]),
        (
            60,
            Tick,
            &[
                "update t1 TASK_FAILED REASON_EXECUTOR_REGISTRATION_TIMEOUT",
                "kill e1",
            ],
        ),
        (61, Tick, &[]),
        (61, Subscribe("e1", 1), &["reply 403"]),
        (62, Exited("e1", 9), &["exited e1 9"]),
    ]);
}

#[test]
fn shutdown_kills_after_the_grace_period() {
    check(&[
        (0, Register, &["checkpoint agent a1"]),
        (0, Run("t1", "e1"), &["launch e1"]),
        (
            1,
            Subscribe("e1", 1),
            &["exec 1 SUBSCRIBED e1", "exec 1 LAUNCH t1"],
        ),
        (2, ShutdownExecutor("e1"), &["exec 1 SHUTDOWN"]),
        (2, ShutdownExecutor("e1"), &[]),
        // The executor may still report while it shuts down.
        (
            3,
            Update("e1", "t1", Killed, "u1"),
            &["update t1 TASK_KILLED", "exec 1 ACKNOWLEDGED t1 u1"],
        ),
        (6, Tick, &[]),
        (7, Tick, &["kill e1"]),
        (8, Tick, &[]),
        (8, Exited("e1", 9), &["close 1", "exited e1 9"]),
    ]);
}

#[test]
fn shutdown_framework_forgets_it_once_executors_are_gone() {
    let h = check(&[
        (0, Register, &["checkpoint agent a1"]),
        (0, Run("t1", "e1"), &["launch e1"]),
        (0, Run("t2", "e2"), &["launch e2"]),
        (
            1,
            Subscribe("e1", 1),
            &["exec 1 SUBSCRIBED e1", "exec 1 LAUNCH t1"],
        ),
        (2, ShutdownFramework, &["exec 1 SHUTDOWN", "kill e2"]),
        (2, Run("t3", "e1"), &[]),
        (
            3,
            Exited("e2", 9),
            &[
                "update t2 TASK_FAILED REASON_EXECUTOR_TERMINATED",
                "exited e2 9",
            ],
        ),
        (
            4,
            Exited("e1", 0),
            &[
                "update t1 TASK_FAILED REASON_EXECUTOR_TERMINATED",
                "close 1",
                "exited e1 0",
            ],
        ),
        (20, Tick, &[]),
    ]);
    assert!(h.core.frameworks.is_empty());
    assert_eq!(h.core.completed_frameworks.len(), 1);
}

#[test]
fn launch_failure_fails_the_tasks() {
    check(&[
        (0, Register, &["checkpoint agent a1"]),
        (0, Run("t1", "e1"), &["launch e1"]),
        (
            0,
            LaunchFailed("e1"),
            &[
                "update t1 TASK_FAILED REASON_CONTAINER_LAUNCH_FAILED",
                "exited e1 32512",
            ],
        ),
        (1, Ack("t1"), &[]),
        // The executor is gone, so the same executor id starts a new run.
        (2, Run("t2", "e1"), &["launch e1"]),
    ]);
}

#[test]
fn disconnection_holds_updates_until_reregistration() {
    let mut h = check(&[
        (0, Register, &["checkpoint agent a1"]),
        (0, Run("t1", "e1"), &["launch e1"]),
        (
            1,
            Subscribe("e1", 1),
            &["exec 1 SUBSCRIBED e1", "exec 1 LAUNCH t1"],
        ),
        (2, Disconnect, &[]),
        (
            3,
            Update("e1", "t1", Running, "u1"),
            &["exec 1 ACKNOWLEDGED t1 u1"],
        ),
        (3, Message("e1"), &[]),
        (30, Tick, &[]),
        (31, Register, &["update t1 TASK_RUNNING"]),
        (41, Tick, &["update t1 TASK_RUNNING"]),
    ]);
    let register = h.core.register_call();
    assert_eq!(register.agent_info.id, Some(AgentId::new("a1")));
    assert_eq!(register.pid, "slave(1)@10.0.0.1:5051");
    assert_eq!(register.frameworks.len(), 1);
    assert_eq!(register.executors.len(), 1);
    assert_eq!(register.tasks.len(), 1);
    assert_eq!(register.tasks[0].state, TaskState::Running);
    assert_eq!(register.tasks[0].executor_id, Some(ExecutorId::new("e1")));
    assert_eq!(h.step(42, Ack("t1")), Vec::<String>::new());
}

#[test]
fn reregistration_reports_tasks_whose_end_is_not_acknowledged() {
    let mut h = check(&[
        (0, Register, &["checkpoint agent a1"]),
        (0, Run("t1", "e1"), &["launch e1"]),
        (0, Run("t2", "e1"), &["resize e1 cpus=2 mem=0"]),
        (
            1,
            Subscribe("e1", 1),
            &[
                "exec 1 SUBSCRIBED e1",
                "exec 1 LAUNCH t1",
                "exec 1 LAUNCH t2",
            ],
        ),
        (2, Disconnect, &[]),
        (
            3,
            Update("e1", "t1", Finished, "u1"),
            &["exec 1 ACKNOWLEDGED t1 u1"],
        ),
        (4, Exited("e1", 0), &["close 1"]),
    ]);
    // The executor is gone; t1's FINISHED and t2's FAILED wait for acknowledgements.
    let register = h.core.register_call();
    assert!(register.executors.is_empty());
    let mut states: Vec<(String, TaskState)> = register
        .tasks
        .iter()
        .map(|t| (t.task.task_id.value.to_string(), t.state))
        .collect();
    states.sort();
    assert_eq!(
        states,
        [("t1".to_string(), Finished), ("t2".to_string(), Failed)]
    );
    assert_eq!(
        h.step(5, Register),
        [
            "update t1 TASK_FINISHED",
            "update t2 TASK_FAILED REASON_EXECUTOR_TERMINATED"
        ]
    );
}

#[test]
fn heartbeats_and_framework_messages() {
    let mut h = check(&[
        (0, Register, &["checkpoint agent a1"]),
        (0, Tick, &[]),
        (0, Run("t1", "e1"), &["launch e1"]),
        (
            1,
            Subscribe("e1", 1),
            &["exec 1 SUBSCRIBED e1", "exec 1 LAUNCH t1"],
        ),
        (1799, Tick, &[]),
        (1800, Tick, &["exec 1 HEARTBEAT"]),
        (1801, Tick, &[]),
    ]);
    let message = ToAgent::FrameworkMessage(mantle_api::internal::ExecutorMessage {
        framework_id: FrameworkId::new("f1"),
        executor_id: ExecutorId::new("e1"),
        data: "aGk=".into(),
    });
    let now = Now {
        mono: Duration::from_secs(1802),
        unix: 0.0,
    };
    let out = h.core.handle(now, Input::Master(Box::new(message)));
    let rendered: Vec<String> = out.actions.iter().map(|a| h.render(a)).collect();
    assert_eq!(rendered, vec!["exec 1 MESSAGE aGk="]);
}

/// The variables that tell an executor about the Docker containerizer: set with
/// `docker_socket`, and an empty socket without it, whatever the task's command sets.
#[test]
fn executors_learn_whether_docker_runs() {
    let check = |docker_socket: Option<&str>, expected: &[(&str, &str)]| {
        let mut h = Harness::new();
        h.core.config.docker_socket = docker_socket.map(PathBuf::from);
        h.step(0, Register);
        let mut t = task("t1");
        let mut command = CommandInfo::shell("true");
        command.environment = Some(mantle_api::Environment {
            variables: vec![mantle_api::Variable {
                name: "MANTLE_DOCKER_SOCKET".into(),
                kind: None,
                value: Some("/tmp/evil.sock".into()),
                secret: None,
            }],
        });
        t.command = Some(command);
        let now = Now {
            mono: Duration::ZERO,
            unix: 0.0,
        };
        let message = ToAgent::RunTask(RunTask {
            framework_info: framework_info(),
            task: t,
        });
        let out = h.core.handle(now, Input::Master(Box::new(message)));
        let [Action::Launch(spec)] = out.actions.as_slice() else {
            panic!("{:?}", out.actions)
        };
        // Later entries win, as they do when the launcher applies them.
        let env: HashMap<&str, &str> = spec
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let docker: Vec<(&str, &str)> = [
            "MANTLE_DOCKER_SOCKET",
            "MANTLE_DOCKER_NAME",
            "MANTLE_DOCKER_LABEL_AGENT",
        ]
        .into_iter()
        .filter_map(|name| env.get(name).map(|value| (name, *value)))
        .collect();
        let expected: Vec<(&str, String)> = expected
            .iter()
            .map(|(k, v)| (*k, v.replace("<cid>", spec.container_id.as_str())))
            .collect();
        let expected: Vec<(&str, &str)> = expected.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(docker, expected, "docker_socket {docker_socket:?}");
    };
    check(None, &[("MANTLE_DOCKER_SOCKET", "")]);
    check(
        Some("/run/docker.sock"),
        &[
            ("MANTLE_DOCKER_SOCKET", "/run/docker.sock"),
            ("MANTLE_DOCKER_NAME", "mesos-<cid>"),
            ("MANTLE_DOCKER_LABEL_AGENT", "/w"),
        ],
    );
}

/// The built-in executor of a DOCKER task runs as the agent's user (it talks to the
/// engine's socket), once the agent runs the docker containerizer; other executors run
/// as their command's or framework's user.
#[test]
fn docker_executors_run_as_the_agent_user() {
    let check = |docker_socket: Option<&str>,
                 container: serde_json::Value,
                 custom: bool,
                 expected: Option<&str>| {
        let mut h = Harness::new();
        h.core.config.docker_socket = docker_socket.map(PathBuf::from);
        h.step(0, Register);
        let mut t = task("t1");
        t.container = Some(Box::new(container.clone()));
        match custom {
            true => t.executor = Some(Box::new(executor_info("e1"))),
            false => t.command = Some(CommandInfo::shell("true")),
        }
        let now = Now {
            mono: Duration::ZERO,
            unix: 0.0,
        };
        let message = ToAgent::RunTask(RunTask {
            framework_info: framework_info(),
            task: t,
        });
        let out = h.core.handle(now, Input::Master(Box::new(message)));
        let [Action::Launch(spec)] = out.actions.as_slice() else {
            panic!("{:?}", out.actions)
        };
        assert_eq!(
            spec.user.as_deref(),
            expected,
            "docker_socket {docker_socket:?}, container {container}, custom executor {custom}"
        );
    };
    let docker = serde_json::json!({"type": "DOCKER", "docker": {"image": "busybox"}});
    let mesos = serde_json::json!({"type": "MESOS"});
    let socket = Some("/run/docker.sock");
    check(socket, docker.clone(), false, None);
    check(socket, serde_json::json!({"type": 1}), false, None);
    check(socket, mesos.clone(), false, Some("u"));
    check(None, docker.clone(), false, Some("u"));
    check(socket, docker, true, Some("u"));
    check(None, mesos, true, Some("u"));
}

#[test]
fn the_command_executor_is_synthesised() {
    let mut h = Harness::new();
    h.step(0, Register);
    let now = Now {
        mono: Duration::ZERO,
        unix: 0.0,
    };
    let mut t = task("t1");
    t.command = Some(CommandInfo::shell("python3 -m http.server 8080"));
    let out = h.core.handle(
        now,
        Input::Master(Box::new(ToAgent::RunTask(RunTask {
            framework_info: framework_info(),
            task: t,
        }))),
    );
    let [Action::Launch(spec)] = out.actions.as_slice() else {
        panic!("{:?}", out.actions)
    };
    assert_eq!(spec.executor_id, ExecutorId::new("t1"));
    assert_eq!(spec.command.value.as_deref(), Some("/bin/mantle"));
    assert_eq!(spec.command.arguments, vec!["/bin/mantle", "executor"]);
    assert!(!spec.command.shell);
    let cid = spec.container_id.as_str();
    assert_eq!(
        spec.directory,
        PathBuf::from(format!(
            "/w/slaves/a1/frameworks/f1/executors/t1/runs/{cid}"
        ))
    );
    assert!(uuid::Uuid::parse_str(cid).is_ok(), "{cid}");
    let env: HashMap<&str, &str> = spec
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(env["MESOS_AGENT_ENDPOINT"], "10.0.0.1:5051");
    assert_eq!(env["MESOS_FRAMEWORK_ID"], "f1");
    assert_eq!(env["MESOS_EXECUTOR_ID"], "t1");
    assert_eq!(env["MESOS_SLAVE_ID"], "a1");
    assert_eq!(env["MESOS_CHECKPOINT"], "0");
    assert_eq!(env["MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD"], "5secs");

    let executor = &h.core.frameworks[&FrameworkId::new("f1")].executors[&ExecutorId::new("t1")];
    assert_eq!(
        executor.info.name.as_deref(),
        Some("Command Executor (Task: t1) (Command: sh -c 'python3 -m http...')")
    );
    assert_eq!(executor.info.source.as_deref(), Some("t1"));
    assert_eq!(executor.info.framework_id, Some(FrameworkId::new("f1")));
    let container_id = executor.container_id.value.clone();

    // SUBSCRIBED echoes the ids exactly as pymesos asserts them.
    let input = h.input(Subscribe("t1", 9));
    let out = h.core.handle(now, input);
    let Action::ToExecutor {
        event: Event::Subscribed(s),
        ..
    } = &out.actions[0]
    else {
        panic!()
    };
    let json = serde_json::to_value(s).unwrap();
    assert_eq!(
        json["executor_info"]["executor_id"],
        serde_json::json!({"value": "t1"})
    );
    assert_eq!(
        json["framework_info"]["id"],
        serde_json::json!({"value": "f1"})
    );
    assert_eq!(json["agent_info"]["id"], serde_json::json!({"value": "a1"}));
    assert_eq!(
        json["container_id"],
        serde_json::json!({"value": container_id})
    );
}

#[test]
fn ids_that_would_escape_the_sandbox_are_refused() {
    check(&[
        (0, Register, &["checkpoint agent a1"]),
        (
            0,
            Run("t1", ".."),
            &["update t1 TASK_ERROR REASON_TASK_INVALID"],
        ),
        (
            0,
            RunCommand("a/b"),
            &["update a/b TASK_ERROR REASON_TASK_INVALID"],
        ),
    ]);
}

#[test]
fn container_ids_follow_the_seed() {
    let mut a = Harness::new();
    let mut b = Harness::new();
    for h in [&mut a, &mut b] {
        h.step(0, Register);
        h.step(0, Run("t1", "e1"));
    }
    assert_eq!(a.executors["e1"], b.executors["e1"]);
}

#[test]
fn a_memory_limitation_fails_live_tasks_before_the_executor_speaks() {
    check(&[
        (0, Register, &["checkpoint agent a1"]),
        (0, Run("t1", "e1"), &["launch e1"]),
        (0, Run("t2", "e1"), &["resize e1 cpus=2 mem=0"]),
        (
            1,
            Subscribe("e1", 1),
            &[
                "exec 1 SUBSCRIBED e1",
                "exec 1 LAUNCH t1",
                "exec 1 LAUNCH t2",
            ],
        ),
        (
            2,
            Update("e1", "t1", Finished, "u1"),
            &["update t1 TASK_FINISHED", "exec 1 ACKNOWLEDGED t1 u1"],
        ),
        // Only the live task fails, with the limitation, and the container is killed.
        (
            3,
            OutOfMemory("e1"),
            &[
                "update t2 TASK_FAILED REASON_CONTAINER_LIMITATION_MEMORY",
                "kill e1",
            ],
        ),
        // What the executor says of that task afterwards is acknowledged and dropped.
        (
            3,
            Update("e1", "t2", Failed, "u2"),
            &["exec 1 ACKNOWLEDGED t2 u2"],
        ),
    ]);
}

/// Runs rows on a harness prepared by the caller.
fn check_on(h: &mut Harness, rows: &[(u64, Step, &[&str])]) {
    for (i, (at, step, expected)) in rows.iter().enumerate() {
        let got = h.step(*at, *step);
        assert_eq!(got, *expected, "row {i} at {at}s");
    }
}

fn update(task: &str, state: TaskState, uuid: &str) -> UpdateRecord {
    let mut status = TaskStatus::new(TaskId::new(task), state);
    status.uuid = Some(uuid.to_string());
    status.agent_id = Some(AgentId::new("a1"));
    status.executor_id = Some(ExecutorId::new("e1"));
    status.timestamp = Some(1_000.0);
    UpdateRecord::Update(Box::new(status))
}

/// What an agent that ran task t1 (RUNNING acknowledged, FINISHED not yet) and queued
/// t2 on executor e1 of a checkpointing framework left on disk.
fn recovered(rebooted: bool) -> Recovered {
    let mut framework = framework_info();
    framework.checkpoint = true;
    let mut agent = Core::new(config()).agent_info();
    agent.id = Some(AgentId::new("a1"));
    Recovered {
        agent: Some(agent),
        rebooted,
        frameworks: vec![RecoveredFramework {
            info: framework,
            executors: vec![RecoveredExecutor {
                info: executor_info("e1"),
                command_executor: false,
                container_id: ContainerId::new("c1"),
                tasks: vec![
                    RecoveredTask {
                        info: task("t1"),
                        records: vec![
                            update("t1", Running, "u1"),
                            UpdateRecord::Ack("u1".into()),
                            update("t1", Finished, "u2"),
                        ],
                    },
                    RecoveredTask {
                        info: task("t2"),
                        records: Vec::new(),
                    },
                ],
            }],
        }],
    }
}

fn recover(h: &mut Harness, rebooted: bool) -> Vec<String> {
    let now = Now {
        mono: Duration::ZERO,
        unix: 1_000.0,
    };
    let actions = h.core.recover(now, recovered(rebooted));
    actions.iter().map(|a| h.render(a)).collect()
}

#[test]
fn checkpoints_come_before_what_depends_on_them() {
    let mut h = Harness::new();
    h.checkpoint = true;
    check_on(
        &mut h,
        &[
            (0, Register, &["checkpoint agent a1"]),
            (
                0,
                Run("t1", "e1"),
                &[
                    "checkpoint framework f1",
                    "checkpoint executor e1",
                    "checkpoint task t1",
                    "launch e1",
                ],
            ),
            (
                1,
                Subscribe("e1", 1),
                &["exec 1 SUBSCRIBED e1", "exec 1 LAUNCH t1"],
            ),
            (
                2,
                Update("e1", "t1", Running, "u1"),
                &[
                    "checkpoint update t1 TASK_RUNNING",
                    "update t1 TASK_RUNNING",
                    "exec 1 ACKNOWLEDGED t1 u1",
                ],
            ),
            // A retry is neither checkpointed nor recorded again.
            (
                2,
                Update("e1", "t1", Running, "u1"),
                &["exec 1 ACKNOWLEDGED t1 u1"],
            ),
            (
                3,
                Update("e1", "t1", Finished, "u2"),
                &[
                    "checkpoint update t1 TASK_FINISHED",
                    "exec 1 ACKNOWLEDGED t1 u2",
                ],
            ),
            (
                4,
                Ack("t1"),
                &["checkpoint ack t1", "update t1 TASK_FINISHED"],
            ),
            (5, Ack("t1"), &["checkpoint ack t1"]),
            (
                6,
                Exited("e1", 0),
                &["close 1", "exited e1 0", "checkpoint forget e1"],
            ),
        ],
    );
    let task = &h.core.frameworks.get(&FrameworkId::new("f1"));
    assert!(task.is_none(), "the framework is done once its executor is");
}

#[test]
fn a_restarted_agent_waits_for_its_executors_then_resends() {
    let mut h = Harness::new();
    assert_eq!(recover(&mut h, false), ["reattach e1"]);
    assert!(h.core.recovering(), "registration waits for the executor");
    assert_eq!(h.core.agent_id(), Some(&AgentId::new("a1")));
    check_on(
        &mut h,
        &[
            (0, Launched("e1"), &[]),
            // The executor knows t1 only: t2 never reached it.
            (
                1,
                Subscribe("e1", 1),
                &["exec 1 SUBSCRIBED e1", "checkpoint update t2 TASK_LOST"],
            ),
        ],
    );
    assert!(!h.core.recovering());
    let register = h.core.register_call();
    assert_eq!(register.agent_info.id, Some(AgentId::new("a1")));
    assert_eq!(register.executors.len(), 1);
    // Both ended, their ends not acknowledged yet: reported with their last state.
    let reported: Vec<(String, TaskState)> = register
        .tasks
        .iter()
        .map(|t| (t.task.task_id.value.to_string(), t.state))
        .collect();
    assert_eq!(
        reported,
        [("t1".to_string(), Finished), ("t2".to_string(), Lost)]
    );
    // Registered again with the same id: the unacknowledged FINISHED goes out again,
    // with the uuid it had before the restart.
    check_on(
        &mut h,
        &[(
            2,
            Register,
            &[
                "update t1 TASK_FINISHED",
                "update t2 TASK_LOST REASON_AGENT_RESTARTED",
            ],
        )],
    );
    assert_eq!(h.last_sent["t1"], "u2");
}

#[test]
fn executors_that_do_not_come_back_are_lost() {
    let mut h = Harness::new();
    recover(&mut h, false);
    check_on(
        &mut h,
        &[
            (1, Tick, &[]),
            (2, Tick, &["checkpoint update t2 TASK_LOST", "kill e1"]),
        ],
    );
    assert!(!h.core.recovering());
    let t2 = h.core.frameworks[&FrameworkId::new("f1")].executors[&ExecutorId::new("e1")].tasks
        [&TaskId::new("t2")]
        .statuses
        .last()
        .cloned()
        .unwrap();
    assert_eq!(t2.reason, Some(Reason::ExecutorReregistrationTimeout));
    assert_eq!(t2.source, Some(Source::Agent));
}

#[test]
fn after_a_reboot_no_executor_is_waited_for() {
    let mut h = Harness::new();
    // The new boot id is recorded with the agent's info.
    assert_eq!(
        recover(&mut h, true),
        ["checkpoint update t2 TASK_LOST", "checkpoint agent a1"]
    );
    assert!(!h.core.recovering());
    let register = h.core.register_call();
    assert!(register.executors.is_empty(), "no executor survived");
    assert!(register.tasks.iter().all(|t| t.state.is_terminal()));
}
