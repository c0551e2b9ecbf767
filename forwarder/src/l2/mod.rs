//! Layer-2 announcement of the VIPs (`[l2]`): on a plain segment without a
//! BGP router, the appliance that announces answers ARP requests and IPv6
//! neighbour solicitations for its VIPs with its interface's MAC, and, when
//! announcing turns on, sends gratuitous ARP and unsolicited neighbour
//! advertisements (Override) so that neighbours holding another
//! appliance's MAC move over without asking. Which appliance announces is
//! decided outside lbfwd (VRRP through keepalived calling `lbctl announce
//! on|off`).
//!
//! ```text
//! announcer --set(on, VIPs)--> L2 --flag (AtomicBool)--> workers: ARP/NS answered
//!                               \--schedule thread--> per-interface outbox --> worker TX
//! ```
//!
//! - The answers are given by the workers ([`Responder`], a check in the
//!   classify stage for non-IP frames and ICMPv6), from the VIPs of the
//!   current tables and the announce flag, read once per burst.
//! - The gratuitous frames are built on the control side and handed to the
//!   first worker of each interface through a bounded queue it drains after
//!   every burst, so they leave through the dataplane on every backend
//!   (AF_PACKET and AF_XDP: the worker's TX ring; DPDK: its TX queue).
//! - The appliance's kernel owns no VIP, so it answers nothing for one. On
//!   kernel interfaces (AF_PACKET, AF_XDP) lbfwd joins each IPv6 VIP's
//!   solicited-node group while announcing, so the NIC accepts (and MLD
//!   snooping switches forward) the solicitations; DPDK ports run in
//!   all-multicast mode instead.

mod frames;
mod responder;

pub use frames::{gratuitous_arp, solicited_node, unsolicited_na, SmallFrame};
pub use responder::{Answer, Responder};

use crate::counters::Counter;
use lbfwd_config::l2::L2 as L2Config;
use lbfwd_control::announce::{L2Interface, L2Status};
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv6Addr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// Gratuitous frames one interface's outbox holds (a burst for every VIP
/// of a large appliance; more are counted as dropped).
const OUTBOX_FRAMES: usize = 4096;

/// Errors of setting up layer-2 announcement.
#[derive(Debug, thiserror::Error)]
pub enum L2Error {
    /// The MAC of an interface cannot be read.
    #[error("[l2] interface {name:?}: cannot read its MAC address ({path}): {source}")]
    Mac {
        /// The interface.
        name: String,
        /// Where it was read from.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The schedule thread did not start.
    #[error("[l2]: cannot start the gratuitous sender: {0}")]
    Thread(#[source] std::io::Error),
}

/// One worker's layer-2 counters (written by that worker only).
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct WorkerL2Counters {
    /// ARP requests answered.
    pub arp_answered: Counter,
    /// Neighbour solicitations answered.
    pub nd_answered: Counter,
    /// Gratuitous ARP / unsolicited NA frames handed to the TX queue.
    pub gratuitous_sent: Counter,
    /// Gratuitous frames the TX queue had no room for.
    pub gratuitous_dropped: Counter,
}

/// One `[l2]` interface.
#[derive(Debug)]
struct Interface {
    name: String,
    /// Set once: from sysfs (kernel interfaces) or the DPDK port.
    mac: OnceLock<[u8; 6]>,
    /// Kernel interface index (kernel interfaces only: multicast joins).
    ifindex: Option<u32>,
    /// The first worker receiving on it gets the receiver.
    outbox: SyncSender<SmallFrame>,
    outbox_rx: Mutex<Option<Receiver<SmallFrame>>>,
    /// The socket holding its solicited-node group memberships.
    groups: Mutex<Option<UdpSocket>>,
}

/// A VIP's gratuitous repeats in progress.
#[derive(Debug)]
struct Burst {
    vip: IpAddr,
    start: Instant,
    next: usize,
}

/// What the schedule thread works on.
#[derive(Debug, Default)]
struct Plan {
    on: bool,
    vips: BTreeSet<IpAddr>,
    bursts: Vec<Burst>,
    last_refresh: Option<Instant>,
    joined: BTreeSet<Ipv6Addr>,
    stopping: bool,
}

/// Layer-2 announcement of one lbfwd: the announce flag the workers read,
/// the interfaces, the per-worker counters and the gratuitous schedule.
#[derive(Debug)]
pub struct L2 {
    config: L2Config,
    schedule: Vec<Duration>,
    flag: Arc<AtomicBool>,
    interfaces: Vec<Interface>,
    /// Per worker: the index of its `[l2]` interface, if it has one.
    worker_interface: Vec<Option<usize>>,
    counters: Vec<Arc<WorkerL2Counters>>,
    /// Frames the outbox had no room for (control side).
    outbox_full: AtomicU64,
    plan: Mutex<Plan>,
    wake: Condvar,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl L2 {
    /// Layer-2 announcement for `config`, with worker `i` receiving on
    /// `worker_interfaces[i]`. `kernel` tells whether the interfaces are
    /// kernel interfaces (AF_PACKET, AF_XDP): their MACs are read from
    /// sysfs now; DPDK ports get theirs through [`L2::set_mac`].
    pub fn new(
        config: &L2Config,
        worker_interfaces: &[Option<String>],
        kernel: bool,
    ) -> Result<Arc<L2>, L2Error> {
        let mut interfaces = Vec::new();
        for name in &config.interfaces {
            let (tx, rx) = sync_channel(OUTBOX_FRAMES);
            let i = Interface {
                name: name.clone(),
                mac: OnceLock::new(),
                ifindex: None,
                outbox: tx,
                outbox_rx: Mutex::new(Some(rx)),
                groups: Mutex::new(None),
            };
            interfaces.push(i);
        }
        if kernel {
            for i in &mut interfaces {
                let path = format!("/sys/class/net/{}/address", i.name);
                let text = std::fs::read_to_string(&path).map_err(|source| L2Error::Mac {
                    name: i.name.clone(),
                    path: path.clone(),
                    source,
                })?;
                let mac = parse_mac(text.trim()).ok_or_else(|| L2Error::Mac {
                    name: i.name.clone(),
                    path: path.clone(),
                    source: std::io::Error::other(format!("{:?} is not a MAC", text.trim())),
                })?;
                let _ = i.mac.set(mac);
                let index = std::fs::read_to_string(format!("/sys/class/net/{}/ifindex", i.name))
                    .ok()
                    .and_then(|t| t.trim().parse().ok());
                i.ifindex = index;
            }
        }
        let worker_interface = worker_interfaces
            .iter()
            .map(|w| {
                w.as_ref()
                    .and_then(|n| interfaces.iter().position(|i| &i.name == n))
            })
            .collect();
        let l2 = Arc::new(L2 {
            schedule: config.schedule(),
            config: config.clone(),
            flag: Arc::new(AtomicBool::new(false)),
            interfaces,
            worker_interface,
            counters: worker_interfaces
                .iter()
                .map(|_| Arc::new(WorkerL2Counters::default()))
                .collect(),
            outbox_full: AtomicU64::new(0),
            plan: Mutex::new(Plan::default()),
            wake: Condvar::new(),
            thread: Mutex::new(None),
        });
        let me = Arc::clone(&l2);
        let handle = std::thread::Builder::new()
            .name("lbfwd-l2".into())
            .spawn(move || me.run_schedule())
            .map_err(L2Error::Thread)?;
        *l2.thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
        Ok(l2)
    }

    /// Sets the MAC of a DPDK port (its name as in `[l2] interfaces`).
    pub fn set_mac(&self, name: &str, mac: [u8; 6]) {
        if let Some(i) = self.interfaces.iter().find(|i| i.name == name) {
            let _ = i.mac.set(mac);
        }
    }

    /// Worker `worker`'s responder: inactive unless the worker receives on
    /// an `[l2]` interface whose MAC is known. The first worker of each
    /// interface also sends its gratuitous frames.
    pub fn responder(&self, worker: usize) -> Responder {
        let Some(Some(index)) = self.worker_interface.get(worker) else {
            return Responder::default();
        };
        let interface = &self.interfaces[*index];
        let Some(mac) = interface.mac.get() else {
            return Responder::default();
        };
        let outbox = interface
            .outbox_rx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        Responder::new(
            *mac,
            Arc::clone(&self.flag),
            Arc::clone(&self.counters[worker]),
            outbox,
        )
    }

    fn lock(&self) -> MutexGuard<'_, Plan> {
        self.plan.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The announcer's decision: announcing `on` or not, for `vips` (those
    /// with a usable destination). Turning on (or a VIP that joins while
    /// on) starts its gratuitous schedule; turning off silences the
    /// workers at their next burst.
    pub fn set(&self, on: bool, vips: BTreeSet<IpAddr>) {
        let mut plan = self.lock();
        self.flag.store(on, Ordering::Release);
        let now = Instant::now();
        if on {
            let fresh: Vec<IpAddr> = if plan.on {
                vips.difference(&plan.vips).copied().collect()
            } else {
                vips.iter().copied().collect()
            };
            if !fresh.is_empty() {
                eprintln!(
                    "lbfwd: l2: announcing {} on {}",
                    list(&fresh),
                    self.config.interfaces.join(", ")
                );
            }
            plan.bursts.retain(|b| vips.contains(&b.vip));
            for vip in fresh {
                plan.bursts.push(Burst {
                    vip,
                    start: now,
                    next: 0,
                });
            }
            if !plan.on {
                plan.last_refresh = Some(now);
            }
        } else {
            if plan.on && !plan.vips.is_empty() {
                eprintln!("lbfwd: l2: withdrawn (no more ARP/NDP answers)");
            }
            plan.bursts.clear();
        }
        plan.on = on;
        plan.vips = vips;
        self.update_groups(&mut plan);
        drop(plan);
        self.wake.notify_all();
    }

    /// Joins the solicited-node groups of the IPv6 VIPs while announcing,
    /// leaves them otherwise (kernel interfaces only).
    fn update_groups(&self, plan: &mut Plan) {
        let wanted: BTreeSet<Ipv6Addr> = if plan.on {
            plan.vips
                .iter()
                .filter_map(|v| match v {
                    IpAddr::V6(a) => Some(Ipv6Addr::from(solicited_node(a.octets()))),
                    IpAddr::V4(_) => None,
                })
                .collect()
        } else {
            BTreeSet::new()
        };
        if wanted == plan.joined {
            return;
        }
        for i in &self.interfaces {
            let Some(index) = i.ifindex else { continue };
            let mut socket = i.groups.lock().unwrap_or_else(|e| e.into_inner());
            if socket.is_none() {
                match UdpSocket::bind("[::]:0") {
                    Ok(s) => *socket = Some(s),
                    Err(e) => {
                        eprintln!(
                            "lbfwd: l2: {}: no IPv6 socket for the solicited-node groups: {e}",
                            i.name
                        );
                        continue;
                    }
                }
            }
            let Some(s) = socket.as_ref() else { continue };
            for g in plan.joined.difference(&wanted) {
                let _ = s.leave_multicast_v6(g, index);
            }
            for g in wanted.difference(&plan.joined) {
                if let Err(e) = s.join_multicast_v6(g, index) {
                    eprintln!("lbfwd: l2: {}: cannot join {g}: {e}", i.name);
                }
            }
        }
        plan.joined = wanted;
    }

    /// The schedule thread: sends each VIP's gratuitous frames at the
    /// offsets of the schedule, and the periodic refresh.
    fn run_schedule(&self) {
        let mut plan = self.lock();
        loop {
            if plan.stopping {
                return;
            }
            let now = Instant::now();
            let mut next: Option<Instant> = None;
            let mut due = Vec::new();
            for b in &mut plan.bursts {
                while b.next < self.schedule.len() && b.start + self.schedule[b.next] <= now {
                    due.push(b.vip);
                    b.next += 1;
                }
                if let Some(at) = self.schedule.get(b.next) {
                    let t = b.start + *at;
                    next = Some(next.map_or(t, |n| n.min(t)));
                }
            }
            plan.bursts.retain(|b| b.next < self.schedule.len());
            if let (true, Some(every), Some(last)) =
                (plan.on, self.config.refresh, plan.last_refresh)
            {
                if last + every <= now {
                    due.extend(plan.vips.iter().copied());
                    plan.last_refresh = Some(now);
                }
                let t = plan.last_refresh.unwrap_or(now) + every;
                next = Some(next.map_or(t, |n| n.min(t)));
            }
            for vip in due {
                self.send_gratuitous(vip);
            }
            let wait = next
                .map(|n| n.saturating_duration_since(Instant::now()))
                .unwrap_or(Duration::from_secs(3600));
            plan = self
                .wake
                .wait_timeout(plan, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Queues one gratuitous frame for `vip` on every interface.
    fn send_gratuitous(&self, vip: IpAddr) {
        for i in &self.interfaces {
            let Some(mac) = i.mac.get() else { continue };
            let frame = match vip {
                IpAddr::V4(a) => gratuitous_arp(*mac, a.octets()),
                IpAddr::V6(a) => unsolicited_na(*mac, a.octets()),
            };
            if i.outbox.try_send(frame).is_err() {
                self.outbox_full.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Stops the schedule thread.
    pub fn stop(&self) {
        self.lock().stopping = true;
        self.wake.notify_all();
        let handle = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }

    /// What `lbctl announce` and `lbctl stats` show.
    pub fn status(&self) -> L2Status {
        let sum = |f: fn(&WorkerL2Counters) -> u64| self.counters.iter().map(|c| f(c)).sum();
        L2Status {
            answering: self.flag.load(Ordering::Acquire),
            interfaces: self
                .interfaces
                .iter()
                .map(|i| L2Interface {
                    name: i.name.clone(),
                    mac: i.mac.get().map(|m| format_mac(*m)),
                })
                .collect(),
            arp_answered: sum(|c| c.arp_answered.get()),
            nd_answered: sum(|c| c.nd_answered.get()),
            gratuitous_sent: sum(|c| c.gratuitous_sent.get()),
            gratuitous_dropped: sum(|c| c.gratuitous_dropped.get())
                + self.outbox_full.load(Ordering::Relaxed),
        }
    }
}

fn list(v: &[IpAddr]) -> String {
    v.iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `aa:bb:cc:dd:ee:ff` into bytes.
fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

fn format_mac(m: [u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

impl crate::io::open::MacSink for L2 {
    fn set_mac(&self, interface: &str, mac: [u8; 6]) {
        L2::set_mac(self, interface, mac);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(refresh: Option<Duration>) -> L2Config {
        L2Config {
            interfaces: vec!["dp0".into()],
            gratuitous_interval: Duration::from_millis(100),
            gratuitous_duration: Duration::from_millis(250),
            refresh,
        }
    }

    #[test]
    fn turning_on_queues_the_schedule_for_every_vip_and_off_silences() {
        let l2 = L2::new(
            &config(None),
            &[Some("dp0".into()), Some("dp0".into())],
            false,
        )
        .unwrap();
        l2.set_mac("dp0", [2, 0, 0, 0, 0, 9]);
        let first = l2.responder(0);
        let second = l2.responder(1);
        let vips: BTreeSet<IpAddr> = ["10.0.0.1".parse().unwrap(), "2001:db8::1".parse().unwrap()]
            .into_iter()
            .collect();
        l2.set(true, vips.clone());
        assert!(l2.status().answering);
        // Schedule 0, 100, 200 ms: three frames per VIP.
        std::thread::sleep(Duration::from_millis(450));
        let mut seen = Vec::new();
        first.drain(&mut |f| {
            seen.push(f.to_vec());
            true
        });
        second.drain(&mut |_| panic!("only the first worker of an interface sends"));
        assert_eq!(seen.len(), 6);
        assert_eq!(seen.iter().filter(|f| f[12..14] == [8, 6]).count(), 3);
        assert_eq!(l2.status().gratuitous_sent, 6);
        // Already on: the same VIPs again start nothing new.
        l2.set(true, vips.clone());
        std::thread::sleep(Duration::from_millis(50));
        first.drain(&mut |_| panic!("nothing new"));
        l2.set(false, vips);
        assert!(!l2.status().answering);
        l2.stop();
    }

    #[test]
    fn refresh_resends_while_on() {
        let l2 = L2::new(
            &config(Some(Duration::from_millis(300))),
            &[Some("dp0".into())],
            false,
        )
        .unwrap();
        l2.set_mac("dp0", [2, 0, 0, 0, 0, 9]);
        let r = l2.responder(0);
        l2.set(true, ["10.0.0.1".parse().unwrap()].into_iter().collect());
        std::thread::sleep(Duration::from_millis(700));
        let mut n = 0;
        r.drain(&mut |_| {
            n += 1;
            true
        });
        // 3 of the schedule + 2 refreshes (300, 600 ms).
        assert_eq!(n, 5);
        l2.stop();
    }

    /// Tables with one load balancer on 10.0.0.1 and 2001:db8::1, with
    /// `targets` destinations.
    fn tables(targets: u8) -> crate::tables::Tables {
        use lbfwd_config::model::*;
        let lb = ResolvedLoadBalancer {
            name: "web".into(),
            lb_type: LoadBalancerType::Public,
            network: "n".into(),
            vni: 100,
            ips: ["10.0.0.1", "2001:db8::1"]
                .iter()
                .map(|a| AssignedIp {
                    addr: a.parse().unwrap(),
                    pool: None,
                })
                .collect(),
            ports: vec![PortRange {
                protocol: Protocol::Tcp,
                first: 80,
                last: 80,
            }],
            icmp_echo: IcmpEcho::Drop,
            maglev_table_size: 251,
            destinations: (0..targets)
                .map(|i| Destination {
                    name: format!("be{i}"),
                    uid: String::new(),
                    underlay: IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 3, i)),
                    mac: Some(MacAddr([2, 0, 0, 0, 3, i])),
                    weight: 1,
                })
                .collect(),
        };
        let u = crate::tables::UnderlayParams {
            encap: Encap::Vxlan { port: 4789 },
            source_ipv4: Some(std::net::Ipv4Addr::new(10, 0, 2, 2)),
            source_ipv6: None,
            source_mac: [2, 0, 0, 0, 2, 2],
            next_hop_mac: [2, 0, 0, 0, 2, 1],
            mtu: 1500,
        };
        let resolved = Resolved {
            load_balancers: vec![lb],
        };
        crate::tables::TableBuilder::new()
            .build(&resolved, &u, 1)
            .unwrap()
            .0
    }

    /// An ARP request for `target` from 02:bb::2 / 10.0.0.9, in a buffer
    /// with headroom.
    fn arp_request(target: [u8; 4]) -> Vec<u8> {
        let mut f = vec![0u8; crate::frame::HEADROOM + 60];
        let d = &mut f[crate::frame::HEADROOM..];
        d[0..6].copy_from_slice(&[0xff; 6]);
        d[6..12].copy_from_slice(&[2, 0xbb, 0, 0, 0, 2]);
        d[12..14].copy_from_slice(&[8, 6]);
        crate::wire::arp::ArpRepr {
            operation: crate::wire::arp::ArpOperation::Request,
            sender_mac: [2, 0xbb, 0, 0, 0, 2],
            sender_ip: [10, 0, 0, 9],
            target_mac: [0; 6],
            target_ip: target,
        }
        .emit(&mut d[14..])
        .unwrap();
        f
    }

    /// A neighbour solicitation for `target` (2001:db8::9 asking), with a
    /// source link-layer address option, in a buffer with headroom and
    /// tailroom.
    fn solicitation(target: Ipv6Addr) -> Vec<u8> {
        let src: Ipv6Addr = "2001:db8::9".parse().unwrap();
        let dst = solicited_node(target.octets());
        let mut f = vec![0u8; crate::frame::HEADROOM + 86 + 64];
        let d = &mut f[crate::frame::HEADROOM..];
        d[0..6].copy_from_slice(&[0x33, 0x33, 0xff, dst[13], dst[14], dst[15]]);
        d[6..12].copy_from_slice(&[2, 0xbb, 0, 0, 0, 2]);
        d[12..14].copy_from_slice(&[0x86, 0xdd]);
        d[14] = 0x60;
        d[18..20].copy_from_slice(&32u16.to_be_bytes());
        d[20] = 58;
        d[21] = 255;
        d[22..38].copy_from_slice(&src.octets());
        d[38..54].copy_from_slice(&dst);
        d[54] = 135;
        d[62..78].copy_from_slice(&target.octets());
        d[78..80].copy_from_slice(&[1, 1]);
        d[80..86].copy_from_slice(&[2, 0xbb, 0, 0, 0, 2]);
        let ph = crate::wire::checksum::pseudo_header_v6(&src.octets(), &dst, 58, 32);
        let c = crate::wire::checksum::checksum_with(ph, &d[54..86]);
        d[56..58].copy_from_slice(&c.to_be_bytes());
        f
    }

    /// Through the real pipeline: answered while announcing, for a VIP with
    /// a destination only; the host's otherwise.
    #[test]
    fn the_pipeline_answers_for_usable_vips_while_announcing() {
        use crate::frame::{Frame, HEADROOM};
        use crate::pipeline::{Pipeline, PipelineConfig, Verdict};
        use crate::tables::Publisher;
        let l2 = L2::new(&config(None), &[Some("dp0".into())], false).unwrap();
        let mac = [2, 0xaa, 0, 0, 0, 1];
        l2.set_mac("dp0", mac);
        let publisher = Publisher::new(tables(2), 1);
        let mut p = Pipeline::new(
            publisher.reader(0),
            Arc::default(),
            &PipelineConfig::default(),
        )
        .unwrap()
        .with_l2(l2.responder(0));
        let run = |p: &mut Pipeline, mut buf: Vec<u8>| {
            let len = if buf[HEADROOM + 12] == 8 { 60 } else { 86 };
            let mut f = Frame::new(&mut buf, HEADROOM, len);
            let v = p.run(&mut f);
            (v, f.data().to_vec())
        };
        let vip6: Ipv6Addr = "2001:db8::1".parse().unwrap();
        // Withdrawn: the host's (the kernel ignores it: it owns no VIP).
        p.begin(1);
        assert_eq!(run(&mut p, arp_request([10, 0, 0, 1])).0, Verdict::Host);
        assert_eq!(run(&mut p, solicitation(vip6)).0, Verdict::Host);
        // Announcing: answered from the interface's MAC.
        l2.set(true, BTreeSet::new());
        p.begin(2);
        let (v, reply) = run(&mut p, arp_request([10, 0, 0, 1]));
        assert_eq!(v, Verdict::Tx);
        assert_eq!(&reply[0..6], &[2, 0xbb, 0, 0, 0, 2]);
        assert_eq!(&reply[6..12], &mac);
        assert_eq!(&reply[14 + 8..14 + 14], &mac);
        let (v, na) = run(&mut p, solicitation(vip6));
        assert_eq!(v, Verdict::Tx);
        assert_eq!((na.len(), na[14 + 40]), (86, 136));
        assert_eq!(&na[14 + 8..14 + 24], &vip6.octets());
        // Not a VIP: the host's.
        assert_eq!(run(&mut p, arp_request([10, 0, 0, 2])).0, Verdict::Host);
        let other: Ipv6Addr = "2001:db8::2".parse().unwrap();
        assert_eq!(run(&mut p, solicitation(other)).0, Verdict::Host);
        let s = l2.status();
        assert_eq!((s.arp_answered, s.nd_answered), (1, 1));
        // A load balancer without destinations is not answered for.
        publisher.publish(tables(0));
        p.begin(3);
        assert_eq!(run(&mut p, arp_request([10, 0, 0, 1])).0, Verdict::Host);
        l2.stop();
    }

    #[test]
    fn a_worker_off_the_l2_interfaces_answers_nothing() {
        let l2 = L2::new(&config(None), &[Some("other".into()), None], false).unwrap();
        l2.set_mac("dp0", [2, 0, 0, 0, 0, 9]);
        let r = l2.responder(0);
        r.drain(&mut |_| panic!("inactive"));
        assert_eq!(parse_mac("02:00:00:00:00:0a"), Some([2, 0, 0, 0, 0, 10]));
        assert_eq!(parse_mac("02:00"), None);
        l2.stop();
    }
}
