"""The dashboard in a real browser (issue 16): Debian's chromium driven by
playwright-core (tests/e2e/browser/driver.mjs, one browser for the module)
against the real binary and database. Sign-in through the OpenID stand-in
and through a login link, the balance, a summarise watched to completion,
the chart, member and admin views, a 402, logout, webhooks (when the server
has them) and the rate-limit panel (when it reports one); axe-core on every
page in both themes at desktop size and 375 px; no console error or CSP
violation anywhere. Screenshots go to build/test-artifacts/dashboard/.

Skipped, with the reason, where chromium or the driver's npm packages are
missing (`make test` installs both)."""
import http.server
import json
import os
import select
import shutil
import subprocess
import threading
import time
import urllib.parse

import pytest

import harness
from auth_helpers import bearer, make_org, make_user, provider  # noqa: F401
from conftest import Database

HERE = os.path.dirname(os.path.abspath(__file__))
DRIVER_DIR = os.path.join(HERE, "browser")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = os.path.join(harness.ROOT, "build", "test-artifacts", "dashboard")
TEXT = ("NexusAPI runs jobs in the background. Credits pay for every job. "
        "Failed jobs are refunded in full. The dashboard shows all of it.")


def _missing():
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} is not installed (apt-get install chromium; make test does)"
    if not shutil.which("node"):
        return "node is not installed"
    if not os.path.isdir(os.path.join(DRIVER_DIR, "node_modules", "playwright-core")):
        return "tests/e2e/browser has no node_modules (make test runs npm ci there)"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=str(_missing()))


class Driver:
    """The node process that holds the browser."""

    def __init__(self):
        self.proc = subprocess.Popen(["node", "driver.mjs"], cwd=DRIVER_DIR, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=dict(os.environ, CHROMIUM=CHROMIUM))
        self.n = 0
        hello = self._read(120)
        assert hello.get("ready"), hello

    def _read(self, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            r, _, _ = select.select([self.proc.stdout], [], [], 1)
            if r:
                line = self.proc.stdout.readline()
                if not line:
                    break
                return json.loads(line)
            if self.proc.poll() is not None:
                break
        raise AssertionError(f"browser driver gave no answer: {self.proc.poll()} "
                             f"{self.proc.stderr.read() if self.proc.poll() is not None else ''}")

    def run(self, scenario, timeout=180, **params):
        self.n += 1
        params.setdefault("artifacts", ARTIFACTS)
        self.proc.stdin.write(json.dumps({"id": self.n, "scenario": scenario, "params": params}) + "\n")
        self.proc.stdin.flush()
        answer = self._read(timeout)
        assert answer.get("ok"), answer.get("error")
        assert answer["console"] == [], f"console errors in {scenario}: {answer['console']}"
        return answer["data"]

    def close(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Receiver:
    """A webhook endpoint on 127.0.0.1 that answers 200 and records bodies."""

    def __init__(self):
        self.bodies = []
        rec = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                rec.bodies.append(self.rfile.read(n))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def driver():
    d = Driver()
    yield d
    d.close()


@pytest.fixture(scope="module")
def site(pg):
    """One database and server for the module: PUBLIC_URL is the server's own
    origin, as the browser sees it, so its writes pass the Origin check."""
    from oidc_provider import Provider
    prov = Provider()
    db = Database(pg)
    port = harness.free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(db.env, PUBLIC_URL=base, WORKER_CONCURRENCY="1", JOB_POLL_INTERVAL_MS="200",
               WEBHOOK_ALLOW_HTTP="true", WEBHOOK_ALLOW_NETWORKS="127.0.0.0/8",
               RATE_LIMIT_REQUESTS="100000", **prov.env())
    srv = harness.Server(env, port=port)
    db.env = dict(db.env, PUBLIC_URL=base)
    org = make_org(db, "Acme Ltd", "acme.test")
    db.cli("credits", "grant", "acme.test", "100", "--reason", "opening credits")
    ids = {"admin": make_user(db, org, "ada@acme.test", "admin"),
           "member": make_user(db, org, "bob@acme.test", "member")}
    yield {"db": db, "server": srv, "base": base, "org": org, "ids": ids, "provider": prov}
    prov.close()
    log = srv.log()
    rc = srv.close()
    assert rc == 0, f"server exited with {rc}:\n{log[-4000:]}"


def link(site, email, *extra):
    r = site["db"].cli("login-link", email, *extra)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def token(site, email):
    r = site["db"].cli("token", email)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_sign_in_with_google_through_the_openid_stand_in(driver, site):
    site["provider"].next_claims = {"sub": "g-carol", "email": "carol@carol.test",
                                    "hd": "carol.test", "name": "Carol"}
    d = driver.run("signin_google", base=site["base"])
    assert d["violations"] == [], d["violations"]
    assert d["url"].rstrip("/") == site["base"]
    assert d["balance"] == "100"  # a new Workspace organisation's sign-up credits


def test_sign_in_with_a_login_link_once(driver, site):
    url = link(site, "ada@acme.test")
    d = driver.run("signin_link", base=site["base"], link=url)
    assert d["balance"] == site["db"].sql(
        f"SELECT balance FROM org_credits WHERE organisation_id = '{site['org']}'")
    assert urllib.parse.urlsplit(d["url"]).query == ""  # the token is gone from the address bar
    again = driver.run("link_refused", base=site["base"], link=url)
    assert "already used" in again["message"]
    assert urllib.parse.urlsplit(again["url"]).query == ""


@pytest.mark.parametrize("mobile,dark", [(False, False), (False, True), (True, False), (True, True)],
                         ids=["desktop-light", "desktop-dark", "375px-light", "375px-dark"])
def test_every_page_is_accessible_and_captured(driver, site, mobile, dark):
    d = driver.run("tour", base=site["base"], link=link(site, "ada@acme.test"),
                   mobile=mobile, dark=dark, expect_status=[401, 404])
    assert d["violations"] == {p: [] for p in d["violations"]}, json.dumps(d["violations"], indent=1)
    assert d["first_tab"] == "Skip to content" and d["skip_to"] == "main"


def test_summarise_is_watched_to_completion_and_charted(driver, site):
    db = site["db"]
    before = int(db.sql(f"SELECT balance FROM org_credits WHERE organisation_id = '{site['org']}'"))
    spent_before = int(db.sql(
        "SELECT coalesce(sum(amount), 0) FROM credit_transactions WHERE type = 'DEDUCTION' "
        f"AND organisation_id = '{site['org']}' AND created_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"))
    d = driver.run("summarise", base=site["base"], link=link(site, "ada@acme.test"), text=TEXT)
    assert d["seen"][-1] == "completed", d
    assert d["loads"] == 1, d  # no full-page reload
    assert d["summary"] and d["summary"] in TEXT, d
    assert int(d["spent"]) == spent_before + 10, d
    assert d["canvas"] and d["canvas"]["width"] > 200 and d["canvas"]["height"] > 100, d
    assert int(d["balance"]) == before - 10, d


def test_member_sees_no_admin_controls(driver, site):
    d = driver.run("member_view", base=site["base"], link=link(site, "bob@acme.test"),
                   expect_status=[401, 403])
    assert d["members"] >= 2
    assert d["selects"] == 0 and d["removes"] == 0
    assert d["nameDisabled"] and d["saves"] == 0
    assert "Only admins manage webhooks." in d["webhooks"]


def test_admin_changes_a_role(driver, site):
    db = site["db"]
    dave = make_user(db, site["org"], "dave@acme.test", "member")
    d = driver.run("change_role", base=site["base"], link=link(site, "ada@acme.test"),
                   who="dave", role="admin")
    assert d["value"] == "admin"
    assert db.sql(f"SELECT role FROM users WHERE id = '{dave}'") == "admin"


def test_payment_required_is_a_readable_message(driver, site):
    db = site["db"]
    org = make_org(db, "Poor", "poor.test")
    make_user(db, org, "pat@poor.test", "admin")
    srv = site["server"]
    api = srv.request("POST", "/api/v1/summarise", body={"text": "x"},
                      headers=bearer(token(site, "pat@poor.test")))
    assert api.status == 402
    d = driver.run("payment", base=site["base"], link=link(site, "pat@poor.test"),
                   expect_status=[401, 402])
    assert d["message"] == api.json()["detail"]
    assert "{" not in d["message"]


def test_logout_clears_the_session(driver, site):
    d = driver.run("logout", base=site["base"], link=link(site, "ada@acme.test"))
    assert d["cookies"] == 0


def test_webhooks_page_for_a_member(driver, site):
    d = driver.run("webhooks_page", base=site["base"], link=link(site, "bob@acme.test"),
                   expect_status=[403])
    assert "Only admins manage webhooks." in d["text"]
    assert "New endpoint" not in d["text"]  # no admin controls


def test_webhook_test_delivery(driver, site):
    rec = Receiver()
    try:
        d = driver.run("webhook_test", base=site["base"], link=link(site, "ada@acme.test"),
                       url=rec.url)
        assert d["secret"].startswith("whsec_")
        assert any(json.loads(b)["type"] == "webhook.test" for b in rec.bodies)
    finally:
        rec.close()


def test_rate_limit_panel(driver, site):
    org = site["server"].get("/api/v1/organisation", headers=bearer(token(site, "ada@acme.test")))
    assert org.json()["rate_limit"]["limit"] == 100000
    d = driver.run("rate_limit", base=site["base"], link=link(site, "ada@acme.test"))
    assert "requests used" in d["text"]
