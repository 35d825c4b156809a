"""Reading GET /metrics in tests: the text format parsed into series, and
promtool's verdict on it."""
import http.client
import os
import re
import shutil
import subprocess
import tempfile

import harness

LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def parse(text):
    """{(name, frozenset of (label, value)): float} for every sample line."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = LINE.match(line)
        assert m, f"not a sample line: {line!r}"
        labels = frozenset(LABEL.findall(m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def value(series, name, **labels):
    """The sample of name with exactly these labels, or None."""
    return series.get((name, frozenset(labels.items())))


def total(series, name, **labels):
    """The sum of name's samples whose labels include these."""
    want = set(labels.items())
    return sum(v for (n, ls), v in series.items() if n == name and want <= set(ls))


def promtool(*args, text=None):
    """Runs promtool (stdin: text); returns (exit status, combined output)."""
    r = subprocess.run([PROMTOOL, *args], input=text, capture_output=True, text=True,
                       timeout=120)
    return r.returncode, (r.stdout + r.stderr).strip()


def check_metrics(text):
    """promtool check metrics: (exit status, output). Clean means (0, "")."""
    return promtool("check", "metrics", text=text)


def scrape(get, path="/metrics", headers=None):
    r = get(path, headers=headers or {})
    assert r.status == 200, r.body
    assert r.header("Content-Type") == "text/plain; version=0.0.4; charset=utf-8"
    return r.body.decode()


def write_temp(text, suffix):
    fd, path = tempfile.mkstemp(suffix=suffix)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


class Endpoint:
    """GETs against 127.0.0.1:port (a worker's metrics port)."""

    def __init__(self, port):
        self.port = port

    def get(self, path, headers=None, timeout=10):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", path, headers=headers or {})
            r = conn.getresponse()
            return harness.Response(r.status, r.getheaders(), r.read())
        finally:
            conn.close()
