"""The reference peers of the benchmark (issue 19), measured in the same run
as NexusAPI: a Fastify + pg server of S1-S3 (bench/peer/fastify) and
graphile-worker beside Q1 (bench/peer/graphile-worker). Both are npm
projects installed by `npm ci` (the Makefile's bench targets) and run under
the machine's Node.

The peer runs NexusAPI's own SQL: the statements it needs are read from
src/ at run time (stmts.py, as the pgbench bound reads them) and handed to
it in one JSON file, and before it is measured its answers must be
NexusAPI's answers (same_answer), so neither the SQL nor the JSON can drift
apart unnoticed.
"""
import json
import os
import re
import shutil
import subprocess

import stmts
from procs import Service, Unavailable, free_port, run

HERE = os.path.dirname(os.path.abspath(__file__))
PEER_DIR = os.path.join(os.path.dirname(HERE), "peer")
FASTIFY_DIR = os.path.join(PEER_DIR, "fastify")
GW_DIR = os.path.join(PEER_DIR, "graphile-worker")
# NexusAPI's statements the peer runs, by their name in src/
PEER_STATEMENTS = {"nx_tenant_begin": 3, "api_users_list": 4, "jobs_create": 12}
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def node():
    path = shutil.which("node")
    if not path:
        raise Unavailable("node is not installed (make deps)")
    return path


def installed(d):
    """An npm project of bench/peer/ after `npm ci` (the Makefile's stamp)."""
    if not os.path.exists(os.path.join(d, "node_modules", ".package-lock.json")):
        raise Unavailable(f"{os.path.relpath(d, os.path.dirname(PEER_DIR))}: npm packages not "
                          "installed (make bench installs them with npm ci)")


def c_define(path, name, default):
    """A #define's integer value in a header of src/."""
    try:
        with open(path) as f:
            m = re.search(rf"#define\s+{name}\s+(\d+)", f.read())
        return int(m.group(1)) if m else default
    except OSError:
        return default


def write_sql(src, out, extra):
    """The peer's configuration: NexusAPI's statements from src/ and the
    constants their parameters take. Unavailable when one is gone."""
    found = stmts.extract(src)
    sql = {}
    for name, nparams in PEER_STATEMENTS.items():
        st = found.get(name)
        if not st:
            raise Unavailable(f"statement {name!r} not found in src/ (the peer runs it)")
        if st["nparams"] != nparams:
            raise Unavailable(f"{name} takes {st['nparams']} parameters; bench/peer/fastify "
                              f"passes {nparams}: update the peer")
        sql[name] = st["sql"]
    conf = dict(extra, statements=sql,
                page_default=c_define(os.path.join(src, "api", "api.h"), "NX_PAGE_DEFAULT", 20),
                page_max=c_define(os.path.join(src, "api", "api.h"), "NX_PAGE_MAX", 100),
                text_max=c_define(os.path.join(src, "jobs", "jobs.h"), "NX_JOB_TEXT_MAX", 100000))
    with open(out, "w") as f:
        json.dump(conf, f, indent=1)
    return out


class Fastify(Service):
    """bench/peer/fastify/server.js: node:cluster, one worker per core; its
    CPU is the primary's and its workers'."""

    def __init__(self, tmp, dsn, secret, sql_path, pool_size):
        installed(FASTIFY_DIR)
        port = free_port()
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "NODE_ENV": "production",
               "PORT": str(port), "DATABASE_URL": dsn, "JWT_SECRET_KEY": secret,
               "PEER_SQL": sql_path, "PEER_POOL_SIZE": str(pool_size)}
        if os.environ.get("PEER_WORKERS"):
            env["PEER_WORKERS"] = os.environ["PEER_WORKERS"]
        super().__init__(tmp, [node(), os.path.join(FASTIFY_DIR, "server.js")], env, "fastify",
                         port, tree=True)


def _json(body):
    try:
        return json.loads(body)
    except ValueError:
        return None


def first_difference(a, b):
    """Where two bodies part, with a little context."""
    i = next((k for k in range(min(len(a), len(b))) if a[k] != b[k]), min(len(a), len(b)))
    return f"at byte {i}: {b[max(0, i - 40):i + 80]!r}, NexusAPI {a[max(0, i - 40):i + 80]!r}"


def same_answer(req, ours, theirs):
    """None when the peer's answer to a probe is NexusAPI's answer to the same
    request, else what differs. Answers: (status, headers, body). A job's id
    is new on every submission: it must be a UUID and the Location name it."""
    (st1, _, b1), (st2, h2, b2) = ours, theirs
    if st1 != st2:
        return f"status {st2}, NexusAPI {st1}: {b2[:200]!r}"
    j1, j2 = _json(b1), _json(b2)
    if j2 is None:
        return f"not JSON: {b2[:200]!r}"
    if req != "S3":
        return None if j1 == j2 else "body " + first_difference(b1, b2)
    loc = {k.lower(): v for k, v in h2.items()}.get("location", "")
    if not isinstance(j2, dict) or not UUID.match(str(j2.get("job_id", ""))):
        return f"no job_id: {b2[:200]!r}"
    if loc != f"/api/v1/jobs/{j2['job_id']}":
        return f"Location {loc!r} does not name job {j2['job_id']}"
    a = {k: v for k, v in j1.items() if k != "job_id"}
    b = {k: v for k, v in j2.items() if k != "job_id"}
    if a == b:
        return None
    return "body (job_id aside) " + first_difference(json.dumps(a, sort_keys=True).encode(),
                                                     json.dumps(b, sort_keys=True).encode())


# ---------------------------------------------------------------- graphile-worker

def _gw(tmp, args, dsn, body_path, timeout, concurrency):
    installed(GW_DIR)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "NODE_ENV": "production",
           "DATABASE_URL": dsn, "BENCH_BODY": body_path,
           "BENCH_Q1_CONCURRENCY": str(concurrency)}
    r = run([node(), os.path.join(GW_DIR, "q1.mjs")] + [str(a) for a in args], env=env,
            timeout=timeout, check=False, cwd=tmp)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    if r.returncode != 0 or not lines:
        raise RuntimeError(f"graphile-worker {args[0]} failed ({r.returncode}): "
                           f"{(r.stderr or r.stdout).strip()[-600:]}")
    return json.loads(lines[-1])


def package_version(d, name):
    """The installed version of an npm package of bench/peer/<d>."""
    try:
        with open(os.path.join(PEER_DIR, d, "node_modules", name, "package.json")) as f:
            return json.load(f)["version"]
    except (OSError, ValueError, KeyError):
        return "?"


def npm_versions():
    return {"fastify": package_version("fastify", "fastify"), "pg": package_version("fastify", "pg"),
            "fast-jwt": package_version("fastify", "fast-jwt"),
            "graphile-worker": package_version("graphile-worker", "graphile-worker")}


def gw_version():
    return package_version("graphile-worker", "graphile-worker")


def gw_queue(tmp, dsn, body_path, n):
    """Installs graphile-worker's schema and queues n no-op jobs (not measured)."""
    return _gw(tmp, ["queue", n], dsn, body_path, 300, 1)


def gw_drain_cmd(dsn, body_path, n, seconds, concurrency):
    """The drain, to be started by the caller (it measures around it)."""
    installed(GW_DIR)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "NODE_ENV": "production",
           "DATABASE_URL": dsn, "BENCH_BODY": body_path,
           "BENCH_Q1_CONCURRENCY": str(concurrency)}
    return [node(), os.path.join(GW_DIR, "q1.mjs"), "drain", str(n), str(seconds)], env


def gw_drain_result(proc, timeout):
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    lines = [ln for ln in (out or "").splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"graphile-worker drain failed ({proc.returncode}): "
                           f"{(err or out or '').strip()[-600:]}")
    return json.loads(lines[-1])
