#!/bin/sh
# keepalived track script for lbfwd (see keepalived.conf next to this
# file): succeeds while lbfwd answers on its control socket.
#   lbfwd-check.sh SOCKET LBCTL
exec "$2" --socket "$1" status >/dev/null 2>&1
