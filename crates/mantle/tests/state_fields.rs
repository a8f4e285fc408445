//! `/master/state` and the agent's `/state` carry the field names of the Mesos legacy
//! JSON (reference §4) that dashboards and CLIs read.

mod common;

use common::checks::check_keys;
use common::checks::MASTER_STATE_KEYS;
use common::framework::{command_task, Framework};
use common::Cluster;
use mantle_api::*;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_endpoints_carry_the_mesos_fields() {
    let cluster = Cluster::start(1, "cpus:2;mem:1024;ports:[31000-31009]", &[]).await;
    let mut framework = Framework::subscribe(&cluster.master, "fields").await;
    let offer = framework.next_offers().await.remove(0);
    let task = command_task("sleeper", &offer, "sleep 30", "cpus:1;mem:32");
    framework
        .scheduler
        .launch(offer.id, vec![task], None)
        .await
        .unwrap();
    framework.wait_state("sleeper", TaskState::Running).await;
    // The rest of the agent comes back as a new offer once the refusal filter lapses.
    framework.next_offers().await;
    let state = cluster
        .wait_until("a running task and an outstanding offer", |s| {
            s["frameworks"][0]["tasks"][0]["state"] == "TASK_RUNNING"
                && s["frameworks"][0]["offers"]
                    .as_array()
                    .is_some_and(|o| !o.is_empty())
        })
        .await;

    check_keys("/master/state", &state, MASTER_STATE_KEYS);
    check_keys(
        "leader_info",
        &state["leader_info"],
        &["id", "pid", "port", "hostname"],
    );
    let slave = &state["slaves"][0];
    check_keys(
        "slave",
        slave,
        &[
            "id",
            "hostname",
            "port",
            "attributes",
            "pid",
            "registered_time",
            "resources",
            "used_resources",
            "offered_resources",
            "reserved_resources",
            "unreserved_resources",
            "active",
            "deactivated",
            "version",
            "capabilities",
        ],
    );
    for kind in ["resources", "used_resources", "offered_resources"] {
        check_keys(kind, &slave[kind], &["cpus", "gpus", "mem", "disk"]);
    }
    assert_eq!(slave["resources"]["ports"], "[31000-31009]");
    assert_eq!(slave["used_resources"]["cpus"], 1.0);
    let fw = &state["frameworks"][0];
    check_keys(
        "framework",
        fw,
        &[
            "id",
            "name",
            "used_resources",
            "offered_resources",
            "resources",
            "capabilities",
            "hostname",
            "webui_url",
            "active",
            "connected",
            "recovered",
            "user",
            "failover_timeout",
            "checkpoint",
            "registered_time",
            "unregistered_time",
            "role",
            "tasks",
            "unreachable_tasks",
            "completed_tasks",
            "offers",
            "executors",
            "offer_constraints",
        ],
    );
    let task = &fw["tasks"][0];
    check_keys(
        "task",
        task,
        &[
            "id",
            "name",
            "framework_id",
            "executor_id",
            "slave_id",
            "state",
            "resources",
            "role",
            "statuses",
        ],
    );
    assert_eq!(
        task["executor_id"], "",
        "command tasks have an empty executor_id"
    );
    check_keys("task status", &task["statuses"][0], &["state", "timestamp"]);
    check_keys(
        "offer",
        &fw["offers"][0],
        &[
            "id",
            "framework_id",
            "allocation_info",
            "slave_id",
            "resources",
        ],
    );

    let agent: Value = serde_json::from_slice(
        &cluster
            .http
            .get(&format!("http://{}/slave(1)/state", cluster.agents[0]))
            .await
            .unwrap()
            .body,
    )
    .unwrap();
    check_keys(
        "agent /state",
        &agent,
        &[
            "version",
            "start_time",
            "id",
            "pid",
            "hostname",
            "resources",
            "attributes",
            "flags",
            "frameworks",
            "completed_frameworks",
        ],
    );
    let agent_fw = &agent["frameworks"][0];
    check_keys(
        "agent framework",
        agent_fw,
        &[
            "id",
            "name",
            "user",
            "failover_timeout",
            "checkpoint",
            "executors",
            "completed_executors",
        ],
    );
    let executor = &agent_fw["executors"][0];
    check_keys(
        "agent executor",
        executor,
        &[
            "id",
            "name",
            "source",
            "container",
            "directory",
            "resources",
            "tasks",
            "queued_tasks",
            "completed_tasks",
        ],
    );
    assert!(executor["name"]
        .as_str()
        .unwrap()
        .starts_with("Command Executor (Task: sleeper) (Command: sh -c '"));
    check_keys(
        "agent task",
        &executor["tasks"][0],
        &[
            "id",
            "name",
            "framework_id",
            "executor_id",
            "slave_id",
            "state",
            "resources",
            "role",
            "statuses",
        ],
    );
}
