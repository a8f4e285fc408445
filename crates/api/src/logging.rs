//! The process's logging level for the master's and the agent's GET_LOGGING_LEVEL and
//! SET_LOGGING_LEVEL (reference §3).
//! Mesos's level is glog's verbosity: 0 is the level the daemon started with, 1 adds
//! debug messages and 2 or more adds trace messages. A change reverts to 0 after the
//! call's duration, as in Mesos. The binary that owns the tracing subscriber installs
//! the function that applies a level.

use crate::operator::SetLoggingLevel;
use crate::ApiError;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

type Apply = Box<dyn Fn(u32) + Send + Sync>;

static APPLY: OnceLock<Apply> = OnceLock::new();
static LEVEL: AtomicU32 = AtomicU32::new(0);
/// Bumped by every change, so a revert timer only reverts its own change.
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Installs how a verbosity level is applied (once per process; later calls are ignored).
pub fn install(apply: impl Fn(u32) + Send + Sync + 'static) {
    let _ = APPLY.set(Box::new(apply));
}

pub fn level() -> u32 {
    LEVEL.load(Ordering::SeqCst)
}

fn apply(level: u32) {
    LEVEL.store(level, Ordering::SeqCst);
    if let Some(apply) = APPLY.get() {
        apply(level);
    }
}

/// Sets `level` now and back to 0 after `duration`, unless another change came since.
/// The revert waits on a thread of its own: changes are rare operator calls.
pub fn set_for(level: u32, duration: Duration) {
    let generation = GENERATION.fetch_add(1, Ordering::SeqCst) + 1;
    apply(level);
    std::thread::spawn(move || {
        std::thread::sleep(duration);
        if GENERATION.load(Ordering::SeqCst) == generation {
            apply(0);
        }
    });
}

/// SET_LOGGING_LEVEL `{level, duration}`, as the master's and the agent's operator APIs
/// take it.
pub fn set_logging_level(set: Option<&SetLoggingLevel>) -> Result<(), ApiError> {
    let Some(set) = set else {
        return Err(ApiError::bad_request(
            "expecting 'set_logging_level' to be present",
        ));
    };
    if set.duration.nanoseconds <= 0 {
        return Err(ApiError::bad_request(
            "set_logging_level.duration: must be positive",
        ));
    }
    set_for(
        set.level,
        Duration::from_nanos(set.duration.nanoseconds as u64),
    );
    Ok(())
}
