"""Helpers shared by the jobs and credits tests: tenants made with the
operator verbs, `nexusapi worker` processes, bounded polling."""
import os
import signal
import time
import uuid

import harness


class Tenant:
    """An organisation with one admin user, `credits` granted, and a token."""

    def __init__(self, db, credits=100, domain=None):
        self.db = db
        self.domain = domain or f"t{uuid.uuid4().hex[:10]}.example"
        r = db.cli("org", "create", "--name", self.domain, "--domain", self.domain)
        assert r.returncode == 0, r.stderr
        self.org_id = r.stdout.strip()
        self.email = f"admin@{self.domain}"
        r = db.cli("user", "add", self.email, "--org", self.domain, "--role", "admin")
        assert r.returncode == 0, r.stderr
        if credits:
            r = db.cli("credits", "grant", self.domain, str(credits), "--reason", "test grant")
            assert r.returncode == 0, r.stderr
        r = db.cli("token", self.email)
        assert r.returncode == 0, r.stderr
        self.token = r.stdout.strip()

    @property
    def headers(self):
        return {"Authorization": f"Bearer {self.token}"}

    def balance(self):
        return int(self.db.sql(f"SELECT balance FROM org_credits WHERE organisation_id = '{self.org_id}'"))

    def ledger(self):
        """grants - deductions + refunds, from credit_transactions."""
        return int(self.db.sql(
            "SELECT coalesce(sum(CASE type WHEN 'DEDUCTION' THEN -amount ELSE amount END), 0) "
            f"FROM credit_transactions WHERE organisation_id = '{self.org_id}'"))


def submit(server, tenant, text="The queue works. Workers claim jobs.", kind="summarise"):
    return server.request("POST", f"/api/v1/{kind}", body={"text": text}, headers=tenant.headers)


def job(server, tenant, job_id):
    r = server.get(f"/api/v1/jobs/{job_id}", headers=tenant.headers)
    assert r.status == 200, r.body
    return r.json()


def wait_for(fn, timeout, interval=0.1, what="condition"):
    """Polls fn until it returns a truthy value; fails after timeout seconds."""
    deadline = time.time() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def wait_job(server, tenant, job_id, statuses=("completed", "failed"), timeout=60):
    return wait_for(lambda: (lambda j: j if j["status"] in statuses else None)(
        job(server, tenant, job_id)), timeout, what=f"job {job_id} to reach {statuses}")


class Worker(harness.Process):
    """A `nexusapi worker` process against db, its log captured to a file."""

    def __init__(self, db, **env):
        env.setdefault("WORKER_CONCURRENCY", 2)  # the test env turns in-process workers off
        super().__init__(["worker"], dict(db.env, **{k: str(v) for k, v in env.items()}),
                         prefix="nexus-worker-")
        wait_for(lambda: self.proc.poll() is not None or any(
            l.get("msg") == "job workers started" for l in self.log_lines()), 30,
            what="the worker to start")
        assert self.proc.poll() is None, self.log()

    def events(self, msg, job_id=None):
        return [l for l in self.log_lines()
                if l.get("msg") == msg and (job_id is None or l.get("job_id") == job_id)]

    def kill(self):
        """SIGKILL: no drain, no lease release."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


def ts(s):
    """Parses our RFC 3339 UTC timestamps."""
    from datetime import datetime, timezone
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
