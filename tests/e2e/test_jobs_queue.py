"""The queue's finish guards in C (tests/unit/jobs/test_queue.c) against a
real database: two workers through the interleavings the guards exist for
(a lease that expired and was claimed again, a late failure after the job
completed, the same failure twice, the reaper racing the owner, a stale
report of an earlier attempt, a released attempt claimed by another)."""
import os
import subprocess

import pytest

import harness


def test_queue_guards_in_c(db):
    binary = os.path.join(os.path.dirname(harness.BIN), "tests", "test_queue")
    if not os.path.exists(binary):
        pytest.skip(f"{binary} not built")
    env = dict(db.env, NEXUS_TEST_DATABASE_URL=db.url)
    r = subprocess.run([binary], env=env, capture_output=True, text=True, timeout=120)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "PASSED  ] 8 test(s)" in out and "SKIPPED" not in out, out
