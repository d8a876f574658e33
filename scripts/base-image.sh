#!/usr/bin/env bash
# Makes the base images Taskloom's images build on where no registry can be reached, and
# prints their names as KEY=VALUE lines (BASE_IMAGE, PYTHON_IMAGE):
#   - a minimal Debian bookworm made by debootstrap and imported into Docker, and
#   - Python 3 from Debian's packages on it (deploy/docker/debian-python.Dockerfile).
# Both are cached: an image that exists is not made again (docker image inspect first).
# `make compose-test` uses them; so can anything else that wants a Debian container.
set -euo pipefail
cd "$(dirname "$0")/.."

BASE_IMAGE=${TASKLOOM_BASE_IMAGE:-taskloom-base/debian:bookworm}
PYTHON_IMAGE=${TASKLOOM_PYTHON_BASE_IMAGE:-taskloom-base/python:bookworm}
SUITE=bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
DOCKER=${DOCKER:-docker}

log() { echo "base-image: $*" >&2; }

make_debian() {
  if "$DOCKER" image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    log "$BASE_IMAGE is cached"
    return
  fi
  rootfs=$(mktemp -d)
  trap 'rm -rf "$rootfs" "$rootfs.log"' EXIT
  log "debootstrap --variant=minbase $SUITE ($MIRROR), then docker import as $BASE_IMAGE"
  debootstrap --variant=minbase "$SUITE" "$rootfs" "$MIRROR" >"$rootfs.log" 2>&1 \
    || { tail -20 "$rootfs.log" >&2; return 1; }
  cat >"$rootfs/etc/apt/sources.list" <<SOURCES
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SECURITY_MIRROR $SUITE-security main
SOURCES
  # Images install only what they name, and keep no package caches in their layers.
  cat >"$rootfs/etc/apt/apt.conf.d/90taskloom-image" <<'APT'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
APT
  # No init system runs in a container: packages must not try to start their daemons.
  printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
  chmod 755 "$rootfs/usr/sbin/policy-rc.d"
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/tmp/*
  tar -C "$rootfs" -c . | "$DOCKER" import \
    --change 'ENV LANG=C.UTF-8' --change 'CMD ["bash"]' \
    --message "debootstrap --variant=minbase $SUITE" - "$BASE_IMAGE" >/dev/null
}

make_python() {
  if "$DOCKER" image inspect "$PYTHON_IMAGE" >/dev/null 2>&1; then
    log "$PYTHON_IMAGE is cached"
    return
  fi
  log "building $PYTHON_IMAGE on $BASE_IMAGE"
  DOCKER_BUILDKIT=1 "$DOCKER" build --quiet --build-arg "BASE_IMAGE=$BASE_IMAGE" \
    -f deploy/docker/debian-python.Dockerfile -t "$PYTHON_IMAGE" deploy/docker >/dev/null
}

make_debian
make_python
echo "BASE_IMAGE=$BASE_IMAGE"
echo "PYTHON_IMAGE=$PYTHON_IMAGE"
