#!/usr/bin/env bash
# Create .venv (Python 3.11) once and install nengoseg with the pinned stack.
# Reruns are quick: an up-to-date .venv is reused.
#   bash scripts/setup.sh          the toolkit
#   bash scripts/setup.sh --test   the toolkit and the test tools
set -euo pipefail
cd "$(dirname "$0")/.."

extras=""
[ "${1:-}" = "--test" ] && extras="[test]"

PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for cand in python3.11 python3; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      PY=$cand; break
    fi
  done
fi
[ -n "$PY" ] || { echo "nengoseg needs Python 3.11 (set PYTHON=/path/to/python3.11)" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  echo "creating .venv with $("$PY" --version)"
  "$PY" -m venv .venv
fi

# Reinstall only when the pins or the metadata changed since the last install.
stamp=.venv/.nengoseg-installed
if [ -n "$extras" ]; then stamp=.venv/.nengoseg-installed-test; fi
want=$(cat constraints.txt setup.cfg | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "installing nengoseg$extras with the pinned stack (TensorFlow takes a few minutes the first time)"
  .venv/bin/python -m pip install --quiet -c constraints.txt -e ".$extras"
  echo "$want" > "$stamp"
fi
