//! End-to-end tests of `mantle-launcher`: real processes, real namespaces, real mounts.
//! The tests that need root skip with a printed reason when not root, except in CI
//! (`CI` set), where they fail.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mantle_containerizer::launch::{
    command, prepare, read_pid, read_status, start_time, LaunchConfig, CONFIG_FILE,
    EXIT_LAUNCH_FAILED, EXIT_NOT_STARTED,
};
use tempfile::TempDir;

const LAUNCHER: &str = env!("CARGO_BIN_EXE_mantle-launcher");

fn require_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{test} needs root, and CI is set");
    }
    eprintln!("skipping {test}: needs root");
    false
}

/// A run directory and a sandbox (the task's working directory) in one temp dir.
struct Sandbox {
    _dir: TempDir,
    root: PathBuf,
    rundir: PathBuf,
    work: PathBuf,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_path_buf();
        let rundir = root.join("run");
        let work = root.join("sandbox");
        fs::create_dir(&work).expect("create sandbox");
        Sandbox {
            _dir: dir,
            root,
            rundir,
            work,
        }
    }

    fn config(&self, argv: &[&str]) -> LaunchConfig {
        LaunchConfig {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            program: None,
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            working_dir: self.work.clone(),
            stdout: self.work.join("stdout"),
            stderr: self.work.join("stderr"),
            cgroup_procs: vec![],
            pid_namespace: false,
            mount_namespace: false,
            sandbox_mount: None,
            user: None,
            builtin: None,
        }
    }

    /// Starts the launcher the way the agent does, but keeps its stderr for the test and
    /// plants a variable in its environment that must not reach the task.
    fn spawn(&self, config: &LaunchConfig) -> Child {
        command(Path::new(LAUNCHER), &self.rundir, config)
            .expect("launch command")
            .env("MANTLE_LEAK_CHECK", "leaked")
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn launcher")
    }

    fn run(&self, config: &LaunchConfig) -> Outcome {
        let output = self
            .spawn(config)
            .wait_with_output()
            .expect("wait launcher");
        self.outcome(output.status.code(), &output.stderr)
    }

    fn outcome(&self, code: Option<i32>, launcher_stderr: &[u8]) -> Outcome {
        Outcome {
            code,
            launcher_stderr: String::from_utf8_lossy(launcher_stderr).into_owned(),
            pid: read_pid(&self.rundir).expect("read pid"),
            status: read_status(&self.rundir).expect("read status"),
            stdout: fs::read_to_string(self.work.join("stdout")).unwrap_or_default(),
            stderr: fs::read_to_string(self.work.join("stderr")).unwrap_or_default(),
        }
    }
}

#[derive(Debug)]
struct Outcome {
    code: Option<i32>,
    launcher_stderr: String,
    pid: Option<i32>,
    status: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Polls `cond` every 5 ms until it holds or `limit` passes.
fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill takes no pointers; the pid is a child of this test.
    assert_eq!(unsafe { libc::kill(pid as i32, sig) }, 0, "kill {pid}");
}

/// Pids of the processes on the host whose command line is exactly `argv`.
fn processes_running(argv: &[&str]) -> Vec<i32> {
    let wanted: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    fs::read_dir("/proc")
        .expect("read /proc")
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == wanted))
        .collect()
}

#[test]
fn plain_launch_records_pid_status_output_env_and_cwd() {
    let sb = Sandbox::new();
    let mut config = sb.config(&[
        "sh",
        "-c",
        "echo hi; echo err >&2; echo \"foo=$FOO leak=${MANTLE_LEAK_CHECK-unset}\"; pwd -P; exit 3",
    ]);
    config.env.push(("FOO".into(), "bar baz".into()));
    let out = sb.run(&config);

    assert_eq!(out.code, Some(3), "{out:?}");
    assert_eq!(out.status, Some(3 << 8), "{out:?}");
    assert!(out.pid.is_some_and(|pid| pid > 1), "{out:?}");
    let cwd = sb.work.canonicalize().expect("canonical sandbox");
    assert_eq!(
        out.stdout,
        format!("hi\nfoo=bar baz leak=unset\n{}\n", cwd.display())
    );
    assert_eq!(out.stderr, "err\n");
    assert_eq!(out.launcher_stderr, "");
}

#[test]
fn the_builtin_executor_runs_in_the_task_process_without_an_exec() {
    let sb = Sandbox::new();
    // The program named does not exist, so only the launcher's own copy of the
    // executor can produce the executor's complaint about its environment (it was given
    // none of the MESOS_* variables), and the exit code 1 instead of 127.
    let mut config = sb.config(&["/nonexistent/mantle", "executor"]);
    config.builtin = Some("executor".into());
    let out = sb.run(&config);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(out.status, Some(1 << 8), "{out:?}");
    assert!(out.pid.is_some_and(|pid| pid > 1), "{out:?}");
    assert!(
        out.stderr.contains("MESOS_AGENT_ENDPOINT is not set"),
        "{out:?}"
    );
    assert!(!out.stderr.contains("cannot run"), "{out:?}");
}

#[test]
fn an_unknown_builtin_executes_argv() {
    let sb = Sandbox::new();
    let mut config = sb.config(&["sh", "-c", "echo ran; exit 4"]);
    config.builtin = Some("no-such-builtin".into());
    let out = sb.run(&config);
    assert_eq!(out.code, Some(4), "{out:?}");
    assert_eq!(out.stdout, "ran\n");
}

#[test]
fn environment_is_exactly_env_and_path_comes_from_it() {
    let sb = Sandbox::new();
    let bin = sb.root.join("bin");
    fs::create_dir(&bin).expect("create bin");
    let tool = bin.join("mantle-test-tool");
    fs::write(&tool, "#!/bin/sh\necho tool ran\nexec env\n").expect("write tool");
    fs::set_permissions(&tool, fs::Permissions::from_mode(0o755)).expect("chmod tool");

    let mut config = sb.config(&["mantle-test-tool"]);
    let path = format!("{}:/usr/bin:/bin", bin.display());
    config.env = vec![("PATH".into(), path.clone()), ("A".into(), "1".into())];
    let out = sb.run(&config);

    assert_eq!(out.status, Some(0), "{out:?}");
    // `env` prints exactly what it was given (sh may add PWD, which it exports itself).
    // The shell may reorder the variables it passes on.
    let mut vars: Vec<&str> = out
        .stdout
        .lines()
        .skip(1)
        .filter(|l| !l.starts_with("PWD="))
        .collect();
    vars.sort();
    assert_eq!(out.stdout.lines().next(), Some("tool ran"));
    assert_eq!(vars, vec!["A=1", format!("PATH={path}").as_str()]);
}

#[test]
fn program_overrides_argv0() {
    let sb = Sandbox::new();
    let mut config = sb.config(&["custom-name", "-c", "echo $0"]);
    config.program = Some("/bin/sh".into());
    let out = sb.run(&config);
    assert_eq!(out.status, Some(0), "{out:?}");
    assert_eq!(out.stdout, "custom-name\n");
}

#[test]
fn output_files_are_appended_to() {
    let sb = Sandbox::new();
    fs::write(sb.work.join("stdout"), "before\n").expect("seed stdout");
    let out = sb.run(&sb.config(&["echo", "after"]));
    assert_eq!(out.status, Some(0), "{out:?}");
    assert_eq!(out.stdout, "before\nafter\n");
}

#[test]
fn a_program_that_cannot_run_exits_127_with_a_message() {
    let sb = Sandbox::new();
    let out = sb.run(&sb.config(&["mantle-no-such-program-xyz"]));
    assert_eq!(out.code, Some(EXIT_NOT_STARTED), "{out:?}");
    assert_eq!(out.status, Some(EXIT_NOT_STARTED << 8), "{out:?}");
    assert!(out.pid.is_some(), "{out:?}");
    assert!(
        out.stderr.starts_with(
            "mantle-launcher: cannot run 'mantle-no-such-program-xyz': No such file or directory"
        ),
        "{out:?}"
    );
}

#[test]
fn task_does_not_inherit_ignored_sigpipe_or_blocked_signals() {
    // The launcher's Rust runtime ignores SIGPIPE and it blocks the forwarded signals;
    // neither may leak into the task, nor may signals ignored by whoever started the
    // launcher. `grep` reads its own masks.
    let sb = Sandbox::new();
    let out = sb.run(&sb.config(&["grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"]));
    assert_eq!(out.status, Some(0), "{out:?}");
    assert_eq!(
        out.stdout,
        "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n"
    );
}

#[test]
fn launcher_joins_every_cgroup_before_forking() {
    let sb = Sandbox::new();
    let cgroups = sb.root.join("cgroupfs");
    fs::create_dir_all(cgroups.join("cpu")).expect("fake cgroupfs");
    fs::create_dir_all(cgroups.join("memory")).expect("fake cgroupfs");
    let procs = [
        cgroups.join("cpu/cgroup.procs"),
        cgroups.join("memory/cgroup.procs"),
    ];
    for path in &procs {
        fs::write(path, "").expect("create cgroup.procs");
    }
    let mut config = sb.config(&["true"]);
    config.cgroup_procs = procs.to_vec();

    let child = sb.spawn(&config);
    let launcher_pid = child.id();
    let output = child.wait_with_output().expect("wait launcher");
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    for path in &procs {
        let written = fs::read_to_string(path).expect("read cgroup.procs");
        assert_eq!(
            written.trim(),
            launcher_pid.to_string(),
            "{}",
            path.display()
        );
    }
}

#[test]
fn a_missing_cgroup_fails_the_launch_before_the_fork() {
    let sb = Sandbox::new();
    let missing = sb.root.join("cgroupfs/gone/cgroup.procs");
    let mut config = sb.config(&["true"]);
    config.cgroup_procs = vec![missing.clone()];
    let out = sb.run(&config);

    assert_eq!(out.code, Some(EXIT_LAUNCH_FAILED), "{out:?}");
    assert_eq!(out.pid, None, "{out:?}");
    assert_eq!(out.status, None, "{out:?}");
    let expected = format!(
        "mantle-launcher: write launcher pid into {}: No such file or directory (os error 2)\n",
        missing.display()
    );
    assert_eq!(out.launcher_stderr, expected);
    // The operator finds the reason in the task's sandbox too.
    assert_eq!(out.stderr, expected);
}

#[test]
fn output_files_that_are_symlinks_are_refused() {
    let sb = Sandbox::new();
    let victim = sb.root.join("victim");
    fs::write(&victim, "untouched\n").expect("write victim");
    std::os::unix::fs::symlink(&victim, sb.work.join("stdout")).expect("symlink");
    let out = sb.run(&sb.config(&["echo", "overwritten"]));

    assert_eq!(out.code, Some(EXIT_LAUNCH_FAILED), "{out:?}");
    assert_eq!(out.pid, None, "{out:?}");
    let expected = format!(
        "mantle-launcher: open output file {}: Too many levels of symbolic links",
        sb.work.join("stdout").display()
    );
    assert!(out.launcher_stderr.starts_with(&expected), "{out:?}");
    assert_eq!(
        fs::read_to_string(&victim).expect("read victim"),
        "untouched\n"
    );
}

#[test]
fn sigterm_to_the_launcher_reaches_the_task() {
    let sb = Sandbox::new();
    let child = sb.spawn(&sb.config(&["sleep", "100"]));
    let launcher_pid = child.id();
    assert!(
        wait_until(Duration::from_secs(5), || read_pid(&sb.rundir)
            .expect("read pid")
            .is_some()),
        "no pid file"
    );
    signal(launcher_pid, libc::SIGTERM);
    let started = Instant::now();
    let output = child.wait_with_output().expect("wait launcher");
    let out = sb.outcome(output.status.code(), &output.stderr);

    assert!(started.elapsed() < Duration::from_secs(50), "{out:?}");
    assert_eq!(out.code, Some(128 + libc::SIGTERM), "{out:?}");
    let status = out.status.expect("status file");
    assert!(libc::WIFSIGNALED(status), "{out:?}");
    assert_eq!(libc::WTERMSIG(status), libc::SIGTERM, "{out:?}");
    assert!(!alive(out.pid.expect("pid file")), "{out:?}");
}

#[test]
fn pid_namespace_makes_the_task_pid_1_and_hides_the_host() {
    if !require_root("pid_namespace_makes_the_task_pid_1_and_hides_the_host") {
        return;
    }
    let sb = Sandbox::new();
    let mut config = sb.config(&["sh", "-c", "echo $$; ls /proc | grep -c '^[0-9]'"]);
    config.pid_namespace = true;
    let out = sb.run(&config);

    assert_eq!(out.status, Some(0), "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.first(), Some(&"1"), "{out:?}");
    // sh, ls and grep, and nothing of the host's.
    let count: usize = lines.get(1).and_then(|l| l.parse().ok()).expect("count");
    assert!((1..=4).contains(&count), "{out:?}");
    // The pid file holds the host's view of the task, not 1.
    assert!(out.pid.is_some_and(|pid| pid > 1), "{out:?}");
}

#[test]
fn pid_namespace_daemons_die_with_the_task() {
    if !require_root("pid_namespace_daemons_die_with_the_task") {
        return;
    }
    // A sleep time no other process on the machine uses, to find the daemon in /proc.
    let daemon = ["sleep", "971.531"];
    let sb = Sandbox::new();
    let mut config = sb.config(&["sh", "-c", "setsid sleep 971.531 & sleep 0.5; exit 0"]);
    config.pid_namespace = true;
    let child = sb.spawn(&config);
    let seen = wait_until(Duration::from_secs(5), || {
        !processes_running(&daemon).is_empty()
    });
    let output = child.wait_with_output().expect("wait launcher");
    let out = sb.outcome(output.status.code(), &output.stderr);
    let gone = wait_until(Duration::from_secs(2), || {
        processes_running(&daemon).is_empty()
    });
    let survivors = processes_running(&daemon);
    for pid in &survivors {
        // SAFETY: kill takes no pointers; clean up so a failure does not leak sleepers.
        unsafe { libc::kill(*pid, libc::SIGKILL) };
    }

    assert!(seen, "the daemon never started: {out:?}");
    assert_eq!(out.status, Some(0), "{out:?}");
    assert!(gone, "daemons survived the container: {survivors:?}");
}

#[test]
fn pid_namespace_init_without_a_handler_is_killed_by_a_forwarded_sigterm() {
    if !require_root("pid_namespace_init_without_a_handler_is_killed_by_a_forwarded_sigterm") {
        return;
    }
    let sb = Sandbox::new();
    let mut config = sb.config(&["sleep", "100"]);
    config.pid_namespace = true;
    let child = sb.spawn(&config);
    assert!(
        wait_until(Duration::from_secs(5), || read_pid(&sb.rundir)
            .expect("read pid")
            .is_some()),
        "no pid file"
    );
    signal(child.id(), libc::SIGTERM);
    let output = child.wait_with_output().expect("wait launcher");
    let out = sb.outcome(output.status.code(), &output.stderr);

    // The kernel drops SIGTERM to a namespace's init without a handler; the launcher
    // stands in for the default action with SIGKILL.
    let status = out.status.expect("status file");
    assert!(libc::WIFSIGNALED(status), "{out:?}");
    assert_eq!(libc::WTERMSIG(status), libc::SIGKILL, "{out:?}");
    assert_eq!(out.code, Some(128 + libc::SIGKILL), "{out:?}");
}

#[test]
fn pid_namespace_init_with_a_handler_gets_the_forwarded_signal() {
    if !require_root("pid_namespace_init_with_a_handler_gets_the_forwarded_signal") {
        return;
    }
    let sb = Sandbox::new();
    let mut config = sb.config(&["sh", "-c", "trap 'exit 42' TERM; sleep 100 & wait"]);
    config.pid_namespace = true;
    let child = sb.spawn(&config);
    let sigterm_bit = 1u64 << (libc::SIGTERM - 1);
    let trapped = wait_until(Duration::from_secs(5), || {
        let Ok(Some(pid)) = read_pid(&sb.rundir) else {
            return false;
        };
        let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status
            .lines()
            .filter_map(|l| l.strip_prefix("SigCgt:"))
            .filter_map(|m| u64::from_str_radix(m.trim(), 16).ok())
            .any(|mask| mask & sigterm_bit != 0)
    });
    assert!(trapped, "the task never installed its trap");
    signal(child.id(), libc::SIGTERM);
    let output = child.wait_with_output().expect("wait launcher");
    let out = sb.outcome(output.status.code(), &output.stderr);

    assert_eq!(out.status, Some(42 << 8), "{out:?}");
    assert_eq!(out.code, Some(42), "{out:?}");
}

/// The sandbox mount target and whether the host's mount table mentions it.
fn host_has_mount(target: &Path) -> bool {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").expect("read mountinfo");
    let target = target.to_string_lossy();
    mountinfo
        .lines()
        .any(|line| line.split(' ').nth(4) == Some(target.as_ref()))
}

#[test]
fn sandbox_mount_is_visible_inside_and_not_on_the_host() {
    if !require_root("sandbox_mount_is_visible_inside_and_not_on_the_host") {
        return;
    }
    let sb = Sandbox::new();
    fs::write(sb.work.join("marker"), "from the sandbox\n").expect("write marker");
    let target = sb.root.join("mnt/mesos/sandbox");
    let script = format!(
        "cat {0}/marker; grep -c ' {0} ' /proc/self/mountinfo",
        target.display()
    );
    let mut config = sb.config(&["sh", "-c", &script]);
    config.mount_namespace = true;
    config.sandbox_mount = Some(target.clone());
    let out = sb.run(&config);

    assert_eq!(out.status, Some(0), "{out:?}");
    assert_eq!(out.stdout, "from the sandbox\n1\n");
    assert!(target.is_dir(), "mount point not created");
    assert!(
        !host_has_mount(&target),
        "the bind mount leaked to the host"
    );
    assert!(
        !target.join("marker").exists(),
        "the host sees the sandbox at the mount point"
    );
}

#[test]
fn user_switch_runs_as_nobody_without_root_groups() {
    if !require_root("user_switch_runs_as_nobody_without_root_groups") {
        return;
    }
    let sb = Sandbox::new();
    let mut config = sb.config(&["sh", "-c", "id -u; id -G"]);
    config.user = Some("nobody".into());
    let out = sb.run(&config);

    assert_eq!(out.status, Some(0), "{out:?}");
    let mut lines = out.stdout.lines();
    assert_eq!(lines.next(), Some("65534"), "{out:?}");
    let groups: Vec<&str> = lines.next().unwrap_or("").split(' ').collect();
    assert!(!groups.is_empty() && !groups.contains(&"0"), "{out:?}");
}

#[test]
fn unknown_user_exits_127_with_a_message() {
    if !require_root("unknown_user_exits_127_with_a_message") {
        return;
    }
    let sb = Sandbox::new();
    let mut config = sb.config(&["true"]);
    config.user = Some("no-such-user-xyz".into());
    let out = sb.run(&config);

    assert_eq!(out.code, Some(EXIT_NOT_STARTED), "{out:?}");
    assert_eq!(out.status, Some(EXIT_NOT_STARTED << 8), "{out:?}");
    assert_eq!(
        out.stderr,
        "mantle-launcher: user 'no-such-user-xyz' does not exist\n"
    );
}

/// Runs the launcher binary on a hand-made config file, past `command`'s validation.
fn run_raw(config_path: &Path) -> (Option<i32>, String) {
    let output = Command::new(LAUNCHER)
        .arg(config_path)
        .stdin(Stdio::null())
        .output()
        .expect("run launcher");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn bad_configs_are_refused_with_the_field_or_path() {
    let sb = Sandbox::new();
    fs::create_dir_all(&sb.rundir).expect("rundir");
    let path = sb.rundir.join(CONFIG_FILE);
    let shown = path.display().to_string();

    let mut empty_argv = serde_json::to_value(sb.config(&["true"])).expect("to json");
    empty_argv["argv"] = serde_json::json!([]);
    let mut missing_field = empty_argv.clone();
    missing_field
        .as_object_mut()
        .expect("object")
        .remove("working_dir");
    let mut relative = serde_json::to_value(sb.config(&["true"])).expect("to json");
    relative["stdout"] = "stdout".into();

    let cases: Vec<(Option<String>, String)> = vec![
        (
            None,
            format!("mantle-launcher: read launch config {shown}: No such file or directory"),
        ),
        (
            Some("{\"argv\": [".into()),
            format!("mantle-launcher: {shown}: invalid json: EOF while parsing"),
        ),
        (
            Some(empty_argv.to_string()),
            format!("mantle-launcher: {shown}: argv: must not be empty"),
        ),
        (
            Some(missing_field.to_string()),
            format!("mantle-launcher: {shown}: invalid json: missing field `working_dir`"),
        ),
        (
            Some(relative.to_string()),
            format!("mantle-launcher: {shown}: stdout: must be an absolute path"),
        ),
    ];
    for (contents, expected) in cases {
        match &contents {
            Some(text) => fs::write(&path, text).expect("write config"),
            None => {
                let _ = fs::remove_file(&path);
            }
        }
        let (code, stderr) = run_raw(&path);
        assert_eq!(code, Some(EXIT_LAUNCH_FAILED), "{contents:?}: {stderr}");
        assert!(stderr.starts_with(&expected), "{contents:?}: {stderr}");
        assert_eq!(read_pid(&sb.rundir).expect("read pid"), None);
    }
    assert!(
        !sb.work.join("stdout").exists(),
        "a refused config must not touch the sandbox"
    );
}

#[test]
fn missing_argument_prints_usage() {
    let output = Command::new(LAUNCHER).output().expect("run launcher");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).starts_with("usage: mantle-launcher CONFIG"));
}

#[test]
fn the_server_forks_a_launcher_per_config_and_reports_each_end() {
    let quick = Sandbox::new();
    let slow = Sandbox::new();
    let mut server = Command::new(LAUNCHER)
        .arg("--serve")
        .env("MANTLE_LEAK_CHECK", "leaked")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn server");
    let mut requests = server.stdin.take().expect("piped");
    let mut reports = BufReader::new(server.stdout.take().expect("piped")).lines();
    let mut next = || reports.next().expect("a report").expect("read report");

    // The task reads its stdin, which must be /dev/null and not the server's requests.
    let config = quick.config(&["sh", "-c", "cat; echo out; echo err >&2; exit 3"]);
    let quick_path = prepare(&quick.rundir, &config).expect("prepare");
    let slow_path = prepare(&slow.rundir, &slow.config(&["sleep", "30"])).expect("prepare");
    let missing = quick.root.join("missing.json");
    let mut paths = Vec::new();
    for path in [&quick_path, &slow_path, &missing] {
        paths.push(path.display().to_string());
    }
    writeln!(requests, "{}", paths.join("\n")).expect("send requests");

    let mut started = Vec::new();
    let mut exited = std::collections::HashMap::new();
    while started.len() < 3 || exited.len() < 2 {
        let line = next();
        let fields: Vec<&str> = line.split(' ').collect();
        match fields.as_slice() {
            ["started", pid, start] => {
                let pid: i32 = pid.parse().expect("pid");
                let start: u64 = start.parse().expect("start time");
                // Exited or not, it is the server's child until reaped, so its entry
                // and start time are there unless it was reported exited already.
                if !exited.contains_key(&pid) {
                    assert!(start_time(pid).is_none_or(|now| now == start), "{line}");
                }
                started.push(pid);
            }
            ["exited", pid, status] => {
                exited.insert(
                    pid.parse::<i32>().expect("pid"),
                    status.parse::<i32>().expect("status"),
                );
            }
            _ => panic!("unexpected report {line:?}"),
        }
    }
    let [quick_pid, slow_pid, missing_pid] = started[..] else {
        panic!("{started:?}")
    };
    assert_eq!(exited.get(&quick_pid), Some(&(3 << 8)), "{exited:?}");
    assert_eq!(
        exited.get(&missing_pid),
        Some(&(EXIT_LAUNCH_FAILED << 8)),
        "{exited:?}"
    );
    let out = quick.outcome(Some(3), b"");
    assert_eq!(
        (out.status, out.stdout.as_str(), out.stderr.as_str()),
        (Some(3 << 8), "out\n", "err\n")
    );
    assert!(alive(slow_pid));
    // Each launcher leads a process group of its own.
    // SAFETY: getpgid takes a pid and no pointers.
    assert_eq!(unsafe { libc::getpgid(slow_pid) }, slow_pid);

    // Closing its stdin stops the server; the launcher it started keeps running.
    drop(requests);
    assert!(server.wait().expect("wait server").success());
    assert!(alive(slow_pid));
    // It still does its job without the server: forwards SIGTERM and records the end.
    signal(slow_pid as u32, libc::SIGTERM);
    assert!(wait_until(Duration::from_secs(10), || read_status(
        &slow.rundir
    )
    .expect("read status")
        == Some(libc::SIGTERM)));
}

/// Not a timing test (timing goals belong in benchmarks): it launches 200 `true`
/// containers with a pid namespace one after another, checks each exited cleanly, and
/// prints the spawn-to-status latencies for the record.
#[test]
fn latency_probe() {
    if !require_root("latency_probe") {
        return;
    }
    let sb = Sandbox::new();
    let mut config = sb.config(&["true"]);
    config.pid_namespace = true;
    let mut latencies = Vec::with_capacity(200);
    let started = Instant::now();
    for _ in 0..200 {
        let mut cmd = command(Path::new(LAUNCHER), &sb.rundir, &config).expect("command");
        let spawned = Instant::now();
        let status = cmd.status().expect("run launcher");
        latencies.push(spawned.elapsed());
        assert!(status.success(), "{status:?} signal {:?}", status.signal());
        assert_eq!(read_status(&sb.rundir).expect("read status"), Some(0));
    }
    let total = started.elapsed();
    latencies.sort();
    let pick = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    eprintln!(
        "launcher latency probe (200 x `true`, pid namespace, spawn to status): \
         p50 {:?} p99 {:?} max {:?}; {:.0} launches/s including config writes",
        pick(0.5),
        pick(0.99),
        latencies[latencies.len() - 1],
        200.0 / total.as_secs_f64()
    );
}
