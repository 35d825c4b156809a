"""Helpers of the webhook tests: a receiver on 127.0.0.1 whose answers a
test scripts, and a verifier running Standard Webhooks' own library
(`standardwebhooks` from npm, pinned in tests/e2e/webhooks/) under node, so
no signature is ever checked with our own code."""
import base64
import json
import os
import shutil
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import harness
from jobs_util import wait_for

HOOKS_DIR = os.path.join(harness.ROOT, "tests", "e2e", "webhooks")

# Settings of a server (or worker) delivering to receivers on 127.0.0.1.
HOOK_ENV = {"WEBHOOK_ALLOW_HTTP": "true", "WEBHOOK_ALLOW_NETWORKS": "127.0.0.0/8",
            "WEBHOOK_TIMEOUT_SECONDS": "2", "WEBHOOK_RETRY_BASE_MS": "300",
            "WEBHOOK_CONCURRENCY": "4", "JOB_POLL_INTERVAL_MS": "100"}


class Receiver:
    """Records every request; answers per path from a plan (default 204).
    A plan step is a status code, ("hang", seconds), or ("big", bytes): a
    200 whose body is that long, sent until the client stops reading."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests = []  # dicts: t, path, headers (lower-case names), body, sent
        self.plans = {}
        handler = type("Handler", (_Handler,), {"receiver": self})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.httpd.request_queue_size = 128
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path="/hook"):
        return f"http://127.0.0.1:{self.port}{path}"

    def plan(self, path, *steps):
        with self.lock:
            self.plans[path] = list(steps)

    def next_step(self, path):
        with self.lock:
            steps = self.plans.get(path)
            return steps.pop(0) if steps else 204

    def got(self, path=None):
        with self.lock:
            return [r for r in self.requests if path is None or r["path"] == path]

    def wait(self, n, path=None, timeout=30):
        return wait_for(lambda: (lambda g: g if len(g) >= n else None)(self.got(path)),
                        timeout, interval=0.05, what=f"{n} requests at {path or 'the receiver'}")

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    receiver = None
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        rec = {"t": time.time(), "path": self.path, "body": body, "sent": 0,
               "headers": {k.lower(): v for k, v in self.headers.items()}}
        with self.receiver.lock:
            self.receiver.requests.append(rec)
        step = self.receiver.next_step(self.path)
        if isinstance(step, tuple) and step[0] == "hang":
            time.sleep(step[1])
            step = 204
        if isinstance(step, tuple) and step[0] == "big":
            self.send_response(200)
            self.send_header("Content-Length", str(step[1]))
            self.end_headers()
            chunk = b"x" * 65536
            try:
                while rec["sent"] < step[1]:
                    self.wfile.write(chunk)
                    rec["sent"] += len(chunk)
            except OSError:
                pass
            self.close_connection = True
            return
        self.send_response(step)
        if 300 <= step < 400:
            self.send_header("Location", "/elsewhere")
        self.send_header("Content-Length", "0")
        self.end_headers()


class Verifier:
    """tests/e2e/webhooks/verify.mjs under node: standardwebhooks' verify()."""

    def __init__(self):
        node = shutil.which("node")
        if not node:
            pytest.fail("node is needed to verify webhook signatures with standardwebhooks")
        if not os.path.isdir(os.path.join(HOOKS_DIR, "node_modules", "standardwebhooks")):
            pytest.fail("tests/e2e/webhooks/node_modules is missing: run `make test` "
                        "(npm ci in tests/e2e/webhooks)")
        self.proc = subprocess.Popen([node, "verify.mjs"], cwd=HOOKS_DIR, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.lock = threading.Lock()

    def verify_all(self, items):
        """items: (secret, headers, body bytes); returns "ok" or "fail ..." each."""
        with self.lock:
            for secret, headers, body in items:
                h = {k: v for k, v in headers.items() if k.startswith("webhook-")}
                self.proc.stdin.write(json.dumps({"secret": secret, "headers": h,
                                                  "body_b64": base64.b64encode(body).decode()})
                                      + "\n")
            self.proc.stdin.flush()
            return [self.proc.stdout.readline().strip() for _ in items]

    def verify(self, secret, req):
        return self.verify_all([(secret, req["headers"], req["body"])])[0]

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


def event(req):
    return json.loads(req["body"])


def create_hook(server, tenant, url, events=("job.completed", "job.failed"), **extra):
    r = server.request("POST", "/api/v1/webhooks", headers=tenant.headers,
                       body=dict({"url": url, "events": list(events)}, **extra))
    assert r.status == 201, r.body
    return r.json()


def deliveries(server, tenant, hook_id, **query):
    q = "&".join(f"{k}={v}" for k, v in query.items())
    r = server.get(f"/api/v1/webhooks/{hook_id}/deliveries?{q}", headers=tenant.headers)
    assert r.status == 200, r.body
    return r.json()["items"]


def wait_delivery(server, tenant, hook_id, status, timeout=30, n=1):
    """The endpoint's deliveries once n of them have the status."""
    def done():
        items = deliveries(server, tenant, hook_id)
        return items if sum(d["status"] == status for d in items) >= n else None
    return wait_for(done, timeout, interval=0.1, what=f"{n} {status} deliveries")
