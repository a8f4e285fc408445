//! The default executor (reference §1.5, ExecutorInfo type DEFAULT; §1.2, KILL): task
//! groups from LAUNCH_GROUP, whose tasks live and die together.

use super::*;

fn grace(secs: u64) -> Value {
    json!({"kill_policy": {"grace_period": {"nanoseconds": secs * 1_000_000_000}}})
}

#[test]
fn a_group_whose_tasks_all_finish() {
    check(
        vec![
            (0.0, subscribed(false)),
            (
                0.0,
                launch_group(&[
                    ("a", json!({"command": {"value": "true"}})),
                    ("b", json!({})),
                ]),
            ),
            (0.0, spawned("a")),
            (0.0, spawned("b")),
            (1.0, exited("a", 0)),
            (5.0, exited("b", 0)),
        ],
        r#"
        0 subscribed killing=false: nothing
        0 launch_group a,b: send a TASK_STARTING; spawn a; send b TASK_STARTING; spawn b
        0 spawned a: send a TASK_RUNNING
        0 spawned b: send b TASK_RUNNING
        1 exited a 0: send a TASK_FINISHED "Command exited with status 0"
        5 exited b 0: send b TASK_FINISHED "Command exited with status 0" | wake 65
        "#,
    );
}

#[test]
fn a_failing_task_kills_the_rest_of_its_group() {
    // A task exiting 0 leaves its siblings alone; a non-zero exit kills those still
    // running, each with its own kill policy, and they end TASK_KILLED.
    check(
        vec![
            (0.0, subscribed(true)),
            (
                0.0,
                launch_group(&[("a", json!({})), ("b", grace(10)), ("c", json!({}))]),
            ),
            (0.0, spawned("a")),
            (0.0, spawned("b")),
            (0.0, spawned("c")),
            (1.0, exited("c", 0)),
            (2.0, exited("a", 3)),
            (3.0, signaled("b", 15)),
        ],
        r#"
        0 subscribed killing=true: nothing
        0 launch_group a,b,c: send a TASK_STARTING; spawn a; send b TASK_STARTING; spawn b; send c TASK_STARTING; spawn c
        0 spawned a: send a TASK_RUNNING
        0 spawned b: send b TASK_RUNNING
        0 spawned c: send c TASK_RUNNING
        1 exited c 0: send c TASK_FINISHED "Command exited with status 0"
        2 exited a 3: send a TASK_FAILED "Command exited with status 3"; send b TASK_KILLING; SIGTERM b | wake 12
        3 signaled b 15: send b TASK_KILLED "Command terminated with signal Terminated" | wake 63
        "#,
    );
    // A signal counts as a failure too; siblings get the default 3 s, then SIGKILL.
    check(
        vec![
            (0.0, launch_group(&[("a", json!({})), ("b", json!({}))])),
            (0.0, spawned("a")),
            (0.0, spawned("b")),
            (1.0, signaled("a", 9)),
            (4.0, Input::Tick),
            (4.0, signaled("b", 9)),
        ],
        r#"
        0 launch_group a,b: send a TASK_STARTING; spawn a; send b TASK_STARTING; spawn b
        0 spawned a: send a TASK_RUNNING
        0 spawned b: send b TASK_RUNNING
        1 signaled a 9: send a TASK_FAILED "Command terminated with signal Killed"; SIGTERM b | wake 4
        4 tick: SIGKILL b
        4 signaled b 9: send b TASK_KILLED "Command terminated with signal Killed" | wake 64
        "#,
    );
    // A command that cannot start fails its group; a sibling still being spawned is
    // killed as soon as it runs.
    check(
        vec![
            (0.0, subscribed(true)),
            (0.0, launch_group(&[("a", json!({})), ("b", json!({}))])),
            (0.0, spawn_failed("a", "/x: No such file or directory")),
            (0.0, spawned("b")),
            (1.0, signaled("b", 15)),
        ],
        r#"
        0 subscribed killing=true: nothing
        0 launch_group a,b: send a TASK_STARTING; spawn a; send b TASK_STARTING; spawn b
        0 spawn_failed a /x: No such file or directory: send a TASK_FAILED "Failed to launch the command: /x: No such file or directory" REASON_COMMAND_EXECUTOR_FAILED
        0 spawned b: send b TASK_RUNNING; send b TASK_KILLING; SIGTERM b | wake 3
        1 signaled b 15: send b TASK_KILLED "Command terminated with signal Terminated" | wake 61
        "#,
    );
    // A task past its max_completion_time fails, and takes its group with it.
    check(
        vec![
            (
                0.0,
                launch_group(&[
                    (
                        "a",
                        json!({"max_completion_time": {"nanoseconds": 5_000_000_000i64}}),
                    ),
                    ("b", json!({})),
                ]),
            ),
            (0.0, spawned("a")),
            (0.0, spawned("b")),
            (5.0, Input::Tick),
            (6.0, signaled("a", 15)),
            (7.0, exited("b", 143)),
        ],
        r#"
        0 launch_group a,b: send a TASK_STARTING; spawn a; send b TASK_STARTING; spawn b
        0 spawned a: send a TASK_RUNNING | wake 5
        0 spawned b: send b TASK_RUNNING | wake 5
        5 tick: SIGTERM a | wake 8
        6 signaled a 15: send a TASK_FAILED "Command terminated with signal Terminated" REASON_MAX_COMPLETION_TIME_REACHED; SIGTERM b | wake 9
        7 exited b 143: send b TASK_KILLED "Command exited with status 143" | wake 67
        "#,
    );
}

#[test]
fn killing_one_task_kills_its_group() {
    // The named task first, then its siblings, each with its own grace period unless
    // the KILL sets one; a later kill only shortens; kills of ended tasks are ignored.
    check(
        vec![
            (0.0, subscribed(true)),
            (0.0, launch_group(&[("a", json!({})), ("b", grace(10))])),
            (0.0, spawned("a")),
            (0.0, spawned("b")),
            (1.0, kill_task("b", None)),
            (2.0, kill_task("a", Some(1.0))),
            (2.5, signaled("a", 15)),
            (3.0, Input::Tick),
            (3.0, signaled("b", 9)),
            (4.0, kill_task("a", None)),
        ],
        r#"
        0 subscribed killing=true: nothing
        0 launch_group a,b: send a TASK_STARTING; spawn a; send b TASK_STARTING; spawn b
        0 spawned a: send a TASK_RUNNING
        0 spawned b: send b TASK_RUNNING
        1 kill b: send b TASK_KILLING; SIGTERM b; send a TASK_KILLING; SIGTERM a | wake 4
        2 kill a grace=1: nothing | wake 3
        2.5 signaled a 15: send a TASK_KILLED "Command terminated with signal Terminated" | wake 3
        3 tick: SIGKILL b
        3 signaled b 9: send b TASK_KILLED "Command terminated with signal Killed" | wake 63
        4 kill a: nothing | wake 63
        "#,
    );
    // The KILL's own grace period applies to the whole group; a task that already
    // finished is left alone.
    check(
        vec![
            (
                0.0,
                launch_group(&[("a", json!({})), ("b", grace(10)), ("c", json!({}))]),
            ),
            (0.0, spawned("a")),
            (0.0, spawned("b")),
            (0.0, spawned("c")),
            (1.0, exited("c", 0)),
            (2.0, kill_task("a", Some(20.0))),
            (3.0, exited("a", 0)),
            (3.0, signaled("b", 15)),
        ],
        r#"
        0 launch_group a,b,c: send a TASK_STARTING; spawn a; send b TASK_STARTING; spawn b; send c TASK_STARTING; spawn c
        0 spawned a: send a TASK_RUNNING
        0 spawned b: send b TASK_RUNNING
        0 spawned c: send c TASK_RUNNING
        1 exited c 0: send c TASK_FINISHED "Command exited with status 0"
        2 kill a grace=20: SIGTERM a; SIGTERM b | wake 22
        3 exited a 0: send a TASK_KILLED "Command exited with status 0" | wake 22
        3 signaled b 15: send b TASK_KILLED "Command terminated with signal Terminated" | wake 63
        "#,
    );
}

#[test]
fn a_second_group_runs_on_the_same_executor() {
    // Groups are independent: a failure in one leaves the other running; the executor
    // keeps taking groups until it exits.
    check(
        vec![
            (0.0, launch_group(&[("a", json!({})), ("b", json!({}))])),
            (0.0, spawned("a")),
            (0.0, spawned("b")),
            (1.0, launch_group(&[("c", json!({})), ("d", json!({}))])),
            (1.0, spawned("c")),
            (1.0, spawned("d")),
            (2.0, exited("c", 1)),
            (3.0, signaled("d", 15)),
            (4.0, kill_task("a", None)),
            (5.0, signaled("a", 15)),
            (5.0, signaled("b", 15)),
            (6.0, launch_group(&[("e", json!({}))])),
        ],
        r#"
        0 launch_group a,b: send a TASK_STARTING; spawn a; send b TASK_STARTING; spawn b
        0 spawned a: send a TASK_RUNNING
        0 spawned b: send b TASK_RUNNING
        1 launch_group c,d: send c TASK_STARTING; spawn c; send d TASK_STARTING; spawn d
        1 spawned c: send c TASK_RUNNING
        1 spawned d: send d TASK_RUNNING
        2 exited c 1: send c TASK_FAILED "Command exited with status 1"; SIGTERM d | wake 5
        3 signaled d 15: send d TASK_KILLED "Command terminated with signal Terminated"
        4 kill a: SIGTERM a; SIGTERM b | wake 7
        5 signaled a 15: send a TASK_KILLED "Command terminated with signal Terminated" | wake 7
        5 signaled b 15: send b TASK_KILLED "Command terminated with signal Terminated" | wake 65
        6 launch_group e: send e TASK_STARTING; spawn e
        "#,
    );
}

#[test]
fn launches_a_default_executor_refuses_or_ignores() {
    check(
        vec![
            (0.0, launch_group(&[("a", json!({}))])),
            (0.0, spawned("a")),
            (1.0, launch()),
            (1.0, launch_group(&[("a", json!({})), ("e", json!({}))])),
            (1.0, launch_group(&[("f", json!({})), ("f", json!({}))])),
            (1.0, launch_group(&[("a", json!({}))])),
            (1.0, Input::LaunchGroup(Vec::new())),
            (1.0, spawned("zz")),
            (1.0, exited("zz", 0)),
            (1.0, spawn_failed("zz", "nope")),
        ],
        r#"
        0 launch_group a: send a TASK_STARTING; spawn a
        0 spawned a: send a TASK_RUNNING
        1 launch t1: send t1 TASK_FAILED "Attempted to run a single task using the \"default\" executor, which runs task groups"
        1 launch_group a,e: send e TASK_STARTING; spawn e
        1 launch_group f,f: send f TASK_STARTING; spawn f
        1 launch_group a: nothing
        1 launch_group : nothing
        1 spawned zz: nothing
        1 exited zz 0: nothing
        1 spawn_failed zz nope: nothing
        "#,
    );
    // An empty group does not make the executor one of task groups.
    check(
        vec![(0.0, Input::LaunchGroup(Vec::new())), (0.0, launch())],
        r#"
        0 launch_group : nothing
        0 launch t1: send t1 TASK_STARTING; spawn t1
        "#,
    );
}

#[test]
fn a_group_with_a_task_without_command_does_not_start() {
    check(
        vec![
            (
                0.0,
                launch_group(&[
                    ("a", json!({})),
                    ("b", json!({"command": null})),
                    ("c", json!({})),
                ]),
            ),
            (1.0, kill_task("a", None)),
            (2.0, launch_group(&[("d", json!({}))])),
        ],
        r#"
        0 launch_group a,b,c: send a TASK_KILLED "Task not started: task b of its group has no command" REASON_TASK_GROUP_INVALID; send b TASK_FAILED "Task has no command" REASON_TASK_GROUP_INVALID; send c TASK_KILLED "Task not started: task b of its group has no command" REASON_TASK_GROUP_INVALID | wake 60
        1 kill a: nothing | wake 60
        2 launch_group d: send d TASK_STARTING; spawn d
        "#,
    );
}

#[test]
fn shutdown_kills_every_group() {
    check(
        vec![
            (0.0, subscribed(true)),
            (0.0, launch_group(&[("a", json!({})), ("b", json!({}))])),
            (0.0, spawned("a")),
            (0.0, spawned("b")),
            (0.0, launch_group(&[("c", json!({})), ("d", grace(10))])),
            (0.0, spawned("c")),
            (0.0, spawned("d")),
            (1.0, exited("c", 0)),
            (2.0, Input::Shutdown),
            (3.0, launch_group(&[("e", json!({}))])),
            (3.0, signaled("a", 15)),
            (5.0, Input::Tick),
            (5.0, signaled("b", 9)),
            (5.0, signaled("d", 9)),
            (6.0, Input::Shutdown),
        ],
        r#"
        0 subscribed killing=true: nothing
        0 launch_group a,b: send a TASK_STARTING; spawn a; send b TASK_STARTING; spawn b
        0 spawned a: send a TASK_RUNNING
        0 spawned b: send b TASK_RUNNING
        0 launch_group c,d: send c TASK_STARTING; spawn c; send d TASK_STARTING; spawn d
        0 spawned c: send c TASK_RUNNING
        0 spawned d: send d TASK_RUNNING
        1 exited c 0: send c TASK_FINISHED "Command exited with status 0"
        2 shutdown: send a TASK_KILLING; SIGTERM a; send b TASK_KILLING; SIGTERM b; send d TASK_KILLING; SIGTERM d | wake 5
        3 launch_group e: send e TASK_KILLED "The executor is shutting down" | wake 5
        3 signaled a 15: send a TASK_KILLED "Command terminated with signal Terminated" | wake 5
        5 tick: SIGKILL b; SIGKILL d
        5 signaled b 9: send b TASK_KILLED "Command terminated with signal Killed"
        5 signaled d 9: send d TASK_KILLED "Command terminated with signal Killed" | wake 65
        6 shutdown: exit | wake 65
        "#,
    );
}

#[test]
fn losing_the_agent_kills_every_running_task() {
    check(
        vec![
            (
                0.0,
                launch_group(&[("a", json!({})), ("b", json!({})), ("c", json!({}))]),
            ),
            (0.0, spawned("a")),
            (0.0, spawned("b")),
            (0.0, spawned("c")),
            (1.0, exited("b", 0)),
            (2.0, Input::Disconnected),
        ],
        r#"
        0 launch_group a,b,c: send a TASK_STARTING; spawn a; send b TASK_STARTING; spawn b; send c TASK_STARTING; spawn c
        0 spawned a: send a TASK_RUNNING
        0 spawned b: send b TASK_RUNNING
        0 spawned c: send c TASK_RUNNING
        1 exited b 0: send b TASK_FINISHED "Command exited with status 0"
        2 disconnected: SIGKILL a; SIGKILL c; exit
        "#,
    );
}

#[test]
fn exit_waits_for_every_task_and_its_acknowledgement() {
    let group = |more: Vec<Input>| {
        let mut steps = vec![
            launch_group(&[("a", json!({})), ("b", json!({}))]),
            spawned("a"),
            spawned("b"),
        ];
        steps.extend(more);
        steps
    };
    let both_ended = || group(vec![exited("a", 0), exited("b", 1)]);
    check_exit(group(vec![]), 100, 0, false);
    check_exit(group(vec![exited("a", 0)]), 100, 0, false);
    check_exit(both_ended(), 0, 0, true);
    check_exit(both_ended(), 0, 1, false);
    check_exit(both_ended(), 59, 1, false);
    check_exit(both_ended(), 60, 1, true);
    let no_command = launch_group(&[("a", json!({"command": null})), ("b", json!({}))]);
    check_exit(vec![no_command.clone()], 0, 2, false);
    check_exit(vec![no_command], 0, 0, true);
}
