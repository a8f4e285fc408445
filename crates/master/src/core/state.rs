//! The legacy JSON of `/master/state` and `/metrics/snapshot` (reference §4), rendered
//! by the readers from a published [`StateView`], off the event loop.

use super::legacy_docs::{AgentDoc, AgentExtra, FrameworkExtra, FrameworkFields};
use super::prefetch::each_task;
use super::usage::{AgentSlots, FrameworkOffers, LiveSums, Sum, Usage};
use super::view::RoleUsage;
use super::{Framework, KeptStatus, StateView, Task};
use mantle_api::*;
use serde::ser::Serializer;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// Writes `text` as a JSON string. Most strings need no escape and are copied whole;
/// the others are escaped by `serde_json`, so the bytes are the same either way.
fn write_str(out: &mut Vec<u8>, text: &str) {
    if text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        write_json(out, text);
    }
}

/// Writes `"key":` for a key that needs no escape.
fn write_key(out: &mut Vec<u8>, key: &str) {
    out.push(b'"');
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
}

/// A task status of the legacy JSON.
fn write_status(out: &mut Vec<u8>, status: &KeptStatus) {
    out.push(b'{');
    let whole = status.whole();
    if let Some(container) = whole.and_then(|s| s.container_status.as_ref()) {
        write_key(out, "container_status");
        write_json(out, container);
        out.push(b',');
    }
    if let Some(healthy) = status.healthy() {
        write_key(out, "healthy");
        write_json(out, &healthy);
        out.push(b',');
    }
    if let Some(labels) = whole.and_then(|s| s.labels.as_ref()) {
        write_key(out, "labels");
        write_json(out, &labels.labels);
        out.push(b',');
    }
    write_key(out, "state");
    write_str(out, status.state().as_str());
    out.push(b',');
    write_key(out, "timestamp");
    write_json(out, &status.timestamp().unwrap_or(0.0));
    out.push(b'}');
}

/// The legacy JSON of the resources written last, kept while one framework's tasks are
/// written: tasks of one shape share their resources (the master converts them through
/// a cache), so the next task's are copied rather than written again.
#[derive(Default)]
struct ResourcesJson(Option<(Resources, Vec<u8>)>);

impl ResourcesJson {
    fn write(&mut self, out: &mut Vec<u8>, resources: &Resources) {
        if let Some((seen, json)) = &self.0 {
            if seen.shares_entries(resources) {
                out.extend_from_slice(json);
                return;
            }
        }
        let start = out.len();
        write_json(out, &resources.legacy());
        let (seen, json) = self.0.get_or_insert_with(Default::default);
        *seen = resources.clone();
        json.clear();
        json.extend_from_slice(&out[start..]);
    }
}

/// A task's legacy JSON, written by hand: `/master/state` holds every task, and a
/// `Value` tree per task cost several times the writing, a `Serialize` call per field
/// about twice. Its fields are in the order Mesos writes them.
/// `framework_id` is the task's, from its framework: the same text, already in the
/// cache.
fn write_task(out: &mut Vec<u8>, task: &Task, framework_id: &str, resources: &mut ResourcesJson) {
    let info = &task.info;
    let executor_id = task.executor_id.as_ref().map_or("", |e| e.as_str());
    for (key, value) in [
        ("{\"id\":", info.task_id.as_str()),
        (",\"name\":", &info.name),
        (",\"framework_id\":", framework_id),
        (",\"executor_id\":", executor_id),
        (",\"slave_id\":", task.info.agent_id.as_str()),
        (",\"state\":", task.state.as_str()),
    ] {
        out.extend_from_slice(key.as_bytes());
        write_str(out, value);
    }
    out.extend_from_slice(b",\"resources\":");
    resources.write(out, &task.resources);
    out.extend_from_slice(b",\"role\":");
    write_str(out, &task.role);
    out.extend_from_slice(b",\"statuses\":[");
    for (i, status) in task.statuses.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_status(out, status);
    }
    out.push(b']');
    if let Some(labels) = &info.labels {
        out.extend_from_slice(b",\"labels\":");
        write_json(out, &labels.labels);
    }
    if let Some(time) = task.unreachable_time {
        out.extend_from_slice(b",\"unreachable_time\":");
        write_json(out, &json!({"nanoseconds": (time * 1e9) as i64}));
    }
    for (key, value) in [
        ("discovery", &info.discovery),
        ("container", &info.container),
        ("health_check", &info.health_check),
    ] {
        if let Some(value) = value {
            out.push(b',');
            write_key(out, key);
            write_json(out, value);
        }
    }
    if let Some(user) = &info.user {
        out.extend_from_slice(b",\"user\":");
        write_str(out, user);
    }
    out.push(b'}');
}

/// A task's legacy JSON as a `Value` (`/master/tasks`).
pub(super) fn task_json(framework_id: &FrameworkId, task: &Task) -> Value {
    let mut out = Vec::new();
    write_task(
        &mut out,
        task,
        framework_id.as_str(),
        &mut ResourcesJson::default(),
    );
    serde_json::from_slice(&out).unwrap_or_default()
}

/// Threads that render the frameworks of `/master/state` at most.
const RENDER_THREADS: usize = 4;

fn write_json(out: &mut Vec<u8>, value: &(impl Serialize + ?Sized)) {
    // Writing to a Vec fails only for a value that cannot be JSON, which none is.
    let _ = serde_json::to_writer(out, value);
}

/// The lists of a framework's tasks, written straight to the output.
pub(super) const TASK_LISTS: [&str; 3] = ["tasks", "unreachable_tasks", "completed_tasks"];

pub(super) fn task_list<'a>(
    framework: &'a Framework,
    list: &str,
) -> Box<dyn Iterator<Item = &'a Task> + 'a> {
    match list {
        "tasks" => Box::new(framework.tasks.values()),
        "unreachable_tasks" => Box::new(framework.unreachable_tasks.values()),
        _ => Box::new(framework.completed_tasks.iter().map(|t| &**t)),
    }
}

/// A framework of `/master/state` and `/master/frameworks`: its task lists written by
/// hand, then its fields. What its live tasks use is summed as they are written (and
/// into `live`, per agent and role, when given): a pass of its own over the tasks of a
/// large framework waited on memory as long as writing them.
pub(super) fn write_framework<'v>(
    out: &mut Vec<u8>,
    offers: &FrameworkOffers,
    framework: &'v Framework,
    mut live: Option<&mut LiveSums<'_, 'v>>,
) {
    let mut used = Sum::default();
    let mut resources = ResourcesJson::default();
    out.push(b'{');
    for list in TASK_LISTS {
        if out.last() != Some(&b'{') {
            out.push(b',');
        }
        out.push(b'"');
        out.extend_from_slice(list.as_bytes());
        out.extend_from_slice(b"\":[");
        let live_list = list == "tasks";
        each_task(task_list(framework, list), |task| {
            if out.last() != Some(&b'[') {
                out.push(b',');
            }
            write_task(out, task, framework.id.as_str(), &mut resources);
            if live_list && !task.state.is_terminal() {
                used.add(&task.resources);
                if let Some(live) = live.as_deref_mut() {
                    live.add(&task.info.agent_id, &task.role, &task.resources);
                }
            }
        });
        out.push(b']');
    }
    for (agent, executors) in &framework.executors {
        for executor in executors.values() {
            used.add(&executor.resources);
            if let Some(live) = live.as_deref_mut() {
                live.add(agent, &executor.role, &executor.resources);
            }
        }
    }
    let fields = FrameworkFields {
        framework,
        offers: offers.of(framework),
        used: Some(used.total()),
        extra: FrameworkExtra::Full,
    };
    // The fields follow the lists in the same object: their opening brace becomes a
    // comma.
    let open = out.len();
    write_json(out, &fields);
    out[open] = b',';
}

/// Frameworks, comma-separated, summing into `live` when given.
pub(super) fn write_frameworks<'v>(
    out: &mut Vec<u8>,
    offers: &FrameworkOffers,
    frameworks: impl Iterator<Item = &'v Framework>,
    mut live: Option<&mut LiveSums<'_, 'v>>,
) {
    for (i, framework) in frameworks.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_framework(out, offers, framework, live.as_deref_mut());
    }
}

/// The agents of `/master/state`, with what each uses and is offered.
struct Agents<'a>(&'a StateView, &'a [Usage]);

impl Serialize for Agents<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let view = self.0;
        let agents = view.agents.values().zip(self.1);
        serializer.collect_seq(agents.map(|(agent, usage)| AgentDoc {
            view,
            agent,
            usage,
            extra: AgentExtra::Plain,
        }))
    }
}

/// The size of the previous render, to size the next one's buffers: growing a buffer
/// of many megabytes by doubling copies it several times over.
struct SizeHint(AtomicUsize);

impl SizeHint {
    /// Room for what the last render wrote per unit, times `units`, and an eighth more.
    fn capacity(&self, units: usize) -> usize {
        let per_unit = self.0.load(Ordering::Relaxed);
        (per_unit * units).saturating_add(per_unit * units / 8) + 4096
    }

    fn record(&self, len: usize, units: usize) {
        self.0.store(len / units.max(1), Ordering::Relaxed);
    }
}

/// Bytes of the fields of `/master/state` but its frameworks, per agent.
static FIELDS_BYTES: SizeHint = SizeHint(AtomicUsize::new(0));
/// Bytes of the frameworks, per unit of [`weight`].
static FRAMEWORK_BYTES: SizeHint = SizeHint(AtomicUsize::new(0));

/// A piece of work of [`StateView::render_state`]: fixed text, a run of live frameworks
/// (which also sums what their tasks use), a run of completed ones (with a leading
/// comma when others come before), or the other fields.
enum Job<'a> {
    Text(&'static str),
    Live(&'a [&'a Framework], bool),
    Done(&'a [&'a Framework], bool),
    Fields,
}

/// Gives an empty buffer with room for at least so many bytes.
pub type Buffer<'b> = &'b (dyn Fn(usize) -> Vec<u8> + Sync);

/// Takes the parts of a render, in order.
pub type Emit<'e> = &'e (dyn Fn(Vec<u8>) + Sync);

/// Parts per render thread: small enough that the first are sent while the others are
/// written, large enough to keep the sums' merging rare.
const PARTS_PER_THREAD: usize = 4;

/// Counts a live job done when dropped, even by a panic, so the fields never wait for
/// ever.
struct Counted<'a>(&'a Summed<'a>);

/// The sums of the live jobs done so far (the first job's, merged into), how many are
/// done, and a signal for each that is.
type Summed<'a> = (Mutex<(Option<LiveSums<'a, 'a>>, usize)>, Condvar);

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        lock(&self.0 .0).1 += 1;
        self.0 .1.notify_all();
    }
}

/// Parts finished out of order, handed on in order.
struct InOrder {
    next: usize,
    waiting: BTreeMap<usize, Vec<u8>>,
    bytes: usize,
    fields_len: usize,
}

impl InOrder {
    fn put(&mut self, at: usize, part: Vec<u8>, emit: Emit) {
        self.waiting.insert(at, part);
        while let Some(part) = self.waiting.remove(&self.next) {
            self.next += 1;
            self.bytes += part.len();
            self.fields_len = part.len();
            emit(part);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `list` cut into runs of about `share` units of [`weight`] each.
fn chunks<'a>(
    list: &'a [&'a Framework],
    share: usize,
) -> impl Iterator<Item = &'a [&'a Framework]> {
    let mut start = 0;
    std::iter::from_fn(move || {
        if start == list.len() {
            return None;
        }
        let mut units = 0;
        let mut end = start;
        while end < list.len() && units < share {
            units += weight(list[end]);
            end += 1;
        }
        let chunk = &list[start..end];
        start = end;
        Some(chunk)
    })
}

/// A framework's share of the rendering work: its tasks, and its fields.
fn weight(framework: &Framework) -> usize {
    1 + framework.tasks.len() + framework.unreachable_tasks.len() + framework.completed_tasks.len()
}

impl StateView {
    /// `/master/state` as a `Value` (tests and tools), read back from its bytes.
    pub fn state_json(&self) -> Value {
        serde_json::from_slice(&self.state_bytes()).unwrap_or_default()
    }

    /// `/master/state` in one buffer (tests and tools; the HTTP layer serves the parts).
    pub fn state_bytes(&self) -> Vec<u8> {
        self.state_parts().concat()
    }

    /// The parts of `/master/state` ([`StateView::render_state`]), collected.
    pub fn state_parts(&self) -> Vec<Vec<u8>> {
        let parts = Mutex::new(Vec::new());
        self.render_state(&Vec::with_capacity, &|part| lock(&parts).push(part));
        parts.into_inner().unwrap_or_else(PoisonError::into_inner)
    }

    /// `/master/state` rendered in parts, each handed to `emit` in document order as
    /// soon as it and those before it are written, so that a reader can send the first
    /// parts while the others are rendered; nothing is copied to join them. The
    /// frameworks (almost all of the bytes) come first, in parts of about equal task
    /// counts that [`RENDER_THREADS`] threads at most (one per core) take in order;
    /// the parts of live frameworks sum what their tasks use per agent and per role as
    /// they write them, and the other fields are written from those sums, last in the
    /// document (JSON leaves the order of fields free) but as soon as the live
    /// frameworks are written. The large parts are written into buffers from `buffer`,
    /// given the room they will likely need.
    pub fn render_state(&self, buffer: Buffer, emit: Emit) {
        let frameworks: Vec<&Framework> = self.frameworks.values().collect();
        let completed: Vec<&Framework> = self.completed_frameworks.iter().map(|f| &**f).collect();
        let units: usize = frameworks.iter().chain(&completed).map(|f| weight(f)).sum();
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, RENDER_THREADS);
        let share = units.div_ceil(threads * PARTS_PER_THREAD).max(1);
        let mut jobs = vec![Job::Text("{\"frameworks\":[")];
        jobs.extend(
            chunks(&frameworks, share)
                .enumerate()
                .map(|(i, c)| Job::Live(c, i > 0)),
        );
        let live_jobs = jobs.len() - 1;
        jobs.push(Job::Text("],\"completed_frameworks\":["));
        jobs.extend(
            chunks(&completed, share)
                .enumerate()
                .map(|(i, c)| Job::Done(c, i > 0)),
        );
        jobs.push(Job::Text("],"));
        jobs.push(Job::Fields);
        // Run in document order but for the fields, which come right after the live
        // frameworks they are summed from.
        let fields = jobs.len() - 1;
        let mut order: Vec<usize> = (0..fields).collect();
        order.insert(live_jobs + 1, fields);

        let offers = &self.framework_offers();
        let ids = self.agent_ids();
        let slots = &AgentSlots::new(self, &ids);
        let summed: &Summed = &(Mutex::new((None, 0)), Condvar::new());
        let written = &Mutex::new(InOrder {
            next: 0,
            waiting: BTreeMap::new(),
            bytes: 0,
            fields_len: 0,
        });
        let taken = &AtomicUsize::new(0);
        let (jobs, order) = (&jobs, &order);
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(move || {
                    while let Some(&at) = order.get(taken.fetch_add(1, Ordering::Relaxed)) {
                        let part = match jobs[at] {
                            Job::Text(text) => text.as_bytes().to_vec(),
                            Job::Live(chunk, comma) => {
                                let _counted = Counted(summed);
                                let mut live = LiveSums::new(slots);
                                let part = self.frameworks_part(
                                    buffer,
                                    offers,
                                    chunk,
                                    comma,
                                    Some(&mut live),
                                );
                                match &mut lock(&summed.0).0 {
                                    Some(sums) => sums.merge(live),
                                    none => *none = Some(live),
                                }
                                part
                            }
                            Job::Done(chunk, comma) => {
                                self.frameworks_part(buffer, offers, chunk, comma, None)
                            }
                            Job::Fields => {
                                let (sums, cond) = summed;
                                let guard = lock(sums);
                                let mut guard = cond
                                    .wait_while(guard, |(_, done)| *done < live_jobs)
                                    .unwrap_or_else(PoisonError::into_inner);
                                let live = guard.0.take();
                                drop(guard);
                                let live = live.unwrap_or_else(|| LiveSums::new(slots));
                                self.state_fields_part(buffer, slots, live)
                            }
                        };
                        lock(written).put(at, part, emit);
                    }
                });
            }
        });
        let written = &lock(written);
        let fields_len = written.fields_len;
        FRAMEWORK_BYTES.record(written.bytes - fields_len, units);
        FIELDS_BYTES.record(fields_len, self.agents.len() + 1);
    }

    /// Frameworks of a JSON array, comma-separated; `comma` when others come before.
    fn frameworks_part<'v>(
        &'v self,
        buffer: Buffer,
        offers: &FrameworkOffers,
        chunk: &[&'v Framework],
        comma: bool,
        live: Option<&mut LiveSums<'_, 'v>>,
    ) -> Vec<u8> {
        let units = chunk.iter().map(|f| weight(f)).sum();
        let mut out = buffer(FRAMEWORK_BYTES.capacity(units));
        if comma && !chunk.is_empty() {
            out.push(b',');
        }
        write_frameworks(&mut out, offers, chunk.iter().copied(), live);
        out
    }

    /// The fields of `/master/state` but its frameworks, in name order, to its closing
    /// brace; the agents written straight to the output with what `live` summed.
    fn state_fields_part(&self, buffer: Buffer, slots: &AgentSlots, live: LiveSums) -> Vec<u8> {
        let usage = self.agent_usage_from(slots, live.agents);
        let roles = self.role_usage_from(live.roles);
        let mut out = buffer(FIELDS_BYTES.capacity(self.agents.len() + 1));
        if let Value::Object(fields) = self.state_fields(&roles) {
            for (key, value) in &fields {
                if !out.is_empty() {
                    out.push(b',');
                }
                write_json(&mut out, key);
                out.push(b':');
                if key == "slaves" {
                    write_json(&mut out, &Agents(self, &usage));
                } else {
                    write_json(&mut out, value);
                }
            }
        }
        out.push(b'}');
        out
    }

    /// The fields of `/master/state` but its frameworks; `slaves` is a placeholder the
    /// agents are written in place of.
    pub(super) fn state_fields(&self, roles: &BTreeMap<&str, RoleUsage>) -> Value {
        let active = self.agents.values().filter(|a| self.is_active(a)).count();
        let pid = self.info.pid.clone().unwrap_or_default();
        let mut state = json!({
            "version": MESOS_VERSION,
            "build_date": "",
            "build_time": 0,
            "build_user": "",
            "start_time": self.start_time,
            "elected_time": self.start_time,
            "id": self.info.id,
            "pid": pid,
            "hostname": self.hostname,
            "capabilities": self.info.capabilities.iter().map(|c| c.kind.clone()).collect::<Vec<_>>(),
            "activated_slaves": active,
            "deactivated_slaves": self.agents.len() - active,
            "unreachable_slaves": self.unreachable_agents,
            "leader": pid,
            "leader_info": {
                "id": self.info.id,
                "pid": pid,
                "port": self.info.port,
                "hostname": self.hostname,
                "ip": self.info.ip,
                "address": self.info.address,
                "version": MESOS_VERSION,
            },
            "flags": self.flags,
            "slaves": null,
            "recovered_slaves": self.recovered_slaves_json(),
            "orphan_tasks": [],
            "unregistered_frameworks": [],
            "roles": self.roles_json_from(false, roles),
        });
        // Present only when set, as in Mesos.
        for flag in ["cluster", "log_dir", "external_log_file"] {
            if let Some(value) = self.flags.get(flag).filter(|v| !v.is_empty()) {
                state[flag] = json!(value);
            }
        }
        state
    }

    /// `/metrics/snapshot` for the master (a first set of the Mesos names).
    pub fn metrics(&self, now: f64) -> BTreeMap<String, f64> {
        let mut m = BTreeMap::new();
        m.insert("master/elected".into(), 1.0);
        m.insert("master/uptime_secs".into(), now - self.start_time);
        let mut total = Resources::new();
        let mut used = Resources::new();
        for agent in self.agents.values().filter(|a| a.active()) {
            total.add(&agent.total);
        }
        for framework in self.frameworks.values() {
            used.add(&Self::framework_usage(framework));
        }
        for kind in ["cpus", "mem", "disk", "gpus"] {
            let t = total.scalar(kind);
            let u = used.scalar(kind);
            m.insert(format!("master/{kind}_total"), t);
            m.insert(format!("master/{kind}_used"), u);
            m.insert(
                format!("master/{kind}_percent"),
                if t > 0.0 { u / t } else { 0.0 },
            );
        }
        let active_agents = self.agents.values().filter(|a| self.is_active(a)).count() as f64;
        let connected_agents = self.agents.values().filter(|a| a.active()).count() as f64;
        m.insert("master/slaves_active".into(), active_agents);
        m.insert("master/slaves_connected".into(), connected_agents);
        m.insert(
            "master/slaves_inactive".into(),
            self.agents.len() as f64 - active_agents,
        );
        m.insert(
            "master/slaves_disconnected".into(),
            self.agents.len() as f64 - connected_agents,
        );
        let (unreachable_agents, unreachable_tasks) =
            (self.unreachable_agents, self.unreachable_tasks());
        m.insert(
            "master/slaves_unreachable".into(),
            unreachable_agents as f64,
        );
        for (name, value) in [
            ("scheduled", self.unreachable_scheduled),
            ("completed", self.unreachable_completed),
            ("canceled", self.unreachable_canceled),
        ] {
            m.insert(format!("master/slave_unreachable_{name}"), value as f64);
        }
        let active_fw = self.frameworks.values().filter(|f| f.active).count() as f64;
        m.insert("master/frameworks_active".into(), active_fw);
        m.insert(
            "master/frameworks_inactive".into(),
            self.frameworks.len() as f64 - active_fw,
        );
        let connected = self
            .frameworks
            .values()
            .filter(|f| f.stream.is_some())
            .count() as f64;
        m.insert("master/frameworks_connected".into(), connected);
        m.insert(
            "master/frameworks_disconnected".into(),
            self.frameworks.len() as f64 - connected,
        );
        m.insert("master/outstanding_offers".into(), self.offers.len() as f64);
        let mut live: BTreeMap<TaskState, f64> = BTreeMap::new();
        for framework in self.frameworks.values() {
            for task in framework.tasks.values().filter(|t| !t.state.is_terminal()) {
                *live.entry(task.state).or_default() += 1.0;
            }
        }
        live.insert(TaskState::Unreachable, unreachable_tasks as f64);
        for state in TaskState::ALL {
            let name = state
                .as_str()
                .trim_start_matches("TASK_")
                .to_ascii_lowercase();
            let value = if state.is_terminal() {
                self.counters
                    .tasks_by_terminal_state
                    .get(&state)
                    .copied()
                    .unwrap_or(0) as f64
            } else {
                live.get(&state).copied().unwrap_or(0.0)
            };
            m.insert(format!("master/tasks_{name}"), value);
        }
        m.insert(
            "master/slave_registrations".into(),
            self.counters.agent_registrations as f64,
        );
        m.insert(
            "master/slave_reregistrations".into(),
            self.counters.agent_reregistrations as f64,
        );
        m.insert(
            "master/slave_removals".into(),
            self.counters.agent_removals as f64,
        );
        m.insert(
            "master/valid_status_updates".into(),
            self.counters.valid_status_updates as f64,
        );
        m.insert(
            "master/invalid_status_updates".into(),
            self.counters.invalid_status_updates as f64,
        );
        let usage = self.role_usage();
        for role in &self.roles {
            let prefix = format!("allocator/mesos/roles/{}", role.name);
            m.insert(format!("{prefix}/shares/dominant"), role.share);
            let Some(used) = usage.get(role.name.as_str()) else {
                continue;
            };
            for (what, resources) in [
                ("allocated", &used.allocated),
                ("offered", &used.offered),
                ("reserved", &used.reserved),
            ] {
                for kind in resources.scalar_names() {
                    m.insert(
                        format!("{prefix}/resources/{kind}/{what}"),
                        resources.scalar(kind),
                    );
                }
            }
            if let Some(quota) = &role.quota {
                let quota_prefix = format!("allocator/mesos/quota/roles/{}/resources", role.name);
                for kind in quota.guarantees.scalar_names() {
                    m.insert(
                        format!("{quota_prefix}/{kind}/guarantee"),
                        quota.guarantees.scalar(kind),
                    );
                }
                for kind in quota.limits.scalar_names() {
                    m.insert(
                        format!("{quota_prefix}/{kind}/limit"),
                        quota.limits.scalar(kind),
                    );
                }
                for (kind, value) in &role.consumed {
                    m.insert(
                        format!("{quota_prefix}/{kind}/offered_or_allocated"),
                        *value,
                    );
                }
            }
        }
        m
    }
}
