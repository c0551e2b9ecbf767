"""A backend's servers in lbfwd's test network (scripts/lib/topo.sh starts one
per backend namespace): HTTP and UDP echo, bound to the VIPs, naming the
backend.

Usage: topo-server.py NAME READY_FILE VIPS HTTP_PORTS UDP_PORTS
  NAME        the backend's name (be1..be3): the X-Backend header, the body
              of `GET /` ("NAME\n") and the prefix of every UDP answer
  READY_FILE  written once every socket is bound
  VIPS        comma-separated addresses to bind (the VIPs on the loopback)
  HTTP_PORTS  comma-separated TCP ports: `GET /` -> "NAME\n",
              `GET /big?bytes=N` -> N bytes
  UDP_PORTS   comma-separated UDP ports: echo "NAME " + payload
"""
import http.server, socket, socketserver, sys, threading, urllib.parse

NAME, READY = sys.argv[1], sys.argv[2]
VIPS = sys.argv[3].split(",")
HTTP_PORTS = [int(p) for p in sys.argv[4].split(",")]
UDP_PORTS = [int(p) for p in sys.argv[5].split(",")]
CHUNK = b"x" * 65536


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/big":
            size = int(urllib.parse.parse_qs(url.query).get("bytes", ["1048576"])[0])
            self.send_response(200)
            self.send_header("X-Backend", NAME)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            while size > 0:
                n = min(size, len(CHUNK))
                self.wfile.write(CHUNK[:n])
                size -= n
            return
        body = (NAME + "\n").encode()
        self.send_response(200)
        self.send_header("X-Backend", NAME)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def server_bind(self):
        # HTTPServer.server_bind would resolve the VIP's name (a DNS query).
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


def http_server(vip, port):
    family = socket.AF_INET6 if ":" in vip else socket.AF_INET
    return type("Server", (Server,), {"address_family": family})((vip, port), Handler)


def udp_echo(sock):
    prefix = (NAME + " ").encode()
    while True:
        data, peer = sock.recvfrom(65535)
        sock.sendto(prefix + data, peer)


threads = []
for vip in VIPS:
    for port in HTTP_PORTS:
        srv = http_server(vip, port)
        threads.append(threading.Thread(target=srv.serve_forever, daemon=True))
    for port in UDP_PORTS:
        family = socket.AF_INET6 if ":" in vip else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.bind((vip, port))
        threads.append(threading.Thread(target=udp_echo, args=(sock,), daemon=True))
for t in threads:
    t.start()
with open(READY, "w") as f:
    f.write("ready\n")
threading.Event().wait()
