#!/usr/bin/env bash
# The secrets docker-compose.yml mounts, made when absent (kept when present): random gRPC
# tokens (service, worker, admin) and empty LLM provider key files under deploy/secrets/
# (git-ignored). The directory is the owner's alone; the files are readable by all so that
# the containers' uid 10001 reads them through their bind mounts. Prints names, never values.
#   scripts/compose-secrets.sh [DIR]     (default deploy/secrets)
set -euo pipefail
cd "$(dirname "$0")/.."

dir=${1:-deploy/secrets}
mkdir -p "$dir"
chmod 700 "$dir"

made=()
for token in service-token worker-token admin-token; do
  [ -s "$dir/$token" ] && continue
  # 32 random bytes, hex: far above the orchestrator's 16-character minimum.
  (umask 022 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$dir/$token")
  made+=("$token")
done
for key in openai-api-key anthropic-api-key; do
  [ -e "$dir/$key" ] && continue
  (umask 022 && : >"$dir/$key")
  made+=("$key (empty: no key)")
done
if [ ${#made[@]} -gt 0 ]; then
  echo "compose-secrets: made in $dir: ${made[*]}"
fi
