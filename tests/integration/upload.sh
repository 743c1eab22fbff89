#!/usr/bin/env bash
# Integration tests of the `upload` step against a real HTTP server (http_sink.py, started once
# for this file): PUT and multipart POST streaming, retries on 503, refusals (403), connection
# errors, secrets in headers, a 50 MB upload in bounded memory, a server that never answers,
# and `upload: {artifact}` in local runs. TAP output; see lib.sh.
#   upload.sh RUNNER_BINARY
. "$(dirname "$0")/lib.sh"

HERE=$(cd "$(dirname "$0")" && pwd)
SINK_DIR=$ROOT/sink
SINK_PID=
PORT=

stop_sink() {
	if [ -n "$SINK_PID" ]; then
		kill "$SINK_PID" 2>/dev/null
		wait "$SINK_PID" 2>/dev/null
		SINK_PID=
	fi
}
trap 'stop_sink; _cleanup' EXIT

# Start the sink and wait for its port file (the event), with a generous safety limit.
start_sink() {
	mkdir -p "$SINK_DIR"
	python3 "$HERE/http_sink.py" "$SINK_DIR/port" "$SINK_DIR/log.json" 2>"$SINK_DIR/stderr" &
	SINK_PID=$!
	local i
	for i in $(seq 600); do
		[ -s "$SINK_DIR/port" ] && break
		kill -0 "$SINK_PID" 2>/dev/null || break
		sleep 0.05
	done
	PORT=$(cat "$SINK_DIR/port" 2>/dev/null)
	if [ -z "$PORT" ]; then
		echo "Bail out! the HTTP sink did not start: $(cat "$SINK_DIR/stderr")"
		exit 1
	fi
}
start_sink
URL=http://127.0.0.1:$PORT

# A TCP port on 127.0.0.1 that nothing listens on (bound by the kernel, then closed).
closed_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Requests the sink logged for PATH, as a python expression over the list `r`, e.g.
#   sink PATH 'len(r)'    sink PATH 'r[0]["sha256"]'
sink() {
	js "$SINK_DIR/log.json" "(lambda r: $2)([e for e in d if e['path'] == '$1'])"
}


# Fails if the fixed string $1 occurs in the console output or any file of the log dir.
expect_not_leaked() {
	local s=$1 f hits=
	while IFS= read -r f; do
		grep -aqF -- "$s" "$f" && hits="$hits ${f#"$T"/}"
	done < <(find "$T/out" "$T/err" "$T/.runner" -type f 2>/dev/null)
	[ -z "$hits" ] || fail "'$s' appears in:$hits"
}

# ---- cases ------------------------------------------------------------------------------------

t_put_ok() {
	head -c 1234567 /dev/urandom >data.bin
	workflow <<EOF
jobs:
  up:
    steps:
      - upload: {path: data.bin, url: "$URL/ok/put-$MARK"}
EOF
	run run p.yml
	expect_rc 0
	expect_eq "requests" "$(sink "/ok/put-$MARK" 'len(r)')" 1
	expect_eq "method" "$(sink "/ok/put-$MARK" 'r[0]["method"]')" PUT
	expect_eq "bytes received" "$(sink "/ok/put-$MARK" 'r[0]["size"]')" 1234567
	expect_eq "sha256 received" "$(sink "/ok/put-$MARK" 'r[0]["sha256"]')" "$(sha data.bin)"
	expect_eq "step status" "$(step_field up 0 status)" success
	# one line with the size, the sha256 and the status
	expect_grep "upload: data.bin \(1234567 bytes, sha256 $(sha data.bin)\) -> PUT $URL/ok/put-$MARK: HTTP 200" \
		"$(step_log up 0)"
}

t_post_multipart() {
	mkdir -p sub
	head -c 700000 /dev/urandom >sub/report.tgz
	workflow <<EOF
jobs:
  up:
    steps:
      - upload: {path: sub/report.tgz, url: "$URL/ok/post-$MARK", method: POST}
EOF
	run run p.yml
	expect_rc 0
	local p=/ok/post-$MARK
	expect_eq "requests" "$(sink "$p" 'len(r)')" 1
	expect_eq "method" "$(sink "$p" 'r[0]["method"]')" POST
	expect_eq "content type" "$(sink "$p" 'r[0]["content_type"].split(";")[0]')" multipart/form-data
	expect_eq "parts" "$(sink "$p" 'len(r[0]["multipart"])')" 1
	expect_eq "part name" "$(sink "$p" 'r[0]["multipart"][0]["name"]')" file
	expect_eq "part filename" "$(sink "$p" 'r[0]["multipart"][0]["filename"]')" report.tgz
	expect_eq "part size" "$(sink "$p" 'r[0]["multipart"][0]["size"]')" 700000
	expect_eq "part sha256" "$(sink "$p" 'r[0]["multipart"][0]["sha256"]')" "$(sha sub/report.tgz)"
	expect_grep "POST $URL/ok/post-$MARK: HTTP 200" "$(step_log up 0)"
}

t_retry_503() {
	head -c 300000 /dev/urandom >data.bin
	workflow <<EOF
jobs:
  up:
    steps:
      - upload: {path: data.bin, url: "$URL/flaky/$MARK"}
EOF
	run run p.yml
	expect_rc 0
	expect_eq "requests" "$(sink "/flaky/$MARK" 'len(r)')" 3
	expect_eq "every attempt sent the whole file" \
		"$(sink "/flaky/$MARK" 'sorted(set(e["sha256"] for e in r))')" "[\"$(sha data.bin)\"]"
	expect_eq "step status" "$(step_field up 0 status)" success
	local log
	log=$(step_log up 0)
	expect_grep "attempt 1 of [0-9]+ failed: HTTP 503" "$log"
	expect_grep "attempt 2 of [0-9]+ failed: HTTP 503" "$log"
	expect_grep "HTTP 200 \(attempt 3 of" "$log"
}

t_reject_403() {
	echo hello >data.txt
	workflow <<EOF
jobs:
  up:
    steps:
      - upload: {path: data.txt, url: "$URL/reject/$MARK"}
      - run: echo "ran-\$((6 * 7))"
EOF
	run run p.yml
	expect_rc 1
	expect_eq "requests (no retry on 4xx)" "$(sink "/reject/$MARK" 'len(r)')" 1
	expect_eq "step exit code" "$(step_field up 0 exit_code)" 1
	expect_eq "step status" "$(step_field up 0 status)" failure
	expect_grep "HTTP 403" "$(step_log up 0)"
	expect_grep "denied: bad token" "$(step_log up 0)"
	expect_grep "denied: bad token" "$T/out" "$T/err"
	expect_no_grep "ran-42" "$T/out" "$T/err"
}

t_connection_refused() {
	local port
	port=$(closed_port)
	echo hello >data.txt
	workflow <<EOF
jobs:
  up:
    steps:
      - upload: {path: data.txt, url: "http://127.0.0.1:$port/ok"}
EOF
	run run p.yml
	expect_rc 1
	expect_eq "step exit code (infrastructure)" "$(step_field up 0 exit_code)" 3
	local log
	log=$(step_log up 0)
	expect_grep "attempt 1 of 4 failed" "$log"
	expect_grep "attempt 3 of 4 failed" "$log"
	expect_no_grep "attempt 4 of 4 failed" "$log"
	expect_grep "gave up after 4 attempts" "$log"
	expect_grep "(onnect|refused)" "$log"
}

t_secret_header() {
	local tok=tok-9Xq2-secret-Zr71 visible=plain-header-value-5531
	echo payload >data.txt
	workflow <<EOF
jobs:
  up:
    steps:
      - upload:
          path: data.txt
          url: "$URL/ok/auth-$MARK"
          headers:
            Authorization: "Bearer \${{ secrets.T }}"
            X-Plain: $visible
      - name: server echoes the headers back in a 401
        upload:
          path: data.txt
          url: "$URL/echo/auth-$MARK"
          headers: {Authorization: "Bearer \${{ secrets.T }}"}
EOF
	run run --secret "T=$tok" --keep-going p.yml
	expect_rc 1
	expect_eq "Authorization received" "$(sink "/ok/auth-$MARK" 'r[0]["authorization"]')" "Bearer $tok"
	expect_eq "X-Plain received" "$(sink "/ok/auth-$MARK" 'r[0]["headers"]["X-Plain"]')" "$visible"
	expect_eq "Authorization received (echo)" "$(sink "/echo/auth-$MARK" 'r[0]["authorization"]')" "Bearer $tok"
	expect_eq "first step" "$(step_field up 0 status)" success
	expect_eq "second step exit code" "$(step_field up 1 exit_code)" 1
	# the refusal's body is shown (masked), the header values never are by the step itself
	expect_grep "Authorization: Bearer \*\*\*" "$(step_log up 1)"
	expect_not_leaked "$tok"
	expect_not_leaked "$visible"
}

t_streaming_50mb() {
	if [ -n "${RUNNER_UNDER_VALGRIND:-}" ]; then
		skip "memory figures mean nothing under valgrind"
		return
	fi
	head -c $((50 * 1024 * 1024)) /dev/urandom >big.bin
	workflow <<EOF
jobs:
  up:
    steps:
      - upload: {path: big.bin, url: "$URL/ok/big-$MARK"}
      - upload: {path: big.bin, url: "$URL/ok/bigpost-$MARK", method: POST}
EOF
	(cd "$T" && exec timeout -k 5 "$RNIT_TIMEOUT" /usr/bin/time -f %M -o "$T/rss" "$RUNNER" run p.yml) \
		>"$T/out" 2>"$T/err" </dev/null
	RC=$?
	expect_rc 0
	expect_eq "sha256 received (PUT)" "$(sink "/ok/big-$MARK" 'r[0]["sha256"]')" "$(sha big.bin)"
	expect_eq "sha256 received (POST part)" "$(sink "/ok/bigpost-$MARK" 'r[0]["multipart"][0]["sha256"]')" \
		"$(sha big.bin)"
	local rss
	rss=$(tail -n 1 "$T/rss")
	note "peak RSS of the run: $rss KB; of the steps: $(step_field up 0 max_rss_kb) KB, $(step_field up 1 max_rss_kb) KB"
	expect_le "peak RSS of the run (KB)" "$rss" 40960
	expect_le "peak RSS of the PUT step (KB)" "$(step_field up 0 max_rss_kb)" 40960
	expect_le "peak RSS of the POST step (KB)" "$(step_field up 1 max_rss_kb)" 40960
	rm -f big.bin
}

t_slow_server_timeout() {
	echo payload >data.txt
	workflow <<EOF
jobs:
  up:
    steps:
      - upload: {path: data.txt, url: "$URL/slow/$MARK"}
        timeout: 2s
        grace: 1s
EOF
	local t0
	t0=$(now)
	run run p.yml
	expect_rc 1
	expect_eq "requests" "$(sink "/slow/$MARK" 'len(r)')" 1
	expect_eq "step status" "$(step_field up 0 status)" "timed out"
	expect_le "duration (ms)" "$(elapsed_ms "$t0" "$(now)")" 20000
	no_leftover "__step upload"
}

t_missing_file() {
	workflow <<EOF
jobs:
  up:
    steps:
      - upload: {path: nope.bin, url: "$URL/ok/missing-$MARK"}
EOF
	run run p.yml
	expect_rc 1
	expect_eq "step exit code" "$(step_field up 0 exit_code)" 1
	expect_grep "nope.bin: no such file" "$(step_log up 0)"
	expect_eq "requests" "$(sink "/ok/missing-$MARK" 'len(r)')" 0
}

t_bad_url() {
	echo x >data.txt
	workflow <<EOF
jobs:
  up:
    steps:
      - upload: {path: data.txt, url: "ftp://127.0.0.1:$PORT/ok"}
EOF
	run run p.yml
	expect_rc 1
	expect_eq "step exit code" "$(step_field up 0 exit_code)" 2
	expect_grep "unsupported URL scheme 'ftp'" "$(step_log up 0)"
}

t_artifact_local() {
	mkdir -p dist
	echo one >dist/a.txt
	workflow <<'EOF'
jobs:
  build:
    steps:
      - package: {name: dist, paths: ["dist/**"]}
      - upload: {artifact: dist}
EOF
	run run p.yml
	expect_rc 0
	local store
	store=$(find "$T/.runner/artifacts" -name dist.json -printf '%h\n' | head -n 1)
	expect_file "$store/dist.tar.gz"
	expect_grep "upload: artifact 'dist' \(tar.gz, [0-9]+ bytes, sha256 $(sha "$store/dist.tar.gz")\) is in the local store: $store/dist.tar.gz" \
		"$(step_log build 1)"
}

t_artifact_missing() {
	workflow <<'EOF'
jobs:
  build:
    steps:
      - upload: {artifact: nothing-here}
EOF
	run run p.yml
	expect_rc 1
	expect_eq "step exit code" "$(step_field build 0 exit_code)" 1
	expect_grep "no artifact named 'nothing-here'" "$(step_log build 0)"
}

t_artifact_damaged() {
	mkdir -p dist
	echo one >dist/a.txt
	workflow <<'EOF'
jobs:
  build:
    steps:
      - package: {name: dist, paths: ["dist/**"]}
      - run: echo garbage >> "$RUNNER_ARTIFACTS/dist.tar.gz"
      - upload: {artifact: dist}
EOF
	run run p.yml
	expect_rc 1
	expect_eq "step exit code" "$(step_field build 2 exit_code)" 1
	expect_grep "artifact 'dist' is damaged" "$(step_log build 2)"
}

add "PUT streams the file; the server receives the same bytes" t_put_ok
add "POST sends multipart/form-data with the file as a part" t_post_multipart
add "503 twice, then success: three requests, retried with backoff" t_retry_503
add "403: no retry, exit 1, the server's message in the log" t_reject_403
add "connection refused: retries, then exit 3" t_connection_refused
add "a secret in a header reaches the server, never the output" t_secret_header
add "50 MB PUT and POST stream in bounded memory (< 40 MB RSS)" t_streaming_50mb
add "a server that never answers: the step timeout ends the step" t_slow_server_timeout
add "a missing file fails the step (exit 1), no request" t_missing_file
add "a non-http URL is refused (exit 2)" t_bad_url
add "upload {artifact} in a local run: found and verified" t_artifact_local
add "upload {artifact} of an artifact that does not exist: exit 1" t_artifact_missing
add "upload {artifact} of a damaged artifact: exit 1" t_artifact_damaged
run_all
