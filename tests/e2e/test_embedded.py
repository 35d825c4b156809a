"""The embedded database (issue 2, item 3), as a new user meets it: no
DATABASE_URL, NEXUS_DATA_DIR pointing at an empty directory. Commands start
the cluster for their duration and stop it; a running `serve` is reused;
SIGINT leaves no postgres process; concurrent starts, a crashed owner and a
stale postmaster.pid are handled."""
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

import harness

PG_CTL = os.path.join(harness.PG_BINDIR, "pg_ctl")


def versions():
    return sorted(f.split("_", 1)[0] for f in os.listdir(os.path.join(harness.ROOT, "migrations"))
                  if re.match(r"^\d+_.+\.sql$", f))


def cluster_pids(data):
    """Processes working in the cluster directory (the postmaster and its
    children all chdir there)."""
    pg = os.path.realpath(os.path.join(data, "pg"))
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{p}/cwd") == pg:
                out.append(int(p))
        except OSError:
            pass
    return out


def wait_no_cluster(data, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not cluster_pids(data):
            return True
        time.sleep(0.1)
    return False


def ok(r):
    assert r.returncode == 0, f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    return r


@pytest.fixture
def data_dir():
    """An empty NEXUS_DATA_DIR under /tmp (0755 parents, so the postgres
    account can reach it when the tests run as root). Any cluster left
    running is stopped, and the test fails."""
    top = tempfile.mkdtemp(prefix="nexus-emb-", dir="/tmp")
    os.chmod(top, 0o755)
    data = os.path.join(top, "data")
    yield data
    left = cluster_pids(data)
    if left:
        pw = harness._pg_user()
        subprocess.run([PG_CTL, "-D", os.path.join(data, "pg"), "-m", "immediate", "stop"],
                       preexec_fn=harness._demote(pw) if pw else None, capture_output=True)
    shutil.rmtree(top, ignore_errors=True)
    assert not left, f"postgres processes left behind: {left}"


def emb_env(data, **extra):
    return harness.base_env(NEXUS_DATA_DIR=data, DATABASE_URL=None, APP_DATABASE_URL=None,
                            WORKER_DATABASE_URL=None, LOG_LEVEL="info", **extra)


def start_server(env):
    try:
        return harness.Server(env)
    except RuntimeError as e:
        if "not available" in str(e):
            pytest.skip("serve is not available yet")
        raise


def test_command_starts_and_stops_the_cluster(data_dir):
    env = emb_env(data_dir)
    r = ok(harness.run_cli(["migrate", "current"], env))
    assert r.stdout.startswith("base"), r.stdout
    assert "initialising the embedded database" in r.stderr
    assert os.path.exists(os.path.join(data_dir, "pg", "PG_VERSION"))
    assert not cluster_pids(data_dir), "the command left its cluster running"

    r = ok(harness.run_cli(["migrate", "upgrade", "head"], env))
    assert "initialising" not in r.stderr
    assert not cluster_pids(data_dir)

    # a second run reuses the cluster and its data
    r = ok(harness.run_cli(["migrate", "current"], env))
    assert "(head)" in r.stdout and "pending" not in r.stdout
    assert "initialising" not in r.stderr and "starting the embedded database" in r.stderr
    assert not cluster_pids(data_dir)
    hist = ok(harness.run_cli(["migrate", "history"], env)).stdout.splitlines()
    assert [ln.split()[0] for ln in hist] == list(reversed(versions()))
    assert all("applied" in ln for ln in hist)


def test_private_socket_and_files(data_dir):
    env = emb_env(data_dir)
    ok(harness.run_cli(["migrate", "current"], env))
    st = os.stat(os.path.join(data_dir, "pg"))
    assert st.st_mode & 0o077 == 0
    run = os.path.join(data_dir, "run")
    assert os.stat(run).st_mode & 0o777 == 0o700
    if os.geteuid() == 0:
        pw = harness._pg_user()
        assert st.st_uid == pw.pw_uid and os.stat(run).st_uid == pw.pw_uid
        assert os.stat(data_dir).st_uid == 0  # DATA_DIR itself stays ours
    conf = open(os.path.join(data_dir, "pg", "nexus.conf")).read()
    assert "listen_addresses = ''" in conf


def test_concurrent_first_starts(data_dir):
    env = emb_env(data_dir)
    procs = [subprocess.Popen([harness.BIN, "migrate", "upgrade", "head"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=tempfile.gettempdir())
             for _ in range(3)]
    outs = [p.communicate(timeout=180) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
    stderr = "".join(err for _, err in outs)
    assert stderr.count("initialising the embedded database") == 1
    applied = sorted(ln.split()[1] for out, _ in outs for ln in out.splitlines()
                     if ln.startswith("applied "))
    assert applied == versions()
    assert wait_no_cluster(data_dir, 10), "the last command out did not stop the cluster"
    r = ok(harness.run_cli(["migrate", "check"], env))
    assert "up to date" in r.stdout


def test_long_data_dir_uses_a_short_socket_dir(data_dir):
    deep = os.path.join(data_dir, "x" * 60, "y" * 60)
    os.makedirs(deep, mode=0o755)
    for d in (data_dir, os.path.dirname(deep), deep):
        os.chmod(d, 0o755)
    env = emb_env(deep)
    try:
        r = ok(harness.run_cli(["migrate", "current"], env))
        assert r.stdout.startswith("base")
        assert not os.path.exists(os.path.join(deep, "run"))
    finally:
        left = cluster_pids(deep)
    assert not left


@pytest.mark.skipif(os.geteuid() != 0, reason="only root drops to the postgres account")
def test_private_data_dir_as_root_keeps_the_cluster_reachable(data_dir):
    """A checkout under a private home (/root, 0700): the postgres account
    cannot reach ./.nexus, so the cluster's files go under /var/lib/nexusapi
    while the locks and the JWT secret stay in the data directory."""
    if os.geteuid() != 0:
        pytest.skip("only a root process hands the cluster to another account")
    os.makedirs(data_dir, mode=0o700)
    os.chmod(data_dir, 0o700)
    inner = os.path.join(data_dir, "inner")
    r = ok(harness.run_cli(["migrate", "current"], emb_env(inner)))
    assert r.stdout.startswith("base")
    m = re.search(r"/var/lib/nexusapi/[0-9a-f]{16}", r.stderr)
    assert m, r.stderr
    home = m.group(0)
    try:
        assert os.path.isdir(os.path.join(home, "pg"))
        assert not os.path.exists(os.path.join(inner, "pg"))
        r = ok(harness.run_cli(["migrate", "current"], emb_env(inner)))
        assert "initialising" not in r.stderr  # the second run reuses the cluster
        assert not cluster_pids(home)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_stale_postmaster_pid_naming_a_live_stranger(data_dir):
    env = emb_env(data_dir)
    ok(harness.run_cli(["migrate", "current"], env))
    # after a crash, the pid in postmaster.pid may belong to another process
    with open(os.path.join(data_dir, "pg", "postmaster.pid"), "w") as f:
        f.write(f"{os.getpid()}\n{os.path.join(data_dir, 'pg')}\n1700000000\n5432\n"
                f"{os.path.join(data_dir, 'run')}\n\n  5432001         0\nready   \n")
    # and so may the one in the socket directory's lock file
    with open(os.path.join(data_dir, "run", ".s.PGSQL.5432.lock"), "w") as f:
        f.write(f"{os.getpid()}\n{os.path.join(data_dir, 'pg')}\n1700000000\n5432\n"
                f"{os.path.join(data_dir, 'run')}\n")
    r = ok(harness.run_cli(["migrate", "current"], env, timeout=120))
    assert r.stdout.startswith("base")
    assert not cluster_pids(data_dir)


def test_serve_shares_the_cluster_and_sigint_stops_it(data_dir):
    env = emb_env(data_dir)
    srv = start_server(env)
    try:
        assert cluster_pids(data_dir)
        r = ok(harness.run_cli(["migrate", "current"], env))
        assert "(head)" in r.stdout  # serve migrated it at start
        assert "starting the embedded database" not in r.stderr
        assert "stopping the embedded database" not in r.stderr
        assert cluster_pids(data_dir), "migrate stopped the cluster serve is using"
        assert srv.proc.poll() is None
    finally:
        rc = srv.stop(signal.SIGINT)
        log = srv.log()
        os.unlink(srv.logfile.name)
    assert rc == 0, log
    assert wait_no_cluster(data_dir, 10), "SIGINT left postgres running"


def test_cluster_of_a_crashed_serve_is_reused_then_stopped(data_dir):
    env = emb_env(data_dir)
    srv = start_server(env)
    try:
        os.killpg(srv.proc.pid, signal.SIGKILL)
        srv.proc.wait(timeout=10)
    finally:
        os.unlink(srv.logfile.name)
    assert cluster_pids(data_dir), "postgres should outlive a SIGKILLed serve"
    r = ok(harness.run_cli(["migrate", "current"], env))
    assert "(head)" in r.stdout
    assert "starting the embedded database" not in r.stderr
    assert wait_no_cluster(data_dir, 10), "the last nexusapi out did not stop the cluster"


def psql(env, sql):
    """`nexusapi db psql` running one command: stdout (unaligned, tuples only)."""
    return ok(harness.run_cli(["db", "psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                               "-c", sql], env)).stdout


def applied(env):
    return psql(env, "SELECT version FROM schema_migrations ORDER BY version").split()


def one_line(text):
    lines = [ln for ln in text.splitlines() if ln.strip()
             and "the embedded database" not in ln]  # start/stop progress notes
    assert len(lines) == 1, text
    return lines[0]


def test_issue11_downgrade_is_not_undone_by_the_next_command(data_dir):
    """Issue 11, item 1: after `migrate downgrade 0001`, `db psql` and the
    operator verbs leave the schema alone, `serve` refuses with one line and
    `serve --migrate` (or `migrate upgrade head`) is what brings it back."""
    env = emb_env(data_dir)
    head = versions()[-1]
    ok(harness.run_cli(["migrate", "upgrade", "head"], env))
    r = ok(harness.run_cli(["migrate", "downgrade", "0001"], env))
    assert "reverted 0002 add_avatar_url_to_users" in r.stdout
    down = r.stdout

    # the seed's demo: inspect the table after the downgrade
    table = psql(env, r"\d users")
    assert "email" in table and "avatar_url" not in table, table
    assert applied(env) == ["0001"]
    assert "pinned" in down, down

    # operator verbs need the schema they were built for: one line, exit 1
    for args in (["org", "list"], ["user", "list", "--org", "acme.test"],
                 ["credits", "show", "acme.test"], ["token", "ada@acme.test"]):
        r = harness.run_cli(args, env)
        assert r.returncode == 1, (args, r.stdout, r.stderr)
        line = one_line(r.stderr)
        assert "0001" in line and head in line and "nexusapi migrate upgrade head" in line, line
    assert applied(env) == ["0001"]

    # the pin is shown by current and history
    r = ok(harness.run_cli(["migrate", "current"], env))
    assert r.stdout.startswith("0001 initial_schema") and "pinned" in r.stdout, r.stdout
    hist = ok(harness.run_cli(["migrate", "history"], env)).stdout.splitlines()
    assert [ln for ln in hist if "PINNED" in ln] == [ln for ln in hist if ln.startswith("0001")]

    # serve and worker say what they do not do, in one line, and exit non-zero
    for args in (["serve"], ["worker"]):
        rc, out = harness.Process(args, dict(env, PORT="0", WORKER_CONCURRENCY="1")).finish()
        assert rc == 1, (args, rc, out)
        line = one_line(out)
        assert "0001" in line and "pinned" in line and head in line, line
        assert "nexusapi migrate upgrade head" in line, line
    assert "nexusapi serve --migrate" in line
    assert applied(env) == ["0001"]
    assert wait_no_cluster(data_dir, 10)

    # serve --migrate upgrades, says so, and clears the pin
    srv = harness.Server(env, args=("serve", "--migrate"))
    try:
        r = ok(harness.run_cli(["migrate", "current"], env))
        assert "(head)" in r.stdout and "pinned" not in r.stdout, r.stdout
    finally:
        assert srv.stop(signal.SIGINT) == 0
        log = srv.log()
        os.unlink(srv.logfile.name)
    assert f"database migrated from 0001 to {head}" in log, log
    ok(harness.run_cli(["org", "list"], env))
    assert "avatar_url" in psql(env, r"\d users")


def test_issue11_upgrade_head_clears_the_pin(data_dir):
    env = emb_env(data_dir)
    ok(harness.run_cli(["migrate", "upgrade", "head"], env))
    ok(harness.run_cli(["migrate", "downgrade", "-2"], env))
    r = ok(harness.run_cli(["migrate", "upgrade", versions()[-2]], env))
    assert "pinned" in r.stdout  # short of head: still where the operator put it
    r = ok(harness.run_cli(["migrate", "upgrade", "head"], env))
    assert "pinned" not in r.stdout, r.stdout
    assert psql(env, "SELECT to_regclass('schema_migrations_pin') IS NULL") == "t\n"
    srv = harness.Server(env)
    try:
        assert srv.get("/health").status == 200
    finally:
        assert srv.stop(signal.SIGINT) == 0
        log = srv.log()
        os.unlink(srv.logfile.name)
    assert "database migrated" not in log, log


def test_issue11_only_serve_brings_a_behind_database_to_head(data_dir):
    """A fresh or behind (never downgraded) embedded database: db psql and
    the operator verbs leave it as it is, serve migrates it and says so."""
    env = emb_env(data_dir)
    head = versions()[-1]
    assert psql(env, "SELECT to_regclass('users') IS NULL") == "t\n"
    r = harness.run_cli(["org", "list"], env)
    assert r.returncode == 1, r.stderr
    line = one_line(r.stderr)
    assert "base" in line and head in line and "nexusapi migrate upgrade head" in line, line
    assert psql(env, "SELECT to_regclass('schema_migrations') IS NULL") == "t\n"

    ok(harness.run_cli(["migrate", "upgrade", "0003"], env))
    srv = harness.Server(env)
    try:
        assert srv.get("/health").status == 200
    finally:
        assert srv.stop(signal.SIGINT) == 0
        log = srv.log()
        os.unlink(srv.logfile.name)
    assert f"database migrated from 0003 to {head}" in log, log
    assert applied(env) == versions()

    srv = harness.Server(env)  # at head: nothing to do, nothing said
    try:
        assert srv.get("/health").status == 200
    finally:
        assert srv.stop(signal.SIGINT) == 0
        log = srv.log()
        os.unlink(srv.logfile.name)
    assert "database migrated" not in log, log
