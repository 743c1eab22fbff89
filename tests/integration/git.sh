#!/usr/bin/env bash
# Integration tests of the checkout step (libgit2 through the mirror cache): the real binary as
# `runner __step checkout FILE` and `runner run`, against repositories built here with the git
# CLI and served over a path, file://, git:// (git daemon) and http:// (git http-backend behind
# a small Python server, with and without Basic auth). TAP output; see lib.sh.
#   git.sh RUNNER_BINARY
. "$(dirname "$0")/lib.sh"

need_tools git python3

# Isolation from the caller's git and cache configuration: every test uses $ROOT/home.
git_home
REPOS=$ROOT/repos # served by every transport
WORK=$ROOT/work
TOKEN=tok-$RANDOM$RANDOM-s3cr3t-$$

# ---- fixtures ---------------------------------------------------------------------------------

# lib (2 commits) and app: README one/two, tags v0.9 (light) and v1.0 (annotated), branch
# feature, then main gets the submodule vendor/lib -> ../lib.git (relative: works on every
# transport). Bare copies in $REPOS.
make_repos() {
	mkdir -p "$REPOS" "$WORK"
	(
		set -e
		cd "$WORK"
		git init -q -b main lib
		cd lib
		echo lib1 >lib.txt
		git add .
		git commit -qm lib1
		echo lib2 >>lib.txt
		git commit -qam lib2
		cd ..
		git clone -q --bare lib "$REPOS/lib.git"
		git init -q --bare -b main "$REPOS/app.git"
		git clone -q "$REPOS/app.git" app 2>/dev/null
		cd app
		echo one >README
		git add .
		git commit -qm one
		git tag v0.9
		echo two >README
		mkdir -p src
		echo 'int main(void) { return 0; }' >src/main.c
		git add .
		git commit -qm two
		git tag -a v1.0 -m 'release 1.0'
		git checkout -qb feature
		echo feat >feature.txt
		git add .
		git commit -qm feat
		git checkout -q main
		git -c protocol.file.allow=always submodule add -q ../lib.git vendor/lib
		git commit -qm 'add lib'
		git push -q origin main feature --tags
	)
}

rev() { # REPO REV: the commit sha
	git -C "$1" rev-parse "$2^{commit}"
}

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

port_open() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

SERVER_PIDS=()
stop_servers() {
	local p
	for p in "${SERVER_PIDS[@]}"; do
		kill "$p" 2>/dev/null
	done
	for p in "${SERVER_PIDS[@]}"; do
		wait "$p" 2>/dev/null
	done
	SERVER_PIDS=()
}
trap 'stop_servers; _cleanup' EXIT

# git daemon on a free port of 127.0.0.1 serving $REPOS; GIT_PORT once it accepts connections.
GIT_PORT=
start_git_daemon() {
	local try i
	for try in 1 2 3 4 5; do
		GIT_PORT=$(free_port)
		git daemon --reuseaddr --listen=127.0.0.1 --port="$GIT_PORT" --base-path="$REPOS" --export-all \
			"$REPOS" >"$ROOT/git-daemon.log" 2>&1 &
		local pid=$!
		for i in $(seq 200); do
			port_open "$GIT_PORT" && { SERVER_PIDS+=("$pid"); return 0; }
			alive "$pid" || break
			sleep 0.05
		done
		kill "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	GIT_PORT=
	return 1
}

# A small HTTP server running `git http-backend` for each request (chunked request bodies
# included); with a token it requires Basic auth with that token as the password; with
# $GIT_HTTP_TLS (a PEM file: certificate chain and key) it speaks https. It binds port 0 and
# writes the port to PORTFILE once it listens.
cat >"$ROOT/git_http.py" <<'PY'
import base64, os, ssl, subprocess, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

root, portfile, token = sys.argv[1], sys.argv[2], (sys.argv[3] if len(sys.argv) > 3 else "")

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.command, self.path))

    def body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def reply(self, status, headers, payload):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def serve(self):
        data = self.body() if self.command == "POST" else b""
        if token:
            auth = self.headers.get("Authorization", "")
            ok = False
            if auth.startswith("Basic "):
                user, _, password = base64.b64decode(auth[6:]).decode("utf-8", "replace").partition(":")
                ok = password == token
            if not ok:
                self.reply(401, [("WWW-Authenticate", 'Basic realm="git"')], b"")
                return
        path, _, query = self.path.partition("?")
        env = dict(os.environ, GIT_PROJECT_ROOT=root, GIT_HTTP_EXPORT_ALL="1", PATH_INFO=path,
                   QUERY_STRING=query, REQUEST_METHOD=self.command, REMOTE_USER="user",
                   REMOTE_ADDR="127.0.0.1", CONTENT_TYPE=self.headers.get("Content-Type", ""),
                   CONTENT_LENGTH=str(len(data)))
        for h in ("Content-Encoding", "Git-Protocol"):
            if self.headers.get(h):
                env["HTTP_" + h.upper().replace("-", "_")] = self.headers[h]
        out = subprocess.run(["git", "http-backend"], input=data, env=env, capture_output=True).stdout
        sep = out.find(b"\r\n\r\n")
        head, payload = (out[:sep], out[sep + 4:]) if sep >= 0 else out.split(b"\n\n", 1)
        status, headers = 200, []
        for line in head.replace(b"\r\n", b"\n").split(b"\n"):
            k, _, v = line.decode("latin-1").partition(":")
            if k.lower() == "status":
                status = int(v.split()[0])
            elif k:
                headers.append((k, v.strip()))
        self.reply(status, headers, payload)

    do_GET = serve
    do_POST = serve

server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
if os.environ.get("GIT_HTTP_TLS"):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.environ["GIT_HTTP_TLS"])
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
with open(portfile + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(portfile + ".tmp", portfile)
server.serve_forever()
PY

# start_http NAME [TOKEN]: the server; its port in HTTP_PORT_<NAME>.
start_http() {
	local name=$1 tok=${2:-} pf=$ROOT/http-$1.port i
	rm -f "$pf"
	python3 "$ROOT/git_http.py" "$REPOS" "$pf" $tok 2>"$ROOT/http-$name.log" &
	local pid=$!
	export -n GIT_HTTP_TLS
	SERVER_PIDS+=("$pid")
	for i in $(seq 400); do
		if [ -s "$pf" ] && port_open "$(cat "$pf")"; then
			printf -v "HTTP_PORT_$name" '%s' "$(cat "$pf")"
			return 0
		fi
		alive "$pid" || return 1
		sleep 0.05
	done
	return 1
}

make_repos || { echo "1..0 # SKIP cannot build the test repositories"; exit 0; }
start_git_daemon || echo "# git daemon did not start: the git:// tests will fail" >&2
start_http open || echo "# the http server did not start" >&2
start_http auth "$TOKEN" || echo "# the http server with auth did not start" >&2
# https: a CA of the test's own signs the server's certificate for localhost
SYSTEM_CA=/etc/ssl/certs/ca-certificates.crt # libgit2's default CA bundle on Debian
make_tls() {
	mkdir -p "$ROOT/tls" && cd "$ROOT/tls" || return 1
	openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=runner-test-ca \
		-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null &&
		openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj /CN=localhost 2>/dev/null &&
		printf 'subjectAltName=DNS:localhost\n' >ext &&
		openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile ext -out srv.pem 2>/dev/null &&
		cat srv.pem srv.key >server.pem
	local rc=$?
	cd - >/dev/null || return 1
	return $rc
}
HTTPS_PORT_tls=
if command -v openssl >/dev/null && make_tls; then
	export GIT_HTTP_TLS=$ROOT/tls/server.pem
	start_http tls || echo "# the https server did not start" >&2
fi
GIT_URL=git://127.0.0.1:$GIT_PORT
HTTPS_URL=https://localhost:${HTTP_PORT_tls:-0}
HTTP_URL=http://127.0.0.1:${HTTP_PORT_open:-0}
AUTH_URL=http://127.0.0.1:${HTTP_PORT_auth:-0}

# ---- helpers ----------------------------------------------------------------------------------

# co JSON [DEST_DIR]: run `runner __step checkout` with {"with": JSON} and the workspace $T/ws
# (output in $T/out and $T/err, status in RC).
co() {
	mkdir -p "$T/ws"
	printf '{"with": %s}\n' "$1" >"$T/step.json"
	: >"$T/outputs"
	RUNNER_WORKSPACE=$T/ws RUNNER_OUTPUT=$T/outputs run __step checkout "$T/step.json"
}

# expect_head DIR SHA: DIR is a clean checkout detached at SHA.
expect_head() {
	expect_eq "HEAD of ${1#"$T"/}" "$(git -C "$1" rev-parse HEAD 2>&1)" "$2"
	expect_eq "HEAD detached" "$(git -C "$1" symbolic-ref -q HEAD || echo detached)" detached
	expect_eq "status of ${1#"$T"/}" "$(git -C "$1" status --porcelain 2>&1 | head -n 3)" ""
}

# The mirrors in the cache (not lock files).
mirrors() {
	find "${1:-$XDG_CACHE_HOME}/runner/git" -mindepth 1 -maxdepth 1 -type d -name '*.git' 2>/dev/null
}

# in_ca_ns CA_FILE CMD...: CMD in a mount namespace of its own where CA_FILE is the system's CA
# bundle (1 if that cannot be arranged: needs root or an unprivileged user namespace).
in_ca_ns() {
	local ca=$1
	shift
	unshare -m true 2>/dev/null || unshare -rm true 2>/dev/null || return 1
	local u=-m
	unshare -m true 2>/dev/null || u=-rm
	unshare $u sh -c 'mount --bind "$0" "$1" && shift && exec "$@"' "$ca" "$SYSTEM_CA" "$@"
}

# ---- cases ------------------------------------------------------------------------------------

t_branch_by_path() {
	co "{\"repo\": \"$REPOS/app.git\", \"ref\": \"feature\", \"path\": \"x\"}"
	expect_rc 0
	expect_head "$T/ws/x" "$(rev "$REPOS/app.git" feature)"
	expect_eq "feature.txt" "$(cat "$T/ws/x/feature.txt" 2>&1)" feat
	expect_eq "origin" "$(git -C "$T/ws/x" remote get-url origin 2>&1)" "$REPOS/app.git"
	expect_grep "^sha=$(rev "$REPOS/app.git" feature)\$" "$T/outputs"
	expect_grep '^ref=refs/heads/feature$' "$T/outputs"
	expect_grep '^branch=feature$' "$T/outputs"
	expect_grep "checkout: .* at $(rev "$REPOS/app.git" feature) \(refs/heads/feature\) in x" "$T/out"
}

t_tag_by_file_url() {
	co "{\"repo\": \"file://$REPOS/app.git\", \"ref\": \"v1.0\", \"path\": \"vendor/x\"}"
	expect_rc 0
	expect_head "$T/ws/vendor/x" "$(rev "$REPOS/app.git" v1.0)"
	expect_eq "README at v1.0" "$(cat "$T/ws/vendor/x/README" 2>&1)" two
	expect_no_file "$T/ws/vendor/x/feature.txt"
	expect_grep '^ref=refs/tags/v1.0$' "$T/outputs"
	expect_grep '^branch=$' "$T/outputs"
	expect_eq "origin" "$(git -C "$T/ws/vendor/x" remote get-url origin 2>&1)" "file://$REPOS/app.git"
}

t_full_sha_over_git_daemon() {
	local sha
	sha=$(rev "$REPOS/app.git" v0.9)
	co "{\"repo\": \"$GIT_URL/app.git\", \"ref\": \"$sha\"}"
	expect_rc 0
	expect_head "$T/ws/app" "$sha" # default path: the repository's name
	expect_eq "README at v0.9" "$(cat "$T/ws/app/README" 2>&1)" one
	expect_eq "origin" "$(git -C "$T/ws/app" remote get-url origin 2>&1)" "$GIT_URL/app.git"
	expect_grep '^ref='"$sha"'$' "$T/outputs"
	# not a TTY: one summary line
	expect_grep "^$GIT_URL/app.git: fetched [0-9]+ objects \([0-9]+ KiB\) in [0-9.]+ s\$" "$T/out"
}

t_short_sha_over_http() {
	local sha
	sha=$(rev "$REPOS/app.git" feature)
	co "{\"repo\": \"$HTTP_URL/app.git\", \"ref\": \"${sha:0:8}\", \"path\": \"short\"}"
	expect_rc 0
	expect_head "$T/ws/short" "$sha"
	expect_grep "^$HTTP_URL/app.git: fetched [0-9]+ objects" "$T/out"
}

# libgit2 would parse the system's CA bundle when it starts (~8 ms); the runner puts that off
# until a fetch over https (runner/gitca.h). That fetch must still verify the server: it works
# with the test's CA in the bundle, and fails (certificate) with the real system bundle.
t_https_verified() {
	if [ -z "$HTTP_PORT_tls" ] || [ ! -f "$SYSTEM_CA" ] || ! in_ca_ns "$ROOT/tls/ca.pem" true; then
		skip "needs openssl, $SYSTEM_CA and a mount namespace"
		return
	fi
	local sha
	sha=$(rev "$REPOS/app.git" feature)
	mkdir -p "$T/ws"
	printf '{"with": {"repo": "%s/app.git", "ref": "feature", "path": "s"}}\n' "$HTTPS_URL" >"$T/step.json"
	: >"$T/outputs"
	(cd "$T" && RUNNER_WORKSPACE=$T/ws RUNNER_OUTPUT=$T/outputs in_ca_ns "$ROOT/tls/ca.pem" \
		timeout -k 5 "$RNIT_TIMEOUT" "$RUNNER" __step checkout "$T/step.json") >"$T/out" 2>"$T/err" </dev/null
	RC=$?
	expect_rc 0
	expect_head "$T/ws/s" "$sha"
	expect_grep "^$HTTPS_URL/app.git: fetched [0-9]+ objects" "$T/out"
	# the system's bundle does not know the test's CA: refused, nothing checked out
	co "{\"repo\": \"$HTTPS_URL/app.git\", \"path\": \"t\"}"
	expect_rc 3
	expect_grep "certificate" "$T/err"
	expect_no_file "$T/ws/t/README"
}

t_default_branch_over_http() {
	co "{\"repo\": \"$HTTP_URL/app.git\", \"path\": \"d\"}"
	expect_rc 0
	expect_head "$T/ws/d" "$(rev "$REPOS/app.git" main)"
	expect_grep '^branch=main$' "$T/outputs"
	expect_eq "origin/HEAD" "$(git -C "$T/ws/d" rev-parse --abbrev-ref origin/HEAD 2>&1)" origin/main
	expect_eq "tags" "$(git -C "$T/ws/d" tag | tr '\n' ' ')" "v0.9 v1.0 "
}

# A second checkout updates the same mirror (a commit pushed in between is fetched; the
# directory is not cloned again: same inode, a marker file survives).
t_mirror_reused() {
	export XDG_CACHE_HOME=$T/cache
	git clone -q --bare "$REPOS/app.git" "$REPOS/reuse.git"
	git clone -q "$REPOS/reuse.git" "$T/src" 2>/dev/null
	co "{\"repo\": \"$GIT_URL/reuse.git\", \"ref\": \"main\", \"path\": \"one\"}"
	expect_rc 0
	local m ino1 ino2
	m=$(mirrors)
	expect_eq "number of mirrors" "$(mirrors | wc -l)" 1
	expect_file "$m.lock"
	touch "$m/marker"
	ino1=$(stat -c %i "$m")
	(cd "$T/src" && echo three >README && git commit -qam three && git push -q origin main)
	co "{\"repo\": \"$GIT_URL/reuse.git\", \"ref\": \"main\", \"path\": \"two\"}"
	expect_rc 0
	expect_head "$T/ws/two" "$(rev "$REPOS/reuse.git" main)"
	expect_eq "README" "$(cat "$T/ws/two/README" 2>&1)" three
	ino2=$(stat -c %i "$m" 2>&1)
	expect_eq "mirror inode" "$ino2" "$ino1"
	expect_file "$m/marker"
	expect_eq "number of mirrors" "$(mirrors | wc -l)" 1
	expect_grep "fetched [1-9][0-9]* objects" "$T/out" # only the new ones
	expect_no_grep "fetched [1-9][0-9][0-9]+ objects" "$T/out"
	export XDG_CACHE_HOME=$ROOT/cache
}

t_submodules() {
	co "{\"repo\": \"$GIT_URL/app.git\", \"ref\": \"main\", \"path\": \"s\", \"submodules\": true}"
	expect_rc 0
	expect_head "$T/ws/s" "$(rev "$REPOS/app.git" main)"
	expect_eq "vendor/lib/lib.txt" "$(head -n 1 "$T/ws/s/vendor/lib/lib.txt" 2>&1)" lib1
	expect_eq "submodule HEAD" "$(git -C "$T/ws/s/vendor/lib" rev-parse HEAD 2>&1)" "$(rev "$REPOS/lib.git" main)"
	expect_eq "submodule status" "$(git -C "$T/ws/s" submodule status 2>&1 | cut -c 1-41)" \
		" $(rev "$REPOS/lib.git" main)"
	expect_eq "submodule url (relative, resolved)" "$(git -C "$T/ws/s/vendor/lib" remote get-url origin 2>&1)" \
		"$GIT_URL/lib.git"
	# without submodules: an empty directory
	co "{\"repo\": \"$GIT_URL/app.git\", \"ref\": \"main\", \"path\": \"n\"}"
	expect_rc 0
	expect_eq "vendor/lib without submodules" "$(ls -A "$T/ws/n/vendor/lib" 2>&1)" ""
}

t_submodules_over_http() {
	co "{\"repo\": \"$HTTP_URL/app.git\", \"path\": \"s\", \"submodules\": true}"
	expect_rc 0
	expect_eq "vendor/lib/lib.txt" "$(head -n 1 "$T/ws/s/vendor/lib/lib.txt" 2>&1)" lib1
	expect_eq "submodule url" "$(git -C "$T/ws/s/vendor/lib" remote get-url origin 2>&1)" "$HTTP_URL/lib.git"
}

t_bad_ref() {
	co "{\"repo\": \"$GIT_URL/app.git\", \"ref\": \"no-such-branch\", \"path\": \"b\"}"
	expect_rc 1
	expect_grep "ref 'no-such-branch' not found in $GIT_URL/app.git" "$T/err"
	expect_no_file "$T/ws/b"
	co "{\"repo\": \"$REPOS/app.git\", \"ref\": \"deadbeef\", \"path\": \"b\"}"
	expect_rc 1
	expect_grep "ref 'deadbeef' not found in $REPOS/app.git" "$T/err"
}

t_unreachable_host() {
	local port
	port=$(free_port) # bound and closed again: nothing listens there
	co "{\"repo\": \"git://127.0.0.1:$port/app.git\", \"path\": \"u\"}"
	expect_rc 3
	expect_grep "git://127.0.0.1:$port/app.git.*(failed to connect|Connection refused)" "$T/err"
	co "{\"repo\": \"http://127.0.0.1:$port/app.git\", \"path\": \"u\"}"
	expect_rc 3
	expect_grep "http://127.0.0.1:$port/app.git" "$T/err"
	expect_no_file "$T/ws/u"
	co "{\"repo\": \"$ROOT/no/such/repo.git\", \"path\": \"u\"}"
	expect_rc 3
}

t_http_auth() {
	# no token
	co "{\"repo\": \"$AUTH_URL/app.git\", \"path\": \"a\"}"
	expect_rc 3
	expect_grep "authentication required by $AUTH_URL/app.git: set RUNNER_GIT_TOKEN" "$T/err"
	# a wrong token
	RUNNER_GIT_TOKEN=wrong-token-value co "{\"repo\": \"$AUTH_URL/app.git\", \"path\": \"a\"}"
	expect_rc 3
	expect_grep "authentication failed for $AUTH_URL/app.git" "$T/err"
	expect_no_file "$T/ws/a"
	# the right one
	RUNNER_GIT_TOKEN=$TOKEN co "{\"repo\": \"$AUTH_URL/app.git\", \"ref\": \"v1.0\", \"path\": \"a\"}"
	expect_rc 0
	expect_head "$T/ws/a" "$(rev "$REPOS/app.git" v1.0)"
	expect_no_grep "$TOKEN" "$T/out" "$T/err" "$T/outputs"
	expect_no_grep "$TOKEN" "$T/ws/a/.git/config"
	# the token in the URL: shown as ***, not kept in the checkout's config
	export XDG_CACHE_HOME=$T/cache2
	co "{\"repo\": \"http://x-access-token:$TOKEN@127.0.0.1:$HTTP_PORT_auth/app.git\", \"path\": \"u\"}"
	expect_rc 0
	expect_grep "http://x-access-token:\*\*\*@127.0.0.1:$HTTP_PORT_auth/app.git" "$T/out"
	expect_no_grep "$TOKEN" "$T/out" "$T/err" "$T/outputs"
	expect_eq "origin without the password" "$(git -C "$T/ws/u" remote get-url origin 2>&1)" \
		"http://x-access-token@127.0.0.1:$HTTP_PORT_auth/app.git"
	expect_no_grep "$TOKEN" "$(mirrors "$T/cache2")/config" "$T/ws/u/.git/config"
	# a wrong password in the URL and no RUNNER_GIT_TOKEN: refused, the password masked
	co "{\"repo\": \"http://x-access-token:wrong-$TOKEN@127.0.0.1:$HTTP_PORT_auth/app.git\", \"path\": \"w\"}"
	expect_rc 3
	expect_grep "authentication failed for http://x-access-token:\*\*\*@127.0.0.1:$HTTP_PORT_auth/app.git: the server refused the password in the URL" "$T/err"
	expect_no_grep "$TOKEN" "$T/out" "$T/err"
	export XDG_CACHE_HOME=$ROOT/cache
}

# Two checkouts of the same URL at once into a fresh cache: both succeed, one mirror.
t_parallel_same_url() {
	export XDG_CACHE_HOME=$T/cache
	mkdir -p "$T/ws"
	local i pids=()
	for i in 1 2 3; do
		printf '{"with": {"repo": "%s", "ref": "main", "path": "p%s", "submodules": true}}\n' "$HTTP_URL/app.git" "$i" >"$T/s$i.json"
		(cd "$T" && RUNNER_WORKSPACE=$T/ws exec timeout -k 5 120 "$RUNNER" __step checkout "$T/s$i.json") \
			>"$T/out$i" 2>"$T/err$i" </dev/null &
		pids+=($!)
	done
	for i in 1 2 3; do
		wait "${pids[$((i - 1))]}"
		expect_eq "exit status of checkout $i" "$?" 0
		expect_head "$T/ws/p$i" "$(rev "$REPOS/app.git" main)"
		expect_eq "submodule of checkout $i" "$(head -n 1 "$T/ws/p$i/vendor/lib/lib.txt" 2>&1)" lib1
	done
	expect_eq "mirrors" "$(mirrors | wc -l)" 2 # app and lib
	export XDG_CACHE_HOME=$ROOT/cache
}

# While another process holds the mirror's lock, a checkout waits (and says so), then goes on
# once the lock is released.
t_lock_waits() {
	export XDG_CACHE_HOME=$T/cache
	co "{\"repo\": \"$GIT_URL/lib.git\", \"path\": \"first\"}"
	expect_rc 0
	local m
	m=$(mirrors)
	# the holder: flock(1) on the lock file, running a marked sleep
	flock "$m.lock" "$SLEEPER" 1000 &
	local holder=$!
	wait_for 10 sh -c "! flock -n '$m.lock' true" || fail "the lock holder did not take the lock"
	printf '{"with": {"repo": "%s", "path": "second"}}\n' "$GIT_URL/lib.git" >"$T/s.json"
	mkdir -p "$T/ws"
	RUNNER_WORKSPACE=$T/ws start_bg __step checkout "$T/s.json"
	wait_for 20 grep -q "waiting for another process" "$T/out" || fail "no 'waiting' message"
	expect_no_file "$T/ws/second"
	alive "$RPID" || fail "the checkout ended while the lock was held"
	kill_marked "$MARK" # flock(1) and its sleep, which shares the lock
	wait "$holder" 2>/dev/null
	wait_bg 60
	expect_rc 0
	expect_head "$T/ws/second" "$(rev "$REPOS/lib.git" main)"
	export XDG_CACHE_HOME=$ROOT/cache
}

t_dest_in_the_way() {
	mkdir -p "$T/ws/mine"
	echo precious >"$T/ws/mine/file"
	co "{\"repo\": \"$REPOS/app.git\", \"path\": \"mine\"}"
	expect_rc 1
	expect_grep "mine exists and is not empty" "$T/err"
	expect_eq "the user's file" "$(cat "$T/ws/mine/file")" precious
	# an earlier checkout is replaced
	co "{\"repo\": \"$REPOS/app.git\", \"ref\": \"v0.9\", \"path\": \"again\"}"
	expect_rc 0
	echo scratch >"$T/ws/again/scratch"
	co "{\"repo\": \"$REPOS/app.git\", \"ref\": \"feature\", \"path\": \"again\"}"
	expect_rc 0
	expect_head "$T/ws/again" "$(rev "$REPOS/app.git" feature)"
	expect_no_file "$T/ws/again/scratch"
	# outside the workspace
	co "{\"repo\": \"$REPOS/app.git\", \"path\": \"../escape\"}"
	expect_rc 2
	expect_no_file "$T/escape"
}

t_depth_warning() {
	co "{\"repo\": \"$GIT_URL/app.git\", \"path\": \"shallow\", \"depth\": 1, \"submodules\": true}"
	expect_rc 0
	expect_eq "depth warnings" "$(grep -c 'depth is not supported by libgit2 1\.[0-9]*; fetching full history' "$T/out")" 1
	expect_head "$T/ws/shallow" "$(rev "$REPOS/app.git" main)"
}

# A TTY gets one line updated in place instead of the summary.
t_progress_on_tty() {
	command -v script >/dev/null || { skip "script(1) is not installed"; return; }
	export XDG_CACHE_HOME=$T/cache
	mkdir -p "$T/ws"
	printf '{"with": {"repo": "%s", "path": "t"}}\n' "$GIT_URL/app.git" >"$T/s.json"
	RUNNER_WORKSPACE=$T/ws script -qec "'$RUNNER' __step checkout '$T/s.json'" /dev/null >"$T/out" 2>&1 </dev/null
	RC=$?
	expect_rc 0
	expect_grep $'\r.*receiving objects [0-9]+/[0-9]+' "$T/out"
	expect_grep "fetched [0-9]+ objects" "$T/out"
	export XDG_CACHE_HOME=$ROOT/cache
}

# Through `runner run`: a checkout step, then a run step that looks at the files and HEAD.
t_workflow() {
	git init -q "$T"
	local sha
	sha=$(rev "$REPOS/app.git" v1.0)
	workflow <<EOF
jobs:
  build:
    steps:
      - id: co
        checkout: {repo: "file://$REPOS/app.git", ref: v1.0, path: vendor/x}
      - run: |
          test -f vendor/x/src/main.c
          test "\$(cat vendor/x/README)" = two
          test "\$(git -C vendor/x rev-parse HEAD)" = "$sha"
          test "\${{ steps.co.outputs.sha }}" = "$sha"
          test "\${{ steps.co.outputs.ref }}" = refs/tags/v1.0
          echo checked-ok
EOF
	run run --no-color p.yml
	expect_rc 0
	expect_grep "checked-ok" "$T/out"
	expect_grep "checkout: file://$REPOS/app.git at $sha" "$T/out"
	expect_eq "HEAD" "$(git -C "$T/vendor/x" rev-parse HEAD 2>&1)" "$sha"
	# a bad ref fails the job (exit 1), an unreachable repository too, with the step's status 3
	workflow <<EOF
jobs:
  bad:
    steps:
      - checkout: {repo: "file://$REPOS/app.git", ref: v9.9, path: vendor/y}
EOF
	run run --no-color p.yml
	expect_rc 1
	expect_grep "ref 'v9.9' not found" "$T/out"
	expect_eq "exit code of the step" "$(step_field bad 0 exit_code "$(ls -t "$T"/.runner/logs/*/summary.json | head -n 1)")" 1
}

add "branch from a path" t_branch_by_path
add "tag from a file:// URL" t_tag_by_file_url
add "full sha over git://" t_full_sha_over_git_daemon
add "short sha over http://" t_short_sha_over_http
add "default branch over http://" t_default_branch_over_http
add "https: CA certificates loaded when needed, server verified" t_https_verified
add "second checkout reuses the mirror" t_mirror_reused
add "submodules over git://" t_submodules
add "submodules over http://" t_submodules_over_http
add "bad ref: exit 1 with a clear message" t_bad_ref
add "unreachable host: exit 3" t_unreachable_host
add "http auth with RUNNER_GIT_TOKEN, never printed" t_http_auth
add "parallel checkouts of one URL" t_parallel_same_url
add "a held mirror lock makes a checkout wait" t_lock_waits
add "destination in the way, earlier checkout replaced" t_dest_in_the_way
add "depth: one warning, full history" t_depth_warning
add "progress line on a TTY" t_progress_on_tty
add "checkout step in a workflow" t_workflow
run_all
