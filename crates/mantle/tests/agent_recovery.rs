//! Agent recovery with real processes (reference §7, "Recovery"): an agent killed with
//! SIGKILL and started again on the same work_dir and port finds the executors of
//! checkpointing frameworks still running, re-registers with its agent id and resends
//! what was not acknowledged; the tasks of frameworks that do not checkpoint are lost
//! with it. Also: an executor killed on its own, a changed boot id, `--recover=cleanup`.

mod common;

use common::framework::{command_task, framework_info, Framework};
use common::Cluster;
use mantle_api::scheduler::Event;
use mantle_api::{FrameworkInfo, Reason, TaskState, TaskStatus};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn checkpointing(name: &str) -> FrameworkInfo {
    let mut info = framework_info(name);
    info.checkpoint = true;
    info
}

/// Launches `count` tasks `prefix-N` running `command`, using as many offers as it
/// takes, and waits until each runs.
async fn launch(fw: &mut Framework, prefix: &str, count: usize, command: &str) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    while ids.len() < count {
        let offer = fw.next_offers().await.remove(0);
        let mut tasks = Vec::new();
        let mut cpus = offer
            .resources
            .iter()
            .find(|r| r.name == "cpus")
            .and_then(|r| r.scalar.as_ref())
            .map_or(0.0, |s| s.value);
        while ids.len() < count && cpus >= 0.1 {
            let id = format!("{prefix}-{}", ids.len());
            tasks.push(command_task(&id, &offer, command, "cpus:0.1;mem:8"));
            ids.push(id);
            cpus -= 0.1;
        }
        fw.scheduler
            .launch(offer.id.clone(), tasks, None)
            .await
            .expect("launch");
    }
    for id in &ids {
        fw.wait_state(id, TaskState::Running).await;
    }
    ids
}

/// The executor pid the launcher recorded for each command task on agent 0.
fn executor_pids(cluster: &Cluster) -> BTreeMap<String, i32> {
    let mut pids = BTreeMap::new();
    let slaves = cluster.agent_dir(0).join("meta/slaves");
    for path in glob_runs(&slaves) {
        let executor = path
            .parent()
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // One run per executor here; frameworks that do not checkpoint have no
        // `latest` link under meta/.
        for run in std::fs::read_dir(&path).into_iter().flatten().flatten() {
            if let Ok(text) = std::fs::read_to_string(run.path().join("pid")) {
                pids.insert(executor.clone(), text.trim().parse().unwrap());
            }
        }
    }
    pids
}

/// `meta/slaves/*/frameworks/*/executors/*/runs` directories.
fn glob_runs(slaves: &Path) -> Vec<PathBuf> {
    let children = |dir: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir() && !p.is_symlink())
            .collect()
    };
    let mut runs = Vec::new();
    for agent in children(slaves) {
        for framework in children(&agent.join("frameworks")) {
            for executor in children(&framework.join("executors")) {
                runs.push(executor.join("runs"));
            }
        }
    }
    runs
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    })
}

async fn metric(cluster: &Cluster, name: &str) -> f64 {
    let response = cluster
        .http
        .get(&cluster.url("/metrics/snapshot"))
        .await
        .expect("metrics");
    let metrics: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
    metrics[name].as_f64().unwrap_or_default()
}

/// Waits until the master shows agent 0 connected again after a restart.
async fn wait_reregistered(cluster: &Cluster) -> serde_json::Value {
    cluster
        .wait_until("the agent re-registered", |state| {
            let agent = &state["slaves"][0];
            agent["active"] == true && agent["reregistered_time"].is_number()
        })
        .await
}

/// The update of `task` in `state` that arrives next, whatever came before it.
async fn next_update(fw: &mut Framework, task: &str, state: TaskState) -> TaskStatus {
    let what = format!("{task} in {state}");
    fw.next(&what, Duration::from_secs(30), |e| match e {
        Event::Update(u) if u.status.task_id.value == task && u.status.state == state => {
            Some(u.status.clone())
        }
        _ => None,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_keep_running_across_an_agent_kill() {
    let mut cluster = Cluster::one_agent("cpus:3;mem:1024;disk:1000", &[]).await;
    let mut fw = Framework::subscribe_with(&cluster.master, checkpointing("keeper")).await;
    let tasks = launch(&mut fw, "keep", 20, "sleep 1000").await;
    let mut plain = Framework::subscribe(&cluster.master, "plain").await;
    launch(&mut plain, "plain", 1, "sleep 1000").await;
    let pids = executor_pids(&cluster);
    assert_eq!(pids.len(), 21, "one executor per task: {pids:?}");
    let plain_pid = pids["plain-0"];
    let reregistrations = metric(&cluster, "master/slave_reregistrations").await;

    cluster.kill_agent(0);
    // The framework that does not checkpoint loses its task with the connection.
    let lost = next_update(&mut plain, "plain-0", TaskState::Lost).await;
    assert_eq!(lost.reason, Some(Reason::AgentDisconnected));
    cluster.start_agent_again(0, &[]);
    let state = wait_reregistered(&cluster).await;

    // The same executors, still running; no update but the lost one was sent.
    let after = executor_pids(&cluster);
    for task in &tasks {
        assert_eq!(after.get(task), pids.get(task), "{task} kept its executor");
        assert!(alive(pids[task]), "{task}'s executor runs");
    }
    assert!(
        !alive(plain_pid),
        "the executor of a framework that does not checkpoint dies with its agent"
    );
    let running = state["frameworks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "keeper")
        .map(|f| f["tasks"].as_array().unwrap().clone())
        .unwrap();
    assert_eq!(running.len(), 20);
    assert!(running.iter().all(|t| t["state"] == "TASK_RUNNING"));
    assert!(metric(&cluster, "master/slave_reregistrations").await > reregistrations);
    // The executors are connected again: a kill reaches one and is answered.
    fw.scheduler
        .kill(mantle_api::TaskId::new("keep-3"), None)
        .await
        .expect("kill");
    let killed = fw.wait_terminal("keep-3", Duration::from_secs(30)).await;
    assert_eq!(killed.state, TaskState::Killed);
    let terminal: Vec<&TaskStatus> = fw
        .statuses
        .iter()
        .filter(|s| s.state.is_terminal() && s.task_id.value != "keep-3")
        .collect();
    assert!(terminal.is_empty(), "no other task ended: {terminal:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_survive_an_agent_kill() {
    let mut cluster = Cluster::one_agent("cpus:1;mem:512;disk:1000", &[]).await;
    let mut fw = Framework::subscribe_with(&cluster.master, checkpointing("finisher")).await;
    // "quick" finishes at once; its FINISHED is not acknowledged before the kill.
    fw.hold_acks.insert("quick-0".into());
    launch(&mut fw, "slow", 1, "sleep 4").await;
    launch(&mut fw, "quick", 1, "sleep 0.5").await;
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
    assert!(slow.uuid.is_some());
    cluster
        .wait_until("both tasks completed", |state| {
            state["frameworks"][0]["completed_tasks"]
                .as_array()
                .is_some_and(|t| t.len() == 2)
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_executor_killed_on_its_own_fails_its_task() {
    let cluster = Cluster::one_agent("cpus:1;mem:512;disk:1000", &[]).await;
    let mut fw = Framework::subscribe_with(&cluster.master, checkpointing("victim")).await;
    launch(&mut fw, "doomed", 1, "sleep 1000").await;
    let pid = executor_pids(&cluster)["doomed-0"];
    // SAFETY: kill(2) with a pid of a process this test started has no memory effects.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    let failed = fw.wait_terminal("doomed-0", Duration::from_secs(30)).await;
    assert_eq!(failed.state, TaskState::Failed);
    assert_eq!(failed.reason, Some(Reason::ExecutorTerminated));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executors_dead_during_the_restart_are_reported() {
    let mut cluster = Cluster::one_agent(
        "cpus:1;mem:512;disk:1000",
        &["--executor_reregistration_timeout", "1secs"],
    )
    .await;
    let mut fw = Framework::subscribe_with(&cluster.master, checkpointing("orphaned")).await;
    launch(&mut fw, "gone", 2, "sleep 1000").await;
    let pids = executor_pids(&cluster);
    cluster.kill_agent(0);
    // While the agent is down, one executor dies; the other is stopped, so it cannot
    // subscribe again in time.
    // SAFETY: kill(2) with pids of processes this test started.
    unsafe {
        libc::kill(pids["gone-0"], libc::SIGKILL);
        libc::kill(pids["gone-1"], libc::SIGSTOP);
    }
    cluster.start_agent_again(0, &[]);
    let died = fw.wait_terminal("gone-0", Duration::from_secs(30)).await;
    assert_eq!(died.state, TaskState::Failed);
    assert_eq!(died.reason, Some(Reason::ExecutorTerminated));
    let silent = fw.wait_terminal("gone-1", Duration::from_secs(30)).await;
    assert_eq!(silent.state, TaskState::Lost);
    assert_eq!(silent.reason, Some(Reason::ExecutorReregistrationTimeout));
    wait_reregistered(&cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_reboot_the_agent_keeps_its_id_and_reports_its_tasks_gone() {
    let mut cluster = Cluster::one_agent("cpus:1;mem:512;disk:1000", &[]).await;
    let mut fw = Framework::subscribe_with(&cluster.master, checkpointing("rebooted")).await;
    launch(&mut fw, "boot", 1, "sleep 1000").await;
    let agent_id = cluster.state().await["slaves"][0]["id"].clone();
    // A reboot: every process ends and the kernel has a new boot id.
    let pid = executor_pids(&cluster)["boot-0"];
    cluster.kill_agent(0);
    // SAFETY: kill(2) with a pid of a process this test started.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    std::fs::write(
        cluster.agent_dir(0).join("meta/boot_id"),
        "an-earlier-boot\n",
    )
    .unwrap();
    cluster.start_agent_again(0, &[]);
    let lost = fw.wait_terminal("boot-0", Duration::from_secs(30)).await;
    assert_eq!(lost.state, TaskState::Lost);
    assert_eq!(lost.reason, Some(Reason::ExecutorTerminated));
    let state = wait_reregistered(&cluster).await;
    assert_eq!(state["slaves"][0]["id"], agent_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_cleanup_kills_everything_and_forgets_the_agent() {
    let mut cluster = Cluster::one_agent("cpus:1;mem:512;disk:1000", &[]).await;
    let mut fw = Framework::subscribe_with(&cluster.master, checkpointing("cleaned")).await;
    launch(&mut fw, "clean", 1, "sleep 1000").await;
    let pid = executor_pids(&cluster)["clean-0"];
    cluster.kill_agent(0);
    assert!(alive(pid));
    let work_dir = cluster.agent_dir(0);
    let output = std::process::Command::new(common::MANTLE)
        .args([
            "agent",
            "--master",
            &cluster.master,
            "--work_dir",
            work_dir.to_str().unwrap(),
            "--recover",
            "cleanup",
        ])
        .output()
        .expect("run mantle agent --recover=cleanup");
    assert!(output.status.success(), "{output:?}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while alive(pid) {
        assert!(
            std::time::Instant::now() < deadline,
            "the executor still runs"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!work_dir.join("meta/slaves").exists());
}
