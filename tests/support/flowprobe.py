"""Long-lived HTTP/1.1 keep-alive connections to a VIP, for lbfwd's end-to-end
tests (tests/src/probe.rs drives it).

Opens every connection, asks once on each, and prints one JSON line
{"event": "ready", "conns": [{"id", "addr", "backend", "error"}]}. Then every
connection asks again every INTERVAL seconds on its own thread. A line "mark"
on stdin records the moment (e.g. just after a routing change) and is
acknowledged with {"event": "marked"}; requests started after it count as
"after". At end of stdin (or after --max-seconds) every thread stops and one
line {"event": "summary", "conns": [...]} reports per connection: the first
backend, every backend seen, answers before/after the mark, and the first
error (a connection that failed is not reopened).

With --interval 0 the connections ask only when told: every line "ask" on
stdin makes each connection, in order, ask once, and is answered with
{"event": "answers", "answers": [...]}, one entry per connection: the backend
that answered, or "!" and why it failed ("!closed earlier: ..." once it
has). No --max-seconds limit applies then.

With --cover NAME (repeatable) it opens more connections, one per address
in turn, until every NAME answered at least one of them or each address has
--max-conns: a load balancer's hash may put a handful of connections on a
subset of its backends, and a test that needs one on each should ask for it.

Usage: flowprobe.py --addr A [--addr B] --conns N [--port P]
                    [--cover NAME]... [--max-conns M]
                    [--interval S] [--timeout S] [--max-seconds S]
"""

import argparse
import json
import socket
import sys
import threading
import time

MARK = {"t": None}
STOP = threading.Event()


class Conn:
    def __init__(self, ident, addr, port, timeout):
        self.ident, self.addr, self.port, self.timeout = ident, addr, port, timeout
        self.sock = None
        self.buf = b""
        self.first = None
        self.seen = []
        self.ok_before = 0
        self.ok_after = 0
        self.error = None
        self.error_after_mark = None
        self.last = None

    def connect(self):
        family = socket.AF_INET6 if ":" in self.addr else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect((self.addr, self.port))

    def read_until(self, marker):
        while marker not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed by the peer")
            self.buf += chunk
        head, self.buf = self.buf.split(marker, 1)
        return head

    def request(self):
        """One GET / on this connection; returns the answering backend."""
        host = "[%s]" % self.addr if ":" in self.addr else self.addr
        self.sock.sendall(("GET / HTTP/1.1\r\nHost: %s\r\n\r\n" % host).encode())
        head = self.read_until(b"\r\n\r\n").decode("latin-1")
        lines = head.split("\r\n")
        if not lines[0].startswith("HTTP/1.1 200"):
            raise ConnectionError("status line %r" % lines[0])
        headers = {}
        for l in lines[1:]:
            k, _, v = l.partition(":")
            headers[k.strip().lower()] = v.strip()
        length = int(headers.get("content-length", "0"))
        while len(self.buf) < length:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed by the peer mid-body")
            self.buf += chunk
        self.buf = self.buf[length:]
        return headers.get("x-backend", "")

    def ask(self):
        started = time.monotonic()
        after = MARK["t"] is not None and started >= MARK["t"]
        try:
            backend = self.request()
        except Exception as e:  # any failure ends this connection
            self.error = "%s: %s" % (type(e).__name__, e)
            self.error_after_mark = after
            return False
        self.last = backend
        if self.first is None:
            self.first = backend
        if backend not in self.seen:
            self.seen.append(backend)
        if after:
            self.ok_after += 1
        else:
            self.ok_before += 1
        return True

    def answer(self):
        """One request now (--interval 0): the backend, or "!" and why not."""
        if self.error is not None:
            return "!closed earlier: " + self.error
        if not self.ask():
            return "!" + self.error
        return self.last or "!no X-Backend header"

    def loop(self, interval):
        while not STOP.wait(interval):
            if not self.ask():
                return

    def report(self):
        return {
            "id": self.ident,
            "addr": self.addr,
            "backend": self.first,
            "seen": self.seen,
            "ok_before": self.ok_before,
            "ok_after": self.ok_after,
            "error": self.error,
            "error_after_mark": self.error_after_mark,
        }


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", action="append", required=True)
    ap.add_argument("--conns", type=int, required=True, help="per address")
    ap.add_argument("--cover", action="append", default=[],
                    help="open more until this backend has a connection")
    ap.add_argument("--max-conns", type=int, default=0,
                    help="per address, with --cover (default: --conns)")
    ap.add_argument("--port", type=int, default=80)
    ap.add_argument("--interval", type=float, default=0.1,
                    help="seconds between requests; 0: only on \"ask\"")
    ap.add_argument("--timeout", type=float, default=3.0)
    ap.add_argument("--max-seconds", type=float, default=120.0)
    a = ap.parse_args()

    conns = []

    def open_one(addr):
        c = Conn(len(conns), addr, a.port, a.timeout)
        try:
            c.connect()
        except Exception as e:
            c.error = "connect: %s: %s" % (type(e).__name__, e)
        else:
            c.ask()
        conns.append(c)

    for addr in a.addr:
        for _ in range(a.conns):
            open_one(addr)
    per_addr = a.conns
    while per_addr < max(a.max_conns, a.conns):
        if all(any(c.first == name for c in conns) for name in a.cover):
            break
        for addr in a.addr:
            open_one(addr)
        per_addr += 1
    emit({"event": "ready", "conns": [
        {"id": c.ident, "addr": c.addr, "backend": c.first, "error": c.error} for c in conns]})

    manual = a.interval <= 0
    threads = [] if manual else [
        threading.Thread(target=c.loop, args=(a.interval,), daemon=True)
        for c in conns if c.error is None]
    for t in threads:
        t.start()
    if not manual:
        timer = threading.Timer(a.max_seconds, STOP.set)
        timer.daemon = True
        timer.start()
    for line in sys.stdin:
        if STOP.is_set():
            break
        if line.strip() == "mark":
            MARK["t"] = time.monotonic()
            emit({"event": "marked"})
        elif line.strip() == "ask" and manual:
            emit({"event": "answers", "answers": [c.answer() for c in conns]})
    STOP.set()
    for t in threads:
        t.join(a.timeout + 1)
    emit({"event": "summary", "conns": [c.report() for c in conns]})


if __name__ == "__main__":
    main()
