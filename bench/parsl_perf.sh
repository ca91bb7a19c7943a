#!/bin/sh
# parsl_perf.sh: Parsl's own benchmark, parsl-perf (installed with parsl),
# run in the same run with three executors of 2 workers each
# (bench/parsl_perf_config.py): xylem.parsl.XylemExecutor, Parsl's
# HighThroughputExecutor, and Parsl's ThreadPoolExecutor (2 threads in this
# process, no serialization: the DataFlowKernel's own cost). Prints each
# tasks/s (parsl-perf's last iteration, the one sized to --time) and the
# ratios; the targets are Xylem above HTEX (ratio > 1) and near the thread
# pool (ratio close to 1).
#
# usage: bench/parsl_perf.sh [SECONDS]    target seconds an iteration (20)
#
# parsl-perf runs iterations of n no-op python_apps (submit all, wait for
# all; its rate counts submission), first 10 tasks, then n = SECONDS x the
# last rate, until an iteration takes at least 0.75 x SECONDS (two at
# least). With 20 s the whole run takes about 3 minutes. Each executor's run
# is stopped (SIGINT, then SIGKILL 30 s later) after 6 x SECONDS + 60 s.
#
# Run from anywhere after a build; in-tree:
#   XYLEM_BUILD_DIR=$PWD/build PYTHONPATH=$PWD/python bench/parsl_perf.sh
set -eu

T=${1:-20}
top=$(cd "$(dirname "$0")/.." && pwd)
config=$top/bench/parsl_perf_config.py
command -v parsl-perf >/dev/null 2>&1 || {
	echo "parsl-perf not found: pip install parsl==2026.10.26" >&2; exit 2; }
python3 -c 'import xylem.parsl' 2>/dev/null || {
	echo "cannot import xylem.parsl (set PYTHONPATH and XYLEM_BUILD_DIR, or pip install .)" >&2
	exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/xylem-parsl-perf-XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
limit=$(awk -v t="$T" 'BEGIN { printf "%d", 6 * t + 60 }')

echo "parsl-perf $(parsl-perf --version | awk '{print $NF}'), --time $T, 2 workers each; load: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
for ex in xylem htex threads; do
	echo "-- $ex ..."
	rc=0
	(cd "$work" && XYLEM_PERF_EXECUTOR=$ex timeout -k 30 -s INT "$limit" \
		parsl-perf --config "$config" --time "$T" >"$work/$ex.log" 2>&1) || rc=$?
	grep -E '^(Will run|Tasks per second)' "$work/$ex.log" | paste - - |
		sed 's/^/     /; s/\t/ -> /'
	rate=$(awk '/^Tasks per second:/ { r = $4 } END { print r }' "$work/$ex.log")
	if [ "$rc" -ne 0 ] || [ -z "$rate" ]; then
		echo "!! $ex: parsl-perf failed (exit $rc); the end of its output:"
		tail -15 "$work/$ex.log" | sed 's/^/   /'
		rate=
	fi
	eval "rate_$ex=\$rate"
done

awk -v x="$rate_xylem" -v h="$rate_htex" -v t="$rate_threads" 'BEGIN {
	printf "\nparsl-perf, no-op python_apps, 2 workers, tasks/s of the last iteration:\n"
	if (x != "") printf "  XylemExecutor:       %9.1f\n", x
	if (h != "") printf "  HTEX:                %9.1f\n", h
	if (t != "") printf "  ThreadPoolExecutor:  %9.1f\n", t
	if (x != "" && h != "") printf "  Xylem/HTEX:     %6.2f (target > 1) %s\n", x / h, (x > h) ? "ok" : "BELOW TARGET"
	if (x != "" && t != "") printf "  Xylem/threads:  %6.2f (target: near 1)\n", x / t
	if (x == "" || h == "" || t == "") exit 1
}'
