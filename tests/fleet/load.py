"""The fleet's client load: threads sending a paced mix of reads, job
submissions (each with an Idempotency-Key, kept in the job's metadata so the
database can tell which key made which job) and role changes through
HAProxy, each request on a connection of its own, until a deadline.

Every request leaves a Record: its X-Request-ID (HAProxy logs it), when it
was sent and answered, the status - or what went wrong instead (refused,
timeout, reset). When the server honours Idempotency-Key, a submission that
got no answer, or a 502/503/504, is sent again with the same key and body,
and some accepted ones are replayed on purpose: each replay must answer the
same job with Idempotent-Replayed: true.
"""
import http.client
import json
import random
import socket
import threading
import time
import uuid
from collections import namedtuple

FAIL_MARKER = "PLEASE-FAIL-THIS-JOB"  # gemini_standin fails every attempt of such a job
CLIENT_TIMEOUT = 45  # past HAProxy's 20 s server timeout: only a hang lasts this long

Record = namedtuple("Record", "rid t0 t1 method kind org status error replayed")

SENTENCES = [
    "The quarterly report shows steady growth in every region.",
    "Customers praised the faster onboarding and the clearer invoices.",
    "Support tickets fell by a third after the new help centre launched.",
    "The team plans to expand the service to two more cities next year.",
    "A careful review found no outage longer than a minute this month.",
]


class Org:
    """An organisation of the run: its id, and an admin, a member and a
    "flipper" (a user whose role the admin keeps changing), each with a token."""

    def __init__(self, key, org_id):
        self.key, self.id = key, org_id
        self.users = {}  # role name -> (user id, email, token)
        self.recent = []  # recently accepted job ids (for reads)
        self.lock = threading.Lock()

    def token(self, who):
        return self.users[who][2]

    def remember(self, job_id):
        with self.lock:
            self.recent.append(job_id)
            del self.recent[:-50]

    def some_job(self, rng):
        with self.lock:
            return rng.choice(self.recent) if self.recent else None


class Load:
    def __init__(self, port, orgs, idempotency, rate, threads, seconds, seed,
                 hot_org=None, hot_rate=0.0, fail_share=0.04, replay_share=0.05):
        self.port = port
        self.orgs = orgs
        self.idempotency = idempotency
        self.rate, self.nthreads = rate, threads
        self.deadline = time.time() + seconds
        self.seed = seed
        self.hot_org, self.hot_rate = hot_org, hot_rate
        self.fail_share, self.replay_share = fail_share, replay_share
        self.lock = threading.Lock()
        self.records = []
        self.accepted = {}   # job id -> (org key, idempotency key or None, request id)
        self.replays = []    # (key, first job id, replayed job id, Idempotent-Replayed)
        self.recovered = set()  # request ids of failed keyed POSTs a retry answered
        self.stop = threading.Event()
        self.last_headers = []  # of the last answer (the single-threaded probes read it)

    # -- one request ---------------------------------------------------------
    def call(self, method, path, token, body=None, headers=None, kind="", org=None):
        rid = uuid.uuid4().hex
        h = {"X-Request-ID": rid, "Connection": "close"}
        if token:
            h["Authorization"] = f"Bearer {token}"
        data = None
        if body is not None:
            data = json.dumps(body)
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        t0 = time.time()
        status, error, payload, replayed = None, None, None, False
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=CLIENT_TIMEOUT)
        try:
            conn.request(method, path, body=data, headers=h)
            r = conn.getresponse()
            raw = r.read()
            status = r.status
            replayed = (r.getheader("Idempotent-Replayed") or "").lower() == "true"
            try:
                payload = json.loads(raw) if raw else None
            except ValueError:
                payload = None
            self.last_headers = r.getheaders()
        except ConnectionRefusedError:
            error = "refused"
        except (socket.timeout, TimeoutError):
            error = "timeout"
        except (http.client.HTTPException, OSError) as e:
            error = type(e).__name__
        finally:
            conn.close()
        rec = Record(rid, t0, time.time(), method, kind, org.key if org else None, status, error,
                     replayed)
        with self.lock:
            self.records.append(rec)
        return rec, payload

    # -- the operations ------------------------------------------------------
    def submit(self, rng, org):
        key = f"fleet-{uuid.uuid4().hex}"
        text = f"{rng.choice(SENTENCES)} {rng.choice(SENTENCES)} Reference {key}."
        if rng.random() < self.fail_share:
            text += " " + FAIL_MARKER
        body = {"type": rng.choice(["summarise", "analyse"]), "input": {"text": text},
                "metadata": {"fleet_key": key}}
        hdr = {"Idempotency-Key": key}
        failed = []
        for attempt in range(4):
            rec, p = self.call("POST", "/api/v2/jobs", org.token("member"), body, hdr,
                               "submit", org)
            if rec.status == 202 and p:
                with self.lock:
                    self.accepted[p["id"]] = (org.key, key, rec.rid)
                    self.recovered.update(failed)
                org.remember(p["id"])
                if self.idempotency and rng.random() < self.replay_share:
                    again, p2 = self.call("POST", "/api/v2/jobs", org.token("member"), body, hdr,
                                          "replay", org)
                    with self.lock:
                        self.replays.append((key, p["id"], (p2 or {}).get("id"), again.replayed,
                                             again.status))
                return
            retry = rec.error or rec.status in (409, 502, 503, 504)
            failed.append(rec.rid)
            if not (self.idempotency and retry) or time.time() > self.deadline + 30:
                return
            time.sleep(1.0 if rec.status == 409 else 0.5)

    def submit_v1(self, rng, org):
        rec, p = self.call("POST", "/api/v1/summarise", org.token("admin"),
                           {"text": f"{rng.choice(SENTENCES)} v1 {uuid.uuid4().hex}."},
                           kind="submit_v1", org=org)
        if rec.status == 202 and p:
            with self.lock:
                self.accepted[p["job_id"]] = (org.key, None, rec.rid)
            org.remember(p["job_id"])

    def read(self, rng, org):
        job = org.some_job(rng)
        paths = ["/api/v1/me", "/api/v1/users?limit=5", "/api/v1/credits",
                 "/api/v1/organisation", "/api/v2/jobs?limit=5"]
        if job:
            paths += [f"/api/v1/jobs/{job}", f"/api/v2/jobs/{job}"]
        who = rng.choice(["member", "admin", "flipper"])
        self.call("GET", rng.choice(paths), org.token(who), kind="read", org=org)

    def change_role(self, rng, org):
        flipper = org.users["flipper"][0]
        self.call("PATCH", f"/api/v1/users/{flipper}", org.token("admin"),
                  {"role": rng.choice(["admin", "member"])}, kind="role", org=org)

    def health(self, rng, org):
        self.call("GET", "/health", None, kind="health")

    # -- threads ---------------------------------------------------------------
    OPS = [("submit", 40), ("submit_v1", 4), ("read", 44), ("change_role", 8), ("health", 4)]

    def worker(self, n):
        rng = random.Random(f"{self.seed}-{n}")
        interval = self.nthreads / self.rate if self.rate > 0 else 0
        names, weights = zip(*self.OPS)
        nxt = time.time()
        while time.time() < self.deadline and not self.stop.is_set():
            org = rng.choice(self.orgs)
            getattr(self, rng.choices(names, weights)[0])(rng, org)
            nxt = max(nxt + interval, time.time() - 1.0)
            time.sleep(max(0.0, nxt - time.time()))

    def hot(self):
        """One organisation asks well past its rate limit (only when there is one)."""
        interval = 1.0 / self.hot_rate
        while time.time() < self.deadline and not self.stop.is_set():
            self.call("GET", "/api/v1/me", self.hot_org.token("member"), kind="hot",
                      org=self.hot_org)
            time.sleep(interval)

    def run(self):
        threads = [threading.Thread(target=self.worker, args=(i,), daemon=True)
                   for i in range(self.nthreads)]
        if self.hot_org and self.hot_rate > 0:
            threads.append(threading.Thread(target=self.hot, daemon=True))
        for t in threads:
            t.start()
        for t in threads:
            t.join(max(1.0, self.deadline - time.time()) + CLIENT_TIMEOUT * 5)
        self.stop.set()
