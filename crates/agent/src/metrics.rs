//! The agent's `/metrics/snapshot` (reference §4): Mesos's agent metric names, gauges
//! counted off the snapshot the event loop published and counters the core keeps, plus
//! the host's `system/*` figures. Also the body of the operator call GET_METRICS.

use crate::core::{ExecutorState, Task};
use crate::view::View;
use mantle_api::TaskState;
use std::collections::BTreeMap;

/// Terminal task states with a `slave/tasks_<state>` counter.
const TERMINAL_COUNTERS: [TaskState; 7] = [
    TaskState::Finished,
    TaskState::Failed,
    TaskState::Killed,
    TaskState::Lost,
    TaskState::Error,
    TaskState::Dropped,
    TaskState::Gone,
];

/// Live task states with a `slave/tasks_<state>` gauge.
const LIVE_GAUGES: [TaskState; 4] = [
    TaskState::Staging,
    TaskState::Starting,
    TaskState::Running,
    TaskState::Killing,
];

/// `TASK_FINISHED` → `finished`.
fn metric_suffix(state: TaskState) -> String {
    state
        .as_str()
        .trim_start_matches("TASK_")
        .to_ascii_lowercase()
}

/// Every agent metric at `now` (seconds since the Unix epoch), system ones included.
pub(crate) fn snapshot(view: &View, now: f64) -> BTreeMap<String, f64> {
    let mut out = agent_metrics(view, now);
    out.extend(system_metrics());
    out
}

/// The `slave/*` metrics and their companions; pure.
pub(crate) fn agent_metrics(view: &View, now: f64) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let mut put = |name: &str, value: f64| {
        out.insert(name.to_string(), value);
    };
    put("slave/registered", if view.connected { 1.0 } else { 0.0 });
    put("slave/uptime_secs", (now - view.config.start_time).max(0.0));

    let total = &view.config.resources;
    let used = crate::state::used_resources(view);
    for name in ["cpus", "mem", "disk", "gpus"] {
        let (t, u) = (total.scalar(name), used.scalar(name));
        put(&format!("slave/{name}_total"), t);
        put(&format!("slave/{name}_used"), u);
        put(
            &format!("slave/{name}_percent"),
            if t > 0.0 { u / t } else { 0.0 },
        );
        // Mantle has no revocable resources; Mesos reports them as zeros then.
        for kind in ["total", "used", "percent"] {
            put(&format!("slave/{name}_revocable_{kind}"), 0.0);
        }
    }

    let live_tasks: Vec<&Task> = view
        .live_executors()
        .flat_map(|e| e.tasks.values())
        .collect();
    for state in LIVE_GAUGES {
        let count = live_tasks.iter().filter(|t| t.state == state).count();
        put(
            &format!("slave/tasks_{}", metric_suffix(state)),
            count as f64,
        );
    }
    let counters = &view.counters;
    for state in TERMINAL_COUNTERS {
        let count = counters
            .terminal_tasks
            .get(state.as_str())
            .copied()
            .unwrap_or(0);
        put(
            &format!("slave/tasks_{}", metric_suffix(state)),
            count as f64,
        );
    }

    let executors = [
        ("registering", ExecutorState::Registering),
        ("running", ExecutorState::Running),
        ("terminating", ExecutorState::Terminating),
    ];
    for (name, state) in executors {
        put(
            &format!("slave/executors_{name}"),
            view.executors_in(state) as f64,
        );
    }
    put(
        "slave/executors_terminated",
        counters.executors_terminated as f64,
    );
    put("slave/executors_preempted", 0.0);
    put("slave/frameworks_active", view.frameworks.len() as f64);
    put("slave/recovery_errors", counters.recovery_errors as f64);
    put(
        "slave/container_launch_errors",
        counters.container_launch_errors as f64,
    );
    put(
        "slave/valid_status_updates",
        counters.valid_status_updates as f64,
    );
    put(
        "slave/invalid_status_updates",
        counters.invalid_status_updates as f64,
    );
    put(
        "slave/valid_framework_messages",
        counters.valid_framework_messages as f64,
    );
    put(
        "slave/invalid_framework_messages",
        counters.invalid_framework_messages as f64,
    );
    put("containerizer/mesos/container_destroy_errors", 0.0);
    // Mantle does not garbage-collect sandboxes yet: nothing is ever removed or pending.
    for name in ["succeeded", "failed", "pending"] {
        put(&format!("gc/path_removals_{name}"), 0.0);
    }
    out
}

/// `system/{cpus_total, load_*, mem_total_bytes, mem_free_bytes}` from `/proc`; a
/// figure the host does not give is left out.
fn system_metrics() -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    if let Ok(cpus) = std::thread::available_parallelism() {
        out.insert("system/cpus_total".to_string(), cpus.get() as f64);
    }
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let names = ["system/load_1min", "system/load_5min", "system/load_15min"];
    for (name, value) in names.iter().zip(loadavg.split_whitespace()) {
        if let Ok(value) = value.parse::<f64>() {
            out.insert(name.to_string(), value);
        }
    }
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    out.extend(memory_metrics(&meminfo));
    out
}

/// `MemTotal` and `MemFree` of `/proc/meminfo` (in kB) as bytes.
fn memory_metrics(meminfo: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in meminfo.lines() {
        let mut fields = line.split_whitespace();
        let name = match fields.next() {
            Some("MemTotal:") => "system/mem_total_bytes",
            Some("MemFree:") => "system/mem_free_bytes",
            _ => continue,
        };
        if let Some(kb) = fields.next().and_then(|v| v.parse::<f64>().ok()) {
            out.insert(name.to_string(), kb * 1024.0);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes() {
        assert_eq!(metric_suffix(TaskState::Finished), "finished");
        assert_eq!(metric_suffix(TaskState::Staging), "staging");
    }

    #[test]
    fn memory_from_meminfo() {
        let got = memory_metrics("MemTotal:  2048 kB\nMemFree: 1024 kB\nBuffers: 1 kB\n");
        assert_eq!(got["system/mem_total_bytes"], 2048.0 * 1024.0);
        assert_eq!(got["system/mem_free_bytes"], 1024.0 * 1024.0);
        assert_eq!(got.len(), 2);
    }
}
