//! Failure detection with real processes (reference §5.1): an agent that stops answering
//! pings (here: stopped with SIGSTOP, so its connections stay open but it is silent)
//! becomes unreachable; a PARTITION_AWARE framework sees its task TASK_UNREACHABLE, the
//! other framework TASK_LOST, both with REASON_AGENT_REMOVED and a FAILURE event. When the
//! agent runs again it re-registers with its ID, and both frameworks see the task
//! TASK_RUNNING again with REASON_AGENT_REREGISTERED (the Mesos 1.5 rule). Also: the
//! registry across a master restart (agents, failover deadlines) and MARK_AGENT_GONE.

mod common;

use common::framework::{command_task, framework_info, Framework};
use common::Cluster;
use mantle_api::scheduler::Event;
use mantle_api::{Capability, Reason, Source, TaskState, TaskStatus};
use std::time::Duration;

const RESOURCES: &str = "cpus:2;mem:1024;disk:1000";

async fn launch_sleep(fw: &mut Framework, task: &str) {
    let offer = fw.next_offers().await.remove(0);
    let info = command_task(task, &offer, "sleep 1000", "cpus:0.5;mem:32");
    fw.scheduler
        .launch(offer.id.clone(), vec![info], None)
        .await
        .expect("launch");
    fw.wait_state(task, TaskState::Running).await;
}

/// The next update of `task` in `state`, whatever came before it.
async fn update_in(fw: &mut Framework, task: &str, state: TaskState) -> TaskStatus {
    let what = format!("{task} in {state}");
    fw.next(&what, Duration::from_secs(30), |e| match e {
        Event::Update(u) if u.status.task_id.as_str() == task && u.status.state == state => {
            Some(u.status.clone())
        }
        _ => None,
    })
    .await
}

/// Waits (at most 20 s) until the first agent runs no framework any more.
async fn wait_agent_idle(cluster: &Cluster) {
    let agent_state = format!("http://{}/state", cluster.agents[0]);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let response = cluster.http.get(&agent_state).await.expect("agent state");
        let state: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
        if state["frameworks"].as_array().is_some_and(Vec::is_empty) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the agent still runs a framework: {state}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_agent_becomes_unreachable_and_its_tasks_come_back() {
    let master_flags = [
        "--agent_ping_timeout",
        "0.5secs",
        "--max_agent_ping_timeouts",
        "2",
    ];
    let cluster = Cluster::one_agent_with(&master_flags, RESOURCES, &[]).await;
    let mut info = framework_info("partition-aware");
    info.capabilities = vec![Capability {
        kind: "PARTITION_AWARE".into(),
    }];
    let mut aware = Framework::subscribe_with(&cluster.master, info).await;
    launch_sleep(&mut aware, "aware-task").await;
    let mut plain = Framework::subscribe(&cluster.master, "plain").await;
    launch_sleep(&mut plain, "plain-task").await;

    cluster.signal_agent(0, libc::SIGSTOP);
    let unreachable = update_in(&mut aware, "aware-task", TaskState::Unreachable).await;
    assert_eq!(unreachable.reason, Some(Reason::AgentRemoved));
    assert_eq!(unreachable.source, Some(Source::Master));
    assert!(unreachable.unreachable_time.is_some());
    assert!(unreachable.uuid.is_none());
    let lost = update_in(&mut plain, "plain-task", TaskState::Lost).await;
    assert_eq!(lost.reason, Some(Reason::AgentRemoved));
    let state = cluster
        .wait_until("the agent to be unreachable", |s| {
            s["unreachable_slaves"] == 1
        })
        .await;
    let tasks: Vec<&str> = state["frameworks"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| f["unreachable_tasks"].as_array().unwrap())
        .map(|t| t["state"].as_str().unwrap())
        .collect();
    assert_eq!(tasks, vec!["TASK_UNREACHABLE", "TASK_UNREACHABLE"]);
    aware
        .next("FAILURE", Duration::from_secs(10), |e| {
            matches!(e, Event::Failure(f) if f.agent_id.is_some()).then_some(())
        })
        .await;

    cluster.signal_agent(0, libc::SIGCONT);
    for (fw, task) in [(&mut aware, "aware-task"), (&mut plain, "plain-task")] {
        let back = update_in(fw, task, TaskState::Running).await;
        assert_eq!(back.reason, Some(Reason::AgentReregistered), "{back:?}");
        assert_eq!(back.source, Some(Source::Master));
        assert!(back.uuid.is_none());
    }
    let state = cluster
        .wait_until("the agent to be back", |s| {
            s["unreachable_slaves"] == 0 && s["activated_slaves"] == 1
        })
        .await;
    assert!(state["slaves"][0]["reregistered_time"].is_number());
    // The tasks never stopped: a kill now ends them normally.
    aware
        .scheduler
        .kill("aware-task".into(), None)
        .await
        .expect("kill");
    aware.wait_state("aware-task", TaskState::Killed).await;
}

/// The registry survives a master restart: the agent that comes back keeps its task, the
/// one that stays silent past `--agent_reregister_timeout` becomes unreachable, and is
/// admitted again when it returns; reconciliation reports the running task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_master_recovers_its_agents_from_the_registry() {
    let master_flags = ["--agent_reregister_timeout", "2secs"];
    let mut cluster = Cluster::start(2, RESOURCES, &master_flags).await;
    let mut fw = Framework::subscribe(&cluster.master, "survivor").await;
    launch_sleep(&mut fw, "kept").await;
    let state = cluster.state().await;
    let task_agent = state["frameworks"][0]["tasks"][0]["slave_id"]
        .as_str()
        .unwrap()
        .to_string();
    // Silence the agent that does not run the task.
    let slaves = state["slaves"].as_array().unwrap();
    let silent = slaves
        .iter()
        .position(|s| s["id"] != task_agent.as_str())
        .expect("a second agent");
    let silent_id = slaves[silent]["id"].as_str().unwrap().to_string();
    let silent_index = cluster
        .agents
        .iter()
        .position(|a| {
            slaves[silent]["pid"]
                .as_str()
                .unwrap()
                .ends_with(a.as_str())
        })
        .expect("the silent agent's process");
    cluster.signal_agent(silent_index, libc::SIGSTOP);

    cluster.restart_master();
    let state = cluster
        .wait_until("the running agent to re-register", |s| {
            s["slaves"]
                .as_array()
                .is_some_and(|a| a.iter().any(|s| s["id"] == task_agent.as_str()))
        })
        .await;
    assert!(state["slaves"][0]["reregistered_time"].is_number());
    cluster
        .wait_until("the silent agent to be unreachable", |s| {
            s["unreachable_slaves"] == 1
        })
        .await;

    // The framework re-subscribes by itself; reconciliation finds its task running.
    fw.scheduler.reconcile(vec![]).await.expect("reconcile");
    let answer = update_in(&mut fw, "kept", TaskState::Running).await;
    assert_eq!(answer.reason, Some(Reason::Reconciliation));

    cluster.signal_agent(silent_index, libc::SIGCONT);
    cluster
        .wait_until("the silent agent to come back", |s| {
            s["unreachable_slaves"] == 0
                && s["slaves"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|s| s["id"] == silent_id.as_str()))
        })
        .await;
}

/// A scheduler that goes away keeps its tasks for its `failover_timeout`, counted from
/// when it left even across a master restart; then the framework is removed and its
/// tasks are killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_deadline_survives_a_master_restart() {
    let mut cluster = Cluster::start(1, RESOURCES, &[]).await;
    let mut info = framework_info("short-lived");
    info.failover_timeout = 3.0;
    let mut fw = Framework::subscribe_with(&cluster.master, info).await;
    launch_sleep(&mut fw, "orphan").await;
    let framework_id = fw.id.value.clone();
    drop(fw);
    cluster
        .wait_until("the framework to be disconnected", |s| {
            s["frameworks"][0]["active"] == false
        })
        .await;
    cluster.restart_master();
    let state = cluster
        .wait_until("the framework to be removed", |s| {
            s["completed_frameworks"]
                .as_array()
                .is_some_and(|c| c.iter().any(|f| f["id"] == *framework_id))
        })
        .await;
    assert!(
        state["frameworks"].as_array().unwrap().is_empty(),
        "{state}"
    );
    // Its task is killed on the agent.
    wait_agent_idle(&cluster).await;
}

/// MARK_AGENT_GONE: the task ends TASK_GONE_BY_OPERATOR for a PARTITION_AWARE framework
/// and is killed on the agent, which the master no longer lists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_marked_gone_stops_its_tasks() {
    let cluster = Cluster::start(1, RESOURCES, &[]).await;
    let mut info = framework_info("gone");
    info.capabilities = vec![Capability {
        kind: "PARTITION_AWARE".into(),
    }];
    let mut fw = Framework::subscribe_with(&cluster.master, info).await;
    launch_sleep(&mut fw, "doomed").await;
    let state = cluster.state().await;
    let agent_id = state["slaves"][0]["id"].as_str().unwrap().to_string();
    let call = serde_json::json!({
        "type": "MARK_AGENT_GONE",
        "mark_agent_gone": {"agent_id": {"value": agent_id}},
    });
    cluster
        .http
        .post(&cluster.url("/api/v1"), call.to_string().into_bytes(), &[])
        .await
        .expect("MARK_AGENT_GONE");
    let gone = update_in(&mut fw, "doomed", TaskState::GoneByOperator).await;
    assert_eq!(gone.reason, Some(Reason::AgentRemovedByOperator));
    cluster
        .wait_until("the agent to be gone", |s| {
            s["slaves"].as_array().is_some_and(Vec::is_empty)
        })
        .await;
    wait_agent_idle(&cluster).await;
}
