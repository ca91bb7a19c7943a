#!/usr/bin/env bash
# Runs Parsl's own test suite (the pinned release, installed by deps.sh
# into the checkout's virtual environment)
# against xylem.parsl.XylemExecutor, through tests/parsl_config.py, in a
# scratch directory (the suite writes files where it runs). Deselected,
# and why:
#   cleannet                     the issue's own exclusion (needs a clean network)
#   test_output_chain_filenames  marked shared_fs: it expects an app to see the
#                                submitting side's absolute path; Xylem runs apps
#                                in sandboxes without a shared filesystem
#   test_bad_stdout_file,        expect that /bad/dir cannot be created; as root
#   test_bad_stderr_file         it can (deselected only when run as root)
#   test_stdout_stderr_staging_zip
#                                races with itself: it opens the zip once the
#                                stdout's stage-out is done, while the
#                                stderr's stage-out, which Parsl runs at the
#                                same time on its internal thread pool (10
#                                threads), may be appending to it under a lock
#                                the test does not take ("File is not a zip
#                                file" in CI once, with any executor)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${XYLEM_BUILD_DIR:-$top/build}
. "$top/scripts/venv.sh" # the pinned Parsl and pytest, from scripts/deps.sh
parsl_tests=$(python3 -c "import os, parsl; print(os.path.dirname(parsl.__file__) + '/tests')")
sel="not cleannet and not test_output_chain_filenames"
sel="$sel and not test_stdout_stderr_staging_zip"
if [ "$(id -u)" -eq 0 ]; then
	sel="$sel and not test_bad_stdout_file and not test_bad_stderr_file"
fi
scratch=$(mktemp -d "${TMPDIR:-/tmp}/xylem-parsl-XXXXXX")
trap 'rm -rf "$scratch"' EXIT
cd "$scratch"
XYLEM_BUILD_DIR=$build PYTHONPATH=$top/python timeout 1200 \
	python3 -m pytest "$parsl_tests" -k "$sel" \
	--config "$top/tests/parsl_config.py" \
	-W ignore::pytest.PytestRemovedIn9Warning -q -p no:cacheprovider "$@"
