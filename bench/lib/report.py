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

How fast NexusAPI serves its three hot paths and drains its queue, with the
database's own bound measured beside it on the same machine in the same run.
Everything between the results markers below is written by `make bench`
(`bash bench/run.sh`); never edit figures by hand. `make bench-quick` prints a
short run and writes `build/bench/benchmarks-quick.md` instead.

## Method

- A fresh PostgreSQL 15 cluster in a temp dir (127.0.0.1, `shared_buffers
  256MB`, `fsync` and `synchronous_commit` on, `pg_stat_statements` loaded),
  migrated with `nexusapi migrate upgrade head`, seeded by `bench/seed.sql`
  (100 organisations x 100 users, ample credits). One access token per
  organisation is minted with `nexusapi token`.
- `nexusapi serve` on 127.0.0.1 with its default settings (printed below),
  workers off, access log at its default level written to a file.
- wrk, 2 threads, 64 connections: S1 `GET /health`; S2 `GET
  /api/v1/users?limit=20` and S3 `POST /api/v1/summarise` (1 KB text), each
  request with a random organisation's token (`bench/s2_users.lua`,
  `bench/s3_summarise.lua`).
- The bound: pgbench `-M prepared` at 64 and 16 clients (issue 6) and at
  HTTP_THREADS clients (the server's own number of connections) running the
  statements the server sends, read from `src/` at run time (`bench/s2_bound.sql`,
  `bench/s3_bound.sql` name them; `bench/lib/stmts.py` renders them), as one
  pipeline per transaction like the server, connected like the server
  (owner login, role `nexus_app`), a random organisation per transaction
  (its id derived in SQL from a random number, as the seed derives it: one
  md5() per id is the only addition to the server's SQL).
  "% of bound" compares with the best of the three client counts.
- Runs are interleaved (S1, S2, B2, S3, B3; the next round in reverse order); figures are
  medians over rounds. CPU per request: utime+stime from /proc of the server
  process and of every process of the cluster (backends that exited included),
  divided by completed requests. "Other CPU" is the machine's busy time not
  spent in the server, PostgreSQL or load-generator processes, as a share of
  all CPUs: kernel threads (the filesystem journal behind fsync, softirqs)
  and anything else running on the machine (pytest runs are counted).
- Q1: 20,000 summarise jobs (2,000 in a quick run) queued with the S3
  statement into a pristine copy of
  the seeded database, then `WORKER_CONCURRENCY=4`; jobs/s from the first
  `started_at` to the last `completed_at`. Per job: statements
  (`pg_stat_statements` calls), client `sendto()` calls counted with `perf
  stat` (one per round trip), commits (`pg_stat_database`), WAL fsyncs
  (`pg_stat_wal.wal_sync`). The machine line gives the disk's rate of 8 KB
  write+fdatasync in one session, for comparison with commits per second.
- M1: a fresh server's RSS after warm-up, then with 1,000 keep-alive
  connections that each made one request and stay idle (`bench/lib/idle_conns.py`).
- The targets table prints PASS/MISS per target of issue 6 and, beside each,
  the figures of the same run that explain it.
- Knobs: BENCH_DURATION, BENCH_RUNS, BENCH_Q1_JOBS, BENCH_NOTE (labels the
  history row), BENCH_ONLY=S2,M1 (subset, written to build/bench only),
  BENCH_PROFILE=S1 (`perf record -g` of an extra, unmeasured run into
  build/bench/profile-S1.txt), BENCH_CONNECTIONS=16 (wrk connections
  instead of 64: latency at another load, written to build/bench only),
  BENCH_PGSS=0, BENCH_KEEP=1; server settings such as HTTP_THREADS pass
  through.

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
    for k in ("rps", "p50", "p99", "server_us", "pg_us", "client_us", "stmts", "wal_bytes",
              "other_pct", "load1"):
        vals = [r[k] for r in valid if r.get(k) is not None]
        out[k] = statistics.median(vals) if vals else None
    rps = [r["rps"] for r in valid]
    out["min"], out["max"] = (min(rps), max(rps)) if rps else (None, None)
    out["top"] = valid[-1].get("top", [])
    return out


def compute(res):
    sc = res["scenarios"]
    a = {k: agg(v) for k, v in sc.items() if k not in ("Q1", "M1", "W1")}
    bound = {}
    for s, b in (("S2", "B2"), ("S3", "B3")):
        tps = {int(k.split("/")[1]): x["rps"] for k, x in a.items() if k.startswith(b + "/")}
        if s in a and tps:
            best = max(tps.values())
            bound[s] = {"best": best, "pct": 100.0 * a[s]["rps"] / best if best else None,
                        "by": {c: 100.0 * a[s]["rps"] / t if t else None for c, t in tps.items()}}
    return a, bound


def targets(res, a, bound, T):
    """(target, figure, wanted, verdict, note): notes are figures of this run
    that explain the verdict, computed, never typed in."""
    rows = []
    notes = {}

    def row(name, ok, figure, target):
        rows.append((name, figure, target, "n/a" if ok is None else ("PASS" if ok else "MISS"),
                     notes.get(name, "")))
    conns = res.get("connections", 64)
    for k, b in (("S2", "B2"), ("S3", "B3")):
        x = a.get(k)
        if x and x["rps"]:
            n = (f"Little's law: mean latency = {conns} connections / {f(x['rps'])} req/s = "
                 f"{conns * 1000.0 / x['rps']:.1f} ms")
            if f"{b}/64" in a and a[f"{b}/64"]["p99"] is not None:
                n += f"; pgbench at 64 clients, no HTTP: p99 {f(a[f'{b}/64']['p99'], 1)} ms"
            if conns != 64:
                n += "; the target is stated at 64 connections"
            notes[f"{k} p99 at {conns} connections"] = n
    if a.get("S1") and a["S1"].get("stmts") is not None:
        notes["S1 server CPU per request"] = f"{a['S1']['stmts']:.2f} database statements per request"
    q0 = (res["scenarios"].get("Q1") or [None])[0]
    if q0:
        notes["Q1 drain"] = (f"per job: {f(q0['stmts'], 2)} statements, {f(q0['commits'], 2)} commits, "
                             f"{f(q0['wal_sync'], 2)} WAL fsyncs")
    m0 = (res["scenarios"].get("M1") or [None])[0]
    if m0 and m0.get("per_conn_kb") is not None:
        notes["M1 RSS with 1,000 idle connections"] = (f"idle {f(m0['idle_kb'] / 1024, 1)} MB + "
                                                        f"{f(m0['per_conn_kb'], 1)} KB per connection")
    s2, s1 = a.get("S2"), a.get("S1")
    b2, b3 = bound.get("S2"), bound.get("S3")
    row("S2 vs its pgbench bound", None if not b2 else b2["pct"] >= T["s2_bound"],
        f(b2["pct"], 0, "%") if b2 else "not available", f"≥ {T['s2_bound']:.0f}%")
    row("S2 server CPU ≤ PostgreSQL CPU per request",
        None if not s2 or s2["server_us"] is None else s2["server_us"] <= s2["pg_us"],
        f"{f(s2['server_us'], 1)} vs {f(s2['pg_us'], 1)} µs" if s2 else "not available", "server ≤ db")
    row("S3 vs its pgbench bound", None if not b3 else b3["pct"] >= T["s3_bound"],
        f(b3["pct"], 0, "%") if b3 else "not available", f"≥ {T['s3_bound']:.0f}%")
    row("S1 server CPU per request", None if not s1 else s1["server_us"] <= T["s1_cpu_us"],
        f(s1["server_us"], 1, " µs") if s1 else "not available", f"≤ {T['s1_cpu_us']:.0f} µs")
    for k in ("S2", "S3"):
        x = a.get(k)
        row(f"{k} p99 at {conns} connections",
            None if not x or x["p99"] is None or conns != 64 else x["p99"] <= T["p99_ms"],
            f(x["p99"], 2, " ms") if x else "not available", f"≤ {T['p99_ms']:.0f} ms")
    q = (res["scenarios"].get("Q1") or [None])[0]
    row("Q1 drain", None if not q else (q["jobs_s"] >= T["q1_jobs_s"] and "invalid" not in q),
        f(q["jobs_s"], 0, " jobs/s") if q else "not available", f"≥ {T['q1_jobs_s']:,.0f} jobs/s")
    wh = (res["scenarios"].get("W1") or [None])[0]
    if wh:
        notes["W1 webhook deliveries"] = (f"jobs submitted at {wh['rate']:,}/s; per delivery: worker "
                                          f"{f(wh['worker_us'])} µs, PostgreSQL {f(wh['pg_us'])} µs; "
                                          f"load {f(wh['load1'], 2)}")
    row("W1 webhook deliveries",
        None if not wh else (wh["deliveries_s"] >= T["w1_deliveries_s"] and "invalid" not in wh),
        f(wh["deliveries_s"], 0, " /s") if wh else "not available",
        f"≥ {T['w1_deliveries_s']:,.0f} /s")
    row("W1 completion to receiver p50",
        None if not wh or wh["p50"] is None else wh["p50"] <= T["w1_p50_ms"],
        f(wh["p50"], 1, " ms") + f" (p99 {f(wh['p99'], 1)} ms)" if wh else "not available",
        f"≤ {T['w1_p50_ms']:.0f} ms")
    # issue 13: the limiter and idempotency keys against the same scenarios
    for k, base, name in (("S2L", "S2", "S2 with rate limits on"), ("S3L", "S3", "S3 with rate limits on"),
                          ("S4", "S3", "S4 (S3 + Idempotency-Key) vs S3")):
        x, y = a.get(k), a.get(base)
        if x and y and x["pg_us"] is not None and y["pg_us"] is not None:
            notes[name] = (f"{f(x['rps'])} vs {f(y['rps'])} req/s; PostgreSQL "
                           f"{f(x['pg_us'], 1)} vs {f(y['pg_us'], 1)} µs/req "
                           f"({x['pg_us'] - y['pg_us']:+.1f}), statements "
                           f"{f(x['stmts'], 2)} vs {f(y['stmts'], 2)}")
        row(name, None if not x or not y or not y["rps"] else x["rps"] / y["rps"] >= 0.85,
            f(100.0 * x["rps"] / y["rps"], 0, "%") if x and y and y["rps"] else "not available",
            "≥ 85%")
    m = (res["scenarios"].get("M1") or [None])[0]
    row("M1 RSS with 1,000 idle connections",
        None if not m or not m.get("held_kb") else (m["held_kb"] / 1024 <= T["m1_mb"] and "invalid" not in m),
        f(m["held_kb"] / 1024, 1, " MB") if m and m.get("held_kb") else "not available",
        f"≤ {T['m1_mb']:.0f} MB")
    return rows


def results_block(res, quick, T):
    a, bound = compute(res)
    m, v = res.get("machine", {}), res.get("versions", {})
    L = []
    w = L.append
    mins = (res["finished"] - res["started"]) / 60
    w(f"## Results{' (quick run)' if res.get('quick') else ''}"
      f"{' (only ' + ','.join(res['only']) + ')' if res.get('only') else ''}\n")
    w(f"Run {m.get('date', '?')}, git {v.get('git', '?')}, {res['runs']} interleaved round(s) of "
      f"{res['duration']} s per scenario, {mins:.1f} min in all"
      + (f"; note: {res['note']}" if res.get("note") else "") + ".\n")
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
    w(f"- Load generators: wrk -t2 -c{res.get('connections', 64)} --latency; pgbench -M prepared -j2 at 64 and 16 clients "
      "(the issue's bound) and at HTTP_THREADS clients (as many connections as the server uses)\n")

    for k, why in sorted(res["unavailable"].items()):
        w(f"- **{k}**: {why}")
    if res["unavailable"]:
        w("")

    w("| scenario | req/s (median) | min–max | p50 ms | p99 ms | server µs/req | PostgreSQL µs/req "
      "| load gen µs/req | statements/req | WAL B/req | % of bound | other CPU |")
    w("|---|---|---|---|---|---|---|---|---|---|---|---|")
    names = {"S1": "S1 GET /health", "S2": "S2 GET /api/v1/users?limit=20",
             "S3": "S3 POST /api/v1/summarise", "S2L": "S2, rate limits on",
             "S3L": "S3, rate limits on", "S4": "S4 POST /api/v1/summarise + Idempotency-Key", "B2/64": "bound S2, pgbench 64", "B2/16": "bound S2, pgbench 16",
             "B3/64": "bound S3, pgbench 64", "B3/16": "bound S3, pgbench 16"}
    for k in sorted(a, key=lambda k: (k[1], 0 if k[0] == "S" else 1, -int(k.split("/")[1]) if "/" in k else 0)):
        names.setdefault(k, f"bound S{k[1]}, pgbench {k.split('/')[1]}" if "/" in k else k)
        x = a[k]
        pb = ""
        if k in bound:
            pb = f"**{f(bound[k]['pct'], 0)}%** (" + ", ".join(
                f"{f(p, 0)}% of {c}" for c, p in sorted(bound[k]["by"].items(), reverse=True)) + ")"
        inv = " ⚠" if x["invalid"] else ""
        w(f"| {names[k]}{inv} | {f(x['rps'])} | {f(x['min'])}–{f(x['max'])} | {f(x['p50'], 2)} | {f(x['p99'], 2)} "
          f"| {f(x['server_us'], 1)} | {f(x['pg_us'], 1)} | {f(x['client_us'], 1)} | {f(x['stmts'], 2)} "
          f"| {f(x['wal_bytes'])} | {pb} | {f(x['other_pct'], 0)}% |")
    for k, x in a.items():
        for why in x["invalid"]:
            w(f"\n⚠ {k}: a run was invalid: {why}")
    w("")

    for k in ("S2", "S3", "S2L", "S3L", "S4", "B2/64", "B3/64"):
        if k in a and a[k]["top"]:
            w(f"<details><summary>{names[k]}: statements per request (pg_stat_statements, last round)</summary>\n")
            w("| calls/req | rows/req | µs/call (executor) | statement |\n|---|---|---|---|")
            for t in a[k]["top"]:
                w(f"| {t['per']:.3f} | {t['rows_per']:.2f} | {f(t.get('us_per_call'), 1)} | `{esc(t['query'])}` |")
            w("\n</details>\n")

    q = (res["scenarios"].get("Q1") or [None])[0]
    if q:
        w(f"### Q1 queue drain ({q['mode']}, WORKER_CONCURRENCY={q.get('concurrency', 4)})\n")
        w("| jobs queued | completed | failed | left | seconds | **jobs/s** | statements/job | "
          "sendto/job (≈ round trips) | commits/job | WAL fsyncs/job | WAL B/job | worker µs/job | PostgreSQL µs/job | other CPU |")
        w("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        w(f"| {q['jobs']:,} | {q['completed']:,} | {q['failed']} | {q['left']} | {q['seconds']:.2f} | "
          f"**{f(q['jobs_s'])}** | {f(q['stmts'], 2)} | {f(q['round_trips'], 2)} | {f(q['commits'], 2)} | "
          f"{f(q['wal_sync'], 3)} | {f(q['wal_bytes'])} | {f(q['worker_us'])} | {f(q['pg_us'])} | {f(q['other_pct'])}% |")
        if q.get("invalid"):
            w(f"\n⚠ {q['invalid']}")
        w("\n<details><summary>Q1 statements per job (pg_stat_statements)</summary>\n")
        w("| calls/job | rows/job | µs/call (executor) | statement |\n|---|---|---|---|")
        for t in q["top"]:
            w(f"| {t['per']:.3f} | {t['rows_per']:.2f} | {f(t.get('us_per_call'), 1)} | `{esc(t['query'])}` |")
        w("\n</details>\n")

    wh = (res["scenarios"].get("W1") or [None])[0]
    if wh:
        w(f"### W1 webhook deliveries (nexusapi worker, WORKER_CONCURRENCY={wh['concurrency']}, "
          "one endpoint per organisation, a local receiver answering 204)\n")
        w("| events | delivered | requests | seconds | **deliveries/s** | jobs submitted at | "
          "**p50 ms** completion → receiver | p99 ms | max ms | worker µs/delivery | "
          "PostgreSQL µs/delivery | load | other CPU |")
        w("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        w(f"| {wh['events']:,} | {wh['delivered']:,} | {wh['requests']:,} | {wh['seconds']:.2f} | "
          f"**{f(wh['deliveries_s'])}** | {wh['rate']:,}/s | **{f(wh['p50'], 1)}** | {f(wh['p99'], 1)} | "
          f"{f(wh['max'], 1)} | {f(wh['worker_us'])} | {f(wh['pg_us'])} | {f(wh['load1'], 2)} | "
          f"{f(wh['other_pct'])}% |")
        if wh.get("invalid"):
            w(f"\n⚠ {wh['invalid']}")
        w("")

    mm = (res["scenarios"].get("M1") or [None])[0]
    if mm:
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

    w("### Targets (issue 6; W1: issue 14)\n")
    w("| target | figure | wanted | | figures behind it |\n|---|---|---|---|---|")
    for name, fig, want, verdict, note in targets(res, a, bound, T):
        w(f"| {name} | {fig} | {want} | **{verdict}** | {note} |")
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
    m = (res["scenarios"].get("M1") or [None])[0]

    def cell(k):
        x = a.get(k)
        if not x:
            return "–"
        if k == "S1":
            return f"{f(x['rps'])} ({f(x['server_us'], 1)})"
        b = bound.get(k)
        extra = ([f"{f(b['pct'], 0)}%"] if b else []) + [f"p99 {f(x['p99'], 1)} ms"]
        return f"{f(x['rps'])} ({', '.join(extra)})"
    return (f"| {res['machine']['date']} | {v.get('git', '?')} | {cell('S1')} | {cell('S2')} | {cell('S3')} | "
            f"{f(q['jobs_s']) if q else '–'} | {f(m['held_kb'] / 1024, 1) if m and m.get('held_kb') else '–'} | "
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
