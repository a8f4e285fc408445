//! Real ZooKeeper servers for tests (feature `testing`): a standalone server or an
//! ensemble, each member a Java process of Debian's `zookeeper` package on free loopback
//! ports with its own data directory and `tickTime=500`, killed when dropped.
//!
//! `scripts/ensure-zookeeper.sh` installs the package. Each server runs as
//!
//! ```text
//! java -Xmx128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.net.preferIPv4Stack=true
//!      -Dzookeeper.admin.enableServer=false
//!      -cp /etc/zookeeper/conf:/usr/share/java/zookeeper.jar[:/usr/share/java/slf4j-simple.jar]
//!      org.apache.zookeeper.server.quorum.QuorumPeerMain <dir>/zoo.cfg
//! ```
//!
//! with its output in `<dir>/server.log` (the package's log4j configuration has no
//! binding for the slf4j the server logs through, so slf4j-simple is added when present).
//! With `tickTime=500` the servers grant session timeouts between 1 s and 10 s.

use std::fs;
use std::io::{self, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{sleep, timeout, Instant};

use crate::url::{Server, ZkUrl};
use crate::{Client, Options};

const ZOOKEEPER_JAR: &str = "/usr/share/java/zookeeper.jar";
const CONF_DIR: &str = "/etc/zookeeper/conf";
const SLF4J_SIMPLE_JAR: &str = "/usr/share/java/slf4j-simple.jar";
const MAIN_CLASS: &str = "org.apache.zookeeper.server.quorum.QuorumPeerMain";

/// The tick of the test servers; session timeouts are clamped to 2 to 20 ticks.
pub const TICK: Duration = Duration::from_millis(500);

/// How long a starting server may take to serve: a JVM starting on a busy two-core
/// machine, and for an ensemble the leader election.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Why ZooKeeper cannot run here, or `None` when it can.
pub fn zookeeper_missing() -> Option<String> {
    if !Path::new(ZOOKEEPER_JAR).exists() {
        return Some(format!(
            "{ZOOKEEPER_JAR} is missing (scripts/ensure-zookeeper.sh installs it)"
        ));
    }
    match Command::new("java")
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(status) if status.success() => None,
        Ok(status) => Some(format!("java -version exited with {status}")),
        Err(err) => Some(format!("cannot run java: {err}")),
    }
}

/// Whether a test that needs ZooKeeper should run: true when it is installed. When it
/// is missing the test fails under CI (the `CI` variable is set) and is skipped with a
/// printed reason elsewhere.
pub fn require_zookeeper(test: &str) -> bool {
    let Some(reason) = zookeeper_missing() else {
        return true;
    };
    if std::env::var_os("CI").is_some() {
        panic!("{test} needs zookeeper, which CI must provide: {reason}");
    }
    // Straight to stderr: the test harness captures `eprintln!` of passing tests,
    // and a skip should be seen.
    let _ = writeln!(io::stderr(), "skipping {test}: {reason}");
    false
}

/// One server of a test ensemble.
struct Member {
    id: usize,
    client_port: u16,
    dir: PathBuf,
    process: Option<Child>,
}

/// A standalone ZooKeeper server or an ensemble, running until dropped.
pub struct ZkServers {
    members: Vec<Member>,
    /// The address the servers listen on for clients.
    host: String,
    /// The network namespace the servers run in (`ip netns exec`), if not this one.
    netns: Option<String>,
    _root: tempfile::TempDir,
}

impl ZkServers {
    /// Starts one standalone server and waits until it serves.
    pub async fn standalone() -> io::Result<ZkServers> {
        ZkServers::start_new(1, "127.0.0.1", None).await
    }

    /// Starts one standalone server inside network namespace `netns`, listening for
    /// clients on `host` (an address of that namespace this process can reach).
    pub async fn standalone_in(netns: &str, host: &str) -> io::Result<ZkServers> {
        ZkServers::start_new(1, host, Some(netns.to_string())).await
    }

    /// Starts an ensemble of `size` servers and waits until every one serves (which
    /// needs a quorum and an elected leader).
    pub async fn ensemble(size: usize) -> io::Result<ZkServers> {
        if size < 2 {
            return Err(io::Error::other("an ensemble needs at least two servers"));
        }
        ZkServers::start_new(size, "127.0.0.1", None).await
    }

    async fn start_new(size: usize, host: &str, netns: Option<String>) -> io::Result<ZkServers> {
        let root = tempfile::Builder::new().prefix("mantle-zk-").tempdir()?;
        // Take every port before releasing any, so that the servers of one ensemble get
        // distinct ones; another process may still grab one before the server binds it,
        // which shows as a server that does not start.
        let listeners = (0..size * 3)
            .map(|_| TcpListener::bind("127.0.0.1:0"))
            .collect::<io::Result<Vec<_>>>()?;
        let ports = listeners
            .iter()
            .map(|listener| listener.local_addr().map(|addr| addr.port()))
            .collect::<io::Result<Vec<_>>>()?;
        drop(listeners);
        let ensemble: String = if size == 1 {
            String::new()
        } else {
            (0..size)
                .map(|i| {
                    format!(
                        "server.{}=127.0.0.1:{}:{}\n",
                        i + 1,
                        ports[3 * i + 1],
                        ports[3 * i + 2]
                    )
                })
                .collect()
        };
        let mut members = Vec::with_capacity(size);
        for i in 0..size {
            let dir = root.path().join(format!("server{}", i + 1));
            fs::create_dir_all(dir.join("data"))?;
            if size > 1 {
                fs::write(dir.join("data/myid"), format!("{}\n", i + 1))?;
            }
            let config = format!(
                "tickTime={tick}\ninitLimit=10\nsyncLimit=5\ndataDir={data}\n\
                 clientPort={port}\nclientPortAddress={host}\n\
                 admin.enableServer=false\n4lw.commands.whitelist=srvr,ruok,stat\n{ensemble}",
                tick = TICK.as_millis(),
                data = dir.join("data").display(),
                port = ports[3 * i],
            );
            fs::write(dir.join("zoo.cfg"), config)?;
            members.push(Member {
                id: i + 1,
                client_port: ports[3 * i],
                dir,
                process: None,
            });
        }
        let mut servers = ZkServers {
            members,
            host: host.to_string(),
            netns,
            _root: root,
        };
        for i in 0..size {
            servers.spawn(i)?;
        }
        for i in 0..size {
            servers.wait_serving(i).await?;
        }
        Ok(servers)
    }

    /// The number of servers.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The address of server `index`.
    pub fn server(&self, index: usize) -> Server {
        Server {
            host: self.host.clone(),
            port: self.members[index].client_port,
        }
    }

    /// Which server `server` is, if it is one of these.
    pub fn index_of(&self, server: &Server) -> Option<usize> {
        (0..self.len()).find(|&i| self.server(i) == *server)
    }

    /// A `zk://` URL naming every server and `path`.
    pub fn url(&self, path: &str) -> ZkUrl {
        ZkUrl {
            servers: (0..self.len()).map(|i| self.server(i)).collect(),
            path: path.to_string(),
            credentials: None,
        }
    }

    /// What server `index` says it is (`leader`, `follower` or `standalone`), from the
    /// `srvr` four-letter command the test configuration allows.
    pub async fn mode(&self, index: usize) -> io::Result<String> {
        let port = self.members[index].client_port;
        let ask = async {
            let mut stream = tokio::net::TcpStream::connect((self.host.as_str(), port)).await?;
            stream.write_all(b"srvr").await?;
            let mut answer = String::new();
            stream.read_to_string(&mut answer).await?;
            Ok::<_, io::Error>(answer)
        };
        let answer = timeout(Duration::from_secs(5), ask).await.map_err(|_| {
            io::Error::other(format!(
                "zookeeper server {} did not answer srvr",
                index + 1
            ))
        })??;
        answer
            .lines()
            .find_map(|line| line.strip_prefix("Mode: "))
            .map(|mode| mode.trim().to_string())
            .ok_or_else(|| {
                io::Error::other(format!(
                    "zookeeper server {} answered srvr without a mode: {answer:?}",
                    index + 1
                ))
            })
    }

    /// The index of the ensemble's current leader, if one of the servers says it leads.
    pub async fn leader(&self) -> Option<usize> {
        for i in 0..self.len() {
            if self.members[i].process.is_some()
                && self.mode(i).await.ok().as_deref() == Some("leader")
            {
                return Some(i);
            }
        }
        None
    }

    /// Kills server `index` at once (SIGKILL) and waits for it to exit; its data stays.
    pub fn kill(&mut self, index: usize) {
        if let Some(mut process) = self.members[index].process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }

    /// Kills every server.
    pub fn kill_all(&mut self) {
        for i in 0..self.len() {
            self.kill(i);
        }
    }

    /// Starts server `index` again on its ports and data, and waits until it serves.
    pub async fn restart(&mut self, index: usize) -> io::Result<()> {
        self.kill(index);
        self.spawn(index)?;
        self.wait_serving(index).await
    }

    fn spawn(&mut self, index: usize) -> io::Result<()> {
        let member = &self.members[index];
        let mut classpath = format!("{CONF_DIR}:{ZOOKEEPER_JAR}");
        if Path::new(SLF4J_SIMPLE_JAR).exists() {
            classpath.push(':');
            classpath.push_str(SLF4J_SIMPLE_JAR);
        }
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(member.dir.join("server.log"))?;
        let mut command = match &self.netns {
            Some(netns) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", netns, "java"]);
                command
            }
            None => Command::new("java"),
        };
        let member = &mut self.members[index];
        let process = command
            .args([
                "-Xmx128m",
                "-XX:+UseSerialGC",
                // Quicker start-up matters more than peak speed for a test server.
                "-XX:TieredStopAtLevel=1",
                "-Djava.net.preferIPv4Stack=true",
                "-Dzookeeper.admin.enableServer=false",
                "-cp",
                &classpath,
                MAIN_CLASS,
            ])
            .arg(member.dir.join("zoo.cfg"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|err| {
                io::Error::other(format!(
                    "cannot start java for zookeeper server {}: {err}",
                    member.id
                ))
            })?;
        member.process = Some(process);
        Ok(())
    }

    /// Waits until server `index` accepts a session; fails early if its process exits.
    async fn wait_serving(&mut self, index: usize) -> io::Result<()> {
        let url = ZkUrl {
            servers: vec![self.server(index)],
            path: "/".to_string(),
            credentials: None,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let member = &mut self.members[index];
            if let Some(process) = member.process.as_mut() {
                if let Ok(Some(status)) = process.try_wait() {
                    return Err(io::Error::other(format!(
                        "zookeeper server {} exited with {status} while starting; log:\n{}",
                        member.id,
                        log_tail(&member.dir)
                    )));
                }
            }
            let options = Options::default()
                .session_timeout(Duration::from_secs(2))
                .connect_timeout(Duration::from_millis(500));
            if let Ok(Ok(client)) =
                timeout(Duration::from_secs(2), Client::connect(&url, options)).await
            {
                client.close().await;
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(io::Error::other(format!(
                    "zookeeper server {} did not serve on port {} within {START_TIMEOUT:?}; log:\n{}",
                    member.id,
                    member.client_port,
                    log_tail(&member.dir)
                )));
            }
            sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for ZkServers {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// The last lines of a server's log, for start-up failures.
fn log_tail(dir: &Path) -> String {
    let text = fs::read_to_string(dir.join("server.log")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
