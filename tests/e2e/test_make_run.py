"""`make run` from a clean checkout, as a new user would run it: the server
answers on port 8000, and Ctrl-C (SIGINT to the foreground process group)
stops server and database, leaving no postgres process behind."""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

import harness


def port_free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def postgres_pids_under(path):
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            cwd = os.readlink(f"/proc/{p}/cwd")
            with open(f"/proc/{p}/comm") as f:
                comm = f.read().strip()
        except OSError:
            continue
        if comm.startswith("postgres") and cwd.startswith(path):
            out.append(int(p))
    return out


@pytest.mark.skipif(not port_free(8000), reason="port 8000 is in use on this machine")
def test_make_run_from_a_clean_checkout():
    top = tempfile.mkdtemp(prefix="nexus-clone-", dir="/tmp")
    os.chmod(top, 0o755)
    clone = os.path.join(top, "nexusapi")
    subprocess.run(["git", "clone", "-q", harness.ROOT, clone], check=True)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("NEXUS_", "DATABASE_URL", "JWT_", "PORT", "HOST", "MAKE"))}
    env["HOST"] = "127.0.0.1"  # tests listen on loopback only
    log = open(os.path.join(top, "make-run.log"), "w+")
    proc = subprocess.Popen(["make", "run"], cwd=clone, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 600
        body = None
        while time.time() < deadline and proc.poll() is None:
            try:
                c = http.client.HTTPConnection("127.0.0.1", 8000, timeout=2)
                c.request("GET", "/health")
                r = c.getresponse()
                body = r.read()
                c.close()
                if r.status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        log.seek(0)
        output = log.read()
        assert body is not None, f"no answer on :8000\n{output[-3000:]}"
        assert json.loads(body)["database"] == "ok"
        assert "listening on http://127.0.0.1:8000" in output
        data = os.path.realpath(os.path.join(clone, ".nexus"))
        assert postgres_pids_under(data) or postgres_pids_under("/var/lib/nexusapi")

        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        proc.wait(timeout=60)
        time.sleep(0.5)
        assert postgres_pids_under(data) == []
        log.seek(0)
        assert "stopped" in log.read()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        shutil.rmtree(top, ignore_errors=True)
