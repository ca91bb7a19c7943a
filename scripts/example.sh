#!/usr/bin/env bash
# The quick start's first command: installs what is needed, builds Xylem,
# and runs the sort-merge example workflow on local workers.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh build
. scripts/venv.sh
bash scripts/build.sh build
cd examples/sort-merge
../../build/src/cli/xylem run workflow.json "$@"
./check.sh
echo "results: examples/sort-merge/out/ (report.txt, counts.txt, total.txt)"
# The same machinery from CWL: one CommandLineTool, run as a Xylem task.
cd ../cwl
../../build/src/cli/xylem cwl --outdir out wordfreq.cwl job.yml > out.json
python3 - <<'PY'
import json
out = json.load(open("out.json"))
top = open(out["frequencies"]["path"]).read().split()
assert top[1] == "the", top
assert out["distinct"] == 5, out
print("cwl: examples/cwl/out.json, top word:", top[1], "(" + top[0] + " times)")
PY
