"""scale.py - the throughput of one, two and three `nexusapi serve` processes
on this machine (issue 18): `make scale`, about 6 minutes.

Reuses bench/lib/bench.py's PostgreSQL (fsync and synchronous_commit on),
seed (100 organisations x 100 users), tokens and wrk scripts, and puts
HAProxy (tests/fleet/nodes.py, request logging off) in front of N serve
processes (HTTP_THREADS 8 each, workers off). wrk at 64 connections measures

  S1  GET /health                 no database (its answer is cached for 1 s)
  S2  GET /api/v1/users?limit=20  the tenant transaction and a list
  S3  POST /api/v1/summarise      the one-statement job submission

for: one node direct, one node through HAProxy, two and three nodes
through HAProxy, and three through HAProxy with PgBouncer in transaction
pooling in front of PostgreSQL. Set-ups are interleaved, SCALE_RUNS rounds
(default 2) of SCALE_DURATION seconds (default 10); the median is reported.
CPU seconds per second of each part (serve processes, PostgreSQL, HAProxy,
PgBouncer, wrk, and everything else on the machine) come from /proc.
Prints a table and writes it into docs/scaling.md between its scale
markers. Python 3 standard library.
"""
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, os.path.join(ROOT, "tests", "fleet"))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
import bench  # noqa: E402
import harness  # noqa: E402
import pgbouncer  # noqa: E402
import procs  # noqa: E402
from nodes import HAProxy  # noqa: E402

DURATION = int(os.environ.get("SCALE_DURATION", "10"))
RUNS = int(os.environ.get("SCALE_RUNS", "2"))
CONNS = 64
DOC = os.path.join(ROOT, "docs", "scaling.md")
MARK_BEGIN, MARK_END = "<!-- scale:begin -->", "<!-- scale:end -->"
SETUPS = [  # (label, serve processes, through HAProxy, through PgBouncer)
    ("1 serve, direct", 1, False, False),
    ("1 serve, HAProxy", 1, True, False),
    ("2 serve, HAProxy", 2, True, False),
    ("3 serve, HAProxy", 3, True, False),
    ("3 serve, HAProxy, PgBouncer", 3, True, True),
]
PARTS = ["serve", "postgres", "haproxy", "pgbouncer", "wrk", "other"]


def log(msg):
    print(f"[scale {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Scale:
    def __init__(self):
        self.b = bench.Bench()
        self.results = {}  # (setup, scenario) -> [measurements]
        self.bouncer = None

    def set_up(self):
        self.b.setup()
        if not self.b.tokens:
            raise RuntimeError(f"no tokens: {getattr(self.b, 'token_error', '?')}")
        cl = self.b.cl
        cl.psql("CREATE ROLE scale_app LOGIN IN ROLE nexus_app", "postgres")
        self.bouncer = pgbouncer.PgBouncer(
            SimpleCluster(cl.port), [bench.OWNER, "scale_app"], pool_size=8,
            max_client_conn=200)

    def start(self, n, via_haproxy, via_pgbouncer):
        extra = {"HTTP_THREADS": 8}
        if via_pgbouncer:
            extra.update(APP_DATABASE_URL=self.bouncer.url("scale_app", bench.DBNAME),
                         DATABASE_POOL_MODE="transaction")
        servers = []
        for i in range(n):
            s = bench.Server(self.b.tmp, self.b.env(**extra), name=f"serve{i}")
            s.name = f"serve{i}"
            servers.append(s)
        for s in servers:
            s.wait_http()
        hp = HAProxy(servers, self.b.tmp, False, harness._pg_user(), log_requests=False) \
            if via_haproxy else None
        if hp:  # until its health checks see every node
            deadline = time.time() + 20
            while time.time() < deadline:
                st, _, _ = bench.http_req(hp.port, "GET", "/health")
                if st == 200:
                    break
                time.sleep(0.2)
            time.sleep(1.0)
        return servers, hp

    def cpu(self, servers, hp):
        busy, total = bench.machine_busy()
        return {"serve": sum(procs.proc_cpu(s.pid) for s in servers),
                "postgres": bench.tree_cpu(self.b.cl.pm_pid),
                "haproxy": procs.proc_cpu(hp.proc.pid) if hp else 0.0,
                "pgbouncer": procs.proc_cpu(self.bouncer.proc.pid),
                "wrk": bench.children_cpu(), "busy": busy, "t": time.time()}

    def wrk(self, sc, port):
        url = f"http://127.0.0.1:{port}"
        cmd = ["wrk", "-t", "2", "-c", str(CONNS), "-d", f"{DURATION}s", "--latency",
               "--timeout", "5s"]
        if sc == "S1":
            url += "/health"
        else:
            cmd += ["-s", os.path.join(HERE, {"S2": "s2_users.lua",
                                              "S3": "s3_summarise.lua"}[sc])]
        env = dict(os.environ, BENCH_TOKENS=self.b.tokens_path, BENCH_BODY=self.b.body_path,
                   BENCH_DIR=HERE)
        r = bench.run(cmd + [url], env=env, timeout=DURATION + 60)
        return bench.parse_wrk(r.stdout)

    def measure(self, label, n, via_haproxy, via_pgbouncer):
        servers, hp = self.start(n, via_haproxy, via_pgbouncer)
        try:
            port = hp.port if hp else servers[0].port
            for sc in ("S1", "S2", "S3"):
                a = self.cpu(servers, hp)
                w = self.wrk(sc, port)
                b = self.cpu(servers, hp)
                secs = b["t"] - a["t"]
                use = {k: (b[k] - a[k]) / secs for k in a if k != "t"}
                use["other"] = max(0.0, use.pop("busy") - sum(use[k] for k in PARTS[:-1]))
                w.update(cpu=use, load=os.getloadavg()[0])
                self.results.setdefault((label, sc), []).append(w)
                log(f"{label:<28} {sc}: {w['rps']:8.0f} req/s  p99 {bench.fmt(w['p99'], 1)} ms"
                    f"  non-2xx {w['non2xx']}  load {w['load']:.1f}")
        finally:
            if hp:
                hp.stop()
            for s in servers:
                s.stop()

    def run(self):
        for r in range(RUNS):
            log(f"round {r + 1} of {RUNS}")
            for setup in SETUPS:
                self.measure(*setup)

    def close(self):
        if self.bouncer:
            self.bouncer.close()
        if self.b.cl:
            self.b.cl.destroy()
        bench.kill_all()


class SimpleCluster:
    """What pgbouncer.PgBouncer needs to know of bench's cluster."""

    def __init__(self, port):
        self.port = port


def med(runs, key):
    vals = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def report(s, info, load_before):
    lines = [f"Measured {info['date']} on {info['nproc']} cores ({info['cpu']}), "
             f"{RUNS} rounds of {DURATION} s per cell, wrk at {CONNS} connections; load "
             f"average {load_before} before, {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
             f"after (other work on the machine is the \"other\" column).", "",
             "| set-up | S1 /health req/s | S2 users req/s | S2 p99 ms | S3 submit req/s "
             "| S3 p99 ms | non-2xx |", "|---|---:|---:|---:|---:|---:|---:|"]
    for label, *_ in SETUPS:
        row = [label]
        for sc in ("S1", "S2", "S3"):
            runs = s.results.get((label, sc), [])
            row.append(bench.fmt(med(runs, "rps")))
            if sc != "S1":
                row.append(bench.fmt(med(runs, "p99"), 1))
        bad = sum(r["non2xx"] + r["sock_err"] for sc in ("S1", "S2", "S3")
                  for r in s.results.get((label, sc), []))
        lines.append("| " + " | ".join(row + [str(bad)]) + " |")
    lines += ["", "Where the two cores went during S2 and S3 (CPU seconds per second, "
              "median of the rounds):", "",
              "| set-up | scenario | " + " | ".join(PARTS) + " |",
              "|---|---|" + "---:|" * len(PARTS)]
    for label, *_ in SETUPS:
        for sc in ("S2", "S3"):
            runs = s.results.get((label, sc), [])
            if not runs:
                continue
            cells = [f"{statistics.median(r['cpu'][p] for r in runs):.2f}" for p in PARTS]
            lines.append(f"| {label} | {sc} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def record(text):
    with open(DOC) as f:
        doc = f.read()
    if MARK_BEGIN not in doc or MARK_END not in doc:
        log(f"{DOC} has no scale markers: not recorded")
        return
    head, rest = doc.split(MARK_BEGIN, 1)
    _, tail = rest.split(MARK_END, 1)
    with open(DOC, "w") as f:
        f.write(head + MARK_BEGIN + "\n" + text + "\n" + MARK_END + tail)
    log(f"written to {DOC}")


def main():
    for tool in ("wrk", "/usr/sbin/haproxy", pgbouncer.PGBOUNCER):
        if not (os.path.exists(tool) or subprocess.run(["which", tool],
                                                        capture_output=True).returncode == 0):
            print(f"scale: {tool} is missing (make deps)", file=sys.stderr)
            return 2
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    info = bench.machine_info()
    s = Scale()
    try:
        s.set_up()
        s.run()
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        s.close()
    text = report(s, info, load_before)
    print("\n" + text + "\n")
    record(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
