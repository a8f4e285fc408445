//! Unit tests of the master core: whole call sequences against the pure state machine,
//! checking the actions it emits.

use super::*;
use mantle_api::internal::{AgentCall, Register, StatusUpdate};
use mantle_api::scheduler::{Accept, CallBody, Decline, Kill, Reconcile, ReconcileTask, Subscribe};
use serde_json::json;

pub(super) fn framework_info(name: &str) -> FrameworkInfo {
    serde_json::from_value(json!({"user": "root", "name": name})).unwrap()
}

pub(super) fn master() -> Master {
    Master::new("M".into(), MasterConfig::default(), 0.0)
}

/// A REGISTER call (re-registration when `id` is set).
pub(super) fn register_call(id: Option<AgentId>, resources: &str) -> Register {
    Register {
        agent_info: AgentInfo {
            hostname: "h".into(),
            port: 5051,
            resources: Resources::parse_text(resources, "*").unwrap().to_wire(),
            attributes: vec![],
            id,
            capabilities: vec![],
        },
        pid: "slave(1)@127.0.0.1:5051".into(),
        version: MESOS_VERSION.into(),
        frameworks: vec![],
        executors: vec![],
        tasks: vec![],
    }
}

/// Registers a new agent on `stream`; agents of other streams have other pids.
pub(super) fn register(master: &mut Master, stream: &str, resources: &str) -> AgentId {
    let mut register = register_call(None, resources);
    if stream != "a1" {
        let port = 6000 + stream.bytes().map(u16::from).sum::<u16>();
        register.pid = format!("slave(1)@127.0.0.1:{port}");
    }
    master.register_agent(0.0, stream.into(), register).unwrap()
}

pub(super) fn subscribe(master: &mut Master, stream: &str, name: &str) -> FrameworkId {
    subscribe_info(master, stream, framework_info(name))
}

pub(super) fn subscribe_info(
    master: &mut Master,
    stream: &str,
    info: FrameworkInfo,
) -> FrameworkId {
    let subscribe = Subscribe {
        framework_info: info,
        suppressed_roles: vec![],
        offer_constraints: None,
    };
    master.subscribe(0.0, subscribe, stream.into()).unwrap()
}

/// The events sent on `stream`, as `TYPE` strings, draining the actions.
pub(super) fn events(master: &mut Master, stream: &str) -> Vec<Event> {
    master
        .take_actions()
        .into_iter()
        .filter_map(|a| match a {
            Action::Framework { stream: s, event } if &*s == stream => Some(event),
            _ => None,
        })
        .collect()
}

pub(super) fn offers(events: &[Event]) -> Vec<Offer> {
    events
        .iter()
        .flat_map(|e| match e {
            Event::Offers(o) => o.offers.clone(),
            _ => vec![],
        })
        .collect()
}

/// A master with one agent (`a1`, cpus:4;mem:1024) and one framework (`f` on stream
/// `s1`) holding that agent's offer.
pub(super) fn offered() -> (Master, AgentId, FrameworkId, Offer) {
    let mut m = master();
    let agent = register(&mut m, "a1", "cpus:4;mem:1024");
    let fid = subscribe(&mut m, "s1", "f");
    m.allocate(0.0);
    let offer = offers(&events(&mut m, "s1")).remove(0);
    (m, agent, fid, offer)
}

/// [`offered`], then task `t1` (cpus:1) launched from that offer.
pub(super) fn launched_t1() -> (Master, AgentId, FrameworkId) {
    let (mut m, agent, fid, offer) = offered();
    launch(
        &mut m,
        &fid,
        &offer,
        vec![command_task("t1", &agent, "cpus:1")],
    );
    (m, agent, fid)
}

pub(super) fn command_task(id: &str, agent: &AgentId, resources: &str) -> TaskInfo {
    TaskInfo {
        name: id.into(),
        task_id: TaskId::new(id),
        agent_id: agent.clone(),
        resources: Resources::parse_text(resources, "*").unwrap().to_wire(),
        executor: None,
        command: Some(CommandInfo::shell("true")),
        container: None,
        health_check: None,
        check: None,
        kill_policy: None,
        data: None,
        labels: None,
        discovery: None,
        max_completion_time: None,
        limits: None,
    }
}

pub(super) fn call(
    master: &mut Master,
    fid: &FrameworkId,
    stream: &str,
    body: CallBody,
) -> Result<CallReply, ApiError> {
    master.scheduler_call(1.0, fid, Some(stream), body)
}

pub(super) fn launch(master: &mut Master, fid: &FrameworkId, offer: &Offer, tasks: Vec<TaskInfo>) {
    let accept = Accept {
        offer_ids: vec![offer.id.clone()],
        operations: vec![Operation::launch(tasks)],
        filters: None,
    };
    call(master, fid, "s1", CallBody::Accept(accept)).unwrap();
}

pub(super) fn updates(events: &[Event]) -> Vec<(String, TaskState, Option<Reason>, bool)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Update(u) => Some((
                u.status.task_id.value.to_string(),
                u.status.state,
                u.status.reason,
                u.status.uuid.is_some(),
            )),
            _ => None,
        })
        .collect()
}

pub(super) fn agent_messages(master: &mut Master) -> Vec<ToAgent> {
    master
        .take_actions()
        .into_iter()
        .filter_map(|a| match a {
            Action::Agent { message, .. } => Some(message),
            _ => None,
        })
        .collect()
}

#[test]
fn subscribe_sends_subscribed_then_heartbeat_then_offers() {
    let mut m = master();
    register(&mut m, "a1", "cpus:4;mem:1024");
    let fid = subscribe(&mut m, "s1", "f");
    assert_eq!(fid.as_str(), "M-0000");
    m.allocate(0.0);
    let got = events(&mut m, "s1");
    assert!(
        matches!(&got[0], Event::Subscribed(s) if s.framework_id == fid && s.heartbeat_interval_seconds == Some(15.0))
    );
    assert_eq!(got[1], Event::Heartbeat);
    let offers = offers(&got);
    assert_eq!(offers.len(), 1);
    assert_eq!(offers[0].id.as_str(), "M-O0");
    assert_eq!(
        Resources::from_wire("r", &offers[0].resources)
            .unwrap()
            .to_text(),
        "cpus:4;mem:1024"
    );
    assert_eq!(
        offers[0].url.as_ref().unwrap().path.as_deref(),
        Some("/slave(1)")
    );
}

#[test]
fn launch_update_ack_lifecycle() {
    let (mut m, agent, fid, offer) = offered();
    launch(
        &mut m,
        &fid,
        &offer,
        vec![command_task("t1", &agent, "cpus:1;mem:10")],
    );
    let sent = agent_messages(&mut m);
    assert!(
        matches!(&sent[..], [ToAgent::RunTask(run)] if run.task.task_id.as_str() == "t1" && run.framework_info.id.as_ref() == Some(&fid))
    );
    // The unused part was declined with the default 5 s filter, so nothing is re-offered yet.
    m.allocate(2.0);
    assert!(offers(&events(&mut m, "s1")).is_empty());

    let mut status = TaskStatus::new(TaskId::new("t1"), TaskState::Finished);
    status.uuid = Some(new_status_uuid());
    let uuid = status.uuid.clone().unwrap();
    m.agent_call(
        2.0,
        "a1",
        AgentCall::StatusUpdate(StatusUpdate {
            framework_id: fid.clone(),
            status,
        }),
    )
    .unwrap();
    let got = events(&mut m, "s1");
    assert_eq!(
        updates(&got),
        vec![("t1".into(), TaskState::Finished, None, true)]
    );
    let ack = mantle_api::scheduler::Acknowledge {
        agent_id: agent.clone(),
        task_id: TaskId::new("t1"),
        uuid: uuid.clone(),
    };
    call(&mut m, &fid, "s1", CallBody::Acknowledge(ack)).unwrap();
    let sent = agent_messages(&mut m);
    assert!(matches!(&sent[..], [ToAgent::StatusUpdateAck(a)] if a.uuid == uuid));
    let state = m.state_json();
    assert_eq!(state["frameworks"][0]["tasks"].as_array().unwrap().len(), 0);
    assert_eq!(
        state["frameworks"][0]["completed_tasks"][0]["state"],
        "TASK_FINISHED"
    );
    // Resources came back once the task finished: the filter expired, the agent is offered whole.
    m.allocate(10.0);
    let again = offers(&events(&mut m, "s1"));
    assert_eq!(
        Resources::from_wire("r", &again[0].resources)
            .unwrap()
            .to_text(),
        "cpus:4;mem:1024"
    );
}

#[test]
fn invalid_tasks_get_task_error_without_uuid() {
    let (mut m, agent, fid, offer) = offered();
    let mut both = command_task("both", &agent, "cpus:1");
    both.executor = Some(serde_json::from_value(json!({"executor_id": {"value": "e"}})).unwrap());
    launch(
        &mut m,
        &fid,
        &offer,
        vec![
            command_task("too-big", &agent, "cpus:5"),
            command_task("bad/id", &agent, "cpus:1"),
            command_task("wrong-agent", &AgentId::new("elsewhere"), "cpus:1"),
            command_task("nothing", &agent, ""),
            both,
            command_task("ok", &agent, "cpus:1"),
            command_task("ok", &agent, "cpus:1"),
        ],
    );
    let got = updates(&events(&mut m, "s1"));
    let errors: Vec<&str> = got
        .iter()
        .map(|(id, state, reason, uuid)| {
            assert_eq!(*state, TaskState::Error);
            assert_eq!(*reason, Some(Reason::TaskInvalid));
            assert!(!uuid);
            id.as_str()
        })
        .collect();
    assert_eq!(
        errors,
        vec!["too-big", "bad/id", "wrong-agent", "nothing", "both", "ok"]
    );
}

#[test]
fn stale_offer_loses_its_tasks_and_changes_nothing() {
    let mut m = master();
    let agent = register(&mut m, "a1", "cpus:4;mem:1024");
    let fid = subscribe(&mut m, "s1", "f");
    m.allocate(0.0);
    events(&mut m, "s1");
    let before = m.state_json();
    let fake = Offer {
        id: OfferId::new("no-such-offer"),
        framework_id: fid.clone(),
        agent_id: agent.clone(),
        hostname: "h".into(),
        url: None,
        resources: vec![],
        attributes: vec![],
        executor_ids: vec![],
        unavailability: None,
        allocation_info: None,
    };
    launch(
        &mut m,
        &fid,
        &fake,
        vec![command_task("t", &agent, "cpus:1")],
    );
    expect_update(&mut m, "t", TaskState::Lost, Reason::InvalidOffers);
    assert_eq!(m.state_json()["frameworks"], before["frameworks"]);
}

#[test]
fn call_checks() {
    let mut m = master();
    let fid = subscribe(&mut m, "s1", "f");
    let unknown = FrameworkId::new("nope");
    let err = m
        .scheduler_call(0.0, &unknown, Some("s1"), CallBody::Teardown)
        .unwrap_err();
    assert_eq!(
        (
            err.status().as_u16(),
            err.message.contains("Framework cannot be found")
        ),
        (400, true)
    );
    let err = m
        .scheduler_call(
            0.0,
            &fid,
            Some("wrong"),
            CallBody::Revive(Default::default()),
        )
        .unwrap_err();
    assert_eq!(
        (
            err.status().as_u16(),
            err.message.contains("stream ID 'wrong'")
        ),
        (400, true)
    );
    let err = m
        .scheduler_call(0.0, &fid, None, CallBody::Revive(Default::default()))
        .unwrap_err();
    assert_eq!(err.status().as_u16(), 400);
    m.framework_stream_closed(0.0, "s1");
    // failover_timeout 0: removed at once, so it is unknown now.
    assert!(m.framework_ids().is_empty());
}

#[test]
fn disconnected_framework_with_failover_timeout_gets_403_then_resumes() {
    let mut m = master();
    let mut info = framework_info("f");
    info.failover_timeout = 100.0;
    let fid = m
        .subscribe(
            0.0,
            Subscribe {
                framework_info: info.clone(),
                suppressed_roles: vec![],
                offer_constraints: None,
            },
            "s1".into(),
        )
        .unwrap();
    m.framework_stream_closed(1.0, "s1");
    let err = m
        .scheduler_call(2.0, &fid, Some("s1"), CallBody::Revive(Default::default()))
        .unwrap_err();
    assert_eq!(err.status().as_u16(), 403);
    info.id = Some(fid.clone());
    let again = m
        .subscribe(
            3.0,
            Subscribe {
                framework_info: info,
                suppressed_roles: vec![],
                offer_constraints: None,
            },
            "s2".into(),
        )
        .unwrap();
    assert_eq!(again, fid);
    m.tick(200.0);
    assert!(
        m.framework_ids().contains(&fid),
        "re-subscribed, so not expired"
    );
}

#[test]
fn second_subscription_fails_over_the_first() {
    let mut m = master();
    let fid = subscribe(&mut m, "s1", "f");
    m.take_actions();
    let mut info = framework_info("f");
    info.id = Some(fid.clone());
    m.subscribe(
        1.0,
        Subscribe {
            framework_info: info,
            suppressed_roles: vec![],
            offer_constraints: None,
        },
        "s2".into(),
    )
    .unwrap();
    let actions = m.take_actions();
    assert!(
        matches!(&actions[0], Action::Framework { stream, event: Event::Error(e) } if &**stream == "s1" && e.message == "Framework failed over")
    );
    assert!(matches!(&actions[1], Action::CloseFramework { stream } if &**stream == "s1"));
}

#[test]
fn decline_filter_sends_agent_to_the_other_framework() {
    let mut m = master();
    register(&mut m, "a1", "cpus:4;mem:1024");
    let f1 = subscribe(&mut m, "s1", "f1");
    m.allocate(0.0);
    let offer = offers(&events(&mut m, "s1")).remove(0);
    let decline = Decline {
        offer_ids: vec![offer.id],
        filters: Some(Filters {
            refuse_seconds: 30.0,
        }),
    };
    call(&mut m, &f1, "s1", CallBody::Decline(decline)).unwrap();
    subscribe(&mut m, "s2", "f2");
    m.allocate(2.0);
    let actions = m.take_actions();
    let offered_to: Vec<&str> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Framework {
                stream,
                event: Event::Offers(_),
            } => Some(&**stream),
            _ => None,
        })
        .collect();
    assert_eq!(offered_to, vec!["s2"]);
}

#[test]
fn reconciliation_answers() {
    let (mut m, agent, fid) = launched_t1();
    m.take_actions();
    call(
        &mut m,
        &fid,
        "s1",
        CallBody::Reconcile(Reconcile { tasks: vec![] }),
    )
    .unwrap();
    expect_t1(&mut m, TaskState::Staging, Reason::Reconciliation);
    let explicit = Reconcile {
        tasks: vec![
            ReconcileTask {
                task_id: TaskId::new("t1"),
                agent_id: None,
            },
            ReconcileTask {
                task_id: TaskId::new("ghost"),
                agent_id: Some(agent.clone()),
            },
        ],
    };
    call(&mut m, &fid, "s1", CallBody::Reconcile(explicit)).unwrap();
    assert_eq!(
        updates(&events(&mut m, "s1")),
        vec![
            (
                "t1".into(),
                TaskState::Staging,
                Some(Reason::Reconciliation),
                false
            ),
            (
                "ghost".into(),
                TaskState::Lost,
                Some(Reason::Reconciliation),
                false
            ),
        ]
    );
    // KILL of an unknown task is answered like reconciliation.
    call(
        &mut m,
        &fid,
        "s1",
        CallBody::Kill(Kill {
            task_id: TaskId::new("ghost"),
            agent_id: None,
            kill_policy: None,
        }),
    )
    .unwrap();
    assert_eq!(
        updates(&events(&mut m, "s1")),
        vec![(
            "ghost".into(),
            TaskState::Lost,
            Some(Reason::Reconciliation),
            false
        )]
    );
}

#[test]
fn teardown_kills_tasks_and_completes_the_framework() {
    let (mut m, _, fid) = launched_t1();
    m.take_actions();
    call(&mut m, &fid, "s1", CallBody::Teardown).unwrap();
    let actions = m.take_actions();
    assert!(actions.iter().any(|a| matches!(a, Action::Agent { message: ToAgent::ShutdownFramework(s), .. } if s.framework_id == fid)));
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::CloseFramework { stream } if &**stream == "s1")));
    let state = m.state_json();
    assert_eq!(state["frameworks"].as_array().unwrap().len(), 0);
    assert_eq!(
        state["completed_frameworks"][0]["completed_tasks"][0]["state"],
        "TASK_KILLED"
    );
    // A removed framework cannot come back.
    let mut info = framework_info("f");
    info.id = Some(fid);
    m.subscribe(
        2.0,
        Subscribe {
            framework_info: info,
            suppressed_roles: vec![],
            offer_constraints: None,
        },
        "s3".into(),
    )
    .unwrap();
    assert!(
        matches!(&m.take_actions()[0], Action::Framework { event: Event::Error(e), .. } if e.message == "Framework has been removed")
    );
}

#[test]
fn agent_disconnect_rescinds_offers_and_loses_tasks() {
    let (mut m, _, _) = launched_t1();
    m.allocate(100.0);
    m.take_actions();
    m.stream_closed(101.0, "a1");
    let got = events(&mut m, "s1");
    assert!(got.iter().any(|e| matches!(e, Event::Rescind(_))));
    assert_eq!(
        updates(&got),
        vec![(
            "t1".into(),
            TaskState::Lost,
            Some(Reason::AgentDisconnected),
            false
        )]
    );
}

#[test]
fn metrics_count_tasks() {
    let (m, _, _) = launched_t1();
    let metrics = m.metrics(5.0);
    assert_eq!(metrics["master/tasks_staging"], 1.0);
    assert_eq!(metrics["master/cpus_total"], 4.0);
    assert_eq!(metrics["master/cpus_used"], 1.0);
    assert_eq!(metrics["master/slaves_active"], 1.0);
}

/// A master with pings every second, unreachable after 3 missed ones; `t1` runs on `a1`
/// for framework `f`, which is PARTITION_AWARE when asked.
pub(super) fn running_with_health(
    partition_aware: bool,
    rate: Option<RemovalRate>,
) -> (Master, AgentId) {
    let config = MasterConfig {
        agent_ping_interval: 1.0,
        max_agent_ping_timeouts: 3,
        agent_removal_rate_limit: rate,
        ..MasterConfig::default()
    };
    let mut m = Master::new("M".into(), config, 0.0);
    let agent = register(&mut m, "a1", "cpus:4;mem:1024");
    let mut info = framework_info("f");
    if partition_aware {
        info.capabilities = vec![Capability {
            kind: "PARTITION_AWARE".into(),
        }];
    }
    let fid = subscribe_info(&mut m, "s1", info);
    m.allocate(0.0);
    let offer = offers(&events(&mut m, "s1")).remove(0);
    launch(
        &mut m,
        &fid,
        &offer,
        vec![command_task("t1", &agent, "cpus:1")],
    );
    m.take_actions();
    (m, agent)
}

/// The only update sent to `s1` since the last look: `t1` in `state` for `reason`,
/// without a uuid (the master made it).
pub(super) fn expect_t1(master: &mut Master, state: TaskState, reason: Reason) {
    expect_update(master, "t1", state, reason);
}

/// The only update sent to `s1` since the last look: `task` in `state` for `reason`,
/// without a uuid.
pub(super) fn expect_update(master: &mut Master, task: &str, state: TaskState, reason: Reason) {
    assert_eq!(
        updates(&events(master, "s1")),
        vec![(task.into(), state, Some(reason), false)]
    );
}

pub(super) fn reregister(
    master: &mut Master,
    now: f64,
    stream: &str,
    agent: &AgentId,
    tasks: &[(&str, TaskState)],
) {
    let fid = master.frameworks.keys().next().unwrap().clone();
    let mut register = register_call(Some(agent.clone()), "cpus:4;mem:1024");
    register.tasks = tasks
        .iter()
        .map(|(id, state)| mantle_api::internal::TaskReport {
            framework_id: fid.clone(),
            task: command_task(id, agent, "cpus:1"),
            state: *state,
            executor_id: None,
        })
        .collect();
    master.register_agent(now, stream.into(), register).unwrap();
}

#[test]
fn an_agent_that_stops_answering_pings_becomes_unreachable_and_comes_back() {
    let (mut m, agent) = running_with_health(true, None);
    // Pongs keep it alive.
    for now in [1.0, 2.0, 3.0, 4.0] {
        m.tick(now);
        m.agent_call(now, "a1", AgentCall::Pong).unwrap();
    }
    assert!(events(&mut m, "s1")
        .iter()
        .all(|e| !matches!(e, Event::Failure(_))));
    // Silence for longer than 3 pings.
    m.tick(7.5);
    let actions = m.take_actions();
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::CloseAgent { stream } if &**stream == "a1")));
    let sent: Vec<&Event> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Framework { event, .. } => Some(event),
            _ => None,
        })
        .collect();
    let update = sent
        .iter()
        .find_map(|e| match e {
            Event::Update(u) => Some(&u.status),
            _ => None,
        })
        .expect("an update");
    assert_eq!(update.state, TaskState::Unreachable);
    assert_eq!(update.reason, Some(Reason::AgentRemoved));
    assert_eq!(update.source, Some(Source::Master));
    assert!(update.uuid.is_none());
    assert!(update.unreachable_time.is_some());
    assert!(sent
        .iter()
        .any(|e| matches!(e, Event::Failure(f) if f.agent_id.as_ref() == Some(&agent))));
    let state = m.state_json();
    assert_eq!(state["unreachable_slaves"], 1);
    assert_eq!(
        state["frameworks"][0]["unreachable_tasks"][0]["state"],
        "TASK_UNREACHABLE"
    );
    assert_eq!(m.metrics(20.0)["master/tasks_unreachable"], 1.0);

    // Reconciliation answers UNREACHABLE with the time.
    let fid = m.frameworks.keys().next().unwrap().clone();
    call(
        &mut m,
        &fid,
        "s1",
        CallBody::Reconcile(Reconcile { tasks: vec![] }),
    )
    .unwrap();
    expect_t1(&mut m, TaskState::Unreachable, Reason::Reconciliation);

    // The agent re-registers with the task still running: it comes back, resent.
    reregister(&mut m, 20.0, "a2", &agent, &[("t1", TaskState::Running)]);
    expect_t1(&mut m, TaskState::Running, Reason::AgentReregistered);
    let state = m.state_json();
    assert_eq!(state["unreachable_slaves"], 0);
    assert_eq!(state["frameworks"][0]["tasks"][0]["state"], "TASK_RUNNING");
}

/// A master restarted after the agent of [`running_with_health`]'s task became
/// unreachable, with the framework subscribed again: it knows the agent is unreachable,
/// but not its task.
fn restarted_after_unreachable() -> (Master, AgentId, FrameworkId) {
    let (mut first, agent) = running_with_health(true, None);
    first.tick(7.5);
    assert!(first.health.unreachable.contains_key(&agent));
    let fid = first.frameworks.keys().next().unwrap().clone();
    let mut info = first.frameworks[&fid].info.clone();
    info.id = Some(fid.clone());
    let mut m = Master::new("M2".into(), MasterConfig::default(), 100.0);
    m.recover_registry(100.0, first.registry());
    subscribe_info(&mut m, "s1", info);
    (m, agent, fid)
}

#[test]
fn an_unreachable_agent_returning_to_a_restarted_master_brings_its_tasks_back() {
    let (mut m, agent, _) = restarted_after_unreachable();
    m.take_actions();
    reregister(&mut m, 101.0, "a2", &agent, &[("t1", TaskState::Running)]);
    expect_t1(&mut m, TaskState::Running, Reason::AgentReregistered);
    assert_eq!(
        m.state_json()["frameworks"][0]["tasks"][0]["state"],
        "TASK_RUNNING"
    );
}

/// As above, but the restarted master has since run a task of the same ID elsewhere to
/// its acknowledged end: the returning agent's copy is killed, not announced as back.
#[test]
fn a_retired_task_an_unreachable_agent_brings_back_is_killed_unannounced() {
    let (mut m, agent, fid) = restarted_after_unreachable();
    let other = register(&mut m, "b1", "cpus:4;mem:1024");
    m.allocate(100.5);
    let offer = offers(&events(&mut m, "s1")).remove(0);
    assert_eq!(offer.agent_id, other);
    launch(
        &mut m,
        &fid,
        &offer,
        vec![command_task("t1", &other, "cpus:1")],
    );
    let mut status = TaskStatus::new(TaskId::new("t1"), TaskState::Finished);
    status.uuid = Some(new_status_uuid());
    let uuid = status.uuid.clone().unwrap();
    let update = StatusUpdate {
        framework_id: fid.clone(),
        status,
    };
    m.agent_call(100.6, "b1", AgentCall::StatusUpdate(update))
        .unwrap();
    let ack = mantle_api::scheduler::Acknowledge {
        agent_id: other,
        task_id: TaskId::new("t1"),
        uuid,
    };
    call(&mut m, &fid, "s1", CallBody::Acknowledge(ack)).unwrap();
    m.take_actions();

    reregister(&mut m, 101.0, "a2", &agent, &[("t1", TaskState::Running)]);
    let actions = m.take_actions();
    let to_framework: Vec<&Action> = (actions.iter())
        .filter(|a| {
            matches!(
                a,
                Action::Framework {
                    event: Event::Update(_),
                    ..
                }
            )
        })
        .collect();
    assert!(to_framework.is_empty(), "{to_framework:?}");
    assert!(
        actions.iter().any(|a| matches!(a,
            Action::Agent { stream, message: ToAgent::KillTask(k) }
                if &**stream == "a2" && k.task_id.as_str() == "t1")),
        "{actions:?}"
    );
}

#[test]
fn frameworks_that_are_not_partition_aware_see_lost_and_then_running() {
    let (mut m, agent) = running_with_health(false, None);
    m.tick(5.0);
    expect_t1(&mut m, TaskState::Lost, Reason::AgentRemoved);
    reregister(&mut m, 20.0, "a2", &agent, &[("t1", TaskState::Running)]);
    expect_t1(&mut m, TaskState::Running, Reason::AgentReregistered);
}

#[test]
fn tasks_an_unreachable_agent_does_not_report_are_gone() {
    let (mut m, agent) = running_with_health(true, None);
    m.tick(5.0);
    m.take_actions();
    reregister(&mut m, 20.0, "a2", &agent, &[]);
    expect_t1(&mut m, TaskState::Gone, Reason::AgentReregistered);
}

/// Explicit reconciliation of tasks the master does not know, on each kind of agent
/// (Mesos's six cases): the answer names what is known of the agent.
#[test]
fn explicit_reconciliation_of_unknown_tasks_follows_the_agent() {
    let (mut m, agent) = running_with_health(true, None);
    let fid = m.frameworks.keys().next().unwrap().clone();
    let ask = |m: &mut Master, agent: Option<&str>| {
        let wanted = ReconcileTask {
            task_id: TaskId::new("ghost"),
            agent_id: agent.map(AgentId::new),
        };
        let reconcile = Reconcile {
            tasks: vec![wanted],
        };
        call(m, &fid, "s1", CallBody::Reconcile(reconcile)).unwrap();
        events(m, "s1")
            .into_iter()
            .filter_map(|e| match e {
                Event::Update(u) => Some(u.status),
                _ => None,
            })
            .map(|s| {
                let unreachable = s.unreachable_time.map(|t| t.nanoseconds);
                (s.state, s.message.unwrap_or_default(), unreachable, s.uuid)
            })
            .collect::<Vec<_>>()
    };
    let answer =
        |state, message: &str, unreachable| vec![(state, message.to_string(), unreachable, None)];
    assert_eq!(
        ask(&mut m, Some(agent.as_str())),
        answer(
            TaskState::Gone,
            "Reconciliation: Task is unknown to the agent",
            None
        )
    );
    assert_eq!(
        ask(&mut m, Some("nowhere")),
        answer(TaskState::Unknown, "Reconciliation: Task is unknown", None)
    );
    assert_eq!(
        ask(&mut m, None),
        answer(TaskState::Unknown, "Reconciliation: Task is unknown", None)
    );
    m.gone.insert(AgentId::new("removed"), 1.0);
    assert_eq!(
        ask(&mut m, Some("removed")),
        answer(
            TaskState::GoneByOperator,
            "Reconciliation: Task is gone",
            None
        )
    );
    // Three missed pings: unreachable since 5 s.
    m.tick(5.0);
    m.take_actions();
    assert_eq!(
        ask(&mut m, Some(agent.as_str())),
        answer(
            TaskState::Unreachable,
            "Reconciliation: Task is unreachable",
            Some(5_000_000_000)
        )
    );
    // While an agent of the registry has not re-registered, a task on it, or on no
    // agent named, may be there: no answer.
    let info = m.health.unreachable[&agent].info.clone();
    m.health
        .recovered
        .insert(AgentId::new("returning"), (info, 100.0));
    assert_eq!(ask(&mut m, Some("returning")), vec![]);
    assert_eq!(ask(&mut m, None), vec![]);
    assert_eq!(
        ask(&mut m, Some("nowhere")),
        answer(TaskState::Unknown, "Reconciliation: Task is unknown", None)
    );
}

/// Explicit reconciliation of `t1` on `agent`, on stream `s1`.
fn reconcile_t1(master: &mut Master, fid: &FrameworkId, agent: AgentId) {
    let wanted = ReconcileTask {
        task_id: TaskId::new("t1"),
        agent_id: Some(agent),
    };
    let reconcile = Reconcile {
        tasks: vec![wanted],
    };
    call(master, fid, "s1", CallBody::Reconcile(reconcile)).unwrap();
}

/// The agent's own update of `t1`, with a uuid, as it resends it after re-registering.
fn agent_update_t1(master: &mut Master, now: f64, stream: &str, state: TaskState) {
    let framework_id = master.frameworks.keys().next().unwrap().clone();
    let mut status = TaskStatus::new(TaskId::new("t1"), state);
    status.uuid = Some("AAAAAAAAAAAAAAAAAAAAAA==".into());
    status.source = Some(Source::Executor);
    let update = StatusUpdate {
        framework_id,
        status,
    };
    master
        .agent_call(now, stream, AgentCall::StatusUpdate(update))
        .unwrap();
}

#[test]
fn a_task_that_ended_while_its_agent_was_unreachable_comes_back_ended() {
    let (mut m, agent) = running_with_health(true, None);
    m.tick(5.0);
    m.take_actions();
    // The agent reports t1, whose FINISHED the framework has not acknowledged yet.
    reregister(&mut m, 20.0, "a2", &agent, &[("t1", TaskState::Finished)]);
    expect_t1(&mut m, TaskState::Finished, Reason::AgentReregistered);
    // The agent's own FINISHED then reaches the framework instead of being swallowed.
    agent_update_t1(&mut m, 21.0, "a2", TaskState::Finished);
    assert_eq!(
        updates(&events(&mut m, "s1")),
        vec![("t1".into(), TaskState::Finished, None, true)]
    );
}

#[test]
fn a_restarted_master_learns_of_tasks_that_ended_unacknowledged() {
    let (first, agent) = running_with_health(true, None);
    let mut m = Master::new("M2".into(), MasterConfig::default(), 100.0);
    m.recover_registry(100.0, first.registry());
    reregister(&mut m, 101.0, "a2", &agent, &[("t1", TaskState::Finished)]);
    let fid = m.frameworks.keys().next().unwrap().clone();
    m.subscribe(
        102.0,
        Subscribe {
            framework_info: m.frameworks[&fid].info.clone(),
            suppressed_roles: vec![],
            offer_constraints: None,
        },
        "s1".into(),
    )
    .unwrap();
    m.take_actions();
    // Reconciliation tells the end, where it used to call the task gone.
    reconcile_t1(&mut m, &fid, agent);
    expect_t1(&mut m, TaskState::Finished, Reason::Reconciliation);
    // The agent resends its oldest unacknowledged update first; the task stays ended.
    agent_update_t1(&mut m, 102.5, "a2", TaskState::Running);
    assert_eq!(
        m.frameworks[&fid].tasks[&TaskId::new("t1")].state,
        TaskState::Finished
    );
    // Its resources were not taken by a task that ended.
    m.allocate(103.0);
    let offered = offers(&events(&mut m, "s1"));
    let cpus: f64 = offered
        .iter()
        .map(|o| {
            Resources::from_wire("o", &o.resources)
                .unwrap()
                .scalar("cpus")
        })
        .sum();
    assert_eq!(cpus, 4.0);
}

#[test]
fn tasks_declared_lost_at_a_disconnect_are_killed_when_the_agent_returns() {
    let (mut m, agent, _fid) = launched_t1();
    // The framework does not checkpoint, so the disconnect loses t1 at once.
    m.stream_closed(1.0, "a1");
    assert_eq!(
        updates(&events(&mut m, "s1")),
        vec![(
            "t1".into(),
            TaskState::Lost,
            Some(Reason::AgentDisconnected),
            false
        )]
    );
    // The agent comes back still running it: REGISTERED first, then the kill.
    reregister(&mut m, 2.0, "a2", &agent, &[("t1", TaskState::Running)]);
    let to_agent: Vec<ToAgent> = m
        .take_actions()
        .into_iter()
        .filter_map(|a| match a {
            Action::Agent { stream, message } if &*stream == "a2" => Some(message),
            _ => None,
        })
        .collect();
    assert!(
        matches!(to_agent[0], ToAgent::Registered(_)),
        "{to_agent:?}"
    );
    assert!(
        matches!(&to_agent[1], ToAgent::KillTask(k) if k.task_id.as_str() == "t1"),
        "{to_agent:?}"
    );
    assert_eq!(to_agent.len(), 2);
    // It stays retired: the master does not take it back.
    let fid = m.frameworks.keys().next().unwrap().clone();
    assert!(!m.frameworks[&fid].tasks.contains_key(&TaskId::new("t1")));
}

#[test]
fn the_removal_rate_limit_spaces_unreachable_marks() {
    let rate = RemovalRate::parse("1/10secs").unwrap();
    let (mut m, _) = running_with_health(true, Some(rate));
    let second = register(&mut m, "a2", "cpus:1;mem:128");
    m.tick(5.0);
    assert_eq!(m.health.unreachable.len(), 1);
    m.tick(10.0);
    assert_eq!(
        m.health.unreachable.len(),
        1,
        "the second waits for the limit"
    );
    // The second agent speaks before its turn: it is spared.
    m.agent_call(12.0, "a2", AgentCall::Pong).unwrap();
    m.agent_call(15.0, "a2", AgentCall::Pong).unwrap();
    m.tick(15.5);
    assert_eq!(m.health.unreachable.len(), 1);
    assert!(m.agents.contains_key(&second));
    let metrics = m.metrics(20.0);
    assert_eq!(metrics["master/slave_unreachable_scheduled"], 2.0);
    assert_eq!(metrics["master/slave_unreachable_completed"], 1.0);
    assert_eq!(metrics["master/slave_unreachable_canceled"], 1.0);
}

#[test]
fn a_restarted_master_waits_for_registry_agents_then_marks_them_unreachable() {
    let (mut first, agent) = running_with_health(true, None);
    let second = register(&mut first, "a2", "cpus:1;mem:128");
    let registry = first.registry();
    assert_eq!(registry.agents.len(), 2);

    let config = MasterConfig {
        agent_reregister_timeout: 10.0,
        ..MasterConfig::default()
    };
    let mut m = Master::new("M2".into(), config, 100.0);
    m.recover_registry(100.0, registry);
    assert_eq!(m.registry().agents.len(), 2, "still expected");
    // Until an agent re-registers, reconciling its tasks gets no answer.
    let fid = subscribe(&mut m, "s1", "f");
    m.take_actions();
    reconcile_t1(&mut m, &fid, agent.clone());
    assert!(updates(&events(&mut m, "s1")).is_empty());

    // One comes back in time; the other does not.
    reregister(&mut m, 105.0, "a3", &agent, &[]);
    m.tick(109.0);
    assert!(m.health.unreachable.is_empty());
    m.tick(110.5);
    assert!(m.health.unreachable.contains_key(&second));
    let registry = m.registry();
    assert_eq!(registry.agents.len(), 1);
    assert_eq!(registry.unreachable.len(), 1);
    assert_eq!(m.state_json()["unreachable_slaves"], 1);
}

#[test]
fn failover_deadlines_survive_a_master_restart() {
    let mut first = master();
    let mut info = framework_info("leaving");
    info.failover_timeout = 5.0;
    let leaving = subscribe_info(&mut first, "s1", info);
    let mut info = framework_info("staying");
    info.failover_timeout = 100.0;
    let staying = subscribe_info(&mut first, "s2", info);
    first.stream_closed(10.0, "s1");
    let registry = first.registry();
    let stored: Vec<(FrameworkId, Option<f64>)> = registry
        .frameworks
        .iter()
        .map(|f| (f.info.id.clone().unwrap(), f.failover_deadline))
        .collect();
    assert_eq!(
        stored,
        vec![(leaving.clone(), Some(15.0)), (staying.clone(), None)]
    );

    let mut m = Master::new("M2".into(), MasterConfig::default(), 12.0);
    m.recover_registry(12.0, registry);
    m.tick(14.0);
    assert!(m.frameworks.contains_key(&leaving));
    m.tick(15.5);
    assert!(
        !m.frameworks.contains_key(&leaving),
        "removed at its deadline"
    );
    assert!(m.completed_frameworks.iter().any(|f| f.id == leaving));
    // The connected one waits its failover_timeout from the restart, and at least the
    // agents' re-registration timeout (600 s by default).
    m.tick(611.0);
    assert!(m.frameworks.contains_key(&staying));
    m.tick(612.5);
    assert!(!m.frameworks.contains_key(&staying));
}

pub(super) fn agent_call_body(
    kind: &str,
    field: &str,
    agent: &AgentId,
) -> mantle_api::operator::OperatorCall {
    serde_json::from_value(json!({"type": kind, field: {"agent_id": {"value": agent.value}}}))
        .unwrap()
}

#[test]
fn a_deactivated_agent_is_offered_to_nobody_until_reactivated() {
    let (mut m, agent, _, _) = offered();
    let call = agent_call_body("DEACTIVATE_AGENT", "deactivate_agent", &agent);
    m.operator_call(1.0, call).unwrap();
    let sent = events(&mut m, "s1");
    assert!(
        sent.iter().any(|e| matches!(e, Event::Rescind(_))),
        "{sent:?}"
    );
    m.allocate(2.0);
    assert!(offers(&events(&mut m, "s1")).is_empty());
    assert_eq!(m.state_json()["deactivated_slaves"], 1);
    assert_eq!(m.registry().rest.deactivated, vec![agent.clone()]);

    let call = agent_call_body("REACTIVATE_AGENT", "reactivate_agent", &agent);
    m.operator_call(3.0, call).unwrap();
    m.allocate(3.0);
    assert_eq!(offers(&events(&mut m, "s1")).len(), 1);
    assert_eq!(m.state_json()["deactivated_slaves"], 0);

    let unknown = agent_call_body("DEACTIVATE_AGENT", "deactivate_agent", &AgentId::new("x"));
    let err = m.operator_call(4.0, unknown).unwrap_err();
    assert!(
        err.to_string().contains("deactivate_agent.agent_id"),
        "{err}"
    );
}

#[test]
fn an_agent_marked_gone_ends_its_tasks_and_may_not_return() {
    let (mut m, agent) = running_with_health(true, None);
    let call = agent_call_body("MARK_AGENT_GONE", "mark_agent_gone", &agent);
    m.operator_call(2.0, call).unwrap();
    let actions = m.take_actions();
    assert!(actions.iter().any(|a| matches!(
        a,
        Action::Agent {
            message: ToAgent::Shutdown(_),
            ..
        }
    )));
    let statuses: Vec<&TaskStatus> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Framework {
                event: Event::Update(u),
                ..
            } => Some(&u.status),
            _ => None,
        })
        .collect();
    assert_eq!(statuses.len(), 1);
    assert_eq!(statuses[0].state, TaskState::GoneByOperator);
    assert_eq!(statuses[0].reason, Some(Reason::AgentRemovedByOperator));
    assert!(m.state_json()["slaves"].as_array().unwrap().is_empty());
    assert_eq!(m.registry().rest.gone.len(), 1);
    let register = register_call(Some(agent.clone()), "cpus:4;mem:1024");
    let err = m.register_agent(3.0, "a9".into(), register).unwrap_err();
    assert_eq!(err.status().as_u16(), 403);
}

/// A master restarted at 100 s from the registry of one that had agent `a1`
/// (`cpus:8;mem:4096`) and nothing else.
fn restarted_with_one_agent() -> (Master, AgentId) {
    let mut first = master();
    let agent = register(&mut first, "a1", "cpus:8;mem:4096");
    let mut m = Master::new("M2".into(), MasterConfig::default(), 100.0);
    m.recover_registry(100.0, first.registry());
    (m, agent)
}

#[test]
fn a_restarted_master_keeps_the_tasks_of_frameworks_only_agents_report() {
    let (mut m, agent) = restarted_with_one_agent();
    let version = m.registry_version();

    let mut info = framework_info("f");
    info.checkpoint = true;
    info.id = Some(FrameworkId::new("F1"));
    let executor: ExecutorInfo = serde_json::from_value(json!({
        "executor_id": {"value": "e1"},
        "framework_id": {"value": "F1"},
        "command": {"value": "run-executor"},
        "resources": Resources::parse_text("cpus:0.5;mem:32", "*").unwrap().to_wire(),
    }))
    .unwrap();
    let mut register = register_call(Some(agent.clone()), "cpus:8;mem:4096");
    register.frameworks = vec![info.clone()];
    register.executors = vec![executor.clone()];
    register.tasks = [
        ("t1", TaskState::Running),
        ("t2", TaskState::Staging),
        ("t3", TaskState::Finished),
    ]
    .into_iter()
    .map(|(id, state)| {
        let mut task = command_task(id, &agent, "cpus:1;mem:128");
        task.command = None;
        task.executor = Some(Box::new(executor.clone()));
        task.labels = Some(Box::new(Labels {
            labels: vec![Label {
                key: "k".into(),
                value: Some(id.into()),
            }],
        }));
        mantle_api::internal::TaskReport {
            framework_id: FrameworkId::new("F1"),
            task,
            state,
            executor_id: Some(executor.executor_id.clone()),
        }
    })
    .collect();
    m.register_agent(101.0, "a2".into(), register).unwrap();
    assert_eq!(
        m.registry_version(),
        version,
        "the agent comes back as stored, and its agents would report the framework again"
    );
    assert_eq!(
        m.registry().frameworks[0].info.id,
        info.id,
        "stored with the next change"
    );

    let state = m.state_json();
    let framework = &state["frameworks"][0];
    assert_eq!(framework["id"], "F1");
    assert_eq!(framework["recovered"], true);
    assert_eq!(framework["active"], false);
    let tasks: Vec<(&str, &str, &str, &str)> = framework["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["id"].as_str().unwrap(),
                t["state"].as_str().unwrap(),
                t["executor_id"].as_str().unwrap(),
                t["labels"][0]["value"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        tasks,
        vec![
            ("t1", "TASK_RUNNING", "e1", "t1"),
            ("t2", "TASK_STAGING", "e1", "t2"),
            ("t3", "TASK_FINISHED", "e1", "t3")
        ],
        "every reported task is kept; one that ended holds nothing until its end is \
         acknowledged"
    );
    assert_eq!(framework["executors"][0]["executor_id"], "e1");
    assert_eq!(framework["used_resources"]["cpus"], 2.5);
    assert_eq!(state["slaves"][0]["used_resources"]["mem"], 288.0);
    let metrics = m.metrics(102.0);
    assert_eq!(metrics["master/tasks_running"], 1.0);
    assert_eq!(metrics["master/slave_reregistrations"], 1.0);
    assert_eq!(metrics["master/frameworks_inactive"], 1.0);

    // The framework comes back and finds its tasks.
    subscribe_info(&mut m, "s1", info);
    let framework = &m.state_json()["frameworks"][0];
    assert_eq!(framework["recovered"], false);
    assert_eq!(framework["active"], true);
    assert_eq!(framework["tasks"].as_array().unwrap().len(), 3);
}

#[test]
fn an_agent_that_comes_back_changed_is_stored_again() {
    let (mut m, agent) = restarted_with_one_agent();
    let version = m.registry_version();
    let register = register_call(Some(agent.clone()), "cpus:16;mem:4096");
    m.register_agent(101.0, "a2".into(), register).unwrap();
    assert_eq!(m.registry_version(), version + 1);
    assert_eq!(
        m.registry().agents[0].resources,
        Resources::parse_text("cpus:16;mem:4096", "*")
            .unwrap()
            .to_wire()
    );
}

/// Applies the registry changes taken since the last call to `stored` (what a store
/// that appends them holds) and checks that it is the registry written whole.
fn store_changes(m: &mut Master, stored: &mut Registry) {
    stored.apply([m.take_registry_changes()]);
    let mut whole = m.agent_registry();
    whole.apply([]);
    assert_eq!(*stored, whole);
}

#[test]
fn the_registry_changes_applied_in_turn_are_the_whole_registry() {
    let (mut first, agent) = running_with_health(true, None);
    let mut stored = Registry::default();
    store_changes(&mut first, &mut stored);
    assert_eq!(stored.agents.len(), 1);
    let second = register(&mut first, "a2", "cpus:1;mem:128");
    let third = register(&mut first, "a3", "cpus:1;mem:128");
    store_changes(&mut first, &mut stored);
    let deactivate = agent_call_body("DEACTIVATE_AGENT", "deactivate_agent", &second);
    first.operator_call(2.0, deactivate).unwrap();
    store_changes(&mut first, &mut stored);
    assert_eq!(stored.rest.deactivated, vec![second.clone()]);
    let gone = agent_call_body("MARK_AGENT_GONE", "mark_agent_gone", &second);
    first.operator_call(3.0, gone).unwrap();
    store_changes(&mut first, &mut stored);
    assert_eq!(stored.agents.len(), 2);
    assert!(stored.rest.deactivated.is_empty());
    // Re-registered while known, with another port: the entry is replaced.
    let mut changed = register_call(Some(third.clone()), "cpus:1;mem:128");
    changed.agent_info.port = 5052;
    first.register_agent(4.0, "a3b".into(), changed).unwrap();
    store_changes(&mut first, &mut stored);
    assert!(stored.agents.iter().any(|a| a.port == 5052));

    // A restart: one agent comes back, the other becomes unreachable, then returns.
    let config = MasterConfig {
        agent_reregister_timeout: 10.0,
        ..MasterConfig::default()
    };
    let mut m = Master::new("M2".into(), config, 100.0);
    m.recover_registry(100.0, stored.clone());
    store_changes(&mut m, &mut stored);
    let register = register_call(Some(agent.clone()), "cpus:4;mem:1024");
    m.register_agent(105.0, "a4".into(), register).unwrap();
    store_changes(&mut m, &mut stored);
    m.tick(110.5);
    assert_eq!(m.health.unreachable.len(), 1);
    store_changes(&mut m, &mut stored);
    assert_eq!(stored.unreachable.len(), 1);
    let register = register_call(Some(third.clone()), "cpus:2;mem:256");
    m.register_agent(111.0, "a5".into(), register).unwrap();
    store_changes(&mut m, &mut stored);
    assert_eq!((stored.agents.len(), stored.unreachable.len()), (2, 0));
}

#[test]
fn an_agent_reporting_a_removed_framework_hears_registered_first() {
    let (mut m, agent, fid) = launched_t1();
    call(&mut m, &fid, "s1", CallBody::Teardown).unwrap();
    m.take_actions();
    let mut register = register_call(Some(agent.clone()), "cpus:4;mem:1024");
    register.tasks = ["t1", "t2"]
        .into_iter()
        .map(|id| mantle_api::internal::TaskReport {
            framework_id: fid.clone(),
            task: command_task(id, &agent, "cpus:1"),
            state: TaskState::Running,
            executor_id: None,
        })
        .collect();
    m.register_agent(5.0, "a2".into(), register).unwrap();
    let messages = agent_messages(&mut m);
    assert!(
        matches!(messages[0], ToAgent::Registered(_)),
        "{messages:?}"
    );
    assert!(
        matches!(&messages[1..], [ToAgent::ShutdownFramework(s)] if s.framework_id == fid),
        "one shutdown for the framework: {messages:?}"
    );
}
