"""GET /metrics end to end: real traffic against the real binary - 2xx,
401, 404, 405, 422, 503 while the database is stopped, a 429 when the
server has rate limits, jobs that complete, retry, fail and are refunded,
a webhook delivery when the server has webhooks - then `promtool check
metrics` on what it serves, the counters against the database's rows, the
access rule (loopback, or METRICS_TOKEN), and a worker's own /metrics."""
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import harness
from gemini_standin import FAIL_MARKER, Standin
from jobs_util import Tenant, Worker, wait_for
from metrics_util import Endpoint, check_metrics, parse, scrape, total, value

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture
def standin():
    s = Standin()
    yield s
    s.close()


def jobs_done(db, n):
    return int(db.sql("SELECT count(*) FROM jobs WHERE status IN ('completed', 'failed')")) >= n


def poll(server, path, status, timeout=30, headers=None):
    return wait_for(lambda: (lambda r: r if r.status == status else None)(
        server.get(path, headers=headers)), timeout, what=f"{path} to answer {status}")


def rate_limit_probe(server, db):
    """A burst from one organisation; True when the server answered 429
    (rate limits exist on this build), False when it never did."""
    t = Tenant(db, credits=0)
    for _ in range(150):
        r = server.get("/api/v1/me", headers=t.headers)
        if r.status == 429:
            return True
        assert r.status == 200, r.body
    return False


class _Receiver(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hits = 0

    def log_message(self, *args):
        pass

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).hits += 1
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


def webhook_probe(server, t):
    """A delivery of webhook.test to a local receiver when the server has
    webhooks; False (nothing done) when /api/v1/webhooks is not a route."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/hook"
        r = server.request("POST", "/api/v1/webhooks", headers=t.headers,
                           body={"url": url, "events": ["job.completed"], "description": "m"})
        if r.status == 404:
            return False
        assert r.status == 201, r.body
        r = server.request("POST", f"/api/v1/webhooks/{r.json()['id']}/test", headers=t.headers)
        assert r.status == 202, r.body
        wait_for(lambda: _Receiver.hits > 0, 60, what="the webhook delivery")
        return True
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_metrics_after_real_traffic_pass_promtool(db, pg, server_factory, standin):
    server = server_factory(
        WORKER_CONCURRENCY=2, JOB_MAX_ATTEMPTS=2, RATE_LIMIT_REQUESTS=100,
        WEBHOOK_ALLOW_HTTP="true", WEBHOOK_ALLOW_NETWORKS="127.0.0.0/8",
        **standin.env(JOB_RETRY_DELAY_SECONDS=0, JOB_POLL_INTERVAL_MS=200))
    t = Tenant(db, credits=200)
    assert server.get("/health").status == 200
    assert server.get("/api/v1/me", headers=t.headers).status == 200
    assert server.get("/api/v1/me").status == 401
    assert server.get("/api/v1/users/not-a-uuid", headers=t.headers).status == 404
    assert server.get(f"/api/v1/users/{t.org_id}/extra").status == 404
    assert server.request("DELETE", "/health").status == 405
    assert server.request("POST", "/api/v1/summarise", body={"text": ""},
                          headers=t.headers).status == 422
    for text in ("Metrics count what happens. Operators read them.", f"{FAIL_MARKER} please"):
        assert server.request("POST", "/api/v1/summarise", body={"text": text},
                              headers=t.headers).status == 202
    wait_for(lambda: jobs_done(db, 2), 60, what="both jobs to finish")
    limited = rate_limit_probe(server, db)
    hooked = webhook_probe(server, t)
    # the database stopped: 503s, and the database metrics say so
    try:
        pg.stop()
        assert server.get("/api/v1/me", headers=t.headers).status == 503
        # a good /health answer stands for a second (api/health.c): the
        # outage shows once the last one made before it has run out
        poll(server, "/health", 503, timeout=3)
    finally:
        pg.start()
    poll(server, "/health", 200)
    assert server.get("/api/v1/me", headers=t.headers).status == 200

    # A worker asleep in its reconnect back-off replaces its connection a few
    # seconds after the database is back; an HTTP thread only when it next
    # serves a request. Wait for the first replacement, then read the rest.
    wait_for(lambda: "nexusapi_jobs_queue_depth " in server.get("/metrics").body.decode(), 30,
             what="the workers to read the queue")
    wait_for(lambda: value(parse(scrape(server.get)), "nexusapi_db_reconnects_total") >= 1, 30,
             what="a lost database connection to be replaced")
    text = scrape(server.get)
    rc, out = check_metrics(text)
    assert (rc, out) == (0, ""), out
    s = parse(text)
    req = "nexusapi_http_requests_total"
    assert value(s, req, route="/api/v1/me", method="GET", code="2xx") >= 2
    assert value(s, req, route="/api/v1/me", method="GET", code="4xx") >= 1   # 401
    assert value(s, req, route="/api/v1/me", method="GET", code="5xx") >= 1   # 503
    assert value(s, req, route="/health", method="GET", code="5xx") >= 1
    assert value(s, req, route="/api/v1/users/{id}", method="GET", code="4xx") >= 1
    assert value(s, req, route="unmatched", method="GET", code="4xx") >= 1
    assert value(s, req, route="unmatched", method="DELETE", code="4xx") >= 1  # 405
    assert value(s, req, route="/api/v1/summarise", method="POST", code="2xx") == 2
    assert value(s, req, route="/api/v1/summarise", method="POST", code="4xx") == 1
    assert value(s, "nexusapi_http_request_duration_seconds_count", route="/api/v1/me") >= 4
    if limited:
        assert value(s, "nexusapi_http_rate_limited_total") >= 1
        assert value(s, req, route="/api/v1/me", method="GET", code="4xx") >= 2
    else:
        assert value(s, "nexusapi_http_rate_limited_total") == 0
    # jobs: one completed; one failed twice (retried once), then refunded
    job = dict(job_type="summarise")
    assert value(s, "nexusapi_jobs_submitted_total", **job) == 2
    assert value(s, "nexusapi_jobs_started_total", **job) == 3
    assert value(s, "nexusapi_jobs_completed_total", **job) == 1
    assert value(s, "nexusapi_jobs_retried_total", **job) == 1
    assert value(s, "nexusapi_jobs_failed_total", **job) == 1
    assert value(s, "nexusapi_jobs_refunded_total", **job) == 1
    assert value(s, "nexusapi_credits_debited_total", **job) == 20
    assert value(s, "nexusapi_credits_refunded_total", **job) == 10
    assert value(s, "nexusapi_job_attempt_duration_seconds_count", **job) == 3
    assert value(s, "nexusapi_jobs_queue_depth") == 0
    assert value(s, "nexusapi_jobs_oldest_pending_age_seconds") == 0
    if hooked:
        assert value(s, "nexusapi_webhook_deliveries_total", outcome="succeeded") >= 1
        assert value(s, "nexusapi_webhook_delivery_duration_seconds_count") >= 1
    # the database: round trips, the outage, the reconnections, up again
    assert value(s, "nexusapi_db_round_trips_total", outcome="ok") > 10
    assert (value(s, "nexusapi_db_round_trips_total", outcome="unavailable") +
            value(s, "nexusapi_db_connection_failures_total")) >= 1
    assert value(s, "nexusapi_db_reconnects_total") >= 1
    assert value(s, "nexusapi_db_pool_waits_total") >= 2
    assert value(s, "nexusapi_db_up") == 1
    # the process
    assert value(s, "process_resident_memory_bytes") > 1e6
    assert value(s, "process_open_fds") > 3
    assert abs(value(s, "process_start_time_seconds") - time.time()) < 3600
    assert value(s, "nexusapi_build_info", version=server.get("/health").json()["version"]) == 1
    # no id, raw path or query in any label
    assert not UUID.search(text) and t.org_id not in text and "not-a-uuid" not in text
    assert "/extra" not in text


def test_counters_agree_with_the_database(db, server_factory):
    server = server_factory(WORKER_CONCURRENCY=2, JOB_POLL_INTERVAL_MS=200)
    t = Tenant(db, credits=500)
    kinds = ["summarise", "analyse", "summarise", "summarise", "analyse", "summarise"]
    for i, kind in enumerate(kinds):
        r = server.request("POST", f"/api/v1/{kind}", headers=t.headers,
                           body={"text": f"Job number {i}. Counted twice, once here."})
        assert r.status == 202, r.body
    r = server.request("POST", "/api/v2/jobs", headers=t.headers,
                       body={"type": "analyse", "input": {"text": "Through v2. Counted too."}})
    assert r.status == 202, r.body
    wait_for(lambda: int(db.sql("SELECT count(*) FROM jobs WHERE status = 'completed'")) == 7,
             60, what="the jobs to complete")
    s = parse(scrape(server.get))
    for kind in ("summarise", "analyse"):
        rows = int(db.sql(f"SELECT count(*) FROM jobs WHERE job_type = '{kind}'"))
        done = int(db.sql(f"SELECT count(*) FROM jobs WHERE job_type = '{kind}' "
                          "AND status = 'completed'"))
        attempts = int(db.sql(f"SELECT sum(attempt_count) FROM jobs WHERE job_type = '{kind}'"))
        debited = int(db.sql("SELECT sum(amount) FROM credit_transactions t JOIN jobs j "
                             "ON j.id = t.job_id WHERE t.type = 'DEDUCTION' "
                             f"AND j.job_type = '{kind}'"))
        assert value(s, "nexusapi_jobs_submitted_total", job_type=kind) == rows
        assert value(s, "nexusapi_jobs_completed_total", job_type=kind) == done
        assert value(s, "nexusapi_jobs_started_total", job_type=kind) == attempts
        assert value(s, "nexusapi_credits_debited_total", job_type=kind) == debited
    assert total(s, "nexusapi_jobs_submitted_total") == 7


def test_metrics_token(db, server_factory):
    token = "metrics-token-0123456789abcdef"
    server = server_factory(METRICS_TOKEN=token)
    for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789abcdef"},
                    {"Authorization": f"Basic {token}"}, {"Authorization": f"Bearer {token}x"},
                    {"X-Forwarded-For": "127.0.0.1"}):
        r = server.get("/metrics", headers=headers)
        assert r.status == 404, (headers, r.body)
        assert r.json()["type"] == "/problems/not-found"   # like any unknown path
        assert "nexusapi_" not in r.body.decode()
    text = scrape(server.get, headers={"Authorization": f"Bearer {token}"})
    assert "nexusapi_build_info" in text
    # never in the API's document
    assert "/metrics" not in server.get("/openapi.json").body.decode()


def test_short_metrics_token_is_refused_at_start(db):
    r = db.cli("config", env={"METRICS_TOKEN": "short"})
    assert r.returncode == 2
    assert r.stderr.strip() == ("nexusapi: configuration error: METRICS_TOKEN: must be at least "
                                "16 characters long")


def test_worker_serves_its_own_metrics(db, server_factory):
    server = server_factory()
    t = Tenant(db, credits=100)
    port = harness.free_port()
    w = Worker(db, WORKER_METRICS_PORT=port, JOB_POLL_INTERVAL_MS=200)
    try:
        metrics = Endpoint(port)
        assert server.request("POST", "/api/v1/analyse", headers=t.headers,
                              body={"text": "The worker counts. Its scrape shows it."}).status == 202
        wait_for(lambda: int(db.sql("SELECT count(*) FROM jobs WHERE status = 'completed'")) == 1,
                 60, what="the job to complete")
        text = scrape(metrics.get)
        assert check_metrics(text) == (0, "")
        s = parse(text)
        assert value(s, "nexusapi_jobs_completed_total", job_type="analyse") == 1
        assert value(s, "nexusapi_jobs_started_total", job_type="analyse") == 1
        assert value(s, "nexusapi_jobs_submitted_total", job_type="analyse") == 0  # serve's
        assert value(s, "nexusapi_jobs_queue_depth") is not None
        assert metrics.get("/api/v1/me").status == 404   # nothing else is served there
        s = parse(scrape(metrics.get))                   # its own requests are counted
        assert value(s, "nexusapi_http_requests_total", route="/metrics", method="GET",
                     code="2xx") >= 1
        assert any(l.get("msg") == "metrics listening" and l.get("port") == port
                   for l in w.log_lines())
    finally:
        assert w.close() == 0, w.log()
