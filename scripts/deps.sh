#!/usr/bin/env bash
# `make deps`: installs the system programs the tests run for real (Redis, Prometheus, the
# bubblewrap sandbox, chromium and chromedriver for the console's browser test, hey for the
# e2e bench scenario), the C toolchain cgo and the Rust linker need, and Python's venv
# module when they are missing, and the Rust lint components. Says what it did.
# Code generation needs no system package: scripts/protoc uses the protoc that grpcio-tools
# ships in .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

# command → Debian package
declare -A wanted=(
  [redis-server]=redis-server
  [prometheus]=prometheus
  [promtool]=prometheus
  [bwrap]=bubblewrap
  [hey]=hey # the HTTP load generator of the e2e bench scenario (make bench runs deps too)
  [chromium]=chromium
  [chromedriver]=chromium-driver
  [cc]=build-essential # go test -race (cgo), cargo's linker, jemalloc's build
)
missing=()
for cmd in "${!wanted[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${wanted[$cmd]}")
done
# Debian's own python3 makes no virtual environment (scripts/venv.sh) without python3-venv.
"${PYTHON:-python3}" -c 'import ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  sudo=()
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
      sudo=(sudo)
    else
      echo "deps: missing ${missing[*]}; install them with: apt-get install ${missing[*]}" >&2
      exit 1
    fi
  fi
  echo "deps: installing ${missing[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The Debian redis-server package starts a system instance on 6379; the tests start their own
# on free ports and do not need it.

if command -v rustup >/dev/null 2>&1; then
  for component in clippy rustfmt; do
    if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
      echo "deps: installing the Rust component $component (rustup)"
      rustup component add "$component"
    fi
  done
fi
