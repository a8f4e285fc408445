//! Tests of the scheduler client: the JSON of every call, and the event loop against a
//! small fake master (axum) that scripts its SUBSCRIBE answers.

use super::*;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use futures_util::StreamExt;
use mantle_api::TaskState;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::convert::Infallible;

fn check_call(call: Call, expected: Value) {
    let body = encode_call(call, Some(&FrameworkId::new("F")));
    let actual: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(actual, expected);
}

fn acked_status(uuid: Option<&str>, agent: Option<&str>) -> TaskStatus {
    let mut status = TaskStatus::new(TaskId::new("t1"), TaskState::Running);
    status.uuid = uuid.map(str::to_string);
    status.agent_id = agent.map(AgentId::new);
    status
}

#[test]
fn call_bodies() {
    let fid = json!({"value": "F"});
    let task: TaskInfo = serde_json::from_value(json!({
        "name": "t", "task_id": {"value": "t1"}, "agent_id": {"value": "a1"},
        "command": {"value": "true"}}))
    .unwrap();
    check_call(
        accept_call(
            vec![OfferId::new("o1")],
            vec![Operation::launch(vec![task])],
            Some(Filters {
                refuse_seconds: 30.0,
            }),
        ),
        json!({"framework_id": fid, "type": "ACCEPT", "accept": {
            "offer_ids": [{"value": "o1"}],
            "operations": [{"type": "LAUNCH", "launch": {"task_infos": [{
                "name": "t", "task_id": {"value": "t1"}, "agent_id": {"value": "a1"},
                "command": {"shell": true, "value": "true"}}]}}],
            "filters": {"refuse_seconds": 30.0}}}),
    );
    check_call(
        decline_call(vec![OfferId::new("o1"), OfferId::new("o2")], None),
        json!({"framework_id": fid, "type": "DECLINE", "decline": {"offer_ids": [{"value": "o1"}, {"value": "o2"}]}}),
    );
    check_call(
        roles_call("REVIVE", vec![]),
        json!({"framework_id": fid, "type": "REVIVE"}),
    );
    check_call(
        roles_call("REVIVE", vec!["web".into()]),
        json!({"framework_id": fid, "type": "REVIVE", "revive": {"roles": ["web"]}}),
    );
    check_call(
        roles_call("SUPPRESS", vec!["*".into()]),
        json!({"framework_id": fid, "type": "SUPPRESS", "suppress": {"roles": ["*"]}}),
    );
    check_call(
        kill_call(TaskId::new("t1"), Some(AgentId::new("a1"))),
        json!({"framework_id": fid, "type": "KILL", "kill": {"task_id": {"value": "t1"}, "agent_id": {"value": "a1"}}}),
    );
    check_call(
        kill_call(TaskId::new("t1"), None),
        json!({"framework_id": fid, "type": "KILL", "kill": {"task_id": {"value": "t1"}}}),
    );
    check_call(
        shutdown_call(ExecutorId::new("e1"), AgentId::new("a1")),
        json!({"framework_id": fid, "type": "SHUTDOWN", "shutdown": {"executor_id": {"value": "e1"}, "agent_id": {"value": "a1"}}}),
    );
    check_call(
        acknowledge_call(&acked_status(Some("AAAAAAAAAAAAAAAAAAAAAA=="), Some("a1")))
            .unwrap()
            .unwrap(),
        json!({"framework_id": fid, "type": "ACKNOWLEDGE", "acknowledge": {
            "agent_id": {"value": "a1"}, "task_id": {"value": "t1"}, "uuid": "AAAAAAAAAAAAAAAAAAAAAA=="}}),
    );
    check_call(
        reconcile_call(vec![
            (TaskId::new("t1"), Some(AgentId::new("a1"))),
            (TaskId::new("t2"), None),
        ]),
        json!({"framework_id": fid, "type": "RECONCILE", "reconcile": {"tasks": [
            {"task_id": {"value": "t1"}, "agent_id": {"value": "a1"}}, {"task_id": {"value": "t2"}}]}}),
    );
    check_call(
        reconcile_call(vec![]),
        json!({"framework_id": fid, "type": "RECONCILE", "reconcile": {"tasks": []}}),
    );
    check_call(
        message_call(AgentId::new("a1"), ExecutorId::new("e1"), b"hi"),
        json!({"framework_id": fid, "type": "MESSAGE", "message": {
            "agent_id": {"value": "a1"}, "executor_id": {"value": "e1"}, "data": "aGk="}}),
    );
    check_call(
        Call::new(None, "TEARDOWN"),
        json!({"framework_id": fid, "type": "TEARDOWN"}),
    );
    // A framework id already on the call is kept.
    check_call(
        Call::new(Some(FrameworkId::new("G")), "TEARDOWN"),
        json!({"framework_id": {"value": "G"}, "type": "TEARDOWN"}),
    );
}

fn framework_info(id: Option<&str>) -> FrameworkInfo {
    let mut info: FrameworkInfo =
        serde_json::from_value(json!({"user": "u", "name": "n"})).unwrap();
    info.id = id.map(FrameworkId::new);
    info
}

#[test]
fn subscribe_bodies() {
    let check = |call: Call, expected: Value| {
        assert_eq!(
            serde_json::from_slice::<Value>(&encode_call(call, None)).unwrap(),
            expected
        )
    };
    check(
        subscribe_call(framework_info(None)),
        json!({"type": "SUBSCRIBE", "subscribe": {"framework_info":
            {"user": "u", "name": "n", "failover_timeout": 0.0, "checkpoint": false}}}),
    );
    check(
        subscribe_call(framework_info(Some("F"))),
        json!({"framework_id": {"value": "F"}, "type": "SUBSCRIBE", "subscribe": {"framework_info":
            {"user": "u", "name": "n", "id": {"value": "F"}, "failover_timeout": 0.0, "checkpoint": false}}}),
    );
}

#[test]
fn acknowledge_body_is_exact() {
    let call = acknowledge_call(&acked_status(Some("AAAAAAAAAAAAAAAAAAAAAA=="), Some("a1")))
        .unwrap()
        .unwrap();
    assert_eq!(
        String::from_utf8(encode_call(call, Some(&FrameworkId::new("F")))).unwrap(),
        r#"{"framework_id":{"value":"F"},"type":"ACKNOWLEDGE","acknowledge":{"agent_id":{"value":"a1"},"task_id":{"value":"t1"},"uuid":"AAAAAAAAAAAAAAAAAAAAAA=="}}"#
    );
}

#[test]
fn acknowledge_needs_uuid_and_agent() {
    assert!(acknowledge_call(&acked_status(None, Some("a1")))
        .unwrap()
        .is_none());
    assert!(acknowledge_call(&acked_status(None, None))
        .unwrap()
        .is_none());
    let err = acknowledge_call(&acked_status(Some("AAAAAAAAAAAAAAAAAAAAAA=="), None)).unwrap_err();
    assert!(
        err.to_string().contains("task t1") && err.to_string().contains("agent_id"),
        "{err}"
    );
}

#[test]
fn master_addresses() {
    let check =
        |input: &str, expected: Result<&str, &str>| match (normalize_master(input), expected) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{input:?}"),
            (Err(err), Err(needle)) => {
                assert!(err.to_string().contains(needle), "{input:?}: {err}")
            }
            (got, want) => panic!(
                "{input:?}: got {:?}, want {want:?}",
                got.map_err(|e| e.to_string())
            ),
        };
    check("127.0.0.1:5050", Ok("127.0.0.1:5050"));
    check("http://m1:5051/", Ok("m1:5051"));
    check("//m1:5051/api/v1/scheduler", Ok("m1:5051"));
    check(" m1 ", Ok("m1:5050"));
    check("", Err("has no host"));
    check("http://", Err("has no host"));
}

#[test]
fn backoff_doubles_to_the_cap_with_jitter() {
    let options = SubscribeOptions {
        initial_backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(30),
        ..SubscribeOptions::default()
    };
    let mut backoff = Backoff::new(&options);
    for cap in [1, 2, 4, 8, 16, 30, 30, 30] {
        let delay = backoff.next_delay();
        let cap = Duration::from_secs(cap);
        assert!(
            delay >= cap / 2 && delay <= cap,
            "{delay:?} outside [{:?}, {cap:?}]",
            cap / 2
        );
    }
}

#[test]
fn liveness_is_missed_heartbeats_times_interval() {
    let subscribed = |hb: Option<f64>| Subscribed {
        framework_id: FrameworkId::new("F"),
        heartbeat_interval_seconds: hb,
        master_info: None,
    };
    assert_eq!(
        liveness_timeout(heartbeat_of(&subscribed(None)), 5),
        Duration::from_secs(75)
    );
    assert_eq!(
        liveness_timeout(heartbeat_of(&subscribed(Some(2.0))), 5),
        Duration::from_secs(10)
    );
    assert_eq!(
        liveness_timeout(heartbeat_of(&subscribed(Some(-1.0))), 5),
        Duration::from_secs(75)
    );
    assert_eq!(
        liveness_timeout(heartbeat_of(&subscribed(Some(f64::NAN))), 0),
        Duration::from_secs(15)
    );
}

// A fake master: answers each SUBSCRIBE with the next scripted reply, records every
// request, and answers other calls with `call_status`.

enum Reply {
    /// A 200 RecordIO stream of these events; `hold` keeps it open afterwards.
    Stream {
        records: Vec<Value>,
        hold: bool,
    },
    Status(u16),
    Redirect(String),
}

struct Recorded {
    body: Value,
    stream_id: Option<String>,
}

struct Fake {
    replies: VecDeque<Reply>,
    requests: Vec<Recorded>,
    call_status: u16,
    streams: usize,
}

type FakeMaster = Arc<Mutex<Fake>>;

async fn fake_endpoint(
    axum::extract::State(fake): axum::extract::State<FakeMaster>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let subscribe = body["type"] == "SUBSCRIBE";
    let stream_id = headers
        .get(STREAM_ID_HEADER)
        .map(|v| v.to_str().unwrap().to_string());
    let mut fake = fake.lock().unwrap();
    fake.requests.push(Recorded { body, stream_id });
    let reply = match subscribe {
        false => Reply::Status(fake.call_status),
        // A master that ran out of script is not there for the framework.
        true => fake.replies.pop_front().unwrap_or(Reply::Status(503)),
    };
    let response = Response::builder();
    match reply {
        Reply::Status(status) => response.status(status).body(Body::empty()),
        Reply::Redirect(location) => response
            .status(307)
            .header("Location", location)
            .body(Body::empty()),
        Reply::Stream { records, hold } => {
            fake.streams += 1;
            let chunks: Vec<Result<Bytes, Infallible>> = records
                .iter()
                .map(|record| Ok(mantle_api::recordio::encode(&to_ascii_json(record))))
                .collect();
            let chunks = futures_util::stream::iter(chunks);
            let body = if hold {
                Body::from_stream(chunks.chain(futures_util::stream::pending()))
            } else {
                Body::from_stream(chunks)
            };
            response
                .status(200)
                .header("Content-Type", "application/json")
                .header(STREAM_ID_HEADER, format!("stream-{}", fake.streams))
                .body(body)
        }
    }
    .unwrap()
}

async fn start_fake(replies: Vec<Reply>) -> (String, FakeMaster) {
    let fake = Arc::new(Mutex::new(Fake {
        replies: replies.into(),
        requests: Vec::new(),
        call_status: 202,
        streams: 0,
    }));
    let app = axum::Router::new()
        .route("/api/v1/scheduler", axum::routing::post(fake_endpoint))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (address, fake)
}

fn requests(fake: &FakeMaster) -> Vec<(Value, Option<String>)> {
    fake.lock()
        .unwrap()
        .requests
        .iter()
        .map(|r| (r.body.clone(), r.stream_id.clone()))
        .collect()
}

fn fast() -> SubscribeOptions {
    SubscribeOptions {
        give_up_after: Duration::from_secs(5),
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        missed_heartbeats: 5,
        request_timeout: Duration::from_secs(5),
        http2: false,
    }
}

fn subscribed(framework_id: &str, heartbeat: f64) -> Value {
    json!({"type": "SUBSCRIBED", "subscribed": {
        "framework_id": {"value": framework_id}, "heartbeat_interval_seconds": heartbeat}})
}

fn error(message: &str) -> Value {
    json!({"type": "ERROR", "error": {"message": message}})
}

fn update() -> Value {
    json!({"type": "UPDATE", "update": {"status": {"task_id": {"value": "t1"}, "state": "TASK_RUNNING",
        "agent_id": {"value": "a1"}, "uuid": "AAAAAAAAAAAAAAAAAAAAAA=="}}})
}

async fn next(events: &mut SchedulerEvents) -> Option<SchedulerEvent> {
    tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("an event within 10 s")
}

/// Reads the next event and checks its kind: "connected", "disconnected" or an
/// event type such as "HEARTBEAT".
async fn expect(events: &mut SchedulerEvents, kind: &str) -> SchedulerEvent {
    let event = next(events)
        .await
        .unwrap_or_else(|| panic!("the stream ended; expected {kind}"));
    let actual = match &event {
        SchedulerEvent::Connected { .. } => "connected".to_string(),
        SchedulerEvent::Disconnected { .. } => "disconnected".to_string(),
        SchedulerEvent::Event(event) => event.to_value()["type"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    };
    assert_eq!(actual, kind, "{event:?}");
    event
}

fn connected(framework_id: &str, master: &str) -> SchedulerEvent {
    SchedulerEvent::Connected {
        framework_id: FrameworkId::new(framework_id),
        master: master.to_string(),
    }
}

#[tokio::test]
async fn events_flow_and_a_closed_stream_resubscribes() {
    let (master, fake) = start_fake(vec![
        Reply::Stream {
            records: vec![
                subscribed("f1", 15.0),
                json!({"type": "HEARTBEAT"}),
                update(),
            ],
            hold: false,
        },
        Reply::Stream {
            records: vec![subscribed("f1", 15.0)],
            hold: true,
        },
    ])
    .await;
    let (scheduler, mut events) = Scheduler::subscribe_with(&master, framework_info(None), fast())
        .await
        .unwrap();
    assert_eq!(scheduler.framework_id(), Some(FrameworkId::new("f1")));

    assert_eq!(
        expect(&mut events, "connected").await,
        connected("f1", &master)
    );
    expect(&mut events, "SUBSCRIBED").await;
    expect(&mut events, "HEARTBEAT").await;
    let SchedulerEvent::Event(Event::Update(update)) = expect(&mut events, "UPDATE").await else {
        unreachable!()
    };
    assert_eq!(update.status.state, TaskState::Running);
    let SchedulerEvent::Disconnected { reason } = expect(&mut events, "disconnected").await else {
        unreachable!()
    };
    assert!(reason.contains("closed the event stream"), "{reason}");
    assert_eq!(
        expect(&mut events, "connected").await,
        connected("f1", &master)
    );
    expect(&mut events, "SUBSCRIBED").await;

    // Calls carry the stream id of the current subscription.
    scheduler.acknowledge(&update.status).await.unwrap();
    let seen = requests(&fake);
    assert_eq!(seen.len(), 3, "two SUBSCRIBEs and an ACKNOWLEDGE");
    let (first, first_stream) = &seen[0];
    assert_eq!(first["framework_id"], Value::Null);
    assert_eq!(first["subscribe"]["framework_info"]["id"], Value::Null);
    assert_eq!(first_stream, &None);
    let (second, second_stream) = &seen[1];
    assert_eq!(
        second["framework_id"],
        json!({"value": "f1"}),
        "resubscribes keep the framework id"
    );
    assert_eq!(
        second["subscribe"]["framework_info"]["id"],
        json!({"value": "f1"})
    );
    assert_eq!(second_stream, &None, "SUBSCRIBE never carries a stream id");
    let (ack, ack_stream) = &seen[2];
    assert_eq!(ack["type"], "ACKNOWLEDGE");
    assert_eq!(ack["framework_id"], json!({"value": "f1"}));
    assert_eq!(ack_stream.as_deref(), Some("stream-2"));
}

#[tokio::test]
async fn follows_redirects_and_retries_503() {
    let (leader, leader_fake) = start_fake(vec![Reply::Stream {
        records: vec![subscribed("f2", 15.0)],
        hold: true,
    }])
    .await;
    let (standby, standby_fake) = start_fake(vec![
        Reply::Status(503),
        Reply::Redirect(format!("//{leader}/api/v1/scheduler")),
    ])
    .await;
    let (scheduler, mut events) = Scheduler::subscribe_with(&standby, framework_info(None), fast())
        .await
        .unwrap();
    assert_eq!(
        expect(&mut events, "connected").await,
        connected("f2", &leader)
    );
    assert_eq!(requests(&standby_fake).len(), 2, "a 503, then a redirect");

    scheduler
        .decline(vec![OfferId::new("o1")], None)
        .await
        .unwrap();
    let seen = requests(&leader_fake);
    assert_eq!(seen.len(), 2, "calls go to the leader");
    assert_eq!(seen[1].0["type"], "DECLINE");
    assert_eq!(seen[1].1.as_deref(), Some("stream-1"));
}

#[tokio::test]
async fn silence_counts_as_a_lost_connection() {
    let (master, _fake) = start_fake(vec![
        Reply::Stream {
            records: vec![subscribed("f3", 0.02)],
            hold: true,
        },
        Reply::Stream {
            records: vec![subscribed("f3", 15.0)],
            hold: true,
        },
    ])
    .await;
    let (_scheduler, mut events) = Scheduler::subscribe_with(&master, framework_info(None), fast())
        .await
        .unwrap();
    expect(&mut events, "connected").await;
    expect(&mut events, "SUBSCRIBED").await;
    let SchedulerEvent::Disconnected { reason } = expect(&mut events, "disconnected").await else {
        unreachable!()
    };
    assert!(reason.contains("no event from master"), "{reason}");
    expect(&mut events, "connected").await;
}

#[tokio::test]
async fn an_error_event_ends_the_stream() {
    let (master, fake) = start_fake(vec![
        Reply::Stream {
            records: vec![subscribed("f4", 15.0), error("Framework failed over")],
            hold: true,
        },
        Reply::Stream {
            records: vec![subscribed("f4", 15.0)],
            hold: true,
        },
    ])
    .await;
    let (_scheduler, mut events) = Scheduler::subscribe_with(&master, framework_info(None), fast())
        .await
        .unwrap();
    expect(&mut events, "connected").await;
    expect(&mut events, "SUBSCRIBED").await;
    let SchedulerEvent::Event(Event::Error(ErrorEvent { message })) =
        expect(&mut events, "ERROR").await
    else {
        unreachable!()
    };
    assert_eq!(message, "Framework failed over");
    assert_eq!(next(&mut events).await, None);
    assert_eq!(requests(&fake).len(), 1, "no resubscription after ERROR");
}

#[tokio::test]
async fn teardown_ends_the_stream() {
    let (master, fake) = start_fake(vec![Reply::Stream {
        records: vec![subscribed("f5", 15.0)],
        hold: true,
    }])
    .await;
    let (scheduler, mut events) = Scheduler::subscribe_with(&master, framework_info(None), fast())
        .await
        .unwrap();
    scheduler.teardown().await.unwrap();
    expect(&mut events, "connected").await;
    expect(&mut events, "SUBSCRIBED").await;
    assert_eq!(next(&mut events).await, None);
    let seen = requests(&fake);
    assert_eq!(
        seen[1].0,
        json!({"framework_id": {"value": "f5"}, "type": "TEARDOWN"})
    );
    assert_eq!(seen[1].1.as_deref(), Some("stream-1"));
}

#[tokio::test]
async fn call_failures_are_status_errors() {
    let (master, fake) = start_fake(vec![Reply::Stream {
        records: vec![subscribed("f6", 15.0)],
        hold: true,
    }])
    .await;
    let (scheduler, _events) = Scheduler::subscribe_with(&master, framework_info(None), fast())
        .await
        .unwrap();
    fake.lock().unwrap().call_status = 403;
    match scheduler.revive(vec![]).await {
        Err(ClientError::Status { status, .. }) => assert_eq!(status, StatusCode::FORBIDDEN),
        other => panic!("expected a 403, got {other:?}"),
    }
    // A failed TEARDOWN leaves the subscription running.
    assert!(scheduler.teardown().await.is_err());
    assert_eq!(*scheduler.shared.phase.borrow(), Phase::Running);
    let err = scheduler
        .call(subscribe_call(framework_info(None)))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Scheduler::subscribe"), "{err}");
}

#[tokio::test]
async fn gives_up_resubscribing_after_the_limit() {
    let (master, _fake) = start_fake(vec![Reply::Stream {
        records: vec![subscribed("f7", 15.0)],
        hold: false,
    }])
    .await;
    let options = SubscribeOptions {
        give_up_after: Duration::from_millis(300),
        ..fast()
    };
    let (_scheduler, mut events) =
        Scheduler::subscribe_with(&master, framework_info(None), options)
            .await
            .unwrap();
    expect(&mut events, "connected").await;
    expect(&mut events, "SUBSCRIBED").await;
    expect(&mut events, "disconnected").await;
    let SchedulerEvent::Disconnected { reason } = expect(&mut events, "disconnected").await else {
        unreachable!()
    };
    assert!(
        reason.contains("gave up resubscribing") && reason.contains("503"),
        "{reason}"
    );
    assert_eq!(next(&mut events).await, None);
}

#[tokio::test]
async fn refusals_fail_the_subscription() {
    let (master, _fake) = start_fake(vec![Reply::Stream {
        records: vec![error("framework name is empty")],
        hold: false,
    }])
    .await;
    let err = Scheduler::subscribe_with(&master, framework_info(None), fast())
        .await
        .err()
        .unwrap();
    assert!(
        matches!(&err, ClientError::Request(m) if m.contains("framework name is empty")),
        "{err}"
    );

    let (master, fake) = start_fake(vec![Reply::Status(400)]).await;
    let err = Scheduler::subscribe_with(&master, framework_info(None), fast())
        .await
        .err()
        .unwrap();
    assert!(
        matches!(&err, ClientError::Status { status, .. } if *status == StatusCode::BAD_REQUEST),
        "{err}"
    );
    assert_eq!(requests(&fake).len(), 1, "a 4xx is not retried");
}

#[test]
fn handles_can_be_shared_between_tasks() {
    fn send_sync<T: Send + Sync + Clone>() {}
    fn send<T: Send>() {}
    send_sync::<Scheduler>();
    send::<SchedulerEvents>();
}
