"""PgBouncer (Debian's pgbouncer) in front of the harness's PostgreSQL.

PgBouncer listens on 127.0.0.1:<free port>, passes every database name
through to the cluster, and lets in the users it is given (auth_type trust,
an auth_file of names: the cluster trusts loopback too). As root it runs as
the cluster's unprivileged account, as PostgreSQL does. Its log is kept in
its directory; stop() and close() end it, close() also removes the files.
"""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import harness

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


def available():
    return os.path.exists(PGBOUNCER)


class PgBouncer:
    def __init__(self, pg, users, pool_mode="transaction", pool_size=2, port=None,
                 max_client_conn=400):
        self.pg = pg
        self.users = list(users)
        self.port = port or harness.free_port()
        self.dir = tempfile.mkdtemp(prefix="nexus-pgbouncer-")
        self.ini = os.path.join(self.dir, "pgbouncer.ini")
        self.logfile = os.path.join(self.dir, "pgbouncer.log")
        with open(os.path.join(self.dir, "users.txt"), "w") as f:
            f.writelines(f'"{u}" ""\n' for u in self.users)
        with open(self.ini, "w") as f:
            f.write(f"""[databases]
* = host=127.0.0.1 port={pg.port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = trust
auth_file = {self.dir}/users.txt
pool_mode = {pool_mode}
default_pool_size = {pool_size}
max_client_conn = {max_client_conn}
server_login_retry = 1
logfile = {self.logfile}
pidfile = {self.dir}/pgbouncer.pid
""")
        self.pw = harness._pg_user()
        if self.pw:
            os.chmod(self.dir, 0o755)
            for name in os.listdir(self.dir):
                os.chown(os.path.join(self.dir, name), self.pw.pw_uid, self.pw.pw_gid)
            os.chown(self.dir, self.pw.pw_uid, self.pw.pw_gid)
        self.proc = None
        self.start()

    def start(self, timeout=20):
        self.proc = subprocess.Popen([PGBOUNCER, self.ini], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, cwd=self.dir,
                                     preexec_fn=harness._demote(self.pw) if self.pw else None)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pgbouncer exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"pgbouncer did not start:\n{self.log()}")

    def stop(self, sig=signal.SIGTERM, timeout=20):
        """SIGTERM: immediate shutdown (every client connection is cut)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, user, dbname):
        return f"postgresql://{user}@127.0.0.1:{self.port}/{dbname}"

    def log(self):
        try:
            with open(self.logfile, errors="replace") as f:
                return f.read()
        except OSError:
            return ""
