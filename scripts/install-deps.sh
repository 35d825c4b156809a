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
  prometheus clang libclang-rt-14-dev
  pgbouncer haproxy
)
# The fleet tests run PgBouncer and HAProxy on ports of their own; the
# Debian services of those packages must not start (now or at boot).
services=(pgbouncer haproxy)
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
# policy-rc.d exit 101 keeps the services' postinst from starting them; one
# already in place (containers have one) is left alone
policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
  $sudo chmod 755 /usr/sbin/policy-rc.d
  policy=yes
fi
trap '[ -z "$policy" ] || $sudo rm -f /usr/sbin/policy-rc.d' EXIT
$sudo apt-get update -qq >/dev/null
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
for s in "${services[@]}"; do
  printf '%s\n' "${missing[@]}" | grep -qx "$s" || continue
  # not at boot either (systemd or sysvinit), and stopped if it ran anyway
  $sudo deb-systemd-helper disable "$s.service" >/dev/null 2>&1 || true
  $sudo update-rc.d "$s" disable >/dev/null 2>&1 || true
  if [ -d /run/systemd/system ]; then
    $sudo systemctl stop "$s.service" >/dev/null 2>&1 || true
  fi
done
