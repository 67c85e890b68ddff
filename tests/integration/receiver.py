#!/usr/bin/env python3
"""receiver.py: a real HTTP callback receiver on loopback for the tests.

Usage:
    python3 receiver.py [serve] --port-file F --log L [--port 0] [--host 127.0.0.1]
    python3 receiver.py post --base URL --n N --callback URL [--iterations I]
                             [--concurrency C] [--rate R] [--sync] --out FILE
    python3 receiver.py wait --log L --count N [--timeout S]
    python3 receiver.py dupes --log L

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

Test-side helpers (same file, so every test finds them next to lib.sh):
    post   POSTs N /async jobs (input_data "job-<i>-<salt>") to BASE with
           keep-alive connections, C at a time, optionally paced to R per
           second; with --sync also POSTs /sync for the same input. Writes
           one line per accepted job to FILE: "<id> <accept unix time>
           <input_data> <sync result or ->". Exits 1 when any answer was
           not 202 (or not 200 for /sync), printing the counts.
    wait   waits until the log holds N distinct webhook-ids (exit 0), or
           the timeout passes (exit 1); prints the count.
    dupes  prints "<requests> <distinct webhook-ids>" of the log.

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
    # Headers and body leave in two writes; with Nagle on, the body waits
    # for the client's delayed ACK (~40 ms) and the test measures that.
    disable_nagle_algorithm = True
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

    def handle_error(self, request, client_address):
        # A client that gives up (timeout, cap reached, killed deliverer)
        # resets its connection: expected here, not worth a traceback.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


def cmd_serve(argv):
    global LOG, PORT
    ap = argparse.ArgumentParser(prog="receiver.py serve")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    a = ap.parse_args(argv)
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


def cmd_post(argv):
    import http.client
    import urllib.parse
    ap = argparse.ArgumentParser(prog="receiver.py post")
    ap.add_argument("--base", required=True)
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--callback", required=True)
    ap.add_argument("--iterations", type=int, default=1)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--rate", type=float, default=0.0)
    ap.add_argument("--sync", action="store_true")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    u = urllib.parse.urlsplit(a.base)
    salt = "%x" % int(time.time() * 1000)
    lock = threading.Lock()
    nxt = [0]
    bad = {}
    lines = []
    t0 = time.time()

    def conn():
        return http.client.HTTPConnection(u.hostname, u.port, timeout=30)

    def post(c, path, body):
        for _ in range(3):  # a dropped keep-alive connection: reconnect once or twice
            try:
                c.request("POST", path, body=body, headers={"Content-Type": "application/json"})
                r = c.getresponse()
                return c, r.status, r.read()
            except (http.client.HTTPException, OSError):
                c.close()
                c = conn()
        return c, 0, b""

    def worker():
        c = conn()
        while True:
            with lock:
                i = nxt[0]
                nxt[0] += 1
            if i >= a.n:
                break
            if a.rate > 0:
                delay = t0 + i / a.rate - time.time()
                if delay > 0:
                    time.sleep(delay)
            inp = "job-%d-%s" % (i, salt)
            body = json.dumps({"input_data": inp, "iterations": a.iterations,
                               "callback_url": a.callback})
            c, st, data = post(c, "/async", body)
            t_acc = time.time()
            if st != 202:
                with lock:
                    bad["async %d" % st] = bad.get("async %d" % st, 0) + 1
                continue
            rid = json.loads(data)["request_id"]
            res = "-"
            if a.sync:
                c, st, data = post(c, "/sync", json.dumps({"input_data": inp,
                                                           "iterations": a.iterations}))
                if st == 200:
                    res = json.loads(data)["result"]
                else:
                    with lock:
                        bad["sync %d" % st] = bad.get("sync %d" % st, 0) + 1
            with lock:
                lines.append("%s %.6f %s %s\n" % (rid, t_acc, inp, res))
        c.close()

    ts = [threading.Thread(target=worker) for _ in range(max(1, a.concurrency))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    with open(a.out, "w") as f:
        f.writelines(lines)
    if bad:
        print("post: accepted %d of %d; other answers: %s" % (len(lines), a.n, bad))
        return 1
    return 0


def distinct_ids(path):
    ids, total = set(), 0
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    e = json.loads(line)
                except ValueError:
                    continue
                total += 1
                ids.add(e["headers"].get("webhook-id"))
    except FileNotFoundError:
        pass
    return total, len(ids)


def cmd_wait(argv):
    ap = argparse.ArgumentParser(prog="receiver.py wait")
    ap.add_argument("--log", required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--timeout", type=float, default=60.0)
    a = ap.parse_args(argv)
    end = time.time() + a.timeout
    while True:
        _, n = distinct_ids(a.log)
        if n >= a.count or time.time() >= end:
            print(n)
            return 0 if n >= a.count else 1
        time.sleep(0.2)


def cmd_dupes(argv):
    ap = argparse.ArgumentParser(prog="receiver.py dupes")
    ap.add_argument("--log", required=True)
    a = ap.parse_args(argv)
    total, n = distinct_ids(a.log)
    print(total, n)
    return 0


def main():
    argv = sys.argv[1:]
    cmds = {"serve": cmd_serve, "post": cmd_post, "wait": cmd_wait, "dupes": cmd_dupes}
    if argv and argv[0] in cmds:
        return cmds[argv[0]](argv[1:])
    return cmd_serve(argv)


if __name__ == "__main__":
    sys.exit(main())
