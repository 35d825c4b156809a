"""A webhook receiver for the fleet run, written against api.md "Webhooks":
POST /hook/<organisation> with a Standard Webhooks signature
(webhook-id, webhook-timestamp, webhook-signature: v1,<base64 HMAC-SHA256 of
"<id>.<timestamp>.<body>" with the secret's bytes>). Answers 204 and keeps
every delivery: the event, and whether one of the organisation's secrets
signs it."""
import base64
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def secret_bytes(secret):
    """The bytes behind "whsec_<base64>"."""
    return base64.b64decode(secret[len("whsec_"):] if secret.startswith("whsec_") else secret)


def signed(secret, msg_id, timestamp, body, header):
    mac = hmac.new(secret_bytes(secret), f"{msg_id}.{timestamp}.".encode() + body,
                   hashlib.sha256).digest()
    want = "v1," + base64.b64encode(mac).decode()
    return any(hmac.compare_digest(want, part) for part in (header or "").split())


class Receiver:
    def __init__(self):
        self.lock = threading.Lock()
        self.secrets = {}      # organisation key -> [secret]
        self.deliveries = []   # dicts: t, org, id, type, data_id, signed, raw
        handler = type("Handler", (_Handler,), {"receiver": self})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, org_key):
        return f"http://127.0.0.1:{self.port}/hook/{org_key}"

    def events(self):
        with self.lock:
            return list(self.deliveries)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    receiver = None
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):  # noqa: N802
        r = self.receiver
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        org = self.path.rsplit("/", 1)[-1]
        msg_id = self.headers.get("webhook-id")
        ts = self.headers.get("webhook-timestamp")
        sig = self.headers.get("webhook-signature")
        try:
            event = json.loads(body)
        except ValueError:
            event = {}
        with r.lock:
            ok = any(signed(s, msg_id, ts, body, sig) for s in r.secrets.get(org, []))
            data = event.get("data") if isinstance(event.get("data"), dict) else {}
            r.deliveries.append({"t": time.time(), "org": org, "id": event.get("id"),
                                 "header_id": msg_id, "type": event.get("type"),
                                 "data_id": data.get("id"), "signed": ok})
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()
