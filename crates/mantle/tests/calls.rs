//! The scheduler calls that steer offers and executors, end to end: SUPPRESS and REVIVE,
//! MESSAGE in both directions, and SHUTDOWN of an executor with its FAILURE event.

mod common;

use common::framework::Framework;
use common::Cluster;
use mantle_api::scheduler::Event;
use mantle_api::*;
use std::time::Duration;

const AGENT: &str = "cpus:2;mem:1024";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suppress_stops_offers_and_revive_brings_them_back() {
    let cluster = Cluster::start(1, AGENT, &["--allocation_interval", "100ms"]).await;
    let mut framework = Framework::subscribe(&cluster.master, "suppressor").await;
    let offer = framework.next_offers().await.remove(0);
    framework.scheduler.suppress(vec![]).await.unwrap();
    // Declined with no filter: only the suppression keeps the agent from coming back.
    framework
        .scheduler
        .decline(
            vec![offer.id],
            Some(Filters {
                refuse_seconds: 0.0,
            }),
        )
        .await
        .unwrap();
    let quiet = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            if let Some(mantle_sdk::scheduler::SchedulerEvent::Event(Event::Offers(_))) =
                framework.events.next().await
            {
                return;
            }
        }
    })
    .await;
    assert!(quiet.is_err(), "a suppressed framework got an offer");
    framework.scheduler.revive(vec![]).await.unwrap();
    let again = framework.next_offers().await;
    assert_eq!(again.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_flow_both_ways_and_shutdown_reports_the_executor() {
    let cluster = Cluster::start(1, AGENT, &[]).await;
    let executor_path = Cluster::bin_dir().join("factorial-executor");
    assert!(
        executor_path.exists(),
        "build the example first: cargo build --workspace --bins"
    );
    let mut framework = Framework::subscribe(&cluster.master, "messenger").await;
    let offer = framework.next_offers().await.remove(0);
    let path = executor_path.to_str().unwrap();
    let task: TaskInfo = serde_json::from_value(serde_json::json!({
        "name": "five", "task_id": {"value": "five"}, "agent_id": offer.agent_id,
        "resources": Resources::parse_text("cpus:0.5;mem:32", "*").unwrap().to_wire(),
        "executor": {"executor_id": {"value": "echo"},
                     "command": {"shell": false, "value": path, "arguments": [path]}},
        "data": "NQ==",
    }))
    .unwrap();
    framework
        .scheduler
        .launch(offer.id.clone(), vec![task], None)
        .await
        .unwrap();
    let finished = framework.wait_state("five", TaskState::Finished).await;
    assert_eq!(
        finished.data.as_deref(),
        Some("MTIw"),
        "5! = 120 comes back in the status data"
    );

    let executor = ExecutorId::new("echo");
    framework
        .scheduler
        .message(offer.agent_id.clone(), executor.clone(), b"ping")
        .await
        .unwrap();
    let echoed = framework
        .next("the echoed message", Duration::from_secs(30), |e| match e {
            Event::Message(m) => Some(m.clone()),
            _ => None,
        })
        .await;
    assert_eq!(echoed.data, "cGluZw==");
    assert_eq!(echoed.executor_id, executor);
    assert_eq!(echoed.agent_id, offer.agent_id);

    framework
        .scheduler
        .shutdown_executor(executor.clone(), offer.agent_id.clone())
        .await
        .unwrap();
    let failure = framework
        .next(
            "the executor's FAILURE event",
            Duration::from_secs(30),
            |e| match e {
                Event::Failure(f) if f.executor_id.is_some() => Some(f.clone()),
                _ => None,
            },
        )
        .await;
    assert_eq!(failure.executor_id, Some(executor));
    assert_eq!(failure.agent_id, Some(offer.agent_id));
    assert!(
        failure.status.is_some(),
        "FAILURE for an executor carries its wait status"
    );
}
