//! How the executor reports the end of a task (reference §2, "Exit"): the terminal
//! state, reason and message for an exit code or a signal, given why (if at all) the
//! executor was killing the task.

use crate::core::KillCause;
use mantle_api::{Reason, TaskState};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

/// How the task's process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this status code.
    Code(i32),
    /// A signal with this number terminated it.
    Signal(i32),
}

impl Exit {
    pub fn from_status(status: ExitStatus) -> Exit {
        match (status.code(), status.signal()) {
            (Some(code), _) => Exit::Code(code),
            (None, Some(signal)) => Exit::Signal(signal),
            // `wait` only reports processes that exited or were killed, so this is
            // unreachable in practice; report it as a failure rather than guess.
            (None, None) => Exit::Code(-1),
        }
    }
}

/// The Mesos message for an exit: `Command exited with status N` or
/// `Command terminated with signal <description>` (the strsignal text Mesos prints,
/// such as `Terminated`).
pub fn describe(exit: Exit) -> String {
    match exit {
        Exit::Code(code) => format!("Command exited with status {code}"),
        Exit::Signal(signal) => match signal_description(signal) {
            Some(name) => format!("Command terminated with signal {name}"),
            None => format!("Command terminated with signal {signal}"),
        },
    }
}

/// The message for a Docker container's end, as `mesos-docker-executor` words it: the
/// engine reports a container killed by a signal as status 128 + the signal, so there is
/// no signal form. An OOM kill the engine saw is added, since the status alone (137)
/// looks like any SIGKILL.
pub fn describe_container(status: i64, oom_killed: bool) -> String {
    match oom_killed {
        true => format!("Container exited with status {status} (out of memory)"),
        false => format!("Container exited with status {status}"),
    }
}

/// The terminal state and reason of a task whose process ended: a kill the executor
/// started makes it TASK_KILLED whatever the exit (the process may have exited on its own
/// just before the signal), except that a kill for exceeding `max_completion_time` is a
/// failure; a task killed because another task of its group failed is TASK_KILLED too.
/// Otherwise only status 0 is TASK_FINISHED.
pub fn terminal_state(exit: Exit, kill: Option<KillCause>) -> (TaskState, Option<Reason>) {
    match kill {
        Some(KillCause::MaxCompletionTime) => {
            (TaskState::Failed, Some(Reason::MaxCompletionTimeReached))
        }
        Some(KillCause::Requested | KillCause::Shutdown | KillCause::GroupFailed) => {
            (TaskState::Killed, None)
        }
        None if exit == Exit::Code(0) => (TaskState::Finished, None),
        None => (TaskState::Failed, None),
    }
}

/// The strsignal(3) description of a Linux signal number, as Mesos prints it.
pub fn signal_description(signal: i32) -> Option<&'static str> {
    let name = match signal {
        libc::SIGHUP => "Hangup",
        libc::SIGINT => "Interrupt",
        libc::SIGQUIT => "Quit",
        libc::SIGILL => "Illegal instruction",
        libc::SIGTRAP => "Trace/breakpoint trap",
        libc::SIGABRT => "Aborted",
        libc::SIGBUS => "Bus error",
        libc::SIGFPE => "Floating point exception",
        libc::SIGKILL => "Killed",
        libc::SIGUSR1 => "User defined signal 1",
        libc::SIGSEGV => "Segmentation fault",
        libc::SIGUSR2 => "User defined signal 2",
        libc::SIGPIPE => "Broken pipe",
        libc::SIGALRM => "Alarm clock",
        libc::SIGTERM => "Terminated",
        libc::SIGCHLD => "Child exited",
        libc::SIGCONT => "Continued",
        libc::SIGSTOP => "Stopped (signal)",
        libc::SIGTSTP => "Stopped",
        libc::SIGTTIN => "Stopped (tty input)",
        libc::SIGTTOU => "Stopped (tty output)",
        libc::SIGURG => "Urgent I/O condition",
        libc::SIGXCPU => "CPU time limit exceeded",
        libc::SIGXFSZ => "File size limit exceeded",
        libc::SIGVTALRM => "Virtual timer expired",
        libc::SIGPROF => "Profiling timer expired",
        libc::SIGWINCH => "Window changed",
        libc::SIGIO => "I/O possible",
        libc::SIGSYS => "Bad system call",
        _ => return None,
    };
    Some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(exit: Exit, kill: Option<KillCause>, expected: (TaskState, Option<Reason>, &str)) {
        let (state, reason) = terminal_state(exit, kill);
        assert_eq!(
            (state, reason, describe(exit).as_str()),
            expected,
            "{exit:?} with kill {kill:?}"
        );
    }

    #[test]
    fn exits() {
        use KillCause::*;
        use TaskState::*;
        check(
            Exit::Code(0),
            None,
            (Finished, None, "Command exited with status 0"),
        );
        check(
            Exit::Code(3),
            None,
            (Failed, None, "Command exited with status 3"),
        );
        check(
            Exit::Code(127),
            None,
            (Failed, None, "Command exited with status 127"),
        );
        check(
            Exit::Signal(libc::SIGSEGV),
            None,
            (
                Failed,
                None,
                "Command terminated with signal Segmentation fault",
            ),
        );
        check(
            Exit::Signal(libc::SIGKILL),
            None,
            (Failed, None, "Command terminated with signal Killed"),
        );
        check(
            Exit::Signal(64),
            None,
            (Failed, None, "Command terminated with signal 64"),
        );
        check(
            Exit::Signal(libc::SIGTERM),
            Some(Requested),
            (Killed, None, "Command terminated with signal Terminated"),
        );
        check(
            Exit::Signal(libc::SIGKILL),
            Some(Shutdown),
            (Killed, None, "Command terminated with signal Killed"),
        );
        check(
            Exit::Signal(libc::SIGTERM),
            Some(GroupFailed),
            (Killed, None, "Command terminated with signal Terminated"),
        );
        check(
            Exit::Code(0),
            Some(GroupFailed),
            (Killed, None, "Command exited with status 0"),
        );
        check(
            Exit::Code(0),
            Some(Requested),
            (Killed, None, "Command exited with status 0"),
        );
        check(
            Exit::Code(143),
            Some(Requested),
            (Killed, None, "Command exited with status 143"),
        );
        check(
            Exit::Signal(libc::SIGTERM),
            Some(MaxCompletionTime),
            (
                Failed,
                Some(Reason::MaxCompletionTimeReached),
                "Command terminated with signal Terminated",
            ),
        );
        check(
            Exit::Code(0),
            Some(MaxCompletionTime),
            (
                Failed,
                Some(Reason::MaxCompletionTimeReached),
                "Command exited with status 0",
            ),
        );
    }

    #[test]
    fn container_messages() {
        assert_eq!(
            describe_container(0, false),
            "Container exited with status 0"
        );
        assert_eq!(
            describe_container(137, true),
            "Container exited with status 137 (out of memory)"
        );
        assert_eq!(
            describe_container(-1, false),
            "Container exited with status -1"
        );
    }

    #[test]
    fn wait_statuses() {
        let check = |raw: i32, expected: Exit| {
            assert_eq!(
                Exit::from_status(ExitStatus::from_raw(raw)),
                expected,
                "{raw:#x}"
            )
        };
        check(0, Exit::Code(0));
        check(3 << 8, Exit::Code(3));
        check(255 << 8, Exit::Code(255));
        check(libc::SIGSEGV, Exit::Signal(libc::SIGSEGV));
        check(libc::SIGKILL | 0x80, Exit::Signal(libc::SIGKILL));
    }
}
