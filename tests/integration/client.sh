#!/usr/bin/env bash
# client.sh - `runner submit|status|logs|cancel` against a real `runner serve` (127.0.0.1, port 0,
# a temporary data directory) and, for the subtests that need jobs to run, real `runner agent`s.
#
# One server serves the whole file. Workflows of the subtests without agents carry
# `runs-on: [no-such-agent]`, those of the subtests with agents a label unique to the subtest
# (its MARK), so that no agent ever picks up another subtest's jobs.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

ADMIN="adm-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
REG="reg-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
# The server's command line contains MARK_PREFIX: lib.sh kills it when the file ends.
SRV_DATA=$ROOT/${MARK_PREFIX}server
URL=
SRV_PID=
SRV_FAILED=

# Start the server once (on LISTEN, default a free port); 0 when it answers.
server_up() {
	[ -n "$URL" ] && return 0
	[ -n "$SRV_FAILED" ] && return 1
	mkdir -p "$SRV_DATA"
	RUNNER_ADMIN_TOKEN=$ADMIN RUNNER_REGISTRATION_TOKEN=$REG \
		"$RUNNER" serve --listen "${LISTEN:-127.0.0.1:0}" --data "$SRV_DATA" >>"$ROOT/server.out" 2>>"$ROOT/server.err" </dev/null &
	SRV_PID=$!
	disown "$SRV_PID" # (no "Killed" notice when lib.sh kills it at the end)
	local _
	for _ in $(seq 600); do
		if [ -s "$SRV_DATA/address" ]; then
			URL=$(head -n 1 "$SRV_DATA/address")
			return 0
		fi
		alive "$SRV_PID" || break
		sleep 0.05
	done
	SRV_FAILED=1
	return 1
}

# Stop the server (SIGTERM) and start it again on the same address with the same data.
restart_server() {
	local port=${URL##*:} _
	kill -TERM "$SRV_PID"
	for _ in $(seq 600); do
		alive "$SRV_PID" || break
		sleep 0.05
	done
	alive "$SRV_PID" && kill -9 "$SRV_PID"
	rm -f "$SRV_DATA/address"
	URL=
	LISTEN=127.0.0.1:$port server_up
}

# Every subtest starts with this: fails it when there is no server.
need_server() {
	if ! server_up; then
		fail "runner serve did not start (no $SRV_DATA/address); its stderr:"
		note "$(tail -n 5 "$ROOT/server.err" 2>/dev/null)"
		return 1
	fi
}

# cl CMD ARGS...: runner CMD against the server with the admin token (options before ARGS);
# output in $T/out and $T/err, status in RC.
cl() {
	local cmd=$1
	shift
	run "$cmd" --server "$URL" --token "$ADMIN" "$@"
}

# clo NAME CMD ARGS...: the same with the output in $T/NAME.out and $T/NAME.err (for use while a
# background runner writes $T/out).
clo() {
	local o=$1 cmd=$2
	shift 2
	(cd "$T" && exec timeout -k 5 "$RNIT_TIMEOUT" "$RUNNER" "$cmd" --server "$URL" --token "$ADMIN" "$@") \
		>"$T/$o.out" 2>"$T/$o.err" </dev/null
	RC=$?
}

# A git repository $T/repo with the workflow $T/p.yml committed as .pipeline.yml.
make_repo() {
	local d=$T/repo
	git init -q -b main "$d"
	cp "$T/p.yml" "$d/.pipeline.yml"
	git -C "$d" add -A
	git -C "$d" -c user.name=t -c user.email=t@example.com commit -q -m init
}

commit_all() { # MESSAGE
	git -C "$T/repo" add -A
	git -C "$T/repo" -c user.name=t -c user.email=t@example.com commit -q -m "$1"
}

# The pipeline or job as the server has it now (JSON in $T/obj.json).
fetch() { # ID
	clo obj status --json "$1"
	mv "$T/obj.out" "$T/obj.json"
}

# The id of the newest pipeline.
latest_id() {
	clo latest status --json --limit 1
	js "$T/latest.out" 'd["pipelines"][0]["id"]'
}

# status of a pipeline or job, straight from the server
state_of() { # ID
	fetch "$1"
	js "$T/obj.json" 'd["status"]'
}

# 0 when process $1 catches SIGINT (a handler, not the default death) and has a socket open
# (it is inside an HTTP request).
in_request() {
	local cgt
	cgt=$(sed -n 's/^SigCgt:[[:space:]]*//p' "/proc/$1/status" 2>/dev/null)
	[ -n "$cgt" ] && (((0x$cgt >> 1) & 1)) && ls -l "/proc/$1/fd" 2>/dev/null | grep -q 'socket:'
}

# ---- agents -----------------------------------------------------------------------------------

agent_ready() {
	"$RUNNER" agent --help 2>/dev/null | grep -q -- '--labels'
}

# start_agent NAME: a real agent with the subtest's label; its pid in APID_<NAME>. Its work
# directory holds MARK: it is killed when the subtest ends.
start_agent() {
	local name=$1 dir=$T/$MARK-agent-$1
	mkdir -p "$dir"
	(cd "$T" && exec "$RUNNER" agent --server "$URL" --token "$REG" --name "$name-$MARK" \
		--labels "$MARK" --work-dir "$dir") >"$T/agent-$name.out" 2>"$T/agent-$name.err" </dev/null &
	eval "APID_$name=$!"
	disown $!
}

need_agent() {
	if ! agent_ready; then
		skip "runner agent is not built yet"
		return 1
	fi
	need_server
}

# ---- without the server -----------------------------------------------------------------------

t_usage() {
	run submit
	expect_rc 2
	expect_grep '^runner submit: no server: give --server URL or set RUNNER_SERVER$' "$T/err"
	run status --server http://127.0.0.1:9
	expect_rc 2
	expect_grep 'no token' "$T/err"
	run status --server http://127.0.0.1:9 --token x 17.x
	expect_rc 2
	expect_grep "invalid id '17.x'" "$T/err"
	run logs --server http://127.0.0.1:9 --token x
	expect_rc 2
	run cancel --server http://127.0.0.1:9 --token x '1/../2'
	expect_rc 2
	run submit --server ftp://host --token x
	expect_rc 2
	expect_grep 'not an http:// or https:// URL' "$T/err"
	run submit --server http://127.0.0.1:9 --token x --env NOEQUALS
	expect_rc 2
	expect_grep 'expected KEY=VALUE' "$T/err"
	run status --bogus
	expect_rc 2
	run submit --help
	expect_rc 0
	expect_grep -- '--wait' "$T/out"
	run help logs
	expect_grep -- '--follow' "$T/out"
	# not in a git repository, no --repo (the workspace is under /var/tmp, not in a repository)
	run submit --server http://127.0.0.1:9 --token x
	expect_rc 2
	expect_grep 'not in a git repository; give --repo' "$T/err"
}

t_unreachable() {
	# a port nobody listens on: bind one and close it
	local port
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	local t0 t1
	t0=$(now)
	run status --server "http://user:hunter2pw@127.0.0.1:$port/" --token x
	t1=$(now)
	expect_rc 3
	expect_grep "^runner status: cannot reach the server at http://127.0.0.1:$port/" "$T/err"
	expect_no_grep 'hunter2pw' "$T/err" "$T/out"
	expect_le "time to give up (ms)" "$(elapsed_ms "$t0" "$t1")" 15000
	run logs --server "127.0.0.1:$port" --token x 3.1
	expect_rc 3
	expect_grep "cannot reach the server at http://127.0.0.1:$port" "$T/err"
	git init -q -b main "$T/repo"
	git -C "$T/repo" -c user.name=t -c user.email=t@example.com commit -q --allow-empty -m x
	run submit --server "http://127.0.0.1:$port" --token x --repo "$T/repo"
	expect_rc 3
}

# ---- with the server, no agents ---------------------------------------------------------------

# Two jobs no agent takes: build (queued), test (pending: needs build).
queued_workflow() {
	workflow <<'EOF'
name: queued-@MARK@
jobs:
  build:
    runs-on: [no-such-agent]
    steps:
      - run: echo build
  test:
    needs: build
    runs-on: [no-such-agent]
    steps:
      - run: echo test
EOF
}

t_bad_token() {
	need_server || return
	run status --server "$URL" --token "wrong-$ADMIN"
	expect_rc 2
	expect_grep '^runner status: the server refused the token \(HTTP 401' "$T/err"
	# the registration token is a valid token of the wrong kind
	run status --server "$URL" --token "$REG"
	expect_rc 2
	expect_grep '^runner status: the server refused the token \(HTTP 403' "$T/err"
	expect_no_grep "$ADMIN|$REG" "$T/err" "$T/out"
}

t_submit_default_repo() {
	need_server || return
	queued_workflow
	make_repo
	mkdir -p "$T/repo/sub/dir"
	local sha
	sha=$(git -C "$T/repo" rev-parse HEAD)
	# from a subdirectory, with the server and token from the environment
	(cd "$T/repo/sub/dir" && RUNNER_SERVER=$URL RUNNER_TOKEN=$ADMIN timeout 60 "$RUNNER" submit) >"$T/out" 2>"$T/err"
	RC=$?
	expect_rc 0
	local id
	id=$(cat "$T/out")
	[[ $id =~ ^[0-9]+$ ]] || fail "submit printed '$id', not a pipeline id"
	expect_eq "stdout lines" "$(wc -l <"$T/out")" 1
	expect_no_grep 'uncommitted' "$T/err"
	fetch "$id"
	expect_eq "repo" "$(js "$T/obj.json" 'd["repo"]')" "$(realpath "$T/repo")"
	expect_eq "ref" "$(js "$T/obj.json" 'd["ref"]')" "refs/heads/main"
	expect_eq "sha" "$(js "$T/obj.json" 'd["sha"]')" "$sha"
	expect_eq "name" "$(js "$T/obj.json" 'd["name"]')" "queued-$MARK"
	expect_eq "jobs" "$(js "$T/obj.json" '[j["name"] for j in d["jobs"]]')" '["build", "test"]'

	# a dirty tree: said, and HEAD's commit is what runs
	echo change >>"$T/repo/.pipeline.yml"
	(cd "$T/repo" && RUNNER_SERVER=$URL RUNNER_TOKEN=$ADMIN timeout 60 "$RUNNER" submit) >"$T/out" 2>"$T/err"
	RC=$?
	expect_rc 0
	expect_grep "note: the uncommitted changes in $(realpath "$T/repo") are not part of the pipeline \(it runs commit ${sha:0:12}\)" "$T/err"
	fetch "$(cat "$T/out")"
	expect_eq "sha of the dirty tree's pipeline" "$(js "$T/obj.json" 'd["sha"]')" "$sha"
}

t_submit_options() {
	need_server || return
	queued_workflow
	make_repo
	local first second
	first=$(git -C "$T/repo" rev-parse HEAD)
	git -C "$T/repo" mv .pipeline.yml ci.yml
	commit_all second
	second=$(git -C "$T/repo" rev-parse HEAD)
	# --repo as a relative path to a subdirectory, --file, --env
	mkdir -p "$T/repo/x"
	cl submit --repo repo/x --file ci.yml --env GREETING=hello --env 'EMPTY=' --json
	expect_rc 0
	expect_eq "sha" "$(js "$T/out" 'd["sha"]')" "$second"
	expect_eq "repo" "$(js "$T/out" 'd["repo"]')" "$(realpath "$T/repo")"
	# --sha: an older commit (where the file was .pipeline.yml)
	cl submit --repo "$T/repo" --sha "$first"
	expect_rc 0
	fetch "$(cat "$T/out")"
	expect_eq "sha of --sha" "$(js "$T/obj.json" 'd["sha"]')" "$first"
	# a ref that does not exist
	cl submit --repo "$T/repo" --ref no-such-branch
	expect_rc 2
	expect_grep '^runner submit: ' "$T/err"
	# a file that is not in the commit
	cl submit --repo "$T/repo" --file missing.yml
	expect_rc 2
	expect_grep 'missing.yml' "$T/err"
	# a repository that does not exist
	cl submit --repo "file://$T/no-such-repo"
	expect_rc 3
}

t_invalid_workflow() {
	need_server || return
	workflow <<'EOF'
jobs:
  build:
    runs-on: [no-such-agent]
    stpes:
      - run: echo hi
  test:
    needs: [nope]
    timeout: 5 parsecs
    steps:
      - run: echo test
EOF
	make_repo
	(cd "$T/repo" && "$RUNNER" validate .pipeline.yml) >"$T/validate.out" 2>"$T/validate.err"
	[ "$(wc -l <"$T/validate.err")" -ge 2 ] || fail "runner validate found fewer than 2 problems"
	cl submit --repo "$T/repo"
	expect_rc 2
	expect_eq "stdout" "$(cat "$T/out")" ""
	# the same problems, in the same words, as runner validate gives
	grep -E '^[^ ]+:[0-9]+:[0-9]+: error: ' "$T/err" >"$T/problems" || true
	expect_ge "problem lines" "$(wc -l <"$T/problems")" 2
	if ! diff <(sed 's/^[^:]*://' "$T/validate.err" | grep -E '^[0-9]+:[0-9]+: error') \
		<(sed 's/^[^:]*://' "$T/problems") >"$T/diff"; then
		fail "the problems differ from runner validate's:"
		note "$(head -n 10 "$T/diff")"
	fi
	expect_grep '^\.pipeline\.yml:[0-9]+:[0-9]+: error: ' "$T/err"
}

t_status_views() {
	need_server || return
	queued_workflow
	make_repo
	cl submit --repo "$T/repo"
	local a b
	a=$(cat "$T/out")
	cl submit --repo "$T/repo"
	b=$(cat "$T/out")
	cl status --limit 500
	expect_rc 0
	expect_grep '^ID +STATUS +NAME +REF +COMMIT +CREATED +DURATION$' "$T/out"
	expect_grep "^$b +queued +queued-$MARK +main +[0-9a-f]{10} +[0-9]{4}-" "$T/out"
	# newest first
	local la lb
	la=$(grep -n "^$a " "$T/out" | cut -d: -f1)
	lb=$(grep -n "^$b " "$T/out" | cut -d: -f1)
	if [ -z "$la" ] || [ -z "$lb" ] || [ "$lb" -ge "$la" ]; then
		fail "pipeline $b is not listed before $a"
	fi
	cl status --json
	expect_rc 0
	expect_eq "json list" "$(js "$T/out" '[p["id"] for p in d["pipelines"]][:2]')" "[\"$b\", \"$a\"]"
	cl status "$b"
	expect_rc 0
	expect_grep "^pipeline $b: queued-$MARK +queued$" "$T/out"
	expect_grep "^  repository +$(realpath "$T/repo")$" "$T/out"
	expect_grep '^JOB +NAME +STATUS +ATTEMPT +AGENT +DURATION$' "$T/out"
	expect_grep "^$b\\.1 +build +queued " "$T/out"
	expect_grep "^$b\\.2 +test +pending " "$T/out"
	cl status "$b.1"
	expect_rc 0
	expect_grep "^job $b\\.1: build +queued$" "$T/out"
	expect_grep '^  pipeline +'"$b"'$' "$T/out"
	cl status --json "$b.2"
	expect_eq "job json" "$(js "$T/out" 'd["id"] + " " + d["status"]')" "$b.2 pending"
	cl status 999999
	expect_rc 2
	expect_grep '^runner status: no pipeline 999999$' "$T/err"
	cl status "$b.99"
	expect_rc 2
	expect_grep "^runner status: no job $b.99\$" "$T/err"
}

t_cancel_queued() {
	need_server || return
	queued_workflow
	make_repo
	cl submit --repo "$T/repo"
	local p
	p=$(cat "$T/out")
	cl cancel "$p.2"
	expect_rc 0
	expect_grep "^job $p\\.2 test: cancelled$" "$T/out"
	expect_eq "job 2" "$(state_of "$p.2")" cancelled
	expect_eq "job 1" "$(state_of "$p.1")" queued
	cl cancel "$p"
	expect_rc 0
	expect_grep "^pipeline $p: cancelled$" "$T/out"
	expect_eq "pipeline" "$(state_of "$p")" cancelled
	expect_eq "job 1 after" "$(state_of "$p.1")" cancelled
	# again: not an error
	cl cancel --json "$p"
	expect_rc 0
	expect_eq "json" "$(js "$T/out" 'd["status"]')" cancelled
	cl cancel 999999
	expect_rc 2
	expect_grep '^runner cancel: no pipeline 999999$' "$T/err"
	# the log of a job that never ran: empty, not an error
	cl logs "$p.1"
	expect_rc 0
	expect_eq "log" "$(cat "$T/out")" ""
	cl logs -f "$p.1"
	expect_rc 0
	cl logs "$p"
	expect_rc 0
	expect_grep "^==> $p\\.1 build \\(cancelled\\) <==$" "$T/out"
	expect_grep "^==> $p\\.2 test \\(cancelled\\) <==$" "$T/out"
	cl logs 999999.1
	expect_rc 2
	expect_grep '^runner logs: no job 999999.1$' "$T/err"
}

t_wait_cancelled() {
	need_server || return
	queued_workflow
	make_repo
	start_bg submit --server "$URL" --token "$ADMIN" --repo "$T/repo" --wait
	wait_for 30 grep -sqE '^[0-9]+$' "$T/out" || fail "no pipeline id from submit --wait"
	local p
	p=$(head -n 1 "$T/out")
	# a follower of the job's log too: it must end when the job is cancelled
	(cd "$T" && exec timeout 60 "$RUNNER" logs --server "$URL" --token "$ADMIN" -f "$p.1") >"$T/logs.out" 2>"$T/logs.err" &
	local lpid=$!
	wait_for 30 grep -sq '^test: pending$' "$T/out" || fail "no first states from submit --wait"
	clo cancel cancel "$p"
	expect_rc 0
	wait_bg 30
	expect_rc 1
	expect_grep '^build: queued$' "$T/out"
	expect_grep '^build: cancelled$' "$T/out"
	expect_grep '^test: cancelled$' "$T/out"
	expect_grep "^pipeline $p: cancelled$" "$T/out"
	wait "$lpid"
	expect_eq "logs -f of the cancelled job: exit" "$?" 0
}

t_wait_sigint() {
	need_server || return
	queued_workflow
	make_repo
	start_bg submit --server "$URL" --token "$ADMIN" --repo "$T/repo" --wait
	wait_for 30 grep -sqE '^[0-9]+$' "$T/out" || fail "no pipeline id from submit --wait"
	local p t0
	p=$(head -n 1 "$T/out")
	t0=$(now)
	kill -INT "$RPID"
	wait_bg 10
	expect_rc 130
	expect_le "time to stop (ms)" "$(elapsed_ms "$t0" "$(now)")" 2000
	expect_grep "stopped following pipeline $p; it goes on" "$T/err"
	# the pipeline was not touched
	expect_eq "pipeline" "$(state_of "$p")" queued
	# logs -f of its queued job (held in a long-poll): SIGINT ends it at once too
	start_bg logs --server "$URL" --token "$ADMIN" -f "$p.1"
	wait_for 30 in_request "$RPID" || fail "logs -f did not get to its request"
	t0=$(now)
	kill -INT "$RPID"
	wait_bg 10
	expect_rc 130
	expect_le "logs -f: time to stop (ms)" "$(elapsed_ms "$t0" "$(now)")" 2000
	# --json --wait: the lines on stderr, the finished pipeline on stdout
	start_bg submit --server "$URL" --token "$ADMIN" --repo "$T/repo" --wait --json
	wait_for 30 grep -sq '^test: pending$' "$T/err" || fail "no first states on stderr"
	local q
	q=$(latest_id)
	[ "$q" != "$p" ] || fail "no new pipeline"
	clo cancel cancel "$q"
	wait_bg 30
	expect_rc 1
	expect_eq "--json --wait" "$(js "$T/out" 'd["id"] + " " + d["status"]')" "$q cancelled"
	expect_grep "^pipeline $q: cancelled" "$T/err"
}

t_wait_survives_restart() {
	need_server || return
	queued_workflow
	make_repo
	start_bg submit --server "$URL" --token "$ADMIN" --repo "$T/repo" --wait
	wait_for 30 grep -sq '^test: pending$' "$T/out" || fail "no first states from submit --wait"
	local p url=$URL
	p=$(head -n 1 "$T/out")
	restart_server || fail "the server did not come back"
	expect_eq "server address" "$URL" "$url"
	alive "$RPID" || fail "submit --wait gave up while the server restarted"
	clo cancel cancel "$p"
	expect_rc 0
	wait_bg 60
	expect_rc 1
	expect_grep "^pipeline $p: cancelled$" "$T/out"
}

# ---- with agents ------------------------------------------------------------------------------

t_run_to_the_end() {
	need_agent || return
	workflow <<'EOF'
name: e2e
jobs:
  build:
    runs-on: [@MARK@]
    steps:
      - name: Compile
        run: echo "compiling <b>$GREETING</b>"
  test:
    needs: build
    runs-on: [@MARK@]
    steps:
      - name: Unit
        run: |
          echo "testing"
          exit 3
  deploy:
    needs: test
    runs-on: [@MARK@]
    steps:
      - run: echo never
EOF
	make_repo
	start_agent a
	cl submit --repo "$T/repo" --env GREETING=hello --wait
	expect_rc 1
	local p
	p=$(head -n 1 "$T/out")
	expect_grep '^build: success in [0-9.]+s$' "$T/out"
	expect_grep '^test: failure in [0-9.]+s' "$T/out"
	expect_grep '^deploy: skipped' "$T/out"
	expect_grep "^pipeline $p: failure in " "$T/out"
	cl status "$p"
	expect_grep "^$p\\.1 +build +success +1 +a-$MARK " "$T/out"
	expect_grep '^ +1\. Compile: success \(' "$T/out"
	expect_grep '^ +1\. Unit: failure \(exit 3, ' "$T/out"
	cl status "$p.2"
	expect_grep '^1 +Unit +failure +3 ' "$T/out"
	cl logs "$p.1"
	expect_rc 0
	expect_grep '^compiling <b>hello</b>$' "$T/out"
	cl logs "$p"
	expect_rc 0
	expect_grep "^==> $p\\.1 build \\(success\\) <==$" "$T/out"
	expect_grep '^testing$' "$T/out"
	expect_grep "^==> $p\\.3 deploy \\(skipped\\) <==$" "$T/out"
	# success: exit 0
	sed -i 's/exit 3/exit 0/' "$T/repo/.pipeline.yml"
	commit_all fixed
	cl submit --repo "$T/repo" --wait
	expect_rc 0
	expect_grep '^deploy: success in ' "$T/out"
	# the status page links every pipeline with the token kept
	curl -s "$URL/?token=$ADMIN" >"$T/index.html"
	expect_grep "href=\"/pipelines/$p\\?token=$ADMIN\"" "$T/index.html"
}

t_logs_follow_streams() {
	need_agent || return
	workflow <<'EOF'
jobs:
  slow:
    runs-on: [@MARK@]
    steps:
      - run: |
          @WAIT@
          echo "first part"
          w @T@/go
          echo "second part"
EOF
	make_repo
	start_agent a
	cl submit --repo "$T/repo"
	local p
	p=$(cat "$T/out")
	start_bg logs --server "$URL" --token "$ADMIN" -f "$p.1"
	# the first line arrives while the step waits: streamed, not at the end
	wait_for 60 grep -sq '^first part$' "$T/out" || fail "the first line did not arrive while the job ran"
	expect_no_grep 'second part' "$T/out"
	alive "$RPID" || fail "logs -f ended while the job was running"
	touch "$T/go"
	wait_bg 60
	expect_rc 0
	expect_eq "log" "$(grep -c part "$T/out")" 2
	expect_grep '^second part$' "$T/out"
	expect_eq "job" "$(state_of "$p.1")" success
}

t_big_log_streamed() {
	need_agent || return
	# 3 MiB of numbered lines: more than one answer; memory of `runner logs` stays small
	workflow <<'EOF'
jobs:
  noisy:
    runs-on: [@MARK@]
    steps:
      - run: seq -f 'line %08g of the big log' 1 100000
EOF
	make_repo
	start_agent a
	cl submit --repo "$T/repo" --wait
	expect_rc 0
	local p
	p=$(head -n 1 "$T/out")
	/usr/bin/time -f '%M' -o "$T/rss" timeout 120 "$RUNNER" logs --server "$URL" --token "$ADMIN" "$p.1" \
		>"$T/log" 2>"$T/err"
	RC=$?
	expect_rc 0
	expect_eq "lines" "$(grep -c '^line [0-9]* of the big log$' "$T/log")" 100000
	expect_eq "in order, no duplicate" "$(grep '^line ' "$T/log" | sort -c && echo sorted)" sorted
	# against the same command printing nothing (a job that does not exist): holding the log
	# would add its 2.9 MB
	/usr/bin/time -f '%M' -o "$T/rss0" timeout 120 "$RUNNER" logs --server "$URL" --token "$ADMIN" 999999.1 \
		>/dev/null 2>&1
	local rss rss0
	rss=$(tail -n 1 "$T/rss")
	rss0=$(tail -n 1 "$T/rss0")
	expect_ge "log size" "$(stat -c %s "$T/log")" 2800000
	expect_le "max RSS of runner logs beyond printing nothing (KiB)" "$((rss - rss0))" 1536
	note "log: $(stat -c %s "$T/log") bytes; runner logs max RSS $rss KiB, $rss0 KiB printing nothing"
}

t_cancel_running() {
	need_agent || return
	workflow <<'EOF'
jobs:
  long:
    runs-on: [@MARK@]
    steps:
      - run: |
          echo started
          @SLEEPER@ 1000
EOF
	make_repo
	start_agent a
	# one running job
	start_bg submit --server "$URL" --token "$ADMIN" --repo "$T/repo" --wait
	wait_for 60 grep -sq '^long: running on a-' "$T/out" || fail "the job did not start"
	local p t0
	p=$(head -n 1 "$T/out")
	clo cancel cancel "$p.1"
	expect_rc 0
	grep -Eq "^job $p\\.1 long: (running \\(cancel sent to its agent\\)|cancelled)$" "$T/cancel.out" ||
		fail "cancel said: $(cat "$T/cancel.out")"
	wait_bg 30
	expect_grep '^long: cancelled' "$T/out"
	expect_eq "job" "$(state_of "$p.1")" cancelled
	no_leftover "$SLEEPER"
	# the whole running pipeline: submit --wait ends with 1
	start_bg submit --server "$URL" --token "$ADMIN" --repo "$T/repo" --wait
	wait_for 60 grep -sq '^long: running on a-' "$T/out" || fail "the job did not start"
	p=$(head -n 1 "$T/out")
	t0=$(now)
	clo cancel cancel "$p"
	expect_rc 0
	expect_grep "^pipeline $p: (running|cancelled)$" "$T/cancel.out"
	wait_bg 30
	expect_rc 1
	expect_grep '^long: cancelled' "$T/out"
	expect_grep "^pipeline $p: cancelled in " "$T/out"
	note "cancel to the end of submit --wait: $(elapsed_ms "$t0" "$(now)") ms"
	no_leftover "$SLEEPER"
}

# runner-ext.so (runner/ext.h) holds the client commands: without it they fail with a clear
# message and exit 3, while `runner run` of a plain workflow never needs it.
t_ext_missing() {
	RUNNER_EXT=$T/missing.so run status --server http://127.0.0.1:9
	expect_rc 3
	expect_grep "cannot load the runner's extension: .*missing.so" "$T/err"
	RUNNER_EXT=$T/missing.so run submit --help
	expect_rc 3
	printf 'jobs:\n  a:\n    steps:\n      - run: echo plain-run-ok\n' >"$T/p.yml"
	RUNNER_EXT=$T/missing.so run run --no-sandbox --no-color p.yml
	expect_rc 0
	expect_grep "plain-run-ok" "$T/out"
	printf 'not an ELF file\n' >"$T/bad.so"
	RUNNER_EXT=$T/bad.so run logs x
	expect_rc 3
	expect_grep "cannot load the runner's extension: .*bad.so" "$T/err"
}

add "usage errors" t_usage
add "unreachable server: exit 3, URL without credentials" t_unreachable
add "wrong token and a token of the wrong kind: exit 2" t_bad_token
add "submit: the repository of the current directory, its branch and HEAD; a dirty tree is said" t_submit_default_repo
add "submit: --repo path, --file, --env, --sha, --json; missing ref, file, repository" t_submit_options
add "submit: an invalid workflow prints the problems as runner validate does, exit 2" t_invalid_workflow
add "status: pipelines, one pipeline, one job, --json, unknown ids" t_status_views
add "cancel: queued jobs and pipelines; logs of jobs that never ran" t_cancel_queued
add "submit --wait: a cancelled pipeline exits 1; logs -f of a cancelled job ends" t_wait_cancelled
add "submit --wait: SIGINT stops following, not the pipeline (130); --json" t_wait_sigint
add "submit --wait rides out a server restart" t_wait_survives_restart
add "agents: submit --wait to the end, status, logs of a job and a pipeline" t_run_to_the_end
add "agents: logs -f streams while the job runs" t_logs_follow_streams
add "agents: a 3 MiB log in several answers, in bounded memory" t_big_log_streamed
add "agents: cancel a running job" t_cancel_running
add "without runner-ext.so: client commands exit 3 with a message, runner run works" t_ext_missing

run_all
