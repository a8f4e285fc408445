//! What `mantle execute` tells people while it runs, on stderr: a progress bar redrawn
//! in place when many tasks run and stderr is a terminal, otherwise one line per task
//! state change (which also reads well in a log file).

use super::execute::Counts;
use super::table::state_name;
use mantle_api::TaskStatus;
use std::io::{IsTerminal, Write};

/// From this many tasks on, a terminal gets a progress bar instead of lines.
const BAR_FROM: usize = 10;

/// The bar's width in characters.
const BAR_WIDTH: usize = 30;

pub struct Progress {
    bar: bool,
    /// A bar is on the screen and must be cleared before printing a line.
    drawn: bool,
}

impl Progress {
    pub fn new(total: usize) -> Progress {
        Progress {
            bar: total >= BAR_FROM && std::io::stderr().is_terminal(),
            drawn: false,
        }
    }

    /// Shows a task's new state.
    pub fn update(&mut self, status: &TaskStatus, counts: Counts) {
        if self.bar {
            self.draw(counts);
            return;
        }
        let mut line = format!(
            "task {} is {}",
            status.task_id.value,
            state_name(status.state.as_str())
        );
        if status.state.is_terminal() {
            if let Some(message) = status.message.as_deref().filter(|m| !m.is_empty()) {
                line.push_str(&format!(": {message}"));
            }
        }
        eprintln!("{line}");
    }

    /// A line that is not about one task (a lost connection).
    pub fn note(&mut self, message: &str) {
        self.clear();
        eprintln!("{message}");
    }

    fn draw(&mut self, counts: Counts) {
        let mut stderr = std::io::stderr().lock();
        let _ = write!(stderr, "\r{}\x1b[K", bar_line(counts));
        let _ = stderr.flush();
        self.drawn = true;
    }

    fn clear(&mut self) {
        if self.drawn {
            eprint!("\r\x1b[K");
            self.drawn = false;
        }
    }

    /// Leaves the last bar on the screen and ends its line.
    pub fn finish(&mut self) {
        if self.drawn {
            eprintln!();
            self.drawn = false;
        }
    }
}

/// `[#########.....................]  12/40 done  20 running  8 waiting  1 failed`
pub fn bar_line(counts: Counts) -> String {
    let done = counts.finished + counts.failed;
    let filled = (done * BAR_WIDTH).checked_div(counts.total).unwrap_or(0);
    let mut line = format!(
        "[{}{}] {done}/{} done  {} running  {} waiting",
        "#".repeat(filled),
        ".".repeat(BAR_WIDTH - filled),
        counts.total,
        counts.running,
        counts.waiting,
    );
    if counts.failed > 0 {
        line.push_str(&format!("  {} failed", counts.failed));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_fills_with_ended_tasks() {
        let counts = Counts {
            total: 40,
            waiting: 8,
            running: 20,
            finished: 11,
            failed: 1,
        };
        assert_eq!(
            bar_line(counts),
            format!(
                "[{}{}] 12/40 done  20 running  8 waiting  1 failed",
                "#".repeat(9),
                ".".repeat(21)
            )
        );
        let none = Counts::default();
        assert_eq!(
            bar_line(none),
            format!("[{}] 0/0 done  0 running  0 waiting", ".".repeat(30))
        );
    }
}
