#!/usr/bin/env bash
# Runs make targets one after another, printing each one's wall time, and a summary at the
# end (also when a target fails), so CI shows where its minutes go.
set -uo pipefail
summary=()
status=0
for target in "$@"; do
  echo "==> make $target"
  start=$(date +%s)
  make --no-print-directory "$target"
  rc=$?
  secs=$(( $(date +%s) - start ))
  summary+=("$(printf '%-18s %5ds  %s' "$target" "$secs" "$([ $rc = 0 ] && echo ok || echo FAILED)")")
  echo "<== make $target: ${secs}s$([ $rc = 0 ] || echo ", FAILED ($rc)")"
  if [ $rc != 0 ]; then status=$rc; break; fi
done
echo
echo "== time per target =="
printf '%s\n' "${summary[@]}"
exit $status
