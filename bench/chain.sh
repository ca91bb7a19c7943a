#!/bin/sh
# chain.sh: latency of a dependency hop. A chain of N tasks, each `cat in >
# out` on the file the one before it wrote, runs through `xylem run` on one
# local worker; so does a chain of one task, to take away the start and
# stop of the run itself. In the same run, a plain loop of N `sh -c 'cat A >
# B'` gives the cost of the process starts that every hop needs anyway.
# Prints the overhead per hop above that; the target (DESIGN.md) is at most
# 1 ms.
#
# usage: bench/chain.sh [N]      (XYLEM_BIN overrides the binary)
set -eu

N=${1:-1000}
top=$(cd "$(dirname "$0")/.." && pwd)
XYLEM=${XYLEM_BIN:-$top/build/src/cli/xylem}
[ -x "$XYLEM" ] || { echo "no xylem binary at $XYLEM (set XYLEM_BIN)" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/xylem-bench-XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

python3 - "$work" "$N" <<'PY'
import json, sys
work, n = sys.argv[1], int(sys.argv[2])
def chain(length, name):
    tasks = [{"id": "t0", "command": "echo link > out",
              "outputs": [{"path": f"{work}/{name}/f0", "as": "out"}]}]
    for i in range(1, length):
        tasks.append({"id": f"t{i}", "command": "cat in > out",
                      "inputs": [{"path": f"{work}/{name}/f{i-1}", "as": "in"}],
                      "outputs": [{"path": f"{work}/{name}/f{i}", "as": "out"}]})
    json.dump({"tasks": tasks}, open(f"{work}/{name}.json", "w"))
chain(n, "long")
chain(1, "short")
PY

now() { date +%s.%N; }
run() { "$XYLEM" run "$1" --workers 1 --cores-per-worker 1 --quiet; }

t0=$(now); run "$work/short.json"; t1=$(now)
run "$work/long.json"; t2=$(now)
test "$(cat "$work/long/f$((N - 1))")" = link || { echo "chain output wrong" >&2; exit 1; }

# The same hops without Xylem: one `sh -c 'cat A > B'` each, as a task is.
mkdir "$work/loop"; cd "$work/loop"; echo link > f0
t3=$(now)
i=0
while [ "$i" -lt "$N" ]; do
	j=$((i + 1))
	sh -c "cat f$i > f$j"
	i=$j
done
t4=$(now)
test "$(cat "f$N")" = link

awk -v n="$N" -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" -v e="$t4" 'BEGIN {
	hop = ((c - b) - (b - a)) / (n - 1) * 1000
	base = (e - d) / n * 1000
	over = hop - base
	printf "dependent chain: %d tasks\n", n
	printf "  xylem run, per hop:           %7.3f ms  (run %.2f s, empty run %.2f s)\n", hop, c - b, b - a
	printf "  plain sh -c loop, per step:   %7.3f ms\n", base
	printf "  overhead per hop:             %7.3f ms (target <= 1 ms) %s\n", over, (over <= 1) ? "ok" : "ABOVE TARGET"
}'
