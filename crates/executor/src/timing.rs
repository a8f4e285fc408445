//! The executor's durations (reference §2, "Command executor"): which kill grace
//! period applies, how much of the agent's shutdown grace period the tasks get, and the
//! backoff between subscription attempts.

use mantle_api::{DurationInfo, KillPolicy};
use std::time::Duration;

/// The kill grace period when neither the KILL event nor the task sets one; Mesos keeps
/// 3 s for backwards compatibility.
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(3);

/// What the executor keeps back from the agent's shutdown grace period: Mesos subtracts
/// its maximum reap interval (1 s) and one more second, so that TASK_KILLED still reaches
/// the agent before the agent destroys the container.
pub const SHUTDOWN_RESERVE: Duration = Duration::from_secs(2);

/// The first delay between subscription attempts; it doubles up to the maximum.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(250);

/// A protobuf duration as a `Duration`; negative durations count as zero.
pub fn duration_of(info: &DurationInfo) -> Duration {
    Duration::from_nanos(u64::try_from(info.nanoseconds).unwrap_or(0))
}

/// The grace period of a kill: the KILL event's kill policy wins over the task's, and
/// [`DEFAULT_KILL_GRACE`] applies when neither sets one.
pub fn kill_grace(event: Option<&KillPolicy>, task: Option<&KillPolicy>) -> Duration {
    let grace_of = |policy: Option<&KillPolicy>| {
        policy
            .and_then(|p| p.grace_period.as_ref())
            .map(duration_of)
    };
    grace_of(event)
        .or_else(|| grace_of(task))
        .unwrap_or(DEFAULT_KILL_GRACE)
}

/// The grace period the task gets when the agent shuts the executor down.
pub fn shutdown_kill_grace(shutdown_grace_period: Duration) -> Duration {
    shutdown_grace_period.saturating_sub(SHUTDOWN_RESERVE)
}

/// The delay before subscription attempt `attempt + 1`: [`FIRST_BACKOFF`] doubling per
/// attempt, never more than `max`.
pub fn subscribe_backoff(attempt: u32, max: Duration) -> Duration {
    let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
    FIRST_BACKOFF.saturating_mul(factor).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(secs: f64) -> KillPolicy {
        KillPolicy {
            grace_period: Some(DurationInfo::from_secs_f64(secs)),
        }
    }

    fn check_grace(event: Option<KillPolicy>, task: Option<KillPolicy>, expected: Duration) {
        assert_eq!(
            kill_grace(event.as_ref(), task.as_ref()),
            expected,
            "event {event:?}, task {task:?}"
        );
    }

    #[test]
    fn kill_grace_choice() {
        let empty = || Some(KillPolicy { grace_period: None });
        check_grace(None, None, DEFAULT_KILL_GRACE);
        check_grace(empty(), empty(), DEFAULT_KILL_GRACE);
        check_grace(None, Some(policy(10.0)), Duration::from_secs(10));
        check_grace(empty(), Some(policy(10.0)), Duration::from_secs(10));
        check_grace(
            Some(policy(1.5)),
            Some(policy(10.0)),
            Duration::from_millis(1500),
        );
        check_grace(Some(policy(20.0)), None, Duration::from_secs(20));
        check_grace(Some(policy(0.0)), Some(policy(10.0)), Duration::ZERO);
        check_grace(Some(policy(-4.0)), None, Duration::ZERO);
    }

    #[test]
    fn shutdown_grace() {
        let check = |given: u64, expected: u64| {
            assert_eq!(
                shutdown_kill_grace(Duration::from_millis(given)),
                Duration::from_millis(expected),
                "{given}ms"
            );
        };
        check(5_000, 3_000);
        check(10_000, 8_000);
        check(2_500, 500);
        check(1_000, 0);
        check(0, 0);
    }

    #[test]
    fn backoff() {
        let check = |attempt: u32, max_ms: u64, expected_ms: u64| {
            assert_eq!(
                subscribe_backoff(attempt, Duration::from_millis(max_ms)),
                Duration::from_millis(expected_ms),
                "attempt {attempt}, max {max_ms}ms"
            );
        };
        check(0, 2_000, 250);
        check(1, 2_000, 500);
        check(2, 2_000, 1_000);
        check(3, 2_000, 2_000);
        check(4, 2_000, 2_000);
        check(40, 2_000, 2_000);
        check(u32::MAX, 15_000, 15_000);
        check(0, 100, 100);
        check(3, 0, 0);
    }
}
