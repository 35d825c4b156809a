"""The promises a fleet run must keep, checked once it is over.

Each check returns (name, "PASS" | "FAIL" | "SKIP", detail). The evidence is
the database (read as the owner over a direct connection), the nodes' logs
(one file per incarnation), HAProxy's log (which node served which request
id, and how it ended), the client's records and the harness's own record of
what it killed or restarted and when. Checks of features the server does
not offer (idempotency keys, rate limits, webhooks: api.md) are skipped and
say so.
"""
import datetime
import json
import os
import signal
import time

GRACE = 3.0  # seconds after the database path is back, for health checks to see it

SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "SUMMARY: UndefinedBehaviorSanitizer")


def ts(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def json_lines(path):
    try:
        with open(path, errors="replace") as f:
            for line in f:
                if line.startswith("{"):
                    try:
                        yield json.loads(line)
                    except ValueError:
                        pass
    except OSError:
        return


def overlaps(a, b):
    return a[0] < b[1] and b[0] < a[1]


class Evidence:
    """What the checks read, gathered once."""

    def __init__(self, fleet):
        self.f = fleet
        self.jobs = {}  # id -> (status, organisation id, credits, fleet key)
        rows = fleet.sql("SELECT id, status, organisation_id, credits_charged, "
                         "coalesce(metadata->>'fleet_key', '') FROM jobs")
        for line in rows.splitlines():
            jid, status, org, credits, key = line.split("|")
            self.jobs[jid] = (status, org, int(credits), key)
        self.haproxy = fleet.haproxy.records() if fleet.haproxy else {}
        now = fleet.ended or time.time()
        self.serve_up = [w for n in fleet.serves for life in n.lives
                         if (w := life.up_window(now))]
        self.db_down = [(a, b + GRACE) for a, b in fleet.pgbouncer_down]
        self.kills = [(life.signalled, n.name) for n in fleet.serves for life in n.lives
                      if life.signal == signal.SIGKILL]

    def no_serve_up(self, t0, t1):
        """True when some moment of [t0, t1] had no serve node up."""
        t = t0
        for a, b in sorted(self.serve_up):
            if a > t:
                break
            if b > t:
                t = b
            if t >= t1:
                return False
        return True


# -- the checks ------------------------------------------------------------------

def accepted_jobs_finished(ev):
    name = "every accepted job (202) reached completed or failed"
    acc = ev.f.load.accepted
    missing = [j for j in acc if j not in ev.jobs]
    unfinished = [j for j in acc if j in ev.jobs and ev.jobs[j][0] not in ("completed", "failed")]
    done = {"completed": 0, "failed": 0}
    for j in acc:
        if j in ev.jobs and ev.jobs[j][0] in done:
            done[ev.jobs[j][0]] += 1
    others = [j for j in ev.jobs if j not in acc]
    others_open = [j for j in others if ev.jobs[j][0] not in ("completed", "failed")]
    ok = not missing and not unfinished and not others_open and len(acc) > 0
    detail = (f"{len(acc)} accepted: {done['completed']} completed, {done['failed']} failed, "
              f"{len(missing)} missing, {len(unfinished)} unfinished; {len(others)} more "
              f"created whose answer was lost, {len(others_open)} of them unfinished")
    return name, "PASS" if ok else "FAIL", detail


def attempt_intervals(ev):
    """{job id: [(start, end, worker, attempt)]} from every worker incarnation."""
    out = {}
    for node in ev.f.workers:
        for life in node.lives:
            open_ = {}
            end_of_life = life.ended or life.signalled or ev.f.ended
            for l in json_lines(life.logfile):
                msg = l.get("msg")
                if msg == "job attempt started":
                    open_[(l["job_id"], l.get("attempt"))] = ts(l["time"])
                elif msg in ("job attempt succeeded", "job attempt failed"):
                    k = (l["job_id"], l.get("attempt"))
                    if k in open_:
                        out.setdefault(k[0], []).append((open_.pop(k), ts(l["time"]),
                                                         node.name, k[1]))
            for (job, attempt), start in open_.items():  # cut short by the process's end
                out.setdefault(job, []).append((start, end_of_life, node.name, attempt))
    return out


def no_concurrent_attempts(ev):
    name = "no job ran two attempts at once"
    runs = attempt_intervals(ev)
    bad = []
    for job, iv in runs.items():
        iv.sort()
        for a, b in zip(iv, iv[1:]):
            if b[0] < a[1]:
                bad.append((job, a, b))
    n = sum(len(v) for v in runs.values())
    provider = ev.f.standin.overlaps
    ok = not bad and provider == 0 and n > 0
    detail = (f"{n} attempts of {len(runs)} jobs in {sum(len(w.lives) for w in ev.f.workers)} "
              f"worker lives: {len(bad)} overlapping; the provider saw {provider} concurrent "
              "calls for one job")
    if bad:
        detail += f"; e.g. {bad[0][0]}: {bad[0][1][2]} and {bad[0][2][2]}"
    return name, "PASS" if ok else "FAIL", detail


def refunds(ev):
    name = "every failed job refunded exactly once"
    row = ev.f.sql("""
        SELECT count(*) FILTER (WHERE j.status = 'failed'),
               count(*) FILTER (WHERE j.status = 'failed' AND (coalesce(r.n, 0) <> 1
                                                            OR r.amount <> j.credits_charged)),
               count(*) FILTER (WHERE j.status <> 'failed' AND coalesce(r.n, 0) <> 0),
               count(*) FILTER (WHERE coalesce(d.n, 0) <> 1)
        FROM jobs j
        LEFT JOIN (SELECT organisation_id, job_id, count(*) AS n, sum(amount) AS amount
                   FROM credit_transactions WHERE type = 'REFUND' GROUP BY 1, 2) r
               ON r.organisation_id = j.organisation_id AND r.job_id = j.id
        LEFT JOIN (SELECT organisation_id, job_id, count(*) AS n
                   FROM credit_transactions WHERE type = 'DEDUCTION' GROUP BY 1, 2) d
               ON d.organisation_id = j.organisation_id AND d.job_id = j.id""")
    failed, bad, stray, deductions = (int(x) for x in row.split("|"))
    ok = bad == 0 and stray == 0 and deductions == 0
    return name, "PASS" if ok else "FAIL", (
        f"{failed} failed jobs: {bad} without exactly one full refund; {stray} refunds of jobs "
        f"that did not fail; {deductions} jobs without exactly one deduction")


def balances(ev):
    name = "for every organisation balance = grants - deductions + refunds"
    row = ev.f.sql("""
        SELECT count(*), count(*) FILTER (WHERE c.balance <> coalesce(t.s, 0))
        FROM org_credits c
        LEFT JOIN (SELECT organisation_id,
                          sum(CASE type WHEN 'DEDUCTION' THEN -amount ELSE amount END) AS s
                   FROM credit_transactions GROUP BY 1) t USING (organisation_id)""")
    n, bad = (int(x) for x in row.split("|"))
    return name, "PASS" if bad == 0 and n > 0 else "FAIL", f"{n} organisations, {bad} off"


def idempotency(ev):
    name = "no idempotency key produced two jobs"
    if not ev.f.features["idempotency"]:
        return name, "SKIP", ("the server does not honour Idempotency-Key (a repeated POST "
                              "got no Idempotent-Replayed: true)")
    keys = {}
    for status, org, credits, key in ev.jobs.values():
        if key:
            keys[(org, key)] = keys.get((org, key), 0) + 1
    dup = [k for k, n in keys.items() if n > 1]
    replays = ev.f.load.replays
    wrong = [r for r in replays if r[4] != 202 or r[2] != r[1] or not r[3]]
    ok = not dup and not wrong
    return name, "PASS" if ok else "FAIL", (
        f"{len(keys)} keys in the database, {len(dup)} with two jobs or more; {len(replays)} "
        f"replays on purpose, {len(wrong)} not answering the first job with "
        "Idempotent-Replayed: true")


def webhooks(ev):
    name = "every webhook event delivered at least once"
    hooks = ev.f.webhooks
    if not ev.f.features["webhooks"]:
        return name, "SKIP", "the server has no /api/v1/webhooks"
    if hooks.get("error"):
        return name, "FAIL", hooks["error"]
    got = {}
    bad_sig = 0
    for d in ev.f.receiver.events():
        if not d["signed"]:
            bad_sig += 1
        got.setdefault((d["type"], d["data_id"]), 0)
        got[(d["type"], d["data_id"])] += 1
    want = [(f"job.{status}", jid) for jid, (status, org, _, _) in ev.jobs.items()
            if org in hooks["orgs"] and status in ("completed", "failed")
            and jid not in hooks["before"]]
    missing = [w for w in want if w not in got]
    ok = not missing and bad_sig == 0
    return name, "PASS" if ok else "FAIL", (
        f"{len(want)} job events due, {len(missing)} never delivered; "
        f"{sum(got.values())} deliveries, {bad_sig} not signed with the endpoint's secret")


def rate_limits(ev):
    name = "rate limits never admitted more than the limit in any window"
    pol = ev.f.features["rate_limit"]
    if not pol:
        return name, "SKIP", "the server sends no RateLimit-Policy"
    q, w = pol
    per_org = {}
    for node in ev.f.serves:
        for life in node.lives:
            for l in json_lines(life.logfile):
                if l.get("msg") != "request" or not l.get("org_id"):
                    continue
                route, status = l.get("route") or "", l.get("status", 0)
                # not admitted: refused by the limiter, failed, or refused
                # inside the request's transaction before it committed (a
                # removed user 401, a member 403, a key in use 409), which
                # takes its reservation back with it
                if (not route.startswith("/api/") or status >= 500 or
                        status in (401, 403, 409, 429)):
                    continue
                end = ts(l["time"])
                per_org.setdefault(l["org_id"], []).append(
                    (end - float(l.get("duration_ms", 0)) / 1000.0, end))
    worst, worst_org, total = 0, None, 0
    for org, iv in per_org.items():
        iv.sort()
        total += len(iv)
        for i, (start, _) in enumerate(iv):
            # requests wholly inside [start, start + w) were admitted inside it
            n, j = 0, i
            while j < len(iv) and iv[j][0] < start + w:
                n += iv[j][1] < start + w
                j += 1
            if n > worst:
                worst, worst_org = n, org
    hot = sum(1 for r in ev.f.load.records if r.kind == "hot" and r.status == 429)
    ok = worst <= q and hot > 0
    return name, "PASS" if ok else "FAIL", (
        f"policy q={q} w={w}s: at most {worst} admitted in one window (organisation "
        f"{worst_org}); {total} admitted requests read from the access logs; the organisation "
        f"asking past its limit got {hot} 429s")


# the load's requests that carry an Idempotency-Key (load.py)
KEYED_KINDS = ("submit", "replay")


def five_xx(ev):
    name = "no 5xx except 503 while no serve process (or the database path) was up"
    allowed_idle, allowed_db, cut, cut_keyed, bad = 0, 0, 0, 0, []
    recovered = getattr(ev.f.load, "recovered", set())
    kills = sorted(ev.kills)
    for r in ev.f.load.records:
        if r.status is None or r.status < 500:
            continue
        if r.status == 503 and ev.no_serve_up(r.t0, r.t1):
            allowed_idle += 1
            continue
        if r.status == 503 and any(overlaps((r.t0, r.t1), w) for w in ev.db_down):
            allowed_db += 1
            continue
        hp = ev.haproxy.get(r.rid)
        # a POST cut by a node the harness SIGKILLed: excused when the load
        # balancer may not repeat it (no Idempotency-Key the server honours),
        # and for a keyed one when the client's retry with the same key was
        # answered (HAProxy does not repeat a request whose connection was
        # reset, only one closed without an answer)
        if (r.status == 502 and hp and hp[3].startswith("S") and r.method == "POST"
                and any(node == hp[1] and r.t0 - 0.5 <= t <= r.t1 + 0.5 for t, node in kills)):
            keyed = ev.f.features["idempotency"] and r.kind in KEYED_KINDS
            if not keyed:
                cut += 1
                continue
            if r.rid in recovered:
                cut_keyed += 1
                continue
        bad.append(r)
    ok = not bad
    detail = (f"{allowed_idle} 503 with no serve process up, {allowed_db} 503 while PgBouncer "
              f"restarted; {cut} 502 for a POST without a replayable Idempotency-Key cut by a "
              f"SIGKILLed node; {cut_keyed} 502 for a keyed POST cut that way whose retry with "
              f"the same key was answered; {len(bad)} other 5xx")
    if bad:
        b = bad[0]
        detail += f"; e.g. {b.status} {b.method} {b.kind} {b.rid} {ev.haproxy.get(b.rid)}"
    return name, "PASS" if ok else "FAIL", detail


def no_hangs(ev):
    name = "each client request answered or its connection refused (no hangs)"
    recs = ev.f.load.records
    refused = sum(1 for r in recs if r.error == "refused")
    other = [r for r in recs if r.error and r.error != "refused"]
    slow = max((r.t1 - r.t0 for r in recs if r.status), default=0)
    ok = not other and recs
    detail = (f"{len(recs)} requests: {len(recs) - refused - len(other)} answered (slowest "
              f"{slow:.1f} s), {refused} refused, {len(other)} timed out or cut")
    if other:
        detail += f"; e.g. {other[0].error} {other[0].method} {other[0].kind}"
    return name, "PASS" if ok else "FAIL", detail


def clean_exits(ev):
    name = "every process ended as told (SIGTERM: exit 0), no sanitizer report"
    bad, reports, lives = [], [], 0
    for node in ev.f.serves + ev.f.workers:
        for life in node.lives:
            lives += 1
            want = -signal.SIGKILL if life.signal == signal.SIGKILL else 0
            if life.rc != want:
                bad.append(f"{node.name}.{life.number}: {life.rc}")
            with open(life.logfile, errors="replace") as f:
                text = f.read()
            if any(m in text for m in SANITIZER_MARKS):
                reports.append(os.path.basename(life.logfile))
    ok = not bad and not reports
    detail = f"{lives} process lives: {len(bad)} ended otherwise, {len(reports)} sanitizer reports"
    if bad or reports:
        detail += f"; {(bad + reports)[:3]}"
    return name, "PASS" if ok else "FAIL", detail


def volume(ev):
    name = "the run drove the load it was asked for"
    n = len(ev.f.load.accepted)
    want = ev.f.args.min_jobs
    return name, "PASS" if n >= want else "FAIL", f"{n} jobs accepted (at least {want} asked)"


CHECKS = [accepted_jobs_finished, no_concurrent_attempts, refunds, balances, idempotency,
          webhooks, rate_limits, five_xx, no_hangs, clean_exits, volume]


def run_all(fleet):
    ev = Evidence(fleet)
    out = []
    for check in CHECKS:
        try:
            out.append(check(ev))
        except Exception as e:  # a check that cannot run fails, with why
            out.append((check.__name__, "FAIL", f"the check itself failed: {e!r}"))
    return out
