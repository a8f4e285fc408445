//! The legacy JSON endpoints beside `/master/state` (reference §4): `/master/state-summary`
//! with its per-agent and per-framework task counts, `/master/frameworks`,
//! `/master/slaves` with the `_full` resource arrays, `/master/tasks` with its limit,
//! offset and order, and `/master/flags`. Rendered by readers from a [`StateView`].

use super::legacy_docs::{AgentDoc, AgentExtra, FrameworkExtra, FrameworkFields, Summary};
use super::state::{task_json, write_frameworks};
use super::{Framework, StateView, Task};
use mantle_api::*;
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::HashMap;

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
        .and_then(|s| s.timestamp())
        .unwrap_or(task.launched_at)
}

impl StateView {
    fn all_frameworks(&self) -> impl Iterator<Item = &Framework> {
        self.frameworks
            .values()
            .chain(self.completed_frameworks.iter().map(|f| &**f))
    }

    /// Every task a framework holds: live, unreachable and completed.
    pub(super) fn framework_tasks(framework: &Framework) -> impl Iterator<Item = &Task> {
        framework
            .tasks
            .values()
            .chain(framework.unreachable_tasks.values())
            .chain(framework.completed_tasks.iter().map(|t| &**t))
    }

    /// `/master/state-summary`: `{cluster?, frameworks[], hostname, slaves[]}`.
    pub fn state_summary(&self) -> impl Serialize + '_ {
        StateSummary(self)
    }

    /// `/master/frameworks?framework_id=`, written as `/master/state` writes them.
    pub fn frameworks_bytes(&self, framework_id: Option<&str>) -> Vec<u8> {
        let wanted = |f: &&Framework| framework_id.is_none_or(|id| f.id.as_str() == id);
        let completed = self.completed_frameworks.iter().map(|f| &**f);
        let offers = self.framework_offers();
        let mut out = b"{\"completed_frameworks\":[".to_vec();
        write_frameworks(&mut out, &offers, completed.filter(wanted), None);
        out.extend_from_slice(b"],\"frameworks\":[");
        let frameworks = self.frameworks.values().filter(wanted);
        write_frameworks(&mut out, &offers, frameworks, None);
        out.extend_from_slice(b"],\"unregistered_frameworks\":[]}");
        out
    }

    /// `/master/slaves?slave_id=`: the agents of `/master/state` plus their resources as
    /// v1 Resource arrays (`reserved_resources_full` keyed by role).
    pub fn slaves_doc<'a>(&'a self, slave_id: Option<&'a str>) -> impl Serialize + 'a {
        SlavesDoc(self, slave_id)
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
                    "resources": Value::Object(resources.legacy_json()),
                })
            })
            .collect()
    }

    /// `/master/tasks`: active, unreachable and completed tasks of every framework, by
    /// their first status time.
    pub fn tasks_json(&self, query: &TasksQuery) -> Value {
        let mut tasks: Vec<(&FrameworkId, &Task)> = self
            .all_frameworks()
            .filter(|f| {
                query
                    .framework_id
                    .as_deref()
                    .is_none_or(|id| f.id.as_str() == id)
            })
            .flat_map(|f| Self::framework_tasks(f).map(move |t| (&f.id, t)))
            .filter(|(_, t)| {
                query
                    .task_id
                    .as_deref()
                    .is_none_or(|id| t.info.task_id.as_str() == id)
            })
            .collect();
        // Tasks seen at the same time are ordered by ID, so that pages do not overlap
        // and `asc` is exactly the reverse of `des`.
        tasks.sort_by(|(_, a), (_, b)| {
            let order = first_seen(a)
                .total_cmp(&first_seen(b))
                .then_with(|| a.info.task_id.as_str().cmp(b.info.task_id.as_str()));
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
        json!({"tasks": page.map(|(f, t)| task_json(f, t)).collect::<Vec<_>>()})
    }

    /// `/master/flags`: `{"flags": {name: value}}`.
    pub fn flags_json(&self) -> Value {
        json!({ "flags": self.flags })
    }
}

struct StateSummary<'a>(&'a StateView);

impl Serialize for StateSummary<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let view = self.0;
        let mut per_agent: HashMap<&str, Summary> = HashMap::new();
        let mut per_framework: HashMap<&str, Summary> = HashMap::new();
        for framework in view.all_frameworks() {
            let summary = per_framework.entry(framework.id.as_str()).or_default();
            for task in StateView::framework_tasks(framework) {
                summary.count(task.state, task.info.agent_id.as_str());
            }
            for task in StateView::framework_tasks(framework) {
                let agent = per_agent.entry(task.info.agent_id.as_str()).or_default();
                agent.count(task.state, framework.id.as_str());
            }
        }
        let usage = view.agent_usage();
        let empty = Summary::default();
        let slaves = view
            .agents
            .values()
            .zip(&usage)
            .map(|(agent, usage)| AgentDoc {
                view,
                agent,
                usage,
                extra: AgentExtra::Summary(per_agent.get(agent.id.as_str()).unwrap_or(&empty)),
            });
        let offers = view.framework_offers();
        let frameworks = view.frameworks.values().map(|framework| FrameworkFields {
            framework,
            offers: offers.of(framework),
            used: None,
            extra: FrameworkExtra::Summary(
                per_framework.get(framework.id.as_str()).unwrap_or(&empty),
            ),
        });
        let mut map = serializer.serialize_map(None)?;
        if let Some(cluster) = view.flags.get("cluster") {
            map.serialize_entry("cluster", cluster)?;
        }
        map.serialize_entry("frameworks", &Seq::new(frameworks))?;
        map.serialize_entry("hostname", &view.hostname)?;
        map.serialize_entry("slaves", &Seq::new(slaves))?;
        map.end()
    }
}

struct SlavesDoc<'a>(&'a StateView, Option<&'a str>);

impl Serialize for SlavesDoc<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (view, wanted) = (self.0, self.1);
        let usage = view.agent_usage();
        let slaves = view
            .agents
            .values()
            .zip(&usage)
            .filter(|(agent, _)| wanted.is_none_or(|id| agent.id.as_str() == id))
            .map(|(agent, usage)| AgentDoc {
                view,
                agent,
                usage,
                extra: AgentExtra::Full,
            });
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("recovered_slaves", &view.recovered_slaves_json())?;
        map.serialize_entry("slaves", &Seq::new(slaves))?;
        map.end()
    }
}

/// A JSON array written from an iterator, once.
pub(super) struct Seq<I>(std::cell::Cell<Option<I>>);

impl<I> Seq<I> {
    pub fn new(items: I) -> Self {
        Seq(std::cell::Cell::new(Some(items)))
    }
}

impl<I: Iterator<Item = T>, T: Serialize> Serialize for Seq<I> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.take().into_iter().flatten())
    }
}
