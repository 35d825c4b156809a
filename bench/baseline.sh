#!/usr/bin/env bash
# bench/baseline.sh REV - `make bench-baseline REV=<commit>`: builds nexusapi as
# it was at commit REV into build/baseline/, for
#
#   BENCH_BASELINE_BIN=build/baseline/nexusapi make bench
#
# build/baseline/ then holds the binary, that commit's src/ (the benchmark
# queues the baseline's Q1 jobs with its own SQL) and REV (what was built).
# The source comes from `git archive` into a temp dir, so no worktree is
# registered and this tree is left as it is; the temp dir goes on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

rev=${1:-}
[ -n "$rev" ] || { echo "usage: make bench-baseline REV=<commit>" >&2; exit 2; }
sha=$(git rev-parse --verify --quiet "$rev^{commit}") ||
    { echo "bench-baseline: unknown commit '$rev'" >&2; exit 2; }

tmp=$(mktemp -d /tmp/nexus-baseline.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
git archive "$sha" | tar -x -C "$tmp"
# the docs UI assets `make build` embeds: ours when the lock file is the same
if [ -f "$tmp/web/package-lock.json" ]; then
    if cmp -s web/package-lock.json "$tmp/web/package-lock.json" && [ -d web/node_modules ]; then
        ln -s "$PWD/web/node_modules" "$tmp/web/node_modules"
    else
        (cd "$tmp/web" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    fi
fi
cmake -S "$tmp" -B "$tmp/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
nice -n 5 cmake --build "$tmp/build" -j "${JOBS:-$(nproc)}" --target nexusapi

out=build/baseline
rm -rf "$out"
mkdir -p "$out"
cp "$tmp/build/nexusapi" "$out/nexusapi"
cp -r "$tmp/src" "$out/src"
git log -1 --format='%h %s' "$sha" >"$out/REV"
echo "bench-baseline: $out/nexusapi built from $(cat "$out/REV")"
echo "  BENCH_BASELINE_BIN=$PWD/$out/nexusapi make bench"
