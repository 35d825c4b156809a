"""SSRF-safe egress of webhooks (issue 14): URLs whose host is, or resolves
to, a loopback, private, link-local, CGNAT or IPv4-mapped address - or is
written as a number - are refused at registration with a 422 naming `url`;
the check runs again at every delivery, on the address actually connected
to, so a worker whose rules are stricter than the server's refuses the
delivery, logs it and does not retry it. (Every range, and the forms that
need no network, are unit-tested in tests/unit/webhooks/test_egress.c.)"""
import pytest

from jobs_util import Tenant, Worker, submit, wait_for, wait_job
from webhooks_util import Receiver, create_hook, wait_delivery

REFUSED = [
    ("http://127.0.0.1:9/hook", "loopback"),
    ("http://[::1]:9/hook", "loopback"),
    ("http://10.0.0.1/hook", "private"),
    ("http://10.255.0.9:8080/hook", "private"),
    ("http://172.16.0.1/hook", "private"),
    ("http://172.31.255.254/hook", "private"),
    ("http://192.168.1.1/hook", "private"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://100.64.0.1/hook", "carrier-grade"),
    ("http://[::ffff:127.0.0.1]:9/hook", "IPv4-mapped"),
    ("http://[64:ff9b::a9fe:a9fe]/hook", "NAT64"),
    ("http://localhost:9/hook", "loopback"),          # a name resolving to one
    ("http://2130706433/hook", "dotted decimal"),      # 127.0.0.1 as one number
    ("http://0x7f.0.0.1/hook", "dotted decimal"),
    ("http://017700000001/hook", "dotted decimal"),
    ("http://user:secret@example.com/hook", "user name or password"),
    ("http://@example.com/hook", "user name or password"),
    ("gopher://example.com/hook", "http or https"),
]


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.mark.parametrize("url, why", REFUSED)
def test_registration_refused(db, server_factory, url, why):
    server = server_factory(WEBHOOK_ALLOW_HTTP="true")
    t = Tenant(db)
    r = server.request("POST", "/api/v1/webhooks", headers=t.headers,
                       body={"url": url, "events": ["job.completed"]})
    assert r.status == 422, r.body
    errors = r.json()["errors"]
    assert [e["field"] for e in errors] == ["url"] and why in errors[0]["message"], errors
    assert db.sql("SELECT count(*) FROM webhook_endpoints") == "0"


def test_https_only_unless_allowed_and_changes_checked_too(db, server_factory, receiver):
    strict = server_factory(WEBHOOK_ALLOW_NETWORKS="127.0.0.0/8")
    t = Tenant(db)
    r = strict.request("POST", "/api/v1/webhooks", headers=t.headers,
                       body={"url": receiver.url(), "events": ["job.completed"]})
    assert r.status == 422 and "https" in r.json()["errors"][0]["message"], r.body
    lax = server_factory(WEBHOOK_ALLOW_NETWORKS="127.0.0.0/8", WEBHOOK_ALLOW_HTTP="true")
    hook = create_hook(lax, t, receiver.url())
    for url in ("http://10.1.1.1/x", "http://[::ffff:127.0.0.1]:9/x", "http://2130706433:9/x"):
        r = lax.request("PATCH", f"/api/v1/webhooks/{hook['id']}", headers=t.headers,
                        body={"url": url})
        assert r.status == 422 and r.json()["errors"][0]["field"] == "url", r.body
    assert db.sql("SELECT url FROM webhook_endpoints") == receiver.url()


def test_own_listening_address_refused_even_when_allowed(db, server_factory):
    server = server_factory(WEBHOOK_ALLOW_NETWORKS="127.0.0.0/8", WEBHOOK_ALLOW_HTTP="true")
    t = Tenant(db)
    r = server.request("POST", "/api/v1/webhooks", headers=t.headers,
                       body={"url": f"http://127.0.0.1:{server.port}/api/v1/me",
                             "events": ["job.completed"]})
    assert r.status == 422 and "own address" in r.json()["errors"][0]["message"], r.body


# URLs an endpoint may hold from before a rule (or a setting) changed:
# written as the owner, then refused at delivery - no request leaves
STORED = [
    ("http://10.0.0.1:9/x", "10.0.0.1, a private address"),
    ("http://172.16.0.1:9/x", "172.16.0.1, a private address"),
    ("http://192.168.1.1:9/x", "192.168.1.1, a private address"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254, a link-local address"),
    ("http://100.64.0.1:9/x", "100.64.0.1, a shared (carrier-grade NAT) address"),
    ("http://[::ffff:127.0.0.1]:9/x", "::ffff:127.0.0.1, an IPv4-mapped address"),
    ("http://2130706433:9/x", "dotted decimal"),
    ("http://user:secret@127.0.0.1:9/x", "user name or password"),
]


def test_delivery_refused_at_the_worker_logged_not_retried(db, server_factory, receiver):
    # the API allows loopback receivers; the worker that delivers does not
    allowed = {"WEBHOOK_ALLOW_HTTP": "true", "WEBHOOK_ALLOW_NETWORKS": "127.0.0.0/8,::1/128"}
    server = server_factory(**allowed)
    t = Tenant(db)
    hooks = [(create_hook(server, t, receiver.url("/ip"))["id"], "127.0.0.1, a loopback address"),
             (create_hook(server, t, f"http://[::1]:{receiver.port}/v6")["id"],
              "::1, a loopback address"),
             (create_hook(server, t, f"http://localhost:{receiver.port}/name")["id"], "loopback")]
    for url, why in STORED:
        hooks.append((db.sql("INSERT INTO webhook_endpoints (organisation_id, url, events, secret) "
                             f"VALUES ('{t.org_id}', '{url}', ARRAY['job.completed'], "
                             "decode(repeat('ab', 32), 'hex')) RETURNING id").splitlines()[0], why))
    w = Worker(db, WEBHOOK_ALLOW_HTTP="true", JOB_POLL_INTERVAL_MS=100)
    try:
        wait_job(server, t, submit(server, t).json()["job_id"])
        for hook, why in hooks:
            d = wait_delivery(server, t, hook, "failed", timeout=20)[0]
            assert len(d["attempts"]) == 1, d  # not retried (WEBHOOK_MAX_ATTEMPTS is 8)
            a = d["attempts"][0]
            assert a["status_code"] is None and a["error"].startswith("refused") and why in \
                a["error"], (hook, a)
        lines = wait_for(lambda: [l for l in w.log_lines()
                                  if l.get("msg") == "webhook delivery failed for good"], 10,
                         what="the refusals logged")
        assert all("refused" in l["error"] for l in lines)
    finally:
        assert w.close() == 0
    assert receiver.got() == []
