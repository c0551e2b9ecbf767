//! The real control server on a real socket, driven through the client and
//! through raw connections: every request type, bad input, limits, timeouts,
//! concurrency, the lock, stale sockets, mode and group.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{start, start_with, TempDir};
use lbfwd_control::protocol::*;
use lbfwd_control::{Client, ClientError, Server, ServerConfig, ServerError};
use serde_json::json;

fn lb(name: &str) -> ObjectRef {
    ObjectRef {
        kind: Kind::LoadBalancer,
        name: name.into(),
    }
}

/// Sends raw bytes on a fresh connection, half-closes, and returns every
/// response line until EOF.
fn raw_exchange(socket: &std::path::Path, bytes: &[u8]) -> Vec<String> {
    let mut s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(bytes).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    BufReader::new(s).lines().map(|l| l.unwrap()).collect()
}

fn error_of(line: &str) -> ApiError {
    Response::from_line(line).unwrap().0.unwrap_err()
}

#[test]
fn every_request_type_round_trips() {
    let dir = TempDir::new("rt");
    let (server, handler) = start(&dir);
    let c = Client::new(server.socket_path());

    let Payload::Status(status) = c.call(&Request::Status).unwrap() else {
        panic!()
    };
    assert_eq!(status.backend, "memory");
    assert_eq!(status.pid, std::process::id());
    let Payload::Stats(stats) = c.call(&Request::Stats).unwrap() else {
        panic!()
    };
    assert_eq!(stats.totals.rx.pps, 1000.0);
    assert_eq!(stats.drops[0].reason, "port_not_allowed");

    for kind in Kind::ALL {
        let changed = c
            .call(&Request::Apply(ApplyObjects {
                kind,
                objects: vec![
                    json!({"name": "one", "network": "net"}),
                    json!({"name": "two"}),
                ],
            }))
            .unwrap();
        let Payload::Changed(summary) = changed else {
            panic!()
        };
        assert_eq!(summary.created.len(), 2, "{kind}");
        let Payload::Objects(list) = c.call(&Request::List(ListRequest { kind })).unwrap() else {
            panic!()
        };
        assert_eq!(
            list.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(),
            ["one", "two"]
        );
        let one = ObjectRef {
            kind,
            name: "one".into(),
        };
        let Payload::Object(obj) = c.call(&Request::Get(one.clone())).unwrap() else {
            panic!()
        };
        assert_eq!(obj.spec["network"], "net");
        assert_eq!(obj.kind, kind);
        let Payload::Changed(summary) = c.call(&Request::Delete(one.clone())).unwrap() else {
            panic!()
        };
        assert_eq!(summary.deleted, vec![one.clone()]);
        let err = c.call(&Request::Get(one.clone())).unwrap_err();
        assert_eq!(err.api().unwrap().code, ErrorCode::NotFound);
        assert!(err.to_string().contains(&format!("no {}", one)), "{err}");
    }

    c.call(&Request::Apply(ApplyObjects {
        kind: Kind::NetworkInterface,
        objects: vec![json!({"name": "nic-a", "labels": {"app": "web"}})],
    }))
    .unwrap();
    c.call(&Request::LabelSet(LabelSet {
        interface: "nic-a".into(),
        labels: [("tier".to_owned(), "front".to_owned())].into(),
    }))
    .unwrap();
    c.call(&Request::LabelRemove(LabelRemove {
        interface: "nic-a".into(),
        keys: vec!["app".into()],
    }))
    .unwrap();
    let Payload::Object(nic) = c
        .call(&Request::Get(ObjectRef {
            kind: Kind::NetworkInterface,
            name: "nic-a".into(),
        }))
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(nic.spec["labels"], json!({"tier": "front"}));

    c.call(&Request::Apply(ApplyObjects {
        kind: Kind::LoadBalancer,
        objects: vec![json!({"name": "web"})],
    }))
    .unwrap();
    c.call(&Request::Weight(SetWeight {
        load_balancer: "web".into(),
        destination: "nic-a".into(),
        weight: 5,
    }))
    .unwrap();
    let Payload::Changed(drained) = c
        .call(&Request::Drain(Drain {
            load_balancer: "web".into(),
            destination: "nic-b".into(),
        }))
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(drained.rerouted[0].changed, ["nic-b"]);
    let Payload::Object(web) = c.call(&Request::Get(lb("web"))).unwrap() else {
        panic!()
    };
    let Some(ObjectStatus::LoadBalancer(st)) = web.status else {
        panic!()
    };
    let weights: Vec<_> = st.destinations.iter().map(|d| d.weight).collect();
    assert_eq!(weights, [5, 0]);

    let docs = ApplyDocuments {
        documents: vec![
            ApplyDocument {
                format: DocumentFormat::Toml,
                source: Some("a.toml".into()),
                text: "[[network]]\nname = \"n\"\nvni = 1\n".into(),
            },
            ApplyDocument {
                format: DocumentFormat::Yaml,
                source: None,
                text: "apiVersion: networking.ironcore.dev/v1alpha1\nkind: Network\n".into(),
            },
        ],
        only_kind: None,
    };
    let Payload::Changed(s) = c.call(&Request::ApplyDocuments(docs.clone())).unwrap() else {
        panic!()
    };
    assert_eq!(s.created.len(), 2);
    assert_eq!(handler.last_documents.lock().unwrap().as_ref(), Some(&docs));

    let Payload::Exported(export) = c.call(&Request::Export).unwrap() else {
        panic!()
    };
    assert!(
        export.toml.contains("[[load_balancer]]\nname = \"web\""),
        "{}",
        export.toml
    );
    let Payload::Changed(reload) = c.call(&Request::Reload).unwrap() else {
        panic!()
    };
    assert!(reload.is_empty());
}

#[test]
fn validation_errors_carry_every_field_path() {
    let dir = TempDir::new("val");
    let (server, _) = start(&dir);
    let c = Client::new(server.socket_path());
    let err = c
        .call(&Request::Apply(ApplyObjects {
            kind: Kind::LoadBalancer,
            objects: vec![json!({"ports": [{"port": 0}, {"port": 80}, {"port": 70000}]})],
        }))
        .unwrap_err();
    let api = err.api().unwrap();
    assert_eq!(api.code, ErrorCode::ValidationFailed);
    assert_eq!(
        api.details,
        [
            "load_balancer[0].name: missing or empty",
            "load_balancer[0].ports[0].port: 0 is not in 1..=65535",
            "load_balancer[0].ports[2].port: 70000 is not in 1..=65535",
        ]
    );
}

#[test]
fn malformed_json_gets_bad_request_with_position_and_the_connection_goes_on() {
    let dir = TempDir::new("bad");
    let (server, handler) = start(&dir);
    let lines = raw_exchange(
        server.socket_path(),
        b"{\"version\":1,\"op\":\n\xff\xfe\n   \n{\"version\":1,\"op\":\"status\"}\r\n",
    );
    assert_eq!(lines.len(), 3, "{lines:?}");
    let e = error_of(&lines[0]);
    assert_eq!(e.code, ErrorCode::BadRequest);
    assert!(e.message.contains("line 1 column 18"), "{}", e.message);
    let e = error_of(&lines[1]);
    assert_eq!(e.code, ErrorCode::BadRequest);
    assert!(e.message.contains("UTF-8"), "{}", e.message);
    assert!(Response::from_line(&lines[2]).unwrap().0.is_ok());
    assert_eq!(handler.calls(), 1);
}

#[test]
fn unknown_operation_and_version() {
    let dir = TempDir::new("op");
    let (server, handler) = start(&dir);
    let lines = raw_exchange(
        server.socket_path(),
        b"{\"version\":1,\"op\":\"format_disk\"}\n{\"version\":99,\"op\":\"status\"}\n{\"version\":1,\"op\":\"get\",\"body\":{\"kind\":\"load_balancer\"}}\n",
    );
    let codes: Vec<_> = lines.iter().map(|l| error_of(l).code).collect();
    assert_eq!(
        codes,
        [
            ErrorCode::UnknownOperation,
            ErrorCode::UnsupportedVersion,
            ErrorCode::BadRequest
        ]
    );
    assert!(error_of(&lines[0]).message.contains("`format_disk`"));
    assert!(error_of(&lines[2]).message.contains("missing field `name`"));
    assert_eq!(handler.calls(), 0);
}

#[test]
fn oversized_request_gets_too_large_and_is_closed() {
    let dir = TempDir::new("big");
    let mut config = ServerConfig::new(dir.socket());
    config.max_request_bytes = 1024;
    let (server, handler) = start_with(config);

    // A line just at the limit is served.
    let mut at_limit = String::new();
    let body = "{\"version\":1,\"op\":\"status\"}";
    at_limit.push_str(body);
    at_limit.push_str(&" ".repeat(1024 - body.len()));
    at_limit.push('\n');
    let lines = raw_exchange(server.socket_path(), at_limit.as_bytes());
    assert!(
        Response::from_line(&lines[0]).unwrap().0.is_ok(),
        "{lines:?}"
    );

    // One byte more (newline-terminated) is refused.
    let over = format!(
        "{} \n{{\"version\":1,\"op\":\"status\"}}\n",
        &at_limit[..1024]
    );
    let lines = raw_exchange(server.socket_path(), over.as_bytes());
    assert_eq!(lines.len(), 1, "the connection is closed after too_large");
    assert_eq!(error_of(&lines[0]).code, ErrorCode::TooLarge);

    // A stream that never ends its line is cut off, and the client reads the
    // error even though the server stopped reading.
    let client = Client::new(server.socket_path());
    let err = client.call_raw(&"x".repeat(4 << 20)).unwrap();
    let e = error_of(&err);
    assert_eq!(e.code, ErrorCode::TooLarge);
    assert!(e.message.contains("1024 bytes"), "{}", e.message);
    assert_eq!(handler.calls(), 1);
}

#[test]
fn default_limit_is_one_mebibyte() {
    let dir = TempDir::new("mib");
    let (server, _) = start(&dir);
    let huge = format!(
        "{{\"version\":1,\"op\":\"apply\",\"body\":{{\"kind\":\"pool\",\"objects\":[\"{}\"]}}}}",
        "a".repeat(DEFAULT_MAX_REQUEST_BYTES)
    );
    let client = Client::new(server.socket_path());
    let line = client.call_raw(&huge).unwrap();
    assert_eq!(error_of(&line).code, ErrorCode::TooLarge);
    // Still serving.
    client.call(&Request::Status).unwrap();
}

#[test]
fn silent_client_is_dropped_after_the_idle_timeout() {
    let dir = TempDir::new("idle");
    let mut config = ServerConfig::new(dir.socket());
    config.idle_timeout = Duration::from_millis(300);
    let (server, _) = start_with(config);

    let started = Instant::now();
    let s = UnixStream::connect(server.socket_path()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut lines = BufReader::new(&s).lines();
    let e = error_of(&lines.next().unwrap().unwrap());
    assert_eq!(e.code, ErrorCode::Timeout);
    assert!(e.message.contains("no request"), "{}", e.message);
    assert!(lines.next().is_none(), "closed after the timeout");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(4),
        "{took:?}"
    );
    assert_eq!(server.clients(), 0);

    // A slow client dribbling an incomplete request is cut off too.
    let mut s = UnixStream::connect(server.socket_path()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"{\"version\":1,").unwrap();
    std::thread::sleep(Duration::from_millis(150));
    let _ = s.write_all(b"\"op\":");
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let e = error_of(out.trim_end());
    assert_eq!(e.code, ErrorCode::Timeout);
    assert!(e.message.contains("incomplete"), "{}", e.message);
}

#[test]
fn fifty_clients_at_once() {
    let dir = TempDir::new("many");
    let (server, handler) = start(&dir);
    let socket = server.socket_path().to_owned();
    Client::new(&socket)
        .call(&Request::Apply(ApplyObjects {
            kind: Kind::LoadBalancer,
            objects: vec![json!({"name": "slow"})],
        }))
        .unwrap();
    let barrier = Arc::new(std::sync::Barrier::new(50));
    let threads: Vec<_> = (0..50)
        .map(|i| {
            let socket = socket.clone();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let c = Client::new(socket);
                barrier.wait();
                // Every client holds its connection in the handler for 300 ms,
                // so all 50 are served at the same time.
                let Payload::Object(o) = c.call(&Request::Get(lb("slow"))).unwrap() else {
                    panic!()
                };
                assert_eq!(o.name, "slow");
                i
            })
        })
        .collect();
    let started = Instant::now();
    let done: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(done.len(), 50);
    assert_eq!(handler.calls(), 51);
    // Served concurrently: far less than 50 x 300 ms.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn clients_beyond_the_cap_get_busy() {
    let dir = TempDir::new("busy");
    let mut config = ServerConfig::new(dir.socket());
    config.max_clients = 2;
    let (server, _) = start_with(config);
    let held: Vec<_> = (0..2)
        .map(|_| UnixStream::connect(server.socket_path()).unwrap())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.clients() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let err = Client::new(server.socket_path())
        .call(&Request::Status)
        .unwrap_err();
    assert_eq!(err.api().map(|e| e.code), Some(ErrorCode::Busy), "{err}");
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.clients() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    Client::new(server.socket_path())
        .call(&Request::Status)
        .unwrap();
}

#[test]
fn client_disconnecting_mid_request_just_goes_away() {
    let dir = TempDir::new("gone");
    let (server, handler) = start(&dir);
    for _ in 0..20 {
        let mut s = UnixStream::connect(server.socket_path()).unwrap();
        s.write_all(b"{\"version\":1,\"op\":\"sta").unwrap();
        drop(s);
    }
    // A client that sends a request and leaves before the answer.
    let mut s = UnixStream::connect(server.socket_path()).unwrap();
    s.write_all(format!("{}\n", Request::Get(lb("slow")).to_line()).as_bytes())
        .unwrap();
    drop(s);
    // Until the server has taken that request (the handler counts it when
    // called) and closed every connection: the server may accept the
    // connection only after the client left.
    let deadline = Instant::now() + Duration::from_secs(5);
    while (handler.calls() < 1 || server.clients() > 0) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(server.clients(), 0);
    Client::new(server.socket_path())
        .call(&Request::Status)
        .unwrap();
    // Only the complete requests reached the handler.
    assert_eq!(handler.calls(), 2);
}

#[test]
fn a_panicking_handler_answers_internal_and_the_server_keeps_running() {
    let dir = TempDir::new("panic");
    let (server, _) = start(&dir);
    let c = Client::new(server.socket_path());
    let err = c.call(&Request::Get(lb("panic"))).unwrap_err();
    let api = err.api().unwrap();
    assert_eq!(api.code, ErrorCode::Internal);
    assert!(api.message.contains("`get`"), "{}", api.message);
    c.call(&Request::Status).unwrap();
}

#[test]
fn second_server_on_the_same_socket_is_refused() {
    let dir = TempDir::new("two");
    let (server, _) = start(&dir);
    let err = Server::bind(ServerConfig::new(dir.socket())).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, ServerError::AlreadyRunning { pid: Some(p), .. } if p == std::process::id()),
        "{err:?}"
    );
    assert!(msg.contains(&dir.socket().display().to_string()), "{msg}");
    assert!(
        msg.contains(&format!("pid {}", std::process::id())),
        "{msg}"
    );
    // The first one is unharmed.
    Client::new(server.socket_path())
        .call(&Request::Status)
        .unwrap();

    // After shutdown the socket is gone and the lock free.
    server.shutdown();
    assert!(!dir.socket().exists());
    let err = Client::new(dir.socket())
        .call(&Request::Status)
        .unwrap_err();
    assert!(matches!(err, ClientError::NotRunning { .. }), "{err:?}");
    let (again, _) = start(&dir);
    Client::new(again.socket_path())
        .call(&Request::Status)
        .unwrap();
}

#[test]
fn stale_socket_is_removed_but_nothing_else_is() {
    let dir = TempDir::new("stale");
    std::fs::create_dir_all(dir.socket().parent().unwrap()).unwrap();
    // A crashed run: the socket file is there, nobody listens.
    drop(UnixListener::bind(dir.socket()).unwrap());
    assert!(std::fs::symlink_metadata(dir.socket())
        .unwrap()
        .file_type()
        .is_socket());
    let err = Client::new(dir.socket())
        .call(&Request::Status)
        .unwrap_err();
    assert!(err.to_string().contains("nothing listens"), "{err}");
    let (server, _) = start(&dir);
    Client::new(server.socket_path())
        .call(&Request::Status)
        .unwrap();
    server.shutdown();

    // A regular file is never removed.
    std::fs::write(dir.socket(), "precious").unwrap();
    let err = Server::bind(ServerConfig::new(dir.socket())).unwrap_err();
    assert!(matches!(err, ServerError::NotASocket(_)), "{err:?}");
    assert!(err.to_string().contains("not a socket"), "{err}");
    assert_eq!(std::fs::read_to_string(dir.socket()).unwrap(), "precious");
    std::fs::remove_file(dir.socket()).unwrap();

    // A live socket without the lock (e.g. some other program) is not taken over.
    let _other = UnixListener::bind(dir.socket()).unwrap();
    let err = Server::bind(ServerConfig::new(dir.socket())).unwrap_err();
    assert!(matches!(err, ServerError::InUse { .. }), "{err:?}");
}

#[test]
fn socket_mode_is_0660_directory_created_and_group_applied() {
    let dir = TempDir::new("mode");
    let socket = dir.path().join("a/b/c.sock");
    let mut config = ServerConfig::new(&socket);
    // Every Debian system has group `nogroup` (65534); resolving it proves
    // the /etc/group lookup, chown proves the group is applied.
    config.group = Some("nogroup".into());
    let (server, _) = start_with(config);
    let meta = std::fs::metadata(&socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o7777, 0o660);
    assert_eq!(meta.gid(), 65534);
    assert!(dir.path().join("a/b/c.sock.lock").exists());
    let lock = std::fs::read_to_string(dir.path().join("a/b/c.sock.lock")).unwrap();
    assert_eq!(lock.trim(), std::process::id().to_string());
    drop(server);
    assert!(!socket.exists(), "dropping the handle removes the socket");

    let mut config = ServerConfig::new(dir.socket());
    config.group = Some("no-such-group-lbfwd".into());
    let err = Server::bind(config).unwrap_err();
    assert!(
        err.to_string()
            .contains("unknown group `no-such-group-lbfwd`"),
        "{err}"
    );
    assert!(!dir.socket().exists(), "nothing left behind");
}

#[test]
fn shutdown_closes_idle_connections_promptly() {
    let dir = TempDir::new("shut");
    let (server, _) = start(&dir);
    let mut idle = UnixStream::connect(server.socket_path()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.clients() < 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let started = Instant::now();
    server.shutdown();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    idle.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut rest = Vec::new();
    let _ = idle.read_to_end(&mut rest);
    assert!(!dir.socket().exists());
}

#[test]
fn client_timeout_names_the_socket() {
    let dir = TempDir::new("ctmo");
    std::fs::create_dir_all(dir.socket().parent().unwrap()).unwrap();
    // Something that accepts and never answers.
    let _listener = UnixListener::bind(dir.socket()).unwrap();
    let err = Client::new(dir.socket())
        .with_timeout(Duration::from_millis(200))
        .call(&Request::Status)
        .unwrap_err();
    assert!(matches!(err, ClientError::Timeout { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains(&dir.socket().display().to_string()),
        "{err}"
    );
}
