#!/bin/sh
# guard_cost.sh: what the check of lent inputs costs a task (docs/security.md,
# "Cached objects"). N (200) tasks, each `ls -f d > /dev/null` on a
# directory input d of F (10,000) one-line files in 100 subdirectories
# (cache level workflow, so it is fetched once and lent N times), through
# `xylem run --workers 1 --cores-per-worker 1`, one task at a time; best of
# R (3) rounds, alternating with the baseline. Each task costs one walk of
# the directory (after it; before it only when another task has it lent).
#
# Baseline in the same run: the same workflow through XYLEM_BASE_BIN, a
# build without the check: the commit before "worker: cached objects lent
# to tasks are fingerprinted" (git archive it into a directory and run
# scripts/build.sh build there).
# Prints the time a task with each, the difference (the check) and the
# ratio.
#
# usage: XYLEM_BASE_BIN=... bench/guard_cost.sh [N [F [R]]]
set -eu

N=${1:-200}
F=${2:-10000}
R=${3:-3}
top=$(cd "$(dirname "$0")/.." && pwd)
XYLEM=${XYLEM_BIN:-$top/build/src/cli/xylem}
BASE=${XYLEM_BASE_BIN:-}
[ -x "$XYLEM" ] || { echo "no xylem binary at $XYLEM (set XYLEM_BIN)" >&2; exit 2; }
[ -n "$BASE" ] && [ -x "$BASE" ] || { echo "set XYLEM_BASE_BIN to a build without the check" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/xylem-bench-XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

python3 - "$N" "$F" "$work" <<'PY'
import json, os, sys
n, f, work = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
d = os.path.join(work, "d")
for i in range(f):
    sub = os.path.join(d, f"s{i // 100}")
    if i % 100 == 0:
        os.makedirs(sub)
    with open(os.path.join(sub, f"f{i}"), "w") as fh:
        fh.write(f"{i}\n")
json.dump({"tasks": [{"id": f"t{i}", "command": "ls -f d > /dev/null",
                      "inputs": [{"path": d, "as": "d"}]}
                     for i in range(n)]},
          open(os.path.join(work, "wf.json"), "w"))
PY

now() { date +%s.%N; }
once() {
	t0=$(now)
	"$1" run "$work/wf.json" --workers 1 --cores-per-worker 1 --quiet
	t1=$(now)
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f\n", b - a }'
}

best_x=999999; best_b=999999
for r in $(seq "$R"); do
	x=$(once "$XYLEM"); b=$(once "$BASE")
	best_x=$(awk -v a="$x" -v b="$best_x" 'BEGIN { print (a < b) ? a : b }')
	best_b=$(awk -v a="$b" -v b="$best_b" 'BEGIN { print (a < b) ? a : b }')
done

awk -v n="$N" -v f="$F" -v x="$best_x" -v b="$best_b" 'BEGIN {
	printf "%d tasks, each with a directory input of %d files (best of rounds)\n", n, f
	printf "  with the check:    %7.2f ms a task  (%.2f s)\n", 1e3 * x / n, x
	printf "  without (base):    %7.2f ms a task  (%.2f s)\n", 1e3 * b / n, b
	printf "  the check:         %7.2f ms a task; ratio %.2f\n", 1e3 * (x - b) / n, x / b
}'
