#!/usr/bin/env bash
# Fault injection against the real `runner serve` and `runner agent` (issue #8): the server's data
# directory on a 2 MiB tmpfs filling up during an artifact upload and during a log write; the
# server SIGKILLed during an artifact upload and restarted; the server SIGKILLed mid-job while an
# agent streams a log, and restarted; the server gone while an agent long-polls. In every case
# the upload or job ends with a clear error and state, nothing half-written is taken for
# complete, nothing acknowledged is lost, and the server keeps serving. TAP output; see lib.sh.
#   faults.sh RUNNER_BINARY
. "$(dirname "$0")/lib.sh"

need_tools git python3 curl sha256sum

git_home
export RUNNER_GIT_CACHE=$ROOT/gitcache
ADMIN=admin-$RANDOM$RANDOM-token-$$
REG=reg-$RANDOM$RANDOM-token-$$
MOUNTS=()

# ---- helpers ------------------------------------------------------------------------------------

# A repository $T/repo with the workflow of stdin as .pipeline.yml.
make_repo() {
	mkdir -p "$T/repo"
	cat >"$T/repo/.pipeline.yml"
	git -C "$T/repo" init -q -b main
	git -C "$T/repo" add -A
	git -C "$T/repo" commit -qm fixture
}

# kill9_server: SIGKILL and reap it.
kill9_server() {
	kill -9 "$SPID" 2>/dev/null
	wait "$SPID" 2>/dev/null
	SPID=
}

# call METHOD PATH TOKEN [CURL ARGS...]: body in $T/body, status in HS.
call() {
	local m=$1 p=$2 tok=$3
	shift 3
	HS=$(curl -s -o "$T/body" -D "$T/hdr" -w '%{http_code}' -X "$m" -H "Authorization: Bearer $tok" \
		--max-time 60 "$@" "$URL$p")
}
jb() { js "$T/body" "$1"; }
expect_status() { # WHAT CODE
	[ "$HS" = "$2" ] || fail "$1: HTTP $HS, expected $2: $(head -c 300 "$T/body")"
}

# Play an agent by hand: register, submit the pipeline of $T/repo, poll and acknowledge its job.
# AT (agent token), PIPE, JOB, LEASE.
leased_job() {
	call POST /api/v1/agents/register "$REG" -d '{"name": "hand", "labels": []}'
	expect_status register 201
	AT=$(jb 'd["token"]')
	call POST /api/v1/pipelines "$ADMIN" -H 'Content-Type: application/json' -d "{\"repo\": \"$T/repo\"}"
	expect_status submit 201
	PIPE=$(jb 'd["id"]')
	call POST '/api/v1/agents/poll?wait=10' "$AT" -d '{"free": 1}'
	expect_status poll 200
	LEASE=$(jb 'd["lease"]')
	JOB=$(jb 'd["job"]["id"]')
	call POST "/api/v1/leases/$LEASE/ack" "$AT" -d '{}'
	expect_status ack 200
	[ -n "$LEASE" ]
}

# put_artifact NAME FILE [CURL ARGS...]: upload FILE as NAME (tar.gz) for $LEASE.
put_artifact() {
	local name=$1 f=$2
	shift 2
	call PUT "/api/v1/leases/$LEASE/artifacts/$name?sha256=$(sha "$f")&format=tar.gz" "$AT" \
		-H 'Content-Type: application/octet-stream' -H 'Expect:' --data-binary "@$f" "$@"
}

# The names of the pipeline's artifacts, one line each ("" when none).
artifact_names() {
	call GET "/api/v1/pipelines/$PIPE/artifacts" "$ADMIN"
	jb '" ".join(a["name"] + ":" + a["sha256"] for a in d["artifacts"])'
}

# The server's log of $JOB.
server_log() { curl -s -m 30 -H "Authorization: Bearer $ADMIN" "$URL/api/v1/jobs/$1/log"; }

# A 2 MiB tmpfs at $T/mnt (root only); MNT. Returns 1 (after skip) when mounting is not allowed.
small_tmpfs() {
	MNT=$T/mnt
	mkdir -p "$MNT"
	if ! mount -t tmpfs -o size=2m,mode=0700 tmpfs "$MNT" 2>"$T/mount.err"; then
		skip "cannot mount a tmpfs: $(head -c 200 "$T/mount.err")"
		return 1
	fi
	MOUNTS+=("$MNT")
}

# Free blocks of the filesystem of $1 (1 KiB units).
free_kb() { df -Pk "$1" | awk 'NR == 2 { print $4 }'; }

# Fill the filesystem of directory $1 with $1/filler.
fill_up() { dd if=/dev/zero of="$1/filler" bs=16k 2>/dev/null; sync; }

# After a subtest: stop what it started, unmount its tmpfs.
cleanup_subtest() {
	local p
	for p in ${APID:-} ${SPID:-}; do
		kill -9 "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	APID= SPID= PORT= URL=
	for p in "${MOUNTS[@]}"; do
		umount "$p" 2>/dev/null || umount -l "$p" 2>/dev/null
	done
	MOUNTS=()
}
_faults_exit() {
	local p
	for p in "${MOUNTS[@]}"; do umount -l "$p" 2>/dev/null; done
}
trap '_faults_exit; _cleanup' EXIT

# start_agent NAME [ARGS...]: a real agent (work dir $T/MARK-NAME, log $T/NAME.log), polling.
start_agent() {
	AWORK=$T/$MARK-$1
	(exec "$RUNNER" agent --server "$URL" --token "$REG" --name "$1" --work-dir "$AWORK" "${@:2}") \
		>>"$T/$1.log" 2>&1 </dev/null &
	APID=$!
	if ! wait_for 30 grep -q 'waiting for jobs' "$T/$1.log"; then
		fail "agent $1 did not start: $(tail -n 3 "$T/$1.log")"
		return 1
	fi
}

pipe_status() {
	call GET "/api/v1/pipelines/$PIPE" "$ADMIN"
	[ "$HS" = 200 ] && jb 'd["status"]'
}
pipeline_done() {
	case "$(pipe_status)" in success | failure | cancelled) return 0 ;; esac
	return 1
}

# ---- the disk fills up ----------------------------------------------------------------------------

# A server whose data directory is a small tmpfs, with a one-job pipeline leased to an agent.
lease_on_small_disk() {
	small_tmpfs || return
	make_repo <<'EOF'
jobs:
  a:
    steps:
      - run: echo a
EOF
	serve_at "$MNT/data" || return
	leased_job
}

# An artifact larger than the free space: a clear 5xx, nothing listed, the temp file gone (a
# smaller upload fits afterwards), and the server keeps serving.
t_disk_full_upload() {
	lease_on_small_disk || return
	local before
	before=$(free_kb "$MNT")
	head -c 3000000 /dev/urandom >"$T/big.tar.gz"
	put_artifact big.tar.gz "$T/big.tar.gz"
	case $HS in 5??) ;; *) fail "upload to a full disk: HTTP $HS, expected 5xx: $(head -c 300 "$T/body")" ;; esac
	expect_eq "error code" "$(jb 'd.get("code")' 2>/dev/null)" server_error
	note "answer: $(head -c 200 "$T/body")"
	expect_eq "artifacts after the failed upload" "$(artifact_names)" ""
	expect_eq "files under DATA/artifacts" "$(find "$SDATA/artifacts" -type f 2>/dev/null | wc -l)" 0
	expect_eq "temp files under DATA/tmp" "$(find "$SDATA/tmp" -type f 2>/dev/null | wc -l)" 0
	local after
	after=$(free_kb "$MNT")
	[ "$after" -ge $((before - 64)) ] || fail "free space not given back: $before KiB before, $after KiB after"
	# the server still serves, and an upload that fits works
	head -c 300000 /dev/urandom >"$T/small.tar.gz"
	put_artifact small.tar.gz "$T/small.tar.gz"
	expect_status "upload that fits" 201
	expect_eq "artifacts" "$(artifact_names)" "small.tar.gz:$(sha "$T/small.tar.gz")"
	call POST "/api/v1/leases/$LEASE/finish" "$AT" -d '{"status": "success"}'
	expect_status finish 200
	expect_eq "pipeline" "$(pipe_status)" success
}

# A log append on a full disk: a clear 5xx, no acknowledged byte lost, no partial bytes taken for
# written: the same append once there is room again gives exactly the bytes sent.
t_disk_full_log() {
	lease_on_small_disk || return
	seq 1 2000 >"$T/part1" # ~9 KB
	call POST "/api/v1/leases/$LEASE/log?offset=0" "$AT" --data-binary "@$T/part1"
	expect_status "first append" 200
	local len1
	len1=$(stat -c %s "$T/part1")
	expect_eq "offset after the first append" "$(jb 'd["offset"]')" "$len1"
	seq 2001 40000 >"$T/part2" # ~230 KB
	fill_up "$MNT"
	call POST "/api/v1/leases/$LEASE/log?offset=$len1" "$AT" --data-binary "@$T/part2"
	case $HS in 5??) ;; *) fail "append to a full disk: HTTP $HS, expected 5xx: $(head -c 300 "$T/body")" ;; esac
	note "answer: $(head -c 200 "$T/body")"
	# the server still serves: the acknowledged bytes are all there
	server_log "$JOB" >"$T/got1"
	cmp -s "$T/got1" "$T/part1" || fail "the log on a full disk is not the acknowledged bytes ($(stat -c %s "$T/got1") bytes)"
	call GET /api/v1/agents "$ADMIN"
	expect_status "agents on a full disk" 200
	rm -f "$MNT/filler"
	call POST "/api/v1/leases/$LEASE/log?offset=$len1" "$AT" --data-binary "@$T/part2"
	expect_status "the append again" 200
	cat "$T/part1" "$T/part2" >"$T/want"
	expect_eq "offset" "$(jb 'd["offset"]')" "$(stat -c %s "$T/want")"
	server_log "$JOB" >"$T/got2"
	cmp -s "$T/got2" "$T/want" || fail "the log differs from the bytes sent (gap, duplicate or garbage): $(cmp "$T/got2" "$T/want" 2>&1)"
	call POST "/api/v1/leases/$LEASE/finish" "$AT" -d '{"status": "success"}'
	expect_status finish 200
}

# ---- the server dies --------------------------------------------------------------------------------

# SIGKILL during an artifact upload: after the restart the artifact is not there (nor a temp file),
# the lease still works and the upload again succeeds.
t_kill_during_upload() {
	make_repo <<'EOF'
jobs:
  a:
    steps:
      - run: echo a
EOF
	serve_at "$T/$MARK-data" || return
	leased_job || return
	head -c 4000000 /dev/urandom >"$T/a.tar.gz"
	(curl -s -o /dev/null -X PUT -H "Authorization: Bearer $AT" -H 'Expect:' --limit-rate 400k \
		--data-binary "@$T/a.tar.gz" \
		"$URL/api/v1/leases/$LEASE/artifacts/a.tar.gz?sha256=$(sha "$T/a.tar.gz")&format=tar.gz") &
	local cpid=$!
	# the upload is half-way: its temp file holds some bytes
	wait_for 30 sh -c "find '$SDATA/tmp' -type f -size +200k | grep -q ." || fail "the upload did not start"
	kill9_server
	wait "$cpid" 2>/dev/null
	expect_eq "temp files before the restart" "$(find "$SDATA/tmp" -type f | wc -l)" 1
	serve_at "$SDATA" || return
	expect_eq "artifacts after the restart" "$(artifact_names)" ""
	call GET "/api/v1/pipelines/$PIPE/artifacts/a.tar.gz" "$ADMIN"
	expect_status "download of the half-uploaded artifact" 404
	expect_eq "temp files after the restart" "$(find "$SDATA/tmp" -type f | wc -l)" 0
	expect_eq "files under DATA/artifacts" "$(find "$SDATA/artifacts" -type f 2>/dev/null | wc -l)" 0
	# the agent retries: the lease survived the restart
	put_artifact a.tar.gz "$T/a.tar.gz"
	expect_status "upload again" 201
	expect_eq "artifacts" "$(artifact_names)" "a.tar.gz:$(sha "$T/a.tar.gz")"
	call GET "/api/v1/pipelines/$PIPE/artifacts/a.tar.gz" "$ADMIN" -o "$T/down"
	curl -s -m 30 -o "$T/down" -H "Authorization: Bearer $ADMIN" "$URL/api/v1/pipelines/$PIPE/artifacts/a.tar.gz"
	expect_eq "downloaded sha256" "$(sha "$T/down")" "$(sha "$T/a.tar.gz")"
}

# SIGKILL of the server while a real agent streams a job's log; restarted on the same port: the
# job finishes, the server's log is exactly the agent's log file (no gap, no duplicate).
t_kill_mid_job() {
	cat >"$T/p.yml" <<EOF
jobs:
  stream:
    steps:
      - run: |
          for i in \$(seq 1 300); do echo "before \$i \$(head -c 60 /dev/zero | tr '\\\\0' x)"; done
          touch "$T/phase1"
          i=0; while [ ! -e "$T/go" ]; do i=\$((i+1)); [ \$i -gt 2400 ] && exit 9; echo "meanwhile \$i"; sleep 0.02; done
          for i in \$(seq 1 300); do echo "after \$i"; done
EOF
	make_repo <"$T/p.yml"
	serve_at "$T/$MARK-data" || return
	start_agent a1 --keep-workspace || return
	call POST /api/v1/pipelines "$ADMIN" -H 'Content-Type: application/json' -d "{\"repo\": \"$T/repo\"}"
	expect_status submit 201
	PIPE=$(jb 'd["id"]')
	wait_for 60 test -e "$T/phase1" || { fail "the job did not start"; return; }
	# some of the log has reached the server: then it dies mid-stream
	wait_for 30 sh -c "curl -s -H 'Authorization: Bearer $ADMIN' '$URL/api/v1/jobs/$PIPE.1/log' | grep -q meanwhile" ||
		fail "no log reached the server"
	kill9_server
	sleep 1 # (the server is away while the job prints)
	serve_at "$SDATA" || return
	touch "$T/go"
	wait_for 120 pipeline_done || fail "the job did not finish"
	expect_eq "pipeline" "$(pipe_status)" success
	expect_eq "attempt" "$(jb 'd["jobs"][0]["attempt"]')" 1
	server_log "$PIPE.1" >"$T/server.txt"
	local dir
	dir=$(find "$AWORK/jobs" -mindepth 1 -maxdepth 1 -type d | head -n 1)
	if ! cmp -s "$T/server.txt" "$dir/log"; then
		fail "the server's log differs from the agent's log file"
		note "$(diff "$dir/log" "$T/server.txt" | head -5)"
	fi
	expect_eq "before/after lines" "$(grep -c '^before ' "$T/server.txt") $(grep -c '^after ' "$T/server.txt")" "300 300"
	expect_eq "meanwhile lines in order, each once" \
		"$(grep '^meanwhile ' "$T/server.txt" | awk '{ if ($2 != NR) bad = 1 } END { print bad ? "bad" : "ok" }')" ok
	expect_no_grep 'Sanitizer|runtime error' "$T/a1.log"
}

# The server gone while an agent long-polls (the connection drops mid-request) and away for a
# while: the agent reconnects with backoff (it does not spin) and runs the job queued after.
t_network_drop_poll() {
	make_repo <<'EOF'
jobs:
  a:
    steps:
      - run: echo reconnected-fine
EOF
	serve_at "$T/$MARK-data" || return
	start_agent a1 || return
	local polls_before
	kill9_server
	polls_before=$(wc -l <"$T/a1.log")
	sleep 3 # (the agent retries against a closed port meanwhile)
	local lines
	lines=$(($(wc -l <"$T/a1.log") - polls_before))
	[ "$lines" -le 30 ] || fail "the agent logged $lines lines in 3 s without a server (no backoff?)"
	alive "$APID" || fail "the agent exited without its server"
	serve_at "$SDATA" || return
	call POST /api/v1/pipelines "$ADMIN" -H 'Content-Type: application/json' -d "{\"repo\": \"$T/repo\"}"
	expect_status submit 201
	PIPE=$(jb 'd["id"]')
	wait_for 60 pipeline_done || fail "the job did not run after the server came back"
	expect_eq "pipeline" "$(pipe_status)" success
	server_log "$PIPE.1" | grep -q '^reconnected-fine$' || fail "the job's output is not in its log"
}

for _f in t_disk_full_upload t_disk_full_log t_kill_during_upload t_kill_mid_job t_network_drop_poll; do
	eval "w_$_f() { $_f; cleanup_subtest; }"
done
add "disk full during an artifact upload: 5xx, nothing listed, temp file gone, server serves" w_t_disk_full_upload
add "disk full during a log write: 5xx, acknowledged bytes kept, the retry gives exact bytes" w_t_disk_full_log
add "server SIGKILLed during an upload: no partial artifact after restart, the retry works" w_t_kill_during_upload
add "server SIGKILLed mid-job while the log streams: same port, log without gap or duplicate" w_t_kill_mid_job
add "server gone while the agent long-polls: reconnect with backoff, the next job runs" w_t_network_drop_poll
run_all
