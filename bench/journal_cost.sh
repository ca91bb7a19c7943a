#!/bin/sh
# journal_cost.sh: what the journal costs (docs/durability.md). Runs N
# no-op `true` tasks through `xylem run` on two local one-core workers,
# without a journal, with one (--journal, the default mode) and with
# --journal-sync, alternating, best of R rounds each, all in this run on
# this machine. Prints each rate, the ratios to the run without a journal
# (target: the default mode costs under 5%, a ratio of at least 0.95),
# the journal's size, and the time of a run again on the full journal
# (every task finished before: replay plus the check of each).
#
# usage: bench/journal_cost.sh [N] [R]      (XYLEM_BIN overrides the binary)
set -eu

N=${1:-5000}
R=${2:-3}
top=$(cd "$(dirname "$0")/.." && pwd)
XYLEM=${XYLEM_BIN:-$top/build/src/cli/xylem}
[ -x "$XYLEM" ] || { echo "no xylem binary at $XYLEM (set XYLEM_BIN)" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/xylem-bench-XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

python3 - "$N" "$work/noop.json" <<'PY'
import json, sys
n, path = int(sys.argv[1]), sys.argv[2]
json.dump({"tasks": [{"id": f"t{i}", "command": f"true {i}"}
                     for i in range(n)]}, open(path, "w"))
PY

now() { date +%s.%N; }
# Seconds of one run: $1 is a journal directory to start afresh, or "".
one() {
	rm -rf "$work/j"
	t0=$(now)
	case $1 in
	none) "$XYLEM" run "$work/noop.json" --workers 2 --cores-per-worker 1 --quiet ;;
	process) "$XYLEM" run "$work/noop.json" --workers 2 --cores-per-worker 1 --quiet --journal "$work/j" ;;
	sync) "$XYLEM" run "$work/noop.json" --workers 2 --cores-per-worker 1 --quiet --journal "$work/j" --journal-sync ;;
	esac
	t1=$(now)
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f\n", b - a }'
}
best() { sort -n | head -1; }

: > "$work/none"; : > "$work/process"; : > "$work/sync"
i=0
while [ "$i" -lt "$R" ]; do
	for mode in none process sync; do one $mode >> "$work/$mode"; done
	i=$((i + 1))
done
none=$(best < "$work/none"); process=$(best < "$work/process"); sync=$(best < "$work/sync")
# The journal of the last sync run is full: run again on it.
size=$(stat -c %s "$work/j/log")
t0=$(now)
"$XYLEM" run "$work/noop.json" --workers 2 --cores-per-worker 1 --quiet --journal "$work/j"
t1=$(now)

awk -v n="$N" -v a="$none" -v b="$process" -v c="$sync" -v s="$size" \
    -v r0="$t0" -v r1="$t1" -v rounds="$R" 'BEGIN {
	printf "no-op tasks: %d, best of %d rounds\n", n, rounds
	printf "  no journal:       %8.1f tasks/s  (%.2f s)\n", n / a, a
	printf "  --journal:        %8.1f tasks/s  (%.2f s)  ratio %.3f (target >= 0.95) %s\n", n / b, b, a / b, (a / b >= 0.95) ? "ok" : "BELOW TARGET"
	printf "  --journal-sync:   %8.1f tasks/s  (%.2f s)  ratio %.3f\n", n / c, c, a / c
	printf "  journal size:     %d bytes (%.0f B a task)\n", s, s / n
	printf "  run again (all finished before): %.2f s\n", r1 - r0
}'
