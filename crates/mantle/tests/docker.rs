//! Tasks in Docker with real `mantle` processes and the real engine (reference §7,
//! "Docker containerizer"): an agent with `--containerizers mantle,docker` runs a task
//! whose ContainerInfo has type DOCKER in the container `mesos-<container_id>`, with its
//! memory limit, its output in the sandbox, `docker stop` on a kill, and no container
//! left afterwards; a missing image fails the task; an agent without the containerizer
//! refuses such tasks; a restarted agent removes the containers its earlier run left.
//!
//! The test image `mantle-test/busybox:latest` comes from `scripts/ensure-docker.sh`,
//! which also starts the engine. Without an engine or the image these tests skip with a
//! printed reason, except under CI (`CI` set), where that is a failure.

mod common;

use common::framework::Framework;
use common::Cluster;
use mantle_api::{Offer, Reason, Resources, TaskInfo, TaskState};
use mantle_containerizer::docker::{ContainerSpec, ContainerSummary, Docker, DEFAULT_SOCKET};
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

const IMAGE: &str = "mantle-test/busybox:latest";
const AGENT_RESOURCES: &str = "cpus:4;mem:2048;disk:1000;ports:[31000-31100]";
const DOCKER_FLAGS: &[&str] = &["--containerizers", "mantle,docker"];

/// The engine with the test image, or `None` (outside CI) with the reason printed.
async fn engine() -> Option<Docker> {
    let docker = Docker::new(DEFAULT_SOCKET);
    let problem = match docker.ping().await {
        Err(err) => Some(format!(
            "no docker engine answers on {DEFAULT_SOCKET}: {err}"
        )),
        Ok(()) => match docker.image_exists(IMAGE).await {
            Ok(true) => None,
            Ok(false) => Some(format!("the test image {IMAGE} is missing")),
            Err(err) => Some(format!("cannot look for the test image {IMAGE}: {err}")),
        },
    };
    let Some(problem) = problem else {
        return Some(docker);
    };
    assert!(
        std::env::var_os("CI").is_none(),
        "{problem}; scripts/ensure-docker.sh starts the engine and builds the image"
    );
    eprintln!("skipping: {problem}; run scripts/ensure-docker.sh as root to test with docker");
    None
}

/// The work_dir of the cluster's agent, as the agent names it in the `mantle.agent`
/// label of its containers.
fn agent_work_dir(cluster: &Cluster) -> String {
    let dir = cluster.dir.path().join("agent-0");
    let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
    dir.to_string_lossy().into_owned()
}

/// The `mesos-*` containers of the cluster's agent, running or not.
async fn agent_containers(docker: &Docker, cluster: &Cluster) -> Vec<ContainerSummary> {
    let work_dir = agent_work_dir(cluster);
    docker
        .list("mesos-")
        .await
        .expect("list containers")
        .into_iter()
        .filter(|c| c.labels.get("mantle.agent") == Some(&work_dir))
        .collect()
}

/// A command task in the Docker container of `image`.
fn docker_task(id: &str, offer: &Offer, image: &str, command: &str, resources: &str) -> TaskInfo {
    serde_json::from_value(json!({
        "name": id,
        "task_id": {"value": id},
        "agent_id": offer.agent_id,
        "resources": Resources::parse_text(resources, "*").unwrap().to_wire(),
        "command": {"value": command},
        "container": {"type": "DOCKER", "docker": {"image": image, "network": "HOST"}},
    }))
    .unwrap()
}

/// Launches one Docker task on the next offer.
async fn launch(fw: &mut Framework, id: &str, image: &str, command: &str) {
    let offer = fw.next_offers().await.remove(0);
    let task = docker_task(id, &offer, image, command, "cpus:0.5;mem:64");
    fw.scheduler
        .launch(offer.id.clone(), vec![task], None)
        .await
        .expect("launch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_docker_task_runs_with_its_memory_limit_and_output() {
    let Some(docker) = engine().await else {
        return;
    };
    let cluster = Cluster::one_agent(AGENT_RESOURCES, DOCKER_FLAGS).await;
    let mut fw = Framework::subscribe(&cluster.master, "docker-hello").await;
    // cgroups v1 first (this host), then v2.
    let command = "echo hello-from-docker; \
                   cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; \
                   echo sandbox=$MESOS_SANDBOX; pwd";
    launch(&mut fw, "hello", IMAGE, command).await;
    fw.wait_state("hello", TaskState::Finished).await;
    let states: Vec<TaskState> = fw.statuses.iter().map(|s| s.state).collect();
    assert!(states.contains(&TaskState::Running), "{states:?}");
    let finished = fw.statuses.last().unwrap();
    assert_eq!(
        finished.message.as_deref(),
        Some("Container exited with status 0")
    );

    let stdout = cluster.task_stdout(0, "hello");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines.contains(&"hello-from-docker"), "{stdout}");
    assert!(lines.contains(&"67108864"), "no 64 MB limit in {stdout}");
    assert!(lines.contains(&"sandbox=/mnt/mesos/sandbox"), "{stdout}");
    assert!(lines.contains(&"/mnt/mesos/sandbox"), "{stdout}");
    // The executor removes the container before it reports the end.
    let left = agent_containers(&docker, &cluster).await;
    assert!(left.is_empty(), "containers left: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_docker_task_stops_and_removes_its_container() {
    let Some(docker) = engine().await else {
        return;
    };
    let cluster = Cluster::one_agent(AGENT_RESOURCES, DOCKER_FLAGS).await;
    let mut fw = Framework::subscribe(&cluster.master, "docker-kill").await;
    launch(&mut fw, "sleeper", IMAGE, "sleep 100").await;
    fw.wait_state("sleeper", TaskState::Running).await;
    let running = agent_containers(&docker, &cluster).await;
    assert_eq!(running.len(), 1, "{running:?}");
    assert_eq!(running[0].state, "running", "{running:?}");
    assert!(running[0].names[0].starts_with("mesos-"), "{running:?}");

    let asked = Instant::now();
    fw.scheduler
        .kill("sleeper".into(), None)
        .await
        .expect("kill");
    let status = fw.wait_terminal("sleeper", Duration::from_secs(30)).await;
    let took = asked.elapsed();
    eprintln!("killed in {took:?}: {:?}", status.message);
    assert_eq!(status.state, TaskState::Killed, "{status:?}");
    // The default grace period is 3 s, and the shell ignores SIGTERM as PID 1.
    assert!(took < Duration::from_secs(10), "the kill took {took:?}");
    let left = agent_containers(&docker, &cluster).await;
    assert!(left.is_empty(), "containers left: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_image_fails_the_task() {
    if engine().await.is_none() {
        return;
    }
    let cluster = Cluster::one_agent(AGENT_RESOURCES, DOCKER_FLAGS).await;
    let mut fw = Framework::subscribe(&cluster.master, "docker-missing").await;
    launch(&mut fw, "nope", "mantle-test/nope:1", "true").await;
    let status = fw.wait_terminal("nope", Duration::from_secs(60)).await;
    assert_eq!(status.state, TaskState::Failed, "{status:?}");
    assert_eq!(
        status.reason,
        Some(Reason::ContainerLaunchFailed),
        "{status:?}"
    );
    let message = status.message.unwrap_or_default();
    assert!(
        message.starts_with(
            "Failed to launch container: pulling image 'mantle-test/nope:1' failed: docker engine:"
        ),
        "{message}"
    );
}

/// Needs no engine: the executor refuses before it would talk to one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_without_the_docker_containerizer_fails_docker_tasks() {
    let cluster = Cluster::one_agent(AGENT_RESOURCES, &[]).await;
    let mut fw = Framework::subscribe(&cluster.master, "docker-off").await;
    launch(&mut fw, "refused", IMAGE, "true").await;
    let status = fw.wait_terminal("refused", Duration::from_secs(30)).await;
    assert_eq!(status.state, TaskState::Failed, "{status:?}");
    assert_eq!(
        status.reason,
        Some(Reason::ContainerLaunchFailed),
        "{status:?}"
    );
    let message = status.message.unwrap_or_default();
    assert!(
        message.contains("does not run the docker containerizer")
            && message.contains("--containerizers"),
        "{message}"
    );
}

/// Force-removes the named containers when dropped, even while a failed assertion
/// unwinds; Drop cannot await, so the removal runs on a runtime of its own.
struct Cleanup {
    docker: Docker,
    names: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let docker = self.docker.clone();
        let names = std::mem::take(&mut self.names);
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                for name in names {
                    let _ = docker.remove(&name, true).await;
                }
            });
        })
        .join();
    }
}

/// A running `sleep` container named `name` with the `mantle.agent` label `agent`.
async fn sleeping_container(docker: &Docker, name: &str, agent: &str) {
    let mut spec = ContainerSpec::new(IMAGE);
    spec.command = Some(vec!["sleep".into(), "100".into()]);
    spec.labels.insert("mantle.agent".into(), agent.into());
    docker.create(name, &spec).await.expect("create");
    docker.start(name).await.expect("start");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_starting_agent_removes_only_its_own_leftover_containers() {
    let Some(docker) = engine().await else {
        return;
    };
    let mut cluster = Cluster::start(0, AGENT_RESOURCES, &[]).await;
    let work_dir = cluster.dir.path().join("agent-0");
    std::fs::create_dir_all(&work_dir).unwrap();
    let work_dir = agent_work_dir(&cluster);
    let suffix = format!("{}-{}", std::process::id(), line!());
    let ours = format!("mesos-leftover-{suffix}");
    let theirs = format!("mesos-other-agent-{suffix}");
    let _cleanup = Cleanup {
        docker: docker.clone(),
        names: vec![ours.clone(), theirs.clone()],
    };
    sleeping_container(&docker, &ours, &work_dir).await;
    sleeping_container(&docker, &theirs, "/somewhere/else").await;

    // The agent removes its leftovers before it listens.
    cluster.add_agent_with(0, AGENT_RESOURCES, DOCKER_FLAGS);
    assert_eq!(docker.inspect(&ours).await.expect("inspect"), None);
    let other = docker.inspect(&theirs).await.expect("inspect");
    assert!(
        other.is_some_and(|c| c.running),
        "another agent's container was touched"
    );
    let log = std::fs::read_to_string(cluster.dir.path().join("agent-0.log")).unwrap();
    assert!(
        log.contains("removed a docker container left by an earlier run of this agent")
            && log.contains(&ours),
        "{log}"
    );
    assert!(Path::new(&work_dir).is_dir());
}
