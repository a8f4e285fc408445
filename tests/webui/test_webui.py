"""The web UI in a real browser: headless Debian chromium (playwright) against a real
`mantle local` cluster running tasks of a pymesos framework. Each page is checked
against the master's own JSON, and the live updates are watched without reloading."""

import json
import re
import time
import urllib.request
import uuid

from playwright.sync_api import expect

from conftest import ROLE, WEIGHT

LIVE_TIMEOUT = 30.0  # seconds for something to show up in the page


def wait_for(check, what, timeout=LIVE_TIMEOUT):
    """Calls check() until it returns (True, detail); fails with the last detail."""
    deadline = time.monotonic() + timeout
    while True:
        ok, detail = check()
        if ok:
            return detail
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s; last: %s" % (what, detail))
        time.sleep(0.3)


def fields(page, names):
    """The data-value of each [data-field=name] element, as numbers."""
    values = page.evaluate(
        """names => Object.fromEntries(names.map(n => {
             const e = document.querySelector(`[data-field="${n}"]`);
             return [n, e ? e.dataset.value : null];
           }))""", names)
    return {n: None if v is None else round(float(v), 3) for n, v in values.items()}


def launch(framework, task_id, command="sleep 600"):
    framework.add_task(task_id, command)
    framework.wait_state(task_id, "TASK_RUNNING", 60)


def ui(cluster, route=""):
    return "%s/#%s" % (cluster.url, route)


def totals(state, key):
    out = {}
    for slave in state["slaves"]:
        for name in ("cpus", "mem", "disk", "gpus"):
            out[name] = out.get(name, 0) + slave[key][name]
    return out


def running_tasks(state):
    return sum(1 for f in state["frameworks"] for t in f["tasks"]
               if t["state"] == "TASK_RUNNING")


def test_served_at_the_root(cluster):
    for path, content_type in [("/", "text/html"), ("/master/", "text/html"),
                               ("/static/js/app.js", "text/javascript"),
                               ("/static/app.css", "text/css")]:
        with urllib.request.urlopen(cluster.url + path, timeout=5) as resp:
            assert resp.status == 200, path
            assert resp.headers["Content-Type"].startswith(content_type), path
            body = resp.read().decode()
        if content_type == "text/html":
            assert '<script type="module" src="/static/js/app.js">' in body


def test_overview_matches_master_state(cluster, framework, page, screenshot):
    launch(framework, "overview-" + uuid.uuid4().hex[:6])
    page.goto(ui(cluster, "/"))
    expect(page.locator('[data-field="resources-total-cpus"]')).to_be_visible()
    names = (["resources-%s-%s" % (k, r) for k in ("total", "used")
              for r in ("cpus", "mem", "disk", "gpus")]
             + ["agents-active", "frameworks-active", "tasks-running", "tasks-TASK_RUNNING",
                "tasks-TASK_FINISHED"])

    def agree():
        state = cluster.get_json("/master/state")
        expected = {}
        for key, column in (("resources", "total"), ("used_resources", "used")):
            for name, value in totals(state, key).items():
                expected["resources-%s-%s" % (column, name)] = round(value, 3)
        expected["agents-active"] = state["activated_slaves"]
        expected["frameworks-active"] = sum(1 for f in state["frameworks"] if f["active"])
        expected["tasks-running"] = running_tasks(state)
        expected["tasks-TASK_RUNNING"] = running_tasks(state)
        expected["tasks-TASK_FINISHED"] = sum(
            1 for f in state["frameworks"] + state["completed_frameworks"]
            for t in f["tasks"] + f["completed_tasks"] if t["state"] == "TASK_FINISHED")
        got = fields(page, names)
        return got == expected, {"page": got, "state": expected}

    seen = wait_for(agree, "the overview to show /master/state's numbers")
    assert seen["page"]["agents-active"] == 2
    assert seen["page"]["resources-total-cpus"] > 0
    assert seen["page"]["tasks-TASK_RUNNING"] >= 1

    # Human units, and idle + used + offered adding up to the total.
    mem_text = page.locator('[data-field="resources-total-mem"]').inner_text()
    assert re.fullmatch(r"\d+(\.\d)? (MiB|GiB|TiB)", mem_text), mem_text
    parts = fields(page, ["resources-%s-cpus" % k for k in ("total", "used", "offered", "idle")])
    assert abs(parts["resources-used-cpus"] + parts["resources-offered-cpus"]
               + parts["resources-idle-cpus"] - parts["resources-total-cpus"]) < 0.01, parts

    # The leader, in the page and in the header.
    leader = "127.0.0.1:%d" % cluster.port
    expect(page.locator('[data-field="leader"]')).to_have_text(leader)
    expect(page.locator('[data-field="header-leader"]')).to_have_text(leader)
    screenshot("overview")


def test_task_page_tails_stdout_and_stderr(cluster, framework, page, screenshot):
    marker = uuid.uuid4().hex[:10]
    task_id = "tail-" + marker
    # A line a second on stdout, so the tail must keep growing while the page is open.
    launch(framework, task_id,
           "echo out-%s; echo err-%s >&2; i=0; while true; do i=$((i+1)); "
           "echo tick-$i; sleep 1; done" % (marker, marker))
    page.goto(ui(cluster, "/tasks"))
    page.locator('tr[data-task-id="%s"] a[href^="#/tasks/"]' % task_id).click()
    expect(page.locator("h1")).to_have_text(task_id)
    log = page.locator("pre.log")
    expect(log).to_contain_text("out-" + marker, timeout=LIVE_TIMEOUT * 1000)

    def ticks():
        found = [int(n) for n in re.findall(r"tick-(\d+)", log.inner_text())]
        return max(found) if found else 0

    first = wait_for(lambda: (ticks() > 0, ticks()), "a first tick in stdout")
    wait_for(lambda: (ticks() >= first + 2, ticks()), "stdout to grow in the page")

    # The file browser lists the sandbox; the stderr tab shows stderr.
    listing = page.locator(".sandbox-files")
    expect(listing.locator('a[data-path$="/stdout"]')).to_be_visible()
    expect(listing.locator('a[data-path$="/stderr"]')).to_be_visible()
    screenshot("task")
    page.locator('.tabs button[data-file="stderr"]').click()
    expect(log).to_contain_text("err-" + marker, timeout=LIVE_TIMEOUT * 1000)
    assert "tick-" not in log.inner_text()

    # Opening a file from the listing shows that file.
    listing.locator('a[data-path$="/stdout"]').click()
    expect(log).to_contain_text("out-" + marker, timeout=LIVE_TIMEOUT * 1000)


def test_new_task_appears_without_reload(cluster, framework, page):
    launch(framework, "before-" + uuid.uuid4().hex[:6])
    page.goto(ui(cluster, "/"))
    expect(page.locator('[data-field="tasks-TASK_RUNNING"]')).to_be_visible()
    page.evaluate("window.__sameDocument = true")
    before = wait_for(
        lambda: (lambda n, s: (n == s, n))(
            fields(page, ["tasks-TASK_RUNNING"])["tasks-TASK_RUNNING"],
            running_tasks(cluster.get_json("/master/state"))),
        "the overview's running count to settle")

    task_id = "live-" + uuid.uuid4().hex[:6]
    launch(framework, task_id)
    wait_for(lambda: (fields(page, ["tasks-TASK_RUNNING"])["tasks-TASK_RUNNING"] == before + 1,
                      fields(page, ["tasks-TASK_RUNNING"])),
             "the running count to go up by one")

    # The tasks list, opened by clicking, shows the next new task as it starts.
    page.locator('#nav a[data-section="tasks"]').click()
    expect(page.locator("table.tasks")).to_be_visible()
    later = "live-" + uuid.uuid4().hex[:6]
    framework.add_task(later, "sleep 600")
    row = page.locator('tr[data-task-id="%s"]' % later)
    expect(row.locator('[data-state="TASK_RUNNING"]')).to_be_visible(timeout=LIVE_TIMEOUT * 1000)
    assert page.evaluate("window.__sameDocument === true"), "the page was reloaded"


def test_tasks_filters_and_search(cluster, framework, page, screenshot):
    finished = "done-" + uuid.uuid4().hex[:6]
    framework.add_task(finished, "echo bye")
    framework.wait_state(finished, "TASK_FINISHED", 60)
    running = "run-" + uuid.uuid4().hex[:6]
    launch(framework, running)
    page.goto(ui(cluster, "/tasks"))
    expect(page.locator('tr[data-task-id="%s"]' % finished)).to_be_visible()

    page.locator("#task-search").fill(running)
    expect(page.locator("table.tasks tbody tr")).to_have_count(1)
    expect(page.locator('tr[data-task-id="%s"]' % running)).to_be_visible()
    assert "q=" + running in page.evaluate("location.hash")

    page.locator("#task-search").fill("")
    page.locator("#task-state").select_option("TASK_FINISHED")
    expect(page.locator('tr[data-task-id="%s"]' % finished)).to_be_visible()
    expect(page.locator('tr[data-task-id="%s"]' % running)).to_have_count(0)
    states = page.locator("table.tasks tbody [data-state]").evaluate_all(
        "els => els.map(e => e.dataset.state)")
    assert states and set(states) == {"TASK_FINISHED"}, states

    page.locator("#task-state").select_option("active")
    expect(page.locator('tr[data-task-id="%s"]' % running)).to_be_visible()
    expect(page.locator('tr[data-task-id="%s"]' % finished)).to_have_count(0)

    page.locator("#task-framework").select_option(framework.framework_id)
    expect(page.locator('tr[data-task-id="%s"]' % running)).to_be_visible()
    screenshot("tasks")

    # The filters survive a reload: they live in the URL.
    page.reload()
    expect(page.locator("#task-state")).to_have_value("active")
    expect(page.locator("#task-framework")).to_have_value(framework.framework_id)

    # An ended task's sandbox is still there (its executor is among the agent's
    # completed ones).
    page.locator("#task-state").select_option("TASK_FINISHED")
    page.locator('tr[data-task-id="%s"] a[href^="#/tasks/"]' % finished).click()
    expect(page.locator("pre.log")).to_contain_text("bye")


def test_agents_list_and_agent_page(cluster, framework, page, screenshot):
    task_id = "agent-" + uuid.uuid4().hex[:6]
    launch(framework, task_id)
    state = cluster.get_json("/master/state")
    task = next(t for f in state["frameworks"] for t in f["tasks"] if t["id"] == task_id)
    agent = next(s for s in state["slaves"] if s["id"] == task["slave_id"])

    page.goto(ui(cluster, "/agents"))
    rows = page.locator("tr[data-agent-id]")
    expect(rows).to_have_count(len(state["slaves"]))
    for slave in state["slaves"]:
        expect(page.locator('tr[data-agent-id="%s"]' % slave["id"])).to_contain_text(
            slave["hostname"])
    screenshot("agents")

    page.locator('tr[data-agent-id="%s"] a' % agent["id"]).first.click()
    # Agents sharing a hostname (mantle local's) are named with their port.
    port = agent["pid"].rsplit(":", 1)[1]
    expect(page.locator("h1")).to_have_text("%s:%s" % (agent["hostname"], port))
    expect(page.locator(".subtitle")).to_contain_text(agent["id"])
    total = fields(page, ["agent-total-cpus", "agent-total-mem"])
    assert total == {"agent-total-cpus": round(agent["resources"]["cpus"], 3),
                     "agent-total-mem": round(agent["resources"]["mem"], 3)}, total
    expect(page.locator('tr[data-task-id="%s"]' % task_id)).to_be_visible()
    expect(page.get_by_role("heading", name="Attributes")).to_be_visible()
    screenshot("agent")


def test_frameworks_list_and_framework_page(cluster, framework, page, screenshot):
    task_id = "fw-" + uuid.uuid4().hex[:6]
    launch(framework, task_id)
    page.goto(ui(cluster, "/frameworks"))
    row = page.locator('tr[data-framework-id="%s"]' % framework.framework_id)
    expect(row).to_contain_text("webui-test-framework")
    expect(row).to_contain_text(ROLE)
    screenshot("frameworks")

    row.locator("a").first.click()
    expect(page.locator("h1")).to_have_text("webui-test-framework")
    expect(page.locator('tr[data-task-id="%s"]' % task_id)).to_be_visible()

    def agree():
        state = cluster.get_json("/master/state")
        fw = next(f for f in state["frameworks"] if f["id"] == framework.framework_id)
        expected = {"framework-used-cpus": round(fw["used_resources"]["cpus"], 3),
                    "framework-used-mem": round(fw["used_resources"]["mem"], 3)}
        got = fields(page, list(expected))
        return got == expected, {"page": got, "state": expected}

    wait_for(agree, "the framework's used resources to match /master/state")
    screenshot("framework")


def test_roles_page(cluster, framework, page, screenshot):
    # The legacy endpoint sets the limit to the guarantee too: leave room for the tasks.
    quota = {"role": ROLE, "force": True, "guarantee": [
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": 3.5}},
        {"name": "mem", "type": "SCALAR", "scalar": {"value": 1536}}]}
    request = urllib.request.Request(cluster.url + "/master/quota", method="POST",
                                     data=json.dumps(quota).encode())
    with urllib.request.urlopen(request, timeout=5) as resp:
        assert resp.status == 200
    launch(framework, "role-" + uuid.uuid4().hex[:6])

    page.goto(ui(cluster, "/roles"))
    row = page.locator('tr[data-role="%s"]' % ROLE)
    expect(row.locator('[data-field="weight"]')).to_have_text("%g" % WEIGHT)
    expect(row.locator('[data-field="guarantee"]')).to_contain_text("cpus 3.5")
    expect(row.locator('[data-field="guarantee"]')).to_contain_text("mem 1.5 GiB")
    expect(row.locator('[data-field="limit"]')).to_contain_text("cpus 3.5")
    expect(row.locator('[data-field="allocated"]')).to_contain_text("cpus")

    def share():
        # The dominant share of what the role holds (allocated and offered), and that
        # divided by the weight, which is the share Mantle's allocator sorts by.
        total = totals(cluster.get_json("/master/state"), "resources")
        role = next(r for r in cluster.get_json("/master/roles")["roles"]
                    if r["name"] == ROLE)
        expected = max(role["resources"].get(k, 0) / total[k] for k in total if total[k])
        got = {f: float(row.locator('[data-field="%s"]' % f).get_attribute("data-value"))
               for f in ("share", "weighted-share")}
        ok = (abs(got["share"] - expected) < 1e-6 and got["share"] > 0
              and abs(got["weighted-share"] - role["dominant_share"]) < 1e-6)
        return ok, (got, expected, role)

    wait_for(share, "the role's shares to match /master/roles")
    screenshot("roles")


def test_unknown_route(cluster, page):
    page.goto(ui(cluster, "/nowhere"))
    expect(page.locator("h1")).to_have_text("Not found")
    page.locator('#nav a[data-section="overview"]').click()
    expect(page.locator("h1")).to_have_text("Overview")
