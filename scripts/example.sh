#!/usr/bin/env bash
# The quick start's first command: installs what is needed, builds Xylem,
# and runs the sort-merge example workflow on local workers.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
bash scripts/build.sh build
cd examples/sort-merge
../../build/src/cli/xylem run workflow.json "$@"
./check.sh
echo "results: examples/sort-merge/out/ (report.txt, counts.txt, total.txt)"
