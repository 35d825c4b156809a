"""The Debian package (issue 18, item 4): `make deb`'s package is installed
into this machine with dpkg -i, its files, user and units are checked
(systemd-analyze verify and the offline security score; systemd need not be
running), `nexusapi --version` runs as the nexusapi user, and dpkg --purge
leaves nothing behind. Installing needs root: the test is skipped, saying
so, for anyone else."""
import grp
import os
import pwd
import re
import stat
import subprocess
import time

import pytest

import harness

RELEASE_BIN = os.path.join(harness.ROOT, "build", "nexusapi")
UNITS = ["/lib/systemd/system/nexusapi.service", "/lib/systemd/system/nexusapi-worker@.service"]
FILES = ["/usr/bin/nexusapi", "/etc/nexusapi/nexusapi.env", *UNITS,
         "/usr/share/man/man8/nexusapi.8.gz", "/usr/share/doc/nexusapi/copyright"]

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0,
                       reason="the package test installs into the machine: run it as root"),
    pytest.mark.skipif(not os.path.exists("/usr/bin/dpkg-deb"), reason="dpkg-deb is missing"),
]


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=kw.pop("timeout", 300),
                          **kw)


def dpkg(*args):
    """dpkg, waiting (bounded) while apt or another dpkg holds its lock."""
    deadline = time.time() + 300
    while True:
        r = run(["dpkg", *args])
        if r.returncode == 0 or "lock" not in r.stderr or time.time() > deadline:
            return r
        time.sleep(2)


def installed():
    r = run(["dpkg-query", "-W", "-f=${Status}", "nexusapi"])
    return r.returncode == 0 and r.stdout.strip() == "install ok installed"


def known(name, db):
    try:
        db(name)
        return True
    except KeyError:
        return False


@pytest.fixture
def deb():
    if not os.access(RELEASE_BIN, os.X_OK):
        pytest.skip("build/nexusapi is missing (make build)")
    # never take over a package or user this test did not make
    r = run(["dpkg-query", "-W", "-f=${Status}", "nexusapi"])
    assert not (r.returncode == 0 and "not-installed" not in r.stdout), \
        "a nexusapi package is already installed here; remove it first"
    assert not known("nexusapi", pwd.getpwnam), "a nexusapi user exists already"
    r = run(["bash", os.path.join(harness.ROOT, "scripts", "build-deb.sh")],
            env=dict(os.environ, NEXUS_BIN=RELEASE_BIN), cwd=harness.ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stderr == "", r.stderr  # dpkg-shlibdeps and dpkg-deb have nothing to say
    path = os.path.join(harness.ROOT, r.stdout.strip())
    var_lib_before = os.path.isdir("/var/lib/nexusapi")
    yield path, var_lib_before
    if installed() or run(["dpkg-query", "-W", "nexusapi"]).returncode == 0:
        dpkg("--purge", "nexusapi")


def mode(path):
    st = os.stat(path)
    return stat.S_IMODE(st.st_mode), pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name


def test_package_installs_runs_and_purges(deb):
    path, var_lib_before = deb
    r = dpkg("-i", path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert installed()

    # files, owners and modes
    for f in FILES:
        assert os.path.isfile(f), f
    assert mode("/usr/bin/nexusapi") == (0o755, "root", "root")
    assert mode("/etc/nexusapi/nexusapi.env") == (0o640, "root", "nexusapi")  # it holds secrets
    assert mode("/var/lib/nexusapi/data")[1:] == ("nexusapi", "nexusapi")
    conffiles = run(["dpkg-query", "-W", "-f=${Conffiles}", "nexusapi"]).stdout
    assert "/etc/nexusapi/nexusapi.env" in conffiles
    env = open("/etc/nexusapi/nexusapi.env").read()
    assert "#DATABASE_URL=" in env and "#DATABASE_POOL_MODE=session" in env
    man = run(["man", "-l", "/usr/share/man/man8/nexusapi.8.gz"], env=dict(os.environ, MANWIDTH="80"))
    assert man.returncode == 0 and "DATABASE_POOL_MODE" in man.stdout, man.stderr

    # the system user
    u = pwd.getpwnam("nexusapi")
    assert u.pw_uid < 1000 and u.pw_shell.endswith("nologin") and u.pw_dir == "/var/lib/nexusapi"
    assert grp.getgrgid(u.pw_gid).gr_name == "nexusapi"

    # the units: sandboxed as the issue asks, valid, and scored
    for unit in UNITS:
        text = open(unit).read()
        for line in ("User=nexusapi", "ProtectSystem=strict", "NoNewPrivileges=yes",
                     "PrivateTmp=yes", "ReadWritePaths=/var/lib/nexusapi/data",
                     "EnvironmentFile=/etc/nexusapi/nexusapi.env"):
            assert line in text.splitlines(), (unit, line)
    r = run(["systemd-analyze", "verify", *UNITS])
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "", r.stdout + r.stderr
    for unit in UNITS:
        r = run(["systemd-analyze", "security", "--offline=yes", unit])
        m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout)
        assert r.returncode == 0 and m and float(m.group(1)) <= 2.0, r.stdout[-500:]

    # the binary, as the service runs it
    as_user = ["setpriv", "--reuid=nexusapi", "--regid=nexusapi", "--init-groups"]
    r = run(as_user + ["/usr/bin/nexusapi", "--version"], cwd="/")
    assert r.returncode == 0 and re.fullmatch(r"nexusapi \d+\.\d+\.\d+\n", r.stdout), r
    assert run(as_user + ["cat", "/etc/nexusapi/nexusapi.env"], cwd="/").returncode == 0
    nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    assert run(nobody + ["cat", "/etc/nexusapi/nexusapi.env"], cwd="/").returncode != 0

    # purge: nothing left
    r = dpkg("--purge", "nexusapi")
    assert r.returncode == 0, r.stdout + r.stderr
    assert run(["dpkg-query", "-W", "nexusapi"]).returncode != 0  # not even known
    for f in FILES + ["/etc/nexusapi", "/var/lib/nexusapi/data", "/usr/share/doc/nexusapi"]:
        assert not os.path.exists(f), f
    assert not known("nexusapi", pwd.getpwnam) and not known("nexusapi", grp.getgrnam)
    if not var_lib_before:
        assert not os.path.exists("/var/lib/nexusapi")
