#!/usr/bin/env bash
# Installs the Debian packages NexusAPI needs to build, run and test.
# Idempotent and silent when everything is already present; every make
# target that builds runs it first. Root installs, and so does a user with
# sudo (asked for a password only at a terminal); anyone else gets one line
# naming what is missing and exit status 1, before anything is built.
# NEXUS_DEPS_PACKAGES (space-separated) replaces the list: for the tests.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libmicrohttpd-dev libpq-dev libjansson-dev libcjose-dev
  libcurl4-openssl-dev libssl-dev libcmocka-dev libxxhash-dev
  postgresql postgresql-contrib
  nodejs npm
  python3 python3-pytest python3-pytest-xdist python3-jwt python3-cryptography
  wrk procps psmisc curl linux-perf
)
if [ -n "${NEXUS_DEPS_PACKAGES:-}" ]; then
  read -r -a packages <<<"$NEXUS_DEPS_PACKAGES"
fi

# one dpkg-query for the whole list; unknown names are simply not installed
installed=$(dpkg-query -W -f='${Package} ${Status}\n' "${packages[@]}" 2>/dev/null |
  awk '$NF == "installed" && $(NF-1) == "ok" { print $1 }' || true)
missing=()
for p in "${packages[@]}"; do
  grep -qxF "$p" <<<"$installed" || missing+=("$p")
done
# nodejs from another source may provide npm itself
if printf '%s\n' "${missing[@]}" | grep -qx npm && command -v npm >/dev/null 2>&1; then
  missing=("${missing[@]/npm}")
fi
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sed '/^$/d')
[ "${#missing[@]}" -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && { sudo -n true 2>/dev/null || [ -t 0 ]; }; then
    sudo="sudo"
  else
    echo "install-deps: missing Debian packages: ${missing[*]}; run \"sudo make deps\" (or \"make deps\" as root)" >&2
    exit 1
  fi
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
