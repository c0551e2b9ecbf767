#!/usr/bin/env bash
# The demo: builds a small network of namespaces, runs lbfwd, sends real
# traffic to the VIP and shows which backend answered.
set -euo pipefail
echo "lbfwd demo: coming with the dataplane issue (#4)."
