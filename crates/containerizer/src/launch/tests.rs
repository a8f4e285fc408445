//! Unit tests of the config validation and the checkpoint files; the launcher itself is
//! tested end to end in `tests/launcher.rs`.

use std::path::PathBuf;

use super::*;

fn config() -> LaunchConfig {
    LaunchConfig {
        argv: vec!["true".into()],
        program: None,
        env: vec![("PATH".into(), "/usr/bin:/bin".into())],
        working_dir: "/tmp".into(),
        stdout: "/tmp/stdout".into(),
        stderr: "/tmp/stderr".into(),
        cgroup_procs: vec![],
        pid_namespace: false,
        mount_namespace: false,
        sandbox_mount: None,
        user: None,
        builtin: None,
    }
}

/// Applies `edit` to a valid config and checks the validation result: `""` for valid,
/// otherwise the error's text.
fn check(edit: impl FnOnce(&mut LaunchConfig), expected: &str) {
    let mut config = config();
    edit(&mut config);
    let actual = match config.validate() {
        Ok(()) => String::new(),
        Err(err) => err.to_string(),
    };
    assert_eq!(actual, expected, "config: {config:?}");
}

#[test]
fn validation() {
    check(|_| {}, "");
    check(|c| c.argv.clear(), "argv: must not be empty");
    check(
        |c| c.argv.push("a\0b".into()),
        "argv[1]: must not contain a NUL byte",
    );
    check(
        |c| c.program = Some(String::new()),
        "program: must not be empty",
    );
    check(|c| c.program = Some("/bin/sh".into()), "");
    check(
        |c| c.env.push((String::new(), "x".into())),
        "env[1]: name must not be empty",
    );
    check(
        |c| c.env.push(("A=B".into(), "x".into())),
        "env[1]: name 'A=B' must not contain '='",
    );
    check(
        |c| c.env.push(("PATH".into(), "/bin".into())),
        "env[1]: variable 'PATH' is set twice",
    );
    check(
        |c| c.env.push(("A".into(), "x\0".into())),
        "env[1]: must not contain a NUL byte",
    );
    check(|c| c.env.push(("EMPTY".into(), String::new())), "");
    check(
        |c| c.working_dir = "sandbox".into(),
        "working_dir: must be an absolute path, found 'sandbox'",
    );
    check(
        |c| c.stdout = PathBuf::new(),
        "stdout: must be an absolute path, found ''",
    );
    check(
        |c| c.stderr = "err".into(),
        "stderr: must be an absolute path, found 'err'",
    );
    check(
        |c| c.cgroup_procs = vec!["/sys/fs/cgroup/x/cgroup.procs".into(), "y".into()],
        "cgroup_procs[1]: must be an absolute path, found 'y'",
    );
    check(
        |c| c.sandbox_mount = Some("mnt".into()),
        "sandbox_mount: must be an absolute path, found 'mnt'",
    );
    check(
        |c| c.sandbox_mount = Some("/".into()),
        "sandbox_mount: must not be /",
    );
    check(|c| c.user = Some(String::new()), "user: must not be empty");
    check(|c| c.user = Some("nobody".into()), "");
    check(
        |c| c.builtin = Some(String::new()),
        "builtin: must not be empty",
    );
    check(|c| c.builtin = Some("executor".into()), "");
}

#[test]
fn mount_namespace_is_implied_by_what_needs_it() {
    let mut c = config();
    assert!(!c.uses_mount_namespace());
    c.pid_namespace = true;
    assert!(c.uses_mount_namespace());
    c.pid_namespace = false;
    c.sandbox_mount = Some("/mnt/sandbox".into());
    assert!(c.uses_mount_namespace());
}

#[test]
fn config_json_round_trips_and_rejects_unknown_fields() {
    let mut c = config();
    c.user = Some("nobody".into());
    c.sandbox_mount = Some("/mnt/sandbox".into());
    let json = serde_json::to_string(&c).unwrap();
    assert_eq!(serde_json::from_str::<LaunchConfig>(&json).unwrap(), c);
    // Written only when set, so configs of older agents read the same.
    assert!(!json.contains("builtin"), "{json}");
    c.builtin = Some("executor".into());
    let json = serde_json::to_string(&c).unwrap();
    assert!(json.contains(r#""builtin":"executor""#), "{json}");
    assert_eq!(serde_json::from_str::<LaunchConfig>(&json).unwrap(), c);

    let mut value: serde_json::Value = serde_json::from_str(&json).unwrap();
    value["pid_namepsace"] = true.into();
    let err = serde_json::from_value::<LaunchConfig>(value).unwrap_err();
    assert!(err.to_string().contains("pid_namepsace"), "{err}");
}

#[test]
fn write_atomic_replaces_and_leaves_no_temporary_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pid");
    write_atomic(&path, b"1\n").unwrap();
    write_atomic(&path, b"42\n").unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap(), "42\n");
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec!["pid"]);

    let err = write_atomic(&dir.path().join("missing/pid"), b"1").unwrap_err();
    assert!(
        err.to_string().starts_with("create temporary file "),
        "{err}"
    );
}

#[test]
fn checkpoints_read_back() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(read_pid(dir.path()).unwrap(), None);
    assert_eq!(read_status(dir.path()).unwrap(), None);

    fs::write(dir.path().join(PID_FILE), "1234\n").unwrap();
    fs::write(dir.path().join(STATUS_FILE), "768\n").unwrap();
    assert_eq!(read_pid(dir.path()).unwrap(), Some(1234));
    assert_eq!(read_status(dir.path()).unwrap(), Some(768));

    fs::write(dir.path().join(PID_FILE), "0").unwrap();
    let err = read_pid(dir.path()).unwrap_err().to_string();
    assert!(err.ends_with("pid: not a pid: 0"), "{err}");
    fs::write(dir.path().join(STATUS_FILE), "exited").unwrap();
    let err = read_status(dir.path()).unwrap_err().to_string();
    assert!(
        err.ends_with("status: expected a decimal integer, found 'exited'"),
        "{err}"
    );
}

#[test]
fn exit_codes() {
    for (status, code) in [(0, 0), (3 << 8, 3), (255 << 8, 255), (15, 143), (9, 137)] {
        assert_eq!(exit_code(status), code, "status {status}");
    }
}

#[test]
fn command_writes_the_config_and_clears_stale_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let rundir = dir.path().join("run");
    fs::create_dir(&rundir).unwrap();
    fs::write(rundir.join(PID_FILE), "1").unwrap();
    fs::write(rundir.join(STATUS_FILE), "0").unwrap();

    let cmd = command(Path::new("/usr/bin/mantle-launcher"), &rundir, &config()).unwrap();
    let args: Vec<_> = cmd.get_args().collect();
    assert_eq!(args, vec![rundir.join(CONFIG_FILE).as_os_str()]);
    let written: LaunchConfig =
        serde_json::from_slice(&fs::read(rundir.join(CONFIG_FILE)).unwrap()).unwrap();
    assert_eq!(written, config());
    assert_eq!(read_pid(&rundir).unwrap(), None);
    assert_eq!(read_status(&rundir).unwrap(), None);

    let mut bad = config();
    bad.argv.clear();
    let err = command(Path::new("/x"), &dir.path().join("other"), &bad).unwrap_err();
    assert_eq!(err.to_string(), "argv: must not be empty");
    assert!(!dir.path().join("other").exists());
}
