#!/bin/sh
# Tests of the example plugin runner-step-notify-file on its own (no runner): it is started the
# way the runner starts it - INPUT_* and RUNNER_* variables, the JSON document on stdin - and
# its file, outputs, messages and exit status are checked. TAP output.
#   notify-file.sh [PLUGIN]    (default: ../runner-step-notify-file next to this file)
set -u
here=$(cd "$(dirname "$0")" && pwd)
plugin=${1:-$here/../runner-step-notify-file}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/notify-file-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
n=0
failed=0

ok() { # CONDITION-STATUS NAME [DETAIL]
	n=$((n + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $n - $2"
	else
		failed=$((failed + 1))
		echo "not ok $n - $2"
		[ $# -gt 2 ] && printf '%s\n' "$3" | sed 's/^/# /'
	fi
}

# run_plugin VAR=VALUE...: the plugin in a fresh workspace-like environment; status in rc,
# stdout+stderr in $tmp/log, outputs in $tmp/output.
run_plugin() {
	: >"$tmp/output"
	echo '{"protocol": 1, "inputs": {}}' |
		env -i PATH="$PATH" RUNNER_WORKSPACE="$tmp/ws" RUNNER_OUTPUT="$tmp/output" RUNNER_JOB=build \
			RUNNER_JOB_NAME="build (gcc)" RUNNER_STEP=notify RUNNER_RUN_ID=run-7 RUNNER_ATTEMPT=2 "$@" \
			"$plugin" >"$tmp/log" 2>&1
	rc=$?
}

mkdir -p "$tmp/ws"

# --describe: valid JSON, protocol 1, the inputs it takes
out=$("$plugin" --describe)
printf '%s' "$out" | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d["protocol"] == 1, d
assert d["version"] and d["description"], d
assert sorted(d["inputs"]["properties"]) == ["create-dirs", "line", "path"], d
assert d["inputs"]["required"] == ["path", "line"] and d["inputs"]["additionalProperties"] is False, d
' 2>"$tmp/err"
ok $? "--describe prints its schema" "$(cat "$tmp/err")"

# the placeholders
run_plugin INPUT_PATH=log.txt INPUT_LINE='{job}|{job_name}|{step}|{run_id}|{attempt}|{env.WHO}|{nope}|{env.}|{' WHO=me
ok "$(test "$rc" = 0 && echo 0 || echo 1)" "exit 0 when the line is appended" "$(cat "$tmp/log")"
got=$(cat "$tmp/ws/log.txt" 2>/dev/null)
ok "$(test "$got" = 'build|build (gcc)|notify|run-7|2|me|{nope}|{env.}|{' && echo 0 || echo 1)" \
	"placeholders are replaced, others kept" "got: $got"

# {date}: UTC, ISO 8601; newlines become spaces; a second call appends
run_plugin INPUT_PATH=log.txt INPUT_LINE="at {date}
next"
got=$(sed -n 2p "$tmp/ws/log.txt")
echo "$got" | grep -Eq '^at [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z next$'
ok $? "{date} and newlines, appended as line 2" "got: $got"

# outputs: file (absolute) and lines
ok "$(test "$(cat "$tmp/output")" = "file=$tmp/ws/log.txt
lines=2" && echo 0 || echo 1)" "outputs file and lines" "$(cat "$tmp/output")"

# backslashes and quotes are written as they are (no escape processing)
run_plugin INPUT_PATH=raw.txt INPUT_LINE='a\tb\\n "q" '"'s'"' $HOME `x`'
got=$(cat "$tmp/ws/raw.txt")
ok "$(test "$got" = 'a\tb\\n "q" '"'s'"' $HOME `x`' && echo 0 || echo 1)" "no escapes, no expansion" "got: $got"

# missing directory: exit 1 without create-dirs, created with it
run_plugin INPUT_PATH=deep/er/x.log INPUT_LINE=x
ok "$(test "$rc" = 1 && grep -q 'does not exist' "$tmp/log" && echo 0 || echo 1)" \
	"a missing directory fails (exit 1)" "rc=$rc $(cat "$tmp/log")"
run_plugin INPUT_PATH=deep/er/x.log INPUT_LINE=x INPUT_CREATE_DIRS=true
ok "$(test "$rc" = 0 && test -f "$tmp/ws/deep/er/x.log" && echo 0 || echo 1)" "create-dirs: true creates it" \
	"rc=$rc $(cat "$tmp/log")"

# an absolute path
run_plugin INPUT_PATH="$tmp/abs.log" INPUT_LINE=abs
ok "$(test "$rc" = 0 && test "$(cat "$tmp/abs.log")" = abs && echo 0 || echo 1)" "an absolute path" "rc=$rc"

# bad inputs: exit 2
run_plugin INPUT_LINE=x
ok "$(test "$rc" = 2 && grep -q "'path' is required" "$tmp/log" && echo 0 || echo 1)" "no path: exit 2" "rc=$rc"
run_plugin INPUT_PATH=x
ok "$(test "$rc" = 2 && grep -q "'line' is required" "$tmp/log" && echo 0 || echo 1)" "no line: exit 2" "rc=$rc"
run_plugin INPUT_PATH=x INPUT_LINE=x INPUT_CREATE_DIRS=maybe
ok "$(test "$rc" = 2 && echo 0 || echo 1)" "create-dirs not a boolean: exit 2" "rc=$rc"

# a file that cannot be written: exit 1
mkdir -p "$tmp/ws/adir"
run_plugin INPUT_PATH=adir INPUT_LINE=x
ok "$(test "$rc" = 1 && echo 0 || echo 1)" "a directory as the file: exit 1" "rc=$rc $(cat "$tmp/log")"

echo "1..$n"
[ "$failed" -eq 0 ]
