//! The agent's side of `mantle-launcher --serve` (see
//! `mantle_containerizer::launch::serve` for the protocol): one long-lived launcher
//! process that forks a launcher per container, started on the first launch and again
//! after it died.
//!
//! A launch writes the config's path to the server and blocks (on a blocking-pool
//! thread) until the server answers with the launcher's pid. A reader thread takes the
//! server's answers and exit reports in order and hands each to whoever waits for it.
//! When the server dies, every launch still waiting fails and every launcher still
//! running is reported as lost, so its watcher falls back to polling the process.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::error::AgentError;

/// A launcher the server started.
pub struct Started {
    pub pid: u32,
    /// Its start time (`/proc/<pid>/stat` field 22), 0 if the server could not read it.
    pub start_time: u64,
    /// Its raw wait status once it ends; an error if the server died first.
    pub exit: oneshot::Receiver<i32>,
}

/// The agent's launcher server; cheap to share.
pub struct LauncherServer {
    program: PathBuf,
    running: Mutex<Option<Running>>,
}

impl std::fmt::Debug for LauncherServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LauncherServer")
            .field("program", &self.program)
            .finish_non_exhaustive()
    }
}

struct Running {
    child: Child,
    stdin: ChildStdin,
    waiting: Arc<Mutex<Waiting>>,
}

/// Who waits for what the server says next.
#[derive(Default)]
struct Waiting {
    /// The launches asked for and not answered yet, in the order they were asked.
    answers: VecDeque<mpsc::Sender<Result<Started, String>>>,
    /// The running launchers' watchers, by pid.
    exits: HashMap<u32, oneshot::Sender<i32>>,
    /// The server's stdout closed: it is gone.
    closed: bool,
}

impl LauncherServer {
    /// A server running `program --serve`, started on the first launch.
    pub fn new(program: PathBuf) -> LauncherServer {
        LauncherServer {
            program,
            running: Mutex::new(None),
        }
    }

    /// Starts a launcher on the config at `config_path`. Blocks until the server has
    /// forked it (a fraction of a millisecond) or has failed to.
    pub fn launch(&self, config_path: &Path) -> Result<Started, AgentError> {
        let spawn_error = |source| AgentError::Spawn {
            program: self.program.display().to_string(),
            source,
        };
        let mut line = config_path.as_os_str().as_encoded_bytes().to_vec();
        line.push(b'\n');
        let (answer, answered) = mpsc::channel();
        {
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            let alive = running
                .as_ref()
                .is_some_and(|r| !r.waiting.lock().unwrap_or_else(|e| e.into_inner()).closed);
            if !alive {
                if let Some(mut old) = running.take() {
                    // Its stdout closed, so it exited or is about to: reap it.
                    drop(old.stdin);
                    let _ = old.child.wait();
                }
                *running = Some(self.spawn().map_err(spawn_error)?);
            }
            let server = running.as_mut().expect("started above");
            // Queued before the request is written, so the answer finds it; both under
            // the lock, so answers and requests keep the same order.
            server
                .waiting
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .answers
                .push_back(answer);
            if let Err(err) = server.stdin.write_all(&line) {
                // The server is dying; the reader drops the queued answer when its
                // stdout closes, and the next launch starts a new one.
                return Err(spawn_error(err));
            }
        }
        match answered.recv() {
            Ok(Ok(started)) => Ok(started),
            Ok(Err(reason)) => Err(spawn_error(std::io::Error::other(reason))),
            Err(_) => Err(spawn_error(std::io::Error::other(
                "the launcher server exited",
            ))),
        }
    }

    fn spawn(&self) -> std::io::Result<Running> {
        let mut child = Command::new(&self.program)
            .arg("--serve")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            // Its own group, as every launcher's, so a Ctrl-C meant for the agent does
            // not reach it or the launchers it forks.
            .process_group(0)
            .spawn()?;
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let waiting = Arc::new(Mutex::new(Waiting::default()));
        let shared = waiting.clone();
        std::thread::Builder::new()
            .name("launcher-server".into())
            .spawn(move || read_reports(BufReader::new(stdout), &shared))?;
        Ok(Running {
            child,
            stdin,
            waiting,
        })
    }
}

impl Drop for LauncherServer {
    fn drop(&mut self) {
        // Closing its stdin stops the server; the launchers it started keep running.
        if let Some(mut running) = self
            .running
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            drop(running.stdin);
            let _ = running.child.wait();
        }
    }
}

/// Hands each of the server's lines to whoever waits for it, until its stdout closes.
fn read_reports(stdout: impl BufRead, waiting: &Mutex<Waiting>) {
    for line in stdout.lines() {
        let Ok(line) = line else { break };
        let mut waiting = waiting.lock().unwrap_or_else(|e| e.into_inner());
        match parse(&line) {
            Some(Report::Started { pid, start_time }) => {
                let (exited, exit) = oneshot::channel();
                waiting.exits.insert(pid, exited);
                if let Some(answer) = waiting.answers.pop_front() {
                    let _ = answer.send(Ok(Started {
                        pid,
                        start_time,
                        exit,
                    }));
                }
            }
            Some(Report::Failed(reason)) => {
                if let Some(answer) = waiting.answers.pop_front() {
                    let _ = answer.send(Err(reason));
                }
            }
            Some(Report::Exited { pid, status }) => {
                if let Some(exited) = waiting.exits.remove(&pid) {
                    let _ = exited.send(status);
                }
            }
            None => tracing::warn!(line, "the launcher server said something unexpected"),
        }
    }
    let mut waiting = waiting.lock().unwrap_or_else(|e| e.into_inner());
    waiting.closed = true;
    // Dropping the senders tells the launches still waiting and the watchers.
    waiting.answers.clear();
    if !waiting.exits.is_empty() {
        tracing::warn!(
            launchers = waiting.exits.len(),
            "the launcher server exited; watching its launchers by their pids"
        );
    }
    waiting.exits.clear();
}

#[derive(Debug, PartialEq)]
enum Report {
    Started { pid: u32, start_time: u64 },
    Failed(String),
    Exited { pid: u32, status: i32 },
}

fn parse(line: &str) -> Option<Report> {
    let (kind, rest) = line.split_once(' ')?;
    let mut fields = rest.split(' ');
    let mut number = || fields.next()?.parse::<i64>().ok();
    match kind {
        "started" => Some(Report::Started {
            pid: u32::try_from(number()?).ok()?,
            start_time: u64::try_from(number()?).ok()?,
        }),
        "failed" => Some(Report::Failed(rest.to_string())),
        "exited" => Some(Report::Exited {
            pid: u32::try_from(number()?).ok()?,
            status: i32::try_from(number()?).ok()?,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_servers_lines() {
        assert_eq!(
            parse("started 42 1234567"),
            Some(Report::Started {
                pid: 42,
                start_time: 1234567
            })
        );
        assert_eq!(
            parse("failed Resource temporarily unavailable (os error 11)"),
            Some(Report::Failed(
                "Resource temporarily unavailable (os error 11)".into()
            ))
        );
        assert_eq!(
            parse("exited 42 256"),
            Some(Report::Exited {
                pid: 42,
                status: 256
            })
        );
        assert_eq!(parse("started -1 0"), None);
        assert_eq!(parse("exited 42"), None);
        assert_eq!(parse("hello"), None);
    }

    #[test]
    fn answers_and_exits_reach_their_waiters_and_a_closed_server_fails_the_rest() {
        let waiting = Mutex::new(Waiting::default());
        let (first, first_answer) = mpsc::channel();
        let (second, second_answer) = mpsc::channel();
        let (third, third_answer) = mpsc::channel();
        {
            let mut w = waiting.lock().unwrap();
            w.answers.extend([first, second, third]);
        }
        let lines = "started 10 5\nfailed no more processes\nexited 10 0\n";
        read_reports(lines.as_bytes(), &waiting);
        let started = first_answer.recv().unwrap().unwrap();
        assert_eq!((started.pid, started.start_time), (10, 5));
        assert_eq!(started.exit.blocking_recv(), Ok(0));
        assert_eq!(
            second_answer.recv().unwrap().err().as_deref(),
            Some("no more processes")
        );
        // The stream ended before the third was answered.
        assert!(third_answer.recv().is_err());
        assert!(waiting.lock().unwrap().closed);
    }

    #[test]
    fn a_launcher_still_running_when_the_server_goes_is_reported_lost() {
        let waiting = Mutex::new(Waiting::default());
        let (answer, answered) = mpsc::channel();
        waiting.lock().unwrap().answers.push_back(answer);
        read_reports("started 11 7\n".as_bytes(), &waiting);
        let started = answered.recv().unwrap().unwrap();
        assert!(started.exit.blocking_recv().is_err());
    }
}
