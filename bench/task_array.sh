#!/bin/sh
# A command task array against xargs -P 2 (docs/workflow.md, "Task
# arrays"): N `true` tasks as one array, `xylem run --workers 2
# --cores-per-worker 1 --array N -- true`, against `seq N | xargs -P 2
# -I{} sh -c true`, same run; and the peak RSS of `xylem run` (the
# process that holds the manager) with the array of N against one of
# N/10: the difference over the tasks' is the manager's memory per array
# task (target < 100 B).
#   bench/task_array.sh [N]   (default 1000000)
set -eu
N=${1:-1000000}
XYLEM=$(realpath "${XYLEM_BIN:-$(dirname "$0")/../build/src/cli/xylem}")
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
cd "$TMP"
now() { date +%s.%N; }

t0=$(now)
seq "$N" | xargs -P 2 -I{} sh -c true
t1=$(now)
/usr/bin/time -f %M -o rss_big "$XYLEM" run --quiet --workers 2 \
	--cores-per-worker 1 --array "$N" -- true
t2=$(now)
SMALL=$((N / 10))
/usr/bin/time -f %M -o rss_small "$XYLEM" run --quiet --workers 2 \
	--cores-per-worker 1 --array "$SMALL" -- true
awk -v n="$N" -v s="$SMALL" -v a="$t0" -v b="$t1" -v c="$t2" \
	-v big="$(tail -1 rss_big)" -v small="$(tail -1 rss_small)" 'BEGIN {
	x = b - a; y = c - b
	printf "N=%d: xargs -P 2 %.2f s (%.0f tasks/s), xylem array %.2f s" \
	       " (%.0f tasks/s): ratio %.2f (target >= 0.8)\n", n, x, n / x, y,
	       n / y, x / y
	printf "peak RSS of xylem run: %d KiB with %d tasks, %d KiB with %d:" \
	       " %.1f B a task (target < 100)\n", big, n, small, s,
	       (big - small) * 1024 / (n - s)
}'
