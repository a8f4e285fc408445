//! System scenarios (issue "Nothing lost"): a master and three agents, each on a host of
//! its own in a network namespace, joined by a bridge. Processes are killed with SIGKILL
//! and started again, and a host's link is cut and restored. Each scenario checks that
//! no acknowledged update is lost and that no task is reported in a state it is not in
//! (its executor's process is checked against what the scheduler was told).

mod common;

use common::checks::*;
use common::framework::{framework_info, Framework};
use common::netns::Network;
use common::Cluster;
use mantle_api::{Capability, Reason, Source, TaskId, TaskState, TaskStatus};
use std::time::Duration;

const RESOURCES: &str = "cpus:3;mem:1024;disk:1000";

/// A master and three agents on four hosts, or `None` where namespaces are unavailable.
async fn hosts(master_flags: &[&str]) -> Option<Cluster> {
    let net = Network::create(4)?;
    Some(Cluster::start_on(Some(net), 3, RESOURCES, master_flags).await)
}

/// The terminal updates among those seen, except for `but`.
fn terminal_except<'a>(fw: &'a Framework, but: &[&str]) -> Vec<&'a TaskStatus> {
    fw.statuses
        .iter()
        .filter(|s| s.state.is_terminal() && !but.contains(&s.task_id.as_str()))
        .collect()
}

/// The agent (index) a task runs on, from the master's state.
async fn agent_of(cluster: &Cluster, task: &str) -> usize {
    let state = cluster.state().await;
    let agent_id = state["frameworks"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| f["tasks"].as_array().unwrap())
        .find(|t| t["id"] == task)
        .map(|t| t["slave_id"].clone())
        .expect("the task is known");
    (0..cluster.agents.len())
        .find(|i| agent_entry(&state, cluster, *i)["id"] == agent_id)
        .expect("the task's agent")
}
/// Waits until the master answered a reconciliation for each of `tasks`, and checks
/// that every answer says TASK_RUNNING and comes from the master without a uuid.
/// Updates not acknowledged before a scheduler went may arrive again meanwhile.
async fn wait_reconciled(fw: &mut Framework, tasks: &[String]) {
    let answered = |fw: &Framework| {
        tasks.iter().all(|task| {
            fw.statuses
                .iter()
                .any(|s| s.task_id.as_str() == task && s.reason == Some(Reason::Reconciliation))
        })
    };
    while !answered(fw) {
        fw.next("reconciliation answers", Duration::from_secs(30), |_| {
            Some(())
        })
        .await;
    }
    for status in fw
        .statuses
        .iter()
        .filter(|s| s.reason == Some(Reason::Reconciliation))
    {
        assert_eq!(status.state, TaskState::Running, "{status:#?}");
        assert_eq!(status.source, Some(Source::Master));
        assert!(status.uuid.is_none(), "master updates carry no uuid");
    }
}

/// The id of agent `agent`, from the master's state.
async fn agent_id(cluster: &Cluster, agent: usize) -> String {
    let state = cluster.state().await;
    agent_entry(&state, cluster, agent)["id"]
        .as_str()
        .expect("the agent is registered")
        .to_string()
}

/// Scenario 1: SIGKILL an agent while 20 tasks run and start it again: the same
/// executors run every task, and no terminal update was sent for any.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_killed_under_20_tasks_keeps_them_running() {
    let Some(mut cluster) = hosts(&[]).await else {
        return;
    };
    let on = agent_id(&cluster, 1).await;
    let mut fw = Framework::subscribe_with(&cluster.master, checkpointing("keeper")).await;
    let tasks = launch_on(&mut fw, Some(&on), "keep", 20, "sleep 1000").await;
    let mut plain = Framework::subscribe(&cluster.master, "plain").await;
    launch_on(&mut plain, Some(&on), "plain", 1, "sleep 1000").await;
    let pids = executor_pids(&cluster, 1);
    assert_eq!(pids.len(), 21, "one executor per task: {pids:?}");
    let plain_pid = pids["plain-0"];
    let reregistrations = metric(&cluster, "master/slave_reregistrations").await;

    cluster.kill_agent(1);
    // The framework that does not checkpoint loses its task with the connection.
    let lost = next_update(&mut plain, "plain-0", TaskState::Lost).await;
    assert_eq!(lost.reason, Some(Reason::AgentDisconnected));
    cluster.start_agent_again(1, &[]);
    let state = wait_reregistered(&cluster, 1).await;

    let after = executor_pids(&cluster, 1);
    for task in &tasks {
        assert_eq!(after.get(task), pids.get(task), "{task} kept its executor");
        assert!(alive(pids[task]), "{task}'s executor runs");
    }
    assert!(
        !alive(plain_pid),
        "the executor of a framework that does not checkpoint dies with its agent"
    );
    let running: Vec<&serde_json::Value> = state["frameworks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["name"] == "keeper")
        .flat_map(|f| f["tasks"].as_array().unwrap())
        .collect();
    assert_eq!(running.len(), 20);
    assert!(running.iter().all(|t| t["state"] == "TASK_RUNNING"));
    assert!(metric(&cluster, "master/slave_reregistrations").await > reregistrations);
    // The executors are connected again: a kill reaches one and is answered.
    fw.scheduler
        .kill(TaskId::new("keep-3"), None)
        .await
        .expect("kill");
    let killed = fw.wait_terminal("keep-3", Duration::from_secs(30)).await;
    assert_eq!(killed.state, TaskState::Killed);
    let terminal = terminal_except(&fw, &["keep-3"]);
    assert!(terminal.is_empty(), "no other task ended: {terminal:#?}");
}

/// Scenario 2: SIGKILL an agent around the end of its tasks: a TASK_FINISHED the
/// scheduler had not acknowledged is sent again with its uuid, and one that happened
/// while the agent was down reaches the scheduler once the agent is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finishes_around_an_agent_kill_reach_the_scheduler() {
    let Some(mut cluster) = hosts(&[]).await else {
        return;
    };
    let on = agent_id(&cluster, 0).await;
    let mut fw = Framework::subscribe_with(&cluster.master, checkpointing("finisher")).await;
    fw.hold_acks.insert("quick-0".into());
    launch_on(&mut fw, Some(&on), "slow", 1, "sleep 4").await;
    launch_on(&mut fw, Some(&on), "quick", 1, "sleep 0.5").await;
    let first = fw.wait_terminal("quick-0", Duration::from_secs(30)).await;
    assert_eq!(first.state, TaskState::Finished);

    cluster.kill_agent(0);
    // "slow" finishes while its agent is down; its executor keeps the update.
    tokio::time::sleep(Duration::from_secs(5)).await;
    cluster.start_agent_again(0, &[]);

    let again = next_update(&mut fw, "quick-0", TaskState::Finished).await;
    assert_eq!(again.uuid, first.uuid, "the same update, retried");
    fw.scheduler.acknowledge(&again).await.expect("acknowledge");
    let slow = fw.wait_terminal("slow-0", Duration::from_secs(30)).await;
    assert_eq!(slow.state, TaskState::Finished);
    assert!(slow.uuid.is_some(), "an executor's update, acknowledged");
    cluster
        .wait_until("both tasks completed", |state| {
            state["frameworks"][0]["completed_tasks"]
                .as_array()
                .is_some_and(|t| t.len() == 2)
        })
        .await;
}

/// Scenario 3: cut an agent's link for longer than the ping timeout: its tasks become
/// TASK_UNREACHABLE (TASK_LOST for a framework that is not partition-aware) while their
/// executors keep running; restore it: they are TASK_RUNNING again with
/// REASON_AGENT_REREGISTERED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_link_makes_tasks_unreachable_until_it_is_restored() {
    let flags = [
        "--agent_ping_timeout",
        "0.5secs",
        "--max_agent_ping_timeouts",
        "2",
    ];
    let Some(cluster) = hosts(&flags).await else {
        return;
    };
    let on = agent_id(&cluster, 2).await;
    let mut info = framework_info("partition-aware");
    info.capabilities = vec![Capability {
        kind: "PARTITION_AWARE".into(),
    }];
    let mut aware = Framework::subscribe_with(&cluster.master, info).await;
    launch_on(&mut aware, Some(&on), "aware", 2, "sleep 1000").await;
    let mut plain = Framework::subscribe(&cluster.master, "plain").await;
    launch_on(&mut plain, Some(&on), "plain", 1, "sleep 1000").await;
    let pids = executor_pids(&cluster, 2);

    let net = cluster.net.as_ref().unwrap();
    net.cut(3);
    for task in ["aware-0", "aware-1"] {
        let unreachable = next_update(&mut aware, task, TaskState::Unreachable).await;
        assert_eq!(unreachable.reason, Some(Reason::AgentRemoved));
        assert_eq!(unreachable.source, Some(Source::Master));
        assert!(unreachable.uuid.is_none(), "master updates carry no uuid");
    }
    let lost = next_update(&mut plain, "plain-0", TaskState::Lost).await;
    assert_eq!(lost.reason, Some(Reason::AgentRemoved));
    // Unreachable is what the master knows, not what happened: they still run.
    assert!(pids.values().all(|pid| alive(*pid)));

    net.restore(3);
    let mut back = vec![next_update(&mut plain, "plain-0", TaskState::Running).await];
    for task in ["aware-0", "aware-1"] {
        back.push(next_update(&mut aware, task, TaskState::Running).await);
    }
    for status in back {
        assert_eq!(status.reason, Some(Reason::AgentReregistered));
        assert!(status.uuid.is_none());
    }
    assert_eq!(executor_pids(&cluster, 2), pids);
    assert!(terminal_except(&aware, &[]).is_empty());
}

/// Scenario 4: a scheduler whose connection dies (as with SIGKILL) and that subscribes
/// again within its failover_timeout keeps its tasks; one that does not is removed at
/// its timeout and its tasks are killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedulers_fail_over_within_their_timeout_and_are_removed_after_it() {
    let Some(cluster) = hosts(&[]).await else {
        return;
    };
    let mut info = checkpointing("returning");
    info.failover_timeout = 60.0;
    let mut returning = Framework::subscribe_with(&cluster.master, info.clone()).await;
    launch(&mut returning, "kept", 2, "sleep 1000").await;
    let mut info_gone = checkpointing("leaving");
    info_gone.failover_timeout = 1.0;
    let mut leaving = Framework::subscribe_with(&cluster.master, info_gone).await;
    launch(&mut leaving, "doomed", 2, "sleep 1000").await;
    let leaving_id = leaving.id.clone();
    let doomed_pids: Vec<i32> = (0..3)
        .flat_map(|agent| executor_pids(&cluster, agent))
        .filter(|(task, _)| task.starts_with("doomed"))
        .map(|(_, pid)| pid)
        .collect();
    assert_eq!(doomed_pids.len(), 2);

    let returning_id = returning.id.clone();
    drop(returning);
    drop(leaving);
    tokio::time::sleep(Duration::from_secs(3)).await;

    info.id = Some(returning_id.clone());
    let mut back = Framework::subscribe_with(&cluster.master, info).await;
    assert_eq!(back.id, returning_id);
    back.scheduler
        .reconcile(Vec::new())
        .await
        .expect("reconcile");
    wait_reconciled(&mut back, &["kept-0".into(), "kept-1".into()]).await;
    let state = cluster
        .wait_until("the leaving framework is completed", |state| {
            state["completed_frameworks"]
                .as_array()
                .is_some_and(|f| f.iter().any(|f| f["id"] == leaving_id.as_str()))
        })
        .await;
    let completed = state["completed_frameworks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == leaving_id.as_str())
        .unwrap();
    for task in completed["completed_tasks"].as_array().unwrap() {
        assert_eq!(task["state"], "TASK_KILLED", "{task}");
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while doomed_pids.iter().any(|pid| alive(*pid)) {
        assert!(
            std::time::Instant::now() < deadline,
            "the removed framework's executors still run"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Scenario 5: SIGKILL the (single) master and start it again: the agents re-register,
/// the tasks are kept, and reconciliation reports every running task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_killed_and_restarted_keeps_every_task() {
    let Some(mut cluster) = hosts(&[]).await else {
        return;
    };
    let mut info = checkpointing("steady");
    info.failover_timeout = 60.0;
    let mut fw = Framework::subscribe_with(&cluster.master, info.clone()).await;
    let tasks = launch(&mut fw, "steady", 12, "sleep 1000").await;
    let pids: Vec<i32> = (0..3)
        .flat_map(|agent| executor_pids(&cluster, agent).into_values())
        .collect();
    let id = fw.id.clone();
    drop(fw);

    cluster.restart_master();
    cluster
        .wait_until("every agent re-registered", |state| {
            state["slaves"]
                .as_array()
                .is_some_and(|a| a.len() == 3 && a.iter().all(|a| a["active"] == true))
        })
        .await;
    info.id = Some(id);
    let mut fw = Framework::subscribe_with(&cluster.master, info).await;
    fw.scheduler.reconcile(Vec::new()).await.expect("reconcile");
    wait_reconciled(&mut fw, &tasks).await;
    assert!(pids.iter().all(|pid| alive(*pid)));
    assert!(terminal_except(&fw, &[]).is_empty());
}

/// Scenario 6: SIGKILL a task's executor: TASK_FAILED with REASON_EXECUTOR_TERMINATED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_executor_fails_its_task() {
    let Some(cluster) = hosts(&[]).await else {
        return;
    };
    let mut fw = Framework::subscribe_with(&cluster.master, checkpointing("victim")).await;
    launch(&mut fw, "doomed", 1, "sleep 1000").await;
    let agent = agent_of(&cluster, "doomed-0").await;
    let pid = executor_pids(&cluster, agent)["doomed-0"];
    // SAFETY: kill(2) with a pid of a process this test started has no memory effects.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    let failed = fw.wait_terminal("doomed-0", Duration::from_secs(30)).await;
    assert_eq!(failed.state, TaskState::Failed);
    assert_eq!(failed.reason, Some(Reason::ExecutorTerminated));
    assert_eq!(failed.source, Some(Source::Agent));
}
