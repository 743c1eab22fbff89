#!/usr/bin/env python3
"""http_sink.py - a scripted HTTP server for the upload tests (Python 3 standard library only).

    http_sink.py PORT_FILE LOG_FILE

Listens on 127.0.0.1 on a free port and, once it accepts connections, writes the port to
PORT_FILE (atomically: tests wait for the file). Every request is appended to LOG_FILE, a JSON
array rewritten atomically, as {"path", "method", "size", "sha256", "content_type",
"authorization", "headers", "multipart": [{"name", "filename", "size", "sha256"}]}: sha256 and
size are those of the body as received, or of the file part for multipart/form-data. Bodies are
hashed while they are read (a PUT of any size costs no memory); multipart bodies are parsed in
memory.

Behaviour by the first path segment (the rest of the path is free, e.g. /flaky/t3):
  /ok...      200 "ok"
  /flaky...   503 for the first two requests of that exact path, then 200
  /reject...  403 "denied: bad token"
  /echo...    401 with the request's headers echoed in the body (masking tests)
  /slow...    reads the request, then never answers (until the server stops)
  anything else: 404
"""
import hashlib
import http.server
import json
import os
import sys
import threading

PORT_FILE, LOG_FILE = sys.argv[1], sys.argv[2]
lock = threading.Lock()
log = []
counts = {}
stop = threading.Event()


def write_atomic(path, text):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def parse_multipart(body, ctype):
    boundary = None
    for param in ctype.split(";")[1:]:
        k, _, v = param.strip().partition("=")
        if k.lower() == "boundary":
            boundary = v.strip('"')
    if not boundary:
        return []
    parts = []
    delim = b"--" + boundary.encode()
    for chunk in body.split(delim)[1:]:
        if chunk.startswith(b"--"):
            break
        chunk = chunk[2:] if chunk.startswith(b"\r\n") else chunk
        head, _, content = chunk.partition(b"\r\n\r\n")
        if content.endswith(b"\r\n"):
            content = content[:-2]
        name = filename = None
        for line in head.decode("latin-1").split("\r\n"):
            k, _, v = line.partition(":")
            if k.strip().lower() != "content-disposition":
                continue
            for param in v.split(";")[1:]:
                pk, _, pv = param.strip().partition("=")
                if pk == "name":
                    name = pv.strip('"')
                elif pk == "filename":
                    filename = pv.strip('"')
        parts.append({"name": name, "filename": filename, "size": len(content),
                      "sha256": hashlib.sha256(content).hexdigest()})
    return parts


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, and 100-continue for curl's Expect header

    def log_message(self, fmt, *args):
        pass

    def read_body(self):
        """Yield the body in chunks (Content-Length or chunked)."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                n = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if n == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return
                left = n
                while left:
                    b = self.rfile.read(min(left, 1 << 16))
                    if not b:
                        return
                    left -= len(b)
                    yield b
                self.rfile.readline()
        else:
            left = int(self.headers.get("Content-Length") or 0)
            while left > 0:
                b = self.rfile.read(min(left, 1 << 16))
                if not b:
                    return
                left -= len(b)
                yield b

    def answer(self, status, text, close=False):
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        if close:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def handle_request(self):
        ctype = self.headers.get("Content-Type", "")
        entry = {"path": self.path, "method": self.command, "content_type": ctype,
                 "authorization": self.headers.get("Authorization"),
                 "headers": {k: v for k, v in self.headers.items()}, "multipart": []}
        h = hashlib.sha256()
        size = 0
        keep = ctype.lower().startswith("multipart/form-data")
        kept = []
        for b in self.read_body():
            h.update(b)
            size += len(b)
            if keep:
                kept.append(b)
        entry["size"], entry["sha256"] = size, h.hexdigest()
        if keep:
            entry["multipart"] = parse_multipart(b"".join(kept), ctype)
        with lock:
            log.append(entry)
            write_atomic(LOG_FILE, json.dumps(log, indent=1))
            counts[self.path] = counts.get(self.path, 0) + 1
            n = counts[self.path]
        kind = self.path.split("?")[0].strip("/").split("/")[0]
        if kind == "ok":
            self.answer(200, "ok\n")
        elif kind == "flaky":
            if n <= 2:
                self.answer(503, "try again later (%d)\n" % n)
            else:
                self.answer(200, "ok after %d\n" % n)
        elif kind == "reject":
            self.answer(403, "denied: bad token\n")
        elif kind == "echo":
            self.answer(401, "".join("%s: %s\n" % kv for kv in self.headers.items()))
        elif kind == "slow":
            stop.wait()
            self.close_connection = True
        else:
            self.answer(404, "no such path\n")

    do_PUT = do_POST = do_GET = handle_request


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


def main():
    srv = Server(("127.0.0.1", 0), Handler)  # bound and listening once constructed
    write_atomic(LOG_FILE, "[]")
    write_atomic(PORT_FILE, "%d\n" % srv.server_address[1])
    try:
        srv.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()


if __name__ == "__main__":
    main()
