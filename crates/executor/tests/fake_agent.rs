//! The executor against a small fake agent: an axum server that answers SUBSCRIBE with a
//! RecordIO event stream the test writes to, records UPDATE calls (answering 202), and
//! acknowledges them on the stream. The executor runs real processes, as the command
//! executor (LAUNCH) or the default executor (LAUNCH_GROUP); every wait has a deadline
//! and every test checks its tasks are gone.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use mantle_api::executor::Call;
use mantle_api::json::to_ascii_json;
use mantle_api::recordio::encode;
use mantle_api::{validate_status_uuid, Source, TaskState, TaskStatus};
use mantle_executor::{run_with, Settings};
use mantle_sdk::executor::ExecutorEnv;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::task::JoinHandle;
use tokio::time::timeout;

const DEADLINE: Duration = Duration::from_secs(15);

struct Agent {
    subscriptions: UnboundedSender<Value>,
    updates: UnboundedSender<TaskStatus>,
    stream: Mutex<Option<UnboundedSender<Value>>>,
    auto_ack: AtomicBool,
}

impl Agent {
    fn push(&self, event: Value) {
        let stream = self.stream.lock().unwrap();
        let sender = stream.as_ref().expect("the executor is subscribed");
        sender.send(event).expect("the event stream is open");
    }

    fn ack(&self, status: &TaskStatus) {
        self.push(json!({"type": "ACKNOWLEDGED", "acknowledged": {
            "task_id": status.task_id, "uuid": status.uuid}}));
    }

    /// Ends the current event stream, as an agent restart would.
    fn close_stream(&self) {
        self.stream.lock().unwrap().take();
    }
}

async fn executor_api(State(agent): State<Arc<Agent>>, body: Bytes) -> Response {
    let value: Value = match serde_json::from_slice(&body) {
        Ok(value) => value,
        Err(err) => return (StatusCode::BAD_REQUEST, err.to_string()).into_response(),
    };
    let call: Call = match serde_json::from_value(value.clone()) {
        Ok(call) => call,
        Err(err) => return (StatusCode::BAD_REQUEST, err.to_string()).into_response(),
    };
    match call.kind.as_deref() {
        Some("SUBSCRIBE") => {
            let (sender, receiver) = unbounded_channel::<Value>();
            *agent.stream.lock().unwrap() = Some(sender);
            let _ = agent.subscriptions.send(value);
            let records = futures_util::stream::unfold(receiver, |mut receiver| async move {
                let event = receiver.recv().await?;
                Some((
                    Ok::<_, Infallible>(encode(&to_ascii_json(&event))),
                    receiver,
                ))
            });
            Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from_stream(records))
                .unwrap()
        }
        Some("UPDATE") => {
            let Some(update) = call.update else {
                return (StatusCode::BAD_REQUEST, "no update").into_response();
            };
            let status = update.status;
            if agent.auto_ack.load(Ordering::SeqCst) {
                agent.ack(&status);
            }
            let _ = agent.updates.send(status);
            StatusCode::ACCEPTED.into_response()
        }
        _ => StatusCode::ACCEPTED.into_response(),
    }
}

struct Harness {
    agent: Arc<Agent>,
    subscriptions: UnboundedReceiver<Value>,
    updates: UnboundedReceiver<TaskStatus>,
    executor: Option<JoinHandle<anyhow::Result<()>>>,
    server: JoinHandle<()>,
    sandbox: tempfile::TempDir,
    executor_id: &'static str,
    /// The process groups of the tasks the test looked at.
    pids: Vec<i32>,
}

/// What a task reported, in order: state and message.
type Reports = Vec<(TaskState, Option<String>)>;

impl Harness {
    async fn start(checkpoint: bool) -> Harness {
        Harness::start_as(checkpoint, "t1").await
    }

    /// Starts the executor with this executor id.
    async fn start_as(checkpoint: bool, executor_id: &'static str) -> Harness {
        let (subscriptions_tx, subscriptions) = unbounded_channel();
        let (updates_tx, updates) = unbounded_channel();
        let agent = Arc::new(Agent {
            subscriptions: subscriptions_tx,
            updates: updates_tx,
            stream: Mutex::new(None),
            auto_ack: AtomicBool::new(true),
        });
        let router = Router::new()
            .route("/api/v1/executor", post(executor_api))
            .with_state(agent.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let sandbox = tempfile::tempdir().unwrap();
        let env = ExecutorEnv {
            agent_endpoint: address.to_string(),
            framework_id: "f1".into(),
            executor_id: executor_id.into(),
            directory: Some(sandbox.path().to_path_buf()),
            sandbox: Some(sandbox.path().to_path_buf()),
            checkpoint,
            shutdown_grace_period: Duration::from_secs(5),
        };
        let settings = Settings {
            handle_sigterm: false,
            subscription_backoff_max: Duration::from_millis(200),
            registration_timeout: Duration::from_secs(10),
            recovery_timeout: Duration::from_secs(10),
            ack_timeout: Duration::from_secs(10),
            docker: None,
        };
        let executor = Some(tokio::spawn(run_with(env, settings)));
        let mut harness = Harness {
            agent,
            subscriptions,
            updates,
            executor,
            server,
            sandbox,
            executor_id,
            pids: Vec::new(),
        };
        harness.next_subscription().await;
        harness
    }

    async fn next_subscription(&mut self) -> Value {
        timeout(DEADLINE, self.subscriptions.recv())
            .await
            .expect("the executor subscribes in time")
            .expect("the agent is running")
    }

    fn subscribed(&self) {
        self.agent.push(json!({"type": "SUBSCRIBED", "subscribed": {
            "executor_info": {"executor_id": {"value": self.executor_id},
                "command": {"value": "unused"}},
            "framework_info": {"user": "root", "name": "test", "id": {"value": "f1"},
                "capabilities": [{"type": "TASK_KILLING_STATE"}]},
            "agent_info": {"hostname": "localhost"}}}));
    }

    fn launch(&self, command: Value) {
        self.agent
            .push(json!({"type": "LAUNCH", "launch": {"task": {
            "name": "t1", "task_id": {"value": "t1"}, "agent_id": {"value": "a1"},
            "command": command}}}));
    }

    async fn next_update(&mut self) -> TaskStatus {
        let status = timeout(DEADLINE, self.updates.recv())
            .await
            .expect("a status update in time")
            .expect("the agent is running");
        assert_eq!(status.source, Some(Source::Executor));
        assert_eq!(
            status.executor_id.as_ref().map(|e| e.as_str()),
            Some(self.executor_id)
        );
        assert!(status.timestamp.is_some_and(|t| t > 1.0e9), "{status:?}");
        validate_status_uuid("uuid", status.uuid.as_deref().unwrap_or_default()).unwrap();
        status
    }

    /// Sends LAUNCH_GROUP with tasks `(id, command)`.
    fn launch_group(&self, tasks: &[(&str, Value)]) {
        let tasks: Vec<Value> = tasks
            .iter()
            .map(|(id, command)| {
                json!({"name": id, "task_id": {"value": id}, "agent_id": {"value": "a1"},
                    "command": command})
            })
            .collect();
        self.agent
            .push(json!({"type": "LAUNCH_GROUP", "launch_group": {
            "task_group": {"tasks": tasks}}}));
    }

    /// Collects updates into `reports` until `task_id` sent a terminal one.
    async fn updates_until_terminal(
        &mut self,
        reports: &mut BTreeMap<String, Reports>,
        task_id: &str,
    ) {
        loop {
            let status = self.next_update().await;
            let (id, state) = (status.task_id.to_string(), status.state);
            reports
                .entry(id.clone())
                .or_default()
                .push((state, status.message));
            if id == task_id && state.is_terminal() {
                return;
            }
        }
    }

    async fn expect_update(&mut self, state: TaskState, message: Option<&str>) -> TaskStatus {
        let status = self.next_update().await;
        assert_eq!(
            (status.state, status.message.as_deref()),
            (state, message),
            "{status:?}"
        );
        status
    }

    /// Reads the pid the task's shell wrote to `pid` in the sandbox.
    async fn task_pid(&mut self) -> i32 {
        self.task_pid_from("pid").await
    }

    /// Reads the pid a task's shell wrote to the file `name` in the sandbox.
    async fn task_pid_from(&mut self, name: &str) -> i32 {
        let path = self.sandbox.path().join(name);
        let pid = timeout(DEADLINE, async {
            loop {
                if let Some(pid) = std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|t| t.trim().parse().ok())
                {
                    return pid;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("the task writes its pid in time");
        self.pids.push(pid);
        assert!(
            !live_members(pid).is_empty(),
            "the task leads its own process group {pid}"
        );
        pid
    }

    fn sandbox_file(&self, name: &str) -> PathBuf {
        self.sandbox.path().join(name)
    }

    async fn executor_exits(&mut self) {
        let executor = self.executor.take().expect("the executor runs");
        let result = timeout(DEADLINE, executor)
            .await
            .expect("the executor exits in time");
        result
            .expect("the executor does not panic")
            .expect("the executor succeeds");
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        for &pid in &self.pids {
            // SAFETY: plain integers in, nothing of ours touched; the group is the task's
            // own and this only cleans up after a failed test.
            unsafe { libc::killpg(pid, libc::SIGKILL) };
        }
        if let Some(executor) = self.executor.take() {
            executor.abort();
        }
        self.server.abort();
    }
}

/// The live (not zombie) processes of a process group, from `/proc`.
fn live_members(pgid: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut members = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let stat = read(&entry.path().join("stat"));
        // After the `(comm)` field: state, ppid, pgrp, ...
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid.to_string() {
            members.push(pid);
        }
    }
    members
}

/// Whether the task's process group still has live members once the signals the
/// executor sent have had a moment to land.
async fn group_exists(pgid: i32) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let members = live_members(pgid);
        if members.is_empty() {
            return false;
        }
        if tokio::time::Instant::now() >= deadline {
            eprintln!("process group {pgid} still has {members:?}");
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[tokio::test]
async fn a_command_that_succeeds_finishes() {
    let mut harness = Harness::start(false).await;
    harness.subscribed();
    harness.launch(json!({"value": "true"}));
    harness.expect_update(TaskState::Starting, None).await;
    harness.expect_update(TaskState::Running, None).await;
    harness
        .expect_update(TaskState::Finished, Some("Command exited with status 0"))
        .await;
    harness.executor_exits().await;
}

#[tokio::test]
async fn a_command_that_exits_3_fails() {
    let mut harness = Harness::start(false).await;
    harness.subscribed();
    harness.launch(json!({"value": "exit 3"}));
    harness.expect_update(TaskState::Starting, None).await;
    harness.expect_update(TaskState::Running, None).await;
    harness
        .expect_update(TaskState::Failed, Some("Command exited with status 3"))
        .await;
    harness.executor_exits().await;
}

#[tokio::test]
async fn a_killed_command_is_killed() {
    let mut harness = Harness::start(false).await;
    harness.subscribed();
    harness.launch(json!({"value": "echo $$ > pid; sleep 30"}));
    harness.expect_update(TaskState::Starting, None).await;
    harness.expect_update(TaskState::Running, None).await;
    let pid = harness.task_pid().await;
    harness
        .agent
        .push(json!({"type": "KILL", "kill": {"task_id": {"value": "t1"},
        "kill_policy": {"grace_period": {"nanoseconds": 5_000_000_000i64}}}}));
    harness.expect_update(TaskState::Killing, None).await;
    harness
        .expect_update(
            TaskState::Killed,
            Some("Command terminated with signal Terminated"),
        )
        .await;
    harness.executor_exits().await;
    assert!(
        !group_exists(pid).await,
        "the task's process group {pid} is gone"
    );
}

#[tokio::test]
async fn arguments_and_environment_reach_the_process() {
    let mut harness = Harness::start(false).await;
    harness.subscribed();
    harness.launch(json!({
        "shell": false,
        "value": "/bin/sh",
        "arguments": ["custom-argv0", "-c", "printf %s \"$FOO\" > foo; tr '\\000' ' ' < /proc/$$/cmdline > cmdline"],
        "environment": {"variables": [
            {"name": "FOO", "type": "VALUE", "value": "bar baz"},
            {"name": "HIDDEN", "type": "SECRET", "secret": {"type": "VALUE"}}]}
    }));
    harness.expect_update(TaskState::Starting, None).await;
    harness.expect_update(TaskState::Running, None).await;
    harness
        .expect_update(TaskState::Finished, Some("Command exited with status 0"))
        .await;
    harness.executor_exits().await;
    assert_eq!(read(&harness.sandbox_file("foo")), "bar baz");
    let cmdline = read(&harness.sandbox_file("cmdline"));
    assert!(cmdline.starts_with("custom-argv0 -c printf"), "{cmdline:?}");
}

#[tokio::test]
async fn a_missing_program_fails_the_task() {
    let mut harness = Harness::start(false).await;
    harness.subscribed();
    harness
        .launch(json!({"shell": false, "value": "/nonexistent/program", "arguments": ["program"]}));
    harness.expect_update(TaskState::Starting, None).await;
    let status = harness.next_update().await;
    assert_eq!(status.state, TaskState::Failed);
    let message = status.message.unwrap_or_default();
    assert!(
        message.starts_with("Failed to launch the command: /nonexistent/program: No such file"),
        "{message}"
    );
    harness.executor_exits().await;
}

#[tokio::test]
async fn losing_the_agent_without_checkpointing_kills_the_task() {
    let mut harness = Harness::start(false).await;
    harness.subscribed();
    harness.launch(json!({"value": "echo $$ > pid; sleep 30"}));
    harness.expect_update(TaskState::Starting, None).await;
    harness.expect_update(TaskState::Running, None).await;
    let pid = harness.task_pid().await;
    harness.agent.close_stream();
    harness.executor_exits().await;
    assert!(
        !group_exists(pid).await,
        "the task's process group {pid} is gone"
    );
}

#[tokio::test]
async fn a_checkpointing_executor_resubscribes_with_its_unacknowledged_updates() {
    let mut harness = Harness::start(true).await;
    harness.agent.auto_ack.store(false, Ordering::SeqCst);
    harness.subscribed();
    harness.launch(json!({"value": "echo $$ > pid; sleep 30"}));
    let starting = harness.expect_update(TaskState::Starting, None).await;
    let running = harness.expect_update(TaskState::Running, None).await;
    let pid = harness.task_pid().await;

    harness.agent.close_stream();
    let resubscribe = harness.next_subscription().await;
    let subscribe = &resubscribe["subscribe"];
    let tasks: Vec<&str> = subscribe["unacknowledged_tasks"]
        .as_array()
        .map(|tasks| {
            tasks
                .iter()
                .filter_map(|t| t["task_id"]["value"].as_str())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(tasks, ["t1"], "{resubscribe}");
    let updates: Vec<(&str, &str)> = subscribe["unacknowledged_updates"]
        .as_array()
        .map(|updates| {
            updates
                .iter()
                .filter_map(|u| {
                    Some((
                        u["status"]["state"].as_str()?,
                        u["status"]["uuid"].as_str()?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    let expected = [
        ("TASK_STARTING", starting.uuid.as_deref().unwrap()),
        ("TASK_RUNNING", running.uuid.as_deref().unwrap()),
    ];
    assert_eq!(updates, expected, "{resubscribe}");

    harness.subscribed();
    harness.agent.ack(&starting);
    harness.agent.ack(&running);
    harness.agent.auto_ack.store(true, Ordering::SeqCst);
    harness.agent.push(json!({"type": "SHUTDOWN"}));
    harness.expect_update(TaskState::Killing, None).await;
    harness
        .expect_update(
            TaskState::Killed,
            Some("Command terminated with signal Terminated"),
        )
        .await;
    harness.executor_exits().await;
    assert!(
        !group_exists(pid).await,
        "the task's process group {pid} is gone"
    );
}

#[tokio::test]
async fn a_task_that_ignores_sigterm_gets_sigkill_after_the_grace_period() {
    let mut harness = Harness::start(false).await;
    harness.subscribed();
    harness.launch(json!({"value": "trap '' TERM; echo $$ > pid; sleep 30"}));
    harness.expect_update(TaskState::Starting, None).await;
    harness.expect_update(TaskState::Running, None).await;
    let pid = harness.task_pid().await;
    let started = std::time::Instant::now();
    harness
        .agent
        .push(json!({"type": "KILL", "kill": {"task_id": {"value": "t1"},
        "kill_policy": {"grace_period": {"nanoseconds": 300_000_000i64}}}}));
    harness.expect_update(TaskState::Killing, None).await;
    harness
        .expect_update(
            TaskState::Killed,
            Some("Command terminated with signal Killed"),
        )
        .await;
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "SIGKILL waited for the grace period"
    );
    harness.executor_exits().await;
    assert!(
        !group_exists(pid).await,
        "the task's process group {pid} is gone"
    );
}

#[tokio::test]
async fn a_task_past_its_max_completion_time_fails() {
    let mut harness = Harness::start(false).await;
    harness.subscribed();
    harness
        .agent
        .push(json!({"type": "LAUNCH", "launch": {"task": {
        "name": "t1", "task_id": {"value": "t1"}, "agent_id": {"value": "a1"},
        "command": {"value": "echo $$ > pid; sleep 30"},
        "max_completion_time": {"nanoseconds": 1_000_000_000i64}}}}));
    harness.expect_update(TaskState::Starting, None).await;
    harness.expect_update(TaskState::Running, None).await;
    let pid = harness.task_pid().await;
    harness.expect_update(TaskState::Killing, None).await;
    let status = harness
        .expect_update(
            TaskState::Failed,
            Some("Command terminated with signal Terminated"),
        )
        .await;
    assert_eq!(
        status.reason,
        Some(mantle_api::Reason::MaxCompletionTimeReached)
    );
    harness.executor_exits().await;
    assert!(
        !group_exists(pid).await,
        "the task's process group {pid} is gone"
    );
}

fn report(state: TaskState, message: Option<&str>) -> (TaskState, Option<String>) {
    (state, message.map(str::to_string))
}

#[tokio::test]
async fn killing_one_task_of_a_group_kills_the_group() {
    let mut harness = Harness::start_as(false, "default-executor").await;
    harness.subscribed();
    harness.launch_group(&[
        ("quick", json!({"value": "true"})),
        ("sleeper", json!({"value": "echo $$ > pid; sleep 30"})),
    ]);
    let mut reports = BTreeMap::new();
    // Wait for the quick task to finish first: a task exiting 0 leaves its group alone.
    harness.updates_until_terminal(&mut reports, "quick").await;
    let pid = harness.task_pid().await;
    harness.agent.push(
        json!({"type": "KILL", "kill": {"task_id": {"value": "sleeper"},
        "kill_policy": {"grace_period": {"nanoseconds": 5_000_000_000i64}}}}),
    );
    harness
        .updates_until_terminal(&mut reports, "sleeper")
        .await;
    let expected = BTreeMap::from([
        (
            "quick".to_string(),
            vec![
                report(TaskState::Starting, None),
                report(TaskState::Running, None),
                report(TaskState::Finished, Some("Command exited with status 0")),
            ],
        ),
        (
            "sleeper".to_string(),
            vec![
                report(TaskState::Starting, None),
                report(TaskState::Running, None),
                report(TaskState::Killing, None),
                report(
                    TaskState::Killed,
                    Some("Command terminated with signal Terminated"),
                ),
            ],
        ),
    ]);
    assert_eq!(reports, expected);
    harness.executor_exits().await;
    assert!(
        !group_exists(pid).await,
        "the sleeper's process group {pid} is gone"
    );
}

#[tokio::test]
async fn a_failing_task_of_a_group_kills_its_siblings() {
    let mut harness = Harness::start_as(false, "default-executor").await;
    harness.subscribed();
    harness.launch_group(&[(
        "sleeper",
        json!({"value": "echo $$ > sleeper.pid; sleep 30"}),
    )]);
    let sleeper = harness.task_pid_from("sleeper.pid").await;
    // A second group on the same executor: its failure kills its own sibling only.
    harness.launch_group(&[
        (
            "failing",
            // Fails once the test says so (or after about 10 s).
            json!({"value": "for i in $(seq 1000); do [ -e go ] && exit 3; sleep 0.01; done; exit 4"}),
        ),
        (
            "sibling",
            json!({"value": "echo $$ > sibling.pid; sleep 30"}),
        ),
    ]);
    let sibling = harness.task_pid_from("sibling.pid").await;
    std::fs::write(harness.sandbox_file("go"), "").unwrap();
    let mut reports = BTreeMap::new();
    harness
        .updates_until_terminal(&mut reports, "sibling")
        .await;
    assert!(
        !group_exists(sibling).await,
        "the sibling's process group {sibling} is gone"
    );
    assert!(
        !live_members(sleeper).is_empty(),
        "the first group's task still runs"
    );
    harness.agent.push(json!({"type": "SHUTDOWN"}));
    harness
        .updates_until_terminal(&mut reports, "sleeper")
        .await;
    let expected = BTreeMap::from([
        (
            "failing".to_string(),
            vec![
                report(TaskState::Starting, None),
                report(TaskState::Running, None),
                report(TaskState::Failed, Some("Command exited with status 3")),
            ],
        ),
        (
            "sibling".to_string(),
            vec![
                report(TaskState::Starting, None),
                report(TaskState::Running, None),
                report(TaskState::Killing, None),
                report(
                    TaskState::Killed,
                    Some("Command terminated with signal Terminated"),
                ),
            ],
        ),
        (
            "sleeper".to_string(),
            vec![
                report(TaskState::Starting, None),
                report(TaskState::Running, None),
                report(TaskState::Killing, None),
                report(
                    TaskState::Killed,
                    Some("Command terminated with signal Terminated"),
                ),
            ],
        ),
    ]);
    assert_eq!(reports, expected);
    harness.executor_exits().await;
    assert!(
        !group_exists(sleeper).await,
        "the sleeper's process group {sleeper} is gone"
    );
}
