#!/usr/bin/env bash
# Creates bench/.venv-vector with the pinned peers and embedding model of the `vector`
# scenario, once; later runs reuse it.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv-vector"
stamp="$venv/.requirements"
if [[ -f "$stamp" ]] && cmp -s "$stamp" "$here/vector-requirements.txt"; then
  exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
"$venv/bin/pip" install -q -r "$here/vector-requirements.txt"
cp "$here/vector-requirements.txt" "$stamp"
