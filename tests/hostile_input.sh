#!/usr/bin/env bash
# Hostile workflow files: each must give a diagnostic and exit 2 — never a crash or a hang.
set -u
runner=$(realpath "$1")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0 bad=0
check() { # name file
  n=$((n + 1))
  out=$(timeout 60 "$runner" validate "$2" 2>&1)
  rc=$?
  if [ "$rc" = 2 ] && grep -q "error:" <<<"$out"; then
    echo "ok $n - $1"
  else
    bad=$((bad + 1)); echo "not ok $n - $1 (exit $rc)"; head -c 500 <<<"$out" | sed 's/^/# /'
  fi
}
echo "1..6"
truncate -s 100M "$tmp/huge.yml"; check "a 100 MB file" "$tmp/huge.yml"
head -c 1000000 /dev/urandom >"$tmp/binary.yml"; check "1 MB of random bytes" "$tmp/binary.yml"
head -c 15000000 /dev/urandom | base64 -w 100 >"$tmp/text.yml"; check "20 MB of base64 text" "$tmp/text.yml"
python3 -c 'print("a: " + "[" * 100000 + "]" * 100000)' >"$tmp/deep.yml"; check "100,000 nested lists" "$tmp/deep.yml"
python3 -c 'print("jobs:\n" + "".join("  j%d:\n    steps: [{run: x}]\n    needs: [j%d]\n" % (i, (i + 1) % 20000) for i in range(20000)))' >"$tmp/cycle.yml"
check "a 20,000-job cycle" "$tmp/cycle.yml"
printf 'jobs:\n  a:\n    steps:\n      - run: echo\n        env: {X: "%s"}\n' "$(head -c 3000000 /dev/zero | tr '\0' '{')" >"$tmp/braces.yml"
sed -i 's/{{{{{{/${{ {{/' "$tmp/braces.yml"; check "3 MB of braces in an expression" "$tmp/braces.yml"
[ "$bad" -eq 0 ]
