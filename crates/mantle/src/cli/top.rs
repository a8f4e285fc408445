//! `mantle top`: a live view of the cluster from the master's `/master/state`: resources
//! used of total, agents, frameworks and tasks by state, then the busiest frameworks and
//! agents. On a terminal it redraws in place every interval with plain ANSI escapes;
//! `--once`, or a stdout that is not a terminal, prints one frame (`--json`: one
//! summary document).

use super::client::Master;
use super::lists::{all_tasks, frameworks, list, scalar};
use super::table::{megabytes, number, short_id, Table};
use mantle_api::TaskState;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::Duration;

/// The resources `top` shows; `gpus` only when the cluster has some.
const RESOURCES: [&str; 4] = ["cpus", "mem", "disk", "gpus"];

/// The cluster in numbers: what `--json` prints and what a frame shows at its top.
pub fn summary(state: &Value, master: &str) -> Value {
    let agents = list(state, "slaves");
    let active_agents = agents
        .iter()
        .filter(|a| a["active"].as_bool() == Some(true))
        .count();
    let mut resources = serde_json::Map::new();
    for name in RESOURCES {
        let sum = |field: &str| -> f64 { agents.iter().map(|a| scalar(&a[field], name)).sum() };
        resources.insert(
            name.to_string(),
            json!({"total": sum("resources"), "used": sum("used_resources"), "offered": sum("offered_resources")}),
        );
    }
    let mut tasks: BTreeMap<&str, u64> = BTreeMap::new();
    for task in all_tasks(state) {
        *tasks
            .entry(task["state"].as_str().unwrap_or(""))
            .or_default() += 1;
    }
    let live = frameworks(state, false);
    let active_frameworks = live
        .iter()
        .filter(|f| f["active"].as_bool() == Some(true))
        .count();
    json!({
        "master": master,
        "version": state["version"],
        "start_time": state["start_time"],
        "agents": {
            "active": active_agents,
            "inactive": agents.len() - active_agents,
            "unreachable": state["unreachable_slaves"].as_u64().unwrap_or(0),
        },
        "frameworks": {
            "active": active_frameworks,
            "inactive": live.len() - active_frameworks,
            "completed": list(state, "completed_frameworks").len(),
        },
        "resources": resources,
        "tasks": tasks,
    })
}

/// `[#####.....] 1.5/4 (37%)`
fn gauge(used: f64, total: f64, unit: fn(f64) -> String) -> String {
    const WIDTH: usize = 20;
    let share = if total > 0.0 {
        (used / total).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let filled = (share * WIDTH as f64).round() as usize;
    format!(
        "[{}{}] {}/{} ({:.0}%)",
        "#".repeat(filled),
        ".".repeat(WIDTH - filled),
        unit(used),
        unit(total),
        share * 100.0
    )
}

/// Counts by state, the states of live tasks first, each group by name.
fn task_counts(tasks: &Value) -> String {
    let mut counts: Vec<(bool, &str, u64)> = tasks
        .as_object()
        .into_iter()
        .flatten()
        .map(|(state, count)| {
            let ended = state.parse::<TaskState>().is_ok_and(TaskState::is_terminal);
            (ended, state.as_str(), count.as_u64().unwrap_or(0))
        })
        .filter(|(_, _, count)| *count > 0)
        .collect();
    counts.sort();
    let parts: Vec<String> = counts
        .iter()
        .map(|(_, state, count)| {
            format!(
                "{count} {}",
                state.trim_start_matches("TASK_").to_ascii_lowercase()
            )
        })
        .collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

/// One screen: the summary, then the frameworks and agents using the most CPUs, cut to
/// `height` lines and `width` columns.
pub fn frame(state: &Value, master: &str, width: usize, height: usize) -> String {
    let summary = summary(state, master);
    let mut lines = vec![
        format!(
            "mantle top - master {master}, version {}",
            summary["version"].as_str().unwrap_or("?")
        ),
        format!(
            "agents:     {} active, {} inactive, {} unreachable",
            summary["agents"]["active"],
            summary["agents"]["inactive"],
            summary["agents"]["unreachable"]
        ),
        format!(
            "frameworks: {} active, {} inactive, {} completed",
            summary["frameworks"]["active"],
            summary["frameworks"]["inactive"],
            summary["frameworks"]["completed"]
        ),
        format!("tasks:      {}", task_counts(&summary["tasks"])),
        String::new(),
    ];
    for name in RESOURCES {
        let r = &summary["resources"][name];
        let (used, total) = (
            r["used"].as_f64().unwrap_or(0.0),
            r["total"].as_f64().unwrap_or(0.0),
        );
        if name == "gpus" && total == 0.0 {
            continue;
        }
        let unit: fn(f64) -> String = if name == "cpus" || name == "gpus" {
            number
        } else {
            megabytes
        };
        lines.push(format!("{name:<5} {}", gauge(used, total, unit)));
    }

    let mut busiest: Vec<&Value> = frameworks(state, false);
    busiest.sort_by(|a, b| {
        scalar(&b["used_resources"], "cpus").total_cmp(&scalar(&a["used_resources"], "cpus"))
    });
    let mut table = Table::new(&["FRAMEWORK", "NAME", "TASKS>", "CPUS>", "MEM>"]);
    for framework in &busiest {
        let used = &framework["used_resources"];
        table.row(vec![
            short_id(framework["id"].as_str().unwrap_or_default()),
            framework["name"].as_str().unwrap_or_default().to_string(),
            list(framework, "tasks").len().to_string(),
            number(scalar(used, "cpus")),
            megabytes(scalar(used, "mem")),
        ]);
    }
    lines.push(String::new());
    lines.extend(table.render().lines().map(str::to_string));

    let mut agents: Vec<&Value> = list(state, "slaves").iter().collect();
    agents.sort_by(|a, b| {
        scalar(&b["used_resources"], "cpus").total_cmp(&scalar(&a["used_resources"], "cpus"))
    });
    let mut table = Table::new(&["AGENT", "HOSTNAME", "ACTIVE", "CPUS>", "MEM>"]);
    for agent in &agents {
        let (used, total) = (&agent["used_resources"], &agent["resources"]);
        table.row(vec![
            short_id(agent["id"].as_str().unwrap_or_default()),
            agent["hostname"].as_str().unwrap_or_default().to_string(),
            if agent["active"].as_bool() == Some(true) {
                "yes"
            } else {
                "no"
            }
            .to_string(),
            format!(
                "{}/{}",
                number(scalar(used, "cpus")),
                number(scalar(total, "cpus"))
            ),
            format!(
                "{}/{}",
                megabytes(scalar(used, "mem")),
                megabytes(scalar(total, "mem"))
            ),
        ]);
    }
    lines.push(String::new());
    lines.extend(table.render().lines().map(str::to_string));

    lines.truncate(height.max(1));
    let mut out = String::new();
    for line in lines {
        out.extend(line.chars().take(width.max(1)));
        out.push('\n');
    }
    out
}

/// The terminal's size in columns and rows (80x24 when stdout is not a terminal).
fn terminal_size() -> (usize, usize) {
    // SAFETY: TIOCGWINSZ only writes a `winsize` into the struct it is given.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) };
    if rc == 0 && size.ws_col > 0 && size.ws_row > 0 {
        (usize::from(size.ws_col), usize::from(size.ws_row))
    } else {
        (80, 24)
    }
}

/// `mantle top`.
pub async fn top(
    master: &Master,
    once: bool,
    as_json: bool,
    interval: Duration,
) -> anyhow::Result<()> {
    let live = !once && !as_json && std::io::stdout().is_terminal();
    if !live {
        let state = master.state().await?;
        if as_json {
            println!("{}", summary(&state, &master.address()));
        } else {
            // Not a terminal: no width to fit, and every line matters to whoever reads it.
            print!(
                "{}",
                frame(&state, &master.address(), usize::MAX, usize::MAX)
            );
        }
        return Ok(());
    }
    let mut stdout = std::io::stdout();
    // Hide the cursor while drawing; it comes back however the loop ends.
    let _ = write!(stdout, "\x1b[?25l\x1b[2J");
    let result = redraw(master, interval).await;
    let _ = writeln!(stdout, "\x1b[?25h");
    let _ = stdout.flush();
    result
}

async fn redraw(master: &Master, interval: Duration) -> anyhow::Result<()> {
    let interrupted = crate::shutdown_signal();
    tokio::pin!(interrupted);
    loop {
        let (width, height) = terminal_size();
        let text = match master.state().await {
            Ok(state) => frame(&state, &master.address(), width, height.saturating_sub(1)),
            // A master failing over comes back; keep trying and say so.
            Err(error) => format!("mantle top - {error:#}\nretrying every {interval:?}\n"),
        };
        let mut stdout = std::io::stdout().lock();
        // Home, each line cleared to its end, then the rest of the screen cleared.
        let _ = write!(stdout, "\x1b[H");
        for line in text.lines() {
            let _ = writeln!(stdout, "{line}\x1b[K");
        }
        let _ = write!(stdout, "\x1b[J");
        let _ = stdout.flush();
        drop(stdout);
        tokio::select! {
            _ = &mut interrupted => return Ok(()),
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> Value {
        json!({
            "version": "1.11.0",
            "unreachable_slaves": 1,
            "slaves": [
                {"id": "a1", "hostname": "h1", "active": true,
                 "resources": {"cpus": 4.0, "mem": 4096.0, "disk": 100.0, "gpus": 0.0},
                 "used_resources": {"cpus": 1.0, "mem": 1024.0, "disk": 0.0},
                 "offered_resources": {"cpus": 3.0}},
                {"id": "a2", "hostname": "h2", "active": false,
                 "resources": {"cpus": 4.0, "mem": 3072.0, "disk": 100.0},
                 "used_resources": {}}
            ],
            "frameworks": [
                {"id": "f1", "name": "small", "active": true, "used_resources": {"cpus": 0.5},
                 "tasks": [{"state": "TASK_RUNNING"}], "completed_tasks": [{"state": "TASK_FINISHED"}, {"state": "TASK_FINISHED"}]},
                {"id": "f2", "name": "big", "active": false, "used_resources": {"cpus": 0.5, "mem": 1024.0},
                 "tasks": [{"state": "TASK_STAGING"}], "unreachable_tasks": [{"state": "TASK_UNREACHABLE"}]}
            ],
            "completed_frameworks": [{"id": "f0", "completed_tasks": [{"state": "TASK_KILLED"}]}]
        })
    }

    #[test]
    fn the_summary_counts_everything() {
        let summary = summary(&state(), "m:5050");
        assert_eq!(
            summary["agents"],
            json!({"active": 1, "inactive": 1, "unreachable": 1})
        );
        assert_eq!(
            summary["frameworks"],
            json!({"active": 1, "inactive": 1, "completed": 1})
        );
        assert_eq!(
            summary["resources"]["cpus"],
            json!({"total": 8.0, "used": 1.0, "offered": 3.0})
        );
        assert_eq!(summary["resources"]["mem"]["total"], 7168.0);
        assert_eq!(
            summary["tasks"],
            json!({"TASK_FINISHED": 2, "TASK_KILLED": 1, "TASK_RUNNING": 1, "TASK_STAGING": 1, "TASK_UNREACHABLE": 1})
        );
    }

    #[test]
    fn a_frame_fits_the_screen() {
        let text = frame(&state(), "m:5050", 200, 100);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "mantle top - master m:5050, version 1.11.0");
        assert_eq!(lines[1], "agents:     1 active, 1 inactive, 1 unreachable");
        assert_eq!(
            lines[3],
            "tasks:      1 running, 1 staging, 1 unreachable, 2 finished, 1 killed"
        );
        assert_eq!(
            lines[5],
            format!("cpus  [{}{}] 1/8 (12%)", "#".repeat(3), ".".repeat(17))
        );
        assert_eq!(
            lines[6],
            format!(
                "mem   [{}{}] 1.0 GiB/7.0 GiB (14%)",
                "#".repeat(3),
                ".".repeat(17)
            )
        );
        assert!(!text.contains("gpus"), "{text}");
        assert!(lines.iter().any(|l| l.starts_with("FRAMEWORK")));
        assert!(lines.iter().any(|l| l.starts_with("AGENT")));
        let narrow = frame(&state(), "m:5050", 10, 3);
        assert_eq!(narrow, "mantle top\nagents:   \nframeworks\n");
    }
}
