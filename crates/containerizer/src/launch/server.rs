//! `mantle-launcher --serve`: one long-lived launcher per agent that forks a launcher for
//! each container, instead of the agent executing `mantle-launcher` once per container.
//!
//! Executing the launcher costs a command task more CPU than anything else the agent
//! does for it: loading and relocating the binary, glibc's start-up, faulting its pages
//! in. A fork of this already-running process skips all of that; the forked launcher then
//! runs exactly what an executed one runs ([`run_launcher_with`]), in its own process
//! group with stdin, stdout and stderr on `/dev/null`, so containers cannot tell the two
//! apart. The server is single-threaded, so forking it is safe.
//!
//! The protocol, one line per message, over the server's stdin and stdout:
//!
//! | direction | line | meaning |
//! |---|---|---|
//! | agent → server | `<config path>` | start a launcher on that config |
//! | server → agent | `started <pid> <start time>` | the answer to a request, in order |
//! | server → agent | `failed <reason>` | the answer to a request that could not fork |
//! | server → agent | `exited <pid> <raw wait status>` | a launcher it started ended |
//!
//! The start time is field 22 of `/proc/<pid>/stat`, which with the pid names the process
//! for good: a restarted agent checks both before it takes a process for its launcher.
//! The server exits when its stdin closes (the agent stopped); the launchers it started
//! keep running and record their tasks' ends, as executed ones do.

use std::ffi::OsStr;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::launcher::{run_launcher_with, Builtin};

/// Runs the server until its stdin closes; returns the exit code for `main`.
pub fn serve(builtins: &[Builtin]) -> i32 {
    match serve_until_closed(builtins) {
        Ok(()) => 0,
        Err(err) => {
            let _ = writeln!(io::stderr(), "mantle-launcher --serve: {err}");
            1
        }
    }
}

fn serve_until_closed(builtins: &[Builtin]) -> io::Result<()> {
    // SIGCHLD is blocked and read from a signalfd, so the loop waits for requests and
    // exits in one poll.
    // SAFETY: sigset_t is plain data; sigemptyset initialises it before any other use.
    let mut chld: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above, for the mask the launchers get back.
    let mut original: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: both sets are live and writable; signal takes plain integers.
    unsafe {
        libc::sigemptyset(&mut chld);
        libc::sigaddset(&mut chld, libc::SIGCHLD);
        libc::signal(libc::SIGCHLD, libc::SIG_DFL);
        if libc::sigprocmask(libc::SIG_BLOCK, &chld, &mut original) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    // SAFETY: `chld` is initialised; -1 asks for a new descriptor.
    let signals = unsafe { libc::signalfd(-1, &chld, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) };
    if signals < 0 {
        return Err(io::Error::last_os_error());
    }
    warm_name_services();
    let child = ChildSetup { signals, original };
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let mut fds = [
            libc::pollfd {
                fd: 0,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: signals,
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: `fds` is a live array of two pollfds.
        if unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) } < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if fds[1].revents != 0 {
            drain_signalfd(signals, &mut buf);
            report_exits()?;
        }
        if fds[0].revents != 0 {
            // SAFETY: `buf` is writable for its length.
            let read = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
            let Some(n) = transferred(read)? else {
                continue;
            };
            if n == 0 {
                return Ok(());
            }
            pending.extend_from_slice(&buf[..n]);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let path = Path::new(OsStr::from_bytes(&line[..end]));
                let answer = match child.start(path, builtins) {
                    Ok((pid, start)) => format!("started {pid} {start}\n"),
                    Err(err) => format!("failed {err}\n"),
                };
                send(&answer)?;
            }
        }
    }
}

/// Loads the name service modules once, so that launchers switching to a task's user do
/// not each load them again. A group list walks every module `group:` names in
/// `nsswitch.conf`, as `initgroups` in a launcher does; the answer itself is not kept.
fn warm_name_services() {
    let mut groups = [0 as libc::gid_t; 64];
    let mut count = groups.len() as libc::c_int;
    // SAFETY: the name is NUL-terminated; `groups` holds `count` entries. The server is
    // single-threaded, so the static results of `getpwuid` are not shared.
    unsafe {
        libc::getpwuid(0);
        libc::getgrouplist(c"root".as_ptr(), 0, groups.as_mut_ptr(), &mut count);
    }
}

/// What a forked launcher must undo of the server before it runs.
struct ChildSetup {
    signals: libc::c_int,
    original: libc::sigset_t,
}

impl ChildSetup {
    /// Forks a launcher for the config at `path`; returns its pid and start time.
    fn start(&self, path: &Path, builtins: &[Builtin]) -> io::Result<(i32, u64)> {
        // SAFETY: the server is single-threaded, so the child is a complete copy of it
        // and may run any code. It never returns from `run_child`.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        if pid == 0 {
            self.run_child(path, builtins);
        }
        // The child is ours and not reaped before the next poll, so its /proc entry
        // exists (as a zombie at worst).
        Ok((pid, start_time(pid).unwrap_or(0)))
    }

    fn run_child(&self, path: &Path, builtins: &[Builtin]) -> ! {
        // SAFETY: plain descriptor and signal-mask calls on values owned here. The
        // descriptors 0 and 1 are the server's pipes to the agent; the launcher gets
        // /dev/null for all three, as an executed one did.
        unsafe {
            libc::close(self.signals);
            libc::sigprocmask(libc::SIG_SETMASK, &self.original, std::ptr::null_mut());
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
            if null >= 0 {
                for fd in 0..3 {
                    libc::dup2(null, fd);
                }
                if null > 2 {
                    libc::close(null);
                }
            }
            libc::setpgid(0, 0);
        }
        let code = run_launcher_with(path, builtins);
        // SAFETY: _exit ends this process only; nothing of the server's needs flushing.
        unsafe { libc::_exit(code) }
    }
}

fn drain_signalfd(fd: libc::c_int, buf: &mut [u8]) {
    // SAFETY: `buf` is writable for its length; the descriptor is non-blocking.
    while unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
}

/// Reaps every ended launcher and reports it. Signals merge, so one SIGCHLD may stand
/// for several.
fn report_exits() -> io::Result<()> {
    loop {
        let mut status = 0;
        // SAFETY: `status` is a live, writable int.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            return Ok(());
        }
        send(&format!("exited {pid} {status}\n"))?;
    }
}

/// Writes one whole line to stdout, unbuffered, so a forked launcher never inherits
/// half a message.
fn send(line: &str) -> io::Result<()> {
    let mut rest = line.as_bytes();
    while !rest.is_empty() {
        // SAFETY: `rest` is readable for its length.
        let written = unsafe { libc::write(1, rest.as_ptr().cast(), rest.len()) };
        if let Some(n) = transferred(written)? {
            rest = &rest[n..];
        }
    }
    Ok(())
}

/// The bytes a `read` or `write` moved, or `None` when a signal interrupted it before it
/// moved any (then it is simply made again).
fn transferred(result: isize) -> io::Result<Option<usize>> {
    if let Ok(n) = usize::try_from(result) {
        return Ok(Some(n));
    }
    let err = io::Error::last_os_error();
    if err.kind() == io::ErrorKind::Interrupted {
        Ok(None)
    } else {
        Err(err)
    }
}

/// The start time of process `pid` (field 22 of `/proc/<pid>/stat`, in clock ticks since
/// boot), which tells it apart from a later process given the same pid.
pub fn start_time(pid: i32) -> Option<u64> {
    stat_start_time(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The start time in the text of a `/proc/<pid>/stat`, for a caller that read it already.
pub fn stat_start_time(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces and parentheses; the fields after it
    // start after its last ')'. There, field 3 is index 0, so field 22 is index 19.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_names_a_live_process_and_not_a_missing_one() {
        let own = start_time(std::process::id() as i32).expect("own start time");
        assert!(own > 0);
        assert_eq!(start_time(std::process::id() as i32), Some(own));
        assert_eq!(start_time(i32::MAX), None);
    }
}
