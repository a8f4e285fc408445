"""pymesos tasks in Docker containers against `mantle local --containerizers
mantle,docker`.

A pymesos scheduler launches command tasks whose ContainerInfo has type
DOCKER (the way Marathon, Aurora or a hand-written framework asks Mesos's
Docker containerizer for one): the task must run in the test image, with the
memory limit of its `mem`, write its output into the sandbox, and end
TASK_KILLED on a kill with no container left behind.

The image mantle-test/busybox:latest comes from scripts/ensure-docker.sh,
which also starts the engine.  Without an engine or the image the tests skip
with the reason, except under CI (CI set), where that is a failure.
"""

import http.client
import json
import os
import socket
import urllib.parse

import pytest

from harness import TERMINAL_STATES, CommandFramework

DOCKER_SOCKET = "/var/run/docker.sock"
IMAGE = "mantle-test/busybox:latest"
CONTAINER = {"type": "DOCKER",
             "docker": {"image": IMAGE, "network": "HOST"}}
TASK_TIMEOUT = 60.0
KILL_TIMEOUT = 15.0
MEMORY_LIMIT = str(64 * 1024 * 1024)


class _UnixConnection(http.client.HTTPConnection):
    """HTTP to the Docker engine's unix socket."""

    def __init__(self, path, timeout=10.0):
        super().__init__("docker", timeout=timeout)
        self._path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


def docker_get(path):
    """GET path from the engine; returns (status, body bytes)."""
    conn = _UnixConnection(DOCKER_SOCKET)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _docker_problem():
    try:
        status, _ = docker_get("/_ping")
    except OSError as exc:
        return "no docker engine answers on %s: %s" % (DOCKER_SOCKET, exc)
    if status != 200:
        return "the docker engine answers /_ping with %s" % status
    status, _ = docker_get("/images/%s/json" % IMAGE)
    if status != 200:
        return "the test image %s is missing" % IMAGE
    return None


@pytest.fixture
def docker_cluster(make_mantle):
    """`mantle local` with one agent running the Docker containerizer."""
    problem = _docker_problem()
    if problem is not None:
        hint = "scripts/ensure-docker.sh starts the engine and builds the image"
        if os.environ.get("CI"):
            pytest.fail("%s; %s" % (problem, hint))
        pytest.skip("%s; %s" % (problem, hint))
    return make_mantle(num_agents=1,
                       extra_args=["--containerizers", "mantle,docker"])


@pytest.fixture
def framework():
    fw = CommandFramework(name="mantle-compat-docker")
    try:
        yield fw
    finally:
        fw.stop()


def describe(status):
    return "task %s: %s reason=%s message=%r" % (
        status["task_id"]["value"], status.get("state"), status.get("reason"),
        status.get("message"))


def agent_containers(cluster):
    """The containers (running or not) the cluster's agent labelled its own."""
    work_dir = os.path.realpath(os.path.join(cluster.work_dir, "agent-0"))
    filters = json.dumps({"label": ["mantle.agent=%s" % work_dir]})
    status, body = docker_get("/containers/json?all=1&filters=%s"
                              % urllib.parse.quote(filters))
    assert status == 200, (status, body[:300])
    return json.loads(body.decode("utf-8"))


def sandbox_stdouts(work_dir):
    """The text of every sandbox `stdout` under work_dir."""
    texts = []
    for root, _dirs, files in os.walk(work_dir):
        if "stdout" in files:
            with open(os.path.join(root, "stdout"), errors="replace") as f:
                texts.append(f.read())
    return texts


def test_docker_task_runs_in_the_image_with_its_memory_limit(docker_cluster,
                                                             framework):
    framework.start(docker_cluster.master)
    framework.wait_registered()
    marker = "docker-marker-%d" % os.getpid()
    # The limit as cgroups v1 shows it, else as v2 does; busybox has no
    # /etc/os-release, so that line proves the task ran in the image.
    command = ("echo %s; "
               "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null"
               " || cat /sys/fs/cgroup/memory.max; "
               "test -e /etc/os-release || echo busybox-image" % marker)
    framework.add_task("docker-hello", command, cpus=0.1, mem=64,
                       container=CONTAINER)
    final = framework.wait_terminal(["docker-hello"], TASK_TIMEOUT)
    status = final["docker-hello"]
    assert status["state"] == "TASK_FINISHED", describe(status)
    seen = [u["state"] for u in framework.statuses("docker-hello")]
    assert "TASK_RUNNING" in seen, seen

    outputs = [t for t in sandbox_stdouts(docker_cluster.work_dir)
               if marker in t]
    assert outputs, "the marker reached no sandbox stdout under %s" \
        % docker_cluster.work_dir
    lines = outputs[0].splitlines()
    assert MEMORY_LIMIT in lines, "no 64 MB limit in %r" % outputs[0]
    assert "busybox-image" in lines, outputs[0]
    assert agent_containers(docker_cluster) == [], "a container was left"


def test_killing_a_docker_task(docker_cluster, framework):
    framework.start(docker_cluster.master)
    framework.wait_registered()
    framework.add_task("docker-sleeper", "sleep 100", cpus=0.1, mem=64,
                       container=CONTAINER)
    framework.wait_state("docker-sleeper", "TASK_RUNNING", TASK_TIMEOUT)
    running = agent_containers(docker_cluster)
    assert len(running) == 1 and running[0]["State"] == "running", running
    assert running[0]["Names"][0].startswith("/mesos-"), running

    framework.driver.killTask({"value": "docker-sleeper"})
    status = framework.wait_state("docker-sleeper", TERMINAL_STATES,
                                  KILL_TIMEOUT)
    assert status["state"] == "TASK_KILLED", describe(status)
    assert agent_containers(docker_cluster) == [], "a container was left"
