#!/usr/bin/env bash
# Integration tests of the `notify:` webhooks through the real binary: `runner run` and a run
# started by the git hook POST to a real HTTP server started here (http_sink.py, which logs every
# request with its headers and the SHA-256 of its body). A run's notifications are delivered (or
# given up) before `runner run` exits, so the test reads the log when the run is over.
#   notify.sh RUNNER_BINARY
. "$(dirname "$0")/lib.sh"

need_tools git python3
# `runner run` sends notifications once localrun makes a notify sink (rn_notify_sink_new); the
# warning prefix of the notify module is in the binary exactly when it is linked in.
if ! grep -q "runner: notify: " "$RUNNER"; then
	echo "1..0 # SKIP this runner does not send notify: webhooks yet (the notify sink is not wired into runner run)"
	exit 0
fi

git_home

python3 "$(dirname "$0")/http_sink.py" "$ROOT/port" "$ROOT/requests.json" &
SINK_PID=$!
for _i in $(seq 400); do
	[ -s "$ROOT/port" ] && break
	sleep 0.05
done
if [ ! -s "$ROOT/port" ]; then
	echo "1..0 # SKIP http_sink.py did not start"
	exit 0
fi
PORT=$(cat "$ROOT/port")
URL=http://127.0.0.1:$PORT
trap 'kill $SINK_PID 2>/dev/null; _cleanup' EXIT

# reqs PATH-PREFIX EXPR: EXPR (python over `r`, the list of logged requests whose path starts with
# PATH-PREFIX) evaluated; e.g. reqs /ok/x 'len(r)'.
reqs() {
	python3 - "$ROOT/requests.json" "$1" "$2" <<'EOF'
import json, sys
r = [x for x in json.load(open(sys.argv[1])) if x["path"].startswith(sys.argv[2])]
v = eval(sys.argv[3], {"r": r})
print(v if isinstance(v, str) else json.dumps(v))
EOF
}

t_run_notifies() {
	workflow <<EOF
name: ci
notify:
  - url: $URL/ok/@MARK@/all
    events: [pipeline, job]
  - url: $URL/ok/@MARK@/failures
    events: [job]
    on: [failure]
  - url: $URL/ok/@MARK@/status/\${{ git.sha }}
    format: github-status
    headers:
      Authorization: token \${{ secrets.TOKEN }}
jobs:
  build:
    steps:
      - run: echo built
  test:
    needs: build
    steps:
      - run: exit 1
EOF
	run run --secret TOKEN=tok-$MARK-secret p.yml
	expect_rc 1
	# pipeline started, build started + success, test started + failure, pipeline failure
	expect_eq "all" "$(reqs "/ok/$MARK/all" 'len(r)')" 6
	expect_eq "failures" "$(reqs "/ok/$MARK/failures" 'len(r)')" 1
	expect_eq "status" "$(reqs "/ok/$MARK/status/" 'len(r)')" 2
	expect_eq "authorization" "$(reqs "/ok/$MARK/status/" 'r[0]["authorization"]')" "token tok-$MARK-secret"
	expect_eq "content type" "$(reqs "/ok/$MARK/all" 'r[0]["content_type"]')" application/json
	expect_no_grep "tok-$MARK-secret" "$T/out" "$T/err"
	[ -d "$T/.runner" ] || fail "no .runner directory"
	! grep -rq "tok-$MARK-secret" "$T/.runner" || fail "the secret is in a file under .runner"
}

t_retry_after_503() {
	workflow <<EOF
notify:
  - url: $URL/flaky/@MARK@
    on: [success]
jobs: {a: {steps: [{run: 'true'}]}}
EOF
	run run p.yml
	expect_rc 0
	expect_eq "attempts" "$(reqs "/flaky/$MARK" 'len(r)')" 3 # 503, 503, 200
	expect_no_grep "notify" "$T/err"
}

t_dead_endpoint() {
	workflow <<EOF
notify:
  - url: $URL/reject/@MARK@
jobs: {a: {steps: [{run: 'echo fine'}]}}
EOF
	run run p.yml
	expect_rc 0 # a webhook never fails the run
	expect_grep "runner: notify: .*/reject/$MARK: pipeline (started|success): not delivered .*HTTP 403" "$T/err"
}

# A run the git hook starts notifies with the pushed ref and commit.
t_hook_run_notifies() {
	local g=$T/$MARK.git w=$T/work
	git init -q --bare -b main "$g"
	run hook install "$g"
	expect_rc 0
	git clone -q "file://$g" "$w" 2>/dev/null
	cat >"$w/.pipeline.yml" <<EOF
notify:
  - url: $URL/ok/$MARK/hook/\${{ git.sha }}
    on: [success]
jobs: {a: {steps: [{run: 'true'}]}}
EOF
	git -C "$w" add -A && git -C "$w" commit -qm ci && git -C "$w" push -q origin main 2>/dev/null
	wait_for 60 grep -q ': finished: ' "$g/runner/hook.log" || fail "the run did not finish"
	local sha
	sha=$(git -C "$w" rev-parse HEAD)
	expect_eq "hook run" "$(reqs "/ok/$MARK/hook/$sha" 'len(r)')" 1
}

add "runner run POSTs pipeline and job state changes; filters, formats, secret headers" t_run_notifies
add "a 503 is retried until delivered" t_retry_after_503
add "an endpoint that refuses: one warning, the run still succeeds" t_dead_endpoint
add "a run started by the git hook notifies for the pushed commit" t_hook_run_notifies
run_all
