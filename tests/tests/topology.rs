//! The test network itself, without lbfwd: if these fail, the end-to-end
//! tests would fail for reasons that are not lbfwd's.

use lbfwd_tests::client::{http_get, url};
use lbfwd_tests::{require_root, serial, Node, Topology};
use std::time::Duration;

/// `topo.sh selftest`: with the lb namespace's own kernel VXLAN devices
/// standing in for lbfwd, each backend, over each underlay family, answers
/// HTTP (80 and 8080), UDP (allowed and blocked ports) and ping on both
/// VIPs; a 4 MB answer reaches the client while the lb node sees only the
/// client's side (direct server return); the lb node's own addresses answer
/// ARP/NDP and ping; nothing answers for the VIP while nothing forwards.
#[test]
fn selftest_kernel_vxlan_stands_in_for_lbfwd() {
    if !require_root("selftest_kernel_vxlan_stands_in_for_lbfwd") {
        return;
    }
    let _serial = serial();
    let topo = Topology::up("tself").expect("build the network");
    let report = topo.selftest().expect("topology self-test");
    eprintln!("{report}");
    assert!(report.contains("PASS"), "{report}");
}

/// Dropping a `Topology` ends its processes and deletes its namespaces,
/// also when the test panics.
#[test]
fn cleanup_on_drop_and_on_panic() {
    if !require_root("cleanup_on_drop_and_on_panic") {
        return;
    }
    let _serial = serial();
    let namespaces = || {
        let out = std::process::Command::new("ip")
            .args(["netns", "list"])
            .output()
            .expect("ip netns list");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|n| n.starts_with("tclean-"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    {
        let topo = Topology::up("tclean").expect("build the network");
        assert_eq!(namespaces().len(), 6, "{:?}", namespaces());
        assert!(topo.state_dir().join("be1.pid").exists());
    }
    assert_eq!(namespaces(), Vec::<String>::new(), "left behind after drop");

    let panicked = std::thread::spawn(|| {
        let _topo = Topology::up("tclean").expect("build the network");
        panic!("deliberate panic inside a test network");
    })
    .join();
    assert!(panicked.is_err());
    assert_eq!(
        namespaces(),
        Vec::<String>::new(),
        "left behind after a panic"
    );
}

/// Without a load balancer the VIP is unreachable and the backends cannot be
/// reached for it some other way: nothing on the path answers in its place.
#[test]
fn vip_unreachable_without_lbfwd() {
    if !require_root("vip_unreachable_without_lbfwd") {
        return;
    }
    let _serial = serial();
    let topo = Topology::up("tnolb").expect("build the network");
    for vip in [topo.vip4(), topo.vip6()] {
        let t = http_get(&topo, &url(vip, 80, "/"), Duration::from_secs(2)).expect("curl");
        assert!(!t.ok(), "{vip} answered HTTP without lbfwd: {t:?}");
        let answers = lbfwd_tests::client::udp(&topo, vip, 1500, "x", Duration::from_secs(1), 2)
            .expect("udp client");
        assert_eq!(
            answers,
            vec![None, None],
            "{vip} answered UDP without lbfwd"
        );
        let got = lbfwd_tests::client::ping(&topo, Node::Client, vip, 2).expect("ping");
        assert_eq!(got, 0, "{vip} answered ping without lbfwd");
    }
    // The network itself works: the lb node answers for its own address.
    assert_eq!(
        lbfwd_tests::client::ping(&topo, Node::Client, topo.get("LB_IP4"), 2).expect("ping"),
        2
    );
    assert_eq!(
        lbfwd_tests::client::ping(&topo, Node::Client, topo.get("LB_IP6"), 2).expect("ping"),
        2
    );
}
