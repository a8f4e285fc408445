//! A benchmark cluster: a `mantle master` and agents as separate processes on free
//! loopback ports, so the master's memory can be read on its own.

use anyhow::{bail, Context};
use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A process this benchmark started, killed and reaped when dropped, also when the
/// benchmark is interrupted (`main` drops the running benchmark on SIGINT or SIGTERM).
pub struct Process(Child);

impl Deref for Process {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl DerefMut for Process {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub struct Cluster {
    pub master: String,
    master_pid: u32,
    agent_pids: Vec<u32>,
    children: Vec<Process>,
    dir: tempfile::TempDir,
}

pub fn wait_for_address(log: &Path, child: &mut Child) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        // Only whole lines: the daemon may be writing the last one right now.
        let complete = text.rsplit_once('\n').map_or("", |(done, _)| done);
        if let Some(line) = complete
            .lines()
            .find(|l| l.contains("listening on http://"))
        {
            return Ok(line
                .rsplit("http://")
                .next()
                .unwrap_or_default()
                .trim()
                .to_string());
        }
        if let Some(status) = child.try_wait()? {
            bail!("daemon exited with {status}:\n{text}");
        }
        if Instant::now() > deadline {
            bail!("daemon did not start within 30 s:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn spawn(mantle: &Path, args: &[&str], log: &Path) -> anyhow::Result<Process> {
    let file = std::fs::File::create(log)?;
    Command::new(mantle)
        .args(args)
        .env(
            "MANTLE_LOGGING_LEVEL",
            std::env::var("MANTLE_BENCH_LOGGING_LEVEL").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .map(Process)
        .with_context(|| format!("cannot run {}", mantle.display()))
}

/// Starts `mantle master` on `port` (0 picks a free one) with its store in `work`, logging
/// to `log`; returns at once, before it listens.
pub fn spawn_master(mantle: &Path, work: &Path, port: u16, log: &Path) -> anyhow::Result<Process> {
    let port = port.to_string();
    let work = work.to_str().context("work directory is not UTF-8")?;
    spawn(
        mantle,
        &["master", "--port", &port, "--work_dir", work],
        log,
    )
}

/// Starts `mantle master` and waits until it listens; returns it with its `ip:port`.
pub fn start_master(mantle: &Path, work: &Path, log: &Path) -> anyhow::Result<(Process, String)> {
    let mut master = spawn_master(mantle, work, 0, log)?;
    let address = wait_for_address(log, &mut master)?;
    Ok((master, address))
}

/// A `mantle master` in a temporary work directory of its own, killed when dropped.
pub struct TempMaster {
    pub address: String,
    pub pid: u32,
    _child: Process,
    _dir: tempfile::TempDir,
}

impl TempMaster {
    pub fn start(mantle: &Path) -> anyhow::Result<TempMaster> {
        let dir = tempfile::tempdir()?;
        let (child, address) = start_master(
            mantle,
            &dir.path().join("master"),
            &dir.path().join("master.log"),
        )?;
        Ok(TempMaster {
            address,
            pid: child.id(),
            _child: child,
            _dir: dir,
        })
    }
}

impl Cluster {
    pub async fn start(mantle: &Path, agents: usize, resources: &str) -> anyhow::Result<Cluster> {
        let dir = tempfile::tempdir()?;
        let log = dir.path().join("master.log");
        let work = dir.path().join("master");
        let (master, address) = start_master(mantle, &work, &log)?;
        let master_pid = master.id();
        let mut cluster = Cluster {
            master: address.clone(),
            master_pid,
            agent_pids: Vec::new(),
            children: vec![master],
            dir,
        };
        for index in 0..agents {
            let log = cluster.dir.path().join(format!("agent-{index}.log"));
            let work = cluster.dir.path().join(format!("agent-{index}"));
            let mut agent = spawn(
                mantle,
                &[
                    "agent",
                    "--master",
                    &address,
                    "--port",
                    "0",
                    "--work_dir",
                    work.to_str().unwrap_or(""),
                    "--resources",
                    resources,
                ],
                &log,
            )?;
            wait_for_address(&log, &mut agent)?;
            cluster.agent_pids.push(agent.id());
            cluster.children.push(agent);
        }
        Ok(cluster)
    }

    /// The master's resident set size in MB, from /proc.
    pub fn master_rss_mb(&self) -> anyhow::Result<f64> {
        rss_mb(self.master_pid)
    }
}

/// A process's resident set size in MB, from /proc.
pub fn rss_mb(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS in /proc/PID/status")?;
    Ok(kb / 1024.0)
}

/// The descriptors a process holds open now (its entries of /proc/PID/fd); 0 when that
/// cannot be read.
pub fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |entries| entries.count())
}

/// The children a process has now, from the `children` list of each of its threads.
fn live_children(pid: u32) -> Vec<u32> {
    let Ok(threads) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    threads
        .flatten()
        .filter_map(|thread| std::fs::read_to_string(thread.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|pid| pid.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// CPU seconds of a process itself and of its reaped children, from /proc/PID/stat.
pub fn cpu_seconds(pid: u32) -> (f64, f64) {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return (0.0, 0.0);
    };
    // Fields after the parenthesised command name; utime is field 14 of the whole line.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<f64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0.0))
        .collect();
    // SAFETY: sysconf has no memory-safety effects.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let at = |i: usize| fields.get(i).copied().unwrap_or(0.0) / ticks;
    (at(11) + at(12), at(13) + at(14))
}

impl Cluster {
    /// CPU seconds so far: the master, the agents, and what the agents' launchers,
    /// executors and tasks used (children the agents reaped, and their launcher servers,
    /// which reap the launchers).
    pub fn cpu(&self) -> (f64, f64, f64) {
        let (master, _) = cpu_seconds(self.master_pid);
        let mut agents = 0.0;
        let mut executors = 0.0;
        for pid in &self.agent_pids {
            let (own, children) = cpu_seconds(*pid);
            agents += own;
            executors += children;
            for child in live_children(*pid) {
                let (own, children) = cpu_seconds(child);
                executors += own + children;
            }
        }
        (master, agents, executors)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in self.children.iter_mut().rev() {
            // SAFETY: signalling our own child process has no memory-safety effects.
            unsafe {
                libc::kill(child.id() as i32, libc::SIGTERM);
            }
        }
        std::thread::sleep(Duration::from_millis(500));
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
