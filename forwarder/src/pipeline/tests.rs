//! The pipeline's own tests (the golden cases in `tests/golden` cover the
//! verdicts and bytes of every stage).

use super::*;
use crate::encap::tests::underlay;
use crate::frame::HEADROOM;
use crate::io::Disposition;
use crate::wire::testgen::{frame, Rng};
use std::net::Ipv4Addr;

/// A load balancer of network `n` (VNI 100) on `ips`, TCP port 80
/// only, with `targets` targets `NAME0..` at 10.0.3.0.. (weight 1).
fn tcp80_lb(name: &str, ips: &[&str], targets: u8) -> lbfwd_config::model::ResolvedLoadBalancer {
    use lbfwd_config::model::*;
    ResolvedLoadBalancer {
        name: name.into(),
        lb_type: LoadBalancerType::Public,
        network: "n".into(),
        vni: 100,
        ips: ips
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
                name: format!("{name}{i}"),
                uid: String::new(),
                underlay: std::net::IpAddr::V4(Ipv4Addr::new(10, 0, 3, i)),
                mac: Some(MacAddr([2, 0, 0, 0, 3, i])),
                weight: 1,
            })
            .collect(),
    }
}

/// The sweep counts each load balancer's live flows: after a full pass
/// the counters hold them, and after the flows time out, 0.
#[test]
fn sweep_counts_live_flows_per_load_balancer() {
    use crate::tables::{Publisher, TableBuilder};
    use lbfwd_config::model::*;
    let resolved = Resolved {
        load_balancers: vec![
            tcp80_lb("web", &["203.0.113.5"], 4),
            tcp80_lb("api", &["203.0.113.6"], 2),
        ],
    };
    let u = underlay(Encap::Vxlan { port: 4789 }, 1500);
    let (tables, _) = TableBuilder::new().build(&resolved, &u, 1).unwrap();
    let slots: Vec<usize> = tables.lbs.iter().map(|l| l.slot as usize).collect();
    let publisher = Publisher::new(tables, 1);
    let config = PipelineConfig::default();
    let mut p = Pipeline::new(publisher.reader(0), Arc::default(), &config).unwrap();
    let mut r = Rng(7);
    let mut send = |p: &mut Pipeline, vip_last: u8, flow: u16| {
        let mut f = frame(&mut r, false, 0, IPPROTO_TCP, 10, 0);
        f[33] = vip_last;
        let l4 = 14 + usize::from(f[14] & 0x0f) * 4;
        f[l4..l4 + 2].copy_from_slice(&flow.to_be_bytes());
        f[l4 + 2..l4 + 4].copy_from_slice(&80u16.to_be_bytes());
        let mut buf = [vec![0; HEADROOM], f].concat();
        let len = buf.len() - HEADROOM;
        let d = p
            .run(&mut Frame::new(&mut buf, HEADROOM, len))
            .disposition();
        assert_eq!(d, Disposition::Tx);
    };
    let second = 1_000_000_000u64;
    p.begin(second);
    for flow in 0..30 {
        send(&mut p, 5, 1000 + flow);
    }
    for flow in 0..12 {
        send(&mut p, 6, 2000 + flow);
    }
    let flows = |p: &Pipeline| -> Vec<u64> {
        slots
            .iter()
            .map(|s| p.counters().lb_flows[*s].get())
            .collect()
    };
    assert_eq!(flows(&p), [0, 0], "nothing counted before a pass ends");
    // Two passes' worth of busy sweeps (4 buckets each): one whole
    // pass after the flows came.
    let calls = 2 * config.flow_capacity / SWEEP_BUCKETS_BUSY;
    for _ in 0..calls {
        p.begin(2 * second);
    }
    assert_eq!(flows(&p), [30, 12]);
    assert_eq!(p.flows(), 42);
    // Idle longer than the TCP timeout: the sweep of idle turns (256
    // buckets each) frees them all within two passes.
    for _ in 0..2 * config.flow_capacity / SWEEP_BUCKETS_IDLE {
        p.idle(400 * second);
    }
    assert_eq!(flows(&p), [0, 0]);
    assert_eq!(p.flows(), 0);
}

/// The burst prefetch is a hint: with it (bursts of 32, more flows than
/// [`PREFETCH_MIN_FLOWS`], so it runs) every frame gets the same
/// disposition and bytes as without.
#[test]
fn prefetch_changes_no_result() {
    use crate::tables::{Publisher, TableBuilder};
    use lbfwd_config::model::*;
    let resolved = Resolved {
        load_balancers: vec![tcp80_lb("web", &["203.0.113.5", "2001:db8:100::5"], 4)],
    };
    let u = underlay(Encap::Vxlan { port: 4789 }, 1500);
    let (tables, _) = TableBuilder::new().build(&resolved, &u, 1).unwrap();
    let publisher = Publisher::new(tables, 2);
    let config = PipelineConfig::default();
    let mut with = Pipeline::new(publisher.reader(0), Arc::default(), &config).unwrap();
    let mut without = Pipeline::new(publisher.reader(1), Arc::default(), &config).unwrap();
    let mut r = Rng(99);
    let frames: Vec<Vec<u8>> = (0..20_000u32)
        .map(|i| {
            let mut f = frame(
                &mut r,
                i % 3 == 0,
                (i % 5 == 0) as usize,
                IPPROTO_TCP,
                10,
                0,
            );
            // Distinct flows: the source port from the index.
            let l3 = if i % 5 == 0 { 18 } else { 14 };
            let l4 = l3 + if i % 3 == 0 { 40 } else { 20 };
            f[l4..l4 + 2].copy_from_slice(&(i as u16).to_be_bytes());
            f
        })
        .collect();
    let mut prefetched = 0;
    for round in 0..2 {
        for (n, chunk) in frames.chunks(32).enumerate() {
            let now = (round * 1000 + n as u64) * 1000;
            with.begin(now);
            without.begin(now);
            let mut a: Vec<Vec<u8>> = chunk
                .iter()
                .map(|f| [vec![0; HEADROOM], f.clone()].concat())
                .collect();
            let mut b = a.clone();
            for buf in &mut a {
                let len = buf.len() - HEADROOM;
                with.prefetch(&Frame::new(buf, HEADROOM, len));
            }
            prefetched += with.state.prefetched_len;
            for (x, y) in a.iter_mut().zip(&mut b) {
                let len = x.len() - HEADROOM;
                let mut fx = Frame::new(x, HEADROOM, len);
                let mut fy = Frame::new(y, HEADROOM, len);
                let dx = with.process(&mut fx);
                let dy = without.run(&mut fy).disposition();
                assert_eq!((dx, fx.data()), (dy, fy.data()));
            }
        }
    }
    assert!(
        prefetched > 10_000,
        "the prefetch stages ran ({prefetched} frames)"
    );
    let tx = with.counters().tx.packets.get();
    assert_eq!(tx, without.counters().tx.packets.get());
    assert!(tx > 15_000, "about half the frames go to port 80: {tx}");
}

/// An IPv4 fragment from 198.18.0.1 to `vip_last` of 203.0.113.x: TCP
/// (protocol 6), datagram id 0x1234, `offset` in 8-byte units, `more`
/// fragments after it, carrying `payload`.
fn fragment(offset: u16, more: bool, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
    let total = (20 + payload.len()) as u16;
    let flags = offset | if more { 0x2000 } else { 0 };
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&[0x12, 0x34]);
    f.extend_from_slice(&flags.to_be_bytes());
    f.extend_from_slice(&[64, IPPROTO_TCP, 0, 0, 198, 18, 0, 1, 203, 0, 113, 5]);
    f.extend_from_slice(payload);
    f
}

/// A held fragment the backend cannot take (its TX ring is full) is
/// counted once, as `tx_ring_full`, not as a fragment-tracker overflow.
#[test]
fn a_released_fragment_refused_by_the_backend_counts_as_tx_ring_full() {
    use crate::tables::{Publisher, TableBuilder};
    use lbfwd_config::model::*;
    let resolved = Resolved {
        load_balancers: vec![tcp80_lb("web", &["203.0.113.5"], 4)],
    };
    let u = underlay(Encap::Vxlan { port: 4789 }, 1500);
    let (tables, _) = TableBuilder::new().build(&resolved, &u, 1).unwrap();
    let publisher = Publisher::new(tables, 1);
    let mut p = Pipeline::new(
        publisher.reader(0),
        Arc::default(),
        &PipelineConfig::default(),
    )
    .unwrap();
    let run = |p: &mut Pipeline, f: Vec<u8>| {
        let mut buf = [vec![0; HEADROOM], f].concat();
        let len = buf.len() - HEADROOM;
        p.run(&mut Frame::new(&mut buf, HEADROOM, len))
    };
    p.begin(1_000_000_000);
    // TCP header (ports 1000 -> 80, data offset 5) and 4 bytes: 24 bytes,
    // then the last 8 bytes at offset 3 (24 bytes), which come first.
    let mut first = vec![0x03, 0xe8, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 2, 1, 0];
    first.extend_from_slice(&[0; 8]);
    assert_eq!(run(&mut p, fragment(3, false, &[7; 8])), Verdict::Held);
    assert_eq!(run(&mut p, fragment(0, true, &first)), Verdict::Tx);
    let mut offered = 0;
    let sent = p.release_held(&mut |_| {
        offered += 1;
        false
    });
    assert_eq!((sent, offered), (0, 1));
    let c = p.counters();
    assert_eq!(c.drops[DropReason::TxRingFull as usize].get(), 1);
    assert_eq!(c.drops[DropReason::FragmentOverflow as usize].get(), 0);
    assert_eq!(c.tx.packets.get(), 1, "only the first fragment was sent");
}

/// The three entries (express parser: untagged IPv4; fast parser: one VLAN
/// tag, or IPv6; full parser: two VLAN tags) share every stage after their
/// parser: the same flows sent through each, new and again, get the same
/// verdicts, the same bytes when sent (the tags are not part of the
/// output) and the
/// same counters (filter drops, picks, targets).
#[test]
fn every_entry_path_runs_the_same_stages() {
    use crate::tables::{Publisher, TableBuilder};
    use lbfwd_config::model::*;
    let resolved = Resolved {
        load_balancers: vec![tcp80_lb("web", &["203.0.113.5", "2001:db8:100::5"], 4)],
    };
    let u = underlay(Encap::Vxlan { port: 4789 }, 1500);
    let (tables, _) = TableBuilder::new().build(&resolved, &u, 1).unwrap();
    let publisher = Publisher::new(tables, 3);
    let config = PipelineConfig::default();
    let mut paths: Vec<Pipeline> = (0..3)
        .map(|i| Pipeline::new(publisher.reader(i), Arc::default(), &config).unwrap())
        .collect();
    let tag = |f: &[u8], tags: usize| -> Vec<u8> {
        let tags: &[u8] = match tags {
            0 => &[],
            1 => &[0x81, 0x00, 0, 7],
            _ => &[0x88, 0xa8, 0, 7, 0x81, 0x00, 0, 9],
        };
        [&f[..12], tags, &f[12..]].concat()
    };
    let mut r = Rng(0x5eed);
    let flows: Vec<Vec<u8>> = (0..600)
        .map(|_| {
            let proto = [IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP][r.below(3) as usize];
            let (v6, payload) = (r.below(3) == 0, r.below(30) as usize);
            frame(&mut r, v6, 0, proto, payload, 0)
        })
        .collect();
    let mut tx = 0;
    for round in 0..2u64 {
        for p in &mut paths {
            p.begin(1_000_000_000 + round);
        }
        for f in &flows {
            let out: Vec<(Verdict, Vec<u8>)> = paths
                .iter_mut()
                .enumerate()
                .map(|(tags, p)| {
                    let f = tag(f, tags);
                    let mut buf = [vec![0; HEADROOM], f].concat();
                    let len = buf.len() - HEADROOM;
                    let mut fr = Frame::new(&mut buf, HEADROOM, len);
                    let v = p.run(&mut fr);
                    // A refused frame stays as it came (tags included).
                    let bytes = if v == Verdict::Tx {
                        fr.data().to_vec()
                    } else {
                        Vec::new()
                    };
                    (v, bytes)
                })
                .collect();
            assert_eq!(out[0], out[1], "express vs fast path: {f:02x?}");
            assert_eq!(out[0], out[2], "express vs full path: {f:02x?}");
            tx += usize::from(out[0].0 == Verdict::Tx);
        }
    }
    assert!(tx > 200, "a fair share went to targets: {tx}");
    let c: Vec<&WorkerCounters> = paths.iter().map(|p| p.counters().as_ref()).collect();
    for other in &c[1..] {
        assert_eq!(c[0].tx.snapshot(), other.tx.snapshot());
        assert_eq!(c[0].flow_picks.get(), other.flow_picks.get());
        for r in DropReason::ALL {
            assert_eq!(c[0].drops[r as usize].get(), other.drops[r as usize].get());
        }
        let lb = |c: &WorkerCounters| c.lb_drops.iter().map(|d| d.get()).sum::<u64>();
        assert_eq!(lb(c[0]), lb(other));
        let targets = |c: &WorkerCounters| -> Vec<(u64, u64)> {
            c.targets.iter().take(16).map(|t| t.snapshot()).collect()
        };
        assert_eq!(targets(c[0]), targets(other));
    }
}
