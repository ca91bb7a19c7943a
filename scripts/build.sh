#!/usr/bin/env bash
# Builds Xylem into build/ (or the directory given), configuring it first
# if needed. Extra arguments go to `meson setup`.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh # meson and ninja, from scripts/deps.sh
dir=${1:-build}
shift || true
if [ ! -f "$dir/build.ninja" ]; then
	meson setup "$dir" "$@" >/dev/null
fi
ninja -C "$dir" >/dev/null
echo "built $dir/src/cli/xylem" >&2
