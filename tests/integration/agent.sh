#!/usr/bin/env bash
# Integration tests of the agent: `runner __job DIR` on its own with hand-written job specs
# against a real git repository, then (when `runner serve` works) real agents against a real
# `runner serve` on 127.0.0.1 port 0: end to end, cancel, kill -9 of an agent, SIGTERM of an agent,
# a server restart, SIGHUP reload. TAP output; see lib.sh.
#   agent.sh RUNNER_BINARY
. "$(dirname "$0")/lib.sh"
CHECK_RUNNER_TEMP=1

need_tools git python3 curl

git_home
export RUNNER_GIT_CACHE=$ROOT/gitcache
SECRET=sec-$RANDOM$RANDOM-value

# ---- fixtures -------------------------------------------------------------------------------

# A repository $ROOT/repo with one commit holding src/app.c and the workflow $1 (a file) as
# .pipeline.yml; prints nothing, sets SHA.
make_repo() { # WORKFLOW_FILE [DIR]
	local dir=${2:-$ROOT/repo}
	rm -rf "$dir"
	mkdir -p "$dir/src"
	cp "$1" "$dir/.pipeline.yml"
	echo 'int main(void) { return 0; }' >"$dir/src/app.c"
	echo "fixture $RANDOM" >"$dir/README"
	git -C "$dir" init -q -b main
	git -C "$dir" add -A
	git -C "$dir" commit -qm "fixture"
	SHA=$(git -C "$dir" rev-parse HEAD)
}

# Write DIR/job.json: the JOBSPEC of instance NAME of the workflow file WF, in the repository
# $ROOT/repo at $SHA; EXTRA (JSON object) is merged over it.
job_spec() { # DIR NAME WF [EXTRA]
	mkdir -p "$1/artifacts"
	python3 - "$1/job.json" "$2" "$3" "${4:-{\}}" "$ROOT/repo" "$SHA" "$SECRET" <<'EOF'
import json, sys
out, name, wf, extra, repo, sha, secret = sys.argv[1:8]
spec = {"id": "7.1", "pipeline": "7", "name": name, "job": name.split(" (")[0], "attempt": 1,
        "repo": repo, "ref": "main", "sha": sha, "file": ".pipeline.yml",
        "workflow": open(wf).read(), "run_id": "7",
        "git": {"sha": sha, "ref": "refs/heads/main", "branch": "main"},
        "needs": {}, "env": {"FROM_SPEC": "spec-env"}, "secrets": {"TOKEN": secret}, "artifacts": []}
spec.update(json.loads(extra))
with open(out, "w") as f:
    json.dump(spec, f)
EOF
}

# Run `runner __job DIR` in the foreground (status in RC).
run_job() { # DIR
	(exec timeout -k 5 "$RNIT_TIMEOUT" "$RUNNER" __job "$1") >"$T/out" 2>"$T/err" </dev/null
	RC=$?
}

# ---- `runner __job` on its own ----------------------------------------------------------------

t_job_success() {
	workflow <<'EOF'
name: demo
jobs:
  build:
    outputs:
      version: ${{ steps.ver.outputs.version }}
    steps:
      - id: ver
        name: Version
        run: |
          echo "building $(cat src/app.c | wc -l) file(s) at ${{ git.sha }}"
          echo "env $FROM_SPEC run $RUNNER_RUN_ID"
          echo "version=1.2.$((40 + 2))" >>"$RUNNER_OUTPUT"
      - name: Second
        run: echo second step
EOF
	make_repo p.yml
	job_spec "$T/job" build p.yml
	run_job "$T/job"
	expect_rc 0
	local log=$T/job/log
	expect_no_file "$T/job/job.json" # it held the secrets; read and removed
	expect_file "$T/job/workspace/src/app.c"
	expect_eq "workspace commit" "$(git -C "$T/job/workspace" rev-parse HEAD)" "$SHA"
	expect_grep "^runner: checkout of $ROOT/repo at $SHA\$" "$log"
	expect_grep '^── step 1/2: Version$' "$log"
	expect_grep "^building 1 file\\(s\\) at $SHA\$" "$log"
	expect_grep '^env spec-env run 7$' "$log"
	expect_grep '^── step 1/2: Version ✓ success \([0-9.]+m?s\)$' "$log"
	expect_grep '^second step$' "$log"
	expect_grep '^── job build: ✓ success' "$log"
	expect_eq "result" "$(js "$T/job/result.json" 'd["status"] + " " + d["outputs"]["version"]')" "success 1.2.42"
	expect_eq "result reason" "$(js "$T/job/result.json" 'd["reason"]')" "null"
	# the event file: every event but the output lines, in order
	expect_eq "events" "$(python3 -c '
import json, sys
print(" ".join(json.loads(l)["event"] for l in open(sys.argv[1])))' "$T/job/events.jsonl")" \
		"run_started job_started step_started step_finished step_started step_finished job_finished run_finished"
	expect_eq "step 1 in the events" "$(python3 -c '
import json, sys
e = [json.loads(l) for l in open(sys.argv[1])][3]
print(e["step"], e["step_index"], e["status"], e["exit_code"])' "$T/job/events.jsonl")" "Version 0 success 0"
}

t_job_secrets_masked() {
	workflow <<'EOF'
jobs:
  leak:
    steps:
      - name: Leak ${{ secrets.TOKEN }}
        run: |
          echo "plain ${{ secrets.TOKEN }}"
          printf '%s' "${{ secrets.TOKEN }}" | base64
          printf 'split %s' "${{ secrets.TOKEN }}" | fold -w 7
          echo "${{ secrets.TOKEN }}" >&2
          exit 3
EOF
	make_repo p.yml
	job_spec "$T/job" leak p.yml
	run_job "$T/job"
	expect_rc 1
	expect_grep '^plain \*\*\*$' "$T/job/log"
	expect_grep '^── step 1/1: Leak \*\*\* ✗ failure \(exit 3' "$T/job/log"
	expect_no_grep "$SECRET" "$T/job/log" "$T/job/events.jsonl" "$T/job/result.json" "$T/out" "$T/err"
	expect_no_grep "$(printf '%s' "$SECRET" | base64)" "$T/job/log"
	expect_eq "result" "$(js "$T/job/result.json" 'd["status"]')" "failure"
	expect_eq "reason" "$(js "$T/job/result.json" 'd["reason"]')" "step 1 (Leak ***) failure: exit code 3"
}

# A secret shorter than 4 characters cannot be masked: the job is refused, nothing runs.
t_job_short_secret_refused() {
	workflow <<'EOF'
jobs:
  j:
    steps:
      - run: touch "@T@/ran"
EOF
	make_repo p.yml
	job_spec "$T/job" j p.yml '{"secrets": {"S": "abc"}}'
	run_job "$T/job"
	expect_rc 2
	expect_no_file "$T/ran"
	expect_eq "result" "$(js "$T/job/result.json" 'd["status"]')" "failure"
	expect_grep 'secret S' "$T/job/log"
}

# The server decided: needs come from the spec (their outputs are visible), `if:` is not
# evaluated again (`if: failure()` would skip it locally), and only the named matrix instance runs.
t_job_needs_and_matrix() {
	workflow <<'EOF'
jobs:
  prep:
    outputs: {x: "${{ steps.s.outputs.x }}"}
    steps:
      - id: s
        run: touch "@T@/prep-ran"; echo x=local >>"$RUNNER_OUTPUT"
  build:
    needs: prep
    if: failure()
    matrix:
      cc: [gcc, clang]
    steps:
      - run: echo "cc=${{ matrix.cc }} x=${{ needs.prep.outputs.x }} prep=${{ needs.prep.result }}"; touch "@T@/ran-${{ matrix.cc }}"
EOF
	make_repo p.yml
	job_spec "$T/job" "build (clang)" p.yml '{"needs": {"prep": {"result": "success", "outputs": {"x": "from-server"}}}}'
	run_job "$T/job"
	expect_rc 0
	expect_grep '^cc=clang x=from-server prep=success$' "$T/job/log"
	expect_file "$T/ran-clang"
	expect_no_file "$T/ran-gcc"
	expect_no_file "$T/prep-ran"
	expect_eq "result" "$(js "$T/job/result.json" 'd["status"]')" "success"
}

t_job_checkout_failure() {
	workflow <<'EOF'
jobs:
  j:
    steps:
      - run: echo never
EOF
	make_repo p.yml
	job_spec "$T/job" j p.yml '{"sha": "0123456789012345678901234567890123456789"}'
	run_job "$T/job"
	expect_rc 3
	expect_eq "result" "$(js "$T/job/result.json" 'd["status"]')" "failure"
	expect_eq "reason" "$(js "$T/job/result.json" 'd["reason"][:15]')" "checkout failed"
	expect_grep '^runner: checkout failed: ' "$T/job/log"
	expect_no_grep '^never$' "$T/job/log"
}

t_job_invalid_workflow() {
	printf 'jobs:\n  j:\n    steps:\n      - run: echo x\n        bogus: 1\n' >"$T/p.yml"
	make_repo "$T/p.yml"
	job_spec "$T/job" j "$T/p.yml"
	run_job "$T/job"
	expect_rc 2
	expect_grep '^\.pipeline\.yml:5:9: error: ' "$T/job/log"
	expect_eq "result" "$(js "$T/job/result.json" 'd["status"] + " " + d["reason"]')" "failure invalid workflow .pipeline.yml"
}

t_job_unknown_instance() {
	workflow <<'EOF'
jobs:
  j:
    steps:
      - run: echo x
EOF
	make_repo p.yml
	job_spec "$T/job" nope p.yml
	run_job "$T/job"
	expect_rc 2
	expect_grep "no job instance named 'nope'" "$T/job/log"
}

# SIGTERM (what the agent sends on a cancel): the steps stop as on a timeout, the whole tree
# (background, double fork, setsid) is gone, the result says cancelled, exit 143.
t_job_sigterm_cancels() {
	workflow <<'EOF'
jobs:
  j:
    steps:
      - name: Sleepy
        run: |
          "@SLEEPER@" 1000 &
          ( "@SLEEPER@" 1000 & ) &
          setsid sh -c '"@SLEEPER@" 1000' >/dev/null 2>&1 </dev/null &
          echo started; touch "@T@/started"
          "@SLEEPER@" 1000
      - name: Never
        run: touch "@T@/never"
EOF
	make_repo p.yml
	job_spec "$T/job" j p.yml
	(exec "$RUNNER" __job "$T/job") >"$T/out" 2>"$T/err" </dev/null &
	RPID=$!
	if ! wait_for 60 test -e "$T/started"; then
		fail "the step did not start"
		return
	fi
	wait_for 10 procs_at_least "$MARK" 4
	local t0 ms
	t0=$(now)
	kill -TERM "$RPID"
	wait_bg 30
	ms=$(elapsed_ms "$t0" "$(now)")
	expect_eq "exit status" "$RC" 143
	expect_le "ms from SIGTERM to exit" "$ms" 5000
	no_leftover
	expect_no_file "$T/never"
	expect_eq "result" "$(js "$T/job/result.json" 'd["status"] + " " + d["reason"]')" "cancelled cancelled"
	expect_grep '^── step 1/2: Sleepy ⊘ cancelled' "$T/job/log"
	expect_grep '^started$' "$T/job/log"
}

# The agent's artifact store: what a job packaged (NAME.FORMAT + NAME.json) is what a later job
# finds with `download:` when the agent copied it in.
t_job_artifacts_store() {
	workflow <<'EOF'
jobs:
  make:
    steps:
      - run: mkdir -p out && echo payload-42 >out/data.txt
      - package: {name: dist, paths: ["out/**"], format: tar.gz}
  use:
    needs: make
    steps:
      - download: {artifact: dist, path: got}
      - run: cat got/out/data.txt
EOF
	make_repo p.yml
	job_spec "$T/j1" make p.yml
	run_job "$T/j1"
	expect_rc 0
	expect_file "$T/j1/artifacts/dist.tar.gz"
	expect_eq "meta" "$(js "$T/j1/artifacts/dist.json" 'd["name"] + " " + d["format"] + " " + d["file"]')" "dist tar.gz dist.tar.gz"
	job_spec "$T/j2" use p.yml '{"needs": {"make": {"result": "success", "outputs": {}}}}'
	cp "$T/j1/artifacts/dist.tar.gz" "$T/j1/artifacts/dist.json" "$T/j2/artifacts/"
	run_job "$T/j2"
	expect_rc 0
	expect_grep '^payload-42$' "$T/j2/log"
}

# ---- real server, real agents -------------------------------------------------------------------

ADMIN=admin-$RANDOM$RANDOM-token-$$
REG=reg-$RANDOM$RANDOM-token-$$
SERVER_OK=
if "$RUNNER" serve --help 2>/dev/null | grep -q -- '--lease-ttl'; then
	SERVER_OK=1
fi
declare -A APID ADIR

# Start `runner serve` on 127.0.0.1 (port $PORT, default 0) with data in $T/MARK-srv; URL gets its
# base URL. Extra arguments are passed on (the environment too: RUNNER_SECRET_*).
start_server() {
	serve_at "$T/$MARK-srv" "$@"
}

# Start an agent NAME (work dir $T/MARK-NAME, log $T/NAME.log); extra arguments are passed on.
# Waits until it polls.
start_agent() { # NAME [ARGS...]
	local name=$1 n
	shift
	ADIR[$name]=$T/$MARK-$name
	n=$(grep -c 'waiting for jobs' "$T/$name.log" 2>/dev/null)
	(exec "$RUNNER" agent --server "$URL" --token "$REG" --name "$name" --work-dir "${ADIR[$name]}" "$@") \
		>>"$T/$name.log" 2>&1 </dev/null &
	APID[$name]=$!
	if ! wait_for 30 lines_more "$T/$name.log" 'waiting for jobs' "${n:-0}"; then
		fail "agent $name did not start"
		return 1
	fi
}

# 0 if FILE has more than N lines matching ERE.
lines_more() { # FILE ERE N
	[ "$(grep -Ec -- "$2" "$1" 2>/dev/null)" -gt "$3" ]
}

# 0 if at least N live processes have MARKER in their command line.
procs_at_least() { # MARKER N
	[ "$(marked_pids "$1" | grep -c .)" -ge "$2" ]
}

# 0 if no live process has MARKER in its command line.
procs_none() { # MARKER
	[ -z "$(marked_pids "$1")" ]
}

# Queue the pipeline of $ROOT/repo; PIPE gets its id.
submit() {
	PIPE=$(admin_api /api/v1/pipelines POST "{\"repo\": \"$ROOT/repo\"}" |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])' 2>/dev/null)
	[ -n "$PIPE" ] || fail "submit failed"
}

# The pipeline's state, fetched into $T/pipe.json (snap); a field of it (python over `d`:
# pget fetches first) or of one of its jobs by name (python over `j`, from the last snap).
snap() { admin_api "/api/v1/pipelines/$PIPE" >"$T/pipe.json"; }
pget() {
	snap
	js "$T/pipe.json" "$1"
}
jget() { # JOB_NAME EXPR
	js "$T/pipe.json" "[$2 for j in d['jobs'] if j['name'] == '$1'][0]"
}
pipeline_done() {
	case "$(pget 'd["status"]')" in success | failure | cancelled) return 0 ;; esac
	return 1
}
job_is() { snap; [ "$(jget "$1" "j['status']")" = "$2" ]; }
joblog() { # JOB_ID [ATTEMPT]
	curl -s -m 30 -H "Authorization: Bearer $ADMIN" "$URL/api/v1/jobs/$1/log${2:+?attempt=$2}"
}
# The job's whole log (it may take several answers of at most 1 MiB).
joblog_all() { # JOB_ID [ATTEMPT]
	local off=0 next
	while :; do
		next=$(curl -s -m 30 -D "$T/hdr" -o "$T/chunk" -H "Authorization: Bearer $ADMIN" \
			"$URL/api/v1/jobs/$1/log?offset=$off${2:+&attempt=$2}" -w '%{http_code}')
		[ "$next" = 200 ] || return 1
		cat "$T/chunk"
		next=$(sed -n 's/^[Xx]-[Ll]og-[Oo]ffset: *\([0-9]*\).*/\1/p' "$T/hdr")
		[ -n "$next" ] && [ "$next" -gt "$off" ] || break
		off=$next
	done
}

# After an end-to-end subtest: SIGKILL its agents and server (their jobs die with them) and
# reap them quietly.
stop_procs() {
	local p n
	# agents first, by signals (twice: running jobs are cancelled at once), so that a sanitizer
	# build reports leaks on the way out; then whatever is left, by SIGKILL
	for n in "${!APID[@]}"; do
		if alive "${APID[$n]}"; then
			kill -TERM "${APID[$n]}" 2>/dev/null
			sleep 0.1
			kill -TERM "${APID[$n]}" 2>/dev/null
			wait_for 30 procs_none "agent --server $URL --token $REG --name $n " ||
				note "agent $n did not stop on SIGTERM"
		fi
		if grep -q 'Sanitizer' "$T/$n.log" 2>/dev/null; then
			fail "agent $n: sanitizer report:"
			note "$(grep -A12 'Sanitizer' "$T/$n.log" | head -30)"
		fi
	done
	for p in "${APID[@]}" ${SPID:-}; do
		kill -9 "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	APID=()
	ADIR=()
	SPID=
	PORT=
	URL=
}

need_server() {
	if [ -z "$SERVER_OK" ]; then
		skip "runner serve is not available"
		return 1
	fi
	start_server "$@"
}

# The job output of a log: without the runner's own lines (headers, notes, git summaries) and
# the lines of the built-in steps that name their (run-specific) files.
output_lines() {
	grep -v -e '^── ' -e '^runner: ' -e ': mirrored by ' -e ': fetched [0-9]* objects' -e '^package: ' \
		-e '^download: '
}

# A DAG (make -> test matrix -> fail -> after) with an artifact made on one agent and used on
# others: the same job and step states and the same output as `runner run` of the same commit.
t_e2e_dag() {
	cat >"$BIN/$MARK-rendezvous" <<EOF
#!/bin/sh
# both matrix instances wait here for each other: they run at the same time, on two agents
mktemp "$T/at-XXXXXX" >/dev/null
i=0
while [ "\$(ls "$T" | grep -c '^at-')" -lt 2 ]; do i=\$((i+1)); [ \$i -gt 1200 ] && exit 9; sleep 0.05; done
EOF
	chmod +x "$BIN/$MARK-rendezvous"
	cat >"$T/p.yml" <<EOF
name: dag
jobs:
  make:
    outputs: {v: "\${{ steps.v.outputs.v }}"}
    steps:
      - id: v
        name: Make
        run: |
          mkdir -p out && echo "payload of make" >out/data.txt
          echo v=7 >>"\$RUNNER_OUTPUT"
          echo "made it"
      - package: {name: dist, paths: ["out/**"]}
  test:
    needs: make
    matrix:
      n: [1, 2]
    steps:
      - download: {artifact: dist, path: got}
      - name: Check
        run: |
          "$BIN/$MARK-rendezvous"
          cat got/out/data.txt
          echo "n=\${{ matrix.n }} v=\${{ needs.make.outputs.v }} secret=\${{ secrets.S1 }}"
  fail:
    needs: test
    steps:
      - name: Boom
        run: echo failing; exit 4
  after:
    needs: fail
    steps:
      - run: echo never
EOF
	make_repo "$T/p.yml"
	export RUNNER_SECRET_S1=$SECRET
	need_server || { unset RUNNER_SECRET_S1; return; }
	unset RUNNER_SECRET_S1
	start_agent a1 || return
	start_agent a2 || return
	submit
	wait_for 120 pipeline_done || fail "the pipeline did not finish"
	expect_eq "pipeline" "$(pget 'd["status"]')" failure
	local j st id n k f
	for j in make "test (1)" "test (2)" fail after; do
		case $j in fail) st=failure ;; after) st=skipped ;; *) st=success ;; esac
		expect_eq "job $j" "$(jget "$j" "j['status']")" "$st"
	done
	expect_eq "agents of the matrix instances" \
		"$(jget "test (1)" "j['agent']") $(jget "test (2)" "j['agent']" | tr 12 21)" \
		"$(jget "test (1)" "j['agent']") $(jget "test (1)" "j['agent']")"
	expect_eq "make outputs" "$(jget make "j['outputs']['v']")" 7
	expect_eq "fail reason" "$(jget fail "j['reason']")" "step 1 (Boom) failure: exit code 4"
	expect_eq "steps of fail" "$(jget fail "[s['status'] + ' ' + str(s['exit_code']) for s in j['steps']]")" '["failure 4"]'
	expect_eq "steps of test (2)" "$(jget "test (2)" "[s['status'] for s in j['steps']]")" '["success", "success"]'

	# the same commit with `runner run`: the same states, the same output per job
	git clone -q "$ROOT/repo" "$T/local"
	(cd "$T/local" && RUNNER_SECRET_S1=$SECRET timeout 120 "$RUNNER" run --log-dir "$T/locallogs" >"$T/local.out" 2>&1)
	for j in make "test (1)" "test (2)" fail after; do
		expect_eq "runner run: job $j" "$(job_status "$j" "$T/locallogs/summary.json")" "$(jget "$j" "j['status']")"
		id=$(jget "$j" "j['id']")
		joblog_all "$id" | output_lines >"$T/server-$id.txt"
		: >"$T/local-$id.txt"
		n=$(js "$T/locallogs/summary.json" "len([j for j in d['jobs'] if j['name'] == '$j'][0]['steps'])")
		for ((k = 0; k < n; k++)); do
			f=$(step_log "$j" "$k" "$T/locallogs")
			if [ -f "$f" ]; then output_lines <"$f" >>"$T/local-$id.txt"; fi
		done
		if ! cmp -s "$T/server-$id.txt" "$T/local-$id.txt"; then
			fail "the output of $j differs from runner run's:"
			note "$(diff "$T/local-$id.txt" "$T/server-$id.txt" | head -10)"
		fi
	done
	expect_grep '^payload of make$' "$T/server-$(jget "test (1)" "j['id']").txt"
	expect_grep '^n=2 v=7 secret=\*\*\*$' "$T/server-$(jget "test (2)" "j['id']").txt"
	expect_no_grep "$SECRET" "$T"/server-*.txt "$T/a1.log" "$T/a2.log"
	joblog "$(jget fail "j['id']")" >"$T/fail.log"
	expect_grep '^── step 1/1: Boom ✗ failure \(exit 4' "$T/fail.log"
	# the job directories are gone (no --keep-workspace)
	expect_eq "job directories left" "$(find "${ADIR[a1]}/jobs" "${ADIR[a2]}/jobs" -mindepth 1 -maxdepth 1 | wc -l)" 0
}

# A cancel reaches the running job through its heartbeat: the step tree is gone within a second.
t_e2e_cancel() {
	cat >"$T/p.yml" <<EOF
jobs:
  sleepy:
    steps:
      - run: |
          "$SLEEPER" 1000 &
          setsid sh -c '"$SLEEPER" 1000' >/dev/null 2>&1 </dev/null &
          touch "$T/started"
          "$SLEEPER" 1000
      - run: touch "$T/second-ran"
EOF
	make_repo "$T/p.yml"
	need_server || return
	start_agent a1 || return
	submit
	wait_for 60 test -e "$T/started" || { fail "the job did not start"; return; }
	wait_for 10 procs_at_least "$MARK" 3
	local id t0 ms
	snap
	id=$(jget sleepy "j['id']")
	t0=$(now)
	admin_api "/api/v1/jobs/$id/cancel" POST >/dev/null
	wait_for 10 procs_none "$BIN/$MARK"
	ms=$(elapsed_ms "$t0" "$(now)")
	expect_le "ms from the cancel request until the step tree is gone" "$ms" 1000
	no_leftover "$BIN/$MARK"
	wait_for 30 job_is sleepy cancelled || fail "job status $(jget sleepy "j['status']"), expected cancelled"
	snap
	expect_no_file "$T/second-ran"
	expect_eq "step states" "$(jget sleepy "[s['status'] for s in j['steps']]")" '["cancelled", "skipped"]'
	note "cancel to step tree gone: $ms ms"
}

# kill -9 of an agent mid-job: its __job is stopped (parent-death signal), the lease expires, the
# job runs again (attempt 2) on the other agent; that attempt's log is exactly the agent's log
# file, and the dead agent's lease is refused from then on.
t_e2e_agent_killed() {
	cat >"$T/p.yml" <<EOF
jobs:
  long:
    steps:
      - run: |
          for i in \$(seq 1 50); do echo "line \$i of \$RUNNER_JOB"; done
          if [ ! -e "$T/first" ]; then touch "$T/first"; "$SLEEPER" 1000; fi
          for i in \$(seq 51 3000); do echo "line \$i"; done
EOF
	make_repo "$T/p.yml"
	need_server --lease-ttl 2s || return
	start_agent a1 || return
	submit
	wait_for 60 test -e "$T/first" || { fail "the job did not start"; return; }
	local lease
	lease=$(ls "${ADIR[a1]}/jobs")
	disown "${APID[a1]}" # (no "Killed" notice)
	kill -9 "${APID[a1]}"
	wait_for 10 procs_none "agent --server $URL --token $REG --name a1 " || fail "agent a1 did not die"
	# its __job got SIGTERM when the agent died, and stopped the step
	wait_for 30 procs_none "$SLEEPER" || fail "the step of the dead agent still runs"
	start_agent a2 --keep-workspace || return
	wait_for 60 pipeline_done || fail "the job did not finish on the second agent"
	expect_eq "job" "$(jget long "j['status'] + ' attempt ' + str(j['attempt']) + ' on ' + str(j['agent'])")" \
		"success attempt 2 on a2"
	local id dir
	id=$(jget long "j['id']")
	joblog_all "$id" 2 >"$T/server.txt"
	dir=$(find "${ADIR[a2]}/jobs" -mindepth 1 -maxdepth 1 | head -n 1)
	if ! cmp -s "$T/server.txt" "$dir/log"; then
		fail "the server's log of attempt 2 differs from the agent's log file"
		note "$(cmp "$T/server.txt" "$dir/log" 2>&1)"
	fi
	expect_eq "lines 1..3000 once each, in order" \
		"$(grep -c '^line ' "$T/server.txt") $(grep '^line ' "$T/server.txt" | sed 's/^line \([0-9]*\).*/\1/' | sort -n | uniq | wc -l)" \
		"3000 3000"
	expect_eq "log offset kept by the agent" "$(cat "$dir/log.offset")" "$(stat -c %s "$dir/log")"
	# the dead agent's lease is refused
	local code token
	token=$(js "${ADIR[a1]}/agent.json" 'd["token"]')
	code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $token" \
		-H 'Content-Type: application/octet-stream' --data-binary 'late' "$URL/api/v1/leases/$lease/log?offset=0")
	expect_eq "late log append of the dead agent's lease" "$code" 410
	# a new agent process on the dead one's work dir removes its leftover, never runs it again
	start_agent a1 || return
	expect_grep "removing .*/$lease \\(a lease of an earlier run; never run again\\)" "$T/a1.log"
	expect_no_file "${ADIR[a1]}/jobs/$lease"
	_temp_left_ok=1
}

# An agent that could not heartbeat longer than the lease TTL (stopped here with SIGSTOP): the
# server hands the job out again; when the agent comes back its lease is refused (410), it kills
# the job's processes and drops the job, and runs the new attempt like any other job.
t_e2e_lease_gone() {
	cat >"$T/p.yml" <<EOF
jobs:
  j:
    steps:
      - run: |
          if [ ! -e "$T/first" ]; then touch "$T/first"; "$SLEEPER" 1000; fi
          echo second attempt
EOF
	make_repo "$T/p.yml"
	need_server --lease-ttl 2s || return
	start_agent a1 || return
	submit
	wait_for 60 test -e "$T/first" || { fail "the job did not start"; return; }
	kill -STOP "${APID[a1]}"
	wait_for 30 job_attempt_queued 2 || fail "the job was not queued again"
	kill -CONT "${APID[a1]}"
	wait_for 30 procs_none "$SLEEPER" || fail "the step of the lost lease still runs"
	wait_for 60 pipeline_done || fail "the job did not finish"
	expect_eq "job" "$(jget j "j['status'] + ' attempt ' + str(j['attempt'])")" "success attempt 2"
	expect_grep 'refused the lease \(gone\)' "$T/a1.log"
	expect_grep '\(j\): dropped \(lease gone\)' "$T/a1.log"
	expect_grep '^second attempt$' <(joblog "$(jget j "j['id']")" 2)
}
job_attempt_queued() { snap; [ "$(jget j "str(j['attempt']) + ' ' + j['status']")" = "$1 queued" ]; }

# SIGTERM of an agent: it takes no new job, lets the running one finish, reports, exits 0; with
# a short --shutdown-timeout the running job is cancelled and reported as such.
t_e2e_agent_sigterm() {
	cat >"$T/p.yml" <<EOF
jobs:
  one:
    steps:
      - run: |
          touch "$T/one-started"
          i=0; while [ ! -e "$T/go" ]; do i=\$((i+1)); [ \$i -gt 1200 ] && exit 9; sleep 0.05; done
          echo one-done
  two:
    steps:
      - run: touch "$T/two-started"; "$SLEEPER" 1000
EOF
	make_repo "$T/p.yml"
	need_server || return
	start_agent a1 || return
	submit
	wait_for 60 test -e "$T/one-started" -o -e "$T/two-started" || { fail "no job started"; return; }
	local first=one second=two
	[ -e "$T/two-started" ] && first=two second=one
	kill -TERM "${APID[a1]}"
	wait_for 10 grep -q 'no new jobs' "$T/a1.log" || fail "no shutdown message"
	if [ $first = one ]; then
		touch "$T/go"
		wait_pid "${APID[a1]}" 60
		expect_eq "agent exit status" "$RC" 0
		snap
		expect_eq "job one" "$(jget one "j['status']")" success
		expect_eq "job two (never taken)" "$(jget two "j['status']")" queued
	else
		# `two` never ends by itself: wait for the default shutdown timeout? no: a second
		# agent with --shutdown-timeout 1s shows the cancel; this one is stopped by a second signal
		kill -TERM "${APID[a1]}"
		wait_pid "${APID[a1]}" 60
		expect_eq "agent exit status" "$RC" 0
		snap
		expect_eq "job two" "$(jget two "j['status']")" cancelled
	fi
	expect_grep 'stopped' "$T/a1.log"
	no_leftover "$SLEEPER"

	# the other job, with a short shutdown timeout: cancelled, reported, exit 0
	touch "$T/go"
	start_agent a2 --shutdown-timeout 1s || return
	wait_for 60 test -e "$T/$second-started" || { fail "job $second did not start"; return; }
	if [ $second = one ]; then
		# it ends by itself (go exists): just check the result
		wait_for 60 job_is one success || fail "job one did not succeed"
		kill -TERM "${APID[a2]}"
		wait_pid "${APID[a2]}" 30
	else
		local t0
		t0=$(now)
		kill -TERM "${APID[a2]}"
		wait_pid "${APID[a2]}" 60
		expect_eq "agent exit status" "$RC" 0
		expect_ge "ms until the agent stopped (shutdown timeout 1s)" "$(elapsed_ms "$t0" "$(now)")" 900
		snap
		expect_eq "job two" "$(jget two "j['status']")" cancelled
		expect_grep 'cancelling 1 running job' "$T/a2.log"
	fi
	no_leftover "$SLEEPER"
}

# The server is restarted while a job runs and prints: the job goes on, the agent keeps its log
# on disk and ships it when the server is back; nothing is lost, nothing doubled.
t_e2e_server_restart() {
	cat >"$T/p.yml" <<EOF
jobs:
  steady:
    outputs: {r: "\${{ steps.s.outputs.r }}"}
    steps:
      - id: s
        run: |
          for i in \$(seq 1 20); do echo "before \$i"; done
          touch "$T/phase1"
          i=0; while [ ! -e "$T/go" ]; do i=\$((i+1)); [ \$i -gt 1200 ] && exit 9; echo "waiting \$i"; sleep 0.05; done
          for i in \$(seq 1 20); do echo "after \$i"; done
          echo r=restarted-fine >>"\$RUNNER_OUTPUT"
EOF
	make_repo "$T/p.yml"
	need_server || return
	start_agent a1 --keep-workspace || return
	submit
	wait_for 60 test -e "$T/phase1" || { fail "the job did not start"; return; }
	kill -TERM "$SPID"
	wait_pid "$SPID" 30
	expect_eq "server exit status" "$RC" 0
	sleep 1 # (the server is away while the job prints)
	start_server || return
	touch "$T/go"
	wait_for 120 pipeline_done || fail "the job did not finish"
	expect_eq "job" "$(jget steady "j['status'] + ' ' + str(j['attempt']) + ' ' + j['outputs'].get('r', '-')")" \
		"success 1 restarted-fine"
	local id dir
	id=$(jget steady "j['id']")
	joblog_all "$id" >"$T/server.txt"
	dir=$(find "${ADIR[a1]}/jobs" -mindepth 1 -maxdepth 1 | head -n 1)
	if ! cmp -s "$T/server.txt" "$dir/log"; then
		fail "the server's log differs from the agent's log file"
		note "$(diff "$dir/log" "$T/server.txt" | head -5)"
	fi
	expect_eq "before/after lines" "$(grep -c '^before ' "$T/server.txt") $(grep -c '^after ' "$T/server.txt")" "20 20"
}

# SIGHUP re-reads --config: a job for a label the agent did not have runs once the label is there.
t_e2e_sighup_labels() {
	cat >"$T/p.yml" <<EOF
jobs:
  special:
    runs-on: [gpu]
    steps:
      - run: echo on-gpu
EOF
	make_repo "$T/p.yml"
	need_server || return
	printf 'labels: [linux]\ncapacity: 2\n' >"$T/agent.yml"
	start_agent a1 --config "$T/agent.yml" || return
	submit
	sleep 1 # (a job the agent cannot take stays queued)
	snap
	expect_eq "job before the reload" "$(jget special "j['status']")" queued
	printf 'labels: [linux, gpu]\ncapacity: 2\n' >"$T/agent.yml"
	kill -HUP "${APID[a1]}"
	wait_for 30 job_is special success || fail "the job did not run after SIGHUP"
	expect_grep 'SIGHUP: reloaded .*labels linux,gpu, capacity 2' "$T/a1.log"
	expect_eq "agent still running" "$(alive "${APID[a1]}" && echo yes)" yes
	# a broken config keeps the settings
	printf 'labels: [linux, gpu]\ncolour: red\n' >"$T/agent.yml"
	kill -HUP "${APID[a1]}"
	wait_for 10 grep -q 'has errors' "$T/a1.log" || fail "no message about the broken config"
	expect_grep 'agent.yml:2:1: error: unknown key' "$T/a1.log"
}

# The server is not there yet: the agent keeps trying (with backoff) and registers when it comes.
t_e2e_server_late() {
	[ -n "$SERVER_OK" ] || { skip "runner serve is not available"; return; }
	local port
	port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	URL=http://127.0.0.1:$port
	ADIR[a1]=$T/$MARK-a1
	(exec "$RUNNER" agent --server "$URL" --token "$REG" --name a1 --work-dir "${ADIR[a1]}") >"$T/a1.log" 2>&1 </dev/null &
	APID[a1]=$!
	wait_for 30 grep -q 'cannot register' "$T/a1.log" || fail "no retry message"
	PORT=$port start_server || return
	wait_for 60 grep -q 'waiting for jobs' "$T/a1.log" || fail "the agent did not register when the server came"
	expect_file "${ADIR[a1]}/agent.json"
	expect_eq "agent.json mode" "$(stat -c %a "${ADIR[a1]}/agent.json")" 600
	kill -TERM "${APID[a1]}"
	wait_pid "${APID[a1]}" 30
	expect_eq "agent exit status" "$RC" 0
}

# --metrics: the counters after a job, and the allocator's gauges (heap in use).
t_e2e_agent_metrics() {
	printf 'jobs:\n  one:\n    steps:\n      - run: echo hi\n' >"$T/p.yml"
	make_repo "$T/p.yml"
	need_server || return
	local mport
	mport=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	start_agent a1 --metrics "127.0.0.1:$mport" || return
	submit
	wait_for 60 pipeline_done || { fail "the pipeline did not finish"; return; }
	expect_eq "pipeline status" "$(pget 'd["status"]')" success
	wait_for 10 sh -c "curl -s -m 5 http://127.0.0.1:$mport/metrics | grep -q '^runner_agent_jobs_running 0'"
	curl -s -m 10 "http://127.0.0.1:$mport/metrics" >"$T/agent-metrics"
	local m
	for m in 'runner_agent_jobs_total\{status="success"\} 1$' 'runner_agent_assignments_total 1$' \
		'runner_agent_heap_in_use_bytes [1-9][0-9]{4,}$' 'runner_agent_heap_arena_bytes [0-9]+$' \
		'runner_agent_heap_mmap_bytes [0-9]+$' 'runner_agent_heap_free_bytes [0-9]+$'; do
		expect_grep "^$m" "$T/agent-metrics"
	done
}

add "__job: checkout, job log, events, outputs in result.json" t_job_success
add "__job: secrets masked in the log, events and result" t_job_secrets_masked
add "__job: a secret too short to mask refuses the job" t_job_short_secret_refused
add "__job: needs from the spec, if: not re-evaluated, one matrix instance" t_job_needs_and_matrix
add "__job: a failed checkout is an infrastructure failure (3)" t_job_checkout_failure
add "__job: an invalid workflow is reported with line:column (2)" t_job_invalid_workflow
add "__job: an unknown instance name (2)" t_job_unknown_instance
add "__job: SIGTERM cancels, no process of the step tree survives, exit 143" t_job_sigterm_cancels
add "__job: artifacts in the store format of package/download" t_job_artifacts_store
add "e2e: DAG, matrix on two agents, artifact, failure: as runner run" w_t_e2e_dag
add "e2e: cancel stops the step tree within 1 s" w_t_e2e_cancel
add "e2e: kill -9 of an agent: attempt 2 elsewhere, log without gap or duplicate, old lease refused" w_t_e2e_agent_killed
add "e2e: a lease lost while the agent was stopped: 410, its processes killed, job dropped" w_t_e2e_lease_gone
add "e2e: SIGTERM of an agent finishes or cancels its job, exit 0" w_t_e2e_agent_sigterm
add "e2e: server restarted mid-job: nothing lost" w_t_e2e_server_restart
add "e2e: SIGHUP reloads labels from --config" w_t_e2e_sighup_labels
add "e2e: an agent started before its server registers when it comes" w_t_e2e_server_late
add "e2e: the agent's --metrics: job counters and heap gauges" w_t_e2e_agent_metrics

for _f in $(declare -F | sed -n 's/^declare -f \(t_e2e_.*\)/\1/p'); do
	eval "w_$_f() { $_f; stop_procs; }"
done
run_all
