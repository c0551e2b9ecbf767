//! `lbfwd check` as an operator runs it: the built binary on the example
//! files, from the repository root, with the documented output (README,
//! "Checking a configuration").

use serde_json::Value;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("forwarder/ has a parent")
        .to_path_buf()
}

/// Runs `lbfwd` with `args` from the repository root.
fn lbfwd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lbfwd"))
        .args(args)
        .current_dir(repo_root())
        .output()
        .expect("run lbfwd")
}

fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).expect("UTF-8 output")
}

/// Runs a `check ... -o json` that must succeed; returns its document.
fn check_json(args: &[&str]) -> Value {
    let out = lbfwd(args);
    assert!(
        out.status.success(),
        "lbfwd {args:?} failed ({}):\n{}",
        out.status,
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "lbfwd {args:?}: stdout is not JSON: {e}\n{}",
            text(&out.stdout)
        )
    })
}

fn str_of<'a>(v: &'a Value, key: &str, ctx: &str) -> &'a str {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{ctx}: {key:?} is not a string: {v}"))
}

/// Checks the documented shape of every load balancer and returns them by
/// name.
fn load_balancers(doc: &Value) -> std::collections::BTreeMap<String, Value> {
    let obj = doc.as_object().expect("the document is an object");
    let lbs = obj
        .get("load_balancers")
        .and_then(Value::as_array)
        .expect("load_balancers is an array");
    let mut by_name = std::collections::BTreeMap::new();
    let mut names = Vec::new();
    for lb in lbs {
        let name = str_of(lb, "name", "load balancer").to_string();
        let ctx = format!("load balancer {name}");
        let ty = str_of(lb, "type", &ctx);
        assert!(ty == "Public" || ty == "Internal", "{ctx}: type {ty:?}");
        let ips = lb
            .get("ips")
            .and_then(Value::as_array)
            .unwrap_or_else(|| panic!("{ctx}: ips is not an array"));
        assert!(!ips.is_empty(), "{ctx}: no ips");
        for ip in ips {
            let s = ip
                .as_str()
                .unwrap_or_else(|| panic!("{ctx}: ip {ip} is not a string"));
            s.parse::<IpAddr>()
                .unwrap_or_else(|e| panic!("{ctx}: ip {s:?}: {e}"));
        }
        for p in lb
            .get("ports")
            .and_then(Value::as_array)
            .unwrap_or_else(|| panic!("{ctx}: ports is not an array"))
        {
            let proto = str_of(p, "protocol", &ctx);
            assert!(
                ["TCP", "UDP", "SCTP"].contains(&proto),
                "{ctx}: protocol {proto}"
            );
            let first = p["port"].as_u64().expect("port is a number");
            let last = p["end_port"].as_u64().expect("end_port is a number");
            assert!(1 <= first && first <= last && last <= 65535, "{ctx}: {p}");
        }
        let dests = lb
            .pointer("/routing/destinations")
            .and_then(Value::as_array)
            .unwrap_or_else(|| panic!("{ctx}: routing.destinations is not an array"));
        for d in dests {
            str_of(d, "name", &ctx);
            str_of(d, "uid", &ctx);
            let u = str_of(d, "underlay", &ctx);
            u.parse::<IpAddr>()
                .unwrap_or_else(|e| panic!("{ctx}: underlay {u:?}: {e}"));
        }
        names.push(name.clone());
        by_name.insert(name, lb.clone());
    }
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "load balancers are listed by name");
    by_name
}

/// `(name, uid, underlay, weight)` of each destination.
fn destinations(lb: &Value) -> Vec<(String, String, String, u64)> {
    lb["routing"]["destinations"]
        .as_array()
        .expect("destinations")
        .iter()
        .map(|d| {
            (
                d["name"].as_str().unwrap_or_default().to_string(),
                d["uid"].as_str().unwrap_or_default().to_string(),
                d["underlay"].as_str().unwrap_or_default().to_string(),
                d["weight"].as_u64().expect("weight"),
            )
        })
        .collect()
}

fn ips(lb: &Value) -> Vec<&str> {
    lb["ips"]
        .as_array()
        .expect("ips")
        .iter()
        .map(|v| v.as_str().expect("ip"))
        .collect()
}

fn d(name: &str, uid: &str, underlay: &str, weight: u64) -> (String, String, String, u64) {
    (name.into(), uid.into(), underlay.into(), weight)
}

const IF1_UID: &str = "2020dcf9-e030-427e-b0fc-4fec2016e73a";
const IF2_UID: &str = "2020dcf9-e030-427e-b0fc-4fec2016e73d";

#[test]
fn example_config_json() {
    let doc = check_json(&[
        "check",
        "--config",
        "config/examples/lbfwd.toml",
        "-o",
        "json",
    ]);
    let lbs = load_balancers(&doc);
    assert_eq!(
        lbs.keys().map(String::as_str).collect::<Vec<_>>(),
        ["db", "lb-external", "loadbalancer-sample"]
    );
    let sample = &lbs["loadbalancer-sample"];
    assert_eq!(sample["type"], "Public");
    // The lowest free address of pool "public", one per family.
    assert_eq!(ips(sample), ["203.0.113.0", "2001:db8:100::"]);
    assert_eq!(sample["icmp_echo"], "reply");
    assert_eq!(
        sample["ports"],
        serde_json::json!([
            { "protocol": "TCP", "port": 80, "end_port": 80 },
            { "protocol": "TCP", "port": 443, "end_port": 443 },
            { "protocol": "UDP", "port": 1024, "end_port": 2048 },
        ])
    );
    // my-machine-interface-3 is Pending: not a destination.
    assert_eq!(
        destinations(sample),
        [
            d("my-machine-interface-1", IF1_UID, "10.0.3.11", 100),
            d("my-machine-interface-2", IF2_UID, "fd00:3::12", 100),
        ]
    );
    let db = &lbs["db"];
    assert_eq!(db["type"], "Internal");
    assert_eq!(ips(db), ["10.2.255.0"]);
    let db_dests = destinations(db);
    assert_eq!(db_dests.len(), 2);
    assert_eq!(db_dests[1].0, "db-2");
    assert_eq!(db_dests[1].3, 50, "weights = {{ db-2 = 50 }}");
    let ext = &lbs["lb-external"];
    assert_eq!(ips(ext), ["203.0.113.100"]);
    assert_eq!(
        destinations(ext),
        [
            d("dns-appliance", "", "fd00:3::9", 200),
            d("my-machine-interface-1", IF1_UID, "10.0.3.11", 100),
        ]
    );
}

#[test]
fn example_config_with_ironcore_manifest() {
    let doc = check_json(&[
        "check",
        "--config",
        "config/examples/lbfwd.toml",
        "-f",
        "config/examples/ironcore.yaml",
        "-o",
        "json",
    ]);
    let lbs = load_balancers(&doc);
    assert_eq!(
        lbs.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "db",
            "lb-external",
            "loadbalancer-sample",
            "shop",
            "shop-admin"
        ]
    );
    // The TOML's load balancers keep their addresses; the manifest's get
    // the next free ones.
    assert_eq!(
        ips(&lbs["loadbalancer-sample"]),
        ["203.0.113.0", "2001:db8:100::"]
    );
    let shop = &lbs["shop"];
    assert_eq!(shop["type"], "Public");
    assert_eq!(shop["vni"], 300, "annotation lbfwd.ironcore.dev/vni");
    assert_eq!(ips(shop), ["203.0.113.1", "2001:db8:100::1"]);
    assert_eq!(
        destinations(shop),
        [
            d(
                "shop-web-1",
                "0c8a3f0e-4a59-4c4e-9f0e-6c1b7b0a0001",
                "10.0.5.11",
                100
            ),
            d(
                "shop-web-2",
                "0c8a3f0e-4a59-4c4e-9f0e-6c1b7b0a0002",
                "fd00:5::12",
                50
            ),
        ]
    );
    assert_eq!(
        destinations(&lbs["shop-admin"]),
        [d(
            "shop-web-1",
            "0c8a3f0e-4a59-4c4e-9f0e-6c1b7b0a0001",
            "10.0.5.11",
            100
        )]
    );
}

#[test]
fn example_config_text() {
    let out = lbfwd(&["check", "--config", "config/examples/lbfwd.toml"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(
        s.starts_with("config/examples/lbfwd.toml: OK: 3 load balancer(s)"),
        "{s}"
    );
    for name in ["db", "lb-external", "loadbalancer-sample"] {
        assert!(
            s.contains(&format!("load balancer {name} ")),
            "{name} missing:\n{s}"
        );
    }
}

/// The location of an error line `error: FILE:LINE:COL: ...` (the pattern
/// `^error: .*:\d+:\d+: `): file, line, column.
fn location(line: &str) -> Option<(String, u32, u32)> {
    let rest = line.strip_prefix("error: ")?;
    // The first ": " preceded by `:LINE:COL`.
    let mut from = 0;
    while let Some(i) = rest[from..].find(": ") {
        let head = &rest[..from + i];
        let mut parts = head.rsplitn(3, ':');
        if let (Some(col), Some(ln), Some(file)) = (parts.next(), parts.next(), parts.next()) {
            let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
            if digits(ln) && digits(col) {
                return Some((file.to_string(), ln.parse().ok()?, col.parse().ok()?));
            }
        }
        from += i + 2;
    }
    None
}

#[test]
fn bad_example_lists_every_error_with_its_location() {
    let out = lbfwd(&["check", "--config", "config/examples/bad.toml"]);
    assert_eq!(out.status.code(), Some(1), "exit status");
    assert!(out.stdout.is_empty(), "stdout: {}", text(&out.stdout));
    let err = text(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    let errors: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert!(errors.len() >= 10, "bad.toml has many problems:\n{err}");
    let mut last = (0, 0);
    for l in &errors {
        let (file, ln, col) = location(l).unwrap_or_else(|| panic!("no FILE:LINE:COLUMN in {l:?}"));
        assert_eq!(file, "config/examples/bad.toml", "{l}");
        assert!((ln, col) >= last, "not in file order: {l}");
        last = (ln, col);
    }
    // Apart from the error lines, only a final count.
    let others: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| !l.starts_with("error: "))
        .collect();
    assert_eq!(
        others,
        [format!("lbfwd check: {} errors found", errors.len())],
        "lines that are not errors"
    );
    // The examples the README shows.
    for example in [
        "error: config/examples/bad.toml:18:1: network[0].vni: VNI 16777216 is outside 24 bits (0-16777215)",
        "error: config/examples/bad.toml:45:44: load_balancer[0].ports[3].end_port: 70000 is not a port (1-65535)",
        "error: config/examples/bad.toml:59:8: load_balancer[2].ips[0]: 10.9.0.1 is already claimed by load balancer \"other\"",
    ] {
        assert!(errors.contains(&example), "README example missing: {example}\n{err}");
    }
}

#[test]
fn bad_manifest_errors_name_the_object_and_its_yaml_location() {
    let dir = std::env::temp_dir().join(format!("lbfwd-check-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let manifest = dir.join("bad.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: networking.ironcore.dev/v1alpha1\nkind: LoadBalancer\nmetadata:\n  name: web\nspec:\n  type: Public\n  networkRef:\n    name: network-sample\n  ports:\n  - port: 70000\n",
    )
    .expect("write manifest");
    let m = manifest.to_str().expect("UTF-8 path");
    let out = lbfwd(&["check", "--config", "config/examples/lbfwd.toml", "-f", m]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    let line = err
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line:\n{err}"));
    let (file, ln, _) = location(line).unwrap_or_else(|| panic!("no location in {line:?}"));
    assert_eq!(file, m);
    assert_eq!(ln, 10, "the line of `port: 70000`: {line}");
    assert!(line.contains("LoadBalancer/web"), "{line}");
    assert!(line.contains("spec.ports[0].port"), "{line}");
}

#[test]
fn missing_config_file_is_named() {
    let out = lbfwd(&["check", "--config", "config/examples/no-such-file.toml"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("config/examples/no-such-file.toml"),
        "the message does not name the file: {err}"
    );
}
