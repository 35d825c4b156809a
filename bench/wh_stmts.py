"""Where the database time of webhook delivery goes (issue 14, W1's shape).

Usage: NEXUS_BIN=build/nexusapi [WH_EXPLAIN_MS=5] /usr/bin/python3 bench/wh_stmts.py [EVENTS] [ORGS]

A throwaway cluster with pg_stat_statements; ORGS organisations (20), each
with one job.completed endpoint at a local receiver answering 204 at once
(bench/lib/w1_receiver.py); one `nexusapi worker` (WORKER_CONCURRENCY=4,
webhook settings at their defaults) runs while EVENTS jobs (3,000) are
submitted over HTTP by 8 clients. Prints, per statement: calls and rows per
delivery, total and mean exec time, buffers; the database CPU of the
worker's backends per delivery. Nothing here is a pass/fail test.
"""
import concurrent.futures
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
import harness  # noqa: E402

EVENTS = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
ORGS = int(sys.argv[2]) if len(sys.argv) > 2 else 20
TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            v = f.read().rsplit(")", 1)[1].split()
        return (int(v[11]) + int(v[12])) / TICK
    except OSError:
        return 0.0


def backends(pg, db, app):
    out = pg.psql(f"SELECT pid FROM pg_stat_activity WHERE datname = '{db}' "
                  f"AND application_name = '{app}'")
    return [int(x) for x in out.split()]


def main():
    pg = harness.PostgresCluster()
    rec = None
    procs = []
    try:
        with open(os.path.join(pg.data, "postgresql.auto.conf"), "a") as f:
            f.write("shared_preload_libraries = 'pg_stat_statements, auto_explain'\n"
                    "pg_stat_statements.max = 1000\npg_stat_statements.track_planning = on\n"
                    # plans of the slow statements, as they ran, in the server log
                    f"auto_explain.log_min_duration = '{os.environ.get('WH_EXPLAIN_MS', '-1')}'\n"
                    "auto_explain.log_analyze = on\nauto_explain.log_buffers = on\n"
                    "auto_explain.log_nested_statements = on\n")
        pg.stop()
        pg.start()
        name, url = pg.new_database()
        pg.psql("CREATE EXTENSION pg_stat_statements", name)
        env = harness.base_env(DATABASE_URL=url, LOG_LEVEL="warn")
        env = {k: v for k, v in env.items() if k not in harness.SAN_ENV}
        cli = lambda *a: harness.run_cli(a, env)  # noqa: E731
        assert cli("migrate", "upgrade", "head").returncode == 0
        portfile = tempfile.mktemp()
        rec = subprocess.Popen([sys.executable, os.path.join(HERE, "lib", "w1_receiver.py"),
                                portfile], stdout=subprocess.PIPE, text=True)
        while not (os.path.exists(portfile) and open(portfile).read()):
            time.sleep(0.05)
        port = int(open(portfile).read())
        tokens = []
        for i in range(ORGS):
            d = f"o{i}.example"
            assert cli("org", "create", "--name", d, "--domain", d).returncode == 0
            assert cli("user", "add", f"a@{d}", "--org", d, "--role", "admin").returncode == 0
            assert cli("credits", "grant", d, "100000000", "--reason", "bench").returncode == 0
            tokens.append(cli("token", f"a@{d}").stdout.strip())
        pg.psql("INSERT INTO webhook_endpoints (organisation_id, url, events, secret) "
                f"SELECT id, 'http://127.0.0.1:{port}/hooks/' || id, ARRAY['job.completed'], "
                "decode(md5(id::text) || md5(name), 'hex') FROM organisations", name, user=name)
        hook = dict(WEBHOOK_ALLOW_HTTP="true", WEBHOOK_ALLOW_NETWORKS="127.0.0.0/8")
        api = harness.Server(dict(env, **hook))
        procs.append(api)
        worker = harness.Process(["worker"], dict(env, WORKER_CONCURRENCY="4", **hook,
                                                  DATABASE_URL=url + "?application_name=wh",
                                                  PGOPTIONS=os.environ.get("WH_PGOPTIONS", "")))
        procs.append(worker)
        time.sleep(2)
        wpids = backends(pg, name, "wh")
        before = {p: cpu_s(p) for p in wpids}
        pg.psql("SELECT pg_stat_statements_reset()", name)
        t0 = time.time()

        def one(i):
            r = api.request("POST", "/api/v1/summarise", body={"text": f"Job {i}. It is done."},
                            headers={"Authorization": f"Bearer {tokens[i % ORGS]}"})
            assert r.status == 202, r.body
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(one, range(EVENTS)))
        submit_s = time.time() - t0
        q = "SELECT count(*) FROM webhook_deliveries WHERE status = 'succeeded'"
        while int(pg.psql(q, name)) < EVENTS and time.time() - t0 < 600:
            time.sleep(0.2)
        done = int(pg.psql(q, name))
        wpids = backends(pg, name, "wh")
        wcpu = sum(cpu_s(p) - before.get(p, 0.0) for p in wpids)
        rows = pg.psql(
            "SELECT json_agg(s ORDER BY s.total_ms DESC) FROM (SELECT calls, rows,"
            " round(total_exec_time::numeric, 1) AS total_ms,"
            " round(mean_exec_time::numeric, 3) AS mean_ms,"
            " round(total_plan_time::numeric, 1) AS plan_ms,"
            " shared_blks_hit + shared_blks_read AS blks, r.rolname AS role,"
            " left(regexp_replace(query, '\\s+', ' ', 'g'), 70) AS query"
            " FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid"
            " WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND query NOT LIKE '%pg_stat_statements%') s", name)
        stats = json.loads(rows or "[]")
        rec.send_signal(signal.SIGTERM)
        got = json.loads(rec.communicate(timeout=30)[0].strip().splitlines()[-1])
        rec = None
        span = (got["last"] - got["first"]) or 1e-9
        print(f"{done} of {EVENTS} delivered; submitted in {submit_s:.1f}s "
              f"({EVENTS / submit_s:.0f}/s); receiver: {got['requests']} requests in "
              f"{span:.1f}s = {got['requests'] / span:.0f}/s, completion to receiver p50 "
              f"{got['p50_ms']:.1f} ms p99 {got['p99_ms']:.1f} ms")
        print(f"worker's backends (as nexus_worker): {1e6 * wcpu / max(1, done):.0f} us CPU per delivery")
        n = max(1, done)
        tot = {"nexus_worker": [0, 0.0, 0.0, 0], "nexus_app": [0, 0.0, 0.0, 0]}
        print(f"{'calls/dlv':>9} {'rows/call':>9} {'total ms':>9} {'mean ms':>8} "
              f"{'blks/call':>9} {'plan ms':>8} {'role':12} query")
        for s in stats:
            if s["role"] in tot:
                tot[s["role"]][0] += s["calls"]
                tot[s["role"]][1] += float(s["total_ms"])
                tot[s["role"]][2] += float(s["plan_ms"])
                tot[s["role"]][3] += s["blks"]
            print(f"{s['calls'] / n:9.3f} {s['rows'] / max(1, s['calls']):9.1f} "
                  f"{float(s['total_ms']):9.1f} {float(s['mean_ms']):8.3f} "
                  f"{s['blks'] / max(1, s['calls']):9.1f} {float(s['plan_ms']):8.1f} "
                  f"{s['role'][:12]:12} {s['query']}")
        for role, (calls, ms, plan, blks) in tot.items():
            print(f"{role}: {calls / n:.2f} statements, {blks / n:.0f} buffers, "
                  f"{1000 * ms / n:.0f} us exec and {1000 * plan / n:.0f} us planning per delivery")
        if os.environ.get("WH_EXPLAIN_MS"):
            log = os.path.join(tempfile.gettempdir(), "wh_stmts_explain.log")
            subprocess.run(["cp", os.path.join(pg.dir, "log"), log])
            print(f"plans slower than {os.environ['WH_EXPLAIN_MS']} ms: {log}")
        if os.environ.get("WH_STMTS_KEEP"):
            print(f"kept: psql {url}; press Enter to finish")
            input()
    finally:
        for p in procs:
            p.close()
        if rec:
            rec.kill()
        pg.destroy()


if __name__ == "__main__":
    main()
