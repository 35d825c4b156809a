# NexusAPI - thin wrapper over CMake/CTest and the test suites.
# Every target that builds runs scripts/install-deps.sh first: on a fresh
# machine it installs what is missing, or, without root or sudo, says in
# one line what is missing and to run `make deps` - never CMake's bare
# "A required package was not found".
#
#   make            install what is missing, build build/nexusapi
#   make deps       install what is missing (Debian packages; root or sudo)
#   make run        install what is missing, build, serve on :8000 (embedded database)
#   make test       install what is missing, build with ASan+UBSan, run every test
#                   (the fuzz targets too, 30 s each)
#   make fuzz       the libFuzzer targets of fuzz/, FUZZ_SECONDS (60) each
#   make bench      the benchmark (see docs/benchmarks.md); make bench-quick for a short run
#   make fleet      3 serve + 2 workers behind HAProxy and PgBouncer, under faults (10 min)
#   make deb        the Debian package, build/deb/nexusapi_<version>-1_<arch>.deb
#   make scale      throughput of 1, 2 and 3 serve processes (docs/scaling.md)
#   make bench-baseline REV=<commit>   build that commit into build/baseline/ for
#                   BENCH_BASELINE_BIN=build/baseline/nexusapi make bench

JOBS    ?= $(shell nproc)
# e2e test files run on this many processes (pytest-xdist), one file each:
# most of a test's time is spent waiting on servers and workers
E2E_JOBS ?= $(JOBS)
BUILD   := build
ASAN    := build/asan
FUZZ    := build/fuzz
FUZZ_SECONDS ?= 60
PYTHON  := /usr/bin/python3
NPM_STAMP := web/node_modules/.package-lock.json
OIDC_STAMP := tests/e2e/oidc/node_modules/.package-lock.json
WEBHOOKS_STAMP := tests/e2e/webhooks/node_modules/.package-lock.json
PEER_STAMP := bench/peer/fastify/node_modules/.package-lock.json
GW_STAMP := bench/peer/graphile-worker/node_modules/.package-lock.json
DASH    := web/dashboard
DASH_STAMP := $(DASH)/node_modules/.package-lock.json
DASH_DIST := $(DASH)/dist/index.html
DASH_SRC := $(shell find $(DASH)/src -type f 2>/dev/null) $(DASH)/index.html \
            $(DASH)/vite.config.js $(DASH)/compress.mjs
BROWSER_STAMP := tests/e2e/browser/node_modules/.package-lock.json

.PHONY: all build deps web dashboard chromium run test unit e2e fuzz fuzz-build bench bench-quick bench-baseline fleet deb scale clean format

all: build

deps:
	@bash scripts/install-deps.sh

# deps first: npm itself may be what is missing
$(NPM_STAMP): web/package.json web/package-lock.json | deps
	@cd web && npm ci --no-audit --no-fund --loglevel=error >/dev/null
	@touch $@

web: $(NPM_STAMP)

# The dashboard (web/dashboard): Preact and uPlot compiled by Vite into
# dist/, gzip copies beside; CMake embeds dist/ into the binary.
$(DASH_STAMP): $(DASH)/package.json $(DASH)/package-lock.json | deps
	@cd $(DASH) && npm ci --no-audit --no-fund --loglevel=error >/dev/null
	@touch $@

$(DASH_DIST): $(DASH_STAMP) $(DASH_SRC)
	@cd $(DASH) && npm run --silent build >/dev/null

dashboard: $(DASH_DIST)

# The certified OpenID provider the sign-in tests run (tests/e2e/oidc).
$(OIDC_STAMP): tests/e2e/oidc/package.json tests/e2e/oidc/package-lock.json
	@cd tests/e2e/oidc && npm ci --no-audit --no-fund --loglevel=error >/dev/null
	@touch $@

# Standard Webhooks' verification library the webhook tests check signatures with.
$(WEBHOOKS_STAMP): tests/e2e/webhooks/package.json tests/e2e/webhooks/package-lock.json
	@cd tests/e2e/webhooks && npm ci --no-audit --no-fund --loglevel=error >/dev/null
	@touch $@

# The benchmark's reference peers (bench/peer/): Fastify + pg, graphile-worker.
$(PEER_STAMP): bench/peer/fastify/package.json bench/peer/fastify/package-lock.json | deps
	@cd bench/peer/fastify && npm ci --no-audit --no-fund --loglevel=error >/dev/null
	@touch $@

$(GW_STAMP): bench/peer/graphile-worker/package.json bench/peer/graphile-worker/package-lock.json | deps
	@cd bench/peer/graphile-worker && npm ci --no-audit --no-fund --loglevel=error >/dev/null
	@touch $@

# The browser tests (tests/e2e/browser): playwright-core and axe-core, and
# Debian's chromium (installed when we may; otherwise those tests skip).
$(BROWSER_STAMP): tests/e2e/browser/package.json tests/e2e/browser/package-lock.json
	@cd tests/e2e/browser && npm ci --no-audit --no-fund --loglevel=error >/dev/null
	@touch $@

chromium:
	@NEXUS_DEPS_PACKAGES="chromium fonts-dejavu-core" bash scripts/install-deps.sh || \
	  echo "chromium is not installed: the browser tests will be skipped" >&2

build: deps web dashboard
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS) --target nexusapi

build-asan: deps web dashboard
	@cmake -S . -B $(ASAN) -DCMAKE_BUILD_TYPE=Debug -DNX_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN) -j $(JOBS)

run: deps build
	@./$(BUILD)/nexusapi serve

test: deps build build-asan fuzz-build $(OIDC_STAMP) $(WEBHOOKS_STAMP) $(BROWSER_STAMP) chromium
	@$(MAKE) --no-print-directory unit e2e
	@FUZZ_SECONDS=30 FUZZ_JOBS=2 bash scripts/fuzz.sh

# The libFuzzer targets (fuzz/, clang with ASan and UBSan), each run for
# FUZZ_SECONDS from its seed corpus; scripts/fuzz.sh says where findings go.
fuzz-build: deps
	@CC=clang cmake -S . -B $(FUZZ) -DCMAKE_BUILD_TYPE=Debug -DNX_FUZZ=ON >/dev/null
	@cmake --build $(FUZZ) -j $(JOBS) --target fuzz_all

fuzz: fuzz-build
	@FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_JOBS=2 bash scripts/fuzz.sh

unit:
	@cd $(ASAN) && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j $(JOBS)

e2e: $(OIDC_STAMP) $(WEBHOOKS_STAMP) $(BROWSER_STAMP)
	@NEXUS_BIN=$(CURDIR)/$(ASAN)/nexusapi $(PYTHON) -m pytest -q -n $(E2E_JOBS) --dist loadfile \
	  tests/e2e $(PYTEST_ARGS)

bench: deps build $(PEER_STAMP) $(GW_STAMP)
	@bash bench/run.sh

bench-quick: deps build $(PEER_STAMP) $(GW_STAMP)
	@BENCH_QUICK=1 bash bench/run.sh

# The binary of another commit, for BENCH_BASELINE_BIN (bench/baseline.sh).
bench-baseline: deps
	@JOBS=$(JOBS) bash bench/baseline.sh "$(REV)"

# The long fleet run (tests/fleet/fleet.py; make test runs a short one): its
# table goes into docs/scaling.md. FLEET_ARGS="--seconds 120" for another length.
fleet: deps build
	@NEXUS_BIN=$(CURDIR)/$(BUILD)/nexusapi $(PYTHON) tests/fleet/fleet.py --record docs/scaling.md $(FLEET_ARGS)

# The Debian package (packaging/deb/, scripts/build-deb.sh); make test installs
# and purges it when run as root (tests/e2e/test_deb.py).
deb: deps build
	@bash scripts/build-deb.sh

# 1, 2 and 3 serve processes behind HAProxy, and 3 through PgBouncer (about 6
# minutes, not part of make test): the table goes into docs/scaling.md.
scale: deps build
	@NEXUS_BIN=$(CURDIR)/$(BUILD)/nexusapi $(PYTHON) bench/scale.py

clean:
	rm -rf build
