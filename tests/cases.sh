#!/usr/bin/env bash
# Data-driven cases: each folder under testdata/cases holds
#   pipeline.yml   the workflow (optional)
#   args           the runner's arguments, one line (default: validate pipeline.yml)
#   output         the exact expected combined stdout+stderr
#   rc             the expected exit status (default 0)
# The runner runs inside the case's folder. Prints TAP. Adding a case is adding files.
#   cases.sh RUNNER [--update]     --update rewrites output and rc from what the runner does
set -u
runner=$(realpath "$1") update=${2:-}
here=$(cd "$(dirname "$0")/.." && pwd)
dir=$here/testdata/cases
cases=("$dir"/*/)
echo "1..${#cases[@]}"
n=0 failed=0
for c in "${cases[@]}"; do
  n=$((n + 1))
  name=$(basename "$c")
  args="validate pipeline.yml"
  [ -f "$c/args" ] && args=$(head -n 1 "$c/args")
  want_rc=0
  [ -f "$c/rc" ] && want_rc=$(head -n 1 "$c/rc")
  # shellcheck disable=SC2086
  got=$(cd "$c" && timeout 60 "$runner" $args 2>&1 </dev/null)
  rc=$?
  if [ "$update" = --update ]; then
    printf '%s\n' "$got" >"$c/output"
    [ "$rc" = 0 ] && rm -f "$c/rc" || echo "$rc" >"$c/rc"
    echo "ok $n - $name # updated"
    continue
  fi
  want=$(cat "$c/output" 2>/dev/null)
  if [ "$rc" = "$want_rc" ] && [ "$got" = "$want" ]; then
    echo "ok $n - $name"
  else
    failed=$((failed + 1))
    echo "not ok $n - $name (exit $rc, expected $want_rc)"
    diff <(printf '%s\n' "$want") <(printf '%s\n' "$got") | sed 's/^/# /'
  fi
done
[ "$failed" -eq 0 ]
