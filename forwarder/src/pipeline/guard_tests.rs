//! The new-flow flood guard in the pipeline ([`crate::flow::guard`]): a
//! flood of new flows into a small flow table evicts established flows
//! without it, and none with it; refused flows are forwarded without an
//! entry (or dropped), and counted.

use super::*;
use crate::encap::tests::underlay;
use crate::flow::guard::{Excess, GuardConfig};
use crate::frame::HEADROOM;
use crate::tables::{Publisher, TableBuilder};
use crate::wire::testgen::{frame, Rng};
use lbfwd_config::model::*;

/// A TCP SYN-sized frame of a new flow to 203.0.113.5:80 (random source).
fn new_flow(r: &mut Rng) -> Vec<u8> {
    let mut f = frame(r, false, 0, IPPROTO_TCP, 0, 0);
    f[30..34].copy_from_slice(&[203, 0, 113, 5]);
    let l4 = 14 + usize::from(f[14] & 0x0f) * 4;
    f[l4 + 2..l4 + 4].copy_from_slice(&80u16.to_be_bytes());
    f
}

fn send(p: &mut Pipeline, f: &[u8]) -> Verdict {
    let mut buf = [vec![0; HEADROOM], f.to_vec()].concat();
    let len = buf.len() - HEADROOM;
    p.run(&mut Frame::new(&mut buf, HEADROOM, len))
}

/// 16 established flows, then a flood of 20,000 new ones within 20 ms into
/// a 256-entry table; returns the pipeline and how many established flows
/// were picked again (evicted) when they sent once more after the flood.
fn flood(guard: GuardConfig) -> (Pipeline, u64, Vec<Verdict>) {
    let lb = ResolvedLoadBalancer {
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
        destinations: (0..3u8)
            .map(|i| Destination {
                name: format!("t{i}"),
                uid: String::new(),
                underlay: std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 3, i)),
                mac: Some(MacAddr([2, 0, 0, 0, 3, i])),
                weight: 1,
            })
            .collect(),
    };
    let resolved = Resolved {
        load_balancers: vec![lb],
    };
    let u = underlay(Encap::Vxlan { port: 4789 }, 1500);
    let (tables, _) = TableBuilder::new().build(&resolved, &u, 1).unwrap();
    let publisher = Publisher::new(tables, 1);
    let config = PipelineConfig {
        flow_capacity: 256,
        guard,
        ..PipelineConfig::default()
    };
    let mut p = Pipeline::new(publisher.reader(0), Arc::default(), &config).unwrap();
    let mut r = Rng(0xf100d);
    let established: Vec<Vec<u8>> = (0..16).map(|_| new_flow(&mut r)).collect();
    let ms = 1_000_000u64;
    p.begin(1000 * ms);
    for f in &established {
        assert_eq!(send(&mut p, f), Verdict::Tx);
    }
    let picked = p.counters().flow_picks.get();
    assert_eq!(picked, 16, "every established flow was remembered");
    let mut verdicts = Vec::new();
    for burst in 0..20u64 {
        p.begin(2000 * ms + burst * ms);
        for _ in 0..1000 {
            verdicts.push(send(&mut p, &new_flow(&mut r)));
        }
        // The established flows keep talking (every 5 ms; the last time
        // before the flood's last 4 ms).
        if burst % 5 == 0 {
            for f in &established {
                assert_eq!(send(&mut p, f), Verdict::Tx);
            }
        }
    }
    let before = p.counters().flow_picks.get() + p.counters().flows_not_remembered.get();
    p.begin(2021 * ms);
    for f in &established {
        assert_eq!(send(&mut p, f), Verdict::Tx);
    }
    let after = p.counters().flow_picks.get() + p.counters().flows_not_remembered.get();
    (p, after - before, verdicts)
}

#[test]
fn without_the_guard_a_flood_evicts_established_flows() {
    let (p, evicted, verdicts) = flood(GuardConfig::OFF);
    assert!(
        evicted >= 12,
        "only {evicted} of 16 established flows evicted"
    );
    assert!(verdicts.iter().all(|v| *v == Verdict::Tx));
    assert_eq!(p.counters().flows_not_remembered.get(), 0);
    assert_eq!(p.counters().flow_guard_engaged.get(), 0);
}

#[test]
fn with_the_guard_established_flows_stay_and_the_flood_is_forwarded() {
    let guard = GuardConfig {
        rate: 100,
        burst: 20,
        excess: Excess::Forward,
    };
    let (p, evicted, verdicts) = flood(guard);
    assert_eq!(evicted, 0, "established flows were evicted");
    assert!(
        verdicts.iter().all(|v| *v == Verdict::Tx),
        "the flood is forwarded"
    );
    let c = p.counters();
    // 20 (the burst, less the 16 established ones' tokens refilled in the
    // second between) plus 100/s over 21 ms: a handful remembered.
    let remembered = c.flow_picks.get() - 16;
    assert!(remembered <= 24, "{remembered} flood flows remembered");
    assert_eq!(c.flows_not_remembered.get(), 20_000 - remembered);
    assert_eq!(c.flow_guard_engaged.get(), 1, "engaged during the flood");
    assert_eq!(c.drops_total(), 0);
}

#[test]
fn with_excess_drop_the_flood_above_the_rate_is_dropped_and_counted() {
    let guard = GuardConfig {
        rate: 100,
        burst: 20,
        excess: Excess::Drop,
    };
    let (mut p, evicted, verdicts) = flood(guard);
    assert_eq!(evicted, 0);
    let dropped = verdicts
        .iter()
        .filter(|v| **v == Verdict::Drop(DropReason::NewFlowLimit))
        .count() as u64;
    let c = p.counters().clone();
    assert_eq!(dropped, c.drops[DropReason::NewFlowLimit as usize].get());
    assert_eq!(dropped + (c.flow_picks.get() - 16), 20_000);
    assert_eq!(c.flows_not_remembered.get(), 0);
    // A second later the guard is no longer engaged.
    p.idle(3100 * 1_000_000);
    assert_eq!(p.counters().flow_guard_engaged.get(), 0);
}
