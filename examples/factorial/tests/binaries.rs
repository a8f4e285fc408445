//! Runs the two binaries as processes against small fakes of the HTTP APIs they speak:
//! `factorial-scheduler` against a fake master's `/api/v1/scheduler`, and
//! `factorial-executor` against a fake agent's `/api/v1/executor`. The fakes follow the
//! wire shapes of reference §1 and §2; runs against a real cluster belong to the
//! process tests of the `mantle` binary.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::Response;
use mantle_api::json::to_ascii_json;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// A fake server: every POST is recorded; `respond` decides what the stream gets.
struct Fake {
    requests: Vec<Value>,
    stream: Option<mpsc::UnboundedSender<Value>>,
    /// The fake master's answer to every ACCEPT: the result each task reports.
    wrong_result: bool,
}

type Shared = Arc<Mutex<Fake>>;

fn record_stream(records: mpsc::UnboundedReceiver<Value>) -> Body {
    let chunks = futures_util::stream::unfold(records, |mut records| async move {
        let record = records.recv().await?;
        let chunk = mantle_api::recordio::encode(&to_ascii_json(&record));
        Some((Ok::<Bytes, Infallible>(chunk), records))
    });
    Body::from_stream(chunks)
}

fn stream_response(fake: &mut Fake, first: Vec<Value>) -> Response {
    let (tx, rx) = mpsc::unbounded_channel();
    for record in first {
        tx.send(record).unwrap();
    }
    fake.stream = Some(tx);
    Response::builder()
        .status(200)
        .header("Content-Type", "application/json")
        .header("Mesos-Stream-Id", "s-1")
        .body(record_stream(rx))
        .unwrap()
}

fn accepted() -> Response {
    Response::builder().status(202).body(Body::empty()).unwrap()
}

fn push(fake: &Fake, record: Value) {
    if let Some(stream) = &fake.stream {
        let _ = stream.send(record);
    }
}

async fn serve(fake: Shared, path: &str, handler: fn(&mut Fake, Value) -> Response) -> String {
    let app = axum::Router::new().route(
        path,
        axum::routing::post(move |State(fake): State<Shared>, body: Bytes| async move {
            let body: Value = serde_json::from_slice(&body).unwrap();
            let mut fake = fake.lock().unwrap();
            fake.requests.push(body.clone());
            handler(&mut fake, body)
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app.with_state(fake)).await.unwrap() });
    address
}

fn new_fake(wrong_result: bool) -> Shared {
    Arc::new(Mutex::new(Fake {
        requests: Vec::new(),
        stream: None,
        wrong_result,
    }))
}

fn b64(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// A 16-byte status uuid, distinct per update.
fn uuid(i: usize) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode((i as u128).to_be_bytes())
}

/// The fake master: subscribes the framework, offers one agent, and answers every
/// launched task with TASK_RUNNING and TASK_FINISHED carrying n! (or n! + 1).
fn master(fake: &mut Fake, call: Value) -> Response {
    match call["type"].as_str().unwrap() {
        "SUBSCRIBE" => {
            let offer = json!({"id": {"value": "o1"}, "framework_id": {"value": "f1"},
                "agent_id": {"value": "a1"}, "hostname": "h",
                "resources": [
                    {"name": "cpus", "type": "SCALAR", "scalar": {"value": 4.0}, "role": "*"},
                    {"name": "mem", "type": "SCALAR", "scalar": {"value": 1024.0}, "role": "*"}]});
            stream_response(
                fake,
                vec![
                    json!({"type": "SUBSCRIBED", "subscribed": {"framework_id": {"value": "f1"},
                        "heartbeat_interval_seconds": 15.0}}),
                    json!({"type": "HEARTBEAT"}),
                    json!({"type": "OFFERS", "offers": {"offers": [offer]}}),
                ],
            )
        }
        "ACCEPT" => {
            let tasks = call["accept"]["operations"][0]["launch"]["task_infos"]
                .as_array()
                .unwrap()
                .clone();
            for (i, task) in tasks.iter().enumerate() {
                let n = factorial::decode_number(task["data"].as_str()).unwrap();
                let mut digits = factorial::factorial(n).to_decimal();
                if fake.wrong_result {
                    digits.push('1');
                }
                let status = |state: &str, k: usize| {
                    json!({"task_id": task["task_id"], "state": state, "agent_id": {"value": "a1"},
                        "source": "SOURCE_EXECUTOR", "uuid": uuid(10 * i + k)})
                };
                push(
                    fake,
                    json!({"type": "UPDATE", "update": {"status": status("TASK_RUNNING", 1)}}),
                );
                let mut finished = status("TASK_FINISHED", 2);
                finished["data"] = json!(b64(&digits));
                push(
                    fake,
                    json!({"type": "UPDATE", "update": {"status": finished}}),
                );
            }
            accepted()
        }
        "TEARDOWN" => {
            fake.stream = None;
            accepted()
        }
        _ => accepted(),
    }
}

async fn run_scheduler(master: &str, timeout: &str, args: &[&str]) -> std::process::Output {
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_factorial-scheduler"))
        .args([
            "--master",
            master,
            "--executor",
            env!("CARGO_BIN_EXE_factorial-executor"),
            "--timeout",
            timeout,
        ])
        .args(args)
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(Duration::from_secs(30), child)
        .await
        .expect("the scheduler exits")
        .unwrap()
}

fn calls_of(fake: &Shared, kind: &str) -> Vec<Value> {
    fake.lock()
        .unwrap()
        .requests
        .iter()
        .filter(|r| r["type"] == kind)
        .cloned()
        .collect()
}

#[tokio::test]
async fn scheduler_verifies_every_result() {
    let fake = new_fake(false);
    let address = serve(fake.clone(), "/api/v1/scheduler", master).await;
    let output = run_scheduler(&address, "20", &["--json", "5", "25", "70"]).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );

    let results: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let got: Vec<(u64, String)> = results
        .iter()
        .map(|r| {
            (
                r["n"].as_u64().unwrap(),
                r["factorial"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (5, "120".to_string()),
            (25, "15511210043330985984000000".to_string()),
            (70, factorial::factorial(70).to_decimal()),
        ]
    );
    assert_eq!(results[2]["digits"], 101);
    assert!(stderr.contains("all 3 factorials verified"), "{stderr}");

    let subscribe = &calls_of(&fake, "SUBSCRIBE")[0];
    assert_eq!(
        subscribe["subscribe"]["framework_info"]["name"],
        "factorial"
    );
    assert_eq!(
        subscribe["subscribe"]["framework_info"]["failover_timeout"],
        0.0
    );
    let accept = &calls_of(&fake, "ACCEPT")[0];
    assert_eq!(accept["framework_id"], json!({"value": "f1"}));
    let task = &accept["accept"]["operations"][0]["launch"]["task_infos"][1];
    assert_eq!(task["task_id"], json!({"value": "factorial-25"}));
    assert_eq!(task["name"], "factorial 25");
    assert_eq!(
        task["executor"]["executor_id"],
        json!({"value": "factorial-executor"})
    );
    let executor = env!("CARGO_BIN_EXE_factorial-executor");
    assert_eq!(
        task["executor"]["command"],
        json!({"shell": false, "value": executor, "arguments": [executor]})
    );
    assert_eq!(
        calls_of(&fake, "ACKNOWLEDGE").len(),
        6,
        "two updates for each of three tasks"
    );
    assert_eq!(calls_of(&fake, "TEARDOWN").len(), 1);
}

#[tokio::test]
async fn scheduler_fails_on_a_wrong_result() {
    let fake = new_fake(true);
    let address = serve(fake.clone(), "/api/v1/scheduler", master).await;
    let output = run_scheduler(&address, "20", &["7"]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("factorial(7) is wrong: got 50401"),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let subscribed = format!("subscribed to master {address} as framework f1");
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            subscribed.as_str(),
            "launching factorial 7 on agent a1",
            "factorial(7): TASK_RUNNING on agent a1",
        ],
        "progress for people goes to stdout without --json"
    );
    assert_eq!(
        calls_of(&fake, "TEARDOWN").len(),
        1,
        "torn down after a failure too"
    );
}

#[tokio::test]
async fn scheduler_gives_up_at_the_timeout() {
    let fake = new_fake(false);
    // A master that never offers anything.
    let address = serve(fake.clone(), "/api/v1/scheduler", |fake, call| {
        match call["type"].as_str() {
            Some("SUBSCRIBE") => stream_response(
                fake,
                vec![
                    json!({"type": "SUBSCRIBED", "subscribed": {"framework_id": {"value": "f1"}}}),
                ],
            ),
            _ => accepted(),
        }
    })
    .await;
    let output = run_scheduler(&address, "1", &["5", "7"]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("timed out after 1s with 0 of 2 results (still waiting for 5, 7)"),
        "{stderr}"
    );
    assert_eq!(calls_of(&fake, "TEARDOWN").len(), 1);
}

/// The fake agent: launches a good and a bad task, acknowledges every update, and
/// asks the executor to shut down once both tasks ended.
fn agent(fake: &mut Fake, call: Value) -> Response {
    match call["type"].as_str().unwrap() {
        "SUBSCRIBE" => {
            let task = |id: &str, data: &str| {
                json!({"type": "LAUNCH", "launch": {"task": {"name": id, "task_id": {"value": id},
                    "agent_id": {"value": "a1"}, "data": b64(data),
                    "executor": {"executor_id": {"value": "factorial-executor"}}}}})
            };
            stream_response(
                fake,
                vec![
                    json!({"type": "SUBSCRIBED", "subscribed": {
                        "executor_info": {"executor_id": {"value": "factorial-executor"}},
                        "framework_info": {"user": "u", "name": "factorial", "id": {"value": "f1"}},
                        "agent_info": {"hostname": "h", "id": {"value": "a1"}}}}),
                    task("factorial-25", "25"),
                    task("factorial-x", "twelve"),
                    json!({"type": "KILL", "kill": {"task_id": {"value": "not-running"}}}),
                ],
            )
        }
        "UPDATE" => {
            let status = &call["update"]["status"];
            push(
                fake,
                json!({"type": "ACKNOWLEDGED", "acknowledged": {"task_id": status["task_id"], "uuid": status["uuid"]}}),
            );
            let terminal = fake
                .requests
                .iter()
                .filter(|r| {
                    r["type"] == "UPDATE" && r["update"]["status"]["state"] != "TASK_RUNNING"
                })
                .count();
            if terminal == 2 {
                push(fake, json!({"type": "SHUTDOWN"}));
            }
            accepted()
        }
        _ => accepted(),
    }
}

#[tokio::test]
async fn executor_computes_and_reports() {
    let fake = new_fake(false);
    let address = serve(fake.clone(), "/api/v1/executor", agent).await;
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_factorial-executor"))
        .env("MESOS_AGENT_ENDPOINT", &address)
        .env("MESOS_FRAMEWORK_ID", "f1")
        .env("MESOS_EXECUTOR_ID", "factorial-executor")
        .env("MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD", "5secs")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(30), child)
        .await
        .expect("the executor exits")
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");

    let updates: Vec<Value> = calls_of(&fake, "UPDATE")
        .iter()
        .map(|c| c["update"]["status"].clone())
        .collect();
    let of = |task: &str, state: &str| -> Value {
        let found: Vec<&Value> = updates
            .iter()
            .filter(|u| u["task_id"]["value"] == task && u["state"] == state)
            .collect();
        assert_eq!(found.len(), 1, "one {state} for {task} in {updates:#?}");
        found[0].clone()
    };
    of("factorial-25", "TASK_RUNNING");
    let finished = of("factorial-25", "TASK_FINISHED");
    assert_eq!(finished["data"], b64("15511210043330985984000000"));
    assert_eq!(finished["message"], "factorial(25) computed");
    assert_eq!(finished["source"], "SOURCE_EXECUTOR");
    assert_eq!(finished["agent_id"], json!({"value": "a1"}));
    assert_eq!(
        finished["executor_id"],
        json!({"value": "factorial-executor"})
    );
    let failed = of("factorial-x", "TASK_FAILED");
    assert_eq!(
        failed["message"],
        "task data \"twelve\" is not a whole number"
    );
    assert_eq!(
        updates.len(),
        4,
        "no update for the kill of an unknown task: {updates:#?}"
    );
}
