#!/usr/bin/env bash
# `make proto`: lints proto/taskloom/v1 and regenerates the Go, Python and Rust code from it.
# Every generator writes into a scratch directory; the committed code is replaced only when
# all of them succeeded, so a failed run leaves the working tree as it was.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.tools/bin:$PATH"
export PY="${PY:-$PWD/.venv/bin/python}"
PROTOC="$PWD/scripts/protoc"
export PROTOC # prost-build (taskloom-protogen) runs it too

buf lint proto

GO_OUT=services/orchestrator-go/gen
PY_OUT=python/sdk/src
RS_OUT=services/proto-rust/src/gen

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/go" "$scratch/py" "$scratch/rs"

"$PROTOC" -I proto \
  --go_out="$scratch/go" --go_opt=paths=source_relative \
  --go-grpc_out="$scratch/go" --go-grpc_opt=paths=source_relative \
  proto/taskloom/v1/*.proto
# mypy-protobuf's plugins (from .venv) write typed stubs of the messages and the gRPC stubs.
"$PROTOC" -I proto --plugin=protoc-gen-mypy="$(dirname "$PY")/protoc-gen-mypy" \
  --plugin=protoc-gen-mypy_grpc="$(dirname "$PY")/protoc-gen-mypy_grpc" \
  --python_out="$scratch/py" --mypy_out=quiet:"$scratch/py" \
  --grpc_python_out="$scratch/py" --mypy_grpc_out=quiet:"$scratch/py" \
  proto/taskloom/v1/*.proto
cargo run --quiet --release -p taskloom-protogen -- proto "$scratch/rs"

# Every generator succeeded: swap the new code in. A file whose content did not change is left
# alone (mtime kept), so cargo and the Go build cache do not rebuild on every `make proto`.
sync_dir() { # sync_dir SRC DST: make DST hold exactly SRC's files
  local src=$1 dst=$2 rel
  mkdir -p "$dst"
  while IFS= read -r -d '' rel; do
    [ -e "$src/$rel" ] || rm -f "$dst/$rel"
  done < <(cd "$dst" && find . -type f -print0)
  while IFS= read -r -d '' rel; do
    mkdir -p "$dst/$(dirname "$rel")"
    cmp -s "$src/$rel" "$dst/$rel" || cp "$src/$rel" "$dst/$rel"
  done < <(cd "$src" && find . -type f -print0)
}

sync_dir "$scratch/go/taskloom" "$GO_OUT/taskloom"

# The Python output directory also holds the package's own __init__.py and py.typed.
touch "$scratch/py/taskloom/v1/__init__.py" "$scratch/py/taskloom/v1/py.typed"
cp -p "$PY_OUT/taskloom/v1/__init__.py" "$scratch/py/taskloom/v1/__init__.py" 2>/dev/null || true
sync_dir "$scratch/py/taskloom/v1" "$PY_OUT/taskloom/v1"

sync_dir "$scratch/rs" "$RS_OUT"
