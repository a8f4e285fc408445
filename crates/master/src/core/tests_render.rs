//! Tests of the legacy JSON renderers (`legacy_docs.rs`, `state.rs`, `summary.rs`): their
//! output equals that of the `Value`-tree renderers they replaced, kept here as the
//! reference, on a core with agents (reserved resources, attributes, a drain), active
//! and completed frameworks, running, completed and executor tasks, outstanding offers,
//! and strings that need escaping or are not ASCII. An ignored test times the render on
//! a synthetic core of Mesos's benchmark shape.

use super::legacy_docs::executor_json;
use super::state::{task_list, TASK_LISTS};
use super::tests::*;
use super::*;
use mantle_api::internal::{AgentCall, StatusUpdate};
use mantle_api::scheduler::CallBody;
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::{json, Map, Value};

fn flat(resources: &Resources) -> Value {
    Value::Object(resources.legacy_json())
}

fn by_role(total: &Resources) -> (BTreeMap<String, Resources>, Resources) {
    let mut reserved: BTreeMap<String, Resources> = BTreeMap::new();
    let mut unreserved = Resources::new();
    for (key, quantity) in total.entries() {
        let into = if key.role == "*" {
            &mut unreserved
        } else {
            reserved.entry(key.role.clone()).or_default()
        };
        into.insert(key.clone(), quantity.clone());
    }
    (reserved, unreserved)
}

/// The reference agent: as `/master/state` built it before.
fn agent_json(view: &StateView, agent: &Agent, used: &Resources, offered: &Resources) -> Value {
    let (reserved, unreserved) = by_role(&agent.total);
    let attributes: Map<String, Value> = agent
        .info
        .attributes
        .iter()
        .map(|a| (a.name.clone(), a.legacy_value()))
        .collect();
    let mut out = json!({
        "id": agent.id.value,
        "hostname": agent.info.hostname,
        "port": agent.url().address.port,
        "attributes": attributes,
        "pid": agent.pid,
        "registered_time": agent.registered_time,
        "resources": flat(&agent.total),
        "used_resources": flat(used),
        "offered_resources": flat(offered),
        "reserved_resources": reserved.iter().map(|(role, r)| (role.clone(), flat(r))).collect::<Map<String, Value>>(),
        "unreserved_resources": flat(&unreserved),
        "active": view.is_active(agent),
        "deactivated": view.deactivated.contains(&agent.id),
        "version": agent.version,
        "capabilities": agent.info.capabilities.iter().map(|c| c.kind.clone()).collect::<Vec<_>>(),
    });
    if let Some(t) = agent.reregistered_time {
        out["reregistered_time"] = json!(t);
    }
    if let Some(drain) = view.draining.get(&agent.id) {
        out["drain_info"] = json!(drain.info);
        if let Some(started) = drain.started {
            out["estimated_drain_start_time_seconds"] = json!(started);
        }
    }
    out
}

/// The reference framework fields: as `/master/state` built them before.
fn framework_fields(view: &StateView, framework: &Framework) -> Value {
    let used = StateView::framework_usage(framework);
    let offered = StateView::offered(view.framework_offers().of(framework));
    let info = &framework.info;
    let mut out = json!({
        "id": framework.id.value,
        "name": info.name,
        "user": info.user,
        "hostname": info.hostname.clone().unwrap_or_default(),
        "webui_url": info.webui_url.clone().unwrap_or_default(),
        "failover_timeout": info.failover_timeout,
        "checkpoint": info.checkpoint,
        "capabilities": info.capabilities.iter().map(|c| c.kind.clone()).collect::<Vec<_>>(),
        "active": framework.active,
        "connected": framework.stream.is_some(),
        "recovered": framework.recovered,
        "registered_time": framework.registered_time,
        "unregistered_time": framework.unregistered_time.unwrap_or(0.0),
        "used_resources": flat(&used),
        "offered_resources": flat(&offered),
        "resources": flat(&used.plus(&offered)),
        "offers": framework.offers.iter().filter_map(|id| view.offers.get(id)).map(|o| json!({
            "id": o.offer.id.value,
            "framework_id": o.offer.framework_id.value,
            "slave_id": o.offer.agent_id.value,
            "allocation_info": {"role": framework.role()},
            "resources": flat(&o.resources),
        })).collect::<Vec<_>>(),
        "executors": framework.executors.iter()
            .flat_map(|(agent, executors)| executors.values().map(move |e| executor_json(agent, e)))
            .collect::<Vec<_>>(),
        "offer_constraints": {},
    });
    if let Some(t) = framework.reregistered_time {
        out["reregistered_time"] = json!(t);
    }
    if let Some(p) = &info.principal {
        out["principal"] = json!(p);
    }
    if let Some(labels) = &info.labels {
        out["labels"] = json!(labels.labels);
    }
    if info.has_capability("MULTI_ROLE") {
        out["roles"] = json!(info.roles);
    } else {
        out["role"] = json!(info.role.clone().unwrap_or_else(|| "*".into()));
    }
    out
}

/// The reference per-agent sums: keyed by agent.
fn agent_usage(view: &StateView) -> BTreeMap<AgentId, (Resources, Resources)> {
    let mut usage: BTreeMap<AgentId, (Resources, Resources)> = BTreeMap::new();
    for framework in view.frameworks.values() {
        for task in framework.tasks.values().filter(|t| !t.state.is_terminal()) {
            let sums = usage.entry(task.info.agent_id.clone()).or_default();
            sums.0.add(&task.resources);
        }
        for (agent, executors) in &framework.executors {
            for executor in executors.values() {
                let sums = usage.entry(agent.clone()).or_default();
                sums.0.add(&executor.resources);
            }
        }
    }
    for entry in view.offers.values() {
        let sums = usage.entry(entry.offer.agent_id.clone()).or_default();
        sums.1.add(&entry.resources);
    }
    usage
}

fn agents_json(view: &StateView) -> Vec<(AgentId, Value)> {
    let usage = agent_usage(view);
    let none = (Resources::new(), Resources::new());
    view.agents
        .values()
        .map(|agent| {
            let (used, offered) = usage.get(&agent.id).unwrap_or(&none);
            (agent.id.clone(), agent_json(view, agent, used, offered))
        })
        .collect()
}

/// A task status as `/master/state` wrote it before, through `Serialize`.
struct LegacyStatus<'a>(&'a TaskStatus);

impl Serialize for LegacyStatus<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let s = self.0;
        let mut map = serializer.serialize_map(None)?;
        if let Some(container) = &s.container_status {
            map.serialize_entry("container_status", container)?;
        }
        if let Some(healthy) = s.healthy {
            map.serialize_entry("healthy", &healthy)?;
        }
        if let Some(labels) = &s.labels {
            map.serialize_entry("labels", &labels.labels)?;
        }
        map.serialize_entry("state", &s.state)?;
        map.serialize_entry("timestamp", &s.timestamp.unwrap_or(0.0))?;
        map.end()
    }
}

/// A task as `/master/state` wrote it before, through `Serialize`.
struct LegacyTask<'a>(&'a FrameworkId, &'a Task);

impl Serialize for LegacyTask<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (framework_id, task) = (self.0, self.1);
        let info = &task.info;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("id", &info.task_id.value)?;
        map.serialize_entry("name", &info.name)?;
        map.serialize_entry("framework_id", &framework_id.value)?;
        let executor_id = task.executor_id.as_ref().map_or("", |e| e.as_str());
        map.serialize_entry("executor_id", executor_id)?;
        map.serialize_entry("slave_id", &task.info.agent_id.value)?;
        map.serialize_entry("state", &task.state)?;
        map.serialize_entry("resources", &task.resources.legacy())?;
        map.serialize_entry("role", &task.role)?;
        let statuses: Vec<_> = task.statuses.iter().map(|s| s.status(task)).collect();
        let statuses: Vec<LegacyStatus> = statuses.iter().map(|s| LegacyStatus(s)).collect();
        map.serialize_entry("statuses", &statuses)?;
        if let Some(labels) = &info.labels {
            map.serialize_entry("labels", &labels.labels)?;
        }
        if let Some(time) = task.unreachable_time {
            let time = json!({"nanoseconds": (time * 1e9) as i64});
            map.serialize_entry("unreachable_time", &time)?;
        }
        for (key, value) in [
            ("discovery", &info.discovery),
            ("container", &info.container),
            ("health_check", &info.health_check),
        ] {
            if let Some(v) = value {
                map.serialize_entry(key, v)?;
            }
        }
        if let Some(user) = &info.user {
            map.serialize_entry("user", user)?;
        }
        map.end()
    }
}

/// One of a framework's task lists, through `Serialize`.
struct Tasks<'a>(&'a Framework, &'static str);

impl Serialize for Tasks<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let framework = &self.0.id;
        serializer.collect_seq(task_list(self.0, self.1).map(|t| LegacyTask(framework, t)))
    }
}

/// A framework as `/master/state` wrote it before: its fields from a `Value`, then its
/// task lists.
struct OldFrameworkDoc<'a>(&'a StateView, &'a Framework);

impl Serialize for OldFrameworkDoc<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        if let Value::Object(fields) = framework_fields(self.0, self.1) {
            for (key, value) in &fields {
                map.serialize_entry(key, value)?;
            }
        }
        for list in TASK_LISTS {
            map.serialize_entry(list, &Tasks(self.1, list))?;
        }
        map.end()
    }
}

/// `/master/state` as it was rendered before.
fn old_state_bytes(view: &StateView) -> Vec<u8> {
    let mut fields = view.state_fields(&view.role_usage());
    let slaves: Vec<Value> = agents_json(view).into_iter().map(|(_, a)| a).collect();
    fields["slaves"] = json!(slaves);
    let mut out = b"{".to_vec();
    for (key, value) in fields.as_object().unwrap() {
        serde_json::to_writer(&mut out, key).unwrap();
        out.push(b':');
        serde_json::to_writer(&mut out, value).unwrap();
        out.push(b',');
    }
    let frameworks: Vec<OldFrameworkDoc> = view
        .frameworks
        .values()
        .map(|f| OldFrameworkDoc(view, f))
        .collect();
    let completed: Vec<OldFrameworkDoc> = view
        .completed_frameworks
        .iter()
        .map(|f| OldFrameworkDoc(view, f))
        .collect();
    out.extend_from_slice(b"\"frameworks\":");
    serde_json::to_writer(&mut out, &frameworks).unwrap();
    out.extend_from_slice(b",\"completed_frameworks\":");
    serde_json::to_writer(&mut out, &completed).unwrap();
    out.push(b'}');
    out
}

/// Task counts per state and peers, as `/master/state-summary` built them before.
fn summary_into(out: &mut Value, tasks: &[&Task], peer: impl Fn(&Task) -> String, key: &str) {
    for state in super::legacy_docs::SUMMARY_STATES {
        out[state.as_str()] = json!(tasks.iter().filter(|t| t.state == state).count());
    }
    let peers: std::collections::BTreeSet<String> = tasks.iter().map(|t| peer(t)).collect();
    out[key] = json!(peers);
}

/// `/master/state-summary` as it was built before.
fn old_state_summary(view: &StateView) -> Value {
    let all: Vec<&Framework> = view
        .frameworks
        .values()
        .chain(view.completed_frameworks.iter().map(|f| &**f))
        .collect();
    fn tasks_of<'a>(framework: &&'a Framework) -> Vec<&'a Task> {
        StateView::framework_tasks(framework).collect()
    }
    let slaves: Vec<Value> = agents_json(view)
        .into_iter()
        .map(|(id, mut agent)| {
            let mut tasks = Vec::new();
            let mut owners = BTreeMap::new();
            for framework in &all {
                for task in tasks_of(framework) {
                    if task.info.agent_id == id {
                        tasks.push(task);
                        owners.insert(task.info.task_id.clone(), framework.id.to_string());
                    }
                }
            }
            summary_into(
                &mut agent,
                &tasks,
                |t| owners[&t.info.task_id].clone(),
                "framework_ids",
            );
            agent
        })
        .collect();
    let frameworks: Vec<Value> = view
        .frameworks
        .values()
        .map(|framework| {
            let full = framework_fields(view, framework);
            let mut out = Map::new();
            for key in [
                "id",
                "name",
                "used_resources",
                "offered_resources",
                "capabilities",
                "hostname",
                "webui_url",
                "active",
                "connected",
                "recovered",
                "role",
                "roles",
                "principal",
            ] {
                if let Some(value) = full.get(key) {
                    out.insert(key.to_string(), value.clone());
                }
            }
            let mut out = Value::Object(out);
            let tasks = tasks_of(&framework);
            summary_into(
                &mut out,
                &tasks,
                |t| t.info.agent_id.to_string(),
                "slave_ids",
            );
            out
        })
        .collect();
    let mut out = json!({"hostname": view.hostname, "slaves": slaves, "frameworks": frameworks});
    if let Some(cluster) = view.flags.get("cluster") {
        out["cluster"] = json!(cluster);
    }
    out
}

/// `/master/slaves` as it was built before.
fn old_slaves(view: &StateView) -> Value {
    let usage = agent_usage(view);
    let none = (Resources::new(), Resources::new());
    let slaves: Vec<Value> = agents_json(view)
        .into_iter()
        .map(|(id, mut out)| {
            let agent = view.agents.get(&id).unwrap();
            let (used, offered) = usage.get(&id).unwrap_or(&none);
            let (reserved, unreserved) = by_role(&agent.total);
            out["reserved_resources_full"] = reserved
                .iter()
                .map(|(role, r)| (role.clone(), json!(r.to_wire())))
                .collect::<Map<String, Value>>()
                .into();
            out["unreserved_resources_full"] = json!(unreserved.to_wire());
            out["used_resources_full"] = json!(used.to_wire());
            out["offered_resources_full"] = json!(offered.to_wire());
            out
        })
        .collect();
    json!({"slaves": slaves, "recovered_slaves": view.recovered_slaves_json()})
}

/// A framework's legacy JSON as `/master/frameworks` built it before.
fn old_framework_json(view: &StateView, framework: &Framework) -> Value {
    let mut out = framework_fields(view, framework);
    for list in TASK_LISTS {
        out[list] = serde_json::to_value(Tasks(framework, list)).unwrap();
    }
    out
}

/// A core with something of everything the legacy endpoints show.
fn busy_master() -> Master {
    let mut m = master();
    m.config
        .flags
        .insert("cluster".into(), "clüster \"q\"".into());
    let mut registration = register_call(
        None,
        "cpus:8;mem:2048;disk:100;ports:[31000-31009];cpus(eng):2",
    );
    registration.agent_info.hostname = "hôst\t\"ä\"\\ \u{1F600}".into();
    registration.agent_info.attributes = serde_json::from_value(json!([
        {"name": "rack", "type": "TEXT", "text": {"value": "r\u{e9}1"}},
        {"name": "zone", "type": "SCALAR", "scalar": {"value": 2.5}},
        {"name": "rack", "type": "TEXT", "text": {"value": "later"}},
    ]))
    .unwrap();
    let a1 = m.register_agent(0.0, "a1".into(), registration).unwrap();
    let a2 = register(&mut m, "a2", "cpus:4;mem:1024");
    let a3 = register(&mut m, "a3", "cpus:2;mem:512");
    m.deactivated.insert(a3.clone());
    m.draining.insert(
        a3,
        Drain {
            info: serde_json::from_value(
                json!({"state": "DRAINING", "config": {"mark_gone": false}}),
            )
            .unwrap(),
            started: Some(7.5),
        },
    );
    let info = json!({"user": "rööt", "name": "fw \"one\"\n\u{2603}", "roles": ["eng"],
        "capabilities": [{"type": "MULTI_ROLE"}], "principal": "pr\u{ed}ncipal",
        "hostname": "fhost", "webui_url": "http://ui/\u{e9}", "checkpoint": true,
        "failover_timeout": 60.5,
        "labels": {"labels": [{"key": "k\u{e9}", "value": "v\"1"}, {"key": "bare"}]}});
    let fid = subscribe_info(&mut m, "s1", serde_json::from_value(info).unwrap());
    m.allocate(0.0);
    let got = offers(&events(&mut m, "s1"));
    let mut t1 = command_task("t1 \u{1F600}", &a1, "cpus:1;mem:10;ports:[31000-31001]");
    t1.labels = serde_json::from_value(json!({"labels": [{"key": "l\n", "value": "ü"}]})).unwrap();
    // The master keeps only the command's user; every render still shows it.
    t1.command.as_mut().unwrap().user = Some("nöbody".into());
    let mut executor_task = command_task("ex-task", &a2, "cpus:1;mem:32");
    executor_task.command = None;
    executor_task.executor = Some(
        serde_json::from_value(json!({"executor_id": {"value": "ë1"}, "name": "ëx \"1\"",
            "framework_id": {"value": fid.value},
            "command": {"value": "run \"x\"", "shell": true, "arguments": ["a"], "user": "éxec",
                        "uris": [{"value": "http://u", "executable": true}]},
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}}]}))
        .unwrap(),
    );
    for (agent, tasks) in [
        (
            &a1,
            vec![
                t1,
                command_task("t2", &a1, "cpus:2;mem:20"),
                command_task("t3", &a1, "cpus(eng):1"),
            ],
        ),
        (&a2, vec![executor_task]),
    ] {
        // A MULTI_ROLE framework names the role of what it uses.
        let mut tasks = tasks;
        for resource in tasks.iter_mut().flat_map(|t| t.resources.iter_mut()) {
            resource.allocation_info = Some(mantle_api::resources::AllocationInfo {
                role: Some("eng".into()),
            });
        }
        let accept = mantle_api::scheduler::Accept {
            offer_ids: got
                .iter()
                .filter(|o| &o.agent_id == agent)
                .map(|o| o.id.clone())
                .collect(),
            operations: vec![Operation::launch(tasks)],
            filters: None,
        };
        call(&mut m, &fid, "s1", CallBody::Accept(accept)).unwrap();
    }
    let errors: Vec<_> = events(&mut m, "s1")
        .into_iter()
        .filter_map(|e| match e {
            Event::Update(u) => Some(u.status.message),
            _ => None,
        })
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    let status = |task: &str, state: TaskState, time: f64| {
        let mut status = TaskStatus::new(TaskId::new(task), state);
        status.uuid = Some(new_status_uuid());
        status.timestamp = Some(time);
        status.healthy = Some(true);
        status.labels =
            serde_json::from_value(json!({"labels": [{"key": "s", "value": "é"}]})).unwrap();
        AgentCall::StatusUpdate(StatusUpdate {
            framework_id: fid.clone(),
            status,
        })
    };
    m.agent_call(1.0, "a1", status("t1 \u{1F600}", TaskState::Running, 1.25))
        .unwrap();
    m.agent_call(1.0, "a1", status("t2", TaskState::Finished, 1.5))
        .unwrap();
    let uuid = events(&mut m, "s1")
        .iter()
        .filter_map(|e| match e {
            Event::Update(u) if u.status.task_id.as_str() == "t2" => u.status.uuid.clone(),
            _ => None,
        })
        .next()
        .unwrap();
    let ack = mantle_api::scheduler::Acknowledge {
        agent_id: a1.clone(),
        task_id: TaskId::new("t2"),
        uuid,
    };
    call(&mut m, &fid, "s1", CallBody::Acknowledge(ack)).unwrap();
    // A framework that is gone: its tasks are completed with it.
    let other = subscribe(&mut m, "s2", "second");
    m.allocate(20.0);
    let mine = offers(&events(&mut m, "s2"));
    if let Some(offer) = mine.first() {
        let task = command_task("gone-task", &offer.agent_id, "cpus:1");
        let accept = mantle_api::scheduler::Accept {
            offer_ids: vec![offer.id.clone()],
            operations: vec![Operation::launch(vec![task])],
            filters: None,
        };
        m.scheduler_call(21.0, &other, Some("s2"), CallBody::Accept(accept))
            .unwrap();
    }
    m.scheduler_call(22.0, &other, Some("s2"), CallBody::Teardown)
        .unwrap();
    m.allocate(40.0);
    m.take_actions();
    m
}

#[test]
fn state_equals_the_value_tree_render() {
    let m = busy_master();
    let view = m.view();
    let new = view.state_bytes();
    let old = old_state_bytes(&view);
    // The same document; the new render writes the frameworks first and each
    // framework's task lists before its fields.
    let parsed = |bytes: &[u8]| serde_json::from_slice::<Value>(bytes).unwrap();
    assert_eq!(parsed(&new), parsed(&old));
    // The parts join into the same document, and it holds what the core holds.
    assert_eq!(view.state_parts().concat(), new);
    let state: Value = serde_json::from_slice(&new).unwrap();
    let frameworks = state["frameworks"].as_array().unwrap();
    assert_eq!(frameworks.len(), 1);
    let fw = &frameworks[0];
    assert_eq!(fw["name"], "fw \"one\"\n\u{2603}");
    assert_eq!(fw["roles"], json!(["eng"]));
    assert_eq!(fw["tasks"].as_array().unwrap().len(), 3);
    assert_eq!(fw["completed_tasks"][0]["id"], "t2");
    assert_eq!(fw["completed_tasks"][0]["state"], "TASK_FINISHED");
    assert_eq!(fw["executors"][0]["executor_id"], "ë1");
    assert!(!fw["offers"].as_array().unwrap().is_empty());
    assert_eq!(fw["offers"][0]["allocation_info"]["role"], "eng");
    assert_eq!(state["completed_frameworks"][0]["name"], "second");
    let slaves = state["slaves"].as_array().unwrap();
    assert_eq!(slaves.len(), 3);
    let a1 = slaves
        .iter()
        .find(|s| s["hostname"] == "hôst\t\"ä\"\\ \u{1F600}")
        .unwrap();
    assert_eq!(a1["attributes"], json!({"rack": "later", "zone": 2.5}));
    assert_eq!(a1["used_resources"]["cpus"], 2.0);
    assert_eq!(a1["used_resources"]["ports"], "[31000-31001]");
    assert_eq!(a1["reserved_resources"]["eng"]["cpus"], 2.0);
    assert_eq!(a1["unreserved_resources"]["cpus"], 8.0);
    assert_eq!(a1["port"], 5051);
    let drained = slaves.iter().find(|s| s["deactivated"] == true).unwrap();
    assert_eq!(drained["drain_info"]["state"], "DRAINING");
    assert_eq!(drained["estimated_drain_start_time_seconds"], 7.5);
    assert_eq!(state["cluster"], "clüster \"q\"");
}

#[test]
fn state_summary_slaves_and_frameworks_equal_the_value_tree_render() {
    let m = busy_master();
    let view = m.view();
    let summary = serde_json::to_string(&view.state_summary()).unwrap();
    assert_eq!(
        summary,
        serde_json::to_string(&old_state_summary(&view)).unwrap()
    );
    let parsed: Value = serde_json::from_str(&summary).unwrap();
    let fw = &parsed["frameworks"][0];
    assert_eq!(fw["TASK_RUNNING"], 1);
    assert_eq!(fw["TASK_STAGING"], 2);
    assert_eq!(fw["TASK_FINISHED"], 1);
    assert_eq!(fw["slave_ids"].as_array().unwrap().len(), 2);
    // `/master/slaves` keeps its fields; the `_full` Resource objects now keep their
    // declaration order.
    let slaves = serde_json::to_string(&view.slaves_doc(None)).unwrap();
    let parsed: Value = serde_json::from_str(&slaves).unwrap();
    assert_eq!(parsed, old_slaves(&view));
    assert!(parsed["slaves"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["reserved_resources_full"]["eng"][0]["role"] == "eng"));
    let one = view.agents.values().next().unwrap().id.value.clone();
    let only: Value = serde_json::to_value(view.slaves_doc(Some(&one))).unwrap();
    assert_eq!(only["slaves"].as_array().unwrap().len(), 1);
    assert_eq!(only["slaves"][0]["id"], &*one);
    // `/master/frameworks` keeps its fields; the task lists now come last.
    let frameworks: Value = serde_json::from_slice(&view.frameworks_bytes(None)).unwrap();
    let expected = json!({
        "frameworks": view.frameworks.values().map(|f| old_framework_json(&view, f)).collect::<Vec<_>>(),
        "completed_frameworks": view.completed_frameworks.iter().map(|f| old_framework_json(&view, f)).collect::<Vec<_>>(),
        "unregistered_frameworks": [],
    });
    assert_eq!(frameworks, expected);
    let gone = view.completed_frameworks[0].id.value.clone();
    let only: Value = serde_json::from_slice(&view.frameworks_bytes(Some(&gone))).unwrap();
    assert_eq!(only["frameworks"], json!([]));
    assert_eq!(only["completed_frameworks"][0]["id"], &*gone);
}

/// The reference v1 task: as GET_STATE built it before.
fn old_task_v1(framework_id: &FrameworkId, task: &Task) -> Value {
    let info = &task.info;
    let mut out = json!({
        "name": info.name,
        "task_id": info.task_id,
        "framework_id": framework_id,
        "agent_id": task.info.agent_id,
        "state": task.state,
        "resources": task.resources.to_wire(),
        "statuses": task.statuses.iter().map(|s| s.status(task)).collect::<Vec<_>>(),
    });
    if let Some(executor_id) = &task.executor_id {
        out["executor_id"] = json!(executor_id);
    }
    if let Some(state) = task.status_update_state {
        out["status_update_state"] = json!(state);
    }
    if let Some(uuid) = &task.status_update_uuid {
        out["status_update_uuid"] = json!(uuid);
    }
    if let Some(labels) = &info.labels {
        out["labels"] = json!(labels);
    }
    if let Some(policy) = &info.kill_policy {
        out["kill_policy"] = json!(policy);
    }
    if let Some(user) = &info.user {
        out["user"] = json!(user);
    }
    for (key, value) in [
        ("discovery", &info.discovery),
        ("container", &info.container),
        ("health_check", &info.health_check),
        ("limits", &info.limits),
    ] {
        if let Some(v) = value {
            out[key] = Value::clone(v);
        }
    }
    out
}

fn old_get_tasks(view: &StateView) -> Value {
    let frameworks = || {
        view.frameworks
            .values()
            .chain(view.completed_frameworks.iter().map(|f| &**f))
    };
    json!({
        "tasks": frameworks().flat_map(|f| f.tasks.values().map(|t| old_task_v1(&f.id, t))).collect::<Vec<_>>(),
        "unreachable_tasks": frameworks().flat_map(|f| f.unreachable_tasks.values().map(|t| old_task_v1(&f.id, t))).collect::<Vec<_>>(),
        "completed_tasks": frameworks().flat_map(|f| f.completed_tasks.iter().map(|t| old_task_v1(&f.id, t))).collect::<Vec<_>>(),
    })
}

#[test]
fn get_state_equals_the_value_tree_render() {
    let m = busy_master();
    let view = m.view();
    let bytes = super::ascii_json(&view.get_state());
    assert!(bytes.is_ascii());
    let expected = json!({
        "get_tasks": old_get_tasks(&view),
        "get_executors": view.get_executors(),
        "get_frameworks": view.get_frameworks(),
        "get_agents": view.get_agents(),
    });
    // The same fields and values; nested messages keep their declaration order now.
    let state: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(state, expected);
    let tasks = state["get_tasks"]["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 3);
    let task = |id: &str| tasks.iter().find(|t| t["task_id"]["value"] == id).unwrap();
    let t1 = task("t1 \u{1F600}");
    assert_eq!(t1["state"], "TASK_RUNNING");
    assert_eq!(t1["labels"]["labels"][0]["value"], "ü");
    assert_eq!(t1["user"], "nöbody");
    // As Mesos does, a task without a command user shows its executor's.
    assert_eq!(task("ex-task")["user"], "éxec");
    assert_eq!(t1["statuses"][0]["timestamp"], 1.25);
    assert_eq!(
        state["get_tasks"]["completed_tasks"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

/// A task as the master keeps it after `states` were reported, the last one current.
static TASK_RESOURCES: std::sync::OnceLock<Resources> = std::sync::OnceLock::new();

fn made_task(agent: &AgentId, id: String, states: &[TaskState]) -> Task {
    let mut info = command_task(&id, agent, "cpus:1;mem:128");
    info.command = Some(CommandInfo::shell("sleep infinity"));
    let statuses: Vec<KeptStatus> = states
        .iter()
        .enumerate()
        .map(|(i, state)| {
            let mut status = TaskStatus::new(info.task_id.clone(), *state);
            status.source = Some(Source::Executor);
            status.agent_id = Some(agent.clone());
            status.timestamp = Some(1.7e9 + i as f64 + 0.123456);
            status.uuid = Some(new_status_uuid());
            KeptStatus::keep(&status, agent, None)
        })
        .collect();
    Task {
        // Shared, as the master's tasks of one shape share theirs.
        resources: TASK_RESOURCES
            .get_or_init(|| Resources::from_wire("resources", &info.resources).unwrap())
            .clone(),
        executor_id: None,
        role: "*".into(),
        state: *states.last().unwrap(),
        status_update_state: None,
        status_update_uuid: None,
        statuses,
        launched_at: 1.7e9,
        unreachable_time: None,
        info: KeptInfo::keep(&info, agent),
    }
}

/// Times the renders in process on a synthetic core of Mesos's
/// `MasterStateQuery_BENCHMARK_Test` shape: 20,000 agents, 200,000 running tasks of 20
/// frameworks and 200,000 completed tasks of 200 (1,000 each, the most a framework
/// keeps), every agent offered. `MANTLE_RENDER_AGENTS` scales it down (10 tasks per
/// agent each). Run with `cargo test --release -p mantle-master --lib render_full_shape
/// -- --ignored --nocapture`; it prints one JSON line.
#[test]
#[ignore]
fn render_full_shape() {
    use std::time::Instant;
    let agents: usize = std::env::var("MANTLE_RENDER_AGENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    let built = Instant::now();
    let mut m = master();
    let agent_ids: Vec<AgentId> = (0..agents)
        .map(|i| {
            let mut registration =
                register_call(None, "cpus:12;mem:12288;disk:100000;ports:[31000-32000]");
            registration.agent_info.hostname = format!("agent-{i}.example.com");
            registration.pid = format!(
                "slave(1)@10.{}.{}.{}:5051",
                i >> 16,
                (i >> 8) & 255,
                i & 255
            );
            m.register_agent(0.0, format!("agent-{i}").into(), registration)
                .unwrap()
        })
        .collect();
    let tasks = agents * 10;
    let subscribe_named = |m: &mut Master, name: String| {
        let id = subscribe(m, &name.clone(), &name);
        m.take_actions();
        id
    };
    let running: Vec<FrameworkId> = (0..20)
        .map(|i| subscribe_named(&mut m, format!("state-running-{i}")))
        .collect();
    for i in 0..tasks {
        let fid = &running[i % running.len()];
        let task = made_task(
            &agent_ids[i / 10],
            format!("running-{i}"),
            &[TaskState::Running],
        );
        let framework = m.frameworks.get_mut(fid).unwrap();
        framework.tasks.insert(task.info.task_id.clone(), task);
    }
    for f in 0..tasks.div_ceil(1000) {
        let fid = subscribe_named(&mut m, format!("state-completed-{f}"));
        let framework = m.frameworks.get_mut(&fid).unwrap();
        for i in f * 1000..((f + 1) * 1000).min(tasks) {
            let states = [TaskState::Running, TaskState::Finished];
            let task = made_task(&agent_ids[i / 10], format!("completed-{i}"), &states);
            framework.completed_tasks.push_back(Arc::new(task));
        }
    }
    m.allocate(1.0);
    m.take_actions();
    let built = built.elapsed();
    let view = m.view();
    // `MANTLE_RENDER_ONLY=name,..` times only those renders (for a profile of one).
    let only = std::env::var("MANTLE_RENDER_ONLY").unwrap_or_default();
    // CPU time of the whole process in milliseconds (all threads), which a loaded
    // machine distorts less than the wall time.
    let cpu_ms = || {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        let fields: Vec<&str> = stat.rsplit(") ").next().unwrap_or("").split(' ').collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        (ticks(11) + ticks(12)) * 10.0
    };
    let cpu_times = std::cell::RefCell::new(BTreeMap::new());
    let time = |name: &str, render: &dyn Fn() -> usize| {
        if !only.is_empty() && !only.split(',').any(|n| n == name) {
            return (0.0, 0);
        }
        // More runs when profiling one render, so that it dominates the profile.
        let count = if only.is_empty() { 5 } else { 15 };
        let mut runs: Vec<(f64, f64, usize)> = (0..count)
            .map(|_| {
                let (started, cpu) = (Instant::now(), cpu_ms());
                let len = render();
                let wall = started.elapsed().as_secs_f64() * 1e3;
                (wall, cpu_ms() - cpu, len)
            })
            .collect();
        runs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (wall, _, len) = runs[runs.len() / 2];
        runs.sort_by(|a, b| a.1.total_cmp(&b.1));
        cpu_times
            .borrow_mut()
            .insert(name.to_string(), runs[runs.len() / 2].1);
        (wall, len)
    };
    let (state_ms, state_len) = time("state", &|| view.state_parts().iter().map(Vec::len).sum());
    // The render and its transfer through a loopback socket, each part sent as soon as
    // it is written, to a reader that collects the body as an HTTP client does.
    let (state_tcp_ms, _) = time("state_tcp", &|| {
        send_over_loopback(&|emit| view.render_state(&Vec::with_capacity, emit))
    });
    let (summary_ms, summary_len) = time("summary", &|| {
        serde_json::to_vec(&view.state_summary()).unwrap().len()
    });
    let (get_state_ms, get_state_len) =
        time("get_state", &|| super::ascii_json(&view.get_state()).len());
    // The renders this replaced, for comparison on the same core.
    let (old_state_ms, _) = time("before_state", &|| old_state_bytes(&view).len());
    let (old_get_state_ms, _) = time("before_get_tasks", &|| {
        let tasks = old_get_tasks(&view);
        mantle_api::json::to_ascii_json(&json!({"get_tasks": tasks})).len()
    });
    println!(
        "{}",
        json!({
            "render": "full-shape", "agents": agents, "running": tasks, "completed": tasks,
            "offers": view.offers.len(), "build_s": built.as_secs_f64(),
            "state_ms_p50": state_ms, "state_tcp_ms_p50": state_tcp_ms, "state_mb": state_len as f64 / 1e6,
            "state_summary_ms_p50": summary_ms, "state_summary_mb": summary_len as f64 / 1e6,
            "get_state_ms_p50": get_state_ms, "get_state_mb": get_state_len as f64 / 1e6,
            "before_state_ms_p50": old_state_ms, "before_get_tasks_only_ms_p50": old_get_state_ms,
            "cpu_ms_p50": *cpu_times.borrow(),
        })
    );
    assert!(only.is_empty() || state_len > tasks * 100);
}

/// Writes the parts `render` emits to a loopback TCP socket as they come, read by
/// another thread, which collects what it reads and joins it; returns the bytes it
/// received.
fn send_over_loopback(render: &dyn Fn(super::state::Emit)) -> usize {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let reader = std::thread::spawn(move || {
        let (mut socket, _) = listener.accept().unwrap();
        let mut chunks = Vec::new();
        loop {
            let mut chunk = vec![0u8; 1 << 16];
            let read = socket.read(&mut chunk).unwrap();
            if read == 0 {
                break;
            }
            chunk.truncate(read);
            chunks.push(chunk);
        }
        chunks.concat().len()
    });
    let (parts, to_send) = std::sync::mpsc::channel::<Vec<u8>>();
    let writer = std::thread::spawn(move || {
        let mut socket = std::net::TcpStream::connect(address).unwrap();
        for part in to_send {
            socket.write_all(&part).unwrap();
        }
    });
    let parts = std::sync::Mutex::new(parts);
    render(&|part| parts.lock().unwrap().send(part).unwrap());
    drop(parts);
    writer.join().unwrap();
    reader.join().unwrap()
}
