//! `containers`: real container launches on one machine through the agent's
//! containerizer (`mantle_agent::containers`) and `mantle-launcher`, with the isolators
//! `cgroups/cpu,cgroups/mem,namespaces/pid`, without a master or executors: what Mesos's
//! containerizer benchmarks measure (1,000 launches, then 1,000 destroys).
//!
//! A launch counts from the containerizer call until the launcher has recorded the task's
//! pid (the cgroup exists, the namespaces are made and the task is forked); `true` then
//! runs to its end. The destroy phase starts `sleep` containers and times killing and
//! removing all of them.

use anyhow::{bail, Context};
use mantle_agent::containers::{ContainerConfig, Containerizer, Isolation};
use mantle_agent::core::{ContainerLimits, LaunchSpec};
use mantle_agent::launcher_server::Started;
use mantle_api::CommandInfo;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn spec(work_dir: &Path, run: &str, index: usize, command: &str) -> LaunchSpec {
    let container = format!("bench-{run}-{index}");
    let directory = mantle_agent::sandbox::sandbox_dir(
        work_dir,
        &"bench-agent".into(),
        &"bench-framework".into(),
        &container.as_str().into(),
        &container.as_str().into(),
    );
    LaunchSpec {
        framework_id: "bench-framework".into(),
        executor_id: container.as_str().into(),
        container_id: container.as_str().into(),
        agent_id: "bench-agent".into(),
        directory,
        command: CommandInfo::shell(command),
        env: vec![("PATH".into(), "/usr/bin:/bin".into())],
        limits: ContainerLimits {
            cpus: 0.1,
            mem_mb: 32.0,
            disk_mb: 0.0,
        },
        user: None,
        container: None,
        checkpoint: false,
    }
}

fn containerizer(mantle: &Path, isolation: &str) -> anyhow::Result<Containerizer> {
    let launcher_dir = mantle
        .parent()
        .context("--mantle has no directory")?
        .to_path_buf();
    Ok(Containerizer::new(ContainerConfig {
        isolation: Isolation::parse(isolation)?,
        launcher: launcher_dir.join("mantle-launcher"),
        // These containers run `true`, never the built-in executor.
        builtin_executor: PathBuf::new(),
        cgroups_hierarchy: PathBuf::from("/sys/fs/cgroup"),
        cgroups_root: "mantle-bench".into(),
        cgroups_enable_cfs: false,
        enforce_container_disk_quota: false,
        disk_watch_interval: Duration::from_secs(15),
        switch_user: false,
    })?)
}

/// Starts one container and waits until its pid is recorded.
fn launch_one(
    containers: &Containerizer,
    work_dir: &Path,
    spec: &LaunchSpec,
) -> anyhow::Result<(Started, Duration)> {
    let started = Instant::now();
    let mut child = containers.start(work_dir, spec)?;
    let rundir = mantle_agent::containers::run_dir(work_dir, spec);
    let deadline = started + Duration::from_secs(10);
    while !rundir.join("pid").exists() {
        if let Ok(status) = child.exit.try_recv() {
            bail!("the launcher exited with wait status {status} before recording a pid");
        }
        if Instant::now() > deadline {
            bail!("no pid recorded in 10 s");
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    Ok((child, started.elapsed()))
}

/// Launches `total` containers running `command` on `parallel` threads; returns the
/// launchers and the launch latencies.
/// Started containers with their launchers, launch latencies (ms) and the seconds taken.
type Launched = (Vec<(LaunchSpec, Started)>, Vec<f64>, f64);

fn launch_all(
    parallel: usize,
    containers: &Arc<Containerizer>,
    work_dir: &Path,
    run: &str,
    total: usize,
    command: &str,
) -> anyhow::Result<Launched> {
    let started = Instant::now();
    let mut threads = Vec::new();
    for t in 0..parallel {
        let containers = containers.clone();
        let work_dir = work_dir.to_path_buf();
        let (run, command) = (run.to_string(), command.to_string());
        threads.push(std::thread::spawn(move || -> anyhow::Result<_> {
            let mut out = Vec::new();
            for i in (t..total).step_by(parallel) {
                let spec = spec(&work_dir, &run, i, &command);
                let (child, latency) = launch_one(&containers, &work_dir, &spec)?;
                out.push((spec, child, latency.as_secs_f64() * 1e3));
            }
            Ok(out)
        }));
    }
    let mut launched = Vec::new();
    let mut latencies = Vec::new();
    for thread in threads {
        let results = thread
            .join()
            .map_err(|_| anyhow::anyhow!("a launch thread panicked"))??;
        for (spec, child, latency) in results {
            latencies.push(latency);
            launched.push((spec, child));
        }
    }
    Ok((launched, latencies, started.elapsed().as_secs_f64()))
}

pub fn run(mantle: &Path, total: usize, parallel: usize, isolation: &str) -> anyhow::Result<()> {
    if parallel == 0 {
        bail!("--parallel must be at least 1");
    }
    // SAFETY: geteuid only reads the process's credentials.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the containers benchmark needs root (cgroups and namespaces)");
    }
    let containers = Arc::new(containerizer(mantle, isolation)?);
    let dir = tempfile::tempdir()?;
    let work_dir = dir.path();
    eprintln!(
        "bench containers: {total} `true` containers, {parallel} launches at a time, \
         isolation {isolation}"
    );
    let (launched, mut latencies, seconds) =
        launch_all(parallel, &containers, work_dir, "true", total, "true")?;
    for (spec, child) in launched {
        let _ = child.exit.blocking_recv();
        containers.destroy(&spec.container_id);
    }
    latencies.sort_by(f64::total_cmp);

    eprintln!("bench containers: starting {total} `sleep` containers to destroy");
    let (sleeping, _, _) = launch_all(
        parallel,
        &containers,
        work_dir,
        "sleep",
        total,
        "sleep 1000",
    )?;
    let destroy_started = Instant::now();
    let per_thread = sleeping.len().div_ceil(parallel).max(1);
    let mut threads = Vec::new();
    let mut sleeping = sleeping;
    while !sleeping.is_empty() {
        let chunk: Vec<(LaunchSpec, Started)> =
            sleeping.drain(..per_thread.min(sleeping.len())).collect();
        let containers = containers.clone();
        let work_dir = work_dir.to_path_buf();
        threads.push(std::thread::spawn(move || {
            for (spec, child) in chunk {
                containers.kill(&work_dir, &spec, Some(child.pid));
                let _ = child.exit.blocking_recv();
                containers.destroy(&spec.container_id);
            }
        }));
    }
    for thread in threads {
        thread
            .join()
            .map_err(|_| anyhow::anyhow!("a destroy thread panicked"))?;
    }
    let destroy_s = destroy_started.elapsed().as_secs_f64();

    let pct = |p: f64| crate::percentile(&latencies, p);
    println!(
        "{}",
        serde_json::json!({
            "bench": "containers",
            "tasks": total,
            "parallel": parallel,
            "isolation": isolation,
            "launches_per_s": (total as f64 / seconds * 10.0).round() / 10.0,
            "p50_ms": (pct(50.0) * 100.0).round() / 100.0,
            "p99_ms": (pct(99.0) * 100.0).round() / 100.0,
            "destroy_s": (destroy_s * 1000.0).round() / 1000.0,
        })
    );
    Ok(())
}
