#!/usr/bin/env bash
# Integration tests of `runner run`: process trees, timeouts and signals (SPEC section 3, first
# item). Real runner, real child processes. TAP output; see lib.sh.
#   processes.sh RUNNER_BINARY
. "$(dirname "$0")/lib.sh"
CHECK_RUNNER_TEMP=1

# A step that leaves something behind; the next step of the job looks for it while the runner
# still runs (the tree must be gone when its step ends, not only when the runner exits).
leftover_case() { # SCRIPT (uses $SLEEPER)
	workflow <<EOF
jobs:
  j:
    steps:
      - name: leaver
        run: |
$(printf '%s\n' "$1" | sed 's/^/          /')
          echo leaver-done
      - name: checker
        run: |
          if pgrep -f -- '$MARK' >/dev/null; then echo still-alive >"$T/check"; else echo none >"$T/check"; fi
EOF
	run run p.yml
	expect_rc 0
	expect_grep 'leaver-done' "$T/out"
	expect_eq "processes of step 1 alive when step 2 ran" "$(cat "$T/check" 2>/dev/null)" none
	no_leftover
}

t_background() {
	leftover_case "\"$SLEEPER\" 1000 &"
}

t_double_fork() {
	leftover_case "( \"$SLEEPER\" 1000 & ) &"
}

t_setsid() {
	leftover_case "setsid sh -c '\"$SLEEPER\" 1000' >/dev/null 2>&1 </dev/null &"
}

# The escaped daemon keeps the output pipe open: the step must still end (the tree is killed,
# so the pipe closes) and promptly, not after the daemon's 1000 s.
t_setsid_holds_pipe() {
	leftover_case "setsid sh -c '\"$SLEEPER\" 1000' &
( setsid \"$SLEEPER\" 1000 & ) &
sleep 0.2"
}

# A child that ignores SIGTERM; timeout 1s, grace 1s: the step is "timed out", the run fails,
# and nothing is left.
t_timeout_child_traps_term() {
	workflow <<EOF
jobs:
  j:
    steps:
      - name: slow
        timeout: 1s
        grace: 1s
        run: |
          sh -c "trap '' TERM; exec '$SLEEPER' 1000" &
          '$SLEEPER' 1000
      - name: after
        run: touch "$T/after-ran"
EOF
	local t0 t1
	t0=$(now)
	run run p.yml
	t1=$(now)
	expect_rc 1
	expect_eq "step status" "$(step_field j 0 status)" "timed out"
	expect_eq "status of the step after it" "$(step_field j 1 status)" "skipped"
	expect_no_file "$T/after-ran"
	expect_le "run duration (ms)" "$(elapsed_ms "$t0" "$t1")" 20000
	no_leftover
}

# The step itself ignores SIGTERM: SIGKILL after the grace period, not before.
t_timeout_ignores_term_killed_after_grace() {
	workflow <<EOF
jobs:
  j:
    steps:
      - name: stubborn
        timeout: 1s
        grace: 1s
        run: |
          trap '' TERM
          '$SLEEPER' 1000
EOF
	local t0 t1 dur
	t0=$(now)
	run run p.yml
	t1=$(now)
	expect_rc 1
	expect_eq "step status" "$(step_field j 0 status)" "timed out"
	expect_eq "step exit code (SIGKILL)" "$(step_field j 0 exit_code)" 137
	dur=$(step_field j 0 duration_ms)
	expect_ge "step duration_ms (timeout 1s + grace 1s)" "$dur" 1950
	expect_le "run duration (ms)" "$(elapsed_ms "$t0" "$t1")" 20000
	expect_grep 'timed out' "$T/out"
	no_leftover
}

# A step that exits on SIGTERM ends at the timeout, without waiting for the grace period.
t_timeout_term_obeyed() {
	workflow <<EOF
jobs:
  j:
    steps:
      - name: obeys
        timeout: 1s
        grace: 10m
        run: |
          '$SLEEPER' 1000
EOF
	local t0 t1
	t0=$(now)
	run run p.yml
	t1=$(now)
	expect_rc 1
	expect_eq "step status" "$(step_field j 0 status)" "timed out"
	expect_le "run duration (ms)" "$(elapsed_ms "$t0" "$t1")" 30000
	no_leftover
}

# timeout: on the job covers all its steps.
t_job_timeout() {
	workflow <<EOF
jobs:
  j:
    timeout: 1s
    steps:
      - run: echo first
      - name: long
        grace: 1s
        run: |
          trap '' TERM
          '$SLEEPER' 1000 &
          '$SLEEPER' 1000
      - name: never
        run: touch "$T/never"
EOF
	local t0 t1
	t0=$(now)
	run run p.yml
	t1=$(now)
	expect_rc 1
	expect_eq "job status" "$(job_status j)" "timed out"
	expect_eq "first step" "$(step_field j 0 status)" success
	case $(step_field j 1 status) in
	"timed out" | cancelled) ;;
	*) fail "the running step's status is '$(step_field j 1 status)', expected 'timed out' or 'cancelled'" ;;
	esac
	expect_eq "last step" "$(step_field j 2 status)" skipped
	expect_no_file "$T/never"
	expect_le "run duration (ms)" "$(elapsed_ms "$t0" "$t1")" 20000
	no_leftover
}

# The runner is interrupted while a step runs: every tree is stopped, summary.json says
# cancelled, the exit status is 128 + the signal.
interrupt_case() { # SIGNAL WANT_RC
	workflow <<EOF
jobs:
  j:
    steps:
      - name: long
        run: |
          '$SLEEPER' 1000 &
          touch "$T/started"
          '$SLEEPER' 1000
      - name: never
        run: touch "$T/never"
  k:
    steps:
      - name: other
        run: |
          ( setsid '$SLEEPER' 1000 & ) &
          touch "$T/started-k"
          '$SLEEPER' 1000
EOF
	start_bg run -j 2 --log-dir "$T/logs" p.yml
	if ! wait_for 60 eval "[ -e '$T/started' ] && [ -e '$T/started-k' ]"; then
		fail "the steps did not start"
		return
	fi
	kill -s "$1" "$RPID"
	wait_bg 60 || return
	expect_rc "$2"
	local sum=$T/logs/summary.json
	expect_file "$sum"
	expect_eq "run status" "$(js "$sum" 'd["status"]')" cancelled
	expect_eq "job j" "$(job_status j "$sum")" cancelled
	expect_eq "job k" "$(job_status k "$sum")" cancelled
	expect_eq "running step" "$(step_field j 0 status "$sum")" cancelled
	expect_eq "running step of k" "$(step_field k 0 status "$sum")" cancelled
	case $(step_field j 1 status "$sum") in
	skipped | cancelled) ;;
	*) fail "the step that never ran is '$(step_field j 1 status "$sum")'" ;;
	esac
	expect_no_file "$T/never"
	no_leftover
}

t_sigterm() {
	interrupt_case TERM 143
}

t_sigint() {
	interrupt_case INT 130
}

# A second SIGINT kills at once, even when the step ignores SIGTERM and has a 10 minute grace.
t_second_sigint() {
	workflow <<EOF
jobs:
  j:
    steps:
      - name: stubborn
        grace: 10m
        run: |
          trap '' TERM
          '$SLEEPER' 1000 &
          touch "$T/started"
          '$SLEEPER' 1000
EOF
	start_bg run p.yml
	if ! wait_for 60 test -e "$T/started"; then
		fail "the step did not start"
		return
	fi
	kill -INT "$RPID"
	# the runner says it got the first one (and keeps waiting for the grace period)
	if ! wait_for 60 grep -q 'again to kill' "$T/out" "$T/err"; then
		note "no 'again to kill' message after the first SIGINT"
	fi
	if ! alive "$RPID"; then
		fail "the runner ended after the first SIGINT, before the 10m grace period"
		wait_bg 5
		return
	fi
	local t0 t1
	t0=$(now)
	kill -INT "$RPID"
	wait_bg 60 || return
	t1=$(now)
	expect_rc 130
	expect_le "time from the second SIGINT to the exit (ms)" "$(elapsed_ms "$t0" "$t1")" 15000
	no_leftover
}

# The step kills its supervisor (its parent): its processes must still die and the run end.
t_step_kills_supervisor() {
	workflow <<EOF
jobs:
  j:
    steps:
      - name: parricide
        run: |
          '$SLEEPER' 1000 &
          ( setsid '$SLEEPER' 1000 & ) &
          kill -9 \$PPID
          '$SLEEPER' 1000
      - name: after
        if: always()
        run: |
          if pgrep -f -- '$MARK' >/dev/null; then echo still-alive >"$T/check"; else echo none >"$T/check"; fi
EOF
	local t0 t1
	t0=$(now)
	# unsandboxed: in the sandbox the supervisor is PID 1 of the step's namespace and cannot be
	# killed from inside it (t_sandbox_supervisor_unkillable)
	run run --no-sandbox p.yml
	t1=$(now)
	expect_rc 1
	expect_le "run duration (ms)" "$(elapsed_ms "$t0" "$t1")" 30000
	case $(step_field j 0 status) in
	failure | "timed out") ;;
	*) fail "step status '$(step_field j 0 status)', expected failure" ;;
	esac
	expect_eq "processes of step 1 alive when step 2 ran" "$(cat "$T/check" 2>/dev/null)" none
	no_leftover
}

# In the sandbox (the default) a step cannot kill its supervisor: it is PID 1 of the step's pid
# namespace, which the kernel protects from signals sent inside it; the step's shell is PID 2.
t_sandbox_supervisor_unkillable() {
	workflow <<EOF
jobs:
  j:
    steps:
      - name: try
        run: |
          echo "pid=\$\$ ppid=\$PPID"
          kill -9 \$PPID 2>/dev/null || true
          if kill -0 \$PPID 2>/dev/null; then echo supervisor-alive; else echo supervisor-gone; fi
EOF
	run run p.yml
	expect_rc 0
	grep -q "pid=2 ppid=1" "$T/out" || fail "the step's shell is not PID 2 under a PID 1 supervisor"
	grep -q "supervisor-alive" "$T/out" || fail "the supervisor did not survive kill -9 from the step"
	no_leftover
}

# stdin of a step is /dev/null, even when the runner's stdin has data.
t_stdin_devnull() {
	workflow <<EOF
jobs:
  j:
    steps:
      - run: |
          if read -r x; then echo "read-a-line:\$x"; else echo "stdin-eof"; fi
          echo "fd0=\$(readlink /proc/\$\$/fd/0)"
EOF
	printf 'data-from-the-runners-stdin\n' >"$T/in"
	run_stdin "$T/in" run p.yml
	expect_rc 0
	expect_grep 'stdin-eof' "$T/out"
	expect_no_grep 'read-a-line:data' "$T/out"
	expect_grep 'fd0=/dev/null$' "$T/out"
}

# Each step runs in its own session (and process group), not the runner's.
t_own_session() {
	workflow <<EOF
jobs:
  j:
    steps:
      - run: echo "s1 pid=\$\$ sid=\$(ps -o sid= -p \$\$ | tr -d ' ') pgid=\$(ps -o pgid= -p \$\$ | tr -d ' ')"
      - run: echo "s2 pid=\$\$ sid=\$(ps -o sid= -p \$\$ | tr -d ' ')"
EOF
	local mysid s1 s2 p1
	mysid=$(ps -o sid= -p $$ | tr -d ' ')
	# unsandboxed: sandboxed steps each have their own pid namespace, where ids compare per step
	run run --no-sandbox p.yml
	expect_rc 0
	s1=$(sed -n 's/.*s1 pid=[0-9]* sid=\([0-9]*\).*/\1/p' "$T/out")
	p1=$(sed -n 's/.*s1 pid=\([0-9]*\) .*/\1/p' "$T/out")
	s2=$(sed -n 's/.*s2 pid=[0-9]* sid=\([0-9]*\).*/\1/p' "$T/out")
	if [ -z "$s1" ] || [ -z "$s2" ]; then
		fail "no session ids in the output"
		return
	fi
	[ "$s1" != "$mysid" ] || fail "step 1 runs in the runner's session $mysid"
	[ "$s2" != "$mysid" ] || fail "step 2 runs in the runner's session $mysid"
	[ "$s1" != "$s2" ] || fail "steps 1 and 2 share session $s1"
	expect_eq "step 1 is its session's leader (sid = pid)" "$s1" "$p1"
}

# Steps of jobs running in parallel each get their own tree: a timeout in one job kills only
# that job's processes.
t_timeout_is_per_tree() {
	workflow <<EOF
jobs:
  slow:
    steps:
      - timeout: 1s
        grace: 1s
        run: |
          '$SLEEPER' 1000 &
          '$SLEEPER' 1000
  other:
    steps:
      - run: |
          touch "$T/other-started"
          i=0; while [ ! -e "$T/other-go" ] && [ \$i -lt 1200 ]; do i=\$((i+1)); sleep 0.05; done
          echo other-finished
EOF
	start_bg run -j 2 --keep-going p.yml
	if ! wait_for 60 test -e "$T/other-started"; then
		fail "job other did not start"
	fi
	# once slow has timed out, other must still be running
	if ! wait_for 60 grep -q 'timed out' "$T/out"; then
		fail "no 'timed out' in the output"
	fi
	touch "$T/other-go"
	wait_bg 90 || return
	expect_rc 1
	expect_grep 'other-finished' "$T/out"
	expect_eq "job other" "$(job_status other)" success
	expect_eq "job slow step" "$(step_field slow 0 status)" "timed out"
	no_leftover
}

# A step that closes its output and keeps running is not over until its process exits.
t_closed_output_still_running() {
	workflow <<'EOF'
jobs:
  j:
    steps:
      - name: quiet-worker
        run: |
          exec >/dev/null 2>&1 </dev/null
          sleep 1
          touch "@T@/worker-done"
      - name: next
        run: |
          if [ -e "@T@/worker-done" ]; then echo ok > "@T@/seen"; else echo too-early > "@T@/seen"; fi
EOF
	run run p.yml
	expect_rc 0
	expect_eq "the next step saw the end of the worker" "$(cat "$T/seen" 2>/dev/null)" ok
	expect_ge "duration_ms of the worker" "$(step_field j 0 duration_ms)" 950
}

# Thousands of short-lived orphans are reaped; the step and the run end normally.
t_orphan_storm() {
	workflow <<'EOF'
jobs:
  j:
    steps:
      - name: storm
        run: |
          i=0; while [ $i -lt 1000 ]; do ( true & ) ; i=$((i+1)); done
          '@SLEEPER@' 1000 &
          # the orphans are re-parented to the step's supervisor ($PPID), which reaps them
          n=0
          while :; do
            z=$(ps -eo stat=,ppid= | awk -v p=$PPID '$1 ~ /^Z/ && $2 == p' | wc -l)
            [ "$z" -eq 0 ] && break
            n=$((n+1)); [ $n -gt 400 ] && break
            sleep 0.05
          done
          echo "zombies=$z"
          echo storm-done
EOF
	run run p.yml
	expect_rc 0
	expect_grep 'storm-done' "$T/out"
	expect_grep 'zombies=0$' "$T/out"
	no_leftover
}

# The runner killed with SIGKILL (no chance to clean up): the step trees die with it.
t_runner_sigkill() {
	workflow <<'EOF'
jobs:
  j:
    steps:
      - run: |
          '@SLEEPER@' 1000 &
          ( setsid '@SLEEPER@' 1000 & ) &
          touch "@T@/started"
          '@SLEEPER@' 1000
EOF
	start_bg run p.yml
	if ! wait_for 60 test -e "$T/started"; then
		fail "the step did not start"
		return
	fi
	# the processes exist before the kill (else the check below proves nothing)
	wait_for 30 eval '[ "$(marked_pids "$MARK" | wc -l)" -ge 3 ]' || note "fewer than 3 step processes seen before the kill"
	kill -KILL "$RPID"
	wait_bg 30
	no_leftover
	_temp_left_ok=1 # nobody is left to remove the job's RUNNER_TEMP
}

add "background job of a step is killed when the step ends" t_background
add "double-forked process is killed when the step ends" t_double_fork
add "setsid() daemon is killed when the step ends" t_setsid
add "setsid() daemons holding the output pipe are killed, step ends" t_setsid_holds_pipe
add "timeout 1s + grace 1s with a child ignoring SIGTERM: timed out, exit 1, nothing left" t_timeout_child_traps_term
add "step ignoring SIGTERM is SIGKILLed after the grace period" t_timeout_ignores_term_killed_after_grace
add "step obeying SIGTERM ends at the timeout, not after the grace" t_timeout_term_obeyed
add "job-level timeout stops the running step and skips the rest" t_job_timeout
add "SIGTERM to the runner: exit 143, trees gone, summary says cancelled" t_sigterm
add "SIGINT to the runner: exit 130, trees gone, summary says cancelled" t_sigint
add "second SIGINT kills at once despite grace 10m and trap '' TERM" t_second_sigint
add "step that kills its own supervisor: its processes die, run ends" t_step_kills_supervisor
add "sandboxed: a step cannot kill its supervisor (PID 1 of its namespace)" t_sandbox_supervisor_unkillable
add "stdin of a step is /dev/null" t_stdin_devnull
add "each step runs in its own session" t_own_session
add "a timeout kills only its own step's tree" t_timeout_is_per_tree
add "a step that closed its output runs until its process exits" t_closed_output_still_running
add "1000 short-lived orphans: reaped while the step runs, step ends normally" t_orphan_storm
add "runner killed with SIGKILL: the step trees die with it" t_runner_sigkill
run_all
