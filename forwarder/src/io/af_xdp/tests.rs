//! Unit tests, then tests on veth pairs inside network namespaces they
//! create (root; skipped with a message otherwise). Each of those names
//! its namespaces and interfaces `lbx<tag>...` and removes them in a
//! Drop guard, also when it fails.
#![allow(unsafe_code)]

use super::ffi::{XdpDesc, XDP_OBJECT};
use super::program::ifindex;
use super::queue::{Ledger, Owner};
use super::*;
use crate::frame::Frame;
use crate::io::{Disposition, WorkerQueue};
use crate::wire::checksum;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::ptr;
use std::time::{Duration, Instant};

#[test]
fn xdp_desc_has_the_kernel_layout() {
    assert_eq!(std::mem::size_of::<XdpDesc>(), 16);
    assert_eq!(std::mem::offset_of!(XdpDesc, addr), 0);
    assert_eq!(std::mem::offset_of!(XdpDesc, len), 8);
    assert_eq!(std::mem::offset_of!(XdpDesc, options), 12);
    assert_eq!(std::mem::size_of::<XskSocketStats>(), 48);
}

#[test]
fn the_embedded_xdp_object_is_a_bpf_elf() {
    let bytes: &[u8] = &XDP_OBJECT.0;
    assert_eq!(&bytes[..4], b"\x7fELF");
    assert_eq!(u16::from_le_bytes([bytes[18], bytes[19]]), 247, "EM_BPF");
    assert_eq!(bytes.as_ptr() as usize % 8, 0);
}

#[test]
fn modes_parse_and_print() {
    for m in [CopyMode::Copy, CopyMode::ZeroCopy, CopyMode::Auto] {
        assert_eq!(m.to_string().parse::<CopyMode>().unwrap(), m);
    }
    for m in [AttachMode::Native, AttachMode::Generic, AttachMode::Auto] {
        assert_eq!(m.to_string().parse::<AttachMode>().unwrap(), m);
    }
    let e = "zc".parse::<CopyMode>().unwrap_err().to_string();
    assert!(e.contains("copy mode") && e.contains("\"zc\""), "{e}");
    let e = "drv".parse::<AttachMode>().unwrap_err().to_string();
    assert!(e.contains("attach mode") && e.contains("\"drv\""), "{e}");
}

#[test]
fn settings_are_validated_with_named_errors() {
    XskSettings::default().validate().unwrap();
    let cases = [
        (
            XskSettings {
                frame_size: 3000,
                ..Default::default()
            },
            "frame_size",
        ),
        (
            XskSettings {
                frame_size: 1024,
                ..Default::default()
            },
            "frame_size",
        ),
        (
            XskSettings {
                ring_size: 1000,
                ..Default::default()
            },
            "ring_size",
        ),
        (
            XskSettings {
                ring_size: 32,
                frames: 64,
                ..Default::default()
            },
            "ring_size",
        ),
        (
            XskSettings {
                frames: 4095,
                ..Default::default()
            },
            "frames",
        ),
    ];
    for (settings, what) in cases {
        let e = settings.validate().unwrap_err().to_string();
        assert!(e.contains(what), "{settings:?}: {e}");
    }
    let small = XskSettings {
        frame_size: 2048,
        ring_size: 64,
        frames: 128,
        ..Default::default()
    };
    small.validate().unwrap();
}

#[test]
fn the_ledger_catches_a_double_free() {
    let mut ledger = Ledger::new(4, 2048);
    ledger.moved(2048, Owner::Free, Owner::KernelRx);
    ledger.moved(2048, Owner::KernelRx, Owner::Worker);
    ledger.moved(2048, Owner::Worker, Owner::Free);
    if cfg!(debug_assertions) {
        let again = std::panic::catch_unwind(move || {
            ledger.moved(2048, Owner::Worker, Owner::Free);
        });
        assert!(again.is_err(), "a frame freed twice must trip the ledger");
    }
}

// ---- network namespace tests ----

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

macro_rules! require_root {
    () => {
        if !is_root() {
            eprintln!("skipped: needs root (network namespaces, XDP)");
            return;
        }
    };
}

fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sh_ok(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn mac(tag: u8, side: u8, pair: u8) -> [u8; 6] {
    [0x02, 0x1b, 0x0d, tag, pair, side]
}

/// A `peer` namespace (traffic source and sink) and a `node` namespace
/// (where the backend runs) joined by `pairs` veth pairs; pair i has
/// 10.(77+i).tag.1/24 and fd77:i:tag::1/64 on the peer side, .2 and ::2
/// on the node side. The creating thread is moved into namespaces by
/// [`Net::enter`] and back in Drop.
struct Net {
    tag: u8,
    peer: String,
    node: String,
    pairs: u8,
    home: OwnedFd,
}

impl Net {
    fn new(tag: u8, pairs: u8) -> Net {
        let home = std::fs::File::open("/proc/thread-self/ns/net")
            .expect("open own netns")
            .into();
        let net = Net {
            tag,
            peer: format!("lbx{tag}peer"),
            node: format!("lbx{tag}node"),
            pairs,
            home,
        };
        for ns in [&net.peer, &net.node] {
            let _ = sh_ok(&["ip", "netns", "del", ns]);
            sh(&["ip", "netns", "add", ns]);
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        for i in 0..pairs {
            let (p, n) = (net.peer_if(i), net.node_if(i));
            let (pm, nm) = (fmt_mac(mac(tag, 1, i)), fmt_mac(mac(tag, 2, i)));
            sh(&[
                "ip", "-n", &net.peer, "link", "add", &p, "address", &pm, "type", "veth", "peer",
                "name", &n, "address", &nm, "netns", &net.node,
            ]);
            for (ns, ifname, host) in [(&net.peer, &p, 1), (&net.node, &n, 2)] {
                let v4 = format!("{}/24", net.addr4(i, host));
                let v6 = format!("{}/64", net.addr6(i, u16::from(host)));
                sh(&["ip", "-n", ns, "addr", "add", &v4, "dev", ifname]);
                sh(&["ip", "-n", ns, "addr", "add", &v6, "dev", ifname, "nodad"]);
                sh(&["ip", "-n", ns, "link", "set", ifname, "up"]);
            }
        }
        net
    }

    fn peer_if(&self, i: u8) -> String {
        format!("lbx{}p{i}", self.tag)
    }

    fn node_if(&self, i: u8) -> String {
        format!("lbx{}n{i}", self.tag)
    }

    fn addr4(&self, i: u8, host: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 77 + i, self.tag, host)
    }

    fn addr6(&self, i: u8, host: u16) -> Ipv6Addr {
        Ipv6Addr::new(0xfd77, u16::from(i), u16::from(self.tag), 0, 0, 0, 0, host)
    }

    fn vip4(&self) -> Ipv4Addr {
        self.addr4(0, 100)
    }

    fn vip6(&self) -> Ipv6Addr {
        self.addr6(0, 0x100)
    }

    /// Moves the calling thread into namespace `ns`.
    fn enter(&self, ns: &str) {
        let f = std::fs::File::open(format!("/run/netns/{ns}")).expect("open netns");
        // SAFETY: setns on a valid netns fd affects this thread only.
        let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {ns}: {}", io::Error::last_os_error());
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        // SAFETY: home is this thread's original netns.
        unsafe { libc::setns(self.home.as_raw_fd(), libc::CLONE_NEWNET) };
        for i in 0..self.pairs {
            let _ = sh_ok(&["ip", "-n", &self.peer, "link", "del", &self.peer_if(i)]);
        }
        for ns in [&self.peer, &self.node] {
            let _ = sh_ok(&["ip", "netns", "del", ns]);
        }
    }
}

fn fmt_mac(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// An AF_PACKET socket on one interface, in the namespace it was made in.
struct Raw(OwnedFd);

impl Raw {
    fn open(ifname: &str) -> Raw {
        let proto = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: socket(2) takes no pointers.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                c_int::from(proto),
            )
        };
        assert!(fd >= 0, "AF_PACKET socket: {}", io::Error::last_os_error());
        // SAFETY: fd is a new socket we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: sockaddr_ll is plain old data.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = ifindex(ifname).unwrap() as i32;
        // SAFETY: sll is a valid sockaddr_ll of the given size.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                ptr::from_ref(&sll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert_eq!(rc, 0, "bind: {}", io::Error::last_os_error());
        let rcvbuf: c_int = 16 << 20;
        // SAFETY: rcvbuf is a valid c_int of the given size.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                ptr::from_ref(&rcvbuf).cast(),
                std::mem::size_of::<c_int>() as u32,
            )
        };
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 100_000,
        };
        // SAFETY: tv is a valid timeval of the given size.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                ptr::from_ref(&tv).cast(),
                std::mem::size_of::<libc::timeval>() as u32,
            )
        };
        Raw(fd)
    }

    fn send(&self, frame: &[u8]) {
        // SAFETY: frame is a valid buffer of its length.
        let n = unsafe { libc::send(self.0.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        assert_eq!(
            n,
            frame.len() as isize,
            "send: {}",
            io::Error::last_os_error()
        );
    }

    /// Frames received until `quiet` passes without one.
    fn drain(&self, quiet: Duration) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut last = Instant::now();
        let mut buf = [0u8; 2048];
        while last.elapsed() < quiet {
            // SAFETY: buf is a writable buffer of its length.
            let n =
                unsafe { libc::recv(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n > 0 {
                out.push(buf[..n as usize].to_vec());
                last = Instant::now();
            }
        }
        out
    }
}

/// An Ethernet + IP + UDP frame (UDP checksum 0 for IPv4, unchecked for
/// IPv6 by everything here) with `payload`.
fn udp_frame(
    src: [u8; 6],
    dst: [u8; 6],
    from: IpAddr,
    to: IpAddr,
    port: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    let udp_len = 8 + payload.len();
    match (from, to) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            f.extend_from_slice(&[0x08, 0x00]);
            let mut ip = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 17, 0, 0];
            ip[2..4].copy_from_slice(&((20 + udp_len) as u16).to_be_bytes());
            ip.extend_from_slice(&s.octets());
            ip.extend_from_slice(&d.octets());
            let c = checksum::checksum(&ip);
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            f.extend_from_slice(&ip);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
            f.extend_from_slice(&(udp_len as u16).to_be_bytes());
            f.extend_from_slice(&[17, 64]);
            f.extend_from_slice(&s.octets());
            f.extend_from_slice(&d.octets());
        }
        _ => panic!("mixed families"),
    }
    f.extend_from_slice(&40000u16.to_be_bytes());
    f.extend_from_slice(&port.to_be_bytes());
    f.extend_from_slice(&(udp_len as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}

fn has(frame: &[u8], marker: &[u8]) -> bool {
    frame.windows(marker.len()).any(|w| w == marker)
}

fn settings(copy_mode: CopyMode) -> XskSettings {
    XskSettings {
        copy_mode,
        frames: 1024,
        frame_size: 2048,
        ring_size: 256,
    }
}

/// Polls until `done` or `limit` passes; returns whether `done` held.
fn poll_until<F>(
    q: &mut XskQueue,
    limit: Duration,
    mut process: F,
    mut done: impl FnMut() -> bool,
) -> bool
where
    F: FnMut(&mut Frame<'_>) -> Disposition,
{
    let start = Instant::now();
    while start.elapsed() < limit {
        q.poll(32, &mut process).unwrap();
        if done() {
            return true;
        }
    }
    false
}

/// Waits for every transmitted frame to complete, then checks that each
/// UMEM frame is accounted for exactly once.
fn assert_all_frames_accounted(q: &mut XskQueue) {
    let start = Instant::now();
    while q.tx_pending() > 0 || q.ports.iter().any(|p| p.in_tx > 0) {
        q.flush().unwrap();
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "TX never completed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(q.frames_accounted(), q.frames);
}

/// The whole one-armed path on a veth pair in one attach/copy mode.
fn one_armed(tag: u8, attach: AttachMode, copy: CopyMode, want_attach: AttachMode) {
    let net = Net::new(tag, 1);
    let (pmac, nmac) = (mac(tag, 1, 0), mac(tag, 2, 0));
    net.enter(&net.peer);
    let raw = Raw::open(&net.peer_if(0));
    net.enter(&net.node);
    let prog = XdpProgram::attach(&net.node_if(0), attach).unwrap();
    assert_eq!(prog.attach_mode(), want_attach);
    let vips = [IpAddr::V4(net.vip4()), IpAddr::V6(net.vip6())];
    prog.set_vips(&vips).unwrap();
    assert_eq!(prog.vips(), vips.to_vec());
    let mut q = XskQueue::open(&prog, 0, None, &settings(copy)).unwrap();
    assert_eq!(q.copy_mode(), CopyMode::Copy, "veth has no zero-copy");
    let host_udp = UdpSocket::bind((net.addr4(0, 2), 9999)).unwrap();
    host_udp
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();

    // 100 frames to each VIP, 10 to the node's own address.
    const N: usize = 100;
    let from4 = IpAddr::V4(net.addr4(0, 1));
    let from6 = IpAddr::V6(net.addr6(0, 1));
    for i in 0..N {
        let m = format!("lbxvip4-{i:04}");
        raw.send(&udp_frame(pmac, nmac, from4, vips[0], 7, m.as_bytes()));
        let m = format!("lbxvip6-{i:04}");
        raw.send(&udp_frame(pmac, nmac, from6, vips[1], 7, m.as_bytes()));
    }
    for _ in 0..10 {
        raw.send(&udp_frame(
            pmac,
            nmac,
            from4,
            IpAddr::V4(net.addr4(0, 2)),
            9999,
            b"lbxhost",
        ));
    }

    // Every other VIP frame goes back out with its MACs swapped.
    let (mut v4, mut v6, mut other, mut echoed) = (0, 0, 0, 0);
    let mut min_headroom = usize::MAX;
    let mut process = |f: &mut Frame<'_>| {
        min_headroom = min_headroom.min(f.headroom());
        let d = f.data_mut();
        if has(d, b"lbxvip4-") {
            v4 += 1;
        } else if has(d, b"lbxvip6-") {
            v6 += 1;
        } else {
            other += 1;
            return Disposition::Drop;
        }
        if (v4 + v6) & 1 == 0 {
            return Disposition::Drop;
        }
        let (dst, src) = d.split_at_mut(6);
        dst.swap_with_slice(&mut src[..6]);
        echoed += 1;
        Disposition::Tx
    };
    let ok = poll_until(&mut q, Duration::from_secs(5), &mut process, || false);
    assert!(!ok);
    assert_eq!(
        (v4, v6, other),
        (N, N, 0),
        "VIP frames at the socket, nothing else"
    );
    assert!(min_headroom >= HEADROOM, "headroom {min_headroom}");
    assert_eq!(echoed, N);

    // The non-VIP frames reached the kernel's own UDP socket.
    let mut buf = [0u8; 64];
    for _ in 0..10 {
        let (n, _) = host_udp
            .recv_from(&mut buf)
            .expect("non-VIP frame reached the kernel");
        assert_eq!(&buf[..n], b"lbxhost");
    }

    // One more frame through send_copy; everything arrives at the peer.
    let extra = udp_frame(nmac, pmac, vips[0], from4, 7, b"lbxcopy");
    assert!(q.send_copy(&extra).unwrap());
    q.flush().unwrap();
    let got = raw.drain(Duration::from_millis(300));
    let back: Vec<_> = got
        .iter()
        .filter(|f| f[..6] == pmac && f[6..12] == nmac)
        .collect();
    assert_eq!(
        back.iter().filter(|f| has(f, b"lbxvip")).count(),
        N,
        "echoed frames at the peer"
    );
    assert_eq!(
        back.iter().filter(|f| has(f, b"lbxcopy")).count(),
        1,
        "send_copy frame at the peer"
    );
    assert_all_frames_accounted(&mut q);
    let st = q.stats();
    assert_eq!(
        (st.rx_packets, st.tx_packets, st.freed, st.tx_dropped),
        (2 * N as u64, N as u64 + 1, N as u64, 0)
    );

    // ARP/NDP and ping to the node's own addresses: the kernel answers.
    let ns = net.peer.clone();
    let own4 = net.addr4(0, 2).to_string();
    let own6 = net.addr6(0, 2).to_string();
    sh(&[
        "ip", "netns", "exec", &ns, "ping", "-c", "2", "-i", "0.2", "-W", "2", &own4,
    ]);
    sh(&[
        "ip", "netns", "exec", &ns, "ping", "-6", "-c", "2", "-i", "0.2", "-W", "2", &own6,
    ]);
    let xs = prog.stats().unwrap();
    // Plus the few ARP requests / neighbour solicitations for a VIP that the
    // peer's kernel may send: they go to the socket too ([l2]: lbfwd answers
    // them, the kernel owns no VIP).
    assert!(
        (2 * N as u64..=2 * N as u64 + 4).contains(&xs.redirected),
        "{xs:?}"
    );
    assert!(xs.passed >= 10 + 4 + 2, "{xs:?}");
    assert_eq!(xs.no_socket, 0);

    // Without VIPs, nothing reaches the socket.
    prog.set_vips(&[]).unwrap();
    assert!(prog.vips().is_empty());
    raw.send(&udp_frame(pmac, nmac, from4, vips[0], 7, b"lbxvip4-late"));
    let mut late = 0;
    // (An ARP request or solicitation for a VIP redirected just before the
    // VIPs went may still wait in the ring: only the late frame counts.)
    poll_until(
        &mut q,
        Duration::from_millis(300),
        |f| {
            if has(f.data(), b"lbxvip4-late") {
                late += 1;
            }
            Disposition::Drop
        },
        || false,
    );
    assert_eq!(late, 0);
    assert_eq!(prog.stats().unwrap().redirected, xs.redirected);

    // Dropping the last owner detaches the program.
    drop(q);
    drop(prog);
    let link = sh(&[
        "ip",
        "-n",
        &net.node,
        "link",
        "show",
        "dev",
        &net.node_if(0),
    ]);
    assert!(!link.contains("xdp"), "program still attached: {link}");
}

#[test]
fn veth_native_attach_copy_mode() {
    require_root!();
    one_armed(1, AttachMode::Native, CopyMode::Copy, AttachMode::Native);
}

#[test]
fn veth_generic_attach_copy_mode() {
    require_root!();
    one_armed(2, AttachMode::Generic, CopyMode::Copy, AttachMode::Generic);
}

#[test]
fn veth_auto_modes_pick_native_and_fall_back_to_copy() {
    require_root!();
    one_armed(3, AttachMode::Auto, CopyMode::Auto, AttachMode::Native);
}

#[test]
fn zero_copy_on_veth_and_a_second_program_are_refused_clearly() {
    require_root!();
    let net = Net::new(4, 1);
    net.enter(&net.node);
    let prog = XdpProgram::attach(&net.node_if(0), AttachMode::Native).unwrap();
    let e = XskQueue::open(&prog, 0, None, &settings(CopyMode::ZeroCopy)).unwrap_err();
    let msg = e.to_string();
    assert!(
        e.is_unsupported() && msg.contains("zero-copy") && msg.contains(&net.node_if(0)),
        "{msg}"
    );
    let e = XdpProgram::attach(&net.node_if(0), AttachMode::Native)
        .unwrap_err()
        .to_string();
    assert!(e.contains("already has an XDP program"), "{e}");
    let e = XskQueue::open(&prog, 5, None, &settings(CopyMode::Copy))
        .unwrap_err()
        .to_string();
    assert!(e.contains("queue 5"), "{e}");
    let e = XdpProgram::attach("lbx4nope", AttachMode::Auto)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("lbx4nope") && e.contains("no such interface"),
        "{e}"
    );
}

#[test]
fn two_armed_shares_the_umem_and_leaves_on_the_egress_interface() {
    require_root!();
    let tag = 5;
    let net = Net::new(tag, 2);
    let (pmac0, nmac0, pmac1, nmac1) = (
        mac(tag, 1, 0),
        mac(tag, 2, 0),
        mac(tag, 1, 1),
        mac(tag, 2, 1),
    );
    net.enter(&net.peer);
    let raw_in = Raw::open(&net.peer_if(0));
    let raw_out = Raw::open(&net.peer_if(1));
    net.enter(&net.node);
    let prog = XdpProgram::attach(&net.node_if(0), AttachMode::Native).unwrap();
    prog.set_vips(&[IpAddr::V4(net.vip4())]).unwrap();
    let egress = net.node_if(1);
    let mut q = XskQueue::open(&prog, 0, Some((&egress, 0)), &settings(CopyMode::Copy)).unwrap();
    const N: usize = 300;
    for i in 0..N {
        let m = format!("lbxfwd-{i:04}");
        raw_in.send(&udp_frame(
            pmac0,
            nmac0,
            IpAddr::V4(net.addr4(0, 1)),
            IpAddr::V4(net.vip4()),
            7,
            m.as_bytes(),
        ));
    }
    let mut seen = 0;
    // Prepend 50 bytes in the headroom (as an encapsulation would) and
    // send the frame to the peer on the second pair.
    let process = |f: &mut Frame<'_>| {
        seen += 1;
        assert!(f.adjust_head(-50));
        let d = f.data_mut();
        d[..6].copy_from_slice(&pmac1);
        d[6..12].copy_from_slice(&nmac1);
        d[12..14].copy_from_slice(&[0x88, 0xb5]); // local experimental
        Disposition::Tx
    };
    poll_until(&mut q, Duration::from_secs(3), process, || false);
    q.flush().unwrap();
    // The 300 frames arrived before the first poll: the RX ring (256)
    // held what it could and the kernel counted the rest.
    q.maintenance().unwrap();
    let drops = q.stats().rx_ring_drops as usize;
    assert_eq!(seen, 256.min(N), "one RX ring's worth");
    assert_eq!(seen + drops, N, "every frame received or counted dropped");
    let got = raw_out.drain(Duration::from_millis(300));
    let fwd = got
        .iter()
        .filter(|f| f[..6] == pmac1 && f[12..14] == [0x88, 0xb5] && has(f, b"lbxfwd-"))
        .count();
    assert_eq!(fwd, seen, "forwarded frames at the egress peer");
    assert_all_frames_accounted(&mut q);
}

#[test]
fn send_copy_under_pressure_counts_every_frame_and_leaks_none() {
    require_root!();
    let tag = 6;
    let net = Net::new(tag, 1);
    let (pmac, nmac) = (mac(tag, 1, 0), mac(tag, 2, 0));
    net.enter(&net.peer);
    let raw = Raw::open(&net.peer_if(0));
    net.enter(&net.node);
    let prog = XdpProgram::attach(&net.node_if(0), AttachMode::Native).unwrap();
    let mut q = XskQueue::open(&prog, 0, None, &settings(CopyMode::Copy)).unwrap();
    // 3000 frames with no flush in between: more than the TX ring (256)
    // and more than the free frames (1024 - 256 on the fill ring).
    const N: usize = 3000;
    let from = IpAddr::V4(net.addr4(0, 2));
    let to = IpAddr::V4(net.addr4(0, 1));
    let mut accepted = 0;
    let before = q.stats().tx_dropped;
    for i in 0..N {
        let m = format!("lbxburst-{i:05}");
        if q.send_copy(&udp_frame(nmac, pmac, from, to, 7, m.as_bytes()))
            .unwrap()
        {
            accepted += 1;
        }
    }
    assert_all_frames_accounted(&mut q);
    let st = q.stats();
    assert!(accepted > 256 && accepted <= N, "accepted {accepted}");
    // Refused copies are the caller's to count, not the queue's: every
    // accepted one is sent or (TX ring full at transmit) counted as dropped.
    assert_eq!(
        st.tx_packets + (st.tx_dropped - before),
        accepted as u64,
        "{st:?}"
    );
    let got = raw.drain(Duration::from_millis(300));
    // (Frames from our MAC only: the peer's ICMP port unreachables quote them.)
    let arrived = got
        .iter()
        .filter(|f| f[..6] == pmac && f[6..12] == nmac && has(f, b"lbxburst-"))
        .count();
    assert_eq!(arrived as u64, st.tx_packets, "{st:?}");
    // Oversized and empty frames are refused, not truncated.
    assert!(!q.send_copy(&[0u8; 2048]).unwrap());
    assert!(!q.send_copy(&[]).unwrap());
    assert_all_frames_accounted(&mut q);
}

/// True when the TCP/UDP checksum of `frame` verifies.
fn l4_checksum_ok(frame: &[u8]) -> bool {
    let seg = checksum::l4_segment(frame).expect("a TCP or UDP frame");
    let segment = checksum::sum(&frame[seg.start..seg.end]);
    checksum::add(seg.pseudo_header(frame), segment) == 0xffff
}

/// The queue's frames (`udp_frame`) as a local sender leaves them,
/// with the pseudo-header sum in the field, are recognised and completed
/// (the checksum family itself is tested in `wire::checksum`).
#[test]
fn partial_checksums_are_recognised_and_complete_ones_are_not() {
    let (a, b) = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
    let v4 = (
        IpAddr::V4(Ipv4Addr::new(10, 77, 7, 1)),
        IpAddr::V4(Ipv4Addr::new(10, 77, 7, 100)),
    );
    let v6 = (
        IpAddr::V6(Ipv6Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::new(0xfd77, 0, 7, 0, 0, 0, 0, 0x100)),
    );
    for (from, to) in [v4, v6] {
        let mut f = udp_frame(a, b, from, to, 5000, b"lbxcsum-probe-payload");
        // The pseudo-header sum in the field, as a local sender leaves it.
        let seg = checksum::l4_segment(&f).unwrap();
        let pseudo = seg.pseudo_header(&f);
        f[seg.check_at..seg.check_at + 2].copy_from_slice(&pseudo.to_be_bytes());
        assert!(!l4_checksum_ok(&f));
        assert!(checksum::complete_l4_if_partial(&mut f), "{from}");
        assert!(l4_checksum_ok(&f), "{from}: completed checksum verifies");
        assert!(
            !checksum::complete_l4_if_partial(&mut f),
            "{from}: complete"
        );
        // Truncated frames are left alone.
        assert!(!checksum::complete_l4_if_partial(&mut f[..30]));
    }
}

#[test]
fn partial_checksums_of_local_senders_are_completed() {
    require_root!();
    let tag = 7;
    let net = Net::new(tag, 1);
    let nmac = mac(tag, 2, 0);
    net.enter(&net.node);
    let prog = XdpProgram::attach(&net.node_if(0), AttachMode::Native).unwrap();
    prog.set_vips(&[IpAddr::V4(net.vip4()), IpAddr::V6(net.vip6())])
        .unwrap();
    let mut q = XskQueue::open(&prog, 0, None, &settings(CopyMode::Copy)).unwrap();
    let (vip4, vip6) = (net.vip4().to_string(), net.vip6().to_string());
    for vip in [&vip4, &vip6] {
        sh(&[
            "ip",
            "-n",
            &net.peer,
            "neigh",
            "add",
            vip,
            "lladdr",
            &fmt_mac(nmac),
            "dev",
            &net.peer_if(0),
        ]);
    }
    // UDP and a TCP SYN from real sockets in the peer namespace.
    net.enter(&net.peer);
    let u4 = UdpSocket::bind("0.0.0.0:0").unwrap();
    u4.send_to(b"lbxcsum-udp4", (net.vip4(), 5000)).unwrap();
    let u6 = UdpSocket::bind("[::]:0").unwrap();
    u6.send_to(b"lbxcsum-udp6", (net.vip6(), 5000)).unwrap();
    let vip = net.vip4();
    let tcp = std::thread::spawn(move || {
        let _ = std::net::TcpStream::connect_timeout(&(vip, 80).into(), Duration::from_millis(300));
    });
    net.enter(&net.node);
    let mut frames = Vec::new();
    poll_until(
        &mut q,
        Duration::from_millis(600),
        |f| {
            frames.push(f.data().to_vec());
            Disposition::Drop
        },
        || false,
    );
    tcp.join().unwrap();
    let l4 = frames.iter().filter(|f| {
        let proto = if f[12..14] == [0x08, 0x00] {
            f[23]
        } else {
            f[20]
        };
        proto == 6 || proto == 17
    });
    let mut n = 0;
    for f in l4 {
        assert!(l4_checksum_ok(f), "bad checksum in {f:02x?}");
        n += 1;
    }
    assert!(n >= 3, "udp4, udp6 and a SYN: got {n}");
    assert!(q.stats().rx_csum_fixed >= 3, "{:?}", q.stats());
}
