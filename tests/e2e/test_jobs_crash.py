"""Crash safety: workers killed with SIGKILL mid-attempt lose nothing, run
nothing twice at once, and refund every failed job exactly once."""
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from gemini_standin import Standin
from jobs_util import Tenant, Worker, job, submit, wait_for, wait_job


@pytest.fixture
def standin():
    s = Standin()
    yield s
    s.close()


@pytest.fixture
def workers(db):
    started = []

    def start(**env):
        w = Worker(db, **env)
        started.append(w)
        return w

    yield started, start
    for w in started:
        rc = w.close()
        assert rc in (0, -9), w.log()  # 0 after SIGTERM; -9 for the ones killed on purpose


def test_killed_worker_job_finished_by_another_after_lease(db, server_factory, workers, standin):
    started, start = workers
    standin.mode, standin.delay = "slow", 3.0  # an attempt outlives the 2 s lease
    env = standin.env(JOB_LEASE_SECONDS=2, JOB_POLL_INTERVAL_MS=200, JOB_RETRY_DELAY_SECONDS=1)
    server = server_factory()
    t = Tenant(db, credits=100)
    a = start(**env)
    job_id = submit(server, t, "Slow work for a doomed worker.").json()["job_id"]
    wait_for(lambda: a.events("job attempt started", job_id), 20, what="the first attempt")
    # the attempt is logged just before its call goes out: kill it mid-call
    wait_for(lambda: standin.count() == 1, 10, what="the first attempt's provider call")
    a.kill()
    j = job(server, t, job_id)
    assert j["status"] == "running" and j["attempt_count"] == 1
    killed_at = time.time()

    # two live workers: the lease must keep the second from running it too,
    # although each attempt (3 s) takes longer than the lease (2 s)
    b, c = start(**env), start(**env)
    j = wait_job(server, t, job_id, timeout=30)
    assert j["status"] == "completed" and j["attempt_count"] == 2, j
    assert time.time() - killed_at >= 1.0  # not before the lease ran out
    runs = [w for w in (b, c) if w.events("job attempt started", job_id)]
    assert len(runs) == 1, "the job ran on both live workers"
    assert [l["attempt"] for l in runs[0].events("job attempt started", job_id)] == [2]
    assert runs[0].events("job completed", job_id)
    assert standin.count() == 2  # the killed attempt and the one that finished
    assert t.balance() == 90 == t.ledger()


def test_thousand_jobs_failing_provider_worker_killed_repeatedly(db, server_factory, workers,
                                                                 standin):
    started, start = workers
    standin.mode = "flaky"  # every other request is a 500
    server = server_factory()
    tenants = [Tenant(db, credits=2500) for _ in range(4)]

    def one(i):
        t = tenants[i % 4]
        r = submit(server, t, f"Job number {i} of the crash test. It may fail.")
        assert r.status == 202, r.body
        return r.json()["job_id"]

    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(one, range(1000)))
    assert len(set(ids)) == 1000

    env = standin.env(JOB_LEASE_SECONDS=2, JOB_POLL_INTERVAL_MS=100, JOB_RETRY_DELAY_SECONDS=0,
                      WORKER_CONCURRENCY=4)
    start(**env)  # the survivor
    interrupted = []  # attempts a killed worker had started
    for _ in range(5):
        victim = Worker(db, **env)
        time.sleep(0.8)
        victim.kill()
        interrupted += [(l["job_id"], l["attempt"]) for l in victim.events("job attempt started")]
        victim.close()
    assert interrupted, "the victims never got to work"

    def settled():
        return db.sql("SELECT count(*) FROM jobs WHERE status IN ('pending', 'running')") == "0"

    wait_for(settled, 180, interval=0.5, what="every job to finish")
    counts = dict(line.split("|") for line in
                  db.sql("SELECT status, count(*) FROM jobs GROUP BY status").split("\n"))
    assert set(counts) <= {"completed", "failed"} and sum(map(int, counts.values())) == 1000
    assert int(counts.get("failed", 0)) > 0 and int(counts.get("completed", 0)) > 0, counts
    # every job: one DEDUCTION; failed jobs one REFUND, completed none
    bad = db.sql("""
        SELECT count(*) FROM jobs j WHERE
          (SELECT count(*) FROM credit_transactions t WHERE t.job_id = j.id AND t.type = 'DEDUCTION') <> 1
          OR (SELECT count(*) FROM credit_transactions t WHERE t.job_id = j.id AND t.type = 'REFUND')
             <> CASE j.status WHEN 'failed' THEN 1 ELSE 0 END
          OR j.attempt_count NOT BETWEEN 1 AND j.max_attempts
          OR (j.status = 'failed' AND j.attempt_count <> j.max_attempts)""")
    assert bad == "0"
    for t in tenants:
        assert t.balance() == t.ledger()
        failed = int(db.sql(f"SELECT count(*) FROM jobs WHERE organisation_id = '{t.org_id}' "
                            "AND status = 'failed'"))
        assert t.balance() == 2500 - 250 * 10 + failed * 10
    assert standin.overlaps == 0, "a job ran on two workers at once"
    print(f"\n1,000 jobs: {counts}; {len(interrupted)} attempts on killed workers; "
          f"{standin.count()} provider calls")


def slow_attempt(db, server_factory, start, standin, delay, text, **settings):
    """A worker in the middle of one attempt that takes `delay` seconds at the
    provider. Returns (server, tenant, worker settings, worker, job id)."""
    standin.mode, standin.delay = "slow", delay
    server = server_factory()
    t = Tenant(db, credits=100)
    env = standin.env(JOB_POLL_INTERVAL_MS=200, **settings)
    w = start(**env)
    job_id = submit(server, t, text).json()["job_id"]
    wait_for(lambda: w.events("job attempt started", job_id), 20, what="the attempt")
    return server, t, env, w, job_id


def test_sigterm_lets_attempts_finish_within_the_drain_timeout(db, server_factory, workers,
                                                              standin):
    started, start = workers
    server, t, env, w, job_id = slow_attempt(db, server_factory, start, standin, 1.5,
                                             "Finish me before you go.", DRAIN_TIMEOUT=10)
    assert w.stop() == 0
    j = job(server, t, job_id)
    assert j["status"] == "completed" and j["attempt_count"] == 1, j


def test_sigterm_past_the_drain_timeout_releases_the_lease(db, server_factory, workers, standin):
    started, start = workers
    server, t, env, w, job_id = slow_attempt(db, server_factory, start, standin, 5.0,
                                             "Too slow to finish.", DRAIN_TIMEOUT=1,
                                             JOB_LEASE_SECONDS=60)
    t0 = time.time()
    assert w.stop() == 0
    assert time.time() - t0 < 4  # the slow call was abandoned, not waited for
    j = job(server, t, job_id)
    # given back at once (not after the 60 s lease), the abandoned attempt not counted
    assert j["status"] == "pending" and j["attempt_count"] == 0, j
    assert w.events("released job leases")
    standin.mode = "ok"
    start(**env)
    j = wait_job(server, t, job_id, timeout=20)
    assert j["status"] == "completed" and j["attempt_count"] == 1


def test_sigterm_with_the_database_down_exits_and_loses_nothing(db, pg, server_factory, workers,
                                                                standin):
    """The database goes away while an attempt runs, then the worker is told
    to stop: it cannot record the result or release the lease, yet it exits
    0 within the drain timeout; once the database is back the lease runs out
    and another worker finishes the job, charged once."""
    started, start = workers
    server, t, env, w, job_id = slow_attempt(db, server_factory, start, standin, 2.0,
                                             "The database leaves mid-attempt.", DRAIN_TIMEOUT=5,
                                             JOB_LEASE_SECONDS=3)
    try:
        pg.stop()
        t0 = time.time()
        assert w.stop() == 0, w.log()
        assert time.time() - t0 < 5 + 5, "the drain outlived its timeout"
        assert not w.events("job completed", job_id)
    finally:
        pg.start()
    standin.mode = "ok"
    start(**env)
    j = wait_job(server, t, job_id, timeout=30)
    assert j["status"] == "completed", j
    assert t.balance() == 90 == t.ledger()


def test_issue11_drain_longer_than_the_lease_keeps_the_leases(db, server_factory, workers,
                                                              standin):
    """SIGTERM while two attempts run that outlast the lease many times over
    (provider 12 s, lease 3 s, drain 30 s): the stopping worker keeps
    renewing its leases, so the other worker neither runs the jobs again nor
    reaps the one on its last attempt; both complete once, nothing refunded."""
    started, start = workers
    standin.mode, standin.delay = "slow", 12.0
    server = server_factory()
    t = Tenant(db, credits=100)
    ids = [submit(server, t, f"Attempt {i} outlives its lease by far.").json()["job_id"]
           for i in range(2)]
    db.sql(f"UPDATE jobs SET max_attempts = 1 WHERE id = '{ids[1]}'")  # a reap would refund
    env = standin.env(JOB_LEASE_SECONDS=3, DRAIN_TIMEOUT=30, JOB_POLL_INTERVAL_MS=200,
                      GEMINI_TIMEOUT_SECONDS=60)
    a = start(**env)
    wait_for(lambda: standin.count() == 2, 20, what="both provider calls")
    b = start(**env)
    a.proc.send_signal(signal.SIGTERM)
    done = [wait_job(server, t, i, timeout=60) for i in ids]
    assert a.proc.wait(timeout=60) == 0, a.log()
    assert [(j["status"], j["attempt_count"]) for j in done] == [("completed", 1)] * 2, done
    assert {l["job_id"] for l in a.events("job completed")} == set(ids)
    assert not a.events("job leases lost")
    assert not a.events("job attempt result discarded: lease lost")
    assert not b.events("job attempt started") and not b.events("job failed, credits refunded")
    # one provider call per job, and no two calls for one text at once
    assert standin.count() == 2 and standin.overlaps == 0
    assert all(r["t_end"] - r["t"] >= 12.0 for r in standin.requests)
    assert t.balance() == 80 == t.ledger()
    assert db.sql("SELECT count(*) FROM credit_transactions WHERE type = 'REFUND'") == "0"
