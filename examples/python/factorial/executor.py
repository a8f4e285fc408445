#!/usr/bin/env python3
"""Factorial executor for Mantle, written with pymesos.

The agent starts this program (the scheduler puts it in the ExecutorInfo's
command).  For every task it receives, it reads the task's ``data`` field
(base64 of a decimal number n), reports TASK_RUNNING, computes n! and reports
TASK_FINISHED with ``data`` = base64 of the decimal digits of n!.

Environment (set by the agent): MESOS_AGENT_ENDPOINT, MESOS_FRAMEWORK_ID,
MESOS_EXECUTOR_ID, optionally MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD.
"""

import logging
import math
import sys
import threading

from pymesos import Executor, MesosExecutorDriver, decode_data, encode_data

log = logging.getLogger("factorial-executor")

TERMINAL = {"TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_ERROR"}


class FactorialExecutor(Executor):
    def __init__(self):
        self._lock = threading.Lock()
        # task id -> last state we reported
        self._states = {}

    # -- helpers -----------------------------------------------------------
    def _update(self, driver, task_id, state, message=None, data=None):
        """Send one status update unless the task already ended."""
        with self._lock:
            if self._states.get(task_id) in TERMINAL:
                return False
            self._states[task_id] = state
        status = {"task_id": {"value": task_id}, "state": state}
        if message is not None:
            status["message"] = message
        if data is not None:
            status["data"] = data
        log.info("task %s -> %s", task_id, state)
        driver.sendStatusUpdate(status)
        return True

    def _run_task(self, driver, task):
        task_id = task["task_id"]["value"]
        try:
            n = int(decode_data(task.get("data", "")).decode("ascii").strip())
            if n < 0:
                raise ValueError("negative number %d" % n)
        except Exception as exc:  # bad input: the task fails, the executor lives on
            self._update(driver, task_id, "TASK_FAILED",
                         message="bad task data: %s" % exc)
            return
        if not self._update(driver, task_id, "TASK_RUNNING"):
            return
        result = str(math.factorial(n)).encode("ascii")
        self._update(driver, task_id, "TASK_FINISHED",
                     message="%d! has %d digits" % (n, len(result)),
                     data=encode_data(result))

    # -- pymesos callbacks -------------------------------------------------
    def registered(self, driver, executor_info, framework_info, agent_info):
        log.info("registered: executor %s of framework %s on %s",
                 executor_info["executor_id"]["value"],
                 framework_info["id"]["value"],
                 agent_info.get("hostname", "?"))

    def reregistered(self, driver, agent_info):
        log.info("re-registered with agent %s", agent_info.get("hostname", "?"))

    def disconnected(self, driver):
        log.info("disconnected from the agent")

    def launchTask(self, driver, task):
        # Callbacks run on pymesos's IO thread; do the work on another one so
        # the event stream keeps flowing (kill requests, acknowledgements).
        worker = threading.Thread(target=self._run_task, args=(driver, task),
                                  name="task-%s" % task["task_id"]["value"],
                                  daemon=True)
        worker.start()

    def killTask(self, driver, task_id):
        self._update(driver, task_id["value"], "TASK_KILLED",
                     message="killed by the scheduler")

    def frameworkMessage(self, driver, message):
        log.info("framework message: %r", message)

    def shutdown(self, driver):
        log.info("shutdown requested")
        with self._lock:
            running = [t for t, s in self._states.items() if s not in TERMINAL]
        for task_id in running:
            try:
                self._update(driver, task_id, "TASK_KILLED",
                             message="executor shut down")
            except Exception:
                log.exception("could not report %s as killed", task_id)

    def error(self, driver, message):
        log.error("error from the agent: %s", message)


def main():
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    driver = MesosExecutorDriver(FactorialExecutor())
    driver.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
