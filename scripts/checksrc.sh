#!/usr/bin/env bash
# checksrc: the project's lint (after curl's checksrc).
#  - banned calls: exit/abort outside cli/main.c and core/; printf-family
#    output, atoi, sprintf, strcpy, and raw malloc/free outside core/
#  - third-party headers stay in their module (libpq in db/, microhttpd in
#    http/, cjose/openssl in auth/, libcurl in httpc/)
#  - every header compiles on its own
set -uo pipefail
cd "$(dirname "$0")/.."
fail=0
say() { echo "checksrc: $*"; fail=1; }

strip() { # source without comments and string literals, line numbers kept
  sed -E 's://.*$::; s:"([^"\\]|\\.)*":"":g' "$1" | awk '
    { line = $0; out = "";
      while (length(line) > 0) {
        if (inc) { i = index(line, "*/"); if (i == 0) { line = ""; } else { line = substr(line, i + 2); inc = 0 } }
        else { i = index(line, "/*"); if (i == 0) { out = out line; line = "" } else { out = out substr(line, 1, i - 1); line = substr(line, i + 2); inc = 1 } }
      }
      print out }'
}

for f in $(find src -name '*.c' -o -name '*.h' | sort); do
  body=$(strip "$f")
  case "$f" in
    src/core/*) ;;
    *)
      echo "$body" | grep -nE '(^|[^_a-z])(malloc|calloc|realloc|free|strdup)\(' | grep -vE 'nx_|PQ|json_|cjose_|curl_|MHD_' |
        while IFS= read -r l; do echo "checksrc: $f:${l%%:*}: raw allocation; use nx_malloc/nx_free or the arena"; done | grep . && fail=1
      ;;
  esac
  case "$f" in
    src/cli/main.c|src/core/*) ;;
    *) echo "$body" | grep -nE '(^|[^_a-z])(exit|abort|_exit)\(' |
         while IFS= read -r l; do echo "checksrc: $f:${l%%:*}: exit/abort outside cli/main.c"; done | grep . && fail=1 ;;
  esac
  echo "$body" | grep -nE '(^|[^_a-z.>])(atoi|atol|sprintf|vsprintf|strcpy|strcat|gets)\(' |
    while IFS= read -r l; do echo "checksrc: $f:${l%%:*}: banned function"; done | grep . && fail=1
  case "$f" in
    src/cli/*|src/core/*|src/bench/*) ;;
    *) echo "$body" | grep -nE '(^|[^_a-z.>])printf\(' |
         while IFS= read -r l; do echo "checksrc: $f:${l%%:*}: printf outside the CLI; use nx_log"; done | grep . && fail=1 ;;
  esac
  inc() { grep -nE "^#include <$1" "$f" | head -1; }
  case "$f" in src/db/*) ;; *) [ -n "$(inc 'libpq')" ] && say "$f: libpq outside src/db/";; esac
  case "$f" in src/http/*) ;; *) [ -n "$(inc 'microhttpd')" ] && say "$f: libmicrohttpd outside src/http/";; esac
  case "$f" in src/auth/*) ;; *) [ -n "$(inc 'cjose')" ] && say "$f: cjose outside src/auth/";; esac
  case "$f" in src/auth/*) ;; *) [ -n "$(inc 'openssl')" ] && say "$f: OpenSSL outside src/auth/";; esac
  case "$f" in src/httpc/*) ;; *) [ -n "$(inc 'curl')" ] && say "$f: libcurl outside src/httpc/";; esac
done

# Every header is self-contained.
cc=${CC:-cc}
flags=$(pkg-config --cflags libmicrohttpd libpq jansson cjose libcurl 2>/dev/null)
for h in $(find src -name '*.h' | sort); do
  if ! echo "#include \"${h#src/}\"" | $cc -std=c17 -fsyntax-only -Wall -Werror -Isrc $flags -x c - 2>/tmp/checksrc.$$; then
    say "$h does not compile on its own: $(head -1 /tmp/checksrc.$$)"
  fi
done
rm -f /tmp/checksrc.$$
[ "$fail" -eq 0 ] && echo "checksrc: clean"
exit "$fail"
