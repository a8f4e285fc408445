//! The CLI verbs against a real cluster: the `mantle` binary is run as a person or a
//! script would run it, and its tables, JSON documents, exit statuses and effects on
//! `/master/state` are checked.

mod common;

use common::checks::launch;
use common::framework::Framework;
use common::{Cluster, MANTLE};
use serde_json::Value;
use std::time::{Duration, Instant};

const AGENT: &str = "cpus:2;mem:1024;disk:2048";

/// What one run of `mantle` printed and how it ended.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        assert_eq!(self.code, 0, "stderr: {}", self.stderr);
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not one JSON document ({e}): {}", self.stdout))
    }

    /// The table's rows after the header, split into cells.
    fn rows(&self) -> Vec<Vec<String>> {
        assert_eq!(self.code, 0, "stderr: {}", self.stderr);
        self.stdout
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().map(String::from).collect())
            .collect()
    }

    fn header(&self) -> Vec<String> {
        let first = self.stdout.lines().next().unwrap_or_default();
        first.split_whitespace().map(String::from).collect()
    }
}

/// Runs `mantle` with `args` (with `MANTLE_MASTER` unset, so only `--master` counts).
async fn mantle(args: &[&str]) -> Run {
    let output = tokio::process::Command::new(MANTLE)
        .args(args)
        .env_remove("MANTLE_MASTER")
        .env_remove("MANTLE_LOGGING_LEVEL")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("run mantle");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `mantle <verb...> --master <cluster's master> <rest...>`
async fn on(cluster: &Cluster, verb: &[&str], rest: &[&str]) -> Run {
    let mut args: Vec<&str> = verb.to_vec();
    args.extend(["--master", &cluster.master]);
    args.extend_from_slice(rest);
    mantle(&args).await
}

/// The state of task `id` as `/master/state` lists it, if it does.
fn task_state(state: &Value, id: &str) -> Option<String> {
    let frameworks = state["frameworks"]
        .as_array()
        .into_iter()
        .chain(state["completed_frameworks"].as_array())
        .flatten();
    frameworks
        .flat_map(|f| {
            ["tasks", "unreachable_tasks", "completed_tasks"]
                .into_iter()
                .flat_map(move |field| f[field].as_array().cloned().unwrap_or_default())
        })
        .find(|t| t["id"] == id)
        .map(|t| t["state"].as_str().unwrap_or_default().to_string())
}

/// The `id` fields of a JSON array of objects.
fn ids(array: &Value) -> Vec<String> {
    let objects = array.as_array().into_iter().flatten();
    objects
        .map(|o| o["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Whether `/master/state` lists framework `id` as completed and no framework as active.
fn completed_alone(state: &Value, id: &str) -> bool {
    let completed = ids(&state["completed_frameworks"]);
    ids(&state["frameworks"]).is_empty() && completed.iter().any(|c| c == id)
}

/// The short id the tables show for a Mesos id `<uuid>-<suffix>`.
fn short(id: &str) -> String {
    format!("{}-{}", &id[..8], &id[37..])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_frameworks_and_tasks_as_tables_and_json() {
    let cluster = Cluster::start(2, AGENT, &["--allocation_interval", "100ms"]).await;
    let mut fw = Framework::subscribe(&cluster.master, "lister").await;
    launch(&mut fw, "sleeper", 2, "sleep 600").await;
    let done = launch(&mut fw, "quick", 1, "true").await;
    fw.wait_terminal(&done[0], Duration::from_secs(30)).await;
    let state = cluster
        .wait_until("quick-0 finished", |s| {
            task_state(s, "quick-0").as_deref() == Some("TASK_FINISHED")
        })
        .await;

    // Agents.
    let table = on(&cluster, &["agents"], &[]).await;
    assert_eq!(
        table.header(),
        ["ID", "HOSTNAME", "ADDRESS", "STATE", "TASKS", "CPUS", "MEM", "DISK", "AGE"]
    );
    let rows = table.rows();
    assert_eq!(rows.len(), 2, "{}", table.stdout);
    for agent in state["slaves"].as_array().unwrap() {
        let id = agent["id"].as_str().unwrap();
        let row = rows
            .iter()
            .find(|r| r[0] == short(id))
            .unwrap_or_else(|| panic!("no row for agent {id}:\n{}", table.stdout));
        let address = agent["pid"].as_str().unwrap().split('@').nth(1).unwrap();
        assert!(cluster.agents.contains(&address.to_string()));
        assert_eq!(row[2], address);
        assert_eq!(row[3], "active");
        // cpus used/total, then "mem used/total" in binary units.
        assert!(row[5].ends_with("/2"), "{row:?}");
        assert!(row[7].ends_with("MiB/1.0") && row[8] == "GiB", "{row:?}");
    }
    let tasks_on_agents: u32 = rows.iter().map(|r| r[4].parse::<u32>().unwrap()).sum();
    assert_eq!(tasks_on_agents, 2, "{}", table.stdout);
    let json = on(&cluster, &["agents"], &["--json"]).await.json();
    assert_eq!(ids(&json), ids(&state["slaves"]));
    assert_eq!(json[0]["resources"]["cpus"], 2.0);

    // Frameworks.
    let table = on(&cluster, &["frameworks"], &[]).await;
    assert_eq!(
        table.header(),
        ["ID", "NAME", "USER", "ROLE", "STATE", "TASKS", "CPUS", "MEM", "DISK", "AGE"]
    );
    let rows = table.rows();
    assert_eq!(rows.len(), 1, "{}", table.stdout);
    assert_eq!(
        rows[0][..7],
        [
            short(&fw.id.value),
            "lister".into(),
            "root".into(),
            "*".into(),
            "active".into(),
            "2".into(),
            "0.2".into()
        ]
    );
    let json = on(&cluster, &["frameworks"], &["--json"]).await.json();
    assert_eq!(json.as_array().unwrap().len(), 1);
    assert_eq!(json[0]["id"], fw.id.as_str());
    assert_eq!(json[0]["name"], "lister");
    assert_eq!(json[0]["tasks"].as_array().unwrap().len(), 2);

    // Tasks: all of them, then filtered by state.
    let table = on(&cluster, &["tasks"], &[]).await;
    assert_eq!(
        table.header(),
        [
            "ID",
            "NAME",
            "STATE",
            "FRAMEWORK",
            "AGENT",
            "CPUS",
            "MEM",
            "AGE"
        ]
    );
    let mut listed: Vec<(String, String)> = table
        .rows()
        .into_iter()
        .map(|r| (r[0].clone(), r[2].clone()))
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        [
            ("quick-0".to_string(), "FINISHED".to_string()),
            ("sleeper-0".into(), "RUNNING".into()),
            ("sleeper-1".into(), "RUNNING".into())
        ]
    );
    let running = on(&cluster, &["tasks"], &["--state", "running"]).await;
    let rows = running.rows();
    assert_eq!(rows.len(), 2, "{}", running.stdout);
    assert!(rows
        .iter()
        .all(|r| r[3] == short(&fw.id.value) && r[5] == "0.1"));
    let json = on(
        &cluster,
        &["tasks"],
        &["--state", "TASK_FINISHED", "--json"],
    )
    .await
    .json();
    assert_eq!(json.as_array().unwrap().len(), 1, "{json}");
    assert_eq!(json[0]["id"], "quick-0");
    assert_eq!(json[0]["state"], "TASK_FINISHED");
    assert_eq!(json[0]["framework_id"], fw.id.as_str());
    let json = on(
        &cluster,
        &["tasks"],
        &["--framework", &short(&fw.id.value), "--json"],
    )
    .await
    .json();
    assert_eq!(json.as_array().unwrap().len(), 3);

    let bad = on(&cluster, &["tasks"], &["--state", "sleepy"]).await;
    assert_ne!(bad.code, 0);
    assert!(
        bad.stderr.contains("--state") && bad.stderr.contains("sleepy"),
        "{}",
        bad.stderr
    );
    assert!(bad.stdout.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execute_runs_every_instance_and_reports() {
    let cluster = Cluster::start(2, AGENT, &["--allocation_interval", "100ms"]).await;
    let run = on(
        &cluster,
        &["execute"],
        &[
            "--name",
            "job",
            "--command",
            "echo done",
            "--instances",
            "5",
            "--resources",
            "cpus:0.5;mem:64",
            "--json",
        ],
    )
    .await;
    let report = run.json();
    assert_eq!(report["total"], 5);
    assert_eq!(report["finished"], 5);
    assert_eq!(report["failed"], 0);
    let ids: Vec<&str> = report["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["task_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["job-0", "job-1", "job-2", "job-3", "job-4"]);
    assert!(report["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["state"] == "TASK_FINISHED"
            && t["agent_id"].as_str().is_some_and(|a| !a.is_empty())));
    // Not a terminal: one line per state change on stderr.
    assert!(
        run.stderr.contains("task job-3 is FINISHED"),
        "{}",
        run.stderr
    );
    // The framework is gone once it reported: torn down, its tasks completed.
    let framework_id = report["framework_id"].as_str().unwrap().to_string();
    let state = cluster
        .wait_until("the execute framework completed", |s| {
            completed_alone(s, &framework_id)
        })
        .await;
    assert_eq!(
        task_state(&state, "job-4").as_deref(),
        Some("TASK_FINISHED")
    );

    // A failing command: nonzero exit, the table names the failure.
    let run = on(
        &cluster,
        &["execute"],
        &[
            "--name",
            "broken",
            "--command",
            "exit 3",
            "--resources",
            "cpus:0.5;mem:64",
        ],
    )
    .await;
    assert_eq!(run.code, 1, "stdout: {} stderr: {}", run.stdout, run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["TASK", "STATE", "AGENT", "MESSAGE"]
    );
    assert!(
        lines[1].starts_with("broken") && lines[1].contains("FAILED"),
        "{}",
        run.stdout
    );
    assert!(
        lines[1].contains('3'),
        "the exit status is in the message: {}",
        run.stdout
    );
    assert_eq!(lines[2], "1 task(s): 0 finished, 1 failed");

    // Bad resources are named before anything is registered.
    let run = on(
        &cluster,
        &["execute"],
        &["--name", "x", "--command", "true", "--resources", "cpus"],
    )
    .await;
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("--resources"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_log_reads_the_sandbox_and_follows_it() {
    let cluster = Cluster::start(1, AGENT, &["--allocation_interval", "100ms"]).await;
    let run = on(
        &cluster,
        &["execute"],
        &[
            "--name",
            "talker",
            "--command",
            "echo to-stdout; echo to-stderr >&2",
            "--resources",
            "cpus:0.5;mem:64",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{} {}", run.stdout, run.stderr);
    let log = on(&cluster, &["task", "log", "talker"], &[]).await;
    assert_eq!(log.code, 0, "{}", log.stderr);
    assert_eq!(log.stdout, cluster.task_stdout(0, "talker"));
    assert!(log.stdout.contains("to-stdout\n"), "{}", log.stdout);
    assert!(!log.stdout.contains("to-stderr"), "{}", log.stdout);
    let log = on(&cluster, &["task", "log", "talker"], &["--stderr"]).await;
    assert_eq!(log.code, 0, "{}", log.stderr);
    assert!(log.stdout.contains("to-stderr\n"), "{}", log.stdout);

    // --follow prints lines as they come and stops when the task ended.
    let mut fw = Framework::subscribe(&cluster.master, "ticker").await;
    launch(
        &mut fw,
        "ticker",
        1,
        "for i in 1 2 3 4 5; do echo tick-$i; sleep 0.4; done",
    )
    .await;
    let follow = on(&cluster, &["task", "log", "ticker-0"], &["--follow"]).await;
    assert_eq!(follow.code, 0, "{}", follow.stderr);
    let ticks: Vec<&str> = follow
        .stdout
        .lines()
        .filter(|l| l.starts_with("tick-"))
        .collect();
    assert_eq!(
        ticks,
        ["tick-1", "tick-2", "tick-3", "tick-4", "tick-5"],
        "{}",
        follow.stdout
    );
    fw.wait_terminal("ticker-0", Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_kill_and_framework_teardown_reach_the_master() {
    let cluster = Cluster::start(1, AGENT, &["--allocation_interval", "100ms"]).await;
    let mut fw = Framework::subscribe(&cluster.master, "victim").await;
    launch(&mut fw, "doomed", 3, "sleep 600").await;

    let kill = on(&cluster, &["task", "kill", "doomed-0"], &[]).await;
    assert_eq!(kill.code, 0, "{}", kill.stderr);
    assert!(kill.stdout.contains("doomed-0"), "{}", kill.stdout);
    let status = fw.wait_terminal("doomed-0", Duration::from_secs(30)).await;
    assert_eq!(status.state, mantle_api::TaskState::Killed, "{status:?}");
    cluster
        .wait_until("doomed-0 killed", |s| {
            task_state(s, "doomed-0").as_deref() == Some("TASK_KILLED")
        })
        .await;
    // An ended task cannot be killed again; the message says so.
    let again = on(&cluster, &["task", "kill", "doomed-0"], &[]).await;
    assert_ne!(again.code, 0);
    assert!(
        again.stderr.contains("doomed-0") && again.stderr.contains("TASK_KILLED"),
        "{}",
        again.stderr
    );

    // The framework goes with its other tasks; its short id is enough.
    let teardown = on(
        &cluster,
        &["framework", "teardown", &short(&fw.id.value)],
        &["--json"],
    )
    .await;
    let done = teardown.json();
    assert_eq!(done["framework_id"], fw.id.as_str());
    assert_eq!(done["tasks"], 2);
    let state = cluster
        .wait_until("the framework torn down", |s| {
            completed_alone(s, &fw.id.value)
        })
        .await;
    for task in ["doomed-1", "doomed-2"] {
        assert_eq!(
            task_state(&state, task).as_deref(),
            Some("TASK_KILLED"),
            "{task}"
        );
    }
    let again = on(&cluster, &["framework", "teardown", &fw.id.value], &[]).await;
    assert_ne!(again.code, 0);
    assert!(again.stderr.contains("already ended"), "{}", again.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_prints_one_frame_when_asked() {
    let cluster = Cluster::start(2, AGENT, &["--allocation_interval", "100ms"]).await;
    let mut fw = Framework::subscribe(&cluster.master, "busy").await;
    launch(&mut fw, "busy", 2, "sleep 600").await;

    let frame = on(&cluster, &["top"], &["--once"]).await;
    assert_eq!(frame.code, 0, "{}", frame.stderr);
    let lines: Vec<&str> = frame.stdout.lines().collect();
    assert_eq!(
        lines[0],
        format!("mantle top - master {}, version 1.11.0", cluster.master)
    );
    assert_eq!(lines[1], "agents:     2 active, 0 inactive, 0 unreachable");
    assert_eq!(lines[2], "frameworks: 1 active, 0 inactive, 0 completed");
    assert_eq!(lines[3], "tasks:      2 running");
    assert!(
        lines[5].starts_with("cpus  [") && lines[5].ends_with("] 0.2/4 (5%)"),
        "{}",
        frame.stdout
    );
    assert!(
        lines[6].starts_with("mem   [") && lines[6].ends_with("] 16 MiB/2.0 GiB (1%)"),
        "{}",
        frame.stdout
    );
    assert!(
        !frame.stdout.contains('\x1b'),
        "no escapes when stdout is not a terminal"
    );
    let framework_row = lines
        .iter()
        .find(|l| l.starts_with(&short(&fw.id.value)))
        .unwrap_or_else(|| panic!("{}", frame.stdout));
    assert_eq!(
        framework_row.split_whitespace().collect::<Vec<_>>()[1..3],
        ["busy", "2"]
    );

    let summary = on(&cluster, &["top"], &["--json"]).await.json();
    assert_eq!(summary["agents"]["active"], 2);
    assert_eq!(summary["frameworks"]["active"], 1);
    assert_eq!(summary["tasks"]["TASK_RUNNING"], 2);
    assert_eq!(summary["resources"]["cpus"]["total"], 4.0);
    assert_eq!(summary["resources"]["mem"]["used"], 16.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_name_what_is_missing_and_exit_nonzero() {
    let cluster = Cluster::start(1, AGENT, &[]).await;
    for (verb, expected) in [
        (vec!["task", "log", "ghost"], "unknown task id 'ghost'"),
        (vec!["task", "kill", "ghost"], "unknown task id 'ghost'"),
        (
            vec!["framework", "teardown", "ghost-0000"],
            "unknown framework id 'ghost-0000'",
        ),
        (
            vec!["tasks", "--framework", "nobody"],
            "unknown framework id 'nobody'",
        ),
    ] {
        let run = on(&cluster, &verb, &[]).await;
        assert_eq!(run.code, 1, "{verb:?}: {}", run.stderr);
        assert_eq!(run.stderr.trim(), format!("mantle: {expected}"), "{verb:?}");
        assert!(run.stdout.is_empty(), "{verb:?}: {}", run.stdout);
    }

    // A master that is not there: every verb says which one.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let nowhere = format!("127.0.0.1:{port}");
    for verb in [
        vec!["agents"],
        vec!["tasks"],
        vec!["top", "--once"],
        vec!["task", "kill", "t"],
        vec!["execute", "--name", "n", "--command", "true"],
    ] {
        let mut args = verb.clone();
        args.extend(["--master", &nowhere]);
        let run = mantle(&args).await;
        assert_eq!(run.code, 1, "{verb:?}: {}", run.stderr);
        let expected = format!("mantle: master {nowhere} is unreachable");
        assert!(
            run.stderr.starts_with(&expected),
            "{verb:?}: {}",
            run.stderr
        );
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    }
    let run = mantle(&["agents", "--master", "zk://"]).await;
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("--master"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_is_found_through_zookeeper_or_a_standby() {
    use mantle_zk::testing::{require_zookeeper, ZkServers};
    if !require_zookeeper("the_leader_is_found_through_zookeeper_or_a_standby") {
        return;
    }
    let zk = ZkServers::standalone().await.expect("zookeeper");
    let url = zk.url("/mantle").to_string();
    let mut cluster = Cluster::without_master(&url).await;
    let mut masters = Vec::new();
    for index in 0..2 {
        let log = cluster.dir.path().join(format!("master-{index}.log"));
        let work = cluster.dir.path().join(format!("master-{index}"));
        let args = [
            "master",
            "--ip",
            "127.0.0.1",
            "--port",
            "0",
            "--work_dir",
            work.to_str().unwrap(),
            "--zk",
            &url,
            "--zk_session_timeout",
            "2secs",
        ];
        let mut child = common::spawn(None, 0, &args, &log);
        let address = common::wait_for_address(&log, &mut child);
        masters.push((address, KillOnDrop(child)));
    }
    cluster.add_agent(0, AGENT);

    // Whichever master leads, the other redirects to it once it knows it.
    let http = mantle_sdk::HttpClient::new(Duration::from_secs(5));
    let deadline = Instant::now() + Duration::from_secs(30);
    let (leader, standby) = loop {
        let mut elected = Vec::new();
        for (address, _) in &masters {
            let metrics = http
                .get(&format!("http://{address}/metrics/snapshot"))
                .await;
            let leads = metrics
                .ok()
                .and_then(|r| serde_json::from_slice::<Value>(&r.body).ok())
                .is_some_and(|m| m["master/elected"] == 1.0);
            elected.push(leads);
        }
        let standby_redirects = match elected[..] {
            [true, false] | [false, true] => {
                let standby = &masters[usize::from(elected[0])].0;
                http.get(&format!("http://{standby}/master/state"))
                    .await
                    .err()
                    .and_then(|e| e.redirect_target())
                    .is_some()
            }
            _ => false,
        };
        if standby_redirects {
            let leader = usize::from(elected[1]);
            break (masters[leader].0.clone(), masters[1 - leader].0.clone());
        }
        assert!(
            Instant::now() < deadline,
            "no leader with a redirecting standby in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let agents = mantle(&["agents", "--json", "--master", &leader])
            .await
            .json();
        if agents.as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the agent did not register: {agents}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    for master in [&standby, &url] {
        // The one agent, as the leader lists it (compared with the leader's list of the
        // moment: an agent that registers again from its address keeps its place).
        let mut tries = 0;
        loop {
            let via = ids(&mantle(&["agents", "--json", "--master", master])
                .await
                .json());
            let direct = ids(&mantle(&["agents", "--json", "--master", &leader])
                .await
                .json());
            if via == direct && via.len() == 1 {
                break;
            }
            tries += 1;
            assert!(
                tries < 20,
                "via {master}: {via:?}, from the leader: {direct:?}"
            );
        }
        // The frame names the master that answered: the leader.
        let frame = mantle(&["top", "--once", "--master", master]).await;
        assert_eq!(frame.code, 0, "{}", frame.stderr);
        let first = frame.stdout.lines().next().unwrap_or_default();
        assert!(
            first.starts_with(&format!("mantle top - master {leader},")),
            "via {master}: {first}"
        );
    }
    let run = mantle(&[
        "execute",
        "--master",
        &url,
        "--name",
        "via-zk",
        "--command",
        "true",
        "--resources",
        "cpus:0.5;mem:32",
        "--json",
    ])
    .await;
    assert_eq!(run.json()["finished"], 1);
}

/// A master process of a test, killed when the test ends however it ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
