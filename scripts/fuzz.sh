#!/usr/bin/env bash
# Runs every libFuzzer target of fuzz/ for FUZZ_SECONDS (default 60) each,
# FUZZ_JOBS (default 2) at a time, under ASan and UBSan, from its seed
# corpus in fuzz/corpus/<target>/. New inputs go to build/fuzz/corpus/
# (the repository's corpus only grows by hand, with the inputs that found
# something); a crash, leak, timeout or sanitizer report leaves its input in
# build/fuzz/findings/ and makes the run fail. FUZZ_TARGETS names a subset.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-60}
jobs=${FUZZ_JOBS:-2}
bin=build/fuzz/fuzz
out=build/fuzz
targets=${FUZZ_TARGETS:-$(cd fuzz && ls fuzz_*.c | sed 's/^fuzz_//; s/\.c$//')}
mkdir -p "$out/findings" "$out/logs"

run_one() {
  local t=$1
  mkdir -p "$out/corpus/$t"
  local seeds=("fuzz/corpus/$t")
  # the migration parser also starts from every real migration, read in place
  [ "$t" = migration ] && seeds+=(migrations)
  if "$bin/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
       -print_final_stats=1 -artifact_prefix="$out/findings/$t-" \
       "$out/corpus/$t" "${seeds[@]}" >"$out/logs/$t.log" 2>&1; then
    echo "fuzz: $t: $(grep -Eo 'Done [0-9]+ runs in [0-9]+ second' "$out/logs/$t.log" | tail -1), no finding"
  else
    echo "fuzz: $t: FAILED, see $out/logs/$t.log and $out/findings/"
    grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error)' "$out/logs/$t.log" | head -5 || true
    return 1
  fi
}
export -f run_one
export seconds bin out
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1} \
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
  printf '%s\n' $targets | xargs -P "$jobs" -I{} bash -c 'run_one {}'
