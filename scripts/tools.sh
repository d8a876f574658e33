#!/usr/bin/env bash
# Installs the pinned code generators and linters into .tools/ (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS="$PWD/.tools"
BUF_VERSION=1.75.0
PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2
GOLANGCI_LINT_VERSION=v2.15.0
KUSTOMIZE_VERSION=v5.7.1
mkdir -p "$TOOLS/bin"
if [ ! -x "$TOOLS/node_modules/.bin/buf" ]; then
  npm install --silent --no-fund --no-audit --prefix "$TOOLS" "@bufbuild/buf@$BUF_VERSION" >/dev/null
fi
ln -sf "$TOOLS/node_modules/.bin/buf" "$TOOLS/bin/buf"
if [ ! -x "$TOOLS/bin/protoc-gen-go" ]; then
  GOBIN="$TOOLS/bin" go install "google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO_VERSION"
fi
if [ ! -x "$TOOLS/bin/protoc-gen-go-grpc" ]; then
  GOBIN="$TOOLS/bin" go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC_VERSION"
fi
if [ ! -x "$TOOLS/bin/golangci-lint" ]; then
  GOBIN="$TOOLS/bin" go install "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$GOLANGCI_LINT_VERSION"
fi
# Renders deploy/k8s/ in the tests (tests/deploy).
if [ ! -x "$TOOLS/bin/kustomize" ]; then
  GOBIN="$TOOLS/bin" go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
fi
