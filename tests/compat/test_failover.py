"""pymesos across a master SIGKILL: a master and an agent as separate processes;
the master is killed and started again on the same port and work_dir; the agent
re-registers, the tasks keep running, and a pymesos reconciliation returns every
running task (issue "Nothing lost", scenario 5)."""

import os
import signal
import subprocess
import time

import pytest

from conftest import MANTLE_BIN, STARTUP_TIMEOUT, _descendant_pids, pick_base_port
from harness import CommandFramework, http_get

TASKS = ["steady-%d" % i for i in range(5)]


class SplitCluster:
    """`mantle master` and one `mantle agent`, each its own process."""

    def __init__(self, tmp_path):
        self.dir = str(tmp_path)
        self.port = pick_base_port(2)
        self.master = "127.0.0.1:%d" % self.port
        self.procs = {}
        self.logs = []

    def _spawn(self, name, args):
        log_path = os.path.join(self.dir, "%s-%d.log" % (name, len(self.logs)))
        log = open(log_path, "ab")
        self.logs.append(log_path)
        self.procs[name] = subprocess.Popen(
            [MANTLE_BIN] + args, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True)
        log.close()

    def start_master(self):
        self._spawn("master", ["master", "--ip", "127.0.0.1", "--port",
                               str(self.port), "--work_dir",
                               os.path.join(self.dir, "master")])

    def start_agent(self):
        self._spawn("agent", ["agent", "--master", self.master, "--ip",
                              "127.0.0.1", "--port", str(self.port + 1),
                              "--work_dir", os.path.join(self.dir, "agent"),
                              "--resources", "cpus:2;mem:512;disk:1000"])

    def kill(self, name):
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def state(self):
        status, _, body = http_get("http://%s/master/state" % self.master, 2.0)
        assert status == 200, status
        import json
        return json.loads(body.decode("utf-8"))

    def wait_agents(self, count):
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            try:
                slaves = self.state()["slaves"]
                if len(slaves) == count and all(s["active"] for s in slaves):
                    return
            except (OSError, AssertionError, ValueError):
                pass
            time.sleep(0.2)
        raise AssertionError("no active agent after %.0f s\n%s"
                             % (STARTUP_TIMEOUT, self.log_tail()))

    def log_tail(self):
        out = []
        for path in self.logs:
            with open(path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
            out.append("--- %s ---" % path)
            out.extend(lines[-40:])
        return "\n".join(out)

    def stop(self):
        for name in list(self.procs):
            self.kill(name)
        for pid in _descendant_pids(self.dir):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture
def split(tmp_path):
    cluster = SplitCluster(tmp_path)
    try:
        cluster.start_master()
        cluster.start_agent()
        cluster.wait_agents(1)
        yield cluster
    finally:
        cluster.stop()
        print(cluster.log_tail())


def test_reconciliation_after_a_master_kill(split):
    framework = CommandFramework("failover-compat")
    try:
        framework.start(split.master, checkpoint=True, failover_timeout=300.0)
        framework.wait_registered()
        for task in TASKS:
            framework.add_task(task, "sleep 600")
        for task in TASKS:
            framework.wait_state(task, "TASK_RUNNING", 60)

        split.kill("master")
        split.start_master()
        split.wait_agents(1)
        state = split.state()
        assert state["slaves"][0]["reregistered_time"], state["slaves"][0]

        # pymesos reconnects to the master on its own, with its framework id.
        def resubscribed():
            frameworks = split.state()["frameworks"]
            return any(f["id"] == framework.framework_id and f["active"]
                       for f in frameworks)

        deadline = time.monotonic() + 60
        while not resubscribed():
            assert time.monotonic() < deadline, split.log_tail()
            time.sleep(0.2)
        framework.driver.reconcileTasks([])

        def reconciled(task_id):
            return [u for u in framework.statuses(task_id)
                    if u.get("reason") == "REASON_RECONCILIATION"]

        framework.wait(lambda: all(reconciled(t) for t in TASKS), 30,
                       "reconciliation of every task")
        for task in TASKS:
            answer = reconciled(task)[0]
            assert answer["state"] == "TASK_RUNNING", answer
            assert "uuid" not in answer, answer
        terminal = [u for u in framework.updates
                    if u["state"] not in ("TASK_STARTING", "TASK_RUNNING")]
        assert not terminal, terminal
    finally:
        framework.stop()
