//! Process tests: real `mantle master` and `mantle agent` processes on free loopback
//! ports, driven through the v1 scheduler API.

mod common;

use common::framework::{command_task, Framework};
use common::{connections_to, Cluster};
use mantle_api::scheduler::Event;
use mantle_api::*;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

const AGENT: &str = "cpus:4;mem:2048;disk:1000;ports:[31000-31100]";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn factorial_runs_end_to_end() {
    let cluster = Cluster::start(2, AGENT, &[]).await;
    let bin = Cluster::bin_dir();
    let scheduler = bin.join("factorial-scheduler");
    assert!(
        scheduler.exists(),
        "build the example first: cargo build --workspace --bins"
    );
    let output = tokio::process::Command::new(&scheduler)
        .args(["--master", &cluster.master, "--json", "--timeout", "90"])
        .arg("--executor")
        .arg(bin.join("factorial-executor"))
        .output()
        .await
        .expect("run factorial-scheduler");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "factorial failed: {}\nstdout:\n{stdout}\nstderr:\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
        cluster.logs()
    );
    let results: Vec<serde_json::Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &serde_json::Value| v.get("n").is_some())
        .collect();
    let numbers: BTreeSet<u64> = results.iter().filter_map(|r| r["n"].as_u64()).collect();
    assert_eq!(numbers, BTreeSet::from([5, 7, 10, 30, 70]), "{stdout}");
    let seventy = results.iter().find(|r| r["n"] == 70).unwrap();
    let digits = seventy["factorial"].as_str().unwrap();
    assert_eq!(digits.len(), 101);
    assert!(digits.starts_with(
        "11978571669969891796072783721689098736458938142546425857555362864628009582789845319680"
    ));
    // Every task finished, and the framework was torn down.
    let state = cluster
        .wait_until("the framework to complete", |s| {
            s["completed_frameworks"]
                .as_array()
                .is_some_and(|f| !f.is_empty())
        })
        .await;
    let tasks = state["completed_frameworks"][0]["completed_tasks"]
        .as_array()
        .unwrap();
    assert_eq!(tasks.len(), 5);
    assert!(
        tasks.iter().all(|t| t["state"] == "TASK_FINISHED"),
        "{tasks:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_task_ends_killed_and_failed_command_reports_its_status() {
    let cluster = Cluster::start(1, AGENT, &[]).await;
    let mut framework = Framework::subscribe(&cluster.master, "kill-and-fail").await;
    let offer = framework.next_offers().await.remove(0);
    let tasks = vec![
        command_task("sleeper", &offer, "sleep 60", "cpus:0.5;mem:32"),
        command_task("exit-3", &offer, "echo failing; exit 3", "cpus:0.5;mem:32"),
        command_task("ok", &offer, "echo hello", "cpus:0.5;mem:32"),
    ];
    framework
        .scheduler
        .launch(offer.id.clone(), tasks, None)
        .await
        .unwrap();

    let failed = framework.wait_state("exit-3", TaskState::Failed).await;
    assert!(
        failed
            .message
            .as_deref()
            .unwrap_or("")
            .contains("exited with status 3"),
        "{failed:?}"
    );
    assert_eq!(failed.source, Some(Source::Executor));
    framework.wait_state("ok", TaskState::Finished).await;

    framework.wait_state("sleeper", TaskState::Running).await;
    framework
        .scheduler
        .kill(TaskId::new("sleeper"), Some(offer.agent_id.clone()))
        .await
        .unwrap();
    let killed = framework.wait_state("sleeper", TaskState::Killed).await;
    assert!(killed.uuid.is_some());

    // The sandbox of the finished task holds its output, in the Mesos layout.
    let state = cluster.state().await;
    let agent_id = state["slaves"][0]["id"].as_str().unwrap().to_string();
    let stdout = cluster
        .dir
        .path()
        .join("agent-0/slaves")
        .join(&agent_id)
        .join("frameworks")
        .join(framework.id.as_str())
        .join("executors/ok/runs/latest/stdout");
    let text =
        std::fs::read_to_string(&stdout).unwrap_or_else(|e| panic!("{}: {e}", stdout.display()));
    assert!(text.contains("hello"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declined_agent_is_not_reoffered_within_refuse_seconds_but_goes_to_another_framework() {
    let cluster = Cluster::start(2, AGENT, &["--allocation_interval", "100ms"]).await;
    let mut first = Framework::subscribe(&cluster.master, "decliner").await;
    let mut seen: Vec<Offer> = Vec::new();
    while seen.len() < 2 {
        seen.extend(first.next_offers().await);
    }
    let declined = seen[0].agent_id.clone();
    let others: Vec<OfferId> = seen[1..].iter().map(|o| o.id.clone()).collect();
    first
        .scheduler
        .decline(
            vec![seen[0].id.clone()],
            Some(Filters {
                refuse_seconds: 30.0,
            }),
        )
        .await
        .unwrap();
    // The other agent comes back quickly, so the first framework keeps getting offers.
    first
        .scheduler
        .decline(
            others,
            Some(Filters {
                refuse_seconds: 0.1,
            }),
        )
        .await
        .unwrap();

    // The second framework declines everything it gets with a short filter, and notes
    // whether it was offered the agent the first one declined.
    let mut second = Framework::subscribe(&cluster.master, "other").await;
    let (saw_tx, mut saw_rx) = tokio::sync::watch::channel(false);
    let declined_by_first = declined.clone();
    let second_task = tokio::spawn(async move {
        while let Some(event) = second.events.next().await {
            if let mantle_sdk::scheduler::SchedulerEvent::Event(Event::Offers(o)) = event {
                if o.offers.iter().any(|o| o.agent_id == declined_by_first) {
                    let _ = saw_tx.send(true);
                }
                let ids = o.offers.iter().map(|o| o.id.clone()).collect();
                let _ = second
                    .scheduler
                    .decline(
                        ids,
                        Some(Filters {
                            refuse_seconds: 0.1,
                        }),
                    )
                    .await;
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), saw_rx.wait_for(|saw| *saw))
        .await
        .expect("the second framework should be offered the declined agent")
        .unwrap();

    // For three seconds (thirty allocation cycles) the first framework is offered only
    // the other agent, which it keeps declining.
    let until = Instant::now() + Duration::from_secs(3);
    let mut other_offers = 0;
    while Instant::now() < until {
        let left = until.saturating_duration_since(Instant::now());
        let Ok(Some(event)) = tokio::time::timeout(left, first.events.next()).await else {
            break;
        };
        if let mantle_sdk::scheduler::SchedulerEvent::Event(Event::Offers(o)) = event {
            for offer in &o.offers {
                assert_ne!(
                    offer.agent_id, declined,
                    "the declined agent was offered again within refuse_seconds"
                );
                other_offers += 1;
            }
            let ids = o.offers.iter().map(|o| o.id.clone()).collect();
            first
                .scheduler
                .decline(
                    ids,
                    Some(Filters {
                        refuse_seconds: 0.1,
                    }),
                )
                .await
                .unwrap();
        }
    }
    second_task.abort();
    assert!(
        other_offers >= 1,
        "the first framework should still get the other agent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_group_runs_through_the_default_executor() {
    let cluster = Cluster::start(1, AGENT, &[]).await;
    let mut framework = Framework::subscribe(&cluster.master, "groups").await;
    let offer = framework.next_offers().await.remove(0);
    let task = |id: &str, command: &str| command_task(id, &offer, command, "cpus:0.5;mem:32");
    let group = LaunchGroup {
        executor: serde_json::from_value(serde_json::json!({
            "type": "DEFAULT",
            "executor_id": {"value": "group-executor"},
            "resources": Resources::parse_text("cpus:0.1;mem:32", "*").unwrap().to_wire(),
        }))
        .unwrap(),
        task_group: TaskGroupInfo {
            tasks: vec![task("quick", "true"), task("slow", "sleep 60")],
        },
    };
    let operation = Operation {
        kind: Some("LAUNCH_GROUP".into()),
        id: None,
        launch: None,
        launch_group: Some(group),
        reserve: None,
        unreserve: None,
        create: None,
        destroy: None,
    };
    framework
        .scheduler
        .accept(vec![offer.id.clone()], vec![operation], None)
        .await
        .unwrap();
    framework.wait_state("quick", TaskState::Finished).await;
    framework.wait_state("slow", TaskState::Running).await;
    // Killing one task of a group kills the group; here the other one already finished.
    framework
        .scheduler
        .kill(TaskId::new("slow"), Some(offer.agent_id.clone()))
        .await
        .unwrap();
    let killed = framework.wait_state("slow", TaskState::Killed).await;
    assert_eq!(
        killed.executor_id.as_ref().map(|e| e.as_str()),
        Some("group-executor")
    );
    let state = cluster
        .wait_until("the group's tasks to complete", |s| {
            s["frameworks"][0]["completed_tasks"]
                .as_array()
                .is_some_and(|t| t.len() == 2)
        })
        .await;
    assert_eq!(
        state["frameworks"][0]["completed_tasks"][0]["executor_id"],
        "group-executor"
    );
}

/// A real agent's stream and its calls (the status updates) share one connection to the
/// master: its REGISTER's, switched to the agent's socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_holds_one_connection_to_the_master() {
    let cluster = Cluster::start(1, AGENT, &[]).await;
    let port: u16 = cluster.master.rsplit(':').next().unwrap().parse().unwrap();
    let mut framework = Framework::subscribe(&cluster.master, "one-connection").await;
    let offer = framework.next_offers().await.remove(0);
    let task = command_task("hello", &offer, "echo hello", "cpus:0.5;mem:32");
    framework
        .scheduler
        .launch(offer.id.clone(), vec![task], None)
        .await
        .unwrap();
    framework.wait_state("hello", TaskState::Finished).await;
    assert_eq!(connections_to(port, Some(cluster.agent_pid(0))), 1);
}

/// The master raises its soft limit of open files to the hard limit, since each real
/// agent holds a connection to it: started with a soft limit of 256, it serves with the
/// hard one.
#[test]
fn the_master_raises_its_open_file_limit() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("master.log");
    let work_dir = dir.path().join("master");
    let mut command = std::process::Command::new(common::MANTLE);
    command
        .args(["master", "--ip", "127.0.0.1", "--port", "0", "--work_dir"])
        .arg(&work_dir)
        .env("MANTLE_LOGGING_LEVEL", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    // SAFETY: setrlimit is async-signal-safe and touches only the child's own limits.
    unsafe {
        command.pre_exec(|| {
            let mut limit = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
            limit.rlim_cur = limit.rlim_max.min(256);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
            Ok(())
        });
    }
    let mut master = command.spawn().unwrap();
    common::wait_for_address(&log, &mut master);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", master.id())).unwrap();
    let _ = master.kill();
    let _ = master.wait();
    let open_files = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .unwrap();
    let numbers: Vec<&str> = open_files.split_whitespace().skip(3).take(2).collect();
    assert_eq!(numbers[0], numbers[1], "soft and hard limits: {open_files}");
    assert_ne!(numbers[0], "256", "{open_files}");
}
