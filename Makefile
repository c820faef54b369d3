# facepay: a thin wrapper around scripts/setup.sh, CMake and ctest. `make help` lists the targets.
#
#   make run         set up, build, run the main job (build/facepay models verify for now)
#   make test        set up, build, run every test (the README's test command)
#   make setup       scripts/setup.sh: Debian packages + models and fixtures into $FACEPAY_CACHE
#   make build       configure build/ (CMakeLists default build type, -DFP_WERROR=ON) and build
#   make test-asan   ASan + UBSan debug build in build-asan/, run the tests there (leak checks on)
#   make fuzz        libFuzzer targets in build-fuzz/, each run FUZZ_SECONDS (default 30)
#   make bench       build, then build/facepay bench
#   make clean       remove the build directories (not the model cache)
#
# Variables: JOBS (parallel build/test jobs, default 2), FUZZ_SECONDS (default 30), FUZZ_TIMEOUT (seconds per
# fuzz input before it counts as a hang, default 10), SETUP_FLAGS (e.g. --no-deps), CMAKE_FLAGS (extra -D...).

SHELL := /bin/bash
.DEFAULT_GOAL := help
# Prerequisites run left to right: setup must finish before CMake looks for the packages it installs.
.NOTPARALLEL:

JOBS         ?= 2
FUZZ_SECONDS ?= 30
FUZZ_TIMEOUT ?= 10
SETUP_FLAGS  ?=
CMAKE_FLAGS  ?=

.PHONY: help setup build test test-asan fuzz run bench clean

help:
	@sed -n '3,14s/^# \{0,1\}//p' $(firstword $(MAKEFILE_LIST))

setup:
	scripts/setup.sh $(SETUP_FLAGS)

build:
	cmake -S . -B build -DFP_WERROR=ON $(CMAKE_FLAGS)
	cmake --build build -j$(JOBS)

test: setup build
	ctest --test-dir build --output-on-failure -j$(JOBS)

test-asan: setup
	cmake -S . -B build-asan -DFP_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug -DFP_WERROR=ON $(CMAKE_FLAGS)
	cmake --build build-asan -j$(JOBS)
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --test-dir build-asan --output-on-failure -j$(JOBS)

# Seeds: fuzz/corpus/<target>/ (or fuzz/corpus/<target without fuzz_>/) is copied to a scratch directory, so
# libFuzzer never writes into the repository. Crash/timeout inputs go to build-fuzz/artifacts/<target>/.
fuzz:
	CC=clang cmake -S . -B build-fuzz -DFP_FUZZ=ON -DFP_TESTS=OFF $(CMAKE_FLAGS)
	cmake --build build-fuzz -j$(JOBS)
	@set -u; shopt -s nullglob; \
	scratch=$$(mktemp -d "$${TMPDIR:-/tmp}/facepay-fuzz.XXXXXX"); trap 'rm -rf "$$scratch"' EXIT; \
	n=0; failed=""; \
	for bin in build-fuzz/fuzz_*; do \
	  [ -f "$$bin" ] && [ -x "$$bin" ] || continue; \
	  t=$${bin##*/}; n=$$((n + 1)); \
	  mkdir -p "$$scratch/$$t" "build-fuzz/artifacts/$$t"; \
	  for seed in "fuzz/corpus/$$t" "fuzz/corpus/$${t#fuzz_}"; do \
	    if [ -d "$$seed" ]; then cp -R "$$seed/." "$$scratch/$$t/"; fi; \
	  done; \
	  echo "fuzz: $$t for $(FUZZ_SECONDS) s ($$(ls -A "$$scratch/$$t" | wc -l) seed inputs)"; \
	  if ! "$$bin" -max_total_time=$(FUZZ_SECONDS) -timeout=$(FUZZ_TIMEOUT) -rss_limit_mb=2048 \
	       -print_final_stats=1 -artifact_prefix="build-fuzz/artifacts/$$t/" "$$scratch/$$t" \
	       > "build-fuzz/artifacts/$$t/log.txt" 2>&1; then \
	    tail -n 60 "build-fuzz/artifacts/$$t/log.txt"; failed="$$failed $$t"; \
	  else \
	    grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' "build-fuzz/artifacts/$$t/log.txt" | tr '\n' ' '; echo; \
	  fi; \
	done; \
	if [ "$$n" -eq 0 ]; then echo "fuzz: no build-fuzz/fuzz_* targets (add fuzz/fuzz_*.c)" >&2; exit 1; fi; \
	if [ -n "$$failed" ]; then echo "fuzz: FAILED:$$failed (inputs and logs in build-fuzz/artifacts/)" >&2; exit 1; fi; \
	echo "fuzz: $$n target(s) ok"

PORT ?= 8080
# The main job: set-up, build, the scripted enroll -> pay -> refund -> impostor story (facepay demo, a
# temporary DB), then the payment server on the embedded SQLite DB var/facepay.db with a demo merchant
# and terminal (a fresh API key is printed) and the kiosk page at http://localhost:$(PORT)/.
run: setup build
	mkdir -p var
	test -f var/facepay.key || build/facepay key generate var/facepay.key
	build/facepay demo
	build/facepay serve --db var/facepay.db --key var/facepay.key --port $(PORT) --bootstrap demo:till1

bench: build
	build/facepay bench

clean:
	rm -rf build build-asan build-fuzz
