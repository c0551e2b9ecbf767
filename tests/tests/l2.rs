//! Layer-2 announcement end to end, once per dataplane backend (af_packet,
//! af_xdp, dpdk: each its own test, so a failure names the backend): two
//! lbfwd appliances on one bridge, each with `[l2]` and its own keepalived
//! (the shipped example, `config/examples/keepalived/`), and a router
//! namespace whose kernel reaches the VIPs on-link, by ARP and NDP; a
//! client behind the router keeps HTTP connections alive to VXLAN backends
//! (the kernel decapsulates). Network: `scripts/lib/topo-l2.sh`. VIPs:
//! 203.0.113.10 and 2001:db8:100::10 (on-link routes) and, MetalLB's
//! classic case, 10.0.2.100 and fd00:2::100 from a pool inside the
//! segment's subnet.
//!
//! In order, each with a time bound:
//! 0. bad input: `lbfwd check` on the appliance's config with an `[l2]`
//!    interface that is not a dataplane interface, or an unknown key, says
//!    so with file, line and field;
//! 1. before VRRP decides, nobody answers (both start with announcing off);
//! 2. keepalived makes lb1 master: `arping` and `ndisc6 -m` from the router
//!    get exactly lb1's MAC for every VIP (lb2 and both kernels are silent);
//! 3. kill -9 of lb1's lbfwd: keepalived's track script gives up, lb2
//!    becomes master, and the router's existing ARP and NDP entries move to
//!    lb2's MAC by its gratuitous ARP / unsolicited NA, without the router
//!    asking: a capture on the router's segment port holds no ARP request
//!    or neighbour solicitation from the router for a VIP between the kill
//!    and the move, and lb2 answered none; the kept-alive connections carry
//!    on, each on its target (same Maglev pick on lb2);
//! 4. afterwards exactly lb2 answers; `lbctl announce off` silences it and
//!    `on` brings it back; `lbctl announce` and `lbctl stats` show L2;
//! 5. the counters: `lbctl announce` and the Prometheus endpoint agree on
//!    requests answered and gratuitous packets sent (none zero);
//! 6. lb1 restarted: keepalived makes it master again (it has the higher
//!    priority) and exactly lb1 answers.
//!
//! Run: `flock /tmp/lbfwd-netns.lock cargo test -p lbfwd-tests --test l2 -- --nocapture --test-threads=1` as root.

use lbfwd_tests::cmd::{self, Output};
use lbfwd_tests::{
    lbfwd_binaries, require_root, within, workspace_root, Appliance, Backend, Binaries, FlowProbe,
    Node, Topology, TopologyInfo,
};
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The network's prefix, followed by the backend's letter (unique to
/// these tests).
const PREFIX: &str = "l2e";
/// Per-request limit of the kept-alive connections: longer than the
/// failover, so a connection fails only if it really broke.
const PROBE_TIMEOUT: Duration = Duration::from_secs(15);

/// Starts appliance `n` on `backend` (its config from `topo-l2.sh config`)
/// and waits until it answers on its socket.
fn start(topo: &Topology, bins: &Binaries, n: u8, backend: Backend) -> Appliance {
    let config = write_config(&topo.info(), n, backend, "lbfwd.toml", |t| t.to_string());
    let a = Appliance::start_with(topo, bins, n, config);
    wait_ready(&a);
    a
}

/// Writes appliance `n`'s config on `backend`, passed through `edit`, to
/// `lbN/FILE` of the network's state directory; its path.
fn write_config(
    topo: &TopologyInfo,
    n: u8,
    backend: Backend,
    file: &str,
    edit: impl FnOnce(&str) -> String,
) -> PathBuf {
    let text = topo
        .script("config", &[&n.to_string(), backend.config_name()])
        .and_then(Output::checked)
        .expect("topo-l2.sh config")
        .stdout;
    let path = topo.state_dir().join(format!("lb{n}/{file}"));
    std::fs::write(&path, edit(&text)).expect("write the config");
    path
}

/// Waits until the appliance's lbfwd answers `lbctl status`.
fn wait_ready(a: &Appliance) {
    within(
        &format!("lb{} answers on its socket", a.n),
        Duration::from_secs(30),
        || {
            let out = a.lbctl(&["status"]);
            out.success().then_some(()).ok_or(out.stderr)
        },
    );
}

/// What the layer-2 tests ask an appliance besides the shared calls.
trait L2Appliance {
    /// Whether lbfwd answers ARP/NDP now (keepalived turned it on).
    fn answering(&self) -> Result<bool, String>;
    /// One of `lbctl announce`'s layer-2 counters.
    fn l2_counter(&self, name: &str) -> u64;
    /// Its dataplane interface's MAC, lower case.
    fn mac(&self) -> String;
}

impl L2Appliance for Appliance {
    fn answering(&self) -> Result<bool, String> {
        let out = self.lbctl(&["-o", "json", "announce"]);
        if !out.success() {
            return Err(out.stderr);
        }
        let a: Value = serde_json::from_str(&out.stdout).map_err(|e| e.to_string())?;
        Ok(a["enabled"] == true && a["l2"]["answering"] == true)
    }

    fn l2_counter(&self, name: &str) -> u64 {
        self.announce()["l2"][name].as_u64().unwrap_or(u64::MAX)
    }

    fn mac(&self) -> String {
        self.topo.get(&format!("LB{}_MAC", self.n)).to_lowercase()
    }
}

/// Every `xx:xx:xx:xx:xx:xx` in `text`, lowercase.
fn macs_in(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_hexdigit() || c == ':'))
        .filter(|w| w.len() == 17 && w.split(':').count() == 6)
        .map(str::to_lowercase)
        .collect()
}

/// The MACs that answer the router's ARP requests (`arping`) or neighbour
/// solicitations (`ndisc6 -m`: every answer, not only the first) for `vip`.
fn answering_macs(topo: &TopologyInfo, vip: &str) -> BTreeSet<String> {
    let dev = topo.get("ROUTER_DEV");
    let out = if vip.contains(':') {
        topo.exec(
            Node::Router,
            "ndisc6",
            &["-m", "-n", "-r", "2", "-w", "700", vip, dev],
            Duration::from_secs(10),
        )
    } else {
        topo.exec(
            Node::Router,
            "arping",
            &["-r", "-c", "3", "-W", "0.3", "-w", "2", "-i", dev, vip],
            Duration::from_secs(10),
        )
    }
    .expect("arping / ndisc6");
    let relevant: String = out
        .stdout
        .lines()
        .filter(|l| !vip.contains(':') || l.contains("Target link-layer"))
        .collect::<Vec<_>>()
        .join("\n");
    macs_in(&relevant)
}

/// The VIPs of the network.
fn vips(topo: &TopologyInfo) -> Vec<String> {
    ["VIP4", "VIP6", "SEG_VIP4", "SEG_VIP6"]
        .iter()
        .map(|k| topo.get(k).to_string())
        .collect()
}

/// Exactly `mac` answers ARP/NDP for every VIP.
fn only_answers(topo: &TopologyInfo, who: &str, mac: &str) {
    for vip in vips(topo) {
        let got = answering_macs(topo, &vip);
        let want: BTreeSet<String> = [mac.to_string()].into_iter().collect();
        assert_eq!(
            got, want,
            "{vip}: answered by {got:?}, want only {who} ({mac})"
        );
    }
    eprintln!("ok: arping / ndisc6 -m: every VIP answered by {who} ({mac}) only");
}

/// The router's neighbour entry for `vip` on the segment: its MAC.
fn router_neighbour(topo: &TopologyInfo, vip: &str) -> Option<String> {
    let out = topo
        .exec(
            Node::Router,
            "ip",
            &["neigh", "show", vip, "dev", topo.get("ROUTER_DEV")],
            Duration::from_secs(5),
        )
        .ok()?;
    macs_in(&out.stdout).into_iter().next()
}

/// Every VIP's router neighbour entry has `mac`.
fn neighbours_at(topo: &TopologyInfo, mac: &str) -> Result<(), String> {
    for vip in vips(topo) {
        let got = router_neighbour(topo, &vip);
        if got.as_deref() != Some(mac) {
            return Err(format!("{vip} at {got:?}, want {mac}"));
        }
    }
    Ok(())
}

fn start_keepalived(topo: &TopologyInfo, bins: &Binaries, n: u8) {
    topo.script(
        "keepalived",
        &[&n.to_string(), &bins.lbctl.to_string_lossy()],
    )
    .and_then(Output::checked)
    .expect("topo-l2.sh keepalived");
}

/// The line (1-based) of the first line of `text` that starts with `prefix`.
fn line_of(text: &str, prefix: &str) -> usize {
    text.lines()
        .position(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starts with {prefix:?}"))
        + 1
}

/// `lbfwd check` on `config`, which must fail; its error output.
fn check_fails(bins: &Binaries, config: &Path) -> String {
    let out = cmd::run(
        Command::new(&bins.lbfwd)
            .arg("check")
            .arg("--config")
            .arg(config),
        Duration::from_secs(15),
    )
    .expect("run lbfwd check");
    assert!(
        !out.success(),
        "0: lbfwd check accepted {}: {}",
        config.display(),
        out.stdout
    );
    format!("{}{}", out.stdout, out.stderr)
}

/// Step 0: an `[l2]` interface that is not a dataplane interface (on DPDK,
/// the classic mistake: the kernel's name instead of the port's) and an
/// unknown key are refused with file, line and field.
fn bad_input_is_a_located_error(topo: &TopologyInfo, bins: &Binaries, backend: Backend) {
    let wrong = match backend {
        Backend::Dpdk => topo.get("LB_DEV").to_string(),
        _ => "lo".to_string(),
    };
    let mut bad_line = 0;
    let path = write_config(topo, 1, backend, "bad-interface.toml", |t| {
        let at = t.find("[l2]\ninterfaces = [").expect("[l2] in the config");
        let end = at + t[at..].find('\n').expect("a line") + 1;
        let line_end = end + t[end..].find('\n').expect("a line");
        let edited = format!("{}interfaces = [\"{wrong}\"]{}", &t[..end], &t[line_end..]);
        // The dataplane's own `interfaces` line comes first; the [l2] one
        // is the one naming `wrong`.
        bad_line = edited
            .lines()
            .position(|l| l == format!("interfaces = [\"{wrong}\"]"))
            .expect("the edited line")
            + 1;
        edited
    });
    let msg = check_fails(bins, &path);
    let located = format!("{}:{bad_line}:", path.display());
    assert!(
        msg.contains(&located)
            && msg.contains("l2.interfaces[0]")
            && msg.contains(&format!("{wrong:?} is not a dataplane interface")),
        "0: want {located} l2.interfaces[0] ... not a dataplane interface, got: {msg}"
    );
    let path = write_config(topo, 1, backend, "bad-key.toml", |t| {
        t.replacen("[l2]\n", "[l2]\ngarp_count = 3\n", 1)
    });
    let text = std::fs::read_to_string(&path).expect("read back");
    let located = format!("{}:{}:", path.display(), line_of(&text, "garp_count"));
    let msg = check_fails(bins, &path);
    assert!(
        msg.contains(&located) && msg.contains("garp_count"),
        "0: want {located} ... garp_count, got: {msg}"
    );
    eprintln!("ok: 0: bad [l2] interface and unknown key: located errors");
}

/// A capture of what the router sends on the segment (`tcpdump` in its
/// namespace): ARP requests and neighbour solicitations.
struct RouterCapture {
    child: Child,
    file: PathBuf,
}

impl RouterCapture {
    /// Starts capturing; returns once tcpdump listens.
    fn start(topo: &TopologyInfo) -> RouterCapture {
        let file = topo.state_dir().join("router-asks.pcap");
        let filter = format!(
            "ether src {} and (arp or (icmp6 and ip6[40] == 135))",
            topo.get("ROUTER_MAC")
        );
        let mut child = topo
            .command(Node::Router, "tcpdump")
            .args(["-n", "-U", "-i", topo.get("ROUTER_DEV"), "-w"])
            .arg(&file)
            .arg(&filter)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tcpdump");
        let mut line = String::new();
        BufReader::new(child.stderr.take().expect("stderr"))
            .read_line(&mut line)
            .expect("tcpdump's first line");
        assert!(line.contains("listening on"), "tcpdump: {line}");
        RouterCapture { child, file }
    }

    /// Stops it; the requests it saw for `vips`, one line each.
    fn asked_for(mut self, vips: &[String]) -> Vec<String> {
        cmd::signal(self.child.id(), "INT");
        let _ = cmd::wait_deadline(&mut self.child, Duration::from_secs(5));
        let out = cmd::run(
            Command::new("tcpdump").args(["-n", "-r"]).arg(&self.file),
            Duration::from_secs(10),
        )
        .expect("tcpdump -r");
        out.stdout
            .lines()
            .filter(|l| {
                vips.iter().any(|v| {
                    l.contains(&format!("who-has {v} ")) || l.contains(&format!("who has {v},"))
                })
            })
            .map(str::to_string)
            .collect()
    }
}

impl Drop for RouterCapture {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            cmd::signal(self.child.id(), "KILL");
            let _ = cmd::wait_deadline(&mut self.child, Duration::from_secs(5));
        }
    }
}

/// The value of series `name{labels}` in a Prometheus exposition.
fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no {series} in the metrics:\n{text}")) as u64
}

/// `GET /metrics` of appliance `a`'s endpoint, in its namespace.
fn metrics(a: &Appliance) -> String {
    let url = format!("http://{}/metrics", a.topo.get("METRICS"));
    let out = cmd::run(
        Command::new("ip").args(["netns", "exec", &a.ns(), "curl", "-sS", "-m", "5", &url]),
        Duration::from_secs(10),
    )
    .expect("curl the metrics");
    assert!(out.success(), "curl {url}: {}", out.stderr);
    out.stdout
}

/// Step 5: `lbctl announce` and the Prometheus endpoint agree on the L2
/// counters, which are not zero (the endpoint read between two `lbctl` reads: a request may be
/// answered meanwhile).
fn counters_agree(a: &Appliance) {
    let names = [
        (
            "arp_answered",
            "lbfwd_l2_requests_answered_total{protocol=\"arp\"}",
        ),
        (
            "nd_answered",
            "lbfwd_l2_requests_answered_total{protocol=\"ndp\"}",
        ),
        (
            "gratuitous_sent",
            "lbfwd_l2_gratuitous_total{result=\"sent\"}",
        ),
    ];
    let before: Vec<u64> = names.iter().map(|(n, _)| a.l2_counter(n)).collect();
    let text = metrics(a);
    let after: Vec<u64> = names.iter().map(|(n, _)| a.l2_counter(n)).collect();
    for (i, (name, series)) in names.iter().enumerate() {
        let m = metric(&text, series);
        assert!(
            before[i] <= m && m <= after[i],
            "5: {series} = {m}, lbctl announce {name} = {} then {}",
            before[i],
            after[i]
        );
    }
    assert_eq!(metric(&text, "lbfwd_l2_answering"), 1, "5: {text}");
    assert!(
        after.iter().all(|&n| n > 0),
        "5: lbctl announce counters (arp, nd answered; gratuitous sent) = {after:?}"
    );
    eprintln!(
        "ok: 5: lbctl announce and /metrics agree: arp answered {}, nd answered {}, gratuitous sent {}",
        after[0], after[1], after[2]
    );
}

/// The whole scenario (module docs) on `backend`.
fn keepalived_moves_the_vips(backend: Backend) {
    let name = format!("l2::keepalived_moves_the_vips::{}", backend.config_name());
    if !require_root(&name) {
        return;
    }
    let Some(bins) = lbfwd_binaries(backend).expect("build lbfwd") else {
        eprintln!(
            "\n!!!!! SKIPPED {name}: lbfwd cannot be built with the {} feature here \
             (pkg-config finds no {}) !!!!!\n",
            backend.cargo_feature().unwrap_or_default(),
            backend.pkg_config_modules().join("/"),
        );
        return;
    };
    let _serial = lbfwd_tests::serial();
    let began = Instant::now();
    let prefix = format!("{PREFIX}{}", backend.letter());
    let topo = Topology::up_with(&workspace_root().join("scripts/lib/topo-l2.sh"), &prefix)
        .expect("topo-l2.sh up");
    bad_input_is_a_located_error(&topo.info(), &bins, backend);
    let mut lb1 = start(&topo, &bins, 1, backend);
    let lb2 = start(&topo, &bins, 2, backend);
    let (mac1, mac2) = (lb1.mac(), lb2.mac());
    eprintln!(
        "[{prefix}] {backend}: lb1 {mac1}, lb2 {mac2}, up after {:.1} s",
        began.elapsed().as_secs_f64()
    );

    // 1. Announcing starts off: nobody answers, the kernels neither.
    for vip in [topo.get("VIP4"), topo.get("SEG_VIP6")] {
        let got = answering_macs(&topo, vip);
        assert!(
            got.is_empty(),
            "1: {vip} answered by {got:?} before VRRP decided"
        );
    }
    eprintln!("ok: 1: silent before keepalived decides");

    // 2. keepalived: lb1 (priority 150) becomes master.
    start_keepalived(&topo, &bins, 1);
    start_keepalived(&topo, &bins, 2);
    within(
        "2: keepalived makes lb1 master",
        Duration::from_secs(20),
        || match (lb1.answering()?, lb2.answering()?) {
            (true, false) => Ok(()),
            other => Err(format!("answering (lb1, lb2) = {other:?}")),
        },
    );
    only_answers(&topo, "lb1", &mac1);

    // 3. kill -9 of lb1's lbfwd, with kept-alive connections to every VIP.
    let vip_list = vips(&topo);
    let addrs: Vec<&str> = vip_list.iter().map(String::as_str).collect();
    let (mut probe, conns) = FlowProbe::start(&topo, &addrs, 4, PROBE_TIMEOUT).expect("probe");
    let failed: Vec<_> = conns.iter().filter(|c| c.backend.is_none()).collect();
    assert!(
        failed.is_empty(),
        "3: connections through lb1 failed to open: {failed:?}"
    );
    within(
        "3: the router's neighbour entries point at lb1",
        Duration::from_secs(5),
        || neighbours_at(&topo, &mac1),
    );
    let asked = (
        lb2.l2_counter("arp_answered"),
        lb2.l2_counter("nd_answered"),
    );
    assert_eq!(asked, (0, 0), "3: lb2 answered while it was backup");
    let capture = RouterCapture::start(&topo);
    lb1.kill9();
    within(
        "3: lb2 takes over (keepalived: track script, VRRP, notify)",
        Duration::from_secs(15),
        || match lb2.answering()? {
            true => Ok(()),
            false => Err("lb2 not answering".into()),
        },
    );
    within(
        "3: the router's ARP and NDP entries move to lb2 by themselves",
        Duration::from_secs(5),
        || neighbours_at(&topo, &mac2),
    );
    let asked = capture.asked_for(&vip_list);
    assert!(
        asked.is_empty(),
        "3: the router asked for a VIP between the kill and the move: {asked:#?}"
    );
    let answered = (
        lb2.l2_counter("arp_answered"),
        lb2.l2_counter("nd_answered"),
    );
    assert_eq!(
        answered,
        (0, 0),
        "3: lb2 answered requests (ARP, NDP) instead of the router taking the gratuitous packets"
    );
    let sent = lb2.l2_counter("gratuitous_sent");
    assert!(sent >= 4, "3: lb2 sent {sent} gratuitous packets");
    eprintln!(
        "ok: 3: router entries moved to lb2 with no request from the router (capture) \
         and none answered by lb2; {sent} gratuitous packets"
    );
    probe.mark().expect("mark");
    // A request lost during the failover (about 2-3 s without an answering
    // appliance) is retransmitted by TCP with exponential backoff: the next
    // try may come up to ~6 s after the loss.
    std::thread::sleep(Duration::from_secs(8));
    let summary = probe
        .finish(Duration::from_secs(40))
        .expect("probe summary");
    for c in &summary {
        assert!(
            c.error.is_none() && c.ok_after > 0 && c.seen.len() == 1,
            "3: connection {} to {} broke or moved: {c:?}",
            c.id,
            c.addr
        );
    }
    eprintln!(
        "ok: 3: {} kept-alive connections carried on through lb2, each on its target",
        summary.len()
    );

    // 4. Exactly the new master answers; announce off silences it. The
    // router's capture, as in 3, now sees the requests of arping and
    // ndisc6 for every VIP: it would have seen them in 3.
    let capture = RouterCapture::start(&topo);
    only_answers(&topo, "lb2", &mac2);
    let asked = capture.asked_for(&vip_list);
    for vip in &vip_list {
        assert!(
            asked.iter().any(|l| l.contains(&format!(" {vip}"))),
            "4: the router's capture missed its own requests for {vip}: {asked:#?}"
        );
    }
    lb2.lbctl_ok(&["announce", "off"]);
    for vip in [topo.get("VIP4"), topo.get("VIP6")] {
        let got = answering_macs(&topo, vip);
        assert!(
            got.is_empty(),
            "4: {vip} answered by {got:?} after announce off"
        );
    }
    lb2.lbctl_ok(&["announce", "on"]);
    let got = answering_macs(&topo, topo.get("VIP4"));
    assert_eq!(got.into_iter().collect::<Vec<_>>(), vec![mac2.clone()]);
    let text = lb2.lbctl_ok(&["announce"]);
    assert!(
        text.contains("answering ARP/NDP") && text.contains(&mac2),
        "4: lbctl announce: {text}"
    );
    let stats = lb2.lbctl_ok(&["stats"]);
    assert!(stats.contains("ARP answered"), "4: lbctl stats: {stats}");
    eprintln!("ok: 4: announce off/on, lbctl announce and stats show L2");

    // 5. The counters, in lbctl and in the metrics (lb2 has answered the
    // requests of 4 by now).
    counters_agree(&lb2);

    // 6. lb1 back: it has the higher priority and takes over again.
    lb1.spawn();
    wait_ready(&lb1);
    within(
        "6: lb1 master again once its lbfwd answers",
        Duration::from_secs(20),
        || match (lb1.answering()?, lb2.answering()?) {
            (true, false) => Ok(()),
            other => Err(format!("answering (lb1, lb2) = {other:?}")),
        },
    );
    within(
        "6: the router's entries move back to lb1",
        Duration::from_secs(8),
        || neighbours_at(&topo, &mac1),
    );
    only_answers(&topo, "lb1", &mac1);
    eprintln!(
        "ok: l2 scenario on {backend} in {:.1} s",
        began.elapsed().as_secs_f64()
    );
}

#[test]
fn keepalived_moves_the_vips_on_af_packet() {
    keepalived_moves_the_vips(Backend::AfPacket);
}

#[test]
fn keepalived_moves_the_vips_on_af_xdp() {
    keepalived_moves_the_vips(Backend::AfXdp);
}

#[test]
fn keepalived_moves_the_vips_on_dpdk() {
    keepalived_moves_the_vips(Backend::Dpdk);
}
