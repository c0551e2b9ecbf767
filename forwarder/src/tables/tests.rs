//! The tables' tests: VIP map, filters, builds and publication.

use super::*;
use lbfwd_config::model::*;
use std::net::Ipv4Addr;

fn underlay() -> UnderlayParams {
    UnderlayParams {
        encap: Encap::Vxlan { port: 4789 },
        source_ipv4: Some(Ipv4Addr::new(10, 0, 2, 2)),
        source_ipv6: None,
        source_mac: [2, 0, 0, 0, 0, 2],
        next_hop_mac: [2, 0, 0, 0, 0, 1],
        mtu: 1500,
    }
}

fn resolved(dests: &[&str]) -> Resolved {
    Resolved {
        load_balancers: vec![ResolvedLoadBalancer {
            name: "web".into(),
            lb_type: LoadBalancerType::Public,
            network: "n".into(),
            vni: 100,
            ips: vec![AssignedIp {
                addr: "203.0.113.1".parse().unwrap(),
                pool: Some("public".into()),
            }],
            ports: vec![PortRange {
                protocol: Protocol::Tcp,
                first: 80,
                last: 80,
            }],
            icmp_echo: IcmpEcho::Drop,
            maglev_table_size: 251,
            destinations: dests
                .iter()
                .enumerate()
                .map(|(i, n)| Destination {
                    name: n.to_string(),
                    uid: String::new(),
                    underlay: IpAddr::V4(Ipv4Addr::new(10, 0, 3, i as u8 + 1)),
                    mac: Some(MacAddr([2, 0, 0, 0, 3, i as u8])),
                    weight: 1,
                })
                .collect(),
        }],
    }
}

/// Each load balancer's templates sit at its base in the shared list,
/// one per target with that target's slot, and each VIP leads to its
/// load balancer and network.
#[test]
fn templates_and_vips_line_up_with_their_load_balancers() {
    let mut r = resolved(&["a", "b", "c"]);
    let mut second = r.load_balancers[0].clone();
    second.name = "api".into();
    second.vni = 200;
    second.ips[0].addr = "2001:db8::7".parse().unwrap();
    second.destinations.truncate(2);
    r.load_balancers.push(second);
    let (t, _) = TableBuilder::new().build(&r, &underlay(), 1).unwrap();
    assert_eq!(t.templates.len(), 5);
    assert_eq!(t.lbs[1].template_base, 3);
    for lb in &t.lbs {
        for (i, target) in lb.targets.iter().enumerate() {
            let tpl = t.template(lb, i as u32).expect("template");
            assert_eq!(tpl.slot(), target.slot, "{} target {i}", lb.name);
        }
    }
    for (i, lb) in r.load_balancers.iter().enumerate() {
        let vip = t.vip(addr_key(lb.ips[0].addr)).expect("VIP");
        assert_eq!(
            vip,
            Vip {
                lb: i as u32,
                vni: lb.vni
            }
        );
    }
    let v4 = Ipv4Addr::new(203, 0, 113, 1);
    assert_eq!(t.vip_v4(u32::from(v4)), t.vip(addr_key(IpAddr::V4(v4))));
    assert_eq!(t.vip_v4(u32::from(Ipv4Addr::new(203, 0, 113, 2))), None);
}

#[test]
fn vip_map_finds_every_vip_and_nothing_else() {
    let vip = |lb: u32| Vip {
        lb,
        vni: lb ^ 0x5a5a,
    };
    let entries: Vec<(AddrKey, Vip)> = (0..1000u32)
        .map(|i| {
            (
                addr_key(IpAddr::V4(Ipv4Addr::from(0xCB00_7100 + i))),
                vip(i),
            )
        })
        .collect();
    let map = VipMap::new(&entries);
    for &(k, v) in &entries {
        assert_eq!(map.get(k), Some(v));
    }
    assert_eq!(map.get(addr_key("198.51.100.1".parse().unwrap())), None);
    assert_eq!(map.get(addr_key("::1".parse().unwrap())), None);
    // IPv6 VIPs next to IPv4 ones, including the IPv4-compatible and
    // IPv4-mapped look-alikes, which must not collide.
    let mut both = entries.clone();
    both.push((addr_key("2001:db8::1".parse().unwrap()), vip(5000)));
    both.push((addr_key("::203.0.113.0".parse().unwrap()), vip(5001)));
    let map = VipMap::new(&both);
    for &(k, v) in &both {
        assert_eq!(map.get(k), Some(v));
    }
    assert_eq!(map.get(addr_key("2001:db8::2".parse().unwrap())), None);
    assert_eq!(map.get(addr_key("::203.0.113.1".parse().unwrap())), None);
}

#[test]
fn targets_keep_slots_across_builds_and_leave_cleanly() {
    let mut b = TableBuilder::new();
    let (t1, _) = b
        .build(&resolved(&["a", "b", "c"]), &underlay(), 1)
        .unwrap();
    let (t2, released) = b.build(&resolved(&["a", "c"]), &underlay(), 2).unwrap();
    let slot_a = t1.lbs[0].targets[0].slot;
    let slot_b = t1.lbs[0].targets[1].slot;
    assert_eq!(t2.lbs[0].targets[0].slot, slot_a);
    assert_eq!(t2.target_in(0, slot_a), Some(0));
    assert_eq!(t2.target_in(0, slot_b), None, "b left the routing");
    assert_eq!(released, vec![slot_b]);
    assert_eq!(t2.target_in(1, slot_a), None, "wrong load balancer");
}

#[test]
fn old_versions_are_freed_only_after_every_worker_moved_on() {
    let mut b = TableBuilder::new();
    let (t1, _) = b.build(&resolved(&["a"]), &underlay(), 1).unwrap();
    let publisher = Publisher::new(t1, 2);
    let mut r0 = publisher.reader(0);
    let mut r1 = publisher.reader(1);
    let (t2, _) = b.build(&resolved(&["a", "b"]), &underlay(), 2).unwrap();
    publisher.publish(t2);
    assert_eq!(publisher.retired_len(), 1);
    assert_eq!(r0.refresh().version, 2);
    assert_eq!(publisher.reclaim(), 0, "worker 1 still on version 1");
    assert_eq!(r1.refresh().version, 2);
    assert_eq!(publisher.reclaim(), 1);
    assert_eq!(r0.tables().lbs[0].targets.len(), 2);
}

#[test]
fn port_filter_ranges() {
    let f = PortFilter::new(&[
        PortRange {
            protocol: Protocol::Tcp,
            first: 80,
            last: 80,
        },
        PortRange {
            protocol: Protocol::Udp,
            first: 1024,
            last: 2048,
        },
    ]);
    assert_eq!(f.allows(6, 80), Some(true));
    assert_eq!(f.allows(6, 81), Some(false));
    assert_eq!(f.allows(17, 2048), Some(true));
    assert_eq!(f.allows(17, 2049), Some(false));
    assert_eq!(f.allows(132, 80), Some(false));
    assert_eq!(f.allows(1, 0), None);
    assert!(f.allows_protocol(6) && f.allows_protocol(17) && !f.allows_protocol(132));
    // More ranges than fit inline: the rest is checked too.
    let many: Vec<PortRange> = (0..10u16)
        .map(|i| PortRange {
            protocol: Protocol::Sctp,
            first: 1000 * i,
            last: 1000 * i + 10,
        })
        .collect();
    let f = PortFilter::new(&many);
    for i in 0..10u16 {
        assert_eq!(f.allows(132, 1000 * i + 5), Some(true), "range {i}");
        assert_eq!(f.allows(132, 1000 * i + 11), Some(false), "after range {i}");
    }
    assert_eq!(f.allows(6, 5), Some(false));
}

/// A rebuild shares the Maglev table of a load balancer whose destinations
/// did not change (the same entries in memory) and builds a new one, equal
/// to a fresh build, for one whose weights, destinations or size changed.
#[test]
fn rebuilds_share_unchanged_maglev_tables() {
    let mut r = resolved(&["a", "b", "c"]);
    let mut api = r.load_balancers[0].clone();
    api.name = "api".into();
    api.ips[0].addr = "203.0.113.2".parse().unwrap();
    r.load_balancers.push(api);
    let mut builder = TableBuilder::new();
    let (first, _) = builder.build(&r, &underlay(), 1).unwrap();
    let shared = |a: &Tables, b: &Tables, lb: usize| {
        std::ptr::eq(a.lbs[lb].maglev.entries(), b.lbs[lb].maglev.entries())
    };

    r.load_balancers[1].destinations[0].weight = 5;
    let (second, _) = builder.build(&r, &underlay(), 2).unwrap();
    assert!(shared(&first, &second, 0), "web did not change");
    assert!(!shared(&first, &second, 1), "api's weights changed");
    let fresh = |r: &Resolved, lb: usize| {
        TableBuilder::new().build(r, &underlay(), 1).unwrap().0.lbs[lb]
            .maglev
            .clone()
    };
    assert_eq!(second.lbs[1].maglev, fresh(&r, 1));

    r.load_balancers[0].destinations.pop();
    let (third, _) = builder.build(&r, &underlay(), 3).unwrap();
    assert!(!shared(&second, &third, 0), "web lost a destination");
    assert!(shared(&second, &third, 1));
    assert_eq!(third.lbs[0].maglev, fresh(&r, 0));

    r.load_balancers[0].maglev_table_size = 509;
    let (fourth, _) = builder.build(&r, &underlay(), 4).unwrap();
    assert_eq!(fourth.lbs[0].maglev.size(), 509);
    assert_eq!(fourth.lbs[0].maglev, fresh(&r, 0));
}
