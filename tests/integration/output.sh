#!/usr/bin/env bash
# Integration tests of `runner run`: output, logs, secrets masking, --json, --junit, colour,
# --log-dir and summary.json (SPEC sections 1 and 3). TAP output; see lib.sh.
#   output.sh RUNNER_BINARY
. "$(dirname "$0")/lib.sh"
CHECK_RUNNER_TEMP=1

# Every file the run wrote that a user could see: console, logs, summary.json, reports.
# ---- secrets ----------------------------------------------------------------------------------

t_mask_everywhere() {
	local S=s3cr3t-T0k-9f2x
	workflow <<'EOF'
jobs:
  leak:
    steps:
      - name: "show ${{ secrets.TOK }}"
        id: s
        env:
          T_ENV: ${{ secrets.TOK }}
        run: |
          echo "direct=${{ secrets.TOK }}"
          echo "env=$T_ENV"
          echo "mid:before${T_ENV}after"
          echo "v=$T_ENV" >> "$RUNNER_OUTPUT"
      - name: "named after ${{ steps.s.outputs.v }}"
        run: |
          echo "from-output=${{ steps.s.outputs.v }}"
          echo "failing with $T_ENV2" >&2
          exit 3
        env:
          T_ENV2: ${{ secrets.TOK }}
EOF
	run run --secret "TOK=$S" --json --junit "$T/junit.xml" --log-dir "$T/logs" p.yml
	expect_rc 1
	expect_file "$T/junit.xml"
	expect_file "$T/logs/summary.json"
	expect_not_leaked "$S" "$T/junit.xml" "$T/logs"
	# the output is there, masked
	expect_grep '"line":"direct=\*\*\*"' "$T/out"
	expect_grep 'env=\*\*\*$' "$T/err"
	expect_grep 'mid:before\*\*\*after' "$T/err"
	expect_grep 'from-output=\*\*\*' "$T/err"
	local log
	log=$(step_log leak 0 "$T/logs")
	expect_eq "log of step 1" "$(cat "$log" 2>/dev/null)" "direct=***
env=***
mid:before***after"
	expect_grep 'failing with \*\*\*' "$T/junit.xml"
	expect_eq "step 1 name in summary.json" "$(step_field leak 0 name "$T/logs/summary.json")" "show ***"
}

# A secret split across two writes (with a pause between them) is still masked.
t_mask_split_writes() {
	local S=Split-Secret-7Qx
	workflow <<'EOF'
jobs:
  j:
    steps:
      - env:
          S: ${{ secrets.SPLIT }}
        run: |
          printf '%s' "${S:0:6}"; sleep 0.2; printf '%s\n' "${S:6}"
          printf 'pre-%s' "${S:0:3}"; sleep 0.2; printf '%s' "${S:3:5}"; sleep 0.2; printf '%s-post\n' "${S:8}"
          printf '%s' "${S:0:14}"; sleep 0.2; printf '%s\n' "${S:14}"
          echo "${S:0:9}" not the secret
EOF
	run run --secret "SPLIT=$S" --json p.yml
	expect_rc 0
	expect_not_leaked "$S"
	expect_eq "log" "$(cat "$(step_log j 0)" 2>/dev/null)" "***
pre-***-post
***
${S:0:9} not the secret"
}

t_mask_base64() {
	local S=b64-Secret-Value-123
	workflow <<'EOF'
jobs:
  j:
    steps:
      - env:
          S: ${{ secrets.B }}
        run: |
          printf %s "$S" | base64
          printf %s "$S" | base64 | tr -d '=\n'; echo
          printf %s "$S" | base64 | tr '+/' '-_'
          printf 'x%s' "$S" | base64
          printf 'xy%s' "$S" | base64
          printf 'header:%s:trailer' "$S" | base64 -w 0; echo
EOF
	run run --secret "B=$S" p.yml
	expect_rc 0
	local pre enc
	for pre in "" x xy "header:"; do
		enc=$(printf '%s%s' "$pre" "$S" | base64 -w 0 | tr -d '=')
		# the characters that depend on the secret's bytes only: skip the prefix's block
		local core=${enc:$(((${#pre} + 2) / 3 * 4)):16}
		expect_not_leaked "$core"
	done
	expect_not_leaked "$(printf %s "$S" | base64 -w 0)"
	expect_grep '\*\*\*' "$T/out"
}

t_mask_url_encoded() {
	local S='p@ss w/rd+Zk9!&x'
	workflow <<'EOF'
jobs:
  j:
    steps:
      - env:
          S: ${{ secrets.U }}
        run: |
          python3 -c 'import os, urllib.parse as u; print("q=" + u.quote(os.environ["S"], safe=""))'
          python3 -c 'import os, urllib.parse as u; print("p=" + u.quote_plus(os.environ["S"]))'
          python3 -c 'import os, urllib.parse as u; print("url=https://h/x?a=" + u.quote(os.environ["S"], safe="") + "&b=1")'
EOF
	run run --secret "U=$S" p.yml
	expect_rc 0
	expect_not_leaked "$S"
	expect_not_leaked "p%40ss%20w%2Frd%2BZk9%21%26x"
	expect_not_leaked "p%40ss+w%2Frd%2BZk9%21%26x"
	expect_grep 'q=\*\*\*$' "$T/out"
	expect_grep 'p=\*\*\*$' "$T/out"
	expect_grep 'url=https://h/x\?a=\*\*\*&b=1$' "$T/out"
}

# A newline-free secret inside multi-line output: only it is masked, every line is kept.
t_mask_multiline_output() {
	local S=Multi-Line-Sec-42
	workflow <<'EOF'
jobs:
  j:
    steps:
      - env:
          S: ${{ secrets.M }}
        run: |
          printf 'line one\nprefix:%s:suffix\n%s\n\nlast %s%s line\n' "$S" "$S" "$S" "$S"
EOF
	run run --secret "M=$S" p.yml
	expect_rc 0
	expect_not_leaked "$S"
	expect_eq "log" "$(cat "$(step_log j 0)" 2>/dev/null)" "line one
prefix:***:suffix
***

last ****** line"
}

# A secret whose value has several lines: each of its lines is masked.
t_mask_multiline_secret() {
	local S1=first-line-AAAA S2=second-line-BBBB
	workflow <<'EOF'
jobs:
  j:
    steps:
      - env:
          S: ${{ secrets.ML }}
        run: |
          echo "$S"
          echo "only ${S%%$'\n'*} here"
EOF
	export RUNNER_SECRET_ML="$S1
$S2"
	run run p.yml
	unset RUNNER_SECRET_ML
	expect_rc 0
	expect_not_leaked "$S1"
	expect_not_leaked "$S2"
	# the whole value may become one *** or one per line; what follows stays
	local log
	log=$(cat "$(step_log j 0)" 2>/dev/null)
	case $log in
	"***
***
only *** here" | "***
only *** here") ;;
	*) fail "log: got '$log', expected '***' (or two), then 'only *** here'" ;;
	esac
}

# Secrets at the 64 KiB boundaries of reads and of long-line pieces are still masked.
t_mask_long_lines() {
	local S=LongSecret-1234
	workflow <<'EOF'
jobs:
  j:
    steps:
      - name: long
        env:
          S: ${{ secrets.L }}
        run: |
          python3 - <<'PY'
          import os, sys
          s = os.environ["S"]
          w = sys.stdout.write
          w("a" * 65530 + s + "b" * 10 + "\n")
          w("c" * 65536 + s + "\n")
          w("d" * 131065 + s + "\n")
          w("e" * (65536 - 7) + s)
          PY
EOF
	run run --secret "L=$S" --json p.yml
	expect_rc 0
	expect_not_leaked "$S"
	python3 - "$(step_log j 0)" >"$T/check" 2>&1 <<'EOF'
import sys
got = open(sys.argv[1], "rb").read()
want = (b"a" * 65530 + b"***" + b"b" * 10 + b"\n" + b"c" * 65536 + b"***\n" + b"d" * 131065 + b"***\n"
        + b"e" * (65536 - 7) + b"***")
if got.rstrip(b"\n") != want:
    print("log: %d bytes, expected %d; first difference at %d" % (len(got), len(want),
          next((i for i, (x, y) in enumerate(zip(got, want)) if x != y), min(len(got), len(want)))))
EOF
	[ -s "$T/check" ] && fail "$(cat "$T/check")"
}

# A secret that is also a matrix value: job instance names, summary.json and the names of the
# log files must not show it.
t_mask_matrix_value() {
	local S=MatrixSecret-77
	workflow <<'EOF'
jobs:
  b:
    matrix:
      v: [MatrixSecret-77, plain-value]
    steps:
      - run: echo "value ${{ matrix.v }}"
EOF
	run run --secret "M=$S" --json --junit "$T/junit.xml" p.yml
	expect_rc 0
	expect_not_leaked "$S" "$T/junit.xml"
	local named
	named=$(find "$T/.runner" -name "*$S*" 2>/dev/null | head -n 3)
	[ -z "$named" ] || fail "file names under .runner show the secret: ${named//"$T"\//}"
	expect_grep '"line":"value \*\*\*"' "$T/out"
}

t_short_secret_refused() {
	workflow <<EOF
jobs:
  j:
    steps:
      - run: touch "$T/ran"
EOF
	run run --secret SHORT=abc p.yml
	expect_rc 2
	expect_grep 'SHORT' "$T/err"
	expect_no_file "$T/ran"
	export RUNNER_SECRET_TINY=xyz
	run run p.yml
	unset RUNNER_SECRET_TINY
	expect_rc 2
	expect_grep 'TINY' "$T/err"
	expect_no_file "$T/ran"
	printf 'FSHORT=ab\n' >"$T/sec.env"
	run run --secret-file "$T/sec.env" p.yml
	expect_rc 2
	expect_no_file "$T/ran"
	run run --secret FOUR=abcd p.yml
	expect_rc 0
	expect_file "$T/ran"
}

# A secret reaches a step only where the workflow references it; RUNNER_SECRET_* variables of
# the runner's environment are secrets, not environment of the steps.
t_secret_only_where_referenced() {
	local A=alpha-secret-1111 B=bravo-secret-2222 X=xray-secret-3333
	workflow <<EOF
jobs:
  j:
    steps:
      - env:
          USE_A: \${{ secrets.A }}
        run: env > "$T/env1"
      - run: env > "$T/env2"
      - run: echo "\${{ secrets.X }}" > "$T/x3"
EOF
	export RUNNER_SECRET_X=$X
	run run --secret "A=$A" --secret "B=$B" p.yml
	unset RUNNER_SECRET_X
	expect_rc 0
	grep -q "^USE_A=$A\$" "$T/env1" 2>/dev/null || fail "step 1 did not get USE_A=$A"
	local f
	for f in env1 env2; do
		grep -qF -- "$B" "$T/$f" 2>/dev/null && fail "$f: the unreferenced secret B is in the step's environment"
		grep -qF -- "$X" "$T/$f" 2>/dev/null && fail "$f: the value of RUNNER_SECRET_X is in the step's environment"
		grep -q 'RUNNER_SECRET_' "$T/$f" 2>/dev/null && fail "$f: a RUNNER_SECRET_ variable is in the step's environment"
	done
	grep -qF -- "$A" "$T/env2" 2>/dev/null && fail "env2: secret A leaks into a step that does not reference it"
	expect_eq "secrets.X from RUNNER_SECRET_X" "$(cat "$T/x3" 2>/dev/null)" "$X"
}

t_secret_file() {
	cat >"$T/secrets.env" <<'EOF'
# comment line
export FILE_ONE=file-secret-one-111

FILE_TWO="file secret two 222"
FILE_THREE='single-quoted-333'
EOF
	workflow <<EOF
jobs:
  j:
    steps:
      - env:
          ONE: \${{ secrets.FILE_ONE }}
          TWO: \${{ secrets.FILE_TWO }}
          THREE: \${{ secrets.FILE_THREE }}
        run: |
          printf '%s|%s|%s\n' "\$ONE" "\$TWO" "\$THREE" > "$T/vals"
          printf '%s|%s|%s\n' "\$ONE" "\$TWO" "\$THREE"
EOF
	run run --secret-file "$T/secrets.env" p.yml
	expect_rc 0
	expect_eq "values in the step" "$(cat "$T/vals" 2>/dev/null)" "file-secret-one-111|file secret two 222|single-quoted-333"
	expect_grep '\| \*\*\*\|\*\*\*\|\*\*\*$' "$T/out"
	expect_not_leaked file-secret-one-111
	expect_not_leaked "file secret two 222"
	expect_not_leaked single-quoted-333
}

# ---- output streams ---------------------------------------------------------------------------

# A 10 MiB line: complete in the log file; cut into 64 KiB pieces in the event stream.
t_long_line() {
	workflow <<'EOF'
jobs:
  j:
    steps:
      - run: |
          echo before
          head -c 10485760 /dev/zero | tr '\0' y
          echo
          echo after
      - run: head -c 10485760 /dev/zero | tr '\0' z
EOF
	run run --json p.yml
	expect_rc 0
	local log1 log2
	log1=$(step_log j 0)
	log2=$(step_log j 1)
	python3 - "$log1" "$log2" "$T/out" >"$T/check" 2>&1 <<'EOF'
import json, sys
problems = []
a = open(sys.argv[1], "rb").read()
want = b"before\n" + b"y" * 10485760 + b"\nafter\n"
if a != want:
    problems.append("log 1: %d bytes, expected %d (before, 10 MiB of y, after)" % (len(a), len(want)))
b = open(sys.argv[2], "rb").read()
if b.rstrip(b"\n") != b"z" * 10485760 or len(b) - len(b.rstrip(b"\n")) > 1:
    problems.append("log 2: %d bytes, %d of them 'z', expected 10485760 'z' (and at most a newline)"
                    % (len(b), b.count(b"z")))
pieces = {0: [], 1: []}
for line in open(sys.argv[3], encoding="utf-8"):
    ev = json.loads(line)
    if ev["event"] == "output" and ev.get("job") == "j":
        pieces[ev["step_index"]].append((len(ev["line"].encode()), ev["partial"], ev["line"][:10]))
for i, ch in ((0, "y"), (1, "z")):
    ps = [p for p in pieces[i] if p[2].startswith(ch)]
    total = sum(p[0] for p in ps)
    if total != 10485760:
        problems.append("step %d: the pieces of the long line add up to %d bytes" % (i, total))
    if any(p[0] > 65536 for p in ps):
        problems.append("step %d: a piece is longer than 64 KiB" % i)
    if len(ps) != 160:
        problems.append("step %d: %d pieces, expected 160 of 64 KiB" % (i, len(ps)))
    if any(not p[1] for p in ps[:-1]):
        problems.append("step %d: a piece before the last one is not marked partial" % i)
if [p[2] for p in pieces[0] if not p[2].startswith("y")] != ["before", "after"]:
    problems.append("step 0: the short lines are %r" % [p[2] for p in pieces[0] if not p[2].startswith("y")])
if pieces[0] and pieces[0][-2][1]:
    problems.append("step 0: the last piece of the newline-terminated long line is marked partial")
if problems:
    print("\n".join(problems))
EOF
	[ -s "$T/check" ] && fail "$(cat "$T/check")"
}

# Binary output (NUL bytes, invalid UTF-8, control characters) passes through to the log file.
t_binary_output() {
	python3 -c '
import sys
blob = bytes(range(256)) * 4 + b"\x00\x00NUL\x00in the middle\n\xff\xfe\xfd\ntail\n"
sys.stdout.buffer.write(blob)' >"$T/blob"
	workflow <<EOF
jobs:
  j:
    steps:
      - run: cat "$T/blob"
      - run: echo still-running
EOF
	run run --json --junit "$T/j.xml" p.yml
	expect_rc 0
	cmp -s "$T/blob" "$(step_log j 0)" || fail "the log file differs from the bytes the step wrote ($(cmp "$T/blob" "$(step_log j 0)" 2>&1))"
	python3 -c 'import json,sys; [json.loads(l) for l in sys.stdin]' <"$T/out" 2>"$T/pyerr" || fail "--json output does not parse: $(tail -n 1 "$T/pyerr")"
	! command -v xmllint >/dev/null || xmllint --noout "$T/j.xml" 2>"$T/xmlerr" || fail "JUnit file is not valid XML: $(head -n 2 "$T/xmlerr")"
	expect_grep '"line":"still-running"' "$T/out"
}

# 1 GiB of output: memory stays bounded, the log file is exactly what the step wrote.
t_one_gigabyte() {
	if [ -n "${RUNNER_UNDER_VALGRIND:-}" ]; then
		skip "memory figures mean nothing under valgrind"
		return
	fi
	if [ ! -x /usr/bin/time ]; then
		skip "/usr/bin/time is missing"
		return
	fi
	workflow <<'EOF'
jobs:
  j:
    steps:
      - run: '{ yes "$(printf %099d 0 | tr 0 x)" || true; } | head -n 10737418'
EOF
	(cd "$T" && exec timeout -k 5 600 /usr/bin/time -f %M -o "$T/rss" "$RUNNER" run p.yml) >/dev/null 2>"$T/err" </dev/null
	RC=$?
	expect_rc 0
	local rss size log
	rss=$(tail -n 1 "$T/rss" 2>/dev/null)
	expect_le "peak RSS of the runner (KiB)" "${rss:-999999999}" 32768
	log=$(step_log j 0)
	size=$(stat -c %s "$log" 2>/dev/null)
	expect_eq "log file size" "${size:-missing}" 1073741800
	head -c 100 "$log" | grep -qx "$(printf '%099d' 0 | tr 0 x)" || fail "the log does not start with the step's line"
	note "peak RSS ${rss} KiB"
	rm -f "$log"
}

# --json: one JSON object per line on stdout, with the events and statuses of the run.
t_json_events() {
	workflow <<'EOF'
jobs:
  good:
    steps:
      - id: hello
        run: echo hi-json
  bad:
    needs: good
    steps:
      - run: exit 4
      - run: echo never
  after:
    needs: bad
    steps:
      - run: echo never-either
EOF
	run run --json p.yml
	expect_rc 1
	python3 - "$T/out" >"$T/check" 2>&1 <<'EOF'
import json, sys
p = []
evs = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
kinds = [e["event"] for e in evs]
if not evs or kinds[0] != "run_started" or kinds[-1] != "run_finished":
    p.append("first/last events: %r" % (kinds[:1] + kinds[-1:],))
for k in ("run_started", "job_started", "step_started", "output", "step_finished", "job_finished", "run_finished"):
    if k not in kinds:
        p.append("no %s event" % k)
if len({e.get("run_id") for e in evs}) != 1 or not evs[0].get("run_id"):
    p.append("run_id missing or not the same in every event")
def find(kind, **kw):
    return [e for e in evs if e["event"] == kind and all(e.get(k) == v for k, v in kw.items())]
if evs and evs[-1].get("status") != "failure":
    p.append("run_finished status %r" % evs[-1].get("status"))
started = sorted(e["job"] for e in find("job_started"))
if started != ["bad", "good"]:
    p.append("job_started for %r, expected bad and good" % started)
for job, st in (("good", "success"), ("bad", "failure"), ("after", "skipped")):
    f = find("job_finished", job=job)
    if [e.get("status") for e in f] != [st]:
        p.append("job_finished of %s: %r, expected [%r]" % (job, [e.get("status") for e in f], st))
if not find("output", job="good", step_index=0, line="hi-json"):
    p.append("no output event with the line hi-json")
sf = find("step_finished", job="good", step_index=0)
if [(e.get("status"), e.get("exit_code")) for e in sf] != [("success", 0)]:
    p.append("step_finished of good/0: %r" % sf)
sf = find("step_finished", job="bad", step_index=0)
if [(e.get("status"), e.get("exit_code")) for e in sf] != [("failure", 4)]:
    p.append("step_finished of bad/0: %r" % sf)
sf = find("step_finished", job="bad", step_index=1)
if [e.get("status") for e in sf] != ["skipped"]:
    p.append("step_finished of bad/1: %r" % sf)
if find("step_started", job="bad", step_index=1) or find("step_started", job="after"):
    p.append("a skipped step has a step_started event")
if not find("step_started", job="good", step_index=0, step_id="hello"):
    p.append("no step_started with step_id hello")
# order: a step's events between its job's start and finish
for job in ("good", "bad"):
    idx = [i for i, e in enumerate(evs) if e.get("job") == job]
    if evs[idx[0]]["event"] != "job_started" or evs[idx[-1]]["event"] != "job_finished":
        p.append("events of %s are not framed by job_started/job_finished" % job)
if p:
    print("\n".join(p))
EOF
	[ -s "$T/check" ] && fail "$(cat "$T/check")"
	expect_grep 'hi-json' "$T/err"
}

# --junit FILE: valid XML, a testsuite per job and a testcase per step, the right failures.
t_junit() {
	if ! command -v xmllint >/dev/null; then
		skip "xmllint is missing"
		return
	fi
	workflow <<'EOF'
jobs:
  a:
    steps:
      - run: echo a-ok
      - name: a-fails
        run: |
          echo "some <output> & more"
          exit 3
  b:
    steps:
      - name: b-fails
        run: exit 1
      - run: echo skipped
  c:
    steps:
      - run: echo c-ok
EOF
	run run --keep-going --junit "$T/report.xml" p.yml
	expect_rc 1
	expect_file "$T/report.xml"
	xmllint --noout "$T/report.xml" 2>"$T/xmlerr" || fail "xmllint: $(head -n 3 "$T/xmlerr")"
	python3 - "$T/report.xml" >"$T/check" 2>&1 <<'EOF'
import sys, xml.etree.ElementTree as ET
p = []
root = ET.parse(sys.argv[1]).getroot()
suites = root.findall("testsuite") if root.tag == "testsuites" else [root]
if sorted(s.get("name") for s in suites) != ["a", "b", "c"]:
    p.append("testsuites %r" % [s.get("name") for s in suites])
cases = [c for s in suites for c in s.findall("testcase")]
fails = [c for c in cases if c.find("failure") is not None]
if len(cases) != 5:
    p.append("%d testcases, expected 5" % len(cases))
import re
def plain(n):  # the step name, without a "02. " numbering
    return re.sub(r"^[0-9]+\.\s*", "", n or "")
if sorted(plain(c.get("name")) for c in fails) != ["a-fails", "b-fails"]:
    p.append("failed testcases %r" % [c.get("name") for c in fails])
if root.tag == "testsuites" and root.get("failures") != "2":
    p.append("testsuites failures=%r" % root.get("failures"))
if sum(int(s.get("failures", "0")) for s in suites) != 2:
    p.append("the testsuites' failures add up to %d" % sum(int(s.get("failures", "0")) for s in suites))
af = [c for c in fails if plain(c.get("name")) == "a-fails"]
if af and "some <output> & more" not in "".join(af[0].itertext()):
    p.append("the failure of a-fails does not carry its output")
if p:
    print("\n".join(p))
EOF
	[ -s "$T/check" ] && fail "$(cat "$T/check")"
}

# Colour only on a TTY, and never with --no-color or NO_COLOR.
t_no_color() {
	if ! command -v script >/dev/null; then
		skip "script(1) (util-linux) is missing: no TTY to test with"
		return
	fi
	workflow <<'EOF'
jobs:
  j:
    steps:
      - run: echo plain
      - run: exit 1
EOF
	local tty="script -qefc"
	(cd "$T" && exec timeout -k 5 60 $tty "$RUNNER run p.yml" /dev/null) >"$T/tty-default" 2>&1 </dev/null
	(cd "$T" && exec timeout -k 5 60 $tty "$RUNNER run --no-color p.yml" /dev/null) >"$T/tty-nocolor" 2>&1 </dev/null
	(cd "$T" && NO_COLOR=1 exec timeout -k 5 60 $tty "$RUNNER run p.yml" /dev/null) >"$T/tty-NO_COLOR" 2>&1 </dev/null
	run run p.yml
	expect_rc 1
	grep -q $'\033' "$T/tty-default" || fail "no escape codes on a TTY by default (is the TTY test working?)"
	local f
	for f in tty-nocolor tty-NO_COLOR out err; do
		grep -q $'\033' "$T/$f" && fail "$f: escape codes in the output"
		grep -q 'plain' "$T/$f" || [ "$f" = err ] || fail "$f: no step output"
	done
}

# --log-dir DIR: per-step logs and summary.json there, with the fields the SPEC names.
t_log_dir() {
	workflow <<'EOF'
jobs:
  j:
    steps:
      - name: printer
        run: |
          echo line-1
          echo line-2 >&2
      - name: busy
        run: |
          echo busy-start
          python3 - <<'PY'
          import time
          t = time.process_time()
          while time.process_time() - t < 0.4:
              pass
          PY
      - name: hog
        run: |
          python3 -c 'b = b"x" * (150 * 2**20); print(len(b))'
      - name: sleeper
        run: sleep 0.5; echo slept
      - name: failer
        continue-on-error: true
        run: |
          echo failing
          exit 5
EOF
	run run --log-dir logs-here p.yml
	expect_rc 0
	# the console: `job › step | line`
	expect_grep '^j › printer \| line-1$' "$T/out"
	expect_grep '^j › printer \| line-2$' "$T/out"
	local sum=$T/logs-here/summary.json
	expect_file "$sum"
	if [ -d "$T/.runner/logs" ] && [ -n "$(find "$T/.runner/logs" -type f)" ]; then
		fail "files under .runner/logs although --log-dir was given"
	fi
	python3 - "$sum" "$T/logs-here" >"$T/check" 2>&1 <<'EOF'
import json, os, sys
p = []
d = json.load(open(sys.argv[1]))
if d.get("status") != "success":
    p.append("run status %r" % d.get("status"))
steps = d["jobs"][0]["steps"]
if len(steps) != 5:
    p.append("%d steps" % len(steps))
for s in steps:
    for k, t in (("status", str), ("exit_code", int), ("attempts", int), ("duration_ms", int),
                 ("cpu_user_s", (int, float)), ("max_rss_kb", int)):
        if not isinstance(s.get(k), t) or isinstance(s.get(k), bool):
            p.append("step %s: %s is %r" % (s.get("name"), k, s.get(k)))
    if isinstance(s.get("max_rss_kb"), int) and s["max_rss_kb"] <= 0:
        p.append("step %s: max_rss_kb %r" % (s.get("name"), s["max_rss_kb"]))
    if s.get("attempts") != 1:
        p.append("step %s: attempts %r" % (s.get("name"), s.get("attempts")))
want = [("success", 0), ("success", 0), ("success", 0), ("success", 0), ("failure", 5)]
for s in steps:
    if not (isinstance(s.get("started_at"), str) and s["started_at"][:2] == "20"):
        p.append("step %s: started_at %r" % (s.get("name"), s.get("started_at")))
by = {s.get("name"): s for s in steps}
if by.get("hog", {}).get("max_rss_kb", 0) < 150 * 1024:
    p.append("hog (150 MiB): max_rss_kb %r" % by.get("hog", {}).get("max_rss_kb"))
if not 500 <= by.get("sleeper", {}).get("duration_ms", 0) < 30000:
    p.append("sleeper (sleep 0.5): duration_ms %r" % by.get("sleeper", {}).get("duration_ms"))
got = [(s.get("status"), s.get("exit_code")) for s in steps]
if got != want:
    p.append("statuses/exit codes %r, expected %r" % (got, want))
# the loop runs until its own process time (user + system) reaches 0.4 s: the tree's rusage
# must account for at least that much
if len(steps) > 1 and not (isinstance(steps[1].get("cpu_user_s"), (int, float)) and isinstance(steps[1].get("cpu_sys_s"), (int, float)) and steps[1]["cpu_user_s"] + steps[1]["cpu_sys_s"] >= 0.39):
    p.append("busy step: cpu_user_s %r + cpu_sys_s %r, expected >= 0.4 (the loop ran 0.4 s of process time)" % (steps[1].get("cpu_user_s"), steps[1].get("cpu_sys_s")))
logs = {}
for s in steps:
    path = os.path.join(sys.argv[2], s.get("log") or "MISSING")
    if not os.path.isfile(path):
        p.append("step %s: log %r is not a file in the log dir" % (s.get("name"), s.get("log")))
    else:
        logs[s["name"]] = open(path, "rb").read()
if logs.get("printer") not in (None, b"line-1\nline-2\n"):
    p.append("log of printer: %r" % logs.get("printer"))
if logs.get("failer") not in (None, b"failing\n"):
    p.append("log of failer: %r" % logs.get("failer"))
if p:
    print("\n".join(p))
EOF
	[ -s "$T/check" ] && fail "$(cat "$T/check")"
}

# The same --log-dir for two runs: the first leaves j's log file; in the second the step prints
# nothing, so its summary.json names no log although a file is at that path.
t_log_dir_reused() {
	workflow <<'EOF'
jobs:
  j:
    steps:
      - name: maybe
        run: '[ -z "${SAY:-}" ] || echo "$SAY"'
EOF
	run run --no-color --log-dir "$T/logs" --env SAY=hello p.yml
	expect_rc 0
	expect_eq "log of the first run" "$(cat "$(step_log j 0 "$T/logs")" 2>/dev/null)" hello
	run run --no-color --log-dir "$T/logs" p.yml
	expect_rc 0
	expect_eq "log field of the second run" "$(js "$T/logs/summary.json" 'd["jobs"][0]["steps"][0]["log"]')" null
}

add "secrets masked in console, logs, summary.json, --json and --junit" t_mask_everywhere
add "secret split across writes is masked" t_mask_split_writes
add "base64 forms of a secret are masked" t_mask_base64
add "URL-encoded forms of a secret are masked" t_mask_url_encoded
add "secret inside multi-line output: masked, lines kept" t_mask_multiline_output
add "each line of a multi-line secret is masked" t_mask_multiline_secret
add "secret at 64 KiB read and line-piece boundaries is masked" t_mask_long_lines
add "secret that is a matrix value: not in job names, summary.json, log file names" t_mask_matrix_value
add "secrets under 4 characters are refused (exit 2)" t_short_secret_refused
add "a secret reaches a step only where referenced; RUNNER_SECRET_* not in env" t_secret_only_where_referenced
add "--secret-file (dotenv) values reach the step and are masked" t_secret_file
add "10 MiB line arrives complete in the log, 64 KiB pieces in events" t_long_line
add "binary output with NUL bytes lands in the log unchanged" t_binary_output
add "1 GiB of output: runner RSS < 32 MiB, log size exact" t_one_gigabyte
add "--json: every line parses, events and statuses right" t_json_events
add "--junit: valid XML, right testcases and failure count" t_junit
add "--no-color and NO_COLOR: no escape codes" t_no_color
add "--log-dir: per-step logs and summary.json with status, exit code, attempts, time, CPU, RSS" t_log_dir
add "--log-dir used twice: a silent step names no log, not the last run's" t_log_dir_reused
run_all
