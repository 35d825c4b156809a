"""The seed's Task 1 demo gate: tenant isolation enforced by the database.

Two organisations, one user each. Organisation 1's users never come back for
organisation 2: not through the data layer (the operator verbs, the tenant
transaction in C), and not through raw SQL as nexus_app with no WHERE clause
at all - only the current tenant's rows, zero rows when no tenant is set,
and writes into another organisation refused.
"""
import os
import subprocess

import pytest

import harness

TENANT_TABLES = ["organisations", "users", "org_credits", "credit_transactions"]


@pytest.fixture
def tenants(db):
    """Two organisations with one user each; returns ids and emails."""
    out = {}
    for n, (domain, email, role) in enumerate(
            [("one.test", "alice@one.test", "admin"), ("two.test", "bob@two.test", "member")], 1):
        r = db.cli("org", "create", "--name", f"Org {n}", "--domain", domain)
        assert r.returncode == 0, r.stderr
        org = r.stdout.strip()
        r = db.cli("user", "add", email, "--org", domain, "--role", role)
        assert r.returncode == 0, r.stderr
        out[n] = {"org": org, "user": r.stdout.strip(), "email": email, "domain": domain}
    # credits in both organisations, so every tenant table has rows in both
    for n in (1, 2):
        db.sql(f"INSERT INTO credit_transactions (organisation_id, amount, type, description) "
               f"VALUES ('{out[n]['org']}', 5, 'GRANT', 'test')")
    return out


def as_app(db, sql, check=True):
    """Runs SQL as nexus_app (the owner's login + SET ROLE), psql -A -t."""
    r = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                        "-v", "VERBOSITY=verbose", "-d", db.url],
                       input="SET ROLE nexus_app;\n" + sql, capture_output=True, text=True,
                       timeout=30)
    if check:
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()
    return r


def set_org(org, local=False):
    return f"SELECT set_config('nexus.org_id', '{org}', {'true' if local else 'false'}) \\g /dev/null\n"


def test_user_list_through_the_data_layer(db, tenants):
    for me, other in ((1, 2), (2, 1)):
        for key in ("domain", "org"):
            r = db.cli("user", "list", "--org", tenants[me][key])
            assert r.returncode == 0, r.stderr
            assert tenants[me]["email"] in r.stdout
            assert tenants[me]["user"] in r.stdout
            assert tenants[other]["email"] not in r.stdout
            assert tenants[other]["user"] not in r.stdout


def test_no_tenant_set_sees_zero_rows(db, tenants):
    # the owner sees both organisations' rows (operator_access) ...
    for t in TENANT_TABLES:
        assert int(db.sql(f"SELECT count(*) FROM {t}")) >= 2
    # ... nexus_app with no tenant sees nothing, and no error
    for t in TENANT_TABLES:
        assert as_app(db, f"SELECT count(*) FROM {t};") == "0"
    # a setting reset at the end of a transaction reads back as '', still zero rows
    out = as_app(db, "BEGIN;\n" + set_org(tenants[1]["org"], local=True) +
                 "SELECT count(*) FROM users;\nCOMMIT;\nSELECT count(*) FROM users;\n"
                 "SELECT current_setting('nexus.org_id', true) = '';")
    assert out.split() == ["1", "0", "t"]


@pytest.mark.parametrize("me,other", [(1, 2), (2, 1)])
def test_raw_sql_without_where_sees_only_current_tenant(db, tenants, me, other):
    org, other_org = tenants[me]["org"], tenants[other]["org"]
    out = as_app(db, set_org(org) + "SELECT id, organisation_id, email FROM users;")
    rows = [line.split("|") for line in out.splitlines()]
    assert rows == [[tenants[me]["user"], org, tenants[me]["email"]]]
    assert as_app(db, set_org(org) + "SELECT id FROM organisations;") == org
    for t in ("org_credits", "credit_transactions"):
        out = as_app(db, set_org(org) + f"SELECT DISTINCT organisation_id FROM {t};")
        assert out == org, t
    # asking for the other organisation by name still returns nothing
    assert as_app(db, set_org(org) +
                  f"SELECT count(*) FROM users WHERE organisation_id = '{other_org}';") == "0"
    assert as_app(db, set_org(org) +
                  f"SELECT count(*) FROM users WHERE id = '{tenants[other]['user']}';") == "0"


def test_writes_into_another_tenant_are_refused(db, tenants):
    org1, org2 = tenants[1]["org"], tenants[2]["org"]
    # (nexus_app creates jobs and credit transactions, not users: 0007)
    r = as_app(db, set_org(org1) + f"INSERT INTO credit_transactions (organisation_id, amount, "
               f"type) VALUES ('{org2}', 1, 'GRANT');", check=False)
    assert r.returncode != 0
    assert "42501" in r.stderr and "row-level security" in r.stderr
    r = as_app(db, set_org(org1) + f"INSERT INTO jobs (organisation_id, job_type, "
               f"credits_charged, input_data) VALUES ('{org2}', 'analyse', 0, '{{}}');",
               check=False)
    assert r.returncode != 0 and "row-level security" in r.stderr
    r = as_app(db, set_org(org1) + f"UPDATE users SET organisation_id = '{org2}';", check=False)
    assert r.returncode != 0 and "42501" in r.stderr
    # an unfiltered UPDATE/DELETE touches only the tenant's own rows
    assert as_app(db, set_org(org1) + f"UPDATE users SET role = role RETURNING id;") == \
        tenants[1]["user"]
    assert as_app(db, set_org(org1) + "BEGIN;\nWITH d AS (DELETE FROM users RETURNING 1) "
                  "SELECT count(*) FROM d;\nROLLBACK;") == "1"
    assert db.sql(f"SELECT count(*) FROM credit_transactions WHERE organisation_id = "
                  f"'{org2}'") == "1"
    assert db.sql(f"SELECT count(*) FROM jobs WHERE organisation_id = '{org2}'") == "0"


def test_tenant_begin_checks_the_user(db, tenants):
    org1, u1, u2 = tenants[1]["org"], tenants[1]["user"], tenants[2]["user"]
    assert as_app(db, f"SELECT nx_tenant_begin('{org1}', '{u1}', 'admin');") == "admin"
    assert as_app(db, f"SELECT nx_tenant_begin('{org1}', NULL, 'none') IS NULL;") == "t"
    # a user of organisation 2 presenting organisation 1: SQLSTATE 28000 (401)
    r = as_app(db, f"SELECT nx_tenant_begin('{org1}', '{u2}', 'member');", check=False)
    assert r.returncode != 0 and "28000" in r.stderr
    # a member asking for an admin action: 42501 (403)
    r = as_app(db, f"SELECT nx_tenant_begin('{tenants[2]['org']}', '{u2}', 'admin');", check=False)
    assert r.returncode != 0 and "42501" in r.stderr


def test_db_psql_as_app_shows_rls(db, tenants):
    args = ("db", "psql", "--as-app", "-X", "-A", "-t")
    r = db.cli(*args, "-c", "SELECT current_user, count(*) FROM users")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "nexus_app|0"
    r = db.cli(*args, "-c", f"SELECT set_config('nexus.org_id', '{tenants[2]['org']}', false)",
               "-c", "SELECT email FROM users")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [tenants[2]["org"], tenants[2]["email"]]
    r = db.cli("db", "psql", "-X", "-A", "-t", "-c", "SELECT count(*) FROM users")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "2"
    assert db.url not in r.stderr + r.stdout


def test_tenant_pipeline_in_c(db):
    """The C tenant transaction (tests/unit/db/test_tx.c) against this database:
    isolation, user checks, rollback of the whole pipeline, re-open after a
    lost connection."""
    binary = os.path.join(os.path.dirname(harness.BIN), "tests", "test_tx")
    if not os.path.exists(binary):
        pytest.skip(f"{binary} not built")
    env = dict(db.env, NEXUS_TEST_DATABASE_URL=db.url)
    r = subprocess.run([binary], env=env, capture_output=True, text=True, timeout=120)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "PASSED  ] 9 test(s)" in out and "SKIPPED" not in out, out
