//! Bad input to the scheduler API gets the Mesos status code and a message naming the
//! problem; the master keeps serving and its state does not change. An oversized body
//! gets its 413, from the master's and the agent's APIs.

mod common;

use bytes::Bytes;
use common::framework::{command_task, Framework};
use common::Cluster;
use http_body_util::Full;
use hyper::Request;
use mantle_api::*;
use serde_json::{json, Value};

async fn post(cluster: &Cluster, headers: &[(&str, &str)], body: Vec<u8>) -> (u16, String) {
    let mut request = Request::post(cluster.url("/api/v1/scheduler"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = cluster
        .http
        .raw(request.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .expect("request");
    (
        response.status.as_u16(),
        String::from_utf8_lossy(&response.body).into_owned(),
    )
}

const JSON: (&str, &str) = ("Content-Type", "application/json");

/// Posts a body of `len` spaces over a plain HTTP/1.1 connection, all of it before
/// reading anything, and returns the whole answer.
async fn post_whole_then_read(address: &str, path: &str, len: usize) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Content-Length: {len}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await?;
    let chunk = vec![b' '; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(chunk.len());
        stream.write_all(&chunk[..n]).await?;
        left -= n;
    }
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

/// What must not change: frameworks with their tasks, and agents with their resources.
fn essentials(state: &Value) -> Value {
    let frameworks: Vec<Value> = state["frameworks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| json!({"id": f["id"], "tasks": f["tasks"], "used": f["used_resources"]}))
        .collect();
    let agents: Vec<Value> = state["slaves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| json!({"id": a["id"], "resources": a["resources"], "used": a["used_resources"]}))
        .collect();
    json!({"frameworks": frameworks, "agents": agents, "completed": state["completed_frameworks"]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_4xx_naming_the_problem_and_change_nothing() {
    let cluster = Cluster::start(1, "cpus:2;mem:1024", &[]).await;
    let mut framework = Framework::subscribe(&cluster.master, "victim").await;
    let offer = framework.next_offers().await.remove(0);
    let fid = framework.id.value.clone();
    let before = essentials(
        &cluster
            .wait_until("the framework's offer", |s| {
                s["frameworks"][0]["offers"]
                    .as_array()
                    .is_some_and(|o| !o.is_empty())
            })
            .await,
    );

    let call = |body: Value| serde_json::to_vec(&body).unwrap();
    /// name, headers, body, expected status, a word the message must contain
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<u8>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "malformed JSON",
            vec![JSON],
            b"{\"type\": \"SUBSCRIBE\",".to_vec(),
            400,
            "parse",
        ),
        (
            "missing required field",
            vec![JSON],
            call(json!({"type": "SUBSCRIBE", "subscribe": {"framework_info": {"name": "x"}}})),
            400,
            "user",
        ),
        (
            "framework_id given as a string",
            vec![JSON, ("Mesos-Stream-Id", "x")],
            call(json!({"type": "REVIVE", "framework_id": fid})),
            400,
            "framework_id",
        ),
        (
            "unknown call type",
            vec![JSON],
            call(json!({"type": "FROBNICATE", "framework_id": {"value": fid}})),
            400,
            "FROBNICATE",
        ),
        (
            "wrong Mesos-Stream-Id",
            vec![JSON, ("Mesos-Stream-Id", "not-the-stream")],
            call(json!({"type": "REVIVE", "framework_id": {"value": fid}})),
            400,
            "not-the-stream",
        ),
        (
            "missing Mesos-Stream-Id",
            vec![JSON],
            call(json!({"type": "REVIVE", "framework_id": {"value": fid}})),
            400,
            "Mesos-Stream-Id",
        ),
        (
            "unknown framework",
            vec![JSON, ("Mesos-Stream-Id", "x")],
            call(json!({"type": "TEARDOWN", "framework_id": {"value": "no-such-framework"}})),
            400,
            "Framework cannot be found",
        ),
        (
            "body over the size limit",
            vec![JSON],
            vec![b' '; 17 * 1024 * 1024],
            413,
            "limit",
        ),
        (
            "missing Content-Type",
            vec![],
            call(json!({"type": "TEARDOWN"})),
            400,
            "Content-Type",
        ),
        (
            "unsupported Content-Type",
            vec![("Content-Type", "text/plain")],
            call(json!({"type": "TEARDOWN"})),
            415,
            "text/plain",
        ),
        (
            "call without framework_id",
            vec![JSON],
            call(json!({"type": "TEARDOWN"})),
            400,
            "framework_id",
        ),
    ];
    for (name, headers, body, status, needle) in cases {
        let (got_status, message) = post(&cluster, &headers, body).await;
        assert_eq!(got_status, status, "{name}: {message}");
        assert!(
            message.contains(needle),
            "{name}: message {message:?} should mention {needle:?}"
        );
    }
    let get = cluster
        .http
        .raw(
            Request::get(cluster.url("/api/v1/scheduler"))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(get.status.as_u16(), 405);

    // An oversized body (here 40 MiB against the limit of 16) is read to its end before
    // the 413 goes out, by the master and by the agent: a client that sends its whole
    // body before it reads (as most do) gets the answer, not a broken pipe.
    let endpoints = [
        (&cluster.master, "/api/v1/scheduler"),
        (&cluster.agents[0], "/api/v1/executor"),
        (&cluster.agents[0], "/api/v1"),
    ];
    for (address, path) in endpoints {
        let answer = post_whole_then_read(address, path, 40 * 1024 * 1024)
            .await
            .unwrap_or_else(|err| panic!("{path}: {err}"));
        assert!(answer.starts_with("HTTP/1.1 413"), "{path}: {answer}");
        assert!(answer.contains("limit"), "{path}: {answer}");
    }

    // Through the real client: an offer that does not exist, and a task bigger than its
    // offer, are answered 202 and then with an update (pymesos aborts on non-2xx).
    let ghost = Offer {
        id: OfferId::new("no-such-offer"),
        ..offer.clone()
    };
    framework
        .scheduler
        .launch(
            ghost.id.clone(),
            vec![command_task("ghost-task", &ghost, "true", "cpus:1")],
            None,
        )
        .await
        .expect("202 for an unknown offer");
    let lost = framework.wait_state("ghost-task", TaskState::Lost).await;
    assert_eq!(lost.reason, Some(Reason::InvalidOffers));
    assert!(
        lost.uuid.is_none(),
        "master-generated updates carry no uuid"
    );

    let after = essentials(&cluster.state().await);
    assert_eq!(
        before, after,
        "bad calls must not change the master's state"
    );

    framework
        .scheduler
        .launch(
            offer.id.clone(),
            vec![command_task("greedy", &offer, "true", "cpus:3;mem:10")],
            None,
        )
        .await
        .expect("202 for a task larger than its offer");
    let error = framework.wait_state("greedy", TaskState::Error).await;
    assert_eq!(error.reason, Some(Reason::TaskInvalid));
    assert!(error.message.unwrap_or_default().contains("more resources"));

    // Still serving.
    cluster
        .http
        .get(&cluster.url("/health"))
        .await
        .expect("health");
    cluster
        .wait_until("no task left", |s| {
            s["frameworks"][0]["tasks"]
                .as_array()
                .is_some_and(Vec::is_empty)
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_answer_under_their_mesos_aliases() {
    let cluster = Cluster::start(1, "cpus:2;mem:1024", &[]).await;
    for path in [
        "/master/state",
        "/state",
        "/master/state.json",
        "/state.json",
        "/master/state/",
    ] {
        let response = cluster
            .http
            .get(&cluster.url(path))
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let state: Value = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(state["slaves"].as_array().unwrap().len(), 1, "{path}");
    }
    let jsonp = cluster
        .http
        .get(&cluster.url("/master/state?jsonp=cb"))
        .await
        .unwrap();
    assert!(jsonp.body.starts_with(b"cb({"));
    assert_eq!(jsonp.headers["content-type"], "text/javascript");
    let version: Value = serde_json::from_slice(
        &cluster
            .http
            .get(&cluster.url("/version"))
            .await
            .unwrap()
            .body,
    )
    .unwrap();
    let text = version["version"].as_str().unwrap();
    assert!(
        text.split('.').all(|part| part.parse::<u32>().is_ok()),
        "{text}"
    );
    let redirect = cluster
        .http
        .raw(
            Request::get(cluster.url("/master/redirect"))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(redirect.status.as_u16(), 307);
    assert_eq!(
        redirect.headers["location"],
        format!("//{}", cluster.master)
    );
    let state = cluster.state().await;
    let slave = &state["slaves"][0];
    assert!(slave["pid"]
        .as_str()
        .unwrap()
        .starts_with("slave(1)@127.0.0.1:"));
    assert_eq!(slave["resources"]["cpus"], 2.0);
    let agent_state: Value = serde_json::from_slice(
        &cluster
            .http
            .get(&format!("http://{}/slave(1)/state.json", cluster.agents[0]))
            .await
            .unwrap()
            .body,
    )
    .unwrap();
    assert_eq!(agent_state["id"], slave["id"]);
}

/// A real agent's socket (a REGISTER asking for `Upgrade: mantle-agent`): a call that
/// cannot be read is skipped and the socket keeps serving, in order; a record whose
/// framing is broken closes that socket, and the master counts its agent disconnected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_socket_skips_unreadable_calls_and_closes_on_broken_framing() {
    use mantle_api::internal::{ToAgent, AGENT_API_PATH, AGENT_STREAM_HEADER, AGENT_UPGRADE};
    use mantle_api::recordio::{encode, Decoder};
    use tokio::io::AsyncWriteExt;

    let cluster = Cluster::start(0, "cpus:1", &[]).await;
    let register = json!({
        "type": "REGISTER",
        "agent_info": {"hostname": "socket-agent", "resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 1.0}}]},
        "pid": "slave(1)@127.0.0.1:1",
        "version": "test",
    });
    let (headers, socket) = mantle_sdk::http::upgrade(
        &cluster.url(AGENT_API_PATH),
        serde_json::to_vec(&register).unwrap(),
        AGENT_UPGRADE,
        std::time::Duration::from_secs(10),
        None,
    )
    .await
    .expect("101 Switching Protocols");
    assert!(headers.contains_key(AGENT_STREAM_HEADER));
    let (mut reader, mut write) = tokio::io::split(socket);
    let mut decoder = Decoder::default();
    // The next message from the master other than a PING; `None` once it closed.
    let mut next = async || loop {
        if let Some(record) = decoder.next_record().unwrap() {
            match serde_json::from_slice::<ToAgent>(&record).unwrap() {
                ToAgent::Ping => continue,
                message => return Some(message),
            }
        }
        let read = decoder.read_from(&mut reader);
        let read = tokio::time::timeout(std::time::Duration::from_secs(10), read)
            .await
            .expect("the master answers within 10 s")
            .expect("reading the socket");
        if read == 0 {
            return None;
        }
    };
    assert!(matches!(next().await, Some(ToAgent::Registered(_))));

    let update = |task: &str| {
        json!({"type": "STATUS_UPDATE", "framework_id": {"value": "gone"},
               "status": {"task_id": {"value": task}, "state": "TASK_RUNNING", "uuid": task}})
    };
    let calls = serde_json::to_vec(&json!([update("t1"), update("t2")])).unwrap();
    write
        .write_all(&encode(br#"{"type":"FROBNICATE"}"#))
        .await
        .unwrap();
    write.write_all(&encode(&calls)).await.unwrap();
    // Updates of a framework the master does not know are acknowledged at once, in order.
    for task in ["t1", "t2"] {
        match next().await {
            Some(ToAgent::StatusUpdateAck(ack)) => assert_eq!(ack.task_id.value.as_ref(), task),
            other => panic!("expected the ack of {task}, got {other:?}"),
        }
    }
    let metrics = cluster
        .http
        .get(&cluster.url("/metrics/snapshot"))
        .await
        .unwrap();
    let metrics: Value = serde_json::from_slice(&metrics.body).unwrap();
    assert_eq!(metrics["master/invalid_status_updates"], 2.0);
    assert_eq!(metrics["master/slaves_active"], 1.0);

    write.write_all(b"12x\n{}").await.unwrap();
    assert!(
        next().await.is_none(),
        "the master closes a socket whose framing is broken"
    );
    cluster
        .wait_until("the agent disconnected", |state| {
            state["slaves"][0]["active"] == false
        })
        .await;
}
