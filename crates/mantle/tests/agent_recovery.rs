//! Agent recovery on loopback (reference §7, "Recovery"), the cases beyond the system
//! scenarios of `system.rs`: executors that died or stay silent while their agent was
//! down, a changed boot id (a reboot), and `--recover=cleanup`.

mod common;

use common::checks::*;
use common::framework::Framework;
use common::Cluster;
use mantle_api::{Reason, TaskState};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executors_dead_during_the_restart_are_reported() {
    let mut cluster = Cluster::one_agent(
        "cpus:1;mem:512;disk:1000",
        &["--executor_reregistration_timeout", "1secs"],
    )
    .await;
    let mut fw = Framework::subscribe_with(&cluster.master, checkpointing("orphaned")).await;
    launch(&mut fw, "gone", 2, "sleep 1000").await;
    let pids = executor_pids(&cluster, 0);
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
    wait_reregistered(&cluster, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_reboot_the_agent_keeps_its_id_and_reports_its_tasks_gone() {
    let mut cluster = Cluster::one_agent("cpus:1;mem:512;disk:1000", &[]).await;
    let mut fw = Framework::subscribe_with(&cluster.master, checkpointing("rebooted")).await;
    launch(&mut fw, "boot", 1, "sleep 1000").await;
    let agent_id = cluster.state().await["slaves"][0]["id"].clone();
    // A reboot: every process ends and the kernel has a new boot id.
    let pid = executor_pids(&cluster, 0)["boot-0"];
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
    let state = wait_reregistered(&cluster, 0).await;
    assert_eq!(state["slaves"][0]["id"], agent_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_cleanup_kills_everything_and_forgets_the_agent() {
    let mut cluster = Cluster::one_agent("cpus:1;mem:512;disk:1000", &[]).await;
    let mut fw = Framework::subscribe_with(&cluster.master, checkpointing("cleaned")).await;
    launch(&mut fw, "clean", 1, "sleep 1000").await;
    let pid = executor_pids(&cluster, 0)["clean-0"];
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
