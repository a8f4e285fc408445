"""Fixtures for the pymesos compatibility tests.

The tests do not build anything: they run the binary named by $MANTLE_BIN
(default <repo>/target/release/mantle) as

    mantle local --num_agents 2 --ip 127.0.0.1 --port P --work_dir TMP

where the agents listen on P+1 and P+2.  Build it first with
`cargo build --release -p mantle`, and create the virtualenv with
`scripts/python-env.sh`; then run `.venv/bin/python -m pytest -q tests/compat`.
"""

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time

import pytest

from harness import http_get

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MANTLE_BIN = os.environ.get("MANTLE_BIN",
                            os.path.join(REPO, "target", "release", "mantle"))
NUM_AGENTS = 2
STARTUP_TIMEOUT = float(os.environ.get("MANTLE_STARTUP_TIMEOUT", "30"))
STOP_TIMEOUT = 10.0


def _port_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_base_port(count=NUM_AGENTS + 1):
    """A port P such that P .. P+count-1 are all free on 127.0.0.1.

    Chosen below the Linux ephemeral range so that outgoing connections
    are unlikely to take one of them between the check and the bind."""
    rng = random.Random(os.getpid() ^ int(time.time() * 1000))
    for _ in range(200):
        base = rng.randrange(20000, 32000 - count)
        if all(_port_free(base + i) for i in range(count)):
            return base
    raise RuntimeError("no %d consecutive free ports found" % count)


def _descendant_pids(work_dir):
    """Processes (other than us) whose environment or cwd points into
    work_dir: the executors and tasks this test cluster started. Agents put
    executors in their own sessions, so killing the mantle process group
    does not reach them."""
    found = []
    marker = work_dir.encode()
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        pid = int(entry)
        try:
            with open("/proc/%d/environ" % pid, "rb") as f:
                env = f.read()
            cwd = os.readlink("/proc/%d/cwd" % pid).encode()
        except OSError:
            continue
        if cwd.startswith(marker) or any(
                v.split(b"=", 1)[-1].startswith(marker)
                for v in env.split(b"\0")
                if v.startswith((b"MESOS_DIRECTORY=", b"MESOS_SANDBOX="))):
            found.append(pid)
    return found


class MantleCluster:
    """A running `mantle local` with a master and NUM_AGENTS agents (or
    num_agents; extra_args are appended to the command line)."""

    def __init__(self, work_dir, log_path, num_agents=NUM_AGENTS,
                 extra_args=()):
        self.work_dir = work_dir
        self.log_path = log_path
        self.num_agents = num_agents
        self.extra_args = list(extra_args)
        self.port = None
        self.proc = None
        self._log = None

    @property
    def master(self):
        return "127.0.0.1:%d" % self.port

    @property
    def url(self):
        return "http://" + self.master

    def agent_ports(self):
        return [self.port + 1 + i for i in range(self.num_agents)]

    def get_json(self, path, timeout=5.0):
        status, _, body = http_get(self.url + path, timeout=timeout)
        assert status == 200, "GET %s -> %s %r" % (path, status, body[:500])
        return json.loads(body.decode("utf-8"))

    def start(self):
        if not os.path.isfile(MANTLE_BIN) or not os.access(MANTLE_BIN, os.X_OK):
            pytest.fail("mantle binary not found at %s (set MANTLE_BIN or run "
                        "`cargo build --release -p mantle`)" % MANTLE_BIN)
        last_error = None
        for _ in range(3):  # a port taken between the check and the bind
            self.port = pick_base_port(self.num_agents + 1)
            cmd = [MANTLE_BIN, "local", "--num_agents", str(self.num_agents),
                   "--ip", "127.0.0.1", "--port", str(self.port),
                   "--work_dir", self.work_dir] + self.extra_args
            self._log = open(self.log_path, "ab")
            self._log.write(("$ %s\n" % " ".join(cmd)).encode())
            self._log.flush()
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=self._log,
                stderr=subprocess.STDOUT, start_new_session=True,
                cwd=self.work_dir)
            try:
                self._wait_ready()
                return
            except _StartFailed as exc:
                last_error = exc
                exited = self.proc.poll() is not None
                self.stop()
                if not exited:
                    break  # running but not ready: retrying will not help
        pytest.fail("mantle local did not start: %s\n%s"
                    % (last_error, self.log_tail()))

    def _wait_ready(self):
        deadline = time.monotonic() + STARTUP_TIMEOUT
        last = "no answer yet"
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                raise _StartFailed("mantle exited with status %s" % rc)
            try:
                status, _, body = http_get(self.url + "/master/state", 2.0)
                if status == 200:
                    state = json.loads(body.decode("utf-8"))
                    slaves = state.get("slaves", [])
                    if len(slaves) >= self.num_agents:
                        return
                    last = "%d agent(s) registered" % len(slaves)
                else:
                    last = "GET /master/state -> %s" % status
            except (OSError, ValueError) as exc:
                last = repr(exc)
            time.sleep(0.2)
        raise _StartFailed("no %d agents after %.0f s (%s)"
                           % (self.num_agents, STARTUP_TIMEOUT, last))

    def stop(self):
        proc, self.proc = self.proc, None
        if proc is not None:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                try:
                    proc.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    proc.wait(STOP_TIMEOUT)
            else:
                # the leader is gone; its group may still hold children
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        # executors and tasks live in their own sessions: kill those that
        # belong to this cluster's work directory, by pid.
        for _ in range(3):
            pids = _descendant_pids(self.work_dir)
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.2)
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines=80):
        try:
            with open(self.log_path, "rb") as f:
                data = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(["--- last lines of %s ---" % self.log_path]
                         + data[-lines:])


class _StartFailed(Exception):
    pass


@pytest.fixture
def mantle(tmp_path):
    """A fresh `mantle local` (master + 2 agents) for one test."""
    work_dir = tmp_path / "work"
    work_dir.mkdir()
    cluster = MantleCluster(str(work_dir), str(tmp_path / "mantle.log"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        # shown by pytest only when the test failed
        print(cluster.log_tail())


@pytest.fixture
def make_mantle(tmp_path):
    """A factory for clusters with other shapes than `mantle`'s:
    make_mantle(num_agents=4, extra_args=["--weights", "a=3,b=1"]) starts
    one `mantle local` and returns its MantleCluster; every cluster made is
    stopped when the test ends."""
    clusters = []

    def make(num_agents=NUM_AGENTS, extra_args=()):
        n = len(clusters)
        work_dir = tmp_path / ("work-%d" % n)
        work_dir.mkdir()
        cluster = MantleCluster(str(work_dir),
                                str(tmp_path / ("mantle-%d.log" % n)),
                                num_agents=num_agents, extra_args=extra_args)
        clusters.append(cluster)
        cluster.start()
        return cluster

    try:
        yield make
    finally:
        for cluster in reversed(clusters):
            cluster.stop()
            print(cluster.log_tail())


@pytest.fixture
def python_exe():
    """The interpreter running the tests (the venv's, with pymesos)."""
    return sys.executable
