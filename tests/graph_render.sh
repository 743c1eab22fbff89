#!/usr/bin/env bash
# `runner graph --format dot` output renders with Graphviz (dot -Tsvg), for every valid case.
set -u
runner=$1
here=$(cd "$(dirname "$0")/.." && pwd)
command -v dot >/dev/null || { echo "1..0 # SKIP graphviz (dot) is not installed"; exit 0; }
files=("$here"/testdata/cases/graph-*/pipeline.yml "$here"/testdata/cases/valid-*/pipeline.yml)
echo "1..${#files[@]}"
n=0 bad=0
for f in "${files[@]}"; do
  n=$((n + 1))
  svg=$("$runner" graph --format dot "$f" | dot -Tsvg 2>&1)
  if [ "${PIPESTATUS[0]}" = 0 ] && grep -q '<svg' <<<"$svg" && grep -q 'class="node"' <<<"$svg"; then
    echo "ok $n - $(basename "$(dirname "$f")")"
  else
    bad=$((bad + 1))
    echo "not ok $n - $(basename "$(dirname "$f")")"
    echo "$svg" | head -5 | sed 's/^/# /'
  fi
done
[ "$bad" -eq 0 ]
