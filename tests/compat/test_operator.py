"""pymesos 0.3.15's operator driver (`MesosOperatorMasterDriver`) against
`mantle local`: it posts to /api/v1/operator, reads GET_STATE, GET_TASKS and
the other read calls, and follows the SUBSCRIBE event stream."""

import threading
import time

import pytest

from pymesos import MesosOperatorMasterDriver, OperatorMaster

from harness import CommandFramework

TASK_TIMEOUT = 60.0


class RecordingOperator(OperatorMaster):
    """Records the events the driver hands over, for a test to wait on."""

    def __init__(self):
        self.cond = threading.Condition()
        self.events = []

    def _record(self, kind, body):
        with self.cond:
            self.events.append((kind, body))
            self.cond.notify_all()

    def taskAdded(self, task_info):
        self._record("task_added", task_info)

    def taskUpdated(self, task_info):
        self._record("task_updated", task_info)

    def frameworkAdded(self, framework_info):
        self._record("framework_added", framework_info)

    def frameworkUpdated(self, framework_info):
        self._record("framework_updated", framework_info)

    def frameworkRemoved(self, framework_info):
        self._record("framework_removed", framework_info)

    def agentAdded(self, agent_info):
        self._record("agent_added", agent_info)

    def agentRemoved(self, agent_id):
        self._record("agent_removed", agent_id)

    def wait(self, predicate, timeout, what):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                found = [e for e in self.events if predicate(e)]
                if found:
                    return found[0]
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail("timed out waiting for %s; events: %r"
                                % (what, [k for k, _ in self.events]))
                self.cond.wait(left)


@pytest.fixture
def framework(mantle):
    fw = CommandFramework("operator-compat")
    try:
        yield fw
    finally:
        fw.stop()


def test_read_calls(mantle, framework):
    framework.start(mantle.master)
    framework.wait_registered()
    framework.add_task("ok", "true")
    framework.add_task("sleeper", "sleep 60")
    framework.wait_terminal(["ok"], TASK_TIMEOUT)
    framework.wait_state("sleeper", {"TASK_RUNNING"}, TASK_TIMEOUT)

    driver = MesosOperatorMasterDriver(mantle.master)
    assert driver.getHealth()["get_health"]["healthy"] is True
    assert driver.getVersion()["get_version"]["version_info"]["version"]
    flags = driver.getFlags()["get_flags"]["flags"]
    assert any(f["name"] == "port" and f["value"] == str(mantle.port)
               for f in flags), flags

    # The completed task shows once its end is acknowledged.
    deadline = time.monotonic() + TASK_TIMEOUT
    while True:
        tasks = driver.getTasks()["get_tasks"]
        if any(t["task_id"]["value"] == "ok"
               for t in tasks.get("completed_tasks", [])):
            break
        assert time.monotonic() < deadline, tasks
        time.sleep(0.2)
    live = {t["task_id"]["value"]: t for t in tasks["tasks"]}
    assert live["sleeper"]["state"] == "TASK_RUNNING", live
    assert live["sleeper"]["framework_id"]["value"] == framework.framework_id
    cpus = [r for r in live["sleeper"]["resources"] if r["name"] == "cpus"]
    assert cpus[0]["scalar"]["value"] == pytest.approx(0.1), cpus

    state = driver.getState()["get_state"]
    assert set(state) >= {"get_tasks", "get_executors", "get_frameworks",
                          "get_agents"}, state.keys()
    assert len(state["get_agents"]["agents"]) == 2
    frameworks = driver.getFrameworks()["get_frameworks"]["frameworks"]
    assert frameworks[0]["framework_info"]["name"] == "operator-compat"
    assert frameworks[0]["framework_info"]["id"]["value"] == \
        framework.framework_id
    agents = driver.getAgents()["get_agents"]["agents"]
    assert all(a["agent_info"]["hostname"] for a in agents), agents
    assert "executors" in driver.getExecutors()["get_executors"]
    master = driver.getMaster()["get_master"]
    assert master["master_info"]["port"] == mantle.port


def test_subscribe_sees_tasks_and_frameworks(mantle, framework):
    operator = RecordingOperator()
    subscribed = threading.Event()
    driver = MesosOperatorMasterDriver(mantle.master, operator)
    original = driver.on_subscribed

    def on_subscribed(info):
        operator._record("subscribed", info)
        subscribed.set()
        original(info)

    driver.on_subscribed = on_subscribed
    driver.start()
    try:
        assert subscribed.wait(30), "no SUBSCRIBED event"
        _, info = operator.events[0]
        assert len(info["get_state"]["get_agents"]["agents"]) == 2

        framework.start(mantle.master)
        framework.wait_registered()
        operator.wait(
            lambda e: e[0] == "framework_added"
            and e[1]["framework_info"]["id"]["value"] == framework.framework_id,
            30, "FRAMEWORK_ADDED")
        framework.add_task("watched", "sleep 30")
        _, task = operator.wait(lambda e: e[0] == "task_added", TASK_TIMEOUT,
                                "TASK_ADDED")
        assert task["task_id"]["value"] == "watched"
        assert task["framework_id"]["value"] == framework.framework_id
        _, update = operator.wait(
            lambda e: e[0] == "task_updated" and e[1]["state"] == "TASK_RUNNING",
            TASK_TIMEOUT, "TASK_UPDATED to TASK_RUNNING")
        assert update["status"]["task_id"]["value"] == "watched"
        assert update["framework_id"]["value"] == framework.framework_id
    finally:
        driver.stop()
