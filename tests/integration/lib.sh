# shellcheck shell=bash
# lib.sh - shared helpers of the integration tests (sourced by tests/integration/*.sh).
#
# A test file sources this with the runner binary as $1, registers its subtests with
#   add "name" function
# and ends with `run_all`, which prints TAP (`1..N`, `ok N - name`, `not ok N - name` and
# `# diagnostics`) and exits non-zero if any subtest failed.
#
# Each subtest function runs in the test file's shell, in the current directory $T (a fresh
# `mktemp -d` workspace), with:
#   MARK     a marker unique to this subtest, this test file and this process ($$); it never
#            is a prefix of another subtest's marker
#   SLEEPER  the absolute path of a `sleep` whose command line contains MARK (a symlink named
#            MARK): steps start "$SLEEPER" 1000 and `no_leftover` looks for MARK
# and reports with `fail MESSAGE`, `note MESSAGE` (diagnostics only), `skip REASON` and the
# expect_* helpers. Runner invocations:
#   run ARGS...        runner in $T, stdout -> $T/out, stderr -> $T/err, stdin </dev/null, status
#                      in RC; a safety timeout of $RNIT_TIMEOUT (default 120) seconds
#   start_bg ARGS...   the same in the background (SIGINT/SIGQUIT at their defaults); pid in RPID
#   wait_bg SECONDS    wait for it; its status in RC (fails the subtest and kills it on timeout)
# With CHECK_RUNNER_TEMP=1 (set by the test file after sourcing this), the runner's TMPDIR is a
# directory of the subtest and the subtest fails if a RUNNER_TEMP (runner-job-*) is left in it
# (a subtest that knows it cannot be cleaned up, e.g. after SIGKILL, sets _temp_left_ok=1).
# Everything a subtest starts is killed when it ends (processes whose command line contains its
# MARK, by pid) and the whole temporary tree is removed when the file ends (RNIT_KEEP=1 keeps it).
set -u

if [ $# -lt 1 ]; then
	echo "usage: $0 RUNNER_BINARY" >&2
	exit 2
fi
RUNNER=$(realpath "$1")
if [ ! -x "$RUNNER" ]; then
	echo "$0: $1 is not an executable" >&2
	exit 2
fi
TFILE=$(basename "$0" .sh)
# Under /var/tmp, not /tmp: steps run in the sandbox (on by default), which gives them a private
# /tmp, while the fixtures (helper programs, fifos, marker files) must stay visible to them.
ROOT=$(mktemp -d -p "${RNIT_BASE:-/var/tmp}" "rnit-$TFILE.XXXXXX")
BIN=$ROOT/bin
mkdir -p "$BIN"
SLEEP_BIN=$(command -v sleep)
RNIT_TIMEOUT=${RNIT_TIMEOUT:-120}
MARK_PREFIX="rnit-$TFILE-$$-"
# The runner must not pick up a caller's settings that change what we check.
unset NO_COLOR RUNNER_SERVER RUNNER_TOKEN
for _v in $(env | sed -n 's/^\(RUNNER_SECRET_[A-Za-z0-9_]*\)=.*/\1/p'); do unset "$_v"; done
unset _v

_names=()
_funcs=()
_nfail=0
RPID=
RC=
T=$ROOT
MARK=
SLEEPER=

# need_tools TOOL...: skip the whole file (TAP `1..0 # SKIP`) when one of them is missing.
need_tools() {
	local t
	for t in "$@"; do
		if ! command -v "$t" >/dev/null; then
			echo "1..0 # SKIP $t is not installed"
			exit 0
		fi
	done
}

# git_home: for files that commit, clone and push: a private HOME and cache, no system git
# config, a fixed identity, and none of the caller's git credentials, runner git cache or server
# tokens (a file that wants a shared cache sets RUNNER_GIT_CACHE after this).
git_home() {
	export HOME=$ROOT/home XDG_CACHE_HOME=$ROOT/cache GIT_CONFIG_NOSYSTEM=1
	export GIT_AUTHOR_NAME=Test GIT_AUTHOR_EMAIL=test@example.com GIT_COMMITTER_NAME=Test GIT_COMMITTER_EMAIL=test@example.com
	unset GIT_DIR GIT_WORK_TREE RUNNER_GIT_TOKEN RUNNER_GIT_SSH_KEY RUNNER_GIT_CACHE RUNNER_ADMIN_TOKEN RUNNER_REGISTRATION_TOKEN
	mkdir -p "$HOME"
}

# ---- processes --------------------------------------------------------------------------------

# Pids of live processes whose command line contains $1 (never this shell or pgrep itself).
marked_pids() {
	pgrep -f -- "$1" 2>/dev/null | while read -r p; do
		[ "$p" = "$$" ] || [ "$p" = "$BASHPID" ] || echo "$p"
	done
}

# SIGKILL (by pid) every live process whose command line contains $1.
kill_marked() {
	local p
	for p in $(marked_pids "$1"); do
		kill -9 "$p" 2>/dev/null
	done
}

# Fails the subtest if a process whose command line contains MARKER (default: $MARK) is alive.
# Waits up to 5 s for processes that are already being killed (SIGKILL is asynchronous).
no_leftover() {
	local m=${1:-$MARK} i left
	for i in $(seq 100); do
		left=$(marked_pids "$m")
		[ -z "$left" ] && return 0
		sleep 0.05
	done
	fail "processes left behind (command line contains $m):"
	local p
	for p in $left; do
		note "  $(ps -o pid=,ppid=,sid=,stat=,args= -p "$p" 2>/dev/null)"
	done
	return 1
}

# The process' state letter (R, S, Z...) or empty if it is gone.
proc_state() {
	sed -n 's/^[0-9]* (.*) \([A-Za-z]\) .*/\1/p' "/proc/$1/stat" 2>/dev/null
}

# 0 while pid $1 runs (a zombie counts as ended).
alive() {
	local st
	st=$(proc_state "$1")
	[ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# Every file a run wrote: $T/out, $T/err, its default log dir, and the extra paths given.
all_outputs() {
	find "$T/out" "$T/err" "$T/.runner/logs" "$@" -type f 2>/dev/null
}

# Fails if the fixed string $1 occurs in any of the run's outputs (and extra files $2...).
expect_not_leaked() {
	local s=$1 f hits=
	shift
	while IFS= read -r f; do
		if grep -aqF -- "$s" "$f"; then
			hits="$hits ${f#"$T"/}"
		fi
	done < <(all_outputs "$@")
	[ -z "$hits" ] || fail "'$s' appears in:$hits"
}

# wait_pid PID SECONDS: wait for a background child of this shell; its status in RC (on timeout
# it is SIGKILLed, RC is 999 and the subtest fails).
wait_pid() { # PID SECONDS
	local end=$(($(date +%s) + $2))
	while alive "$1"; do
		if [ "$(date +%s)" -ge "$end" ]; then
			fail "process $1 did not end within $2 s"
			kill -9 "$1" 2>/dev/null
			RC=999
			return 1
		fi
		sleep 0.05
	done
	wait "$1" 2>/dev/null
	RC=$?
}

# serve_at DATA [ARGS...]: `runner serve` on 127.0.0.1:${PORT:-0} with its data in DATA ($ADMIN
# and $REG as tokens, output appended to $T/server.log), in the background; sets SDATA, SPID,
# URL and PORT once it listens. 1 (and a failed subtest) if it does not start.
serve_at() {
	SDATA=$1
	shift
	rm -f "$SDATA/address"
	(exec env RUNNER_ADMIN_TOKEN="$ADMIN" RUNNER_REGISTRATION_TOKEN="$REG" "$RUNNER" serve \
		--listen "127.0.0.1:${PORT:-0}" --data "$SDATA" "$@") >>"$T/server.log" 2>&1 </dev/null &
	SPID=$!
	if ! wait_for 30 test -s "$SDATA/address"; then
		fail "the server did not start: $(tail -n 3 "$T/server.log" 2>/dev/null)"
		return 1
	fi
	URL=$(cat "$SDATA/address")
	PORT=${URL##*:}
}

# admin_api PATH [METHOD [BODY]]: a call to the server at $URL with the admin token $ADMIN (a
# JSON BODY when given); the answer on stdout.
admin_api() {
	curl -s -m 30 -X "${2:-GET}" -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
		${3:+--data "$3"} "$URL$1"
}

# ---- running the runner -----------------------------------------------------------------------

run() {
	(cd "$T" && exec timeout -k 5 "$RNIT_TIMEOUT" "$RUNNER" "$@") >"$T/out" 2>"$T/err" </dev/null
	RC=$?
}

# Like run, but with stdin from the file $1.
run_stdin() {
	local in=$1
	shift
	(cd "$T" && exec timeout -k 5 "$RNIT_TIMEOUT" "$RUNNER" "$@") >"$T/out" 2>"$T/err" <"$in"
	RC=$?
}

start_bg() {
	(cd "$T" && exec env --default-signal=INT,QUIT "$RUNNER" "$@") >"$T/out" 2>"$T/err" </dev/null &
	RPID=$!
}

# wait_bg SECONDS: wait for the background runner; RC gets its status. 0, or 1 on timeout (then
# the runner is SIGKILLed, RC is 999 and the subtest fails).
wait_bg() {
	local limit=$1 end
	end=$(($(date +%s) + limit))
	while alive "$RPID"; do
		if [ "$(date +%s)" -ge "$end" ]; then
			fail "the runner (pid $RPID) did not end within $limit s"
			kill -9 "$RPID" 2>/dev/null
			wait "$RPID" 2>/dev/null
			RC=999
			RPID=
			return 1
		fi
		sleep 0.05
	done
	wait "$RPID" 2>/dev/null # (no "Killed" job notice on stderr)
	RC=$?
	RPID=
	return 0
}

# wait_for SECONDS COMMAND...: poll COMMAND until it succeeds. Returns 1 on timeout, and also
# early if a background runner ($RPID) has ended meanwhile (the event will not come).
wait_for() {
	local limit=$1 end
	shift
	end=$(($(date +%s) + limit))
	while ! "$@"; do
		if [ -n "$RPID" ] && ! alive "$RPID"; then
			"$@" && return 0
			return 1
		fi
		[ "$(date +%s)" -ge "$end" ] && return 1
		sleep 0.05
	done
	return 0
}

# Seconds since the epoch with microseconds, and the difference of two such stamps in ms.
now() { echo "$EPOCHREALTIME"; }
elapsed_ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%d\n", (b - a) * 1000 }'; }

# ---- files ------------------------------------------------------------------------------------

# A shell function for steps: `w FILE` waits for FILE to appear (exit 9 after 60 s).
WAIT_FN='w() { i=0; while [ ! -e "$1" ]; do i=$((i+1)); [ $i -gt 1200 ] && { echo "gave up waiting for $1"; exit 9; }; sleep 0.05; done; }'

# Write the workflow $T/${1:-p.yml} from stdin, with @T@, @MARK@ and @SLEEPER@ replaced by the
# values of this subtest and @WAIT@ by WAIT_FN (so that workflows can be written in quoted
# here-documents).
workflow() {
	local text
	text=$(
		cat
		echo x
	)
	text=${text%x}
	text=${text//@T@/"$T"}
	text=${text//@MARK@/"$MARK"}
	text=${text//@SLEEPER@/"$SLEEPER"}
	text=${text//@WAIT@/"$WAIT_FN"}
	printf '%s' "$text" >"$T/${1:-p.yml}"
}

# The summary.json of the run (the only one under $T/.runner/logs, or $1/summary.json).
# shellcheck disable=SC2120
summary() {
	if [ $# -gt 0 ]; then
		echo "$1/summary.json"
		return
	fi
	local f
	f=$(find "$T/.runner/logs" -name summary.json 2>/dev/null | head -n 1)
	echo "${f:-$T/.runner/logs/NO-summary.json}"
}

# jq-like look-ups in JSON with python: js FILE EXPR (EXPR in python over `d`) prints the result
# (strings raw, the rest as JSON). Example: js "$(summary)" 'd["jobs"][0]["status"]'.
js() {
	python3 - "$1" "$2" <<'EOF'
import json, sys
try:
    with open(sys.argv[1], "rb") as f:
        d = json.loads(f.read())
    v = eval(sys.argv[2], {"d": d})
except Exception as e:
    print("<error: %s: %s>" % (type(e).__name__, e))
    sys.exit(0)
print(v if isinstance(v, str) else json.dumps(v))
EOF
}

# job_status JOB [SUMMARY]: the status of a job (by name) in summary.json (default: summary);
# step_field JOB INDEX FIELD [SUMMARY]: a field of one of its steps.
job_status() {
	js "${2:-$(summary)}" "[j['status'] for j in d['jobs'] if j['name'] == '$1'][0]"
}
step_field() {
	js "${4:-$(summary)}" "[j for j in d['jobs'] if j['name'] == '$1'][0]['steps'][$2]['$3']"
}

# The log file of step INDEX (0-based) of job JOB in the run's log dir ($3 or .runner/logs/*),
# from summary.json's "log" field.
step_log() { # JOB INDEX [LOGDIR]
	local dir=${3:-}
	if [ -z "$dir" ]; then
		dir=$(dirname "$(summary)")
	fi
	local rel
	rel=$(step_field "$1" "$2" log "$dir/summary.json")
	echo "$dir/$rel"
}

# The sha256 of a file, in hex.
sha() { sha256sum "$1" | cut -d' ' -f1; }

# ---- assertions -------------------------------------------------------------------------------

note() {
	_diag+=("$*")
}

fail() {
	_failed=1
	_diag+=("$*")
}

skip() {
	_skip=$*
}

expect_eq() { # WHAT GOT WANT
	[ "$2" = "$3" ] || fail "$1: got '$2', expected '$3'"
}

expect_rc() {
	[ "$RC" = "$1" ] || fail "runner exit status $RC, expected $1"
}

expect_le() { # WHAT GOT MAX
	[ "$2" -le "$3" ] 2>/dev/null || fail "$1: got $2, expected at most $3"
}

expect_ge() { # WHAT GOT MIN
	[ "$2" -ge "$3" ] 2>/dev/null || fail "$1: got $2, expected at least $3"
}

expect_grep() { # ERE FILE... : some line of the files matches
	local re=$1
	shift
	grep -Eq -- "$re" "$@" 2>/dev/null || fail "no line matches /$re/ in ${*##*/}"
}

expect_no_grep() { # ERE FILE...
	local re=$1
	shift
	local hit
	hit=$(grep -Eh -m 3 -- "$re" "$@" 2>/dev/null | cut -c 1-200)
	[ -z "$hit" ] || fail "/$re/ found in ${*##*/}: $hit"
}

expect_file() {
	[ -e "$1" ] || fail "missing file ${1#"$T"/}"
}

expect_no_file() {
	[ ! -e "$1" ] || fail "file ${1#"$T"/} exists"
}

# ---- the driver -------------------------------------------------------------------------------

add() {
	_names+=("$1")
	_funcs+=("$2")
}

_cleanup() {
	if [ -n "${RPID:-}" ]; then
		kill -9 "$RPID" 2>/dev/null
	fi
	kill_marked "$MARK_PREFIX"
	if [ -z "${RNIT_KEEP:-}" ]; then
		rm -rf "$ROOT"
	else
		echo "# kept $ROOT" >&2
	fi
}
trap _cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

_show() { # FILE: the tail of a file as diagnostics
	[ -s "$1" ] || return 0
	echo "# --- ${1#"$ROOT"/} (last lines)"
	tail -n 15 "$1" | cut -c 1-300 | tr -d '\033' | sed 's/^/#   /'
}

run_all() {
	local i n=${#_names[@]} t0 ms only=${RNIT_ONLY:-}
	echo "1..$n"
	for ((i = 0; i < n; i++)); do
		local num=$((i + 1)) name=${_names[$i]}
		_failed=0 _skip='' _diag=() RPID='' RC=
		if [ -n "$only" ] && [[ " $only " != *" $num "* ]]; then
			echo "ok $num - $name # SKIP not selected"
			continue
		fi
		T=$(mktemp -d "$ROOT/t$num.XXXXXX")
		MARK="${MARK_PREFIX}t${num}x"
		SLEEPER=$BIN/$MARK
		ln -s "$SLEEP_BIN" "$SLEEPER"
		t0=$(now)
		_temp_left_ok=
		if [ -n "${CHECK_RUNNER_TEMP:-}" ]; then
			export TMPDIR=$ROOT/tmp
			mkdir -p "$TMPDIR"
		fi
		cd "$T" || exit 1
		"${_funcs[$i]}"
		cd "$ROOT" || exit 1
		if [ -n "$RPID" ]; then
			kill -9 "$RPID" 2>/dev/null
			wait "$RPID" 2>/dev/null
			RPID=
		fi
		kill_marked "$MARK"
		if [ -n "${CHECK_RUNNER_TEMP:-}" ]; then
			local left
			left=$(find "$TMPDIR" -mindepth 1 -maxdepth 1 -name 'runner-job-*' 2>/dev/null)
			if [ -n "$left" ] && [ -z "$_temp_left_ok" ]; then
				fail "RUNNER_TEMP directories left behind after the run:" $left
			fi
			rm -rf "$TMPDIR"
		fi
		ms=$(elapsed_ms "$t0" "$(now)")
		if [ -n "$_skip" ] && [ "$_failed" = 0 ]; then
			echo "ok $num - $name # SKIP $_skip"
		elif [ "$_failed" = 0 ]; then
			echo "ok $num - $name"
		else
			_nfail=$((_nfail + 1))
			# The diagnostics go to stdout (TAP) and to stderr: a TAP harness shows only
			# stderr of a failed test, and a CI log must say why it failed.
			local report
			report=$(
				echo "not ok $num - $name"
				local d
				for d in "${_diag[@]}"; do
					printf '%s\n' "$d" | cut -c 1-400 | sed 's/^/# /'
				done
				_show "$T/out"
				_show "$T/err"
			)
			printf '%s\n' "$report"
			printf '%s\n' "$report" >&2
		fi
		echo "# ($((ms / 1000)).$(printf %03d $((ms % 1000))) s)"
		[ -n "${RNIT_KEEP:-}" ] || rm -rf "$T"
	done
	[ "$_nfail" -eq 0 ]
}
