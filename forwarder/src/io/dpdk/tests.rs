//! Unit tests of the DPDK backend that need no EAL: options, EAL
//! arguments, pool sizing, port option checks, formatting.

use super::port::*;
use super::*;

fn args(opts: &DpdkOptions) -> Vec<String> {
    eal_args(opts).expect("valid options")
}

#[test]
fn eal_args_for_tests_and_for_nics() {
    let a = args(&DpdkOptions {
        no_huge: true,
        vdevs: vec!["net_null0".into(), "net_tap0,iface=lbfwd0".into()],
        ..Default::default()
    });
    assert_eq!(a[0], "lbfwd");
    assert!(a[1].starts_with("--lcores=0@("), "{a:?}");
    assert_eq!(a[2], format!("--file-prefix=lbfwd-{}", std::process::id()));
    assert_eq!(
        &a[3..],
        [
            "--no-shconf",
            "--no-huge",
            "-m",
            "512",
            "--no-pci",
            "--vdev=net_null0",
            "--vdev=net_tap0,iface=lbfwd0"
        ]
    );

    let a = args(&DpdkOptions {
        huge_dir: Some("/dev".into()),
        memory_mb: Some(2048),
        pci_allow: vec!["0000:03:00.0".into(), "04:00.1,rxq_cqe_comp_en=1".into()],
        extra_eal_args: vec!["--log-level=pmd,8".into()],
        ..Default::default()
    });
    assert_eq!(
        &a[3..],
        [
            "--in-memory",
            "--huge-dir=/dev",
            "-m",
            "2048",
            "-a",
            "0000:03:00.0",
            "-a",
            "04:00.1,rxq_cqe_comp_en=1",
            "--log-level=pmd,8"
        ]
    );
}

#[test]
fn bad_eal_options_are_refused_with_the_option_named() {
    let cases: &[(DpdkOptions, &str, &str)] = &[
        (
            DpdkOptions {
                pci_allow: vec!["03:00".into()],
                ..Default::default()
            },
            "pci_allow",
            "not a PCI address",
        ),
        (
            DpdkOptions {
                pci_allow: vec!["0000:03:00.8".into()],
                ..Default::default()
            },
            "pci_allow",
            "\"0000:03:00.8\"",
        ),
        (
            DpdkOptions {
                no_huge: true,
                huge_dir: Some("/dev/hugepages".into()),
                ..Default::default()
            },
            "huge_dir",
            "choose one",
        ),
        (
            DpdkOptions {
                huge_dir: Some("relative/dir".into()),
                ..Default::default()
            },
            "huge_dir",
            "not an existing absolute directory",
        ),
        (
            DpdkOptions {
                memory_mb: Some(0),
                ..Default::default()
            },
            "memory_mb",
            "out of range",
        ),
        (
            DpdkOptions {
                vdevs: vec!["net_null0, size=64".into()],
                ..Default::default()
            },
            "vdevs",
            "not a virtual device",
        ),
        (
            DpdkOptions {
                vdevs: vec![",iface=x".into()],
                ..Default::default()
            },
            "vdevs",
            "not a virtual device",
        ),
        (
            DpdkOptions {
                extra_eal_args: vec!["--lcores=1-3".into()],
                ..Default::default()
            },
            "extra_eal_args",
            "set by lbfwd itself",
        ),
        (
            DpdkOptions {
                extra_eal_args: vec!["-l".into(), "2".into()],
                ..Default::default()
            },
            "extra_eal_args",
            "set by lbfwd itself",
        ),
        (
            DpdkOptions {
                extra_eal_args: vec!["--log-level\0x".into()],
                ..Default::default()
            },
            "extra_eal_args",
            "NUL",
        ),
    ];
    for (opts, field, needle) in cases {
        let err = eal_args(opts).expect_err(&format!("{opts:?} must be refused"));
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!("[dataplane.dpdk] {field}: ")) && msg.contains(needle),
            "{opts:?}: {msg}"
        );
    }
}

#[test]
fn pci_addresses() {
    for ok in ["0000:03:00.0", "03:00.0", "abcd:ef:1f.7", "00:1F.3"] {
        assert!(is_pci_address(ok), "{ok}");
    }
    for bad in [
        "",
        "03:00",
        "3:00.0",
        "0000:03:00.",
        "0000:03:00.8",
        "000:03:00.0",
        "x0:00.0",
    ] {
        assert!(!is_pci_address(bad), "{bad}");
    }
}

#[test]
fn options_map_from_the_config_section() {
    let section = lbfwd_config::settings::DpdkSection {
        no_huge: true,
        huge_dir: None,
        memory_mb: Some(256),
        pci_allow: vec!["0000:01:00.0".into()],
        vdevs: vec!["net_null0".into()],
        extra_eal_args: vec!["--log-level=8".into()],
        ..Default::default()
    };
    let opts = DpdkOptions::from(&section);
    assert_eq!(
        opts,
        DpdkOptions {
            no_huge: true,
            huge_dir: None,
            memory_mb: Some(256),
            pci_allow: vec!["0000:01:00.0".into()],
            vdevs: vec!["net_null0".into()],
            extra_eal_args: vec!["--log-level=8".into()],
        }
    );
}

#[test]
fn pool_is_sized_from_queues_descriptors_and_burst() {
    // 1 queue, defaults: 2048 descriptors + 5 * 32 (a burst and two TX
    // buffers of two bursts) + 2 * 256 (caches) + 1024 = 3744 -> at
    // least MIN_POOL.
    assert_eq!(pool_size(&PortOptions::new(1)), u64::from(MIN_POOL));
    // 4 queues with the host TAP: 2 * 4 * 2048 + 4 * 160 + 5 * 256 + 1024
    // = 19 328 -> 32 767.
    let opts = PortOptions {
        host_tap: Some("lbfwd0".into()),
        ..PortOptions::new(4)
    };
    assert_eq!(pool_size(&opts), 32_767);
    assert!(pool_size(&PortOptions::new(16)) >= 16 * 2048);
    // Bursts of 1024: 2048 + 5 * 1024 + 512 + 1024 = 8704 -> 16 383.
    let opts = PortOptions {
        burst: 1024,
        ..PortOptions::new(1)
    };
    assert_eq!(pool_size(&opts), 16_383);
}

#[test]
fn port_options_are_checked_before_the_port_is_touched() {
    let cases = [
        (PortOptions::new(0), "0 queues"),
        (
            PortOptions {
                burst: 0,
                ..PortOptions::new(1)
            },
            "burst 0",
        ),
        (
            PortOptions {
                burst: MAX_BURST as u16 + 1,
                ..PortOptions::new(1)
            },
            "out of range",
        ),
        (
            PortOptions {
                mtu: Some(9000),
                ..PortOptions::new(1)
            },
            "MTU 9000",
        ),
        (
            PortOptions {
                host_tap: Some("a very long interface name".into()),
                ..PortOptions::new(1)
            },
            "not an interface name",
        ),
        (
            PortOptions {
                rx_desc: 0,
                ..PortOptions::new(1)
            },
            "at least 1",
        ),
    ];
    for (opts, needle) in cases {
        let msg = check_port_options("p0", &opts).unwrap_err().to_string();
        assert!(
            msg.starts_with("DPDK port \"p0\": ") && msg.contains(needle),
            "{msg}"
        );
    }
}

#[test]
fn link_and_summary_read_well() {
    let link = LinkStatus {
        up: true,
        speed_mbps: 25_000,
        full_duplex: true,
        autoneg: true,
    };
    assert_eq!(
        link.to_string(),
        "link up, 25000 Mbit/s, full duplex, autonegotiated"
    );
    assert_eq!(LinkStatus::default().to_string(), "link down");
    let summary = PortSummary {
        name: "0000:03:00.0".into(),
        port_id: 0,
        driver: "net_ice".into(),
        mac: [2, 0, 0, 0, 0, 1],
        socket: 0,
        queues: 4,
        rx_desc: 1024,
        tx_desc: 1024,
        rss_supported: u64::MAX,
        rss_enabled: 0x3ffc,
        rss_l4: true,
    };
    assert_eq!(
        summary.to_string(),
        "port 0000:03:00.0 (id 0, net_ice, 02:00:00:00:00:01): 4 queues, 1024/1024 rx/tx \
             descriptors, RSS 5-tuple"
    );
}
