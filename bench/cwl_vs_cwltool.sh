#!/usr/bin/env bash
# The CWL conformance suite's required CommandLineTool tests, run by
# cwltest against `xylem cwl` and against cwltool (the reference runner,
# from PyPI, with --no-container since this machine has no container
# runtime), in the same run with the same parallelism. Prints both wall
# times and their ratio; the target is at most 0.5 (docs/cwl.md).
#
#   bench/cwl_vs_cwltool.sh [SUITE_DIR]     (default ../shared/cwl-v1.2)
#
# Env: XYLEM_BIN (default build/src/cli/xylem), CWL_JOBS (default 2).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
xylem=${XYLEM_BIN:-$top/build/src/cli/xylem}
suite=${1:-${CWL_SUITE:-$top/../shared/cwl-v1.2}}
jobs=${CWL_JOBS:-2}
[ -f "$suite/conformance_tests.yaml" ] || { echo "no suite at $suite" >&2; exit 2; }
# cwltest is pinned in the checkout's virtual environment
# (scripts/deps.sh); cwltool, which only this benchmark uses, goes there too.
. "$top/scripts/venv.sh"
for p in cwltest cwltool; do
	command -v $p >/dev/null || python3 -m pip install -q $p
done
scratch=$(mktemp -d "${TMPDIR:-/tmp}/xylem-cwl-bench-XXXXXX")
trap 'rm -rf "$scratch"' EXIT
cp -r "$suite/." "$scratch/"
cd "$scratch"
sel=(--tags required --exclude-tags workflow,expression_tool -j "$jobs")

# timed NAME TOOL ARGS...: wall seconds of one cwltest run, and its counts.
timed() {
	local name=$1 tool=$2 t0 t1
	shift 2
	t0=$EPOCHREALTIME
	cwltest --test conformance_tests.yaml --tool "$tool" "${sel[@]}" \
		-- "$@" >"$scratch/$name.log" 2>&1 || true
	t1=$EPOCHREALTIME
	python3 -c "print(f'{$t1 - $t0:.2f}')"
}
tx=$(timed xylem "$xylem" cwl)
tc=$(timed cwltool cwltool --no-container)
summary() { grep -E 'tests passed|All tests passed' "$scratch/$1.log" | tail -1; }
printf 'required CommandLineTool tests, -j %s\n' "$jobs"
printf '  xylem cwl  %7.1f s   %s\n' "$tx" "$(summary xylem)"
printf '  cwltool    %7.1f s   %s\n' "$tc" "$(summary cwltool)"
printf '  ratio xylem/cwltool = %.3f (target <= 0.5)\n' "$(python3 -c "print($tx / $tc)")"
