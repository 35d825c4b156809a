"""Migrations (issue 2, item 4) against a real PostgreSQL database: the seed's
Task 2 demo gate, refusal of an edited applied file, concurrent migrators,
`check`, `--sql`, `revision -m` and usage errors."""
import os
import re
import shutil
import subprocess
import tempfile
import time

import pytest

import harness

MIGRATIONS = os.path.join(harness.ROOT, "migrations")


def versions():
    """The migration files in the source tree, ascending: [(version, name)]."""
    out = []
    for f in sorted(os.listdir(MIGRATIONS)):
        m = re.match(r"^(\d+)_(.+)\.sql$", f)
        if m:
            out.append((m.group(1), m.group(2)))
    return out


def ok(r):
    assert r.returncode == 0, f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    return r


def applied(db):
    if db.sql("SELECT to_regclass('schema_migrations') IS NULL") == "t":
        return []
    out = db.sql("SELECT version FROM schema_migrations ORDER BY version")
    return out.split() if out else []


def has_avatar(db):
    return db.sql("SELECT count(*) FROM information_schema.columns "
                  "WHERE table_name = 'users' AND column_name = 'avatar_url'") == "1"


@pytest.fixture
def mig_dir():
    d = tempfile.mkdtemp(prefix="nexus-mig-")
    shutil.copytree(MIGRATIONS, os.path.join(d, "migrations"))
    yield os.path.join(d, "migrations")
    shutil.rmtree(d, ignore_errors=True)


def test_task2_demo_gate(fresh_db):
    db = fresh_db
    all_versions = [v for v, _ in versions()]
    assert all_versions[:2] == ["0001", "0002"]

    ok(db.cli("migrate", "upgrade", "0001"))
    assert applied(db) == ["0001"]
    assert not has_avatar(db)

    db.sql("INSERT INTO organisations (id, name, domain) VALUES "
           "('11111111-1111-4111-8111-111111111111', 'Acme', 'acme.test'), "
           "('22222222-2222-4222-8222-222222222222', 'Globex', 'globex.test')")
    db.sql("INSERT INTO users (organisation_id, email, name, role) VALUES "
           "('11111111-1111-4111-8111-111111111111', 'a@acme.test', 'Ann', 'admin'), "
           "('22222222-2222-4222-8222-222222222222', 'b@globex.test', 'Bob', 'member')")
    before = db.sql("SELECT id, organisation_id, email, name, role, created_at FROM users "
                    "ORDER BY email")
    assert before.count("\n") == 1

    r = ok(db.cli("migrate", "upgrade", "head"))
    assert "applied 0002 add_avatar_url_to_users" in r.stdout
    assert applied(db) == all_versions
    assert has_avatar(db)
    assert db.sql("SELECT data_type || ':' || character_maximum_length || ':' || is_nullable "
                  "FROM information_schema.columns WHERE table_name = 'users' "
                  "AND column_name = 'avatar_url'") == "character varying:500:YES"
    assert db.sql("SELECT id, organisation_id, email, name, role, created_at FROM users "
                  "ORDER BY email") == before

    hist = ok(db.cli("migrate", "history")).stdout.splitlines()
    # newest first; every version listed once and marked applied
    assert [line.split()[0] for line in hist] == list(reversed(all_versions))
    for line in hist:
        assert "applied" in line and "pending" not in line, line
    assert "(head)" in hist[0]
    assert "add_avatar_url_to_users" in hist[-2] and "initial_schema" in hist[-1]

    # back to 0002, then the gate's `downgrade -1` removes the column
    ok(db.cli("migrate", "downgrade", "0002"))
    assert applied(db) == ["0001", "0002"]
    r = ok(db.cli("migrate", "downgrade", "-1"))
    assert "reverted 0002 add_avatar_url_to_users" in r.stdout
    assert applied(db) == ["0001"]
    assert not has_avatar(db)
    assert db.sql("SELECT id, organisation_id, email, name, role, created_at FROM users "
                  "ORDER BY email") == before
    cur = ok(db.cli("migrate", "current")).stdout
    assert cur.startswith("0001 initial_schema") and "pending" in cur

    hist = ok(db.cli("migrate", "history")).stdout.splitlines()
    marks = {line.split()[0]: ("applied" in line) for line in hist}
    assert marks["0001"] and not marks["0002"]

    ok(db.cli("migrate", "upgrade"))  # head by default
    assert applied(db) == all_versions
    assert has_avatar(db)
    assert db.sql("SELECT count(*) FROM users WHERE avatar_url IS NULL") == "2"
    cur = ok(db.cli("migrate", "current")).stdout
    assert "(head)" in cur and "pending" not in cur

    # downgrade to base and up again: every down section works
    ok(db.cli("migrate", "downgrade", "base"))
    assert applied(db) == []
    assert db.sql("SELECT to_regclass('users') IS NULL") == "t"
    ok(db.cli("migrate", "upgrade", "head"))
    assert applied(db) == all_versions


def test_edited_applied_migration_is_refused(fresh_db, mig_dir):
    db = fresh_db
    ok(db.cli("migrate", "upgrade", "head", "--dir", mig_dir))
    path = os.path.join(mig_dir, [f for f in os.listdir(mig_dir) if f.startswith("0002_")][0])
    with open(path, "a") as f:
        f.write("\n-- an innocent-looking edit\n")
    for args in (("upgrade", "head"), ("downgrade", "-1"), ("upgrade", "head", "--sql")):
        r = db.cli("migrate", *args, "--dir", mig_dir)
        assert r.returncode == 1, (args, r.stdout, r.stderr)
        assert "0002" in r.stderr and "changed" in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert applied(db) == [v for v, _ in versions()]  # nothing was reverted
    r = db.cli("migrate", "check", "--dir", mig_dir)
    assert r.returncode == 1 and "0002" in r.stderr
    hist = ok(db.cli("migrate", "history", "--dir", mig_dir)).stdout
    assert re.search(r"^0002 .*CHANGED", hist, re.M), hist
    # the compiled-in files still match
    ok(db.cli("migrate", "check"))


def test_concurrent_upgrades_apply_each_migration_once(fresh_db):
    db = fresh_db
    procs = [subprocess.Popen([harness.BIN, "migrate", "upgrade", "head"], env=db.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=tempfile.gettempdir())
             for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
    lines = [ln for out, _ in outs for ln in out.splitlines() if ln.startswith("applied ")]
    assert sorted(ln.split()[1] for ln in lines) == [v for v, _ in versions()]
    assert db.sql("SELECT count(*), count(DISTINCT version) FROM schema_migrations") == \
        f"{len(versions())}|{len(versions())}"


def test_check_exit_codes(fresh_db):
    db = fresh_db
    r = db.cli("migrate", "check")
    assert r.returncode == 1 and "behind" in r.stderr and "migrate upgrade head" in r.stderr
    ok(db.cli("migrate", "upgrade", "head"))
    r = ok(db.cli("migrate", "check"))
    assert "up to date" in r.stdout
    ok(db.cli("migrate", "downgrade", "-1"))
    r = db.cli("migrate", "check")
    assert r.returncode == 1 and "behind" in r.stderr


def test_sql_prints_and_changes_nothing(fresh_db):
    db = fresh_db
    r = ok(db.cli("migrate", "upgrade", "head", "--sql"))
    assert "ALTER TABLE users ADD COLUMN avatar_url" in r.stdout
    assert "INSERT INTO schema_migrations" in r.stdout
    assert r.stdout.count("BEGIN;") == r.stdout.count("COMMIT;") >= 2
    assert applied(db) == []
    assert db.sql("SELECT to_regclass('schema_migrations') IS NULL") == "t"
    assert db.sql("SELECT to_regclass('users') IS NULL") == "t"

    # the printed script is runnable as is, piped into psql
    db.pg.psql(r.stdout, dbname=db.name, user=db.name, script=True)
    assert applied(db) == [v for v, _ in versions()]
    ok(db.cli("migrate", "check"))

    r = ok(db.cli("migrate", "downgrade", "0001", "--sql"))
    assert "DROP COLUMN avatar_url" in r.stdout
    assert "DELETE FROM schema_migrations" in r.stdout
    assert has_avatar(db)
    assert applied(db) == [v for v, _ in versions()]


def test_revision_writes_the_next_file(fresh_db, mig_dir):
    last = int(versions()[-1][0])
    r = ok(harness.run_cli(["migrate", "revision", "-m", "Add widgets, v2!", "--dir", mig_dir],
                           fresh_db.env))
    path = r.stdout.strip()
    assert path == os.path.join(mig_dir, f"{last + 1:04d}_add_widgets_v2.sql")
    text = open(path).read()
    assert "-- nexus:up" in text and "-- nexus:down" in text
    # fill it in and try it before rebuilding
    with open(path, "w") as f:
        f.write("-- nexus:up\nCREATE TABLE widgets (id int);\n-- nexus:down\nDROP TABLE widgets;\n")
    db = fresh_db
    r = ok(db.cli("migrate", "upgrade", "head", "--dir", mig_dir))
    assert f"applied {last + 1:04d} add_widgets_v2" in r.stdout
    assert db.sql("SELECT to_regclass('widgets') IS NOT NULL") == "t"
    ok(db.cli("migrate", "downgrade", "-1", "--dir", mig_dir))
    assert db.sql("SELECT to_regclass('widgets') IS NULL") == "t"
    # a second revision gets the number after
    r = ok(harness.run_cli(["migrate", "revision", "-m", "more", "--dir", mig_dir], db.env))
    assert os.path.basename(r.stdout.strip()) == f"{last + 2:04d}_more.sql"


def test_no_transaction_migration(fresh_db, mig_dir):
    db = fresh_db
    ok(db.cli("migrate", "upgrade", "head", "--dir", mig_dir))
    nxt = int(versions()[-1][0]) + 1
    with open(os.path.join(mig_dir, f"{nxt:04d}_concurrent_index.sql"), "w") as f:
        f.write("-- nexus:no-transaction\n-- nexus:up\n"
                "CREATE INDEX CONCURRENTLY users_email_ci ON users (lower(email));\n"
                "-- nexus:down\nDROP INDEX CONCURRENTLY users_email_ci;\n")
    ok(db.cli("migrate", "upgrade", "head", "--dir", mig_dir))
    assert db.sql("SELECT to_regclass('users_email_ci') IS NOT NULL") == "t"
    ok(db.cli("migrate", "downgrade", "-1", "--dir", mig_dir))
    assert db.sql("SELECT to_regclass('users_email_ci') IS NULL") == "t"


def test_failed_migration_rolls_back(fresh_db, mig_dir):
    db = fresh_db
    ok(db.cli("migrate", "upgrade", "head", "--dir", mig_dir))
    nxt = int(versions()[-1][0]) + 1
    with open(os.path.join(mig_dir, f"{nxt:04d}_broken.sql"), "w") as f:
        f.write("-- nexus:up\nCREATE TABLE half_done (id int);\nSELECT no_such_function();\n"
                "-- nexus:down\n")
    r = db.cli("migrate", "upgrade", "head", "--dir", mig_dir)
    assert r.returncode == 1 and f"{nxt:04d}" in r.stderr and "no_such_function" in r.stderr
    assert db.sql("SELECT to_regclass('half_done') IS NULL") == "t"
    assert f"{nxt:04d}" not in applied(db)


@pytest.mark.parametrize("args", [
    [], ["bogus"], ["downgrade"], ["upgrade", "nosuchrev"], ["upgrade", "head", "extra"],
    ["history", "--sql"], ["revision"], ["revision", "-m", "!!!"], ["upgrade", "--frobnicate"],
    ["current", "-m", "x"], ["downgrade", "-x"],
])
def test_bad_usage(fresh_db, args):
    r = fresh_db.cli("migrate", *args)
    assert r.returncode == 2, (args, r.stdout, r.stderr)
    assert r.stderr.startswith("nexusapi: ") and "usage: nexusapi migrate" in r.stderr
    assert applied(fresh_db) == []


def test_bad_migration_file_is_refused(fresh_db, mig_dir):
    with open(os.path.join(mig_dir, "0099_bad.sql"), "w") as f:
        f.write("CREATE TABLE oops (id int);\n")
    r = fresh_db.cli("migrate", "upgrade", "head", "--dir", mig_dir)
    assert r.returncode == 1 and "0099_bad.sql" in r.stderr
    assert applied(fresh_db) == []


def pinned(db):
    return db.sql("SELECT to_regclass('schema_migrations_pin') IS NOT NULL") == "t" and \
        db.sql("SELECT count(*) FROM schema_migrations_pin") == "1"


def refusal(db, *args):
    """A long-running verb that must refuse: its one line (exit status 1)."""
    rc, out = harness.Process(args, dict(db.env, PORT="0", WORKER_CONCURRENCY="1")).finish()
    assert rc == 1, (args, rc, out)
    lines = out.strip().splitlines()
    assert len(lines) == 1, out
    return lines[0]


def test_issue11_downgrade_pins_an_external_database(db):
    """Issue 11, item 1, with DATABASE_URL: the pin lives in the database, so
    every later process sees it; serve names it; --migrate or `upgrade head`
    clears it."""
    head = versions()[-1][0]
    r = ok(db.cli("migrate", "downgrade", "0001"))
    assert "pinned by a downgrade" in r.stdout, r.stdout
    assert pinned(db) and applied(db) == ["0001"]
    assert "pinned" in ok(db.cli("migrate", "current")).stdout

    for verb in ("serve", "worker"):
        line = refusal(db, verb)
        assert f"needs the database at {head} (head) but it is at 0001, pinned" in line, line
        assert "nexusapi migrate upgrade head" in line and "nexusapi serve --migrate" in line
    r = db.cli("org", "list")
    assert r.returncode == 1 and "0001" in r.stderr and "pinned" in r.stderr, r.stderr
    assert applied(db) == ["0001"] and pinned(db)

    srv = harness.Server(db.env, args=("serve", "--migrate"))
    status = srv.get("/health").status
    assert srv.close() == 0 and status == 200
    assert applied(db) == [v for v, _ in versions()] and not pinned(db)

    ok(db.cli("migrate", "downgrade", "-1"))
    assert pinned(db)
    r = ok(db.cli("migrate", "upgrade", "head"))
    assert "pinned" not in r.stdout and not pinned(db)
    ok(db.cli("org", "list"))


def test_issue11_external_database_behind_head(fresh_db):
    """Never downgraded, behind head: serve refuses without --migrate (a
    shared database is upgraded on purpose), worker and the operator verbs
    refuse, --migrate upgrades and says from where to where."""
    db = fresh_db
    head = versions()[-1][0]
    ok(db.cli("migrate", "upgrade", "0003"))
    assert not pinned(db)
    for verb in ("serve", "worker"):
        line = refusal(db, verb)
        assert f"needs the database at {head} (head) but it is at 0003;" in line, line
    r = db.cli("user", "list", "--org", "acme.test")
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "0003" in r.stderr and "nexusapi migrate upgrade head" in r.stderr
    assert applied(db) == ["0001", "0002", "0003"]

    srv = harness.Server(db.env, args=("serve", "--migrate"))
    log = srv.log()
    assert srv.close() == 0
    assert f"database migrated from 0003 to {head}" in log, log
    assert applied(db) == [v for v, _ in versions()]


def test_issue11_sql_scripts_carry_the_pin(db):
    r = ok(db.cli("migrate", "downgrade", "-1", "--sql"))
    assert "schema_migrations_pin" in r.stdout and not pinned(db)
    db.pg.psql(r.stdout, dbname=db.name, user=db.name, script=True)
    assert pinned(db)
    assert "pinned" in ok(db.cli("migrate", "current")).stdout
    r = ok(db.cli("migrate", "upgrade", "head", "--sql"))
    assert "DROP TABLE IF EXISTS schema_migrations_pin" in r.stdout
    db.pg.psql(r.stdout, dbname=db.name, user=db.name, script=True)
    assert not pinned(db)
    ok(db.cli("migrate", "check"))
