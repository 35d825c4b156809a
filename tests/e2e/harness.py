"""Test harness: a throwaway PostgreSQL cluster and the real nexusapi binary.

PostgresCluster runs initdb in a temporary directory (as an unprivileged
account when the tests run as root), listens on 127.0.0.1 on a free port and
is removed afterwards. Server starts `nexusapi serve` on an ephemeral
loopback port against one database of that cluster and captures its log.
"""
import contextlib
import http.client
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("NEXUS_BIN", os.path.join(ROOT, "build", "asan", "nexusapi"))
PG_BINDIR = os.environ.get("PG_BINDIR", "/usr/lib/postgresql/15/bin")
SECRET = "test-secret-0123456789abcdef0123456789abcdef"

# The sanitizer build aborts on the first error; leak checks run at exit.
SAN_ENV = {
    "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=1:halt_on_error=1",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_user():
    """The account postgres runs as: ourselves, or 'postgres' when root."""
    if os.geteuid() != 0:
        return None
    return pwd.getpwnam(os.environ.get("NEXUS_PG_USER", "postgres"))


def _demote(pw):
    def fn():
        os.setgid(pw.pw_gid)
        os.initgroups(pw.pw_name, pw.pw_gid)
        os.setuid(pw.pw_uid)
    return fn


class PostgresCluster:
    """A private PostgreSQL 15 cluster on 127.0.0.1:<free port>."""

    SUPERUSER = "nexus_test"

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="nexus-pg-")
        os.chmod(self.dir, 0o755)
        self.data = os.path.join(self.dir, "data")
        self.sock = os.path.join(self.dir, "sock")
        os.mkdir(self.sock)
        self.port = free_port()
        self.pw = _pg_user()
        if self.pw:
            for p in (self.dir, self.sock):
                os.chown(p, self.pw.pw_uid, self.pw.pw_gid)
        self._run([os.path.join(PG_BINDIR, "initdb"), "-D", self.data, "-U", self.SUPERUSER,
                   "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"])
        with open(os.path.join(self.data, "postgresql.auto.conf"), "a") as f:
            f.write(f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                    f"unix_socket_directories = '{self.sock}'\n"
                    "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                    "max_connections = 300\nshared_buffers = 64MB\n")
        self.start()

    def _run(self, cmd, check=True):
        return subprocess.run(cmd, check=check, capture_output=True, text=True,
                              preexec_fn=_demote(self.pw) if self.pw else None, cwd=self.dir)

    def start(self):
        self._run([os.path.join(PG_BINDIR, "pg_ctl"), "-D", self.data, "-l",
                   os.path.join(self.dir, "log"), "-w", "-t", "60", "start"])

    def stop(self, mode="fast"):
        self._run([os.path.join(PG_BINDIR, "pg_ctl"), "-D", self.data, "-m", mode, "-w",
                   "stop"], check=False)

    def destroy(self):
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)

    def dsn(self, dbname="postgres", user=None):
        return f"postgresql://{user or self.SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    def psql(self, sql, dbname="postgres", user=None, check=True, script=False):
        """Runs SQL with psql; returns stdout (unaligned, tuples only). With
        script=True the SQL is read from stdin as `... | psql` would, each
        statement in its own transaction unless the script says BEGIN (-c
        runs all of them in one, which CREATE INDEX CONCURRENTLY refuses)."""
        source = ["-f", "-"] if script else ["-c", sql]
        r = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                            "-d", self.dsn(dbname, user), *source],
                           input=sql if script else None, capture_output=True, text=True)
        if check and r.returncode != 0:
            raise RuntimeError(f"psql failed: {r.stderr}")
        return r.stdout.strip() if check else r

    def new_database(self):
        """A fresh database owned by a fresh non-superuser owner role.
        Returns (dbname, owner_dsn)."""
        name = "t_" + uuid.uuid4().hex[:12]
        self.psql(f"CREATE ROLE {name} LOGIN CREATEROLE")
        self.psql(f"CREATE DATABASE {name} OWNER {name}")
        return name, self.dsn(name, name)


def base_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEXUS_", "JOB_", "GOOGLE_", "GEMINI_"))}
    env.update(SAN_ENV)
    # rate limits and the AI-result cache are off unless a test turns them
    # on: the other tests make many requests, and count provider calls
    env.update({"JWT_SECRET_KEY": SECRET, "LOG_LEVEL": "info", "HOST": "127.0.0.1",
                "WORKER_CONCURRENCY": "0", "PUBLIC_URL": "http://127.0.0.1",
                "RATE_LIMIT_REQUESTS": "0", "AI_CACHE_TTL_SECONDS": "0"})
    env.update({k: str(v) for k, v in extra.items() if v is not None})
    for k in [k for k, v in extra.items() if v is None]:
        env.pop(k, None)
    return env


def run_cli(args, env, timeout=60, input=None, cwd=None):
    """Runs the binary; returns CompletedProcess (text)."""
    return subprocess.run([BIN] + list(args), env=env, capture_output=True, text=True,
                          timeout=timeout, input=input, cwd=cwd or tempfile.gettempdir())


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def json(self):
        return json.loads(self.body)


class Process:
    """A nexusapi process in its own session, its output captured to a file."""

    def __init__(self, args, env, cwd=None, prefix="nexus-log-"):
        self.env = env
        self.logfile = tempfile.NamedTemporaryFile(prefix=prefix, suffix=".log", delete=False)
        self.proc = subprocess.Popen([BIN] + list(args), env=self.env, stdout=self.logfile,
                                     stderr=subprocess.STDOUT, cwd=cwd or tempfile.gettempdir(),
                                     start_new_session=True)

    def log(self):
        with open(self.logfile.name, errors="replace") as f:
            return f.read()

    def log_lines(self):
        """The JSON log lines (others skipped)."""
        out = []
        for line in self.log().splitlines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return out

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Stops the process; returns its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode

    def close(self):
        rc = self.stop()
        self.last_log = self.log()[-6000:]  # for a report of how it ended
        os.unlink(self.logfile.name)
        return rc

    def finish(self, timeout=120):
        """For a process expected to stop by itself (a refusal at start-up):
        waits (killing it past timeout: status None), removes the log file
        and returns (exit status, output)."""
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop(signal.SIGKILL)
            rc = None
        out = self.log()
        os.unlink(self.logfile.name)
        return rc, out


class Server(Process):
    """`nexusapi serve` on 127.0.0.1:<free port>, log captured to a file."""

    def __init__(self, env, cwd=None, args=("serve",), port=None):
        self.port = port or free_port()
        super().__init__(args, dict(env, PORT=str(self.port), HOST="127.0.0.1"), cwd)
        self.wait_ready()

    def wait_ready(self, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"server did not start:\n{self.log()}")

    def request(self, method, path, body=None, headers=None, timeout=10):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            h = dict(headers or {})
            if isinstance(body, (dict, list)):
                body = json.dumps(body)
                h.setdefault("Content-Type", "application/json")
            try:
                conn.request(method, path, body=body, headers=h)
            except ConnectionRefusedError as e:  # say how the server ended up so
                alive = "running" if self.proc.poll() is None else f"exited {self.proc.returncode}"
                raise ConnectionRefusedError(f"{e}; the server is {alive}; its log ends:\n"
                                             f"{self.log()[-4000:]}") from e
            r = conn.getresponse()
            return Response(r.status, r.getheaders(), r.read())
        finally:
            conn.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)
