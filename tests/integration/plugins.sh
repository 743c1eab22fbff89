#!/usr/bin/env bash
# Integration tests of step plugins (docs/plugins.md): `runner run`, `runner validate` and
# `runner plugins` with --plugin-dir pointing at plugins the tests write, and the two example
# plugins of steps/plugins. Real runner, real plugin processes, a real HTTP server. TAP; see lib.sh.
#   plugins.sh RUNNER_BINARY
. "$(dirname "$0")/lib.sh"
CHECK_RUNNER_TEMP=1
EXAMPLES=$(cd "$(dirname "$0")/../../steps/plugins" && pwd)
# The search path must hold only what a subtest puts there (PATH keeps the system tools).
unset RUNNER_PLUGIN_PATH
export HOME=$ROOT/home

# plugin NAME [DIR]: write DIR/runner-step-NAME (default DIR: $T/plugins) from stdin, with the
# substitutions of `workflow`, and make it executable.
plugin() {
	local dir=${2:-$T/plugins}
	mkdir -p "$dir"
	workflow "plugin.tmp"
	mv "$T/plugin.tmp" "$dir/runner-step-$1"
	chmod 755 "$dir/runner-step-$1"
}

# ---- running plugins --------------------------------------------------------------------------

# A plugin that succeeds: it gets its document on stdin (checked field by field by python here),
# INPUT_* variables, the step's environment, and its output is the step's log.
t_succeeds() {
	plugin greet <<'EOF'
#!/bin/sh
[ "$1" = --describe ] && exit 1
cat >"@T@/doc.json"
echo "hello, $INPUT_WHO ($INPUT_TIMES times, loud=$INPUT_LOUD)"
echo "to stderr" >&2
EOF
	workflow <<'EOF'
env: {FOO: from-workflow}
jobs:
  j:
    matrix: {v: [m1]}
    steps:
      - run: echo before
      - id: g
        name: greet ${{ matrix.v }}
        greet:
          who: world ${{ env.FOO }}
          times: 3
          loud: true
          list: [a, 1]
EOF
	run run --plugin-dir "$T/plugins" p.yml
	expect_rc 0
	expect_grep 'greet m1 \| hello, world from-workflow \(3 times, loud=true\)' "$T/out"
	expect_grep 'to stderr' "$T/out"
	expect_eq "step status" "$(step_field 'j (m1)' 1 status)" success
	expect_eq "protocol" "$(js "$T/doc.json" 'd["protocol"]')" 1
	expect_eq "plugin" "$(js "$T/doc.json" 'd["plugin"]')" greet
	expect_eq "inputs" "$(js "$T/doc.json" 'd["inputs"]')" \
		'{"who": "world from-workflow", "times": 3, "loud": true, "list": ["a", 1]}'
	expect_eq "step" "$(js "$T/doc.json" 'd["step"]')" '{"name": "greet m1", "id": "g", "index": 1, "attempt": 1}'
	expect_eq "workspace" "$(js "$T/doc.json" 'd["workspace"]')" "$T"
	expect_eq "job" "$(js "$T/doc.json" 'd["job"] + "/" + d["job_name"]')" "j/j (m1)"
	expect_eq "run id" "$(js "$T/doc.json" 'd["run_id"]')" "$(js "$(summary)" 'd["run_id"]')"
	expect_eq "env" "$(js "$T/doc.json" 'd["env"]["FOO"] + " " + d["env"]["RUNNER_STEP"] + " " + d["env"]["CI"]')" \
		"from-workflow g true"
}

# A plugin that fails: its exit status is the step's; the job fails, later steps are skipped.
t_fails() {
	plugin broken <<'EOF'
#!/bin/sh
[ "$1" = --describe ] && exit 1
echo "something went wrong" >&2
exit 3
EOF
	workflow <<'EOF'
jobs:
  j:
    steps:
      - broken: {}
      - run: touch "@T@/after"
EOF
	run run --plugin-dir "$T/plugins" p.yml
	expect_rc 1
	expect_eq "step status" "$(step_field j 0 status)" failure
	expect_eq "step exit code" "$(step_field j 0 exit_code)" 3
	expect_eq "next step" "$(step_field j 1 status)" skipped
	expect_grep 'broken \| something went wrong' "$T/out"
	expect_no_file "$T/after"
}

# A plugin that runs past its timeout: SIGTERM, grace, SIGKILL - and its background child, which
# ignores SIGTERM, is gone too (the plugin is the step's process tree).
t_times_out() {
	plugin slow <<'EOF'
#!/bin/sh
[ "$1" = --describe ] && exit 1
sh -c "trap '' TERM; exec '@SLEEPER@' 1000" &
echo "child started"
trap '' TERM
exec '@SLEEPER@' 1000
EOF
	workflow <<'EOF'
jobs:
  j:
    steps:
      - slow: {}
        timeout: 1s
        grace: 1s
EOF
	local t0 t1
	t0=$(now)
	run run --plugin-dir "$T/plugins" p.yml
	t1=$(now)
	expect_rc 1
	expect_eq "step status" "$(step_field j 0 status)" "timed out"
	expect_eq "step exit code (SIGKILL)" "$(step_field j 0 exit_code)" 137
	expect_grep 'child started' "$T/out"
	expect_ge "step duration_ms (timeout 1s + grace 1s)" "$(step_field j 0 duration_ms)" 1950
	expect_le "run duration (ms)" "$(elapsed_ms "$t0" "$t1")" 30000
	no_leftover
}

# A secret given to a plugin as an input (and so in its document and INPUT_*) is masked in all
# that the plugin prints, wherever the run's output goes.
t_secret_masked() {
	local S=pl-s3cr3t-Zq8
	plugin leaky <<'EOF'
#!/bin/sh
[ "$1" = --describe ] && exit 1
echo "env: $INPUT_TOKEN"
python3 -c 'import json,sys; print("doc: " + json.load(sys.stdin)["inputs"]["token"])'
echo "err: $INPUT_TOKEN" >&2
EOF
	workflow <<'EOF'
jobs:
  j:
    steps:
      - leaky: {token: "${{ secrets.TOK }}"}
EOF
	run run --plugin-dir "$T/plugins" --secret "TOK=$S" --json --log-dir "$T/logs" p.yml
	expect_rc 0
	local hits
	hits=$(grep -rlaF -- "$S" "$T/out" "$T/err" "$T/logs" 2>/dev/null)
	[ -z "$hits" ] || fail "the secret appears in: $hits"
	expect_grep '"line":"env: \*\*\*"' "$T/out"
	expect_grep '"line":"doc: \*\*\*"' "$T/out"
	expect_grep 'err: \*\*\*' "$T/logs/j/01-leaky.log"
}

# Outputs and env set by a plugin through RUNNER_OUTPUT / RUNNER_ENV reach later steps.
t_outputs() {
	plugin version <<'EOF'
#!/bin/sh
[ "$1" = --describe ] && exit 1
echo "version=1.2.$INPUT_PATCH" >>"$RUNNER_OUTPUT"
printf 'notes<<EOT\nline one\nline two\nEOT\n' >>"$RUNNER_OUTPUT"
echo "FROM_PLUGIN=yes" >>"$RUNNER_ENV"
EOF
	workflow <<'EOF'
jobs:
  j:
    outputs: {v: "${{ steps.ver.outputs.version }}"}
    steps:
      - id: ver
        version: {patch: 7}
      - run: |
          echo "got=${{ steps.ver.outputs.version }} env=$FROM_PLUGIN" >"@T@/got"
          echo "${{ steps.ver.outputs.notes }}" >>"@T@/got"
  k:
    needs: j
    steps:
      - run: echo "needs=${{ needs.j.outputs.v }}" >"@T@/needs"
EOF
	run run --plugin-dir "$T/plugins" p.yml
	expect_rc 0
	expect_eq "later step" "$(cat "$T/got" 2>/dev/null)" "got=1.2.7 env=yes
line one
line two"
	expect_eq "later job" "$(cat "$T/needs" 2>/dev/null)" "needs=1.2.7"
}

# A failing attempt of a plugin step is retried from a fresh process with the same document.
t_retry() {
	plugin flaky <<'EOF'
#!/bin/sh
[ "$1" = --describe ] && exit 1 # (it does not describe itself)
n=$(cat "@T@/count" 2>/dev/null || echo 0)
echo $((n + 1)) >"@T@/count"
python3 -c 'import json,sys; d=json.load(sys.stdin); print("attempt", d["step"]["attempt"], d["inputs"]["x"])'
[ "$n" -ge 1 ]
EOF
	workflow <<'EOF'
jobs:
  j:
    steps:
      - flaky: {x: same}
        retry: 1
EOF
	run run --plugin-dir "$T/plugins" p.yml
	expect_rc 0
	expect_eq "attempts" "$(step_field j 0 attempts)" 2
	expect_grep 'attempt 1 same' "$T/out"
	expect_grep 'attempt 2 same' "$T/out"
}

# A plugin that cannot start: removed after the checks (the step fails saying where it looked),
# or with a #! interpreter that does not exist (exit 127, said in the log).
t_cannot_start() {
	plugin gone <<'EOF'
#!/bin/sh
[ "$1" = --describe ] && exit 1
echo "should not run"
EOF
	plugin nointerp <<'EOF'
#!/nonexistent/interpreter
EOF
	workflow <<'EOF'
jobs:
  j:
    steps:
      - run: rm "@T@/plugins/runner-step-gone"
      - gone: {}
  k:
    steps:
      - nointerp: {}
EOF
	run run --keep-going --plugin-dir "$T/plugins" p.yml
	expect_rc 1
	expect_eq "removed plugin" "$(step_field j 1 status)" failure
	expect_grep "gone \| runner: cannot start the step: no step plugin 'gone': no executable runner-step-gone in $T/plugins, " "$T/out"
	expect_no_grep "should not run" "$T/out"
	expect_eq "missing interpreter" "$(step_field k 0 status)/$(step_field k 0 exit_code)" failure/127
	expect_grep "nointerp \| runner: cannot run step plugin 'nointerp' \($T/plugins/runner-step-nointerp\): No such file or directory" "$T/out"
}

# A plugin in another language: Python 3, reading its document and writing outputs.
t_python_plugin() {
	plugin sum <<'EOF'
#!/usr/bin/env python3
import json, os, sys
if sys.argv[1:] == ["--describe"]:
    print(json.dumps({"protocol": 1, "version": "0.1", "description": "add numbers",
                      "inputs": {"type": "object", "properties": {"numbers": {"type": "array"}},
                                 "required": ["numbers"], "additionalProperties": False}}))
    sys.exit(0)
doc = json.load(sys.stdin)
total = sum(doc["inputs"]["numbers"])
print("python sees protocol %d, sum %d" % (doc["protocol"], total))
with open(os.environ["RUNNER_OUTPUT"], "a") as f:
    f.write("sum=%d\n" % total)
EOF
	workflow <<'EOF'
jobs:
  j:
    steps:
      - id: s
        sum: {numbers: [1, 2, 39]}
      - run: test "${{ steps.s.outputs.sum }}" = 42 && echo "sum ok"
EOF
	run run --plugin-dir "$T/plugins" p.yml
	expect_rc 0
	expect_grep 'python sees protocol 1, sum 42' "$T/out"
	expect_grep 'sum ok' "$T/out"
	run plugins list --plugin-dir "$T/plugins"
	expect_rc 0
	expect_grep "^sum +0\.1 +add numbers +$T/plugins/runner-step-sum$" "$T/out"
}

# ---- validation -------------------------------------------------------------------------------

# A plugin that is not installed: a clear error at the step's key (validate and run; run starts
# nothing); a warning with validate --plugins-optional.
t_missing() {
	workflow <<'EOF'
jobs:
  other:
    steps:
      - run: touch "@T@/ran"
  j:
    steps:
      - run: echo hi
      - deploy-thing:
          to: prod
EOF
	mkdir -p "$T/plugins"
	run validate --plugin-dir "$T/plugins" p.yml
	expect_rc 2
	expect_eq "validate says" "$(cat "$T/err")" \
		"p.yml:8:9: error: step 2 of job 'j' uses step plugin 'deploy-thing', which is not installed (no runner-step-deploy-thing on the plugin search path; see 'runner plugins path')"
	run validate --plugins-optional p.yml
	expect_rc 0
	expect_grep "^p.yml:8:9: warning: step 2 of job 'j' uses step plugin 'deploy-thing', which is not installed" "$T/err"
	expect_grep '^p.yml: OK \(2 jobs\)' "$T/out"
	run run --plugin-dir "$T/plugins" p.yml
	expect_rc 2
	expect_grep "^p.yml:8:9: error: step 2 of job 'j' uses step plugin 'deploy-thing'" "$T/err"
	expect_no_file "$T/ran"
}

# The schema a plugin describes checks the step's keys, with line:column errors.
t_schema() {
	plugin checker <<'EOF'
#!/bin/sh
if [ "$1" = --describe ]; then
	cat <<'JSON'
{"protocol": 1, "version": "2.0", "description": "checks things",
 "inputs": {"type": "object",
            "properties": {"url": {"type": "string"}, "count": {"type": "integer"},
                           "mode": {"type": "string", "enum": ["fast", "slow"]}},
            "required": ["url"], "additionalProperties": false}}
JSON
	exit 0
fi
touch "@T@/ran"
EOF
	workflow <<'EOF'
jobs:
  j:
    steps:
      - checker:
          urll: http://x
          count: many
          mode: medium
      - checker: {url: "http://x", count: "${{ env.N }}", mode: fast}
EOF
	run validate --plugin-dir "$T/plugins" p.yml
	expect_rc 2
	expect_eq "validate says" "$(cat "$T/err")" "p.yml:5:11: error: unknown key 'urll' in 'checker' (did you mean 'url'?)
p.yml:5:11: error: 'checker' is missing required key 'url'
p.yml:6:18: error: 'count' must be a whole number, not a string
p.yml:7:17: error: invalid value 'medium' for 'mode' (expected one of: fast, slow)"
	run run --plugin-dir "$T/plugins" p.yml
	expect_rc 2
	expect_no_file "$T/ran"
}

# --describe that hangs, or prints garbage: a warning (inputs unchecked), within the describe
# timeout, and the plugin's process group is killed.
t_describe_misbehaves() {
	plugin hangs <<'EOF'
#!/bin/sh
if [ "$1" = --describe ]; then
	'@SLEEPER@' 1000 &
	exec '@SLEEPER@' 1000
fi
echo ran
EOF
	plugin garbage <<'EOF'
#!/bin/sh
[ "$1" = --describe ] && { echo "this is not json"; exit 0; }
echo ran
EOF
	workflow <<'EOF'
jobs:
  j:
    steps:
      - hangs: {anything: 1}
      - garbage: {}
EOF
	local t0 t1
	t0=$(now)
	run validate --plugin-dir "$T/plugins" p.yml
	t1=$(now)
	expect_rc 0
	expect_grep "^p.yml:4:9: warning: .*runner-step-hangs --describe did not finish within 5 s; the inputs of step plugin 'hangs' are not checked" "$T/err"
	expect_grep "^p.yml:5:9: warning: .*runner-step-garbage --describe: not JSON" "$T/err"
	expect_le "validate duration (ms)" "$(elapsed_ms "$t0" "$t1")" 15000
	no_leftover
}

# ---- the search path --------------------------------------------------------------------------

# First match wins: --plugin-dir, then RUNNER_PLUGIN_PATH, then ~/.local/lib/runner/plugins,
# then PATH; `runner plugins path` shows that order and `list` the shadowed ones.
t_search_order() {
	local d
	for d in a b home path; do
		local dir=$T/$d
		[ "$d" = home ] && dir=$HOME/.local/lib/runner/plugins
		plugin where "$dir" <<EOF
#!/bin/sh
[ "\$1" = --describe ] && { echo '{"protocol": 1, "version": "$d", "description": "from $d"}'; exit 0; }
echo "where: $d"
EOF
	done
	workflow <<'EOF'
jobs:
  j:
    steps:
      - where: {}
EOF
	run run --plugin-dir "$T/a" p.yml
	expect_grep 'where: a$' "$T/out"
	RUNNER_PLUGIN_PATH="$T/nothing-here:$T/b" PATH="$T/path:$PATH" run run p.yml
	expect_grep 'where: b$' "$T/out"
	PATH="$T/path:$PATH" run run p.yml
	expect_grep 'where: home$' "$T/out"
	rm -r "$HOME/.local"
	PATH="$T/path:$PATH" run run p.yml
	expect_grep 'where: path$' "$T/out"
	expect_rc 0

	plugin where "$HOME/.local/lib/runner/plugins" <<'EOF'
#!/bin/sh
echo home
EOF
	RUNNER_PLUGIN_PATH="$T/b" PATH="$T/path:$PATH" run plugins path --plugin-dir "$T/a"
	expect_rc 0
	expect_eq "the first three directories" "$(head -n 3 "$T/out")" "$T/a	(--plugin-dir)
$T/b	(RUNNER_PLUGIN_PATH)
$HOME/.local/lib/runner/plugins	(home)"
	expect_grep '	\(installed\)$' "$T/out"
	expect_eq "PATH after the installed directory" \
		"$(grep -n -e '(installed)' -e "^$T/path	(PATH)" "$T/out" | cut -d: -f1 | tr '\n' ' ')" "4 5 "
	RUNNER_PLUGIN_PATH="$T/b" run plugins list --plugin-dir "$T/a"
	expect_rc 0
	expect_grep "^where +a +from a +$T/a/runner-step-where$" "$T/out"
	expect_grep "^ +\(shadowed by the above\) +$T/b/runner-step-where$" "$T/out"
	expect_grep "^ +\(shadowed by the above\) +$HOME/.local/lib/runner/plugins/runner-step-where$" "$T/out"
	run plugins list --json --plugin-dir "$T/a"
	expect_eq "json" "$(js "$T/out" '[(p["name"], p["version"], len(p["shadowed"])) for p in d["plugins"] if p["name"] == "where"]')" \
		'[["where", "a", 1]]'
}

# ---- the example plugins (steps/plugins), through the runner ------------------------------------

t_example_notify_file() {
	workflow <<'EOF'
jobs:
  build:
    steps:
      - id: n
        notify-file:
          path: notices/builds.log
          line: "{job} step {step} run {run_id}: ${{ job.status }} {env.WHO} {unknown}"
          create-dirs: true
        env: {WHO: tester}
      - notify-file: {path: notices/builds.log, line: "second"}
      - run: echo "lines=${{ steps.n.outputs.lines }} file=${{ steps.n.outputs.file }}" >"@T@/got"
EOF
	run validate --plugin-dir "$EXAMPLES" p.yml
	expect_rc 0
	run run --plugin-dir "$EXAMPLES" p.yml
	expect_rc 0
	local id
	id=$(js "$(summary)" 'd["run_id"]')
	expect_eq "the file" "$(cat "$T/notices/builds.log" 2>/dev/null)" "build step n run $id: success tester {unknown}
second"
	expect_eq "outputs" "$(cat "$T/got" 2>/dev/null)" "lines=1 file=$T/notices/builds.log"
	workflow <<'EOF'
jobs:
  build:
    steps:
      - notify-file: {path: missing-dir/x.log, line: x, colour: red}
EOF
	run validate --plugin-dir "$EXAMPLES" p.yml
	expect_rc 2
	expect_eq "validate says" "$(cat "$T/err")" "p.yml:4:57: error: unknown key 'colour' in 'notify-file' (it takes: path, line, create-dirs)"
}

# A small HTTP server of the test: /ok answers 200 "ok"; /later 503 twice, then 200 "ok";
# anything else 404. It writes its port to $T/port (its command line holds $MARK).
start_http() {
	cat >"$T/server.py" <<'EOF'
import http.server, os, sys
asked = {"n": 0}
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/later":
            asked["n"] += 1
        code = 200 if self.path == "/ok" or (self.path == "/later" and asked["n"] > 2) else \
               503 if self.path == "/later" else 404
        body = b"ok" if code == 200 else b"no"
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    do_HEAD = do_GET
    def log_message(self, *a):
        pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(s.server_address[1]))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
s.serve_forever()
EOF
	python3 "$T/server.py" "$T/port" "$MARK" &
	HTTP_PID=$!
	wait_for 30 test -s "$T/port" || fail "the HTTP server did not start"
	PORT=$(cat "$T/port" 2>/dev/null)
}

t_example_http_check() {
	start_http
	cat >"$T/p.yml" <<EOF
jobs:
  up:
    steps:
      - id: c
        http-check: {url: "http://127.0.0.1:$PORT/later", contains: ok, interval: 100ms, timeout: 30s}
      - run: echo "status=\${{ steps.c.outputs.status }} attempts=\${{ steps.c.outputs.attempts }}" >"$T/got"
      - http-check: {url: "http://127.0.0.1:$PORT/ok", method: HEAD, status: 200, timeout: 10}
EOF
	cat >"$T/q.yml" <<EOF
jobs:
  down:
    steps:
      - http-check: {url: "http://127.0.0.1:$PORT/missing", interval: 100ms, timeout: 1s}
      - http-check: {url: "http://127.0.0.1:$PORT/ok", contains: nope, interval: 100ms, timeout: 500ms}
        if: always()
EOF
	run validate --plugin-dir "$EXAMPLES" p.yml q.yml
	expect_rc 0
	run run --plugin-dir "$EXAMPLES" p.yml
	expect_rc 0
	expect_eq "outputs" "$(cat "$T/got" 2>/dev/null)" "status=200 attempts=3"
	expect_grep 'attempt 1: HTTP 503' "$T/out"
	expect_grep 'attempt 3: HTTP 200' "$T/out"
	run run --plugin-dir "$EXAMPLES" --log-dir "$T/logs-q" q.yml
	expect_rc 1
	local sq=$T/logs-q/summary.json
	expect_eq "404 step" "$(step_field down 0 status "$sq")/$(step_field down 0 exit_code "$sq")" failure/1
	expect_grep "/missing did not answer 200 within 1s" "$T/out"
	expect_eq "body step" "$(step_field down 1 status "$sq")/$(step_field down 1 exit_code "$sq")" failure/1
	expect_grep "the body does not contain the text" "$T/out"
	cat >"$T/q.yml" <<EOF
jobs:
  bad:
    steps:
      - http-check: {url: 'http://127.0.0.1:$PORT/', method: POST, timeout: soon}
EOF
	run validate --plugin-dir "$EXAMPLES" q.yml
	expect_rc 2
	expect_grep "^q.yml:4:[0-9]+: error: invalid value 'POST' for 'method' \(expected one of: GET, HEAD\)" "$T/err"
	kill "$HTTP_PID" 2>/dev/null
	wait "$HTTP_PID" 2>/dev/null
}

add "a plugin that succeeds gets its document, INPUT_* and env" t_succeeds
add "a plugin that fails fails its step with its exit status" t_fails
add "a plugin that times out: its whole tree is killed" t_times_out
add "a secret in a plugin's inputs is masked in what it prints" t_secret_masked
add "outputs and env of a plugin reach later steps and jobs" t_outputs
add "a failed plugin attempt is retried with the same document" t_retry
add "a plugin that cannot start: a failed step that says why" t_cannot_start
add "a plugin in Python 3" t_python_plugin
add "a missing plugin: error at line:col (warning with --plugins-optional)" t_missing
add "a plugin's --describe schema rejects bad keys with line:col" t_schema
add "a --describe that hangs or prints garbage: a warning, nothing left" t_describe_misbehaves
add "search order: --plugin-dir, RUNNER_PLUGIN_PATH, home, PATH; plugins list/path" t_search_order
add "example notify-file (sh) through the runner" t_example_notify_file
add "example http-check (python3) through the runner against a real server" t_example_http_check
run_all
