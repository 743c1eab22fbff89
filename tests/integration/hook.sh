#!/usr/bin/env bash
# Integration tests of `runner hook`: real bare repositories with the hook installed, real `git
# push` from clones over file://, the real detached worker and `runner run`. Every decision of
# the hook is a line in GIT_DIR/runner/hook.log written before the push returns, so "nothing
# runs" is checked by waiting for that line; runs are waited for through run.json.
#   hook.sh RUNNER_BINARY
. "$(dirname "$0")/lib.sh"

need_tools git python3 curl

git_home

# ---- helpers ----------------------------------------------------------------------------------

# new_repo [INSTALL-OPTIONS...]: a bare repository $G (its path contains $MARK, so that a worker
# left behind is found and killed), the hook installed, and a clone $W with user settings.
new_repo() {
	G=$T/$MARK.git
	W=$T/work
	LOG=$G/runner/hook.log
	git init -q --bare -b main "$G" || fail "git init"
	run hook install "$G" "$@"
	expect_rc 0
	git clone -q "file://$G" "$W" 2>/dev/null || fail "git clone"
}

# commit FILE TEXT [MESSAGE]: write FILE in the clone and commit it.
commit() {
	mkdir -p "$(dirname "$W/$1")"
	printf '%s\n' "$2" >"$W/$1"
	git -C "$W" add -A && git -C "$W" commit -qm "${3:-change $1}" || fail "git commit"
}

# push ARGS...: git push from the clone (stderr, with the hook's "remote:" lines, in $T/push.err).
push() {
	timeout 60 git -C "$W" push "$@" >"$T/push.out" 2>"$T/push.err"
	PUSH_RC=$?
}

# The number of lines of hook.log (0 when absent).
log_lines() { if [ -f "$LOG" ]; then wc -l <"$LOG"; else echo 0; fi; }

# wait_log ERE: wait for a line of hook.log matching ERE (decisions are written before the push
# returns, so a test waits only for lines of the detached worker).
wait_log() {
	wait_for 60 grep -Eq -- "$1" "$LOG" || fail "no line /$1/ in hook.log: $(tail -n 5 "$LOG" 2>/dev/null)"
}

# finished N: 0 when hook.log has at least N "finished" lines of runs.
finished() { [ "$(grep -c ': finished: ' "$LOG" 2>/dev/null)" -ge "$1" ]; }

# The run id of the newest "queued: run ID" line.
last_run() { sed -n 's/.*: queued: run \([0-9a-f-]*\)$/\1/p' "$LOG" | tail -n 1; }

# wait_run ID: wait until run ID finished; prints nothing.
wait_run() {
	wait_log "$1: finished: "
}

run_status() { js "$G/runner/$1/run.json" 'd["status"]'; }

# Lines of hook.log after line $1.
log_after() { tail -n +"$(($1 + 1))" "$LOG"; }

# ---- install ----------------------------------------------------------------------------------

t_install() {
	git init -q --bare -b main "$T/r.git"
	run hook install "$T/r.git" --jobs 3 --file ci/pipeline.yml
	expect_rc 0
	[ -x "$T/r.git/hooks/post-receive" ] || fail "hooks/post-receive is not executable"
	expect_grep "runner-hook: installed by" "$T/r.git/hooks/post-receive"
	expect_grep "^runner='$RUNNER'$" "$T/r.git/hooks/post-receive"
	expect_eq "runner.jobs" "$(git -C "$T/r.git" config runner.jobs)" 3
	expect_eq "runner.file" "$(git -C "$T/r.git" config runner.file)" ci/pipeline.yml
	expect_eq "runner.server" "$(git -C "$T/r.git" config runner.server || echo unset)" unset
	# installing again replaces our own hook and its settings; nothing is kept as .orig
	run hook install "$T/r.git" --server http://127.0.0.1:9/ --token tok-1234
	expect_rc 0
	expect_no_file "$T/r.git/hooks/post-receive.orig"
	expect_eq "runner.server" "$(git -C "$T/r.git" config runner.server)" http://127.0.0.1:9/
	expect_eq "runner.token" "$(git -C "$T/r.git" config runner.token)" tok-1234
	expect_eq "runner.jobs" "$(git -C "$T/r.git" config runner.jobs || echo unset)" unset
	# usage errors
	run hook install "$T/r.git" --token x
	expect_rc 2
	run hook install "$T/r.git" --jobs 0
	expect_rc 2
	run hook install "$T/r.git" --server ftp://x
	expect_rc 2
	run hook install "$T/nothing-here"
	expect_rc 2
	expect_grep "not a git repository" "$T/err"
	run hook bogus
	expect_rc 2
	# uninstall removes it and the settings
	run hook uninstall "$T/r.git"
	expect_rc 0
	expect_no_file "$T/r.git/hooks/post-receive"
	expect_eq "runner.server" "$(git -C "$T/r.git" config runner.server || echo unset)" unset
}

t_chain() {
	G=$T/$MARK.git
	git init -q --bare -b main "$G"
	printf '#!/bin/sh\ncat >>"%s/orig-saw"\necho orig-hook-ran >&2\n' "$T" >"$G/hooks/post-receive"
	chmod +x "$G/hooks/post-receive"
	cp "$G/hooks/post-receive" "$T/orig-copy"
	run hook install "$G"
	expect_rc 0
	expect_grep "post-receive.orig and runs first" "$T/out"
	cmp -s "$T/orig-copy" "$G/hooks/post-receive.orig" || fail "the old hook was not kept as post-receive.orig"
	# a second foreign hook while .orig is taken: refused, both files untouched
	cp "$G/hooks/post-receive" "$T/ours-copy"
	printf '#!/bin/sh\necho another\n' >"$G/hooks/post-receive"
	run hook install "$G"
	expect_rc 3
	expect_grep "move one of them away" "$T/err"
	expect_grep "echo another" "$G/hooks/post-receive"
	cmp -s "$T/orig-copy" "$G/hooks/post-receive.orig" || fail "post-receive.orig changed"
	cp "$T/ours-copy" "$G/hooks/post-receive"
	# a push runs both, and both see the ref lines
	W=$T/work LOG=$G/runner/hook.log
	git clone -q "file://$G" "$W" 2>/dev/null
	commit .pipeline.yml 'jobs: {a: {steps: [{run: echo chained-run-ran}]}}'
	push origin main
	expect_eq "push status" "$PUSH_RC" 0
	expect_grep "remote: orig-hook-ran" "$T/push.err"
	expect_grep "^0{40} [0-9a-f]{40} refs/heads/main$" "$T/orig-saw"
	expect_grep "refs/heads/main .*: queued: run" "$LOG"
	wait_run "$(last_run)"
	# uninstall puts the old hook back
	run hook uninstall "$G"
	expect_rc 0
	cmp -s "$T/orig-copy" "$G/hooks/post-receive" || fail "uninstall did not restore the old hook"
	expect_no_file "$G/hooks/post-receive.orig"
}

# ---- runs -------------------------------------------------------------------------------------

t_matching_push_runs() {
	new_repo
	commit .pipeline.yml "on:
  push:
    branches: [main]
jobs:
  build:
    steps:
      - run: |
          echo marker-$MARK
          echo \"ref=\$RUNNER_REF branch=\${{ git.branch }} sha=\${{ git.sha }} gitdir=\${GIT_DIR-unset}\""
	local sha
	sha=$(git -C "$W" rev-parse HEAD)
	push origin main
	expect_eq "push status" "$PUSH_RC" 0
	expect_grep "remote: runner: refs/heads/main ${sha:0:7}: run [0-9a-f-]+ queued" "$T/push.err"
	local id
	id=$(last_run)
	[ -n "$id" ] || { fail "no run queued: $(cat "$LOG")"; return; }
	wait_run "$id"
	expect_eq "status" "$(run_status "$id")" success
	expect_eq "sha" "$(js "$G/runner/$id/run.json" 'd["sha"]')" "$sha"
	expect_file "$G/runner/$id/summary.json"
	expect_eq "job" "$(job_status build "$G/runner/$id/summary.json")" success
	local slog
	slog=$(step_log build 0 "$G/runner/$id")
	expect_grep "^marker-$MARK$" "$slog"
	expect_grep "^ref=refs/heads/main branch=main sha=$sha gitdir=unset$" "$slog"
	# the latest link of the ref, and the checkout is gone
	expect_eq "latest" "$(readlink -f "$G/runner/latest/heads/main")" "$(readlink -f "$G/runner/$id")"
	expect_eq "work dirs left" "$(find "$G/runner/work" -mindepth 1 | wc -l)" 0
	# runner hook status
	run hook status "$G" main
	expect_rc 0
	expect_grep "^$id +refs/heads/main +${sha:0:7} +success" "$T/out"
	expect_grep "^  build +success" "$T/out"
	run hook status "$G" --json
	expect_rc 0
	expect_eq "status --json" "$(js "$T/out" 'd["runs"][0]["status"] + " " + d["runs"][0]["summary"]["jobs"][0]["status"]')" \
		"success success"
	run hook status "$G" other
	expect_rc 0
	expect_grep "^no runs of refs/heads/other" "$T/out"
}

t_failing_run() {
	new_repo
	commit .pipeline.yml 'jobs: {a: {steps: [{run: "echo failing-step; exit 3"}]}}'
	push origin main
	local id
	id=$(last_run)
	wait_run "$id"
	expect_eq "status" "$(run_status "$id")" failure
	expect_eq "exit code" "$(js "$G/runner/$id/run.json" 'd["exit_code"]')" 1
	expect_grep "$id: finished: failure \(exit 1" "$LOG"
}

t_branch_filters() {
	new_repo
	commit .pipeline.yml "on: {push: {branches: [main, 'release/**'], tags: ['v*']}}
jobs:
  a:
    steps:
      - run: echo ran-\${{ git.ref }}"
	push origin main
	wait_run "$(last_run)"
	local n
	n=$(log_lines)
	git -C "$W" checkout -qb feature
	commit f.txt feature
	push origin feature
	expect_eq "push status" "$PUSH_RC" 0
	expect_grep "refs/heads/feature 0{7}\.\.[0-9a-f]{7}: skipped: branch not in on.push.branches" "$LOG"
	git -C "$W" checkout -qb release/1.0
	push origin release/1.0
	expect_grep "refs/heads/release/1.0 .*: queued: run" "$LOG"
	wait_run "$(last_run)"
	expect_eq "latest of release/1.0" "$(readlink -f "$G/runner/latest/heads/release/1.0")" "$(readlink -f "$G/runner/$(last_run)")"
	git -C "$W" tag v1.0
	git -C "$W" tag x1.0
	push origin v1.0 x1.0
	expect_grep "refs/tags/v1.0 .*: queued: run" "$LOG"
	expect_grep "refs/tags/x1.0 .*: skipped: tag not in on.push.tags" "$LOG"
	wait_run "$(last_run)"
	# exactly the runs of main, release/1.0 and v1.0
	expect_eq "runs" "$(grep -c ': finished: success' "$LOG")" 3
	expect_eq "runs after the first" "$(log_after "$n" | grep -c ': queued: run')" 2
}

t_paths_filters() {
	new_repo
	commit .pipeline.yml "on: {push: {paths: ['src/**'], paths-ignore: ['src/**/*.md']}}
jobs: {a: {steps: [{run: 'true'}]}}"
	commit src/a.c 'int a;'
	push origin main
	expect_grep "refs/heads/main 0000000\.\..*: queued: run" "$LOG"
	wait_run "$(last_run)"
	commit docs/readme.txt 'docs only'
	push origin main
	expect_grep "refs/heads/main [0-9a-f]{7}\.\..*: skipped: no changed path matches on.push paths" "$LOG"
	commit src/notes.md 'ignored'
	push origin main
	expect_eq "skips" "$(grep -c 'skipped: no changed path matches' "$LOG")" 2
	commit src/b.c 'int b;'
	push origin main
	expect_eq "queued" "$(grep -c ': queued: run' "$LOG")" 2
	wait_run "$(last_run)"
	# a new branch is compared with its merge base with main, not with an empty tree
	git -C "$W" checkout -qb docs-only
	commit docs/more.txt more
	push origin docs-only
	expect_grep "refs/heads/docs-only 0000000\.\..*: skipped: no changed path matches" "$LOG"
	git -C "$W" checkout -qb code main
	commit src/c.c 'int c;'
	push origin code
	expect_grep "refs/heads/code 0000000\.\..*: queued: run" "$LOG"
	wait_run "$(last_run)"
	expect_eq "runs" "$(grep -c ': finished: success' "$LOG")" 3
}

t_deleted_branch() {
	new_repo
	commit .pipeline.yml 'jobs: {a: {steps: [{run: "true"}]}}'
	push origin main
	git -C "$W" checkout -qb gone
	push origin gone
	wait_for 60 finished 2 || fail "the two runs did not finish"
	local n
	n=$(log_lines)
	push origin --delete gone
	expect_eq "push status" "$PUSH_RC" 0
	expect_grep "refs/heads/gone [0-9a-f]{7}\.\.0000000: deleted: nothing runs" "$LOG"
	expect_eq "new lines" "$(log_after "$n" | grep -vc 'deleted: nothing runs')" 0
	expect_eq "queue" "$(find "$G/runner/queue" -name '*.json' | wc -l)" 0
}

t_invalid_workflow() {
	new_repo
	commit .pipeline.yml 'jobs:
  a:
    stepz: [{run: "true"}]
  b:
    needs: [nope]
    steps: [{run: "true"}]'
	push origin main
	expect_eq "push status" "$PUSH_RC" 0
	expect_eq "pushed" "$(git -C "$G" rev-parse main)" "$(git -C "$W" rev-parse HEAD)"
	expect_grep "remote: runner: refs/heads/main [0-9a-f]{7}: invalid workflow, nothing runs \(push accepted\): \.pipeline\.yml:3:5: error: " "$T/push.err"
	expect_eq "hook lines on the pusher's terminal" "$(grep -c 'remote: runner:' "$T/push.err")" 1
	expect_grep "refs/heads/main .*: invalid workflow: [0-9]+ problems, nothing runs" "$LOG"
	expect_grep "^.{24} +\.pipeline\.yml:5:.*nope" "$LOG"
	expect_eq "queued" "$(grep -c 'queued' "$LOG")" 0
	# a commit without the file: nothing runs, nothing said to the pusher
	git -C "$W" rm -q .pipeline.yml && git -C "$W" commit -qm rm
	push origin main
	expect_grep "skipped: no \.pipeline\.yml in the commit" "$LOG"
	expect_no_grep "remote: runner" "$T/push.err"
}

# The push returns while the run is still going: the step waits for a file the test creates only
# after `git push` came back.
t_push_not_blocked() {
	new_repo
	commit .pipeline.yml "jobs: {a: {steps: [{run: '$WAIT_FN; w $T/go; echo released'}]}}"
	local t0 t1
	t0=$(now)
	push origin main
	t1=$(now)
	expect_eq "push status" "$PUSH_RC" 0
	local id
	id=$(last_run)
	wait_log "$id: started"
	expect_eq "still running" "$(run_status "$id")" running
	note "push took $(elapsed_ms "$t0" "$t1") ms"
	run hook status "$G"
	expect_grep "^$id .* running" "$T/out"
	touch "$T/go"
	wait_run "$id"
	expect_eq "status" "$(run_status "$id")" success
}

# runner.jobs = 1: three pushes queue three runs that run one at a time, in push order. The first
# run holds the slot until the test has pushed all three.
t_queue_in_order() {
	new_repo
	commit .pipeline.yml "jobs:
  a:
    steps:
      - run: |
          $WAIT_FN
          mkdir $T/inside || { echo two runs at once; exit 1; }
          echo \${{ git.sha }} >>$T/order
          [ -e $T/first ] || { touch $T/first; w $T/go; }
          rmdir $T/inside"
	push origin main
	local shas=() i
	shas+=("$(git -C "$W" rev-parse HEAD)")
	wait_for 60 test -e "$T/first" || fail "the first run did not start"
	for i in 2 3; do
		commit "n$i" "$i"
		push origin main
		shas+=("$(git -C "$W" rev-parse HEAD)")
	done
	expect_eq "queued" "$(find "$G/runner/queue" -name '*.json' | wc -l)" 2
	touch "$T/go"
	wait_for 60 finished 3 || fail "three runs did not finish: $(cat "$LOG")"
	expect_eq "order" "$(tr '\n' ' ' <"$T/order")" "${shas[*]} "
	expect_eq "successes" "$(grep -c ': finished: success' "$LOG")" 3
}

# runner.jobs = 2: two runs at once; each waits for the other to have started.
t_two_at_once() {
	new_repo --jobs 2
	commit .pipeline.yml "jobs: {a: {steps: [{run: '$WAIT_FN; touch $T/in-\${{ git.sha }}; while [ \$(ls $T | grep -c ^in-) -lt 2 ]; do sleep 0.05; done'}]}}"
	push origin main
	git -C "$W" checkout -qb second
	commit x 1
	push origin second
	wait_for 60 finished 2 || fail "two runs did not finish: $(cat "$LOG")"
	expect_eq "successes" "$(grep -c ': finished: success' "$LOG")" 2
}

# runner.keep: older finished runs are removed, but never the latest run of a ref.
t_keep() {
	new_repo
	git -C "$G" config runner.keep 1
	commit .pipeline.yml 'jobs: {a: {steps: [{run: "true"}]}}'
	push origin main
	wait_for 60 finished 1 || fail "run 1"
	local r1 r2 r3
	r1=$(last_run)
	commit x 2
	push origin main
	wait_for 60 finished 2 || fail "run 2"
	r2=$(last_run)
	git -C "$W" checkout -qb b
	push origin b
	wait_for 60 finished 3 || fail "run 3"
	r3=$(last_run)
	expect_no_file "$G/runner/$r1"
	expect_file "$G/runner/$r2/summary.json" # main's latest
	expect_file "$G/runner/$r3/summary.json"
	expect_grep "$r1: removed \(runner.keep = 1\)" "$LOG"
}

# 0 when `runner serve` exists in this build (the server is built by another change).
serve_built() {
	! timeout 10 "$RUNNER" serve --listen not-an-address --data "$T/probe" 2>&1 </dev/null | grep -q "not built yet"
}

# start_serve [PORT]: a real `runner serve` on 127.0.0.1:PORT (default: a free one), admin token
# adm-$MARK; its URL in $URL.
start_serve() {
	mkdir -p "$T/data"
	RUNNER_ADMIN_TOKEN=adm-$MARK RUNNER_REGISTRATION_TOKEN=reg-$MARK start_bg serve --listen "127.0.0.1:${1:-0}" --data "$T/data"
	wait_for 30 test -s "$T/data/address" || fail "the server did not write its address"
	URL=$(cat "$T/data/address" 2>/dev/null)
}

# --server against a real `runner serve`: the push queues a pipeline; the server has it.
t_server() {
	serve_built || { skip "runner serve is not built yet"; return; }
	start_serve
	new_repo --server "$URL" --token "adm-$MARK"
	commit .pipeline.yml 'jobs: {a: {steps: [{run: "true"}]}}'
	push origin main
	expect_eq "push status" "$PUSH_RC" 0
	expect_grep "remote: runner: refs/heads/main [0-9a-f]{7}: pipeline [0-9]+ queued on " "$T/push.err"
	local id
	id=$(sed -n 's/.*server: pipeline \([0-9]*\) queued$/\1/p' "$LOG" | tail -n 1)
	[ -n "$id" ] || { fail "no pipeline queued: $(cat "$LOG")"; return; }
	curl -s -H "Authorization: Bearer adm-$MARK" "$URL/api/v1/pipelines/$id" >"$T/p.json"
	expect_eq "sha" "$(js "$T/p.json" 'd["sha"]')" "$(git -C "$W" rev-parse HEAD)"
	expect_eq "ref" "$(js "$T/p.json" 'd["ref"]')" refs/heads/main
	expect_eq "repo" "$(js "$T/p.json" 'd["repo"]')" "$(cd "$G" && pwd -P)"
	# on.push filters apply before anything is sent
	git -C "$G" config runner.file other.yml
	commit other.yml "on: {push: {branches: [release]}}
jobs: {a: {steps: [{run: 'true'}]}}"
	push origin main
	expect_grep "refs/heads/main .*: skipped: branch not in on.push.branches" "$LOG"
	git -C "$G" config --unset runner.file
	# a wrong token: refused, said once, the push still succeeds
	git -C "$G" config runner.token wrong-token
	commit y 1
	push origin main
	expect_eq "push status" "$PUSH_RC" 0
	expect_grep "remote: runner: .*the server refused the pipeline: HTTP 401" "$T/push.err"
}

# A server that is down: the push goes through at once and the worker retries in the background
# until the server (started on that port after the push) takes the pipeline.
t_server_down() {
	serve_built || { skip "runner serve is not built yet"; return; }
	local port
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	new_repo --server "http://127.0.0.1:$port" --token "adm-$MARK"
	commit .pipeline.yml 'jobs: {a: {steps: [{run: "true"}]}}'
	push origin main
	expect_eq "push status" "$PUSH_RC" 0
	expect_grep "remote: runner: .*the server did not answer .*retrying in the background" "$T/push.err"
	expect_grep "server: .*retrying in the background" "$LOG"
	start_serve "$port"
	wait_log ": server: pipeline [0-9]+ queued for refs/heads/main"
	run hook status "$G"
	expect_no_grep " retrying " "$T/out"
}

add "install writes the hook and the settings; reinstall, usage errors, uninstall" t_install
add "an existing post-receive is kept as .orig, runs first with the same input, and is never overwritten" t_chain
add "a matching push runs the pipeline of the pushed commit: log, summary.json, latest link, status" t_matching_push_runs
add "a failing pipeline is recorded as failure" t_failing_run
add "branches and tags filters: non-matching refs run nothing" t_branch_filters
add "paths filters against the changed files; a new branch against its merge base" t_paths_filters
add "a deleted branch runs nothing" t_deleted_branch
add "an invalid workflow does not fail the push: one line to the pusher, the problems in hook.log" t_invalid_workflow
add "the push returns while its run is still going" t_push_not_blocked
add "runner.jobs=1: pushes in a row queue runs that run one at a time, in order" t_queue_in_order
add "runner.jobs=2: two runs at once" t_two_at_once
add "runner.keep removes old runs but keeps each ref's latest" t_keep
add "--server queues the pipeline on a real runner serve" t_server
add "--server down: the push succeeds and the POST is retried in the background" t_server_down
run_all
