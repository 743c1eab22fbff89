#!/usr/bin/env bash
# `runner run --clean` runs in a fresh checkout of HEAD; git.* contexts and RUNNER_COMMIT/REF.
set -u
runner=$(realpath "$1")
tmp=$(mktemp -d)
export TMPDIR=$tmp/tmp XDG_CACHE_HOME=$tmp/cache
mkdir -p "$TMPDIR"
trap 'rm -rf "$tmp"' EXIT
n=0 bad=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
fail() { n=$((n + 1)); bad=$((bad + 1)); echo "not ok $n - $1"; sed 's/^/# /' "$tmp/out" | tail -n 20; }
echo "1..5"
repo=$tmp/repo
mkdir "$repo" && cd "$repo" && git init -q -b trunk
cat > .pipeline.yml <<'YML'
jobs:
  info:
    steps:
      - run: |
          echo "ctx sha=${{ git.sha }} branch=${{ git.branch }} ref=${{ git.ref }}"
          echo "env commit=$RUNNER_COMMIT ref=$RUNNER_REF"
          if [ -f uncommitted.txt ]; then echo tree=dirty; else echo tree=clean; fi
          echo "workspace=$RUNNER_WORKSPACE"
          touch made-by-step
YML
echo hi > committed.txt
git add -A && git -c user.name=t -c user.email=t@t commit -qm one
sha=$(git rev-parse HEAD)
echo local > uncommitted.txt

"$runner" run --no-color >"$tmp/out" 2>&1
if grep -q "ctx sha=$sha branch=trunk ref=refs/heads/trunk" "$tmp/out" && grep -q "env commit=$sha ref=refs/heads/trunk" "$tmp/out"; then
  ok "git.* contexts and RUNNER_COMMIT / RUNNER_REF in a plain run"; else fail "git.* contexts and RUNNER_COMMIT / RUNNER_REF in a plain run"; fi
if grep -q "tree=dirty" "$tmp/out" && [ -f made-by-step ]; then ok "a plain run uses the working tree"; else fail "a plain run uses the working tree"; fi
rm -f made-by-step

"$runner" run --clean --no-color >"$tmp/out" 2>&1; rc=$?
if [ "$rc" = 0 ] && grep -q "tree=clean" "$tmp/out" && grep -q "ctx sha=$sha" "$tmp/out"; then
  ok "--clean runs the committed state of HEAD"; else fail "--clean runs the committed state of HEAD (exit $rc)"; fi
if [ ! -e made-by-step ] && [ -z "$(ls -A "$TMPDIR")" ]; then
  ok "--clean leaves the working tree alone and removes its checkout"; else fail "--clean leaves the working tree alone and removes its checkout"; ls -A "$TMPDIR" | sed 's/^/# /'; fi

mkdir "$tmp/plain" && cd "$tmp/plain" && cp "$repo/.pipeline.yml" .
"$runner" run --clean --no-color >"$tmp/out" 2>&1; rc=$?
if [ "$rc" = 2 ] || [ "$rc" = 3 ]; then ok "--clean outside a git repository is an error (exit $rc)"; else fail "--clean outside a git repository is an error (exit $rc)"; fi
[ "$bad" -eq 0 ]
