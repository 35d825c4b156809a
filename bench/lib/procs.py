"""Processes, CPU from /proc and small helpers shared by the benchmark's
modules (bench.py, peers.py). Python 3 standard library only."""
import http.client
import os
import resource
import signal
import socket
import subprocess
import time

CLK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Unavailable(Exception):
    """A scenario cannot run yet (route 404, verb missing, SQL not written)."""


# ---------------------------------------------------------------- processes

PROCS = []  # every Popen we start (own session), killed on exit


def spawn(cmd, **kw):
    p = subprocess.Popen(cmd, start_new_session=True, **kw)
    PROCS.append(p)
    return p


def kill_all():
    for p in PROCS:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.time() + 10
    for p in PROCS:
        try:
            p.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd, env=None, timeout=120, check=True, input=None, cwd=None):
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout,
                       input=input, cwd=cwd)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])}... failed ({r.returncode}): "
                           f"{(r.stderr or r.stdout).strip()[-800:]}")
    return r


# ---------------------------------------------------------------- CPU from /proc

def _stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    return s[s.rindex(")") + 2:].split()  # fields from 3 (state) on


def proc_cpu(pid, children=False):
    """utime+stime (+ reaped children's) of a process, in seconds."""
    try:
        f = _stat(pid)
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    t = int(f[11]) + int(f[12])
    if children:
        t += int(f[13]) + int(f[14])
    return t / CLK


def tree_cpu(root_pid):
    """CPU of a process, its reaped children and its live children (seconds)."""
    total = proc_cpu(root_pid, children=True)
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            f = _stat(d)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if int(f[1]) == root_pid:
            total += (int(f[11]) + int(f[12])) / CLK
    return total


def machine_busy():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    total = sum(v[:8])
    idle = v[3] + v[4]
    return (total - idle) / CLK, total / CLK


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def rss_kb(pid, field="VmRSS"):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except FileNotFoundError:
        pass
    return None


def foreign_pytest():
    n = 0
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    if b"pytest" in f.read():
                        n += 1
            except OSError:
                pass
    return n


def _children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def http_req(port, method, path, body=None, headers=None, timeout=10):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        c.close()


class Service:
    """A server process of the benchmark on 127.0.0.1:port, in its own session,
    its output in a log file. tree: its CPU includes its children's (a
    node:cluster primary and its workers); wrap: a command that runs it as
    its child (perf stat), whose child is then the process measured."""

    def __init__(self, tmp, cmd, env, name, port, wrap=None, tree=False, logpath=None):
        self.port, self.env, self.name, self.tree = port, env, name, tree
        self.logpath = logpath or os.path.join(tmp, f"{name}.log")
        self.logf = open(self.logpath, "ab")
        self.proc = spawn((wrap or []) + cmd, env=env, stdout=self.logf,
                          stderr=subprocess.STDOUT, cwd=tmp)
        self.pid = self.proc.pid
        if wrap:  # the server is the wrapper's child
            deadline = time.time() + 10
            while time.time() < deadline:
                kids = _children(self.proc.pid)
                if kids:
                    self.pid = kids[0]
                    break
                time.sleep(0.01)

    def cpu(self):
        """utime+stime so far, in seconds."""
        return tree_cpu(self.pid) if self.tree else proc_cpu(self.pid)

    def wait_http(self, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}): {self.tail()}")
            try:
                st, _, _ = http_req(self.port, "GET", "/health", timeout=2)
                if st == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready after {timeout}s: {self.tail()}")

    def tail(self, n=1500):
        with open(self.logpath, errors="replace") as f:
            return f.read()[-n:]

    def stop(self, timeout=30):
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.logf.close()
        return self.proc.returncode
