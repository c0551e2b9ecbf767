"""Request latency on kept-alive HTTP/1.1 connections through lbfwd, per
phase, for the flood test (tests/tests/flood.rs drives it).

Opens --conns keep-alive connections to --addr (port 80) and prints
{"event": "ready", "backends": [...]}. Then, every --interval seconds, asks
once on each connection in turn and times each answer. A line "phase NAME"
on stdin starts a new phase (acknowledged with {"event": "phase", "name":
NAME}); requests count in the phase they started in. A request that fails
(no answer within --timeout, closed, wrong status) counts as lost and its
connection is opened again. At end of stdin one line
{"event": "summary", "phases": [{"name", "requests", "lost", "p50_ms",
"p99_ms", "max_ms"}]} reports every phase.

Usage: latprobe.py --addr A --conns N [--interval S] [--timeout S]
"""

import argparse
import json
import socket
import sys
import threading
import time

LOCK = threading.Lock()
PHASES = [["setup", [], 0]]  # [name, latencies in ms, lost]
STOP = threading.Event()


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class Conn:
    def __init__(self, addr, timeout):
        self.addr, self.timeout = addr, timeout
        self.sock = None
        self.buf = b""

    def open(self):
        if self.sock is not None:
            self.sock.close()
        family = socket.AF_INET6 if ":" in self.addr else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect((self.addr, 80))
        self.buf = b""

    def ask(self):
        """One GET /; returns the answering backend."""
        host = "[%s]" % self.addr if ":" in self.addr else self.addr
        self.sock.sendall(("GET / HTTP/1.1\r\nHost: %s\r\n\r\n" % host).encode())
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed by the peer")
            self.buf += chunk
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
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed by the peer")
            self.buf += chunk
        self.buf = self.buf[length:]
        return backend


def percentile(values, q):
    if not values:
        return None
    s = sorted(values)
    return round(s[min(len(s) - 1, int(q * len(s)))], 3)


def read_stdin():
    for line in sys.stdin:
        parts = line.split()
        if len(parts) == 2 and parts[0] == "phase":
            with LOCK:
                PHASES.append([parts[1], [], 0])
            emit({"event": "phase", "name": parts[1]})
    STOP.set()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", required=True)
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--interval", type=float, default=0.02)
    ap.add_argument("--timeout", type=float, default=2.0)
    a = ap.parse_args()
    conns = [Conn(a.addr, a.timeout) for _ in range(a.conns)]
    backends = []
    for c in conns:
        c.open()
        backends.append(c.ask())
    emit({"event": "ready", "backends": backends})
    threading.Thread(target=read_stdin, daemon=True).start()
    while not STOP.is_set():
        tick = time.monotonic()
        for c in conns:
            with LOCK:
                phase = PHASES[-1]
            start = time.monotonic()
            try:
                c.ask()
                ms = (time.monotonic() - start) * 1000.0
                with LOCK:
                    phase[1].append(ms)
            except (OSError, ConnectionError):
                with LOCK:
                    phase[2] += 1
                try:
                    c.open()
                except OSError:
                    pass
        left = a.interval - (time.monotonic() - tick)
        if left > 0:
            STOP.wait(left)
    with LOCK:
        emit({
            "event": "summary",
            "phases": [
                {
                    "name": name,
                    "requests": len(lat) + lost,
                    "lost": lost,
                    "p50_ms": percentile(lat, 0.5),
                    "p99_ms": percentile(lat, 0.99),
                    "max_ms": round(max(lat), 3) if lat else None,
                }
                for name, lat, lost in PHASES
            ],
        })


if __name__ == "__main__":
    main()
