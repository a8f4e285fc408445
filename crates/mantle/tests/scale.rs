//! The CI-sized scale run of issue 8: 1,000 simulated agents (the in-process fleet) and
//! 20 frameworks keep a real `mantle master` busy for 60 s with short tasks, some that
//! fail and some that run until killed. It checks correctness at scale, not speed:
//!
//! - every launched task reaches exactly one terminal state, and the agents' executors
//!   launched each task once and ended it once;
//! - offers never overlap: the offers outstanding at the frameworks for one agent
//!   never sum to more than the agent has (an overlap involving an offer that was later
//!   rescinded is a race of event streams, not a double offer), and `/master/state`
//!   never shows an agent with more offered and used than it has;
//! - no agent is marked unreachable or removed, and no task is lost.
//!
//! `MANTLE_SCALE_SECONDS` shortens or lengthens the busy phase for runs by hand.

mod common;

use common::checks::metrics;
use common::framework::command_task;
use common::Cluster;
use mantle_agent::simulated::{plan, start_many, AgentSpec, FleetConfig};
use mantle_api::scheduler::Event;
use mantle_api::*;
use mantle_sdk::http::ClientError;
use mantle_sdk::scheduler::{Scheduler, SchedulerEvent};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const AGENTS: usize = 1000;
const FRAMEWORKS: usize = 20;
const AGENT_RESOURCES: &str = "cpus:4;mem:4096;disk:10000;ports:[31000-31099]";
const TASK_RESOURCES: &str = "cpus:0.5;mem:128";
/// Calls a framework has in flight at most (each holds a connection while it runs).
const CALLS_IN_FLIGHT: usize = 16;
/// Tasks a framework has launched and not seen end, at most: the run checks
/// correctness under steady load, not how fast a debug build can go.
const ACTIVE_PER_FRAMEWORK: usize = 100;
/// How long the frameworks have, after the busy phase, for their last tasks to end.
const DRAIN: Duration = Duration::from_secs(90);

/// The offers each agent has outstanding at some framework, as the frameworks see them.
struct Ledger {
    total: Resources,
    outstanding: HashMap<AgentId, Vec<(OfferId, Resources)>>,
    /// Offers seen together with more than the agent has, each with the offers it
    /// overlapped.
    overlaps: Vec<Vec<OfferId>>,
    rescinded: HashSet<OfferId>,
}

impl Ledger {
    fn arrived(&mut self, offer: &Offer) {
        let resources = Resources::from_wire("offer", &offer.resources).expect("offer resources");
        let held = self.outstanding.entry(offer.agent_id.clone()).or_default();
        let mut sum = resources.clone();
        for (_, other) in held.iter() {
            sum.add(other);
        }
        if !self.total.contains(&sum) {
            let mut ids: Vec<OfferId> = held.iter().map(|(id, _)| id.clone()).collect();
            ids.push(offer.id.clone());
            self.overlaps.push(ids);
        }
        held.push((offer.id.clone(), resources));
    }

    /// The offer is used or declined (called before the call goes out, so a framework
    /// never holds an offer the master already took back).
    fn gone(&mut self, offer: &Offer) {
        if let Some(held) = self.outstanding.get_mut(&offer.agent_id) {
            held.retain(|(id, _)| id != &offer.id);
        }
    }

    fn rescind(&mut self, id: &OfferId) {
        self.rescinded.insert(id.clone());
        for held in self.outstanding.values_mut() {
            held.retain(|(offer, _)| offer != id);
        }
    }

    /// Overlaps none of whose offers was rescinded.
    fn real_overlaps(&self) -> Vec<&Vec<OfferId>> {
        self.overlaps
            .iter()
            .filter(|ids| !ids.iter().any(|id| self.rescinded.contains(id)))
            .collect()
    }
}

/// What one framework saw.
#[derive(Default)]
struct Report {
    launched: HashSet<String>,
    /// Every terminal state reported per task (a retried update repeats its state).
    terminal: HashMap<String, Vec<TaskState>>,
    /// The last state reported per task.
    last: HashMap<String, TaskState>,
    /// Updates in states that say the master or an agent lost track of a task.
    lost: Vec<TaskStatus>,
}

/// How task `n` of a framework runs: mostly short sleeps, some failures, some that run
/// until killed at the end of the busy phase.
fn task(framework: usize, n: usize, offer: &Offer) -> TaskInfo {
    let id = format!("fw{framework}-t{n}");
    let (duration, exit_code) = match (n * 7 + framework) % 20 {
        0 => ("infinity", None),
        1 | 2 => ("0.3", Some(1)),
        k => (["0.2", "0.5", "1", "2"][k % 4], None),
    };
    let mut task = command_task(&id, offer, "true", TASK_RESOURCES);
    task.labels = Some(Box::new(plan::labels(Some(duration), exit_code)));
    task
}

fn is_endless(task: &TaskInfo) -> bool {
    let labels = task.labels.as_ref().map_or(&[][..], |l| &l.labels[..]);
    labels
        .iter()
        .any(|l| l.key == plan::DURATION_LABEL && l.value.as_deref() == Some("infinity"))
}

async fn run_framework(
    master: String,
    index: usize,
    ledger: Arc<Mutex<Ledger>>,
    busy_until: Instant,
) -> Report {
    let info: FrameworkInfo = serde_json::from_value(serde_json::json!({
        "user": "root",
        "name": format!("scale-{index}"),
    }))
    .unwrap();
    let (scheduler, mut events) = Scheduler::subscribe(&master, info)
        .await
        .expect("subscribe");
    let task_resources = Resources::parse_text(TASK_RESOURCES, "*").unwrap();
    let mut report = Report::default();
    let mut calls: tokio::task::JoinSet<Result<(), ClientError>> = tokio::task::JoinSet::new();
    let mut stopped = false;
    // Tasks that run until killed, killed at the end of the busy phase.
    let mut endless: HashSet<String> = HashSet::new();
    let deadline = busy_until + DRAIN;
    loop {
        if !stopped && Instant::now() >= busy_until {
            stopped = true;
            // Every launch is in before the kills, so that none overtakes its launch.
            while let Some(call) = calls.join_next().await {
                call.unwrap()
                    .unwrap_or_else(|e| panic!("framework {index}: a call failed: {e}"));
            }
            let to_kill: Vec<TaskId> = report
                .launched
                .iter()
                .filter(|t| endless.contains(*t) && !report.terminal.contains_key(*t))
                .map(|t| TaskId::new(t.as_str()))
                .collect();
            let caller = scheduler.clone();
            calls.spawn(async move {
                caller.suppress(Vec::new()).await?;
                for task in to_kill {
                    caller.kill(task, None).await?;
                }
                Ok(())
            });
        }
        if stopped && report.terminal.len() == report.launched.len() {
            break;
        }
        let now = Instant::now();
        if now >= deadline {
            let open: Vec<_> = report
                .launched
                .iter()
                .filter(|t| !report.terminal.contains_key(*t))
                .take(10)
                .map(|t| (t, report.last.get(t)))
                .collect();
            panic!(
                "framework {index}: {} of {} tasks did not end within {DRAIN:?} of the busy phase; some, with their last state: {open:?}",
                report.launched.len() - report.terminal.len(),
                report.launched.len()
            );
        }
        let wait = if stopped { deadline } else { busy_until }.saturating_duration_since(now);
        let event = match tokio::time::timeout(wait, events.next()).await {
            Err(_) => continue,
            Ok(None) => panic!("framework {index}: the event stream ended"),
            Ok(Some(SchedulerEvent::Event(event))) => event,
            Ok(Some(_)) => continue,
        };
        match event {
            Event::Offers(offers) => {
                for offer in offers.offers {
                    let mut ledger = ledger.lock().unwrap();
                    ledger.arrived(&offer);
                    let mut available = Resources::from_wire("offer", &offer.resources).unwrap();
                    let mut batch = Vec::new();
                    // At most three tasks an offer, so that every framework gets turns.
                    let active = report.launched.len() - report.terminal.len();
                    while !stopped
                        && batch.len() < 3
                        && active + batch.len() < ACTIVE_PER_FRAMEWORK
                        && available.contains(&task_resources)
                    {
                        available.subtract(&task_resources);
                        let task = task(index, report.launched.len(), &offer);
                        if is_endless(&task) {
                            endless.insert(task.task_id.value.to_string());
                        }
                        report.launched.insert(task.task_id.value.to_string());
                        batch.push(task);
                    }
                    ledger.gone(&offer);
                    drop(ledger);
                    let caller = scheduler.clone();
                    calls.spawn(async move {
                        if batch.is_empty() {
                            let refuse_seconds = if stopped { 3600.0 } else { 5.0 };
                            let filters = Some(Filters { refuse_seconds });
                            caller.decline(vec![offer.id], filters).await
                        } else {
                            caller.launch(offer.id, batch, None).await
                        }
                    });
                }
            }
            Event::Rescind(rescind) => ledger.lock().unwrap().rescind(&rescind.offer_id),
            Event::Update(update) => {
                let status = update.status;
                if status.uuid.is_some() {
                    let caller = scheduler.clone();
                    let ack = status.clone();
                    calls.spawn(async move { caller.acknowledge(&ack).await });
                }
                if matches!(
                    status.state,
                    TaskState::Lost
                        | TaskState::Unreachable
                        | TaskState::Dropped
                        | TaskState::Gone
                        | TaskState::GoneByOperator
                        | TaskState::Unknown
                        | TaskState::Error
                ) {
                    report.lost.push(status.clone());
                }
                report
                    .last
                    .insert(status.task_id.value.to_string(), status.state);
                if status.state.is_terminal() {
                    report
                        .terminal
                        .entry(status.task_id.value.to_string())
                        .or_default()
                        .push(status.state);
                }
            }
            _ => {}
        }
        while calls.len() >= CALLS_IN_FLIGHT {
            if let Some(call) = calls.join_next().await {
                call.unwrap()
                    .unwrap_or_else(|e| panic!("framework {index}: a call failed: {e}"));
            }
        }
    }
    while let Some(call) = calls.join_next().await {
        call.unwrap()
            .unwrap_or_else(|e| panic!("framework {index}: a call failed: {e}"));
    }
    report
}

/// Agents in `/master/state` whose offered and used resources exceed what they have.
fn overcommitted(state: &Value) -> Vec<String> {
    let mut found = Vec::new();
    for slave in state["slaves"].as_array().expect("slaves") {
        for kind in ["cpus", "mem"] {
            let total = slave["resources"][kind].as_f64().unwrap_or(0.0);
            let used = slave["used_resources"][kind].as_f64().unwrap_or(0.0);
            let offered = slave["offered_resources"][kind].as_f64().unwrap_or(0.0);
            if used + offered > total + 1e-6 {
                found.push(format!(
                    "{} {kind}: used {used} + offered {offered} > {total}",
                    slave["id"]
                ));
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_agents_and_twenty_frameworks_for_a_minute() {
    let busy: u64 = std::env::var("MANTLE_SCALE_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let cluster = Cluster::start(0, AGENT_RESOURCES, &[]).await;
    let specs = AgentSpec::uniform(AGENTS, AGENT_RESOURCES, "rack:r1").unwrap();
    let fleet = start_many(FleetConfig::new(cluster.master.clone()), specs);
    fleet
        .wait_registered(AGENTS, Duration::from_secs(120))
        .await
        .unwrap();

    let ledger = Arc::new(Mutex::new(Ledger {
        total: Resources::parse_text(AGENT_RESOURCES, "*").unwrap(),
        outstanding: HashMap::new(),
        overlaps: Vec::new(),
        rescinded: HashSet::new(),
    }));
    let busy_until = Instant::now() + Duration::from_secs(busy);
    let frameworks: Vec<_> = (0..FRAMEWORKS)
        .map(|i| {
            tokio::spawn(run_framework(
                cluster.master.clone(),
                i,
                ledger.clone(),
                busy_until,
            ))
        })
        .collect();

    // The master's own view, every few seconds while the frameworks work.
    let mut master_overcommits = Vec::new();
    let mut samples = 0;
    while Instant::now() < busy_until {
        tokio::time::sleep(Duration::from_secs(3)).await;
        master_overcommits.extend(overcommitted(&cluster.state().await));
        samples += 1;
    }
    let mut reports = Vec::new();
    for framework in frameworks {
        reports.push(framework.await.expect("framework task"));
    }

    let launched: usize = reports.iter().map(|r| r.launched.len()).sum();
    eprintln!("scale: {launched} tasks launched by {FRAMEWORKS} frameworks on {AGENTS} agents in {busy} s; {samples} state samples");
    assert!(
        launched >= 1000,
        "only {launched} tasks launched: the frameworks were starved"
    );
    let mut ended = HashMap::new();
    for (i, report) in reports.iter().enumerate() {
        assert!(report.lost.is_empty(), "framework {i}: {:#?}", report.lost);
        for task in &report.launched {
            let states = report
                .terminal
                .get(task)
                .unwrap_or_else(|| panic!("{task} never ended"));
            assert!(
                states.iter().all(|s| *s == states[0]),
                "{task} ended in more than one state: {states:?}"
            );
            *ended.entry(states[0]).or_insert(0u64) += 1;
        }
    }
    let count = |state| ended.get(&state).copied().unwrap_or(0);
    assert!(
        count(TaskState::Finished) > 0
            && count(TaskState::Failed) > 0
            && count(TaskState::Killed) > 0,
        "{ended:?}"
    );
    assert_eq!(ended.values().sum::<u64>(), launched as u64, "{ended:?}");

    // The executors' side: each task launched once and ended once, as reported.
    let counters = fleet.counters();
    assert_eq!(counters.tasks_launched, launched as u64, "{counters:?}");
    assert_eq!(
        counters.tasks_finished,
        count(TaskState::Finished),
        "{counters:?}"
    );
    assert_eq!(
        counters.tasks_failed,
        count(TaskState::Failed),
        "{counters:?}"
    );
    assert_eq!(
        counters.tasks_killed,
        count(TaskState::Killed),
        "{counters:?}"
    );

    {
        let ledger = ledger.lock().unwrap();
        let overlaps = ledger.real_overlaps();
        assert!(overlaps.is_empty(), "offers overlapped: {overlaps:?}");
    }
    assert!(
        master_overcommits.is_empty(),
        "the master offered more than agents have: {master_overcommits:?}"
    );

    // Nobody was wrongly marked unreachable: every agent stayed registered and active.
    let metrics = metrics(&cluster).await;
    for (name, expected) in [
        ("master/slaves_active", AGENTS),
        ("master/slaves_connected", AGENTS),
        ("master/slaves_unreachable", 0),
        ("master/slave_unreachable_scheduled", 0),
        ("master/slave_removals", 0),
        ("master/slave_registrations", AGENTS),
        ("master/slave_reregistrations", 0),
    ] {
        assert_eq!(metrics[name], expected as f64, "{name}");
    }
    assert_eq!(counters.registrations, AGENTS as u64, "{counters:?}");
    fleet.shutdown().await;
}
