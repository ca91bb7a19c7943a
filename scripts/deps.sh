#!/usr/bin/env bash
# Installs what building and testing Xylem needs: Debian packages with
# apt-get (when missing), and Python packages, each pinned in
# scripts/constraints.txt, into a virtual environment made with the
# python3 first on PATH: .venv in the checkout, or $XYLEM_VENV. Nothing
# is pip-installed into a system interpreter (Debian's own python3 refuses
# that, PEP 668). Safe to run again: it installs only what is missing.
#
#   scripts/deps.sh [build|test]
#
# build: what building Xylem and running the examples need;
# test (the default): also pytest, Parsl with what its own test suite
# imports, and the CWL conformance runner.
# The scripts then put the environment first on PATH (scripts/venv.sh).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
what=${1:-test}
case $what in
build | test) ;;
*)
	echo "usage: scripts/deps.sh [build|test]" >&2
	exit 2
	;;
esac

debs=(build-essential pkg-config libuv1-dev libssl-dev libsqlite3-dev
      libjansson-dev libcurl4-openssl-dev libyaml-dev duktape-dev
      sqlite3 python3 python3-dev python3-venv procps
      tar bzip2 xz-utils unzip)
# tar, bzip2, xz-utils and unzip: workers expand archives with them.
if [ "$what" = test ]; then
	debs+=(clang libclang-rt-14-dev iproute2 openmpi-bin libopenmpi-dev
	       tcpdump openssl strace
	       curl python-is-python3 util-linux mount findutils
	       munge slurmctld slurmd slurm-client
	       gridengine-master gridengine-exec gridengine-client
	       chromium chromium-driver)
	# chromium (and its driver): the run report's and the dashboard's
	# tests open the pages headless;
	# tcpdump and openssl: the TLS tests (a capture on loopback, and
	# certificates of other CAs, expired, for other names);
	# strace: the journal's ordering tests (a RELEASE after the DONE
	# record's write, outputs synced before it: test_journal_order.py);
	# clang and its runtime: the fuzz build; iproute2: the namespace
	# tests; Open MPI: MPIFunction's tests; curl: the namespace
	# benchmarks' baselines; python-is-python3: CWL conformance tools
	# that run `python`; util-linux (unshare, nsenter), mount and
	# findutils: the full-disk tests (a tmpfs in a mount namespace);
	# munge and Slurm: the Slurm tests' cluster (tests/slurm), which
	# starts daemons of its own. Never slurm-wlm-emulator: its
	# alternatives replace slurmd and slurmctld with front-end builds.
	# chromium and chromium-driver: the dashboard's tests open it in a
	# real headless browser (tests/system/test_dashboard.py, Selenium).
	# Grid Engine: the gridengine tests' cell (tests/gridengine), made
	# in a directory of its own; debconf's "configure automatically" is
	# answered no, so the packages make no cell of their own.
fi
missing=()
for p in "${debs[@]}"; do
	dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
	echo "deps: installing ${missing[*]}" >&2
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO=sudo
	$SUDO apt-get update -qq
	# Installing munge, slurmd, gridengine-master or -exec would start
	# its daemon; a policy-rc.d that refuses every start keeps them down
	# (one already there is left alone).
	policy=/usr/sbin/policy-rc.d
	ours=
	if [ ! -e "$policy" ]; then
		ours=1
		trap '$SUDO rm -f "$policy"' EXIT
		printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
		$SUDO chmod +x "$policy"
	fi
	if [[ " ${missing[*]} " == *" gridengine-"* ]]; then
		echo "gridengine-common shared/gridengineconfig boolean false" |
			$SUDO debconf-set-selections
	fi
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
		"${missing[@]}" >/dev/null
	if [ -n "$ours" ]; then
		$SUDO rm -f "$policy"
		trap - EXIT
	fi
fi

# The virtual environment, made again if its interpreter is gone (a
# system upgrade, or a copy of the checkout from another machine).
venv=${XYLEM_VENV:-$top/.venv}
if ! "$venv/bin/python" -c "" 2>/dev/null; then
	rm -rf "$venv"
	echo "deps: making a virtual environment at $venv with" \
		"$(command -v python3)" >&2
	python3 -m venv "$venv"
fi

# The top-level packages; their versions, and every package they pull in,
# come from the constraints file.
pkgs=(meson ninja meson-python cloudpickle)
if [ "$what" = test ]; then
	pkgs+=(pytest "parsl[monitoring]" pandas cwltest selenium
	       prometheus_client nbclient ipykernel)
fi
constraints=$top/scripts/constraints.txt
stamp="$venv/.xylem-deps-$what"
want="$(sha256sum "$constraints" | cut -d' ' -f1) ${pkgs[*]}"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
	echo "deps: pip installing ${pkgs[*]} into $venv" >&2
	"$venv/bin/python" -m pip install -q --disable-pip-version-check \
		-c "$constraints" "${pkgs[@]}"
	printf '%s\n' "$want" >"$stamp"
fi
