"""The balance never goes below zero, whatever the concurrency: 200
simultaneous submissions against credits for 37 jobs."""
import threading

from jobs_util import Tenant, submit


def test_two_hundred_simultaneous_submissions_for_37_credits(db, server_factory):
    server = server_factory(HTTP_THREADS=8)
    t = Tenant(db, credits=370)  # 37 summaries at 10 credits
    other = Tenant(db, credits=100)  # untouched by the race
    start = threading.Barrier(200)
    statuses = [None] * 200
    lowest = [370]
    done = threading.Event()

    def client(i):
        start.wait(timeout=30)
        statuses[i] = submit(server, t, f"Racing submission {i}.").status

    def watch():
        while not done.is_set():
            lowest[0] = min(lowest[0], t.balance())

    threads = [threading.Thread(target=client, args=(i,)) for i in range(200)]
    watcher = threading.Thread(target=watch)
    watcher.start()
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    done.set()
    watcher.join(timeout=30)
    assert statuses.count(202) == 37, statuses
    assert statuses.count(402) == 163, statuses
    assert t.balance() == 0 and lowest[0] >= 0
    assert t.ledger() == 0
    assert db.sql(f"SELECT count(*) FROM jobs WHERE organisation_id = '{t.org_id}'") == "37"
    assert db.sql("SELECT count(*) FROM credit_transactions "
                  f"WHERE organisation_id = '{t.org_id}' AND type = 'DEDUCTION'") == "37"
    assert other.balance() == 100
