#!/usr/bin/env bash
# Integration tests of `runner run`: engine semantics (SPEC sections 1 and 2): outputs, env,
# conditions, continue-on-error, retries, matrix, scheduling, job selection, exit codes, shells,
# working directories, artifacts. TAP output; see lib.sh.
#   semantics.sh RUNNER_BINARY
. "$(dirname "$0")/lib.sh"
CHECK_RUNNER_TEMP=1

# ---- outputs and environment ------------------------------------------------------------------

t_step_outputs() {
	workflow <<'EOF'
jobs:
  j:
    steps:
      - id: a
        run: |
          echo "single=one value" >> "$RUNNER_OUTPUT"
          echo "eq=x=y=z" >> "$RUNNER_OUTPUT"
          { echo 'multi<<EOF_X'; echo 'line 1'; echo ''; echo 'line 3'; echo 'EOF_X'; } >> "$RUNNER_OUTPUT"
      - env:
          M: ${{ steps.a.outputs.multi }}
        run: |
          printf '%s' "${{ steps.a.outputs.single }}" > "@T@/single"
          printf '%s' "${{ steps.a.outputs.eq }}" > "@T@/eq"
          printf '%s' "$M" > "@T@/multi"
          printf '%s' "[${{ steps.a.outputs.missing }}]" > "@T@/missing"
EOF
	run run p.yml
	expect_rc 0
	expect_eq "single-line output" "$(cat "$T/single" 2>/dev/null)" "one value"
	expect_eq "output with '=' in the value" "$(cat "$T/eq" 2>/dev/null)" "x=y=z"
	expect_eq "heredoc output" "$(cat "$T/multi" 2>/dev/null)" "line 1

line 3"
	expect_eq "unset output" "$(cat "$T/missing" 2>/dev/null)" "[]"
}

t_job_outputs_and_result() {
	workflow <<'EOF'
jobs:
  produce:
    outputs:
      version: ${{ steps.v.outputs.version }}
      label: "v-${{ steps.v.outputs.version }}-x"
    steps:
      - id: v
        run: echo "version=1.2.3" >> "$RUNNER_OUTPUT"
  bad:
    steps:
      - run: exit 1
  consume:
    needs: [produce, bad]
    if: always()
    steps:
      - name: consume-step
        run: |
          echo "${{ needs.produce.outputs.version }}|${{ needs.produce.outputs.label }}|${{ needs.produce.result }}|${{ needs.bad.result }}" > "@T@/got"
EOF
	run run --keep-going p.yml
	expect_rc 1
	expect_eq "needs.* in the consumer" "$(cat "$T/got" 2>/dev/null)" "1.2.3|v-1.2.3-x|success|failure"
}

# A step without a name is named after the first line of its script, cut to some length: the cut
# must not break a ${{ }} of that line.
t_long_first_line_name() {
	workflow <<'EOF'
jobs:
  j:
    steps:
      - run: echo "${{ runner.os }} ${{ runner.os }} ${{ runner.os }} ${{ runner.os }} ${{ runner.os }}" > "@T@/got"
EOF
	run run p.yml
	expect_rc 0
	local os
	os=$(sed -n 's/^\([^ ]*\) .*/\1/p' "$T/got" 2>/dev/null)
	[ -n "$os" ] || fail "the step did not run (output: $(head -c 300 "$T/out" | tr -d '\033'))"
	expect_eq "expanded line" "$(cat "$T/got" 2>/dev/null)" "$os $os $os $os $os"
}

t_runner_env() {
	workflow <<'EOF'
jobs:
  j:
    steps:
      - run: |
          echo "DYN=dyn-value" >> "$RUNNER_ENV"
          { echo 'ML<<END'; echo 'a'; echo 'b'; echo 'END'; } >> "$RUNNER_ENV"
          echo "${DYN:-unset}" > "@T@/same-step"
      - run: |
          printf '%s' "$DYN" > "@T@/next-step"
          printf '%s' "$ML" > "@T@/next-step-ml"
      - run: printf '%s' "${{ env.DYN }}" > "@T@/expr"
  other:
    needs: j
    steps:
      - run: echo "${DYN:-unset}" > "@T@/other-job"
EOF
	run run p.yml
	expect_rc 0
	expect_eq "in the step that set it" "$(cat "$T/same-step" 2>/dev/null)" unset
	expect_eq "in the next step" "$(cat "$T/next-step" 2>/dev/null)" dyn-value
	expect_eq "multi-line value" "$(cat "$T/next-step-ml" 2>/dev/null)" "a
b"
	expect_eq "as \${{ env.DYN }}" "$(cat "$T/expr" 2>/dev/null)" dyn-value
	expect_eq "in another job" "$(cat "$T/other-job" 2>/dev/null)" unset
}

t_runner_path() {
	mkdir -p "$T/tools"
	printf '#!/bin/sh\necho tool-ran\n' >"$T/tools/rnit-mytool"
	chmod +x "$T/tools/rnit-mytool"
	workflow <<'EOF'
jobs:
  j:
    steps:
      - run: |
          echo "@T@/tools" >> "$RUNNER_PATH"
          command -v rnit-mytool > "@T@/same" || echo not-found > "@T@/same"
      - run: |
          rnit-mytool > "@T@/next"
          echo "$PATH" > "@T@/path"
EOF
	run run p.yml
	expect_rc 0
	expect_eq "in the step that set it" "$(cat "$T/same" 2>/dev/null)" not-found
	expect_eq "in the next step" "$(cat "$T/next" 2>/dev/null)" tool-ran
	case $(cat "$T/path" 2>/dev/null) in
	"$T/tools:"*) ;;
	*) fail "PATH of the next step does not start with $T/tools: $(cat "$T/path" 2>/dev/null)" ;;
	esac
}

t_env_precedence() {
	workflow <<'EOF'
env:
  A: pipeline
  B: pipeline
  C: pipeline
  D: pipeline
  E: pipeline
  RNIT_INHERITED: pipeline
jobs:
  j:
    env:
      B: job
      C: job
      D: job
      E: job
    steps:
      - env:
          C: step
          D: step
        run: |
          echo "$A $B $C $D $E $RNIT_INHERITED ${RNIT_OUTER:-unset}" > "@T@/vals"
          echo "${{ env.A }} ${{ env.B }} ${{ env.C }} ${{ env.D }}" > "@T@/expr"
          echo "E=from-runner-env" >> "$RUNNER_ENV"
          echo "C=from-runner-env" >> "$RUNNER_ENV"
      - env:
          C: step2
        run: echo "$C $E" > "@T@/vals2"
EOF
	export RNIT_INHERITED=outer RNIT_OUTER=outer-only
	run run --env D=cli p.yml
	unset RNIT_INHERITED RNIT_OUTER
	expect_rc 0
	expect_eq "A B C D E (pipeline < job < step < --env; workflow over the runner's env)" \
		"$(cat "$T/vals" 2>/dev/null)" "pipeline job step cli job pipeline outer-only"
	expect_eq "the same through \${{ env.* }}" "$(cat "$T/expr" 2>/dev/null)" "pipeline job step cli"
	expect_eq "RUNNER_ENV over job env, step env over RUNNER_ENV" "$(cat "$T/vals2" 2>/dev/null)" "step2 from-runner-env"
}

t_runner_variables() {
	workflow <<'EOF'
jobs:
  first:
    steps:
      - id: probe
        run: |
          for v in CI RUNNER_WORKSPACE RUNNER_TEMP RUNNER_JOB RUNNER_STEP RUNNER_RUN_ID RUNNER_OUTPUT RUNNER_ENV RUNNER_PATH RUNNER_ARTIFACTS; do
            printf '%s=%s\n' "$v" "${!v-<unset>}"
          done > "@T@/vars"
          [ -d "$RUNNER_TEMP" ] && [ -w "$RUNNER_TEMP" ] && echo yes > "@T@/temp-is-dir"
          echo "$RUNNER_TEMP" > "@T@/temp-first"
          touch "$RUNNER_TEMP/left-by-first"
          mkdir -p "$RUNNER_TEMP/dir-by-first/d" && touch "$RUNNER_TEMP/dir-by-first/d/f"
          ln -s / "$RUNNER_TEMP/link-by-first"
  second:
    needs: first
    steps:
      - run: |
          old=$(cat "@T@/temp-first")
          if [ -e "$old/left-by-first" ]; then echo present; else echo gone; fi > "@T@/first-file"
          if [ -d "$old" ] && [ "$old" != "$RUNNER_TEMP" ]; then echo "$old" > "@T@/lingering"; fi
          ls -A "$RUNNER_TEMP" > "@T@/second-temp-content"
EOF
	run run p.yml
	expect_rc 0
	local ws run_id
	ws=$(realpath "$T")
	run_id=$(js "$(summary)" 'd["run_id"]')
	local v want got
	for v in "CI=true" "RUNNER_WORKSPACE=$ws" "RUNNER_JOB=first" "RUNNER_STEP=probe" "RUNNER_RUN_ID=$run_id"; do
		grep -qxF -- "$v" "$T/vars" 2>/dev/null || fail "step environment lacks $v (has: $(grep "^${v%%=*}=" "$T/vars" 2>/dev/null))"
	done
	for v in RUNNER_TEMP RUNNER_OUTPUT RUNNER_ENV RUNNER_PATH RUNNER_ARTIFACTS; do
		got=$(sed -n "s/^$v=//p" "$T/vars" 2>/dev/null)
		case $got in
		"" | "<unset>") fail "$v is not set" ;;
		/*) ;;
		*) fail "$v is not an absolute path: $got" ;;
		esac
	done
	expect_eq "RUNNER_TEMP is a writable directory" "$(cat "$T/temp-is-dir" 2>/dev/null)" yes
	expect_eq "a file of the first job's RUNNER_TEMP, seen from the next job" "$(cat "$T/first-file" 2>/dev/null)" gone
	expect_no_grep 'left-by-first' "$T/second-temp-content"
	expect_no_grep 'dir-by-first' "$T/second-temp-content"
	expect_no_grep 'link-by-first' "$T/second-temp-content"
	expect_no_file "$T/lingering"
	want=$(cat "$T/temp-first" 2>/dev/null)
	[ -n "$want" ] && [ -e "$want" ] && fail "RUNNER_TEMP $want still exists after the run"
	return 0
}

# Jobs running at the same time have different RUNNER_TEMP directories.
t_runner_temp_private() {
	workflow <<'EOF'
jobs:
  left:
    steps:
      - run: |
          @WAIT@
          echo "$RUNNER_TEMP" > "@T@/left.tmp"
          touch "@T@/left.flag"; w "@T@/right.flag"
  right:
    steps:
      - run: |
          @WAIT@
          echo "$RUNNER_TEMP" > "@T@/right.tmp"
          touch "@T@/right.flag"; w "@T@/left.flag"
EOF
	run run -j 2 p.yml
	expect_rc 0
	local l r
	l=$(cat "$T/left.tmp" 2>/dev/null)
	r=$(cat "$T/right.tmp" 2>/dev/null)
	[ -n "$l" ] && [ "$l" != "$r" ] || fail "two running jobs share RUNNER_TEMP '$l'"
}

# ---- conditions -------------------------------------------------------------------------------

t_step_conditions() {
	workflow <<'EOF'
jobs:
  failing:
    steps:
      - run: exit 1
      - run: touch "@T@/f-default"
      - if: success()
        run: touch "@T@/f-success"
      - if: failure()
        run: touch "@T@/f-failure"
      - if: always()
        run: touch "@T@/f-always"
      - if: cancelled()
        run: touch "@T@/f-cancelled"
  passing:
    steps:
      - run: "true"
      - run: touch "@T@/p-default"
      - if: success()
        run: touch "@T@/p-success"
      - if: failure()
        run: touch "@T@/p-failure"
      - if: always()
        run: touch "@T@/p-always"
      - if: cancelled()
        run: touch "@T@/p-cancelled"
EOF
	run run --keep-going p.yml
	expect_rc 1
	local f
	for f in f-failure f-always p-default p-success p-always; do
		expect_file "$T/$f"
	done
	for f in f-default f-success f-cancelled p-failure p-cancelled; do
		expect_no_file "$T/$f"
	done
	expect_eq "status of the skipped step" "$(step_field failing 1 status)" skipped
}

t_job_conditions() {
	workflow <<'EOF'
jobs:
  bad:
    steps:
      - run: exit 1
  plain:
    needs: bad
    steps:
      - run: touch "@T@/plain"
  on-success:
    needs: bad
    if: success()
    steps:
      - run: touch "@T@/on-success"
  on-failure:
    needs: bad
    if: failure()
    steps:
      - run: touch "@T@/on-failure"
  on-always:
    needs: bad
    if: always()
    steps:
      - run: touch "@T@/on-always"
  on-cancelled:
    needs: bad
    if: cancelled()
    steps:
      - run: touch "@T@/on-cancelled"
  transitive:
    needs: plain
    steps:
      - run: touch "@T@/transitive"
EOF
	run run p.yml
	expect_rc 1
	expect_file "$T/on-failure"
	expect_file "$T/on-always"
	local f
	for f in plain on-success on-cancelled transitive; do
		expect_no_file "$T/$f"
		expect_eq "status of job $f" "$(job_status "$f")" skipped
	done
}

# cancelled() is true and always() steps run when the run is cancelled (SIGTERM).
t_cancelled_condition() {
	workflow <<'EOF'
jobs:
  j:
    steps:
      - run: |
          touch "@T@/started"
          '@SLEEPER@' 1000
      - run: touch "@T@/default"
      - if: cancelled()
        run: touch "@T@/on-cancelled"
      - if: always()
        run: touch "@T@/on-always"
      - if: failure()
        run: touch "@T@/on-failure"
EOF
	start_bg run p.yml
	if ! wait_for 60 test -e "$T/started"; then
		fail "the step did not start"
		return
	fi
	kill -TERM "$RPID"
	wait_bg 60 || return
	expect_rc 143
	expect_no_file "$T/default"
	expect_file "$T/on-cancelled"
	expect_file "$T/on-always"
	no_leftover
}

t_continue_on_error() {
	workflow <<'EOF'
jobs:
  steps-coe:
    steps:
      - id: x
        continue-on-error: true
        run: exit 7
      - run: echo "${{ steps.x.outcome }}/${{ steps.x.conclusion }}" > "@T@/outcome"
  flaky:
    continue-on-error: true
    steps:
      - run: exit 3
  independent:
    steps:
      - run: touch "@T@/independent"
  dependent:
    needs: flaky
    steps:
      - run: touch "@T@/dependent"
EOF
	run run -j 1 p.yml
	expect_rc 0
	expect_eq "outcome/conclusion of a continue-on-error step" "$(cat "$T/outcome" 2>/dev/null)" "failure/success"
	expect_file "$T/independent"
	expect_file "$T/dependent"
	expect_eq "the failed step's status" "$(step_field steps-coe 0 status)" failure
	expect_eq "the failed step's exit code" "$(step_field steps-coe 0 exit_code)" 7
	expect_eq "status of the job with the continue-on-error step" "$(job_status steps-coe)" success
	expect_eq "run status" "$(js "$(summary)" 'd["status"]')" success
}

# ---- retries ----------------------------------------------------------------------------------

t_step_retry() {
	workflow <<'EOF'
jobs:
  always-fails:
    steps:
      - retry: {attempts: 3, delay: 100ms}
        run: |
          echo "attempt $RUNNER_ATTEMPT" >> "@T@/count"
          date +%s.%N >> "@T@/times"
          '@SLEEPER@' 1000 &
          if pgrep -f -- '@MARK@' | grep -qv "^$!\$"; then echo dirty >> "@T@/tree"; fi
          exit 1
  second-works:
    steps:
      - retry: 3
        run: |
          echo x >> "@T@/count2"
          [ "$(wc -l < "@T@/count2")" -ge 2 ]
EOF
	run run --keep-going --log-dir "$T/logs" p.yml
	expect_rc 1
	local sum=$T/logs/summary.json
	expect_eq "runs of the failing step" "$(wc -l <"$T/count" 2>/dev/null | tr -d ' ')" 3
	expect_eq "attempts in summary.json" "$(step_field always-fails 0 attempts "$sum")" 3
	expect_eq "status" "$(step_field always-fails 0 status "$sum")" failure
	expect_grep 'attempt 2/3' "$T/out"
	expect_grep 'attempt 3/3' "$T/out"
	expect_no_file "$T/tree"
	expect_eq "runs of the step that works the second time" "$(wc -l <"$T/count2" 2>/dev/null | tr -d ' ')" 2
	expect_eq "its attempts" "$(step_field second-works 0 attempts "$sum")" 2
	expect_eq "its status" "$(step_field second-works 0 status "$sum")" success
	local gap
	gap=$(awk 'NR > 1 { d = $1 - p; if (min == "" || d < min) min = d } { p = $1 } END { printf "%d", min * 1000 }' "$T/times" 2>/dev/null)
	expect_ge "least time between two attempts (ms; delay 100ms)" "${gap:-0}" 90
	no_leftover
}

t_job_retry() {
	workflow <<'EOF'
jobs:
  j:
    retry: 1
    steps:
      - run: |
          echo "s1" >> "@T@/trace"
          [ -e "$RUNNER_TEMP/stale" ] && echo "stale RUNNER_TEMP" >> "@T@/trace"
          touch "$RUNNER_TEMP/stale"
      - run: |
          echo "s2" >> "@T@/trace"
          if [ ! -e "@T@/failed-once" ]; then touch "@T@/failed-once"; exit 1; fi
EOF
	run run p.yml
	expect_rc 0
	expect_eq "steps run" "$(tr '\n' ' ' <"$T/trace" 2>/dev/null)" "s1 s2 s1 s2 "
	expect_eq "job attempts in summary.json" "$(js "$(summary)" 'd["jobs"][0]["attempts"]')" 2
	expect_eq "job status" "$(job_status j)" success
	expect_grep 'attempt 2/2' "$T/out"
}

# ---- matrix -----------------------------------------------------------------------------------

t_fail_fast() {
	workflow <<'EOF'
jobs:
  m:
    matrix:
      n: [1, 2]
    fail-fast: true
    steps:
      - run: |
          @WAIT@
          if [ "${{ matrix.n }}" = 1 ]; then w "@T@/started-2"; exit 1; fi
          touch "@T@/started-2"
          '@SLEEPER@' 60
          touch "@T@/finished-2"
EOF
	local t0 t1
	t0=$(now)
	run run -j 2 p.yml
	t1=$(now)
	expect_rc 1
	expect_eq "status of m (1)" "$(job_status "m (1)")" failure
	expect_eq "status of m (2)" "$(job_status "m (2)")" cancelled
	expect_no_file "$T/finished-2"
	expect_le "run duration (ms)" "$(elapsed_ms "$t0" "$t1")" 30000
	no_leftover
}

t_no_fail_fast() {
	workflow <<'EOF'
jobs:
  m:
    matrix:
      n: [1, 2]
    fail-fast: false
    steps:
      - run: |
          @WAIT@
          if [ "${{ matrix.n }}" = 1 ]; then w "@T@/started-2"; touch "@T@/failed-1"; exit 1; fi
          touch "@T@/started-2"
          w "@T@/failed-1"
          sleep 0.5
          touch "@T@/finished-2"
EOF
	run run -j 2 p.yml
	expect_rc 1
	expect_eq "status of m (1)" "$(job_status "m (1)")" failure
	expect_eq "status of m (2)" "$(job_status "m (2)")" success
	expect_file "$T/finished-2"
}

t_max_parallel() {
	workflow <<'EOF'
jobs:
  m:
    matrix:
      n: [1, 2, 3, 4]
    max-parallel: 1
    steps:
      - name: locked
        run: |
          mkdir "@T@/lock" || { echo "overlap at ${{ matrix.n }}"; echo overlap >> "@T@/overlap"; exit 1; }
          echo "${{ matrix.n }}" >> "@T@/ran"
          sleep 0.3
          rmdir "@T@/lock"
EOF
	run run -j 4 p.yml
	expect_rc 0
	expect_no_file "$T/overlap"
	expect_eq "instances run" "$(sort "$T/ran" 2>/dev/null | tr '\n' ' ')" "1 2 3 4 "
}

# needs: on a matrix job waits for every instance.
t_needs_matrix() {
	workflow <<'EOF'
jobs:
  build:
    matrix:
      n: [1, 2, 3]
    steps:
      - name: build-step
        run: |
          sleep 0.$(( ${{ matrix.n }} * 2 ))
          touch "@T@/built-${{ matrix.n }}"
  use:
    needs: build
    steps:
      - run: ls "@T@" | grep '^built-' | tr '\n' ' ' > "@T@/seen"
EOF
	run run -j 4 p.yml
	expect_rc 0
	expect_eq "instances done when the dependent job started" "$(cat "$T/seen" 2>/dev/null)" "built-1 built-2 built-3 "
	expect_eq "instance name" "$(job_status "build (2)")" success
}

# ---- scheduling -------------------------------------------------------------------------------

t_j1_serial() {
	workflow <<'EOF'
jobs:
  a:
    steps:
      - run: &body |
          mkdir "@T@/lock" || { echo overlap >> "@T@/overlap"; exit 1; }
          echo "$RUNNER_JOB" >> "@T@/ran"
          sleep 0.3
          rmdir "@T@/lock"
  b:
    steps:
      - run: *body
  c:
    steps:
      - run: *body
EOF
	run run -j 1 p.yml
	expect_rc 0
	expect_no_file "$T/overlap"
	expect_eq "jobs run" "$(sort "$T/ran" 2>/dev/null | tr '\n' ' ')" "a b c "
}

t_j2_parallel() {
	workflow <<'EOF'
jobs:
  left:
    steps:
      - run: |
          @WAIT@
          touch "@T@/left.flag"; w "@T@/right.flag"
  right:
    steps:
      - run: |
          @WAIT@
          touch "@T@/right.flag"; w "@T@/left.flag"
EOF
	run run -j 2 p.yml
	expect_rc 0
	expect_eq "left" "$(job_status left)" success
	expect_eq "right" "$(job_status right)" success
}

# The shared layout of the two next subtests: with -j 2, `fail` fails while `long` runs;
# `later` (independent) has no slot until then; `dependent` needs `fail`.
stop_layout() {
	workflow <<'EOF'
jobs:
  fail:
    steps:
      - run: |
          @WAIT@
          w "@T@/long-started"
          exit 1
  long:
    steps:
      - run: |
          @WAIT@
          touch "@T@/long-started"
          w "@T@/fail-done"
          sleep 0.3
          touch "@T@/long-finished"
  later:
    steps:
      - run: touch "@T@/later-ran"
  dependent:
    needs: fail
    steps:
      - run: touch "@T@/dependent-ran"
  watcher:
    needs: fail
    if: always()
    steps:
      - run: touch "@T@/fail-done"
EOF
}

t_stop_after_failure() {
	stop_layout
	# `watcher` (if: always()) is what tells `long` that `fail` has ended; it needs a slot: -j 3
	# would let `later` start at once, so use -j 2 and let watcher take fail's slot.
	run run -j 2 p.yml
	expect_rc 1
	expect_file "$T/long-finished"
	expect_eq "long (running when fail failed)" "$(job_status long)" success
	expect_eq "later (not started yet)" "$(job_status later)" skipped
	expect_no_file "$T/later-ran"
	expect_eq "dependent" "$(job_status dependent)" skipped
	expect_no_file "$T/dependent-ran"
}

t_keep_going() {
	stop_layout
	run run -j 2 --keep-going p.yml
	expect_rc 1
	expect_file "$T/long-finished"
	expect_eq "later" "$(job_status later)" success
	expect_file "$T/later-ran"
	expect_eq "dependent" "$(job_status dependent)" skipped
	expect_no_file "$T/dependent-ran"
}

t_job_select() {
	workflow <<'EOF'
jobs:
  a:
    steps:
      - run: touch "@T@/a"
  b:
    needs: a
    steps:
      - run: touch "@T@/b"
  c:
    steps:
      - run: touch "@T@/c"
  m:
    matrix:
      k: [x, y]
    steps:
      - name: touch-m
        run: touch "@T@/m-${{ matrix.k }}"
EOF
	run run --job b p.yml
	expect_rc 0
	expect_file "$T/a"
	expect_file "$T/b"
	expect_no_file "$T/c"
	expect_no_file "$T/m-x"
	rm -f "$T/a" "$T/b"
	run run --job m --job c p.yml
	expect_rc 0
	expect_file "$T/m-x"
	expect_file "$T/m-y"
	expect_file "$T/c"
	expect_no_file "$T/a"
	run run --job nope p.yml
	expect_rc 2
	expect_grep 'nope' "$T/err"
}

t_dry_run() {
	workflow <<'EOF'
jobs:
  a:
    steps:
      - run: touch "@T@/a"
  b:
    needs: a
    steps:
      - run: touch "@T@/b"
EOF
	run run --dry-run p.yml
	expect_rc 0
	expect_no_file "$T/a"
	expect_no_file "$T/b"
	expect_grep '\ba\b' "$T/out"
	expect_grep '\bb\b' "$T/out"
	[ -e "$T/.runner/logs" ] && [ -n "$(find "$T/.runner/logs" -name summary.json)" ] && fail "a dry run wrote a summary"
	return 0
}

t_exit_codes() {
	workflow ok.yml <<'EOF'
jobs:
  a:
    steps:
      - run: "true"
EOF
	workflow fail.yml <<'EOF'
jobs:
  a:
    steps:
      - run: exit 42
EOF
	workflow invalid.yml <<'EOF'
jobs:
  a:
    colour: blue
    steps:
      - run: touch "@T@/ran"
  b:
    needs: [nope]
    steps:
      - run: touch "@T@/ran"
EOF
	run run ok.yml
	expect_rc 0
	run run fail.yml
	expect_rc 1
	run run invalid.yml
	expect_rc 2
	expect_no_file "$T/ran"
	expect_grep '^invalid\.yml:3:[0-9]+: error: .*colour' "$T/err"
	expect_grep '^invalid\.yml:[0-9]+:[0-9]+: error: .*nope' "$T/err"
	run run missing.yml
	expect_rc 2
	run run --no-such-option ok.yml
	expect_rc 2
	run run --job nope ok.yml
	expect_rc 2
}

# ---- steps ------------------------------------------------------------------------------------

t_working_directory() {
	mkdir -p "$T/sub/dir" "$T/deflt"
	workflow <<'EOF'
defaults:
  working-directory: deflt
jobs:
  j:
    steps:
      - run: pwd > "@T@/pwd-default"
      - working-directory: sub/dir
        run: pwd > "@T@/pwd-step"
      - working-directory: "@T@/sub"
        run: pwd > "@T@/pwd-abs"
EOF
	run run p.yml
	expect_rc 0
	local ws
	ws=$(realpath "$T")
	expect_eq "defaults.working-directory" "$(cat "$T/pwd-default" 2>/dev/null)" "$ws/deflt"
	expect_eq "relative working-directory" "$(cat "$T/pwd-step" 2>/dev/null)" "$ws/sub/dir"
	expect_eq "absolute working-directory" "$(cat "$T/pwd-abs" 2>/dev/null)" "$ws/sub"
}

t_step_cannot_start() {
	workflow <<'EOF'
jobs:
  j:
    steps:
      - working-directory: no-such-dir
        run: touch "@T@/ran"
      - if: always()
        run: touch "@T@/after"
EOF
	run run p.yml
	expect_rc 1
	expect_no_file "$T/ran"
	expect_file "$T/after"
	expect_eq "status" "$(step_field j 0 status)" failure
	expect_grep 'no-such-dir.*(No such file|not found|does not exist)|(No such file|not found|does not exist).*no-such-dir' "$T/out"
}

t_shells() {
	workflow <<'EOF'
jobs:
  default:
    steps:
      - run: echo "bash=${BASH_VERSION:+yes}" > "@T@/default"
  sh:
    steps:
      - shell: sh
        run: |
          echo "bash=${BASH_VERSION:+yes}" > "@T@/sh"
          false
          touch "@T@/sh-continued"
  bash-pipefail:
    steps:
      - shell: bash
        run: |
          false | true
          touch "@T@/bash-continued"
  bash-errexit:
    steps:
      - shell: bash
        run: |
          false
          touch "@T@/bash-errexit-continued"
  python:
    steps:
      - shell: "python3 {0}"
        run: |
          import sys
          open("@T@/python", "w").write("python %d" % sys.version_info[0])
  python-fails:
    steps:
      - shell: "python3 {0}"
        run: raise SystemExit(5)
EOF
	run run --keep-going --log-dir "$T/logs" p.yml
	expect_rc 1
	local sum=$T/logs/summary.json
	expect_eq "default shell is bash" "$(cat "$T/default" 2>/dev/null)" "bash=yes"
	expect_eq "shell: sh is not bash" "$(cat "$T/sh" 2>/dev/null)" "bash="
	expect_no_file "$T/sh-continued"
	expect_eq "sh -e: false fails the step" "$(step_field sh 0 status "$sum")" failure
	expect_no_file "$T/bash-continued"
	expect_eq "bash pipefail: false | true fails" "$(step_field bash-pipefail 0 status "$sum")" failure
	expect_no_file "$T/bash-errexit-continued"
	expect_eq "python3 {0}" "$(cat "$T/python" 2>/dev/null)" "python 3"
	expect_eq "python step status" "$(step_field python 0 status "$sum")" success
	expect_eq "python exit code" "$(step_field python-fails 0 exit_code "$sum")" 5
	expect_eq "default job" "$(job_status default "$sum")" success
}

t_default_file() {
	workflow .pipeline.yml <<'EOF'
jobs:
  j:
    steps:
      - run: echo from-default-file
EOF
	run run
	expect_rc 0
	expect_grep 'from-default-file' "$T/out"
	rm -f "$T/.pipeline.yml"
	run run
	expect_rc 2
	expect_grep 'pipeline\.yml' "$T/err"
}

t_artifacts() {
	workflow <<'EOF'
jobs:
  make:
    steps:
      - run: |
          mkdir -p outdir/sub
          echo "payload text" > outdir/a.txt
          head -c 100000 /dev/urandom > outdir/sub/b.bin
          echo ignored > outdir/sub/c.o
          mkdir -p "@T@/orig" && cp outdir/a.txt outdir/sub/b.bin "@T@/orig/"
      - package:
          name: dist
          paths: ["outdir/**"]
          exclude: ["**/*.o"]
          format: tar.gz
  use:
    needs: make
    steps:
      - run: rm -rf outdir
      - download:
          artifact: dist
          path: got/
      - run: |
          a=$(find got -name a.txt); b=$(find got -name b.bin); c=$(find got -name c.o)
          cmp "$a" "@T@/orig/a.txt" && cmp "$b" "@T@/orig/b.bin" && echo same > "@T@/roundtrip"
          [ -z "$c" ] && echo excluded > "@T@/excluded"
  missing:
    needs: make
    steps:
      - download:
          artifact: no-such-artifact
          path: x/
      - run: touch "@T@/after-missing"
EOF
	run run --keep-going p.yml
	expect_rc 1
	expect_eq "artifact content round-trips" "$(cat "$T/roundtrip" 2>/dev/null)" same
	expect_eq "exclude pattern" "$(cat "$T/excluded" 2>/dev/null)" excluded
	expect_eq "job use" "$(job_status use)" success
	expect_eq "download of an unknown artifact" "$(step_field missing 0 status)" failure
	expect_no_file "$T/after-missing"
	expect_grep 'no-such-artifact' "$T/out"
	local n
	n=$(find "$T/.runner/artifacts" -type f 2>/dev/null | wc -l)
	expect_ge "files in .runner/artifacts/<run-id>/" "$n" 1
	# a run that packages nothing leaves no empty store behind
	workflow <<'EOF'
jobs:
  plain:
    steps:
      - run: test -d "$RUNNER_ARTIFACTS"
EOF
	run run p.yml
	expect_rc 0
	expect_eq "artifact stores after a second run, without artifacts" \
		"$(find "$T/.runner/artifacts" -mindepth 1 -maxdepth 1 -type d | wc -l)" 1
}

add "RUNNER_OUTPUT key=value and heredoc reach steps.<id>.outputs" t_step_outputs
add "job outputs and needs.<job>.result" t_job_outputs_and_result
add "unnamed step with \${{ }} past the display-name cut still runs" t_long_first_line_name
add "RUNNER_ENV sets env for later steps of the job only" t_runner_env
add "RUNNER_PATH prepends PATH for later steps" t_runner_path
add "env precedence: pipeline < job < RUNNER_ENV < step < --env" t_env_precedence
add "CI and RUNNER_* set; RUNNER_TEMP a directory gone after the job" t_runner_variables
add "parallel jobs get different RUNNER_TEMP" t_runner_temp_private
add "step if: success() failure() always() cancelled()" t_step_conditions
add "job if: conditions; a job whose need failed is skipped" t_job_conditions
add "on cancel (SIGTERM), if: cancelled() and always() steps run" t_cancelled_condition
add "continue-on-error on steps and jobs" t_continue_on_error
add "step retry {attempts: 3, delay: 100ms}: 3 attempts, clean tree, attempt 2/3" t_step_retry
add "job retry: 1 re-runs the job from step 1 in a new RUNNER_TEMP" t_job_retry
add "matrix fail-fast: true cancels a running sibling quickly" t_fail_fast
add "matrix fail-fast: false lets siblings finish" t_no_fail_fast
add "matrix max-parallel: 1 never overlaps" t_max_parallel
add "needs: on a matrix job waits for all its instances" t_needs_matrix
add "-j 1 runs one job at a time" t_j1_serial
add "-j 2 runs two jobs at once" t_j2_parallel
add "after a failure: running jobs finish, unstarted independent jobs skipped" t_stop_after_failure
add "--keep-going: independent jobs still run" t_keep_going
add "--job X runs X and its needs only; unknown --job exits 2" t_job_select
add "--dry-run runs nothing" t_dry_run
add "exit codes 0 / 1 / 2" t_exit_codes
add "working-directory (step, defaults, absolute)" t_working_directory
add "a step that cannot start fails with a clear message" t_step_cannot_start
add "shells: default bash, sh -e, bash pipefail, python3 {0}" t_shells
add ".pipeline.yml is the default file" t_default_file
add "package + download round-trip; unknown artifact fails" t_artifacts
run_all
