"""Trace context end to end (W3C traceparent): a caller's trace id is in
the request's log line, in every line logged for the job attempts it
causes, and on the provider call those attempts make; an invalid value is
replaced and never echoed; every request is traced."""
import re

import pytest

from gemini_standin import Standin
from jobs_util import Tenant, wait_for

TID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
HEX32 = re.compile(r"^[0-9a-f]{32}$")


@pytest.fixture
def standin():
    s = Standin()
    yield s
    s.close()


def request_lines(server, n):
    """The access log's lines, once there are n (written as each request ends)."""
    return wait_for(lambda: (lambda ls: ls if len(ls) >= n else None)(
        [l for l in server.log_lines() if l.get("msg") == "request"]), 30,
        what=f"{n} request log lines")


def status(db, job_id):
    return db.sql(f"SELECT status FROM jobs WHERE id = '{job_id}'")


def test_caller_trace_follows_the_request_into_its_job(db, server_factory, standin):
    server = server_factory(WORKER_CONCURRENCY=1,
                            **standin.env(JOB_POLL_INTERVAL_MS=200, JOB_MAX_ATTEMPTS=1))
    t = Tenant(db, credits=100)
    r = server.request("POST", "/api/v1/summarise",
                       body={"text": "Traces cross processes. Jobs keep them."},
                       headers={**t.headers, "traceparent": f"00-{TID}-{PARENT}-01"})
    assert r.status == 202, r.body
    job_id = r.json()["job_id"]
    wait_for(lambda: status(db, job_id) == "completed", 60, what="the job to complete")
    assert db.sql(f"SELECT traceparent FROM jobs WHERE id = '{job_id}'").startswith(f"00-{TID}-")

    request_lines(server, 1)
    lines = server.log_lines()
    req = [l for l in lines if l.get("msg") == "request" and l.get("route") == "/api/v1/summarise"]
    assert len(req) == 1 and req[0]["trace_id"] == TID, req
    for msg in ("job attempt started", "job attempt succeeded", "job completed"):
        mine = [l for l in lines if l.get("msg") == msg and l.get("job_id") == job_id]
        assert mine and all(l.get("trace_id") == TID for l in mine), (msg, mine)

    # the provider call carries the trace; its parent is the attempt's span,
    # not the caller's, and the caller's sampled flag is kept
    sent = [q["traceparent"] for q in standin.requests]
    assert len(sent) == 1 and sent[0], sent
    version, trace_id, parent, flags = sent[0].split("-")
    assert (version, trace_id, flags) == ("00", TID, "01")
    assert re.fullmatch(r"[0-9a-f]{16}", parent) and parent != PARENT


@pytest.mark.parametrize("value", [
    "00-" + TID.upper() + "-" + PARENT + "-01",   # upper case
    "ff-" + TID + "-" + PARENT + "-01",            # version ff
    "00-" + "0" * 32 + "-" + PARENT + "-01",       # all-zero trace id
    "00-" + TID + "-" + PARENT + "-01-extra",      # version 00 has nothing more
    "<script>alert(1)</script>",
])
def test_invalid_traceparent_is_replaced_not_echoed(db, server_factory, value):
    server = server_factory()
    r = server.get("/health", headers={"traceparent": value})
    assert r.status == 200
    assert value not in r.body.decode() and all(value not in v for _, v in r.headers)
    req = request_lines(server, 1)
    assert len(req) == 1 and HEX32.match(req[0]["trace_id"]), req
    assert req[0]["trace_id"] != TID and req[0]["trace_id"] != "0" * 32
    assert value not in server.log()


def test_every_request_is_traced_even_when_refused(db, server_factory):
    server = server_factory()
    assert server.get("/api/v1/me").status == 401       # refused before the body
    assert server.get("/no/such/path").status == 404
    r = server.get("/health", headers={"traceparent": f"01-{TID}-{PARENT}-00-later-fields"})
    assert r.status == 200                              # a later version is read as 00
    req = request_lines(server, 3)
    assert len(req) == 3
    assert all(HEX32.match(l["trace_id"]) for l in req)
    assert len({l["trace_id"] for l in req}) == 3       # a new trace each, unless given
    assert req[2]["trace_id"] == TID
