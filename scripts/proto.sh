#!/usr/bin/env bash
# `make proto`: lints proto/taskloom/v1 and regenerates the Go, Python and Rust code from it.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.tools/bin:$PATH"
PY="${PY:-.venv/bin/python}"

buf lint proto

GO_OUT=services/orchestrator-go/gen
rm -rf "$GO_OUT/taskloom"
mkdir -p "$GO_OUT"
protoc -I proto \
  --go_out="$GO_OUT" --go_opt=paths=source_relative \
  --go-grpc_out="$GO_OUT" --go-grpc_opt=paths=source_relative \
  proto/taskloom/v1/*.proto

PY_OUT=python/sdk/src
rm -f "$PY_OUT"/taskloom/v1/*_pb2*.py "$PY_OUT"/taskloom/v1/*_pb2*.pyi
"$PY" -m grpc_tools.protoc -I proto \
  --python_out="$PY_OUT" --pyi_out="$PY_OUT" --grpc_python_out="$PY_OUT" \
  proto/taskloom/v1/*.proto
touch "$PY_OUT/taskloom/v1/__init__.py"

RS_OUT=services/proto-rust/src/gen
rm -rf "$RS_OUT"
cargo run --quiet --release -p taskloom-protogen -- proto "$RS_OUT"
