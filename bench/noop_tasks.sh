#!/bin/sh
# noop_tasks.sh: throughput of no-op command tasks. Runs N `true` tasks
# through `xylem run` with two local one-core workers, and, in the same run
# on the same machine, the same N commands through `xargs -P 2` (a plain
# fork/exec/wait loop on two cores). Prints both rates and their ratio;
# the target (DESIGN.md) is a ratio of at least 0.8.
#
# usage: bench/noop_tasks.sh [N]      (XYLEM_BIN overrides the binary)
set -eu

N=${1:-5000}
top=$(cd "$(dirname "$0")/.." && pwd)
XYLEM=${XYLEM_BIN:-$top/build/src/cli/xylem}
[ -x "$XYLEM" ] || { echo "no xylem binary at $XYLEM (set XYLEM_BIN)" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/xylem-bench-XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

python3 - "$N" "$work/noop.json" <<'PY'
import json, sys
n, path = int(sys.argv[1]), sys.argv[2]
json.dump({"tasks": [{"id": f"t{i}", "command": "true"} for i in range(n)]},
          open(path, "w"))
PY

now() { date +%s.%N; }

t0=$(now)
"$XYLEM" run "$work/noop.json" --workers 2 --cores-per-worker 1 --quiet
t1=$(now)
seq "$N" | xargs -P 2 -I{} sh -c true
t2=$(now)

awk -v n="$N" -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN {
	xy = n / (b - a); base = n / (c - b); ratio = xy / base
	printf "no-op tasks: %d\n", n
	printf "  xylem run, 2 workers x 1 core: %8.1f tasks/s  (%.2f s)\n", xy, b - a
	printf "  xargs -P 2 sh -c true:         %8.1f tasks/s  (%.2f s)\n", base, c - b
	printf "  ratio: %.2f (target >= 0.80) %s\n", ratio, (ratio >= 0.8) ? "ok" : "BELOW TARGET"
}'
