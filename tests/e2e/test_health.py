"""GET /health through the real binary: 200 with the database up, 503 while
PostgreSQL is stopped, 200 again once it is back - no server restart."""
import time


def poll(server, want, timeout, consecutive=1):
    """Polls /health until `consecutive` answers in a row have status want."""
    deadline = time.time() + timeout
    streak, last = 0, None
    while time.time() < deadline:
        last = server.get("/health", timeout=5)
        streak = streak + 1 if last.status == want else 0
        if streak >= consecutive:
            return last
        time.sleep(0.05)
    raise AssertionError(f"/health never gave {want} x{consecutive}; last {last.status} {last.body!r}")


def test_health_ok(server):
    r = server.get("/health")
    assert r.status == 200
    assert r.header("Content-Type") == "application/json"
    assert r.json() == {"status": "ok", "database": "ok", "version": r.json()["version"]}
    assert r.json()["version"]


def test_health_follows_the_database(pg, server_factory):
    threads = 3
    server = server_factory(HTTP_THREADS=threads)
    # Every pool thread opens its connection.
    poll(server, 200, 10, consecutive=3 * threads)
    try:
        pg.stop()
        # Each thread's next query fails: broken connection, then refused
        # connects; several in a row prove every thread reports it.
        r = poll(server, 503, 30, consecutive=3 * threads)
        assert r.header("Content-Type") == "application/json"
        assert r.json()["status"] == "degraded"
        assert r.json()["database"] == "unavailable"
        assert "SELECT" not in r.body.decode() and "connection" not in r.body.decode()
    finally:
        pg.start()
    r = poll(server, 200, 30, consecutive=3 * threads)
    assert r.json() == {"status": "ok", "database": "ok", "version": r.json()["version"]}
    # The failure was logged for operators (with detail), once per failed check.
    assert any(l.get("msg") == "health check failed" for l in server.log_lines())
    assert server.proc.poll() is None


def test_no_request_fails_after_a_database_restart(db, pg, server_factory):
    """A restart closes every idle pooled connection; each thread notices
    before its next query and reconnects, so no request after the restart
    fails."""
    from jobs_util import Tenant
    threads = 2
    server = server_factory(HTTP_THREADS=threads)
    t = Tenant(db, credits=0)
    for _ in range(10 * threads):  # every pool thread opens its connection
        assert server.get("/api/v1/me", headers=t.headers).status == 200
    pg.stop()
    pg.start()
    for _ in range(10 * threads):
        r = server.get("/api/v1/me", headers=t.headers)
        assert r.status == 200, r.body
    assert any(l.get("msg") == "database closed an idle connection" for l in server.log_lines())


def test_a_body_error_stays_a_body_error_while_the_database_is_down(db, pg, server_factory):
    """The caller check before a body error cannot reach the database: the
    client still gets the 400 about its body, not a 503."""
    from jobs_util import Tenant
    server = server_factory(HTTP_THREADS=1)
    t = Tenant(db, credits=0)
    headers = {**t.headers, "Content-Type": "application/json"}
    try:
        pg.stop()
        r = server.request("POST", "/api/v1/summarise", body="{", headers=headers)
        assert r.status == 400, r.body
    finally:
        pg.start()
    r = server.request("POST", "/api/v1/summarise", body="{", headers=headers)
    assert r.status == 400, r.body
