//! A test cluster of real `mantle` processes on free loopback ports: one master and N
//! agents, each logging to a file in the cluster's temporary directory. Dropping the
//! cluster kills the daemons and every process still running in its sandboxes.

#![allow(dead_code)]

pub mod checks;
pub mod framework;
pub mod netns;

use mantle_sdk::HttpClient;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const MANTLE: &str = env!("CARGO_BIN_EXE_mantle");

pub struct Cluster {
    pub master: String,
    pub agents: Vec<String>,
    pub dir: tempfile::TempDir,
    /// The master (none when the agents follow masters started elsewhere), then each
    /// agent by index.
    master_child: Option<Child>,
    children: Vec<Child>,
    master_args: Vec<String>,
    /// Each agent's command line, to start it again.
    agent_args: Vec<Vec<String>>,
    pub http: HttpClient,
    /// Hosts in network namespaces (master on host 0, agent `i` on host `i + 1`), or
    /// none: everything on loopback. Dropped after the processes are killed.
    pub net: Option<netns::Network>,
}

/// The established TCP connections to `port` on loopback, or only those of process
/// `pid`: `/proc/net/tcp`, its sockets matched by inode against the process's descriptors.
pub fn connections_to(port: u16, pid: Option<u32>) -> usize {
    connection_ends(port, pid).len()
}

/// The local ends (address and port, as `/proc/net/tcp` writes them) of the connections
/// [`connections_to`] counts: a connection opened between two calls is in the second
/// set and not the first, whatever other clients' connections closed meanwhile.
pub fn connection_ends(port: u16, pid: Option<u32>) -> BTreeSet<String> {
    let sockets: Option<Vec<String>> = pid.map(|pid| {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
            .filter_map(|target| {
                let target = target.to_string_lossy().into_owned();
                Some(
                    target
                        .strip_prefix("socket:[")?
                        .strip_suffix(']')?
                        .to_string(),
                )
            })
            .collect()
    });
    let remote = format!(":{port:04X}");
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|line| {
            // Columns: sl, local, remote, state (01 = ESTABLISHED), ..., inode (the tenth).
            let fields: Vec<&str> = line.split_whitespace().collect();
            let counted = fields.len() > 9
                && fields[2].ends_with(&remote)
                && fields[3] == "01"
                && sockets
                    .as_ref()
                    .is_none_or(|s| s.iter().any(|inode| inode == fields[9]));
            counted.then(|| fields[1].to_string())
        })
        .collect()
}

/// Waits until the daemon logging to `log` prints its listening address.
pub fn wait_for_address(log: &Path, child: &mut Child) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        // Only whole lines: the daemon may be writing the last one right now.
        let complete = text.rsplit_once('\n').map_or("", |(done, _)| done);
        if let Some(line) = complete
            .lines()
            .find(|l| l.contains("listening on http://"))
        {
            return line.rsplit("http://").next().unwrap().trim().to_string();
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("daemon exited with {status} before listening:\n{text}");
        }
        assert!(
            Instant::now() < deadline,
            "daemon did not start in 30 s:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts `mantle` with `args`, inside `host` of `net` when there is one.
pub fn spawn(net: Option<&netns::Network>, host: usize, args: &[&str], log: &Path) -> Child {
    let file = std::fs::File::create(log).unwrap();
    let mut command = match net {
        Some(net) => net.command(host, MANTLE),
        None => Command::new(MANTLE),
    };
    command
        .args(args)
        .env("MANTLE_LOGGING_LEVEL", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .expect("spawn mantle")
}

impl Cluster {
    /// A master with extra flags and `agents` agents with the given resources.
    pub async fn start(agents: usize, resources: &str, master_flags: &[&str]) -> Cluster {
        Cluster::start_on(None, agents, resources, master_flags).await
    }

    /// No master of its own: the agents added follow `master` (a `zk://` URL naming
    /// masters started elsewhere).
    pub async fn without_master(master: &str) -> Cluster {
        Cluster {
            master: master.to_string(),
            agents: Vec::new(),
            dir: tempfile::tempdir().unwrap(),
            master_child: None,
            children: Vec::new(),
            master_args: Vec::new(),
            agent_args: Vec::new(),
            http: HttpClient::new(Duration::from_secs(10)),
            net: None,
        }
    }

    /// The master and its agents each on a host of `net` (the master on host 0).
    pub async fn start_on(
        net: Option<netns::Network>,
        agents: usize,
        resources: &str,
        master_flags: &[&str],
    ) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let master_log = dir.path().join("master.log");
        let master_dir = dir.path().join("master");
        let (ip, port) = match &net {
            Some(net) => (net.address(0), "5050"),
            None => ("127.0.0.1".to_string(), "0"),
        };
        let mut args = vec![
            "master",
            "--ip",
            &ip,
            "--port",
            port,
            "--work_dir",
            master_dir.to_str().unwrap(),
        ];
        args.extend_from_slice(master_flags);
        let mut master_child = spawn(net.as_ref(), 0, &args, &master_log);
        let master = wait_for_address(&master_log, &mut master_child);
        let master_args = args.iter().map(|a| a.to_string()).collect();
        let mut cluster = Cluster {
            master,
            agents: Vec::new(),
            dir,
            master_child: Some(master_child),
            children: Vec::new(),
            master_args,
            agent_args: Vec::new(),
            http: HttpClient::new(Duration::from_secs(10)),
            net,
        };
        for index in 0..agents {
            cluster.add_agent(index, resources);
        }
        cluster
            .wait_until("agents registered", |state| {
                state["slaves"].as_array().map_or(0, Vec::len) == agents
            })
            .await;
        cluster
    }

    pub fn add_agent(&mut self, index: usize, resources: &str) {
        self.add_agent_with(index, resources, &[]);
    }

    /// The process ID of agent `index`.
    pub fn agent_pid(&self, index: usize) -> u32 {
        self.children[index].id()
    }

    /// Sends `signal` to agent `index` (`SIGSTOP` makes it a silent partition).
    pub fn signal_agent(&self, index: usize, signal: i32) {
        let pid = self.children[index].id() as i32;
        // SAFETY: kill(2) on our own child has no memory-safety effects.
        unsafe {
            libc::kill(pid, signal);
        }
    }

    /// A master with `master_flags` and one agent with `resources` and extra `flags`.
    pub async fn one_agent_with(master_flags: &[&str], resources: &str, flags: &[&str]) -> Cluster {
        let mut cluster = Cluster::start(0, resources, master_flags).await;
        cluster.add_agent_with(0, resources, flags);
        cluster
            .wait_until("the agent registered", |state| {
                state["slaves"].as_array().map_or(0, Vec::len) == 1
            })
            .await;
        cluster
    }

    /// A master and one agent with `resources` and extra `flags`.
    pub async fn one_agent(resources: &str, flags: &[&str]) -> Cluster {
        Cluster::one_agent_with(&[], resources, flags).await
    }

    /// The sandbox `stdout` of the latest run of executor `executor` (a command task's
    /// id) on agent `agent`.
    pub fn task_stdout(&self, agent: usize, executor: &str) -> String {
        let mut found: Vec<PathBuf> = Vec::new();
        let mut stack = vec![self.dir.path().join(format!("agent-{agent}/slaves"))];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let path = entry.path();
                let is_link = entry.file_type().map(|t| t.is_symlink()).unwrap_or(true);
                if path.ends_with(format!("executors/{executor}/runs/latest")) {
                    found.push(path.join("stdout"));
                } else if path.is_dir() && !is_link {
                    stack.push(path);
                }
            }
        }
        let path = found.pop().expect("the executor's sandbox");
        std::fs::read_to_string(path).unwrap_or_default()
    }

    /// An agent with extra flags (`--isolation ...`).
    pub fn add_agent_with(&mut self, index: usize, resources: &str, flags: &[&str]) {
        let log = self.dir.path().join(format!("agent-{index}.log"));
        let work_dir = self.dir.path().join(format!("agent-{index}"));
        let master = self.master.clone();
        let (ip, port) = match &self.net {
            Some(net) => (net.address(index + 1), "5051"),
            None => ("127.0.0.1".to_string(), "0"),
        };
        let mut args = vec![
            "agent",
            "--master",
            &master,
            "--ip",
            &ip,
            "--port",
            port,
            "--work_dir",
            work_dir.to_str().unwrap(),
            "--resources",
            resources,
        ];
        args.extend_from_slice(flags);
        let mut child = spawn(self.net.as_ref(), index + 1, &args, &log);
        self.agents.push(wait_for_address(&log, &mut child));
        self.children.push(child);
        self.agent_args
            .push(args.iter().map(|a| a.to_string()).collect());
    }

    /// The work directory of agent `index`.
    pub fn agent_dir(&self, index: usize) -> PathBuf {
        self.dir.path().join(format!("agent-{index}"))
    }

    /// Kills agent `index` with SIGKILL and reaps it.
    pub fn kill_agent(&mut self, index: usize) {
        let child = &mut self.children[index];
        // SAFETY: sending a signal to our own child has no memory-safety effects.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGKILL);
        }
        let _ = child.wait();
    }

    /// Starts agent `index` again with its flags, on the port it had (executors find
    /// it there), plus `extra` flags.
    pub fn start_agent_again(&mut self, index: usize, extra: &[&str]) {
        let port = self.agents[index].rsplit(':').next().unwrap().to_string();
        let mut args = self.agent_args[index].clone();
        let at = args.iter().position(|a| a == "--port").unwrap();
        args[at + 1] = port;
        args.extend(extra.iter().map(|a| a.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let log = self.dir.path().join(format!(
            "agent-{index}-restarted-{}.log",
            self.restarts(index)
        ));
        let mut child = spawn(self.net.as_ref(), index + 1, &args, &log);
        self.agents[index] = wait_for_address(&log, &mut child);
        self.children[index] = child;
    }

    fn restarts(&self, index: usize) -> usize {
        std::fs::read_dir(self.dir.path())
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| {
                        e.file_name()
                            .to_string_lossy()
                            .starts_with(&format!("agent-{index}-restarted-"))
                    })
                    .count()
            })
            .unwrap_or(0)
    }

    /// Kills the master and starts it again on the same port and work directory; the
    /// agents reconnect on their own.
    pub fn restart_master(&mut self) {
        let old = self.master_child.as_mut().expect("a master of its own");
        // SAFETY: sending a signal to our own child has no memory-safety effects.
        unsafe {
            libc::kill(old.id() as i32, libc::SIGKILL);
        }
        let _ = old.wait();
        let port = self.master.rsplit(':').next().unwrap().to_string();
        let mut args = self.master_args.clone();
        let at = args.iter().position(|a| a == "--port").unwrap();
        args[at + 1] = port;
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let log = self.dir.path().join("master-restarted.log");
        let mut child = spawn(self.net.as_ref(), 0, &args, &log);
        self.master = wait_for_address(&log, &mut child);
        self.master_child = Some(child);
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.master)
    }

    pub async fn state(&self) -> Value {
        let response = self
            .http
            .get(&self.url("/master/state"))
            .await
            .expect("GET /master/state");
        serde_json::from_slice(&response.body).expect("state is JSON")
    }

    /// Polls `/master/state` until `check` holds (at most 30 s).
    pub async fn wait_until(&self, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let state = self.state().await;
            if check(&state) {
                return state;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; state: {state:#}\nlogs:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// POSTs JSON to `path` on the master: the status and the body (as JSON when it is,
    /// else as a JSON string), whatever the status.
    pub async fn post_json(&self, path: &str, body: Value) -> (u16, Value) {
        let request = hyper::Request::post(self.url(path))
            .header("Content-Type", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(
                body.to_string(),
            )))
            .unwrap();
        let response = self.http.raw(request).await.expect(path);
        let text = String::from_utf8_lossy(&response.body).to_string();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (response.status.as_u16(), value)
    }

    pub fn logs(&self) -> String {
        let mut out = String::new();
        for entry in std::fs::read_dir(self.dir.path()).unwrap().flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "log") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(40).collect();
                out.push_str(&format!("== {}\n", path.display()));
                for line in tail.into_iter().rev() {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        out
    }

    /// The directory where the helper binaries (factorial scheduler and executor) are.
    pub fn bin_dir() -> PathBuf {
        Path::new(MANTLE).parent().unwrap().to_path_buf()
    }
}

/// Kills every process whose working directory is inside `dir` (executors and tasks run
/// in their sandboxes there).
fn kill_processes_under(dir: &Path) {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if let Ok(cwd) = std::fs::read_link(entry.path().join("cwd")) {
            if cwd.starts_with(dir) {
                // SAFETY: kill(2) with a pid read from /proc has no memory-safety effects.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let children = self.children.iter_mut().chain(self.master_child.as_mut());
        for child in children {
            // SAFETY: sending a signal to our own child has no memory-safety effects.
            unsafe {
                libc::kill(child.id() as i32, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for child in self.children.iter_mut().chain(self.master_child.as_mut()) {
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        kill_processes_under(self.dir.path());
    }
}
