//! Reading many tasks at the memory's pace, not its latency. The readers of a large
//! cluster walk hundreds of thousands of tasks, each allocated on its own with its
//! strings beside it, and most of their time went into waiting for each task's first
//! bytes. [`each_task`] asks the CPU for a task's cache lines two tasks ahead and for its
//! strings one task ahead, so that the loads overlap the work on the current task.

use super::Task;

/// Asks the CPU to start loading the cache line at `address`.
#[inline(always)]
fn prefetch(address: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint: it reads nothing into the program and never
    // faults, whatever the address.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(address as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}

/// The cache lines of the task itself.
fn prefetch_task(task: &Task) {
    let start = task as *const Task as *const u8;
    for offset in (0..std::mem::size_of::<Task>()).step_by(64) {
        prefetch(start.wrapping_add(offset));
    }
}

/// The first bytes of what the task points to and the readers read.
fn prefetch_strings(task: &Task) {
    for text in [
        task.info.task_id.as_str(),
        &task.info.name,
        task.info.agent_id.as_str(),
        &task.role,
    ] {
        prefetch(text.as_ptr());
    }
    let statuses = task.statuses.as_ptr() as *const u8;
    let bytes = std::mem::size_of_val(task.statuses.as_slice());
    for offset in (0..bytes).step_by(64) {
        prefetch(statuses.wrapping_add(offset));
    }
}

/// Calls `visit` on each task in order, prefetching the ones that follow.
pub(super) fn each_task<'a>(
    tasks: impl IntoIterator<Item = &'a Task>,
    mut visit: impl FnMut(&'a Task),
) {
    let mut tasks = tasks.into_iter();
    let (mut current, mut next) = (tasks.next(), tasks.next());
    while let Some(task) = current {
        let later = tasks.next();
        if let Some(later) = later {
            prefetch_task(later);
        }
        if let Some(next) = next {
            prefetch_strings(next);
        }
        visit(task);
        (current, next) = (next, later);
    }
}
