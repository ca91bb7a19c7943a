#!/bin/bash
# bench/run_manager_temps.sh: `xylem run --manager` with a chain of temps
# (A writes SIZE_MB into a temp, B and C pass it on as temps, D counts
# it), against a standing manager with one local worker, on loopback.
# Runs the same workflow with a baseline binary (BASE, e.g. a build of
# main before protocol 16, where every temp went to the client and back)
# and with this tree's (XYLEM), and prints each wall time and the ratio.
#
#   bash bench/run_manager_temps.sh [SIZE_MB]   (default 200)
#   BASE=/path/to/old/xylem XYLEM=build/src/cli/xylem bash bench/...
set -euo pipefail
size=${1:-200}
new=${XYLEM:-$PWD/build/src/cli/xylem}
base=${BASE:-}
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$dir"' EXIT
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$dir/secret"
cat > "$dir/wf.json" <<EOF
{"tasks": [
 {"id": "a", "command": "head -c ${size}M /dev/zero | tr '\\\\0' x > out",
  "outputs": [{"path": "t1", "as": "out", "temp": true}]},
 {"id": "b", "command": "cat in > out",
  "inputs": [{"path": "t1", "as": "in"}],
  "outputs": [{"path": "t2", "as": "out", "temp": true}]},
 {"id": "c", "command": "cat in > out",
  "inputs": [{"path": "t2", "as": "in"}],
  "outputs": [{"path": "t3", "as": "out", "temp": true}]},
 {"id": "d", "command": "wc -c < in > out",
  "inputs": [{"path": "t3", "as": "in"}],
  "outputs": [{"path": "count", "as": "out"}]}]}
EOF

one() { # BINARY NAME: prints the run's wall seconds
	local bin=$1 port=$((20000 + RANDOM % 20000))
	rm -rf "$dir/j" "$dir/count"
	"$bin" manager --workers 1 --no-tls --host 127.0.0.1 --port "$port" \
		--secret-file "$dir/secret" > "$dir/mgr-$2.log" 2>&1 &
	local mgr=$!
	for _ in $(seq 100); do
		grep -q "worker .* ready" "$dir/mgr-$2.log" && break
		sleep 0.1
	done
	local t0 t1
	t0=$(date +%s.%N)
	(cd "$dir" && XYLEM_NO_TLS=1 TMPDIR="$dir" "$bin" run wf.json --quiet \
		--no-tls --manager "127.0.0.1:$port" --secret-file secret)
	t1=$(date +%s.%N)
	kill "$mgr"
	wait "$mgr" 2>/dev/null || true
	[ "$(tr -d ' \n' < "$dir/count")" = "$((size * 1048576))" ]
	echo "$t1 - $t0" | bc
}

tn=$(one "$new" new)
echo "temps on the workers (this tree): ${tn} s for a ${size} MB chain of 3 temps"
if [ -n "$base" ]; then
	tb=$(one "$base" base)
	echo "temps through the client (BASE): ${tb} s"
	echo "ratio this/base: $(echo "scale=3; $tn / $tb" | bc)"
fi
