//! The Docker engine client against a real engine on /var/run/docker.sock, with a busybox
//! image the test imports itself (no registry is needed). Without an engine the tests
//! skip with a printed reason, except under CI (the `CI` variable set), where a missing
//! engine is a failure: `scripts/ensure-docker.sh` installs and starts one.
//!
//! Every container is named `mesos-test-...` and removed by a guard even when the test
//! fails, so a failed run leaves nothing behind for the next.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use mantle_containerizer::docker::{
    ContainerSpec, Docker, Network, PortMapping, Volume, DEFAULT_SOCKET,
};
use mantle_containerizer::ContainerError;

const REPOSITORY: &str = "mantle-test/busybox";
const IMAGE: &str = "mantle-test/busybox:latest";

/// The busybox applets the image gets as symlinks.
const APPLETS: &[&str] = &[
    "sh", "sleep", "echo", "cat", "dd", "head", "nc", "id", "ls", "true", "false", "pwd",
];

static IMAGE_READY: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

/// The engine, with the test image present, or `None` (outside CI) when there is none.
async fn engine() -> Option<Docker> {
    let docker = Docker::new(DEFAULT_SOCKET);
    let problem = match docker.ping().await {
        Err(err) => Some(format!(
            "no docker engine answers on {DEFAULT_SOCKET}: {err}"
        )),
        Ok(()) if !Path::new("/bin/busybox").exists() => {
            Some("/bin/busybox (Debian's busybox-static) is missing".to_string())
        }
        Ok(()) => None,
    };
    if let Some(problem) = problem {
        if std::env::var_os("CI").is_some() {
            panic!("{problem}; scripts/ensure-docker.sh sets both up");
        }
        eprintln!(
            "skipping: {problem}; run scripts/ensure-docker.sh as root to test against docker"
        );
        return None;
    }
    IMAGE_READY
        .get_or_init(|| async {
            if !docker.image_exists(IMAGE).await.expect("image_exists") {
                let dir = tempfile::tempdir().expect("tempdir");
                let tarball = busybox_tarball(dir.path());
                docker
                    .import(&tarball, REPOSITORY, "latest")
                    .await
                    .expect("import the busybox image");
            }
        })
        .await;
    Some(docker)
}

/// Writes a root filesystem tarball holding /bin/busybox and its applet links.
fn busybox_tarball(dir: &Path) -> PathBuf {
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("bin")).expect("mkdir bin");
    std::fs::create_dir_all(root.join("tmp")).expect("mkdir tmp");
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).expect("copy busybox");
    for applet in APPLETS {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).expect("symlink");
    }
    let tarball = dir.join("busybox.tar");
    let status = std::process::Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tarball)
        .arg(".")
        .status()
        .expect("run tar");
    assert!(status.success(), "tar failed: {status}");
    tarball
}

/// A fresh `mesos-test-...` name.
fn unique_name(what: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!(
        "mesos-test-{what}-{}-{nanos:x}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Force-removes the named containers when dropped, even while a failed assertion
/// unwinds. Drop cannot await, so the removal runs on a runtime of its own in a thread.
struct Cleanup {
    docker: Docker,
    names: Vec<String>,
}

impl Cleanup {
    fn new(docker: &Docker) -> Cleanup {
        Cleanup {
            docker: docker.clone(),
            names: Vec::new(),
        }
    }

    /// A new container name that will be removed.
    fn name(&mut self, what: &str) -> String {
        let name = unique_name(what);
        self.names.push(name.clone());
        name
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let docker = self.docker.clone();
        let names = std::mem::take(&mut self.names);
        let removal = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("cleanup runtime");
            runtime.block_on(async {
                for name in names {
                    if let Err(err) = docker.remove(&name, true).await {
                        eprintln!("cleanup: could not remove {name}: {err}");
                    }
                }
            });
        });
        let _ = removal.join();
    }
}

fn busybox(command: &[&str]) -> ContainerSpec {
    let mut spec = ContainerSpec::new(IMAGE);
    spec.command = Some(command.iter().map(|s| s.to_string()).collect());
    spec
}

#[tokio::test]
async fn output_exit_code_list_and_remove() {
    let Some(docker) = engine().await else { return };
    let mut cleanup = Cleanup::new(&docker);
    let name = cleanup.name("output");
    let mut spec = busybox(&["sh", "-c", "echo out; echo err >&2; exit 7"]);
    spec.labels = BTreeMap::from([("mantle.test".to_string(), "output".to_string())]);

    let id = docker.create(&name, &spec).await.expect("create");
    docker.start(&id).await.expect("start");
    let dir = tempfile::tempdir().expect("tempdir");
    let (stdout, stderr) = (dir.path().join("stdout"), dir.path().join("stderr"));
    // The sandbox files may exist already; the container's output is appended.
    std::fs::write(&stdout, "before\n").expect("write stdout");
    let logs = {
        let (docker, id, stdout, stderr) =
            (docker.clone(), id.clone(), stdout.clone(), stderr.clone());
        tokio::spawn(async move { docker.stream_logs(&id, &stdout, &stderr).await })
    };
    assert_eq!(docker.wait(&id).await.expect("wait"), 7);
    tokio::time::timeout(Duration::from_secs(30), logs)
        .await
        .expect("the log stream ends with the container")
        .expect("join")
        .expect("stream_logs");
    assert_eq!(
        std::fs::read_to_string(&stdout).expect("stdout"),
        "before\nout\n"
    );
    assert_eq!(std::fs::read_to_string(&stderr).expect("stderr"), "err\n");

    let state = docker
        .inspect(&name)
        .await
        .expect("inspect")
        .expect("known");
    assert_eq!(
        (state.id.as_str(), state.name.as_str()),
        (id.as_str(), name.as_str())
    );
    assert_eq!(
        (state.running, state.exit_code, state.oom_killed),
        (false, 7, false)
    );
    assert_eq!(state.status, "exited");
    assert_eq!(
        state.labels.get("mantle.test").map(String::as_str),
        Some("output")
    );

    let listed = docker.list("mesos-").await.expect("list");
    let ours = listed
        .iter()
        .find(|c| c.id == id)
        .expect("list finds our container");
    assert_eq!(
        (ours.names.as_slice(), ours.state.as_str()),
        (&[name.clone()][..], "exited")
    );
    assert!(listed
        .iter()
        .all(|c| c.names.iter().any(|n| n.starts_with("mesos-"))));
    assert!(docker
        .list("mesos-test-nothing-has-this-name")
        .await
        .expect("list")
        .is_empty());

    docker.remove(&id, false).await.expect("remove");
    assert_eq!(
        docker.inspect(&id).await.expect("inspect after remove"),
        None
    );
    docker
        .remove(&id, false)
        .await
        .expect("removing twice is fine");
    assert!(!docker
        .list("mesos-")
        .await
        .expect("list")
        .iter()
        .any(|c| c.id == id));
}

#[tokio::test]
async fn memory_limit_stats_and_stop() {
    let Some(docker) = engine().await else { return };
    let mut cleanup = Cleanup::new(&docker);
    let name = cleanup.name("memory");
    let mut spec = busybox(&["sleep", "100"]);
    spec.memory_bytes = Some(64 << 20);
    spec.cpu_shares = Some(256);
    let id = docker.create(&name, &spec).await.expect("create");
    docker.start(&id).await.expect("start");

    let state = docker.inspect(&id).await.expect("inspect").expect("known");
    assert!(state.running && state.pid > 0, "{state:?}");
    assert_eq!(state.memory_bytes, Some(64 << 20));
    let stats = docker.stats(&id).await.expect("stats");
    assert_eq!(stats.mem_limit_bytes, 64 << 20, "{stats:?}");
    assert!(stats.mem_usage_bytes > 0, "{stats:?}");
    assert!(stats.cpus_user_time_secs >= 0.0 && stats.cpus_system_time_secs >= 0.0);

    // `sleep` is PID 1 and ignores SIGTERM, so the stop must come down to the SIGKILL
    // after the 1 s grace rather than the 100 s sleep.
    let started = Instant::now();
    docker
        .stop(&id, Duration::from_secs(1))
        .await
        .expect("stop");
    assert_eq!(docker.wait(&id).await.expect("wait"), 137);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "stop took {:?}",
        started.elapsed()
    );
    let state = docker.inspect(&id).await.expect("inspect").expect("known");
    assert!(!state.running);
    docker
        .stop(&id, Duration::from_secs(1))
        .await
        .expect("stopping a stopped container is fine");
}

#[tokio::test]
async fn kill_and_engine_errors() {
    let Some(docker) = engine().await else { return };
    let mut cleanup = Cleanup::new(&docker);
    let name = cleanup.name("kill");
    let id = docker
        .create(&name, &busybox(&["sleep", "100"]))
        .await
        .expect("create");
    docker.start(&id).await.expect("start");
    docker
        .start(&id)
        .await
        .expect("starting a running container is fine");
    docker.kill(&id, "SIGKILL").await.expect("kill");
    assert_eq!(docker.wait(&id).await.expect("wait"), 137);
    match docker.kill(&id, "KILL").await {
        Err(ContainerError::Docker {
            status: 409,
            message,
        }) => {
            assert!(message.contains("not running"), "{message}")
        }
        other => panic!("killing a stopped container: {other:?}"),
    }
    match docker.create(&name, &busybox(&["true"])).await {
        Err(ContainerError::Docker {
            status: 409,
            message,
        }) => {
            assert!(message.contains("already in use"), "{message}")
        }
        other => panic!("a second container of the same name: {other:?}"),
    }

    let missing = unique_name("missing");
    match docker
        .create(&missing, &ContainerSpec::new("mantle-test/no-such-image:1"))
        .await
    {
        Err(ContainerError::Docker {
            status: 404,
            message,
        }) => {
            assert!(message.contains("No such image"), "{message}")
        }
        other => panic!("create from a missing image: {other:?}"),
    }
    assert!(matches!(
        docker.start(&missing).await,
        Err(ContainerError::Docker { status: 404, .. })
    ));
    assert_eq!(docker.inspect(&missing).await.expect("inspect"), None);
    docker
        .remove(&missing, true)
        .await
        .expect("removing a missing container is fine");
    // No registry is reachable here, and one that is would not know this name: either
    // way the engine's error comes back as such.
    match docker.pull("mantle-test/no-such-image:1").await {
        Err(ContainerError::Docker { message, .. }) => assert!(!message.is_empty()),
        other => panic!("pull of a missing image: {other:?}"),
    }
    match docker.pull("Bad-Upper-Case").await {
        Err(ContainerError::Docker {
            status: 400,
            message,
        }) => {
            assert!(message.contains("invalid reference"), "{message}")
        }
        other => panic!("pull of a bad reference: {other:?}"),
    }
}

#[tokio::test]
async fn bridge_ports_volumes_env_and_workdir() {
    let Some(docker) = engine().await else { return };
    let mut cleanup = Cleanup::new(&docker);
    let name = cleanup.name("bridge");
    let data = tempfile::tempdir().expect("data dir");
    let ro = tempfile::tempdir().expect("read-only dir");
    std::fs::write(ro.path().join("in"), "from the host\n").expect("write");
    let host_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();

    let script = "echo \"$GREETING\" > /data/env; pwd > /data/pwd; cat /ro/in > /data/copy; \
                  if echo x > /ro/denied 2>/dev/null; then echo writable > /data/ro; fi; \
                  echo hello-bridge | nc -l -p 8080";
    let mut spec = busybox(&["sh", "-c", script]);
    spec.network = Network::Bridge;
    spec.port_mappings = vec![PortMapping {
        host_port,
        container_port: 8080,
        protocol: "tcp".into(),
    }];
    spec.env = vec![("GREETING".into(), "hi there".into())];
    spec.working_dir = Some("/tmp".into());
    spec.volumes = vec![
        Volume {
            host_path: data.path().display().to_string(),
            container_path: "/data".into(),
            read_only: false,
        },
        Volume {
            host_path: ro.path().display().to_string(),
            container_path: "/ro".into(),
            read_only: true,
        },
    ];
    let id = docker.create(&name, &spec).await.expect("create");
    docker.start(&id).await.expect("start");

    // The engine's proxy accepts a connection before the container listens and then
    // drops it, so try until the greeting arrives (bounded).
    let greeting = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", host_port)) {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let mut text = String::new();
                let _ = stream.read_to_string(&mut text);
                if !text.is_empty() {
                    return text;
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        String::new()
    })
    .await
    .expect("join");
    assert_eq!(greeting, "hello-bridge\n", "through host port {host_port}");
    assert_eq!(docker.wait(&id).await.expect("wait"), 0);

    let read = |file: &str| std::fs::read_to_string(data.path().join(file)).unwrap_or_default();
    assert_eq!(read("env"), "hi there\n");
    assert_eq!(read("pwd"), "/tmp\n");
    assert_eq!(read("copy"), "from the host\n");
    assert_eq!(read("ro"), "", "the read-only volume was writable");
}

#[tokio::test]
async fn tty_output_is_raw() {
    let Some(docker) = engine().await else { return };
    let mut cleanup = Cleanup::new(&docker);
    let name = cleanup.name("tty");
    let mut spec = busybox(&["sh", "-c", "echo out; echo err >&2"]);
    spec.parameters = vec![("tty".into(), "true".into())];
    let id = docker.create(&name, &spec).await.expect("create");
    docker.start(&id).await.expect("start");
    assert_eq!(docker.wait(&id).await.expect("wait"), 0);
    let dir = tempfile::tempdir().expect("tempdir");
    let (stdout, stderr) = (dir.path().join("stdout"), dir.path().join("stderr"));
    docker
        .stream_logs(&id, &stdout, &stderr)
        .await
        .expect("stream_logs");
    // A TTY merges the two streams and turns newlines into CRLF.
    assert_eq!(
        std::fs::read_to_string(&stdout).expect("stdout"),
        "out\r\nerr\r\n"
    );
    assert_eq!(std::fs::read_to_string(&stderr).expect("stderr"), "");
}

#[tokio::test]
async fn import_and_remove_an_image() {
    let Some(docker) = engine().await else { return };
    let tag = unique_name("tag");
    let image = format!("{REPOSITORY}:{tag}");
    let dir = tempfile::tempdir().expect("tempdir");
    let tarball = busybox_tarball(dir.path());
    assert!(!docker.image_exists(&image).await.expect("image_exists"));
    docker
        .import(&tarball, REPOSITORY, &tag)
        .await
        .expect("import");
    let exists = docker.image_exists(&image).await;
    docker
        .remove_image(&image, true)
        .await
        .expect("remove_image");
    assert!(exists.expect("image_exists"));
    assert!(!docker.image_exists(&image).await.expect("image_exists"));
    docker
        .remove_image(&image, true)
        .await
        .expect("removing a missing image is fine");

    std::fs::write(dir.path().join("junk.tar"), "this is not a tarball").expect("write");
    let junk = docker
        .import(&dir.path().join("junk.tar"), REPOSITORY, &tag)
        .await;
    let _ = docker.remove_image(&image, true).await;
    assert!(
        matches!(junk, Err(ContainerError::Docker { .. })),
        "{junk:?}"
    );
}
