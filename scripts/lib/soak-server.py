"""A backend's server for scripts/soak.sh: HTTP/1.1 with keep-alive on a TCP
port and a UDP echo, both on every address of the backend (the soak's VIPs
are on its loopback), and a log of every accepted connection, so that the
soak can tell which backend a connection reached even when it failed
before any answer.

Usage: soak-server.py NAME READY_FILE ACCEPT_LOG TCP_PORT UDP_PORT UDP_ADDRESSES
  NAME        the backend's name: the X-Backend header, the body of every
              answer ("NAME\n") and the prefix of every UDP answer
  READY_FILE  written once every socket is bound
  ACCEPT_LOG  one line per accepted TCP connection:
              "UNIX_TIME CLIENT_ADDRESS CLIENT_PORT LOCAL_ADDRESS"
  TCP_PORT    HTTP: any request -> 200 "NAME\n" (Content-Length, keep-alive)
  UDP_PORT    echo: "NAME " + payload
  UDP_ADDRESSES  comma-separated addresses the UDP echo binds (each VIP:
              an answer must come from the address it was sent to)
"""
import socket
import sys
import threading
import time

NAME, READY, ACCEPT_LOG = sys.argv[1], sys.argv[2], sys.argv[3]
TCP_PORT, UDP_PORT = int(sys.argv[4]), int(sys.argv[5])
UDP_ADDRESSES = sys.argv[6].split(",")
BODY = (NAME + "\n").encode()
ANSWER = (
    "HTTP/1.1 200 OK\r\nX-Backend: %s\r\nContent-Type: text/plain\r\n"
    "Content-Length: %d\r\n\r\n" % (NAME, len(BODY))
).encode() + BODY
log_lock = threading.Lock()
log = open(ACCEPT_LOG, "a", buffering=1)


def serve_connection(conn):
    conn.settimeout(600)
    pending = b""
    try:
        while True:
            while b"\r\n\r\n" not in pending:
                data = conn.recv(65536)
                if not data:
                    return
                pending += data
            _, pending = pending.split(b"\r\n\r\n", 1)
            conn.sendall(ANSWER)
    except OSError:
        pass
    finally:
        conn.close()


def tcp_listener(family, address):
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.bind((address, TCP_PORT))
    sock.listen(1024)
    return sock


def accept_loop(sock):
    while True:
        conn, peer = sock.accept()
        local = conn.getsockname()[0]
        with log_lock:
            log.write("%.6f %s %d %s\n" % (time.time(), peer[0], peer[1], local))
        threading.Thread(target=serve_connection, args=(conn,), daemon=True).start()


def udp_echo(sock):
    prefix = (NAME + " ").encode()
    while True:
        data, peer = sock.recvfrom(65535)
        sock.sendto(prefix + data, peer)


threads = []
for family, address in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
    listener = tcp_listener(family, address)
    threads.append(threading.Thread(target=accept_loop, args=(listener,), daemon=True))
for address in UDP_ADDRESSES:
    udp = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((address, UDP_PORT))
    threads.append(threading.Thread(target=udp_echo, args=(udp,), daemon=True))
for t in threads:
    t.start()
with open(READY, "w") as f:
    f.write("ready\n")
threading.Event().wait()
