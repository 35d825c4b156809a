"""A local stand-in for Gemini's generateContent REST endpoint.

Listens on 127.0.0.1:<free port> and answers
POST /<version>/models/<model>:generateContent (any prefix) like Gemini:
candidates[0].content.parts[].text. Modes (changeable while running):

  ok         200 with a summary, or a JSON analysis when the prompt asks for JSON
  500        HTTP 500 with Google's error body (its message: `error_message`)
  malformed  HTTP 200 whose body is not a generateContent answer
  slow       sleeps `delay` seconds, then answers as ok
  flaky      every request whose sequence number is odd gets a 500, the rest ok
  jitter     sleeps a random 0..`delay` seconds, then a 500 with probability
             `fail_rate`, else ok (the fleet's provider: slow enough for
             attempts to overlap if the queue let them, failing now and then)

In any mode a prompt containing FAIL_MARKER gets a 500, so one worker can
see some jobs fail and others succeed. Requests without x-goog-api-key are
refused with 403, as Google does. Every request is recorded (time, job text
fingerprint, end time, overlap with another in-flight request for the same
text).

Run alone: python3 gemini_standin.py [MODE] [DELAY] - prints the base URL.
"""
import hashlib
import json
import random
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FAIL_MARKER = "PLEASE-FAIL-THIS-JOB"


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # a worker killed mid-call resets its connection: expected, not news
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class Standin:
    def __init__(self, mode="ok", delay=3.0):
        self.mode = mode
        self.delay = delay
        self.error_message = "An internal error has occurred."  # the 500s' error.message
        self.summary = None  # when set, the summary answered for every summarise prompt
        self.fail_rate = 0.0  # jitter mode: the share of attempts answered with a 500
        self.lock = threading.Lock()
        self.requests = []          # dicts: t, t_end, path, key, fingerprint, status
        self.inflight = {}          # fingerprint -> count
        self.overlaps = 0           # a text already being served arrived again
        self.seq = 0
        handler = type("Handler", (_Handler,), {"standin": self})
        self.httpd = _Server(("127.0.0.1", 0), handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.port}/v1beta"

    def env(self, **extra):
        """Settings pointing a nexusapi process at this stand-in."""
        e = {"AI_PROVIDER": "gemini", "GEMINI_API_KEY": "standin-key",
             "GEMINI_BASE_URL": self.base_url, "GEMINI_MODEL": "gemini-standin"}
        e.update({k: str(v) for k, v in extra.items()})
        return e

    def count(self):
        with self.lock:
            return len(self.requests)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _answer_text(prompt):
    text = prompt.split("Text:\n", 1)[-1]
    if "JSON" in prompt:
        words = [w.strip(".,!?").lower() for w in text.split()]
        words = [w for w in words if len(w) > 3]
        top = sorted(set(words), key=lambda w: (-words.count(w), w))[:5]
        return json.dumps({"top_keywords": [{"term": w, "count": words.count(w)} for w in top],
                           "sentiment": {"score": 0.5, "label": "positive"}})
    return "Stand-in summary: " + " ".join(text.split()[:8])


def _candidate(text):
    return {"candidates": [{"content": {"role": "model", "parts": [{"text": text}]},
                            "finishReason": "STOP"}],
            "modelVersion": "gemini-standin"}


class _Handler(BaseHTTPRequestHandler):
    standin = None
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, status, body, ctype="application/json"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _error(self, status, message, code_name):
        self._send(status, json.dumps({"error": {"code": status, "message": message,
                                                 "status": code_name}}))

    def do_POST(self):  # noqa: N802
        s = self.standin
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n)
        try:
            prompt = json.loads(raw)["contents"][0]["parts"][0]["text"]
        except (ValueError, KeyError, IndexError, TypeError):
            prompt = ""
        fp = hashlib.sha256(prompt.encode()).hexdigest()[:16]
        with s.lock:
            s.seq += 1
            seq = s.seq
            mode = s.mode
            if s.inflight.get(fp):
                s.overlaps += 1
            s.inflight[fp] = s.inflight.get(fp, 0) + 1
            rec = {"t": time.time(), "path": self.path, "key": self.headers.get("x-goog-api-key"),
                   "fingerprint": fp, "status": None,
                   "traceparent": self.headers.get("traceparent")}
            s.requests.append(rec)
        try:
            rec["status"] = self._serve(s, mode, seq, prompt)
        finally:
            with s.lock:
                s.inflight[fp] -= 1
                rec["t_end"] = time.time()

    def _serve(self, s, mode, seq, prompt):
        if not self.path.endswith(":generateContent"):
            self._error(404, "not found", "NOT_FOUND")
            return 404
        if not self.headers.get("x-goog-api-key"):
            self._error(403, "API key missing", "PERMISSION_DENIED")
            return 403
        if mode == "jitter":
            time.sleep(random.uniform(0, s.delay))
            if random.random() < s.fail_rate:
                mode = "500"
        if FAIL_MARKER in prompt or mode == "500" or (mode == "flaky" and seq % 2 == 1):
            self._error(500, s.error_message, "INTERNAL")
            return 500
        if mode == "malformed":
            self._send(200, '{"candidates": "this is not what you asked for"}')
            return 200
        if mode == "slow":
            time.sleep(s.delay)
        text = s.summary if s.summary is not None and "JSON" not in prompt else None
        self._send(200, json.dumps(_candidate(text or _answer_text(prompt))))
        return 200


if __name__ == "__main__":
    st = Standin(sys.argv[1] if len(sys.argv) > 1 else "ok",
                 float(sys.argv[2]) if len(sys.argv) > 2 else 3.0)
    print(st.base_url, flush=True)
    try:
        st.thread.join()
    except KeyboardInterrupt:
        st.close()
