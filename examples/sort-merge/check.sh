#!/bin/sh
# Checks the outputs of the sort-merge example against the same pipeline
# run directly in the shell. Run it after `xylem run workflow.json`.
set -eu
cd "$(dirname "$0")"
export LC_ALL=C
expect=$(mktemp)
trap 'rm -f "$expect"' EXIT
cat data/p*.txt | tr -s ' ' '\n' | sort | uniq -c | sort -k1,1nr -k2,2 > "$expect"
cmp "$expect" out/counts.txt
test "$(cat out/total.txt)" -eq "$(cat data/p*.txt | wc -w)"
echo "sort-merge: outputs match"
