#!/usr/bin/env bash
# Integration tests of the step sandbox (SPEC section 3, sandbox paragraph; docs/sandbox.md):
# each escape attempt through the real binary fails and leaves nothing behind. TAP; see lib.sh.
#   sandbox.sh RUNNER_BINARY
# Most subtests need what `runner run --sandbox-info` reports for a root runner with cgroup v1
# memory and pids controllers; a subtest whose feature is not available is skipped.
. "$(dirname "$0")/lib.sh"
CHECK_RUNNER_TEMP=1

INFO=$("$RUNNER" run --sandbox-info 2>&1)
# has_feature LABEL: the --sandbox-info line for LABEL says yes (or names a mechanism).
has_feature() {
	printf '%s\n' "$INFO" | grep -E "^ *$1:? +" | grep -Eqv "^ *$1:? +(no|not available|unavailable)"
}
need() { # LABEL: skip the subtest (return 1) unless the feature is available
	if [ "$(id -u)" != 0 ]; then
		skip "needs a root runner"
		return 1
	fi
	has_feature "$1" && return 0
	skip "sandbox feature '$1' not available here"
	return 1
}

# The workspace file $T/$1 contains exactly $2.
expect_content() {
	expect_eq "content of $1" "$(cat "$T/$1" 2>/dev/null)" "$2"
}

# 1. PID namespace: the shell is PID 2, only its own processes are visible, and killing every
# pid it can name (1..300) neither reaches the runner nor stops the run.
t_pid_namespace() {
	need 'pid namespace' || return
	workflow <<'EOF'
jobs:
  j:
    steps:
      - name: look
        run: |
          echo "$$" >"@T@/shell-pid"
          ps -e -o pid= -o comm= >"@T@/ps"
          ls /proc | grep -E '^[0-9]+$' >"@T@/proc"
      - name: killer
        run: |
          # (|| true: the step's shell runs with -e)
          for p in $(seq 1 300); do [ $p -ne $$ ] && kill -9 $p 2>/dev/null || true; done; echo survived
      - name: after
        run: echo after-ran
EOF
	run run p.yml
	expect_rc 0
	expect_content shell-pid 2
	# ps, bash and the supervisor (runner, PID 1): nothing of the host
	local n
	n=$(wc -l <"$T/ps")
	expect_le "processes listed by ps -e" "$n" 3
	expect_grep '^ *1 ' "$T/ps"
	expect_grep '^ *2 bash' "$T/ps"
	n=$(wc -l <"$T/proc")
	expect_le "pid entries in /proc" "$n" 4
	expect_no_grep '^([0-9]{2,})$' "$T/proc"
	expect_grep 'survived' "$T/out"
	expect_grep 'after-ran' "$T/out"
	expect_eq "job status" "$(job_status j)" success
	expect_eq "killer step status" "$(step_field j 1 status)" success
	no_leftover
}

# 2. read-only-root: /usr is not writable, the workspace is.
t_read_only_root() {
	need 'read-only-root' || return
	local target=/usr/rnit-x-$MARK
	workflow <<EOF
jobs:
  j:
    sandbox: {read-only-root: true}
    steps:
      - run: |
          if touch $target 2>"$T/touch-err"; then echo TOUCHED; else echo touch-failed; fi
          echo written >"$T/ws-file"
          echo tmp >/tmp/ok && cat /tmp/ok
EOF
	run run p.yml
	expect_rc 0
	expect_grep 'touch-failed' "$T/out"
	expect_no_grep 'TOUCHED' "$T/out"
	expect_grep 'Read-only file system' "$T/touch-err"
	if [ -e "$target" ]; then
		fail "$target exists after the run"
		rm -f "$target"
	fi
	expect_content ws-file written
	expect_grep '\| tmp$' "$T/out"
	no_leftover
}

# 3. network: false: a server on the host's 127.0.0.1 is unreachable; with the default sandbox
# it is reachable; the step's own loopback works.
t_network_false() {
	need 'network: false' || return
	python3 -c '
import os, socket, sys
s = socket.create_server(("127.0.0.1", 0))
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(s.getsockname()[1]))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
while True:
    c, _ = s.accept()
    c.close()
' "$T/port" "$MARK" >/dev/null 2>&1 &
	local spid=$! port
	if ! wait_for 15 test -s "$T/port"; then
		fail "the test server did not start"
		kill -9 "$spid" 2>/dev/null
		return
	fi
	port=$(cat "$T/port")
	local connect="python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", $port), 2)'"
	workflow <<EOF
jobs:
  isolated:
    sandbox: {network: false}
    steps:
      - run: |
          if $connect 2>/dev/null; then echo connected >"$T/isolated"; else echo refused >"$T/isolated"; fi
          python3 -c 'import socket; s = socket.create_server(("127.0.0.1", 0)); socket.create_connection(s.getsockname(), 2)' && echo own-lo-ok >"$T/own-lo"
  default:
    steps:
      - run: |
          if $connect; then echo connected >"$T/default"; else echo refused >"$T/default"; fi
EOF
	run run p.yml
	kill -9 "$spid" 2>/dev/null
	wait "$spid" 2>/dev/null
	expect_rc 0
	expect_content isolated refused
	expect_content default connected
	expect_content own-lo own-lo-ok
	no_leftover
}

# 4. pids: 64: a fork storm stops at the limit (EAGAIN), the step ends, nothing survives.
# (A python storm: bash itself retries a failed fork for about 15 s.)
t_pids_limit() {
	need 'pids limit' || return
	workflow <<'EOF'
jobs:
  j:
    sandbox: {pids: 64}
    steps:
      - timeout: 20s
        run: |
          python3 - <<'PY' || true
          import os
          n, err = 0, None
          for i in range(500):
              try:
                  pid = os.fork()
              except OSError as e:
                  err = e.errno
                  break
              if pid == 0:
                  try:
                      os.execv("@SLEEPER@", ["@SLEEPER@", "30"])
                  finally:
                      os._exit(127)
              n += 1
          procs = len([p for p in os.listdir("/proc") if p.isdigit()])
          with open("@T@/storm", "w") as f:
              f.write("%d %s %d\n" % (n, err, procs))
          PY
          echo storm-done
EOF
	local t0 t1
	t0=$(now)
	run run p.yml
	t1=$(now)
	expect_rc 0
	expect_le "run duration (ms)" "$(elapsed_ms "$t0" "$t1")" 25000
	local n err procs
	read -r n err procs <"$T/storm" || fail "the storm wrote no result"
	expect_le "processes forked" "${n:-999}" 64
	expect_ge "processes forked" "${n:-0}" 30
	expect_eq "fork error" "${err:-}" 11
	expect_le "processes in the step's /proc (supervisor included)" "${procs:-999}" 65
	expect_grep 'storm-done' "$T/out"
	no_leftover
}

# 5. memory: 64M: a 1 GiB allocation fails; the step is a failure "out of memory".
t_memory_limit() {
	need 'memory limit' || return
	workflow <<'EOF'
jobs:
  j:
    sandbox: {memory: 64M}
    steps:
      - run: python3 -c 'b = bytearray(1 << 30)'
      - run: echo after-ran
EOF
	run run p.yml
	expect_rc 1
	expect_eq "step status" "$(step_field j 0 status)" failure
	local reason
	reason=$(step_field j 0 reason)
	[[ $reason == *"out of memory"* ]] || fail "step reason '$reason' does not contain 'out of memory'"
	expect_eq "next step status" "$(step_field j 1 status)" skipped
	no_leftover
}

# 6. A double-forked setsid daemon is gone when its step ends (checked while the runner still
# runs its next step).
t_daemon_gone() {
	need 'pid namespace' || return
	workflow <<'EOF'
jobs:
  j:
    steps:
      - name: daemon
        run: |
          ( setsid sh -c '"@SLEEPER@" 1000' >/dev/null 2>&1 </dev/null & ) &
          sleep 0.3
          echo daemon-started
      - name: hold
        run: |
          @WAIT@
          touch "@T@/in-step-2"
          w "@T@/go"
          echo hold-done
EOF
	start_bg run p.yml
	if ! wait_for 30 test -e "$T/in-step-2"; then
		fail "step 2 did not start"
		wait_bg 10
		return
	fi
	no_leftover
	touch "$T/go"
	wait_bg 60
	expect_rc 0
	expect_grep 'daemon-started' "$T/out"
	expect_grep 'hold-done' "$T/out"
	no_leftover
}

# 7. A step that ignores SIGTERM is killed after timeout + grace; status "timed out".
t_timeout_ignores_term() {
	workflow <<'EOF'
jobs:
  j:
    steps:
      - timeout: 1s
        grace: 1s
        run: |
          trap '' TERM
          "@SLEEPER@" 1000 &
          "@SLEEPER@" 1000
EOF
	local t0 t1
	t0=$(now)
	run run p.yml
	t1=$(now)
	expect_rc 1
	expect_eq "step status" "$(step_field j 0 status)" "timed out"
	expect_ge "run duration (ms)" "$(elapsed_ms "$t0" "$t1")" 1900
	expect_le "run duration (ms)" "$(elapsed_ms "$t0" "$t1")" 15000
	no_leftover
}

# 8. files, file-size and cpu rlimits are what the step sees, and are enforced.
t_rlimits() {
	workflow <<'EOF'
jobs:
  files:
    sandbox: {files: 32}
    steps:
      - run: |
          ulimit -n >"@T@/nofile"
          python3 -c '
          import os
          try:
              fds = [os.open("/dev/null", os.O_RDONLY) for _ in range(40)]
              print("opened-40")
          except OSError as e:
              print("open-failed", e.errno)
          ' >"@T@/open"
  fsize:
    sandbox: {file-size: 1M}
    steps:
      - run: |
          ulimit -f >"@T@/fsize-ulimit"
          if head -c 2000000 /dev/zero >"@T@/big"; then echo wrote >"@T@/fsize"; else echo "failed $?" >"@T@/fsize"; fi
  cpu:
    sandbox: {cpu: 1}
    steps:
      - timeout: 60s
        run: |
          ulimit -t >"@T@/cpu-ulimit"
          bash -c 'while :; do :; done' || echo "rc $?" >"@T@/cpu"
EOF
	local t0 t1
	t0=$(now)
	run run p.yml
	t1=$(now)
	expect_rc 0
	expect_content nofile 32
	expect_content open "open-failed 24"
	# ulimit -f is in 1024-byte blocks
	expect_content fsize-ulimit 1024
	expect_content fsize "failed 153"
	local size
	size=$(stat -c %s "$T/big" 2>/dev/null || echo missing)
	expect_le "size of the 2 MB write" "$size" 1048576
	expect_content cpu-ulimit 1
	local cpu
	cpu=$(cat "$T/cpu" 2>/dev/null)
	[ "$cpu" = "rc 152" ] || [ "$cpu" = "rc 137" ] || fail "busy loop: got '$cpu', expected rc 152 (SIGXCPU) or 137 (SIGKILL)"
	expect_le "run duration (ms)" "$(elapsed_ms "$t0" "$t1")" 30000
	no_leftover
}

# 9. Without the sandbox (sandbox: false on a step, or --no-sandbox) the step sees the host's
# /tmp and processes.
t_sandbox_off() {
	local host=/tmp/$MARK-host
	echo host >"$host"
	workflow <<EOF
jobs:
  j:
    steps:
      - name: off
        sandbox: false
        run: |
          cat $host >"$T/off-seen"
          echo "\$\$" >"$T/off-pid"
      - name: on
        run: |
          if [ -e $host ]; then echo seen; else echo unseen; fi >"$T/on-seen"
EOF
	run run p.yml
	expect_rc 0
	expect_content off-seen host
	[ "$(cat "$T/off-pid" 2>/dev/null)" != 2 ] || fail "a step with sandbox: false is PID 2"
	expect_content on-seen unseen
	workflow q.yml <<EOF
jobs:
  j:
    steps:
      - run: |
          cat $host >"$T/q-seen"
          echo "\$\$" >"$T/q-pid"
EOF
	run run --no-sandbox q.yml
	expect_rc 0
	expect_content q-seen host
	[ "$(cat "$T/q-pid" 2>/dev/null)" != 2 ] || fail "a step run with --no-sandbox is PID 2"
	rm -f "$host"
	no_leftover
}

# 10. /tmp of a sandboxed step is private in both directions.
t_private_tmp() {
	need 'private /tmp' || return
	local host=/tmp/$MARK-host step=/tmp/$MARK-step
	echo host >"$host"
	workflow <<EOF
jobs:
  j:
    steps:
      - run: |
          if [ -e $host ]; then echo seen; else echo unseen; fi >"$T/seen"
          echo step >$step && cat $step >"$T/own"
      - run: |
          if [ -e $step ]; then echo kept; else echo fresh; fi >"$T/next"
EOF
	run run p.yml
	expect_rc 0
	expect_content seen unseen
	expect_content own step
	if [ -e "$step" ]; then
		fail "$step written by the step appeared on the host"
		rm -f "$step"
	fi
	rm -f "$host"
	no_leftover
}

# 11. An unprivileged runner sandboxes its steps in a user namespace.
t_unprivileged() {
	if [ "$(id -u)" != 0 ] || ! command -v setpriv >/dev/null; then
		skip "needs root and setpriv"
		return
	fi
	if ! getent passwd nobody >/dev/null || ! getent group nogroup >/dev/null; then
		skip "no user nobody or group nogroup"
		return
	fi
	chmod o+x "$ROOT" "$BIN"
	chmod 0777 "$T"
	workflow <<'EOF'
jobs:
  j:
    steps:
      - run: |
          echo "$$" >"@T@/pid"
          id -u >"@T@/uid"
          if [ -e /tmp/@MARK@-host ]; then echo seen; else echo unseen; fi >"@T@/seen"
          "@SLEEPER@" 1000 &
          echo done
EOF
	echo host >"/tmp/$MARK-host"
	(cd "$T" && exec timeout -k 5 "$RNIT_TIMEOUT" setpriv --reuid=nobody --regid=nogroup --init-groups \
		env HOME="$T" TMPDIR=/tmp "$RUNNER" run p.yml) >"$T/out" 2>"$T/err" </dev/null
	RC=$?
	rm -f "/tmp/$MARK-host"
	chmod o-x "$ROOT" "$BIN"
	expect_rc 0
	expect_content pid 2
	expect_content uid 65534
	expect_content seen unseen
	no_leftover
}

add "pid namespace: shell is PID 2, sees only its own processes, kill -9 of pids 1..300 harms nothing" t_pid_namespace
add "read-only-root: /usr is read-only, the workspace writable" t_read_only_root
add "network: false: the host's 127.0.0.1 is unreachable, reachable by default" t_network_false
add "pids: 64 bounds a fork storm, the step ends, nothing survives" t_pids_limit
add "memory: 64M: a 1 GiB allocation fails, step failure 'out of memory'" t_memory_limit
add "a double-forked setsid daemon is gone after its step" t_daemon_gone
add "a step ignoring SIGTERM is killed after timeout + grace (timed out)" t_timeout_ignores_term
add "files: 32, file-size: 1M, cpu: 1 are seen and enforced" t_rlimits
add "sandbox: false and --no-sandbox see the host's /tmp" t_sandbox_off
add "a sandboxed step's /tmp is private both ways" t_private_tmp
add "an unprivileged runner (nobody) runs steps in a user namespace sandbox" t_unprivileged
run_all
