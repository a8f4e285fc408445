//! A LAUNCH that asks for a Docker container (reference §7, "Docker containerizer"):
//! the container runs instead of a process, `docker stop` starts a kill, and the end is
//! worded as `mesos-docker-executor` words it.

use super::*;
use crate::container_info::DockerContext;
use std::path::PathBuf;

fn docker_config() -> Config {
    Config {
        docker: Some(DockerContext {
            container_name: "mesos-c1".into(),
            agent_label: Some("/w".into()),
            sandbox: PathBuf::from("/w/sandbox"),
        }),
        ..config()
    }
}

fn check_docker(steps: Vec<(f64, Input)>, expected: &str) {
    check_with(docker_config(), steps, expected)
}

fn docker_launch(docker: Value) -> Input {
    launch_with(json!({"container": {"type": "DOCKER", "docker": docker}}))
}

fn busybox() -> Input {
    docker_launch(json!({"image": "busybox"}))
}

fn container_exited(id: &str, status: i64, oom_killed: bool) -> Input {
    Input::ContainerExited {
        task_id: TaskId::new(id),
        status,
        oom_killed,
    }
}

#[test]
fn runs_to_completion() {
    check_docker(
        vec![
            (0.0, subscribed(false)),
            (0.0, busybox()),
            (2.0, spawned("t1")),
            (5.0, container_exited("t1", 0, false)),
        ],
        r#"
        0 subscribed killing=false: nothing
        0 launch t1: send t1 TASK_STARTING; run t1 in mesos-c1 (busybox)
        2 spawned t1: send t1 TASK_RUNNING
        5 container_exited t1 0: send t1 TASK_FINISHED "Container exited with status 0" | wake 65
        "#,
    );
    check_docker(
        vec![
            (0.0, busybox()),
            (0.0, spawned("t1")),
            (1.0, container_exited("t1", 3, false)),
        ],
        r#"
        0 launch t1: send t1 TASK_STARTING; run t1 in mesos-c1 (busybox)
        0 spawned t1: send t1 TASK_RUNNING
        1 container_exited t1 3: send t1 TASK_FAILED "Container exited with status 3" | wake 61
        "#,
    );
    // The engine saw the OOM killer: the memory limitation, as for a Mesos container.
    check_docker(
        vec![
            (0.0, busybox()),
            (0.0, spawned("t1")),
            (1.0, container_exited("t1", 137, true)),
        ],
        r#"
        0 launch t1: send t1 TASK_STARTING; run t1 in mesos-c1 (busybox)
        0 spawned t1: send t1 TASK_RUNNING
        1 container_exited t1 137 oom: send t1 TASK_FAILED "Container exited with status 137 (out of memory)" REASON_CONTAINER_LIMITATION_MEMORY | wake 61
        "#,
    );
    // The end of a container of a task the executor does not run changes nothing.
    check_docker(
        vec![
            (0.0, busybox()),
            (0.0, spawned("t1")),
            (1.0, container_exited("t2", 0, false)),
        ],
        r#"
        0 launch t1: send t1 TASK_STARTING; run t1 in mesos-c1 (busybox)
        0 spawned t1: send t1 TASK_RUNNING
        1 container_exited t2 0: nothing
        "#,
    );
}

#[test]
fn launch_failures() {
    // A pull (or create, or start) that fails.
    check_docker(
        vec![
            (0.0, docker_launch(json!({"image": "nope:1"}))),
            (
                3.0,
                spawn_failed("t1", "pulling image 'nope:1' failed: not found"),
            ),
        ],
        r#"
        0 launch t1: send t1 TASK_STARTING; run t1 in mesos-c1 (nope:1)
        3 spawn_failed t1 pulling image 'nope:1' failed: not found: send t1 TASK_FAILED "Failed to launch container: pulling image 'nope:1' failed: not found" REASON_CONTAINER_LAUNCH_FAILED | wake 63
        "#,
    );
    // A ContainerInfo that cannot run fails before TASK_STARTING, naming the field.
    check_docker(
        vec![
            (
                0.0,
                docker_launch(json!({"image": "busybox", "network": "MAGIC"})),
            ),
            (1.0, kill(None)),
        ],
        r#"
        0 launch t1: send t1 TASK_FAILED "Failed to launch container: container.docker.network: unknown network \"MAGIC\" (expected HOST, BRIDGE, NONE or USER)" REASON_CONTAINER_LAUNCH_FAILED | wake 60
        1 kill t1: nothing | wake 60
        "#,
    );
    check_docker(
        vec![(
            0.0,
            docker_launch(json!({"image": "busybox",
                "port_mappings": [{"host_port": 31000, "container_port": 80}]})),
        )],
        r#"
        0 launch t1: send t1 TASK_FAILED "Failed to launch container: container.docker.port_mappings: not allowed with network host, only with bridge or a user network" REASON_CONTAINER_LAUNCH_FAILED | wake 60
        "#,
    );
    // An agent without the docker containerizer.
    check(
        vec![(0.0, busybox())],
        r#"
        0 launch t1: send t1 TASK_FAILED "The agent does not run the docker containerizer (its --containerizers flag does not include docker)" REASON_CONTAINER_LAUNCH_FAILED | wake 60
        "#,
    );
    // Other container types still run as processes.
    check_docker(
        vec![(
            0.0,
            launch_with(json!({"container": {"type": "MESOS", "mesos": {}}})),
        )],
        r#"
        0 launch t1: send t1 TASK_STARTING; spawn t1
        "#,
    );
}

#[test]
fn kills_stop_the_container() {
    // `docker stop` with the grace period; SIGKILL (to the container) if it outlives it.
    check_docker(
        vec![
            (0.0, subscribed(true)),
            (
                0.0,
                launch_with(json!({
                    "container": {"type": "DOCKER", "docker": {"image": "busybox"}},
                    "kill_policy": {"grace_period": {"nanoseconds": 5_000_000_000i64}}})),
            ),
            (0.0, spawned("t1")),
            (1.0, kill(None)),
            (2.0, kill(Some(1.0))),
            (3.0, Input::Tick),
            (3.5, container_exited("t1", 137, false)),
        ],
        r#"
        0 subscribed killing=true: nothing
        0 launch t1: send t1 TASK_STARTING; run t1 in mesos-c1 (busybox)
        0 spawned t1: send t1 TASK_RUNNING
        1 kill t1: send t1 TASK_KILLING; stop t1 grace=5 | wake 6
        2 kill t1 grace=1: nothing | wake 3
        3 tick: SIGKILL t1
        3.5 container_exited t1 137: send t1 TASK_KILLED "Container exited with status 137" | wake 63.5
        "#,
    );
    // A kill while the image is pulled waits for the container to start.
    check_docker(
        vec![
            (0.0, busybox()),
            (1.0, kill(Some(2.0))),
            (2.0, spawned("t1")),
            (2.5, container_exited("t1", 143, false)),
        ],
        r#"
        0 launch t1: send t1 TASK_STARTING; run t1 in mesos-c1 (busybox)
        1 kill t1 grace=2: nothing
        2 spawned t1: send t1 TASK_RUNNING; stop t1 grace=1 | wake 3
        2.5 container_exited t1 143: send t1 TASK_KILLED "Container exited with status 143" | wake 62.5
        "#,
    );
    // SHUTDOWN stops it with the shutdown grace period; an OOM during a kill is a kill.
    check_docker(
        vec![
            (0.0, busybox()),
            (0.0, spawned("t1")),
            (1.0, Input::Shutdown),
            (2.0, container_exited("t1", 137, true)),
        ],
        r#"
        0 launch t1: send t1 TASK_STARTING; run t1 in mesos-c1 (busybox)
        0 spawned t1: send t1 TASK_RUNNING
        1 shutdown: stop t1 grace=3 | wake 4
        2 container_exited t1 137 oom: send t1 TASK_KILLED "Container exited with status 137 (out of memory)" | wake 62
        "#,
    );
    // max_completion_time: stopped, and a failure.
    check_docker(
        vec![
            (
                0.0,
                launch_with(json!({
                    "container": {"type": "DOCKER", "docker": {"image": "busybox"}},
                    "max_completion_time": {"nanoseconds": 10_000_000_000i64}})),
            ),
            (0.0, spawned("t1")),
            (10.0, Input::Tick),
            (11.0, container_exited("t1", 143, false)),
        ],
        r#"
        0 launch t1: send t1 TASK_STARTING; run t1 in mesos-c1 (busybox)
        0 spawned t1: send t1 TASK_RUNNING | wake 10
        10 tick: stop t1 grace=3 | wake 13
        11 container_exited t1 143: send t1 TASK_FAILED "Container exited with status 143" REASON_MAX_COMPLETION_TIME_REACHED | wake 71
        "#,
    );
    // Losing the agent kills the container outright.
    check_docker(
        vec![
            (0.0, busybox()),
            (0.0, spawned("t1")),
            (1.0, Input::Disconnected),
        ],
        r#"
        0 launch t1: send t1 TASK_STARTING; run t1 in mesos-c1 (busybox)
        0 spawned t1: send t1 TASK_RUNNING
        1 disconnected: SIGKILL t1; exit
        "#,
    );
}

#[test]
fn task_groups_may_not_ask_for_docker() {
    let docker = json!({"container": {"type": "DOCKER", "docker": {"image": "busybox"}}});
    check_docker(
        vec![(0.0, launch_group(&[("a", json!({})), ("b", docker)]))],
        r#"
        0 launch_group a,b: send a TASK_KILLED "Task not started: task b of its group asks for a Docker container" REASON_TASK_GROUP_INVALID; send b TASK_FAILED "Docker ContainerInfo is not supported on the task" REASON_TASK_GROUP_INVALID | wake 60
        "#,
    );
}
