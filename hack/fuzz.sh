#!/usr/bin/env bash
# Runs every fuzz target of the module for a bounded time each (FUZZTIME,
# default 10s), so CI explores beyond the seed corpus that `go test` runs
# anyway. A crasher is written to the package's testdata/fuzz and fails the
# run: fix it and commit the input as a regression seed.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-10s}
go=${GO:-go}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
for dir in $(git ls-files '*_test.go' | xargs grep -l '^func Fuzz' | xargs -n1 dirname | sort -u); do
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go | cut -d' ' -f2); do
    echo "fuzz ./$dir $target for $fuzztime"
    if ! $go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "./$dir" >"$log" 2>&1; then
      cat "$log"
      status=1
    fi
  done
done
exit $status
