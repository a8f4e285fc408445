"""pymesos 0.3.15's MesosOperatorAgentDriver against a Mantle agent.

The driver POSTs every call to /api/v1/operator on the agent; the answers are
the v1 JSON of the Mesos agent operator API. A pymesos framework runs one task
that keeps running and one that finishes, on the same agent, first.
"""

import base64
import json
import re
import time
from urllib.parse import quote

import pytest

from pymesos import MesosOperatorAgentDriver

from harness import CommandFramework, http_get

TASK_TIMEOUT = 60.0


def by_name(items, name):
    return {i["name"]: i["value"] for i in items}.get(name)


@pytest.fixture
def running(mantle):
    """A framework with `op-running` (running) and `op-done` (finished) on one
    agent; yields (framework, agent address, agent id)."""
    fw = CommandFramework(name="operator-compat")
    fw.start(mantle.master)
    try:
        fw.wait_registered()
        # Queued together, both go into the next offer, so they share an agent.
        with fw.cond:
            for task_id, command in (
                    ("op-running", "echo operator-running; sleep 60"),
                    ("op-done", "echo operator-done")):
                fw.pending.append(dict(task_id=task_id, command=command,
                                       cpus=0.1, mem=16.0, container=None))
        fw.driver.reviveOffers()
        fw.wait_state("op-running", "TASK_RUNNING", TASK_TIMEOUT)
        fw.wait_state("op-done", "TASK_FINISHED", TASK_TIMEOUT)
        agent_id = fw.launched["op-running"]["agent_id"]["value"]
        assert fw.launched["op-done"]["agent_id"]["value"] == agent_id
        slaves = mantle.get_json("/master/state")["slaves"]
        pid = next(s["pid"] for s in slaves if s["id"] == agent_id)
        yield fw, pid.split("@", 1)[1], agent_id
    finally:
        fw.stop()


def wait_for(what, check, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.2)


def test_operator_agent_driver_reads(running):
    fw, address, agent_id = running
    driver = MesosOperatorAgentDriver(address)

    assert driver.getHealth() == {"type": "GET_HEALTH",
                                  "get_health": {"healthy": True}}

    version = driver.getVersion()["get_version"]["version_info"]["version"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), version

    flags = driver.getFlags()["get_flags"]["flags"]
    assert by_name(flags, "port") == address.rsplit(":", 1)[1], flags
    assert by_name(flags, "work_dir"), flags

    metrics = driver.getMetrics(5 * 10**9)["get_metrics"]["metrics"]
    assert by_name(metrics, "slave/registered") == 1, metrics
    assert by_name(metrics, "slave/tasks_running") == 1, metrics

    assert driver.getLoggingLevel()["get_logging_level"] == {"level": 0}
    assert driver.setLoggingLevel(1, 10 * 10**9) == {}
    assert driver.getLoggingLevel()["get_logging_level"] == {"level": 1}

    agent = driver._send({"type": "GET_AGENT"})["get_agent"]["agent_info"]
    assert agent["id"]["value"] == agent_id

    frameworks = driver.getFrameworks()["get_frameworks"]["frameworks"]
    assert [f["framework_info"]["id"]["value"] for f in frameworks] == \
        [fw.framework_id]
    assert frameworks[0]["framework_info"]["name"] == "operator-compat"

    # The finished task's executor completes once its update is acknowledged
    # and its process has exited.
    def done_completed():
        executors = driver.getExecutors()["get_executors"]
        ids = [e["executor_info"]["executor_id"]["value"]
               for e in executors.get("completed_executors", [])]
        return "op-done" in ids

    wait_for("op-done among completed_executors", done_completed)
    tasks = driver.getTasks()["get_tasks"]
    launched = tasks["launched_tasks"]
    assert [t["task_id"]["value"] for t in launched] == ["op-running"]
    assert launched[0]["state"] == "TASK_RUNNING"
    assert launched[0]["agent_id"]["value"] == agent_id
    assert launched[0]["framework_id"]["value"] == fw.framework_id
    assert any(r["name"] == "cpus" for r in launched[0]["resources"])
    done = [t for t in tasks["completed_tasks"]
            if t["task_id"]["value"] == "op-done"][0]
    assert done["state"] == "TASK_FINISHED"
    assert [s["state"] for s in done["statuses"]][-1] == "TASK_FINISHED"

    executors = driver.getExecutors()["get_executors"]
    assert [e["executor_info"]["executor_id"]["value"]
            for e in executors["executors"]] == ["op-running"]
    assert "op-done" in [e["executor_info"]["executor_id"]["value"]
                         for e in executors["completed_executors"]]

    state = driver.getState()["get_state"]
    assert set(state) == {"get_tasks", "get_executors", "get_frameworks"}
    assert state["get_frameworks"]["frameworks"] == frameworks
    assert [t["task_id"]["value"]
            for t in state["get_tasks"]["launched_tasks"]] == ["op-running"]

    containers = driver.getContainers()["get_containers"]["containers"]
    assert [c["executor_id"]["value"] for c in containers] == ["op-running"]
    assert "mem_limit_bytes" in containers[0]["resource_statistics"]


def test_operator_agent_driver_files(running):
    fw, address, _agent_id = running
    driver = MesosOperatorAgentDriver(address)
    sandbox = "/frameworks/%s/executors/op-running/runs/latest" % fw.framework_id

    infos = driver.listFiles(sandbox)["list_files"]["file_infos"]
    paths = {i["path"]: i for i in infos}
    stdout = paths[sandbox + "/stdout"]
    assert stdout["size"] == len("operator-running\n"), stdout
    assert isinstance(stdout["mode"], int) and stdout["mode"] & 0o100000
    assert stdout["mtime"]["nanoseconds"] > 0

    read = driver.readFile(sandbox + "/stdout", None, 0)["read_file"]
    assert read["size"] == len("operator-running\n")
    assert base64.b64decode(read["data"]) == b"operator-running\n"
    part = driver.readFile(sandbox + "/stdout", 7, 9)["read_file"]
    assert base64.b64decode(part["data"]) == b"running"

    with pytest.raises(RuntimeError, match="code=403"):
        driver.readFile("/etc/passwd", 100, 0)
    with pytest.raises(RuntimeError, match="code=403"):
        driver.listFiles(sandbox + "/../../../../..")
    with pytest.raises(RuntimeError, match="code=404"):
        driver.readFile(sandbox + "/no-such-file", 100, 0)

    # The legacy pager endpoints answer for the same path, cross-origin.
    base = "http://%s/files/read.json?path=%s" % (address,
                                                  quote(sandbox + "/stdout"))
    status, headers, body = http_get(base + "&offset=-1")
    assert status == 200, body
    assert json.loads(body) == {"data": "", "offset": 17}
    lowered = {k.lower(): v for k, v in headers.items()}
    assert lowered.get("access-control-allow-origin") == "*", headers
    status, _, body = http_get(base + "&offset=0&length=8&jsonp=cb")
    assert status == 200
    assert body == b'cb({"data":"operator","offset":0});', body


def test_unknown_operator_call_names_the_type(running):
    _fw, address, _agent_id = running
    driver = MesosOperatorAgentDriver(address)
    with pytest.raises(RuntimeError, match="GET_NOTHING"):
        driver._send({"type": "GET_NOTHING"})
    # The driver keeps working after an error answer.
    assert driver.getHealth()["get_health"]["healthy"] is True
