//! The HTTP listener of `[metrics] listen`: `GET /metrics` answers the
//! registry's exposition; everything else gets a short error. One thread
//! accepts; each connection is answered on a short-lived thread (at most
//! [`MAX_CONNECTIONS`] at once), all pinned off the worker cores.
//!
//! Deliberately small: HTTP/1.0 and 1.1, one request per connection
//! (`Connection: close`), no TLS (put it behind a proxy or keep it on a
//! management address), request head at most [`MAX_REQUEST`] bytes, read
//! within [`READ_TIMEOUT`].

use super::Registry;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Connections answered at once; more get `503`.
pub const MAX_CONNECTIONS: usize = 8;
/// Largest request head read.
pub const MAX_REQUEST: usize = 8192;
/// How long a client may take to send its request, and to read the answer.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Errors of the metrics endpoint.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The listen address cannot be bound.
    #[error("[metrics] listen = \"{addr}\": cannot listen: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The accept thread could not be started.
    #[error("cannot start the metrics thread: {0}")]
    Spawn(#[source] std::io::Error),
}

/// A running endpoint; [`MetricsServer::shutdown`] (or drop) stops it.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Binds `addr` and serves `registry` on a thread pinned to `core`
    /// (`None`: the process's own affinity).
    pub fn start(
        addr: SocketAddr,
        registry: Arc<Registry>,
        core: Option<usize>,
    ) -> Result<Self, MetricsError> {
        let listener =
            TcpListener::bind(addr).map_err(|source| MetricsError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| MetricsError::Bind { addr, source })?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("lbfwd-metrics".into())
                .spawn(move || {
                    if let Some(core) = core {
                        core_affinity::set_for_current(core_affinity::CoreId { id: core });
                    }
                    accept_loop(&listener, &registry, &stop);
                })
                .map_err(MetricsError::Spawn)?
        };
        Ok(MetricsServer {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The address it listens on (the bound port when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and waits for the accept thread.
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            // Wake the blocking accept.
            let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
            let _ = thread.join();
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop_now();
    }
}

fn accept_loop(listener: &TcpListener, registry: &Arc<Registry>, stop: &AtomicBool) {
    let active = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(mut stream) = stream else {
            // EMFILE and the like: back off instead of spinning.
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
        let _ = stream.set_write_timeout(Some(READ_TIMEOUT));
        if active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            active.fetch_sub(1, Ordering::SeqCst);
            let _ = respond(
                &mut stream,
                503,
                "text/plain",
                b"too many connections\n",
                false,
            );
            continue;
        }
        let (registry, done) = (Arc::clone(registry), Arc::clone(&active));
        let spawned = std::thread::Builder::new()
            .name("lbfwd-metrics-c".into())
            .spawn(move || {
                serve_connection(stream, &registry);
                done.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            active.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// The parts of a request line the endpoint looks at.
#[derive(Debug, PartialEq, Eq)]
pub struct RequestLine<'a> {
    /// `GET`, `HEAD`, ...
    pub method: &'a str,
    /// The path without the query string.
    pub path: &'a str,
}

/// Parses `METHOD TARGET HTTP/x.y`; `None` when it is not one.
pub fn parse_request_line(line: &str) -> Option<RequestLine<'_>> {
    let mut parts = line.split(' ');
    let method = parts.next().filter(|m| !m.is_empty())?;
    let target = parts.next()?;
    let version = parts.next()?;
    if parts.next().is_some() || !version.starts_with("HTTP/1.") {
        return None;
    }
    let path = target.split('?').next().unwrap_or(target);
    Some(RequestLine { method, path })
}

fn serve_connection(mut stream: TcpStream, registry: &Registry) {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    // Read up to the end of the head; the body (none for GET) is ignored.
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        if head.len() >= MAX_REQUEST {
            let _ = respond(
                &mut stream,
                431,
                "text/plain",
                b"request head too large\n",
                false,
            );
            drain(&mut stream);
            return;
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&head);
    let line = text.lines().next().unwrap_or("").trim_end_matches('\r');
    let Some(request) = parse_request_line(line) else {
        let _ = respond(&mut stream, 400, "text/plain", b"bad request\n", false);
        return;
    };
    let head_only = request.method == "HEAD";
    if request.method != "GET" && !head_only {
        let _ = respond(
            &mut stream,
            405,
            "text/plain",
            b"only GET and HEAD\n",
            false,
        );
        return;
    }
    match request.path {
        "/metrics" => {
            let body = registry.render();
            let _ = respond(
                &mut stream,
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                body.as_bytes(),
                head_only,
            );
        }
        "/" => {
            let _ = respond(
                &mut stream,
                200,
                "text/plain; charset=utf-8",
                b"lbfwd: metrics at /metrics\n",
                head_only,
            );
        }
        _ => {
            let _ = respond(
                &mut stream,
                404,
                "text/plain",
                b"not found; try /metrics\n",
                head_only,
            );
        }
    }
}

/// After an early answer: stop writing and read what the client still
/// sends (briefly, bounded), so that closing does not reset the connection
/// before the client read the answer.
fn drain(stream: &mut TcpStream) {
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = [0u8; 4096];
    let mut left = 1 << 16;
    while left > 0 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => left -= n.min(left),
        }
    }
}

fn respond(
    stream: &mut TcpStream,
    status: u16,
    content_type: &str,
    body: &[u8],
    head_only: bool,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if status == 405 {
        out.push_str("Allow: GET, HEAD\r\n");
    }
    out.push_str("\r\n");
    stream.write_all(out.as_bytes())?;
    if !head_only {
        stream.write_all(body)?;
    }
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Exposition;

    fn get(addr: SocketAddr, request: &str) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn request_lines() {
        assert_eq!(
            parse_request_line("GET /metrics?x=1 HTTP/1.1"),
            Some(RequestLine {
                method: "GET",
                path: "/metrics"
            })
        );
        assert_eq!(parse_request_line("GET /metrics"), None);
        assert_eq!(parse_request_line("GET /metrics HTTP/2"), None);
        assert_eq!(parse_request_line(""), None);
    }

    #[test]
    fn serves_metrics_and_refuses_the_rest() {
        let registry = Arc::new(Registry::default());
        registry.register(
            "t",
            Arc::new(|o: &mut Exposition| {
                o.gauge("lbfwd_test", "T.").sample(&[], 7u64);
            }),
        );
        let server = MetricsServer::start("127.0.0.1:0".parse().unwrap(), registry, None).unwrap();
        let addr = server.local_addr();
        let ok = get(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(
            ok.contains("Content-Type: text/plain; version=0.0.4"),
            "{ok}"
        );
        assert!(
            ok.ends_with("\r\n\r\n# HELP lbfwd_test T.\n# TYPE lbfwd_test gauge\nlbfwd_test 7\n"),
            "{ok}"
        );
        let head = get(addr, "HEAD /metrics HTTP/1.0\r\n\r\n");
        assert!(
            head.starts_with("HTTP/1.1 200") && head.ends_with("\r\n\r\n"),
            "{head}"
        );
        assert!(get(addr, "GET /nope HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
        assert!(get(addr, "POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
        assert!(get(addr, "hello\r\n\r\n").starts_with("HTTP/1.1 400"));
        let big = format!(
            "GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n",
            "a".repeat(MAX_REQUEST)
        );
        assert!(get(addr, &big).starts_with("HTTP/1.1 431"));
        let taken = MetricsServer::start(addr, Arc::new(Registry::default()), None)
            .unwrap_err()
            .to_string();
        assert!(
            taken.contains(&addr.to_string()) && taken.contains("cannot listen"),
            "{taken}"
        );
        server.shutdown();
        assert!(TcpStream::connect(addr).is_err(), "stopped");
    }
}
