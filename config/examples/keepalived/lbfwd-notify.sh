#!/bin/sh
# keepalived notify hook for lbfwd's layer-2 announcement (see
# keepalived.conf next to this file):
#   lbfwd-notify.sh SOCKET LBCTL TYPE NAME STATE PRIORITY
# MASTER: `lbctl announce on` (lbfwd answers ARP/NDP for its VIPs and sends
# gratuitous ARP / unsolicited NA so neighbours move to this appliance);
# BACKUP, FAULT, STOP: `lbctl announce off` (silent). A failure is logged
# to syslog and stderr; keepalived's track script covers a dead lbfwd.
set -u
socket="$1" lbctl="$2" state="$5"
case "$state" in
  MASTER) want=on ;;
  BACKUP|FAULT|STOP) want=off ;;
  *) echo "lbfwd-notify: unknown state '$state'" >&2; exit 2 ;;
esac
tries=0
until "$lbctl" --socket "$socket" announce "$want" >/dev/null; do
  tries=$((tries + 1))
  if [ "$tries" -ge 3 ]; then
    logger -t lbfwd-notify "keepalived $state: lbctl announce $want failed (lbfwd at $socket)" 2>/dev/null || true
    echo "lbfwd-notify: keepalived $state: lbctl announce $want failed" >&2
    exit 1
  fi
  sleep 0.2
done
echo "lbfwd-notify: keepalived $state: announce $want"
