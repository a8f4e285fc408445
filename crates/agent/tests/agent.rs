//! The agent against a fake master: registration, launching real executor processes,
//! the executor API over HTTP, status updates with acknowledgements, kills, shutdowns,
//! executor exits, reconnection, and the legacy endpoints.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use mantle_agent::{AgentConfig, AgentHandle};
use mantle_api::internal::{
    AgentCall, KillTask, Register, Registered, RunTask, ShutdownExecutor, StatusUpdate,
    StatusUpdateAck, ToAgent, AGENT_API_PATH, AGENT_STREAM_HEADER, AGENT_UPGRADE,
};
use mantle_api::{FrameworkInfo, MasterInfo, Reason, Source, TaskInfo, TaskState};
use mantle_sdk::http::{HttpClient, RecordStream};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(20);

/// A master that accepts registrations, streams what the test sends, and records calls.
struct FakeMaster {
    address: SocketAddr,
    registers: mpsc::UnboundedReceiver<Register>,
    calls: mpsc::UnboundedReceiver<AgentCall>,
    stream: Arc<Mutex<Option<mpsc::UnboundedSender<Bytes>>>>,
    server: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct MasterState {
    registers: mpsc::UnboundedSender<Register>,
    calls: mpsc::UnboundedSender<AgentCall>,
    stream: Arc<Mutex<Option<mpsc::UnboundedSender<Bytes>>>>,
}

fn record(message: &ToAgent) -> Bytes {
    mantle_api::recordio::encode(&serde_json::to_vec(message).unwrap())
}

/// Takes a REGISTER that asks for the agent's socket (as a real agent's does) and
/// switches the connection: the test's messages go out on it, the agent's calls come in.
async fn master_endpoint(State(state): State<MasterState>, mut request: Request) -> Response {
    let upgrade = request
        .extensions_mut()
        .remove::<hyper::upgrade::OnUpgrade>()
        .expect("an HTTP/1.1 request");
    assert_eq!(
        request.headers().get(axum::http::header::UPGRADE).unwrap(),
        AGENT_UPGRADE
    );
    let body = axum::body::to_bytes(request.into_body(), 1 << 20)
        .await
        .unwrap();
    let Ok(AgentCall::Register(register)) = serde_json::from_slice(&body) else {
        panic!("expected a REGISTER: {}", String::from_utf8_lossy(&body));
    };
    let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
    tx.send(record(&ToAgent::Registered(Registered {
        agent_id: "m-S0".into(),
        master_info: MasterInfo {
            id: "m".into(),
            ip: 0,
            port: 5050,
            pid: None,
            hostname: Some("master-host".into()),
            version: None,
            address: None,
            capabilities: Vec::new(),
        },
        ping_interval_seconds: 10.0,
    })))
    .unwrap();
    *state.stream.lock().unwrap() = Some(tx);
    state.registers.send(register).unwrap();
    tokio::spawn(serve_socket(upgrade, rx, state.calls.clone()));
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(axum::http::header::CONNECTION, "upgrade")
        .header(axum::http::header::UPGRADE, AGENT_UPGRADE)
        .header(AGENT_STREAM_HEADER, "stream-1")
        .body(Body::empty())
        .unwrap()
}

/// The agent's socket once switched: `messages` written to it until the test closes
/// the stream, and the calls read from it (a RecordIO record holds one call or an array).
async fn serve_socket(
    upgrade: hyper::upgrade::OnUpgrade,
    mut messages: mpsc::UnboundedReceiver<Bytes>,
    calls: mpsc::UnboundedSender<AgentCall>,
) {
    use tokio::io::AsyncWriteExt;
    let socket = hyper_util::rt::TokioIo::new(upgrade.await.unwrap());
    let (mut read, mut write) = tokio::io::split(socket);
    let reader = async move {
        let mut decoder = mantle_api::recordio::Decoder::default();
        loop {
            while let Some(record) = decoder.next_record().unwrap() {
                let batch: Vec<AgentCall> = match record.starts_with(b"[") {
                    true => serde_json::from_slice(&record).unwrap(),
                    false => vec![serde_json::from_slice(&record).unwrap()],
                };
                for call in batch {
                    let _ = calls.send(call);
                }
            }
            if !matches!(decoder.read_from(&mut read).await, Ok(1..)) {
                return;
            }
        }
    };
    let writer = async move {
        while let Some(record) = messages.recv().await {
            if write.write_all(&record).await.is_err() {
                return;
            }
        }
        let _ = write.shutdown().await;
    };
    tokio::select! {
        _ = reader => {}
        _ = writer => {}
    }
}

impl FakeMaster {
    async fn start() -> FakeMaster {
        let (registers_tx, registers) = mpsc::unbounded_channel();
        let (calls_tx, calls) = mpsc::unbounded_channel();
        let stream = Arc::new(Mutex::new(None));
        let state = MasterState {
            registers: registers_tx,
            calls: calls_tx,
            stream: stream.clone(),
        };
        let app = axum::Router::new()
            .route(AGENT_API_PATH, axum::routing::post(master_endpoint))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeMaster {
            address,
            registers,
            calls,
            stream,
            server,
        }
    }

    fn send(&self, message: ToAgent) {
        let guard = self.stream.lock().unwrap();
        guard
            .as_ref()
            .expect("agent is connected")
            .send(record(&message))
            .unwrap();
    }

    fn close_stream(&self) {
        self.stream.lock().unwrap().take();
    }

    async fn next_register(&mut self) -> Register {
        tokio::time::timeout(WAIT, self.registers.recv())
            .await
            .expect("agent registers")
            .unwrap()
    }

    async fn next_call(&mut self) -> AgentCall {
        tokio::time::timeout(WAIT, self.calls.recv())
            .await
            .expect("agent calls the master")
            .unwrap()
    }

    async fn next_update(&mut self) -> StatusUpdate {
        match self.next_call().await {
            AgentCall::StatusUpdate(update) => update,
            other => panic!("expected a status update, got {other:?}"),
        }
    }

    fn ack(&self, update: &StatusUpdate) {
        self.send(ToAgent::StatusUpdateAck(StatusUpdateAck {
            framework_id: update.framework_id.clone(),
            task_id: update.status.task_id.clone(),
            uuid: update.status.uuid.clone().unwrap(),
        }));
    }
}

async fn start_agent(
    master: &FakeMaster,
    work_dir: &std::path::Path,
    edit: impl FnOnce(&mut AgentConfig),
) -> AgentHandle {
    let mut config = AgentConfig::new(master.address.to_string(), work_dir);
    config.port = 0;
    config.resources = Some("cpus:2;mem:512;disk:1000;ports:[31000-31010]".into());
    config.attributes = Some("rack:r1".into());
    config.launcher = "/nonexistent/mantle".into();
    // mantle-launcher is built next to the test binaries' directory (target/debug).
    config.launcher_dir = std::env::current_exe()
        .unwrap()
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap()
        .to_path_buf();
    // The framework's user "u" does not exist here.
    config.switch_user = false;
    edit(&mut config);
    mantle_agent::start(config).await.unwrap()
}

fn framework_info() -> FrameworkInfo {
    serde_json::from_value(json!({"user": "u", "name": "fw", "id": {"value": "f1"}})).unwrap()
}

fn task_with_executor(task_id: &str, executor_id: &str, command: &str) -> TaskInfo {
    serde_json::from_value(json!({
        "name": task_id, "task_id": {"value": task_id}, "agent_id": {"value": "m-S0"},
        "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5}}],
        "executor": {"executor_id": {"value": executor_id}, "command": {"value": command}}
    }))
    .unwrap()
}

/// GETs a path with a raw HTTP/1.1 request and returns status, headers and body.
async fn raw_request(address: SocketAddr, request: &str) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, socket.read_to_end(&mut answer))
        .await
        .expect("an answer")
        .unwrap();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_string())
}

async fn get(address: SocketAddr, path: &str) -> (u16, String, String) {
    raw_request(
        address,
        &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    )
    .await
}

async fn post(address: SocketAddr, content_type: &str, body: &str) -> (u16, String, String) {
    raw_request(
        address,
        &format!(
            "POST /api/v1/executor HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
    .await
}

async fn state(agent: &AgentHandle) -> Value {
    let (status, _, body) = get(agent.address(), "/state").await;
    assert_eq!(status, 200);
    serde_json::from_str(&body).unwrap()
}

/// Polls `/state` until `ready` holds.
async fn wait_for_state(agent: &AgentHandle, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let state = state(agent).await;
        if ready(&state) {
            return state;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: {state}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn next_event(stream: &mut RecordStream) -> Value {
    tokio::time::timeout(WAIT, stream.next_json())
        .await
        .expect("an executor event")
        .unwrap()
        .expect("stream open")
}

#[tokio::test]
async fn an_executor_that_exits_fails_its_task() {
    let mut master = FakeMaster::start().await;
    let dir = tempfile::tempdir().unwrap();
    let agent = start_agent(&master, dir.path(), |_| {}).await;
    let register = master.next_register().await;
    assert_eq!(register.agent_info.id, None);
    assert_eq!(
        register.pid,
        format!("slave(1)@127.0.0.1:{}", agent.address().port())
    );
    assert_eq!(register.version, "1.11.0");
    wait_for_state(&agent, "registration", |s| s["id"] == "m-S0").await;

    let task = task_with_executor("t1", "e1", "env > $MESOS_SANDBOX/env.txt; sleep 0");
    master.send(ToAgent::RunTask(RunTask {
        framework_info: framework_info(),
        task,
    }));

    let update = master.next_update().await;
    assert_eq!(update.framework_id.as_str(), "f1");
    let status = &update.status;
    assert_eq!(status.task_id.as_str(), "t1");
    assert_eq!(status.state, TaskState::Failed);
    assert_eq!(status.reason, Some(Reason::ExecutorTerminated));
    assert_eq!(status.source, Some(Source::Agent));
    assert_eq!(status.agent_id.as_ref().map(|a| a.as_str()), Some("m-S0"));
    assert_eq!(status.executor_id.as_ref().map(|e| e.as_str()), Some("e1"));
    assert!(mantle_api::validate_status_uuid("uuid", status.uuid.as_deref().unwrap()).is_ok());
    match master.next_call().await {
        AgentCall::ExecutorExited(exited) => {
            assert_eq!(exited.executor_id.as_str(), "e1");
            assert_eq!(exited.status, 0);
        }
        other => panic!("expected ExecutorExited, got {other:?}"),
    }

    // The sandbox follows the Mesos layout and the executor saw its environment.
    let state = wait_for_state(&agent, "the executor in /state", |s| {
        s["frameworks"][0]["executors"][0]["directory"].is_string()
    })
    .await;
    let executor = &state["frameworks"][0]["executors"][0];
    let directory = executor["directory"].as_str().unwrap().to_string();
    let container = executor["container"].as_str().unwrap();
    let work_dir = dir.path().canonicalize().unwrap();
    assert_eq!(
        directory,
        format!(
            "{}/slaves/m-S0/frameworks/f1/executors/e1/runs/{container}",
            work_dir.display()
        )
    );
    let runs_latest =
        std::fs::read_link(work_dir.join("slaves/m-S0/frameworks/f1/executors/e1/runs/latest"))
            .unwrap();
    assert_eq!(runs_latest.to_str(), Some(container));
    assert_eq!(
        std::fs::read_link(work_dir.join("slaves/latest"))
            .unwrap()
            .to_str(),
        Some("m-S0")
    );
    let env = std::fs::read_to_string(format!("{directory}/env.txt")).unwrap();
    let port = agent.address().port();
    for line in [
        "MESOS_FRAMEWORK_ID=f1".to_string(),
        "MESOS_EXECUTOR_ID=e1".to_string(),
        format!("MESOS_DIRECTORY={directory}"),
        format!("MESOS_SANDBOX={directory}"),
        format!("MESOS_AGENT_ENDPOINT=127.0.0.1:{port}"),
        "MESOS_SLAVE_ID=m-S0".to_string(),
        format!("MESOS_SLAVE_PID=slave(1)@127.0.0.1:{port}"),
        "MESOS_CHECKPOINT=0".to_string(),
        "MESOS_HTTP_COMMAND_EXECUTOR=1".to_string(),
        "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD=5secs".to_string(),
        format!("MESOS_CONTAINER_ID={container}"),
    ] {
        assert!(env.lines().any(|l| l == line), "{line} missing from\n{env}");
    }
    assert!(std::path::Path::new(&format!("{directory}/stdout")).exists());
    assert!(std::path::Path::new(&format!("{directory}/stderr")).exists());

    // Once the failure is acknowledged the framework is done.
    master.ack(&update);
    let state = wait_for_state(&agent, "completion", |s| {
        s["completed_frameworks"]
            .as_array()
            .is_some_and(|a| a.len() == 1)
    })
    .await;
    let task = &state["completed_frameworks"][0]["completed_executors"][0]["completed_tasks"][0];
    assert_eq!(task["id"], "t1");
    assert_eq!(task["state"], "TASK_FAILED");
    assert_eq!(task["slave_id"], "m-S0");
    assert_eq!(task["executor_id"], "e1");
    assert_eq!(task["statuses"][0]["state"], "TASK_FAILED");
    agent.shutdown().await;
    master.server.abort();
}

#[tokio::test]
async fn executor_api_kill_shutdown_and_reconnection() {
    let mut master = FakeMaster::start().await;
    let dir = tempfile::tempdir().unwrap();
    let agent = start_agent(&master, dir.path(), |c| {
        c.executor_shutdown_grace_period = Duration::from_millis(500)
    })
    .await;
    master.next_register().await;
    wait_for_state(&agent, "registration", |s| s["id"] == "m-S0").await;
    let address = agent.address();

    // Request checks.
    assert_eq!(get(address, "/api/v1/executor").await.0, 405);
    assert_eq!(post(address, "text/plain", "{}").await.0, 415);
    assert_eq!(post(address, "application/json", "{not json").await.0, 400);
    let subscribe = json!({"type": "SUBSCRIBE", "framework_id": {"value": "f1"}, "executor_id": {"value": "e1"}, "subscribe": {}});
    let (status, _, body) = post(address, "application/json", &subscribe.to_string()).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("f1"), "{body}");

    // The executor process sleeps; the test plays the executor over HTTP.
    let task = task_with_executor("t1", "e1", "sleep 60");
    master.send(ToAgent::RunTask(RunTask {
        framework_info: framework_info(),
        task,
    }));
    let state = wait_for_state(&agent, "queued task", |s| {
        s["frameworks"][0]["executors"][0]["queued_tasks"][0]["id"] == "t1"
    })
    .await;
    assert_eq!(
        state["frameworks"][0]["executors"][0]["queued_tasks"][0]["state"],
        "TASK_STAGING"
    );

    let update = |state: &str, uuid: &str| {
        json!({"type": "UPDATE", "framework_id": {"value": "f1"}, "executor_id": {"value": "e1"},
            "update": {"status": {"task_id": {"value": "t1"}, "state": state, "uuid": uuid, "source": "SOURCE_EXECUTOR"}}})
        .to_string()
    };
    let uuid1 = mantle_api::new_status_uuid();
    let (status, _, _) = post(address, "application/json", &update("TASK_RUNNING", &uuid1)).await;
    assert_eq!(status, 403, "UPDATE before SUBSCRIBE");

    let client = HttpClient::new(WAIT);
    let url = format!("http://{address}/slave(1)/api/v1/executor");
    let (headers, mut events) = client
        .stream(&url, subscribe.to_string().into_bytes(), &[])
        .await
        .unwrap();
    assert_eq!(headers.get("content-type").unwrap(), "application/json");
    assert_eq!(headers.get("transfer-encoding").unwrap(), "chunked");
    let subscribed = next_event(&mut events).await;
    assert_eq!(subscribed["type"], "SUBSCRIBED");
    assert_eq!(
        subscribed["subscribed"]["executor_info"]["executor_id"],
        json!({"value": "e1"})
    );
    assert_eq!(
        subscribed["subscribed"]["framework_info"]["id"],
        json!({"value": "f1"})
    );
    assert_eq!(
        subscribed["subscribed"]["agent_info"]["id"],
        json!({"value": "m-S0"})
    );
    let launch = next_event(&mut events).await;
    assert_eq!(launch["type"], "LAUNCH");
    assert_eq!(launch["launch"]["task"]["task_id"], json!({"value": "t1"}));

    let (status, head, body) =
        post(address, "application/json", &update("TASK_RUNNING", &uuid1)).await;
    assert_eq!(status, 202, "{body}");
    assert!(head.contains("content-length: 0"), "{head}");
    let acked = next_event(&mut events).await;
    assert_eq!(
        acked,
        json!({"type": "ACKNOWLEDGED", "acknowledged": {"task_id": {"value": "t1"}, "uuid": uuid1}})
    );
    let running = master.next_update().await;
    assert_eq!(running.status.state, TaskState::Running);
    assert_eq!(running.status.uuid.as_deref(), Some(uuid1.as_str()));
    assert_eq!(
        running.status.agent_id.as_ref().map(|a| a.as_str()),
        Some("m-S0")
    );
    assert_eq!(
        running.status.executor_id.as_ref().map(|e| e.as_str()),
        Some("e1")
    );
    assert!(running.status.timestamp.is_some());

    // The master loses the stream before acknowledging: the agent re-registers with its
    // id and what it runs, and resends the unacknowledged update.
    master.close_stream();
    let register = master.next_register().await;
    assert_eq!(
        register.agent_info.id.as_ref().map(|a| a.as_str()),
        Some("m-S0")
    );
    assert_eq!(register.frameworks.len(), 1);
    assert_eq!(register.executors.len(), 1);
    assert_eq!(register.tasks.len(), 1);
    assert_eq!(register.tasks[0].state, TaskState::Running);
    let resent = master.next_update().await;
    assert_eq!(resent.status.uuid.as_deref(), Some(uuid1.as_str()));
    master.ack(&resent);

    // A kill goes to the executor, which reports TASK_KILLED.
    master.send(ToAgent::KillTask(KillTask {
        framework_id: "f1".into(),
        task_id: "t1".into(),
        kill_policy: None,
    }));
    let kill = next_event(&mut events).await;
    assert_eq!(
        kill,
        json!({"type": "KILL", "kill": {"task_id": {"value": "t1"}}})
    );
    let uuid2 = mantle_api::new_status_uuid();
    assert_eq!(
        post(address, "application/json", &update("TASK_KILLED", &uuid2))
            .await
            .0,
        202
    );
    assert_eq!(next_event(&mut events).await["type"], "ACKNOWLEDGED");
    let killed = master.next_update().await;
    assert_eq!(killed.status.state, TaskState::Killed);
    master.ack(&killed);

    // Shutdown: SHUTDOWN, then SIGKILL of the process group after the grace period.
    master.send(ToAgent::ShutdownExecutor(ShutdownExecutor {
        framework_id: "f1".into(),
        executor_id: "e1".into(),
    }));
    assert_eq!(next_event(&mut events).await["type"], "SHUTDOWN");
    match master.next_call().await {
        AgentCall::ExecutorExited(exited) => {
            assert_eq!(exited.executor_id.as_str(), "e1");
            assert_eq!(exited.status, libc::SIGKILL, "killed by SIGKILL");
        }
        other => panic!("expected ExecutorExited, got {other:?}"),
    }
    // The stream ends with the executor.
    let end = tokio::time::timeout(WAIT, events.next_json())
        .await
        .expect("stream ends");
    assert!(matches!(end, Ok(None) | Err(_)), "{end:?}");
    wait_for_state(&agent, "completed framework", |s| {
        s["completed_frameworks"][0]["id"] == "f1"
    })
    .await;

    agent.shutdown().await;
    master.server.abort();
}

#[tokio::test]
async fn registration_timeout_and_launch_failure() {
    let mut master = FakeMaster::start().await;
    let dir = tempfile::tempdir().unwrap();
    let agent = start_agent(&master, dir.path(), |c| {
        c.executor_registration_timeout = Duration::from_millis(500)
    })
    .await;
    master.next_register().await;
    wait_for_state(&agent, "registration", |s| s["id"] == "m-S0").await;

    master.send(ToAgent::RunTask(RunTask {
        framework_info: framework_info(),
        task: task_with_executor("t1", "e1", "sleep 60"),
    }));
    let update = master.next_update().await;
    assert_eq!(update.status.state, TaskState::Failed);
    assert_eq!(
        update.status.reason,
        Some(Reason::ExecutorRegistrationTimeout)
    );
    match master.next_call().await {
        AgentCall::ExecutorExited(exited) => assert_eq!(exited.status, libc::SIGKILL),
        other => panic!("expected ExecutorExited, got {other:?}"),
    }

    // A command task needs the launcher, which does not exist here.
    let mut task: TaskInfo = serde_json::from_value(json!({
        "name": "t2", "task_id": {"value": "t2"}, "agent_id": {"value": "m-S0"},
        "command": {"value": "echo hi"}
    }))
    .unwrap();
    task.executor = None;
    master.send(ToAgent::RunTask(RunTask {
        framework_info: framework_info(),
        task,
    }));
    let update = master.next_update().await;
    assert_eq!(update.status.task_id.as_str(), "t2");
    assert_eq!(update.status.state, TaskState::Failed);
    assert_eq!(update.status.reason, Some(Reason::ContainerLaunchFailed));
    assert!(
        update
            .status
            .message
            .as_deref()
            .unwrap_or("")
            .contains("/nonexistent/mantle"),
        "{:?}",
        update.status.message
    );
    let state = wait_for_state(&agent, "executor t2", |s| {
        s["frameworks"][0]["executors"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["id"] == "t2"))
    })
    .await;
    let executor = state["frameworks"][0]["executors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == "t2")
        .cloned()
        .unwrap();
    assert_eq!(
        executor["name"],
        "Command Executor (Task: t2) (Command: sh -c 'echo hi')"
    );
    assert_eq!(executor["source"], "t2");

    agent.shutdown().await;
    master.server.abort();
}

#[tokio::test]
async fn legacy_endpoints_and_aliases() {
    let mut master = FakeMaster::start().await;
    let dir = tempfile::tempdir().unwrap();
    let agent = start_agent(&master, dir.path(), |_| {}).await;
    master.next_register().await;
    let state = wait_for_state(&agent, "registration", |s| s["id"] == "m-S0").await;
    let address = agent.address();
    assert_eq!(
        state["pid"],
        format!("slave(1)@127.0.0.1:{}", address.port())
    );
    assert_eq!(state["hostname"], "127.0.0.1");
    assert_eq!(state["version"], "1.11.0");
    assert_eq!(state["resources"]["cpus"], 2.0);
    assert_eq!(state["resources"]["ports"], "[31000-31010]");
    assert_eq!(state["attributes"]["rack"], "r1");
    assert_eq!(state["master_hostname"], "master-host");
    assert_eq!(
        state["flags"]["work_dir"],
        dir.path().canonicalize().unwrap().to_str().unwrap()
    );

    for path in [
        "/state",
        "/state/",
        "/state.json",
        "/slave(1)/state",
        "/slave(1)/state.json",
    ] {
        let (status, _, body) = get(address, path).await;
        assert_eq!(status, 200, "{path}");
        let value: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(value["id"], "m-S0", "{path}");
    }
    let (status, head, body) = get(address, "/slave(1)/state.json?jsonp=cb").await;
    assert_eq!(status, 200);
    assert!(head.contains("content-type: text/javascript"), "{head}");
    assert!(body.starts_with("cb({") && body.ends_with("});"), "{body}");
    let (status, _, body) = get(address, "/slave(1)/health").await;
    assert_eq!((status, body.as_str()), (200, ""));
    let (status, _, body) = get(address, "/version").await;
    assert_eq!(status, 200);
    let version: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(version["version"], "1.11.0");
    assert_eq!(get(address, "/nope").await.0, 404);

    agent.shutdown().await;
    master.server.abort();
}

#[tokio::test]
async fn bad_flags_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = AgentConfig::new("127.0.0.1:5050", dir.path());
    config.port = 0;
    config.resources = Some("cpus:lots".into());
    let err = mantle_agent::start(config)
        .await
        .err()
        .expect("bad resources are refused");
    assert!(err.to_string().starts_with("--resources:"), "{err}");
}
