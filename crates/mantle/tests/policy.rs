//! Process tests of the operator's policy calls: weights, quota and dynamic reservations
//! through `POST /api/v1` and the legacy endpoints, their errors, and their survival
//! across a master restart.

mod common;

use common::Cluster;
use serde_json::{json, Value};

async fn call(cluster: &Cluster, body: Value) -> (u16, Value) {
    cluster.post_json("/api/v1", body).await
}

async fn get(cluster: &Cluster, path: &str) -> Value {
    let response = cluster.http.get(&cluster.url(path)).await.expect(path);
    serde_json::from_slice(&response.body).expect("JSON")
}

fn reserve_body(agent: &str, cpus: f64, kind: &str) -> Value {
    let field = kind.to_lowercase();
    json!({
        "type": kind,
        field: {
            "agent_id": {"value": agent},
            "resources": [{
                "name": "cpus", "type": "SCALAR", "scalar": {"value": cpus},
                "reservations": [{"type": "DYNAMIC", "role": "eng"}]
            }]
        }
    })
}

fn role<'a>(roles: &'a Value, name: &str) -> &'a Value {
    roles["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("role {name} missing in {roles:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_quota_and_reservations_survive_a_master_restart() {
    let mut cluster = Cluster::start(1, "cpus:4;mem:1024", &[]).await;
    let state = cluster.state().await;
    let agent = state["slaves"][0]["id"].as_str().unwrap().to_string();

    let (status, _) = call(&cluster, json!({"type": "UPDATE_WEIGHTS", "update_weights": {"weight_infos": [{"role": "eng", "weight": 3.0}]}})).await;
    assert_eq!(status, 200);
    let (status, _) = call(
        &cluster,
        json!({"type": "UPDATE_QUOTA", "update_quota": {"quota_configs": [
            {"role": "eng", "guarantees": {"cpus": {"value": 1}}, "limits": {"cpus": {"value": 3}}}
        ]}}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = call(&cluster, reserve_body(&agent, 2.0, "RESERVE_RESOURCES")).await;
    assert_eq!(status, 202, "{body}");

    // Bad input names the field and changes nothing.
    let (status, body) = call(&cluster, json!({"type": "UPDATE_WEIGHTS", "update_weights": {"weight_infos": [{"role": "ops", "weight": -1}]}})).await;
    assert_eq!(status, 400);
    assert!(
        body.as_str().unwrap().contains("weight_infos[0].weight"),
        "{body}"
    );
    let (status, body) = call(&cluster, json!({"type": "UPDATE_QUOTA", "update_quota": {"quota_configs": [{"role": "eng/web", "guarantees": {"cpus": {"value": 1}}}]}})).await;
    assert_eq!(status, 400);
    assert!(
        body.as_str().unwrap().contains("quota_configs[0].role"),
        "{body}"
    );
    let (status, body) = call(&cluster, reserve_body(&agent, 3.0, "RESERVE_RESOURCES")).await;
    assert_eq!(status, 409, "only 2 unreserved cpus are left: {body}");
    let (status, _) = call(&cluster, json!({"type": "RESERVE_RESOURCES"})).await;
    assert_eq!(status, 400);

    let check = |roles: &Value, weights: &Value, quota: &Value| {
        let eng = role(roles, "eng");
        assert_eq!(eng["weight"], 3.0);
        assert_eq!(eng["reserved"]["cpus"], 2.0, "{eng:#}");
        // The legacy shape (reference §4): `limit` as `{name: number}`.
        assert_eq!(eng["quota"]["limit"]["cpus"], 3.0);
        assert_eq!(
            weights["get_weights"]["weight_infos"][0],
            json!({"role": "eng", "weight": 3.0})
        );
        assert_eq!(quota["get_quota"]["status"]["configs"][0]["role"], "eng");
    };
    let weights = call(&cluster, json!({"type": "GET_WEIGHTS"})).await.1;
    let quota = call(&cluster, json!({"type": "GET_QUOTA"})).await.1;
    check(&get(&cluster, "/master/roles").await, &weights, &quota);
    assert_eq!(
        get(&cluster, "/master/weights").await,
        json!([{"role": "eng", "weight": 3.0}])
    );
    let metrics = get(&cluster, "/metrics/snapshot").await;
    assert_eq!(
        metrics["allocator/mesos/roles/eng/resources/cpus/reserved"], 2.0,
        "{metrics:#}"
    );
    assert_eq!(
        metrics["allocator/mesos/quota/roles/eng/resources/cpus/limit"],
        3.0
    );
    assert!(metrics["allocator/mesos/roles/eng/shares/dominant"].is_number());
    assert_eq!(role(&cluster.state().await, "eng")["reserved"]["cpus"], 2.0);

    cluster.restart_master();
    cluster
        .wait_until("the agent re-registered", |s| {
            s["slaves"].as_array().is_some_and(|a| a.len() == 1)
        })
        .await;
    let weights = call(&cluster, json!({"type": "GET_WEIGHTS"})).await.1;
    let quota = call(&cluster, json!({"type": "GET_QUOTA"})).await.1;
    check(&get(&cluster, "/master/roles").await, &weights, &quota);

    // Unreserving gives the cpus back to everyone.
    let (status, body) = call(&cluster, reserve_body(&agent, 2.0, "UNRESERVE_RESOURCES")).await;
    assert_eq!(status, 202, "{body}");
    let roles = get(&cluster, "/master/roles").await;
    assert_eq!(role(&roles, "eng")["reserved"]["cpus"], 0.0);
}
