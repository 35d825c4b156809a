"""At least once (issue 14): 2,000 jobs with webhooks, two `nexusapi worker`
processes, one of them killed with SIGKILL again and again while it runs
jobs and delivers their events. Every event is delivered at least once,
none is lost, and a duplicate is always the same event: the same
webhook-id with the same body - what receivers dedupe on. Signatures are
checked with Standard Webhooks' own library."""
import json
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

from jobs_util import Tenant, Worker, submit, wait_for
from webhooks_util import HOOK_ENV, Receiver, Verifier, create_hook

JOBS = 2000
TENANTS = 4


def test_two_thousand_jobs_worker_killed_repeatedly_every_event_delivered(db, server_factory):
    receiver, verifier = Receiver(), Verifier()
    env = dict(HOOK_ENV, WORKER_CONCURRENCY=4, JOB_LEASE_SECONDS=2, JOB_BATCH_SIZE=20)
    survivor = None
    try:
        server = server_factory(**HOOK_ENV)  # the API only (WORKER_CONCURRENCY=0)
        tenants = [Tenant(db, credits=10 * JOBS) for _ in range(TENANTS)]
        hooks = [create_hook(server, t, receiver.url(f"/t{i}"), events=["job.completed"])
                 for i, t in enumerate(tenants)]

        def one(i):
            r = submit(server, tenants[i % TENANTS], f"Job {i}. It completes and is announced.")
            assert r.status == 202, r.body
            return r.json()["job_id"]
        with ThreadPoolExecutor(8) as pool:
            ids = set(pool.map(one, range(JOBS)))
        assert len(ids) == JOBS

        survivor = Worker(db, **env)
        kills, victims_work = 0, 0
        t0 = time.time()
        while kills < 6 and time.time() - t0 < 60:
            victim = Worker(db, **env)
            time.sleep(1.0)
            victim.kill()
            kills += 1
            victims_work += len(victim.events("webhook delivered")) + \
                len(victim.events("job attempt started"))
            victim.close()
        assert victims_work, "the victims never got to work"

        def delivered():
            return {json.loads(r["body"])["data"]["id"] for r in receiver.got()}
        wait_for(lambda: len(delivered()) >= JOBS, 100, interval=0.5,
                 what="every job's event at the receiver")
        assert delivered() == ids
        got = receiver.got()
        by_job, by_id = defaultdict(set), defaultdict(set)
        for r in got:
            body = json.loads(r["body"])
            by_job[body["data"]["id"]].add(r["headers"]["webhook-id"])
            by_id[r["headers"]["webhook-id"]].add(r["body"])
        # one event per job, and a duplicate is the same event, byte for byte
        assert all(len(v) == 1 for v in by_job.values())
        assert all(len(v) == 1 for v in by_id.values())
        assert db.sql("SELECT count(*) FROM webhook_events") == str(JOBS)
        secrets = {f"/t{i}": h["secret"] for i, h in enumerate(hooks)}
        verdicts = verifier.verify_all([(secrets[r["path"]], r["headers"], r["body"]) for r in got])
        assert verdicts == ["ok"] * len(got)
        wait_for(lambda: db.sql("SELECT count(*) FROM webhook_deliveries WHERE status <> "
                                "'succeeded'") == "0", 30, what="every delivery recorded")
        print(f"\n{JOBS} jobs, {kills} kills: {len(got)} requests for {len(by_id)} events "
              f"({len(got) - len(by_id)} duplicates)")
    finally:
        if survivor:
            assert survivor.close() == 0, survivor.log()[-3000:]
        verifier.close()
        receiver.close()
