"""Behind PgBouncer in transaction pooling (issue 18, item 2).

The runtime's connections go through a real PgBouncer (Debian's 1.18) whose
pool has fewer server connections than nexusapi has clients, so consecutive
transactions of one client really run on different server sessions.
Migrations and LISTEN need a session of their own: they refuse a pooler.
"""
import signal
import threading
import time
import uuid

import pytest

import harness
import pgbouncer
from jobs_util import Tenant, Worker, submit, wait_job

pytestmark = pytest.mark.skipif(not pgbouncer.available(), reason="pgbouncer is not installed")


class Logins:
    """Login roles for the runtime: one granted nexus_app, one nexus_worker."""

    def __init__(self, db):
        self.app, self.worker = f"{db.name}_app", f"{db.name}_wk"
        db.pg.psql(f"CREATE ROLE {self.app} LOGIN IN ROLE nexus_app")
        db.pg.psql(f"CREATE ROLE {self.worker} LOGIN IN ROLE nexus_worker")


@pytest.fixture
def logins(db):
    return Logins(db)


@pytest.fixture
def bouncer(pg, db, logins):
    # two server connections for four HTTP threads (and the CLI, and the
    # workers): transactions of one client land on different sessions
    b = pgbouncer.PgBouncer(pg, [db.name, logins.app, logins.worker], pool_size=2)
    yield b
    b.close()


def pooled_env(db, bouncer, logins, **extra):
    env = {"APP_DATABASE_URL": bouncer.url(logins.app, db.name),
           "WORKER_DATABASE_URL": bouncer.url(logins.worker, db.name),
           "DATABASE_POOL_MODE": "transaction", "HTTP_THREADS": 4}
    env.update(extra)
    return env


def hammer(server, tenant, n_threads=8, per_thread=30):
    """Reads and job submissions from several threads; every status seen."""
    statuses, lock = [], threading.Lock()

    def one(i):
        for k in range(per_thread):
            if k % 3 == 0:
                r = submit(server, tenant, f"Pooled job {i}-{k}. It runs later.")
                if r.status == 202:
                    jid = r.json()["job_id"]
                    r2 = server.get(f"/api/v1/jobs/{jid}", headers=tenant.headers)
                    with lock:
                        statuses.append((r2.status, r2.body[:200]))
            else:
                path = ("/api/v1/users", "/api/v1/credits", "/api/v1/me")[k % 3]
                r = server.get(path, headers=tenant.headers)
            with lock:
                statuses.append((r.status, r.body[:200]))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return statuses


def test_runtime_through_transaction_pooling(db, server_factory, bouncer, logins):
    server = server_factory(**pooled_env(db, bouncer, logins))
    t = Tenant(db, credits=100000)
    statuses = hammer(server, t)
    bad = [s for s in statuses if s[0] not in (200, 202)]
    assert len(statuses) == 8 * 40 and not bad, bad[:5]
    # the CLI's own nexus_app connection goes through the pooler as well
    env = dict(db.env, **{k: str(v) for k, v in pooled_env(db, bouncer, logins).items()})
    for _ in range(5):
        r = harness.run_cli(["user", "list", "--org", t.domain], env)
        assert r.returncode == 0 and t.email in r.stdout, r.stderr
    assert "prepared statement" not in server.log()


def test_transaction_pooling_needs_runtime_logins(db, bouncer, logins):
    env = dict(db.env, DATABASE_POOL_MODE="transaction")
    p = harness.Process(["serve"], dict(env, PORT=str(harness.free_port())))
    rc, out = p.finish(60)
    lines = [l for l in out.splitlines() if l.startswith("nexusapi:")]
    assert rc not in (0, None) and len(lines) == 1 and "APP_DATABASE_URL" in lines[0], out
    assert "SET ROLE" in lines[0], out

    env = dict(env, APP_DATABASE_URL=bouncer.url(logins.app, db.name), WORKER_CONCURRENCY="2")
    p = harness.Process(["worker"], env)
    rc, out = p.finish(60)
    lines = [l for l in out.splitlines() if l.startswith("nexusapi:")]
    assert rc not in (0, None) and len(lines) == 1 and "WORKER_DATABASE_URL" in lines[0], out


def test_transaction_pooling_needs_an_external_database():
    env = harness.base_env(DATABASE_POOL_MODE="transaction", DATABASE_URL=None)
    r = harness.run_cli(["config"], env)
    assert r.returncode == 2, r.stdout
    assert r.stderr.strip().count("\n") == 0 and "DATABASE_POOL_MODE" in r.stderr, r.stderr


def test_migrations_refuse_a_pooler(fresh_db, pg):
    b = pgbouncer.PgBouncer(pg, [fresh_db.name], pool_size=2)
    try:
        env = {"DATABASE_URL": b.url(fresh_db.name, fresh_db.name)}
        r = fresh_db.cli("migrate", "upgrade", "head", env=env)
        assert r.returncode == 1, (r.stdout, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "pooler" in lines[0] and "DATABASE_URL" in lines[0], r.stderr
        # nothing was applied
        assert fresh_db.sql("SELECT to_regclass('schema_migrations') IS NULL") == "t"
        # the same command on a direct connection works
        assert fresh_db.cli("migrate", "upgrade", "head").returncode == 0
    finally:
        b.close()


def started_line(worker):
    return [l for l in worker.log_lines() if l.get("msg") == "job workers started"][0]


def test_workers_listen_on_a_direct_connection(db, server_factory, bouncer, logins):
    env = pooled_env(db, bouncer, logins)
    server = server_factory(**env)
    t = Tenant(db, credits=1000)
    direct = db.pg.dsn(db.name, logins.worker)
    # a poll a minute apart: only a notification can finish the job in time
    w = Worker(db, **env, DATABASE_LISTEN_URL=direct, JOB_POLL_INTERVAL_MS=60000)
    try:
        assert started_line(w)["wake"] == "notify"
        time.sleep(1.0)  # the start-up claim is over; the dispatcher waits
        job_id = submit(server, t, "Wake the worker through its own connection.").json()["job_id"]
        j = wait_job(server, t, job_id, timeout=20)
        assert j["status"] == "completed", j
    finally:
        assert w.close() == 0, w.log()


def test_workers_poll_without_a_listen_connection(db, server_factory, bouncer, logins):
    env = pooled_env(db, bouncer, logins)
    server = server_factory(**env)
    t = Tenant(db, credits=1000)
    w = Worker(db, **env, JOB_POLL_INTERVAL_MS=200)
    try:
        assert started_line(w)["wake"] == "poll"
        ids = [submit(server, t, f"Polled job {i}.").json()["job_id"] for i in range(5)]
        for job_id in ids:
            assert wait_job(server, t, job_id, timeout=20)["status"] == "completed"
        assert w.stop() == 0, w.log()
        assert "prepared statement" not in w.log()
    finally:
        w.close()


def test_listen_url_through_a_pooler_is_refused(db, bouncer, logins):
    env = dict(db.env, **{k: str(v) for k, v in pooled_env(db, bouncer, logins).items()})
    env.update(WORKER_CONCURRENCY="2", DATABASE_LISTEN_URL=bouncer.url(logins.worker, db.name))
    rc, out = harness.Process(["worker"], env).finish(60)
    lines = [l for l in out.splitlines() if l.startswith("nexusapi:")]
    assert rc not in (0, None) and len(lines) == 1, out
    assert "DATABASE_LISTEN_URL" in lines[0] and "pooler" in lines[0], out


def test_session_mode_through_a_pooler_warns(db, server_factory, bouncer, logins):
    server = server_factory(APP_DATABASE_URL=bouncer.url(logins.app, db.name))
    warn = [l for l in server.log_lines()
            if l.get("level") == "warn" and "DATABASE_POOL_MODE" in l.get("msg", "")]
    assert warn, server.log()


def test_runtime_survives_a_pgbouncer_restart(db, server_factory, bouncer, logins):
    server = server_factory(**pooled_env(db, bouncer, logins))
    t = Tenant(db, credits=1000)
    assert server.get("/api/v1/me", headers=t.headers).status == 200
    bouncer.stop(signal.SIGTERM)
    assert server.get("/health").status == 503
    bouncer.start()
    deadline = time.time() + 10
    while server.get("/health").status != 200:
        assert time.time() < deadline, server.log()
        time.sleep(0.2)
    for _ in range(10):  # every thread's connection was cut: each reconnects
        assert server.get("/api/v1/me", headers=t.headers).status == 200
    assert uuid.UUID(submit(server, t).json()["job_id"])
