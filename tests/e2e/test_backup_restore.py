"""The runbook's backup and restore of the embedded cluster (docs/
operations.md), run as written: data written through the operator verbs
and the API, `nexusapi db dump` while `serve` runs, a fresh NEXUS_DATA_DIR
restored with `nexusapi db restore` (and its jwt_secret copied), data read
back through the API and the CLI. A dump never overwrites a file; a restore
refuses a database that already holds data and leaves nothing behind when
it fails."""
import os
import shutil
import subprocess
import tempfile

import pytest

import harness
from jobs_util import wait_for

PG_CTL = os.path.join(harness.PG_BINDIR, "pg_ctl")


def cluster_pids(data):
    pg = os.path.realpath(os.path.join(data, "pg"))
    out = []
    for p in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.readlink(f"/proc/{p}/cwd") == pg:
                out.append(int(p))
        except OSError:
            pass
    return out


@pytest.fixture
def top():
    """A directory for two NEXUS_DATA_DIRs and the dump; clusters left
    running are stopped and fail the test."""
    top = tempfile.mkdtemp(prefix="nexus-backup-", dir="/tmp")
    os.chmod(top, 0o755)
    yield top
    left = []
    for name in ("a", "b"):
        data = os.path.join(top, name)
        pids = cluster_pids(data)
        if pids:
            left += pids
            pw = harness._pg_user()
            subprocess.run([PG_CTL, "-D", os.path.join(data, "pg"), "-m", "immediate", "stop"],
                           preexec_fn=harness._demote(pw) if pw else None, capture_output=True)
    shutil.rmtree(top, ignore_errors=True)
    assert not left, f"postgres processes left behind: {left}"


def emb_env(data, **extra):
    env = harness.base_env(NEXUS_DATA_DIR=data, DATABASE_URL=None, APP_DATABASE_URL=None,
                           WORKER_DATABASE_URL=None, JWT_SECRET_KEY=None, **extra)
    return env


def ok(r):
    assert r.returncode == 0, f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    return r


SECURITY_SQL = ("SELECT (SELECT count(*) FROM pg_class WHERE relforcerowsecurity) || ' ' || "
                "(SELECT count(*) FROM pg_policies) || ' ' || "
                "(SELECT count(*) FROM information_schema.role_table_grants "
                "WHERE grantee IN ('nexus_app', 'nexus_worker'))")


def security(env):
    """Tables forcing RLS, policies, grants to the runtime roles."""
    return ok(harness.run_cli(["db", "psql", "--", "-X", "-At", "-c", SECURITY_SQL], env)).stdout


def test_backup_then_restore_into_a_fresh_data_dir(top):
    a, b, dump = os.path.join(top, "a"), os.path.join(top, "b"), os.path.join(top, "nexus.dump")
    env_a = emb_env(a)
    ok(harness.run_cli(["migrate", "upgrade", "head"], env_a))
    # data written with the operator verbs...
    ok(harness.run_cli(["org", "create", "--name", "Backup Co", "--domain", "backup.test"], env_a))
    ok(harness.run_cli(["user", "add", "ops@backup.test", "--org", "backup.test", "--role",
                        "admin"], env_a))
    ok(harness.run_cli(["credits", "grant", "backup.test", "70", "--reason", "opening"], env_a))
    token = ok(harness.run_cli(["token", "ops@backup.test"], env_a)).stdout.strip()
    auth = {"Authorization": f"Bearer {token}"}
    # ...and through the API, with a job run to completion
    server = harness.Server(dict(env_a, WORKER_CONCURRENCY="1", JOB_POLL_INTERVAL_MS="200"))
    try:
        r = server.request("POST", "/api/v1/summarise", headers=auth,
                           body={"text": "Backups are tested. Restores are what count."})
        assert r.status == 202, r.body
        job_id = r.json()["job_id"]
        wait_for(lambda: server.get(f"/api/v1/jobs/{job_id}", headers=auth).json()["status"]
                 == "completed", 60, what="the job to complete")
        before = {p: server.get(p, headers=auth).json()
                  for p in ("/api/v1/me", "/api/v1/credits", f"/api/v1/jobs/{job_id}")}
        # the backup, while serving
        r = ok(harness.run_cli(["db", "dump", dump], env_a))
        assert f'dumped the database to "{dump}"' in r.stderr
        assert os.path.getsize(dump) > 0 and not os.path.exists(dump + ".partial")
        # a second dump to the same file is refused, the first one kept
        size = os.path.getsize(dump)
        r = harness.run_cli(["db", "dump", dump], env_a)
        assert r.returncode == 1 and "already exists" in r.stderr
        assert os.path.getsize(dump) == size
    finally:
        assert server.close() == 0

    # the restore: a fresh data directory, the dump, the secret beside it
    env_b = emb_env(b)
    r = ok(harness.run_cli(["db", "restore", dump], env_b))
    assert f'restored "{dump}"' in r.stderr
    shutil.copy(os.path.join(a, "jwt_secret"), os.path.join(b, "jwt_secret"))
    assert not cluster_pids(b)
    assert security(env_b) == security(env_a)  # row-level security and grants came along
    r = ok(harness.run_cli(["credits", "show", "backup.test"], env_b))
    assert "60" in r.stdout  # 70 granted, 10 for the job
    server = harness.Server(env_b)
    try:
        after = {p: server.get(p, headers=auth) for p in before}
        for p, resp in after.items():   # the old token works: same secret, same user
            assert resp.status == 200, (p, resp.body)
            assert resp.json() == before[p], p
        assert server.get("/api/v1/credits", headers=auth).json()["balance"] == 60
    finally:
        assert server.close() == 0

    # restoring over data is refused and changes nothing
    r = harness.run_cli(["db", "restore", dump], env_b)
    assert r.returncode == 1 and "already holds tables" in r.stderr
    assert "60" in ok(harness.run_cli(["credits", "show", "backup.test"], env_b)).stdout


def test_failed_restore_leaves_the_database_empty(top):
    b, bad = os.path.join(top, "b"), os.path.join(top, "bad.dump")
    with open(bad, "wb") as f:
        f.write(b"PGDMP this is not a dump")
    env_b = emb_env(b)
    r = harness.run_cli(["db", "restore", bad], env_b)
    assert r.returncode == 1
    assert "the restore failed and was rolled back" in r.stderr
    r = harness.run_cli(["db", "restore", os.path.join(top, "missing.dump")], env_b)
    assert r.returncode == 1 and "cannot read" in r.stderr
    r = ok(harness.run_cli(["migrate", "current"], env_b))
    assert r.stdout.startswith("base")  # nothing was left half-restored
    r = harness.run_cli(["db", "dump"], env_b)
    assert r.returncode == 2 and "dump takes one FILE" in r.stderr
