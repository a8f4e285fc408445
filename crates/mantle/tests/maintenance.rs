//! Maintenance and draining with real processes: a framework using an agent on a
//! scheduled machine gets an inverse offer and offers carrying the unavailability, its
//! answers show in GET_MAINTENANCE_STATUS, START_MAINTENANCE removes the agent (its task
//! TASK_LOST) and refuses agents on that machine until STOP_MAINTENANCE; DRAIN_AGENT
//! kills a task that ignores SIGTERM within the drain's `max_grace_period` and the drain
//! goes DRAINING, DRAINED, and ends with REACTIVATE_AGENT; the schedule, the DOWN
//! machines and the drains survive a master restart.

mod common;

use common::framework::{framework_info, Framework};
use common::Cluster;
use mantle_api::maintenance::InverseOfferIds;
use mantle_api::scheduler::{Call, Event};
use mantle_api::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const RESOURCES: &str = "cpus:2;mem:1024;disk:1000";
/// Fast allocation runs, so inverse offers and re-offers come quickly.
const MASTER_FLAGS: [&str; 2] = ["--allocation_interval", "100ms"];

async fn post(cluster: &Cluster, path: &str, body: Value) -> (u16, Value) {
    cluster.post_json(path, body).await
}

async fn operator(cluster: &Cluster, body: Value) -> (u16, Value) {
    cluster.post_json("/api/v1", body).await
}

/// GETs a JSON endpoint of the master.
async fn get_json(cluster: &Cluster, path: &str) -> Value {
    let response = cluster.http.get(&cluster.url(path)).await.expect(path);
    serde_json::from_slice(&response.body).expect("JSON")
}

/// Waits (at most 30 s) for the end of `task` and checks its state and reason.
async fn expect_end(fw: &mut Framework, task: &str, state: TaskState, reason: Reason) {
    let end = fw.wait_terminal(task, Duration::from_secs(30)).await;
    assert_eq!((end.state, end.reason), (state, Some(reason)), "{end:?}");
}

/// The `status` of GET_MAINTENANCE_STATUS.
async fn maintenance_status(cluster: &Cluster) -> Value {
    let (code, body) = operator(cluster, json!({"type": "GET_MAINTENANCE_STATUS"})).await;
    assert_eq!(code, 200, "{body}");
    body["get_maintenance_status"]["status"].clone()
}

/// The machine of the first agent in `/master/state`: its hostname and IP.
fn machine_of(state: &Value) -> Value {
    let agent = &state["slaves"][0];
    let pid = agent["pid"].as_str().unwrap();
    let ip = pid.split_once('@').unwrap().1.rsplit_once(':').unwrap().0;
    json!({"hostname": agent["hostname"], "ip": ip})
}

fn schedule_call(machine: &Value, start_secs: i64) -> Value {
    json!({"type": "UPDATE_MAINTENANCE_SCHEDULE", "update_maintenance_schedule": {"schedule": {
        "windows": [{"machine_ids": [machine], "unavailability": {
            "start": {"nanoseconds": start_secs * 1_000_000_000},
            "duration": {"nanoseconds": 3_600_000_000_000i64}}}]}}})
}

fn unix_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Launches `command` from the next offer as task `id`, with a kill grace period of
/// `grace` seconds, and waits until it runs.
async fn launch(fw: &mut Framework, id: &str, command: &str, grace: i64) -> Offer {
    let offer = fw.next_offers().await.remove(0);
    let task: TaskInfo = serde_json::from_value(json!({
        "name": id, "task_id": {"value": id}, "agent_id": offer.agent_id,
        "resources": Resources::parse_text("cpus:0.5;mem:32", "*").unwrap().to_wire(),
        "command": {"value": command},
        "kill_policy": {"grace_period": {"nanoseconds": grace * 1_000_000_000}},
    }))
    .unwrap();
    fw.scheduler
        .launch(offer.id.clone(), vec![task], None)
        .await
        .expect("launch");
    fw.wait_state(id, TaskState::Running).await;
    offer
}

/// Answers inverse offers the way pymesos's acceptInverseOffers/declineInverseOffer do.
async fn answer(fw: &Framework, kind: &str, id: &OfferId) {
    let mut call = Call::new(None, kind);
    let body = InverseOfferIds {
        inverse_offer_ids: vec![id.clone()],
        filters: Some(Filters {
            refuse_seconds: 1.0,
        }),
    };
    if kind == "ACCEPT_INVERSE_OFFERS" {
        call.accept_inverse_offers = Some(body);
    } else {
        call.decline_inverse_offers = Some(body);
    }
    fw.scheduler.call(call).await.expect(kind);
}

async fn next_inverse_offer(fw: &mut Framework) -> mantle_api::maintenance::InverseOffer {
    fw.next("an inverse offer", Duration::from_secs(30), |e| match e {
        Event::InverseOffers(o) => o.inverse_offers.first().cloned(),
        _ => None,
    })
    .await
}

/// Polls GET_MAINTENANCE_STATUS until the first draining machine has an answer `kind`.
async fn wait_answer(cluster: &Cluster, kind: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = maintenance_status(cluster).await;
        let answer = &status["draining_machines"][0]["statuses"][0];
        if answer["status"] == kind {
            return answer.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no {kind} answer in the status: {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_machine_drains_goes_down_and_comes_back_up() {
    let mut cluster = Cluster::start(1, RESOURCES, &MASTER_FLAGS).await;
    let mut fw = Framework::subscribe(&cluster.master, "maintained").await;
    let offer = launch(&mut fw, "sleeper", "sleep 1000", 1).await;
    let state = cluster.state().await;
    let machine = machine_of(&state);
    let start = unix_secs() + 3600;

    let (code, body) = operator(&cluster, schedule_call(&machine, start)).await;
    assert_eq!(code, 200, "{body}");
    // Both an inverse offer and an offer with the unavailability, in either order.
    let (mut inverse, mut unavailable) = (None, None);
    fw.next(
        "an inverse offer and an unavailable offer",
        Duration::from_secs(30),
        |e| {
            match e {
                Event::InverseOffers(o) => inverse = o.inverse_offers.first().cloned(),
                Event::Offers(o) => {
                    unavailable = o.offers.iter().find_map(|o| o.unavailability.clone());
                }
                _ => {}
            }
            (inverse.is_some() && unavailable.is_some()).then_some(())
        },
    )
    .await;
    let inverse = inverse.unwrap();
    assert_eq!(inverse.agent_id, offer.agent_id);
    assert_eq!(
        inverse.unavailability.start.nanoseconds,
        start * 1_000_000_000
    );
    assert_eq!(unavailable.unwrap(), inverse.unavailability);
    assert_eq!(
        maintenance_status(&cluster).await,
        json!({"draining_machines": [{"id": machine}]})
    );
    let legacy = get_json(&cluster, "/master/maintenance/schedule").await;
    assert_eq!(legacy["windows"][0]["machine_ids"][0], machine);

    // The answers show, with the framework and the time.
    answer(&fw, "ACCEPT_INVERSE_OFFERS", &inverse.id).await;
    let accepted = wait_answer(&cluster, "ACCEPT").await;
    assert_eq!(accepted["framework_id"]["value"], fw.id.as_str());
    assert!(accepted["timestamp"]["nanoseconds"].as_i64().unwrap() > 0);
    // The one-second filter ends and the master asks again.
    let again = next_inverse_offer(&mut fw).await;
    assert_ne!(again.id, inverse.id);
    answer(&fw, "DECLINE_INVERSE_OFFERS", &again.id).await;
    wait_answer(&cluster, "DECLINE").await;

    // Mistakes are refused with the field named; nothing changes.
    let unknown = json!({"hostname": "elsewhere", "ip": "10.9.9.9"});
    let mistakes = [
        (
            json!({"type": "START_MAINTENANCE", "start_maintenance": {"machines": [unknown]}}),
            "start_maintenance.machines[0]: machine",
        ),
        (
            json!({"type": "STOP_MAINTENANCE", "stop_maintenance": {"machines": [machine]}}),
            "is not in DOWN mode",
        ),
        (
            json!({"type": "UPDATE_MAINTENANCE_SCHEDULE", "update_maintenance_schedule": {"schedule": {"windows": [
                {"machine_ids": [machine, machine], "unavailability": {"start": {"nanoseconds": 0}}}]}}}),
            "update_maintenance_schedule.schedule.windows[0].machine_ids[1]",
        ),
        (
            json!({"type": "UPDATE_MAINTENANCE_SCHEDULE", "update_maintenance_schedule": {"schedule": {"windows": [
                {"machine_ids": [machine]}]}}}),
            "unavailability",
        ),
    ];
    for (call, needle) in mistakes {
        let (code, body) = operator(&cluster, call).await;
        assert_eq!(code, 400, "{body}");
        assert!(body.as_str().unwrap().contains(needle), "{body}");
    }

    // DOWN: the agent is removed and its task lost.
    let down = json!({"type": "START_MAINTENANCE", "start_maintenance": {"machines": [machine]}});
    let (code, body) = operator(&cluster, down).await;
    assert_eq!(code, 200, "{body}");
    expect_end(&mut fw, "sleeper", TaskState::Lost, Reason::AgentRemoved).await;
    cluster
        .wait_until("the agent to be removed", |s| {
            s["slaves"].as_array().is_some_and(Vec::is_empty)
        })
        .await;
    assert_eq!(
        maintenance_status(&cluster).await,
        json!({"down_machines": [machine]})
    );

    // A new agent on that machine is refused until the machine is UP.
    cluster.add_agent(1, RESOURCES);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(cluster.state().await["slaves"]
        .as_array()
        .unwrap()
        .is_empty());
    let (code, body) = post(&cluster, "/master/machine/up", json!([machine])).await;
    assert_eq!(code, 200, "{body}");
    let state = cluster
        .wait_until("the new agent to register", |s| {
            s["slaves"].as_array().map_or(0, Vec::len) == 1
        })
        .await;
    let new_agent = state["slaves"][0]["id"].as_str().unwrap().to_string();
    let offers = fw
        .next(
            "an offer from the new agent",
            Duration::from_secs(30),
            |e| match e {
                Event::Offers(o) => o
                    .offers
                    .iter()
                    .find(|o| o.agent_id.as_str() == new_agent)
                    .cloned(),
                _ => None,
            },
        )
        .await;
    assert_eq!(offers.unavailability, None);
    assert_eq!(maintenance_status(&cluster).await, json!({}));
    let (code, body) = operator(&cluster, json!({"type": "GET_MAINTENANCE_SCHEDULE"})).await;
    assert_eq!(code, 200);
    assert_eq!(body["get_maintenance_schedule"], json!({"schedule": {}}));
}

/// The first agent's drain_info in `/master/state` (null when none).
fn drain_info(state: &Value) -> Value {
    state["slaves"][0]["drain_info"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_agent_loses_its_task_within_the_grace_period_and_is_reactivated() {
    let cluster = Cluster::start(1, RESOURCES, &MASTER_FLAGS).await;
    let mut fw = Framework::subscribe(&cluster.master, "drained").await;
    // The task ignores SIGTERM and asks for a minute of grace; the drain allows one second.
    let offer = launch(&mut fw, "stubborn", "trap '' TERM; sleep 1000", 60).await;
    let agent = offer.agent_id.value.clone();

    let (code, body) = operator(
        &cluster,
        json!({"type": "DRAIN_AGENT", "drain_agent": {
        "agent_id": {"value": "no-such-agent"}}}),
    )
    .await;
    assert_eq!(code, 400);
    assert!(
        body.as_str().unwrap().contains("drain_agent.agent_id"),
        "{body}"
    );
    // Malformed bodies are 400 naming the field.
    let malformed = [
        (
            "/api/v1",
            json!({"type": "DRAIN_AGENT", "drain_agent": {"agent_id": "x"}}),
            "drain_agent.agent_id",
        ),
        (
            "/api/v1",
            json!({"type": "DRAIN_AGENT", "drain_agent": {"agent_id": {"value": agent},
            "max_grace_period": "10mins"}}),
            "drain_agent.max_grace_period",
        ),
        (
            "/master/machine/down",
            json!([{"hostname": 5}]),
            "[0].hostname",
        ),
    ];
    for (path, call, needle) in malformed {
        let (code, body) = post(&cluster, path, call).await;
        assert_eq!(code, 400, "{body}");
        assert!(body.as_str().unwrap().contains(needle), "{body}");
    }

    let drain = json!({"type": "DRAIN_AGENT", "drain_agent": {"agent_id": {"value": agent},
        "max_grace_period": {"nanoseconds": 1_000_000_000}}});
    let (code, body) = operator(&cluster, drain).await;
    assert_eq!(code, 200, "{body}");
    let state = cluster.state().await;
    assert_eq!(drain_info(&state)["state"], "DRAINING", "{state}");
    assert_eq!(
        drain_info(&state)["config"],
        json!({"max_grace_period": {"nanoseconds": 1_000_000_000}, "mark_gone": false})
    );
    assert!(state["slaves"][0]["estimated_drain_start_time_seconds"].is_number());
    assert_eq!(state["slaves"][0]["deactivated"], true);
    let reactivate =
        json!({"type": "REACTIVATE_AGENT", "reactivate_agent": {"agent_id": {"value": agent}}});
    let (code, body) = operator(&cluster, reactivate.clone()).await;
    assert_eq!(code, 400, "a drain cannot be cancelled: {body}");

    // SIGKILL comes after the drain's second; the task's own minute would miss this wait.
    expect_end(
        &mut fw,
        "stubborn",
        TaskState::Killed,
        Reason::AgentDraining,
    )
    .await;
    cluster
        .wait_until("the agent to be drained", |s| {
            drain_info(s)["state"] == "DRAINED"
        })
        .await;

    let (code, body) = operator(&cluster, reactivate).await;
    assert_eq!(code, 200, "{body}");
    let state = cluster.state().await;
    assert_eq!(drain_info(&state), Value::Null);
    assert_eq!(state["slaves"][0]["active"], true);
    let offers = fw.next_offers().await;
    assert_eq!(offers[0].agent_id.value, agent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schedule_down_machines_and_drains_survive_a_master_restart() {
    let mut cluster = Cluster::start(1, RESOURCES, &[]).await;
    let state = cluster.state().await;
    let agent = state["slaves"][0]["id"].as_str().unwrap().to_string();
    let down = json!({"hostname": "gone-for-repairs"});
    let schedule = json!({"windows": [{"machine_ids": [down],
        "unavailability": {"start": {"nanoseconds": 1_000_000_000}}}]});
    // Through the legacy endpoints this time.
    let (code, body) = post(&cluster, "/master/maintenance/schedule", schedule.clone()).await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = post(&cluster, "/master/machine/down", json!([down])).await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = post(&cluster, "/master/machine/up", json!([])).await;
    assert_eq!(code, 400);
    assert!(body
        .as_str()
        .unwrap()
        .contains("machines: the list of machines is empty"));
    // An idle agent is drained at once.
    let drain = json!({"type": "DRAIN_AGENT", "drain_agent": {"agent_id": {"value": agent}}});
    assert_eq!(operator(&cluster, drain).await.0, 200);
    cluster
        .wait_until("the agent to be drained", |s| {
            drain_info(s)["state"] == "DRAINED"
        })
        .await;

    cluster.restart_master();
    let state = cluster
        .wait_until("the agent to re-register", |s| {
            s["slaves"].as_array().map_or(0, Vec::len) == 1
        })
        .await;
    assert_eq!(drain_info(&state)["state"], "DRAINED");
    assert_eq!(state["slaves"][0]["active"], false);
    let legacy = get_json(&cluster, "/master/maintenance/schedule").await;
    assert_eq!(legacy, schedule);
    let status = get_json(&cluster, "/master/maintenance/status").await;
    assert_eq!(status, json!({"down_machines": [down]}));
    // A framework gets nothing from the drained agent.
    let mut fw = Framework::subscribe_with(&cluster.master, framework_info("after")).await;
    let quiet = tokio::time::timeout(Duration::from_secs(2), fw.next_offers()).await;
    assert!(quiet.is_err(), "a drained agent was offered");
}
