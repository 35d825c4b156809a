"""Turns bench.py's results into markdown: printed, and written to
docs/benchmarks.md (full runs: the block between the results markers is
replaced, a row is appended to the history table) or to
build/bench/benchmarks-quick.md (quick runs; docs/ untouched)."""
import json
import os
import statistics

BEGIN, END = "<!-- bench:results:begin -->", "<!-- bench:results:end -->"
HIST_END = "<!-- bench:history:end -->"

HEADER = """# Benchmarks

How fast NexusAPI serves its three hot paths and drains its queue against
what a user would otherwise pick - a Fastify + pg server of the same API on
the same database, graphile-worker - and against an earlier build, with the
database's own bound beside them, on the same machine in the same run.
Everything between the results markers below is written by `make bench`
(`bash bench/run.sh`); never edit figures by hand. `make bench-quick` prints a
short run and writes `build/bench/benchmarks-quick.md` instead.

## Method

- A fresh PostgreSQL 15 cluster in a temp dir (127.0.0.1, `shared_buffers
  256MB`, `fsync` and `synchronous_commit` on, `pg_stat_statements` loaded),
  migrated with `nexusapi migrate upgrade head`, seeded by `bench/seed.sql`
  (100 organisations x 100 users, ample credits). One access token per
  organisation is minted with `nexusapi token`.
- A `CHECKPOINT` before every measurement, and none inside one
  (`checkpoint_timeout 1h`, `max_wal_size 16GB`): after a checkpoint the
  first write to each page logs the whole page, so a checkpoint falling
  inside one scenario's window charged it alone (S3L once wrote 3,917 B of
  WAL per request beside S3's 2,665 for the same statements). Every write
  scenario now starts from the same state.
- `nexusapi serve` on 127.0.0.1 with its default settings (printed below),
  workers off, access log at its default level written to a file.
- The reference peer (issue 19, `bench/peer/fastify`): Fastify, `pg` and
  `fast-jwt` from the npm registry (versions pinned by its
  `package-lock.json`, installed with `npm ci` by `make bench`), under the
  machine's Node: `node:cluster` with one worker per core, a `pg` pool of 8
  connections per worker (`BENCH_PEER_POOL`) logged in like the server
  (owner, role `nexus_app`), no access log (Fastify's default). It serves S1,
  S2 and S3 on NexusAPI's own database: it verifies the same access tokens
  (HS256 with the run's secret, iss `nexusapi`, typ `at+jwt`, the same
  claims), and runs each request as `BEGIN`, `nx_tenant_begin` (the tenant
  and the membership check), the handler's statement, `COMMIT`, with
  NexusAPI's own statements: `bench/lib/peers.py` reads them from `src/` at
  run time (`bench/lib/stmts.py`, as for the bound), so there is no copy to
  drift. S2's rows are plain columns: the peer builds each item as an
  object and Fastify serialises the page, where NexusAPI renders it in C.
  Its `/health` keeps a good `SELECT 1` for a second, like NexusAPI's. Before it is measured, its answers to the probe requests must
  be NexusAPI's answers (status; the same JSON; for S3 all but the new
  `job_id`, which must be a UUID that `Location` names); otherwise its rows
  are "not available" with the first difference. What still differs:
  node-postgres has no pipelining, so a request is four round trips where
  NexusAPI sends one pipeline; the peer sends no `NOTIFY` after a submission
  (no worker runs during S3). Node compiles as it runs, so the peer's
  CPU per request falls over its first tens of thousands of requests: it
  warms up in slices of the warm-up time until it has served 20,000
  requests and a slice costs at least 90% of the one before (at most 30 s;
  the slices are printed with the results). Its pool keeps idle connections open, as the server does.
- The baseline (issue 19): `make bench-baseline REV=<commit>` builds that
  commit into `build/baseline/` (binary, its `src/`, `REV`) from `git
  archive`; `BENCH_BASELINE_BIN=build/baseline/nexusapi make bench` then runs
  that binary beside the current one, on its own database in the same
  cluster, migrated by itself (`migrate upgrade head`) and seeded the same
  way, with the same tokens: rows `S1 baseline`, `S2 baseline`, `S3
  baseline`, and `Q1 baseline` on a pristine copy of its database, queued
  with the baseline's own SQL (`src/` beside the binary, or
  `BENCH_BASELINE_SRC`).
- wrk, 2 threads, 64 connections: S1 `GET /health`; S2 `GET
  /api/v1/users?limit=20` and S3 `POST /api/v1/summarise` (1 KB text), each
  request with a random organisation's token (`bench/s2_users.lua`,
  `bench/s3_summarise.lua`). S2 and S3 again at 16 connections (rows "S2 at
  16 connections", "S3 at 16 connections": the p99 targets) as scenarios of
  their own in the rounds.
- The bound: pgbench `-M prepared` at 64 and 16 clients running the
  statements the server sends, read from `src/` at run time
  (`bench/s2_bound.sql`, `bench/s3_bound.sql` name them; `bench/lib/stmts.py`
  renders them), as one pipeline per transaction like the server, connected
  like the server (owner login, role `nexus_app`), a random organisation per
  transaction (its id derived in SQL from a random number, as the seed
  derives it: one md5() per id is the only addition to the server's SQL).
  Reported beside the scenarios (the p99 at 64 connections beside the
  bound's own p99 at 64 clients; "% of bound" against the better of the two
  client counts), no longer a target.
- Rounds: each scenario next to its peers - S1, S1 fastify, S1 baseline; S2,
  S2 fastify, S2 baseline, S2 at 16, bound S2 at 64 and 16; the same for S3;
  then S2L, S3L, S4 (issue 13) - every other round in reverse order, after a
  warm-up of each server and request. Figures are medians over 3 rounds of
  10 s (about 15 minutes in all; a baseline adds about 3). CPU per request: utime+stime from /proc of the server process (the
  peer: its primary and its workers) and of every process of the cluster
  (backends that exited included), divided by completed requests; "server +
  PostgreSQL" is their sum, per round, then the median. "Other CPU" is the
  machine's busy time not spent in the server, PostgreSQL or load-generator
  processes, as a share of all CPUs: kernel threads (the filesystem journal
  behind fsync, softirqs) and anything else running on the machine (pytest
  runs are counted).
- Q1: 20,000 summarise jobs (2,000 in a quick run) queued with the S3
  statement into a pristine copy of the seeded database, then `nexusapi
  worker` with `WORKER_CONCURRENCY=4`; jobs/s from the first `started_at` to
  the last `completed_at`. Its local provider does real work. Per job:
  statements (`pg_stat_statements` calls), client `sendto()` calls counted
  with `perf stat` (one per round trip), commits (`pg_stat_database`), WAL
  fsyncs (`pg_stat_wal.wal_sync`), the worker's CPU and the cluster's. The
  machine line gives the disk's rate of 8 KB write+fdatasync in one session,
  for comparison with commits per second.
- Beside Q1, in the same run: graphile-worker (npm, `bench/peer/graphile-worker`,
  pinned; 0.17.3, the newest that runs on Node 20) in its own database of the
  same cluster: as many jobs queued with its `addJobs`, each with Q1's 1 KB
  input as its payload, then drained by its `run()` with concurrency 4 and a
  no-op task, logging warnings only (by default it logs every job); jobs/s
  from the first job's start to the last job's completion, its CPU from
  `process.cpuUsage()`, the cluster's CPU and counters as for Q1. With a
  baseline, "Q1 baseline" drains the baseline's copy the same way.
- M1: a fresh server's RSS after warm-up, then with 1,000 keep-alive
  connections that each made one request and stay idle (`bench/lib/idle_conns.py`).
- The targets table prints PASS/MISS per target of issue 19 - ratios inside
  the run: S1, S2 and S3 req/s against the peer's; server + PostgreSQL CPU per
  request against the baseline's; Q1 jobs/s against graphile-worker's and
  Q1's PostgreSQL CPU per job against the baseline's Q1; p99 at 16
  connections; M1 - and beside each the figures it is computed from ("n/a"
  when a part did not run, such as the baseline). Below it, rows reported
  with no target: the p99 at 64 connections beside the bound's, the share
  of the bound, and issue 13's ratios (S2L and S3L against S2 and S3, S4
  against S3, ≥ 85% then).
- Knobs: BENCH_DURATION, BENCH_RUNS, BENCH_Q1_JOBS, BENCH_NOTE (labels the
  history row), BENCH_BASELINE_BIN (and BENCH_BASELINE_SRC),
  BENCH_ONLY=S2,Q1 (those scenarios with their peers, 16-connection runs
  and bounds; exact rows such as `S2 fastify` or `B2/64` too; written to
  build/bench only), BENCH_PEER_POOL, PEER_WORKERS, BENCH_PROFILE=S1 (`perf
  record -g` of an extra, unmeasured run into build/bench/profile-S1.txt),
  BENCH_CONNECTIONS (wrk connections instead of 64 for the main runs;
  build/bench only), BENCH_PGSS=0, BENCH_KEEP=1; server settings such as
  HTTP_THREADS pass through.

"""

HISTORY = f"""
## History

One row per full `make bench`, appended by the run (BENCH_NOTE="..." labels it).
Before/after figures of an optimisation are two consecutive rows. S2 and S3
cells carry the p99 at 64 connections from git a8c392c on.

| date | git | S1 req/s (server µs) | S2 req/s (% bound, p99) | S3 req/s (% bound, p99) | Q1 jobs/s | M1 MB | note |
|---|---|---|---|---|---|---|---|
{HIST_END}
"""


def esc(s):
    return s.replace("|", "\\|").replace("`", "'")


def f(v, nd=0, unit=""):
    if v is None:
        return "–"
    return f"{v:,.{nd}f}{unit}"


def agg(runs):
    """Medians over valid runs (all runs when none is valid, marked)."""
    valid = [r for r in runs if "invalid" not in r] or runs
    out = {"n": len(valid), "invalid": [r["invalid"] for r in runs if "invalid" in r]}
    for r in valid:  # server + PostgreSQL CPU per request, per run (issue 19)
        if r.get("server_us") is not None and r.get("pg_us") is not None:
            r["cpu_us"] = r["server_us"] + r["pg_us"]
    for k in ("rps", "p50", "p99", "server_us", "pg_us", "cpu_us", "client_us", "stmts",
              "wal_bytes", "other_pct", "load1"):
        vals = [r[k] for r in valid if r.get(k) is not None]
        out[k] = statistics.median(vals) if vals else None
    rps = [r["rps"] for r in valid]
    out["min"], out["max"] = (min(rps), max(rps)) if rps else (None, None)
    out["top"] = valid[-1].get("top", [])
    return out


def compute(res):
    sc = res["scenarios"]
    a = {k: agg(v) for k, v in sc.items() if not k.startswith(("Q1", "M1", "W1"))}
    bound = {}
    for s, b in (("S2", "B2"), ("S3", "B3")):
        tps = {int(k.split("/")[1]): x["rps"] for k, x in a.items() if k.startswith(b + "/")}
        if s in a and tps:
            best = max(tps.values())
            bound[s] = {"best": best, "pct": 100.0 * a[s]["rps"] / best if best else None,
                        "by": {c: 100.0 * a[s]["rps"] / t if t else None for c, t in tps.items()}}
    return a, bound


def ratio(x, y, key):
    """x[key] / y[key], or None when either is missing."""
    if not x or not y or x.get(key) is None or not y.get(key):
        return None
    return x[key] / y[key]


def frac(v):
    return {0.5: "1/2", round(2 / 3, 6): "2/3"}.get(round(v, 6), f"{v:.2f}")


def targets(res, a, T):
    """Issue 19's targets: (target, figure, wanted, verdict, figures behind it),
    every figure computed from this run, never typed in."""
    rows = []

    def row(name, ok, figure, wanted, note=""):
        rows.append((name, figure, wanted, "n/a" if ok is None else ("PASS" if ok else "MISS"), note))
    sc = res["scenarios"]
    for k, t in (("S1", "s1_vs_fastify"), ("S2", "s2_vs_fastify"), ("S3", "s3_vs_fastify")):
        x, y = a.get(k), a.get(f"{k} fastify")
        r = ratio(x, y, "rps")
        row(f"{k} req/s vs {k} fastify", None if r is None else r >= T[t],
            f"{r:.2f}×" if r is not None else "not available", f"≥ {T[t]:g}×",
            f"{f(x['rps'])} vs {f(y['rps'])} req/s; server CPU {f(x['server_us'], 1)} vs "
            f"{f(y['server_us'], 1)} µs/req, PostgreSQL {f(x['pg_us'], 1)} vs {f(y['pg_us'], 1)}"
            if r is not None else "")
    for k, t in (("S2", "s2_vs_baseline"), ("S3", "s3_vs_baseline")):
        x, y = a.get(k), a.get(f"{k} baseline")
        r = ratio(x, y, "cpu_us")
        row(f"{k} server + PostgreSQL CPU per request vs {k} baseline", None if r is None else r <= T[t],
            f"{r:.2f}" if r is not None else ("not available" if res.get("baseline")
                                              else "no baseline in this run"), f"≤ {frac(T[t])}",
            f"{f(x['cpu_us'], 1)} ({f(x['server_us'], 1)} + {f(x['pg_us'], 1)}) vs "
            f"{f(y['cpu_us'], 1)} ({f(y['server_us'], 1)} + {f(y['pg_us'], 1)}) µs"
            if r is not None else ("" if res.get("baseline")
                                   else "BENCH_BASELINE_BIN (make bench-baseline REV=...)"))
    q, g, qb = ((sc.get(k) or [None])[0] for k in ("Q1", "Q1 graphile-worker", "Q1 baseline"))
    r = ratio(q, g, "jobs_s")
    row("Q1 jobs/s vs graphile-worker", None if r is None else (r >= T["q1_vs_graphile"]
                                                                 and "invalid" not in q),
        f"{r:.2f}×" if r is not None else "not available", f"≥ {T['q1_vs_graphile']:g}×",
        f"{f(q['jobs_s'])} vs {f(g['jobs_s'])} jobs/s; PostgreSQL {f(q['pg_us'])} vs "
        f"{f(g['pg_us'])} µs/job, worker {f(q['worker_us'])} vs {f(g['worker_us'])}"
        if r is not None else "")
    r = ratio(q, qb, "pg_us")
    row("Q1 PostgreSQL CPU per job vs Q1 baseline", None if r is None else r <= T["q1_pg_vs_baseline"],
        f"{r:.2f}" if r is not None else (f"{f(q['pg_us'])} µs/job, no baseline" if q else "not available"),
        f"≤ {frac(T['q1_pg_vs_baseline'])}",
        f"{f(q['pg_us'])} vs {f(qb['pg_us'])} µs/job; {f(q['stmts'], 2)} vs {f(qb['stmts'], 2)} "
        f"statements, {f(q['commits'], 2)} vs {f(qb['commits'], 2)} commits per job"
        if r is not None else "")
    for k, t in (("S2", "s2_p99_16_ms"), ("S3", "s3_p99_16_ms")):
        x, b = a.get(f"{k}/16"), a.get(f"B{k[1]}/16")
        row(f"{k} p99 at 16 connections", None if not x or x["p99"] is None else x["p99"] <= T[t],
            f(x["p99"], 2, " ms") if x else "not available", f"≤ {T[t]:g} ms",
            f"{f(x['rps'])} req/s; pgbench at 16 clients, no HTTP: p99 {f(b['p99'], 2)} ms"
            if x and b else "")
    wh = (sc.get("W1") or [None])[0]  # issue 14
    row("W1 webhook deliveries",
        None if not wh else (wh["deliveries_s"] >= T["w1_deliveries_s"] and "invalid" not in wh),
        f(wh["deliveries_s"], 0, " /s") if wh else "not available",
        f"≥ {T['w1_deliveries_s']:,.0f} /s",
        f"draining {wh['events']:,} queued events; per delivery: worker {f(wh['worker_us'])} µs, "
        f"PostgreSQL {f(wh['pg_us'])} µs; load {f(wh['load1'], 2)}" if wh else "")
    row("W1 completion to receiver p50",
        None if not wh or wh["p50"] is None else wh["p50"] <= T["w1_p50_ms"],
        f(wh["p50"], 1, " ms") + f" (p99 {f(wh['p99'], 1)} ms)" if wh else "not available",
        f"≤ {T['w1_p50_ms']:.0f} ms",
        f"{wh['events']:,} jobs submitted at {wh.get('live_rate', wh['rate']):,}/s, run and their "
        f"events delivered at once" if wh else "")
    m = (sc.get("M1") or [None])[0]
    row("M1 RSS with 1,000 idle connections",
        None if not m or not m.get("held_kb") else (m["held_kb"] / 1024 <= T["m1_mb"] and "invalid" not in m),
        f(m["held_kb"] / 1024, 1, " MB") if m and m.get("held_kb") else "not available",
        f"≤ {T['m1_mb']:g} MB",
        f"idle {f(m['idle_kb'] / 1024, 1)} MB + {f(m['per_conn_kb'], 1)} KB per connection"
        if m and m.get("per_conn_kb") is not None else "")
    return rows


def reported(res, a, bound, T):
    """Rows reported beside the targets, with no verdict: p99 at 64 connections
    beside the bound's own, the share of the bound, issue 13's ratios."""
    rows = []
    conns = res.get("connections", 64)
    for k in ("S2", "S3"):
        x, b = a.get(k), a.get(f"B{k[1]}/64")
        if x:
            rows.append((f"{k} p99 at {conns} connections", f(x["p99"], 2, " ms"),
                         f"pgbench at 64 clients, no HTTP: p99 {f(b['p99'], 2)} ms" if b else "",
                         f"Little's law: mean latency = {conns} / {f(x['rps'])} req/s = "
                         f"{conns * 1000.0 / x['rps']:.1f} ms" if x["rps"] else ""))
        if k in bound:
            rows.append((f"{k} req/s vs its pgbench bound", f(bound[k]["pct"], 0, "%"), "(issue 6: report)",
                         ", ".join(f"{f(p, 0)}% of {c} clients" for c, p in sorted(bound[k]["by"].items(),
                                                                                 reverse=True))))
    for k, base, name in (("S2L", "S2", "S2 with rate limits on vs S2"),
                          ("S3L", "S3", "S3 with rate limits on vs S3"),
                          ("S4", "S3", "S4 (S3 + Idempotency-Key) vs S3")):
        x, y = a.get(k), a.get(base)
        r = ratio(x, y, "rps")
        if r is not None:
            rows.append((name, f(100.0 * r, 0, "%"), f"issue 13: ≥ {T['issue13_pct']:g}%",
                         f"{f(x['rps'])} vs {f(y['rps'])} req/s; PostgreSQL {f(x['pg_us'], 1)} vs "
                         f"{f(y['pg_us'], 1)} µs/req, statements {f(x['stmts'], 2)} vs {f(y['stmts'], 2)}"))
    return rows


ORDER = ["S1", "S1 fastify", "S1 baseline",
         "S2", "S2 fastify", "S2 baseline", "S2/16", "B2/64", "B2/16",
         "S3", "S3 fastify", "S3 baseline", "S3/16", "B3/64", "B3/16",
         "S2L", "S3L", "S4"]
NAMES = {"S1": "S1 GET /health", "S2": "S2 GET /api/v1/users?limit=20",
         "S3": "S3 POST /api/v1/summarise", "S2L": "S2, rate limits on",
         "S3L": "S3, rate limits on", "S4": "S4 POST /api/v1/summarise + Idempotency-Key"}


def name(k):
    """A row's name: the peers' rows are named as issue 19 names them."""
    if k in NAMES:
        return NAMES[k]
    if k.startswith("B") and "/" in k:
        return f"bound S{k[1]}, pgbench {k.split('/')[1]}"
    if "/" in k:
        return f"{k.split('/')[0]} at {k.split('/')[1]} connections"
    return k


def setup_lines(res, w):
    m, v = res.get("machine", {}), res.get("versions", {})
    w(f"- Machine: {m.get('nproc')} cores, {m.get('cpu')}, {m.get('mem')} RAM, kernel {m.get('kernel')}; "
      f"disk: {f(m.get('fsync_per_s'))} 8 KB write+fdatasync per second in one session; "
      f"load at start {m.get('load')}; pytest processes at start: {m.get('pytest')}, "
      f"at most during the measured runs: {max([r.get('pytest', 0) for v in res['scenarios'].values() for r in v] or [0])}")
    w(f"- Versions: {v.get('nexusapi')}; {v.get('postgres')}; pgbench {v.get('pgbench', '').split()[-3] if v.get('pgbench') else '?'}; "
      f"{v.get('wrk')}; libmicrohttpd {v.get('libmicrohttpd')}; libpq {v.get('libpq')}")
    pg = res.get("pg_settings", {})
    w("- PostgreSQL: " + ", ".join(f"{k}={pg[k]}" for k in ("shared_buffers", "fsync",
      "synchronous_commit", "max_connections", "shared_preload_libraries") if k in pg))
    w(f"- Server settings (`nexusapi config`): {', '.join(res.get('settings', [])) or '?'}; "
      f"{res.get('settings_note', '')}"
      + (f", {res['log_bytes_per_request']:.0f} log bytes per request" if res.get("log_bytes_per_request") else ""))
    npm, p = v.get("npm", {}), res.get("peer", {})
    w(f"- Peers: Node {v.get('node', '?')}; fastify {npm.get('fastify', '?')}, pg {npm.get('pg', '?')}, "
      f"fast-jwt {npm.get('fast-jwt', '?')} (node:cluster, {p.get('workers', '?')} workers, a pg pool of "
      f"{p.get('pool', '?')} per worker, no access log); graphile-worker {npm.get('graphile-worker', '?')}")
    if res.get("peer_warmup"):
        w("- Peer warm-up: " + "; ".join(
            f"{k} {x['requests']:,} requests, server µs/request {' → '.join(x['costs'])}"
            for k, x in res["peer_warmup"].items()))
    b = res.get("baseline")
    w("- Baseline: " + (f"`{b['bin']}` ({b.get('version', '?')}{', ' + b['rev'] if b.get('rev') else ''}), "
                        f"its own database; Q1 queued with the SQL of `{b['src']}`" if b else
                        "none (BENCH_BASELINE_BIN not set)"))
    w(f"- Load generators: wrk -t2 --latency at {res.get('connections', 64)} and 16 connections; "
      "pgbench -M prepared -j2 at 64 and 16 clients\n")


def statements_details(res, a, w):
    for k in ("S2", "S2 fastify", "S3", "S3 fastify", "S2L", "S3L", "S4", "B2/64", "B3/64"):
        if k in a and a[k]["top"]:
            w(f"<details><summary>{name(k)}: statements per request (pg_stat_statements, last round)</summary>\n")
            w("| calls/req | rows/req | µs/call (executor) | statement |\n|---|---|---|---|")
            for t in a[k]["top"]:
                w(f"| {t['per']:.3f} | {t['rows_per']:.2f} | {f(t.get('us_per_call'), 1)} | `{esc(t['query'])}` |")
            w("\n</details>\n")


def q1_section(res, w):
    rows = [(k, res["scenarios"][k][0]) for k in ("Q1", "Q1 graphile-worker", "Q1 baseline")
            if res["scenarios"].get(k)]
    if not rows:
        return
    w(f"### Q1 queue drain (concurrency {rows[0][1].get('concurrency', 4)})\n")
    w("| drain | by | jobs queued | completed | failed | left | seconds | **jobs/s** | statements/job | "
      "sendto/job (≈ round trips) | commits/job | WAL fsyncs/job | WAL B/job | worker µs/job | PostgreSQL µs/job | other CPU |")
    w("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for k, q in rows:
        w(f"| {k}{' ⚠' if q.get('invalid') else ''} | {q['mode']} | {q['jobs']:,} | {q['completed']:,} | "
          f"{q['failed']} | {q['left']} | {q['seconds']:.2f} | **{f(q['jobs_s'])}** | {f(q['stmts'], 2)} | "
          f"{f(q['round_trips'], 2)} | {f(q['commits'], 2)} | {f(q['wal_sync'], 3)} | {f(q['wal_bytes'])} | "
          f"{f(q['worker_us'])} | {f(q['pg_us'])} | {f(q['other_pct'])}% |")
    for k, q in rows:
        if q.get("invalid"):
            w(f"\n⚠ {k}: {q['invalid']}")
    for k, q in rows:
        w(f"\n<details><summary>{k} statements per job (pg_stat_statements)</summary>\n")
        w("| calls/job | rows/job | µs/call (executor) | statement |\n|---|---|---|---|")
        for t in q["top"]:
            w(f"| {t['per']:.3f} | {t['rows_per']:.2f} | {f(t.get('us_per_call'), 1)} | `{esc(t['query'])}` |")
        w("\n</details>")
    w("")


def w1_section(res, w):
    wh = (res["scenarios"].get("W1") or [None])[0]
    if not wh:
        return
    w(f"### W1 webhook deliveries (nexusapi worker, WORKER_CONCURRENCY={wh['concurrency']}, "
      "one endpoint per organisation, a local receiver answering 204)\n")
    w("Drain: the events of jobs run with the delivery pool off, then delivered by a "
      "worker with it on. Live: that worker while more jobs are submitted (pgbench -R "
      f"{wh.get('live_rate', wh['rate']):,}), run and their events delivered.\n")
    w("| phase | events | delivered | requests | seconds | **deliveries/s** | "
      "**p50 ms** completion → receiver | p99 ms | max ms | worker µs/delivery | "
      "PostgreSQL µs/delivery | other CPU |")
    w("|---|---|---|---|---|---|---|---|---|---|---|---|")
    w(f"| drain | {wh['events']:,} | {wh['delivered']:,} | {wh['requests']:,} | {wh['seconds']:.2f} | "
      f"**{f(wh['deliveries_s'])}** | | | | {f(wh['worker_us'])} | {f(wh['pg_us'])} | "
      f"{f(wh['other_pct'])}% |")
    if "live_requests" in wh:
        w(f"| live | {wh['events']:,} | {wh['live_delivered']:,} | {wh['live_requests']:,} | | "
          f"{f(wh['live_deliveries_s'])} (submitted at {f(wh['events'] / wh['submit_s'])}/s) | "
          f"**{f(wh['p50'], 1)}** | {f(wh['p99'], 1)} | {f(wh['max'], 1)} | | | |")
    w(f"\nLoad at the end: {f(wh['load1'], 2)}.")


def m1_section(res, w):
    mm = (res["scenarios"].get("M1") or [None])[0]
    if not mm:
        return
    w("### M1 memory\n")
    w("| RSS idle | RSS with idle connections | connections held | per connection | "
      "GET /health meanwhile | still open at the end | server peak RSS during S1–S3 |")
    w("|---|---|---|---|---|---|---|")
    pk = res.get("server_peak_rss_kb")
    w(f"| {f(mm['idle_kb'] / 1024, 1)} MB | **{f(mm['held_kb'] / 1024, 1)} MB** | {mm['open']} | "
      f"{f(mm['per_conn_kb'], 1)} KB | {mm['health_status']} in {f(mm['health_ms'], 1)} ms | "
      f"{mm['still_open']} | {f(pk / 1024 if pk else None, 1)} MB |")
    if mm.get("invalid"):
        w(f"\n⚠ {mm['invalid']}")
    w("")


def results_block(res, quick, T):
    a, bound = compute(res)
    v = res.get("versions", {})
    L = []
    w = L.append
    mins = (res["finished"] - res["started"]) / 60
    w(f"## Results{' (quick run)' if res.get('quick') else ''}"
      f"{' (only ' + ','.join(res['only']) + ')' if res.get('only') else ''}\n")
    w(f"Run {res.get('machine', {}).get('date', '?')}, git {v.get('git', '?')}, {res['runs']} interleaved "
      f"round(s) of {res['duration']} s per scenario, {mins:.1f} min in all"
      + (f"; note: {res['note']}" if res.get("note") else "") + ".\n")
    setup_lines(res, w)
    for k, why in sorted(res["unavailable"].items()):
        w(f"- **{k}**: {why}")
    if res["unavailable"]:
        w("")

    w("| scenario | req/s (median) | min–max | p50 ms | p99 ms | server µs/req | PostgreSQL µs/req "
      "| server + PostgreSQL µs/req | load gen µs/req | statements/req | WAL B/req | % of bound | other CPU |")
    w("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for k in sorted(a, key=lambda k: ORDER.index(k) if k in ORDER else len(ORDER)):
        x = a[k]
        pb = ""
        if k in bound:
            pb = f"**{f(bound[k]['pct'], 0)}%** (" + ", ".join(
                f"{f(p, 0)}% of {c}" for c, p in sorted(bound[k]["by"].items(), reverse=True)) + ")"
        inv = " ⚠" if x["invalid"] else ""
        w(f"| {name(k)}{inv} | {f(x['rps'])} | {f(x['min'])}–{f(x['max'])} | {f(x['p50'], 2)} | {f(x['p99'], 2)} "
          f"| {f(x['server_us'], 1)} | {f(x['pg_us'], 1)} | {f(x['cpu_us'], 1)} | {f(x['client_us'], 1)} "
          f"| {f(x['stmts'], 2)} | {f(x['wal_bytes'])} | {pb} | {f(x['other_pct'], 0)}% |")
    for k, x in a.items():
        for why in x["invalid"]:
            w(f"\n⚠ {k}: a run was invalid: {why}")
    w("")
    statements_details(res, a, w)
    q1_section(res, w)
    w1_section(res, w)
    m1_section(res, w)

    w("### Targets (issue 19; W1: issue 14)\n")
    w("| target | figure | wanted | | figures behind it |\n|---|---|---|---|---|")
    for row in targets(res, a, T):
        w("| {} | {} | {} | **{}** | {} |".format(*row))
    w("\nAlso reported (no target):\n")
    w("| row | figure | beside it | figures behind it |\n|---|---|---|---|")
    for row in reported(res, a, bound, T):
        w("| {} | {} | {} | {} |".format(*row))
    w("")

    if res.get("bound_sql"):
        w("<details><summary>The bound's SQL, as rendered from src/ by bench/lib/stmts.py</summary>\n")
        for k, sql in sorted(res["bound_sql"].items()):
            w(f"{k}:\n```sql\n{sql}```")
        w("\n</details>\n")
    return "\n".join(L), a, bound


def history_row(res, a, bound):
    v = res.get("versions", {})
    q = (res["scenarios"].get("Q1") or [None])[0]
    g = (res["scenarios"].get("Q1 graphile-worker") or [None])[0]
    m = (res["scenarios"].get("M1") or [None])[0]

    def cell(k):
        x = a.get(k)
        if not x:
            return "–"
        r = ratio(x, a.get(f"{k} fastify"), "rps")
        peer = [f"{r:.1f}× fastify"] if r is not None else []
        if k == "S1":
            return f"{f(x['rps'])} ({', '.join([f(x['server_us'], 1)] + peer)})"
        b = bound.get(k)
        extra = ([f"{f(b['pct'], 0)}%"] if b else []) + [f"p99 {f(x['p99'], 1)} ms"] + peer
        return f"{f(x['rps'])} ({', '.join(extra)})"
    rq = ratio(q, g, "jobs_s")
    qcell = (f(q["jobs_s"]) + (f" ({rq:.1f}× graphile-worker)" if rq is not None else "")) if q else "–"
    return (f"| {res['machine']['date']} | {v.get('git', '?')} | {cell('S1')} | {cell('S2')} | {cell('S3')} | "
            f"{qcell} | {f(m['held_kb'] / 1024, 1) if m and m.get('held_kb') else '–'} | "
            f"{res.get('note', '')} |")


def write(res, root, quick, T):
    res["note"] = os.environ.get("BENCH_NOTE", "")
    block, a, bound = results_block(res, quick, T)
    outdir = os.path.join(root, "build", "bench")
    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(outdir, "results-quick.json" if quick else "results.json"), "w") as fh:
        json.dump(res, fh, indent=1, default=str)
    print("\n" + block)
    if quick:
        path = os.path.join(outdir, "benchmarks-quick.md")
        with open(path, "w") as fh:
            fh.write(f"# Benchmarks (quick run)\n\n{BEGIN}\n{block}\n{END}\n")
        print(f"\nwritten: {os.path.relpath(path, root)} (quick runs leave docs/benchmarks.md alone)")
        return
    path = os.path.join(root, "docs", "benchmarks.md")
    doc = open(path).read() if os.path.exists(path) else HEADER + f"{BEGIN}\n{END}\n" + HISTORY
    if BEGIN not in doc or END not in doc:
        doc += f"\n{BEGIN}\n{END}\n"
    if HIST_END not in doc:
        doc += HISTORY
    pre, rest = doc.split(BEGIN, 1)
    _, post = rest.split(END, 1)
    doc = f"{pre}{BEGIN}\n{block}\n{END}{post}"
    doc = doc.replace(HIST_END, history_row(res, a, bound) + "\n" + HIST_END)
    with open(path, "w") as fh:
        fh.write(doc)
    print("\nwritten: docs/benchmarks.md (results block replaced, history row appended)")
