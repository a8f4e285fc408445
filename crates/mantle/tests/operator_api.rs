//! The master's v1 operator API (reference §3) on a cluster of real processes: TEARDOWN,
//! Mantle's KILL_TASK extension, the read calls with their v1 JSON shapes, SUBSCRIBE,
//! the `/api/v1/operator` alias and the answers to bad calls.

mod common;
#[path = "common/mixed.rs"]
mod mixed;

use common::framework::Framework;
use common::Cluster;
use mantle_api::*;
use mixed::check_keys;
use serde_json::{json, Value};
use std::time::Duration;

/// A master, one agent, and a framework running task `sleeper`.
async fn running_task(name: &str) -> (Cluster, Framework) {
    let cluster = Cluster::start(1, "cpus:4;mem:1024", &[]).await;
    let mut framework = Framework::subscribe(&cluster.master, name).await;
    mixed::launch_sleeper(&mut framework, "sleeper").await;
    (cluster, framework)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_task_kills_on_the_frameworks_behalf() {
    let (cluster, mut framework) = running_task("operator-kill").await;
    let fid = framework.id.value.clone();
    let kill = |task: &str| {
        json!({"type": "KILL_TASK", "kill_task": {
            "framework_id": {"value": fid}, "task_id": {"value": task}}})
    };
    let (status, body) = cluster.post_json("/api/v1", kill("nosuch")).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.as_str().unwrap().contains("kill_task.task_id"),
        "{body}"
    );
    let (status, body) = cluster
        .post_json(
            "/api/v1",
            json!({"type": "KILL_TASK", "kill_task": {
                "framework_id": {"value": "nosuch"}, "task_id": {"value": "sleeper"}}}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.as_str().unwrap().contains("kill_task.framework_id"));
    let (status, body) = cluster
        .post_json("/api/v1", json!({"type": "KILL_TASK"}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.as_str().unwrap().contains("kill_task"));

    let (status, body) = cluster.post_json("/api/v1", kill("sleeper")).await;
    assert_eq!(status, 202, "{body}");
    let end = framework
        .wait_terminal("sleeper", Duration::from_secs(30))
        .await;
    assert_eq!(end.state, TaskState::Killed);
    cluster
        .wait_until("the task completed as killed", |s| {
            s["frameworks"][0]["completed_tasks"][0]["state"] == "TASK_KILLED"
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teardown_removes_the_framework() {
    let (cluster, framework) = running_task("operator-teardown").await;
    let fid = framework.id.value.clone();
    let (status, body) = cluster
        .post_json(
            "/api/v1",
            json!({"type": "TEARDOWN", "teardown": {"framework_id": {"value": "nosuch"}}}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.as_str().unwrap().contains("teardown.framework_id"));
    let (status, body) = cluster
        .post_json(
            "/api/v1",
            json!({"type": "TEARDOWN", "teardown": {"framework_id": {"value": fid}}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let state = cluster
        .wait_until("the framework completed", |s| {
            s["frameworks"].as_array().is_some_and(Vec::is_empty)
                && s["completed_frameworks"][0]["id"] == *fid
        })
        .await;
    let completed = &state["completed_frameworks"][0];
    assert_eq!(completed["active"], false);
    assert_eq!(completed["completed_tasks"][0]["id"], "sleeper");
    assert_eq!(completed["completed_tasks"][0]["state"], "TASK_KILLED");
    // The executor and its task are gone from the agent too.
    let agent = format!("http://{}/state", cluster.agents[0]);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let body: Value =
            serde_json::from_slice(&cluster.http.get(&agent).await.unwrap().body).unwrap();
        if body["frameworks"].as_array().is_some_and(Vec::is_empty) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "agent still runs {body:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(framework);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_teardown_takes_a_form() {
    let (cluster, framework) = running_task("legacy-teardown").await;
    let fid = framework.id.value.clone();
    let form = |body: String| {
        hyper::Request::post(cluster.url("/master/teardown"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .unwrap()
    };
    let response = cluster
        .http
        .raw(form("frameworkId=nosuch".into()))
        .await
        .unwrap();
    assert_eq!(response.status.as_u16(), 400);
    assert!(String::from_utf8_lossy(&response.body).contains("frameworkId"));
    let response = cluster
        .http
        .raw(form(format!("frameworkId={fid}")))
        .await
        .unwrap();
    assert_eq!(response.status.as_u16(), 200);
    cluster
        .wait_until("the framework completed", |s| {
            s["completed_frameworks"][0]["id"] == *fid
        })
        .await;
}

/// POSTs an operator call and returns its `{"type", "get_x"}` answer's body, checking
/// the type.
async fn read(cluster: &Cluster, kind: &str) -> Value {
    let (status, body) = cluster.post_json("/api/v1", json!({ "type": kind })).await;
    assert_eq!(status, 200, "{kind}: {body}");
    assert_eq!(body["type"], kind, "{body}");
    body[kind.to_ascii_lowercase()].clone()
}

/// A v1 Resource array holds `cpus` as `{name, type: SCALAR, scalar: {value}}`.
fn v1_cpus(resources: &Value) -> f64 {
    let cpus = resources
        .as_array()
        .unwrap_or_else(|| panic!("not a Resource array: {resources}"))
        .iter()
        .find(|r| r["name"] == "cpus")
        .unwrap_or_else(|| panic!("no cpus in {resources}"));
    assert_eq!(cpus["type"], "SCALAR");
    cpus["scalar"]["value"].as_f64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_calls_answer_v1_shapes() {
    let (cluster, framework) = mixed::mixed_tasks("operator-reads").await;
    let fid = framework.id.value.clone();

    assert_eq!(read(&cluster, "GET_HEALTH").await["healthy"], true);
    let flags = read(&cluster, "GET_FLAGS").await["flags"].clone();
    let port = cluster.master.rsplit(':').next().unwrap();
    assert!(
        flags
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["name"] == "port" && f["value"] == port),
        "{flags}"
    );
    let version = read(&cluster, "GET_VERSION").await;
    assert_eq!(version["version_info"]["version"], MESOS_VERSION);
    let metrics = read(&cluster, "GET_METRICS").await["metrics"].clone();
    let running = metrics
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "master/tasks_running")
        .unwrap();
    assert_eq!(running["value"], 1.0);

    let tasks = read(&cluster, "GET_TASKS").await;
    check_keys("get_tasks", &tasks, &["tasks", "completed_tasks"]);
    let task = &tasks["tasks"][0];
    check_keys(
        "v1 task",
        task,
        &[
            "name",
            "task_id",
            "framework_id",
            "agent_id",
            "state",
            "resources",
            "statuses",
        ],
    );
    assert_eq!(task["task_id"]["value"], "runner");
    assert_eq!(task["framework_id"]["value"], &*fid);
    assert_eq!(task["state"], "TASK_RUNNING");
    assert_eq!(v1_cpus(&task["resources"]), 0.5);
    assert_eq!(
        task["statuses"].as_array().unwrap().last().unwrap()["state"],
        "TASK_RUNNING"
    );
    assert!(task["statuses"][0]["timestamp"].is_f64());
    assert!(
        task.get("executor_id").is_none(),
        "command tasks have no executor_id"
    );
    let mut ended: Vec<&str> = tasks["completed_tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["state"].as_str().unwrap())
        .collect();
    ended.sort();
    assert_eq!(ended, ["TASK_FAILED", "TASK_FINISHED"]);

    let agents = read(&cluster, "GET_AGENTS").await;
    let agent = &agents["agents"][0];
    check_keys(
        "v1 agent",
        agent,
        &[
            "agent_info",
            "active",
            "deactivated",
            "version",
            "pid",
            "registered_time",
            "total_resources",
            "allocated_resources",
            "offered_resources",
            "capabilities",
        ],
    );
    assert!(agent["agent_info"]["id"]["value"].is_string());
    assert!(agent["pid"].as_str().unwrap().starts_with("slave(1)@"));
    assert!(agent["registered_time"]["nanoseconds"].is_i64());
    assert_eq!(agent["active"], true);
    assert_eq!(v1_cpus(&agent["total_resources"]), 4.0);
    assert_eq!(v1_cpus(&agent["allocated_resources"]), 0.5);

    let frameworks = read(&cluster, "GET_FRAMEWORKS").await;
    let fw = &frameworks["frameworks"][0];
    check_keys(
        "v1 framework",
        fw,
        &[
            "framework_info",
            "active",
            "connected",
            "recovered",
            "registered_time",
            "allocated_resources",
            "offered_resources",
        ],
    );
    assert_eq!(fw["framework_info"]["id"]["value"], &*fid);
    assert_eq!(fw["framework_info"]["name"], "operator-reads");
    assert_eq!(fw["connected"], true);
    assert_eq!(v1_cpus(&fw["allocated_resources"]), 0.5);

    let executors = read(&cluster, "GET_EXECUTORS").await;
    assert!(executors["executors"].is_array(), "{executors}");

    let state = read(&cluster, "GET_STATE").await;
    check_keys(
        "get_state",
        &state,
        &["get_tasks", "get_executors", "get_frameworks", "get_agents"],
    );
    assert_eq!(state["get_tasks"]["tasks"][0]["task_id"]["value"], "runner");
    // The framework is still subscribed: an allocation run between the two reads may
    // offer the agent to it, which changes only the agent's offered resources.
    let without_offers = |agents: &Value| {
        let mut agents = agents.clone();
        for agent in agents.as_array_mut().unwrap() {
            agent.as_object_mut().unwrap().remove("offered_resources");
        }
        agents
    };
    assert_eq!(
        without_offers(&state["get_agents"]["agents"]),
        without_offers(&agents["agents"])
    );

    let master = read(&cluster, "GET_MASTER").await;
    check_keys(
        "get_master",
        &master,
        &["master_info", "start_time", "elected_time"],
    );
    assert!(master["master_info"]["id"].is_string());
    assert_eq!(
        master["master_info"]["port"].as_u64().unwrap().to_string(),
        port
    );

    let roles = read(&cluster, "GET_ROLES").await;
    let role = &roles["roles"][0];
    check_keys(
        "v1 role",
        role,
        &["name", "weight", "frameworks", "resources"],
    );
    assert_eq!(role["frameworks"][0]["value"], &*fid);

    // pymesos's operator driver posts to /api/v1/operator.
    let (status, body) = cluster
        .post_json("/api/v1/operator", json!({"type": "GET_HEALTH"}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["get_health"]["healthy"], true);

    // Bad calls name what is wrong.
    let (status, body) = cluster
        .post_json("/api/v1", json!({"type": "GET_EVERYTHING"}))
        .await;
    assert_eq!(status, 400);
    assert!(body.as_str().unwrap().contains("GET_EVERYTHING"), "{body}");
    let (status, body) = cluster.post_json("/api/v1", json!({})).await;
    assert_eq!(status, 400);
    assert!(body.as_str().unwrap().contains("type"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logging_level_changes_and_reverts() {
    let cluster = Cluster::start(0, "cpus:1;mem:64", &[]).await;
    assert_eq!(read(&cluster, "GET_LOGGING_LEVEL").await["level"], 0);
    let (status, body) = cluster
        .post_json(
            "/api/v1",
            json!({"type": "SET_LOGGING_LEVEL", "set_logging_level": {
                "level": 1, "duration": {"nanoseconds": 1_500_000_000u64}}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(read(&cluster, "GET_LOGGING_LEVEL").await["level"], 1);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while read(&cluster, "GET_LOGGING_LEVEL").await["level"] != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the level never reverted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body) = cluster
        .post_json(
            "/api/v1",
            json!({"type": "SET_LOGGING_LEVEL", "set_logging_level": {"level": 1}}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.as_str().unwrap().contains("duration"), "{body}");
}

/// Reads events until one of type `kind` for which `pick` holds, within 30 s.
async fn wait_event(
    events: &mut mantle_sdk::http::RecordStream,
    kind: &str,
    pick: impl Fn(&Value) -> bool,
) -> Value {
    let mut seen = Vec::new();
    let wait = async {
        loop {
            let event = events
                .next_json()
                .await
                .expect("a readable stream")
                .expect("the stream stays open");
            if event["type"] == kind && pick(&event) {
                return event;
            }
            seen.push(event);
        }
    };
    match tokio::time::timeout(Duration::from_secs(30), wait).await {
        Ok(event) => event,
        Err(_) => panic!("no {kind} event in 30 s; saw {seen:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_streams_the_state_then_its_changes() {
    let (mut cluster, mut framework) = mixed::mixed_tasks("operator-subscribe").await;
    let (headers, mut events) = cluster
        .http
        .stream(
            &cluster.url("/api/v1"),
            json!({"type": "SUBSCRIBE"}).to_string().into_bytes(),
            &[],
        )
        .await
        .expect("SUBSCRIBE");
    assert_eq!(headers["content-type"], "application/json");
    let subscribed = events.next_json().await.unwrap().unwrap();
    assert_eq!(subscribed["type"], "SUBSCRIBED", "{subscribed}");
    assert_eq!(subscribed["subscribed"]["heartbeat_interval_seconds"], 15.0);
    let state = &subscribed["subscribed"]["get_state"];
    assert_eq!(state["get_tasks"]["tasks"][0]["task_id"]["value"], "runner");
    assert_eq!(
        state["get_tasks"]["completed_tasks"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let heartbeat = events.next_json().await.unwrap().unwrap();
    assert_eq!(heartbeat["type"], "HEARTBEAT");

    // A new task: TASK_ADDED, then TASK_UPDATED as it starts. The framework acknowledges
    // the updates as it waits; the operator's events queue meanwhile.
    mixed::launch_sleeper(&mut framework, "later").await;
    let added = wait_event(&mut events, "TASK_ADDED", |_| true).await;
    let task = &added["task_added"]["task"];
    assert_eq!(task["task_id"]["value"], "later");
    assert_eq!(task["state"], "TASK_STAGING");
    assert_eq!(v1_cpus(&task["resources"]), 0.5);
    let updated = wait_event(&mut events, "TASK_UPDATED", |e| {
        e["task_updated"]["state"] == "TASK_RUNNING"
    })
    .await;
    let body = &updated["task_updated"];
    assert_eq!(body["framework_id"]["value"], framework.id.as_str());
    assert_eq!(body["status"]["task_id"]["value"], "later");
    assert_eq!(body["status"]["state"], "TASK_RUNNING");

    // A new framework and a new agent.
    let other = Framework::subscribe(&cluster.master, "operator-subscribe-2").await;
    let added = wait_event(&mut events, "FRAMEWORK_ADDED", |_| true).await;
    let info = &added["framework_added"]["framework"]["framework_info"];
    assert_eq!(info["id"]["value"], other.id.as_str());
    assert_eq!(info["name"], "operator-subscribe-2");
    cluster.add_agent(1, "cpus:1;mem:128");
    let added = wait_event(&mut events, "AGENT_ADDED", |_| true).await;
    let agent = &added["agent_added"]["agent"];
    assert!(agent["agent_info"]["id"]["value"].is_string());
    assert_eq!(v1_cpus(&agent["total_resources"]), 1.0);

    // Tearing the second framework down removes it.
    let (status, _) = cluster
        .post_json(
            "/api/v1",
            json!({"type": "TEARDOWN", "teardown": {"framework_id": {"value": other.id.value}}}),
        )
        .await;
    assert_eq!(status, 200);
    let removed = wait_event(&mut events, "FRAMEWORK_REMOVED", |_| true).await;
    assert_eq!(
        removed["framework_removed"]["framework_info"]["id"]["value"],
        other.id.as_str()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_answers_recordio_when_asked() {
    let cluster = Cluster::start(1, "cpus:1;mem:128", &[]).await;
    let (headers, mut events) = cluster
        .http
        .stream(
            &cluster.url("/api/v1/operator"),
            json!({"type": "SUBSCRIBE"}).to_string().into_bytes(),
            &[
                ("Accept", "application/recordio".to_string()),
                ("Message-Accept", "application/json".to_string()),
            ],
        )
        .await
        .expect("SUBSCRIBE");
    assert_eq!(headers["content-type"], "application/recordio");
    assert_eq!(headers["message-content-type"], "application/json");
    let subscribed = events.next_json().await.unwrap().unwrap();
    assert_eq!(
        subscribed["subscribed"]["get_state"]["get_agents"]["agents"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}
