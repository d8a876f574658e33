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

# Every generator succeeded: swap the new code in.
rm -rf "$GO_OUT/taskloom"
mkdir -p "$GO_OUT"
cp -R "$scratch/go/taskloom" "$GO_OUT/"

rm -f "$PY_OUT"/taskloom/v1/*_pb2*.py "$PY_OUT"/taskloom/v1/*_pb2*.pyi
mkdir -p "$PY_OUT/taskloom/v1"
cp "$scratch"/py/taskloom/v1/*_pb2*.py* "$PY_OUT/taskloom/v1/"
touch "$PY_OUT/taskloom/v1/__init__.py" "$PY_OUT/taskloom/v1/py.typed"

rm -rf "$RS_OUT"
cp -R "$scratch/rs" "$RS_OUT"
