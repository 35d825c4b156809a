"""Operator verbs: `org create|list`, `user add|list`, `db psql`.

Bad arguments: a one-line error plus the usage line, exit 2. Runtime
failures (missing organisation, duplicates): one line, exit 1, never a crash.
"""
import re

import pytest

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def ok(r):
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def usage_error(r, text):
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, r.stderr
    assert len(lines) == 2 and lines[1].startswith("usage: nexusapi "), r.stderr
    assert lines[0].startswith("nexusapi: ") and text in lines[0], r.stderr
    assert r.stdout == ""


def runtime_error(r, text):
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1, r.stderr
    assert len(lines) == 1 and lines[0].startswith("nexusapi: ") and text in lines[0], r.stderr


def test_org_create_and_list(db):
    org = ok(db.cli("org", "create", "--name", "Acme Ltd", "--domain", "Acme.COM"))
    assert UUID.match(org)
    plain = ok(db.cli("org", "create", "--name", "  Zürich GmbH\t"))  # stored trimmed
    assert UUID.match(plain)
    assert db.sql(f"SELECT name, domain, auto_join FROM organisations WHERE id = '{org}'") == \
        "Acme Ltd|acme.com|t"
    assert db.sql(f"SELECT name, domain IS NULL FROM organisations WHERE id = '{plain}'") == \
        "Zürich GmbH|t"
    # the credits row comes with the organisation
    assert db.sql(f"SELECT balance FROM org_credits WHERE organisation_id = '{org}'") == "0"
    out = ok(db.cli("org", "list")).splitlines()
    assert out[0].split()[:3] == ["id", "name", "domain"]
    assert any(org in line and "acme.com" in line and "Acme Ltd" in line for line in out[1:])
    assert any(plain in line and "Zürich GmbH" in line for line in out[1:])
    assert len(out) == 3


def test_org_duplicate_domain_is_a_conflict(db):
    ok(db.cli("org", "create", "--name", "One", "--domain", "dup.test"))
    r = db.cli("org", "create", "--name", "Two", "--domain", "DUP.test")
    runtime_error(r, 'organisation with domain "dup.test" already exists')
    assert db.sql("SELECT count(*) FROM organisations") == "1"
    assert db.sql("SELECT count(*) FROM org_credits") == "1"


@pytest.mark.parametrize("args,text", [
    ((), "missing subcommand"),
    (("frobnicate",), 'unknown subcommand "frobnicate"'),
    (("create",), "--name is required"),
    (("create", "--name"), "--name needs a value"),
    (("create", "--name", ""), "--name must be"),
    (("create", "--name", " \t "), "not all blank"),
    (("create", "--name", "x" * 256), "--name must be"),
    (("create", "--name", "A", "--domain", "not a domain"), 'invalid domain "not a domain"'),
    (("create", "--name", "A", "--domain", "nodot"), "invalid domain"),
    (("create", "--name", "A", "--colour", "red"), 'unknown argument "--colour"'),
    (("list", "extra"), 'unknown argument "extra"'),
])
def test_org_bad_arguments(db, args, text):
    usage_error(db.cli("org", *args), text)


def test_user_add_and_list(db):
    org = ok(db.cli("org", "create", "--name", "Acme", "--domain", "acme.test"))
    ok(db.cli("org", "create", "--name", "Other", "--domain", "other.test"))
    alice = ok(db.cli("user", "add", "Alice@Acme.test", "--org", "acme.test", "--role", "admin",
                      "--name", " Alice Å "))
    assert UUID.match(alice)
    bob = ok(db.cli("user", "add", "bob@acme.test", "--org", org, "--role", "member"))
    # the same address may exist in another organisation
    ok(db.cli("user", "add", "bob@acme.test", "--org", "other.test", "--role", "admin"))
    assert db.sql(f"SELECT organisation_id, email, name, role FROM users WHERE id = '{alice}'") == \
        f"{org}|alice@acme.test|Alice Å|admin"
    assert db.sql(f"SELECT role, name IS NULL FROM users WHERE id = '{bob}'") == "member|t"
    out = ok(db.cli("user", "list", "--org", "ACME.test")).splitlines()
    assert out[0].split() == ["id", "email", "name", "role", "created_at"]
    assert len(out) == 3
    assert alice in out[1] and "alice@acme.test" in out[1] and "admin" in out[1]
    assert bob in out[2] and "member" in out[2]
    other = ok(db.cli("user", "list", "--org", "other.test")).splitlines()
    assert len(other) == 2 and bob not in other[1] and alice not in other[1]


def test_user_duplicate_email_is_a_conflict(db):
    ok(db.cli("org", "create", "--name", "Acme", "--domain", "acme.test"))
    ok(db.cli("user", "add", "carol@acme.test", "--org", "acme.test", "--role", "member"))
    r = db.cli("user", "add", "CAROL@acme.test", "--org", "acme.test", "--role", "admin")
    runtime_error(r, 'user "carol@acme.test" already exists in organisation "acme.test"')
    assert db.sql("SELECT count(*), min(role) FROM users") == "1|member"


def test_missing_organisation(db):
    for args in (("user", "add", "d@x.test", "--org", "nowhere.test", "--role", "member"),
                 ("user", "list", "--org", "nowhere.test"),
                 ("user", "list", "--org", "00000000-0000-4000-8000-000000000000")):
        r = db.cli(*args)
        runtime_error(r, "not found")
        assert args[args.index("--org") + 1] in r.stderr
    assert db.sql("SELECT count(*) FROM users") == "0"


@pytest.mark.parametrize("args,text", [
    ((), "missing subcommand"),
    (("remove", "a@b.test"), 'unknown subcommand "remove"'),
    (("add", "--org", "a.test", "--role", "admin"), "EMAIL is required"),
    (("add", "no-at-sign", "--org", "a.test", "--role", "admin"), "invalid email address"),
    (("add", "a b@c.test", "--org", "a.test", "--role", "admin"), "invalid email address"),
    (("add", "a@b.test", "--role", "admin"), "--org is required"),
    (("add", "a@b.test", "--org", "a.test"), "--role is required"),
    (("add", "a@b.test", "--org", "a.test", "--role", "owner"), '--role must be "admin" or "member"'),
    (("add", "a@b.test", "--org", "a.test", "--role"), "--role needs a value"),
    (("add", "a@b.test", "--org", "a.test", "--role", "admin", "--name", ""), "--name must be"),
    (("add", "a@b.test", "c@d.test", "--org", "a.test", "--role", "admin"), 'unknown argument "c@d.test"'),
    (("list",), "--org is required"),
    (("list", "--org", "a.test", "--role", "admin"), 'unknown argument "--role"'),
])
def test_user_bad_arguments(db, args, text):
    usage_error(db.cli("user", *args), text)


def test_db_psql_as_owner(db):
    ok(db.cli("org", "create", "--name", "Acme", "--domain", "acme.test"))
    out = ok(db.cli("db", "psql", "-X", "-c", r"\dt"))
    for t in ("organisations", "users", "org_credits", "credit_transactions"):
        assert t in out
    out = ok(db.cli("db", "psql", "-X", "-c", r"\d users"))
    assert "avatar_url" in out and "character varying(500)" in out
    assert ok(db.cli("db", "psql", "-X", "-A", "-t", "-c", "SELECT name FROM organisations")) == \
        "Acme"
    usage_error(db.cli("db"), "missing subcommand")
    usage_error(db.cli("db", "shell"), 'unknown subcommand "shell"')
    # psql's own failure is passed through, not a crash
    assert db.cli("db", "psql", "-X", "-c", "SELECT 1/0").returncode != 0
