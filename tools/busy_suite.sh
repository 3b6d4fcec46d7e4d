#!/usr/bin/env bash
# The whole suite under load, as CI meets it on a busy machine: RUNS full
# `make test` runs in a row (default 3) while one CPU hog per core keeps every
# core busy. Exits non-zero if any run failed; prints each run's result and time.
set -u
cd "$(dirname "$0")/.."
runs=${1:-3}
hogs=()
for _ in $(seq "$(nproc)"); do
  (while :; do :; done) &
  hogs+=($!)
done
trap 'kill "${hogs[@]}" 2>/dev/null' EXIT
failed=0
summary=()
for run in $(seq "$runs"); do
  echo "=== busy run $run/$runs (${#hogs[@]} CPU hogs) ==="
  start=$(date +%s)
  if make test; then result=green; else result=RED; failed=1; fi
  summary+=("run $run: $result in $(($(date +%s) - start)) s")
done
printf '%s\n' "${summary[@]}"
exit $failed
