//! The AF_PACKET backend on veth pairs inside network namespaces (needs
//! root), and its frame helpers.
#![allow(unsafe_code)]

use super::ring::{bind_to, setsockopt};
use super::*;
use crate::frame::{Frame, HEADROOM};
use crate::io::sys::Fd;
use crate::io::{Disposition, WorkerQueue};
use crate::wire::checksum;
use std::sync::atomic::Ordering;

/// An Ethernet + IPv4 + UDP frame (10.0.0.1:4000 -> 10.0.0.99:9999)
/// with correct checksums.
fn udp4(payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 20 + 8];
    f[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x99]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let total = (20 + 8 + payload.len()) as u16;
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&[10, 0, 0, 1]);
    ip[16..20].copy_from_slice(&[10, 0, 0, 99]);
    let csum = checksum::checksum(&f[14..34]);
    f[24..26].copy_from_slice(&csum.to_be_bytes());
    f[34..36].copy_from_slice(&4000u16.to_be_bytes());
    f[36..38].copy_from_slice(&9999u16.to_be_bytes());
    f[38..40].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    f.extend_from_slice(payload);
    let udp_len = (f.len() - 34) as u16;
    let pseudo = checksum::pseudo_header_v4([10, 0, 0, 1], [10, 0, 0, 99], 17, udp_len);
    let full = checksum::checksum_with(pseudo, &f[34..]);
    f[40..42].copy_from_slice(&full.to_be_bytes());
    f
}

/// True when the UDP/IPv4 checksum of `f` verifies.
fn udp4_valid(f: &[u8]) -> bool {
    let seg = checksum::l4_segment(f).expect("a UDP frame");
    checksum::add(seg.pseudo_header(f), checksum::sum(&f[seg.start..seg.end])) == 0xffff
}

#[test]
fn udp4_builds_a_valid_frame() {
    let f = udp4(b"odd");
    assert!(udp4_valid(&f));
    assert!(checksum::verify(&f[14..34]));
}

// ---- Real interfaces: veth pairs inside a network namespace ----------

use crate::io::Processor;
use crate::worker::{run_worker, IdlePolicy, WorkerConfig, WorkerStats};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Ethertype of the test frames (IEEE local experimental).
const TEST_ETHERTYPE: [u8; 2] = [0x88, 0xb5];
/// Ethertype of the outer header the test processor prepends.
const OUTER_ETHERTYPE: [u8; 2] = [0x88, 0xb6];

fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace with two veth pairs, deleted on drop (even when
/// the test fails): lbtg <-> lbti (generator -> lbfwd ingress) and
/// lbto <-> lbtc (lbfwd egress -> capture). IPv6 off to keep the links
/// quiet.
struct Netns {
    name: String,
}

impl Netns {
    fn new(tag: &str) -> Netns {
        let name = format!("lbt-afp-{}-{tag}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        run("ip", &["netns", "add", &name]);
        let ns = Netns { name };
        ns.exec(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
        ns.exec(&["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"]);
        ns.ip(&[
            "link", "add", "lbtg", "type", "veth", "peer", "name", "lbti",
        ]);
        ns.ip(&[
            "link", "add", "lbto", "type", "veth", "peer", "name", "lbtc",
        ]);
        for dev in ["lo", "lbtg", "lbti", "lbto", "lbtc"] {
            ns.ip(&["link", "set", "dev", dev, "up"]);
        }
        ns
    }

    fn ip(&self, args: &[&str]) {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        run("ip", &full);
    }

    fn exec(&self, args: &[&str]) {
        let mut full = vec!["netns", "exec", self.name.as_str()];
        full.extend_from_slice(args);
        run("ip", &full);
    }

    /// Runs `body` on a fresh thread inside the namespace (setns applies
    /// to the calling thread only; the test thread stays where it was).
    fn within<R: Send>(&self, body: impl FnOnce() -> R + Send) -> R {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|s| {
            s.spawn(|| {
                let file = std::fs::File::open(&path).unwrap();
                use std::os::fd::AsRawFd;
                // SAFETY: setns on a namespace fd we hold open; affects
                // only this thread.
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
                body()
            })
            .join()
            .unwrap()
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// A plain AF_PACKET socket to send and capture test frames.
struct RawSock {
    fd: Fd,
}

impl RawSock {
    fn bind(ifname: &str) -> RawSock {
        let index = crate::io::interface_info(ifname).unwrap().index;
        let fd = Fd::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW,
            (libc::ETH_P_ALL as u16).to_be() as i32,
        )
        .unwrap();
        bind_to(&fd, index, libc::ETH_P_ALL as u16, ifname).unwrap();
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 100_000,
        };
        setsockopt(
            &fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv,
            "SO_RCVTIMEO",
            ifname,
        )
        .unwrap();
        // Room for every frame a test sends: the default buffer holds
        // only a few hundred small frames.
        let size: libc::c_int = 16 << 20;
        setsockopt(
            &fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            &size,
            "SO_RCVBUFFORCE",
            ifname,
        )
        .unwrap();
        RawSock { fd }
    }

    fn send(&self, frame: &[u8]) {
        // SAFETY: `frame` is a live buffer of the given length.
        let rc = unsafe { libc::send(self.fd.0, frame.as_ptr().cast(), frame.len(), 0) };
        assert_eq!(
            rc,
            frame.len() as isize,
            "send: {}",
            std::io::Error::last_os_error()
        );
    }

    /// The next frame that was received (not sent) on the interface, or
    /// None after the 100 ms receive timeout.
    fn recv_incoming(&self, buf: &mut [u8]) -> Option<usize> {
        loop {
            // SAFETY: sockaddr_ll is plain old data.
            let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut alen = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            // SAFETY: `buf` and `addr` are live and sized as passed.
            let n = unsafe {
                libc::recvfrom(
                    self.fd.0,
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    0,
                    (&mut addr as *mut libc::sockaddr_ll).cast(),
                    &mut alen,
                )
            };
            if n < 0 {
                return None;
            }
            if addr.sll_pkttype != libc::PACKET_OUTGOING {
                return Some(n as usize);
            }
        }
    }
}

fn test_frame(seq: u32) -> Vec<u8> {
    let mut f = vec![0u8; 64];
    f[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x99]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    f[12..14].copy_from_slice(&TEST_ETHERTYPE);
    f[14..17].copy_from_slice(b"LBT");
    f[17..21].copy_from_slice(&seq.to_be_bytes());
    f
}

/// Encapsulates test frames in place (a 14-byte outer Ethernet header
/// in the headroom), sends UDP frames as they are, drops the rest.
#[derive(Default)]
struct Encap {
    test_frames: Arc<std::sync::atomic::AtomicU64>,
}

impl Processor for Encap {
    fn begin_burst(&mut self, _now_ns: u64) {}

    fn process(&mut self, frame: &mut Frame<'_>) -> Disposition {
        let d = frame.data();
        if d.len() >= 21 && d[12..14] == TEST_ETHERTYPE && &d[14..17] == b"LBT" {
            self.test_frames.fetch_add(1, Ordering::Relaxed);
            assert!(
                frame.headroom() >= HEADROOM,
                "headroom {}",
                frame.headroom()
            );
            assert!(frame.adjust_head(-14));
            let out = frame.data_mut();
            out[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0xaa]);
            out[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0xbb]);
            out[12..14].copy_from_slice(&OUTER_ETHERTYPE);
            return Disposition::Tx;
        }
        if d.len() >= 34 && d[12..14] == [0x08, 0x00] && d[14 + 9] == 17 {
            return Disposition::Tx;
        }
        Disposition::Drop
    }
}

/// Runs a worker on `queue` until `done` says so (or 10 s pass).
fn with_worker<T>(
    queue: AfPacketQueue,
    processor: Encap,
    drive: impl FnOnce() -> T,
) -> (T, crate::worker::WorkerReport) {
    let shutdown = AtomicBool::new(false);
    let stats = WorkerStats::default();
    let config = WorkerConfig {
        idle: IdlePolicy::adaptive(),
        ..WorkerConfig::default()
    };
    std::thread::scope(|s| {
        let worker = s.spawn(|| {
            let (mut queue, mut processor) = (queue, processor);
            run_worker(&mut queue, &mut processor, &config, &shutdown, &stats)
        });
        // A panic in `drive` must still stop the worker.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(drive));
        shutdown.store(true, Ordering::Relaxed);
        let report = worker.join().unwrap().unwrap();
        match result {
            Ok(t) => (t, report),
            Err(p) => std::panic::resume_unwind(p),
        }
    })
}

/// Collects encapsulated test frames on `sock` until `n` arrived or 5 s
/// passed; returns their sequence numbers.
fn collect(sock: &RawSock, n: usize) -> Vec<u32> {
    let mut seqs = Vec::new();
    let mut buf = [0u8; 4096];
    let start = Instant::now();
    while seqs.len() < n && start.elapsed() < Duration::from_secs(5) {
        let Some(len) = sock.recv_incoming(&mut buf) else {
            continue;
        };
        let f = &buf[..len];
        if len >= 35
            && f[12..14] == OUTER_ETHERTYPE
            && f[26..28] == TEST_ETHERTYPE
            && &f[28..31] == b"LBT"
        {
            seqs.push(u32::from_be_bytes(f[31..35].try_into().unwrap()));
        }
    }
    seqs
}

fn two_armed(version: TpacketVersion, tag: &str) {
    let ns = Netns::new(tag);
    ns.within(|| {
        let mut config = AfPacketConfig::new("lbti");
        config.egress = Some("lbto".into());
        config.version = version;
        let queue = AfPacketQueue::open(&config).unwrap();
        let generator = RawSock::bind("lbtg");
        let capture = RawSock::bind("lbtc");
        const N: u32 = 500;
        let processor = Encap::default();
        let seen = processor.test_frames.clone();
        let (seqs, report) = with_worker(queue, processor, || {
            for seq in 0..N {
                generator.send(&test_frame(seq));
            }
            collect(&capture, N as usize)
        });
        let mut sorted = seqs.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            (0..N).collect::<Vec<_>>(),
            "every frame forwarded once"
        );
        assert_eq!(seen.load(Ordering::Relaxed), u64::from(N));
        assert!(report.queue.rx_packets >= u64::from(N));
        assert_eq!(report.queue.tx_packets, u64::from(N));
        assert_eq!(report.queue.tx_dropped, 0);
        assert_eq!(report.queue.rx_errors, 0);
    });
}

#[test]
fn v2_two_armed_forwards_every_frame_encapsulated_in_the_ring() {
    two_armed(TpacketVersion::V2, "v2");
}

#[test]
fn v3_two_armed_forwards_every_frame_encapsulated_in_the_ring() {
    two_armed(TpacketVersion::V3, "v3");
}

#[test]
fn one_armed_sends_back_out_and_never_rereads_its_own_frames() {
    let ns = Netns::new("one");
    ns.within(|| {
        let queue = AfPacketQueue::open(&AfPacketConfig::new("lbti")).unwrap();
        let generator = RawSock::bind("lbtg");
        const N: u32 = 100;
        let processor = Encap::default();
        let seen = processor.test_frames.clone();
        let (seqs, report) = with_worker(queue, processor, || {
            for seq in 0..N {
                generator.send(&test_frame(seq));
            }
            let seqs = collect(&generator, N as usize);
            // Give a re-read (which would loop forever) time to show.
            std::thread::sleep(Duration::from_millis(200));
            seqs
        });
        assert_eq!(seqs.len(), N as usize);
        assert_eq!(
            seen.load(Ordering::Relaxed),
            u64::from(N),
            "own frames read again"
        );
        assert_eq!(report.queue.tx_packets, u64::from(N));
    });
}

#[test]
fn fanout_spreads_flows_over_workers_and_loses_none() {
    let ns = Netns::new("fan");
    ns.within(|| {
        let ifindex = crate::io::interface_info("lbti").unwrap().index;
        let mut config = AfPacketConfig::new("lbti");
        config.egress = Some("lbto".into());
        config.fanout = Some(fanout_group_id(ifindex));
        let q0 = AfPacketQueue::open(&config).unwrap();
        let q1 = AfPacketQueue::open(&config).unwrap();
        let generator = RawSock::bind("lbtg");
        let capture = RawSock::bind("lbtc");
        // 64 flows (distinct UDP ports), 4 frames each: IPv4/UDP frames
        // hash on the 4-tuple.
        let mut frames = Vec::new();
        for flow in 0..64u16 {
            for _ in 0..4 {
                let mut f = udp4(b"fanout");
                f[34..36].copy_from_slice(&(10_000 + flow).to_be_bytes());
                frames.push(f);
            }
        }
        let (p0, p1) = (Encap::default(), Encap::default());
        let ((got, r1), r0) = with_worker(q0, p0, || {
            with_worker(q1, p1, || {
                for f in &frames {
                    generator.send(f);
                }
                let mut got = 0;
                let mut buf = [0u8; 2048];
                let start = Instant::now();
                while got < frames.len() && start.elapsed() < Duration::from_secs(5) {
                    if let Some(n) = capture.recv_incoming(&mut buf) {
                        if n >= 42 && buf[14 + 9] == 17 && &buf[42..48] == b"fanout" {
                            got += 1;
                        }
                    }
                }
                got
            })
        });
        assert_eq!(got, frames.len());
        let (t0, t1) = (r0.queue.tx_packets, r1.queue.tx_packets);
        assert_eq!(t0 + t1, frames.len() as u64);
        assert!(t0 > 0 && t1 > 0, "fanout used one worker only: {t0}/{t1}");
        assert_eq!(t0 % 4, 0, "a flow was split over workers");
    });
}

#[test]
fn partial_checksum_from_a_local_socket_is_completed() {
    let ns = Netns::new("csum");
    ns.ip(&["addr", "add", "10.9.0.1/24", "dev", "lbtg"]);
    ns.ip(&[
        "neigh",
        "add",
        "10.9.0.99",
        "lladdr",
        "02:00:00:00:00:99",
        "dev",
        "lbtg",
        "nud",
        "permanent",
    ]);
    ns.within(|| {
        let mut config = AfPacketConfig::new("lbti");
        config.egress = Some("lbto".into());
        let queue = AfPacketQueue::open(&config).unwrap();
        let capture = RawSock::bind("lbtc");
        let udp = std::net::UdpSocket::bind("10.9.0.1:4000").unwrap();
        let (frame, report) = with_worker(queue, Encap::default(), || {
            udp.send_to(b"checksum me please", "10.9.0.99:9999")
                .unwrap();
            let mut buf = [0u8; 2048];
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(5) {
                if let Some(n) = capture.recv_incoming(&mut buf) {
                    if n >= 42 && buf[14 + 9] == 17 && buf[36..38] == 9999u16.to_be_bytes() {
                        return Some(buf[..n].to_vec());
                    }
                }
            }
            None
        });
        let frame = frame.expect("the UDP frame was forwarded");
        let ip_len = usize::from(u16::from_be_bytes([frame[16], frame[17]]));
        let frame = &frame[..14 + ip_len];
        assert!(
            udp4_valid(frame),
            "checksum of the forwarded frame is wrong"
        );
        assert!(
            report.queue.rx_csum_fixed >= 1,
            "veth handed no partial checksum: {:?}",
            report.queue
        );
    });
}

#[test]
fn host_path_settings_are_verified_and_enforced() {
    let ns = Netns::new("host");
    ns.exec(&["sysctl", "-qw", "net.ipv4.conf.lbti.forwarding=1"]);
    ns.ip(&["link", "set", "dev", "lbto", "mtu", "9000"]);
    ns.within(|| {
        // A jumbo MTU does not fit the default slot: refused up front.
        let err = AfPacketQueue::open(&AfPacketConfig::new("lbto"))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("too small for MTU 9000"), "{err}");
        let mut jumbo = AfPacketConfig::new("lbto");
        jumbo.frame_size = 10240;
        AfPacketQueue::open(&jumbo).unwrap();
        let err = prepare_host_path(&["lbti"], false).unwrap_err().to_string();
        assert!(err.contains("net.ipv4.conf.lbti.forwarding is 1"), "{err}");
        let report = prepare_host_path(&["lbti"], true).unwrap();
        assert_eq!(
            report.changed,
            vec!["net.ipv4.conf.lbti.forwarding: 1 -> 0".to_string()]
        );
        assert_eq!(
            prepare_host_path(&["lbti"], false).unwrap(),
            HostPathReport::default()
        );
        let err = prepare_host_path(&["nope0"], false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope0"), "{err}");
    });
}

#[test]
fn bad_config_and_missing_interfaces_are_refused() {
    let mut config = AfPacketConfig::new("lbt-none0");
    let err = AfPacketQueue::open(&config).err().unwrap().to_string();
    assert!(err.contains("lbt-none0"), "{err}");
    config.frame_size = 1000;
    let err = AfPacketQueue::open(&config).err().unwrap().to_string();
    assert!(err.contains("frame_size 1000"), "{err}");
}

/// Drops everything; counts frames.
struct Sink;

impl Processor for Sink {
    fn begin_burst(&mut self, _now_ns: u64) {}
    fn process(&mut self, _frame: &mut Frame<'_>) -> Disposition {
        Disposition::Drop
    }
}

/// The V2/V3 measurement behind the module docs (not a pass/fail test of
/// speed: it fails only if a version receives nothing). Run it alone,
/// in release mode, on an idle machine:
/// `cargo test --release -p lbfwd-forwarder --lib measure_rx_v2_vs_v3 -- --ignored --nocapture`
#[test]
#[ignore = "measurement; needs trafgen (netsniff-ng) and two idle cores"]
fn measure_rx_v2_vs_v3() {
    let ns = Netns::new("bench");
    let cfg = std::env::temp_dir().join(format!("lbt-afp-{}.trafgen", std::process::id()));
    std::fs::write(
        &cfg,
        "{ 0x02,0,0,0,0,0x99, 0x02,0,0,0,0,0x01, 0x88,0xb5, fill(0x41, 46) }\n",
    )
    .unwrap();
    let cores: Vec<usize> = crate::runtime::allowed_cores()
        .unwrap()
        .into_iter()
        .collect();
    let worker_core = *cores.last().unwrap();
    for version in [
        TpacketVersion::V2,
        TpacketVersion::V3,
        TpacketVersion::V2,
        TpacketVersion::V3,
    ] {
        // Throughput: trafgen blasts 64-byte frames; one worker drops them.
        let mut trafgen = Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns.name,
                "taskset",
                "-c",
                &cores[0].to_string(),
            ])
            .args(["trafgen", "--dev", "lbtg", "--conf"])
            .arg(&cfg)
            .args(["-P", "1", "-Q"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("trafgen (apt install netsniff-ng)");
        let (pps, drops) = ns.within(|| {
            assert!(core_affinity::set_for_current(core_affinity::CoreId {
                id: worker_core
            }));
            let mut config = AfPacketConfig::new("lbti");
            config.egress = Some("lbto".into());
            config.version = version;
            let mut queue = AfPacketQueue::open(&config).unwrap();
            let mut sink = Sink;
            let shutdown = AtomicBool::new(false);
            let stats = WorkerStats::default();
            let config = WorkerConfig::default();
            std::thread::scope(|s| {
                let meter = s.spawn(|| {
                    std::thread::sleep(Duration::from_millis(500));
                    let a = stats.snapshot().queue;
                    let t = Instant::now();
                    std::thread::sleep(Duration::from_secs(3));
                    let b = stats.snapshot().queue;
                    shutdown.store(true, Ordering::Relaxed);
                    (
                        (b.rx_packets - a.rx_packets) as f64 / t.elapsed().as_secs_f64(),
                        b.rx_ring_drops - a.rx_ring_drops,
                    )
                });
                run_worker(&mut queue, &mut sink, &config, &shutdown, &stats).unwrap();
                meter.join().unwrap()
            })
        });
        let _ = trafgen.kill();
        let _ = trafgen.wait();
        // Latency: one frame every 5 ms through lbfwd to the capture side.
        let latencies = ns.within(|| {
            let mut config = AfPacketConfig::new("lbti");
            config.egress = Some("lbto".into());
            config.version = version;
            let queue = AfPacketQueue::open(&config).unwrap();
            let generator = RawSock::bind("lbtg");
            let capture = RawSock::bind("lbtc");
            let (mut lat, _) = with_worker(queue, Encap::default(), || {
                let mut lat = Vec::new();
                for seq in 0..50 {
                    let t = Instant::now();
                    generator.send(&test_frame(seq));
                    if collect(&capture, 1).len() == 1 {
                        lat.push(t.elapsed().as_micros() as u64);
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                lat
            });
            lat.sort_unstable();
            lat
        });
        // Ring consumption cost: fill the ring while nobody polls, then
        // time draining it (generator and scheduler out of the picture).
        let mut drain = ns.within(|| {
            assert!(core_affinity::set_for_current(core_affinity::CoreId {
                id: worker_core
            }));
            let mut config = AfPacketConfig::new("lbti");
            config.egress = Some("lbto".into());
            config.version = version;
            let mut queue = AfPacketQueue::open(&config).unwrap();
            let generator = RawSock::bind("lbtg");
            const FILL: usize = 3000;
            let mut samples = Vec::new();
            for _ in 0..15 {
                for seq in 0..FILL as u32 {
                    generator.send(&test_frame(seq));
                }
                // Let V3 retire its last, partly filled block.
                std::thread::sleep(Duration::from_millis(30));
                let t = Instant::now();
                let mut got = 0;
                while got < FILL && t.elapsed() < Duration::from_secs(1) {
                    got += queue.poll(32, |_| Disposition::Drop).unwrap();
                }
                let per_frame = t.elapsed().as_nanos() as f64 / got.max(1) as f64;
                while queue.poll(32, |_| Disposition::Drop).unwrap() > 0 {}
                if got >= FILL {
                    samples.push(per_frame);
                }
            }
            samples
        });
        drain.sort_by(f64::total_cmp);
        assert!(
            pps > 0.0 && !latencies.is_empty() && !drain.is_empty(),
            "{version:?} received nothing"
        );
        println!(
                "{version:?}: sustained rx {:.2} Mpps (ring drops {drops}); ring drain {:.1} ns/frame (median of {}); single-frame latency through lbfwd p50 {} us, p90 {} us",
                pps / 1e6,
                drain[drain.len() / 2],
                drain.len(),
                latencies[latencies.len() / 2],
                latencies[latencies.len() * 9 / 10],
            );
    }
    let _ = std::fs::remove_file(&cfg);
}
