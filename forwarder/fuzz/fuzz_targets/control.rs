//! Fuzz target `control`: request lines through the real control handler
//! (`lbfwd_control::server::answer` on the handler `lbfwd run` serves),
//! over a real daemon state loaded from a config file (pool, network,
//! interfaces, load balancers with selectors and routings), with the memory
//! dataplane publishing real tables (small Maglev tables, so that a run
//! takes milliseconds).
//!
//! One input is a session: its lines (split at `\n`, at most 8) are sent in
//! order to a fresh daemon. After every line:
//! - the answer is one well-formed response line that a client reads back;
//! - a refused request changed nothing: the same desired state, the same
//!   table version, the same saved state file;
//! - an accepted change left a state a restart accepts: the saved file
//!   reads back as the running state and resolves, and `export` loads as a
//!   config equal to the running one.
#![no_main]

use lbfwd_config::{Config, DesiredState};
use lbfwd_control::protocol::{Payload, Request, Response};
use lbfwd_control::server::answer;
use lbfwd_forwarder::daemon::{write_atomic, Daemon, STATE_FILE, STATE_PREVIOUS};
use lbfwd_forwarder::dataplane::Dataplane;
use lbfwd_forwarder::runtime::{Layout, WorkerPlacement};
use lbfwd_forwarder::tables::UnderlayParams;
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

const MAX_LINES: usize = 8;

/// The daemon's directory (config file, state, socket path): under
/// `LBFWD_FUZZ_DIR` when set (scripts/fuzz.sh sets it and removes it), else
/// on tmpfs when there is one (every accepted change writes and fsyncs the
/// state).
fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = if let Some(d) = std::env::var_os("LBFWD_FUZZ_DIR") {
            PathBuf::from(d)
        } else if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("lbfwd-fuzz-control-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("state")).expect("fuzz directory");
        std::fs::write(dir.join("lbfwd.toml"), config_text(&dir)).expect("config file");
        dir
    })
}

fn config_text(dir: &std::path::Path) -> String {
    format!(
        r#"[dataplane]
backend = "memory"
interfaces = []
workers = [0]

[underlay]
encap = "vxlan"
source_ipv4 = "10.0.2.2"
source_ipv6 = "fd00:2::2"
next_hop_mac = "02:00:00:00:02:01"

[control]
socket = "{}"
state_dir = "{}"

[log]
level = "off"

[[pool]]
name = "public"
addresses = ["203.0.113.0/29", "2001:db8:100::/125"]

[[network]]
name = "n"
vni = 100

[[network]]
name = "m"
vni = 200

[[network_interface]]
name = "be1"
uid = "00000000-0000-4000-8000-000000000001"
network = "n"
labels = {{ app = "web", zone = "a" }}
underlay = "10.0.3.11"
mac = "02:00:00:00:10:11"

[[network_interface]]
name = "be2"
network = "n"
labels = {{ app = "web", zone = "b" }}
underlay = "fd00:3::12"
mac = "02:00:00:00:10:12"

[[network_interface]]
name = "db1"
network = "m"
labels = {{ app = "db" }}
underlay = "10.0.3.21"
mac = "02:00:00:00:10:21"

[[load_balancer]]
name = "web"
type = "Public"
network = "n"
maglev_table_size = 251
network_interface_selector = {{ match_labels = {{ app = "web" }} }}
ports = [ {{ protocol = "TCP", port = 80 }}, {{ protocol = "UDP", port = 5000, end_port = 5100 }} ]

[[load_balancer]]
name = "base"
type = "Public"
ip_families = ["IPv4"]
maglev_table_size = 251
ips = ["203.0.113.0"]
network = "n"
ports = [ {{ protocol = "UDP", port = 53 }} ]

[[load_balancer_routing]]
name = "base"
destinations = [ {{ name = "be1" }} ]

[[load_balancer]]
name = "db"
type = "Internal"
network = "m"
maglev_table_size = 509
ips = ["10.9.0.1"]
network_interface_selector = {{ match_expressions = [ {{ key = "app", operator = "In", values = ["db"] }} ] }}
ports = [ {{ protocol = "TCP", port = 5432 }} ]
"#,
        dir.join("lbfwd.sock").display(),
        dir.join("state").display(),
    )
}

fn saved(dir: &std::path::Path) -> Option<Vec<u8>> {
    std::fs::read(dir.join("state").join(STATE_FILE)).ok()
}

fuzz_target!(|data: &[u8]| {
    let dir = dir();
    let _ = std::fs::remove_file(dir.join("state").join(STATE_FILE));
    let config_path = dir.join("lbfwd.toml");
    let daemon = Daemon::start(&config_path, &[]).expect("the fuzz config starts");
    let config = daemon.config();
    // What `serve` does first: save the state the daemon starts with.
    write_atomic(
        &dir.join("state"),
        STATE_FILE,
        STATE_PREVIOUS,
        &config.state.to_toml(),
    )
    .expect("the first saved state");
    let underlay = UnderlayParams::from_settings(&config.settings.underlay, None);
    let dataplane =
        Arc::new(Dataplane::new(&daemon.resolved(), underlay, 1).expect("the first tables"));
    let layout = Layout {
        workers: vec![WorkerPlacement {
            core: None,
            ingress: None,
            egress: None,
            queue: None,
        }],
        config: Default::default(),
        require_up: false,
    };
    let handler = daemon.control_handler(Arc::clone(&dataplane), layout);
    for line in data.split(|&b| b == b'\n').take(MAX_LINES) {
        let before = (daemon.config(), dataplane.current().version, saved(dir));
        let response = answer(line, &*handler);
        let wire = response.to_line();
        assert!(!wire.contains('\n'), "a response is one line");
        let back = Response::from_line(&wire).expect("a client reads the response back");
        let after = (daemon.config(), dataplane.current().version, saved(dir));
        match &response.0 {
            Err(e) => {
                assert!(!e.message.is_empty(), "an error without a message");
                assert!(back.0.is_err());
                assert!(
                    before == after,
                    "a refused request ({}: {}) changed the running state",
                    e.code.as_str(),
                    e.message
                );
            }
            Ok(Payload::Changed(_)) => {
                let (running, version, file) = after;
                assert!(version >= before.1);
                // What a restart reads: the saved state, resolved with the
                // file's settings.
                let text = String::from_utf8(file.expect("a change saves the state"))
                    .expect("the saved state is UTF-8");
                let state = DesiredState::from_toml_str(&text, "state.toml")
                    .unwrap_or_else(|e| panic!("the saved state does not load: {e}\n{text}"));
                assert!(
                    state == running.state,
                    "the saved state is not the running one"
                );
                state
                    .resolve(&running.settings.underlay)
                    .unwrap_or_else(|e| panic!("the saved state does not resolve: {e}\n{text}"));
                let export = running.to_toml();
                let mut exported = Config::from_toml_str(&export, "export.toml")
                    .unwrap_or_else(|e| panic!("the export does not load: {e}\n{export}"));
                exported.path = running.path.clone();
                assert!(exported == running, "the export loads as another config");
            }
            Ok(_) => {
                let request = Request::from_line(std::str::from_utf8(line).unwrap_or(""));
                assert!(request.is_ok(), "an answered request that does not parse");
                assert!(before.0 == after.0, "a read-only request changed the state");
            }
        }
    }
});
