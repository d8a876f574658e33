#!/usr/bin/env bash
# `make compose-test`: docker-compose.yml for real, on a machine without a registry. Builds
# the images from bin/ and bin/wheels (what `make build` and `make wheels` made) on base
# images made here, starts the stack, waits until every container is healthy, then drives it
# through the published gateway: the end-to-end suite of tests/e2e, three workers sharing the
# work, an orchestrator restart in the middle of a run. At the end (also on failure or
# Ctrl-C) it removes what it made: containers, networks, volumes, the Taskloom images (the
# base images stay cached). It starts dockerd when none is running and stops it again.
#   scripts/compose-test.sh          the whole test
#   scripts/compose-test.sh images   only the images (`make images`), kept, tagged latest
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-test}
PYTEST=(.venv/bin/pytest -q)
COMPOSE_FILES=(docker-compose.yml tests/compose/compose.ci.yml)
work=$(mktemp -d)
phases=()
phase_name=""
phase_start=0
started_dockerd=""
project=""

log() { echo "compose-test: $*"; }

# Each phase's wall time is printed as it ends and again in the summary.
phase() {
  end_phase
  phase_name=$1
  phase_start=$(date +%s)
  echo "==> phase: $phase_name"
}
end_phase() {
  [ -n "$phase_name" ] || return 0
  local secs=$(($(date +%s) - phase_start))
  phases+=("$(printf '%-26s %5ds' "$phase_name" "$secs")")
  echo "<== phase: $phase_name: ${secs}s"
  phase_name=""
}

install_missing() {
  local need=()
  command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
  command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
  command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
  [ ${#need[@]} -gt 0 ] || return 0
  local sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo)
  log "installing ${need[*]} (apt-get)"
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    "${need[@]}" >/dev/null
}

# Debian's docker.io CLI builds with BuildKit by itself; a newer CLI needs the buildx plugin.
pick_docker_cli() {
  if ! docker buildx version >/dev/null 2>&1 && [ -x /usr/bin/docker ]; then
    export PATH="/usr/bin:$PATH"
  fi
}

start_engine() {
  if docker info >/dev/null 2>&1; then
    log "using the running Docker engine"
    return
  fi
  log "starting dockerd (log: $work/dockerd.log)"
  dockerd >"$work/dockerd.log" 2>&1 &
  started_dockerd=$!
  for _ in $(seq 120); do
    docker info >/dev/null 2>&1 && return
    kill -0 "$started_dockerd" 2>/dev/null || break
    sleep 0.5
  done
  tail -20 "$work/dockerd.log" >&2
  log "dockerd did not come up"
  return 1
}

stop_engine() {
  [ -n "$started_dockerd" ] || return 0
  log "stopping the dockerd it started (pid $started_dockerd)"
  kill -TERM "$started_dockerd" 2>/dev/null || true
  wait "$started_dockerd" 2>/dev/null || true
}

compose() {
  local files=()
  for file in "${COMPOSE_FILES[@]}"; do files+=(-f "$file"); done
  docker-compose -p "$project" "${files[@]}" "$@"
}

# Every container of the project healthy, or fail after five minutes.
wait_healthy() {
  local deadline=$((SECONDS + 300)) report
  while :; do
    # shellcheck disable=SC2046 # one argument per container id
    report=$(docker inspect --format \
      '{{.Name}} {{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' \
      $(compose ps -q))
    if ! grep -qv ' healthy$' <<<"$report"; then
      sed 's/^\//  /' <<<"$report"
      return 0
    fi
    if [ $SECONDS -ge $deadline ]; then
      echo "$report" >&2
      log "not every container became healthy"
      return 1
    fi
    sleep 2
  done
}

teardown() {
  local status=$?
  set +e
  if [ -n "$project" ]; then
    if [ $status != 0 ]; then
      log "failed; the last log lines of every container:"
      compose logs --no-color --tail=60 >&2
    fi
    phase "teardown"
    compose down --volumes --remove-orphans --timeout 20 2>&1 | grep -v '^$'
    docker image ls -q --filter "reference=taskloom/*:$TASKLOOM_IMAGE_TAG" | sort -u \
      | xargs -r docker rmi --force >/dev/null
    left=$(docker ps -aq --filter "label=com.docker.compose.project=$project"
           docker volume ls -q --filter "label=com.docker.compose.project=$project"
           docker network ls -q --filter "label=com.docker.compose.project=$project"
           docker image ls -q --filter "reference=taskloom/*:$TASKLOOM_IMAGE_TAG")
    if [ -n "$left" ]; then
      log "left behind: $left"
      status=1
    fi
    log "removed containers, networks, volumes and images of $project (base images and the build cache stay)"
  fi
  stop_engine
  end_phase
  rm -rf "$work"
  echo
  echo "== compose-test: time per phase =="
  printf '%s\n' "${phases[@]}"
  echo
  exit $status
}
trap teardown EXIT
trap 'exit 130' INT TERM

if [ ! -x bin/taskloom-orchestrator ] || [ ! -d bin/wheels ]; then
  log "bin/ or bin/wheels is missing: run 'make build wheels' first"
  exit 1
fi

phase "engine"
install_missing
pick_docker_cli
start_engine

phase "base images"
base_images=$(scripts/base-image.sh)
eval "$base_images"
export RUNTIME_IMAGE=$BASE_IMAGE PYTHON_IMAGE BINARIES=prebuilt WHEELS=prebuilt
export COMPOSE_DOCKER_CLI_BUILD=1 DOCKER_BUILDKIT=1

if [ "$mode" = images ]; then
  phase "images"
  TASKLOOM_IMAGE_TAG=latest docker-compose -f docker-compose.yml build
  docker image ls 'taskloom/*:latest'
  exit 0
fi

# Everything this run makes carries its own name, so nothing else is touched at teardown.
project="taskloom-compose-test-$$"
export TASKLOOM_IMAGE_TAG="compose-test-$$"
# Empty: Docker publishes on free ports (read back with `docker-compose port`).
export TASKLOOM_GATEWAY_PORT="" TASKLOOM_PROMETHEUS_PORT="" TASKLOOM_ORCHESTRATOR_PORT=""
export TASKLOOM_COMPOSE_PROJECT=$project
TASKLOOM_COMPOSE_FILES=$(IFS=:; echo "${COMPOSE_FILES[*]}")
export TASKLOOM_COMPOSE_FILES

phase "images"
compose config --quiet
compose build

phase "up and healthy"
log "grafana is in the 'grafana' profile and left out of this run (its image needs a registry)"
compose up -d
wait_healthy
gateway="http://$(compose port gateway 8000)"
log "gateway published on $gateway"

phase "end-to-end suite"
TASKLOOM_E2E_GATEWAY_URL=$gateway "${PYTEST[@]}" -rs tests/e2e

phase "three workers"
"${PYTEST[@]}" -s tests/compose/test_workers_scale.py tests/compose/test_prometheus_scrape.py

phase "orchestrator restart"
"${PYTEST[@]}" -s tests/compose/test_orchestrator_restart.py
