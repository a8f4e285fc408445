//! Isolation with real `mantle` processes, as root on this machine (reference §7): the
//! memory limit and its OOM limitation, CPU shares, killing whole containers, the pid
//! namespace and the sandbox mount, the disk quota, and switching users. Outside CI a
//! machine without root or cgroups skips these with a printed reason; in CI they fail.

mod common;

use common::framework::{command_task, Framework};
use common::Cluster;
use mantle_api::{Reason, Source, TaskState};
use serde_json::Value;
use std::time::{Duration, Instant};

/// True when this machine can run the tests; outside CI a reason is printed otherwise.
fn privileged() -> bool {
    // SAFETY: geteuid only reads the process's credentials.
    let root = unsafe { libc::geteuid() } == 0;
    let cgroups = std::path::Path::new("/sys/fs/cgroup/freezer").is_dir()
        || std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").is_file();
    if root && cgroups {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "isolation tests need root and cgroups (root: {root}, cgroups: {cgroups})"
    );
    eprintln!("skipping: isolation tests need root and cgroups");
    false
}

const AGENT_RESOURCES: &str = "cpus:4;mem:2048;disk:1000;ports:[31000-31100]";

/// Launches command tasks `(id, command, resources)` on the first offer.
async fn launch(fw: &mut Framework, tasks: &[(&str, &str, &str)]) {
    let offer = fw.next_offers().await.remove(0);
    let infos = tasks
        .iter()
        .map(|(id, command, resources)| command_task(id, &offer, command, resources))
        .collect();
    fw.scheduler
        .launch(offer.id.clone(), infos, None)
        .await
        .expect("launch tasks");
}

/// `/monitor/statistics` of the agent, by executor id.
async fn statistics(cluster: &Cluster) -> Vec<(String, Value)> {
    let url = format!("http://{}/monitor/statistics", cluster.agents[0]);
    let response = cluster
        .http
        .get(&url)
        .await
        .expect("GET /monitor/statistics");
    let entries: Vec<Value> = serde_json::from_slice(&response.body).expect("JSON");
    entries
        .into_iter()
        .map(|e| {
            let id = e["executor_id"].as_str().unwrap_or_default().to_string();
            (id, e["statistics"].clone())
        })
        .collect()
}

fn cpu_seconds(stats: &[(String, Value)], executor: &str) -> f64 {
    let (_, s) = stats
        .iter()
        .find(|(id, _)| id == executor)
        .unwrap_or_else(|| panic!("no statistics for {executor}: {stats:?}"));
    s["cpus_user_time_secs"].as_f64().unwrap() + s["cpus_system_time_secs"].as_f64().unwrap()
}

/// Processes whose command line contains `needle`.
fn processes_with(needle: &str) -> usize {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
                .is_ok_and(|cmd| cmd.contains(needle))
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_over_its_memory_limit_fails_with_the_limitation() {
    if !privileged() {
        return;
    }
    let cluster =
        Cluster::one_agent(AGENT_RESOURCES, &["--isolation", "cgroups/cpu,cgroups/mem"]).await;
    let mut fw = Framework::subscribe(&cluster.master, "memory").await;
    // dd reads 200 MB of zeros into one buffer, touching every page.
    let hog = "dd if=/dev/zero of=/dev/null bs=200M count=1";
    launch(&mut fw, &[("hog", hog, "cpus:0.5;mem:64")]).await;
    let status = fw.wait_terminal("hog", Duration::from_secs(30)).await;
    assert_eq!(status.state, TaskState::Failed, "{status:?}");
    assert_eq!(
        status.reason,
        Some(Reason::ContainerLimitationMemory),
        "{status:?}"
    );
    assert_eq!(status.source, Some(Source::Agent));
    let message = status.message.clone().unwrap_or_default();
    assert!(
        message.contains("Memory limit exceeded: Requested: 64MB"),
        "{message}"
    );
    let limitation = status.limitation.clone().expect("TaskStatus.limitation");
    assert_eq!(limitation["resources"][0]["name"], "mem", "{limitation}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_shares_split_one_core_four_to_one() {
    if !privileged() {
        return;
    }
    let cluster =
        Cluster::one_agent(AGENT_RESOURCES, &["--isolation", "cgroups/cpu,cgroups/mem"]).await;
    let mut fw = Framework::subscribe(&cluster.master, "shares").await;
    let spin = "exec taskset -c 0 sh -c 'while :; do :; done'";
    launch(
        &mut fw,
        &[
            ("big", spin, "cpus:1;mem:64"),
            ("small", spin, "cpus:0.25;mem:64"),
        ],
    )
    .await;
    fw.wait_state("big", TaskState::Running).await;
    fw.wait_state("small", TaskState::Running).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = statistics(&cluster).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = statistics(&cluster).await;
    let big = cpu_seconds(&after, "big") - cpu_seconds(&before, "big");
    let small = cpu_seconds(&after, "small") - cpu_seconds(&before, "small");
    let ratio = big / small;
    eprintln!("cpu shares 1 : 0.25 on one core: {big:.2} s : {small:.2} s, ratio {ratio:.2}");
    assert!((3.0..=5.5).contains(&ratio), "ratio {ratio:.2}");
    let limit = after.iter().find(|(id, _)| id == "big").unwrap();
    assert_eq!(limit.1["cpus_limit"], 1.0);
    assert_eq!(limit.1["mem_limit_bytes"], 64 * 1048576);
    for task in ["big", "small"] {
        fw.scheduler.kill(task.into(), None).await.expect("kill");
        fw.wait_state(task, TaskState::Killed).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_task_leaves_no_daemon_behind() {
    if !privileged() {
        return;
    }
    let cluster =
        Cluster::one_agent(AGENT_RESOURCES, &["--isolation", "cgroups/cpu,cgroups/mem"]).await;
    let mut fw = Framework::subscribe(&cluster.master, "daemons").await;
    let marker = format!("{}.{}", 900 + std::process::id() % 100, 4321);
    let command = format!("setsid sleep {marker} & sleep {marker}");
    launch(&mut fw, &[("daemon", command.as_str(), "cpus:0.1;mem:64")]).await;
    fw.wait_state("daemon", TaskState::Running).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while processes_with(&format!("sleep {marker}")) < 2 {
        assert!(Instant::now() < deadline, "the daemon did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    fw.scheduler
        .kill("daemon".into(), None)
        .await
        .expect("kill");
    fw.wait_state("daemon", TaskState::Killed).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while processes_with(&format!("sleep {marker}")) > 0 {
        assert!(
            Instant::now() < deadline,
            "processes of the killed container are left"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_in_a_pid_namespace_sees_only_its_processes() {
    if !privileged() {
        return;
    }
    let cluster = Cluster::one_agent(
        AGENT_RESOURCES,
        &["--isolation", "namespaces/pid,filesystem/linux"],
    )
    .await;
    let mut fw = Framework::subscribe(&cluster.master, "pid-namespace").await;
    let command = "echo pid=$$; echo processes=$(ls /proc | grep -c '^[0-9][0-9]*$'); \
                   echo sandbox=$MESOS_SANDBOX; test -f $MESOS_SANDBOX/stdout && echo mounted";
    launch(&mut fw, &[("ns", command, "cpus:0.1;mem:64")]).await;
    fw.wait_state("ns", TaskState::Finished).await;
    let stdout = cluster.task_stdout(0, "ns");
    let value = |key: &str| -> String {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key} in {stdout:?}"))
            .to_string()
    };
    let pid: u32 = value("pid").parse().unwrap();
    let processes: u32 = value("processes").parse().unwrap();
    eprintln!("inside the namespace: shell pid {pid}, {processes} processes");
    assert!(pid < 100, "the shell has host pid {pid}");
    assert!(processes < 10, "the task sees {processes} processes");
    assert_eq!(value("sandbox"), "/mnt/mesos/sandbox");
    assert!(stdout.lines().any(|l| l == "mounted"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_disk_quota_is_enforced() {
    if !privileged() {
        return;
    }
    let cluster = Cluster::one_agent(
        AGENT_RESOURCES,
        &[
            "--isolation",
            "disk/du",
            "--enforce_container_disk_quota",
            "--container_disk_watch_interval",
            "1secs",
        ],
    )
    .await;
    let mut fw = Framework::subscribe(&cluster.master, "disk").await;
    let command = "dd if=/dev/zero of=big bs=1M count=8 && sleep 60";
    launch(&mut fw, &[("writer", command, "cpus:0.1;mem:64;disk:2")]).await;
    let status = fw.wait_terminal("writer", Duration::from_secs(30)).await;
    assert_eq!(status.state, TaskState::Failed, "{status:?}");
    assert_eq!(
        status.reason,
        Some(Reason::ContainerLimitationDisk),
        "{status:?}"
    );
    let message = status.message.unwrap_or_default();
    assert!(message.contains("exceeds quota"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_run_as_their_user() {
    if !privileged() {
        return;
    }
    let cluster = Cluster::one_agent(AGENT_RESOURCES, &[]).await;
    let mut fw = Framework::subscribe(&cluster.master, "users").await;
    let offer = fw.next_offers().await.remove(0);
    let mut as_nobody = command_task("nobody", &offer, "id -u", "cpus:0.1;mem:64");
    as_nobody.command.as_mut().unwrap().user = Some("nobody".into());
    let mut as_nobody_else = command_task("ghost", &offer, "id -u", "cpus:0.1;mem:64");
    as_nobody_else.command.as_mut().unwrap().user = Some("no-such-user-x".into());
    fw.scheduler
        .launch(offer.id.clone(), vec![as_nobody, as_nobody_else], None)
        .await
        .expect("launch");
    fw.wait_state("nobody", TaskState::Finished).await;
    assert_eq!(cluster.task_stdout(0, "nobody").trim(), "65534");
    let status = fw.wait_terminal("ghost", Duration::from_secs(30)).await;
    assert_eq!(status.state, TaskState::Failed, "{status:?}");
    let message = status.message.unwrap_or_default();
    assert!(
        message.contains("user 'no-such-user-x' does not exist"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posix_isolation_reports_usage_in_statistics_and_get_containers() {
    if !privileged() {
        return;
    }
    let cluster =
        Cluster::one_agent(AGENT_RESOURCES, &["--isolation", "posix/cpu,posix/mem"]).await;
    let mut fw = Framework::subscribe(&cluster.master, "posix").await;
    let spin = "while :; do :; done";
    launch(&mut fw, &[("spin", spin, "cpus:0.5;mem:64")]).await;
    fw.wait_state("spin", TaskState::Running).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stats = statistics(&cluster).await;
    let (_, spin) = stats
        .iter()
        .find(|(id, _)| id == "spin")
        .expect("statistics");
    eprintln!("posix usage of a spinning task: {spin}");
    assert!(cpu_seconds(&stats, "spin") > 0.5, "{spin}");
    assert!(spin["mem_rss_bytes"].as_u64().unwrap() > 0, "{spin}");
    assert_eq!(spin["cpus_limit"], 0.5);

    // The same through the agent's operator API.
    let url = format!("http://{}/api/v1", cluster.agents[0]);
    let call = serde_json::json!({"type": "GET_CONTAINERS"}).to_string();
    let response = cluster
        .http
        .post(&url, call.into_bytes(), &[])
        .await
        .expect("GET_CONTAINERS");
    let answer: Value = serde_json::from_slice(&response.body).expect("JSON");
    assert_eq!(answer["type"], "GET_CONTAINERS", "{answer}");
    let containers = answer["get_containers"]["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1, "{answer}");
    assert_eq!(containers[0]["executor_id"]["value"], "spin");
    let statistics = &containers[0]["resource_statistics"];
    assert!(
        statistics["cpus_user_time_secs"].as_f64().unwrap() > 0.5,
        "{answer}"
    );
    assert_eq!(statistics["mem_limit_bytes"], 64 * 1048576);

    fw.scheduler.kill("spin".into(), None).await.expect("kill");
    fw.wait_state("spin", TaskState::Killed).await;
}
