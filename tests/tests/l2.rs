//! Layer-2 announcement end to end: two lbfwd appliances on one bridge,
//! each with `[l2]` and its own keepalived (the shipped example,
//! `config/examples/keepalived/`), and a router namespace whose kernel
//! reaches the VIPs on-link, by ARP and NDP; a client behind the router
//! keeps HTTP connections alive to VXLAN backends (the kernel decapsulates).
//! Network: `scripts/lib/topo-l2.sh`. VIPs: 203.0.113.10 and
//! 2001:db8:100::10 (on-link routes) and, MetalLB's classic case,
//! 10.0.2.100 and fd00:2::100 from a pool inside the segment's subnet.
//!
//! In order, each with a time bound:
//! 1. before VRRP decides, nobody answers (both start with announcing off);
//! 2. keepalived makes lb1 master: `arping` and `ndisc6 -m` from the router
//!    get exactly lb1's MAC for every VIP (lb2 and both kernels are silent);
//! 3. kill -9 of lb1's lbfwd: keepalived's track script gives up, lb2
//!    becomes master, and the router's existing ARP and NDP entries move to
//!    lb2's MAC by its gratuitous ARP / unsolicited NA, without the router
//!    asking (lb2 answered no request); the kept-alive connections carry
//!    on, each on its target (same Maglev pick on lb2);
//! 4. afterwards exactly lb2 answers; `lbctl announce off` silences it and
//!    `on` brings it back; `lbctl announce` and `lbctl stats` show L2;
//! 5. lb1 restarted: keepalived makes it master again (it has the higher
//!    priority) and exactly lb1 answers.
//!
//! Run: `flock /tmp/lbfwd-netns.lock cargo test -p lbfwd-tests --test l2 -- --nocapture` as root.

use lbfwd_tests::cmd::Output;
use lbfwd_tests::{
    lbfwd_binaries, require_root, within, workspace_root, Appliance, Backend, Binaries, FlowProbe,
    Node, Topology, TopologyInfo,
};
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

/// The network's prefix (unique to this test).
const PREFIX: &str = "l2e";
/// Per-request limit of the kept-alive connections: longer than the
/// failover, so a connection fails only if it really broke.
const PROBE_TIMEOUT: Duration = Duration::from_secs(15);

/// Starts appliance `n` and waits until it answers on its socket.
fn start(topo: &Topology, bins: &Binaries, n: u8) -> Appliance {
    let a = Appliance::start(topo, bins, n);
    wait_ready(&a);
    a
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

#[test]
fn keepalived_moves_the_vips_between_two_appliances_by_arp_and_ndp() {
    if !require_root("l2::keepalived_moves_the_vips") {
        return;
    }
    let _serial = lbfwd_tests::serial();
    let bins = lbfwd_binaries(Backend::AfPacket)
        .expect("build lbfwd")
        .expect("af_packet is always built");
    let topo = Topology::up_with(&workspace_root().join("scripts/lib/topo-l2.sh"), PREFIX)
        .expect("topo-l2.sh up");
    let mut lb1 = start(&topo, &bins, 1);
    let lb2 = start(&topo, &bins, 2);
    let (mac1, mac2) = (lb1.mac(), lb2.mac());

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
        "3: connections failed to open: {failed:?}"
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
    let asked = (
        lb2.l2_counter("arp_answered"),
        lb2.l2_counter("nd_answered"),
    );
    assert_eq!(
        asked,
        (0, 0),
        "3: the router asked lb2 (ARP, NDP answered) instead of taking the gratuitous packets"
    );
    let sent = lb2.l2_counter("gratuitous_sent");
    assert!(sent >= 4, "3: lb2 sent {sent} gratuitous packets");
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

    // 4. Exactly the new master answers; announce off silences it.
    only_answers(&topo, "lb2", &mac2);
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

    // 5. lb1 back: it has the higher priority and takes over again.
    lb1.spawn();
    wait_ready(&lb1);
    within(
        "5: lb1 master again once its lbfwd answers",
        Duration::from_secs(20),
        || match (lb1.answering()?, lb2.answering()?) {
            (true, false) => Ok(()),
            other => Err(format!("answering (lb1, lb2) = {other:?}")),
        },
    );
    within(
        "5: the router's entries move back to lb1",
        Duration::from_secs(8),
        || neighbours_at(&topo, &mac1),
    );
    only_answers(&topo, "lb1", &mac1);
}
