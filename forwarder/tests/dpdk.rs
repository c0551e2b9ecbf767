//! The DPDK backend on virtual devices, without hugepages: `net_null` and
//! `net_ring` for the queue mechanics, `net_tap` for the host path and
//! `net_af_packet` on a veth pair between two network namespaces for one
//! real end-to-end run.
//!
//! EAL initialises once per process, so every DPDK test lives in this one
//! binary, shares one EAL (same options) and takes [`LOCK`] so that they run
//! one at a time. Needs root (namespaces, TAP, AF_PACKET).
//!
//! `cargo test -p lbfwd-forwarder --features dpdk --test dpdk`
#![cfg(feature = "dpdk")]
// A backend test: it enters network namespaces (setns) and talks to the
// veth peer through raw AF_PACKET sockets, with a SAFETY comment on each
// block, as the backends themselves do.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use lbfwd_forwarder::io::dpdk::{
    attach_vdev, detach_vdev, init_eal, port_mac, port_names, testing, DpdkError, DpdkOptions,
    DpdkPort, PortOptions, PortSpec,
};
use lbfwd_forwarder::io::{Disposition, WorkerQueue};

static LOCK: Mutex<()> = Mutex::new(());

/// The one EAL configuration of this test binary.
fn options() -> DpdkOptions {
    DpdkOptions {
        no_huge: true,
        memory_mb: Some(512),
        extra_eal_args: vec!["--log-level=lib.eal:warning".into()],
        ..Default::default()
    }
}

/// Serialises the tests and makes sure EAL runs.
fn eal() -> MutexGuard<'static, ()> {
    let guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    init_eal(&options()).expect("EAL starts with --no-huge");
    guard
}

/// A unique device/interface name part for this process.
fn tag(name: &str) -> String {
    format!("{name}{}", std::process::id() % 100_000)
}

#[test]
fn eal_initialises_once_and_refuses_other_arguments() {
    let _eal = eal();
    init_eal(&options()).expect("the same options again are a no-op");
    let other = DpdkOptions {
        memory_mb: Some(256),
        ..options()
    };
    let err = init_eal(&other).unwrap_err();
    assert!(matches!(err, DpdkError::EalReinit { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("-m 512") && msg.contains("-m 256") && msg.contains("restart lbfwd"),
        "{msg}"
    );
}

/// Runs in a child process (see `eal_failure_says_why_and_what_to_check`):
/// EAL with a hugepage directory that is no hugetlbfs mount.
#[test]
#[ignore = "run by eal_failure_says_why_and_what_to_check in a child process"]
fn child_eal_failure() {
    if std::env::var_os("LBFWD_DPDK_CHILD").is_none() {
        return;
    }
    let opts = DpdkOptions {
        huge_dir: Some(std::env::temp_dir()),
        memory_mb: Some(64),
        ..Default::default()
    };
    let first = init_eal(&opts).unwrap_err();
    println!("FIRST: {first}");
    let second = init_eal(&opts).unwrap_err();
    println!("SECOND: {second}");
}

#[test]
fn eal_failure_says_why_and_what_to_check() {
    // EAL cannot start twice in one process: the failure runs in a child.
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_eal_failure", "--ignored", "--nocapture"])
        .env("LBFWD_DPDK_CHILD", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first = stdout
        .lines()
        .skip_while(|l| !l.starts_with("FIRST: "))
        .take_while(|l| !l.starts_with("SECOND: "))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(first.contains("DPDK EAL initialisation failed"), "{stdout}");
    assert!(
        first.contains("--huge-dir="),
        "the arguments are shown: {first}"
    );
    assert!(
        first.contains("EAL said:\nEAL: "),
        "EAL's own words are kept: {first}"
    );
    assert!(
        first.contains("hint: check that hugepages are reserved") && first.contains("vfio-pci"),
        "{first}"
    );
    assert!(
        stdout.contains("SECOND: DPDK EAL initialisation failed earlier in this process"),
        "{stdout}"
    );
}

#[test]
fn shim_structs_and_mbuf_accessors_agree_with_c() {
    let _eal = eal();
    let (c, rust) = testing::shim_layout();
    assert_eq!(c, rust, "sizes of the shim's structs, C vs Rust");

    let port = DpdkPort::open_vdev(&tag("net_null_layout"), &PortOptions::new(1)).unwrap();
    // Written through the Rust field offsets (8 bytes into the headroom),
    // read back through DPDK's own inline accessors.
    let (headroom, len, bytes) = testing::mbuf_roundtrip(&port, b"0123456789").unwrap();
    assert_eq!((headroom, len), (120, 10));
    assert_eq!(bytes, b"0123456789");
    assert_eq!(port.mbufs_in_use(), 0);
}

#[test]
fn init_opens_a_port_eal_already_has() {
    let _eal = eal();
    let name = attach_vdev(&tag("net_null_init")).unwrap();
    assert!(port_names().unwrap().contains(&name));
    {
        let port = DpdkPort::init(&options(), &name, 2).unwrap();
        assert_eq!(port.summary().queues, 2);
        let other = DpdkOptions {
            no_huge: false,
            ..options()
        };
        let msg = DpdkPort::init(&other, &name, 2).unwrap_err().to_string();
        assert!(msg.contains("cannot be initialised again"), "{msg}");
    }
    // Closed with the port, the device stays until it is detached.
    detach_vdev(&name).unwrap();
    assert!(!port_names().unwrap().contains(&name));
}

#[test]
fn unknown_ports_and_bad_devices_are_named_in_the_error() {
    let _eal = eal();
    let msg = DpdkPort::open("0000:99:00.0", &PortOptions::new(1))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("\"0000:99:00.0\" does not exist") && msg.contains("vfio-pci"),
        "{msg}"
    );
    let msg = port_mac("net_nosuchport0").unwrap_err().to_string();
    assert!(msg.contains("\"net_nosuchport0\" does not exist"), "{msg}");
    let msg = DpdkPort::open_vdev("net_nosuchdriver0", &PortOptions::new(1))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("cannot attach DPDK device \"net_nosuchdriver0\""),
        "{msg}"
    );
    // net_null has one queue pair at most... or more: ask for more than any
    // driver offers.
    let msg = DpdkPort::open_vdev(&tag("net_null_toomany"), &PortOptions::new(5000))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("workers need one each"), "{msg}");
}

#[test]
fn null_port_receives_transmits_frees_and_returns_every_mbuf() {
    let _eal = eal();
    let name = tag("net_null_q");
    let port = DpdkPort::open_vdev(&name, &PortOptions::new(2)).unwrap();
    let summary = port.summary().clone();
    assert_eq!((summary.name.as_str(), summary.queues), (name.as_str(), 2));
    assert_eq!(summary.driver, "net_null");
    // RSS: only what the driver supports, and on when it supports any of
    // the 5-tuple functions lbfwd asks for.
    assert_eq!(summary.rss_enabled & !summary.rss_supported, 0);
    assert!(
        summary.rss_enabled != 0 || summary.rss_supported == 0,
        "{summary}"
    );
    assert!(summary.to_string().contains("RSS"), "{summary}");
    assert!(
        port.link().unwrap().up,
        "net_null's link is up once started"
    );

    let mut q0 = port.queue(0).unwrap();
    let msg = port.queue(0).unwrap_err().to_string();
    assert!(msg.contains("already handed to a worker"), "{msg}");
    let msg = port.queue(2).unwrap_err().to_string();
    assert!(msg.contains("no such queue"), "{msg}");

    // One burst: net_null hands out 64-byte frames. Every third is sent
    // with 8 bytes prepended in the headroom, every third dropped, every
    // third for the host (no host path: freed).
    let mut i = 0;
    let n = q0
        .poll(32, |frame| {
            assert_eq!(frame.len(), 64);
            assert!(frame.headroom() >= 128, "headroom {}", frame.headroom());
            i += 1;
            match i % 3 {
                0 => {
                    assert!(frame.adjust_head(-8));
                    frame.data_mut()[..8].copy_from_slice(b"prepend!");
                    Disposition::Tx
                }
                1 => Disposition::Drop,
                _ => Disposition::Host,
            }
        })
        .unwrap();
    assert_eq!(n, 32);
    let sent = 32 / 3;
    assert_eq!(q0.tx_pending(), sent);
    q0.flush().unwrap();
    assert_eq!(q0.tx_pending(), 0);
    let st = q0.stats();
    assert_eq!(st.rx_packets, 32);
    assert_eq!(st.rx_bytes, 32 * 64);
    assert_eq!(st.tx_packets, sent as u64);
    assert_eq!(st.tx_bytes, sent as u64 * 72);
    assert_eq!(st.freed, 32 - sent as u64);
    assert_eq!((st.tx_dropped, st.host_packets, st.rx_errors), (0, 0, 0));
    assert_eq!(port.stats().unwrap().tx_packets, sent as u64);

    // More than a TX buffer's worth without a flush: the queue kicks the
    // device itself and never holds more than its capacity.
    let capacity = q0.tx_capacity();
    assert_eq!(capacity, 64, "two bursts of 32");
    for _ in 0..(capacity / 32 + 3) {
        q0.poll(32, |_| Disposition::Tx).unwrap();
        assert!(q0.tx_pending() <= capacity);
    }
    q0.flush().unwrap();

    // A frame too large for an mbuf is refused (the caller counts that, not
    // the queue); one that fits is sent.
    assert!(!q0.send_copy(&[0u8; 4096]).unwrap());
    assert!(q0.send_copy(&[0x55u8; 60]).unwrap());
    q0.flush().unwrap();
    let st = q0.stats();
    assert_eq!(st.tx_dropped, 0);
    assert_eq!(st.tx_packets + st.freed, st.rx_packets + 1);

    // The second queue works from another thread (Send), which registers
    // itself with EAL on its first poll.
    let mut q1 = port.queue(1).unwrap();
    let q1_stats = std::thread::spawn(move || {
        let n = q1.poll(16, |_| Disposition::Drop).unwrap();
        assert_eq!(n, 16);
        q1.stats()
    })
    .join()
    .unwrap();
    assert_eq!((q1_stats.rx_packets, q1_stats.freed), (16, 16));

    q0.maintenance().unwrap();
    assert_eq!(q0.stats().rx_ring_drops, 0);
    let xstats = port.xstats().unwrap();
    let tx_good = xstats
        .iter()
        .find(|(k, _)| *k == format!("{name}.tx_good_packets"))
        .unwrap_or_else(|| panic!("tx_good_packets in {xstats:?}"));
    assert_eq!(tx_good.1, q0.stats().tx_packets);

    // Every mbuf went back to the pool.
    drop(q0);
    assert_eq!(port.mbufs_in_use(), 0, "mbufs leaked");
}

#[test]
fn ring_loopback_shows_in_place_encapsulation_and_counts_tx_leftovers() {
    let _eal = eal();
    // net_ring without arguments loops each TX queue back to its RX queue.
    let port = DpdkPort::open_vdev(&tag("net_ring_lo"), &PortOptions::new(1)).unwrap();
    let mut q = port.queue(0).unwrap();

    let original: Vec<u8> = (0..60u8).collect();
    assert!(q.send_copy(&original).unwrap());
    q.flush().unwrap();

    // Received: the same bytes. Prepend 8 bytes and trim 4 from the end,
    // send again.
    let mut seen = Vec::new();
    let n = q
        .poll(32, |frame| {
            seen.push(frame.data().to_vec());
            assert!(frame.headroom() >= 128);
            assert!(frame.adjust_head(-8));
            frame.data_mut()[..8].copy_from_slice(b"OUTERHDR");
            let len = frame.len();
            assert!(frame.set_len(len - 4));
            Disposition::Tx
        })
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(seen, std::slice::from_ref(&original));
    q.flush().unwrap();

    // Received again: the device saw the new head and length.
    let mut seen = Vec::new();
    q.poll(32, |frame| {
        seen.push(frame.data().to_vec());
        Disposition::Drop
    })
    .unwrap();
    let mut expected = b"OUTERHDR".to_vec();
    expected.extend_from_slice(&original[..56]);
    assert_eq!(seen, [expected]);

    // Far more than the ring holds: what a TX burst leaves behind is freed
    // and counted, nothing leaks.
    let before = q.stats();
    let total = 3000u64;
    let mut refused = 0u64;
    for i in 0..total {
        if !q.send_copy(&[i as u8; 64]).unwrap() {
            refused += 1;
        }
    }
    q.flush().unwrap();
    let after = q.stats();
    let sent = after.tx_packets - before.tx_packets;
    let dropped = after.tx_dropped - before.tx_dropped;
    assert_eq!(sent + dropped + refused, total);
    assert!(dropped + refused > 0, "the ring should have overflowed");
    let mut drained = 0;
    loop {
        let n = q.poll(64, |_| Disposition::Drop).unwrap();
        if n == 0 {
            break;
        }
        drained += n as u64;
    }
    assert_eq!(drained, sent);
    drop(q);
    assert_eq!(port.mbufs_in_use(), 0, "mbufs leaked");
}

#[test]
fn two_armed_queue_receives_on_both_and_sends_on_egress() {
    let _eal = eal();
    // Ingress: net_null (endless 64-byte frames). Egress: a net_ring
    // loopback, so what the worker sends there comes back on the egress
    // side of the same queue.
    let (ingress, egress) = DpdkPort::open_two_armed(
        // copy=1: frames of zeros (without it net_null leaves whatever an
        // mbuf held before, including earlier markers).
        PortSpec::Vdev(&format!("{},copy=1", tag("net_null_in"))),
        PortSpec::Vdev(&tag("net_ring_eg")),
        &PortOptions::new(1),
        &PortOptions::new(1),
    )
    .unwrap();
    let loner = DpdkPort::open_vdev(&tag("net_null_loner"), &PortOptions::new(1)).unwrap();
    let msg = ingress.queue_two_armed(0, &loner).unwrap_err().to_string();
    assert!(msg.contains("do not share an mbuf pool"), "{msg}");
    let msg = ingress
        .queue_two_armed(0, &ingress)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("the same port"), "{msg}");

    let mut q = ingress.queue_two_armed(0, &egress).unwrap();
    assert!(
        ingress.queue(0).is_err() && egress.queue(0).is_err(),
        "both taken"
    );
    let (mut marked, mut back) = (0u64, 0u64);
    for round in 0..10 {
        q.poll(32, |frame| {
            let data = frame.data_mut();
            if data.starts_with(b"2ARM") {
                back += 1;
                Disposition::Drop
            } else if round < 8 {
                data[..4].copy_from_slice(b"2ARM");
                marked += 1;
                Disposition::Tx
            } else {
                Disposition::Drop
            }
        })
        .unwrap();
        q.flush().unwrap();
    }
    assert_eq!(marked, 8 * 32);
    assert_eq!(
        back, marked,
        "every frame sent came back through the egress port"
    );
    assert_eq!(
        ingress.stats().unwrap().tx_packets,
        0,
        "nothing left by ingress"
    );
    assert_eq!(egress.stats().unwrap().tx_packets, marked);
    assert_eq!(q.stats().tx_packets, marked);
    drop(q);
    // Released on both ports.
    drop(ingress.queue(0).unwrap());
    drop(egress.queue(0).unwrap());
    assert_eq!(ingress.mbufs_in_use(), 0, "mbufs leaked");
}

#[test]
fn filled_pool_feeds_real_frames_through_net_null() {
    let _eal = eal();
    // copy=0: net_null hands out pool mbufs as they are, so frames written
    // into the pool come back on every receive.
    let port = DpdkPort::open_vdev(
        &format!("{},copy=0,size=60", tag("net_null_fill")),
        &PortOptions::new(1),
    )
    .unwrap();
    let templates: Vec<Vec<u8>> = (0..4u8).map(|i| vec![0xa0 + i; 60]).collect();
    let refs: Vec<&[u8]> = templates.iter().map(|t| t.as_slice()).collect();
    assert_eq!(port.fill_pool(&refs).unwrap(), port.pool_size());
    let msg = port
        .fill_pool(&[&[1u8; 60][..], &[2u8; 59][..]])
        .unwrap_err();
    assert!(msg.to_string().contains("same non-zero length"), "{msg}");

    let mut q = port.queue(0).unwrap();
    assert!(
        port.fill_pool(&refs).is_err(),
        "refused while a queue is out"
    );
    let mut seen = [0u32; 4];
    for _ in 0..100 {
        q.poll(32, |frame| {
            let i = templates
                .iter()
                .position(|t| frame.data() == t.as_slice())
                .expect("every frame is one of the templates");
            seen[i] += 1;
            // Encapsulate in place, as the pipeline does: the template
            // behind the head stays intact for the mbuf's next use.
            assert!(frame.adjust_head(-50));
            Disposition::Tx
        })
        .unwrap();
        q.flush().unwrap();
    }
    assert!(seen.iter().all(|&n| n > 0), "{seen:?}");
    assert_eq!(seen.iter().sum::<u32>(), 3200);
}

// ---- namespaces -------------------------------------------------------------

/// Runs a command, panicking with its output when it fails.
fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn output(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Network namespaces made for one test, deleted on drop (also when the
/// test fails).
struct Netns(Vec<String>);

impl Netns {
    fn new(names: &[String]) -> Netns {
        let mut ns = Netns(Vec::new());
        for name in names {
            // A leftover of an earlier crashed run goes first.
            let _ = Command::new("ip").args(["netns", "del", name]).output();
            run(&["ip", "netns", "add", name]);
            ns.0.push(name.clone());
            // No IPv6 chatter (router solicitations, MLD) on the links.
            run(&[
                "ip",
                "netns",
                "exec",
                name,
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=1",
            ]);
            run(&[
                "ip",
                "netns",
                "exec",
                name,
                "sysctl",
                "-qw",
                "net.ipv6.conf.default.disable_ipv6=1",
            ]);
        }
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", name]).output();
        }
    }
}

/// Runs `f` on a thread that has entered network namespace `ns`.
fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            let path = CString::new(format!("/run/netns/{ns}")).unwrap();
            // SAFETY: plain open(2) of a NUL-terminated path.
            let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
            assert!(fd >= 0, "open {ns}: {}", std::io::Error::last_os_error());
            // SAFETY: setns(2) on a namespace fd we own; affects this thread.
            let rc = unsafe { libc::setns(fd, libc::CLONE_NEWNET) };
            let err = std::io::Error::last_os_error();
            // SAFETY: closing the fd we opened.
            unsafe { libc::close(fd) };
            assert_eq!(rc, 0, "setns {ns}: {err}");
            f()
        })
        .join()
        .unwrap()
    })
}

/// A raw AF_PACKET socket bound to one interface (in the namespace of the
/// thread that made it).
struct RawSocket(i32);

impl RawSocket {
    fn bind(iface: &str) -> RawSocket {
        let proto = (libc::ETH_P_ALL as u16).to_be() as i32;
        // SAFETY: socket(2) takes no pointers.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, proto) };
        assert!(
            fd >= 0,
            "AF_PACKET socket: {}",
            std::io::Error::last_os_error()
        );
        let sock = RawSocket(fd);
        let name = CString::new(iface).unwrap();
        // SAFETY: NUL-terminated name.
        let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
        assert!(index > 0, "no interface {iface}");
        // SAFETY: sockaddr_ll is plain old data.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = proto as u16;
        addr.sll_ifindex = index as i32;
        // SAFETY: bind(2) with a sockaddr_ll of the size given.
        let rc = unsafe {
            libc::bind(
                fd,
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert_eq!(
            rc,
            0,
            "bind to {iface}: {}",
            std::io::Error::last_os_error()
        );
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 100_000,
        };
        // SAFETY: SO_RCVTIMEO with a timeval of the size given.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as u32,
            )
        };
        sock
    }

    fn send(&self, frame: &[u8]) {
        // SAFETY: send(2) from a slice of the length given.
        let n = unsafe { libc::send(self.0, frame.as_ptr().cast(), frame.len(), 0) };
        assert_eq!(
            n,
            frame.len() as isize,
            "send: {}",
            std::io::Error::last_os_error()
        );
    }

    /// The next frame, or None after the receive timeout.
    fn recv(&self) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 2048];
        // SAFETY: recv(2) into a buffer of the length given.
        let n = unsafe { libc::recv(self.0, buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return None;
        }
        buf.truncate(n as usize);
        Some(buf)
    }
}

impl Drop for RawSocket {
    fn drop(&mut self) {
        // SAFETY: closing the socket we own.
        unsafe { libc::close(self.0) };
    }
}

fn mac_of(ns: &str, iface: &str) -> [u8; 6] {
    let text = output(&["ip", "-n", ns, "-o", "link", "show", iface]);
    let after = text
        .split("link/ether ")
        .nth(1)
        .unwrap_or_else(|| panic!("no MAC for {iface}: {text}"));
    let mut mac = [0u8; 6];
    for (i, part) in after[..17].split(':').enumerate() {
        mac[i] = u8::from_str_radix(part, 16).unwrap();
    }
    mac
}

/// An experimental EtherType (IEEE 802 local experimental 1): nothing else
/// on the link uses it.
const ETHERTYPE_TEST: [u8; 2] = [0x88, 0xb5];

fn test_frame(dst: [u8; 6], src: [u8; 6], marker: u8, seq: u16) -> Vec<u8> {
    let mut f = Vec::with_capacity(64);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ETHERTYPE_TEST);
    f.push(marker);
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(b"lbfwd dpdk end-to-end");
    f.resize(64, 0xee);
    f
}

#[test]
fn af_packet_on_veth_end_to_end() {
    let _eal = eal();
    let ns_dpdk = tag("lbfwd-dpdk-a");
    let ns_peer = tag("lbfwd-dpdk-b");
    let _netns = Netns::new(&[ns_dpdk.clone(), ns_peer.clone()]);
    let (dev, peer) = ("ldpk0", "ldpk1");
    run(&[
        "ip", "link", "add", dev, "netns", &ns_dpdk, "type", "veth", "peer", "name", peer, "netns",
        &ns_peer,
    ]);
    for (ns, iface) in [(&ns_dpdk, dev), (&ns_peer, peer)] {
        run(&[
            "ip", "netns", "exec", ns, "ethtool", "-K", iface, "tx", "off",
        ]);
        run(&["ip", "-n", ns, "link", "set", iface, "up"]);
    }
    let dev_mac = mac_of(&ns_dpdk, dev);
    let peer_mac = mac_of(&ns_peer, peer);

    // The PMD's AF_PACKET socket is made in the namespace of the thread
    // that attaches the device.
    let port = in_netns(&ns_dpdk, || {
        DpdkPort::open_vdev(
            &format!("{},iface={dev}", tag("net_af_packet_e2e")),
            &PortOptions {
                host_tap: Some("ldpktap1".into()),
                mtu: Some(1400),
                ..PortOptions::new(1)
            },
        )
    })
    .unwrap();
    assert_eq!(port.summary().driver, "net_af_packet");
    assert_eq!(port.summary().mac, dev_mac);
    // Read before a port opens, as `lbfwd run` does for the encapsulation's
    // Ethernet source: the kernel interface's MAC, not zeros.
    assert_eq!(port_mac(&tag("net_af_packet_e2e")).unwrap(), dev_mac);
    let link = output(&["ip", "-n", &ns_dpdk, "-o", "link", "show", dev]);
    assert!(
        link.contains("mtu 1400"),
        "the port's MTU reached the kernel: {link}"
    );
    // The host path's TAP answers for the port's MAC.
    assert_eq!(mac_of(&ns_dpdk, "ldpktap1"), dev_mac);
    // net_tap keeps an mbuf per RX descriptor ready; all others are free.
    let held_by_tap = port.mbufs_in_use();
    assert!(held_by_tap <= 1024, "{held_by_tap}");
    assert!(port.wait_for_link(Duration::from_secs(2)).unwrap().up);
    let mut q = port.queue(0).unwrap();

    // The peer sends COUNT frames to the DPDK port; lbfwd's queue receives
    // them, turns each around in place (MACs swapped, marker 'Q' -> 'R')
    // and transmits it; the peer receives them back.
    const COUNT: u16 = 200;
    let (received, echoed) = std::thread::scope(|s| {
        let peer_thread = s.spawn(|| {
            in_netns(&ns_peer, || {
                let sock = RawSocket::bind(peer);
                // Give the DPDK side a moment: it is polling already.
                std::thread::sleep(Duration::from_millis(100));
                for seq in 0..COUNT {
                    sock.send(&test_frame(dev_mac, peer_mac, b'Q', seq));
                }
                let mut echoed = Vec::new();
                let deadline = Instant::now() + Duration::from_secs(5);
                while echoed.len() < COUNT as usize && Instant::now() < deadline {
                    if let Some(f) = sock.recv() {
                        if f.len() >= 17 && f[12..14] == ETHERTYPE_TEST && f[14] == b'R' {
                            echoed.push(f);
                        }
                    }
                }
                echoed
            })
        });
        let mut received = 0u16;
        let deadline = Instant::now() + Duration::from_secs(5);
        while received < COUNT && Instant::now() < deadline {
            q.poll(32, |frame| {
                let data = frame.data_mut();
                if data.len() < 17 || data[12..14] != ETHERTYPE_TEST || data[14] != b'Q' {
                    return Disposition::Drop;
                }
                assert_eq!(u16::from_be_bytes([data[15], data[16]]), received);
                received += 1;
                let (dst, src) = data[..12].split_at_mut(6);
                dst.swap_with_slice(src);
                data[14] = b'R';
                Disposition::Tx
            })
            .unwrap();
            q.flush().unwrap();
        }
        (received, peer_thread.join().unwrap())
    });
    assert_eq!(
        received, COUNT,
        "frames the DPDK port received from the peer"
    );
    assert_eq!(echoed.len(), COUNT as usize, "frames the peer got back");
    for (seq, f) in echoed.iter().enumerate() {
        assert_eq!(f[..], test_frame(peer_mac, dev_mac, b'R', seq as u16)[..]);
    }
    let st = q.stats();
    assert!(st.rx_packets >= u64::from(COUNT));
    assert_eq!(st.tx_packets, u64::from(COUNT));
    assert_eq!(st.tx_dropped, 0);
    let xstats = port.xstats().unwrap();
    assert!(
        xstats
            .iter()
            .any(|(k, v)| k.ends_with(".rx_good_packets") && *v >= u64::from(COUNT)),
        "{xstats:?}"
    );
    drop(q);
    assert_eq!(port.mbufs_in_use(), held_by_tap, "mbufs leaked");
}

#[test]
fn host_path_through_tap_reaches_the_kernel_and_back() {
    let _eal = eal();
    let ns = tag("lbfwd-dpdk-h");
    let _netns = Netns::new(std::slice::from_ref(&ns));
    let tap = "ldpktap0";
    // The wire is a net_ring loopback: what the worker transmits comes back
    // on its RX queue, so the kernel's answer is visible to the test.
    let port = in_netns(&ns, || {
        DpdkPort::open_vdev(
            &tag("net_ring_h"),
            &PortOptions {
                host_tap: Some(tap.into()),
                ..PortOptions::new(2)
            },
        )
    })
    .unwrap();
    assert_eq!(port.host_interface(), Some(tap));
    // net_ring has no MAC address (zeros), so the TAP keeps its own; the
    // af_packet test checks that a TAP takes a real port's MAC.
    assert_eq!(port.summary().mac, [0; 6]);
    let host_mac = port.host_summary().expect("a host port").mac;
    assert_eq!(mac_of(&ns, tap), host_mac);
    run(&["ip", "-n", &ns, "addr", "add", "10.199.0.1/24", "dev", tap]);
    run(&["ip", "-n", &ns, "link", "set", tap, "up"]);

    // An ARP request for the TAP's address, as a neighbour on the wire
    // would send it.
    let asker_mac = [0x02, 0, 0, 0xaa, 0, 2];
    let mut arp = Vec::new();
    arp.extend_from_slice(&[0xff; 6]);
    arp.extend_from_slice(&asker_mac);
    arp.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    arp.extend_from_slice(&asker_mac);
    arp.extend_from_slice(&[10, 199, 0, 2]);
    arp.extend_from_slice(&[0; 6]);
    arp.extend_from_slice(&[10, 199, 0, 1]);
    arp.resize(60, 0);

    // Two workers: the request goes out (and loops back) on queue 0; the
    // kernel answers on whichever TAP queue it picks, and that worker
    // forwards the answer to its wire queue.
    let mut queues = [port.queue(0).unwrap(), port.queue(1).unwrap()];
    let mut reply = None;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut asked = Instant::now() - Duration::from_secs(1);
    while reply.is_none() && Instant::now() < deadline {
        if asked.elapsed() >= Duration::from_millis(500) {
            assert!(queues[0].send_copy(&arp).unwrap());
            asked = Instant::now();
        }
        for q in queues.iter_mut() {
            q.poll(32, |frame| {
                let d = frame.data();
                let is_arp = d.len() >= 42 && d[12..14] == [0x08, 0x06];
                if is_arp && d[20..22] == [0, 1] {
                    // The request, back from the loop: for the host.
                    Disposition::Host
                } else if is_arp && d[20..22] == [0, 2] {
                    reply = Some(d.to_vec());
                    Disposition::Drop
                } else {
                    Disposition::Drop
                }
            })
            .unwrap();
            q.flush().unwrap();
        }
    }
    let reply = reply.expect("the kernel answered the ARP request through the TAP");
    assert_eq!(reply[..6], asker_mac, "to the asker");
    assert_eq!(reply[6..12], host_mac, "from the TAP's MAC");
    assert_eq!(reply[22..28], host_mac, "sender hardware address");
    assert_eq!(reply[28..32], [10, 199, 0, 1], "sender protocol address");
    let st = queues[0].stats();
    assert!(st.host_packets >= 1, "{st:?}");
    assert_eq!(port.host_summary().unwrap().queues, 2);
    let xstats = port.xstats().unwrap();
    assert!(
        xstats.iter().any(|(k, _)| k.starts_with("net_tap_lbfwd")),
        "host TAP counters listed: {xstats:?}"
    );
    drop(queues);
    drop(port);
    // The TAP is gone with the port.
    let links = output(&["ip", "-n", &ns, "-o", "link"]);
    assert!(!links.contains(tap), "{links}");
}
