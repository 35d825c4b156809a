"""Production request patterns through the real binary and PostgreSQL:
exact per-organisation rate limits across processes (a true sliding
window), idempotency keys, the AI-result cache and HTTP caching."""
import concurrent.futures
import json
import re
import signal
import subprocess
import time

import pytest

import harness
from gemini_standin import Standin
from jobs_util import Tenant, Worker, wait_for

TEXT = "Idempotency keys make retries safe. Rate limits keep the platform fair."


def rl(r):
    """(remaining, reset) from the RateLimit header."""
    m = re.fullmatch(r'"org";r=(\d+);t=(\d+)', r.header("RateLimit") or "")
    assert m, r.header("RateLimit")
    return int(m.group(1)), int(m.group(2))


def limited(server_factory, n, window, **env):
    return server_factory(RATE_LIMIT_REQUESTS=n, RATE_LIMIT_WINDOW_SECONDS=window, **env)


# ---- rate limits ---------------------------------------------------------------------


def test_sliding_window_admits_exactly_the_limit(db, server_factory):
    server = limited(server_factory, 5, 8)
    t, other = Tenant(db), Tenant(db)
    first = time.monotonic()
    for i in range(5):
        r = server.get("/api/v1/me", headers=t.headers)
        assert r.status == 200, r.body
        assert r.header("RateLimit-Policy") == '"org";q=5;w=8'
        assert rl(r)[0] == 4 - i
        if i == 0:
            first_done = time.monotonic()  # the first hit was stamped before this
    r = server.get("/api/v1/me", headers=t.headers)
    true_wait = first + 8 - time.monotonic()  # ... and after `first`
    assert r.status == 429, r.body
    assert r.json()["type"] == "/problems/rate-limited"
    slack = first_done - first  # how late the stamp may be
    assert -1 <= int(r.header("Retry-After")) - true_wait <= 1 + slack, \
        (r.header("Retry-After"), true_wait, slack)
    assert rl(r)[0] == 0
    # another organisation is not affected
    assert server.get("/api/v1/me", headers=other.headers).status == 200
    # refused requests do not count: once the window slides, one more passes
    for _ in range(5):
        assert server.get("/api/v1/me", headers=t.headers).status == 429
    time.sleep(max(0, first_done + 8.1 - time.monotonic()))
    r = server.get("/api/v1/me", headers=t.headers)
    assert r.status == 200, r.body


def test_fixed_window_boundary_does_not_double(db, server_factory):
    """5 just before a (fixed) window boundary and 5 just after: a sliding
    window admits 5 of the 10, never all. On a slow machine the ten may not
    fit in one window; then the round is tried again with a fresh tenant."""
    server = limited(server_factory, 5, 4)
    for _ in range(5):
        t = Tenant(db)
        time.sleep((3.6 - time.time() % 4) % 4)  # to 0.4 s before a multiple of 4 s
        start = time.time()
        boundary = start + 0.4
        before = [server.get("/api/v1/me", headers=t.headers).status for _ in range(5)]
        time.sleep(max(0, boundary + 0.05 - time.time()))
        after = [server.get("/api/v1/me", headers=t.headers).status for _ in range(5)]
        if time.time() < start + 3.5:  # all ten inside one window of 4 s
            break
    else:
        pytest.skip("the machine is too slow to send ten requests within 3.5 s")
    assert (before + after).count(200) == 5, (before, after)
    assert after.count(429) == 5


def test_exact_across_two_processes(db, server_factory):
    a = limited(server_factory, 5, 60)
    b = limited(server_factory, 5, 60)
    t = Tenant(db)

    def one(i):
        return (a if i % 2 else b).get("/api/v1/users?limit=1", headers=t.headers).status
    with concurrent.futures.ThreadPoolExecutor(max_workers=40) as ex:
        statuses = list(ex.map(one, range(40)))
    assert statuses.count(200) == 5, statuses
    assert statuses.count(429) == 35, statuses


def test_counted_answers_carry_the_headers(db, server_factory):
    server = limited(server_factory, 100, 60)
    t = Tenant(db)
    # 4xx answers count and say so: a 404, a 422 of the body, a 400
    r = server.get("/api/v1/jobs/00000000-0000-4000-8000-000000000000", headers=t.headers)
    assert r.status == 404 and rl(r)[0] == 99
    r = server.request("POST", "/api/v1/summarise", body={"text": ""}, headers=t.headers)
    assert r.status == 422 and rl(r)[0] == 98, r.headers
    r = server.request("POST", "/api/v1/summarise", body=b"{", headers=dict(
        t.headers, **{"Content-Type": "application/json"}))
    assert r.status == 400 and rl(r)[0] == 97
    # public routes and refused tokens do not count
    assert server.get("/health").header("RateLimit") is None
    assert server.get("/api/v1/me").header("RateLimit") is None
    # the admin's view of the window
    org = server.get("/api/v1/organisation", headers=t.headers).json()
    assert org["rate_limit"]["limit"] == 100 and org["rate_limit"]["window"] == 60
    assert 0 < org["rate_limit"]["reset"] <= 60
    assert org["rate_limit"]["remaining"] == 96  # this GET counted before the read


def test_members_do_not_see_the_window_and_zero_turns_limits_off(db, server_factory):
    server = limited(server_factory, 50, 60)
    t = Tenant(db)
    r = db.cli("user", "add", f"member@{t.domain}", "--org", t.domain, "--role", "member")
    assert r.returncode == 0, r.stderr
    tok = db.cli("token", f"member@{t.domain}").stdout.strip()
    org = server.get("/api/v1/organisation", headers={"Authorization": f"Bearer {tok}"}).json()
    assert "rate_limit" not in org
    off = server_factory(RATE_LIMIT_REQUESTS=0)
    r = off.get("/api/v1/me", headers=t.headers)
    assert r.header("RateLimit") is None and r.header("RateLimit-Policy") is None
    assert off.get("/api/v1/organisation", headers=t.headers).json()["rate_limit"] is None


def test_busy_organisation_far_from_its_limit_is_never_refused(db, server_factory):
    """Reservations ahead: a busy organisation far from its limit is
    admitted from each process's reservation, and the window still counts
    every request."""
    a = limited(server_factory, 100000, 60)
    b = limited(server_factory, 100000, 60)
    t = Tenant(db)

    def one(i):
        return (a if i % 2 else b).get("/api/v1/me", headers=t.headers).status
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as ex:
        statuses = list(ex.map(one, range(600)))
    assert statuses.count(200) == 600
    used = int(db.sql(f"SELECT coalesce(sum(n), 0) FROM rate_limit_hits "
                      f"WHERE organisation_id = '{t.org_id}'"))
    # every admitted request holds a recorded hit; reserved, unused ones are few
    assert 600 <= used <= 600 + 2 * 256, used


# ---- idempotency keys ----------------------------------------------------------------


def post(server, t, key, text=TEXT, path="/api/v1/summarise", rid=None):
    h = dict(t.headers, **{"Idempotency-Key": key})
    if rid:
        h["X-Request-ID"] = rid
    return server.request("POST", path, body={"text": text}, headers=h)


def jobs_and_deductions(db, t):
    jobs = int(db.sql(f"SELECT count(*) FROM jobs WHERE organisation_id = '{t.org_id}'"))
    ded = int(db.sql(f"SELECT count(*) FROM credit_transactions WHERE organisation_id = "
                     f"'{t.org_id}' AND type = 'DEDUCTION'"))
    return jobs, ded


def test_concurrent_retries_make_one_job(db, server_factory):
    server = server_factory()
    t = Tenant(db, credits=1000)

    def one(_):
        return post(server, t, "order-42")
    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as ex:
        answers = list(ex.map(one, range(50)))
    firsts = [r for r in answers if r.status == 202 and r.header("Idempotent-Replayed") is None]
    assert len(firsts) == 1, [r.status for r in answers]
    first = firsts[0]
    job_id = first.json()["job_id"]
    for r in answers:
        if r.status == 409:
            assert r.json()["type"] == "/problems/idempotency-key-in-use"
            assert r.header("Retry-After") == "1"
            again = wait_for(lambda: (lambda x: x if x.status != 409 else None)(
                post(server, t, "order-42")), 10, interval=0.2, what="the key to be free")
            r = again
        assert r.status == 202, r.body
        assert r.body == first.body  # byte for byte
        assert r.header("Location") == first.header("Location")
        if r is not first:
            assert r.header("Idempotent-Replayed") == "true"
    assert jobs_and_deductions(db, t) == (1, 1)
    assert t.balance() == 990
    assert job_id in first.header("Location")


def test_key_reused_for_another_request_is_422(db, server):
    t = Tenant(db)
    assert post(server, t, "k1").status == 202
    r = post(server, t, "k1", text="another text")
    assert r.status == 422
    p = r.json()
    assert p["type"] == "/problems/idempotency-key-reused" and "errors" not in p
    r = post(server, t, "k1", path="/api/v1/analyse")
    assert r.status == 422
    assert jobs_and_deductions(db, t) == (1, 1)


def test_keys_are_per_organisation(db, server):
    a, b = Tenant(db), Tenant(db)
    ra, rb = post(server, a, "same"), post(server, b, "same")
    assert ra.status == rb.status == 202
    assert ra.json()["job_id"] != rb.json()["job_id"]
    assert rb.header("Idempotent-Replayed") is None


def round_trips(server):
    r = server.get("/metrics")
    assert r.status == 200, r.body
    found = re.findall(r'^nexusapi_db_round_trips_total\{outcome="\w+"\} (\S+)$',
                       r.body.decode(), re.M)
    assert found, "no round-trip counter"
    return sum(float(v) for v in found)  # ok, error (a refusal) and unavailable


def test_round_trips_of_keyed_posts(db, server_factory):
    # no workers or deliveries in this process: every round trip counted is a request's
    server = server_factory(WORKER_CONCURRENCY=0, WEBHOOK_CONCURRENCY=0,
                            WEBHOOK_ALLOW_HTTP="true", WEBHOOK_ALLOW_NETWORKS="127.0.0.0/8")
    t = Tenant(db)
    assert server.request("POST", "/api/v1/summarise", body={"text": TEXT},
                          headers=t.headers).status == 202  # statements prepared

    def cost(send):
        time.sleep(0.1)  # past the NOTIFY throttle: every accepted job sends one
        before = round_trips(server)
        r = send()
        return r, round_trips(server) - before - scrape

    before = round_trips(server)
    scrape = round_trips(server) - before  # what reading /metrics costs, if anything
    plain, n_plain = cost(lambda: server.request("POST", "/api/v1/summarise",
                                                 body={"text": TEXT}, headers=t.headers))
    keyed, n_keyed = cost(lambda: post(server, t, "trips"))
    replay, n_replay = cost(lambda: post(server, t, "trips"))
    assert (plain.status, keyed.status, replay.status) == (202, 202, 202)
    assert replay.header("Idempotent-Replayed") == "true" and replay.body == keyed.body
    assert replay.header("Location") == keyed.header("Location")
    # a submission stores its answer in its own statement: the claim, the
    # submission, the answer and the COMMIT go in one round trip
    assert n_keyed == n_plain, (n_plain, n_keyed)
    # a replay: the claim (which finds the answer), then the answer read
    assert n_replay == 2, n_replay
    assert jobs_and_deductions(db, t) == (3, 3)

    # any other POST: the claim rides the handler's round trip, the answer is
    # stored with the COMMIT, one round trip more
    hook = server.request("POST", "/api/v1/webhooks", headers=t.headers,
                          body={"url": "http://127.0.0.1:9/hook", "events": ["job.completed"]})
    assert hook.status == 201, hook.body
    rotate = f"/api/v1/webhooks/{hook.json()['id']}/rotate-secret"
    plain, n_plain = cost(lambda: server.request("POST", rotate, headers=t.headers))
    keyed, n_keyed = cost(lambda: server.request(
        "POST", rotate, headers=dict(t.headers, **{"Idempotency-Key": "rotate-1"})))
    assert plain.status == keyed.status == 200, (plain.body, keyed.body)
    assert n_keyed == n_plain + 1, (n_plain, n_keyed)


def test_webhook_creation_takes_keys_too(db, server_factory):
    server = server_factory(WEBHOOK_ALLOW_HTTP="true", WEBHOOK_ALLOW_NETWORKS="127.0.0.0/8")
    t = Tenant(db)
    h = dict(t.headers, **{"Idempotency-Key": "hook-1"})
    body = {"url": "http://127.0.0.1:9/hook", "events": ["job.completed"]}
    first = server.request("POST", "/api/v1/webhooks", body=body, headers=h)
    again = server.request("POST", "/api/v1/webhooks", body=body, headers=h)
    assert first.status == again.status == 201, (first.body, again.body)
    assert again.header("Idempotent-Replayed") == "true"
    assert again.body == first.body and again.header("Location") == first.header("Location")
    other = server.request("POST", "/api/v1/webhooks", headers=h,
                           body=dict(body, url="http://127.0.0.1:10/hook"))
    assert other.status == 422 and other.json()["type"] == "/problems/idempotency-key-reused"
    assert db.sql(f"SELECT count(*) FROM webhook_endpoints WHERE "
                  f"organisation_id = '{t.org_id}'") == "1"
    # the connection that served the creation is not left inside a transaction
    for _ in range(4):
        assert server.get("/api/v1/webhooks", headers=t.headers).status == 200
    assert db.sql("SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%'"
                  " AND datname = current_database() AND pid <> pg_backend_pid()") == "0"


def test_webhook_writes_count_against_the_rate_limit(db, server_factory):
    server = server_factory(WEBHOOK_ALLOW_HTTP="true", WEBHOOK_ALLOW_NETWORKS="127.0.0.0/8",
                            RATE_LIMIT_REQUESTS=3, RATE_LIMIT_WINDOW_SECONDS=60)
    t = Tenant(db)
    body = {"url": "http://127.0.0.1:9/hook", "events": ["job.completed"]}
    r = server.request("POST", "/api/v1/webhooks", body=body, headers=t.headers)
    assert r.status == 201, r.body
    assert r.header("RateLimit") == '"org";r=2;t=60', r.header("RateLimit")
    hook = r.json()["id"]
    r = server.request("PATCH", f"/api/v1/webhooks/{hook}", body={"enabled": False},
                       headers=t.headers)
    assert r.status == 200 and r.header("RateLimit") is not None, r.body
    assert server.get("/api/v1/me", headers=t.headers).status == 200
    assert server.request("POST", "/api/v1/webhooks", body=body,
                          headers=t.headers).status == 429


def test_a_402_is_replayed_not_retried(db, server):
    t = Tenant(db, credits=5)
    first = post(server, t, "short", rid="first-request")
    assert first.status == 402
    assert first.json()["request_id"] == "first-request"
    r = db.cli("credits", "grant", t.domain, "100")
    assert r.returncode == 0, r.stderr
    again = post(server, t, "short", rid="second-request")
    assert again.status == 402 and again.header("Idempotent-Replayed") == "true"
    assert again.body == first.body  # the first request's request_id in the body...
    assert again.header("X-Request-ID") == "second-request"  # ...this one's in the header
    assert jobs_and_deductions(db, t) == (0, 0)
    assert post(server, t, "fresh").status == 202


def test_a_late_answer_yields_to_the_answer_stored_first(db):
    """nx_idempotency_store (a submission's 402, stored after its transaction)
    waits for a request that holds the key, and keeps that request's answer."""
    t = Tenant(db)

    def store(key, digest, body):
        return db.sql(f"SELECT state || '|' || coalesce(status::text, '') || '|' || "
                      f"coalesce(body, '') FROM nx_idempotency_store('{t.org_id}', '{key}', "
                      f"'{digest}', 402, 'application/problem+json', NULL, '{body}')")
    assert store("late-1", "h1", "{}") == "stored||"
    assert store("late-1", "h1", "{\"again\":1}") == "replay|402|{}"
    assert store("late-1", "h2", "{}") == "mismatch||"

    # another request holds the key (its claim ran) and stores a 202 a moment later
    racer = subprocess.Popen(
        ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", db.url, "-c",
         f"BEGIN; SELECT nx_idempotency_claim('{t.org_id}', 'late-2'); SELECT pg_sleep(1.5); "
         f"INSERT INTO idempotency_keys (organisation_id, key, request_hash, status, body) "
         f"VALUES ('{t.org_id}', 'late-2', 'h1', 202, '{{\"job_id\":1}}'); COMMIT;"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: db.sql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                                "AND granted") == "1", 10, interval=0.05, what="the racer's claim")
        t0 = time.monotonic()
        assert store("late-2", "h1", "{}") == 'replay|202|{"job_id":1}'
        assert time.monotonic() - t0 > 0.5  # it waited for the racer's commit
    finally:
        out, err = racer.communicate(timeout=30)
    assert racer.returncode == 0, err


def test_bad_keys_are_400_naming_the_header(db, server):
    t = Tenant(db)
    for key in ("", "k" * 256, "clé", "a b", "tab\there"):
        r = server.request("POST", "/api/v1/summarise", body={"text": TEXT},
                           headers=dict(t.headers, **{"Idempotency-Key": key}))
        assert r.status == 400, (key, r.body)
        assert "Idempotency-Key" in r.json()["detail"]
    assert post(server, t, "k" * 255).status == 202


def test_a_server_crash_between_requests_loses_nothing(db, server_factory):
    first = harness.Server(db.env)  # killed below: not the fixture's to stop
    t = Tenant(db)
    r1 = post(first, t, "crash-key")
    assert r1.status == 202
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait()
    first.close()
    second = server_factory()
    r2 = post(second, t, "crash-key")
    assert r2.status == 202 and r2.header("Idempotent-Replayed") == "true"
    assert r2.body == r1.body
    assert jobs_and_deductions(db, t) == (1, 1)


def test_v2_jobs_take_keys_too_and_expired_keys_are_pruned(db, server):
    t = Tenant(db)
    body = {"type": "analyse", "input": {"text": TEXT}}
    h = dict(t.headers, **{"Idempotency-Key": "v2-key"})
    r1 = server.request("POST", "/api/v2/jobs", body=body, headers=h)
    r2 = server.request("POST", "/api/v2/jobs", body=body, headers=h)
    assert r1.status == r2.status == 202 and r1.body == r2.body
    assert r2.header("Idempotent-Replayed") == "true"
    db.sql(f"UPDATE idempotency_keys SET created_at = now() - interval '2 hours' "
           f"WHERE organisation_id = '{t.org_id}'")
    w = Worker(db, IDEMPOTENCY_TTL_HOURS=1)
    try:
        wait_for(lambda: db.sql(f"SELECT count(*) FROM idempotency_keys WHERE "
                                f"organisation_id = '{t.org_id}'") == "0", 30,
                 what="the expired key to be pruned")
    finally:
        assert w.close() == 0
    r3 = server.request("POST", "/api/v2/jobs", body=body, headers=h)
    assert r3.status == 202 and r3.header("Idempotent-Replayed") is None


# ---- the AI-result cache -------------------------------------------------------------


def test_identical_jobs_complete_from_the_cache(db, server_factory):
    standin = Standin()
    try:
        env = standin.env(AI_CACHE_TTL_SECONDS=3600, WORKER_CONCURRENCY=2,
                          JOB_POLL_INTERVAL_MS=100)
        server = server_factory(**env)
        a, b = Tenant(db), Tenant(db)

        def run(t, text):
            r = server.request("POST", "/api/v1/summarise", body={"text": text},
                               headers=t.headers)
            assert r.status == 202, r.body
            jid = r.json()["job_id"]
            return wait_for(lambda: (lambda j: j if j["status"] == "completed" else None)(
                server.get(f"/api/v1/jobs/{jid}", headers=t.headers).json()), 60,
                what="the job to complete")
        one = run(a, TEXT)
        calls = standin.count()
        assert "cached" not in one["output"]
        two = run(a, TEXT)
        assert standin.count() == calls, "the identical job reached the provider"
        assert two["output"]["cached"] is True
        assert two["output"]["summary"] == one["output"]["summary"]
        assert two["credits_charged"] == 10 and a.balance() == 80  # charged like any job
        run(b, TEXT)  # never shared across organisations
        assert standin.count() == calls + 1
        run(a, TEXT + " Changed.")  # another text is another job
        assert standin.count() == calls + 2
    finally:
        standin.close()


# ---- HTTP caching -------------------------------------------------------------------


def test_etags_and_304(db, server):
    t = Tenant(db)
    r = server.get("/api/v1/organisation", headers=t.headers)
    etag = r.header("ETag")
    assert r.status == 200 and re.fullmatch(r'"[0-9a-f]{32}"', etag), etag
    assert r.header("Cache-Control") == "private, no-cache"
    for inm in (etag, f"W/{etag}", f'"nope", {etag}', "*"):
        n = server.get("/api/v1/organisation", headers=dict(t.headers, **{"If-None-Match": inm}))
        assert n.status == 304 and n.body == b"", inm
        assert n.header("ETag") == etag
    for inm in ('"nope"', "garbage", etag[:-1], '"a" "b"'):
        n = server.get("/api/v1/organisation", headers=dict(t.headers, **{"If-None-Match": inm}))
        assert n.status == 200, inm
    # a changed resource has a new ETag
    server.request("PATCH", "/api/v1/organisation", body={"name": "Renamed"}, headers=t.headers)
    r2 = server.get("/api/v1/organisation", headers=dict(t.headers, **{"If-None-Match": etag}))
    assert r2.status == 200 and r2.header("ETag") != etag
    # the membership check still runs: a removed user gets 401, not 304
    r = db.cli("user", "add", f"gone@{t.domain}", "--org", t.domain, "--role", "member")
    assert r.returncode == 0, r.stderr
    tok = db.cli("token", f"gone@{t.domain}").stdout.strip()
    h = {"Authorization": f"Bearer {tok}"}
    me = server.get("/api/v1/me", headers=h)
    assert me.status == 200
    db.sql(f"DELETE FROM users WHERE email = 'gone@{t.domain}'")
    assert server.get("/api/v1/me", headers=dict(h, **{"If-None-Match": me.header("ETag")})) \
        .status == 401
    # not on problems, not outside /api/
    assert server.get("/api/v1/jobs/00000000-0000-4000-8000-000000000000",
                      headers=t.headers).header("ETag") is None
    assert server.get("/health").header("ETag") is None
