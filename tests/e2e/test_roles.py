"""The runtime roles (issue 11, item 11): nexus_app and nexus_worker hold
only the rights the code uses - checked as those roles, in SQL, against the
real schema - and `serve` and `worker` refuse to start when the role they
act as is a superuser, has BYPASSRLS or owns the tenant tables, since
row-level security would not bind it."""
import subprocess
import uuid

import pytest

import harness
from auth_helpers import make_org, make_user


def as_role(db, role, sql, org=None):
    """Runs sql as role (the owner's login + SET ROLE), in org's tenant when
    given; returns the CompletedProcess (psql -A -t)."""
    tenant = f"SELECT set_config('nexus.org_id', '{org}', false) \\g /dev/null\n" if org else ""
    return subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                           "-d", db.url], input=f"SET ROLE {role};\n" + tenant + sql,
                          capture_output=True, text=True, timeout=30)


def allowed(db, role, sql, org=None):
    r = as_role(db, role, sql, org)
    assert r.returncode == 0, (sql, r.stderr)
    return r.stdout.strip()


def refused(db, role, sql, org=None):
    r = as_role(db, role, sql, org)
    assert r.returncode != 0, (sql, r.stdout)
    assert "permission denied" in r.stderr or "row-level security" in r.stderr, r.stderr
    return r.stderr


def new_job(db, org, status="pending"):
    done = {"pending": "NULL, NULL", "completed": "now(), NULL", "failed": "NULL, now()"}[status]
    return db.sql("INSERT INTO jobs (organisation_id, job_type, credits_charged, input_data, "
                  f"status, completed_at, failed_at) VALUES ('{org}', 'summarise', 0, "
                  f"'{{\"text\": \"x\"}}', '{status}', {done}) RETURNING id").splitlines()[0]


@pytest.fixture
def world(db):
    org = make_org(db, "Org A", "a.test")
    return {"org": org, "user": make_user(db, org, "admin@a.test", "admin"),
            "pending": new_job(db, org), "completed": new_job(db, org, "completed")}


def test_issue11_app_changes_only_what_the_api_changes(db, world):
    org, user = world["org"], world["user"]
    # what the API does still works ...
    assert allowed(db, "nexus_app", "UPDATE organisations SET name = 'N', auto_join = false "
                   "RETURNING id;", org) == org
    assert allowed(db, "nexus_app", "UPDATE users SET role = 'admin' RETURNING id;", org) == user
    assert allowed(db, "nexus_app", "UPDATE org_credits SET balance = balance + 0 "
                   "RETURNING organisation_id;", org) == org
    # ... and nothing else, even in its own organisation
    for sql in ("UPDATE organisations SET domain = 'evil.test';",
                "UPDATE users SET name = 'x';",
                "UPDATE users SET email = 'x@evil.test';",
                "UPDATE users SET google_id = 'x';",
                f"INSERT INTO users (organisation_id, email) VALUES ('{org}', 'x@a.test');",
                "UPDATE org_credits SET organisation_id = organisation_id;",
                f"INSERT INTO org_credits (organisation_id) VALUES ('{org}');",
                "UPDATE jobs SET status = 'completed';",
                "DELETE FROM jobs;"):
        refused(db, "nexus_app", sql, org)
    assert db.sql(f"SELECT domain FROM organisations WHERE id = '{org}'") == "a.test"


@pytest.mark.parametrize("tenant", [False, True])
def test_issue11_worker_door_on_jobs_is_per_command(db, world, tenant):
    """Without a tenant (its cross-tenant door) and inside one (a final
    failure's refund): the worker updates live jobs and deletes finished
    ones, and does nothing else to jobs."""
    org = world["org"]
    ctx = org if tenant else None
    pending, completed = world["pending"], world["completed"]
    if not tenant:  # in a tenant, a worker is also nexus_app, which submits jobs
        refused(db, "nexus_worker", "INSERT INTO jobs (organisation_id, job_type, "
                f"credits_charged, input_data) VALUES ('{org}', 'analyse', 0, '{{}}');")
    # a pending job is not deleted, a finished one not changed: no row matches
    assert allowed(db, "nexus_worker", f"DELETE FROM jobs WHERE id = '{pending}' RETURNING id;",
                   ctx) == ""
    assert allowed(db, "nexus_worker", "UPDATE jobs SET status = 'pending', completed_at = NULL "
                   f"WHERE id = '{completed}' RETURNING id;", ctx) == ""
    for column in ("organisation_id = organisation_id", "input_data = '{}'",
                   "credits_charged = 0", "max_attempts = 100"):
        refused(db, "nexus_worker", f"UPDATE jobs SET {column} WHERE id = '{pending}';", ctx)
    # what the queue does: claim, complete, prune
    assert allowed(db, "nexus_worker", "UPDATE jobs SET status = 'running', attempt_count = 1, "
                   "lease_owner = 't', lease_expires_at = now() + interval '1 minute', "
                   f"started_at = now() WHERE id = '{pending}' RETURNING id;", ctx) == pending
    assert allowed(db, "nexus_worker", "UPDATE jobs SET status = 'completed', completed_at = "
                   "now(), output = '{}', lease_owner = NULL, lease_expires_at = NULL "
                   f"WHERE id = '{pending}' RETURNING id;", ctx) == pending
    assert allowed(db, "nexus_worker", f"DELETE FROM jobs WHERE id = '{completed}' RETURNING id;",
                   ctx) == completed
    assert db.sql(f"SELECT status FROM jobs WHERE id = '{pending}'") == "completed"


# ---- start-up refusals ---------------------------------------------------------

def login_role(pg, *attrs):
    name = "r_" + uuid.uuid4().hex[:10]
    pg.psql(f"CREATE ROLE {name} LOGIN {' '.join(attrs)}")
    return name


def start(db, verb, **env):
    """Runs `serve` or `worker`; a refusal exits at once. Returns the
    CompletedProcess, or None when the process was still running."""
    env = dict(db.env, HOST="127.0.0.1", PORT=str(harness.free_port()), **env)
    try:
        return subprocess.run([harness.BIN, verb], env=env, capture_output=True, text=True,
                              timeout=30)
    except subprocess.TimeoutExpired:
        return None


WHO = {  # kind -> (login as, words in the refusal)
    "superuser": (lambda pg, db, grp: pg.SUPERUSER, "superuser"),
    "owner": (lambda pg, db, grp: db.name, "owns"),
    "bypassrls": (lambda pg, db, grp: login_role(pg, "BYPASSRLS", "IN ROLE", grp), "BYPASSRLS"),
}


@pytest.mark.parametrize("kind", sorted(WHO))
@pytest.mark.parametrize("setting,verb,workers", [
    ("APP_DATABASE_URL", "serve", 0),
    ("WORKER_DATABASE_URL", "worker", 1),
    ("WORKER_DATABASE_URL", "serve", 1),
])
def test_issue11_a_privileged_runtime_login_is_refused(pg, db, kind, setting, verb, workers):
    who, words = WHO[kind]
    grp = "nexus_app" if setting == "APP_DATABASE_URL" else "nexus_worker"
    login = who(pg, db, grp)
    r = start(db, verb, WORKER_CONCURRENCY=str(workers), **{setting: pg.dsn(db.name, login)})
    assert r is not None, f"{verb} started with {setting} logging in as a {kind}"
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert setting in lines[0] and words in lines[0] and login in lines[0], lines[0]


def test_issue11_plain_member_logins_are_accepted(pg, db):
    app = login_role(pg, "IN ROLE", "nexus_app")
    worker = login_role(pg, "IN ROLE", "nexus_worker")
    server = harness.Server(dict(db.env, WORKER_CONCURRENCY="1",
                                 APP_DATABASE_URL=pg.dsn(db.name, app),
                                 WORKER_DATABASE_URL=pg.dsn(db.name, worker)))
    try:
        assert server.get("/health").status == 200
    finally:
        assert server.close() == 0
