#!/usr/bin/env bash
# Installs the Debian packages NexusAPI needs to build, run and test.
# Idempotent and silent when everything is already present.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libmicrohttpd-dev libpq-dev libjansson-dev libcjose-dev
  libcurl4-openssl-dev libssl-dev libcmocka-dev
  postgresql postgresql-contrib
  nodejs npm
  python3 python3-pytest python3-jwt python3-cryptography
  wrk procps psmisc curl linux-perf
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
# nodejs from another source may provide npm itself
if printf '%s\n' "${missing[@]}" | grep -qx npm && command -v npm >/dev/null 2>&1; then
  missing=("${missing[@]/npm}")
fi
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sed '/^$/d')
[ "${#missing[@]}" -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
