#!/usr/bin/env bash
# Installs what building and testing Xylem needs: Debian packages with
# apt-get (when missing) and Python packages with pip. Safe to run again.
set -euo pipefail

debs=(build-essential pkg-config libuv1-dev libssl-dev libsqlite3-dev
      libjansson-dev libcurl4-openssl-dev libyaml-dev duktape-dev clang
      libclang-rt-14-dev sqlite3 python3 python3-pip python3-dev procps
      iproute2 openmpi-bin libopenmpi-dev
      tar bzip2 xz-utils unzip curl python-is-python3
      util-linux mount findutils)
# tar, bzip2, xz-utils and unzip: workers expand archives with them; curl:
# the namespace benchmarks' baselines; python-is-python3: CWL conformance
# tools that run `python`; util-linux (unshare, nsenter), mount and
# findutils: the full-disk tests (a tmpfs in a mount namespace).
missing=()
for p in "${debs[@]}"; do
	dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
	echo "deps: installing ${missing[*]}" >&2
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO=sudo
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

need=()
command -v meson >/dev/null 2>&1 || need+=(meson)
command -v ninja >/dev/null 2>&1 || need+=(ninja)
python3 -c "import pytest" 2>/dev/null || need+=(pytest)
python3 -c "import cloudpickle" 2>/dev/null || need+=(cloudpickle)
# Parsl, pinned (docs/python.md), with what its own test suite imports.
python3 -c "import parsl, sys; sys.exit(parsl.__version__ != '2026.10.26')" \
	2>/dev/null || need+=("parsl[monitoring]==2026.10.26")
python3 -c "import pandas" 2>/dev/null || need+=(pandas)
# The CWL conformance runner (scripts/cwl-conformance.sh).
command -v cwltest >/dev/null 2>&1 || need+=(cwltest)
if ((${#need[@]})); then
	echo "deps: pip installing ${need[*]}" >&2
	python3 -m pip install -q --root-user-action=ignore "${need[@]}"
fi
