#!/usr/bin/env python3
"""receiver.py: a real HTTP callback receiver on loopback for the tests.

Usage:
    python3 receiver.py --port-file F --log L [--port 0] [--host 127.0.0.1]

It binds (port 0 picks a free one), writes the port to F once it listens,
and appends one JSON line per request to L, at arrival (before answering):
    {"t": <unix seconds, float>, "path": "/ok", "method": "POST",
     "headers": {"webhook-id": "...", ...}, "body": "<the body as text>"}
Header names are lowercased. Stop it with SIGTERM.

What it answers is chosen by the callback URL's path, so one receiver serves
every case of a test:
    /ok, anything else          200 {"ok":true}
    /status/CODE                CODE (e.g. /status/500, /status/410)
    /seq/C1,C2,...              per request (X-Request-ID, else webhook-id),
                                the n-th call answers Cn; the last repeats
                                (e.g. /seq/500,500,200)
    /retry-after/CODE/SECS      CODE with "Retry-After: SECS"
    /hang[/SECS]                sleeps SECS (default 30, at most 120), then 200
    /slow/MS                    sleeps MS milliseconds, then 200
    /close                      closes the connection without answering
    /redirect                   302 to http://127.0.0.1:<this port>/ok
    /big/MIB                    200 with MIB MiB of body, streamed
Any path may carry a suffix after "~" that is ignored (e.g. /ok~job17), so
tests can tell callbacks apart by URL.

Examples:
    python3 receiver.py --port-file $T/rport --log $T/recv.jsonl &
    port=$(cat $T/rport)     # wait for the file first
    url="http://127.0.0.1:$port/seq/500,500,200"
"""
import argparse
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
COUNTS = {}
LOG = None
PORT = 0


def record(handler, body):
    entry = {
        "t": time.time(),
        "path": handler.path,
        "method": handler.command,
        "headers": {k.lower(): v for k, v in handler.headers.items()},
        "body": body.decode("utf-8", "replace"),
    }
    line = json.dumps(entry) + "\n"
    with LOCK:
        LOG.write(line)
        LOG.flush()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real receiver
    server_version = "consuma-test-receiver"

    def log_message(self, fmt, *args):  # quiet
        pass

    def answer(self, code, body=b'{"ok":true}', extra=None):
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.handle_any(b"")

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(min(n, 1 << 20)) if n > 0 else b""
        self.handle_any(body)

    def handle_any(self, body):
        record(self, body)
        path = self.path.split("?", 1)[0].split("~", 1)[0]
        parts = [p for p in path.split("/") if p]
        try:
            self.route(parts)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def route(self, parts):
        kind = parts[0] if parts else "ok"
        if kind == "status" and len(parts) >= 2:
            self.answer(int(parts[1]))
        elif kind == "seq" and len(parts) >= 2:
            codes = [int(c) for c in parts[1].split(",") if c]
            key = (self.path.split("~", 1)[0],
                   self.headers.get("X-Request-ID") or self.headers.get("webhook-id") or "")
            with LOCK:
                n = COUNTS.get(key, 0)
                COUNTS[key] = n + 1
            self.answer(codes[min(n, len(codes) - 1)])
        elif kind == "retry-after" and len(parts) >= 3:
            self.answer(int(parts[1]), extra={"Retry-After": parts[2]})
        elif kind == "hang":
            secs = float(parts[1]) if len(parts) >= 2 else 30.0
            time.sleep(max(0.0, min(secs, 120.0)))
            self.answer(200)
        elif kind == "slow" and len(parts) >= 2:
            time.sleep(max(0.0, min(float(parts[1]) / 1000.0, 120.0)))
            self.answer(200)
        elif kind == "close":
            self.close_connection = True
            try:
                self.connection.shutdown(2)
            except OSError:
                pass
        elif kind == "redirect":
            self.answer(302, b"", {"Location": "http://127.0.0.1:%d/ok" % PORT})
        elif kind == "big" and len(parts) >= 2:
            mib = max(0, min(int(parts[1]), 1024))
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(mib << 20))
            self.end_headers()
            chunk = b"x" * 65536
            for _ in range(mib * 16):
                self.wfile.write(chunk)
        else:
            self.answer(200)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    allow_reuse_address = True


def main():
    global LOG, PORT
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    a = ap.parse_args()
    LOG = open(a.log, "a", encoding="utf-8")
    srv = Server((a.host, a.port), Handler)
    PORT = srv.server_address[1]
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % PORT)
    os.replace(tmp, a.port_file)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=srv.shutdown).start())
    srv.serve_forever(poll_interval=0.5)
    LOG.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
