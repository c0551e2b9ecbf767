"""The driver of scripts/soak.sh: runs in the client namespace of the
topo.sh network, owns lbfwd (starts it, kills it with SIGKILL now and then,
starts it again), sends real traffic, changes the routing every ~100 ms
through lbctl and the config file, tries invalid changes in between, and
judges every failed request afterwards.

Usage: soak.py --seconds N --prefix P --lbfwd PATH --lbctl PATH
               --appliance FILE --config FILE --socket PATH --run-dir DIR
               --network NAME --vni N --nic NAME,UID,UNDERLAY,MAC (x3)
               [--seed N] [--restart-every SECONDS] [--no-persist]

What a request is, and when its failure is a violation ("stayed live"):

- A request is one HTTP GET (a fresh connection: connect, GET, close; or
  the next GET on a kept-alive connection) or one UDP datagram from a new
  socket (a new flow), resent on the same socket every 0.5 s until answered
  or REQUEST_TIMEOUT passes. TCP's own retransmissions and these resends
  carry requests over the few seconds lbfwd is down during a restart.
- Its window runs from the moment nothing more was known about its path
  (the connect, or the previous answer on the same kept-alive connection)
  to its answer or failure.
- Its target: the X-Backend of an answer on the connection, else the
  backend whose server logged accepting this connection (client address
  and port, in the window), else unknown (the handshake never completed).
- The routing states that may have been in effect during the window: the
  destinations lbfwd itself reported (over the control socket) after each
  change, each taken as in effect from the moment its change was sent until
  the next change was answered (plus 50 ms for the workers to pick up the
  tables), so a change's moment is never guessed in our favour.
- The target stayed live when it was a destination of the request's load
  balancer (at any weight: a drained destination keeps its flows) in every
  one of those states, and the load balancer existed in all of them.

A failed request is then one of:
- violation_live_target: its target stayed live, and no restart fell in
  its window after a routing change (below);
- violation_restart_remapped: its target stayed live, a restart (kill -9)
  fell in the window, and the load balancer's routing changed between the
  first connection of this flow (5-tuple; an earlier connection with the
  same source port within the flow timeout may have pinned it) and the
  restart. Without the flow table the restarted lbfwd would send such a
  flow to its current Maglev pick, which may be another target; with
  `[flow] persist` (lbfwd's default) the table survives the restart and
  this is a violation like the first (counted apart so that a run with
  --no-persist shows what persistence prevents);
- violation_no_target: its target is unknown, yet every destination stayed
  in every state of the window (a restart in it is no excuse: the flow
  table, and so the flow's pinning, survives it);
- excused_target_left: its target left the routing (label, state, routing
  or load balancer deleted) during the window;
- excused_unknown_target_churn: target unknown, and some destination of
  its load balancer left during the window (it may have been that one).

After every restart each worker's flow table must have been re-attached
from its file (lbfwd's log line "flow table of worker N re-attached"),
unless --no-persist.
"""
import re
import argparse
import copy
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib

REQUEST_TIMEOUT = 15.0
STATE_MARGIN = 0.05
TCP_FLOW_TIMEOUT = 300.0
UDP_FLOW_TIMEOUT = 30.0
TCP_PORT = 81
UDP_PORT = 1100
WEB_VIP4 = "203.0.113.10"
WEB_VIP6 = "2001:db8:100::10"
API_VIP4 = "203.0.113.11"


def now():
    return time.time()


def log(msg):
    print("soak: %s" % msg, flush=True)


# --- the control socket (queries only; changes go through lbctl) ---------


class ControlError(Exception):
    pass


def control(path, op, body=None, timeout=5.0):
    """One request on lbfwd's control socket; returns the `ok` payload."""
    req = {"version": 1, "op": op}
    if body is not None:
        req["body"] = body
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
        s.sendall((json.dumps(req) + "\n").encode())
        buf = b""
        while not buf.endswith(b"\n"):
            data = s.recv(1 << 20)
            if not data:
                break
            buf += data
    finally:
        s.close()
    resp = json.loads(buf)
    if "error" in resp:
        raise ControlError(json.dumps(resp["error"]))
    return resp["ok"]


# --- the desired state the soak drives, rendered as TOML -----------------


class Model:
    """What the soak believes the desired state is; every valid change is
    made to a copy first and only applied when it keeps one usable
    destination in each load balancer (so traffic keeps a live target)."""

    def __init__(self, network, vni, nics):
        self.network = network
        self.vni = vni
        self.nics = nics  # name -> (uid, underlay, mac)
        self.labels = {n: {"app": "web"} for n in nics}
        self.state = {n: "Available" for n in nics}
        self.web_weights = {}
        self.api_routing = {n: 100 for n in nics}
        self.tmp = False
        self.spare = False
        self.public_extra = False

    def copy(self):
        return copy.deepcopy(self)

    def expected(self):
        """The destinations (name -> weight) each load balancer must have."""
        avail = [n for n in sorted(self.nics) if self.state[n] == "Available"]
        lbs = {
            "web": {n: self.web_weights.get(n, 100) for n in avail if self.labels[n].get("app") == "web"},
            # A load_balancer_routing is used as given: lbfwd keeps a
            # destination there whatever its interface's state.
            "api": dict(sorted(self.api_routing.items())),
        }
        if self.tmp:
            lbs["tmp"] = {n: 100 for n in avail}
        return lbs

    def usable(self):
        return all(any(w > 0 for w in d.values()) for d in self.expected().values())

    def pool_public(self):
        addrs = ['"203.0.113.8-203.0.113.14"']
        if self.public_extra:
            addrs.append('"203.0.113.15"')
        addrs.append('"%s"' % WEB_VIP6)
        return '[[pool]]\nname = "public"\naddresses = [%s]\n' % ", ".join(addrs)

    @staticmethod
    def pool_spare():
        return '[[pool]]\nname = "spare"\naddresses = ["198.18.0.0/29"]\n'

    def nic(self, name):
        uid, underlay, mac = self.nics[name]
        labels = ", ".join('%s = "%s"' % kv for kv in sorted(self.labels[name].items()))
        return (
            '[[network_interface]]\nname = "%s"\nuid = "%s"\nnetwork = "%s"\n'
            'labels = { %s }\nunderlay = "%s"\nmac = "%s"\nstate = "%s"\n'
            % (name, uid, self.network, labels, underlay, mac, self.state[name])
        )

    def web(self):
        weights = ", ".join("%s = %d" % kv for kv in sorted(self.web_weights.items()))
        return (
            '[[load_balancer]]\nname = "web"\ntype = "Public"\nip_families = ["IPv4", "IPv6"]\n'
            'ips = ["%s", "%s"]\nnetwork = "%s"\n'
            'network_interface_selector = { match_labels = { app = "web" } }\n'
            'ports = [ { protocol = "TCP", port = 80, end_port = 81 }, '
            '{ protocol = "UDP", port = 1024, end_port = 2048 } ]\nweights = { %s }\n'
            % (WEB_VIP4, WEB_VIP6, self.network, weights)
        )

    def api(self):
        return (
            '[[load_balancer]]\nname = "api"\ntype = "Public"\nips = ["%s"]\nnetwork = "%s"\n'
            'ports = [ { protocol = "TCP", port = %d }, { protocol = "UDP", port = %d } ]\n'
            % (API_VIP4, self.network, TCP_PORT, UDP_PORT)
        )

    def api_routing_toml(self):
        dests = ", ".join(
            '{ name = "%s", weight = %d }' % kv for kv in sorted(self.api_routing.items())
        )
        return '[[load_balancer_routing]]\nname = "api"\nnetwork = "%s"\ndestinations = [ %s ]\n' % (
            self.network,
            dests,
        )

    def tmp_toml(self):
        return (
            '[[load_balancer]]\nname = "tmp"\ntype = "Public"\nnetwork = "%s"\n'
            "network_interface_selector = {}\n"
            'ports = [ { protocol = "TCP", port = %d }, { protocol = "UDP", port = %d } ]\n'
            % (self.network, TCP_PORT, UDP_PORT)
        )

    def desired_state(self):
        parts = [self.pool_public()]
        if self.spare:
            parts.append(self.pool_spare())
        parts.append('[[network]]\nname = "%s"\nvni = %d\n' % (self.network, self.vni))
        parts += [self.nic(n) for n in sorted(self.nics)]
        parts += [self.web(), self.api()]
        if self.tmp:
            parts.append(self.tmp_toml())
        parts.append(self.api_routing_toml())
        return "\n".join(parts)


# --- traffic --------------------------------------------------------------


class Targets:
    """The load balancers traffic may go to now (name -> VIPs)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.vips = {"web": [WEB_VIP4, WEB_VIP6], "api": [API_VIP4]}

    def pick(self, rng):
        with self.lock:
            lb = rng.choice(sorted(self.vips))
            return lb, rng.choice(self.vips[lb])

    def set(self, lb, vips):
        with self.lock:
            if vips:
                self.vips[lb] = vips
            else:
                self.vips.pop(lb, None)


class Recorder:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests = []

    def add(self, **rec):
        with self.lock:
            self.requests.append(rec)


def family(vip):
    return socket.AF_INET6 if ":" in vip else socket.AF_INET


def read_answer(sock, deadline):
    """Reads one HTTP answer; returns its X-Backend, or raises."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        sock.settimeout(max(0.05, deadline - now()))
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed by the peer before an answer")
        buf += data
    head, body = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    if not lines[0].startswith("HTTP/1.1 200"):
        raise ConnectionError("status line %r" % lines[0])
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    length = int(headers.get("Content-Length", "0"))
    while len(body) < length:
        sock.settimeout(max(0.05, deadline - now()))
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed by the peer inside an answer")
        body += data
    backend = headers.get("X-Backend", "")
    if body[:length].decode() != backend + "\n":
        raise ConnectionError("answer %r does not match X-Backend %r" % (body, backend))
    return backend


def error_name(e):
    if isinstance(e, socket.timeout):
        return "timeout"
    if isinstance(e, ConnectionResetError):
        return "reset"
    if isinstance(e, ConnectionRefusedError):
        return "refused"
    return type(e).__name__ + ": " + str(e)


REQUEST = b"GET / HTTP/1.1\r\nHost: soak\r\n\r\n"


def fresh_worker(stop, targets, rec, rng, pause):
    while not stop.is_set():
        lb, vip = targets.pick(rng)
        start = now()
        deadline = start + REQUEST_TIMEOUT
        sock = socket.socket(family(vip), socket.SOCK_STREAM)
        sport, target, err = None, None, None
        try:
            sock.settimeout(REQUEST_TIMEOUT)
            sock.bind(("::" if ":" in vip else "0.0.0.0", 0))
            sport = sock.getsockname()[1]
            sock.connect((vip, TCP_PORT))
            sock.sendall(REQUEST)
            target = read_answer(sock, deadline)
        except (OSError, ConnectionError, ValueError) as e:
            err = error_name(e)
        finally:
            sock.close()
        rec.add(kind="tcp_fresh", lb=lb, vip=vip, sport=sport, flow_start=start, start=start,
                end=now(), ok=err is None, target=target, known=target, error=err)
        time.sleep(pause * rng.uniform(0.5, 1.5))


def kept_alive_worker(stop, targets, rec, rng, interval):
    while not stop.is_set():
        lb, vip = targets.pick(rng)
        conn_start = now()
        lifetime = rng.uniform(10, 40)
        sock = socket.socket(family(vip), socket.SOCK_STREAM)
        sock.bind(("::" if ":" in vip else "0.0.0.0", 0))
        sport = sock.getsockname()[1]
        known = None
        window_start = conn_start
        try:
            sock.settimeout(REQUEST_TIMEOUT)
            sock.connect((vip, TCP_PORT))
        except OSError as e:
            rec.add(kind="tcp_kept_alive", lb=lb, vip=vip, sport=sport, flow_start=conn_start,
                    start=conn_start, end=now(), ok=False, target=None, known=None,
                    error="connect: " + error_name(e), first=True)
            sock.close()
            time.sleep(interval)
            continue
        first = True
        while not stop.is_set() and now() - conn_start < lifetime:
            start = now()
            err, target = None, None
            try:
                sock.sendall(REQUEST)
                target = read_answer(sock, start + REQUEST_TIMEOUT)
            except (OSError, ConnectionError, ValueError) as e:
                err = error_name(e)
            end = now()
            if err is None and known is not None and target != known:
                err = "answered by %s, then by %s on one connection" % (known, target)
            rec.add(kind="tcp_kept_alive", lb=lb, vip=vip, sport=sport, flow_start=conn_start,
                    start=window_start, end=end, ok=err is None, target=target, known=known or target,
                    error=err, first=first)
            if err is not None:
                break
            known = target
            first = False
            window_start = end
            time.sleep(interval * rng.uniform(0.5, 1.5))
        sock.close()


def udp_worker(stop, targets, rec, rng, pause):
    payload = b"soak"
    while not stop.is_set():
        lb, vip = targets.pick(rng)
        start = now()
        sock = socket.socket(family(vip), socket.SOCK_DGRAM)
        sock.bind(("::" if ":" in vip else "0.0.0.0", 0))
        sport = sock.getsockname()[1]
        target, err = None, "timeout"
        try:
            while now() - start < REQUEST_TIMEOUT and target is None:
                sock.sendto(payload, (vip, UDP_PORT))
                sock.settimeout(0.5)
                try:
                    data, _ = sock.recvfrom(65535)
                except socket.timeout:
                    continue
                name, _, echoed = data.partition(b" ")
                if echoed != payload:
                    err = "answer %r" % data
                    break
                target, err = name.decode(), None
        except OSError as e:
            err = error_name(e)
        finally:
            sock.close()
        rec.add(kind="udp", lb=lb, vip=vip, sport=sport, flow_start=start, start=start, end=now(),
                ok=err is None, target=target, known=target, error=err)
        time.sleep(pause * rng.uniform(0.5, 1.5))


# --- the soak itself ------------------------------------------------------


class Soak:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        nics = {}
        for spec in args.nic:
            name, uid, underlay, mac = spec.split(",")
            nics[name] = (uid, underlay, mac)
        self.model = Model(args.network, args.vni, nics)
        self.appliance = open(args.appliance).read()
        self.lbfwd = None
        self.lbfwd_log_path = os.path.join(args.run_dir, "lbfwd.log")
        self.lbfwd_log = open(self.lbfwd_log_path, "ab")
        # One worker (and flow table) per core of `[dataplane] workers`.
        self.workers = len(tomllib.loads(self.appliance)["dataplane"]["workers"])
        self.events = open(os.path.join(args.run_dir, "events.jsonl"), "w", buffering=1)
        self.timeline = []  # {"sent", "done", "lbs": {lb: {dest: weight}}}
        self.restarts = []  # {"kill", "ready", "export_equal", "kept", "dropped"}
        self.applied = {}
        self.refused = {}
        self.violations = []
        self.targets = Targets()
        self.rec = Recorder()
        self.stop = threading.Event()

    def event(self, **ev):
        ev["t"] = now()
        self.events.write(json.dumps(ev) + "\n")

    def violation(self, kind, detail):
        self.violations.append((kind, detail))
        log("VIOLATION %s: %s" % (kind, detail))
        self.event(violation=kind, detail=detail)

    # lbfwd itself
    def write_config(self, desired=None):
        text = self.appliance + "\n" + (desired if desired is not None else self.model.desired_state())
        tmp = self.args.config + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.args.config)

    FLOW_TABLE_LINE = re.compile(
        r"flow table of worker (\d+) (?:re-attached from \S+: (\d+) flow\(s\) kept, (\d+) dropped"
        r"|(.*))")

    def flow_tables(self, offset):
        """The flow-table lines lbfwd logged after `offset` of its log: {worker:
        (kept, dropped) when re-attached, else the rest of the line}. Waits
        (up to 10 s) until every worker has logged one: the workers attach
        their tables on their own threads, maybe after the control socket
        answers."""
        deadline = now() + 10
        while True:
            self.lbfwd_log.flush()
            with open(self.lbfwd_log_path, "rb") as f:
                f.seek(offset)
                text = f.read().decode("utf-8", "replace")
            found = {}
            for line in text.splitlines():
                m = self.FLOW_TABLE_LINE.search(line)
                if m:
                    w = int(m.group(1))
                    found[w] = (int(m.group(2)), int(m.group(3))) if m.group(2) else m.group(4).strip()
                elif "flow tables kept in memory only" in line:
                    found[-1] = line.strip()
            if not self.args.persist:
                return found
            if len(found) >= self.workers or -1 in found or now() >= deadline:
                return found
            time.sleep(0.05)

    def start_lbfwd(self):
        offset = os.path.getsize(self.lbfwd_log_path)
        self.lbfwd = subprocess.Popen(
            ["ip", "netns", "exec", "%s-lb" % self.args.prefix, self.args.lbfwd, "run", "--config", self.args.config],
            stdin=subprocess.DEVNULL, stdout=self.lbfwd_log, stderr=subprocess.STDOUT,
        )
        deadline = now() + 60
        while now() < deadline:
            if self.lbfwd.poll() is not None:
                raise SystemExit("soak: lbfwd exited with %s at start (see lbfwd.log)" % self.lbfwd.returncode)
            try:
                control(self.args.socket, "status", timeout=1)
                break
            except (OSError, ControlError, ValueError):
                time.sleep(0.05)
        else:
            raise SystemExit("soak: lbfwd's control socket did not answer within 60 s")
        ready = now()
        return ready, self.flow_tables(offset)

    def lbctl(self, *argv, stdin=None):
        p = subprocess.run([self.args.lbctl, "--socket", self.args.socket, *argv], input=stdin,
                           capture_output=True, text=True, timeout=60)
        return p.returncode, p.stdout, p.stderr

    def export(self):
        rc, out, err = self.lbctl("export")
        if rc != 0:
            self.violation("export_failed", "lbctl export: exit %d: %s" % (rc, err.strip()))
        return out

    def routing_now(self):
        objs = control(self.args.socket, "list", {"kind": "load_balancer"})["objects"]
        lbs, vips = {}, {}
        for o in objs:
            st = (o.get("status") or {}).get("load_balancer", {})
            lbs[o["name"]] = {d["name"]: d["weight"] for d in st.get("destinations", [])}
            vips[o["name"]] = [a["addr"] for a in st.get("ips", [])]
        return lbs, vips

    def record_state(self, sent, why):
        lbs, vips = self.routing_now()
        done = now()
        self.timeline.append({"sent": sent, "done": done, "lbs": lbs})
        self.event(state=lbs, why=why)
        return lbs, vips

    # changes
    def file_arg(self, name, text):
        path = os.path.join(self.args.run_dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def valid_change(self):
        """Picks a random valid change, makes it through lbctl or the config
        file, and checks lbfwd's routing against the model."""
        m = self.model
        nic = self.rng.choice(sorted(m.nics))
        for _ in range(20):
            new = m.copy()
            kind = self.rng.choice([
                "label", "label", "weight", "weight", "drain", "nic_state", "tmp", "pool_spare",
                "pool_public", "api_routing", "apply_web", "noise_label", "reload",
            ])
            if kind == "label":
                if new.labels[nic].get("app") == "web":
                    new.labels[nic].pop("app")
                    argv = ["nic", "unlabel", nic, "app"]
                else:
                    new.labels[nic]["app"] = "web"
                    argv = ["nic", "label", nic, "app=web"]
            elif kind == "noise_label":
                if "tier" in new.labels[nic]:
                    new.labels[nic].pop("tier")
                    argv = ["nic", "unlabel", nic, "tier"]
                else:
                    new.labels[nic]["tier"] = "front%d" % self.rng.randint(1, 9)
                    argv = ["nic", "label", nic, "tier=" + new.labels[nic]["tier"]]
            elif kind == "weight":
                w = self.rng.randint(1, 400)
                new.web_weights[nic] = w
                argv = ["weight", "web", nic, str(w)]
            elif kind == "drain":
                new.web_weights[nic] = 0
                argv = ["drain", "web", nic]
            elif kind == "nic_state":
                new.state[nic] = "Pending" if new.state[nic] == "Available" else "Available"
                argv = ["nic", "apply", "-f", None, new.nic(nic)]
            elif kind == "tmp":
                new.tmp = not new.tmp
                argv = ["lb", "apply", "-f", None, new.tmp_toml()] if new.tmp else ["lb", "delete", "tmp"]
            elif kind == "pool_spare":
                new.spare = not new.spare
                argv = ["pool", "apply", "-f", None, new.pool_spare()] if new.spare else ["pool", "delete", "spare"]
            elif kind == "pool_public":
                new.public_extra = not new.public_extra
                argv = ["pool", "apply", "-f", None, new.pool_public()]
            elif kind == "api_routing":
                names = sorted(new.nics)
                chosen = self.rng.sample(names, self.rng.randint(1, len(names)))
                new.api_routing = {n: self.rng.randint(1, 300) for n in chosen}
                argv = ["routing", "apply", "-f", None, new.api_routing_toml()]
            elif kind == "apply_web":
                new.web_weights = {n: self.rng.choice([0, 50, 100, 200]) for n in sorted(new.nics)
                                   if self.rng.random() < 0.6}
                argv = ["apply", "-f", None, new.web()]
            elif kind == "reload":
                for n in sorted(new.nics):
                    if self.rng.random() < 0.3:
                        if new.labels[n].get("app") == "web":
                            new.labels[n].pop("app")
                        else:
                            new.labels[n]["app"] = "web"
                    new.state[n] = "Available" if self.rng.random() < 0.85 else "Pending"
                new.web_weights = {n: self.rng.randint(0, 300) for n in sorted(new.nics) if self.rng.random() < 0.5}
                new.tmp = self.rng.random() < 0.5
                new.spare = self.rng.random() < 0.5
                argv = ["reload"]
            if new.usable():
                break
        else:
            return
        if kind == "tmp" and not new.tmp:
            # Stop sending new requests to tmp; those in flight may fail
            # (their target leaves) and are judged as such.
            self.targets.set("tmp", None)
        if kind == "reload" and not new.tmp:
            self.targets.set("tmp", None)
        if kind == "reload":
            self.write_config(new.desired_state())
        if None in argv:
            i = argv.index(None)
            # One file per kind of change (and interface): lbfwd keeps the
            # location of each object's text, so a file is not reused for
            # other objects.
            argv = argv[:i] + [self.file_arg("change-%s.toml" % (kind + ("-" + nic if kind == "nic_state" else "")), argv[i + 1])] + argv[i + 2:]
        sent = now()
        rc, out, err = self.lbctl(*argv)
        self.event(change=kind, argv=argv, rc=rc, out=out.strip(), err=err.strip())
        if rc != 0:
            self.violation("valid_change_refused", "lbctl %s: exit %d: %s" % (" ".join(argv), rc, err.strip()))
            if kind == "reload":
                self.write_config()
            self.record_state(sent, "refused " + kind)
            return
        self.model = new
        self.applied[kind] = self.applied.get(kind, 0) + 1
        lbs, vips = self.record_state(sent, kind)
        if lbs != new.expected():
            self.violation("routing_differs_from_model",
                           "after lbctl %s: lbfwd routes %s, expected %s" % (" ".join(argv), lbs, new.expected()))
        if new.tmp and vips.get("tmp"):
            self.targets.set("tmp", vips["tmp"])
        # The config file follows the running desired state, so that the
        # invalid reloads below differ from it in their one defect only.
        self.write_config()

    INVALID = [
        # name, argv (None + text: a file with that text), exit code, fragment of stderr
        ("weight_unknown_destination", ["weight", "web", "nosuch", "50"], 6, 'unknown network interface "nosuch"'),
        ("weight_unknown_lb", ["weight", "nolb", "be1", "50"], 6, 'unknown load balancer "nolb"'),
        ("drain_unknown_lb", ["drain", "nolb", "be1"], 6, 'unknown load balancer "nolb"'),
        ("lb_delete_unknown", ["lb", "delete", "nolb"], 6, 'unknown load balancer "nolb"'),
        ("label_bad_value", ["nic", "label", "be1", "app=-bad-"], 5,
         'label value "-bad-" must begin and end with a letter or digit'),
        ("label_unknown_nic", ["nic", "label", "nosuch", "app=web"], 6, 'unknown network interface "nosuch"'),
        ("lb_unknown_network", ["lb", "apply", "-f", None,
                                '[[load_balancer]]\nname = "bad"\ntype = "Public"\nnetwork = "nope"\n'], 5,
         'unknown network "nope"'),
        ("lb_port_zero", ["lb", "apply", "-f", None,
                          '[[load_balancer]]\nname = "bad"\ntype = "Public"\nnetwork = "NET"\n'
                          'ports = [ { protocol = "TCP", port = 0 } ]\n'], 5, "0 is not a port"),
        ("lb_claimed_ip", ["lb", "apply", "-f", None,
                           '[[load_balancer]]\nname = "bad"\ntype = "Public"\nnetwork = "NET"\n'
                           'ips = ["203.0.113.10"]\n'], 5,
         '203.0.113.10 is already claimed by load balancer "web"'),
        ("pool_without_vip", ["pool", "apply", "-f", None,
                              '[[pool]]\nname = "public"\naddresses = ["203.0.113.11-203.0.113.14", '
                              '"2001:db8:100::10"]\n'], 5,
         "203.0.113.10 is in no public pool"),
        ("routing_duplicate", ["routing", "apply", "-f", None,
                               '[[load_balancer_routing]]\nname = "api"\nnetwork = "NET"\ndestinations = '
                               '[ { name = "be1" }, { name = "be1" } ]\n'], 5,
         'destination "be1" listed twice'),
        ("network_in_use", ["network", "delete", "NET"], 5, 'unknown network "NET"'),
        ("yaml_bad_api_version", ["apply", "-f", None,
                                  "apiVersion: networking.example.com/v9\nkind: LoadBalancer\n"
                                  "metadata:\n  name: bad\n"], 5, "unsupported apiVersion"),
        ("reload_invalid_file", ["reload"], 5, "VNI 16777216 is outside 24 bits"),
        ("reload_appliance_changed", ["reload"], 5, "appliance settings"),
    ]

    def invalid_change(self):
        name, argv, code, fragment = self.rng.choice(self.INVALID)
        net = self.model.network
        argv = [a.replace("NET", net) if a else a for a in argv]
        fragment = fragment.replace("NET", net)
        if None in argv:
            i = argv.index(None)
            text = argv[i + 1].replace('"NET"', '"%s"' % net)
            ext = ".yaml" if text.startswith("apiVersion") else ".toml"
            argv = argv[:i] + [self.file_arg("invalid" + ext, text)] + argv[i + 2:]
        before = self.export()
        if name == "reload_invalid_file":
            self.write_config(self.model.desired_state().replace("vni = %d" % self.model.vni, "vni = 16777216"))
        elif name == "reload_appliance_changed":
            text = self.model.desired_state()
            appliance = self.appliance.replace("capacity = 65536", "capacity = 131072")
            if appliance == self.appliance:
                raise SystemExit("soak: the appliance part has no `capacity = 65536` to change")
            with open(self.args.config, "w") as f:
                f.write(appliance + "\n" + text)
        rc, out, err = self.lbctl(*argv)
        if name.startswith("reload_"):
            self.write_config()
        after = self.export()
        self.event(invalid=name, argv=argv, rc=rc, err=err.strip())
        if rc == 0:
            self.violation("invalid_change_accepted", "lbctl %s: exit 0: %s" % (" ".join(argv), out.strip()))
        elif rc != code or fragment not in err:
            self.violation("invalid_change_wrong_error",
                           "lbctl %s: exit %d (expected %d, stderr with %r): %s"
                           % (" ".join(argv), rc, code, fragment, err.strip()))
        else:
            self.refused[name] = self.refused.get(name, 0) + 1
        if before != after:
            self.violation("invalid_change_changed_state", "lbctl %s changed `lbctl export`" % " ".join(argv))

    def restart(self):
        before = self.export()
        kill = now()
        self.lbfwd.send_signal(signal.SIGKILL)
        self.lbfwd.wait()
        self.event(restart="killed")
        ready, tables = self.start_lbfwd()
        after = self.export()
        equal = before == after
        kept = sum(t[0] for t in tables.values() if isinstance(t, tuple))
        dropped = sum(t[1] for t in tables.values() if isinstance(t, tuple))
        reattached = sorted(w for w, t in tables.items() if isinstance(t, tuple))
        self.restarts.append({"kill": kill, "ready": ready, "export_equal": equal, "kept": kept,
                              "dropped": dropped, "reattached": len(reattached)})
        self.event(restart="ready", flow_tables={str(w): t for w, t in tables.items()})
        self.record_state(kill, "restart")
        if not equal:
            self.violation("export_differs_after_restart", "lbctl export before kill -9 and after restart differ")
        if self.args.persist and reattached != list(range(self.workers)):
            self.violation("flow_table_not_reattached",
                           "restart %d: %d worker(s) at the first start, re-attached %s; lbfwd logged %s"
                           % (len(self.restarts), self.workers, reattached,
                              {w: t for w, t in tables.items() if not isinstance(t, tuple)} or "nothing"))
        log("restart %d: kill -9, control socket back after %.2f s, export %s, flow tables re-attached %d/%d "
            "(%d flows kept, %d dropped)" % (len(self.restarts), ready - kill, "equal" if equal else "DIFFERS",
                                            len(reattached), self.workers, kept, dropped))

    def run(self):
        args = self.args
        self.write_config()
        t0 = now()
        self.start_lbfwd()
        self.record_state(t0, "start")
        threads = []
        plan = [(fresh_worker, 0.05)] * 2 + [(kept_alive_worker, 0.25)] * 12 + [(udp_worker, 0.1)]
        for i, (fn, pace) in enumerate(plan):
            t = threading.Thread(target=fn, args=(self.stop, self.targets, self.rec,
                                                  random.Random(args.seed * 1000 + i), pace), daemon=True)
            t.start()
            threads.append(t)
        end = t0 + args.seconds
        next_restart = t0 + self.rng.uniform(0.5, 1.0) * args.restart_every
        changes = 0
        next_change = now()
        while now() < end:
            # One change every 50-150 ms (at once when the last one took
            # longer: lbctl itself takes tens of ms on a loaded machine).
            time.sleep(max(0.0, next_change - now()))
            next_change = now() + self.rng.uniform(0.05, 0.15)
            if now() >= next_restart:
                self.restart()
                next_restart = now() + self.rng.uniform(0.5, 1.5) * args.restart_every
            elif self.rng.random() < 0.3:
                self.invalid_change()
            else:
                self.valid_change()
            changes += 1
            if changes % 100 == 0:
                log("%.0f s: %d changes, %d requests, %d restarts" % (now() - t0, changes, len(self.rec.requests),
                                                                       len(self.restarts)))
        self.stop.set()
        stopped = now()
        for t in threads:
            t.join(REQUEST_TIMEOUT + 5)
        self.duration = now() - t0
        log("traffic stopped; the requests in flight took %.1f s more" % (now() - stopped))
        with open(os.path.join(args.run_dir, "raw.json"), "w") as f:
            json.dump({"requests": self.rec.requests, "timeline": self.timeline, "restarts": self.restarts}, f)
        return self.judge()

    # judging
    def states_in(self, lb, s, e):
        out = []
        for k, st in enumerate(self.timeline):
            until = self.timeline[k + 1]["done"] + STATE_MARGIN if k + 1 < len(self.timeline) else float("inf")
            if st["sent"] <= e and until >= s:
                out.append(st["lbs"].get(lb))
        return out

    def accepts(self):
        found = {}
        for name in sorted(self.model.nics):
            path = os.path.join(self.args.run_dir, "%s.accept.log" % name)
            try:
                for line in open(path):
                    t, addr, port, local = line.split()
                    found.setdefault((local, int(port)), []).append((float(t), name))
            except FileNotFoundError:
                pass
        return found

    def flow_origins(self, reqs):
        """The earliest start of the chain of connections that shared each
        request's 5-tuple within the flow timeout."""
        by_tuple = {}
        for r in reqs:
            by_tuple.setdefault((r["kind"] == "udp", r["vip"], r["sport"]), []).append(r)
        for (udp, _, _), rs in by_tuple.items():
            timeout = UDP_FLOW_TIMEOUT if udp else TCP_FLOW_TIMEOUT
            rs.sort(key=lambda r: r["flow_start"])
            origin, last_end = None, None
            for r in rs:
                if origin is None or r["flow_start"] - last_end > timeout:
                    origin = r["flow_start"]
                r["origin"] = origin
                last_end = max(last_end or 0, r["end"])

    def judge(self):
        reqs = self.rec.requests
        self.flow_origins(reqs)
        accepts = self.accepts()
        kinds = {}
        failures = {}
        examples = {}
        for r in reqs:
            k = kinds.setdefault(r["kind"], {"requests": 0, "ok": 0, "longest_ok_s": 0.0})
            k["requests"] += 1
            if r["ok"]:
                k["ok"] += 1
                if r["end"] - r["start"] > k["longest_ok_s"]:
                    k["longest_ok_s"] = round(r["end"] - r["start"], 2)
                    k["slowest"] = "%s to %s (%s from port %s) answered by %s, window %.3f-%.3f, %d restart(s) in it" % (
                        r["kind"], r["lb"], r["vip"], r["sport"], r["target"], r["start"], r["end"],
                        sum(1 for x in self.restarts if x["kill"] <= r["end"] and x["ready"] >= r["start"]))
                continue
            target = r["known"]
            if target is None and r["kind"] != "udp" and r["sport"] is not None:
                for t, name in accepts.get((r["vip"], r["sport"]), []):
                    if r["flow_start"] - 0.1 <= t <= r["end"] + 0.1:
                        target = name
            states = self.states_in(r["lb"], r["start"], r["end"])
            restarts = [x for x in self.restarts if x["kill"] <= r["end"] and x["ready"] >= r["start"]]
            remapped = any(
                len({json.dumps(st, sort_keys=True) for st in self.states_in(r["lb"], r["origin"], x["kill"])}) > 1
                for x in restarts
            )
            if target is not None:
                if any(st is None or target not in st for st in states):
                    verdict = "excused_target_left"
                elif remapped:
                    verdict = "violation_restart_remapped"
                else:
                    verdict = "violation_live_target"
            else:
                present = [set(st) for st in states if st is not None]
                left = any(st is None for st in states) or (present and set.union(*present) != set.intersection(*present))
                unusable = any(st is None or not any(w > 0 for w in st.values()) for st in states)
                if left or unusable:
                    verdict = "excused_unknown_target_churn"
                else:
                    verdict = "violation_no_target"
            key = "%s/%s" % (r["kind"], verdict)
            failures[key] = failures.get(key, 0) + 1
            detail = "%s to %s (%s:%s from port %s), target %s, window %.3f-%.3f, error %s, %d restart(s) in it" % (
                r["kind"], r["lb"], r["vip"], UDP_PORT if r["kind"] == "udp" else TCP_PORT, r["sport"], target,
                r["start"], r["end"], r["error"], len(restarts))
            examples.setdefault(key, []).append(detail)
            if verdict.startswith("violation"):
                self.violation(verdict, detail)
        summary = {
            "seconds": round(self.duration, 1),
            "seed": self.args.seed,
            "requests": kinds,
            "failures": failures,
            "changes_applied": dict(sorted(self.applied.items())),
            "invalid_changes_refused": dict(sorted(self.refused.items())),
            "restarts": len(self.restarts),
            "restart_down_s_max": round(max((x["ready"] - x["kill"] for x in self.restarts), default=0), 2),
            "exports_equal_after_restart": sum(1 for x in self.restarts if x["export_equal"]),
            "persist": self.args.persist,
            "workers": self.workers,
            "restarts_flow_tables_reattached": sum(1 for x in self.restarts if x["reattached"] == self.workers),
            "flows_kept_across_restarts": sum(x["kept"] for x in self.restarts),
            "flows_dropped_at_restarts": sum(x["dropped"] for x in self.restarts),
            "restart_remapped": sum(n for k, n in failures.items() if k.endswith("/violation_restart_remapped")),
            "violations": len(self.violations),
        }
        with open(os.path.join(self.args.run_dir, "summary.json"), "w") as f:
            json.dump({"summary": summary, "examples": examples,
                       "violations": self.violations}, f, indent=1)
        print_summary(summary, examples)
        return 1 if self.violations else 0


def print_summary(s, examples):
    total = sum(k["requests"] for k in s["requests"].values())
    ok = sum(k["ok"] for k in s["requests"].values())
    print("== soak summary (%s s, seed %s)" % (s["seconds"], s["seed"]))
    print("requests: %d, answered %d, failed %d" % (total, ok, total - ok))
    for kind, k in sorted(s["requests"].items()):
        print("  %-15s %7d requests, %7d answered, the slowest answer after %.2f s"
              % (kind, k["requests"], k["ok"], k["longest_ok_s"]))
        if k.get("slowest"):
            print("      slowest: %s" % k["slowest"])
    print("failures by kind:%s" % ("" if s["failures"] else " none"))
    for key, n in sorted(s["failures"].items()):
        print("  %-52s %5d   e.g. %s" % (key, n, examples[key][0]))
    applied = sum(s["changes_applied"].values())
    refused = sum(s["invalid_changes_refused"].values())
    print("valid changes applied: %d  (%s)" % (applied, ", ".join("%s %d" % kv for kv in s["changes_applied"].items())))
    print("invalid changes refused with their error, export unchanged: %d  (%s)"
          % (refused, ", ".join("%s %d" % kv for kv in s["invalid_changes_refused"].items())))
    print("restarts (kill -9): %d, lbctl export equal after each: %d, longest until the control socket answered: %s s"
          % (s["restarts"], s["exports_equal_after_restart"], s["restart_down_s_max"]))
    print("flow tables (%d worker(s), persist %s): re-attached after %d of %d restarts, %d flows kept, "
          "%d dropped (their targets had left); failures remapped by a restart: %d"
          % (s["workers"] or 0, "on" if s["persist"] else "off", s["restarts_flow_tables_reattached"], s["restarts"],
             s["flows_kept_across_restarts"], s["flows_dropped_at_restarts"], s["restart_remapped"]))
    print("violated assertions: %d" % s["violations"])
    print("RESULT: %s" % ("PASS" if s["violations"] == 0 else "FAIL"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--prefix", required=True)
    ap.add_argument("--lbfwd", required=True)
    ap.add_argument("--lbctl", required=True)
    ap.add_argument("--appliance", required=True)
    ap.add_argument("--config", required=True)
    ap.add_argument("--socket", required=True)
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--network", required=True)
    ap.add_argument("--vni", type=int, required=True)
    ap.add_argument("--nic", action="append", required=True)
    ap.add_argument("--seed", type=int, default=int(time.time()) % 100000)
    ap.add_argument("--restart-every", type=float, default=20.0)
    ap.add_argument("--no-persist", dest="persist", action="store_false",
                    help="lbfwd runs with [flow] persist = false (its flows do not survive a restart)")
    args = ap.parse_args()
    soak = Soak(args)
    try:
        rc = soak.run()
    finally:
        soak.stop.set()
        if soak.lbfwd is not None and soak.lbfwd.poll() is None:
            soak.lbfwd.terminate()
            try:
                soak.lbfwd.wait(15)
            except subprocess.TimeoutExpired:
                soak.lbfwd.kill()
    sys.exit(rc)


if __name__ == "__main__":
    main()
