"""The UDP client of lbfwd's test network (`topo.sh udp`): sends COUNT
datagrams, each from a new socket (a new source port, so a new flow), and
prints one line per datagram: the first answer, or "-" when none came within
TIMEOUT seconds. Exits 1 if any got none.

Usage: topo-udp.py ADDRESS PORT PAYLOAD TIMEOUT COUNT
"""
import socket
import sys

addr, port, payload = sys.argv[1], int(sys.argv[2]), sys.argv[3]
timeout, count = float(sys.argv[4]), int(sys.argv[5])
missed = 0
for _ in range(count):
    s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    s.sendto(payload.encode(), (addr, port))
    try:
        print(s.recv(65535).decode().replace("\n", " "))
    except socket.timeout:
        print("-")
        missed += 1
    s.close()
sys.exit(1 if missed else 0)
