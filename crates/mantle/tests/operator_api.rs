//! The master's v1 operator API (reference §3) on a cluster of real processes: TEARDOWN,
//! Mantle's KILL_TASK extension, the read calls with their v1 JSON shapes, SUBSCRIBE,
//! the `/api/v1/operator` alias and the answers to bad calls.

mod common;

use common::framework::{command_task, Framework};
use common::Cluster;
use mantle_api::*;
use serde_json::{json, Value};
use std::time::Duration;

/// A master, one agent, and a framework running task `sleeper`.
async fn running_task(name: &str) -> (Cluster, Framework) {
    let cluster = Cluster::start(1, "cpus:4;mem:1024", &[]).await;
    let mut framework = Framework::subscribe(&cluster.master, name).await;
    let offer = framework.next_offers().await.remove(0);
    let task = command_task("sleeper", &offer, "sleep 60", "cpus:1;mem:32");
    framework
        .scheduler
        .launch(offer.id, vec![task], None)
        .await
        .unwrap();
    framework.wait_state("sleeper", TaskState::Running).await;
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
                && s["completed_frameworks"][0]["id"] == fid.as_str()
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
            s["completed_frameworks"][0]["id"] == fid.as_str()
        })
        .await;
}
