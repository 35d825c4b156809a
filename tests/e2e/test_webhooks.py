"""Signed outbound webhooks (issue 14) through the real binary: the admin
routes, events from the transactional outbox, Standard Webhooks signatures
checked by that project's own npm library, retries with growing delays, the
timeout, a slow endpoint beside another organisation's, redirects, a huge
answer, rotation, auto-disable, credits.low,
retries by hand, and tenancy. Receivers listen on 127.0.0.1, allowed
through WEBHOOK_ALLOW_NETWORKS (the SSRF rules: test_webhooks_ssrf.py)."""
import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from gemini_standin import FAIL_MARKER, Standin
from jobs_util import Tenant, Worker, submit, wait_for, wait_job
from webhooks_util import (HOOK_ENV, Receiver, Verifier, create_hook, deliveries, event,
                           wait_delivery)


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def verifier():
    v = Verifier()
    yield v
    v.close()


@pytest.fixture
def hooks(server_factory):
    """A server delivering webhooks (its own in-process workers)."""
    def start(**env):
        return server_factory(**dict(HOOK_ENV, WORKER_CONCURRENCY=2, **env))
    return start


def member_headers(db, tenant):
    email = f"member@{tenant.domain}"
    assert db.cli("user", "add", email, "--org", tenant.domain, "--role", "member").returncode == 0
    return {"Authorization": "Bearer " + db.cli("token", email).stdout.strip()}


# ---- the admin routes ---------------------------------------------------------------

def test_crud_secret_shown_once(db, hooks, receiver):
    server = hooks()
    t = Tenant(db)
    r = server.request("POST", "/api/v1/webhooks", headers=t.headers,
                       body={"url": receiver.url(), "events": ["job.completed"],
                             "description": "orders"})
    assert r.status == 201, r.body
    hook = r.json()
    assert r.header("Location") == f"/api/v1/webhooks/{hook['id']}"
    assert hook["secret"].startswith("whsec_") and len(hook["secret"]) == 6 + 44
    assert {k: hook[k] for k in ("url", "events", "description", "enabled", "disabled_reason")} \
        == {"url": receiver.url(), "events": ["job.completed"], "description": "orders",
            "enabled": True, "disabled_reason": None}
    for path in (f"/api/v1/webhooks/{hook['id']}", f"/api/v2/webhooks/{hook['id']}"):
        got = server.get(path, headers=t.headers)
        assert got.status == 200 and "secret" not in got.json()
    page = server.get("/api/v1/webhooks", headers=t.headers).json()
    assert [h["id"] for h in page["items"]] == [hook["id"]] and "secret" not in page["items"][0]

    r = server.request("PATCH", f"/api/v1/webhooks/{hook['id']}", headers=t.headers,
                       body={"events": ["job.failed", "credits.low"], "description": None,
                             "enabled": False})
    assert r.status == 200, r.body
    changed = r.json()
    assert changed["events"] == ["job.failed", "credits.low"] and changed["description"] is None
    assert not changed["enabled"] and changed["disabled_reason"] == "Disabled by an admin."
    r = server.request("PATCH", f"/api/v1/webhooks/{hook['id']}", headers=t.headers,
                       body={"enabled": True})
    assert r.json()["enabled"] and r.json()["disabled_reason"] is None
    assert server.request("DELETE", f"/api/v1/webhooks/{hook['id']}",
                          headers=t.headers).status == 204
    assert server.get(f"/api/v1/webhooks/{hook['id']}", headers=t.headers).status == 404
    assert db.sql("SELECT count(*) FROM webhook_endpoints") == "0"


@pytest.mark.parametrize("body, field", [
    ({"events": ["job.completed"]}, "url"),
    ({"url": "http://127.0.0.1:9/x"}, "events"),
    ({"url": "http://127.0.0.1:9/x", "events": []}, "events"),
    ({"url": "http://127.0.0.1:9/x", "events": ["job.completed", "job.completed"]}, "events"),
    ({"url": "http://127.0.0.1:9/x", "events": ["webhook.test"]}, "events"),
    ({"url": "http://127.0.0.1:9/x", "events": "job.completed"}, "events"),
    ({"url": "http://127.0.0.1:9/x", "events": ["job.failed"], "description": "d" * 501},
     "description"),
    ({"url": "http://127.0.0.1:9/x", "events": ["job.failed"], "secret": "mine"}, "secret"),
    ({"url": 42, "events": ["job.failed"]}, "url"),
    ({"url": "ftp://127.0.0.1/x", "events": ["job.failed"]}, "url"),
    ({"url": "http://user:pw@127.0.0.1:9/x", "events": ["job.failed"]}, "url"),
    ({"url": "http://2130706433:9/x", "events": ["job.failed"]}, "url"),
])
def test_create_validation(db, hooks, body, field):
    server = hooks()
    t = Tenant(db)
    r = server.request("POST", "/api/v1/webhooks", headers=t.headers, body=body)
    assert r.status == 422, r.body
    assert field in [e["field"] for e in r.json()["errors"]], r.body
    assert db.sql("SELECT count(*) FROM webhook_endpoints") == "0"


def test_members_403_strangers_401(db, hooks, receiver):
    server = hooks()
    t = Tenant(db)
    hook = create_hook(server, t, receiver.url())
    m = member_headers(db, t)
    h = hook["id"]
    routes = [("GET", "/api/v1/webhooks", None), ("POST", "/api/v1/webhooks",
                                                  {"url": receiver.url(), "events": ["job.failed"]}),
              ("GET", f"/api/v1/webhooks/{h}", None), ("PATCH", f"/api/v1/webhooks/{h}", {}),
              ("DELETE", f"/api/v1/webhooks/{h}", None),
              ("POST", f"/api/v1/webhooks/{h}/rotate-secret", None),
              ("POST", f"/api/v1/webhooks/{h}/test", None),
              ("GET", f"/api/v1/webhooks/{h}/deliveries", None),
              ("POST", f"/api/v1/webhooks/{h}/deliveries/{h}/retry", None)]
    for method, path, body in routes:
        assert server.request(method, path, headers=m, body=body).status == 403, path
        assert server.request(method, path, body=body).status == 401, path
    assert db.sql("SELECT count(*) FROM webhook_endpoints") == "1"
    assert not receiver.got()


def test_at_most_ten_endpoints_even_when_created_at_once(db, hooks, receiver):
    server = hooks()
    t = Tenant(db)

    def create(i):
        return server.request("POST", "/api/v1/webhooks", headers=t.headers,
                              body={"url": receiver.url(f"/{i}"), "events": ["job.failed"]}).status
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(create, range(14)))
    assert sorted(statuses) == [201] * 10 + [409] * 4, statuses
    assert db.sql("SELECT count(*) FROM webhook_endpoints") == "10"


def test_other_organisation_gets_404_everywhere(db, hooks, receiver):
    server = hooks()
    a, b = Tenant(db), Tenant(db)
    hook = create_hook(server, a, receiver.url())
    r = server.request("POST", f"/api/v1/webhooks/{hook['id']}/test", headers=a.headers)
    assert r.status == 202, r.body
    d = r.json()["id"]
    h = hook["id"]
    for method, path, body in [
            ("GET", f"/api/v1/webhooks/{h}", None),
            ("PATCH", f"/api/v1/webhooks/{h}", {"enabled": False}),
            ("PATCH", f"/api/v1/webhooks/{h}", {"url": receiver.url("/stolen")}),
            ("DELETE", f"/api/v1/webhooks/{h}", None),
            ("POST", f"/api/v1/webhooks/{h}/rotate-secret", None),
            ("POST", f"/api/v1/webhooks/{h}/test", None),
            ("GET", f"/api/v1/webhooks/{h}/deliveries", None),
            ("POST", f"/api/v1/webhooks/{h}/deliveries/{d}/retry", None),
            ("GET", f"/api/v2/webhooks/{h}", None)]:
        r = server.request(method, path, headers=b.headers, body=body)
        assert r.status == 404, (method, path, r.body)
    assert server.get("/api/v1/webhooks", headers=b.headers).json()["items"] == []
    got = server.get(f"/api/v1/webhooks/{h}", headers=a.headers).json()
    assert got["enabled"] and got["url"] == receiver.url()
    wait_delivery(server, a, h, "succeeded")
    assert [r["path"] for r in receiver.got()] == ["/hook"]


# ---- events, signatures ------------------------------------------------------------

def tampered(req, what):
    h, body = dict(req["headers"]), req["body"]
    if what == "body":
        body = body.replace(b'"job.', b'"jobs.', 1)
    elif what == "timestamp":
        h["webhook-timestamp"] = str(int(h["webhook-timestamp"]) - 1)
    else:
        h["webhook-id"] = h["webhook-id"][:-1] + ("0" if h["webhook-id"][-1] != "0" else "1")
    return h, body


def test_completed_and_failed_jobs_one_event_each_signed(db, hooks, receiver, verifier):
    standin = Standin()
    try:
        server = hooks(**standin.env(JOB_MAX_ATTEMPTS=2, JOB_RETRY_DELAY_SECONDS=0))
        t = Tenant(db)
        both = create_hook(server, t, receiver.url("/both"))
        failed_only = create_hook(server, t, receiver.url("/failed"), events=["job.failed"])
        off = create_hook(server, t, receiver.url("/off"))
        server.request("PATCH", f"/api/v1/webhooks/{off['id']}", headers=t.headers,
                       body={"enabled": False})
        ok_id = submit(server, t, "A job that completes. It has two sentences.").json()["job_id"]
        bad_id = submit(server, t, f"A job that fails twice: {FAIL_MARKER}.").json()["job_id"]
        assert wait_job(server, t, ok_id)["status"] == "completed"
        assert wait_job(server, t, bad_id)["status"] == "failed"
        got = receiver.wait(2, "/both")
        receiver.wait(1, "/failed")
        time.sleep(1.0)  # nothing more comes
    finally:
        standin.close()
    by_type = {event(r)["type"]: r for r in receiver.got("/both")}
    assert len(receiver.got("/both")) == 2 and set(by_type) == {"job.completed", "job.failed"}
    assert [event(r)["type"] for r in receiver.got("/failed")] == ["job.failed"]
    assert not receiver.got("/off")
    done, failed = event(by_type["job.completed"]), event(by_type["job.failed"])
    assert done["data"]["id"] == ok_id and done["data"]["status"] == "completed"
    assert done["data"]["output"]["summary"] and done["organisation_id"] == t.org_id
    assert failed["data"]["id"] == bad_id and failed["data"]["status"] == "failed"
    assert failed["data"]["attempt_count"] == 2 and failed["data"]["error_message"]
    assert set(done) == {"id", "type", "created_at", "organisation_id", "data"}
    # the v1 Job, exactly as the API shows it
    assert set(done["data"]) == set(server.get(f"/api/v1/jobs/{ok_id}", headers=t.headers).json())
    for r in got:
        assert r["headers"]["webhook-id"] == event(r)["id"] and event(r)["id"].startswith("evt_")
        assert r["headers"]["content-type"] == "application/json"
        assert abs(int(r["headers"]["webhook-timestamp"]) - r["t"]) < 5
    # Standard Webhooks' own library accepts every signature ...
    assert verifier.verify_all([(both["secret"], r["headers"], r["body"]) for r in got]) \
        == ["ok", "ok"]
    assert verifier.verify(failed_only["secret"], receiver.got("/failed")[0]) == "ok"
    # ... and refuses a tampered body, timestamp or id, and another endpoint's secret
    r = by_type["job.completed"]
    checks = [(both["secret"],) + tampered(r, w) for w in ("body", "timestamp", "id")]
    checks.append((failed_only["secret"], r["headers"], r["body"]))
    assert all(v.startswith("fail") for v in verifier.verify_all(checks))
    # the outbox: one event per final state per organisation, its deliveries fanned out
    assert db.sql("SELECT string_agg(type, ',' ORDER BY type) FROM webhook_events") \
        == "job.completed,job.failed"
    assert db.sql("SELECT count(*) FROM webhook_deliveries") == "3"


def test_retried_with_growing_delays_until_2xx(db, hooks, receiver, verifier):
    server = hooks()
    t = Tenant(db)
    hook = create_hook(server, t, receiver.url())
    receiver.plan("/hook", 500, 503, 204)
    submit(server, t)
    got = receiver.wait(3, timeout=30)
    items = wait_delivery(server, t, hook["id"], "succeeded")
    time.sleep(0.5)
    assert len(receiver.got()) == 3
    gaps = [got[1]["t"] - got[0]["t"], got[2]["t"] - got[1]["t"]]
    # WEBHOOK_RETRY_BASE_MS=300: about 0.3 s, then about 1.2 s (x4, +-10%)
    assert 0.25 <= gaps[0] < 1.0 and gaps[1] >= 1.0 and gaps[1] > 2 * gaps[0], gaps
    assert len({r["headers"]["webhook-id"] for r in got}) == 1  # one event, three attempts
    assert {r["body"] for r in got} == {got[0]["body"]}
    assert verifier.verify_all([(hook["secret"], r["headers"], r["body"]) for r in got]) \
        == ["ok"] * 3
    d = items[0]
    assert d["status"] == "succeeded" and d["next_attempt_at"] is None
    assert [a["status_code"] for a in d["attempts"]] == [500, 503, 204]
    assert "answered 500" in d["attempts"][0]["error"] and d["attempts"][2]["error"] is None


def test_hanging_receiver_cut_at_the_timeout(db, hooks, receiver):
    server = hooks()  # WEBHOOK_TIMEOUT_SECONDS=2
    t = Tenant(db)
    hook = create_hook(server, t, receiver.url())
    receiver.plan("/hook", ("hang", 8))
    submit(server, t)
    receiver.wait(2, timeout=30)  # cut, then tried again
    d = wait_delivery(server, t, hook["id"], "succeeded")[0]
    first = d["attempts"][0]
    assert first["status_code"] is None and "within 2 s" in first["error"]
    assert 1900 <= first["duration_ms"] < 4000, first


def test_slow_endpoint_never_delays_another_organisations_delivery(db, hooks, receiver):
    server = hooks(WEBHOOK_TIMEOUT_SECONDS=10)
    a, b = Tenant(db), Tenant(db)
    create_hook(server, a, receiver.url("/slow"))
    hook_b = create_hook(server, b, receiver.url("/hook"))
    receiver.plan("/slow", ("hang", 8), ("hang", 8), ("hang", 8))
    for _ in range(3):
        submit(server, a)
    slow = receiver.wait(1, "/slow")[0]
    submit(server, b)
    # B's event arrives while A's endpoint still holds its first delivery,
    # which is the only one of A's in flight (at most one per endpoint)
    fast = receiver.wait(1, "/hook", timeout=7.5)[0]
    assert fast["t"] - slow["t"] < 8, (fast["t"], slow["t"])
    assert len(receiver.got("/slow")) == 1
    wait_delivery(server, b, hook_b["id"], "succeeded")


def test_redirect_is_a_failure_not_followed(db, hooks, receiver):
    server = hooks(WEBHOOK_MAX_ATTEMPTS=1)
    t = Tenant(db)
    hook = create_hook(server, t, receiver.url())
    receiver.plan("/hook", 302)
    submit(server, t)
    d = wait_delivery(server, t, hook["id"], "failed")[0]
    assert len(d["attempts"]) == 1 and d["attempts"][0]["status_code"] == 302
    assert "redirects are not followed" in d["attempts"][0]["error"]
    time.sleep(0.5)
    assert [r["path"] for r in receiver.got()] == ["/hook"]  # never /elsewhere


def test_ten_mib_answer_cut_at_64_kib(db, hooks, receiver):
    server = hooks()
    t = Tenant(db)
    hook = create_hook(server, t, receiver.url())
    receiver.plan("/hook", ("big", 10 * 1024 * 1024))
    submit(server, t)
    d = wait_delivery(server, t, hook["id"], "succeeded")[0]
    a = d["attempts"][0]
    assert a["status_code"] == 200 and a["response_excerpt"] == "x" * 1024
    line = wait_for(lambda: [l for l in server.log_lines() if l.get("msg") == "webhook delivered"],
                    10, what="the delivery's log line")[0]
    assert line["response_bytes"] == 65536 and line["response_truncated"] == "true"
    # the rest was never read: the receiver could not send it all
    wait_for(lambda: receiver.got()[0]["sent"] < 10 * 1024 * 1024, 10, what="the cut")


# ---- rotation, auto-disable, credits.low, retry ----------------------------------------

def test_rotation_both_secrets_during_overlap_then_only_the_new(db, hooks, receiver, verifier):
    server = hooks()
    t = Tenant(db)
    hook = create_hook(server, t, receiver.url())
    old = hook["secret"]

    def test_event(n):
        r = server.request("POST", f"/api/v1/webhooks/{hook['id']}/test", headers=t.headers)
        assert r.status == 202 and r.json()["event_type"] == "webhook.test", r.body
        return receiver.wait(n)[n - 1]

    first = test_event(1)
    assert event(first)["data"] == {"webhook_id": hook["id"]}
    assert verifier.verify(old, first) == "ok"
    r = server.request("POST", f"/api/v1/webhooks/{hook['id']}/rotate-secret", headers=t.headers)
    assert r.status == 200, r.body
    new = r.json()["secret"]
    assert new != old and new.startswith("whsec_") and r.json()["previous_secret_expires_at"]
    during = test_event(2)
    assert len(during["headers"]["webhook-signature"].split(" ")) == 2
    assert [verifier.verify(s, during) for s in (new, old)] == ["ok", "ok"]
    # the 24 hours pass
    db.sql("UPDATE webhook_endpoints SET previous_secret_expires_at = now() - interval '1 second'")
    after = test_event(3)
    assert len(after["headers"]["webhook-signature"].split(" ")) == 1
    assert verifier.verify(new, after) == "ok"
    assert verifier.verify(old, after).startswith("fail")


def test_endpoint_failing_for_a_day_is_disabled_with_a_reason(db, hooks, receiver):
    server = hooks(WEBHOOK_MAX_ATTEMPTS=1)
    t = Tenant(db)
    hook = create_hook(server, t, receiver.url())
    receiver.plan("/hook", 500, 500)
    h = hook["id"]
    assert server.request("POST", f"/api/v1/webhooks/{h}/test", headers=t.headers).status == 202
    wait_delivery(server, t, h, "failed")
    assert db.sql("SELECT failing_since IS NOT NULL FROM webhook_endpoints") == "t"
    # every delivery has failed for 25 hours now
    db.sql("UPDATE webhook_endpoints SET failing_since = now() - interval '25 hours'")
    assert server.request("POST", f"/api/v1/webhooks/{h}/test", headers=t.headers).status == 202
    got = wait_for(lambda: (lambda w: w if not w["enabled"] else None)(
        server.get(f"/api/v1/webhooks/{h}", headers=t.headers).json()), 20, what="disabled")
    assert got["disabled_reason"].startswith("Every delivery failed for 24 hours (since ")
    assert "answered 500" in got["disabled_reason"]
    assert server.request("POST", f"/api/v1/webhooks/{h}/test", headers=t.headers).status == 409
    job_id = submit(server, t).json()["job_id"]
    wait_job(server, t, job_id)  # completed: no delivery is queued for a disabled endpoint
    r = server.request("PATCH", f"/api/v1/webhooks/{h}", headers=t.headers, body={"enabled": True})
    assert r.json()["enabled"] and r.json()["disabled_reason"] is None
    assert db.sql("SELECT failing_since IS NULL FROM webhook_endpoints") == "t"
    assert len(deliveries(server, t, h)) == 2


def test_credits_low_once_when_the_balance_crosses_the_threshold(db, hooks, receiver, verifier):
    server = hooks(CREDITS_LOW_THRESHOLD=50)
    t = Tenant(db, credits=65)
    hook = create_hook(server, t, receiver.url(), events=["credits.low"])
    for _ in range(3):  # 65 -> 55 -> 45 (crosses 50) -> 35
        assert submit(server, t).status == 202
    got = receiver.wait(1)
    time.sleep(1.0)
    assert len(receiver.got()) == 1
    e = event(got[0])
    assert e["type"] == "credits.low" and e["data"] == {"balance": 45}
    assert verifier.verify(hook["secret"], got[0]) == "ok"


def test_deliveries_listed_and_retried_by_hand(db, hooks, receiver):
    server = hooks(WEBHOOK_MAX_ATTEMPTS=1)
    t, other = Tenant(db), Tenant(db)
    hook = create_hook(server, t, receiver.url())
    receiver.plan("/hook", 500)
    submit(server, t)
    d = wait_delivery(server, t, hook["id"], "failed")[0]
    assert d["event_type"] == "job.completed" and d["next_attempt_at"] is None
    assert server.request("POST", f"/api/v1/webhooks/{hook['id']}/deliveries/{d['id']}/retry",
                          headers=other.headers).status == 404
    r = server.request("POST", f"/api/v1/webhooks/{hook['id']}/deliveries/{d['id']}/retry",
                       headers=t.headers)
    assert r.status == 202 and r.json()["status"] == "pending", r.body
    d = wait_delivery(server, t, hook["id"], "succeeded")[0]
    assert [a["status_code"] for a in d["attempts"]] == [500, 204]
    got = receiver.got()
    assert len(got) == 2 and got[0]["headers"]["webhook-id"] == got[1]["headers"]["webhook-id"]
    # lists: newest first, paged, filtered
    assert server.request("POST", f"/api/v1/webhooks/{hook['id']}/test",
                          headers=t.headers).status == 202
    wait_delivery(server, t, hook["id"], "succeeded", n=2)
    items = deliveries(server, t, hook["id"])
    assert [i["event_type"] for i in items] == ["webhook.test", "job.completed"]
    page = server.get(f"/api/v1/webhooks/{hook['id']}/deliveries?limit=1", headers=t.headers).json()
    assert len(page["items"]) == 1 and page["next_cursor"]
    nxt = server.get(f"/api/v1/webhooks/{hook['id']}/deliveries?limit=1&cursor="
                     f"{page['next_cursor']}", headers=t.headers).json()
    assert nxt["items"][0]["id"] == items[1]["id"]
    assert deliveries(server, t, hook["id"], status="failed") == []
    assert server.get(f"/api/v1/webhooks/{hook['id']}/deliveries?status=nope",
                      headers=t.headers).status == 422


def test_old_events_pruned_with_their_deliveries(db, hooks, receiver):
    server = hooks(JOB_RETENTION_DAYS=1)
    t = Tenant(db)
    hook = create_hook(server, t, receiver.url())
    for _ in range(2):
        assert server.request("POST", f"/api/v1/webhooks/{hook['id']}/test",
                              headers=t.headers).status == 202
    wait_delivery(server, t, hook["id"], "succeeded", n=2)
    db.sql("UPDATE webhook_events SET created_at = now() - interval '2 days' WHERE id = "
           "(SELECT id FROM webhook_events ORDER BY created_at LIMIT 1)")
    later = hooks(JOB_RETENTION_DAYS=1)  # its workers prune two seconds after they start
    wait_for(lambda: db.sql("SELECT count(*) FROM webhook_events") == "1", 20,
             what="the old event pruned")
    assert db.sql("SELECT count(*) FROM webhook_deliveries") == "1"
    assert any(l.get("msg") == "pruned webhook events" for l in later.log_lines() +
               server.log_lines())


# ---- trace context ------------------------------------------------------------------

TID, PARENT = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


def test_deliveries_carry_the_trace_of_what_caused_them(db, hooks, receiver):
    """A job submitted with a traceparent: its job.completed delivery logs
    under that trace id and sends it on (a new span); a test event sent with
    another traceparent carries that one."""
    server = hooks(JOB_POLL_INTERVAL_MS=200)
    t = Tenant(db)
    hook = create_hook(server, t, receiver.url("/traced"), events=["job.completed"])
    r = server.request("POST", "/api/v1/summarise", body={"text": "Traces reach webhooks. Yes."},
                       headers={**t.headers, "traceparent": f"00-{TID}-{PARENT}-01"})
    assert r.status == 202, r.body
    job_id = r.json()["job_id"]
    got = receiver.wait(1, "/traced")
    version, trace_id, parent, flags = got[0]["headers"]["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", TID, "01") and parent != PARENT
    assert event(got[0])["data"]["id"] == job_id

    other = "0af7651916cd43dd8448eb211c80319c"
    r = server.request("POST", f"/api/v1/webhooks/{hook['id']}/test", headers={
        **t.headers, "traceparent": f"00-{other}-{PARENT}-01"})
    assert r.status in (200, 201, 202), r.body
    got = receiver.wait(2, "/traced")
    assert got[1]["headers"]["traceparent"].split("-")[1] == other

    wait_for(lambda: len([l for l in server.log_lines() if l.get("msg") == "webhook delivered"])
             >= 2, 30, what="two delivery log lines")
    lines = [l for l in server.log_lines() if l.get("msg") == "webhook delivered"]
    assert {l.get("trace_id") for l in lines} == {TID, other}, lines


# ---- what a delivery costs the database --------------------------------------------

def test_a_delivery_reads_the_same_few_rows_however_many_came_before(db, receiver):
    """A worker delivers a backlog of 3,000 events; a second one then
    delivers 500 more in waves, each as it comes: that phase reads a few
    rows of webhook_deliveries per delivery, not the history. Two causes
    made it read the history: the claim pushed run_at (a key of the due
    index) past the lease, writing a new entry into the leaf page its own
    scan had read, and a page changed under a scan keeps none of the scan's
    marks of dead entries, so finished deliveries stayed in the index for
    every later claim (the lease has its own column since migration 0023);
    and the write-back, its batch taken for 100 rows, found a scan of the
    table as cheap as the primary key (its LIMIT now says the batch's
    size). Autovacuum is off for the table, as it is in effect for a minute
    anywhere."""
    t = Tenant(db)
    db.sql("ALTER TABLE webhook_deliveries SET (autovacuum_enabled = false)")
    db.sql("INSERT INTO webhook_endpoints (organisation_id, url, events, secret) "
           f"VALUES ('{t.org_id}', '{receiver.url()}', ARRAY['job.completed'], "
           "decode(md5('a') || md5('b'), 'hex'))")

    def events(n):
        db.sql("WITH ev AS (INSERT INTO webhook_events (organisation_id, id, type, body) "
               f"SELECT '{t.org_id}', gen_random_uuid(), 'job.completed', "
               f"'{{\"n\": ' || g || '}}' FROM generate_series(1, {n}) g "
               "RETURNING organisation_id, id) "
               "INSERT INTO webhook_deliveries (organisation_id, endpoint_id, event_id) "
               "SELECT ev.organisation_id, e.id, ev.id FROM ev JOIN webhook_endpoints e "
               "ON e.organisation_id = ev.organisation_id; NOTIFY nexus_webhooks")

    rows = ("SELECT s.seq_tup_read + coalesce(s.idx_tup_fetch, 0) + (SELECT sum(i.idx_tup_read) "
            "FROM pg_stat_user_indexes i WHERE i.relid = s.relid) "
            "FROM pg_stat_user_tables s WHERE s.relname = 'webhook_deliveries'")

    def phase(work):
        """Rows of webhook_deliveries read while a worker does work (the
        test watches the receiver, not the table); the worker's backend
        flushes its statistics as it ends."""
        def settled():
            a = int(db.sql(rows))
            time.sleep(0.5)
            return (a,) if int(db.sql(rows)) == a else None
        before = wait_for(settled, 20, what="the table's statistics")[0]
        w = Worker(db, **HOOK_ENV)
        work()
        assert w.stop() == 0, w.log()
        return wait_for(settled, 20, what="the table's statistics")[0] - before

    backlog, waves, size = 3000, 20, 25
    events(backlog)
    phase(lambda: receiver.wait(backlog, timeout=120))

    def live():
        for k in range(1, waves + 1):
            events(size)
            receiver.wait(backlog + k * size)
    read = phase(live)
    n = waves * size
    assert db.sql("SELECT count(*) FROM webhook_deliveries WHERE status = 'succeeded'") == \
        str(backlog + n)
    assert len(receiver.got()) == backlog + n
    print(f"\n{read} rows of webhook_deliveries read to deliver {n} after {backlog} "
          f"({read / n:.1f} a delivery)")
    # before 0023: about 270 a delivery here, growing with the backlog; now
    # about 17 (the index entries of the wave, each claim's probes)
    assert read < 50 * n, f"{read} rows of webhook_deliveries read for {n} deliveries"
