"""A small pymesos framework for the compatibility tests.

`CommandFramework` launches command tasks (CommandInfo, no custom executor)
as offers arrive, records every status update it receives, and lets a test
wait, with a deadline, for a condition on those updates.
"""

import getpass
import os
import threading
import time
import urllib.error
import urllib.request

from pymesos import MesosSchedulerDriver, Scheduler

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def http_get(url, timeout=5.0):
    """GET url; returns (status, headers, body bytes). Never raises on 4xx/5xx."""
    req = urllib.request.Request(url, method="GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


TERMINAL_STATES = {
    "TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_ERROR", "TASK_LOST",
    "TASK_DROPPED", "TASK_GONE", "TASK_GONE_BY_OPERATOR",
}


def _milli(value):
    return int(round(float(value) * 1000))


def _scalar(name, value):
    return {"name": name, "type": "SCALAR", "scalar": {"value": value}}


def own_headers(driver):
    """pymesos 0.3.15's `_send` has a mutable default `headers={}` that every driver in
    the process shares: two drivers in one process (the weighted DRF test runs two) can
    send each other's Mesos-Stream-Id, which any master rightly refuses with 400. Each
    call gets a dict of its own; nothing else about the driver changes."""
    send = driver._send

    def _send(body, path="/api/v1/scheduler", method="POST", headers=None):
        return send(body, path, method, dict(headers or {}))

    driver._send = _send


class CommandFramework(Scheduler):
    def __init__(self, name="mantle-compat-python"):
        self.name = name
        self.cond = threading.Condition()
        self.framework_id = None
        self.pending = []          # task specs still to launch
        self.launched = {}         # task id -> TaskInfo sent
        self.updates = []          # every TaskStatus received, in order
        self.errors = []           # ERROR events / callback failures
        self.offers_seen = 0
        self.driver = None

    # -- API for tests ---------------------------------------------------
    def add_task(self, task_id, command, cpus=0.1, mem=16.0, container=None):
        """Queue a command task; `container` is its ContainerInfo, if any."""
        with self.cond:
            self.pending.append(dict(task_id=task_id, command=command,
                                     cpus=cpus, mem=mem, container=container))
        if self.driver is not None and self.framework_id is not None:
            try:
                self.driver.reviveOffers()
            except Exception as exc:  # pragma: no cover - reported by wait()
                self.errors.append("REVIVE failed: %r" % exc)

    def start(self, master, **fields):
        """Subscribes; `fields` go into the FrameworkInfo (checkpoint=True...)."""
        framework = {"user": getpass.getuser(), "name": self.name,
                     "hostname": "localhost"}
        framework.update(fields)
        self.driver = MesosSchedulerDriver(self, framework, master)
        own_headers(self.driver)
        self.driver.start()
        return self.driver

    def stop(self, timeout=15.0):
        driver, self.driver = self.driver, None
        if driver is None:
            return
        driver.stop()
        joiner = threading.Thread(target=driver.join, daemon=True)
        joiner.start()
        joiner.join(timeout)

    def wait(self, predicate, timeout, what):
        """Wait until predicate() (called under the lock) is true."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                if self.errors:
                    raise AssertionError("framework error while waiting for "
                                         "%s: %s" % (what, self.errors))
                if predicate():
                    return
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        "timed out after %.0f s waiting for %s; updates seen: "
                        "%s" % (timeout, what, self.summary()))
                if self.driver is not None and self.driver.aborted:
                    raise AssertionError("pymesos driver aborted while waiting "
                                         "for %s" % what)
                self.cond.wait(min(left, 0.5))

    def wait_registered(self, timeout=20.0):
        self.wait(lambda: self.framework_id is not None, timeout,
                  "SUBSCRIBED")

    def statuses(self, task_id):
        return [u for u in self.updates if u["task_id"]["value"] == task_id]

    def last_state(self, task_id):
        st = self.statuses(task_id)
        return st[-1]["state"] if st else None

    def wait_state(self, task_id, states, timeout):
        if isinstance(states, str):
            states = {states}
        self.wait(lambda: self.last_state(task_id) in states, timeout,
                  "task %s to reach %s" % (task_id, "/".join(sorted(states))))
        return self.statuses(task_id)[-1]

    def wait_terminal(self, task_ids, timeout):
        self.wait(lambda: all(self.last_state(t) in TERMINAL_STATES
                              for t in task_ids),
                  timeout, "terminal states of %s" % ", ".join(task_ids))
        return {t: self.statuses(t)[-1] for t in task_ids}

    def summary(self):
        return ["%s:%s%s" % (u["task_id"]["value"], u["state"],
                             "(%s)" % u["message"] if u.get("message") else "")
                for u in self.updates]

    # -- pymesos callbacks ------------------------------------------------
    def registered(self, driver, framework_id, master_info):
        with self.cond:
            self.framework_id = framework_id["value"]
            self.cond.notify_all()

    def reregistered(self, driver, master_info):
        pass

    def resourceOffers(self, driver, offers):
        for offer in offers:
            cpus = sum(_milli(r.get("scalar", {}).get("value", 0))
                       for r in offer.get("resources", [])
                       if r.get("name") == "cpus")
            mem = sum(_milli(r.get("scalar", {}).get("value", 0))
                      for r in offer.get("resources", [])
                      if r.get("name") == "mem")
            tasks = []
            with self.cond:
                self.offers_seen += 1
                keep = []
                for spec in self.pending:
                    c, m = _milli(spec["cpus"]), _milli(spec["mem"])
                    if c <= cpus and m <= mem:
                        cpus -= c
                        mem -= m
                        task = {
                            "task_id": {"value": spec["task_id"]},
                            "agent_id": offer["agent_id"],
                            "name": spec["task_id"],
                            "command": {"value": spec["command"],
                                        "shell": True},
                            "resources": [_scalar("cpus", spec["cpus"]),
                                          _scalar("mem", spec["mem"])],
                        }
                        if spec["container"] is not None:
                            task["container"] = spec["container"]
                        tasks.append(task)
                        self.launched[spec["task_id"]] = task
                    else:
                        keep.append(spec)
                self.pending = keep
            if tasks:
                driver.launchTasks([offer["id"]], tasks)
            else:
                driver.declineOffer([offer["id"]], {"refuse_seconds": 1})

    def statusUpdate(self, driver, status):
        with self.cond:
            self.updates.append(status)
            self.cond.notify_all()

    def error(self, driver, message):
        with self.cond:
            self.errors.append("ERROR event: %s" % message)
            self.cond.notify_all()
