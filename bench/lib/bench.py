"""NexusAPI benchmark (issues 6 and 19): run by bench/run.sh (`make bench`,
`make bench-quick`).

Starts a private PostgreSQL 15 cluster (fsync and synchronous_commit on),
seeds 100 organisations x 100 users, mints one token per organisation with
`nexusapi token`, starts `nexusapi serve` on 127.0.0.1 and, in the same run,
the reference peers, and measures:

  S1  GET /health                          wrk, 64 connections
  S2  GET /api/v1/users?limit=20           wrk, random token per request
  S3  POST /api/v1/summarise (1 KB text)   wrk, random token, workers off
  "S1 fastify" ...  the same against the Fastify + pg peer (peers.py)
  "S1 baseline" ... the same against BENCH_BASELINE_BIN, on its own database
  S2/16, S3/16  S2 and S3 at 16 connections (the p99 targets)
  B2, B3  the bound: pgbench -M prepared at 64 and 16 clients running the
      statements S2 and S3 send (rendered from src/, see stmts.py)
  S2L, S3L, S4  rate limits on, Idempotency-Key per request (issue 13)
  Q1  drain of N queued summarise jobs with WORKER_CONCURRENCY=4, beside
      graphile-worker draining N no-op jobs with 4 workers (and the baseline)
  M1  server RSS idle and with 1,000 idle keep-alive connections
  W1  10,000 job.completed webhooks to a local receiver answering 204, one
      `nexusapi worker` with WORKER_CONCURRENCY=4: deliveries/s draining a
      full outbox, then the latency from job completion to the receiver
      seeing the request while 10,000 more jobs run

Runs are interleaved (each scenario next to its peers, every other round in
reverse order). CPU per request comes from /proc (utime+stime of the server
- every process of the Fastify peer - and of every process of the cluster,
reaped backends included through the postmaster's cutime/cstime).
Prints a summary and writes docs/benchmarks.md (full runs) or
build/bench/benchmarks-quick.md (BENCH_QUICK=1).

Python 3 standard library only; the peers run under Node (bench/peer/).
"""
import datetime
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.dirname(HERE)
ROOT = os.path.dirname(BENCH)
sys.path.insert(0, HERE)
import peers  # noqa: E402
import stmts  # noqa: E402
from procs import (Service, Unavailable, children_cpu, foreign_pytest,  # noqa: E402
                   free_port, http_req, kill_all, log, machine_busy, proc_cpu, rss_kb,
                   run, spawn, tree_cpu)

QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
DURATION = int(os.environ.get("BENCH_DURATION", "4" if QUICK else "10"))
RUNS = int(os.environ.get("BENCH_RUNS", "1" if QUICK else "3"))
WARMUP = 1 if QUICK else 2
# Node compiles as it goes: the peer's CPU per request falls over its first
# tens of thousands of requests, so it warms up in slices until it has served
# PEER_WARMUP_REQUESTS and a slice costs no less than 90% of the one before,
# for at most PEER_WARMUP_MAX seconds
PEER_WARMUP_REQUESTS = 5000 if QUICK else 20000
PEER_WARMUP_MAX = 10 if QUICK else 30
Q1_JOBS = int(os.environ.get("BENCH_Q1_JOBS", "2000" if QUICK else "20000"))
Q1_TIMEOUT = 60 if QUICK else 240
Q1_CONCURRENCY = int(os.environ.get("BENCH_Q1_CONCURRENCY", "4"))  # issues 6 and 19: 4
W1_EVENTS = int(os.environ.get("BENCH_W1_EVENTS", "2000" if QUICK else "10000"))  # issue 14
W1_RATE = int(os.environ.get("BENCH_W1_RATE", "2500"))  # jobs submitted per second (drain)
# live: a rate the whole pipeline sustains on two cores, so the latency is
# delivery's, not a backlog's (offered past capacity, it grows with the run)
W1_LIVE_RATE = int(os.environ.get("BENCH_W1_LIVE_RATE", "500"))
W1_TIMEOUT = 120
W1DB = "nexus_w1"
M1_CONNS = int(os.environ.get("BENCH_M1_CONNS", "1000"))
CONNS = int(os.environ.get("BENCH_CONNECTIONS", "64"))  # issue 19: 64; others: build/bench only
LOW_CONNS = 16  # issue 19: the p99 targets hold at 16 connections
BOUND_CLIENTS = [64, 16]
WRK_THREADS = 2
ORGS, USERS, CREDITS = 100, 100, 1_000_000_000
TOKEN_USER = 2  # the member of each organisation that gets a token
BIN = os.environ.get("NEXUS_BIN", os.path.join(ROOT, "build", "nexusapi"))
BASE_BIN = os.path.abspath(os.environ["BENCH_BASELINE_BIN"]) if os.environ.get("BENCH_BASELINE_BIN") else ""
PG_BINDIR = os.environ.get("PG_BINDIR", "/usr/lib/postgresql/15/bin")
SUPERUSER, OWNER, DBNAME, Q1DB = "bench_su", "nexus_owner", "nexus_bench", "nexus_q1"
BASEDB, Q1BASEDB, GWDB = "nexus_base", "nexus_q1_base", "graphile_worker_q1"
NOTE = os.environ.get("BENCH_NOTE", "")
PROFILE = [x for x in os.environ.get("BENCH_PROFILE", "").split(",") if x]
PGSS = os.environ.get("BENCH_PGSS", "1") != "0"  # statements per request need it
ONLY = [x.strip() for x in os.environ.get("BENCH_ONLY", "").split(",") if x.strip()]

# The measured scenarios, in round order: key -> (target, request, connections).
# Targets: "nexus" (nexusapi serve), "limited" (the same with rate limits on,
# high enough never to refuse: issue 13), "fastify" (the reference peer),
# "baseline" (BENCH_BASELINE_BIN). Requests: S1, S2, S3 and S4 (S3 with an
# Idempotency-Key per request). B2/B3 rows (pgbench) follow their scenario.
SCENARIOS = {}
for _s in ("S1", "S2", "S3"):
    SCENARIOS[_s] = ("nexus", _s, CONNS)
    SCENARIOS[f"{_s} fastify"] = ("fastify", _s, CONNS)
    SCENARIOS[f"{_s} baseline"] = ("baseline", _s, CONNS)
    if _s != "S1":
        SCENARIOS[f"{_s}/{LOW_CONNS}"] = ("nexus", _s, LOW_CONNS)
SCENARIOS.update({"S2L": ("limited", "S2", CONNS), "S3L": ("limited", "S3", CONNS),
                  "S4": ("nexus", "S4", CONNS)})
LIMITED = ("S2L", "S3L")
BOUNDS = {"S2": "B2", "S3": "B3"}
ROUND = ["S1", "S1 fastify", "S1 baseline",
         "S2", "S2 fastify", "S2 baseline", f"S2/{LOW_CONNS}", "B2",
         "S3", "S3 fastify", "S3 baseline", f"S3/{LOW_CONNS}", "B3",
         "S2L", "S3L", "S4"]
PEER_POOL = int(os.environ.get("BENCH_PEER_POOL", "8"))  # pg connections per Fastify worker


def base_of(key):
    """"S2 fastify", "S2/16", "B2/64" -> "S2"; "Q1 baseline" -> "Q1"."""
    k = key.split(" ")[0].split("/")[0]
    return "S" + k[1:] if k.startswith("B") else k


def wanted(key):
    """BENCH_ONLY names scenarios (S2, M1) - each with its peers, its 16-connection
    run and its bound - or exact rows ("S2 fastify", S2/16, B2/64)."""
    return not ONLY or key in ONLY or base_of(key) in ONLY


TARGETS = {  # issue 19: ratios inside one run
    "s1_vs_fastify": 4.0, "s2_vs_fastify": 3.0, "s3_vs_fastify": 3.0,
    "s2_vs_baseline": 0.5, "s3_vs_baseline": 2.0 / 3.0,
    "q1_vs_graphile": 2.0, "q1_pg_vs_baseline": 0.5,
    "s2_p99_16_ms": 5.0, "s3_p99_16_ms": 10.0, "m1_mb": 30.0,
    "issue13_pct": 85.0,
    "w1_deliveries_s": 2000.0, "w1_p50_ms": 50.0,  # issue 14
}


class CpuWindow:
    """Before/after CPU of the server, the cluster, the load generator and the machine.
    server_cpu: a function giving the server's CPU seconds so far (None: none)."""

    def __init__(self, server_cpu, pm_pid):
        self.server_cpu, self.pm_pid = server_cpu, pm_pid

    def snap(self):
        busy, total = machine_busy()
        return {"server": self.server_cpu() if self.server_cpu else 0.0,
                "pg": tree_cpu(self.pm_pid), "client": children_cpu(),
                "busy": busy, "total": total, "t": time.time()}

    @staticmethod
    def delta(a, b):
        d = {k: b[k] - a[k] for k in a}
        own = d["server"] + d["pg"] + d["client"]
        d["other_pct"] = max(0.0, 100.0 * (d["busy"] - own) / d["total"]) if d["total"] else 0.0
        d["busy_pct"] = 100.0 * d["busy"] / d["total"] if d["total"] else 0.0
        return d


# ---------------------------------------------------------------- PostgreSQL

def _pg_account():
    if os.geteuid() != 0:
        return None
    return pwd.getpwnam(os.environ.get("NEXUS_PG_USER", "postgres"))


class Cluster:
    def __init__(self, tmp):
        self.dir = os.path.join(tmp, "pg")
        os.mkdir(self.dir)
        self.data = os.path.join(self.dir, "data")
        self.sock = os.path.join(self.dir, "sock")
        os.mkdir(self.sock)
        self.port = free_port()
        self.pw = _pg_account()
        if self.pw:
            for p in (self.dir, self.sock):
                os.chown(p, self.pw.pw_uid, self.pw.pw_gid)
        self.started = False

    def _as_pg(self, cmd, timeout=120):
        pw = self.pw

        def demote():
            os.setgid(pw.pw_gid)
            os.initgroups(pw.pw_name, pw.pw_gid)
            os.setuid(pw.pw_uid)
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=self.dir,
                           preexec_fn=demote if pw else None)
        if r.returncode != 0:
            raise RuntimeError(f"{os.path.basename(cmd[0])} failed: {r.stderr.strip()[-800:]}")
        return r

    def init(self):
        self._as_pg([os.path.join(PG_BINDIR, "initdb"), "-D", self.data, "-U", SUPERUSER,
                     "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"])
        self.settings = {
            "listen_addresses": "'127.0.0.1'", "port": str(self.port),
            "unix_socket_directories": f"'{self.sock}'",
            "shared_buffers": "'256MB'", "fsync": "on", "synchronous_commit": "on",
            "full_page_writes": "on", "max_connections": "300",
            # checkpoints only where measure() asks for them: between windows
            "checkpoint_timeout": "'1h'", "max_wal_size": "'16GB'",
        }
        if PGSS:
            self.settings.update({"shared_preload_libraries": "'pg_stat_statements'",
                                  "pg_stat_statements.track_utility": "on"})
        with open(os.path.join(self.data, "postgresql.auto.conf"), "a") as f:
            for k, v in self.settings.items():
                f.write(f"{k} = {v}\n")
        self._as_pg([os.path.join(PG_BINDIR, "pg_ctl"), "-D", self.data, "-l",
                     os.path.join(self.dir, "log"), "-w", "-t", "60", "start"])
        self.started = True
        with open(os.path.join(self.data, "postmaster.pid")) as f:
            self.pm_pid = int(f.readline())

    def destroy(self):
        if self.started:
            try:
                self._as_pg([os.path.join(PG_BINDIR, "pg_ctl"), "-D", self.data, "-m",
                             "immediate", "-w", "stop"], timeout=60)
            except Exception as e:  # noqa: BLE001
                log(f"pg_ctl stop: {e}")
            self.started = False

    def dsn(self, db=DBNAME, user=OWNER):
        return f"postgresql://{user}@127.0.0.1:{self.port}/{db}"

    def psql(self, sql, db=DBNAME, user=SUPERUSER, variables=None, file=None, timeout=300):
        cmd = ["psql", "-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1",
               "-d", self.dsn(db, user)]
        for k, v in (variables or {}).items():
            cmd += ["-v", f"{k}={v}"]
        cmd += ["-f", file] if file else ["-c", sql]
        return run(cmd, timeout=timeout).stdout.strip()

    def rows(self, sql, db=DBNAME):
        out = self.psql(sql, db)
        return [line.split("\t") for line in out.splitlines() if line]


def db_stats(cl, db):
    """Counters of one database; pg_stat_statements calls exclude our own (superuser) queries."""
    calls = """(SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s
                 WHERE s.dbid = d.datid AND s.userid <> (SELECT oid FROM pg_roles WHERE rolname = current_user))""" \
        if PGSS else "'NaN'::float8"
    r = cl.rows(f"""
        SELECT {calls},
               d.xact_commit, d.xact_rollback, w.wal_sync, w.wal_records,
               pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')
        FROM pg_stat_database d, pg_stat_wal w WHERE d.datname = '{db}'""", db)[0]
    return dict(zip(["calls", "commits", "rollbacks", "wal_sync", "wal_records", "wal_bytes"],
                    [float(x) for x in r]))


def top_statements(cl, db, per, limit=8):
    if not PGSS:
        return []
    rows = cl.rows(f"""
        SELECT calls, rows, total_exec_time, regexp_replace(query, '\\s+', ' ', 'g')
        FROM pg_stat_statements s
        WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = '{db}')
          AND s.userid <> (SELECT oid FROM pg_roles WHERE rolname = current_user)
        ORDER BY calls DESC LIMIT {limit}""", db)
    return [{"per": int(c) / per if per else 0, "rows_per": int(n) / per if per else 0,
             "us_per_call": 1000.0 * float(t) / int(c) if int(c) else 0,
             "query": q[:110] + ("..." if len(q) > 110 else "")} for c, n, t, q in rows]


# ---------------------------------------------------------------- the server

class Server(Service):
    """`nexusapi serve` (or another verb) of BIN, or of another binary."""

    def __init__(self, tmp, env, name="server", args=("serve",), port=None, wrap=None, binary=None):
        port = port or free_port()
        env = dict(env, PORT=str(port), HOST="127.0.0.1", PUBLIC_URL=f"http://127.0.0.1:{port}")
        # BENCH_SERVER_LOG=/dev/null: experiment knob (the report always states it)
        super().__init__(tmp, [binary or BIN] + list(args), env, name, port, wrap=wrap,
                         logpath=os.environ.get("BENCH_SERVER_LOG"))


# ---------------------------------------------------------------- wrk and pgbench

UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(s):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", s)
    return float(m.group(1)) * UNIT_MS[m.group(2)] if m else None


def parse_wrk(out):
    r = {}
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+),", out)
    if m:
        r["requests"] = int(m.group(1))
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    r["rps"] = float(m.group(1)) if m else 0.0
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", out, re.M)
        r[f"p{pct}"] = _ms(m.group(1)) if m else None
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    r["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    r["sock_err"] = sum(int(x) for x in m.groups()) if m else 0
    return r


def pct(values, q):
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(q / 100.0 * len(v)))]


def parse_pgbench(out, logprefix):
    r = {}
    m = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out)
    r["rps"] = float(m.group(1)) if m else 0.0
    m = re.search(r"number of transactions actually processed: (\d+)", out)
    r["requests"] = int(m.group(1)) if m else 0
    m = re.search(r"number of failed transactions: (\d+)", out)
    r["failed"] = int(m.group(1)) if m else 0
    lat = []
    d, base = os.path.dirname(logprefix), os.path.basename(logprefix)
    for fn in os.listdir(d):
        if fn.startswith(base + "."):
            with open(os.path.join(d, fn)) as f:
                for line in f:
                    p = line.split()
                    if len(p) >= 3 and p[2].isdigit():
                        lat.append(int(p[2]))
            os.unlink(os.path.join(d, fn))
    r["p50"] = pct(lat, 50) / 1000.0 if lat else None
    r["p99"] = pct(lat, 99) / 1000.0 if lat else None
    return r


# ---------------------------------------------------------------- the benchmark

class Bench:
    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="nexus-bench-")
        os.chmod(self.tmp, 0o755)
        self.cl = None
        self.targets = {}  # "nexus", "limited", "fastify", "baseline" -> a running Service
        self.down = {}  # target -> why it is not running
        self.answers = {}  # request -> NexusAPI's answer to the probe
        self.res = {"quick": QUICK, "duration": DURATION, "runs": RUNS, "scenarios": {},
                    "unavailable": {}, "notes": [], "started": time.time()}
        self.secret = secrets.token_hex(32)
        self.tokens_path = os.path.join(self.tmp, "tokens.txt")
        self.body_path = os.path.join(self.tmp, "body.json")
        self.bound_scripts = {}
        self.pgbench_vars = {}

    # -- set-up -------------------------------------------------------------

    def env(self, db=DBNAME, **extra):
        keep = {k: v for k, v in os.environ.items()
                if not k.startswith(("NEXUS_", "JOB_", "GOOGLE_", "GEMINI_", "DATABASE_URL",
                                     "APP_DATABASE_URL", "WORKER_DATABASE_URL", "JWT_",
                                     "WORKER_", "LOG_", "AI_", "PG", "BENCH_", "PEER_"))}
        keep.update({"DATABASE_URL": self.cl.dsn(db), "JWT_SECRET_KEY": self.secret,
                     "JWT_EXPIRATION_MINUTES": "240", "WORKER_CONCURRENCY": "0",
                     # the reference runs without the limiter; S2L/S3L run a second
                     # server with it on (LIMITED below); Q1 measures real work
                     "RATE_LIMIT_REQUESTS": "0", "AI_CACHE_TTL_SECONDS": "0"})
        keep.update({k: str(v) for k, v in extra.items()})
        return keep

    def setup(self):
        info = self.res["machine"] = machine_info()
        self.res["versions"] = versions()
        log(f"machine: {info['nproc']} cores, {info['cpu']}, kernel {info['kernel']}; "
            f"load {info['load']}; pytest processes: {info['pytest']}")
        if not os.access(BIN, os.X_OK):
            raise RuntimeError(f"{BIN} not built")
        info["fsync_per_s"] = fsync_rate(self.tmp)
        log(f"disk: {info['fsync_per_s']:.0f} write+fdatasync per second (8 KB, 1 s, temp dir)")
        self.cl = Cluster(self.tmp)
        self.cl.init()
        self.res["pg_settings"] = self.cl.settings
        log(f"PostgreSQL on 127.0.0.1:{self.cl.port} ({self.cl.dir})")
        self.cl.psql(f"CREATE ROLE {OWNER} LOGIN CREATEROLE", "postgres")
        self.seeded = False
        try:
            self.database(DBNAME, BIN)
            self.seeded = True
            # a pristine copy for Q1 (taken before any job exists)
            self.cl.psql(f"CREATE DATABASE {Q1DB} TEMPLATE {DBNAME} OWNER {OWNER}", "postgres")
            if wanted("W1"):
                self.cl.psql(f"CREATE DATABASE {W1DB} TEMPLATE {DBNAME} OWNER {OWNER}", "postgres")
        except Unavailable as e:
            self.res["notes"].append(f"seed failed: {e}")
            log(f"seed failed: {e}")
        if BASE_BIN and any(wanted(k) for k in SCENARIOS if k.endswith(" baseline")) \
                or BASE_BIN and wanted("Q1 baseline"):
            self.setup_baseline()
        self.write_body()
        self.mint_tokens()
        self.pgbench_vars = {"need_member": "member", "job_summarise": "summarise",
                             "text": self.text, "null_param": "-", "page_limit": "21",
                             "cost_summarise": job_cost("summarise", "10"),
                             "max_attempts": setting_default("JOB_MAX_ATTEMPTS", "3"), "no_metadata": "{}", "api_v1": "1",
                             "credits_low": setting_default("CREDITS_LOW_THRESHOLD", "50")}

    def database(self, db, binary):
        """A database migrated by `binary migrate upgrade head` and seeded."""
        self.cl.psql(f"CREATE DATABASE {db} OWNER {OWNER}", "postgres")
        if PGSS:
            self.cl.psql("CREATE EXTENSION pg_stat_statements", db)
        r = run([binary, "migrate", "upgrade", "head"], env=self.env(db), cwd=self.tmp, check=False)
        if r.returncode != 0:
            raise RuntimeError(f"{binary} migrate upgrade head failed: "
                               f"{(r.stderr or r.stdout).strip()[-600:]}")
        t0 = time.time()
        try:
            self.cl.psql(None, db=db, user=OWNER, file=os.path.join(BENCH, "seed.sql"),
                         variables={"orgs": ORGS, "users": USERS, "credits": CREDITS})
        except RuntimeError as e:
            raise Unavailable(f"the seed failed: {e}")
        log(f"{db}: migrated by {os.path.relpath(binary, ROOT)}, seeded {ORGS} organisations "
            f"x {USERS} users in {time.time() - t0:.1f}s")

    def setup_baseline(self):
        """BENCH_BASELINE_BIN's own database (its migrations may differ) and Q1 copy."""
        b = self.res["baseline"] = {"bin": BASE_BIN, "src": baseline_src()}
        try:
            if not os.access(BASE_BIN, os.X_OK):
                raise Unavailable(f"BENCH_BASELINE_BIN={BASE_BIN} is not an executable")
            b["version"] = run([BASE_BIN, "--version"], check=False).stdout.strip()
            try:
                with open(os.path.join(os.path.dirname(BASE_BIN), "REV")) as f:
                    b["rev"] = f.read().strip()
            except OSError:
                b["rev"] = None
            self.database(BASEDB, BASE_BIN)
            self.cl.psql(f"CREATE DATABASE {Q1BASEDB} TEMPLATE {BASEDB} OWNER {OWNER}", "postgres")
        except (Unavailable, RuntimeError) as e:
            self.down["baseline"] = str(e)
            log(f"baseline not available: {e}")

    def write_body(self):
        words = ("The quarterly report shows steady growth in every region. Customers praised "
                 "the faster onboarding and the clearer invoices. Support tickets fell by a "
                 "third after the new help centre launched. The team plans to expand the "
                 "pilot to two more markets next spring. Costs rose slightly because of "
                 "higher cloud prices, but margins held. ")
        text = (words * 8)[:1024].rstrip()
        text = text + "." * (1024 - len(text))
        self.text = text
        self.input_json = json.dumps({"text": text})
        with open(self.body_path, "w") as f:
            f.write(self.input_json)

    def mint_tokens(self):
        self.tokens = []
        if not self.seeded:
            self.token_error = "the seed failed"
            return
        env = self.env()
        t0 = time.time()
        for k in range(1, ORGS + 1):
            email = f"u{TOKEN_USER}@org{k}.bench.example"
            r = run([BIN, "token", email], env=env, cwd=self.tmp, check=False, timeout=30)
            tok = (r.stdout.strip().splitlines() or [""])[-1].strip()
            if r.returncode != 0 or tok.count(".") != 2:
                self.token_error = f"`nexusapi token {email}`: " + \
                    ((r.stderr or r.stdout).strip().splitlines() or ["no output"])[-1][:200]
                self.tokens = []
                log(f"tokens not available: {self.token_error}")
                return
            self.tokens.append(tok)
        with open(self.tokens_path, "w") as f:
            f.write("\n".join(self.tokens) + "\n")
        log(f"minted {len(self.tokens)} tokens with `nexusapi token` in {time.time() - t0:.1f}s")

    def needs(self, target):
        return any(t == target and wanted(k) for k, (t, _, _) in SCENARIOS.items())

    def start_servers(self):
        srv = self.targets["nexus"] = Server(self.tmp, self.env())
        srv.wait_http()
        if self.needs("limited"):
            # the same server with rate limits on, high enough never to refuse
            lim = self.targets["limited"] = Server(
                self.tmp, self.env(RATE_LIMIT_REQUESTS=100000000, RATE_LIMIT_WINDOW_SECONDS=900),
                name="server-limited")
            lim.wait_http()
        cfg = run([BIN, "config"], env=srv.env, cwd=self.tmp, check=False)
        keep = ("HTTP_", "WORKER_CONCURRENCY", "JOB_BATCH_SIZE", "JOB_POLL_INTERVAL_MS",
                "LOG_LEVEL", "LOG_FORMAT", "AI_PROVIDER", "JWT_ALGORITHM")
        self.res["settings"] = [l for l in cfg.stdout.splitlines() if l.startswith(keep)]
        self.res["settings_note"] = ("server stdout+stderr (access log at the default level) -> "
                                     + (os.environ.get("BENCH_SERVER_LOG") or "a file in the temp dir"))
        log(f"nexusapi serve on 127.0.0.1:{srv.port} (pid {srv.pid}); "
            + " ".join(self.res["settings"]))
        if self.needs("baseline") and BASE_BIN and "baseline" not in self.down:
            self.start_target("baseline", lambda: Server(self.tmp, self.env(BASEDB), name="baseline",
                                                         binary=BASE_BIN))
        if self.needs("fastify"):
            self.start_target("fastify", self.fastify)

    def start_target(self, name, make):
        try:
            t = self.targets[name] = make()
            t.wait_http(timeout=60)
            log(f"{name} on 127.0.0.1:{t.port} (pid {t.pid})")
        except (Unavailable, RuntimeError) as e:
            self.down[name] = str(e)
            self.targets.pop(name, None)
            log(f"{name} not available: {e}")

    def fastify(self):
        st, _, body = http_req(self.targets["nexus"].port, "GET", "/health")
        version = (json.loads(body) if st == 200 else {}).get("version", "?")
        conf = peers.write_sql(os.path.join(ROOT, "src"), os.path.join(self.tmp, "peer-sql.json"), {
            "version": version, "cost_summarise": int(job_cost("summarise", "10")),
            "max_attempts": int(setting_default("JOB_MAX_ATTEMPTS", "3")),
            "credits_low": int(setting_default("CREDITS_LOW_THRESHOLD", "50"))})
        self.res["peer"] = {"pool": PEER_POOL, "workers": os.environ.get("PEER_WORKERS") or os.cpu_count()}
        return peers.Fastify(self.tmp, self.cl.dsn(DBNAME), self.secret, conf, PEER_POOL)

    # -- availability ---------------------------------------------------------

    def ask(self, port, req):
        """One request of the scenario's kind with the first token: (status, headers, body)."""
        if req == "S1":
            return http_req(port, "GET", "/health")
        h = {"Authorization": "Bearer " + self.tokens[0]}
        if req == "S2":
            return http_req(port, "GET", "/api/v1/users?limit=20", headers=h)
        h["Content-Type"] = "application/json"
        if req == "S4":
            h["Idempotency-Key"] = f"probe-{time.time()}"
        return http_req(port, "POST", "/api/v1/summarise", body=self.input_json, headers=h)

    def probe(self, key):
        """Checks a scenario's answer before it is measured (Unavailable if wrong).
        The Fastify peer must answer what NexusAPI answers."""
        target, req, _ = SCENARIOS[key]
        if target not in self.targets:
            raise Unavailable(self.down.get(target, f"{target} is not running"))
        if req != "S1" and not self.tokens:
            raise Unavailable(f"no tokens ({getattr(self, 'token_error', 'unknown')})")
        st, hdrs, body = self.ask(self.targets[target].port, req)
        path = "GET /health" if req == "S1" else \
            "GET /api/v1/users" if req == "S2" else "POST /api/v1/summarise"
        if st in (404, 405, 501):
            raise Unavailable(f"{path} answered {st}: route not available yet")
        if st != {"S1": 200, "S2": 200}.get(req, 202):
            raise Unavailable(f"{path} answered {st}: {body[:200]!r}")
        if key == "S2L" and "ratelimit" not in {k.lower() for k in hdrs}:
            raise Unavailable("the limited server answers without RateLimit headers")
        if req == "S2":
            items = json.loads(body).get("items", [])
            if len(items) != 20:
                raise Unavailable(f"GET /api/v1/users?limit=20 returned {len(items)} items, not 20")
        if req == "S3" and not peers.UUID.match(str(json.loads(body).get("job_id"))):
            raise Unavailable(f"POST /api/v1/summarise answered without a job_id: {body[:200]!r}")
        if target == "nexus" and req not in self.answers:
            self.answers[req] = (st, hdrs, body)
        if target == "fastify":
            ours = self.answers.get(req) or self.ask(self.targets["nexus"].port, req)
            diff = peers.same_answer(req, ours, (st, hdrs, body))
            if diff:
                raise Unavailable(f"answers differently from NexusAPI: {diff}")

    def prepare_bound(self, name, template, src=None, db=DBNAME):
        if not self.seeded:
            raise Unavailable("the seed failed")
        out = os.path.join(self.tmp, "scripts", name.replace(" ", "-"))
        os.makedirs(out, exist_ok=True)
        try:
            path, meta = stmts.render(os.path.join(BENCH, template), src or os.path.join(ROOT, "src"),
                                      out, ORGS, TOKEN_USER)
        except stmts.RenderError as e:
            raise Unavailable(str(e))
        self.bound_scripts[name] = [path]
        if db == DBNAME:
            self.res.setdefault("bound_sql", {})[name] = meta["sample"]
        # sanity: one client, a few transactions, no error
        r = self.pgbench(name, 1, t=5, db=db, check=False)
        if r.returncode != 0 or "aborted" in r.stderr:
            raise Unavailable(f"pgbench {template} failed: {r.stderr.strip()[-400:]}")

    def pgbench(self, name, clients, T=None, t=None, db=DBNAME, logprefix=None, check=True,
                rate=None):
        cmd = ["pgbench", "-n", "-M", "prepared", "-c", str(clients),
               "-j", str(min(WRK_THREADS, clients))]
        cmd += ["-T", str(T)] if T else ["-t", str(t)]
        if rate:
            cmd += ["-R", str(rate)]
        if logprefix:
            cmd += ["-l", f"--log-prefix={logprefix}"]
        for p in self.bound_scripts[name]:
            cmd += ["-f", p]
        for k, v in self.pgbench_vars.items():
            cmd += ["-D", f"{k}={v}"]
        cmd.append(f"host=127.0.0.1 port={self.cl.port} dbname={db} user={OWNER}")
        env = dict(os.environ, PGOPTIONS="-c role=nexus_app")  # the server's SET ROLE
        r = run(cmd, env=env, timeout=(T or 0) + 300, check=False)
        if check and (r.returncode != 0 or "aborted" in r.stderr):
            raise RuntimeError(f"pgbench failed: {r.stderr.strip()[-600:]}")
        return r

    # -- measured runs --------------------------------------------------------

    def wrk(self, key, duration):
        target, req, conns = SCENARIOS[key]
        url = f"http://127.0.0.1:{self.targets[target].port}"
        cmd = ["wrk", "-t", str(WRK_THREADS), "-c", str(conns), "-d", f"{duration}s",
               "--latency", "--timeout", "5s"]
        if req == "S1":
            url += "/health"
        else:
            script = {"S2": "s2_users.lua", "S3": "s3_summarise.lua", "S4": "s4_idempotent.lua"}[req]
            cmd += ["-s", os.path.join(BENCH, script)]
        env = dict(os.environ, BENCH_TOKENS=self.tokens_path, BENCH_BODY=self.body_path,
                   BENCH_DIR=BENCH)
        r = run(cmd + [url], env=env, timeout=duration + 60)
        return parse_wrk(r.stdout)

    def profile(self, key):
        """BENCH_PROFILE=S1,S2: an extra, unmeasured wrk run with `perf record -g`
        on the server; report in build/bench/profile-<sc>.txt."""
        out = os.path.join(ROOT, "build", "bench")
        os.makedirs(out, exist_ok=True)
        name = key.replace(" ", "-").replace("/", "-")
        data = os.path.join(out, f"perf-{name}.data")
        pid = self.targets[SCENARIOS[key][0]].pid
        rec = spawn(["perf", "record", "-g", "-F", "999", "-o", data, "-p", str(pid)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        self.wrk(key, max(3, DURATION // 2))
        os.kill(rec.pid, signal.SIGINT)
        rec.wait(timeout=60)
        for suffix, extra in (("", ["--no-children"]), ("-callers", ["--children"])):
            r = run(["perf", "report", "-i", data, "--stdio", "--percent-limit", "1", "-g", "none"]
                    + extra, check=False, timeout=120)
            with open(os.path.join(out, f"profile-{name}{suffix}.txt"), "w") as f:
                f.write(r.stdout)
        log(f"profile of {key}: build/bench/profile-{name}.txt (perf data: {os.path.relpath(data, ROOT)})")

    def measure(self, key, fn):
        cl = self.cl
        http = key in SCENARIOS
        db = BASEDB if http and SCENARIOS[key][0] == "baseline" else DBNAME
        if PGSS:
            cl.psql("SELECT pg_stat_statements_reset()")
        cl.psql("CHECKPOINT")  # every window starts from the same state (report.py: Method)
        before = db_stats(cl, db)
        time.sleep(0.1)
        win = CpuWindow(self.targets[SCENARIOS[key][0]].cpu if http else None, cl.pm_pid)
        a = win.snap()
        load = os.getloadavg()[0]
        r = fn()
        if not http:
            time.sleep(0.3)  # pgbench's backends exit and are reaped
        b = win.snap()
        after = db_stats(cl, db)
        d = CpuWindow.delta(a, b)
        n = max(1, r.get("requests", 0))
        r.update({
            "server_us": 1e6 * d["server"] / n if http else None,
            "pg_us": 1e6 * d["pg"] / n, "client_us": 1e6 * d["client"] / n,
            "other_pct": d["other_pct"], "busy_pct": d["busy_pct"], "load1": load,
            "pytest": foreign_pytest(),
            "stmts": (after["calls"] - before["calls"]) / n if PGSS else None,
            "wal_bytes": (after["wal_bytes"] - before["wal_bytes"]) / n,
        })
        r["top"] = top_statements(cl, db, n, 6)
        bad = r.get("non2xx", 0) + r.get("sock_err", 0) + r.get("failed", 0)
        if not r.get("requests"):
            r["invalid"] = "no request completed (connecting took the whole run?)"
        elif bad > 0.001 * n:
            r["invalid"] = f"{bad} of {n} requests failed (non-2xx, socket errors or failed transactions)"
        self.res["scenarios"].setdefault(key, []).append(r)
        log(f"  {key:11s} {r['rps']:9.0f}/s  p50 {fmt(r['p50'], 2)} ms  p99 {fmt(r['p99'], 2)} ms  "
            f"server {fmt(r['server_us'], 1)} us  pg {fmt(r['pg_us'], 1)} us  "
            f"stmts {fmt(r['stmts'], 2)}  other {r['other_pct']:.0f}%"
            + (f"  INVALID: {r['invalid']}" if "invalid" in r else ""))
        return r

    def plan(self):
        """The keys measured in each round, in order, each probed first."""
        order = []
        for key in ROUND:
            if key in BOUNDS.values():  # B2, B3: the bound of the scenario before
                keys = [f"{key}/{c}" for c in BOUND_CLIENTS if wanted(f"{key}/{c}")]
                if not keys:
                    continue
                try:
                    self.prepare_bound(key, f"s{key[1]}_bound.sql")
                    order += keys
                except Unavailable as e:
                    self.res["unavailable"][key] = f"not available yet: {e}"
                    log(f"{key}: not available yet: {e}")
                continue
            if not wanted(key) or (SCENARIOS[key][0] == "baseline" and not BASE_BIN):
                continue
            try:
                self.probe(key)
                order.append(key)
            except Unavailable as e:
                self.res["unavailable"][key] = f"not available: {e}"
                log(f"{key}: not available: {e}")
        return order

    def warm_up(self, key):
        if SCENARIOS[key][0] != "fastify":
            log(f"warm-up {key} ({WARMUP}s)")
            self.wrk(key, WARMUP)
            return
        srv, prev, costs, served = self.targets["fastify"], None, [], 0
        deadline = time.time() + PEER_WARMUP_MAX
        while time.time() < deadline:
            c0 = srv.cpu()
            n = self.wrk(key, WARMUP).get("requests", 0)
            cost = 1e6 * (srv.cpu() - c0) / max(1, n)
            served += n
            costs.append(f"{cost:.0f}")
            if served >= PEER_WARMUP_REQUESTS and prev is not None and cost >= 0.9 * prev:
                break
            prev = cost
        log(f"warm-up {key}: {served} requests in {len(costs)} x {WARMUP}s, "
            f"server µs/request {' -> '.join(costs)}")
        self.res.setdefault("peer_warmup", {})[key] = {"requests": served, "costs": costs}

    def run_rounds(self):
        order = self.plan()
        warmed = set()
        for key in [k for k in order if k in SCENARIOS]:
            if SCENARIOS[key][:2] not in warmed:  # a server and request warmed once
                warmed.add(SCENARIOS[key][:2])
                self.warm_up(key)
            if key in PROFILE:
                self.profile(key)
        for i in range(RUNS):
            log(f"round {i + 1}/{RUNS}")
            # odd rounds run backwards, so no scenario always follows the same one
            for key in (order if i % 2 == 0 else order[::-1]):
                if key in SCENARIOS:
                    self.measure(key, lambda k=key: self.wrk(k, DURATION))
                else:
                    name, c = key.split("/")
                    prefix = os.path.join(self.tmp, "pgblog")

                    def go(name=name, c=int(c), prefix=prefix):
                        r = self.pgbench(name, c, T=DURATION, logprefix=prefix)
                        return parse_pgbench(r.stdout, prefix)
                    self.measure(key, go)
        srv = self.targets["nexus"]
        self.res["server_peak_rss_kb"] = rss_kb(srv.pid, "VmHWM")
        self.res["server_rss_after_kb"] = rss_kb(srv.pid)
        try:
            size = os.path.getsize(srv.logpath)
            nreq = sum(r.get("requests", 0) for k, v in self.res["scenarios"].items()
                       if k in SCENARIOS and SCENARIOS[k][0] == "nexus" for r in v)
            self.res["log_bytes_per_request"] = size / nreq if nreq else None
        except OSError:
            pass
        self.stop_servers()

    def stop_servers(self):
        for name in list(self.targets):
            self.targets.pop(name).stop()

    # -- W1 -----------------------------------------------------------------------

    def w1(self):
        """Webhooks: every organisation has one endpoint (job.completed) at a
        local receiver that answers 204 at once. Two phases, both real jobs
        submitted with the S3 statement (pgbench -R W1_RATE) and run by
        `nexusapi worker` (WORKER_CONCURRENCY=4, webhook settings at their
        defaults):
        - drain: W1_EVENTS jobs run by a worker whose delivery pool is off
          (WEBHOOK_CONCURRENCY=0), so their events wait in the outbox; then a
          worker with it on delivers them: deliveries/s from the first to the
          last arrival, and the worker's and PostgreSQL's CPU per delivery.
          This is the delivery machinery's own rate: on two cores a live run is
          bound by submitting and running the jobs (S3 alone is about 2,000/s).
        - live: that worker keeps running while W1_EVENTS more jobs are
          submitted at W1_LIVE_RATE, below what the whole pipeline sustains
          here: the latency from each job's completion (the commit that
          wrote its event) to the receiver seeing the request."""
        if "B3" not in self.bound_scripts:
            try:
                self.prepare_bound("B3", "s3_bound.sql")
            except Unavailable as e:
                raise Unavailable(f"needs the submission SQL to queue jobs ({e})")
        cl = self.cl
        portfile = os.path.join(self.tmp, "w1.port")
        rec = spawn([sys.executable, os.path.join(HERE, "w1_receiver.py"), portfile],
                    stdout=subprocess.PIPE, text=True)
        deadline = time.time() + 10
        while not (os.path.exists(portfile) and open(portfile).read()) and time.time() < deadline:
            time.sleep(0.05)
        port = int(open(portfile).read())
        cl.psql("INSERT INTO webhook_endpoints (organisation_id, url, events, secret) "
                f"SELECT id, 'http://127.0.0.1:{port}/hooks/' || id, ARRAY['job.completed'], "
                "decode(md5(id::text) || md5(name), 'hex') FROM organisations", W1DB, user=OWNER)
        cl.psql("CHECKPOINT", W1DB)
        n = W1_EVENTS // 8 * 8

        def worker(name, marker, **extra):
            env = self.env(W1DB, WORKER_CONCURRENCY=Q1_CONCURRENCY, WEBHOOK_ALLOW_HTTP="true",
                           WEBHOOK_ALLOW_NETWORKS="127.0.0.0/8", **extra)
            w = Server(self.tmp, env, name=name, args=("worker",))
            deadline = time.time() + 30
            while marker not in w.tail(1 << 30) and time.time() < deadline:  # the whole log
                if w.proc.poll() is not None:
                    raise RuntimeError(f"W1 worker exited ({w.proc.returncode}): {w.tail()}")
                time.sleep(0.1)
            return w

        def count(where):
            return int(cl.psql(f"SELECT count(*) FROM webhook_deliveries WHERE {where}", W1DB))

        def wait(where, want, w):
            deadline, got = time.time() + W1_TIMEOUT, 0
            while time.time() < deadline:
                got = count(where)
                if got >= want or w.proc.poll() is not None:
                    break
                time.sleep(0.2)
            return got

        def phase():
            rec.send_signal(signal.SIGUSR1)
            return json.loads(rec.stdout.readline())

        # drain: the outbox filled by real jobs, then emptied by the delivery pool
        log(f"W1 drain: {n} jobs at {W1_RATE}/s run with the delivery pool off, "
            f"{ORGS} endpoints at 127.0.0.1:{port}")
        wa = worker("w1-jobs", "job workers started", WEBHOOK_CONCURRENCY=0)
        self.pgbench("B3", 8, t=W1_EVENTS // 8, db=W1DB, rate=W1_RATE)
        queued = wait("status = 'pending'", n, wa)
        wa.stop()
        cl.psql("CHECKPOINT", W1DB)
        a = CpuWindow(None, cl.pm_pid).snap()
        w = worker("w1-worker", "webhook workers started")
        drained = wait("status = 'succeeded'", n, w)
        b = CpuWindow(None, cl.pm_pid).snap()
        w_cpu = proc_cpu(w.pid)
        drain = phase()
        d = CpuWindow.delta(a, b)
        span = (drain["last"] - drain["first"]) if drain["requests"] > 1 else 0.0
        r = {"events": n, "delivered": drained, "requests": drain["requests"],
             "distinct": drain["events"], "seconds": span,
             "deliveries_s": drain["requests"] / span if span > 0 else 0.0,
             "worker_us": 1e6 * w_cpu / max(1, drained), "pg_us": 1e6 * d["pg"] / max(1, drained),
             "other_pct": d["other_pct"], "rate": W1_RATE, "live_rate": W1_LIVE_RATE,
             "concurrency": Q1_CONCURRENCY}
        if queued < n or drained < n or drain["events"] < n:
            r["invalid"] = (f"drain: {queued} of {n} events queued, "
                            f"{min(drained, drain['events'])} delivered after {W1_TIMEOUT}s")
        log(f"W1 drain: {drain['events']} events ({drain['requests']} requests) in {span:.2f}s -> "
            f"{r['deliveries_s']:.0f} deliveries/s; worker {r['worker_us']:.0f} us, "
            f"pg {r['pg_us']:.0f} us per delivery")

        # live: jobs submitted, run and their events delivered at once
        log(f"W1 live: {n} jobs at {W1_LIVE_RATE}/s (the S3 statement, pgbench -R)")
        t0 = time.time()
        self.pgbench("B3", 8, t=W1_EVENTS // 8, db=W1DB, rate=W1_LIVE_RATE)
        submit_s = time.time() - t0
        done = wait("status = 'succeeded'", 2 * n, w) - n
        rec.send_signal(signal.SIGTERM)
        out = json.loads(rec.communicate(timeout=30)[0].strip().splitlines()[-1])
        w.stop()
        live_span = (out["last"] - out["first"]) if out["requests"] > 1 else 0.0
        r.update({"live_delivered": done, "live_requests": out["requests"],
                  "live_deliveries_s": out["requests"] / live_span if live_span > 0 else 0.0,
                  "submit_s": submit_s, "p50": out["p50_ms"], "p99": out["p99_ms"],
                  "max": out["max_ms"], "load1": os.getloadavg()[0]})
        if done < n or out["events"] < n:
            r["invalid"] = (r.get("invalid", "") + f" live: {n - min(done, out['events'])} of "
                            f"{n} events not delivered after {W1_TIMEOUT}s").strip()
        self.res["scenarios"]["W1"] = [r]
        log(f"W1 live: {out['events']} events in {live_span:.2f}s -> "
            f"{r['live_deliveries_s']:.0f} deliveries/s (submitted at {n / submit_s:.0f}/s); "
            f"completion to receiver p50 {fmt(r['p50'], 1)} ms, p99 {fmt(r['p99'], 1)} ms; "
            f"load {r['load1']:.2f}")

    # -- M1 -----------------------------------------------------------------------

    # -- Q1 -----------------------------------------------------------------------

    def q1_all(self):
        """Q1, graphile-worker beside it and the baseline's Q1: one drain each."""
        runs = [("Q1", lambda: self.q1("Q1", BIN, Q1DB, "B3")),
                ("Q1 graphile-worker", self.q1_graphile)]
        if BASE_BIN:
            runs.append(("Q1 baseline", lambda: self.q1_baseline()))
        for key, fn in runs:
            if not wanted(key):
                continue
            try:
                fn()
            except Unavailable as e:
                self.res["unavailable"][key] = f"not available: {e}"
                log(f"{key}: not available: {e}")
            except Exception as e:  # noqa: BLE001 - report, keep the other figures
                self.res["unavailable"][key] = f"failed: {e}"
                log(f"{key} failed: {e}")

    def q1_baseline(self):
        if "baseline" in self.down:
            raise Unavailable(self.down["baseline"])
        src = self.res["baseline"]["src"]
        if "B3 baseline" not in self.bound_scripts:
            self.prepare_bound("B3 baseline", "s3_bound.sql", src=src, db=BASEDB)
        self.q1("Q1 baseline", BASE_BIN, Q1BASEDB, "B3 baseline")

    def q1(self, key, binary, db, script):
        if script not in self.bound_scripts:
            try:
                self.prepare_bound(script, "s3_bound.sql")
            except Unavailable as e:
                raise Unavailable(f"needs the submission SQL to queue jobs ({e})")
        cl = self.cl
        log(f"{key}: enqueueing {Q1_JOBS} summarise jobs (the S3 statement, pgbench, 8 clients)")
        t0 = time.time()
        self.pgbench(script, 8, t=Q1_JOBS // 8, db=db)
        n = int(cl.psql("SELECT count(*) FROM jobs WHERE status = 'pending'", db))
        log(f"{key}: {n} pending jobs ({time.time() - t0:.1f}s)")
        cl.psql("CHECKPOINT", db)
        # the worker: `nexusapi worker` if it exists, else serve with workers on
        args, mode = ("worker",), "nexusapi worker"
        try:
            r = run([binary, "worker", "--help"], env=self.env(db), cwd=self.tmp, check=False, timeout=5)
            placeholder = "not available yet" in (r.stderr + r.stdout)
        except subprocess.TimeoutExpired:
            placeholder = False
        if placeholder:
            args, mode = ("serve",), "nexusapi serve (no `worker` verb yet)"
        if binary != BIN:
            mode += " (baseline)"
        perf_out = os.path.join(self.tmp, f"{db}.perf")
        wrap = None
        if shutil.which("perf"):
            wrap = ["perf", "stat", "-x", ",", "-o", perf_out, "-e",
                    "syscalls:sys_enter_sendto,syscalls:sys_enter_recvfrom", "--"]
        before, a = self.q1_start(db)
        w = Server(self.tmp, self.env(db, WORKER_CONCURRENCY=Q1_CONCURRENCY), name=f"{db}-worker",
                   args=args, wrap=wrap, binary=binary)
        t_start = time.time()
        deadline, left, failed = t_start + Q1_TIMEOUT, n, 0
        while time.time() < deadline:
            if w.proc.poll() is not None:
                raise RuntimeError(f"{key} worker exited ({w.proc.returncode}): {w.tail()}")
            left, failed, started = (int(x) for x in cl.rows(
                "SELECT count(*) FILTER (WHERE status IN ('pending', 'running')), "
                "count(*) FILTER (WHERE status = 'failed'), "
                "count(*) FILTER (WHERE started_at IS NOT NULL) FROM jobs", db)[0])
            if left == 0:
                break
            if started == 0 and time.time() - t_start > 15:
                w.stop()
                raise Unavailable(f"{mode} with WORKER_CONCURRENCY={Q1_CONCURRENCY} claimed no job in 15 s")
            time.sleep(0.5)
        w_cpu = w.cpu()
        b = CpuWindow(None, cl.pm_pid).snap()
        w.stop()
        done, span = cl.rows(
            "SELECT count(*), coalesce(extract(epoch FROM max(completed_at) - min(started_at)), 0) "
            "FROM jobs WHERE status = 'completed'", db)[0]
        q = self.q1_result(key, db, before, a, b, w_cpu, {
            "jobs": n, "completed": int(done), "failed": failed, "left": left,
            "seconds": float(span), "mode": mode})
        try:
            with open(perf_out) as f:
                sends = sum(int(line.split(",")[0]) for line in f
                            if "sys_enter_sendto" in line and line.split(",")[0].isdigit())
            q["round_trips"] = sends / max(1, q["completed"])
        except (OSError, ValueError):
            pass
        self.q1_log(key, q)

    def q1_graphile(self):
        """graphile-worker (npm) draining Q1_JOBS no-op jobs with Q1's payload and
        concurrency, in its own database of the same cluster."""
        cl, key = self.cl, "Q1 graphile-worker"
        cl.psql(f"CREATE DATABASE {GWDB} OWNER {OWNER}", "postgres")
        if PGSS:
            cl.psql("CREATE EXTENSION pg_stat_statements", GWDB)
        dsn = cl.dsn(GWDB)
        log(f"{key}: enqueueing {Q1_JOBS} no-op jobs (graphile-worker's addJobs)")
        t0 = time.time()
        peers.gw_queue(self.tmp, dsn, self.body_path, Q1_JOBS)
        n = int(cl.psql("SELECT count(*) FROM graphile_worker.jobs", GWDB))
        log(f"{key}: {n} queued jobs ({time.time() - t0:.1f}s)")
        cl.psql("CHECKPOINT", GWDB)
        cmd, env = peers.gw_drain_cmd(dsn, self.body_path, n, Q1_TIMEOUT, Q1_CONCURRENCY)
        before, a = self.q1_start(GWDB)
        p = spawn(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=self.tmp)
        g = peers.gw_drain_result(p, Q1_TIMEOUT + 60)
        b = CpuWindow(None, cl.pm_pid).snap()
        left = int(cl.psql("SELECT count(*) FROM graphile_worker.jobs", GWDB))
        q = self.q1_result(key, GWDB, before, a, b, g["cpu_s"], {
            "jobs": n, "completed": g["completed"], "failed": g["failed"], "left": left,
            "seconds": g["seconds"], "mode": f"graphile-worker {peers.gw_version()}, no-op task"})
        self.q1_log(key, q)

    def q1_start(self, db):
        if PGSS:
            self.cl.psql("SELECT pg_stat_statements_reset()", db)
        before = db_stats(self.cl, db)
        time.sleep(0.1)
        return before, CpuWindow(None, self.cl.pm_pid).snap()

    def q1_result(self, key, db, before, a, b, w_cpu, q):
        """Per-job figures of a drain: the worker's CPU (w_cpu seconds), the
        cluster's between snapshots a and b, and the database's counters."""
        time.sleep(1.2)  # backends exit, the WAL writer reports its counters
        after = db_stats(self.cl, db)
        d = CpuWindow.delta(a, b)
        if d["total"]:  # the worker is not the load generator: take it out of "other"
            d["other_pct"] = max(0.0, d["other_pct"] - 100.0 * w_cpu / d["total"])
        per = max(1, q["completed"])
        q.update({"jobs_s": q["completed"] / q["seconds"] if q["seconds"] > 0 else 0.0,
                  "concurrency": Q1_CONCURRENCY, "round_trips": None,
                  "worker_us": 1e6 * w_cpu / per, "pg_us": 1e6 * d["pg"] / per,
                  "stmts": (after["calls"] - before["calls"]) / per if PGSS else None,
                  "commits": (after["commits"] - before["commits"]) / per,
                  "wal_sync": (after["wal_sync"] - before["wal_sync"]) / per,
                  "wal_bytes": (after["wal_bytes"] - before["wal_bytes"]) / per,
                  "other_pct": d["other_pct"], "top": top_statements(self.cl, db, per, 8)})
        if q["left"]:
            q["invalid"] = f"{q['left']} jobs still queued after {Q1_TIMEOUT}s"
        self.res["scenarios"][key] = [q]
        return q

    @staticmethod
    def q1_log(key, q):
        log(f"{key}: {q['completed']} completed, {q['failed']} failed, {q['left']} left in "
            f"{q['seconds']:.2f}s -> {q['jobs_s']:.0f} jobs/s; per job: {fmt(q['stmts'], 2)} statements, "
            f"{fmt(q['round_trips'], 2)} sends, {q['commits']:.2f} commits "
            f"({q['commits'] * q['jobs_s']:.0f}/s), {q['wal_sync']:.3f} WAL fsyncs, "
            f"worker {q['worker_us']:.0f} us, pg {q['pg_us']:.0f} us, other {q['other_pct']:.0f}%")

    # -- M1 -----------------------------------------------------------------------

    def m1(self):
        if "S1" in self.res["unavailable"]:
            self.res["unavailable"]["M1"] = self.res["unavailable"]["S1"]
            return
        s = Server(self.tmp, self.env(), name="m1-server")
        try:
            s.wait_http()
            # open every pool thread's database connection, as in service
            run(["wrk", "-t", "2", "-c", "32", "-d", "1s", f"http://127.0.0.1:{s.port}/health"])
            time.sleep(1.0)
            idle = rss_kb(s.pid)
            holder = spawn([sys.executable, os.path.join(HERE, "idle_conns.py"), str(s.port),
                            str(M1_CONNS)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            line = holder.stdout.readline()
            st = json.loads(line) if line.strip() else {"open": 0, "failed": M1_CONNS}
            time.sleep(2.0)
            held = 0
            for _ in range(3):
                held = max(held, rss_kb(s.pid) or 0)
                time.sleep(0.3)
            t0 = time.time()
            code, _, _ = http_req(s.port, "GET", "/health", timeout=5)
            lat = (time.time() - t0) * 1000
            holder.stdin.close()
            tail = holder.stdout.read()
            holder.wait(timeout=30)
            still = json.loads(tail.strip().splitlines()[-1]).get("still_open") if tail.strip() else None
            m = {"idle_kb": idle, "held_kb": held, "open": st.get("open"), "failed": st.get("failed"),
                 "first_error": st.get("first_error"), "still_open": still,
                 "health_ms": lat, "health_status": code,
                 "per_conn_kb": (held - idle) / st["open"] if st.get("open") else None}
            if st.get("open", 0) < M1_CONNS:
                m["invalid"] = f"only {st.get('open')} of {M1_CONNS} connections opened ({st.get('first_error')})"
            self.res["scenarios"]["M1"] = [m]
            log(f"M1: RSS idle {idle / 1024:.1f} MB, with {st.get('open')} idle connections "
                f"{held / 1024:.1f} MB ({fmt(m['per_conn_kb'], 1)} KB each); /health meanwhile "
                f"{code} in {lat:.1f} ms; still open at the end: {still}")
        finally:
            s.stop()

    # -- all ------------------------------------------------------------------------

    def main(self):
        try:
            self.setup()
            self.start_servers()
            self.run_rounds()
            self.q1_all()
            if wanted("M1"):
                self.m1()
            try:
                if wanted("W1"):
                    self.w1()
            except Unavailable as e:
                self.res["unavailable"]["W1"] = f"not available yet: {e}"
                log(f"W1: not available yet: {e}")
            except Exception as e:  # noqa: BLE001 - report, keep the other figures
                self.res["unavailable"]["W1"] = f"failed: {e}"
                log(f"W1 failed: {e}")
        finally:
            self.res["finished"] = time.time()
            try:
                self.stop_servers()
            finally:
                kill_all()
                if self.cl:
                    self.cl.destroy()
                if os.environ.get("BENCH_KEEP"):
                    log(f"kept {self.tmp}")
                else:
                    shutil.rmtree(self.tmp, ignore_errors=True)
        import report
        self.res["connections"] = CONNS
        self.res["only"] = ONLY
        report.write(self.res, ROOT, QUICK or bool(ONLY) or CONNS != 64, TARGETS)


def baseline_src():
    """The baseline's src/ (its SQL for the Q1 queue): BENCH_BASELINE_SRC, or
    src/ beside the binary (`make bench-baseline` keeps it), else ours."""
    for d in (os.environ.get("BENCH_BASELINE_SRC"), os.path.join(os.path.dirname(BASE_BIN), "src")):
        if d and os.path.isdir(d):
            return d
    return os.path.join(ROOT, "src")


def fsync_rate(d, seconds=1.0):
    """8 KB write + fdatasync per second in d: the commit rate the disk allows
    one session (S3 and Q1 commit with synchronous_commit on)."""
    path = os.path.join(d, "fsync-probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        buf, n, t0 = b"x" * 8192, 0, time.time()
        while time.time() - t0 < seconds:
            os.pwrite(fd, buf, 0)
            os.fdatasync(fd)
            n += 1
        return n / (time.time() - t0)
    finally:
        os.close(fd)
        os.unlink(path)


def job_cost(name, default):
    """A job type's cost, from the job registry (src/jobs/registry.c)."""
    try:
        with open(os.path.join(ROOT, "src", "jobs", "registry.c")) as f:
            m = re.search(rf'\.name = "{name}",\s*\.cost = (\d+)', f.read())
            return m.group(1) if m else default
    except OSError:
        return default


def setting_default(name, default):
    """A setting's default, from the settings table (src/config/settings.c)."""
    try:
        with open(os.path.join(ROOT, "src", "config", "settings.c")) as f:
            m = re.search(rf'\{{"{name}",\s*\w+,\s*S\(\w+\),\s*"([^"]*)"', f.read())
            return m.group(1) if m else default
    except OSError:
        return default


def fmt(v, nd=0):
    return "-" if v is None else f"{v:.{nd}f}"


def machine_info():
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) // 1024} MB"
    return {"nproc": os.cpu_count(), "cpu": cpu, "kernel": os.uname().release, "mem": mem,
            "load": " ".join(f"{x:.2f}" for x in os.getloadavg()), "pytest": foreign_pytest(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def versions():
    def out(cmd):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            return (r.stdout + r.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "?"
    dpkg = lambda p: out(["dpkg-query", "-W", "-f", "${Version}", p])  # noqa: E731
    git = out(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(["git", "-C", ROOT, "--no-optional-locks", "status", "--porcelain",
                            "--untracked-files=no"], capture_output=True, text=True).stdout.strip()
    return {"nexusapi": out([BIN, "--version"]), "git": git + ("+changes" if dirty else ""),
            "postgres": out([os.path.join(PG_BINDIR, "postgres"), "--version"]),
            "pgbench": out(["pgbench", "--version"]), "wrk": out(["wrk", "-v"]).split(" [")[0],
            "libmicrohttpd": dpkg("libmicrohttpd12"), "libpq": dpkg("libpq5"),
            "python": sys.version.split()[0], "node": out(["node", "--version"]),
            "npm": peers.npm_versions()}


def _on_signal(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


if __name__ == "__main__":
    for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):  # INT: even if ignored on entry
        signal.signal(s, _on_signal)
    try:
        Bench().main()
    except KeyboardInterrupt as e:
        log(f"interrupted ({e}); cleaned up")
        sys.exit(130)
    except RuntimeError as e:
        log(f"error: {e}")
        sys.exit(1)
