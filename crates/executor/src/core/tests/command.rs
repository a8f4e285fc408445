//! The command executor (reference §2, "Command executor"): one task from one LAUNCH.

use super::*;

#[test]
fn runs_to_completion() {
    check(
        vec![
            (0.0, subscribed(false)),
            (0.0, launch()),
            (0.0, spawned("t1")),
            (5.0, exited("t1", 0)),
        ],
        r#"
        0 subscribed killing=false: nothing
        0 launch t1: send t1 TASK_STARTING; spawn t1
        0 spawned t1: send t1 TASK_RUNNING
        5 exited t1 0: send t1 TASK_FINISHED "Command exited with status 0" | wake 65
        "#,
    );
    check(
        vec![
            (0.0, launch()),
            (0.0, spawned("t1")),
            (1.0, exited("t1", 3)),
        ],
        r#"
        0 launch t1: send t1 TASK_STARTING; spawn t1
        0 spawned t1: send t1 TASK_RUNNING
        1 exited t1 3: send t1 TASK_FAILED "Command exited with status 3" | wake 61
        "#,
    );
    check(
        vec![
            (0.0, launch()),
            (0.0, spawned("t1")),
            (1.0, signaled("t1", 11)),
        ],
        r#"
        0 launch t1: send t1 TASK_STARTING; spawn t1
        0 spawned t1: send t1 TASK_RUNNING
        1 signaled t1 11: send t1 TASK_FAILED "Command terminated with signal Segmentation fault" | wake 61
        "#,
    );
}

#[test]
fn launch_failures() {
    check(
        vec![
            (0.0, launch()),
            (
                0.0,
                spawn_failed("t1", "No such file or directory (os error 2)"),
            ),
        ],
        r#"
        0 launch t1: send t1 TASK_STARTING; spawn t1
        0 spawn_failed t1 No such file or directory (os error 2): send t1 TASK_FAILED "Failed to launch the command: No such file or directory (os error 2)" REASON_COMMAND_EXECUTOR_FAILED | wake 60
        "#,
    );
    check(
        vec![
            (0.0, launch_with(json!({"command": null}))),
            (1.0, kill(None)),
        ],
        r#"
        0 launch t1: send t1 TASK_FAILED "Task has no command" | wake 60
        1 kill t1: nothing | wake 60
        "#,
    );
    check(
        vec![
            (0.0, launch()),
            (0.0, spawned("t1")),
            (1.0, launch_with(json!({"task_id": {"value": "t2"}}))),
            (1.0, launch()),
            (1.0, launch_group(&[("g1", json!({}))])),
        ],
        r#"
        0 launch t1: send t1 TASK_STARTING; spawn t1
        0 spawned t1: send t1 TASK_RUNNING
        1 launch t2: send t2 TASK_FAILED "Attempted to run multiple tasks using a \"command\" executor"
        1 launch t1: nothing
        1 launch_group g1: send g1 TASK_FAILED "Attempted to run multiple tasks using a \"command\" executor"
        "#,
    );
}

#[test]
fn kills() {
    // Without TASK_KILLING_STATE, no TASK_KILLING; 3 s by default.
    check(
        vec![
            (0.0, subscribed(false)),
            (0.0, launch()),
            (0.0, spawned("t1")),
            (1.0, kill(None)),
            (4.0, Input::Tick),
            (4.0, Input::Tick),
            (4.5, signaled("t1", 9)),
        ],
        r#"
        0 subscribed killing=false: nothing
        0 launch t1: send t1 TASK_STARTING; spawn t1
        0 spawned t1: send t1 TASK_RUNNING
        1 kill t1: SIGTERM t1 | wake 4
        4 tick: SIGKILL t1
        4 tick: nothing
        4.5 signaled t1 9: send t1 TASK_KILLED "Command terminated with signal Killed" | wake 64.5
        "#,
    );
    // With TASK_KILLING_STATE; the event's grace period; later kills only shorten it.
    check(
        vec![
            (0.0, subscribed(true)),
            (
                0.0,
                launch_with(
                    json!({"kill_policy": {"grace_period": {"nanoseconds": 20_000_000_000i64}}}),
                ),
            ),
            (0.0, spawned("t1")),
            (1.0, kill(Some(10.0))),
            (2.0, kill(Some(30.0))),
            (3.0, kill(Some(2.0))),
            (3.0, kill(None)),
            (4.0, Input::Tick),
            (4.0, signaled("t1", 15)),
        ],
        r#"
        0 subscribed killing=true: nothing
        0 launch t1: send t1 TASK_STARTING; spawn t1
        0 spawned t1: send t1 TASK_RUNNING
        1 kill t1 grace=10: send t1 TASK_KILLING; SIGTERM t1 | wake 11
        2 kill t1 grace=30: nothing | wake 11
        3 kill t1 grace=2: nothing | wake 5
        3 kill t1: nothing | wake 5
        4 tick: nothing | wake 5
        4 signaled t1 15: send t1 TASK_KILLED "Command terminated with signal Terminated" | wake 64
        "#,
    );
    // The task's kill policy applies when the event has none; a task that exits on
    // its own after SIGTERM t1 still counts as killed.
    check(
        vec![
            (
                0.0,
                launch_with(
                    json!({"kill_policy": {"grace_period": {"nanoseconds": 7_000_000_000i64}}}),
                ),
            ),
            (0.0, spawned("t1")),
            (1.0, kill(None)),
            (2.0, exited("t1", 0)),
        ],
        r#"
        0 launch t1: send t1 TASK_STARTING; spawn t1
        0 spawned t1: send t1 TASK_RUNNING
        1 kill t1: SIGTERM t1 | wake 8
        2 exited t1 0: send t1 TASK_KILLED "Command exited with status 0" | wake 62
        "#,
    );
    // Kills of other tasks, before a launch and after the end are ignored.
    check(
        vec![
            (0.0, kill(None)),
            (0.0, launch()),
            (0.0, spawned("t1")),
            (1.0, kill_task("t9", None)),
            (2.0, exited("t1", 0)),
            (3.0, kill(None)),
        ],
        r#"
        0 kill t1: nothing
        0 launch t1: send t1 TASK_STARTING; spawn t1
        0 spawned t1: send t1 TASK_RUNNING
        1 kill t9: nothing
        2 exited t1 0: send t1 TASK_FINISHED "Command exited with status 0" | wake 62
        3 kill t1: nothing | wake 62
        "#,
    );
    // A kill while the command is being spawned takes effect once it runs.
    check(
        vec![
            (0.0, subscribed(true)),
            (0.0, launch()),
            (0.0, kill(Some(1.0))),
            (0.5, spawned("t1")),
        ],
        r#"
        0 subscribed killing=true: nothing
        0 launch t1: send t1 TASK_STARTING; spawn t1
        0 kill t1 grace=1: nothing
        0.5 spawned t1: send t1 TASK_RUNNING; send t1 TASK_KILLING; SIGTERM t1 | wake 1
        "#,
    );
}

#[test]
fn shutdowns() {
    check(
        vec![(0.0, subscribed(true)), (0.0, Input::Shutdown)],
        r#"
        0 subscribed killing=true: nothing
        0 shutdown: exit
        "#,
    );
    check(
        vec![
            (0.0, subscribed(true)),
            (0.0, launch()),
            (0.0, spawned("t1")),
            (1.0, Input::Shutdown),
            (2.0, kill(Some(10.0))),
            (4.0, Input::Tick),
            (4.0, signaled("t1", 9)),
            (5.0, Input::Shutdown),
        ],
        r#"
        0 subscribed killing=true: nothing
        0 launch t1: send t1 TASK_STARTING; spawn t1
        0 spawned t1: send t1 TASK_RUNNING
        1 shutdown: send t1 TASK_KILLING; SIGTERM t1 | wake 4
        2 kill t1 grace=10: nothing | wake 4
        4 tick: SIGKILL t1
        4 signaled t1 9: send t1 TASK_KILLED "Command terminated with signal Killed" | wake 64
        5 shutdown: exit | wake 64
        "#,
    );
    // A shutdown after a longer kill brings SIGKILL t1 closer.
    check(
        vec![
            (0.0, launch()),
            (0.0, spawned("t1")),
            (1.0, kill(Some(30.0))),
            (2.0, Input::Shutdown),
        ],
        r#"
        0 launch t1: send t1 TASK_STARTING; spawn t1
        0 spawned t1: send t1 TASK_RUNNING
        1 kill t1 grace=30: SIGTERM t1 | wake 31
        2 shutdown: nothing | wake 5
        "#,
    );
}

#[test]
fn max_completion_time() {
    check(
        vec![
            (
                0.0,
                launch_with(json!({"max_completion_time": {"nanoseconds": 5_000_000_000i64}})),
            ),
            (1.0, spawned("t1")),
            (3.0, Input::Tick),
            (6.0, Input::Tick),
            (7.0, signaled("t1", 15)),
        ],
        r#"
        0 launch t1: send t1 TASK_STARTING; spawn t1
        1 spawned t1: send t1 TASK_RUNNING | wake 6
        3 tick: nothing | wake 6
        6 tick: SIGTERM t1 | wake 9
        7 signaled t1 15: send t1 TASK_FAILED "Command terminated with signal Terminated" REASON_MAX_COMPLETION_TIME_REACHED | wake 67
        "#,
    );
    // A scheduler's kill before the deadline wins.
    check(
        vec![
            (
                0.0,
                launch_with(json!({"max_completion_time": {"nanoseconds": 5_000_000_000i64}})),
            ),
            (0.0, spawned("t1")),
            (1.0, kill(Some(10.0))),
            (6.0, Input::Tick),
            (7.0, signaled("t1", 15)),
        ],
        r#"
        0 launch t1: send t1 TASK_STARTING; spawn t1
        0 spawned t1: send t1 TASK_RUNNING | wake 5
        1 kill t1 grace=10: SIGTERM t1 | wake 11
        6 tick: nothing | wake 11
        7 signaled t1 15: send t1 TASK_KILLED "Command terminated with signal Terminated" | wake 67
        "#,
    );
}

#[test]
fn disconnections() {
    check(
        vec![
            (0.0, launch()),
            (0.0, spawned("t1")),
            (1.0, Input::Disconnected),
        ],
        r#"
        0 launch t1: send t1 TASK_STARTING; spawn t1
        0 spawned t1: send t1 TASK_RUNNING
        1 disconnected: SIGKILL t1; exit
        "#,
    );
    check(
        vec![(0.0, Input::Disconnected)],
        r#"
        0 disconnected: exit
        "#,
    );
    check_with(
        Config {
            checkpoint: true,
            ..config()
        },
        vec![
            (0.0, launch()),
            (0.0, spawned("t1")),
            (1.0, Input::Disconnected),
            (2.0, exited("t1", 0)),
            (3.0, Input::GaveUp),
        ],
        r#"
        0 launch t1: send t1 TASK_STARTING; spawn t1
        0 spawned t1: send t1 TASK_RUNNING
        1 disconnected: nothing
        2 exited t1 0: send t1 TASK_FINISHED "Command exited with status 0" | wake 62
        3 gave_up: exit | wake 62
        "#,
    );
    check_with(
        Config {
            checkpoint: true,
            ..config()
        },
        vec![(0.0, launch()), (0.0, spawned("t1")), (1.0, Input::GaveUp)],
        r#"
        0 launch t1: send t1 TASK_STARTING; spawn t1
        0 spawned t1: send t1 TASK_RUNNING
        1 gave_up: SIGKILL t1; exit
        "#,
    );
}

#[test]
fn exit_waits_for_the_terminal_acknowledgement() {
    let check = check_exit;
    let finished = || vec![launch(), spawned("t1"), exited("t1", 0)];
    check(vec![], 0, 0, false);
    check(vec![launch()], 0, 0, false);
    check(vec![launch(), spawned("t1")], 100, 0, false);
    check(finished(), 0, 1, false);
    check(finished(), 59, 2, false);
    check(finished(), 0, 0, true);
    check(finished(), 60, 1, true);
    check(vec![Input::Shutdown], 0, 3, true);
    check(
        vec![launch(), spawned("t1"), Input::Disconnected],
        0,
        3,
        true,
    );
}
