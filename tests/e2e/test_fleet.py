"""The fleet under faults (issue 18): the short run of tests/fleet/fleet.py
(about a minute; `make fleet` is the long one), and the invariant checks
fed made-up evidence they must refuse, so none of them can pass by
construction."""
import os
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

import harness
import pgbouncer

FLEET = os.path.join(harness.ROOT, "tests", "fleet")
sys.path.insert(0, FLEET)
import invariants  # noqa: E402
from load import Record  # noqa: E402
from nodes import Incarnation  # noqa: E402


@pytest.mark.skipif(not pgbouncer.available() or not os.path.exists("/usr/sbin/haproxy"),
                    reason="pgbouncer or haproxy is not installed (make deps)")
def test_fleet_short_run():
    r = subprocess.run([sys.executable, os.path.join(FLEET, "fleet.py"), "--short"],
                       capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, NEXUS_BIN=harness.BIN))
    print(r.stdout[-6000:])
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-3000:]
    assert "FAIL" not in r.stdout.split("invariant", 1)[-1]


# -- the checks refuse what they must ------------------------------------------------

def life(logfile, signalled=None, sig=None, ended=None, rc=0, ready=0.0):
    l = Incarnation(0, str(logfile))
    l.ready, l.signalled, l.signal, l.ended, l.rc = ready, signalled, sig, ended, rc
    return l


def node(name, lives):
    return SimpleNamespace(name=name, lives=lives)


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


def write_log(path, lines):
    import json
    path.write_text("".join(json.dumps(l) + "\n" for l in lines))


def fake(tmp_path, **kw):
    f = SimpleNamespace(serves=[], workers=[], pgbouncer_down=[], haproxy=None, ended=100.0,
                        standin=SimpleNamespace(overlaps=0), errors=[],
                        features={"idempotency": False, "rate_limit": None, "webhooks": False},
                        load=SimpleNamespace(records=[], accepted={}, replays=[],
                                             recovered=set()),
                        args=SimpleNamespace(min_jobs=0), sql=lambda q: "")
    for k, v in kw.items():
        setattr(f, k, v)
    return f


def evidence(f):
    ev = invariants.Evidence.__new__(invariants.Evidence)
    ev.f, ev.jobs, ev.haproxy = f, {}, {}
    ev.serve_up = [w for n in f.serves for l in n.lives if (w := l.up_window(f.ended))]
    ev.db_down = [(a, b + invariants.GRACE) for a, b in f.pgbouncer_down]
    ev.kills = []
    return ev


def test_overlapping_attempts_fail(tmp_path):
    t = 1_000_000.0
    a, b = tmp_path / "w0.log", tmp_path / "w1.log"
    write_log(a, [{"time": iso(t), "msg": "job attempt started", "job_id": "j1", "attempt": 1},
                  {"time": iso(t + 2), "msg": "job attempt failed", "job_id": "j1", "attempt": 1}])
    write_log(b, [{"time": iso(t + 1), "msg": "job attempt started", "job_id": "j1", "attempt": 2},
                  {"time": iso(t + 3), "msg": "job attempt succeeded", "job_id": "j1",
                   "attempt": 2}])
    f = fake(tmp_path, workers=[node("worker0", [life(a)]), node("worker1", [life(b)])])
    assert invariants.no_concurrent_attempts(evidence(f))[1] == "FAIL"
    # the same two attempts one after the other pass
    write_log(b, [{"time": iso(t + 2.5), "msg": "job attempt started", "job_id": "j1",
                   "attempt": 2},
                  {"time": iso(t + 3), "msg": "job attempt succeeded", "job_id": "j1",
                   "attempt": 2}])
    assert invariants.no_concurrent_attempts(evidence(f))[1] == "PASS"
    # an attempt cut short by its process's end lasts until that end
    write_log(a, [{"time": iso(t), "msg": "job attempt started", "job_id": "j1", "attempt": 1}])
    f.workers[0].lives[0].ended = t + 3
    assert invariants.no_concurrent_attempts(evidence(f))[1] == "FAIL"


def test_5xx_are_judged_by_when_they_happened(tmp_path):
    up = [life(tmp_path / "s0.log", ready=10.0, signalled=50.0, ended=50.1)]
    f = fake(tmp_path, serves=[node("serve0", up)], pgbouncer_down=[(20.0, 21.0)])
    ok = [Record("a", 55.0, 55.1, "GET", "read", "o", 503, None, False),   # no serve up
          Record("b", 20.5, 20.6, "GET", "read", "o", 503, None, False)]   # PgBouncer down
    f.load.records = ok
    assert invariants.five_xx(evidence(f))[1] == "PASS"
    for bad in (Record("c", 30.0, 30.1, "GET", "read", "o", 503, None, False),
                Record("d", 20.5, 20.6, "GET", "read", "o", 500, None, False),
                Record("e", 30.0, 30.1, "POST", "submit", "o", 502, None, False)):
        f.load.records = ok + [bad]
        assert invariants.five_xx(evidence(f))[1] == "FAIL", bad


def test_a_502_is_excused_only_for_a_post_cut_by_a_kill(tmp_path):
    up = [life(tmp_path / "s0.log", ready=10.0, signalled=90.0, ended=90.1)]
    f = fake(tmp_path, serves=[node("serve0", up), node("serve1", up)])
    rec = Record("r1", 30.0, 30.2, "POST", "submit", "o", 502, None, False)
    f.load.records = [rec]
    ev = evidence(f)
    ev.haproxy = {"r1": (30.0, "serve1", 502, "SH--", "0", "POST", "/api/v2/jobs")}
    ev.kills = [(30.1, "serve1")]
    assert invariants.five_xx(ev)[1] == "PASS"
    ev.kills = [(30.1, "serve0")]  # another node was killed
    assert invariants.five_xx(ev)[1] == "FAIL"
    ev.kills = [(30.1, "serve1")]
    f.features["idempotency"] = True  # a keyed POST: the client must repeat it ...
    assert invariants.five_xx(ev)[1] == "FAIL"
    f.load.recovered = {"r1"}  # ... and its retry with the same key was answered
    assert invariants.five_xx(ev)[1] == "PASS"
    f.load.recovered = set()
    # a POST without a key stays excused when the server honours keys
    f.load.records = [rec._replace(kind="submit_v1")]
    assert invariants.five_xx(ev)[1] == "PASS"


def test_hangs_fail(tmp_path):
    f = fake(tmp_path)
    f.load.records = [Record("a", 1, 2, "GET", "read", "o", 200, None, False),
                      Record("b", 1, 2, "GET", "read", "o", None, "refused", False)]
    assert invariants.no_hangs(evidence(f))[1] == "PASS"
    f.load.records.append(Record("c", 1, 47, "GET", "read", "o", None, "timeout", False))
    assert invariants.no_hangs(evidence(f))[1] == "FAIL"


def test_rate_limit_windows(tmp_path):
    t = 1_000_000.0
    log = tmp_path / "s0.log"
    lines = [{"time": iso(t + i * 0.1), "msg": "request", "route": "/api/v1/me", "status": 200,
              "duration_ms": 1.0, "org_id": "o1"} for i in range(11)]
    write_log(log, lines)
    f = fake(tmp_path, serves=[node("serve0", [life(log)])])
    f.features["rate_limit"] = (10, 5)
    f.load.records = [Record("h", 1, 2, "GET", "hot", "o", 429, None, False)]
    assert invariants.rate_limits(evidence(f))[1] == "FAIL"  # 11 in one 5 s window
    write_log(log, lines[:10] + [dict(lines[10], status=429)])  # a refusal does not count
    assert invariants.rate_limits(evidence(f))[1] == "PASS"


def test_clean_exits(tmp_path):
    log = tmp_path / "w.log"
    log.write_text("fine\n")
    ok = [life(log, sig=signal.SIGTERM, rc=0), life(log, sig=signal.SIGKILL, rc=-9)]
    f = fake(tmp_path, workers=[node("worker0", ok)])
    assert invariants.clean_exits(evidence(f))[1] == "PASS"
    f.workers[0].lives.append(life(log, rc=-6))  # died by itself
    assert invariants.clean_exits(evidence(f))[1] == "FAIL"
    f.workers[0].lives.pop()
    log.write_text("==1==ERROR: AddressSanitizer: heap-use-after-free\n")
    assert invariants.clean_exits(evidence(f))[1] == "FAIL"


def test_database_checks_fail_on_bad_rows(tmp_path):
    f = fake(tmp_path, sql=lambda q: "10|1|0|0" if "REFUND" in q else "3|1")
    ev = evidence(f)
    assert invariants.refunds(ev)[1] == "FAIL"
    assert invariants.balances(ev)[1] == "FAIL"
    f.sql = lambda q: "10|0|0|0" if "REFUND" in q else "3|0"
    assert invariants.refunds(ev)[1] == "PASS" and invariants.balances(ev)[1] == "PASS"


def test_accepted_jobs_must_finish(tmp_path):
    f = fake(tmp_path)
    f.load.accepted = {"j1": ("o", "k1", "r1"), "j2": ("o", "k2", "r2")}
    ev = evidence(f)
    ev.jobs = {"j1": ("completed", "o", 10, "k1"), "j2": ("running", "o", 10, "k2")}
    assert invariants.accepted_jobs_finished(ev)[1] == "FAIL"
    ev.jobs["j2"] = ("failed", "o", 10, "k2")
    assert invariants.accepted_jobs_finished(ev)[1] == "PASS"
    del ev.jobs["j2"]  # accepted, then lost
    assert invariants.accepted_jobs_finished(ev)[1] == "FAIL"


def test_idempotency_keys(tmp_path):
    f = fake(tmp_path)
    ev = evidence(f)
    assert invariants.idempotency(ev)[1] == "SKIP"
    f.features["idempotency"] = True
    ev.jobs = {"j1": ("completed", "o", 10, "k1"), "j2": ("completed", "o", 10, "k1")}
    assert invariants.idempotency(ev)[1] == "FAIL"
    ev.jobs = {"j1": ("completed", "o", 10, "k1")}
    f.load.replays = [("k1", "j1", "j1", True, 202)]
    assert invariants.idempotency(ev)[1] == "PASS"
    f.load.replays = [("k1", "j1", "j1", False, 202)]  # not marked as a replay
    assert invariants.idempotency(ev)[1] == "FAIL"


def test_webhook_events(tmp_path):
    f = fake(tmp_path, receiver=SimpleNamespace(events=lambda: delivered),
             webhooks={"orgs": {"o"}, "before": set(), "error": None})
    f.features["webhooks"] = True
    ev = evidence(f)
    ev.jobs = {"j1": ("completed", "o", 10, ""), "j2": ("failed", "o", 10, "")}
    delivered = [{"type": "job.completed", "data_id": "j1", "signed": True}]
    assert invariants.webhooks(ev)[1] == "FAIL"  # j2's event never came
    delivered.append({"type": "job.failed", "data_id": "j2", "signed": True})
    assert invariants.webhooks(ev)[1] == "PASS"
    delivered.append({"type": "job.failed", "data_id": "j2", "signed": False})
    assert invariants.webhooks(ev)[1] == "FAIL"
