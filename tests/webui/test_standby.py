"""The web UI served by a standby master: it shows the leader's data and names the
leader, and follows the next leader when the current one is killed, without a
reload. Three `mantle master`s elect a leader in a real ZooKeeper server (Debian's
package), as in tests/compat/test_ha.py, whose cluster fixture this reuses."""

from playwright.sync_api import expect

from conftest import load_compat_module

ha = load_compat_module("compat_test_ha", "test_ha.py").ha

FOLLOW_TIMEOUT = 60000  # ms: a session expiry, an election and agents re-registering


def test_standby_shows_and_follows_the_leader(ha, page, screenshot):
    leader = ha.leader()
    standby = next(i for i in range(len(ha.masters)) if i != leader)
    page.goto("http://%s/#/" % ha.masters[standby])

    expect(page.locator('[data-field="leader"]')).to_have_text(ha.masters[leader])
    expect(page.locator("#banner")).to_contain_text("standby master %s" % ha.masters[standby])
    expect(page.locator('[data-field="agents-active"]')).to_have_attribute(
        "data-value", "2", timeout=FOLLOW_TIMEOUT)
    screenshot("standby")
    page.evaluate("window.__sameDocument = true")

    ha.kill("master-%d" % leader)
    new_leader = ha.leader(timeout=60)
    assert new_leader != leader
    expect(page.locator('[data-field="leader"]')).to_have_text(
        ha.masters[new_leader], timeout=FOLLOW_TIMEOUT)
    if new_leader == standby:
        expect(page.locator("#banner")).to_be_hidden()
    else:
        expect(page.locator("#banner")).to_contain_text("standby master")
    expect(page.locator('[data-field="agents-active"]')).to_have_attribute(
        "data-value", "2", timeout=FOLLOW_TIMEOUT)
    assert page.evaluate("window.__sameDocument === true"), "the page was reloaded"
