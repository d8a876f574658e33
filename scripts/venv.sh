#!/usr/bin/env bash
# Creates .venv (one virtual environment for every Python package of Taskloom) and
# installs the packages editable; reinstalls only when a pyproject or pin changes.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
STAMP=.venv/.taskloom-stamp
want=$(cat python/*/pyproject.toml python/constraints.txt python/requirements-dev.txt | sha256sum | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  exit 0
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check --upgrade pip
editables=()
for pkg in sdk agents gateway testing; do
  [ -f "python/$pkg/pyproject.toml" ] && editables+=(-e "python/$pkg")
done
.venv/bin/pip install --quiet --disable-pip-version-check \
  -c python/constraints.txt -r python/requirements-dev.txt "${editables[@]}"
echo "$want" > "$STAMP"
