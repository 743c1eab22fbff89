#!/usr/bin/env bash
# Integration tests of the `notify:` webhooks sent by `runner serve` (docs/server.md#notify): a
# real server on 127.0.0.1 port 0 and a real agent run pipelines of a real git repository, and the
# notifications go to a real HTTP server started here: tests/integration/http_sink.py, loaded by a
# small wrapper that also records each request's body (the sink itself logs only its sha256).
# TAP output; see lib.sh.
#   server_notify.sh RUNNER_BINARY
. "$(dirname "$0")/lib.sh"

need_tools git python3 curl
if ! "$RUNNER" serve --help 2>/dev/null | grep -q -- '--public-url'; then
	echo "1..0 # SKIP this runner serve does not send notify: webhooks"
	exit 0
fi

git_home
export RUNNER_GIT_CACHE=$ROOT/gitcache
ADMIN=admin-$RANDOM$RANDOM-token-$$
REG=reg-$RANDOM$RANDOM-token-$$

# ---- the HTTP sink ------------------------------------------------------------------------------

cat >"$ROOT/sink.py" <<'EOF'
# http_sink.py with the body of each request (up to 64 KiB, as text) in its log entry as "body".
import importlib.util, sys, threading
path, port_file, log_file = sys.argv[1:4]
sys.argv = [path, port_file, log_file]
spec = importlib.util.spec_from_file_location("http_sink", path)
sink = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sink)
current = threading.local()
read_body = sink.Handler.read_body
def body_kept(self):
    current.body = b""
    for b in read_body(self):
        if len(current.body) < 65536:
            current.body += b[:65536 - len(current.body)]
        yield b
sink.Handler.read_body = body_kept
class Log(list):
    def append(self, entry):
        entry["body"] = getattr(current, "body", b"").decode("utf-8", "replace")
        super().append(entry)
sink.log = Log()
sink.main()
EOF
python3 "$ROOT/sink.py" "$(dirname "$(realpath "$0")")/http_sink.py" "$ROOT/port" "$ROOT/requests.json" &
SINK_PID=$!
for _i in $(seq 400); do
	[ -s "$ROOT/port" ] && break
	sleep 0.05
done
if [ ! -s "$ROOT/port" ]; then
	echo "1..0 # SKIP http_sink.py did not start"
	exit 0
fi
SINK=http://127.0.0.1:$(cat "$ROOT/port")
trap 'kill $SINK_PID 2>/dev/null; _cleanup' EXIT

# reqs PATH-PREFIX EXPR: EXPR (python over `r`, the logged requests whose path starts with
# PATH-PREFIX, oldest first, each with "doc": its body parsed as JSON) printed.
reqs() {
	python3 - "$ROOT/requests.json" "$1" "$2" <<'EOF'
import json, sys
r = [x for x in json.load(open(sys.argv[1])) if x["path"].startswith(sys.argv[2])]
for x in r:
    try:
        x["doc"] = json.loads(x["body"])
    except ValueError:
        x["doc"] = None
v = eval(sys.argv[3], {"r": r})
print(v if isinstance(v, str) else json.dumps(v))
EOF
}
# 0 once at least N requests under PATH-PREFIX were logged.
reqs_at_least() { # PATH-PREFIX N
	[ "$(reqs "$1" 'len(r)' 2>/dev/null)" -ge "$2" ] 2>/dev/null
}

# ---- server, agent, repository (as in agent.sh) ------------------------------------------------

declare -A APID

# Start `runner serve` (port $PORT, default 0; data in $T/MARK-srv; log $T/server.log); URL gets
# its base URL. Extra arguments are passed on.
start_server() {
	serve_at "$T/$MARK-srv" "$@"
}

lines_more() { # FILE ERE N
	[ "$(grep -Ec -- "$2" "$1" 2>/dev/null)" -gt "$3" ]
}

start_agent() { # NAME [ARGS...]
	local name=$1 n
	shift
	n=$(grep -c 'waiting for jobs' "$T/$name.log" 2>/dev/null)
	(exec "$RUNNER" agent --server "$URL" --token "$REG" --name "$name" --work-dir "$T/$MARK-$name" "$@") \
		>>"$T/$name.log" 2>&1 </dev/null &
	APID[$name]=$!
	if ! wait_for 30 lines_more "$T/$name.log" 'waiting for jobs' "${n:-0}"; then
		fail "agent $name did not start"
		return 1
	fi
}

# SIGTERM the server and wait for it: exit status 0 and no sanitizer report in its log.
stop_server() {
	[ -n "${SPID:-}" ] || return 0
	kill -TERM "$SPID" 2>/dev/null
	wait_pid "$SPID" 60
	expect_eq "server exit status" "$RC" 0
	if grep -q 'Sanitizer' "$T/server.log"; then
		fail "server: sanitizer report:"
		note "$(grep -A12 'Sanitizer' "$T/server.log" | head -30)"
	fi
	SPID=
}

# After a subtest: the agents (SIGTERM twice: running jobs are cancelled), then the server.
stop_procs() {
	local n
	for n in "${!APID[@]}"; do
		kill -TERM "${APID[$n]}" 2>/dev/null
		sleep 0.1
		kill -TERM "${APID[$n]}" 2>/dev/null
		wait_pid "${APID[$n]}" 30 || note "agent $n did not stop on SIGTERM"
	done
	APID=()
	[ -n "${SPID:-}" ] && { kill -9 "$SPID" 2>/dev/null; wait "$SPID" 2>/dev/null; }
	SPID=
	PORT=
	URL=
}

# A repository $T/repo (branch main) with the workflow $T/p.yml as .pipeline.yml; SHA gets its
# commit.
make_repo() {
	rm -rf "$T/repo"
	mkdir -p "$T/repo"
	cp "$T/p.yml" "$T/repo/.pipeline.yml"
	git -C "$T/repo" init -q -b main
	git -C "$T/repo" add -A
	git -C "$T/repo" commit -qm fixture
	SHA=$(git -C "$T/repo" rev-parse HEAD)
}

# Queue the pipeline of $T/repo at main; PIPE gets its id.
submit() {
	PIPE=$(admin_api /api/v1/pipelines POST "{\"repo\": \"$T/repo\", \"ref\": \"main\"}" |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])' 2>/dev/null)
	[ -n "$PIPE" ] || fail "submit failed"
}

pstatus() { # [ID]
	admin_api "/api/v1/pipelines/${1:-$PIPE}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])' 2>/dev/null
}
pipeline_done() { # [ID]
	case "$(pstatus "${1:-}")" in success | failure | cancelled) return 0 ;; esac
	return 1
}

# ---- subtests -----------------------------------------------------------------------------------

t_success() {
	workflow <<EOF
name: ci-@MARK@
notify:
  - url: $SINK/ok/@MARK@/all
    events: [pipeline, job]
  - url: $SINK/ok/@MARK@/status/\${{ git.sha }}
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
      - run: echo tested
EOF
	make_repo
	RUNNER_SECRET_TOKEN=tok-$MARK-secret start_server || return
	start_agent a1 || return
	submit
	wait_for 120 pipeline_done || fail "the pipeline did not finish"
	expect_eq "pipeline" "$(pstatus)" success
	wait_for 30 reqs_at_least "/ok/$MARK/all" 6 || fail "fewer than 6 notifications arrived"
	wait_for 30 reqs_at_least "/ok/$MARK/status/" 2 || fail "fewer than 2 status notifications arrived"
	local all=/ok/$MARK/all
	# in order, one sender per pipeline: started, each job started and finished, success
	expect_eq "events" "$(reqs "$all" '" ".join(x["doc"]["event"] + ":" + x["doc"]["state"] + (":" + x["doc"]["job"]["id"] if "job" in x["doc"] else "") for x in r)')" \
		"pipeline:started job:started:build job:success:build job:started:test job:success:test pipeline:success"
	expect_eq "pipeline ids" "$(reqs "$all" '" ".join(sorted(set(x["doc"]["pipeline"]["id"] for x in r)))')" "$PIPE"
	expect_eq "pipeline name" "$(reqs "$all" 'r[0]["doc"]["pipeline"]["name"]')" "ci-$MARK"
	expect_eq "sha" "$(reqs "$all" '" ".join(sorted(set(x["doc"]["sha"] for x in r)))')" "$SHA"
	expect_eq "ref" "$(reqs "$all" '" ".join(sorted(set(x["doc"]["ref"] for x in r)))')" main
	expect_eq "repo" "$(reqs "$all" 'r[0]["doc"]["repo"]')" "$T/repo"
	expect_eq "logs url" "$(reqs "$all" '" ".join(sorted(set(x["doc"]["url"] for x in r)))')" "$URL/pipelines/$PIPE"
	expect_eq "statuses" "$(reqs "$all" '" ".join(x["doc"]["status"] for x in r)')" \
		"running running success running success success"
	expect_eq "job build finished" "$(reqs "$all" 'str([(j["name"], j["status"], j["attempt"], j["reason"], j["started_ms"] > 0, j["duration_ms"] >= 0) for j in [r[2]["doc"]["job"]]])')" \
		"[('build', 'success', 1, None, True, True)]"
	expect_eq "pipeline finished" "$(reqs "$all" 'str([(p["status"], p["duration_ms"] >= 0) for p in [r[5]["doc"]["pipeline"]]])')" \
		"[('success', True)]"
	expect_eq "content type" "$(reqs "$all" 'r[0]["content_type"]')" application/json
	# the commit status: pending then success, with the logs URL and the secret header
	local st=/ok/$MARK/status/$SHA
	expect_eq "status states" "$(reqs "$st" '" ".join(x["doc"]["state"] for x in r)')" "pending success"
	expect_eq "status target" "$(reqs "$st" 'r[1]["doc"]["target_url"]')" "$URL/pipelines/$PIPE"
	expect_eq "status context" "$(reqs "$st" 'r[1]["doc"]["context"]')" "runner/ci-$MARK"
	expect_eq "authorization" "$(reqs "$st" 'r[0]["authorization"]')" "token tok-$MARK-secret"
	expect_no_grep "tok-$MARK-secret" "$T/server.log" "$T/a1.log"
	stop_server
	stop_procs
}

t_failure() {
	workflow <<EOF
notify:
  - url: $SINK/ok/@MARK@/fail
    events: [pipeline, job]
    on: [failure, success]
jobs:
  boom:
    steps:
      - run: exit 4
  after:
    needs: boom
    steps:
      - run: echo never
EOF
	make_repo
	start_server --public-url "http://ci.example:8443/" || return
	start_agent a1 || return
	submit
	wait_for 120 pipeline_done || fail "the pipeline did not finish"
	expect_eq "pipeline" "$(pstatus)" failure
	wait_for 30 reqs_at_least "/ok/$MARK/fail" 2 || fail "fewer than 2 notifications arrived"
	# the skipped job sends nothing; the pipeline's failure comes last
	local f=/ok/$MARK/fail
	expect_eq "events" "$(reqs "$f" '" ".join(x["doc"]["event"] + ":" + x["doc"]["state"] for x in r)')" "job:failure pipeline:failure"
	expect_eq "job" "$(reqs "$f" 'r[0]["doc"]["job"]["name"] + " " + r[0]["doc"]["job"]["status"]')" "boom failure"
	expect_grep 'exit code 4' <(reqs "$f" 'r[0]["doc"]["job"]["reason"]')
	expect_eq "public url" "$(reqs "$f" 'r[1]["doc"]["url"]')" "http://ci.example:8443/pipelines/$PIPE"
	stop_server
	stop_procs
}

t_retry_503() {
	workflow <<EOF
notify:
  - url: $SINK/flaky/@MARK@
    on: [success]
jobs: {a: {steps: [{run: 'true'}]}}
EOF
	make_repo
	start_server || return
	start_agent a1 || return
	submit
	wait_for 120 pipeline_done || fail "the pipeline did not finish"
	wait_for 60 reqs_at_least "/flaky/$MARK" 3 || fail "the 503s were not retried"
	expect_eq "attempts" "$(reqs "/flaky/$MARK" 'len(r)')" 3 # 503, 503, 200
	expect_eq "the same document each time" "$(reqs "/flaky/$MARK" 'len(set(x["sha256"] for x in r))')" 1
	expect_eq "document" "$(reqs "/flaky/$MARK" 'r[2]["doc"]["event"] + " " + r[2]["doc"]["status"] + " " + r[2]["doc"]["pipeline"]["id"]')" \
		"pipeline success $PIPE"
	expect_no_grep "notify" "$T/server.log"
	stop_server
	stop_procs
}

# Nothing is sent for a pipeline without notify: entries; a pipeline with one queued after it on
# the same server is the marker that everything before it had its chance to arrive.
t_no_notify() {
	workflow <<EOF
jobs: {a: {steps: [{run: 'echo quiet'}]}}
EOF
	make_repo
	start_server || return
	start_agent a1 || return
	local before quiet
	before=$(reqs / 'len(r)')
	submit
	quiet=$PIPE
	wait_for 120 pipeline_done || fail "the pipeline did not finish"
	expect_eq "quiet pipeline" "$(pstatus)" success
	workflow <<EOF
notify:
  - url: $SINK/ok/@MARK@/after
    on: [success]
jobs: {a: {steps: [{run: 'true'}]}}
EOF
	make_repo
	submit
	wait_for 120 pipeline_done || fail "the second pipeline did not finish"
	wait_for 30 reqs_at_least "/ok/$MARK/after" 1 || fail "the second pipeline's notification did not arrive"
	expect_eq "requests" "$(reqs / 'len(r)')" "$((before + 1))"
	expect_eq "the one request" "$(reqs "/ok/$MARK/after" 'r[0]["doc"]["pipeline"]["id"]')" "$PIPE"
	[ "$quiet" != "$PIPE" ] || fail "the same pipeline twice"
	stop_server
	stop_procs
}

# The server is killed (SIGKILL) while a job runs and restarted on the same port: the sink is made
# again for the live pipeline and the job's and pipeline's ends are notified.
t_restart() {
	workflow <<EOF
notify:
  - url: $SINK/ok/@MARK@/r
    events: [pipeline, job]
jobs:
  wait:
    steps:
      - run: |
          @WAIT@
          touch "@T@/started"
          w "@T@/go"
EOF
	make_repo
	start_server --lease-ttl 5s || return
	start_agent a1 || return
	submit
	wait_for 60 test -e "$T/started" || fail "the job did not start"
	wait_for 30 reqs_at_least "/ok/$MARK/r" 2 || fail "pipeline and job started were not notified"
	kill -9 "$SPID"
	wait "$SPID" 2>/dev/null
	start_server --lease-ttl 5s || return
	touch "$T/go"
	wait_for 120 pipeline_done || fail "the pipeline did not finish"
	expect_eq "pipeline" "$(pstatus)" success
	wait_for 30 reqs_at_least "/ok/$MARK/r" 4 || fail "the ends were not notified after the restart"
	expect_eq "events" "$(reqs "/ok/$MARK/r" '" ".join(x["doc"]["event"] + ":" + x["doc"]["state"] for x in r)')" \
		"pipeline:started job:started job:success pipeline:success"
	expect_eq "ids" "$(reqs "/ok/$MARK/r" '" ".join(sorted(set(x["doc"]["pipeline"]["id"] + " " + x["doc"]["url"] for x in r)))')" \
		"$PIPE $URL/pipelines/$PIPE"
	stop_server
	stop_procs
}

# Many pipelines with notify: every one notifies, and the server ends cleanly (under ASan: no
# leak per pipeline, every sink closed).
t_many() {
	workflow <<EOF
notify:
  - url: $SINK/ok/@MARK@/many
    on: [success]
  - url: $SINK/ok/@MARK@/gitea
    format: gitea-status
    on: [success]
jobs: {a: {steps: [{run: 'true'}]}, b: {needs: a, steps: [{run: 'true'}]}}
EOF
	make_repo
	start_server || return
	start_agent a1 --capacity 4 || return
	local i ids=()
	for i in $(seq 20); do
		submit
		ids+=("$PIPE")
	done
	for i in "${ids[@]}"; do
		wait_for 120 pipeline_done "$i" || fail "pipeline $i did not finish"
	done
	wait_for 60 reqs_at_least "/ok/$MARK/many" 20 || fail "fewer than 20 notifications"
	wait_for 60 reqs_at_least "/ok/$MARK/gitea" 20 || fail "fewer than 20 status notifications"
	expect_eq "pipelines notified" "$(reqs "/ok/$MARK/many" '" ".join(sorted(x["doc"]["pipeline"]["id"] for x in r))')" \
		"$(printf '%s\n' "${ids[@]}" | sort | tr '\n' ' ' | sed 's/ $//')"
	expect_eq "gitea states" "$(reqs "/ok/$MARK/gitea" '" ".join(sorted(set(x["doc"]["state"] for x in r)))')" success
	# the agent first (it stops polling), then the server with SIGTERM: a clean exit
	kill -TERM "${APID[a1]}" 2>/dev/null
	wait_pid "${APID[a1]}" 30
	APID=()
	stop_server
	stop_procs
}

add "pipeline and job started/success to json and github-status entries, ids, sha, ref, logs URL" t_success
add "a failing job sends failure; a skipped job nothing; --public-url in the links" t_failure
add "a 503 from the endpoint is retried until delivered" t_retry_503
add "a pipeline without notify: sends nothing" t_no_notify
add "a server restarted mid-job notifies the ends of its live pipeline" t_restart
add "20 pipelines notify, the server exits cleanly" t_many
run_all
