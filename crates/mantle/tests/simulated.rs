//! Process tests of simulated agents: `mantle agent --containerizers=simulated` next to
//! a real agent under one real master, and the in-process fleet
//! (`mantle_agent::simulated::start_many`) of hundreds of agents against a real master.

mod common;

use common::framework::{command_task, framework_info, Framework};
use common::{connection_ends, Cluster};
use mantle_agent::simulated::{plan, start_many, AgentSpec, FleetConfig};
use mantle_api::scheduler::Event;
use mantle_api::*;
use mantle_sdk::scheduler::SubscribeOptions;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

const AGENT: &str = "cpus:4;mem:2048;disk:1000;ports:[31000-31100]";
const SIMULATED: [&str; 2] = [
    "--containerizers=simulated",
    "--simulated_task_duration=1secs",
];

/// The states `fw` saw for `task`, in order.
fn states(fw: &Framework, task: &str) -> Vec<TaskState> {
    fw.statuses
        .iter()
        .filter(|s| s.task_id.as_str() == task)
        .map(|s| s.state)
        .collect()
}

fn status_of<'a>(fw: &'a Framework, task: &str, state: TaskState) -> &'a TaskStatus {
    fw.statuses
        .iter()
        .find(|s| s.task_id.as_str() == task && s.state == state)
        .unwrap_or_else(|| panic!("no {state} for {task}: {:#?}", fw.statuses))
}

/// Offers until there is one from each of `agents` agents, by agent id.
async fn offers_from_every_agent(fw: &mut Framework, agents: usize) -> HashMap<AgentId, Offer> {
    let mut by_agent = HashMap::new();
    while by_agent.len() < agents {
        for offer in fw.next_offers().await {
            by_agent.insert(offer.agent_id.clone(), offer);
        }
    }
    by_agent
}

/// `task`, told how long to run on a simulated agent.
fn with_duration(mut task: TaskInfo, duration: &str) -> TaskInfo {
    task.labels = Some(Box::new(plan::labels(Some(duration), None)));
    task
}

fn operation(kind: &str) -> Operation {
    Operation {
        kind: Some(kind.into()),
        id: None,
        launch: None,
        launch_group: None,
        reserve: None,
        unreserve: None,
        create: None,
        destroy: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_agents_run_tasks_as_timers_next_to_a_real_agent() {
    let mut cluster = Cluster::start(1, AGENT, &[]).await;
    cluster.add_agent_with(1, AGENT, &SIMULATED);
    cluster.add_agent_with(2, AGENT, &SIMULATED);
    let state = cluster
        .wait_until("three agents", |s| {
            s["slaves"].as_array().map_or(0, Vec::len) == 3
        })
        .await;
    // Which agent id is which process: the pid names the agent's port.
    let index_of: HashMap<AgentId, usize> = state["slaves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|slave| {
            let pid = slave["pid"].as_str().unwrap();
            let index = cluster
                .agents
                .iter()
                .position(|address| pid.ends_with(&format!("@{address}")))
                .unwrap_or_else(|| panic!("no agent for pid {pid}"));
            (AgentId::new(slave["id"].as_str().unwrap()), index)
        })
        .collect();
    let agent = |index: usize| {
        index_of
            .iter()
            .find(|(_, i)| **i == index)
            .map(|(id, _)| id.clone())
            .unwrap()
    };

    let mut info = framework_info("simulated");
    info.capabilities = vec![Capability {
        kind: "TASK_KILLING_STATE".into(),
    }];
    let mut fw = Framework::subscribe_with(&cluster.master, info).await;
    let offers = offers_from_every_agent(&mut fw, 3).await;
    let small = "cpus:0.25;mem:32";

    // The real agent runs a real process.
    let real = &offers[&agent(0)];
    let task = command_task("real", real, "true", small);
    fw.scheduler
        .launch(real.id.clone(), vec![task], None)
        .await
        .unwrap();

    // Simulated agent 1: a sleep, a failure after the default duration, a task that
    // runs until it is killed, and one that runs long enough to be reconciled.
    let first = &offers[&agent(1)];
    let tasks = vec![
        command_task("sleeps", first, "sleep 2", small),
        command_task("fails", first, "exit 3", small),
        command_task("forever", first, "sleep infinity", small),
        with_duration(
            command_task("labelled", first, "echo no sleep here", small),
            "600secs",
        ),
    ];
    fw.scheduler
        .launch(first.id.clone(), tasks, None)
        .await
        .unwrap();

    // Simulated agent 2: a task group on the default executor, and a custom executor.
    let second = &offers[&agent(2)];
    let mut group = operation("LAUNCH_GROUP");
    group.launch_group = Some(LaunchGroup {
        executor: serde_json::from_value(serde_json::json!({
            "type": "DEFAULT",
            "executor_id": {"value": "group-executor"},
            "resources": Resources::parse_text(small, "*").unwrap().to_wire(),
        }))
        .unwrap(),
        task_group: TaskGroupInfo {
            tasks: vec![
                command_task("group-quick", second, "true", small),
                command_task("group-slow", second, "sleep infinity", small),
            ],
        },
    });
    let mut custom = command_task("custom", second, "unused", small);
    custom.command = None;
    custom.executor = Some(
        serde_json::from_value(serde_json::json!({
            "executor_id": {"value": "custom-executor"},
            "command": {"value": "/nonexistent/my-executor"},
            "resources": Resources::parse_text(small, "*").unwrap().to_wire(),
        }))
        .unwrap(),
    );
    let custom = with_duration(custom, "0.5");
    let mut launch = operation("LAUNCH");
    launch.launch = Some(Launch {
        task_infos: vec![custom],
    });
    fw.scheduler
        .accept(vec![second.id.clone()], vec![group, launch], None)
        .await
        .unwrap();

    fw.wait_state("real", TaskState::Finished).await;
    let finished = fw.wait_state("sleeps", TaskState::Finished).await;
    let failed = fw.wait_state("fails", TaskState::Failed).await;
    fw.wait_state("forever", TaskState::Running).await;
    fw.wait_state("labelled", TaskState::Running).await;
    fw.wait_state("group-quick", TaskState::Finished).await;
    fw.wait_state("group-slow", TaskState::Running).await;
    fw.wait_state("custom", TaskState::Finished).await;

    use TaskState::*;
    for task in ["sleeps", "group-quick", "custom"] {
        assert_eq!(states(&fw, task), [Starting, Running, Finished], "{task}");
    }
    assert_eq!(states(&fw, "fails"), [Starting, Running, Failed]);
    assert_eq!(finished.source, Some(Source::Executor));
    assert_eq!(finished.agent_id, Some(agent(1)));
    assert_eq!(
        finished.message.as_deref(),
        Some("Command exited with status 0")
    );
    assert_eq!(
        failed.message.as_deref(),
        Some("Command exited with status 3")
    );
    // `sleep 2` ran for its two seconds; `exit 3` for the default of one.
    let ran = |task: &str, end: TaskState| {
        status_of(&fw, task, end).timestamp.unwrap()
            - status_of(&fw, task, Running).timestamp.unwrap()
    };
    assert!(
        ran("sleeps", Finished) >= 1.99,
        "sleep 2 ran {}",
        ran("sleeps", Finished)
    );
    assert!(
        ran("fails", Failed) >= 0.99,
        "exit 3 ran {}",
        ran("fails", Failed)
    );
    assert_eq!(
        status_of(&fw, "custom", Finished).executor_id,
        Some(ExecutorId::new("custom-executor"))
    );

    // Reconciliation: the master answers for a task still running on a simulated agent.
    fw.statuses.clear();
    fw.scheduler
        .reconcile(vec![(TaskId::new("labelled"), Some(agent(1)))])
        .await
        .unwrap();
    let answer = fw
        .next(
            "the reconciliation answer",
            Duration::from_secs(30),
            |e| match e {
                Event::Update(u) if u.status.task_id.as_str() == "labelled" => {
                    Some(u.status.clone())
                }
                _ => None,
            },
        )
        .await;
    assert_eq!(answer.state, Running);
    assert_eq!(answer.reason, Some(Reason::Reconciliation));
    assert_eq!(answer.source, Some(Source::Master));

    // `/master/state` shows the simulated tasks where they run.
    let state = cluster
        .wait_until("the running simulated tasks", |s| {
            let tasks = s["frameworks"][0]["tasks"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            tasks
                .iter()
                .filter(|t| t["state"] == "TASK_RUNNING")
                .count()
                == 3
        })
        .await;
    let running: BTreeMap<String, (String, String)> = state["frameworks"][0]["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let id = t["id"].as_str().unwrap().to_string();
            let slave = t["slave_id"].as_str().unwrap().to_string();
            (id, (slave, t["state"].as_str().unwrap().to_string()))
        })
        .collect();
    let running_on = |index: usize| (agent(index).value.to_string(), "TASK_RUNNING".to_string());
    assert_eq!(running["forever"], running_on(1));
    assert_eq!(running["labelled"], running_on(1));
    assert_eq!(running["group-slow"], running_on(2));

    // Kills: KILLING (the framework takes it) then KILLED after the short grace.
    for task in ["forever", "group-slow"] {
        fw.scheduler.kill(TaskId::new(task), None).await.unwrap();
        let killed = fw.wait_state(task, Killed).await;
        assert_eq!(killed.source, Some(Source::Executor));
        assert!(
            fw.statuses
                .iter()
                .any(|s| s.task_id.as_str() == task && s.state == Killing),
            "{task} went through TASK_KILLING"
        );
    }
    fw.scheduler
        .kill(TaskId::new("labelled"), None)
        .await
        .unwrap();
    fw.wait_state("labelled", Killed).await;

    // The simulated agents made no sandboxes; the real one did.
    assert!(cluster.agent_dir(0).join("slaves").exists());
    for index in [1, 2] {
        let slaves = cluster.agent_dir(index).join("slaves");
        assert!(!slaves.exists(), "{} exists", slaves.display());
    }
    // The custom executor stays until its framework goes, as a real one would; the
    // command and default executors are gone once their tasks ended.
    let agent_state: Value = serde_json::from_slice(
        &cluster
            .http
            .get(&format!("http://{}/state", cluster.agents[2]))
            .await
            .unwrap()
            .body,
    )
    .unwrap();
    let executors: Vec<&str> = agent_state["frameworks"][0]["executors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(executors, ["custom-executor"]);
    assert_eq!(agent_state["flags"]["containerizers"], "simulated");
    assert_eq!(agent_state["flags"]["simulated_task_duration"], "1secs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_of_500_agents_runs_every_task_to_one_terminal_state() {
    const AGENTS: usize = 500;
    const TASKS_PER_AGENT: usize = 2;
    let cluster = Cluster::start(0, AGENT, &[]).await;
    let specs = AgentSpec::uniform(AGENTS, "cpus:2;mem:1024;disk:1000", "rack:r1").unwrap();
    let mut config = FleetConfig::new(cluster.master.clone());
    config.task_duration = Duration::from_millis(300);
    let fleet = start_many(config, specs);
    fleet
        .wait_registered(AGENTS, Duration::from_secs(60))
        .await
        .unwrap();
    let state = cluster
        .wait_until("every simulated agent", |s| {
            s["slaves"].as_array().map_or(0, Vec::len) == AGENTS
        })
        .await;
    let slave = &state["slaves"][0];
    assert!(slave["hostname"].as_str().unwrap().starts_with("sim-"));
    assert_eq!(slave["attributes"]["rack"], "r1");
    assert_eq!(slave["resources"]["cpus"], 2.0);

    // It checkpoints, so that its tasks outlive a dropped agent connection (the master
    // gives up those of other frameworks when their agent disconnects).
    let mut info = framework_info("fleet");
    info.checkpoint = true;
    let mut fw = Framework::subscribe_with(&cluster.master, info).await;
    let offers = offers_from_every_agent(&mut fw, AGENTS).await;
    // Agent 0's first task runs until it is killed; the others sleep, fail or finish
    // after the fleet's default.
    let long_agent = fleet.agent_id(0).expect("agent 0 registered");
    let mut launched = Vec::new();
    for (agent_id, offer) in &offers {
        let tasks: Vec<TaskInfo> = (0..TASKS_PER_AGENT)
            .map(|i| {
                let id = format!("{}-{i}", agent_id.value);
                let command = match (agent_id == &long_agent, i, launched.len() % 3) {
                    (true, 0, _) => "sleep infinity",
                    (_, _, 0) => "sleep 0.5",
                    (_, _, 1) => "exit 1",
                    _ => "echo done",
                };
                launched.push(id.clone());
                command_task(&id, offer, command, "cpus:1;mem:256")
            })
            .collect();
        let filters = Some(Filters {
            refuse_seconds: 3600.0,
        });
        fw.scheduler
            .launch(offer.id.clone(), tasks, filters)
            .await
            .unwrap();
    }
    let long_task = format!("{}-0", long_agent.value);
    fw.wait_state(&long_task, TaskState::Running).await;

    // A dropped link: the agent re-registers with what it runs and the task lives on.
    let registrations = fleet.counters().registrations;
    fleet.drop_link(0);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while fleet.counters().registrations == registrations || !fleet.is_connected(0) {
        assert!(
            std::time::Instant::now() < deadline,
            "agent 0 did not re-register"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(fleet.agent_id(0), Some(long_agent.clone()));
    fw.scheduler
        .kill(TaskId::new(long_task.as_str()), None)
        .await
        .unwrap();

    for task in &launched {
        fw.wait_terminal(task, Duration::from_secs(60)).await;
    }
    // Every task reached one terminal state (a retried update repeats the same one).
    let mut terminal: HashMap<&str, Vec<TaskState>> = HashMap::new();
    for status in fw.statuses.iter().filter(|s| s.state.is_terminal()) {
        terminal
            .entry(status.task_id.as_str())
            .or_default()
            .push(status.state);
    }
    assert_eq!(terminal.len(), launched.len());
    for (task, states) in &terminal {
        assert!(
            states.iter().all(|s| *s == states[0]),
            "{task} ended in more than one state: {states:?}"
        );
    }
    let count = |state: TaskState| terminal.values().filter(|s| s[0] == state).count();
    let long_end: Vec<&TaskStatus> = fw
        .statuses
        .iter()
        .filter(|s| s.task_id.as_str() == long_task)
        .collect();
    assert_eq!(
        terminal[long_task.as_str()][0],
        TaskState::Killed,
        "{long_end:#?}"
    );
    assert_eq!(count(TaskState::Killed), 1);
    let failed = count(TaskState::Failed);
    assert!(failed > 0 && failed < launched.len() / 2, "{failed} failed");
    assert_eq!(count(TaskState::Finished) + failed + 1, launched.len());
    // The executors' own count: each task launched once and ended once.
    let counters = fleet.counters();
    let killed = fw
        .statuses
        .iter()
        .find(|s| s.state == TaskState::Killed)
        .unwrap();
    assert_eq!(killed.source, Some(Source::Executor), "{killed:?}");
    assert_eq!(counters.tasks_launched, launched.len() as u64);
    assert_eq!(counters.tasks_finished, count(TaskState::Finished) as u64);
    assert_eq!(counters.tasks_failed, failed as u64);
    assert_eq!(counters.tasks_killed, 1);
    assert_eq!(counters.registered, AGENTS as u64);
    let state = cluster.state().await;
    let active = state["slaves"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["active"] == true)
        .count();
    assert_eq!(active, AGENTS);
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_of_300_agents_shares_one_http2_connection() {
    const AGENTS: usize = 300;
    let cluster = Cluster::start(0, AGENT, &[]).await;
    let port: u16 = cluster.master.rsplit(':').next().unwrap().parse().unwrap();
    let before = connection_ends(port, None);
    let specs = AgentSpec::uniform(AGENTS, "cpus:2;mem:1024;disk:1000", "rack:r2").unwrap();
    let mut config = FleetConfig::new(cluster.master.clone());
    // One connection for all: more streams than hyper's default limit of 200.
    config.agents_per_connection = AGENTS;
    config.task_duration = Duration::from_millis(200);
    let fleet = start_many(config, specs);
    fleet
        .wait_registered(AGENTS, Duration::from_secs(60))
        .await
        .unwrap();
    let fleet_connections = connection_ends(port, None).difference(&before).count();
    assert!(
        (1..=2).contains(&fleet_connections),
        "{AGENTS} agents hold {fleet_connections} connections to the master"
    );

    // The master answers HTTP/2 on the same port as HTTP/1.1, and shows every agent.
    let http2 = mantle_sdk::HttpClient::http2(Duration::from_secs(10));
    let state: Value =
        serde_json::from_slice(&http2.get(&cluster.url("/master/state")).await.unwrap().body)
            .unwrap();
    let slaves = state["slaves"].as_array().unwrap();
    assert_eq!(slaves.len(), AGENTS);
    assert!(slaves.iter().all(|s| s["active"] == true
        && s["attributes"]["rack"] == "r2"
        && s["hostname"].as_str().unwrap().starts_with("sim-")));

    // The framework speaks HTTP/2 too: its stream and calls share one connection.
    let options = SubscribeOptions {
        http2: true,
        ..SubscribeOptions::default()
    };
    let info = framework_info("http2-fleet");
    let mut fw = Framework::subscribe_with_options(&cluster.master, info, options).await;
    let offers = offers_from_every_agent(&mut fw, AGENTS).await;
    let mut launched = Vec::new();
    for (agent_id, offer) in &offers {
        let id = format!("{}-task", agent_id.value);
        let task = command_task(&id, offer, "echo done", "cpus:1;mem:128");
        fw.scheduler
            .launch(offer.id.clone(), vec![task], None)
            .await
            .unwrap();
        launched.push(id);
    }
    for task in &launched {
        let status = fw.wait_terminal(task, Duration::from_secs(60)).await;
        assert_eq!(status.state, TaskState::Finished, "{status:?}");
    }
    assert_eq!(fleet.counters().tasks_finished, AGENTS as u64);
    // The agents' status updates went over their connection too: beside it there are
    // only this test's HTTP/2 client and the framework's connection (an HTTP/1.1 fleet
    // would hold one per agent and a pool for the updates, an HTTP/1.1 framework one
    // for its stream and one per call in flight).
    let now = connection_ends(port, None).difference(&before).count();
    assert!(
        now <= fleet_connections + 2,
        "{now} connections to the master"
    );
    let state = cluster
        .wait_until("every task finished in /master/state", |s| {
            let framework = &s["frameworks"][0];
            let finished = |list: &str| {
                framework[list].as_array().map_or(0, |tasks| {
                    tasks
                        .iter()
                        .filter(|t| t["state"] == "TASK_FINISHED")
                        .count()
                })
            };
            finished("tasks") + finished("completed_tasks") == AGENTS
        })
        .await;
    assert_eq!(state["slaves"].as_array().unwrap().len(), AGENTS);
    fleet.shutdown().await;
}

/// How much memory a simulated agent of a fleet costs, and that ten thousand fit in
/// one process: a measurement, run by hand (`--ignored`) with `MANTLE_FLEET_AGENTS`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn fleet_memory() {
    let agents: usize = std::env::var("MANTLE_FLEET_AGENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let cluster = Cluster::start(0, AGENT, &[]).await;
    let before = rss_kb();
    let specs = AgentSpec::uniform(agents, "cpus:8;mem:16384;disk:100000", "rack:r1").unwrap();
    let started = std::time::Instant::now();
    let fleet = start_many(FleetConfig::new(cluster.master.clone()), specs);
    // The agents exist (cores, loops, links) but few are connected yet.
    let unconnected = rss_kb();
    fleet
        .wait_registered(agents, Duration::from_secs(600))
        .await
        .unwrap();
    let registered_in = started.elapsed();
    // Let the pings of a full interval go by.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let after = rss_kb();
    println!(
        "{{\"agents\":{agents},\"registered_s\":{:.1},\"rss_mb\":{:.1},\"kb_per_agent\":{:.1},\"kb_per_agent_before_connecting\":{:.1},\"registered\":{}}}",
        registered_in.as_secs_f64(),
        after as f64 / 1024.0,
        (after - before) as f64 / agents as f64,
        (unconnected - before) as f64 / agents as f64,
        fleet.counters().registered
    );
    assert_eq!(fleet.counters().registered, agents as u64);
    fleet.shutdown().await;
}

fn rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}
