#!/usr/bin/env bash
# bench/run.sh - NexusAPI benchmark (issues 6 and 19). `make bench` / `make bench-quick`.
#
# Starts a private PostgreSQL cluster, `nexusapi serve` on 127.0.0.1 and the
# reference peers (Fastify + pg, graphile-worker: bench/peer/, installed by
# the Makefile with npm ci), runs S1-S3 (wrk, at 64 and 16 connections)
# interleaved with the peer and, given BENCH_BASELINE_BIN, an older binary,
# their pgbench bounds, Q1 (queue drain) beside graphile-worker, W1
# (webhooks) and M1 (memory), prints a summary and writes docs/benchmarks.md (quick runs:
# build/bench/benchmarks-quick.md). Everything it starts stops on exit.
#
# Environment: BENCH_QUICK=1 (a few seconds per scenario, 1 round, 2,000 Q1
# jobs), BENCH_DURATION, BENCH_RUNS, BENCH_Q1_JOBS, BENCH_W1_EVENTS, BENCH_W1_RATE
# (jobs submitted per second in W1), BENCH_NOTE (history label),
# BENCH_BASELINE_BIN (make bench-baseline REV=<commit> builds one),
# BENCH_KEEP=1 (keep the temp dir), BENCH_ONLY=S2,M1 (a subset; quick runs only
# write build/bench), BENCH_PROFILE=S1 (perf record an extra run),
# BENCH_CONNECTIONS=32 (wrk connections instead of 64; build/bench only),
# BENCH_PEER_POOL, NEXUS_BIN; server settings such as HTTP_THREADS pass
# through to `nexusapi serve`.
set -euo pipefail

cd "$(dirname "$0")/.."
PY=/usr/bin/python3
export PYTHONDONTWRITEBYTECODE=1

for tool in wrk pgbench psql node "$PY"; do
    command -v "$tool" >/dev/null 2>&1 || { echo "bench: $tool is missing (make deps)" >&2; exit 2; }
done
[ -x "${NEXUS_BIN:-build/nexusapi}" ] || { echo "bench: build/nexusapi is missing (make build)" >&2; exit 2; }

# 1,000 idle connections (M1) need file descriptors in the server and the client
hard=$(ulimit -Hn)
if [ "$hard" = unlimited ] || [ "$hard" -ge 8192 ]; then ulimit -n 8192; else ulimit -n "$hard"; fi

if pgrep -f pytest >/dev/null 2>&1; then
    echo "bench: note: pytest is running on this machine; figures will be noisier" >&2
fi

child=""
cleanup() {
    # bench.py cleans up its own processes and cluster; this covers a hard stop
    if [ -n "$child" ] && kill -0 "$child" 2>/dev/null; then
        kill -TERM "$child" 2>/dev/null || true
        wait "$child" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

"$PY" bench/lib/bench.py &
child=$!
wait "$child"
