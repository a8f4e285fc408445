//! `/metrics`: the master's metrics in the Prometheus text format (version 0.0.4). A
//! Mesos metric name becomes a Prometheus name by replacing every character outside
//! `[a-zA-Z0-9_]` with `_` (`master/tasks_running` becomes `master_tasks_running`); all
//! are gauges, as Mesos's snapshot does not say which are counters.

use std::collections::BTreeMap;
use std::fmt::Write;

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub fn metric_name(mesos: &str) -> String {
    let mut name: String = mesos
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    name
}

pub fn render(metrics: &BTreeMap<String, f64>) -> String {
    let mut out = String::new();
    for (mesos, value) in metrics {
        let name = metric_name(mesos);
        let _ = writeln!(out, "# HELP {name} Mesos metric {mesos}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        let _ = writeln!(out, "{name} {value}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(mesos: &str, expected: &str) {
        assert_eq!(metric_name(mesos), expected);
    }

    #[test]
    fn names() {
        check("master/tasks_running", "master_tasks_running");
        check(
            "allocator/mesos/roles/eng-1/shares/dominant",
            "allocator_mesos_roles_eng_1_shares_dominant",
        );
        check("9lives", "_9lives");
    }

    #[test]
    fn text_format() {
        let metrics = BTreeMap::from([("master/elected".to_string(), 1.0)]);
        assert_eq!(
            render(&metrics),
            "# HELP master_elected Mesos metric master/elected\n# TYPE master_elected gauge\nmaster_elected 1\n"
        );
    }
}
