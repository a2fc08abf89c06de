#!/usr/bin/env bash
# Run every failing-input case in ../shared/cases (see its README) against this checkout's .venv.
# Prints one line per case and exits 1 if any prints RESULT: FAIL.
set -u
cd "$(dirname "$0")/.."
CASES=${CASES:-../shared/cases}
fail=0
for run in "$CASES"/*/run.sh; do
  [ -e "$run" ] || continue
  result=$(bash "$run" 2>&1 | grep '^RESULT:' | tail -1)
  echo "$(basename "$(dirname "$run")"): ${result:-RESULT: FAIL (no result line)}"
  case "$result" in "RESULT: HOLD"*) ;; *) fail=1 ;; esac
done
exit $fail
