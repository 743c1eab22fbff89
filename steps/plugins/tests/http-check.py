#!/usr/bin/env python3
"""Tests of the example plugin runner-step-http-check on its own (no runner): started the way
the runner starts it (the JSON document on stdin, RUNNER_OUTPUT), against a real HTTP server
run by this test in a thread. TAP output.
    http-check.py [PLUGIN]    (default: ../runner-step-http-check next to this file)
"""
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PLUGIN = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "runner-step-http-check")


class Handler(http.server.BaseHTTPRequestHandler):
    counts = {}
    seen_headers = {}

    def answer(self, with_body):
        n = Handler.counts[self.path] = Handler.counts.get(self.path, 0) + 1
        Handler.seen_headers[self.path] = dict(self.headers)
        if self.path == "/ok":
            code, body = 200, b"all ok"
        elif self.path == "/third":  # 503 twice, then 200
            code, body = (503, b"wait") if n <= 2 else (200, b"ready")
        elif self.path == "/teapot":
            code, body = 418, b"short and stout"
        else:
            code, body = 404, b"no"
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def do_GET(self):
        self.answer(True)

    def do_HEAD(self):
        self.answer(False)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
BASE = "http://127.0.0.1:%d" % server.server_address[1]
results = []


def run(inputs, protocol=1, args=()):
    """(exit status, output, outputs dict, seconds) of one plugin run."""
    with tempfile.NamedTemporaryFile("r", suffix=".out") as out:
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        env["RUNNER_OUTPUT"] = out.name
        t0 = time.monotonic()
        p = subprocess.run([PLUGIN, *args], input=json.dumps({"protocol": protocol, "inputs": inputs}),
                           capture_output=True, text=True, env=env, timeout=120)
        took = time.monotonic() - t0
        outputs = dict(line.rstrip("\n").split("=", 1) for line in open(out.name) if "=" in line)
    return p.returncode, p.stdout + p.stderr, outputs, took


def check(name, cond, detail=""):
    results.append((name, bool(cond), detail))


# --describe: its schema
p = subprocess.run([PLUGIN, "--describe"], capture_output=True, text=True, timeout=60)
d = json.loads(p.stdout) if p.returncode == 0 else {}
check("--describe prints its schema", d.get("protocol") == 1 and d["inputs"]["required"] == ["url"]
      and d["inputs"]["additionalProperties"] is False and "status" in d["inputs"]["properties"], p.stdout)

rc, out, outputs, _ = run({"url": BASE + "/ok", "contains": "ok"})
check("200 with the text: exit 0", rc == 0 and "attempt 1: HTTP 200" in out, out)
check("outputs status and attempts", outputs.get("status") == "200" and outputs.get("attempts") == "1", outputs)

rc, out, outputs, _ = run({"url": BASE + "/third", "interval": "50ms", "timeout": "30s"})
check("503, 503, 200: three attempts", rc == 0 and outputs.get("attempts") == "3"
      and out.count("HTTP 503") == 2, out)

rc, out, outputs, took = run({"url": BASE + "/missing", "interval": "100ms", "timeout": 1})
check("404 until the timeout: exit 1 after about 1 s", rc == 1 and 0.9 <= took < 30
      and "did not answer 200 within 1s" in out, "rc=%d took=%.2f %s" % (rc, took, out))
check("outputs of a failure", outputs.get("status") == "404" and int(outputs.get("attempts", 0)) >= 2, outputs)

rc, out, _, _ = run({"url": BASE + "/teapot", "status": 418, "timeout": "5s"})
check("an expected status other than 200", rc == 0, out)

rc, out, _, _ = run({"url": BASE + "/ok", "contains": "nope", "interval": "100ms", "timeout": "300ms"})
check("the body without the text: exit 1", rc == 1 and "does not contain" in out, out)

rc, out, _, _ = run({"url": BASE + "/ok", "method": "HEAD", "headers": {"X-Token": "hidden-value-42"}})
check("HEAD with headers", rc == 0 and Handler.seen_headers["/ok"].get("X-Token") == "hidden-value-42", out)
check("header values are not printed", "hidden-value-42" not in out, out)

# nothing listens on a closed port: connection refused is retried, then exit 1
closed = http.server.HTTPServer(("127.0.0.1", 0), Handler)
port = closed.server_address[1]
closed.server_close()
rc, out, _, _ = run({"url": "http://127.0.0.1:%d/" % port, "interval": "100ms", "timeout": "500ms"})
check("connection refused until the timeout: exit 1", rc == 1 and "attempt 2" in out, out)

rc, out, _, _ = run({"url": "http://us%%40er:pa55word@127.0.0.1:%d/ok" % server.server_address[1], "timeout": "5s"})
check("user:password in the URL become Basic auth", rc == 0 and Handler.seen_headers["/ok"].get("Authorization")
      == "Basic dXNAZXI6cGE1NXdvcmQ=", out)
check("the URL is printed without its password", "pa55word" not in out and "127.0.0.1" in out, out)

for inputs, why in [({}, "'url' is required"), ({"url": "ftp://x/"}, "http:// or https://"),
                    ({"url": BASE, "timeout": "soon"}, "'timeout' must be a duration"),
                    ({"url": BASE, "status": "two hundred"}, "'status' must be a whole number"),
                    ({"url": BASE, "method": "POST"}, "'method' must be GET or HEAD"),
                    ({"url": BASE, "colour": "red"}, "unknown input 'colour'")]:
    rc, out, _, _ = run(inputs)
    check("bad inputs (%s): exit 2" % why, rc == 2 and why in out, out)
rc, out, _, _ = run({"url": BASE + "/ok"}, protocol=2)
check("another protocol: exit 2", rc == 2 and "protocol" in out, out)

server.shutdown()
for i, (name, ok, detail) in enumerate(results, 1):
    print("%s %d - %s" % ("ok" if ok else "not ok", i, name))
    if not ok:
        for line in str(detail).splitlines()[-15:]:
            print("# " + line)
print("1..%d" % len(results))
sys.exit(0 if all(ok for _, ok, _ in results) else 1)
