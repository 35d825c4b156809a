"""fleet.py - NexusAPI as a fleet on one machine, under faults (issue 18).

    make fleet                              the long run: 10 minutes, 10,000+ jobs
    python3 tests/fleet/fleet.py --short    about a minute (make test runs it)

One PostgreSQL; PgBouncer in transaction pooling in front of it; three
`nexusapi serve` (workers off) and two `nexusapi worker`, whose runtime
connections all go through PgBouncer (one worker LISTENs on a direct
connection, the other polls); HAProxy balancing HTTP over the serve nodes
with health checks on /health; a Gemini stand-in as the provider (random
latency, some failures, some jobs that always fail). A paced mixed load
(reads, job submissions with idempotency keys, role changes) runs for a
bounded time while every few seconds a random serve or worker is killed
(SIGKILL or SIGTERM) and started again, and PgBouncer is restarted once.
Then the jobs are left to finish, everything is stopped, and the invariants
(invariants.py) are printed as a table; the exit status is 1 when one
fails. Everything listens on 127.0.0.1, PgBouncer and HAProxy run
unprivileged, and everything stops at the end, on failure and on Ctrl-C.

Python 3 standard library; the binary is NEXUS_BIN (default build/nexusapi).
"""
import argparse
import concurrent.futures
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
os.environ.setdefault("NEXUS_BIN", os.path.join(ROOT, "build", "nexusapi"))

import harness  # noqa: E402
import invariants  # noqa: E402
import pgbouncer  # noqa: E402
from gemini_standin import Standin  # noqa: E402
from load import Load, Org  # noqa: E402
from nodes import HAProxy, Node  # noqa: E402
from webhooks import Receiver  # noqa: E402

DRAIN = 3            # DRAIN_TIMEOUT of every node
LEASE = 4            # JOB_LEASE_SECONDS: a killed worker's jobs come back this soon
RATE_LIMIT = (300, 10)  # RATE_LIMIT_REQUESTS / _WINDOW_SECONDS, when the server has limits
MARK_BEGIN, MARK_END = "<!-- fleet:begin -->", "<!-- fleet:end -->"


def log(msg):
    print(f"[fleet {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Fleet:
    def __init__(self, args):
        self.args = args
        self.dir = tempfile.mkdtemp(prefix="nexus-fleet-")
        os.chmod(self.dir, 0o755)
        self.pg = self.bouncer = self.haproxy = self.standin = self.receiver = None
        self.serves, self.workers = [], []
        self.orgs = []
        self.pgbouncer_down = []   # (stopped, back)
        self.kills = []            # (time, node, signal name)
        self.errors = []           # what the harness itself could not do
        self.features = {"idempotency": False, "rate_limit": None, "webhooks": False}
        self.webhooks = {"orgs": set(), "before": set(), "error": None}
        self.load = None
        self.started = self.ended = None
        self.stop_chaos = threading.Event()

    # -- the database ------------------------------------------------------------
    def sql(self, q):
        return self.pg.psql(q, dbname=self.db, user=self.db)

    def set_up_database(self):
        self.pg = harness.PostgresCluster()
        self.db, self.owner_url = self.pg.new_database()
        env = harness.base_env(DATABASE_URL=self.owner_url)
        r = harness.run_cli(["migrate", "upgrade", "head"], env, timeout=180)
        if r.returncode != 0:
            raise RuntimeError(f"migrate failed: {r.stderr}")
        self.app_login, self.worker_login = f"{self.db}_app", f"{self.db}_wk"
        self.pg.psql(f"CREATE ROLE {self.app_login} LOGIN IN ROLE nexus_app")
        self.pg.psql(f"CREATE ROLE {self.worker_login} LOGIN IN ROLE nexus_worker")
        self.bouncer = pgbouncer.PgBouncer(self.pg, [self.db, self.app_login, self.worker_login],
                                           pool_size=6, max_client_conn=400)
        log(f"PostgreSQL on :{self.pg.port}, PgBouncer (transaction pooling, 6 server "
            f"connections) on :{self.bouncer.port}")

    def seed(self):
        """Organisations (SQL, as the owner) and a token per user (the CLI)."""
        stmts = []
        for i in range(self.args.orgs):
            key = f"fleet-{i}"
            stmts.append(f"SELECT '{key}', (nx_org_create('Fleet {i}', '{key}.example', "
                         "100000000, 'fleet grant')).id")
        # one with no credits: its submissions are refused (402), which the
        # idempotency probe repeats without making a job
        stmts.append("SELECT 'fleet-broke', (nx_org_create('Fleet broke', "
                     "'fleet-broke.example', 0, NULL)).id")
        orgs = {}
        for line in self.sql(";\n".join(stmts) + ";").splitlines():
            key, oid = line.split("|")
            orgs[key] = Org(key, oid)
        users = []
        for o in orgs.values():
            for who in ("admin", "member", "flipper"):
                email = f"{who}@{o.key}.example"
                uid = self.sql(f"INSERT INTO users (organisation_id, email, name, role) VALUES "
                               f"('{o.id}', '{email}', '{who}', "
                               f"'{'admin' if who == 'admin' else 'member'}') RETURNING id")
                users.append((o, who, uid, email))
        env = harness.base_env(DATABASE_URL=self.owner_url)

        def token(u):
            r = harness.run_cli(["token", u[3], "--minutes", "600"], env, timeout=120)
            if r.returncode != 0:
                raise RuntimeError(f"token {u[3]}: {r.stderr}")
            return u, r.stdout.strip()

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            for (o, who, uid, email), tok in pool.map(token, users):
                o.users[who] = (uid, email, tok)
        self.broke = orgs.pop("fleet-broke")
        self.orgs = list(orgs.values())
        log(f"{len(self.orgs)} organisations, 3 users each, tokens minted")

    # -- the nodes -----------------------------------------------------------------
    def node_env(self):
        e = harness.base_env(
            DATABASE_URL=self.owner_url,
            APP_DATABASE_URL=self.bouncer.url(self.app_login, self.db),
            WORKER_DATABASE_URL=self.bouncer.url(self.worker_login, self.db),
            DATABASE_POOL_MODE="transaction", LOG_FORMAT="json", LOG_LEVEL="info",
            DRAIN_TIMEOUT=DRAIN, JOB_LEASE_SECONDS=LEASE, JOB_RETRY_DELAY_SECONDS=1,
            JOB_MAX_ATTEMPTS=3, JOB_POLL_INTERVAL_MS=250, GEMINI_TIMEOUT_SECONDS=5,
            RATE_LIMIT_REQUESTS=RATE_LIMIT[0], RATE_LIMIT_WINDOW_SECONDS=RATE_LIMIT[1],
            WEBHOOK_ALLOW_HTTP="true", WEBHOOK_ALLOW_NETWORKS="127.0.0.0/8")
        e.update(self.standin.env())
        return e

    def start_nodes(self):
        self.standin = Standin(mode="jitter", delay=0.3)
        self.standin.fail_rate = 0.15
        self.receiver = Receiver()
        env = self.node_env()
        self.serves = [Node("serve", i, dict(env, WORKER_CONCURRENCY=0, HTTP_THREADS=4),
                            self.dir, port=harness.free_port()) for i in range(3)]
        direct = self.pg.dsn(self.db, self.worker_login)
        self.workers = [Node("worker", 0, dict(env, WORKER_CONCURRENCY=4,
                                               DATABASE_LISTEN_URL=direct), self.dir),
                        Node("worker", 1, dict(env, WORKER_CONCURRENCY=4), self.dir)]
        with concurrent.futures.ThreadPoolExecutor(5) as pool:
            list(pool.map(lambda n: n.start(), self.serves + self.workers))
        log("3 serve nodes (workers off) and 2 worker nodes (one listening, one polling) up")

    # -- what the server offers (api.md), asked of one node directly -----------------
    def probe(self):
        probe = Load(self.serves[0].port, self.orgs, False, 0, 0, 0, 0)
        o = self.orgs[0]
        rec, _ = probe.call("GET", "/api/v1/me", o.token("member"))
        pol = dict(probe.last_headers).get("RateLimit-Policy")
        if pol:
            q, w = re.search(r"q=(\d+)", pol), re.search(r"w=(\d+)", pol)
            self.features["rate_limit"] = (int(q.group(1)), int(w.group(1))) if q and w else None
        # the same key and body twice: a replay answers the first 402 again,
        # marked Idempotent-Replayed (api.md), and no job is made either way
        key = f"fleet-probe-{os.getpid()}"
        body = {"type": "summarise", "input": {"text": "Probe. Is Idempotency-Key honoured?"},
                "metadata": {"fleet_key": key}}
        answers = [probe.call("POST", "/api/v2/jobs", self.broke.token("member"), body,
                              {"Idempotency-Key": key})[0] for _ in range(2)]
        if answers[0].status != 402:
            self.errors.append(f"the idempotency probe answered {answers[0].status}, not 402")
        self.features["idempotency"] = answers[1].replayed
        rec, _ = probe.call("GET", "/api/v1/webhooks", o.token("admin"))
        self.features["webhooks"] = rec.status == 200
        if self.features["webhooks"]:
            self.subscribe(probe)
        log("server features: " + ", ".join(
            f"{k} {'on' if v else 'absent'}" for k, v in self.features.items()))

    def subscribe(self, probe):
        self.webhooks["before"] = set(self.sql("SELECT id FROM jobs").split())
        for o in self.orgs:
            rec, p = probe.call("POST", "/api/v1/webhooks", o.token("admin"),
                                {"url": self.receiver.url(o.key), "description": "fleet",
                                 "events": ["job.completed", "job.failed"]})
            if rec.status != 201 or not p or not p.get("secret"):
                self.webhooks["error"] = (f"registering a webhook answered {rec.status}: "
                                          f"{str(p)[:200]}")
                return
            self.receiver.secrets[o.key] = [p["secret"]]
            self.webhooks["orgs"].add(o.id)

    # -- faults ------------------------------------------------------------------------
    def restart_pgbouncer(self):
        down = time.time()
        self.bouncer.stop(signal.SIGTERM)  # immediate: every client connection is cut
        time.sleep(1.0)
        self.bouncer.start()
        self.pgbouncer_down.append((down, time.time()))
        self.kills.append((down, "pgbouncer", "SIGTERM"))
        log("PgBouncer restarted")

    def chaos(self, seconds):
        rng = random.Random(f"{self.args.seed}-chaos")
        end = time.time() + seconds
        pgb_at = time.time() + seconds * 0.4
        lo, hi = self.args.kill_every
        while not self.stop_chaos.wait(rng.uniform(lo, hi)) and time.time() < end - 2:
            try:
                if pgb_at and time.time() >= pgb_at:
                    pgb_at = None
                    self.restart_pgbouncer()
                    continue
                node = rng.choice(self.serves + self.workers)
                sig = rng.choice([signal.SIGKILL, signal.SIGTERM])
                t = time.time()
                node.stop(sig, timeout=DRAIN + 30)
                self.kills.append((t, node.name, sig.name))
                time.sleep(rng.uniform(0.2, 1.5))
                self.start_again(node)
            except Exception as e:
                self.errors.append(f"chaos: {e!r}")
                log(f"chaos: {e!r}")

    def start_again(self, node, tries=5):
        for i in range(tries):
            try:
                node.start()
                return
            except RuntimeError as e:
                if i == tries - 1:
                    raise
                log(f"{node.name} did not start ({str(e)[:120]}); trying again")
                time.sleep(1)

    # -- the run -------------------------------------------------------------------------
    def run(self):
        a = self.args
        self.started = time.time()
        self.set_up_database()
        self.seed()
        self.start_nodes()
        self.probe()
        self.haproxy = HAProxy(self.serves, self.dir, self.features["idempotency"],
                               harness._pg_user())
        self.wait_balanced()
        hot = self.orgs[-1] if self.features["rate_limit"] else None
        q, w = self.features["rate_limit"] or (0, 1)
        self.load = Load(self.haproxy.port, self.orgs[:-1] if hot else self.orgs,
                         self.features["idempotency"], a.rate, a.threads, a.seconds, a.seed,
                         hot_org=hot, hot_rate=2.0 * q / w if hot else 0)
        log(f"load: {a.threads} clients at {a.rate} requests/s for {a.seconds} s through "
            f"HAProxy :{self.haproxy.port}; a node killed every {a.kill_every[0]}-"
            f"{a.kill_every[1]} s, PgBouncer restarted once")
        chaos = threading.Thread(target=self.chaos, args=(a.seconds,), daemon=True)
        chaos.start()
        self.load.run()
        self.stop_chaos.set()
        chaos.join(DRAIN + 120)
        for n in self.serves + self.workers:
            if not n.running():
                self.start_again(n)
        log(f"load over: {len(self.load.records)} requests, {len(self.load.accepted)} jobs "
            f"accepted, {len([k for k in self.kills if k[1] != 'pgbouncer'])} kills")
        self.wait_jobs(a.drain)
        self.wait_webhooks(60)
        self.stop_all()
        self.ended = time.time()

    def wait_balanced(self, timeout=30):
        probe = Load(self.haproxy.port, self.orgs, False, 0, 0, 0, 0)
        deadline = time.time() + timeout
        while time.time() < deadline:
            rec, _ = probe.call("GET", "/health", None)
            if rec.status == 200:
                return
            time.sleep(0.2)
        raise RuntimeError("HAProxy never found a healthy serve node")

    def wait_jobs(self, timeout):
        deadline = time.time() + timeout
        while True:
            left = int(self.sql("SELECT count(*) FROM jobs WHERE status IN ('pending', "
                                "'running')"))
            if left == 0 or time.time() > deadline:
                log(f"{left} jobs left unfinished" if left else "every job finished")
                return
            time.sleep(1)

    def wait_webhooks(self, timeout):
        if not self.features["webhooks"] or self.webhooks["error"]:
            return
        deadline = time.time() + timeout
        while time.time() < deadline:
            ev = invariants.Evidence(self)
            if invariants.webhooks(ev)[1] == "PASS":
                return
            time.sleep(2)

    def stop_all(self):
        with concurrent.futures.ThreadPoolExecutor(5) as pool:
            list(pool.map(lambda n: n.stop(signal.SIGTERM, timeout=DRAIN + 30),
                          [n for n in self.serves + self.workers if n.running()]))
        if self.haproxy:
            self.haproxy.stop()

    def close(self):
        """Stops whatever still runs; keeps the directory when asked or failed."""
        for n in self.serves + self.workers:
            if n.running():
                n.stop(signal.SIGKILL, timeout=10)
        for part in (self.haproxy,):
            if part and part.proc.poll() is None:
                part.stop()
        for part in (self.bouncer, self.standin, self.receiver):
            if part:
                part.close()
        if self.pg:
            self.pg.destroy()


def table(rows):
    w = max(len(r[0]) for r in rows)
    lines = [f"{'invariant':<{w}}  result  detail"]
    lines += [f"{name:<{w}}  {res:<6}  {detail}" for name, res, detail in rows]
    return "\n".join(lines)


def summary(f):
    a = f.args
    recs = f.load.records if f.load else []
    kills = [k for k in f.kills if k[1] != "pgbouncer"]
    # %rc: the retries, prefixed with "+" when the request went to another node
    retried = sum(1 for v in (f.haproxy.records() if f.haproxy else {}).values()
                  if v[4].lstrip("+").isdigit() and int(v[4].lstrip("+")) > 0)
    secs = max(1e-9, a.seconds)
    return (f"{a.seconds} s of load, 3 serve + 2 worker nodes behind HAProxy and PgBouncer "
            f"(transaction pooling); {len(recs)} requests ({len(recs) / secs:.0f}/s), "
            f"{len(f.load.accepted) if f.load else 0} jobs accepted "
            f"({(len(f.load.accepted) if f.load else 0) / secs:.1f}/s); {len(kills)} kills "
            f"({sum(k[2] == 'SIGKILL' for k in kills)} SIGKILL, "
            f"{sum(k[2] == 'SIGTERM' for k in kills)} SIGTERM), PgBouncer restarted "
            f"{len(f.pgbouncer_down)} time(s); HAProxy retried {retried} requests on another node")


def record(path, text):
    """Replaces the table between the fleet markers of path (docs/scaling.md)."""
    try:
        with open(path) as fh:
            doc = fh.read()
    except OSError as e:
        log(f"{path}: {e.strerror}: not recorded")
        return
    if MARK_BEGIN not in doc or MARK_END not in doc:
        log(f"{path} has no {MARK_BEGIN} ... {MARK_END}: not recorded")
        return
    head, rest = doc.split(MARK_BEGIN, 1)
    _, tail = rest.split(MARK_END, 1)
    with open(path, "w") as fh:
        fh.write(head + MARK_BEGIN + "\n" + text + "\n" + MARK_END + tail)
    log(f"table recorded in {path}")


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--short", action="store_true", help="the short run of make test (~1 min)")
    p.add_argument("--seconds", type=int, help="seconds of load (long: 600, short: 35)")
    p.add_argument("--rate", type=float, help="requests per second, all clients together")
    p.add_argument("--threads", type=int, help="client threads")
    p.add_argument("--orgs", type=int, help="organisations")
    p.add_argument("--min-jobs", type=int, help="jobs the run must get accepted")
    p.add_argument("--kill-every", type=float, nargs=2, metavar=("MIN", "MAX"),
                   help="seconds between kills (a random value in between)")
    p.add_argument("--drain", type=int, help="seconds left for the jobs to finish at the end")
    p.add_argument("--seed", default=str(os.getpid()), help="random seed")
    p.add_argument("--keep", action="store_true", help="keep the logs even when all passed")
    p.add_argument("--record", metavar="FILE", help="write the table into FILE's fleet markers")
    a = p.parse_args(argv)
    short = dict(seconds=35, rate=40, threads=6, orgs=5, min_jobs=150, kill_every=[2, 4],
                 drain=60)
    long_ = dict(seconds=600, rate=70, threads=10, orgs=16, min_jobs=10000, kill_every=[3, 6],
                 drain=180)
    for k, v in (short if a.short else long_).items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    return a


def main(argv):
    args = parse_args(argv)
    for tool in (pgbouncer.PGBOUNCER, "/usr/sbin/haproxy", harness.BIN):
        if not os.path.exists(tool):
            print(f"fleet: {tool} is missing (make deps; make build)", file=sys.stderr)
            return 2
    f = Fleet(args)

    def on_term(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    rows, failed = [], True
    try:
        f.run()
        rows = invariants.run_all(f)
        if f.errors:
            rows.append(("the harness ran as planned", "FAIL", "; ".join(f.errors[:3])))
        failed = any(r[1] == "FAIL" for r in rows)
    except KeyboardInterrupt:
        log("interrupted")
    except Exception:
        traceback.print_exc()
    finally:
        f.close()
    if rows:
        text = "```\n" + summary(f) + "\n\n" + table(rows) + "\n```"
        print("\n" + summary(f) + "\n\n" + table(rows) + "\n", flush=True)
        if args.record:
            record(args.record, f"Run of {time.strftime('%Y-%m-%d %H:%M')} (load average "
                                f"{os.getloadavg()[0]:.1f} at the end, {os.cpu_count()} cores,"
                                f" {'ASan' if '/asan/' in harness.BIN else 'release'} build):"
                                f"\n\n{text}")
    if failed or args.keep:
        log(f"logs kept in {f.dir}")
    else:
        shutil.rmtree(f.dir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
