"""Kept-alive HTTP/1.1 connections through lbfwd under a flood, for the flood
test (tests/tests/flood.rs drives it): per phase, what the established
traffic cost (latency, lost requests); per connection, whether it broke,
moved, stalled or recovered.

Opens --conns keep-alive connections to --addr (port 80), asks once on
each (with --cover NAME, repeatable, more until every NAME answered one, at
most --max-conns) and prints {"event": "ready", "conns": [{"id", "backend",
"error"}]}. Then every connection asks again every --interval seconds on a
thread of its own and times each answer. A request has --timeout seconds
(long: a saturated machine drops packets of every flow, and TCP's
retransmission back-off can keep a request waiting 16-32 s before it is
answered); one that fails (timeout, reset, closed, wrong status) ends its
connection, which is not reopened.

Commands on stdin:
  phase NAME  starts a new phase; requests count in the phase they started
              in. Answered with {"event": "phase", "name": NAME}.
  status      {"event": "status", "phase": NAME, "conns": [{"id", "alive",
              "answers"}]}: "answers" are those to requests started in the
              current phase (0 for a connection still waiting).
At end of stdin every thread ends after its current request and one line
{"event": "summary", "phases": [...], "conns": [...]} reports
  per phase: "name", "requests" (started in it and answered or failed),
    "lost" (failed), "slow" (answered after --stall seconds or more),
    "p50_ms", "p99_ms", "max_ms";
  per connection: "id", "backend" (its first answer), "seen" (every backend
    that answered, in order), "error" and "error_phase" (what ended it),
    "longest_ms" and "longest_phase" (its slowest answered request),
    "answers" ({phase: answered requests started in it}).

Usage: latprobe.py --addr A --conns N [--cover NAME]... [--max-conns M]
                   [--interval S] [--timeout S] [--stall S]
"""

import argparse
import json
import socket
import sys
import threading
import time

LOCK = threading.Lock()
OUT = threading.Lock()
STOP = threading.Event()


class Phase:
    def __init__(self, name):
        self.name = name
        self.latencies = []
        self.lost = 0
        self.slow = 0


PHASES = [Phase("setup")]


def emit(obj):
    with OUT:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


class Conn:
    def __init__(self, ident, addr, timeout):
        self.ident, self.addr, self.timeout = ident, addr, timeout
        self.sock = None
        self.buf = b""
        self.first = None
        self.seen = []
        self.error = None
        self.error_phase = None
        self.longest_ms = 0.0
        self.longest_phase = None
        self.answers = {}

    def open(self):
        family = socket.AF_INET6 if ":" in self.addr else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect((self.addr, 80))

    def recv_more(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed by the peer")
        self.buf += chunk

    def request(self):
        """One GET /; returns the answering backend."""
        host = "[%s]" % self.addr if ":" in self.addr else self.addr
        self.sock.sendall(("GET / HTTP/1.1\r\nHost: %s\r\n\r\n" % host).encode())
        while b"\r\n\r\n" not in self.buf:
            self.recv_more()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        if not lines[0].startswith("HTTP/1.1 200"):
            raise ConnectionError("status line %r" % lines[0])
        length, backend = 0, ""
        for line in lines[1:]:
            k, _, v = line.partition(":")
            if k.strip().lower() == "content-length":
                length = int(v.strip())
            elif k.strip().lower() == "x-backend":
                backend = v.strip()
        while len(self.buf) < length:
            self.recv_more()
        self.buf = self.buf[length:]
        return backend

    def ask(self, stall_s):
        """One timed request, counted in the phase it started in; False
        once the connection failed."""
        with LOCK:
            phase = PHASES[-1]
        start = time.monotonic()
        try:
            backend = self.request()
        except Exception as e:  # any failure ends this connection
            with LOCK:
                self.error = "%s: %s" % (type(e).__name__, e)
                self.error_phase = phase.name
                phase.lost += 1
            return False
        ms = (time.monotonic() - start) * 1000.0
        with LOCK:
            phase.latencies.append(ms)
            if ms >= stall_s * 1000.0:
                phase.slow += 1
            if self.first is None:
                self.first = backend
            if backend not in self.seen:
                self.seen.append(backend)
            if ms > self.longest_ms:
                self.longest_ms, self.longest_phase = ms, phase.name
            self.answers[phase.name] = self.answers.get(phase.name, 0) + 1
        return True

    def loop(self, interval, stall_s):
        while not STOP.wait(interval):
            if not self.ask(stall_s):
                return

    def report(self):
        return {
            "id": self.ident,
            "backend": self.first,
            "seen": self.seen,
            "error": self.error,
            "error_phase": self.error_phase,
            "longest_ms": round(self.longest_ms, 3),
            "longest_phase": self.longest_phase,
            "answers": dict(self.answers),
        }


def percentile(values, q):
    if not values:
        return None
    s = sorted(values)
    return round(s[min(len(s) - 1, int(q * len(s)))], 3)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", required=True)
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--cover", action="append", default=[],
                    help="open more until this backend answered one")
    ap.add_argument("--max-conns", type=int, default=0)
    ap.add_argument("--interval", type=float, default=0.1)
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--stall", type=float, default=1.0,
                    help="an answer this many seconds late or more is slow")
    a = ap.parse_args()

    conns = []

    def open_one():
        c = Conn(len(conns), a.addr, a.timeout)
        try:
            c.open()
        except OSError as e:
            c.error, c.error_phase = "connect: %s: %s" % (type(e).__name__, e), "setup"
        else:
            c.ask(a.stall)
        conns.append(c)

    for _ in range(a.conns):
        open_one()
    while len(conns) < a.max_conns and not all(
            any(c.first == name for c in conns) for name in a.cover):
        open_one()
    emit({"event": "ready", "conns": [
        {"id": c.ident, "backend": c.first, "error": c.error} for c in conns]})

    threads = [threading.Thread(target=c.loop, args=(a.interval, a.stall), daemon=True)
               for c in conns if c.error is None]
    for t in threads:
        t.start()
    for line in sys.stdin:
        parts = line.split()
        if len(parts) == 2 and parts[0] == "phase":
            with LOCK:
                PHASES.append(Phase(parts[1]))
            emit({"event": "phase", "name": parts[1]})
        elif parts == ["status"]:
            with LOCK:
                name = PHASES[-1].name
                status = [{"id": c.ident, "alive": c.error is None,
                           "answers": c.answers.get(name, 0)} for c in conns]
            emit({"event": "status", "phase": name, "conns": status})
    STOP.set()
    deadline = time.monotonic() + a.timeout + 1
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    with LOCK:
        emit({
            "event": "summary",
            "phases": [
                {
                    "name": p.name,
                    "requests": len(p.latencies) + p.lost,
                    "lost": p.lost,
                    "slow": p.slow,
                    "p50_ms": percentile(p.latencies, 0.5),
                    "p99_ms": percentile(p.latencies, 0.99),
                    "max_ms": round(max(p.latencies), 3) if p.latencies else None,
                }
                for p in PHASES
            ],
            "conns": [c.report() for c in conns],
        })


if __name__ == "__main__":
    main()
