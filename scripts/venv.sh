# Sourced by the scripts, after scripts/deps.sh: puts the checkout's
# virtual environment (.venv, or $XYLEM_VENV) first on PATH, so that
# python3, pytest, meson and cwltest are the pinned ones it holds.
XYLEM_VENV=${XYLEM_VENV:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.venv}
export XYLEM_VENV VIRTUAL_ENV=$XYLEM_VENV
export PATH="$XYLEM_VENV/bin:$PATH"
hash -r
