//! A cluster with a running, a finished and a failed task of one framework, for the
//! tests of the operator API and the legacy endpoints (included by those test files
//! with `#[path]`, next to `common`).

// Each test file that includes this uses part of it.
#![allow(dead_code)]

pub use crate::common::checks::check_keys;
use crate::common::framework::{command_task, Framework};
use crate::common::Cluster;
use mantle_api::*;
use std::time::Duration;

/// A master, one agent, and framework `name` with task `runner` running, `done`
/// finished and `broken` failed (both acknowledged, so completed).
pub async fn mixed_tasks(name: &str) -> (Cluster, Framework) {
    let cluster = Cluster::start(1, "cpus:4;mem:1024;ports:[31000-31009]", &[]).await;
    let mut framework = Framework::subscribe(&cluster.master, name).await;
    let offer = framework.next_offers().await.remove(0);
    let tasks = vec![
        command_task("runner", &offer, "sleep 120", "cpus:0.5;mem:32"),
        command_task("done", &offer, "true", "cpus:0.5;mem:32"),
        command_task("broken", &offer, "exit 3", "cpus:0.5;mem:32"),
    ];
    framework
        .scheduler
        .launch(offer.id, tasks, None)
        .await
        .unwrap();
    framework.wait_state("runner", TaskState::Running).await;
    let done = framework
        .wait_terminal("done", Duration::from_secs(30))
        .await;
    assert_eq!(done.state, TaskState::Finished);
    let broken = framework
        .wait_terminal("broken", Duration::from_secs(30))
        .await;
    assert_eq!(broken.state, TaskState::Failed);
    cluster
        .wait_until("two completed tasks", |s| {
            s["frameworks"][0]["completed_tasks"]
                .as_array()
                .is_some_and(|t| t.len() == 2)
        })
        .await;
    (cluster, framework)
}

/// Launches command task `id` (`sleep 120`, half a cpu) on the framework's next offer
/// and waits until it runs (acknowledging its updates).
pub async fn launch_sleeper(framework: &mut Framework, id: &str) {
    let offer = framework.next_offers().await.remove(0);
    let task = command_task(id, &offer, "sleep 120", "cpus:0.5;mem:32");
    framework
        .scheduler
        .launch(offer.id, vec![task], None)
        .await
        .unwrap();
    framework.wait_state(id, TaskState::Running).await;
}
