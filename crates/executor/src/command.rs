//! Starting and signalling a task's process, as the Mesos command and default executors
//! do: `shell: true` runs `/bin/sh -c <value>`, `shell: false` runs `value` with exactly
//! `arguments` as its argv; the environment is the executor's plus the CommandInfo's
//! variables; the working directory is the sandbox. Each task gets its own process group
//! so that signals reach everything it started, and nothing of its siblings.

use crate::core::Signal;
use mantle_api::CommandInfo;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;

/// The variables a CommandInfo adds to the task's environment. Secrets are not resolved
/// here; variables whose name or value the OS cannot take are left out.
pub fn task_environment(command: &CommandInfo) -> Vec<(String, String)> {
    let Some(environment) = &command.environment else {
        return Vec::new();
    };
    let mut variables = Vec::new();
    for variable in &environment.variables {
        match variable.kind.as_deref() {
            None | Some("VALUE") => {}
            Some(kind) => {
                tracing::warn!(name = %variable.name, kind, "skipping an environment variable of unsupported type");
                continue;
            }
        }
        let value = variable.value.clone().unwrap_or_default();
        let name_ok = !variable.name.is_empty() && !variable.name.contains(['=', '\0']);
        if !name_ok || value.contains('\0') {
            tracing::warn!(name = ?variable.name, "skipping an environment variable the OS cannot take");
            continue;
        }
        variables.push((variable.name.clone(), value));
    }
    variables
}

/// The process for a CommandInfo, not yet started.
pub fn build(command: &CommandInfo, cwd: Option<&Path>) -> Result<std::process::Command, String> {
    let value = command.value.as_deref().unwrap_or_default();
    let mut process = if command.shell {
        let mut process = std::process::Command::new("/bin/sh");
        process.arg0("sh").arg("-c").arg(value);
        process
    } else {
        if value.is_empty() {
            return Err("the command has no 'value' to run".to_string());
        }
        let mut process = std::process::Command::new(value);
        if let Some((first, rest)) = command.arguments.split_first() {
            process.arg0(first).args(rest);
        }
        process
    };
    process.envs(task_environment(command));
    if let Some(cwd) = cwd {
        process.current_dir(cwd);
    }
    process
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    // Its own process group, so that killpg reaches the task's children too, and a
    // signal meant for the executor's group does not hit the task by accident.
    process.process_group(0);
    Ok(process)
}

/// Starts the task's process. The error names the program and the OS error.
pub fn spawn(command: &CommandInfo, cwd: Option<&Path>) -> Result<tokio::process::Child, String> {
    let process = build(command, cwd)?;
    let program = process.get_program().to_string_lossy().into_owned();
    let mut process = tokio::process::Command::from(process);
    process.kill_on_drop(false);
    process.spawn().map_err(|err| match cwd {
        Some(cwd) if !cwd.is_dir() => format!(
            "the working directory {} does not exist: {err}",
            cwd.display()
        ),
        _ => format!("{program}: {err}"),
    })
}

/// Sends a signal to the process group led by `pid`.
pub fn signal_group(pid: u32, signal: Signal) -> std::io::Result<()> {
    let number = match signal {
        Signal::Term => libc::SIGTERM,
        Signal::Kill => libc::SIGKILL,
    };
    let group =
        libc::pid_t::try_from(pid).map_err(|_| std::io::Error::from_raw_os_error(libc::ESRCH))?;
    if group <= 1 {
        // killpg(0) would signal the executor's own group; never do that.
        return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
    }
    // SAFETY: killpg takes plain integers and touches no memory of ours. The group is
    // the one the task leads: the driver only signals a child it has not reaped yet, so
    // the id cannot have been reused.
    let result = unsafe { libc::killpg(group, number) };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mantle_api::{Environment, Variable};
    use std::ffi::OsStr;

    fn variable(name: &str, kind: Option<&str>, value: Option<&str>) -> Variable {
        Variable {
            name: name.into(),
            kind: kind.map(Into::into),
            value: value.map(Into::into),
            secret: None,
        }
    }

    fn check_environment(variables: Vec<Variable>, expected: &[(&str, &str)]) {
        let mut command = CommandInfo::shell("true");
        command.environment = Some(Environment {
            variables: variables.clone(),
        });
        let actual = task_environment(&command);
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(actual, expected, "{variables:?}");
    }

    #[test]
    fn environments() {
        check_environment(vec![], &[]);
        check_environment(vec![variable("A", None, Some("1"))], &[("A", "1")]);
        check_environment(
            vec![variable("A", Some("VALUE"), Some("x y"))],
            &[("A", "x y")],
        );
        check_environment(vec![variable("A", Some("VALUE"), None)], &[("A", "")]);
        check_environment(
            vec![
                variable("S", Some("SECRET"), None),
                variable("B", None, Some("2")),
            ],
            &[("B", "2")],
        );
        check_environment(vec![variable("U", Some("UNKNOWN"), Some("1"))], &[]);
        check_environment(
            vec![
                variable("", None, Some("1")),
                variable("A=B", None, Some("1")),
                variable("N", None, Some("a\0b")),
                variable("OK", None, Some("é")),
            ],
            &[("OK", "é")],
        );
        assert!(task_environment(&CommandInfo::shell("true")).is_empty());
    }

    fn check_build(command: CommandInfo, program: &str, args: &[&str]) {
        let process = build(&command, Some(Path::new("/tmp/sandbox"))).expect("a command");
        assert_eq!(process.get_program(), OsStr::new(program), "{command:?}");
        let actual: Vec<&OsStr> = process.get_args().collect();
        let expected: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        assert_eq!(actual, expected, "{command:?}");
        assert_eq!(process.get_current_dir(), Some(Path::new("/tmp/sandbox")));
    }

    fn exec(value: &str, arguments: &[&str]) -> CommandInfo {
        CommandInfo {
            shell: false,
            value: Some(value.into()),
            arguments: arguments.iter().map(|a| a.to_string()).collect(),
            ..CommandInfo::shell("")
        }
    }

    #[test]
    fn processes() {
        check_build(
            CommandInfo::shell("echo hi && exit 3"),
            "/bin/sh",
            &["-c", "echo hi && exit 3"],
        );
        check_build(
            CommandInfo {
                value: None,
                ..CommandInfo::shell("")
            },
            "/bin/sh",
            &["-c", ""],
        );
        // argv[0] is arguments[0] (set through arg0, not listed in get_args).
        check_build(
            exec("/bin/echo", &["echo", "a", "b c"]),
            "/bin/echo",
            &["a", "b c"],
        );
        check_build(exec("/bin/true", &[]), "/bin/true", &[]);
        check_build(exec("python3", &["py"]), "python3", &[]);
        let err = build(&exec("", &["x"]), None).expect_err("no value");
        assert!(err.contains("'value'"), "{err}");
        let with_env = CommandInfo {
            environment: Some(Environment {
                variables: vec![variable("FOO", None, Some("bar"))],
            }),
            ..CommandInfo::shell("true")
        };
        let process = build(&with_env, None).expect("a command");
        let envs: Vec<_> = process.get_envs().collect();
        assert_eq!(envs, vec![(OsStr::new("FOO"), Some(OsStr::new("bar")))]);
        assert_eq!(process.get_current_dir(), None);
    }

    #[tokio::test]
    async fn spawn_errors_name_the_cause() {
        let err = spawn(&exec("/nonexistent/program", &[]), None).expect_err("missing program");
        assert!(err.starts_with("/nonexistent/program: "), "{err}");
        assert!(err.contains("No such file"), "{err}");
        let err = spawn(
            &CommandInfo::shell("true"),
            Some(Path::new("/nonexistent/sandbox")),
        )
        .expect_err("missing cwd");
        assert!(
            err.contains("working directory /nonexistent/sandbox"),
            "{err}"
        );
    }

    #[test]
    fn refuses_to_signal_its_own_group() {
        assert!(signal_group(0, Signal::Term).is_err());
        assert!(signal_group(1, Signal::Kill).is_err());
        assert!(signal_group(u32::MAX, Signal::Kill).is_err());
    }
}
