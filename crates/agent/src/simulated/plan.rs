//! How long a simulated task runs and how it ends, read off its `TaskInfo`.
//!
//! In order of precedence:
//!
//! 1. Labels: `mantle.simulated.duration` (Mesos duration text such as `30secs`, plain
//!    seconds such as `2.5`, or `infinity`) and `mantle.simulated.exit_code` (0 ends in
//!    TASK_FINISHED, anything else in TASK_FAILED).
//! 2. The task's command, read as a small shell script: simple commands separated by
//!    `;`, `&&`, `||` or newlines, of which `sleep N` (seconds, or with a GNU suffix
//!    `s`, `m`, `h`, `d`; `infinity` never ends) adds to the run time, `exit N` ends the
//!    script with status N, `true` and `:` succeed, `false` fails, and anything else
//!    succeeds without taking time. `sleep 30` runs 30 s and finishes; `sleep 5 && exit
//!    3` fails after 5 s; `false` and `exit 1` fail.
//! 3. A command that never sleeps, and a task without a command (a custom executor's or a
//!    task group's), runs for the default (`--simulated_task_duration`, 0 by default).
//!
//! `max_completion_time` shorter than the run time ends the task in TASK_FAILED with
//! REASON_MAX_COMPLETION_TIME_REACHED, as the command executor does.

use mantle_api::{CommandInfo, Label, Labels, Reason, TaskInfo, TaskState};
use std::time::Duration;

/// The label that sets a simulated task's run time.
pub const DURATION_LABEL: &str = "mantle.simulated.duration";
/// The label that sets a simulated task's exit code.
pub const EXIT_CODE_LABEL: &str = "mantle.simulated.exit_code";

/// Task labels that tell a simulated agent how a task runs: `duration` in the label's
/// forms (`30secs`, `2.5`, `infinity`) and the exit code; either may be left out.
pub fn labels(duration: Option<&str>, exit_code: Option<i32>) -> Labels {
    let label = |key: &str, value: String| Label {
        key: key.to_string(),
        value: Some(value),
    };
    let duration = duration.map(|d| label(DURATION_LABEL, d.to_string()));
    let exit_code = exit_code.map(|c| label(EXIT_CODE_LABEL, c.to_string()));
    Labels {
        labels: duration.into_iter().chain(exit_code).collect(),
    }
}

/// What a simulated task does once it runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// How long it runs; `None`: until it is killed.
    pub run_time: Option<Duration>,
    /// Its terminal state when it ends by itself.
    pub state: TaskState,
    pub reason: Option<Reason>,
    pub message: String,
}

/// The plan of `task`; `default` is the run time of tasks that do not say.
pub fn plan(task: &TaskInfo, default: Duration) -> Plan {
    let label = |key: &str| {
        task.labels.as_ref().and_then(|labels| {
            labels
                .labels
                .iter()
                .find(|l| l.key == key)
                .and_then(|l| l.value.clone())
        })
    };
    let script = task.command.as_ref().map(command_text).map(|t| run(&t));
    let run_time = match label(DURATION_LABEL).and_then(|text| parse_label_duration(&text)) {
        Some(given) => given,
        None => match &script {
            Some(script) if script.slept => script.run_time,
            _ => Some(default),
        },
    };
    let exit_code = label(EXIT_CODE_LABEL)
        .and_then(|text| text.trim().parse::<i32>().ok())
        .or(script.as_ref().map(|s| s.status))
        .unwrap_or(0);
    let completion_limit = task
        .max_completion_time
        .map(|d| Duration::from_nanos(d.nanoseconds.max(0) as u64));
    if let Some(limit) = completion_limit.filter(|limit| run_time.is_none_or(|t| *limit < t)) {
        return Plan {
            run_time: Some(limit),
            state: TaskState::Failed,
            reason: Some(Reason::MaxCompletionTimeReached),
            message: "Task has reached its maximum completion time".to_string(),
        };
    }
    Plan {
        run_time,
        state: if exit_code == 0 {
            TaskState::Finished
        } else {
            TaskState::Failed
        },
        reason: None,
        message: format!("Command exited with status {exit_code}"),
    }
}

/// The command as one line of shell: the value of a shell command, or the arguments
/// (argv, whose first word names the program) of a plain one.
fn command_text(command: &CommandInfo) -> String {
    let value = command.value.clone().unwrap_or_default();
    if command.shell || command.arguments.is_empty() {
        return value;
    }
    let mut words = vec![value];
    words.extend(command.arguments.iter().skip(1).cloned());
    words.join(" ")
}

/// `30secs`, `2.5` (seconds) or `infinity`; `Some(None)` is forever.
fn parse_label_duration(text: &str) -> Option<Option<Duration>> {
    let text = text.trim();
    if text == "infinity" {
        return Some(None);
    }
    if let Ok(seconds) = text.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds).ok().map(Some);
    }
    mantle_api::duration::parse_duration(text).ok().map(Some)
}

/// What running a script would do.
#[derive(Debug, PartialEq)]
struct Script {
    /// The sum of its sleeps; `None` once one never ends.
    run_time: Option<Duration>,
    /// Whether any sleep ran.
    slept: bool,
    status: i32,
}

/// Runs a script's simple commands in order, as `sh` would for the few it knows.
fn run(text: &str) -> Script {
    let mut script = Script {
        run_time: Some(Duration::ZERO),
        slept: false,
        status: 0,
    };
    let mut rest = text;
    let mut run_next = true;
    loop {
        let (command, separator, tail) = next_command(rest);
        if run_next {
            let words: Vec<&str> = command.split_whitespace().collect();
            if let Some(code) = step(&mut script, &words) {
                script.status = code;
                return script;
            }
        }
        run_next = match separator {
            Some("&&") => script.status == 0,
            Some("||") => script.status != 0,
            _ => true,
        };
        match tail {
            Some(tail) => rest = tail,
            None => return script,
        }
    }
}

/// Splits off the first simple command: `(command, separator, rest)`.
fn next_command(text: &str) -> (&str, Option<&str>, Option<&str>) {
    let bytes = text.as_bytes();
    for i in 0..bytes.len() {
        let two = &text[i..text.len().min(i + 2)];
        if two == "&&" || two == "||" {
            return (&text[..i], Some(&text[i..i + 2]), Some(&text[i + 2..]));
        }
        if bytes[i] == b';' || bytes[i] == b'\n' {
            return (&text[..i], Some(&text[i..i + 1]), Some(&text[i + 1..]));
        }
    }
    (text, None, None)
}

/// Runs one simple command; returns the status when it ends the script (`exit`).
fn step(script: &mut Script, words: &[&str]) -> Option<i32> {
    let program = words.first()?;
    // `exec sleep 5` and `/bin/sleep 5` are the same sleep.
    let (program, args) = match *program {
        "exec" if words.len() > 1 => (words[1], &words[2..]),
        _ => (*program, &words[1..]),
    };
    let program = program.rsplit('/').next().unwrap_or(program);
    match program {
        "sleep" => {
            script.slept = true;
            let mut total = Some(Duration::ZERO);
            for arg in args {
                total = match (total, sleep_arg(arg)) {
                    (Some(total), Some(Some(d))) => Some(total + d),
                    (_, Some(None)) | (None, _) => None,
                    // `sleep` refuses what it cannot read.
                    (Some(_), None) => {
                        script.status = 1;
                        return None;
                    }
                };
            }
            script.run_time = match (script.run_time, total) {
                (Some(a), Some(b)) => Some(a + b),
                _ => None,
            };
            script.status = 0;
        }
        "exit" => {
            let code = args
                .first()
                .map_or(Some(i64::from(script.status)), |a| a.parse().ok());
            // A shell reads an exit status modulo 256; a word it cannot read is an error.
            return Some(code.map_or(2, |c: i64| c.rem_euclid(256) as i32));
        }
        "false" => script.status = 1,
        _ => script.status = 0,
    }
    None
}

/// One argument of `sleep`: `Some(None)` for `infinity`, `None` when unreadable.
fn sleep_arg(arg: &str) -> Option<Option<Duration>> {
    if arg == "infinity" || arg == "inf" {
        return Some(None);
    }
    let (number, scale) = match arg.char_indices().last()? {
        (i, 's') => (&arg[..i], 1.0),
        (i, 'm') => (&arg[..i], 60.0),
        (i, 'h') => (&arg[..i], 3600.0),
        (i, 'd') => (&arg[..i], 86400.0),
        _ => (arg, 1.0),
    };
    let seconds: f64 = number.parse().ok()?;
    Duration::try_from_secs_f64(seconds * scale).ok().map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mantle_api::{AgentId, DurationInfo, TaskId};

    fn task(command: Option<CommandInfo>, labels: Option<Labels>) -> TaskInfo {
        TaskInfo {
            name: "t".into(),
            task_id: TaskId::new("t"),
            agent_id: AgentId::new("a"),
            resources: Vec::new(),
            executor: None,
            command,
            container: None,
            health_check: None,
            check: None,
            kill_policy: None,
            data: None,
            labels: labels.map(Box::new),
            discovery: None,
            max_completion_time: None,
            limits: None,
        }
    }

    const DEFAULT: Duration = Duration::from_millis(700);

    /// `(run time in ms or None for forever, finished?, exit status in the message)`.
    fn check(task: TaskInfo, expected: (Option<u64>, bool, i32)) {
        let planned = plan(&task, DEFAULT);
        let (ms, finished, status) = expected;
        assert_eq!(
            planned.run_time,
            ms.map(Duration::from_millis),
            "run time of {:?}",
            task.command
        );
        let state = if finished {
            TaskState::Finished
        } else {
            TaskState::Failed
        };
        assert_eq!(planned.state, state, "state of {:?}", task.command);
        assert_eq!(
            planned.message,
            format!("Command exited with status {status}")
        );
    }

    fn shell(text: &str) -> TaskInfo {
        task(Some(CommandInfo::shell(text)), None)
    }

    #[test]
    fn commands_set_run_time_and_outcome() {
        check(shell("sleep 30"), (Some(30_000), true, 0));
        check(shell("sleep 1.5; sleep 2"), (Some(3_500), true, 0));
        check(shell("sleep 2m"), (Some(120_000), true, 0));
        check(shell("sleep 1 1"), (Some(2_000), true, 0));
        check(shell("/bin/sleep 4"), (Some(4_000), true, 0));
        check(shell("exec sleep 4"), (Some(4_000), true, 0));
        check(shell("sleep infinity"), (None, true, 0));
        check(shell("sleep 5 && exit 3"), (Some(5_000), false, 3));
        check(shell("sleep 5 || exit 3"), (Some(5_000), true, 0));
        check(shell("false || sleep 1"), (Some(1_000), true, 0));
        check(shell("false && sleep 1"), (Some(700), false, 1));
        check(shell("exit 1"), (Some(700), false, 1));
        check(shell("false"), (Some(700), false, 1));
        check(shell("true"), (Some(700), true, 0));
        check(shell("echo hello > out"), (Some(700), true, 0));
        check(shell("exit 0; sleep 9"), (Some(700), true, 0));
        check(shell("exit 257"), (Some(700), false, 1));
        check(shell("sleep 1\nexit 2"), (Some(1_000), false, 2));
        check(shell(""), (Some(700), true, 0));
    }

    #[test]
    fn plain_commands_read_their_arguments() {
        let mut command = CommandInfo::shell("/bin/sleep");
        command.shell = false;
        command.arguments = vec!["sleep".into(), "3".into()];
        check(task(Some(command), None), (Some(3_000), true, 0));
    }

    #[test]
    fn labels_win_over_the_command() {
        let labelled = |duration: Option<&str>, exit_code: Option<i32>| {
            let command = CommandInfo::shell("sleep 9");
            task(Some(command), Some(labels(duration, exit_code)))
        };
        check(labelled(Some("2secs"), None), (Some(2_000), true, 0));
        check(labelled(Some("0.25"), None), (Some(250), true, 0));
        check(labelled(Some("infinity"), None), (None, true, 0));
        check(labelled(None, Some(4)), (Some(9_000), false, 4));
        check(labelled(Some("1"), Some(0)), (Some(1_000), true, 0));
        // A label that cannot be read is ignored.
        check(labelled(Some("soon"), None), (Some(9_000), true, 0));
    }

    #[test]
    fn tasks_without_a_command_run_for_the_default() {
        check(task(None, None), (Some(700), true, 0));
        check(
            task(None, Some(labels(None, Some(1)))),
            (Some(700), false, 1),
        );
    }

    #[test]
    fn max_completion_time_fails_a_longer_task() {
        let mut t = shell("sleep 10");
        t.max_completion_time = Some(DurationInfo {
            nanoseconds: 2_000_000_000,
        });
        let limited = plan(&t, DEFAULT);
        assert_eq!(limited.run_time, Some(Duration::from_secs(2)));
        assert_eq!(limited.state, TaskState::Failed);
        assert_eq!(limited.reason, Some(Reason::MaxCompletionTimeReached));
        // A task that ends sooner is not affected.
        t.command = Some(CommandInfo::shell("sleep 1"));
        assert_eq!(plan(&t, DEFAULT).state, TaskState::Finished);
    }
}
