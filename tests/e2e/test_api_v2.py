"""API v2 beside v1 through the real binary: POST /api/v2/jobs and the v2
Job shape, one store read by both versions, every other v1 resource under
/api/v2 unchanged, tenant isolation in both, and the v1 deprecation
headers exactly when they are configured."""
import uuid

import pytest

from jobs_util import Tenant, Worker, submit, wait_for

V2_JOB_KEYS = {"id", "type", "status", "attempts", "credits_charged", "result", "error",
               "metadata", "created_at", "started_at", "completed_at", "failed_at",
               "updated_at"}


def post_job(server, tenant, body):
    return server.request("POST", "/api/v2/jobs", body=body, headers=tenant.headers)


def field_errors(r):
    assert r.status == 422, r.body
    p = r.json()
    assert r.header("Content-Type") == "application/problem+json"
    return {e["field"] for e in p["errors"]}


@pytest.fixture
def workers(db):
    started = []

    def start(**env):
        w = Worker(db, **env)
        started.append(w)
        return w

    yield start
    for w in started:
        assert w.close() == 0, w.log()


def test_v2_job_lifecycle(db, server_factory, workers):
    server = server_factory()
    t = Tenant(db, credits=100)
    text = "PostgreSQL holds the queue. Workers claim jobs. Failed jobs are refunded."
    r = post_job(server, t, {"type": "summarise", "input": {"text": text},
                             "metadata": {"ticket": "T-42", "a": "b"}})
    assert r.status == 202, r.body
    j = r.json()
    assert set(j) == V2_JOB_KEYS
    assert j["type"] == "summarise" and j["status"] == "pending"
    assert j["attempts"] == {"count": 0, "max": 3}
    assert j["credits_charged"] == 10 and j["result"] is None and j["error"] is None
    assert list(j["metadata"].items()) == [("ticket", "T-42"), ("a", "b")]  # as given
    assert r.header("Location") == f"/api/v2/jobs/{j['id']}"
    assert t.balance() == 90

    workers(JOB_POLL_INTERVAL_MS=200)

    def done():
        g = server.get(f"/api/v2/jobs/{j['id']}", headers=t.headers)
        assert g.status == 200, g.body
        return g.json() if g.json()["status"] == "completed" else None
    got = wait_for(done, 60, what="the v2 job to complete")
    assert set(got) == V2_JOB_KEYS
    assert got["attempts"]["count"] == 1
    assert got["result"]["provider"] == "local" and got["result"]["summary"]
    assert got["completed_at"] and got["error"] is None
    assert list(got["metadata"].items()) == [("ticket", "T-42"), ("a", "b")]

    # the same job through v1: v1's shape, same output
    v1 = server.get(f"/api/v1/jobs/{j['id']}", headers=t.headers)
    assert v1.status == 200
    assert v1.json()["job_type"] == "summarise" and v1.json()["output"] == got["result"]
    assert "metadata" not in v1.json()


def test_v2_analyse_and_lists(db, server):
    t = Tenant(db, credits=100)
    a = post_job(server, t, {"type": "analyse", "input": {"text": "Good news. Great work."}})
    assert a.status == 202 and a.json()["credits_charged"] == 25
    assert a.json()["metadata"] == {}
    s = submit(server, t, "Submitted through v1.")  # v1 submission
    assert s.status == 202
    page = server.get("/api/v2/jobs", headers=t.headers).json()
    assert [i["id"] for i in page["items"]] == [s.json()["job_id"], a.json()["id"]]
    assert all(set(i) == V2_JOB_KEYS for i in page["items"])
    only = server.get("/api/v2/jobs?type=analyse", headers=t.headers).json()["items"]
    assert [i["id"] for i in only] == [a.json()["id"]]
    assert field_errors(server.get("/api/v2/jobs?type=nope", headers=t.headers)) == {"type"}
    # v1 lists both too, in v1's shape (and ignores ?type=, as it always has)
    v1 = server.get("/api/v1/jobs?type=analyse", headers=t.headers).json()["items"]
    assert {i["id"] for i in v1} == {s.json()["job_id"], a.json()["id"]}
    assert all("job_type" in i for i in v1)
    # a v1 job is readable under v2
    g = server.get(f"/api/v2/jobs/{s.json()['job_id']}", headers=t.headers)
    assert g.status == 200 and g.json()["type"] == "summarise"


def test_v2_validation_debits_nothing(db, server):
    t = Tenant(db, credits=100)
    assert field_errors(post_job(server, t, {"input": {"text": "x"}})) == {"type"}
    r = post_job(server, t, {"type": "translate", "input": {"text": "x"}})
    assert field_errors(r) == {"type"}
    assert "summarise" in r.json()["errors"][0]["message"]
    assert field_errors(post_job(server, t, {"type": "summarise"})) == {"input"}
    assert field_errors(post_job(server, t, {"type": "summarise", "input": "x"})) == {"input"}
    assert field_errors(post_job(server, t, {"type": "summarise", "input": {}})) == {"input.text"}
    assert field_errors(post_job(server, t, {"type": "summarise",
                                             "input": {"text": ""}})) == {"input.text"}
    assert field_errors(post_job(server, t, {"type": "summarise",
                                             "input": {"text": "x" * 100001}})) == {"input.text"}
    assert field_errors(post_job(server, t, {"type": "summarise", "input": {"text": "x"},
                                             "colour": "red"})) == {"colour"}
    bad_metadata = [
        [],
        "x",
        {f"k{i}": "v" for i in range(21)},
        {"": "v"},
        {"k" * 41: "v"},
        {"k": "v" * 501},
        {"k": 1},
        {"k": None},
    ]
    for m in bad_metadata:
        r = post_job(server, t, {"type": "summarise", "input": {"text": "x"}, "metadata": m})
        assert field_errors(r) == {"metadata"}, m
    ok = {f"k{i}": "v" * 500 for i in range(20)}
    ok["é" * 40] = "ü" * 500  # characters, not bytes
    assert len(ok) == 21
    ok.pop("k19")
    r = post_job(server, t, {"type": "summarise", "input": {"text": "x"}, "metadata": ok})
    assert r.status == 202, r.body
    assert t.balance() == 90


def test_v2_short_balance_is_402(db, server):
    t = Tenant(db, credits=20)
    r = post_job(server, t, {"type": "analyse", "input": {"text": "x"}})
    assert r.status == 402
    assert r.json()["type"] == "/problems/insufficient-credits"
    assert t.balance() == 20


def test_v2_has_no_v1_submission_routes(db, server):
    t = Tenant(db)
    for path in ("/api/v2/summarise", "/api/v2/summarize", "/api/v2/analyse"):
        r = server.request("POST", path, body={"text": "x"}, headers=t.headers)
        assert r.status == 404, path
    # and v1 has no POST /jobs (GET /jobs exists: 405)
    r = server.request("POST", "/api/v1/jobs", body={"type": "summarise"}, headers=t.headers)
    assert r.status == 405
    assert "POST" not in r.header("Allow")


def test_every_other_resource_answers_under_v2_unchanged(db, server):
    t = Tenant(db, credits=50)
    users = server.get("/api/v1/users", headers=t.headers).json()["items"]
    for path in ("/me", "/organisation", "/users", f"/users/{users[0]['id']}", "/credits",
                 "/credits/transactions", "/credits/usage?days=3"):
        one = server.get("/api/v1" + path, headers=t.headers)
        two = server.get("/api/v2" + path, headers=t.headers)
        assert one.status == two.status == 200, path
        assert one.json() == two.json(), path
    r = server.request("PATCH", "/api/v2/organisation", body={"name": "Renamed in v2"},
                       headers=t.headers)
    assert r.status == 200 and r.json()["name"] == "Renamed in v2"
    assert server.get("/api/v1/organisation", headers=t.headers).json()["name"] == "Renamed in v2"


def test_cross_tenant_jobs_are_404_in_both_versions(db, server):
    a, b = Tenant(db), Tenant(db)
    j1 = submit(server, a).json()["job_id"]
    j2 = post_job(server, a, {"type": "summarise", "input": {"text": "mine"}}).json()["id"]
    for jid in (j1, j2):
        for v in ("v1", "v2"):
            r = server.get(f"/api/{v}/jobs/{jid}", headers=b.headers)
            assert r.status == 404, (v, jid)
            assert server.get(f"/api/{v}/jobs/{jid}", headers=a.headers).status == 200
    for v in ("v1", "v2"):
        assert server.get(f"/api/{v}/jobs", headers=b.headers).json()["items"] == []
    assert server.get(f"/api/v2/jobs/{uuid.uuid4()}", headers=a.headers).status == 404


def test_deprecation_headers_exactly_when_configured(db, server_factory):
    plain = server_factory()
    t = Tenant(db)
    for path in ("/api/v1/me", "/api/v2/me"):
        r = plain.get(path, headers=t.headers)
        assert r.status == 200
        assert r.header("Deprecation") is None and r.header("Sunset") is None
        assert r.header("Link") is None

    dep = server_factory(API_V1_DEPRECATED_AT="2027-01-01T00:00:00Z")
    r = dep.get("/api/v1/users?limit=5", headers=t.headers)
    assert r.header("Deprecation") == "@1798761600"
    assert r.header("Link") == '</api/v2/users>; rel="successor-version"'
    assert r.header("Sunset") is None
    r = dep.request("POST", "/api/v1/summarise", body={"text": "x"}, headers=t.headers)
    assert r.status == 202 and r.header("Link") == '</api/v2/jobs>; rel="successor-version"'
    assert dep.get("/api/v2/me", headers=t.headers).header("Deprecation") is None

    both = server_factory(API_V1_DEPRECATED_AT="2027-01-01", API_V1_SUNSET="2027-07-01")
    r = both.get("/api/v1/me")  # a problem (401) carries them too
    assert r.status == 401
    assert r.header("Deprecation") == "@1798761600"
    assert r.header("Sunset") == "Thu, 01 Jul 2027 00:00:00 GMT"
    r = both.get("/api/v2/me", headers=t.headers)
    assert r.header("Sunset") is None and r.header("Deprecation") is None


def test_bad_deprecation_settings_stop_start_up(db):
    for env, word in ((dict(API_V1_DEPRECATED_AT="soon"), "API_V1_DEPRECATED_AT"),
                      (dict(API_V1_SUNSET="2027-02-30"), "API_V1_SUNSET"),
                      (dict(API_V1_DEPRECATED_AT="2027-06-01", API_V1_SUNSET="2027-01-01"),
                       "API_V1_SUNSET")):
        r = db.cli("config", env=env)
        assert r.returncode == 2, env
        assert word in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
