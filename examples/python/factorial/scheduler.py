#!/usr/bin/env python3
"""Factorial framework for Mantle (or Apache Mesos), written with pymesos.

    python scheduler.py [--master 127.0.0.1:5050] [--timeout 120] [N ...]

Each number N becomes one task run by the custom executor in executor.py
(started with this very Python interpreter, so a virtualenv's pymesos is
used).  The task's data is base64(N); the executor answers with
TASK_FINISHED whose data is base64(N!).  Every result is checked against
math.factorial.

Exit status: 0 when every task finished with a correct result, 1 on a failed
task or a wrong result, 2 on timeout.
"""

import argparse
import getpass
import logging
import math
import os
import shlex
import socket
import sys
import threading
import time

from pymesos import MesosSchedulerDriver, Scheduler, decode_data, encode_data

log = logging.getLogger("factorial-scheduler")

HERE = os.path.dirname(os.path.abspath(__file__))
EXECUTOR_PATH = os.path.join(HERE, "executor.py")
EXECUTOR_ID = "factorial-python-executor"
FRAMEWORK_NAME = "factorial-python"
DEFAULT_NUMBERS = [5, 7, 10, 70, 30]

TERMINAL_FAILURES = {
    "TASK_FAILED", "TASK_LOST", "TASK_ERROR", "TASK_KILLED", "TASK_DROPPED",
    "TASK_GONE", "TASK_GONE_BY_OPERATOR", "TASK_UNKNOWN",
}


def milli(value):
    """Resource scalars are fixed point with three decimals."""
    return int(round(float(value) * 1000))


def scalar(name, value):
    return {"name": name, "type": "SCALAR", "scalar": {"value": value}}


def offered(offer, name):
    """Total of the unreserved-or-reserved scalar resource `name`, in 1/1000."""
    total = 0
    for res in offer.get("resources", []):
        if res.get("name") == name and res.get("type", "SCALAR") == "SCALAR":
            total += milli(res.get("scalar", {}).get("value", 0))
    return total


class FactorialScheduler(Scheduler):
    def __init__(self, numbers, cpus, mem):
        self.cpus = cpus
        self.mem = mem
        self.pending = list(numbers)          # numbers not launched yet
        self.tasks = {}                       # task id -> number
        self.results = {}                     # task id -> n!
        self.expected = len(numbers)
        self.failure = None                   # first error message
        self.done = threading.Event()
        self.lock = threading.Lock()
        self._next = 0
        command = "%s %s" % (shlex.quote(sys.executable),
                             shlex.quote(EXECUTOR_PATH))
        self.executor_info = {
            "executor_id": {"value": EXECUTOR_ID},
            "name": "Factorial executor (Python)",
            "command": {"value": command, "shell": True},
        }

    # -- helpers -------------------------------------------------------
    def _fail(self, driver, message):
        with self.lock:
            if self.failure is None:
                self.failure = message
        log.error("%s", message)
        self.done.set()
        driver.stop()

    def _new_task(self, offer, n):
        self._next += 1
        task_id = "factorial-%d-%d" % (n, self._next)
        self.tasks[task_id] = n
        return {
            "task_id": {"value": task_id},
            "agent_id": offer["agent_id"],
            "name": "factorial(%d)" % n,
            "executor": self.executor_info,
            "data": encode_data(str(n).encode("ascii")),
            "resources": [scalar("cpus", self.cpus), scalar("mem", self.mem)],
        }

    # -- pymesos callbacks --------------------------------------------
    def registered(self, driver, framework_id, master_info):
        log.info("registered as framework %s with master %s:%s",
                 framework_id["value"], master_info.get("hostname"),
                 master_info.get("port"))

    def reregistered(self, driver, master_info):
        log.info("re-registered with master %s:%s",
                 master_info.get("hostname"), master_info.get("port"))

    def disconnected(self, driver):
        if self.done.is_set():
            log.info("event stream closed")
        else:
            log.warning("disconnected from the master")

    def resourceOffers(self, driver, offers):
        for offer in offers:
            cpus_left = offered(offer, "cpus")
            mem_left = offered(offer, "mem")
            need_cpus, need_mem = milli(self.cpus), milli(self.mem)
            tasks = []
            with self.lock:
                while (self.pending and self.failure is None
                       and cpus_left >= need_cpus and mem_left >= need_mem):
                    n = self.pending.pop(0)
                    tasks.append(self._new_task(offer, n))
                    cpus_left -= need_cpus
                    mem_left -= need_mem
            if tasks:
                log.info("offer %s on %s: launching %s", offer["id"]["value"],
                         offer.get("hostname", "?"),
                         ", ".join(t["name"] for t in tasks))
                driver.launchTasks([offer["id"]], tasks)
            else:
                driver.declineOffer([offer["id"]], {"refuse_seconds": 5})

    def offerRescinded(self, driver, offer_id):
        log.info("offer %s rescinded", offer_id["value"])

    def statusUpdate(self, driver, status):
        task_id = status["task_id"]["value"]
        state = status["state"]
        n = self.tasks.get(task_id)
        detail = ""
        if status.get("message"):
            detail = " (%s)" % status["message"]
        print("task %s [n=%s]: %s%s" % (task_id, n, state, detail), flush=True)

        if n is None:
            return
        if state == "TASK_FINISHED":
            try:
                value = int(decode_data(status.get("data", "")).decode("ascii"))
            except Exception as exc:
                self._fail(driver, "task %s finished with unreadable data: %s"
                           % (task_id, exc))
                return
            if value != math.factorial(n):
                self._fail(driver, "task %s: wrong result for %d!: %d"
                           % (task_id, n, value))
                return
            print("factorial(%d) = %d" % (n, value), flush=True)
            with self.lock:
                self.results[task_id] = value
                finished = len(self.results) == self.expected
            if finished:
                print("all %d results are correct" % self.expected, flush=True)
                self.done.set()
                driver.stop()
        elif state in TERMINAL_FAILURES:
            self._fail(driver, "task %s (n=%d) ended in %s%s"
                       % (task_id, n, state, detail))

    def frameworkMessage(self, driver, executor_id, agent_id, message):
        log.info("message from %s: %r", executor_id["value"], message)

    def slaveLost(self, driver, agent_id):
        log.warning("agent %s lost", agent_id["value"])

    def executorLost(self, driver, executor_id, agent_id, status):
        log.warning("executor %s on agent %s exited with status %s",
                    executor_id["value"], agent_id["value"], status)

    def error(self, driver, message):
        self._fail(driver, "error from the master: %s" % message)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("numbers", metavar="N", type=int, nargs="*",
                   default=DEFAULT_NUMBERS,
                   help="numbers whose factorial to compute (default: %s)"
                   % " ".join(map(str, DEFAULT_NUMBERS)))
    p.add_argument("--master", default="127.0.0.1:5050",
                   help="master host:port (default %(default)s)")
    p.add_argument("--timeout", type=float, default=120.0,
                   help="give up after this many seconds (default %(default)s)")
    p.add_argument("--cpus", type=float, default=1.0,
                   help="cpus per task (default %(default)s)")
    p.add_argument("--mem", type=float, default=10.0,
                   help="memory per task in MB (default %(default)s)")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    if any(n < 0 for n in args.numbers):
        p.error("numbers must not be negative")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    sched = FactorialScheduler(args.numbers, args.cpus, args.mem)
    if not args.numbers:
        print("nothing to do")
        return 0
    framework = {
        "user": getpass.getuser(),
        "name": FRAMEWORK_NAME,
        "hostname": socket.gethostname(),
    }
    driver = MesosSchedulerDriver(sched, framework, args.master)
    deadline = time.monotonic() + args.timeout
    timed_out = False
    driver.start()
    try:
        # pymesos reports a failure of its IO thread by raising it here
        # (through SIGINT); waiting in short steps keeps that possible.
        while not sched.done.wait(0.5):
            if driver.aborted:
                sched.failure = sched.failure or "the pymesos driver stopped"
                break
            if time.monotonic() > deadline:
                timed_out = True
                break
    finally:
        driver.stop()
        joiner = threading.Thread(target=driver.join, daemon=True)
        joiner.start()
        joiner.join(15)

    if timed_out:
        print("timeout after %.0f s: %d of %d results (still pending: %s)"
              % (args.timeout, len(sched.results), sched.expected,
                 " ".join(map(str, sched.pending)) or "none"),
              file=sys.stderr, flush=True)
        return 2
    if sched.failure:
        print("FAILED: %s" % sched.failure, file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
