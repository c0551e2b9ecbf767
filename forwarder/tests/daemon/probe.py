"""Long-lived HTTP/1.1 keep-alive connections to a VIP, for
forwarder/tests/daemon.rs.

Usage: probe.py ADDRESS PORT CONNS TIMEOUT

Opens CONNS connections to ADDRESS:PORT, one after the other, and asks
`GET /` once on each. Then, for every line "ask" on stdin, asks once more on
every connection. After the opening round and after each "ask" it prints one
JSON line: {"answers": [...]}, one entry per connection, in order: the
backend that answered (its X-Backend header) or "!" followed by the error.
A connection that failed once stays failed ("!closed earlier: ..."). Ends at
end of stdin. Every socket operation is limited to TIMEOUT seconds.
"""

import json
import socket
import sys


class Conn:
    def __init__(self, addr, port, timeout):
        self.addr, self.port, self.timeout = addr, port, timeout
        self.sock = None
        self.buf = b""
        self.failed = None

    def connect(self):
        family = socket.AF_INET6 if ":" in self.addr else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect((self.addr, self.port))

    def recv_more(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed by the peer")
        self.buf += chunk

    def request(self):
        host = "[%s]" % self.addr if ":" in self.addr else self.addr
        self.sock.sendall(("GET / HTTP/1.1\r\nHost: %s\r\n\r\n" % host).encode())
        while b"\r\n\r\n" not in self.buf:
            self.recv_more()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        if not lines[0].startswith("HTTP/1.1 200"):
            raise ConnectionError("status line %r" % lines[0])
        headers = {}
        for line in lines[1:]:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self.buf) < length:
            self.recv_more()
        self.buf = self.buf[length:]
        return headers.get("x-backend", "") or "!no X-Backend header"

    def ask(self):
        if self.failed is not None:
            return "!closed earlier: " + self.failed
        try:
            if self.sock is None:
                self.connect()
            return self.request()
        except Exception as e:  # any failure ends this connection
            self.failed = "%s: %s" % (type(e).__name__, e)
            if self.sock is not None:
                self.sock.close()
            return "!" + self.failed


def main():
    addr, port, count, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    conns = [Conn(addr, port, timeout) for _ in range(count)]

    def round_():
        sys.stdout.write(json.dumps({"answers": [c.ask() for c in conns]}) + "\n")
        sys.stdout.flush()

    round_()
    for line in sys.stdin:
        if line.strip() == "ask":
            round_()


if __name__ == "__main__":
    main()
