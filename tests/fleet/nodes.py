"""The fleet's processes: `nexusapi serve` and `nexusapi worker` nodes that
can be killed and started again, and HAProxy in front of the serve nodes.

Every incarnation of a node writes its own log file and leaves a record:
when it started, when it was ready, which signal the harness sent and when,
when it ended and with what status. The invariants read those records (a
serve node is "up" from ready to signal) and the logs (attempt intervals,
access lines, sanitizer reports).
"""
import os
import signal
import socket
import subprocess
import threading
import time

import harness

HAPROXY = "/usr/sbin/haproxy"


class Incarnation:
    def __init__(self, number, logfile):
        self.number = number
        self.logfile = logfile
        self.started = time.time()
        self.ready = None
        self.signal = None    # signal.SIGKILL / SIGTERM sent by the harness
        self.signalled = None
        self.ended = None
        self.rc = None

    def up_window(self, now):
        """(from, to) while it answered, or None."""
        if self.ready is None:
            return None
        end = self.signalled or self.ended or now
        return (self.ready, end)


class Node:
    """One serve or worker slot; a serve slot keeps its port across restarts
    so HAProxy's configuration never changes."""

    def __init__(self, kind, index, env, logdir, port=None):
        self.kind, self.index = kind, index
        self.name = f"{kind}{index}"
        self.env = {k: str(v) for k, v in env.items()}
        self.port = port
        if port:
            self.env.update(PORT=str(port), HOST="127.0.0.1")
        self.logdir = logdir
        self.lives = []
        self.proc = None
        self.lock = threading.Lock()

    # -- life ---------------------------------------------------------------
    def start(self, timeout=60):
        with self.lock:
            n = len(self.lives)
            path = os.path.join(self.logdir, f"{self.name}.{n}.log")
            life = Incarnation(n, path)
            with open(path, "wb") as log:
                self.proc = subprocess.Popen([harness.BIN, self.kind], env=self.env, stdout=log,
                                             stderr=subprocess.STDOUT, cwd=self.logdir,
                                             start_new_session=True)
            self.lives.append(life)
        self._wait_ready(life, timeout)
        return life

    def _wait_ready(self, life, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                self._ended(life)
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n"
                                   f"{self.tail(life)}")
            if self._is_ready(life):
                life.ready = time.time()
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not start:\n{self.tail(life)}")

    def _is_ready(self, life):
        if self.kind == "serve":
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return True
            except OSError:
                return False
        with open(life.logfile, "rb") as f:
            return b'"msg":"job workers started"' in f.read()

    def _ended(self, life):
        if life.ended is None:
            life.ended = time.time()
            life.rc = self.proc.returncode

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=60):
        """Sends sig to the current incarnation and waits for it to end;
        returns its exit status (-9 after SIGKILL)."""
        with self.lock:
            life = self.lives[-1]
            if self.running():
                life.signal, life.signalled = sig, time.time()
                self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._ended(life)
        return life.rc

    def tail(self, life, n=4000):
        try:
            with open(life.logfile, errors="replace") as f:
                return f.read()[-n:]
        except OSError:
            return ""


class HAProxy:
    """HAProxy balancing HTTP over the serve nodes, with health checks on
    /health. Requests that never reached a node, or that a node dropped
    without an answer, are tried again on another node - except a POST,
    which is tried again only when it carries an Idempotency-Key and the
    server honours them (a repeated POST would otherwise run twice)."""

    def __init__(self, servers, workdir, replay_keyed_posts, run_as=None, log_requests=True):
        self.port = harness.free_port()
        self.dir = workdir
        self.cfg = os.path.join(workdir, "haproxy.cfg")
        self.logfile = os.path.join(workdir, "haproxy.log")
        keyed = ("    acl keyed req.hdr(Idempotency-Key) -m found\n"
                 "    http-request disable-l7-retry if METH_POST !keyed\n"
                 if replay_keyed_posts else "    http-request disable-l7-retry if METH_POST\n")
        lines = "".join(f"    server {s.name} 127.0.0.1:{s.port} check\n" for s in servers)
        with open(self.cfg, "w") as f:
            f.write(f"""global
    log stdout format raw local0
    maxconn 4000

defaults
    mode http
{"    log global" if log_requests else "    no log"}
    timeout connect 1s
    timeout client 60s
    timeout server 20s
    timeout check 1s
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response response-timeout
    option http-server-close

frontend fleet
    bind 127.0.0.1:{self.port}
    http-request capture req.hdr(X-Request-ID) len 64
    log-format "%Ts.%ms %[capture.req.hdr(0)] %s %ST %tsc %rc %HM %HU %Ta"
    default_backend nodes

backend nodes
    balance roundrobin
    option httpchk GET /health
    http-check expect status 200
    default-server inter 300ms fastinter 200ms downinter 300ms fall 2 rise 2
{keyed}{lines}""")
        self.run_as = run_as
        if run_as:
            os.chown(self.cfg, run_as.pw_uid, run_as.pw_gid)
        self.log = open(self.logfile, "wb")
        self.proc = subprocess.Popen([HAPROXY, "-db", "-f", self.cfg], stdout=self.log,
                                     stderr=subprocess.STDOUT, cwd=workdir,
                                     preexec_fn=harness._demote(run_as) if run_as else None)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"haproxy exited with {self.proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("haproxy did not start")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGUSR1)  # soft stop: finish what is in flight
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def records(self):
        """{request id: (accept time, server, status, termination, retries, method, uri)}."""
        out = {}
        with open(self.logfile, errors="replace") as f:
            for line in f:
                parts = line.split()
                if len(parts) < 8:
                    continue
                try:
                    t = float(parts[0])
                except ValueError:
                    continue
                out[parts[1]] = (t, parts[2], int(parts[3]) if parts[3].lstrip("-").isdigit()
                                 else 0, parts[4], parts[5], parts[6], parts[7])
        return out
