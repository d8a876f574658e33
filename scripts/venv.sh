#!/usr/bin/env bash
# Creates .venv (one virtual environment for every Python package of Taskloom) and
# installs the packages editable; reinstalls only when a pyproject or pin changes.
# VENV and AGENTS_EXTRAS make another one: `make test-models` makes .venv-models with the
# agents' local-embeddings extra (torch, gigabytes), apart from .venv so the services' own
# environment and images never carry torch.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
AGENTS_EXTRAS="${AGENTS_EXTRAS:-}" # e.g. [local-embeddings]
STAMP=$VENV/.taskloom-stamp
want=$( (cat python/*/pyproject.toml python/constraints.txt python/requirements-dev.txt; echo "$AGENTS_EXTRAS") | sha256sum | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  exit 0
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check --upgrade pip
editables=()
for pkg in sdk agents gateway testing; do
  spec="python/$pkg"
  [ "$pkg" = agents ] && spec+="$AGENTS_EXTRAS"
  [ -f "python/$pkg/pyproject.toml" ] && editables+=(-e "$spec")
done
"$VENV/bin/pip" install --quiet --disable-pip-version-check \
  -c python/constraints.txt -r python/requirements-dev.txt "${editables[@]}"
echo "$want" > "$STAMP"
