//! The legacy JSON endpoints beside `/master/state` (reference §4): `/master/state-summary`
//! with its per-agent and per-framework task counts, `/master/frameworks`,
//! `/master/slaves` with the `_full` resource arrays, `/master/tasks` with its limit,
//! offset and order, and `/master/flags`. Rendered by readers from a [`StateView`].

use super::state::{by_role, flat, task_json};
use super::{Framework, StateView, Task};
use mantle_api::*;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The task states `/master/state-summary` counts, in Mesos's order.
const SUMMARY_STATES: [TaskState; 10] = [
    TaskState::Staging,
    TaskState::Starting,
    TaskState::Running,
    TaskState::Killing,
    TaskState::Finished,
    TaskState::Killed,
    TaskState::Failed,
    TaskState::Lost,
    TaskState::Error,
    TaskState::Unreachable,
];

/// Task counts per state, plus the IDs of the other side (frameworks of an agent, agents
/// of a framework).
#[derive(Default)]
struct Summary {
    counts: BTreeMap<TaskState, u64>,
    peers: BTreeSet<String>,
}

impl Summary {
    fn write_into(&self, out: &mut Value, peers_key: &str) {
        for state in SUMMARY_STATES {
            out[state.as_str()] = json!(self.counts.get(&state).copied().unwrap_or(0));
        }
        out[peers_key] = json!(self.peers);
    }
}

/// `/master/tasks` query parameters.
pub struct TasksQuery {
    pub limit: Option<usize>,
    pub offset: usize,
    pub ascending: bool,
    pub framework_id: Option<String>,
    pub task_id: Option<String>,
}

impl TasksQuery {
    /// Reads `limit` (default 100, `-1` for all), `offset`, `order` (`asc` or `des`, the
    /// default), `framework_id` and `task_id`; errors name the parameter.
    pub fn parse(query: &HashMap<String, String>) -> Result<TasksQuery, String> {
        let limit = match query.get("limit").map(String::as_str) {
            None => Some(100),
            Some("-1") => None,
            Some(text) => Some(text.parse::<usize>().map_err(|_| {
                format!(
                    "query parameter 'limit': expecting a non-negative number or -1, got '{text}'"
                )
            })?),
        };
        let offset = match query.get("offset") {
            None => 0,
            Some(text) => text.parse::<usize>().map_err(|_| {
                format!("query parameter 'offset': expecting a non-negative number, got '{text}'")
            })?,
        };
        let ascending = match query.get("order").map(String::as_str) {
            None | Some("des") => false,
            Some("asc") => true,
            Some(other) => {
                return Err(format!(
                    "query parameter 'order': expecting 'asc' or 'des', got '{other}'"
                ))
            }
        };
        Ok(TasksQuery {
            limit,
            offset,
            ascending,
            framework_id: query.get("framework_id").cloned(),
            task_id: query.get("task_id").cloned(),
        })
    }
}

/// When a task started, for `/master/tasks`'s order: its first status, or its launch.
fn first_seen(task: &Task) -> f64 {
    task.statuses
        .first()
        .and_then(|s| s.timestamp)
        .unwrap_or(task.launched_at)
}

impl StateView {
    fn all_frameworks(&self) -> impl Iterator<Item = &Framework> {
        self.frameworks
            .values()
            .chain(self.completed_frameworks.iter().map(|f| &**f))
    }

    /// Every task a framework holds: live, unreachable and completed.
    fn framework_tasks(framework: &Framework) -> impl Iterator<Item = &Task> {
        framework
            .tasks
            .values()
            .chain(framework.unreachable_tasks.values())
            .chain(framework.completed_tasks.iter().map(|t| &**t))
    }

    /// `/master/state-summary`: `{hostname, cluster?, slaves[], frameworks[]}`.
    pub fn state_summary_json(&self) -> Value {
        let mut per_agent: BTreeMap<&str, Summary> = BTreeMap::new();
        let mut per_framework: BTreeMap<&str, Summary> = BTreeMap::new();
        for framework in self.all_frameworks() {
            for task in Self::framework_tasks(framework) {
                let agent = per_agent.entry(task.agent_id.as_str()).or_default();
                *agent.counts.entry(task.state).or_default() += 1;
                agent.peers.insert(framework.id.to_string());
                let summary = per_framework.entry(framework.id.as_str()).or_default();
                *summary.counts.entry(task.state).or_default() += 1;
                summary.peers.insert(task.agent_id.to_string());
            }
        }
        let usage = self.agent_usage();
        let none = (Resources::new(), Resources::new());
        let empty = Summary::default();
        let slaves: Vec<Value> = self
            .agents
            .values()
            .map(|agent| {
                let (used, offered) = usage.get(&agent.id).unwrap_or(&none);
                let mut out = self.agent_json(agent, used, offered);
                per_agent
                    .get(agent.id.as_str())
                    .unwrap_or(&empty)
                    .write_into(&mut out, "framework_ids");
                out
            })
            .collect();
        let frameworks: Vec<Value> = self
            .frameworks
            .values()
            .map(|framework| {
                let full = self.framework_json(framework);
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
                per_framework
                    .get(framework.id.as_str())
                    .unwrap_or(&empty)
                    .write_into(&mut out, "slave_ids");
                out
            })
            .collect();
        let mut out =
            json!({"hostname": self.hostname, "slaves": slaves, "frameworks": frameworks});
        if let Some(cluster) = self.flags.get("cluster") {
            out["cluster"] = json!(cluster);
        }
        out
    }

    /// `/master/frameworks?framework_id=`.
    pub fn frameworks_json(&self, framework_id: Option<&str>) -> Value {
        let wanted = |f: &Framework| framework_id.is_none_or(|id| f.id.as_str() == id);
        json!({
            "frameworks": self.frameworks.values().filter(|f| wanted(f))
                .map(|f| self.framework_json(f)).collect::<Vec<_>>(),
            "completed_frameworks": self.completed_frameworks.iter().filter(|f| wanted(f))
                .map(|f| self.framework_json(f)).collect::<Vec<_>>(),
            "unregistered_frameworks": [],
        })
    }

    /// `/master/slaves?slave_id=`: the agents of `/master/state` plus their resources as
    /// v1 Resource arrays (`reserved_resources_full` keyed by role).
    pub fn slaves_json(&self, slave_id: Option<&str>) -> Value {
        let usage = self.agent_usage();
        let none = (Resources::new(), Resources::new());
        let slaves: Vec<Value> = self
            .agents
            .values()
            .filter(|a| slave_id.is_none_or(|id| a.id.as_str() == id))
            .map(|agent| {
                let (used, offered) = usage.get(&agent.id).unwrap_or(&none);
                let mut out = self.agent_json(agent, used, offered);
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
        json!({"slaves": slaves, "recovered_slaves": self.recovered_slaves_json()})
    }

    /// The registry's agents that have not re-registered since this master started.
    pub fn recovered_slaves_json(&self) -> Vec<Value> {
        self.recovered_agents
            .iter()
            .map(|info| {
                let resources =
                    Resources::from_wire("resources", &info.resources).unwrap_or_default();
                json!({
                    "id": info.id.as_ref().map(|i| i.value.clone()).unwrap_or_default(),
                    "hostname": info.hostname,
                    "port": info.port,
                    "resources": flat(&resources),
                })
            })
            .collect()
    }

    /// `/master/tasks`: active, unreachable and completed tasks of every framework, by
    /// their first status time.
    pub fn tasks_json(&self, query: &TasksQuery) -> Value {
        let mut tasks: Vec<&Task> = self
            .all_frameworks()
            .filter(|f| {
                query
                    .framework_id
                    .as_deref()
                    .is_none_or(|id| f.id.as_str() == id)
            })
            .flat_map(Self::framework_tasks)
            .filter(|t| {
                query
                    .task_id
                    .as_deref()
                    .is_none_or(|id| t.info.task_id.as_str() == id)
            })
            .collect();
        tasks.sort_by(|a, b| {
            let order = first_seen(a).total_cmp(&first_seen(b));
            if query.ascending {
                order
            } else {
                order.reverse()
            }
        });
        let page = tasks
            .into_iter()
            .skip(query.offset)
            .take(query.limit.unwrap_or(usize::MAX));
        json!({"tasks": page.map(task_json).collect::<Vec<_>>()})
    }

    /// `/master/flags`: `{"flags": {name: value}}`.
    pub fn flags_json(&self) -> Value {
        json!({ "flags": self.flags })
    }
}
