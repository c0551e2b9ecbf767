//! The control side's families: announcement (per VIP, BGP sessions read
//! from BIRD) and active health checks (state and probe results per
//! target). Rendered at scrape time from the same views `lbctl announce`
//! and `lbctl health` show; labels come from the configuration (VIPs, load
//! balancers, targets, peers), never from traffic.

use super::Exposition;
use lbfwd_control::announce::{AnnounceStatus, L2Status};
use lbfwd_control::health::{HealthState, TargetHealth};

/// Writes the announcement families of `status`.
pub fn collect_announce(status: &AnnounceStatus, out: &mut Exposition) {
    out.gauge(
        "lbfwd_announce_enabled",
        "1 while announcing is on (`lbctl announce on`, `[announce] initial`), 0 while withdrawn.",
    )
    .sample(&[], status.enabled && !status.shutting_down);
    let mut vips = out.gauge(
        "lbfwd_vip_announced",
        "1 while the VIP is announced (BGP), 0 while it is not (see `lbctl announce` for why).",
    );
    for v in &status.vips {
        let address = v.address.to_string();
        vips.sample(
            &[("address", &address), ("load_balancer", &v.load_balancer)],
            v.announced,
        );
    }
    if let Some(l2) = &status.l2 {
        collect_l2(status, l2, out);
    }
    let Some(bgp) = &status.bgp else {
        return;
    };
    out.gauge(
        "lbfwd_bird_running",
        "1 while the BIRD 2 that lbfwd manages (or the operator's) answers.",
    )
    .sample(&[], bgp.bird_pid.is_some() || bgp.external_socket.is_some());
    out.counter(
        "lbfwd_bird_restarts_total",
        "Times lbfwd restarted its BIRD after it died.",
    )
    .sample(&[], bgp.bird_restarts);
    let mut up = out.gauge(
        "lbfwd_bgp_session_up",
        "1 while the BGP session with the peer is Established.",
    );
    for p in &bgp.peers {
        let address = p.address.to_string();
        up.sample(
            &[("peer", &p.name), ("address", &address)],
            p.state == "Established",
        );
    }
    let mut sent = out.gauge(
        "lbfwd_bgp_prefixes_sent",
        "Prefixes exported to the peer (BIRD's count).",
    );
    for p in &bgp.peers {
        if let Some(n) = p.prefixes_sent {
            let address = p.address.to_string();
            sent.sample(&[("peer", &p.name), ("address", &address)], n);
        }
    }
}

/// Writes the layer-2 announcement families (`[l2]` configured).
fn collect_l2(status: &AnnounceStatus, l2: &L2Status, out: &mut Exposition) {
    out.gauge(
        "lbfwd_l2_answering",
        "1 while lbfwd answers ARP and neighbour solicitations for its VIPs.",
    )
    .sample(&[], l2.answering);
    let mut vips = out.gauge(
        "lbfwd_vip_l2_answered",
        "1 while the VIP is answered on the [l2] interfaces, 0 while it is not.",
    );
    for v in &status.vips {
        let address = v.address.to_string();
        vips.sample(
            &[("address", &address), ("load_balancer", &v.load_balancer)],
            v.l2,
        );
    }
    let mut answered = out.counter(
        "lbfwd_l2_requests_answered_total",
        "ARP requests and neighbour solicitations for a VIP that lbfwd answered.",
    );
    answered.sample(&[("protocol", "arp")], l2.arp_answered);
    answered.sample(&[("protocol", "ndp")], l2.nd_answered);
    let mut gratuitous = out.counter(
        "lbfwd_l2_gratuitous_total",
        "Gratuitous ARP and unsolicited neighbour advertisements, by outcome.",
    );
    gratuitous.sample(&[("result", "sent")], l2.gratuitous_sent);
    gratuitous.sample(&[("result", "dropped")], l2.gratuitous_dropped);
}

/// Writes the health-check families of `targets`.
pub fn collect_health(targets: &[TargetHealth], out: &mut Exposition) {
    const STATES: [HealthState; 3] = [
        HealthState::Unknown,
        HealthState::Healthy,
        HealthState::Unhealthy,
    ];
    let mut state = out.gauge(
        "lbfwd_target_health_state",
        "1 for the target's current health state (unknown, healthy, unhealthy), 0 for the others.",
    );
    for t in targets {
        for s in STATES {
            state.sample(
                &[
                    ("load_balancer", &t.load_balancer),
                    ("target", &t.name),
                    ("state", s.as_str()),
                ],
                t.health.state == s,
            );
        }
    }
    let mut in_table = out.gauge(
        "lbfwd_target_in_table",
        "1 while the target is in its load balancer's Maglev table (health and fail-open included).",
    );
    for t in targets {
        in_table.sample(
            &[("load_balancer", &t.load_balancer), ("target", &t.name)],
            t.health.in_table,
        );
    }
    let mut probes = out.counter(
        "lbfwd_health_probes_total",
        "Health probes by result: sent, passed, failed.",
    );
    for t in targets {
        let p = &t.health.probes;
        for (result, n) in [("sent", p.sent), ("passed", p.passed), ("failed", p.failed)] {
            probes.sample(
                &[
                    ("load_balancer", &t.load_balancer),
                    ("target", &t.name),
                    ("result", result),
                ],
                n,
            );
        }
    }
    let mut changes = out.counter(
        "lbfwd_health_state_changes_total",
        "Health state changes of the target (each one publishes new tables).",
    );
    for t in targets {
        changes.sample(
            &[("load_balancer", &t.load_balancer), ("target", &t.name)],
            t.health.probes.state_changes,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lbfwd_control::announce::{BgpStatus, PeerStatus, VipAnnouncement};
    use lbfwd_control::health::{DestinationHealth, ProbeCounters};

    fn status() -> AnnounceStatus {
        AnnounceStatus {
            enabled: true,
            shutting_down: false,
            l2: Some(L2Status {
                answering: true,
                interfaces: Vec::new(),
                arp_answered: 4,
                nd_answered: 5,
                gratuitous_sent: 6,
                gratuitous_dropped: 0,
            }),
            vips: vec![
                VipAnnouncement {
                    address: "203.0.113.10".parse().unwrap(),
                    load_balancer: "web".into(),
                    pool: None,
                    announced: true,
                    l2: true,
                    reason: None,
                },
                VipAnnouncement {
                    address: "2001:db8::10".parse().unwrap(),
                    load_balancer: "web".into(),
                    pool: None,
                    announced: false,
                    l2: false,
                    reason: Some("no usable destination".into()),
                },
            ],
            bgp: Some(BgpStatus {
                asn: 65001,
                router_id: "10.0.0.2".into(),
                external_socket: None,
                bird_pid: Some(42),
                bird_restarts: 3,
                last_error: None,
                peers: vec![
                    PeerStatus {
                        name: "peer1".into(),
                        address: "10.0.0.1".parse().unwrap(),
                        asn: 65000,
                        state: "Established".into(),
                        since_secs: Some(5),
                        prefixes_sent: Some(2),
                        last_error: None,
                        bfd: true,
                    },
                    PeerStatus {
                        name: "peer2".into(),
                        address: "fd00::1".parse().unwrap(),
                        asn: 65000,
                        state: "Active".into(),
                        since_secs: None,
                        prefixes_sent: None,
                        last_error: Some("Connection refused".into()),
                        bfd: false,
                    },
                ],
            }),
        }
    }

    fn target(name: &str, state: HealthState, in_table: bool) -> TargetHealth {
        TargetHealth {
            load_balancer: "web".into(),
            name: name.into(),
            uid: format!("uid-{name}"),
            underlay: "10.0.3.11".parse().unwrap(),
            weight: 100,
            health: DestinationHealth {
                state,
                since_unix: 0,
                kind: "tcp".into(),
                last_failure: None,
                last_failure_unix: None,
                in_table,
                probes: ProbeCounters {
                    sent: 10,
                    passed: 7,
                    failed: 3,
                    state_changes: 2,
                },
            },
        }
    }

    #[test]
    fn announcement_and_health_families_say_what_lbctl_says() {
        let mut out = Exposition::new();
        collect_announce(&status(), &mut out);
        collect_health(
            &[
                target("be1", HealthState::Healthy, true),
                target("be2", HealthState::Unhealthy, false),
            ],
            &mut out,
        );
        let text = out.into_text();
        for line in [
            "lbfwd_announce_enabled 1\n",
            "lbfwd_vip_announced{address=\"203.0.113.10\",load_balancer=\"web\"} 1\n",
            "lbfwd_vip_announced{address=\"2001:db8::10\",load_balancer=\"web\"} 0\n",
            "lbfwd_bird_running 1\n",
            "lbfwd_l2_answering 1\n",
            "lbfwd_vip_l2_answered{address=\"203.0.113.10\",load_balancer=\"web\"} 1\n",
            "lbfwd_l2_requests_answered_total{protocol=\"ndp\"} 5\n",
            "lbfwd_l2_gratuitous_total{result=\"sent\"} 6\n",
            "lbfwd_bird_restarts_total 3\n",
            "lbfwd_bgp_session_up{peer=\"peer1\",address=\"10.0.0.1\"} 1\n",
            "lbfwd_bgp_session_up{peer=\"peer2\",address=\"fd00::1\"} 0\n",
            "lbfwd_bgp_prefixes_sent{peer=\"peer1\",address=\"10.0.0.1\"} 2\n",
            "lbfwd_target_health_state{load_balancer=\"web\",target=\"be1\",state=\"healthy\"} 1\n",
            "lbfwd_target_health_state{load_balancer=\"web\",target=\"be2\",state=\"healthy\"} 0\n",
            "lbfwd_target_health_state{load_balancer=\"web\",target=\"be2\",state=\"unhealthy\"} 1\n",
            "lbfwd_target_in_table{load_balancer=\"web\",target=\"be2\"} 0\n",
            "lbfwd_health_probes_total{load_balancer=\"web\",target=\"be1\",result=\"failed\"} 3\n",
            "lbfwd_health_state_changes_total{load_balancer=\"web\",target=\"be1\"} 2\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
        // A peer BIRD has no count for gets no prefixes sample.
        assert!(!text.contains("lbfwd_bgp_prefixes_sent{peer=\"peer2\""));
        crate::metrics::promtool_check(&text);
    }
}
