#!/usr/bin/env bash
# The quick start's second command: installs what is needed, builds Xylem
# twice (plain, and with the address and undefined-behaviour sanitizers),
# and runs every test in both: the C unit tests (meson test), the system
# tests (pytest, real managers and workers), the Python package's tests,
# the namespace cluster tests (root only: real network namespaces with
# links capped by tc), the Slurm tests (root only: a real Slurm on
# loopback, workers in its jobs), the Grid Engine tests (root only: a
# real Grid Engine cell on this host), the CWL conformance suite
# (scripts/cwl-conformance.sh),
# and short fuzz runs (libFuzzer, clang) of every reader of untrusted
# input: the message decoder, the journal's readers, the workflow file,
# the CWL runner's readers, the dashboard's HTTP parser, the data plane's,
# and the certificates, keys and TLS flights read with the MACs of
# --no-tls (XYLEM_FUZZ_SECONDS each,
# 20 by default). Python packages come from the checkout's virtual
# environment, which scripts/deps.sh makes (pinned: scripts/constraints.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh test
. scripts/venv.sh
fuzz_seconds=${XYLEM_FUZZ_SECONDS:-20}
# The browser tests fail when Chromium or Selenium is missing (deps.sh
# installed them): a skip is for a developer's machine, never here.
unset XYLEM_ALLOW_NO_BROWSER

echo "== build" >&2
bash scripts/build.sh build
echo "== unit tests" >&2
meson test -C build --print-errorlogs --suite unit
echo "== system tests" >&2
XYLEM_BIN=$PWD/build/src/cli/xylem python3 -m pytest -q tests/system
echo "== python tests" >&2
XYLEM_BUILD_DIR=$PWD/build PYTHONPATH=$PWD/python python3 -m pytest -q tests/python
echo "== Parsl's own test suite, with XylemExecutor" >&2
XYLEM_BUILD_DIR=$PWD/build bash scripts/parsl-suite.sh
echo "== namespace cluster tests" >&2
XYLEM_BIN=$PWD/build/src/cli/xylem python3 -m pytest -q tests/netns
echo "== Slurm tests" >&2
XYLEM_BIN=$PWD/build/src/cli/xylem python3 -m pytest -q tests/slurm
echo "== Grid Engine tests" >&2
XYLEM_BIN=$PWD/build/src/cli/xylem python3 -m pytest -q tests/gridengine
echo "== CWL v1.2 conformance (cwltest, when the suite is there)" >&2
XYLEM_BIN=$PWD/build/src/cli/xylem bash scripts/cwl-conformance.sh

echo "== sanitizers: address, undefined" >&2
bash scripts/build.sh build-asan -Db_sanitize=address,undefined -Db_lundef=false \
	-Dbuildtype=debug
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
meson test -C build-asan --print-errorlogs --suite unit
XYLEM_BIN=$PWD/build-asan/src/cli/xylem XYLEM_SANITIZED=1 \
	python3 -m pytest -q tests/system
XYLEM_BIN=$PWD/build-asan/src/cli/xylem XYLEM_SANITIZED=1 \
	python3 -m pytest -q tests/slurm
XYLEM_BIN=$PWD/build-asan/src/cli/xylem XYLEM_SANITIZED=1 \
	python3 -m pytest -q tests/gridengine
# Workers from the sanitized build; the extension from the plain one (a
# sanitized extension needs the runtime preloaded into python itself).
XYLEM_BUILD_DIR=$PWD/build XYLEM_BIN=$PWD/build-asan/src/cli/xylem \
	XYLEM_SANITIZED=1 PYTHONPATH=$PWD/python python3 -m pytest -q tests/python
XYLEM_BIN=$PWD/build-asan/src/cli/xylem CWL_SUITE_RUNS=required \
	bash scripts/cwl-conformance.sh

echo "== fuzz build (clang, address and undefined sanitizers)" >&2
fuzz_targets="decode journal workflow cwl xfer http tls"
if [ ! -f build-fuzz/build.ninja ]; then
	CC=clang meson setup build-fuzz -Dfuzz=true \
		-Db_sanitize=address,undefined -Db_lundef=false >/dev/null
fi
# The targets alone (and the libraries they link), not the whole tree.
ninja -C build-fuzz $(printf 'tests/fuzz/fuzz_%s ' $fuzz_targets) >/dev/null
# Each reader of untrusted input for fuzz_seconds, from the seeds kept in
# the tree (tests/fuzz/corpus/<target>/; new inputs go to the build's own
# corpus, never into the tree): the message decoder, the journal's
# readers, the workflow file, the CWL runner's readers, and what the data
# plane reads from a peer, and the dashboard's HTTP requests. Five
# targets at 20 s kept the stage, build included, near two minutes
# (1 min 46 s with the build up to date, on the 2-core development
# machine under load); the sixth adds 20 s.
for target in $fuzz_targets; do
	echo "== fuzz $target for ${fuzz_seconds}s" >&2
	mkdir -p "build-fuzz/corpus-$target"
	./build-fuzz/tests/fuzz/fuzz_$target -max_total_time="$fuzz_seconds" \
		-print_final_stats=1 "build-fuzz/corpus-$target" \
		"tests/fuzz/corpus/$target" 2>"build-fuzz/fuzz-$target.log" || {
		tail -n 40 "build-fuzz/fuzz-$target.log" >&2
		exit 1
	}
	echo "fuzz $target: no crash; $(grep -E '^#[0-9]+.*DONE' \
		"build-fuzz/fuzz-$target.log" | tail -n 1)" >&2
done
