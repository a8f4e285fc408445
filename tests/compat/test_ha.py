"""pymesos through ZooKeeper (issue "High availability"): three `mantle master`s
elect a leader in a real ZooKeeper server; two agents and a pymesos framework find
it with a zk:// URL (pymesos reads the leader with kazoo). The framework runs 50
tasks; the leader is killed with SIGKILL; another master is elected, the agents and
the framework follow it, all 50 tasks stay RUNNING, reconciliation confirms them,
and a new task launches."""

import json
import os
import signal
import socket
import subprocess
import time

import pytest

from conftest import MANTLE_BIN, _descendant_pids, pick_base_port
from harness import CommandFramework, http_get

ZOOKEEPER_JAR = "/usr/share/java/zookeeper.jar"
TASKS = ["ha-%02d" % i for i in range(50)]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ZooKeeper:
    """One standalone server of Debian's zookeeper package, tickTime=500."""

    def __init__(self, tmp_path):
        self.dir = str(tmp_path / "zk")
        os.makedirs(os.path.join(self.dir, "data"))
        self.port = _free_port()
        with open(os.path.join(self.dir, "zoo.cfg"), "w") as cfg:
            cfg.write("tickTime=500\ninitLimit=10\nsyncLimit=5\n"
                      "dataDir=%s\nclientPort=%d\nclientPortAddress=127.0.0.1\n"
                      "admin.enableServer=false\n"
                      % (os.path.join(self.dir, "data"), self.port))
        classpath = "/etc/zookeeper/conf:" + ZOOKEEPER_JAR
        if os.path.exists("/usr/share/java/slf4j-simple.jar"):
            classpath += ":/usr/share/java/slf4j-simple.jar"
        log = open(os.path.join(self.dir, "server.log"), "wb")
        self.proc = subprocess.Popen(
            ["java", "-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
             "-Djava.net.preferIPv4Stack=true", "-cp", classpath,
             "org.apache.zookeeper.server.quorum.QuorumPeerMain",
             os.path.join(self.dir, "zoo.cfg")],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        log.close()
        from kazoo.client import KazooClient
        client = KazooClient("127.0.0.1:%d" % self.port, timeout=5)
        client.start(timeout=60)
        client.stop()

    def url(self, path):
        return "zk://127.0.0.1:%d%s" % (self.port, path)

    def stop(self):
        self.proc.kill()
        self.proc.wait(10)


class HaCluster:
    def __init__(self, tmp_path, zk_url):
        self.dir = str(tmp_path)
        self.zk_url = zk_url
        base = pick_base_port(5)
        self.masters = ["127.0.0.1:%d" % (base + i) for i in range(3)]
        self.procs = {}
        self.logs = []
        for i, master in enumerate(self.masters):
            self._spawn("master-%d" % i, [
                "master", "--ip", "127.0.0.1", "--port", master.split(":")[1],
                "--work_dir", os.path.join(self.dir, "master-%d" % i),
                "--zk", zk_url, "--zk_session_timeout", "2secs"])
        for i in range(2):
            self._spawn("agent-%d" % i, [
                "agent", "--master", zk_url, "--ip", "127.0.0.1",
                "--port", str(base + 3 + i),
                "--work_dir", os.path.join(self.dir, "agent-%d" % i),
                "--resources", "cpus:4;mem:1024;disk:1000"])

    def _spawn(self, name, args):
        path = os.path.join(self.dir, "%s-%d.log" % (name, len(self.logs)))
        self.logs.append(path)
        log = open(path, "ab")
        self.procs[name] = subprocess.Popen(
            [MANTLE_BIN] + args, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True)
        log.close()

    def get(self, master, path):
        status, headers, body = http_get("http://%s%s" % (master, path), 2.0)
        return status, headers, body

    def leader(self, timeout=30.0):
        """The one master reporting master/elected 1 (never two at once)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leaders = []
            for i, master in enumerate(self.masters):
                if "master-%d" % i not in self.procs:
                    continue
                try:
                    status, _, body = self.get(master, "/metrics/snapshot")
                except OSError:
                    continue
                if status == 200 and json.loads(body)["master/elected"] == 1:
                    leaders.append(i)
            assert len(leaders) <= 1, "two leaders at once: %s" % leaders
            if leaders:
                return leaders[0]
            time.sleep(0.1)
        raise AssertionError("no leader in %.0f s\n%s" % (timeout, self.log_tail()))

    def state(self, index):
        status, _, body = self.get(self.masters[index], "/master/state")
        assert status == 200, status
        return json.loads(body)

    def kill(self, name):
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def log_tail(self):
        out = []
        for path in self.logs:
            with open(path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
            out.append("--- %s ---" % path)
            out.extend(lines[-30:])
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
def ha(tmp_path):
    if not os.path.exists(ZOOKEEPER_JAR):
        if os.environ.get("CI"):
            pytest.fail("ZooKeeper is missing (scripts/ensure-zookeeper.sh)")
        pytest.skip("ZooKeeper is missing (scripts/ensure-zookeeper.sh)")
    zk = ZooKeeper(tmp_path)
    cluster = HaCluster(tmp_path, zk.url("/mantle"))
    try:
        yield cluster
    finally:
        cluster.stop()
        zk.stop()
        print(cluster.log_tail())


def test_pymesos_follows_the_leader_across_a_kill(ha):
    first = ha.leader()
    framework = CommandFramework("ha-compat")
    try:
        framework.start(ha.zk_url, checkpoint=True, failover_timeout=300.0)
        framework.wait_registered(60)
        for task in TASKS:
            framework.add_task(task, "sleep 600")
        for task in TASKS:
            framework.wait_state(task, "TASK_RUNNING", 120)

        ha.kill("master-%d" % first)
        second = ha.leader()
        assert second != first

        def followed():
            state = ha.state(second)
            agents = [s for s in state["slaves"] if s["active"]]
            frameworks = [f for f in state["frameworks"]
                          if f["id"] == framework.framework_id and f["active"]]
            return len(agents) == 2 and frameworks

        deadline = time.monotonic() + 60
        while not followed():
            assert time.monotonic() < deadline, ha.log_tail()
            time.sleep(0.2)
        running = [t for f in ha.state(second)["frameworks"] for t in f["tasks"]
                   if t["state"] == "TASK_RUNNING"]
        assert len(running) == 50, len(running)

        framework.driver.reconcileTasks([])

        def reconciled(task_id):
            return [u for u in framework.statuses(task_id)
                    if u.get("reason") == "REASON_RECONCILIATION"]

        framework.wait(lambda: all(reconciled(t) for t in TASKS), 60,
                       "reconciliation of the 50 tasks")
        for task in TASKS:
            assert reconciled(task)[0]["state"] == "TASK_RUNNING"
        terminal = [u for u in framework.updates
                    if u["state"] not in ("TASK_STARTING", "TASK_RUNNING")]
        assert not terminal, terminal

        framework.add_task("after-failover", "sleep 600")
        framework.wait_state("after-failover", "TASK_RUNNING", 60)
    finally:
        framework.stop()
