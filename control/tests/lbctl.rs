//! The built `lbctl` binary against the real server (with the in-memory test
//! handler): every command, the output formats and the exit codes.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{start, start_with, TempDir};
use lbfwd_control::protocol::{DocumentFormat, Kind};
use lbfwd_control::ServerConfig;
use serde_json::Value;

const LBCTL: &str = env!("CARGO_BIN_EXE_lbctl");

fn lbctl(socket: &Path, args: &[&str]) -> Output {
    Command::new(LBCTL)
        .arg("--socket")
        .arg(socket)
        .args(args)
        .env_remove("LBFWD_SOCKET")
        .output()
        .expect("run lbctl")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs lbctl and checks the exit code; returns stdout.
#[track_caller]
fn ok(socket: &Path, args: &[&str]) -> String {
    let o = lbctl(socket, args);
    assert_eq!(
        o.status.code(),
        Some(0),
        "lbctl {args:?}\nstdout: {}\nstderr: {}",
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

#[track_caller]
fn fails(socket: &Path, args: &[&str], code: i32) -> Output {
    let o = lbctl(socket, args);
    assert_eq!(
        o.status.code(),
        Some(code),
        "lbctl {args:?}\nstdout: {}\nstderr: {}",
        stdout(&o),
        stderr(&o)
    );
    o
}

#[test]
fn status_and_stats() {
    let dir = TempDir::new("st");
    let (server, _) = start(&dir);
    let s = server.socket_path();
    let out = ok(s, &["status"]);
    assert!(out.contains("backend         memory"), "{out}");
    assert!(out.contains("uptime          1h02m03s"), "{out}");
    assert!(out.contains("0@core1"), "{out}");
    let json: Value = serde_json::from_str(&ok(s, &["status", "-o", "json"])).unwrap();
    assert_eq!(json["pid"], std::process::id());
    assert_eq!(json["config_path"], "/etc/lbfwd/lbfwd.toml");

    let out = ok(s, &["stats"]);
    assert!(out.contains("port_not_allowed"), "{out}");
    assert!(out.contains("nic-a (10.0.3.11)"), "{out}");
    assert!(out.contains("4.00Mbit/s"), "{out}");
    assert!(
        out.contains("flow guard  ENGAGED on worker 0; limit 1000/s per worker (burst 200), above it forward; not remembered 4242, dropped 0"),
        "{out}"
    );
    let json: Value = serde_json::from_str(&ok(s, &["-o", "json", "stats"])).unwrap();
    assert_eq!(json["totals"]["rx"]["pps"], 1000.0);
    assert_eq!(json["flow_guard"]["engaged_workers"][0], 0);
    assert_eq!(json["flow_guard"]["not_remembered"], 4242);
}

#[test]
fn object_commands_for_every_noun() {
    let dir = TempDir::new("obj");
    let (server, _) = start(&dir);
    let s = server.socket_path();
    for (noun, kind) in [
        ("lb", "load balancer"),
        ("nic", "network interface"),
        ("network", "network"),
        ("pool", "pool"),
        ("routing", "load balancer routing"),
    ] {
        assert_eq!(ok(s, &[noun, "list"]), "(none)\n");
        let file = dir.path().join(format!("{noun}.json"));
        std::fs::write(
            &file,
            r#"[{"name": "one", "network": "net", "vni": 7, "ips": ["10.1.0.5"], "labels": {"app": "web"}}, {"name": "two"}]"#,
        )
        .unwrap();
        let out = ok(s, &[noun, "apply", "-f", file.to_str().unwrap()]);
        assert!(out.contains(&format!("created {kind} `one`")), "{out}");
        assert!(out.contains(&format!("created {kind} `two`")), "{out}");
        let out = ok(s, &[noun, "list"]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        assert!(lines[0].starts_with("NAME "), "{out}");
        assert!(lines[1].starts_with("one "), "{out}");
        let json: Value = serde_json::from_str(&ok(s, &[noun, "list", "-o", "json"])).unwrap();
        assert_eq!(json.as_array().unwrap().len(), 2);
        let out = ok(s, &[noun, "get", "one"]);
        assert!(out.contains("network") && out.contains("net"), "{out}");
        let out = ok(s, &[noun, "delete", "one"]);
        assert!(
            out.starts_with(&format!("deleted {kind} `one`\npublished table version ")),
            "{out}"
        );
        let o = fails(s, &[noun, "get", "one"], 6);
        assert!(
            stderr(&o).contains(&format!("no {kind} `one`")),
            "{}",
            stderr(&o)
        );
        fails(s, &[noun, "delete", "one"], 6);
    }
}

#[test]
fn load_balancer_details_weight_and_drain() {
    let dir = TempDir::new("lb");
    let (server, _) = start(&dir);
    let s = server.socket_path();
    let file = dir.path().join("web.json");
    std::fs::write(
        &file,
        r#"{"name": "web", "type": "Public", "network": "net", "network_interface_selector": {"match_labels": {"app": "web"}}}"#,
    )
    .unwrap();
    let out = ok(s, &["lb", "apply", "-f", file.to_str().unwrap()]);
    assert!(
        out.contains("allocated 203.0.113.1 to web from pool public"),
        "{out}"
    );
    let out = ok(s, &["lb", "list"]);
    assert!(out.contains("203.0.113.1"), "{out}");
    assert!(out.contains("TCP/80"), "{out}");
    assert!(out.contains("app=web"), "{out}");

    let out = ok(s, &["weight", "web", "nic-a", "5"]);
    assert!(out.contains("rerouted web: ~nic-a"), "{out}");
    let out = ok(s, &["drain", "web", "nic-b"]);
    assert!(out.contains("rerouted web: ~nic-b"), "{out}");
    let out = ok(s, &["lb", "get", "web"]);
    assert!(out.contains("addresses"), "{out}");
    assert!(out.contains("203.0.113.1 (pool public)"), "{out}");
    let dest_lines: Vec<&str> = out.lines().filter(|l| l.starts_with("nic-")).collect();
    assert_eq!(dest_lines.len(), 2, "{out}");
    assert!(dest_lines[0].ends_with(" 5"), "{out}");
    assert!(dest_lines[1].ends_with("0 (draining)"), "{out}");
    let json: Value = serde_json::from_str(&ok(s, &["lb", "get", "web", "-o", "json"])).unwrap();
    assert_eq!(
        json["status"]["load_balancer"]["destinations"][1]["weight"],
        0
    );

    let o = fails(s, &["drain", "web", "nic-z"], 6);
    assert!(
        stderr(&o).contains("no destination `nic-z`"),
        "{}",
        stderr(&o)
    );
    fails(s, &["drain", "nope", "nic-a"], 6);
    fails(s, &["weight", "web", "nic-a", "-1"], 2);
}

#[test]
fn labels() {
    let dir = TempDir::new("lab");
    let (server, _) = start(&dir);
    let s = server.socket_path();
    let file = dir.path().join("nic.json");
    std::fs::write(&file, r#"{"name": "nic-a", "labels": {"app": "db"}}"#).unwrap();
    ok(s, &["nic", "apply", "-f", file.to_str().unwrap()]);
    let out = ok(s, &["nic", "label", "nic-a", "app=web", "tier=front"]);
    assert!(out.contains("updated network interface `nic-a`"), "{out}");
    assert!(ok(s, &["nic", "list"]).contains("app=web,tier=front"));
    ok(s, &["nic", "unlabel", "nic-a", "app"]);
    let json: Value = serde_json::from_str(&ok(s, &["nic", "get", "nic-a", "-o", "json"])).unwrap();
    assert_eq!(json["spec"]["labels"], serde_json::json!({"tier": "front"}));
    let o = fails(s, &["nic", "label", "nic-a", "oops"], 2);
    assert!(
        stderr(&o).contains("`oops` is not KEY=VALUE"),
        "{}",
        stderr(&o)
    );
    fails(s, &["nic", "label", "nic-a"], 2);
    fails(s, &["nic", "label", "ghost", "a=b"], 6);
}

#[test]
fn apply_documents_by_extension_and_content() {
    let dir = TempDir::new("doc");
    let (server, handler) = start(&dir);
    let s = server.socket_path();
    let toml = dir.path().join("lb.toml");
    std::fs::write(&toml, "[[load_balancer]]\nname = \"web\"\n").unwrap();
    let yaml = dir.path().join("lb.yaml");
    std::fs::write(
        &yaml,
        "apiVersion: networking.ironcore.dev/v1alpha1\nkind: LoadBalancer\n",
    )
    .unwrap();
    let noext = dir.path().join("manifest");
    std::fs::write(
        &noext,
        "# comment\napiVersion: networking.ironcore.dev/v1alpha1\n",
    )
    .unwrap();

    let out = ok(
        s,
        &[
            "apply",
            "-f",
            toml.to_str().unwrap(),
            "-f",
            yaml.to_str().unwrap(),
            "-f",
            noext.to_str().unwrap(),
        ],
    );
    assert_eq!(out.matches("created network").count(), 3, "{out}");
    let docs = handler.last_documents.lock().unwrap().clone().unwrap();
    assert_eq!(docs.only_kind, None);
    let formats: Vec<_> = docs.documents.iter().map(|d| d.format).collect();
    assert_eq!(
        formats,
        [
            DocumentFormat::Toml,
            DocumentFormat::Yaml,
            DocumentFormat::Yaml
        ]
    );
    assert_eq!(
        docs.documents[0].source.as_deref(),
        Some(toml.to_str().unwrap())
    );
    assert_eq!(
        docs.documents[0].text,
        "[[load_balancer]]\nname = \"web\"\n"
    );

    // A noun's apply restricts the kind.
    ok(s, &["lb", "apply", "-f", toml.to_str().unwrap()]);
    let docs = handler.last_documents.lock().unwrap().clone().unwrap();
    assert_eq!(docs.only_kind, Some(Kind::LoadBalancer));

    // stdin.
    let mut child = Command::new(LBCTL)
        .args(["--socket", s.to_str().unwrap(), "apply", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"[[network]]\nname = \"n\"\n")
        .unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
    let docs = handler.last_documents.lock().unwrap().clone().unwrap();
    assert_eq!(docs.documents[0].source.as_deref(), Some("<stdin>"));
    assert_eq!(docs.documents[0].format, DocumentFormat::Toml);

    // Unrecognizable, missing, invalid JSON: usage errors, nothing sent.
    let calls = handler.calls();
    let words = dir.path().join("words");
    std::fs::write(&words, "hello world\n").unwrap();
    let o = fails(s, &["apply", "-f", words.to_str().unwrap()], 2);
    assert!(
        stderr(&o).contains("cannot tell whether this is TOML or YAML"),
        "{}",
        stderr(&o)
    );
    let o = fails(s, &["apply", "-f", "/nonexistent/x.toml"], 2);
    assert!(
        stderr(&o).contains("cannot read /nonexistent/x.toml"),
        "{}",
        stderr(&o)
    );
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"name\": ").unwrap();
    let o = fails(s, &["lb", "apply", "-f", bad.to_str().unwrap()], 2);
    assert!(stderr(&o).contains("invalid JSON"), "{}", stderr(&o));
    fails(s, &["apply"], 2);
    assert_eq!(handler.calls(), calls);
}

#[test]
fn validation_failure_prints_every_error_with_its_path() {
    let dir = TempDir::new("inv");
    let (server, _) = start(&dir);
    let s = server.socket_path();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "# invalid\n").unwrap();
    let o = fails(s, &["apply", "-f", file.to_str().unwrap()], 5);
    let err = stderr(&o);
    let path = file.display().to_string();
    assert!(
        err.contains(&format!(
            "{path}:1:1: load_balancer[bad].network: unknown network `nope`"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("{path}:2:1: load_balancer[bad].ports[0].port")),
        "{err}"
    );
    assert!(err.contains("2 errors"), "{err}");

    // JSON mode: the error object on stdout.
    let o = fails(s, &["-o", "json", "apply", "-f", file.to_str().unwrap()], 5);
    let json: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(json["error"]["code"], "validation_failed");
    assert_eq!(json["error"]["details"].as_array().unwrap().len(), 2);

    let lb = dir.path().join("lb.json");
    std::fs::write(&lb, r#"{"name": "x", "ports": [{"port": 0}]}"#).unwrap();
    let o = fails(s, &["lb", "apply", "-f", lb.to_str().unwrap()], 5);
    assert!(
        stderr(&o).contains("load_balancer[0].ports[0].port: 0 is not in 1..=65535"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn export_reload_routing_and_completions() {
    let dir = TempDir::new("exp");
    let (server, _) = start(&dir);
    let s = server.socket_path();
    let file = dir.path().join("r.json");
    std::fs::write(&file, r#"{"name": "ext", "network": "net"}"#).unwrap();
    ok(s, &["routing", "apply", "-f", file.to_str().unwrap()]);
    let out = ok(s, &["routing", "list"]);
    assert!(
        out.contains("ext   external  net      nic-a,nic-b"),
        "{out}"
    );
    let out = ok(s, &["routing", "get", "ext"]);
    assert!(out.contains("DESTINATION  UID"), "{out}");
    assert!(out.contains("02:00:00:00:03:11"), "{out}");

    let out = ok(s, &["export"]);
    assert_eq!(
        out,
        "# exported by the test handler\n\n[[load_balancer_routing]]\nname = \"ext\"\n"
    );
    let json: Value = serde_json::from_str(&ok(s, &["export", "-o", "json"])).unwrap();
    assert!(json["toml"]
        .as_str()
        .unwrap()
        .contains("[[load_balancer_routing]]"));
    assert!(ok(s, &["reload"]).starts_with("no change"));

    for shell in ["bash", "zsh", "fish"] {
        let out = ok(Path::new("/nonexistent.sock"), &["completions", shell]);
        assert!(out.contains("lbctl"), "{shell}");
        assert!(out.contains("unlabel"), "{shell}");
    }
}

#[test]
fn not_running_names_the_path() {
    let dir = TempDir::new("nr");
    let socket = dir.path().join("missing.sock");
    let o = fails(&socket, &["status"], 3);
    let err = stderr(&o);
    assert!(err.contains("lbfwd is not running"), "{err}");
    assert!(err.contains(&socket.display().to_string()), "{err}");

    // LBFWD_SOCKET is honoured, and JSON mode reports it too.
    let o = Command::new(LBCTL)
        .args(["-o", "json", "lb", "list"])
        .env("LBFWD_SOCKET", &socket)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    let json: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(json["error"]["code"], "not_running");
    assert!(json["error"]["message"]
        .as_str()
        .unwrap()
        .contains(&socket.display().to_string()));

    // A stale socket (nothing listens): also "not running".
    let stale = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let o = fails(&stale, &["status"], 3);
    assert!(stderr(&o).contains("nothing listens"), "{}", stderr(&o));
}

#[test]
fn busy_daemon_exits_7() {
    let dir = TempDir::new("busy");
    let mut config = ServerConfig::new(dir.socket());
    config.max_clients = 0;
    let (server, _) = start_with(config);
    let o = fails(server.socket_path(), &["status"], 7);
    assert!(stderr(&o).contains("try again"), "{}", stderr(&o));
}

#[test]
fn usage_errors_exit_2_and_help_documents_exit_codes() {
    let s = Path::new("/nonexistent.sock");
    fails(s, &["lb"], 2);
    fails(s, &["lb", "frob"], 2);
    fails(s, &["nope"], 2);
    fails(s, &["lb", "get"], 2);
    fails(s, &["status", "--timeout", "0"], 2);
    let help = ok(s, &["--help"]);
    for line in [
        "3  lbfwd is not running",
        "4  permission denied",
        "5  validation failed",
        "6  not found",
    ] {
        assert!(help.contains(line), "{help}");
    }
    assert!(ok(s, &["--version"]).starts_with("lbctl "));
}

#[test]
fn permission_denied_exits_4() {
    // Root bypasses the socket's mode; drop to `nobody` to see EACCES.
    let setpriv = Path::new("/usr/bin/setpriv");
    let is_root = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    if !is_root || !setpriv.exists() {
        eprintln!("SKIPPED: needs root and /usr/bin/setpriv to run lbctl as another user");
        return;
    }
    let dir = TempDir::new("perm");
    // `nobody` must be able to reach the binary and the socket's directory:
    // run a copy of lbctl from the temporary directory (the build directory
    // may sit under a home that `nobody` cannot enter).
    let run_dir = dir.socket().parent().unwrap().to_owned();
    for p in [dir.path(), run_dir.as_path()] {
        let _ = std::fs::create_dir_all(p);
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    let lbctl_copy = dir.path().join("lbctl");
    std::fs::copy(LBCTL, &lbctl_copy).unwrap();
    std::fs::set_permissions(
        &lbctl_copy,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let (server, _) = start(&dir);
    // A fork in another test thread can briefly hold the copy open for
    // writing (ETXTBSY); try again then.
    let mut o = None;
    for _ in 0..20 {
        let out = Command::new(setpriv)
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&lbctl_copy)
            .arg("--socket")
            .arg(server.socket_path())
            .arg("status")
            .env_remove("LBFWD_SOCKET")
            .output()
            .unwrap();
        let busy = stderr(&out).contains("Text file busy");
        o = Some(out);
        if !busy {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let o = o.unwrap();
    assert_eq!(
        o.status.code(),
        Some(4),
        "stdout: {}\nstderr: {}",
        stdout(&o),
        stderr(&o)
    );
    let err = stderr(&o);
    assert!(
        err.contains("permission denied on the control socket"),
        "{err}"
    );
    assert!(
        err.contains(&server.socket_path().display().to_string()),
        "{err}"
    );
}

#[test]
fn announce_shows_and_switches() {
    let dir = TempDir::new("an");
    let (server, _) = start(&dir);
    let s = server.socket_path().to_path_buf();
    let out = ok(&s, &["announce"]);
    assert!(out.starts_with("announcing  on\n"), "{out}");
    assert!(out.contains("VIP") && out.contains("WHY NOT"), "{out}");
    let out = ok(&s, &["announce", "off"]);
    assert!(out.starts_with("announcing  off\n"), "{out}");
    let v: Value = serde_json::from_str(&ok(&s, &["-o", "json", "announce", "on"])).unwrap();
    assert_eq!(v["enabled"], true, "{v}");
    assert_eq!(v["vips"], serde_json::json!([]), "{v}");
    fails(&s, &["announce", "maybe"], 2);
}
