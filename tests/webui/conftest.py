"""Fixtures for the browser tests of the web UI.

One `mantle local` cluster (a master and two agents on free loopback ports, the
compatibility tests' `MantleCluster`) and one pymesos framework (`CommandFramework`
of tests/compat/harness.py) serve every test of a module; each test gets a fresh page
of one headless Debian chromium driven by playwright. Screenshots go to
<repo>/target/webui-artifacts/.

Run after `cargo build -p mantle --bins` and `scripts/python-env.sh`:

    MANTLE_BIN=$CARGO_TARGET_DIR/debug/mantle .venv/bin/python -m pytest -q tests/webui
"""

import importlib.util
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
COMPAT = os.path.join(HERE, "..", "compat")
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
ARTIFACTS = os.path.join(REPO, "target", "webui-artifacts")
CHROMIUM = os.environ.get("MANTLE_CHROMIUM", "/usr/bin/chromium")

# The compatibility tests' harness: the cluster runner lives in their conftest, which
# is loaded under a name of its own so it cannot clash with this conftest.
sys.path.insert(0, COMPAT)


def _load(name, filename):
    spec = importlib.util.spec_from_file_location(name, os.path.join(COMPAT, filename))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


compat = _load("compat_conftest", "conftest.py")


def load_compat_module(name, filename):
    """A module of tests/compat whose `from conftest import ...` means the compat
    conftest (while this one is the `conftest` pytest imported)."""
    ours = sys.modules.get("conftest")
    sys.modules["conftest"] = compat
    try:
        return _load(name, filename)
    finally:
        if ours is None:
            del sys.modules["conftest"]
        else:
            sys.modules["conftest"] = ours

from harness import CommandFramework  # noqa: E402  (needs COMPAT on sys.path)

# The framework's role, with a weight and a quota the roles page must show.
ROLE = "webui"
WEIGHT = 2.5


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("webui")
    work_dir = tmp / "work"
    work_dir.mkdir()
    cluster = compat.MantleCluster(
        str(work_dir), str(tmp / "mantle.log"),
        extra_args=["--weights", "%s=%s" % (ROLE, WEIGHT)])
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        print(cluster.log_tail())


@pytest.fixture(scope="module")
def framework(cluster):
    fw = CommandFramework(name="webui-test-framework")
    fw.start(cluster.master, role=ROLE)
    try:
        fw.wait_registered()
        yield fw
    finally:
        fw.stop()


@pytest.fixture(scope="session")
def browser():
    if not os.access(CHROMIUM, os.X_OK):
        message = ("%s not found: run scripts/python-env.sh (installs Debian's "
                   "chromium)" % CHROMIUM)
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    # Never let playwright fetch a browser of its own.
    os.environ["PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD"] = "1"
    from playwright.sync_api import expect, sync_playwright
    # The page polls every 2 s and tasks take a moment to start on a loaded machine.
    expect.set_options(timeout=20000)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser):
    """A laptop-sized page; uncaught script errors fail the test that saw them."""
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_default_timeout(20000)
    try:
        yield page
    finally:
        context.close()
    assert not errors, "script errors in the page: %s" % errors


@pytest.fixture
def screenshot(page):
    """screenshot(name): saves the whole page as target/webui-artifacts/<name>.png."""
    os.makedirs(ARTIFACTS, exist_ok=True)

    def take(name):
        path = os.path.join(ARTIFACTS, name + ".png")
        page.screenshot(path=path, full_page=True)
        return path
    return take
