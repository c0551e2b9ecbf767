//! The BIRD side of the announcer against a real BIRD 2: the generated
//! configuration loads, `configure` announces and withdraws without
//! touching the BGP protocols, and a configuration BIRD refuses comes back
//! with BIRD's message while the running routes stay.

use lbfwd_config::bgp::{Bgp, BgpPeer, Community, RouteAttributes};
use lbfwd_forwarder::announce::{bird, birdc};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIRD: &str = "/usr/sbin/bird";
const T: Duration = Duration::from_secs(5);

struct Bird(Child, PathBuf);

impl Drop for Bird {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

fn settings(dir: &Path) -> Bgp {
    Bgp {
        asn: 65001,
        router_id: "192.0.2.1".parse().unwrap(),
        hold_time: Duration::from_secs(9),
        keepalive: Duration::from_secs(3),
        shutdown_delay: Duration::from_secs(1),
        attributes: RouteAttributes::default(),
        bfd_interval: Duration::from_millis(100),
        bfd_multiplier: 5,
        // Not 179: the test runs in the machine's own namespace.
        local_port: 11179,
        bird: BIRD.into(),
        runtime_dir: dir.to_path_buf(),
        external: None,
        // A passive peer on a documentation address: BIRD never connects.
        peers: vec![BgpPeer {
            address: "192.0.2.254".parse().unwrap(),
            asn: 65000,
            port: 179,
            password: None,
            source_address: None,
            multihop: Some(2),
            passive: true,
            hold_time: Duration::from_secs(9),
            bfd: false,
        }],
    }
}

fn route(addr: &str, community: Option<Community>) -> bird::Route {
    bird::Route {
        address: addr.parse().unwrap(),
        attributes: RouteAttributes {
            communities: community.into_iter().collect(),
            ..RouteAttributes::default()
        },
    }
}

fn routes(socket: &Path) -> String {
    birdc::command(socket, "show route all", T)
        .expect("show route")
        .iter()
        .map(|l| l.text.clone())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn configure_announces_and_a_refused_config_keeps_the_routes() {
    if !Path::new(BIRD).exists() {
        eprintln!("SKIPPED: {BIRD} is missing (Debian package bird2)");
        return;
    }
    let dir = std::env::temp_dir().join(format!("lbfwd-bird-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let b = settings(&dir);
    let conf = dir.join("bird.conf");
    let socket = dir.join("bird.ctl");
    let one = [route("203.0.113.10", Some(Community(65001, 100)))];
    std::fs::write(&conf, bird::config(&b, &one)).unwrap();
    // The file the announcer generates parses (`bird -p`).
    let check = Command::new(BIRD)
        .arg("-p")
        .arg("-c")
        .arg(&conf)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let child = Command::new(BIRD)
        .arg("-f")
        .arg("-c")
        .arg(&conf)
        .arg("-s")
        .arg(&socket)
        .arg("-P")
        .arg(dir.join("bird.pid"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _bird = Bird(child, dir.clone());
    let deadline = Instant::now() + T;
    while birdc::command(&socket, "show status", T).is_err() {
        assert!(Instant::now() < deadline, "BIRD did not answer");
        std::thread::sleep(Duration::from_millis(50));
    }
    let shown = routes(&socket);
    assert!(
        shown.contains("203.0.113.10/32") && shown.contains("(65001,100)"),
        "{shown}"
    );

    // Announce a second VIP and an IPv6 one: the BGP protocol stays as it is.
    let since = |s: &Path| {
        birdc::parse_protocols(&birdc::command(s, "show protocols all", T).unwrap())
            .into_iter()
            .find(|p| p.name == "peer1")
            .map(|p| p.since)
            .expect("peer1")
    };
    let before = since(&socket);
    std::thread::sleep(Duration::from_millis(1100));
    let three = [
        route("203.0.113.10", None),
        route("203.0.113.11", None),
        route("2001:db8::10", None),
    ];
    let next = dir.join("bird.conf.new");
    std::fs::write(&next, bird::config(&b, &three)).unwrap();
    birdc::configure(&socket, &next, T).expect("configure");
    let shown = routes(&socket);
    assert!(
        shown.contains("203.0.113.11/32") && shown.contains("2001:db8::10/128"),
        "{shown}"
    );
    assert!(!shown.contains("(65001,100)"), "{shown}");
    assert_eq!(since(&socket), before, "the BGP protocol was restarted");

    // A configuration BIRD refuses: its message, and the routes stay.
    let bad = dir.join("bad.conf");
    std::fs::write(
        &bad,
        "protocol static { ipv4; route 198.51.100.1/32 blackhole }\n",
    )
    .unwrap();
    let err = birdc::configure(&socket, &bad, T).expect_err("BIRD must refuse it");
    let message = err.to_string();
    assert!(
        message.contains("syntax error") && message.contains("bad.conf"),
        "{message}"
    );
    let shown = routes(&socket);
    assert!(
        shown.contains("203.0.113.11/32") && !shown.contains("198.51.100.1"),
        "{shown}"
    );

    // Withdraw everything.
    std::fs::write(&next, bird::config(&b, &[])).unwrap();
    birdc::configure(&socket, &next, T).expect("configure");
    assert!(
        !routes(&socket).contains("203.0.113"),
        "{}",
        routes(&socket)
    );
}

/// The announcer with an operator-run BIRD (`external_bird_socket`): it
/// writes the included file and calls `configure`; when that BIRD refuses
/// its configuration, the answer is BIRD's message, the previous file is
/// put back and the running announcement stays.
#[test]
fn announcer_drives_an_operator_run_bird_and_survives_a_refusal() {
    use lbfwd_forwarder::announce::Announcer;
    if !Path::new(BIRD).exists() {
        eprintln!("SKIPPED: {BIRD} is missing (Debian package bird2)");
        return;
    }
    let dir = std::env::temp_dir().join(format!("lbfwd-bird-ext-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let include = dir.join("lbfwd-vips.conf");
    let main = dir.join("bird.conf");
    let socket = dir.join("bird.ctl");
    let main_text = format!(
        "router id 192.0.2.9;\nprotocol device {{}}\ninclude \"{}\";\n",
        include.display()
    );
    std::fs::write(&main, &main_text).unwrap();
    std::fs::write(&include, "# lbfwd writes this\n").unwrap();
    let child = Command::new(BIRD)
        .arg("-f")
        .arg("-c")
        .arg(&main)
        .arg("-s")
        .arg(&socket)
        .arg("-P")
        .arg(dir.join("bird.pid"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _bird = Bird(child, dir.clone());
    let deadline = Instant::now() + T;
    while birdc::command(&socket, "show status", T).is_err() {
        assert!(Instant::now() < deadline, "BIRD did not answer");
        std::thread::sleep(Duration::from_millis(50));
    }
    let config = lbfwd_config::Config::from_toml_str(
        &format!(
            r#"[dataplane]
backend = "memory"
workers = [0]
[underlay]
encap = "vxlan"
source_ipv4 = "10.0.2.2"
next_hop_mac = "02:00:00:00:00:01"
[control]
socket = "{d}/lbfwd.sock"
state_dir = "{d}/state"
[bgp]
asn = 65001
router_id = "10.0.2.2"
external_bird_socket = "{s}"
external_bird_include = "{i}"
[[pool]]
name = "public"
addresses = ["203.0.113.0/30"]
bgp = {{ communities = ["65001:300"] }}
[[network]]
name = "n"
vni = 1
[[network_interface]]
name = "a"
network = "n"
underlay = "10.0.3.11"
mac = "02:00:00:00:10:11"
[[load_balancer]]
name = "web"
type = "Public"
network = "n"
network_interface_selector = {{}}
"#,
            d = dir.display(),
            s = socket.display(),
            i = include.display()
        ),
        "lbfwd.toml",
    )
    .expect("config");
    let resolved = config.resolve().expect("resolve").resolved;
    let a = Announcer::start(&config.settings, &resolved, &config.state.pools).expect("start");
    a.dataplane_ready();
    let shown = routes(&socket);
    assert!(
        shown.contains("203.0.113.0/32") && shown.contains("(65001,300)"),
        "{shown}"
    );
    assert!(a.status().vips[0].announced);

    // The operator breaks its own config: BIRD refuses the next configure.
    std::fs::write(&main, format!("{main_text}this is not BIRD\n")).unwrap();
    let before = std::fs::read_to_string(&include).unwrap();
    let err = a.set_enabled(false).expect_err("BIRD must refuse");
    assert!(err.contains("syntax error"), "{err}");
    assert_eq!(std::fs::read_to_string(&include).unwrap(), before);
    assert!(
        routes(&socket).contains("203.0.113.0/32"),
        "the running announcement went"
    );
    let status = a.status();
    assert!(status.vips[0].announced, "{status:?}");
    let last = status.bgp.and_then(|b| b.last_error).unwrap_or_default();
    assert!(last.contains("syntax error"), "{last}");

    // Fixed: the withdrawal goes through.
    std::fs::write(&main, &main_text).unwrap();
    a.set_enabled(false).expect("configure");
    assert!(
        !routes(&socket).contains("203.0.113.0"),
        "{}",
        routes(&socket)
    );
    assert!(!a.status().vips[0].announced);
    a.stop();
}
