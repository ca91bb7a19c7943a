#!/bin/sh
# parsl_perf_ab.sh: what burst batching of submit (docs/python.md,
# "Batched calls") gives Parsl: parsl-perf with xylem.parsl.XylemExecutor,
# bursts on against bursts off (XYLEM_NO_BURSTS=1), in the same run,
# alternating, their order swapped every round; for 2 local one-core
# workers (`xylem`) and for a pool of at most 2 one-core workers that
# Xylem's scaler starts through Parsl's LocalProvider (`xylem_pool`, the
# cluster case on this machine). Configurations: bench/parsl_perf_config.py.
#
# usage: bench/parsl_perf_ab.sh [SECONDS [ROUNDS]]   (10 s an iteration, 3)
#
# Prints each run's tasks/s (parsl-perf's last iteration, the one sized to
# --time), then per executor the median of the rounds' on/off ratios and
# the best of each side. parsl-perf counts submission through the
# DataFlowKernel, the same for both sides, so the ratios are smaller than
# those of submits alone (tests/python/test_batch.py, bench/py_calls.py).
# Each run is stopped (SIGINT, then SIGKILL 30 s later) after 6 x SECONDS
# + 60 s. With the defaults the whole run takes about 8 minutes.
#
# Run from anywhere after a build; in-tree:
#   XYLEM_BUILD_DIR=$PWD/build PYTHONPATH=$PWD/python bench/parsl_perf_ab.sh
set -eu

T=${1:-10}
R=${2:-3}
top=$(cd "$(dirname "$0")/.." && pwd)
config=$top/bench/parsl_perf_config.py
command -v parsl-perf >/dev/null 2>&1 || {
	echo "parsl-perf not found: pip install parsl==2026.10.26" >&2; exit 2; }
python3 -c 'import xylem.parsl' 2>/dev/null || {
	echo "cannot import xylem.parsl (set PYTHONPATH and XYLEM_BUILD_DIR, or pip install .)" >&2
	exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/xylem-parsl-perf-ab-XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
limit=$(awk -v t="$T" 'BEGIN { printf "%d", 6 * t + 60 }')
results=$work/results

# One parsl-perf run: executor $1, bursts $2 (on/off), round $3.
one() {
	log=$work/$1.$2.$3.log
	rc=0
	if [ "$2" = off ]; then nb=1; else nb=; fi
	(cd "$work" && XYLEM_PERF_EXECUTOR=$1 XYLEM_NO_BURSTS=$nb \
		timeout -k 30 -s INT "$limit" \
		parsl-perf --config "$config" --time "$T" >"$log" 2>&1) || rc=$?
	rate=$(awk '/^Tasks per second:/ { r = $4 } END { print r }' "$log")
	if [ "$rc" -ne 0 ] || [ -z "$rate" ]; then
		echo "!! $1 bursts $2, round $3: parsl-perf failed (exit $rc); the end of its output:"
		tail -15 "$log" | sed 's/^/   /'
		return 1
	fi
	printf '   round %d  %-10s bursts %-3s %9.1f tasks/s\n' "$3" "$1" "$2" "$rate"
	echo "$1 $2 $3 $rate" >>"$results"
}

echo "parsl-perf $(parsl-perf --version | awk '{print $NF}'), --time $T, $R rounds, 2 workers; load: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
failed=0
r=1
while [ "$r" -le "$R" ]; do
	for ex in xylem xylem_pool; do
		if [ $((r % 2)) -eq 1 ]; then order="on off"; else order="off on"; fi
		for b in $order; do
			one "$ex" "$b" "$r" || failed=1
		done
	done
	r=$((r + 1))
done
echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"

[ -s "$results" ] || exit 1
awk '
{ rate[$1 " " $2 " " $3] = $4; ex[$1] = 1; if ($3 > R) R = $3 }
END {
	printf "\nparsl-perf, no-op python_apps, tasks/s of the last iteration:\n"
	for (e in ex) {
		n = 0; bon = 0; boff = 0
		for (r = 1; r <= R; r++) {
			on = rate[e " on " r]; off = rate[e " off " r]
			if (on > bon) bon = on
			if (off > boff) boff = off
			if (on != "" && off != "") q[++n] = on / off
		}
		for (i = 1; i <= n; i++)   # sort the ratios
			for (j = i + 1; j <= n; j++)
				if (q[j] < q[i]) { t = q[i]; q[i] = q[j]; q[j] = t }
		med = n == 0 ? 0 : (n % 2 ? q[(n + 1) / 2] : (q[n / 2] + q[n / 2 + 1]) / 2)
		printf "  %-10s bursts on: best %8.1f  off: best %8.1f  on/off: median %.2f of %d rounds\n", e, bon, boff, med, n
	}
}' "$results"
exit "$failed"
