//! Unit tests of a known agent's re-registration against the pure core: what the master
//! placed on the agent but the agent does not report (a RunTask lost on a stream the
//! agent gave up, an executor whose exit the agent could not tell) is reconciled; and a
//! registration from a registered agent's address (a retry, or a new agent). The
//! helpers of `tests.rs` set up the agent (`a1`) and the framework (`f` on `s1`).

use super::tests::*;
use super::*;
use mantle_api::internal::{AgentCall, StatusUpdate};
use mantle_api::scheduler::{Acknowledge, CallBody};

/// The cpus offered to `f` at `now`.
fn offered_cpus(m: &mut Master, now: f64) -> f64 {
    m.allocate(now);
    offers(&events(m, "s1"))
        .iter()
        .map(|o| {
            Resources::from_wire("o", &o.resources)
                .unwrap()
                .scalar("cpus")
        })
        .sum()
}

#[test]
fn tasks_a_known_agent_does_not_report_are_dropped() {
    // (PARTITION_AWARE, what the framework is told)
    for (partition_aware, state) in [(false, TaskState::Lost), (true, TaskState::Dropped)] {
        let (mut m, agent, fid) = launched_t1();
        if partition_aware {
            let framework = m.frameworks.get_mut(&fid).unwrap();
            framework.info.capabilities = vec![Capability {
                kind: "PARTITION_AWARE".into(),
            }];
        }
        m.take_actions();
        // The agent gave its stream up before RUN_TASK t1 reached it, and comes back on
        // a new one without it; the master has not noticed the old stream end.
        reregister(&mut m, 1.0, "a2", &agent, &[]);
        assert_eq!(
            updates(&events(&mut m, "s1")),
            vec![("t1".into(), state, Some(Reason::Reconciliation), false)],
            "partition aware: {partition_aware}"
        );
        assert!(!m.frameworks[&fid].tasks.contains_key(&TaskId::new("t1")));
        assert_eq!(offered_cpus(&mut m, 2.0), 4.0);
    }
}

#[test]
fn tasks_a_known_agent_reports_stay() {
    let (mut m, agent, fid) = launched_t1();
    m.take_actions();
    reregister(&mut m, 1.0, "a2", &agent, &[("t1", TaskState::Running)]);
    assert_eq!(updates(&events(&mut m, "s1")), vec![]);
    assert!(m.frameworks[&fid].tasks.contains_key(&TaskId::new("t1")));
    // Once the filter on the rest of the offer ends, only t1's cpu is held.
    assert_eq!(offered_cpus(&mut m, 10.0), 3.0);
}

#[test]
fn executors_a_known_agent_does_not_report_are_forgotten() {
    let (mut m, agent, fid, offer) = offered();
    let mut task = command_task("t1", &agent, "cpus:1");
    task.command = None;
    let mut executor: ExecutorInfo = serde_json::from_value(serde_json::json!({
        "executor_id": {"value": "e1"}, "command": {"value": "run-executor"}
    }))
    .unwrap();
    executor.resources = Resources::parse_text("cpus:1", "*").unwrap().to_wire();
    task.executor = Some(Box::new(executor));
    launch(&mut m, &fid, &offer, vec![task]);
    // t1 finishes and its end is acknowledged: only the executor holds resources.
    let mut status = TaskStatus::new(TaskId::new("t1"), TaskState::Finished);
    status.uuid = Some("AAAAAAAAAAAAAAAAAAAAAA==".into());
    status.source = Some(Source::Executor);
    let update = StatusUpdate {
        framework_id: fid.clone(),
        status,
    };
    m.agent_call(1.0, "a1", AgentCall::StatusUpdate(update))
        .unwrap();
    let ack = Acknowledge {
        agent_id: agent.clone(),
        task_id: TaskId::new("t1"),
        uuid: "AAAAAAAAAAAAAAAAAAAAAA==".into(),
    };
    call(&mut m, &fid, "s1", CallBody::Acknowledge(ack)).unwrap();
    m.take_actions();
    assert!(m.frameworks[&fid].executors[&agent].contains_key(&ExecutorId::new("e1")));
    // The executor exited while the agent was away, so its EXECUTOR_EXITED never came;
    // the agent re-registers without it.
    reregister(&mut m, 3.0, "a2", &agent, &[]);
    assert!(!m.frameworks[&fid].executors.contains_key(&agent));
    assert_eq!(offered_cpus(&mut m, 10.0), 4.0);
}

#[test]
fn a_connected_agent_registering_again_is_a_retry_and_keeps_its_id() {
    let (mut m, agent, fid) = launched_t1();
    m.take_actions();
    // The agent did not see its REGISTERED and registers again, from the same address.
    let again = m
        .register_agent(1.0, "a2".into(), register_call(None, "cpus:4;mem:1024"))
        .unwrap();
    assert_eq!(again, agent);
    assert_eq!(m.agents.len(), 1);
    // t1 went out on the stream the agent gave up, and the agent does not know it.
    assert_eq!(
        updates(&events(&mut m, "s1")),
        vec![(
            "t1".into(),
            TaskState::Lost,
            Some(Reason::Reconciliation),
            false
        )]
    );
    assert!(!m.frameworks[&fid].tasks.contains_key(&TaskId::new("t1")));
}

#[test]
fn a_new_agent_at_a_disconnected_agents_address_replaces_it() {
    let (mut m, agent, fid) = launched_t1();
    m.take_actions();
    m.agent_stream_closed(1.0, "a1");
    // Checkpointing frameworks keep their tasks while the agent is away; this one does
    // not, so t1 is lost already; the new agent's registration removes the old agent.
    m.take_actions();
    let new = m
        .register_agent(2.0, "a2".into(), register_call(None, "cpus:4;mem:1024"))
        .unwrap();
    assert_ne!(new, agent);
    assert_eq!(m.agents.len(), 1);
    assert!(!m.agents.contains_key(&agent));
    assert!(!m.frameworks[&fid].tasks.contains_key(&TaskId::new("t1")));
    assert_eq!(m.metrics(2.0)["master/slave_removals"], 1.0);
}

/// The core keeps an agent's info and a task's TaskInfo without their wire resources
/// (memory), yet GET_AGENTS, the registry and GET_TASKS show them as Mesos does.
#[test]
fn kept_infos_drop_wire_resources_and_readers_put_them_back() {
    let (m, agent, _) = launched_t1();
    let kept = m.agents().next().unwrap();
    assert!(kept.info.resources.is_empty());
    let total = || Resources::parse_text("cpus:4;mem:1024", "*").unwrap();
    let stored = &m.registry().agents[0];
    assert_eq!(stored.id.as_ref(), Some(&agent));
    assert_eq!(
        Resources::from_wire("r", &stored.resources).unwrap(),
        total()
    );
    let agents = m.view().get_agents();
    let shown = &agents["agents"][0]["agent_info"]["resources"];
    let shown: Vec<Resource> = serde_json::from_value(shown.clone()).unwrap();
    assert_eq!(Resources::from_wire("r", &shown).unwrap(), total());
    let framework = m.frameworks().next().unwrap();
    let task = &framework.tasks[&TaskId::new("t1")];
    assert_eq!(task.resources.to_text(), "cpus:1");
}
