"""Shared fixtures: one PostgreSQL cluster per test session, a fresh migrated
database per test that asks for one, and servers started against it."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402


@pytest.fixture(scope="session")
def pg():
    cluster = harness.PostgresCluster()
    yield cluster
    cluster.destroy()


class Database:
    """A fresh database with its owner DSN, migrated to head by the binary."""

    def __init__(self, pg, migrate=True):
        self.pg = pg
        self.name, self.url = pg.new_database()
        self.env = harness.base_env(DATABASE_URL=self.url)
        if migrate:
            r = self.cli("migrate", "upgrade", "head")
            assert r.returncode == 0, r.stderr

    def cli(self, *args, **kw):
        env = dict(self.env, **kw.pop("env", {}))
        return harness.run_cli(args, env, **kw)

    def sql(self, sql, user=None):
        return self.pg.psql(sql, dbname=self.name, user=user or self.name)


@pytest.fixture
def db(pg):
    return Database(pg)


@pytest.fixture
def fresh_db(pg):
    """A database with no migrations applied."""
    return Database(pg, migrate=False)


@pytest.fixture
def server_factory(db):
    servers = []

    def start(**env):
        s = harness.Server(dict(db.env, **{k: str(v) for k, v in env.items()}))
        servers.append(s)
        return s

    yield start
    for s in servers:
        rc = s.close()
        assert rc == 0, f"server exited with {rc}; the end of its log:\n{s.last_log}"


@pytest.fixture
def server(server_factory):
    return server_factory()
