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
# npm packages of a folder of that commit: ours when the lock file is the same
npm_of() {
    [ -f "$tmp/$1/package-lock.json" ] || return 1
    if cmp -s "$1/package-lock.json" "$tmp/$1/package-lock.json" && [ -d "$1/node_modules" ]; then
        ln -s "$PWD/$1/node_modules" "$tmp/$1/node_modules"
    else
        (cd "$tmp/$1" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    fi
}
# the docs UI assets and the dashboard `make build` embeds, where that commit has them
npm_of web || true
if npm_of web/dashboard; then
    (cd "$tmp/web/dashboard" && npm run --silent build >/dev/null)
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
