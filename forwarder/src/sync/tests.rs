//! The exception sync's own tests: the ring, the map, the datagrams, two
//! pipelines sharing their exceptions, and two sync threads over loopback.

use super::*;
use crate::encap::tests::underlay;
use crate::flow::FlowTimeouts;
use crate::flow::IPPROTO_TCP;
use crate::frame::{Frame, HEADROOM};
use crate::io::{Disposition, Processor};
use crate::pipeline::{Pipeline, PipelineConfig};
use crate::tables::{Publisher, TableBuilder};
use lbfwd_config::model::*;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

fn flow(n: u16) -> FlowKey {
    FlowKey::new(
        crate::flow::key::v4_mapped([198, 51, 100, (n >> 8) as u8]),
        crate::flow::key::v4_mapped([203, 0, 113, 5]),
        IPPROTO_TCP,
        n,
        80,
        100,
    )
}

fn exception(n: u16, target: u8) -> Exception {
    Exception {
        flow: flow(n),
        target: crate::flow::key::v4_mapped([10, 0, 3, target]),
    }
}

#[test]
fn the_ring_keeps_order_and_refuses_when_full() {
    let ring = ExceptionRing::new(5);
    assert_eq!(ring.capacity(), 8);
    for n in 0..8 {
        assert!(ring.push(&exception(n, n as u8)));
    }
    assert!(!ring.push(&exception(99, 1)), "a full ring refuses");
    for n in 0..8 {
        assert_eq!(ring.pop(), Some(exception(n, n as u8)));
    }
    assert_eq!(ring.pop(), None);
    // Wrapping around keeps working.
    for round in 0..100u16 {
        assert!(ring.push(&exception(round, 7)));
        assert_eq!(ring.pop(), Some(exception(round, 7)));
    }
}

#[test]
fn the_map_finds_every_entry_and_nothing_else() {
    let entries: Vec<_> = (0..1000)
        .map(|n| (flow(n), exception(n, 1).target))
        .collect();
    let map = ExceptionMap::build(entries.iter().copied(), 42);
    assert_eq!(map.len(), 1000);
    for (k, t) in &entries {
        assert_eq!(map.get(k), Some(*t));
    }
    for n in 1000..3000 {
        assert_eq!(map.get(&flow(n)), None);
    }
    assert_eq!(ExceptionMap::default().get(&flow(1)), None);
    // A flow listed twice keeps its last target.
    let twice = [(flow(1), [1; 16]), (flow(1), [2; 16])];
    let map = ExceptionMap::build(twice.into_iter(), 1);
    assert_eq!((map.len(), map.get(&flow(1))), (1, Some([2; 16])));
}

#[test]
fn datagrams_round_trip_and_tags_are_checked() {
    let records: Vec<_> = (0..30).map(|n| exception(n, 2)).collect();
    let mut out = [0u8; wire::MAX_DATAGRAM];
    let key = b"0123456789abcdef".as_slice();
    let len = wire::encode(&records, Some(key), &mut out);
    assert_eq!(len, wire::MAX_DATAGRAM, "a full batch of 23 records");
    let mut got = Vec::new();
    assert_eq!(
        wire::decode(&out[..len], Some(key), &mut |e| got.push(e)),
        Ok(23)
    );
    assert_eq!(got, records[..23]);
    let none = &mut |_| panic!("nothing is handed over from a refused datagram");
    assert_eq!(
        wire::decode(&out[..len], Some(b"another key 1234"), none),
        Err(wire::WireError::BadTag)
    );
    assert_eq!(
        wire::decode(&out[..len], None, none),
        Err(wire::WireError::UnexpectedTag)
    );
    let mut bad = out;
    bad[20] ^= 1;
    assert_eq!(
        wire::decode(&bad[..len], Some(key), none),
        Err(wire::WireError::BadTag)
    );
    assert_eq!(
        wire::decode(&out[..len - 1], Some(key), none),
        Err(wire::WireError::Malformed)
    );
    assert_eq!(
        wire::decode(b"LBXS", None, none),
        Err(wire::WireError::Malformed)
    );
    let plain = wire::encode(&records[..2], None, &mut out);
    assert_eq!(plain, wire::HEADER + 2 * wire::RECORD);
    assert_eq!(
        wire::decode(&out[..plain], Some(key), none),
        Err(wire::WireError::BadTag)
    );
    let mut got = Vec::new();
    assert_eq!(
        wire::decode(&out[..plain], None, &mut |e| got.push(e)),
        Ok(2)
    );
    assert_eq!(got, records[..2]);
    assert!(!wire::is_hello(&out[..plain]));
    let hello = wire::encode_hello(Some(key), &mut out);
    assert_eq!(wire::decode(&out[..hello], Some(key), none), Ok(0));
    assert!(wire::is_hello(&out[..hello]));
    out[5] |= 4;
    assert_eq!(
        wire::decode(&out[..hello], Some(key), none),
        Err(wire::WireError::Malformed),
        "an unknown flag"
    );
}

/// Load balancer "web" on 203.0.113.5 (VNI 100), TCP 80, targets web0..3 at
/// 10.0.3.0.. with `weights`.
fn resolved(weights: &[u32]) -> Resolved {
    Resolved {
        load_balancers: vec![ResolvedLoadBalancer {
            name: "web".into(),
            lb_type: LoadBalancerType::Public,
            network: "n".into(),
            vni: 100,
            ips: vec![AssignedIp {
                addr: "203.0.113.5".parse().unwrap(),
                pool: None,
            }],
            ports: vec![PortRange {
                protocol: Protocol::Tcp,
                first: 80,
                last: 80,
            }],
            icmp_echo: IcmpEcho::Drop,
            maglev_table_size: 251,
            destinations: weights
                .iter()
                .enumerate()
                .map(|(i, &weight)| Destination {
                    name: format!("web{i}"),
                    uid: String::new(),
                    underlay: IpAddr::V4(Ipv4Addr::new(10, 0, 3, i as u8)),
                    mac: Some(MacAddr([2, 0, 0, 0, 3, i as u8])),
                    weight,
                })
                .collect(),
        }],
    }
}

/// Sends a TCP packet of flow `sport` to the VIP through `p`; returns the
/// last byte of the outer destination (the target's underlay).
fn send(p: &mut Pipeline, sport: u16) -> u8 {
    let mut f = vec![0u8; 14 + 20 + 20];
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&40u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = IPPROTO_TCP;
    ip[12..16].copy_from_slice(&[198, 51, 100, (sport >> 8) as u8]);
    ip[16..20].copy_from_slice(&[203, 0, 113, 5]);
    let sum = crate::wire::checksum::checksum(ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let tcp = &mut f[34..54];
    tcp[0..2].copy_from_slice(&sport.to_be_bytes());
    tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
    tcp[12] = 0x50;
    tcp[13] = 0x10;
    let mut buf = [vec![0; HEADROOM], f].concat();
    let len = buf.len() - HEADROOM;
    let mut frame = Frame::new(&mut buf, HEADROOM, len);
    assert_eq!(p.run(&mut frame).disposition(), Disposition::Tx);
    // VXLAN over IPv4: the outer destination address ends at byte 33.
    frame.data()[33]
}

const FLOWS: u16 = 400;

/// Appliance A keeps its flows through a weight change; the flows whose
/// Maglev pick changed are reported (by re-validation when they send, by
/// the sweep's check pass when they are idle). Appliance B, which never saw
/// them, sends them where A does once it has A's exceptions, and to their
/// new Maglev pick without them.
#[test]
fn a_peer_keeps_the_flows_another_pipeline_pinned() {
    let u = underlay(Encap::Vxlan { port: 4789 }, 1500);
    let mut builder = TableBuilder::new();
    let (v1, _) = builder.build(&resolved(&[1, 1, 1, 1]), &u, 1).unwrap();
    let publisher = Publisher::new(v1, 3);
    let peer = "127.0.0.9:1".parse().unwrap();
    let a_sync = SyncShared::new(1, 4096, peer, vec![peer], Duration::from_secs(3600));
    let b_sync = SyncShared::new(1, 4096, peer, vec![peer], Duration::from_secs(3600));
    let config = PipelineConfig::default();
    let mut a = Pipeline::new(publisher.reader(0), Arc::default(), &config)
        .unwrap()
        .with_sync(a_sync.port(0));
    let mut b = Pipeline::new(publisher.reader(1), Arc::default(), &config)
        .unwrap()
        .with_sync(b_sync.port(0));
    let mut plain = Pipeline::new(publisher.reader(2), Arc::default(), &config).unwrap();
    let second = 1_000_000_000u64;
    a.begin(second);
    let before: Vec<u8> = (0..FLOWS).map(|n| send(&mut a, n)).collect();
    // A first check pass over the table finds nothing: every flow is on
    // its Maglev pick.
    for _ in 0..200 {
        a.idle(second);
    }
    assert!(a_sync.rings()[0].pop().is_none());

    let (v2, _) = builder.build(&resolved(&[4, 1, 1, 1]), &u, 2).unwrap();
    publisher.publish(v2);
    a.begin(2 * second);
    plain.begin(2 * second);
    let moved: Vec<u16> = (0..FLOWS)
        .filter(|&n| send(&mut plain, n) != before[n as usize])
        .collect();
    assert!(
        moved.len() > 20,
        "the weight change moves some flows ({})",
        moved.len()
    );
    // The even flows send again under the new tables (re-validation); the
    // odd ones stay idle until the sweep's check pass finds them.
    for n in (0..FLOWS).step_by(2) {
        assert_eq!(send(&mut a, n), before[n as usize], "A keeps flow {n}");
    }
    let mut reported = Vec::new();
    while let Some(e) = a_sync.rings()[0].pop() {
        reported.push(e.flow.src_port);
    }
    let even: Vec<u16> = moved.iter().copied().filter(|n| n % 2 == 0).collect();
    assert_eq!(
        reported, even,
        "re-validation reports exactly the moved flows"
    );
    for _ in 0..200 {
        a.idle(2 * second);
    }
    let mut exceptions = Vec::new();
    while let Some(e) = a_sync.rings()[0].pop() {
        exceptions.push(e);
    }
    let mut found: Vec<u16> = exceptions.iter().map(|e| e.flow.src_port).collect();
    found.sort_unstable();
    found.dedup();
    assert_eq!(found, moved, "the check pass reports every moved flow");
    for e in &exceptions {
        assert_eq!(e.target[15], before[e.flow.src_port as usize]);
    }
    let counters = &a_sync.worker_counters()[0];
    assert_eq!(
        counters.reported.get(),
        (even.len() + exceptions.len()) as u64
    );

    // B learns A's exceptions: every flow goes where A sends it.
    let map = ExceptionMap::build(exceptions.iter().map(|e| (e.flow, e.target)), 9);
    let _old = b_sync.publish(map);
    b.begin(3 * second);
    for n in 0..FLOWS {
        assert_eq!(
            send(&mut b, n),
            before[n as usize],
            "B sends flow {n} where A did"
        );
    }
    assert_eq!(
        b_sync.worker_counters()[0].adopted.get(),
        moved.len() as u64
    );
    // An exception whose target left the routing is not followed.
    let (v3, _) = builder.build(&resolved(&[4, 1, 1]), &u, 3).unwrap();
    publisher.publish(v3);
    let mut c = Pipeline::new(publisher.reader(2), Arc::default(), &config)
        .unwrap()
        .with_sync(b_sync.port(0));
    c.begin(4 * second);
    for &n in &moved {
        let to = send(&mut c, n);
        assert!(to < 3, "flow {n} is not sent to the removed target");
    }
}

fn config(
    listen: &str,
    peer: &str,
    key: Option<&str>,
    refresh: Duration,
) -> lbfwd_config::sync::ExceptionSync {
    lbfwd_config::sync::ExceptionSync {
        listen: listen.parse().unwrap(),
        peers: vec![peer.parse().unwrap()],
        key: key.map(|k| k.as_bytes().to_vec()),
        refresh_interval: refresh,
        max_exceptions: 1000,
        worker_queue: 64,
    }
}

fn wait_for(what: &str, check: impl Fn() -> bool) {
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(
            std::time::Instant::now() < until,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Two sync threads over loopback: a reported exception reaches the peer's
/// published map at once; a peer that restarts says hello and gets every
/// exception at once (A's refresh interval is a minute: only the hello
/// explains it); a peer with another key refuses the datagrams, and its
/// hello is refused.
#[test]
fn sync_threads_exchange_exceptions_over_udp() {
    let key = Some("a shared secret!");
    let t = FlowTimeouts::default();
    let minute = Duration::from_secs(60);
    let start = |listen: &str, peer: &str, key: Option<&str>| {
        SyncService::start(&config(listen, peer, key, minute), t, 1, None).unwrap()
    };
    let a = start("127.0.0.2:47190", "127.0.0.3:47190", key);
    let b = start("127.0.0.3:47190", "127.0.0.2:47190", key);
    let e = exception(7, 3);
    // What a worker does: report an exception.
    assert!(a.shared().rings()[0].push(&e));
    wait_for("B to learn A's exception", || {
        b.shared().current().get(&e.flow) == Some(e.target)
    });
    assert_eq!(a.shared().stats().own_exceptions, 1);
    assert_eq!(b.shared().stats().peer_exceptions, 1);
    drop(b);
    let b = start("127.0.0.3:47190", "127.0.0.2:47190", key);
    wait_for("the restarted B to learn it after its hello", || {
        b.shared().current().get(&e.flow) == Some(e.target)
    });
    drop(b);
    let wrong = start(
        "127.0.0.3:47190",
        "127.0.0.2:47190",
        Some("another secret!!"),
    );
    wait_for("A to refuse the hello with the wrong key", || {
        a.shared().stats().datagrams_rejected > 0
    });
    let e2 = exception(8, 2);
    assert!(a.shared().rings()[0].push(&e2));
    wait_for("the peer with the wrong key to refuse A's datagram", || {
        wrong.shared().stats().datagrams_rejected > 0
    });
    assert!(wrong.shared().current().is_empty());
    assert_eq!(wrong.shared().stats().records_received, 0);
    let s = a.shared().stats();
    assert!(s.datagrams_sent >= 3 && s.records_sent >= 3, "{s:?}");
}
