"""pymesos 0.3.15 frameworks against `mantle local` (master + 2 agents)."""

import json
import math
import os
import re
import signal
import subprocess

import pytest

from pymesos import MesosSchedulerDriver

from harness import REPO, CommandFramework, http_get

FACTORIAL_DIR = os.path.join(REPO, "examples", "python", "factorial")
TASK_TIMEOUT = 60.0


def describe(status):
    """One readable line for an assertion message."""
    return "task %s: %s reason=%s source=%s message=%r" % (
        status["task_id"]["value"], status.get("state"), status.get("reason"),
        status.get("source"), status.get("message"))


@pytest.fixture
def framework(mantle):
    fw = CommandFramework()
    try:
        yield fw
    finally:
        fw.stop()


# (e) -------------------------------------------------------------------------
def test_version_is_numeric(mantle):
    status, headers, body = http_get(mantle.url + "/version")
    assert status == 200, (status, body[:300])
    info = json.loads(body.decode("utf-8"))
    version = info.get("version")
    assert isinstance(version, str), info
    assert re.fullmatch(r"\d+(\.\d+)*", version), \
        "pymesos needs a purely numeric dotted version, got %r" % version
    # exactly what pymesos does with it before SUBSCRIBE
    parsed = tuple(int(n) for n in version.split("."))
    assert parsed >= (1, 0, 0), version
    # and pymesos's own reader gets the same value
    driver = MesosSchedulerDriver(None, {"user": "x", "name": "x"},
                                  mantle.master)
    assert driver._get_version(mantle.master) == version


# (a) -------------------------------------------------------------------------
def test_factorial_example(mantle, python_exe, tmp_path):
    cmd = [python_exe, os.path.join(FACTORIAL_DIR, "scheduler.py"),
           "--master", mantle.master, "--timeout", "90"]
    out_path = tmp_path / "factorial.out"
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            rc = proc.wait(120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
            rc = "timeout"
    output = out_path.read_text(errors="replace")
    assert rc == 0, "scheduler.py exited with %s:\n%s" % (rc, output)
    for n in (5, 7, 10, 70, 30):
        line = "factorial(%d) = %d" % (n, math.factorial(n))
        assert line in output, "missing %r in:\n%s" % (line, output)
    assert "all 5 results are correct" in output


# (b) -------------------------------------------------------------------------
def test_command_tasks_finish_and_fail(mantle, framework):
    framework.start(mantle.master)
    framework.wait_registered()
    ids = ["hello-%d" % i for i in range(5)]
    for task_id in ids:
        framework.add_task(task_id, "echo %s" % task_id, cpus=0.1, mem=16)
    framework.add_task("exit-3", "exit 3", cpus=0.1, mem=16)

    final = framework.wait_terminal(ids + ["exit-3"], TASK_TIMEOUT)
    for task_id in ids:
        st = final[task_id]
        assert st["state"] == "TASK_FINISHED", describe(st)
        # every update that pymesos acked carried agent_id (else KeyError)
        seen = [u["state"] for u in framework.statuses(task_id)]
        assert "TASK_RUNNING" in seen, (task_id, seen)
    failed = final["exit-3"]
    assert failed["state"] == "TASK_FAILED", describe(failed)
    assert "Command exited with status 3" in failed.get("message", ""), \
        describe(failed)

    # every status carrying a uuid (so acked by pymesos) names the agent of
    # the offer the task was launched with
    for task_id, task in framework.launched.items():
        for u in framework.statuses(task_id):
            if "uuid" in u:
                assert u.get("agent_id") == task["agent_id"], (task_id, u)


def test_command_task_output_in_sandbox(mantle, framework):
    framework.start(mantle.master)
    framework.wait_registered()
    ids = ["echo-out-%d" % i for i in range(3)]
    for task_id in ids:
        framework.add_task(task_id, "echo hello-from-%s" % task_id)
    final = framework.wait_terminal(ids, TASK_TIMEOUT)
    for st in final.values():
        assert st["state"] == "TASK_FINISHED", describe(st)
    # Mesos keeps each sandbox (with stdout/stderr) under the agent work_dir
    stdout_texts = []
    for root, _dirs, files in os.walk(mantle.work_dir):
        if "stdout" in files:
            with open(os.path.join(root, "stdout"), errors="replace") as f:
                stdout_texts.append(f.read())
    assert stdout_texts, "no sandbox stdout file under %s" % mantle.work_dir
    for task_id in ids:
        assert any("hello-from-%s" % task_id in t for t in stdout_texts), \
            task_id


# (c) -------------------------------------------------------------------------
def test_kill_task(mantle, framework):
    framework.start(mantle.master)
    framework.wait_registered()
    framework.add_task("sleeper", "sleep 60")
    framework.wait_state("sleeper", "TASK_RUNNING", TASK_TIMEOUT)
    framework.driver.killTask({"value": "sleeper"})
    st = framework.wait_state("sleeper", {"TASK_KILLED", "TASK_FAILED",
                                          "TASK_FINISHED", "TASK_LOST",
                                          "TASK_ERROR"}, 30)
    assert st["state"] == "TASK_KILLED", describe(st)


# (d) -------------------------------------------------------------------------
def test_explicit_reconciliation(mantle, framework):
    framework.start(mantle.master)
    framework.wait_registered()
    framework.add_task("recon-run", "sleep 60")
    framework.add_task("recon-done", "true")
    framework.wait_state("recon-run", "TASK_RUNNING", TASK_TIMEOUT)
    framework.wait_state("recon-done", "TASK_FINISHED", TASK_TIMEOUT)

    def reconciled(task_id):
        return [u for u in framework.statuses(task_id)
                if u.get("reason") == "REASON_RECONCILIATION"]

    framework.driver.reconcileTasks([{"task_id": {"value": "recon-run"}},
                                     {"task_id": {"value": "no-such-task"}}])
    framework.wait(lambda: reconciled("recon-run")
                   and reconciled("no-such-task"),
                   20, "reconciliation updates")

    run = reconciled("recon-run")[0]
    assert run["state"] == "TASK_RUNNING", run
    assert "uuid" not in run, "reconciliation updates must carry no uuid: %r" \
        % run
    assert run.get("source") == "SOURCE_MASTER", run
    assert run.get("agent_id") == framework.launched["recon-run"]["agent_id"]

    unknown = reconciled("no-such-task")[0]
    # not partition-aware: Mesos answers TASK_LOST for a task it never knew
    assert unknown["state"] == "TASK_LOST", unknown
    assert "uuid" not in unknown, unknown

    # a task that already finished (and was acknowledged) is still known
    # to the master; explicit reconciliation returns its terminal state
    framework.driver.reconcileTasks([{"task_id": {"value": "recon-done"}}])
    framework.wait(lambda: reconciled("recon-done"), 20,
                   "reconciliation of the finished task")
    done = reconciled("recon-done")[0]
    assert done["state"] in ("TASK_FINISHED", "TASK_LOST"), done
    assert "uuid" not in done, done

    framework.driver.killTask({"value": "recon-run"})
    framework.wait_terminal(["recon-run"], 30)


def test_implicit_reconciliation(mantle, framework):
    framework.start(mantle.master)
    framework.wait_registered()
    framework.add_task("implicit-a", "sleep 60")
    framework.add_task("implicit-b", "sleep 60")
    framework.wait_state("implicit-a", "TASK_RUNNING", TASK_TIMEOUT)
    framework.wait_state("implicit-b", "TASK_RUNNING", TASK_TIMEOUT)

    framework.driver.reconcileTasks([])

    def reconciled(task_id):
        return [u for u in framework.statuses(task_id)
                if u.get("reason") == "REASON_RECONCILIATION"]

    framework.wait(lambda: reconciled("implicit-a") and reconciled("implicit-b"),
                   20, "implicit reconciliation updates")
    for task_id in ("implicit-a", "implicit-b"):
        u = reconciled(task_id)[0]
        assert u["state"] == "TASK_RUNNING", u
        assert "uuid" not in u, u
