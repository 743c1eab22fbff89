#!/usr/bin/env bash
# Integration tests of `runner serve` (docs/protocol.md) against the real binary on 127.0.0.1 with
# port 0, talking HTTP with curl and playing the agent by hand: start/stop, tokens, registration,
# long-polls, acknowledgement timeouts, heartbeats and cancels, log offsets, lease expiry and
# fencing, job decisions after finish, invalid workflows, hostile input, artifacts, restarts,
# the status page and /metrics. TAP output; see lib.sh.
#   server.sh RUNNER_BINARY
. "$(dirname "$0")/lib.sh"

command -v curl >/dev/null || {
	echo "1..0 # SKIP curl is not installed"
	exit 0
}

ADMIN=admin-token-0123456789abcdef
REG=registration-token-0123456789ab
URL=
HS=
export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@example.com GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@example.com

# ---- helpers ------------------------------------------------------------------------------------

# start_server [OPTIONS...]: runner serve on 127.0.0.1:0 with data in $T/data and the test's tokens
# in the environment; waits for DATA/address (the server writes it once it accepts connections).
start_server() {
	rm -f "$T/data/address"
	RUNNER_ADMIN_TOKEN=$ADMIN RUNNER_REGISTRATION_TOKEN=$REG start_bg serve --listen 127.0.0.1:0 --data "$T/data" "$@"
	if ! wait_for 30 test -s "$T/data/address"; then
		fail "the server did not write $T/data/address"
		return 1
	fi
	URL=$(cat "$T/data/address")
}

# stop_server: SIGTERM; it must exit 0 without a sanitizer report (in ASan/UBSan builds).
stop_server() {
	kill -TERM "$RPID"
	wait_bg 30
	expect_eq "server exit status after SIGTERM" "$RC" 0
	expect_no_grep 'runtime error|Sanitizer' "$T/err"
}

# api METHOD PATH TOKEN [CURL ARGS...]: the answer's body in $T/body, its headers in $T/hdr, the
# status code in HS.
api() {
	local m=$1 p=$2 tok=$3
	shift 3
	HS=$(curl -s -o "$T/body" -D "$T/hdr" -w '%{http_code}' -X "$m" -H "Authorization: Bearer $tok" \
		--max-time 100 "$@" "$URL$p")
}

# A field of the last answer (python over d), and a header of it.
jb() { js "$T/body" "$1"; }
hdr() { sed -n "s/^$1: *//Ip" "$T/hdr" | tr -d '\r'; }

expect_status() { # WHAT CODE
	[ "$HS" = "$2" ] || fail "$1: HTTP $HS, expected $2: $(head -c 300 "$T/body")"
}

# make_repo: a git repository $T/repo whose .pipeline.yml is stdin, one commit on main.
make_repo() {
	mkdir -p "$T/repo"
	git -C "$T/repo" init -q -b main
	cat >"$T/repo/.pipeline.yml"
	git -C "$T/repo" add .pipeline.yml
	git -C "$T/repo" commit -qm "pipeline"
}

# submit [JSON FIELDS]: POST a pipeline of $T/repo; its id in PID_.
submit() {
	api POST /api/v1/pipelines "$ADMIN" -H 'Content-Type: application/json' \
		-d "{\"repo\": \"$T/repo\"${1:+, $1}}"
	expect_status "submit" 201
	PID_=$(jb 'd["id"]')
}

# register NAME [LABELS_JSON]: an agent; its token in AT.
register() {
	api POST /api/v1/agents/register "$REG" -d "{\"name\": \"$1\", \"labels\": ${2:-[]}, \"capacity\": 1}"
	expect_status "register $1" 201
	AT=$(jb 'd["token"]')
}

# poll TOKEN [WAIT] [BODY]: one poll; the lease in LEASE ("" when 204).
poll() {
	api POST "/api/v1/agents/poll?wait=${2:-5}" "$1" -d "${3:-{\"free\": 1\}}"
	LEASE=
	if [ "$HS" = 200 ]; then
		LEASE=$(jb 'd["lease"]')
	fi
}

# lease CALL TOKEN [CURL ARGS]: POST /api/v1/leases/$LEASE/CALL
lease() {
	local call=$1 tok=$2
	shift 2
	api POST "/api/v1/leases/$LEASE/$call" "$tok" "$@"
}

# job_field ID EXPR: a field of GET /api/v1/jobs/ID (python over d).
job_field() {
	api GET "/api/v1/jobs/$1" "$ADMIN"
	jb "$2"
}

agent_seen() { # NAME: the agent has polled (last_seen_ms set)
	api GET /api/v1/agents "$ADMIN"
	[ "$(jb "[a['last_seen_ms'] is not None for a in d['agents'] if a['name'] == '$1'][0]")" = true ]
}

job_is() { [ "$(job_field "$1" 'd["status"]')" = "$2" ]; }
pipeline_is() {
	api GET "/api/v1/pipelines/$1" "$ADMIN"
	[ "$(jb 'd["status"]')" = "$2" ]
}

# ---- start, stop, tokens ------------------------------------------------------------------------

t_start_stop() {
	start_bg serve --listen 127.0.0.1:0 --data "$T/data"
	wait_for 30 test -s "$T/data/address" || {
		fail "no address file"
		return
	}
	URL=$(cat "$T/data/address")
	expect_grep '^http://127\.0\.0\.1:[0-9]+$' "$T/data/address"
	expect_grep "^runner serve: listening on $URL\$" "$T/out"
	local admin reg
	admin=$(sed -n 's/^admin=//p' "$T/data/tokens")
	reg=$(sed -n 's/^registration=//p' "$T/data/tokens")
	expect_eq "tokens file mode" "$(stat -c %a "$T/data/tokens")" 600
	expect_eq "admin token length" "${#admin}" 64
	expect_eq "registration token length" "${#reg}" 64
	expect_grep "admin=$admin" "$T/out"
	expect_grep "registration=$reg" "$T/out"
	api GET /api/v1/pipelines "$admin"
	expect_status "admin token from the tokens file" 200
	api POST /api/v1/agents/register "$reg" -d '{"name": "x"}'
	expect_status "registration token from the tokens file" 201
	stop_server
	expect_no_file "$T/data/address"
	# a second start keeps the tokens and does not print them
	start_bg serve --listen 127.0.0.1:0 --data "$T/data"
	wait_for 30 test -s "$T/data/address" || fail "no address file on the second start"
	URL=$(cat "$T/data/address")
	expect_no_grep "$admin" "$T/out"
	api GET /api/v1/pipelines "$admin"
	expect_status "same admin token after a restart" 200
	# SIGINT stops it too
	kill -INT "$RPID"
	wait_bg 30
	expect_eq "exit status after SIGINT" "$RC" 0
}

t_env_tokens() {
	start_server
	expect_no_file "$T/data/tokens"
	api GET /api/v1/pipelines "$ADMIN"
	expect_status "admin token" 200
	expect_eq "empty list" "$(jb 'd["pipelines"]')" "[]"
	api GET /api/v1/pipelines wrong-token
	expect_status "wrong token" 401
	expect_eq "error code" "$(jb 'd["code"]')" unauthorized
	HS=$(curl -s -o "$T/body" -w '%{http_code}' "$URL/api/v1/pipelines")
	expect_status "no token" 401
	api GET /api/v1/pipelines "$REG"
	expect_status "registration token on a user endpoint" 403
	api POST /api/v1/agents/register "$ADMIN" -d '{"name": "x"}'
	expect_status "admin token on registration" 403
	register a1
	api GET /api/v1/pipelines "$AT"
	expect_status "agent token on a user endpoint" 403
	poll "$ADMIN" 0
	expect_status "admin token on poll" 403
	poll "$REG" 0
	expect_status "registration token on poll" 403
	stop_server
}

t_start_failures() {
	python3 -c 'import socket,time,sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
open(sys.argv[1], "w").write(str(s.getsockname()[1])); time.sleep(60)' "$T/port" &
	local holder=$!
	wait_for 10 test -s "$T/port" || fail "no port holder"
	run serve --listen "127.0.0.1:$(cat "$T/port")" --data "$T/data"
	kill "$holder"
	wait "$holder" 2>/dev/null
	expect_rc 3
	expect_grep 'cannot listen on 127\.0\.0\.1' "$T/err"
	: >"$T/file"
	run serve --listen 127.0.0.1:0 --data "$T/file/sub"
	expect_rc 3
	run serve --listen nonsense --data "$T/data"
	expect_rc 2
	run serve --lease-ttl forever
	expect_rc 2
	run serve --bogus
	expect_rc 2
	# one server per data directory
	start_server
	run serve --listen 127.0.0.1:0 --data "$T/data"
	expect_rc 3
	expect_grep 'another runner serve' "$T/err"
	stop_server
}

# ---- polls ------------------------------------------------------------------------------------

t_poll_wait() {
	make_repo <<'EOF'
jobs:
  gpu:
    runs-on: [gpu]
    steps:
      - run: echo gpu
EOF
	start_server
	register plain '["linux"]'
	local t0 t1 ms
	t0=$(now)
	poll "$AT" 1
	t1=$(now)
	expect_status "poll with nothing queued" 204
	ms=$(elapsed_ms "$t0" "$t1")
	expect_ge "a poll with wait=1 is held (ms)" "$ms" 900
	submit
	# the job needs the label gpu: this agent gets nothing, one with it gets the job
	poll "$AT" 1
	expect_status "poll without the label" 204
	api GET /api/v1/agents "$ADMIN"
	expect_eq "agent labels" "$(jb '[a["labels"] for a in d["agents"]]')" '[["linux"]]'
	# labels in the poll replace the registered ones
	poll "$AT" 1 '{"free": 1, "labels": ["linux", "gpu"]}'
	expect_status "poll with the label" 200
	expect_eq "job name" "$(jb 'd["job"]["name"]')" gpu
	expect_eq "job id" "$(jb 'd["job"]["id"]')" "$PID_.1"
	expect_eq "repo" "$(jb 'd["job"]["repo"]')" "$T/repo"
	expect_eq "git branch" "$(jb 'd["job"]["git"]["branch"]')" main
	expect_eq "sha" "$(jb 'd["job"]["sha"]')" "$(git -C "$T/repo" rev-parse HEAD)"
	expect_grep 'echo gpu' "$T/body"
	expect_eq "lease ttl" "$(jb 'd["lease_ttl_ms"]')" 30000
	api GET /api/v1/agents "$ADMIN"
	expect_eq "running count" "$(jb 'd["agents"][0]["running"]')" 1
	poll "$AT" 0 '{"free": 0}'
	expect_status "free 0" 400
	stop_server
}

t_poll_latency() {
	make_repo <<'EOF'
jobs:
  one:
    steps:
      - run: echo one
EOF
	start_server
	register fast
	# a poll waiting when the job is queued is answered at once
	(
		curl -s -o "$T/assign" -X POST -H "Authorization: Bearer $AT" -d '{"free": 1}' --max-time 60 \
			"$URL/api/v1/agents/poll?wait=30"
		echo "$EPOCHREALTIME" >"$T/answered.tmp"
		mv "$T/answered.tmp" "$T/answered"
	) &
	local bg=$!
	# the poll is waiting once the agent has been seen (last_seen_ms is null until its first poll,
	# and set in the same locked step that starts the wait)
	wait_for 10 agent_seen fast || fail "the poll did not start"
	submit
	wait_for 30 test -s "$T/answered" || fail "the waiting poll was not answered"
	wait "$bg"
	# from the moment the server queued the job (its clock) to the moment the answer arrived
	local queued ms
	queued=$(job_field "$PID_.1" 'd["queued_ms"]')
	ms=$(awk -v a="$queued" -v b="$(cat "$T/answered")" 'BEGIN { printf "%d\n", b * 1000 - a }')
	echo "# queue-to-answer latency of a waiting poll: ${ms} ms"
	expect_le "queue-to-answer latency (ms, safety bound)" "$ms" 5000
	expect_eq "the waiting poll got the job" "$(js "$T/assign" 'd["job"]["name"]')" one
	stop_server
}

t_ack_timeout() {
	make_repo <<'EOF'
jobs:
  a:
    steps:
      - run: echo a
EOF
	start_server --ack-timeout 1s
	register slow
	local slow=$AT
	register quick
	local quick=$AT
	submit
	poll "$slow" 1
	expect_status "first assignment" 200
	local first=$LEASE
	expect_eq "state while not acknowledged" "$(job_field "$PID_.1" 'd["status"]')" assigned
	wait_for 15 job_is "$PID_.1" queued || fail "the unacknowledged job was not queued again"
	expect_eq "attempt after an ack timeout" "$(job_field "$PID_.1" 'd["attempt"]')" 1
	LEASE=$first
	lease ack "$slow"
	expect_status "late ack" 410
	expect_eq "code" "$(jb 'd["code"]')" lease_gone
	poll "$quick" 1
	expect_status "reassigned" 200
	[ "$LEASE" != "$first" ] || fail "the same lease was handed out twice"
	lease ack "$quick"
	expect_status "ack" 200
	expect_eq "running after ack" "$(job_field "$PID_.1" 'd["status"]')" running
	expect_eq "agent" "$(job_field "$PID_.1" 'd["agent"]')" quick
	# after the ack timeout has passed, the acknowledged lease still lives
	sleep 1.5
	expect_eq "still running" "$(job_field "$PID_.1" 'd["status"]')" running
	stop_server
}

# ---- heartbeats, cancel ---------------------------------------------------------------------------

t_heartbeat_cancel() {
	make_repo <<'EOF'
jobs:
  long:
    steps:
      - run: sleep 100
  after:
    needs: [long]
    steps:
      - run: echo after
EOF
	start_server
	register a
	submit
	poll "$AT" 1
	lease ack "$AT"
	lease heartbeat "$AT"
	expect_status "heartbeat" 200
	expect_eq "no cancel" "$(jb 'd["cancel"]')" false
	expect_eq "ttl" "$(jb 'd["lease_ttl_ms"]')" 30000
	# a waiting heartbeat is answered as soon as the job is cancelled
	(
		curl -s -o "$T/hb" -X POST -H "Authorization: Bearer $AT" --max-time 60 \
			"$URL/api/v1/leases/$LEASE/heartbeat?wait=20"
		echo "$EPOCHREALTIME" >"$T/hb_at.tmp"
		mv "$T/hb_at.tmp" "$T/hb_at"
	) &
	local bg=$!
	sleep 0.3
	local t0
	t0=$(now)
	api POST "/api/v1/jobs/$PID_.1/cancel" "$ADMIN"
	expect_status "cancel" 200
	expect_eq "a leased job keeps running until its agent stops it" "$(jb 'd["status"]')" running
	wait_for 30 test -s "$T/hb_at" || fail "the waiting heartbeat was not answered"
	wait "$bg"
	expect_eq "cancel in the heartbeat" "$(js "$T/hb" 'd["cancel"]')" true
	local ms
	ms=$(elapsed_ms "$t0" "$(cat "$T/hb_at")")
	echo "# cancel-to-heartbeat latency: ${ms} ms"
	expect_le "cancel reached the waiting heartbeat (ms)" "$ms" 5000
	lease steps "$AT" -d '{"steps": [{"index": 0, "name": "sleep 100", "status": "cancelled", "attempt": 1, "exit_code": 143, "started_ms": 1, "duration_ms": 5, "reason": "cancelled"}]}'
	expect_status "steps" 200
	expect_eq "cancel in the steps answer" "$(jb 'd["cancel"]')" true
	lease finish "$AT" -d '{"status": "cancelled", "reason": "cancelled"}'
	expect_status "finish" 200
	expect_eq "job" "$(jb 'd["status"]')" cancelled
	expect_eq "step kept" "$(jb 'd["steps"][0]["exit_code"]')" 143
	expect_eq "dependant skipped" "$(job_field "$PID_.2" 'd["status"]')" skipped
	pipeline_is "$PID_" cancelled || fail "pipeline: $(jb 'd["status"]')"
	# cancelling something finished changes nothing
	api POST "/api/v1/pipelines/$PID_/cancel" "$ADMIN"
	expect_status "cancel a finished pipeline" 200
	expect_eq "still cancelled" "$(jb 'd["status"]')" cancelled
	stop_server
}

t_cancel_pipeline() {
	make_repo <<'EOF'
jobs:
  a:
    steps:
      - run: echo a
  b:
    steps:
      - run: echo b
  c:
    needs: [a]
    steps:
      - run: echo c
EOF
	start_server
	register a
	submit
	poll "$AT" 1
	local running
	running=$(jb 'd["job"]["name"]')
	lease ack "$AT"
	api POST "/api/v1/pipelines/$PID_/cancel" "$ADMIN"
	expect_status "cancel" 200
	expect_eq "states right after the cancel" "$(jb '[j["status"] for j in d["jobs"]]')" \
		'["running", "cancelled", "cancelled"]'
	expect_eq "running job told" "$(jb 'd["jobs"][0]["cancel_requested"]')" true
	expect_eq "pipeline still running" "$(jb 'd["status"]')" running
	poll "$AT" 1
	expect_status "nothing left to hand out" 204
	stop_server
	[ "$running" = a ] || fail "the first job handed out was $running"
}

# ---- logs -----------------------------------------------------------------------------------------

t_log_offsets() {
	make_repo <<'EOF'
jobs:
  a:
    steps:
      - run: echo a
EOF
	start_server
	register a
	submit
	poll "$AT" 1
	lease ack "$AT"
	printf 'hello\n' >"$T/c1"
	lease "log?offset=0" "$AT" --data-binary @"$T/c1"
	expect_status "append" 200
	expect_eq "offset after append" "$(jb 'd["offset"]')" 6
	lease "log?offset=0" "$AT" --data-binary @"$T/c1"
	expect_status "duplicate" 200
	expect_eq "offset after a duplicate" "$(jb 'd["offset"]')" 6
	printf 'lo\nworld\n' >"$T/c2"
	lease "log?offset=3" "$AT" --data-binary @"$T/c2"
	expect_status "overlap" 200
	expect_eq "offset after an overlap" "$(jb 'd["offset"]')" 12
	lease "log?offset=20" "$AT" --data-binary @"$T/c1"
	expect_status "gap" 409
	expect_eq "gap code" "$(jb 'd["code"]')" offset
	expect_eq "server offset in the 409" "$(jb 'd["offset"]')" 12
	lease "log" "$AT" --data-binary @"$T/c1"
	expect_status "no offset" 400
	lease "log?offset=-1" "$AT" --data-binary @"$T/c1"
	expect_status "negative offset" 400
	api GET "/api/v1/jobs/$PID_.1/log" "$ADMIN"
	expect_status "log" 200
	expect_eq "log bytes" "$(cat "$T/body")" "$(printf 'hello\nworld')"
	expect_eq "X-Log-Offset" "$(hdr X-Log-Offset)" 12
	expect_eq "X-Log-Attempt" "$(hdr X-Log-Attempt)" 1
	expect_eq "not complete while running" "$(hdr X-Log-Complete)" ""
	api GET "/api/v1/jobs/$PID_.1/log?offset=6" "$ADMIN"
	expect_eq "log from an offset" "$(cat "$T/body")" world
	# a tail waiting at the end gets the next bytes as they arrive
	(
		curl -s -o "$T/tail" -D "$T/tail_hdr" -H "Authorization: Bearer $ADMIN" --max-time 60 \
			"$URL/api/v1/jobs/$PID_.1/log?offset=12&wait=20"
		echo "$EPOCHREALTIME" >"$T/tail_at.tmp"
		mv "$T/tail_at.tmp" "$T/tail_at"
	) &
	local bg=$!
	sleep 0.3
	local t0
	t0=$(now)
	printf 'more\n' >"$T/c3"
	lease "log?offset=12" "$AT" --data-binary @"$T/c3"
	expect_status "append while tailed" 200
	wait_for 30 test -s "$T/tail_at" || fail "the waiting tail was not answered"
	wait "$bg"
	expect_eq "tail bytes" "$(cat "$T/tail")" more
	expect_le "tail latency (ms)" "$(elapsed_ms "$t0" "$(cat "$T/tail_at")")" 5000
	lease finish "$AT" -d '{"status": "success"}'
	api GET "/api/v1/jobs/$PID_.1/log?offset=17&wait=20" "$ADMIN"
	expect_eq "complete after finish" "$(hdr X-Log-Complete)" 1
	expect_eq "no bytes at the end" "$(wc -c <"$T/body")" 0
	api GET "/api/v1/jobs/$PID_.1/log?attempt=2" "$ADMIN"
	expect_status "no such attempt" 404
	# a chunk over 1 MiB is refused
	head -c $((1024 * 1024 + 1)) /dev/zero >"$T/big"
	lease "log?offset=17" "$AT" --data-binary @"$T/big"
	expect_status "finished lease, oversized chunk" 413
	stop_server
}

# ---- lease expiry and fencing ----------------------------------------------------------------------

t_lease_expiry() {
	make_repo <<'EOF'
jobs:
  a:
    steps:
      - run: echo a
EOF
	start_server --lease-ttl 2s --max-attempts 2
	register dies
	local dead=$AT
	register lives
	local live=$AT
	submit
	poll "$dead" 1
	local old=$LEASE
	lease ack "$dead"
	printf 'first attempt\n' >"$T/c1"
	lease "log?offset=0" "$dead" --data-binary @"$T/c1"
	# no heartbeat: the lease expires, the job is queued again as attempt 2
	wait_for 15 job_is "$PID_.1" queued || fail "the job of the expired lease was not queued again"
	expect_eq "attempt" "$(job_field "$PID_.1" 'd["attempt"]')" 2
	expect_grep 'lease expired' "$T/body"
	poll "$live" 1
	expect_status "new assignment" 200
	expect_eq "JOBSPEC attempt" "$(jb 'd["job"]["attempt"]')" 2
	local new=$LEASE
	lease ack "$live"
	# every call of the old lease is refused and changes nothing
	LEASE=$old
	local call
	for call in ack heartbeat "log?offset=14" steps finish; do
		case $call in
		steps) lease "$call" "$dead" -d '{"steps": [{"index": 0, "status": "success"}]}' ;;
		finish) lease "$call" "$dead" -d '{"status": "success"}' ;;
		log*) lease "$call" "$dead" --data-binary @"$T/c1" ;;
		*) lease "$call" "$dead" ;;
		esac
		expect_status "old lease: $call" 410
	done
	api PUT "/api/v1/leases/$old/artifacts/x?sha256=$(sha "$T/c1")&format=zip" "$dead" --data-binary @"$T/c1"
	expect_status "old lease: artifact" 410
	# the new agent's lease works; the old one's log stays attempt 1's
	LEASE=$new
	lease heartbeat "$live"
	expect_status "new lease heartbeat" 200
	printf 'second\n' >"$T/c2"
	lease "log?offset=0" "$live" --data-binary @"$T/c2"
	expect_eq "attempt 2 log starts at 0" "$(jb 'd["offset"]')" 7
	api GET "/api/v1/jobs/$PID_.1/log?attempt=1" "$ADMIN"
	expect_eq "attempt 1 log" "$(cat "$T/body")" "first attempt"
	expect_eq "attempt 1 complete" "$(hdr X-Log-Complete)" 1
	api GET "/api/v1/jobs/$PID_.1/log" "$ADMIN"
	expect_eq "latest attempt log" "$(cat "$T/body")" second
	expect_eq "latest attempt" "$(hdr X-Log-Attempt)" 2
	# the second agent dies too: max attempts reached, the job fails
	wait_for 15 job_is "$PID_.1" failure || fail "the job did not fail after max attempts"
	expect_eq "reason" "$(job_field "$PID_.1" 'd["reason"]')" "agent lost"
	pipeline_is "$PID_" failure || fail "pipeline state $(jb 'd["status"]')"
	stop_server
}

t_forged_leases() {
	start_server
	register a
	local forged
	for forged in 0000000000000000000000000000000000000000000000000000000000000000 not-a-lease \
		"$(printf '%064d' 7)"; do
		LEASE=$forged
		lease heartbeat "$AT"
		expect_status "forged lease $forged" 410
		lease finish "$AT" -d '{"status": "success"}'
		expect_status "forged finish" 410
	done
	stop_server
}

# ---- decisions ----------------------------------------------------------------------------------

# run_job TOKEN STATUS [OUTPUTS_JSON]: poll one job, ack it and finish it; its name in JOBNAME
run_job() {
	poll "$1" 2
	if [ "$HS" != 200 ]; then
		fail "no job to run (HTTP $HS)"
		JOBNAME=
		return 1
	fi
	JOBNAME=$(jb 'd["job"]["name"]')
	cp "$T/body" "$T/spec-$JOBNAME.json"
	lease ack "$1"
	lease finish "$1" -d "{\"status\": \"$2\", \"outputs\": ${3:-{\}}}"
	expect_status "finish $JOBNAME" 200
}

t_decisions() {
	make_repo <<'EOF'
jobs:
  build:
    outputs: {version: "${{ steps.v.outputs.version }}"}
    steps:
      - id: v
        run: echo "version=1.2" >> "$RUNNER_OUTPUT"
  test:
    needs: [build]
    if: needs.build.outputs.version == '1.2'
    steps:
      - run: echo test
  never:
    needs: [build]
    if: needs.build.outputs.version == '9'
    steps:
      - run: echo never
  lint:
    continue-on-error: true
    steps:
      - run: exit 1
  report:
    needs: [lint, test]
    steps:
      - run: echo report
  cleanup:
    needs: [report]
    if: always()
    steps:
      - run: echo cleanup
EOF
	start_server
	register a
	submit
	expect_eq "initial states" "$(jb '[j["status"] for j in d["jobs"]]')" \
		'["queued", "pending", "pending", "queued", "pending", "pending"]'
	run_job "$AT" success '{"version": "1.2"}'
	expect_eq "first job" "$JOBNAME" build
	api GET "/api/v1/pipelines/$PID_" "$ADMIN"
	expect_eq "after build" "$(jb '[j["status"] for j in d["jobs"]]')" \
		'["success", "queued", "skipped", "queued", "pending", "pending"]'
	expect_eq "skip reason" "$(jb 'd["jobs"][2]["reason"]')" "condition is false"
	run_job "$AT" failure
	expect_eq "second job (queue order)" "$JOBNAME" lint
	run_job "$AT" success
	expect_eq "third job" "$JOBNAME" test
	expect_eq "needs in the JOBSPEC" \
		"$(js "$T/spec-test.json" 'd["job"]["needs"]')" '{"build": {"result": "success", "outputs": {"version": "1.2"}}}'
	run_job "$AT" success
	expect_eq "fourth job (continue-on-error lint counts as success)" "$JOBNAME" report
	expect_eq "lint result for report" "$(js "$T/spec-report.json" 'd["job"]["needs"]["lint"]["result"]')" success
	run_job "$AT" success
	expect_eq "fifth job" "$JOBNAME" cleanup
	pipeline_is "$PID_" success || fail "pipeline $(jb 'd["status"]') (a continue-on-error failure does not fail it)"
	expect_eq "lint state" "$(jb 'd["jobs"][3]["status"]')" failure
	stop_server
}

t_failure_stops() {
	make_repo <<'EOF'
jobs:
  a:
    steps:
      - run: exit 1
  b:
    runs-on: [other]
    steps:
      - run: echo b
  c:
    needs: [a]
    steps:
      - run: echo c
  d:
    needs: [a]
    if: failure()
    steps:
      - run: echo d
  m:
    needs: [d]
    matrix:
      n: [1, 2, 3]
    steps:
      - run: echo m
EOF
	start_server
	register a
	submit
	run_job "$AT" failure
	api GET "/api/v1/pipelines/$PID_" "$ADMIN"
	# b was queued but not started: skipped after the failure; c skipped; d runs (failure())
	expect_eq "after a failure" "$(jb '[(j["name"], j["status"]) for j in d["jobs"]]')" \
		'[["a", "failure"], ["b", "skipped"], ["c", "skipped"], ["d", "queued"], ["m (1)", "pending"], ["m (2)", "pending"], ["m (3)", "pending"]]'
	expect_eq "reason" "$(jb 'd["jobs"][1]["reason"]')" "an earlier job failed"
	run_job "$AT" success
	expect_eq "d ran" "$JOBNAME" d
	api GET "/api/v1/pipelines/$PID_" "$ADMIN"
	expect_eq "matrix after a failure elsewhere" "$(jb '[j["status"] for j in d["jobs"][4:]]')" \
		'["skipped", "skipped", "skipped"]'
	expect_eq "pipeline" "$(jb 'd["status"]')" failure
	stop_server
}

t_fail_fast() {
	make_repo <<'EOF'
jobs:
  m:
    matrix:
      n: [1, 2, 3]
    steps:
      - run: echo m
  after:
    needs: [m]
    if: always()
    steps:
      - run: echo after
EOF
	start_server
	register a
	local AT_A=$AT
	register b
	local b=$AT
	submit
	poll "$AT_A" 1
	local la=$LEASE
	lease ack "$AT_A"
	poll "$b" 1
	local lb=$LEASE
	lease ack "$b"
	LEASE=$la
	lease finish "$AT_A" -d '{"status": "failure"}'
	api GET "/api/v1/pipelines/$PID_" "$ADMIN"
	expect_eq "fail-fast" "$(jb '[(j["name"], j["status"], j["cancel_requested"]) for j in d["jobs"]]')" \
		'[["m (1)", "failure", false], ["m (2)", "running", true], ["m (3)", "cancelled", false], ["after", "pending", false]]'
	expect_eq "reason" "$(jb 'd["jobs"][2]["reason"]')" "cancelled by fail-fast"
	LEASE=$lb
	lease heartbeat "$b"
	expect_eq "sibling told to cancel" "$(jb 'd["cancel"]')" true
	lease finish "$b" -d '{"status": "cancelled"}'
	run_job "$b" success
	expect_eq "always() job runs after the matrix" "$JOBNAME" after
	expect_eq "needs of a matrix: the worst result" "$(js "$T/spec-after.json" 'd["job"]["needs"]["m"]["result"]')" failure
	pipeline_is "$PID_" failure || fail "pipeline $(jb 'd["status"]')"
	stop_server
}

# ---- invalid workflows and hostile input ----------------------------------------------------------

t_invalid_workflow() {
	make_repo <<'EOF'
jobs:
  a:
    needs: [nope]
    steps:
      - run: echo a
        timeout: forever
EOF
	start_server
	api POST /api/v1/pipelines "$ADMIN" -d "{\"repo\": \"$T/repo\"}"
	expect_status "invalid workflow" 422
	expect_eq "code" "$(jb 'd["code"]')" invalid_workflow
	jb '"\n".join(d["problems"])' >"$T/problems"
	(cd "$T/repo" && "$RUNNER" validate .pipeline.yml) 2>"$T/validate" >/dev/null
	expect_eq "problems are those of runner validate" "$(cat "$T/problems")" "$(cat "$T/validate")"
	expect_grep '^\.pipeline\.yml:3:[0-9]+: error: ' "$T/problems"
	expect_grep '^\.pipeline\.yml:6:[0-9]+: error: ' "$T/problems"
	api POST /api/v1/pipelines "$ADMIN" -d "{\"repo\": \"$T/repo\", \"yaml\": \"jobs: [\"}"
	expect_status "inline yaml" 422
	expect_grep 'pipeline\.yml:[0-9]+:[0-9]+: error' "$T/body"
	api POST /api/v1/pipelines "$ADMIN" -d "{\"repo\": \"$T/repo\", \"file\": \"missing.yml\"}"
	expect_status "missing file" 422
	expect_grep 'missing\.yml: error: ' "$T/body"
	api POST /api/v1/pipelines "$ADMIN" -d "{\"repo\": \"$T/repo\", \"ref\": \"no-such-branch\"}"
	expect_status "no such ref" 404
	expect_eq "code" "$(jb 'd["code"]')" no_commit
	api POST /api/v1/pipelines "$ADMIN" -d "{\"repo\": \"$T/repo\", \"sha\": \"$(printf '%040d' 1)\"}"
	expect_status "no such sha" 404
	api POST /api/v1/pipelines "$ADMIN" -d "{\"repo\": \"$T/nothing-here\"}"
	expect_status "no repository" 400
	expect_eq "code" "$(jb 'd["code"]')" bad_repo
	api GET /api/v1/pipelines "$ADMIN"
	expect_eq "nothing stored" "$(jb 'len(d["pipelines"])')" 0
	stop_server
}

t_bad_input() {
	make_repo <<'EOF'
jobs:
  a:
    steps:
      - run: echo a
EOF
	start_server
	local body
	for body in '{"repo": ' '[1, 2]' '"text"' '{"repo": "/x", "repo": "/y"}' "{\"repo\": \"$T/repo\", \"extra\": 1}" \
		'{"repo": "relative/path"}' '{"repo": "ftp://host/x"}' "{\"repo\": \"$T/repo\", \"sha\": \"abc\"}" \
		"{\"repo\": \"$T/repo\", \"file\": \"../etc/passwd\"}" "{\"repo\": \"$T/repo\", \"env\": {\"A B\": \"x\"}}" \
		"{\"repo\": \"$T/repo\", \"env\": {\"A\": 1}}" '{"repo": "/a\u0000b"}'; do
		api POST /api/v1/pipelines "$ADMIN" -d "$body"
		[ "$HS" = 400 ] || fail "body $body: HTTP $HS, expected 400"
		js "$T/body" 'd["code"]' | grep -Eq '^(bad_json|unknown_field|bad_field)$' || fail "body $body: $(cat "$T/body")"
	done
	head -c $((1024 * 1024 + 10)) /dev/zero | tr '\0' ' ' >"$T/big"
	api POST /api/v1/pipelines "$ADMIN" --data-binary @"$T/big"
	expect_status "oversized body" 413
	api POST /api/v1/pipelines "$ADMIN" -H 'Transfer-Encoding: chunked' --data-binary @"$T/big"
	expect_status "oversized chunked body" 413
	api POST /api/v1/pipelines wrong --data-binary @"$T/big"
	expect_status "oversized body with a wrong token" 401
	api GET /api/v1/pipelines "$ADMIN"
	expect_eq "nothing stored" "$(jb 'len(d["pipelines"])')" 0
	api POST /api/v1/agents/register "$REG" -d '{"name": "x", "labels": ["bad label"]}'
	expect_status "bad label" 400
	api POST /api/v1/agents/register "$REG" -d '{"name": "x", "capacity": 0}'
	expect_status "bad capacity" 400
	api POST /api/v1/agents/register "$REG" -d '{"labels": []}'
	expect_status "no name" 400
	api GET /api/v1/agents "$ADMIN"
	expect_eq "no agent stored" "$(jb 'len(d["agents"])')" 0
	api GET /api/v1/pipelines/abc "$ADMIN"
	expect_status "bad pipeline id" 404
	api GET /api/v1/jobs/1 "$ADMIN"
	expect_status "bad job id" 404
	api GET /api/v1/jobs/99.1 "$ADMIN"
	expect_status "unknown job" 404
	api GET /api/v1/nothing "$ADMIN"
	expect_status "unknown endpoint" 404
	api DELETE "/api/v1/jobs/1.1" "$ADMIN"
	expect_status "wrong method" 405
	api GET "/api/v1/pipelines?limit=0" "$ADMIN"
	expect_status "bad limit" 400
	# lease calls with bad bodies
	register a
	submit
	poll "$AT" 1
	lease ack "$AT" -d '{"x": 1}'
	expect_status "ack with a field" 400
	lease finish "$AT" -d '{"status": "great"}'
	expect_status "finish with a bad status" 400
	lease finish "$AT" -d '{"status": "success", "outputs": {"a": 1}}'
	expect_status "finish with a bad output" 400
	lease steps "$AT" -d '{"steps": [{"index": 0, "status": "success", "color": "red"}]}'
	expect_status "step with an unknown field" 400
	lease steps "$AT" -d '{"steps": [{"index": -1, "status": "success"}]}'
	expect_status "step with a bad index" 400
	expect_eq "job unchanged" "$(job_field "$PID_.1" 'd["status"]')" assigned
	curl -s -o /dev/null --max-time 2 -X POST -H "Authorization: Bearer $AT" -H 'Content-Length: 100' \
		--data-binary 'short' "$URL/api/v1/leases/$LEASE/finish"
	api GET /api/v1/pipelines "$ADMIN"
	expect_status "the server survives a short body" 200
	stop_server
}

# ---- artifacts ------------------------------------------------------------------------------------

t_artifacts() {
	make_repo <<'EOF'
jobs:
  make:
    steps:
      - run: echo make
  use:
    needs: [make]
    steps:
      - run: echo use
EOF
	start_server --max-artifact-size 1M
	register a
	submit
	poll "$AT" 1
	local ml=$LEASE
	lease ack "$AT"
	head -c 200000 /dev/urandom >"$T/dist.tar.gz"
	local sum
	sum=$(sha "$T/dist.tar.gz")
	# refused: path traversal, bad names, bad sha, no length, too big, a wrong sha256
	local name
	for name in ..%2F..%2Fescape .hidden 'a%20b' 'a%2Fb'; do
		api PUT "/api/v1/leases/$ml/artifacts/$name?sha256=$sum&format=tar.gz" "$AT" --data-binary @"$T/dist.tar.gz"
		case $HS in 400 | 404) ;; *) fail "artifact name $name: HTTP $HS" ;; esac
	done
	api PUT "/api/v1/leases/$ml/artifacts/dist?sha256=$sum&format=rar" "$AT" --data-binary @"$T/dist.tar.gz"
	expect_status "bad format" 400
	api PUT "/api/v1/leases/$ml/artifacts/dist?sha256=xyz&format=tar.gz" "$AT" --data-binary @"$T/dist.tar.gz"
	expect_status "bad sha256" 400
	api PUT "/api/v1/leases/$ml/artifacts/dist?sha256=$(printf '%064d' 0)&format=tar.gz" "$AT" \
		--data-binary @"$T/dist.tar.gz"
	expect_status "sha256 mismatch" 400
	expect_eq "code" "$(jb 'd["code"]')" sha256_mismatch
	api PUT "/api/v1/leases/$ml/artifacts/dist?sha256=$sum&format=tar.gz" "$AT" -H 'Transfer-Encoding: chunked' \
		--data-binary @"$T/dist.tar.gz"
	expect_status "no Content-Length" 411
	head -c $((1024 * 1024 + 1)) /dev/zero >"$T/huge"
	api PUT "/api/v1/leases/$ml/artifacts/huge?sha256=$(sha "$T/huge")&format=zip" "$AT" --data-binary @"$T/huge"
	expect_status "too big" 413
	api GET "/api/v1/pipelines/$PID_/artifacts" "$ADMIN"
	expect_eq "nothing stored" "$(jb 'd["artifacts"]')" "[]"
	expect_eq "no files stored" "$(find "$T/data/artifacts" "$T/data/tmp" -type f | wc -l)" 0
	# accepted
	api PUT "/api/v1/leases/$ml/artifacts/dist?sha256=$sum&format=tar.gz" "$AT" --data-binary @"$T/dist.tar.gz"
	expect_status "upload" 201
	expect_eq "size" "$(jb 'd["size"]')" 200000
	expect_eq "sha256" "$(jb 'd["sha256"]')" "$sum"
	expect_eq "job" "$(jb 'd["job"]')" "$PID_.1"
	lease finish "$AT" -d '{"status": "success"}'
	poll "$AT" 1
	expect_eq "the next JOBSPEC lists the artifact" "$(jb '[a["name"] for a in d["job"]["artifacts"]]')" '["dist"]'
	local ul=$LEASE
	api GET "/api/v1/leases/$ul/artifacts/dist" "$AT"
	expect_status "download by lease" 200
	expect_eq "downloaded bytes" "$(sha "$T/body")" "$sum"
	expect_eq "X-Artifact-Sha256" "$(hdr X-Artifact-Sha256)" "$sum"
	expect_eq "X-Artifact-Format" "$(hdr X-Artifact-Format)" tar.gz
	api GET "/api/v1/leases/$ul/artifacts/missing" "$AT"
	expect_status "missing artifact" 404
	# another job cannot take the name; an old lease cannot download
	api PUT "/api/v1/leases/$ul/artifacts/dist?sha256=$sum&format=tar.gz" "$AT" --data-binary @"$T/dist.tar.gz"
	expect_status "name taken by another job" 409
	api GET "/api/v1/leases/$ml/artifacts/dist" "$AT"
	expect_status "download with a finished lease" 410
	api GET "/api/v1/pipelines/$PID_/artifacts/dist" "$ADMIN"
	expect_status "user download" 200
	expect_eq "user download bytes" "$(sha "$T/body")" "$sum"
	api GET "/api/v1/pipelines/$PID_/artifacts" "$ADMIN"
	expect_eq "listed" "$(jb '[(a["name"], a["format"], a["size"]) for a in d["artifacts"]]')" '[["dist", "tar.gz", 200000]]'
	stop_server
}

# ---- restart ----------------------------------------------------------------------------------------

t_restart() {
	make_repo <<'EOF'
jobs:
  a:
    steps:
      - run: echo a
  b:
    needs: [a]
    steps:
      - run: echo b
EOF
	start_server --lease-ttl 2s
	register a
	submit
	poll "$AT" 1
	lease ack "$AT"
	printf 'before\n' >"$T/c1"
	lease "log?offset=0" "$AT" --data-binary @"$T/c1"
	lease steps "$AT" -d '{"steps": [{"index": 0, "name": "echo a", "status": "running", "attempt": 1, "started_ms": 5}]}'
	stop_server
	# down for longer than the lease TTL: the restarted server gives agents time to come back
	sleep 2.5
	start_server --lease-ttl 2s
	expect_eq "state kept" "$(job_field "$PID_.1" 'd["status"]')" running
	expect_eq "steps kept" "$(job_field "$PID_.1" 'd["steps"][0]["status"]')" running
	lease heartbeat "$AT"
	expect_status "heartbeat after the restart" 200
	printf 'after\n' >"$T/c2"
	lease "log?offset=7" "$AT" --data-binary @"$T/c2"
	expect_status "log continues" 200
	expect_eq "offset" "$(jb 'd["offset"]')" 13
	lease finish "$AT" -d '{"status": "success"}'
	expect_status "finish after the restart" 200
	api GET "/api/v1/jobs/$PID_.1/log" "$ADMIN"
	expect_eq "log across the restart" "$(cat "$T/body")" "$(printf 'before\nafter')"
	expect_eq "dependant queued" "$(job_field "$PID_.2" 'd["status"]')" queued
	expect_eq "attempt unchanged" "$(job_field "$PID_.1" 'd["attempt"]')" 1
	# a poll waiting while the server stops is answered, not dropped (b, queued, is taken first)
	poll "$AT" 1
	expect_eq "b handed out" "$(jb 'd["job"]["name"]')" b
	register waiter
	(
		curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $AT" --max-time 60 \
			-d '{"free": 1}' "$URL/api/v1/agents/poll?wait=30" >"$T/poll_code.tmp"
		mv "$T/poll_code.tmp" "$T/poll_code"
	) &
	local bg=$!
	wait_for 10 agent_seen waiter || fail "the poll did not start"
	stop_server
	wait "$bg"
	expect_eq "waiting poll at shutdown" "$(cat "$T/poll_code")" 503
}

# ---- status page and metrics ------------------------------------------------------------------------

t_status_metrics() {
	make_repo <<'EOF'
name: demo-<b>
jobs:
  a:
    steps:
      - run: echo a
EOF
	start_server
	submit
	HS=$(curl -s -o "$T/body" -w '%{http_code}' "$URL/")
	expect_status "status page without a token" 401
	HS=$(curl -s -o "$T/body" -D "$T/hdr" -w '%{http_code}' "$URL/?token=$ADMIN")
	expect_status "status page with ?token=" 200
	expect_grep 'demo-&lt;b&gt;' "$T/body"
	expect_grep "href=\"/pipelines/$PID_\\?token=$ADMIN\"" "$T/body"
	expect_grep '^Set-Cookie: runner_token=' "$T/hdr"
	HS=$(curl -s -o "$T/body" -w '%{http_code}' -H "Cookie: runner_token=$ADMIN" "$URL/pipelines/$PID_")
	expect_status "pipeline page with the cookie" 200
	HS=$(curl -s -o "$T/body" -w '%{http_code}' -H "Cookie: runner_token=$ADMIN" "$URL/jobs/$PID_.1")
	expect_status "job page" 200
	HS=$(curl -s -o "$T/body" -w '%{http_code}' "$URL/?token=wrong")
	expect_status "wrong token" 401
	HS=$(curl -s -o "$T/body" -w '%{http_code}' "$URL/metrics")
	expect_status "metrics need no token" 200
	local m
	for m in 'runner_jobs\{state="queued"\} 1' 'runner_job_duration_seconds_bucket\{le="\+Inf"\}' \
		'runner_queue_wait_seconds_count' 'runner_agents_connected 0' 'runner_log_bytes_total 0' \
		'runner_artifact_bytes_total 0' 'runner_http_requests_total\{code="401"\} 2' \
		'runner_heap_in_use_bytes [1-9][0-9]{4,}$' 'runner_heap_arena_bytes [0-9]+$' \
		'runner_heap_mmap_bytes [0-9]+$' 'runner_heap_free_bytes [0-9]+$' \
		'runner_sqlite_memory_bytes [1-9][0-9]+$'; do
		expect_grep "^$m" "$T/body"
	done
	stop_server
	start_server --public-status
	HS=$(curl -s -o "$T/body" -w '%{http_code}' "$URL/")
	expect_status "public status page" 200
	expect_grep 'demo-&lt;b&gt;' "$T/body"
	api GET /api/v1/pipelines wrong
	expect_status "the API still needs a token" 401
	stop_server
}

# ---- secrets --------------------------------------------------------------------------------------

t_secrets() {
	make_repo <<'EOF'
jobs:
  a:
    steps:
      - run: echo "${{ secrets.FROM_ENV }}"
EOF
	printf 'FROM_FILE="file value"\nBOTH=from-file\n' >"$T/secrets.env"
	RUNNER_SECRET_FROM_ENV=env-value RUNNER_SECRET_BOTH=from-env start_server --secret-file "$T/secrets.env"
	register a
	submit
	poll "$AT" 1
	expect_eq "secrets in the JOBSPEC" "$(jb 'sorted(d["job"]["secrets"].items())')" \
		'[["BOTH", "from-file"], ["FROM_ENV", "env-value"], ["FROM_FILE", "file value"]]'
	api GET "/api/v1/jobs/$PID_.1" "$ADMIN"
	expect_no_grep 'env-value|file value' "$T/body"
	stop_server
	expect_no_grep 'env-value|file value' "$T/data/runner.db" "$T/data/runner.db-wal"
	printf 'SHORT=abc\n' >"$T/short.env"
	run serve --listen 127.0.0.1:0 --data "$T/data2" --secret-file "$T/short.env"
	expect_rc 2
	expect_grep 'secret SHORT .*shorter than 4' "$T/err"
	RUNNER_SECRET_S=ab run serve --listen 127.0.0.1:0 --data "$T/data2"
	expect_rc 2
	run serve --listen 127.0.0.1:0 --data "$T/data2" --secret-file "$T/nothing.env"
	expect_rc 2
}

add "start and stop, generated tokens (0600, printed once), address file" t_start_stop
add "tokens from the environment; wrong and misused tokens: 401 / 403" t_env_tokens
add "busy port, unusable data dir: exit 3; bad options: exit 2; one server per data dir" t_start_failures
add "poll: 204 after the wait; runs-on labels; poll labels replace the registered ones" t_poll_wait
add "a job queued while a poll waits is answered at once" t_poll_latency
add "an assignment not acknowledged in time is queued again; its late ack gets 410" t_ack_timeout
add "heartbeat renews; a waiting heartbeat gets the cancel at once" t_heartbeat_cancel
add "pipeline cancel: pending/queued at once, leased ones told" t_cancel_pipeline
add "log offsets: append, duplicate, overlap, gap (409 with offset); tail with wait" t_log_offsets
add "lease expiry: attempt + 1 elsewhere, old lease fenced (410), max attempts: agent lost" t_lease_expiry
add "forged lease ids: 410" t_forged_leases
add "finish: dependants queued or skipped per if:, outputs into needs, continue-on-error" t_decisions
add "a failure skips what has not started (unless if: uses a status function)" t_failure_stops
add "fail-fast cancels matrix siblings; a matrix need gives the worst result" t_fail_fast
add "invalid workflow: 422 with the lines of runner validate; no commit 404; bad repo 400" t_invalid_workflow
add "bad JSON, unknown fields, oversized bodies, bad ids: 4xx, nothing stored" t_bad_input
add "artifacts: streamed upload, sha256 checked, traversal refused, download by lease and user" t_artifacts
add "restart mid-job: state, lease and log kept; a waiting poll gets 503 at shutdown" t_restart
add "status page (token, cookie, escaping, --public-status) and /metrics" t_status_metrics
add "secrets from RUNNER_SECRET_* and --secret-file reach the JOBSPEC only; short ones refused" t_secrets
run_all
