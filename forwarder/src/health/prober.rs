//! The prober thread: every probe of every target on one `mio` poll.
//!
//! Each target has a due time; a probe starts when it is due and the
//! previous one has ended, and ends with a pass, a failure or its timeout.
//! Due times and timeouts sit in two heaps, so a loop iteration costs the
//! probes it starts and the events it handles, not the number of targets.
//! First due times are spread over one interval (no burst at start).
//!
//! - tcp: a non-blocking connect to the underlay address; connected ->
//!   pass; refused, unreachable or timeout -> failure. Closed with an RST
//!   (linger 0), so the prober leaves no TIME_WAIT behind.
//! - http: the same connection, then `GET path HTTP/1.1` with `Host`,
//!   `Connection: close`; the status line decides.
//! - encap: see [`super::encap`].

use super::encap::{EncapProber, EncapTarget};
use super::{HealthError, HealthMonitor, OnChange, TargetKey};
use crate::tables::UnderlayParams;
use lbfwd_config::health::{HealthCheck, Probe};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token, Waker};
use std::cmp::Reverse;
use std::collections::hash_map::DefaultHasher;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{Hash, Hasher};
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The waker's token.
const WAKER: Token = Token(0);
/// Tokens below this are the prober's own sockets (waker, encap sockets).
pub const FIRST_PROBE_TOKEN: usize = 16;
/// Longest sleep of the loop (stop flag, schedule changes come by waker).
const MAX_SLEEP: Duration = Duration::from_secs(1);
/// Most bytes of an HTTP answer read before the status line must be there.
const HTTP_HEAD_MAX: usize = 1024;

/// Controls the running prober thread.
pub struct ProberHandle {
    waker: Arc<Waker>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ProberHandle {
    /// Makes the prober look at the records again (after a sync).
    pub fn wake(&self) {
        let _ = self.waker.wake();
    }

    /// Stops the thread and waits for it.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.waker.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One target to probe.
struct Task {
    key: TargetKey,
    addr: IpAddr,
    check: HealthCheck,
    encap: Option<EncapTarget>,
    /// The probe running now.
    in_flight: Option<Token>,
}

enum Conn {
    Tcp(TcpStream),
    Http {
        stream: TcpStream,
        connected: bool,
        request: Vec<u8>,
        written: usize,
        head: Vec<u8>,
        expect: (u16, u16),
    },
    Encap,
}

struct InFlight {
    task: usize,
    deadline: Instant,
    conn: Conn,
}

/// Starts the prober thread.
pub fn spawn(
    monitor: Arc<HealthMonitor>,
    underlay: UnderlayParams,
    on_change: OnChange,
) -> Result<ProberHandle, HealthError> {
    let io = |what| move |source| HealthError::Io { what, source };
    let poll = Poll::new().map_err(io("poll"))?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER).map_err(io("waker"))?);
    let stop = Arc::new(AtomicBool::new(false));
    let mut prober = Prober {
        monitor,
        on_change,
        poll,
        encap: EncapProber::new(underlay),
        tasks: Vec::new(),
        generation: u64::MAX,
        due: BinaryHeap::new(),
        deadlines: BinaryHeap::new(),
        flights: HashMap::new(),
        next_token: FIRST_PROBE_TOKEN,
        stop: Arc::clone(&stop),
    };
    let thread = std::thread::Builder::new()
        .name("lbfwd-health".into())
        .spawn(move || prober.run())
        .map_err(io("thread"))?;
    Ok(ProberHandle {
        waker,
        stop,
        thread: Some(thread),
    })
}

struct Prober {
    monitor: Arc<HealthMonitor>,
    on_change: OnChange,
    poll: Poll,
    encap: EncapProber,
    tasks: Vec<Task>,
    generation: u64,
    /// (due, task index, generation of the schedule).
    due: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    /// (deadline, token).
    deadlines: BinaryHeap<Reverse<(Instant, usize)>>,
    flights: HashMap<Token, InFlight>,
    next_token: usize,
    stop: Arc<AtomicBool>,
}

/// Where in `[0, interval)` the first probe of `key` goes.
fn phase(key: &TargetKey, interval: Duration) -> Duration {
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    interval.mul_f64((h.finish() % 1000) as f64 / 1000.0)
}

impl Prober {
    fn run(&mut self) {
        let mut events = Events::with_capacity(256);
        let mut results: Vec<(TargetKey, Result<(), String>)> = Vec::new();
        while !self.stop.load(Ordering::Relaxed) {
            self.resync();
            let now = Instant::now();
            self.start_due(now, &mut results);
            self.expire(now, &mut results);
            self.flush(&mut results);
            let sleep = self.sleep_until(Instant::now());
            if let Err(e) = self.poll.poll(&mut events, Some(sleep)) {
                if e.kind() != ErrorKind::Interrupted {
                    eprintln!("lbfwd: health: poll failed: {e}; probing stops");
                    return;
                }
            }
            for event in events.iter() {
                let token = event.token();
                if token == WAKER {
                    continue;
                }
                if self.encap.owns(token) {
                    let mut done = Vec::new();
                    self.encap.readable(token, &mut done);
                    for (t, result) in done {
                        self.finish(t, result, &mut results);
                    }
                    continue;
                }
                if let Some(result) = self.progress(token) {
                    self.finish(token, result, &mut results);
                }
            }
            self.flush(&mut results);
        }
    }

    /// Rebuilds the task list when the records changed.
    fn resync(&mut self) {
        let book = self.monitor.book();
        if book.generation == self.generation {
            return;
        }
        self.generation = book.generation;
        let mut tasks = Vec::new();
        for (lb, h) in &book.lbs {
            for ((name, uid), r) in &h.targets {
                let key = (lb.clone(), name.clone(), uid.clone());
                let encap = match h.check.probe {
                    Probe::Encap { port } => Some(EncapTarget::new(
                        h.vni,
                        &h.vips,
                        name,
                        r.underlay,
                        r.mac,
                        port,
                        self.encap.underlay(),
                    )),
                    _ => None,
                };
                tasks.push(Task {
                    key,
                    addr: r.underlay,
                    check: h.check.clone(),
                    encap,
                    in_flight: None,
                });
            }
        }
        drop(book);
        // Probes of the old schedule end without a result.
        for (token, f) in self.flights.drain() {
            if let Conn::Tcp(mut s) | Conn::Http { stream: mut s, .. } = f.conn {
                let _ = self.poll.registry().deregister(&mut s);
            }
            self.encap.forget(token);
        }
        self.deadlines.clear();
        self.due.clear();
        let now = Instant::now();
        for (i, t) in tasks.iter().enumerate() {
            let at = now + phase(&t.key, t.check.interval);
            self.due.push(Reverse((at, i, self.generation)));
        }
        self.tasks = tasks;
    }

    fn start_due(&mut self, now: Instant, results: &mut Vec<(TargetKey, Result<(), String>)>) {
        while let Some(&Reverse((at, i, generation))) = self.due.peek() {
            if at > now {
                break;
            }
            self.due.pop();
            if generation != self.generation || i >= self.tasks.len() {
                continue;
            }
            let interval = self.tasks[i].check.interval;
            // The next one: one interval later, or from now when the loop
            // fell behind.
            let next = if at + interval > now {
                at + interval
            } else {
                now + interval
            };
            self.due.push(Reverse((next, i, self.generation)));
            if self.tasks[i].in_flight.is_some() {
                continue;
            }
            let token = Token(self.next_token);
            self.next_token = self.next_token.wrapping_add(1).max(FIRST_PROBE_TOKEN);
            self.monitor.count_sent(&self.tasks[i].key);
            match self.begin(i, token) {
                Ok(conn) => {
                    let deadline = now + self.tasks[i].check.timeout;
                    self.flights.insert(
                        token,
                        InFlight {
                            task: i,
                            deadline,
                            conn,
                        },
                    );
                    self.deadlines.push(Reverse((deadline, token.0)));
                    self.tasks[i].in_flight = Some(token);
                }
                Err(why) => results.push((self.tasks[i].key.clone(), Err(why))),
            }
        }
    }

    /// Starts the probe of task `i`.
    fn begin(&mut self, i: usize, token: Token) -> Result<Conn, String> {
        let task = &self.tasks[i];
        match &task.check.probe {
            Probe::Tcp { port } => {
                let mut s = connect(SocketAddr::new(task.addr, *port))?;
                self.poll
                    .registry()
                    .register(&mut s, token, Interest::WRITABLE)
                    .map_err(|e| format!("register: {e}"))?;
                Ok(Conn::Tcp(s))
            }
            Probe::Http {
                port,
                path,
                host,
                expect_status,
            } => {
                let mut s = connect(SocketAddr::new(task.addr, *port))?;
                self.poll
                    .registry()
                    .register(&mut s, token, Interest::WRITABLE | Interest::READABLE)
                    .map_err(|e| format!("register: {e}"))?;
                let host = host.clone().unwrap_or_else(|| match (task.addr, *port) {
                    (IpAddr::V4(a), 80) => a.to_string(),
                    (IpAddr::V6(a), 80) => format!("[{a}]"),
                    (IpAddr::V4(a), p) => format!("{a}:{p}"),
                    (IpAddr::V6(a), p) => format!("[{a}]:{p}"),
                });
                let request = format!(
                    "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: lbfwd-health\r\nAccept: */*\r\nConnection: close\r\n\r\n"
                )
                .into_bytes();
                Ok(Conn::Http {
                    stream: s,
                    connected: false,
                    request,
                    written: 0,
                    head: Vec::new(),
                    expect: *expect_status,
                })
            }
            Probe::Encap { .. } => {
                let target = task
                    .encap
                    .as_ref()
                    .ok_or_else(|| "no encap target".to_string())?;
                self.encap.send(self.poll.registry(), target, token)?;
                Ok(Conn::Encap)
            }
        }
    }

    /// Handles an event of a tcp or http probe; `Some` when it ended.
    fn progress(&mut self, token: Token) -> Option<Result<(), String>> {
        let f = self.flights.get_mut(&token)?;
        match &mut f.conn {
            Conn::Tcp(s) => connected(s).map(|r| r.map(|_| ())),
            Conn::Http {
                stream,
                connected: up,
                request,
                written,
                head,
                expect,
            } => {
                if !*up {
                    match connected(stream)? {
                        Ok(()) => *up = true,
                        Err(e) => return Some(Err(e)),
                    }
                }
                while *written < request.len() {
                    match stream.write(&request[*written..]) {
                        Ok(n) => *written += n,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => return None,
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(e) => return Some(Err(format!("sending the request: {e}"))),
                    }
                }
                let mut buf = [0u8; 512];
                loop {
                    match stream.read(&mut buf) {
                        Ok(0) => {
                            return Some(status_of(head, *expect).unwrap_or_else(|| {
                                Err("connection closed before a status line".into())
                            }))
                        }
                        Ok(n) => {
                            head.extend_from_slice(&buf[..n]);
                            if let Some(r) = status_of(head, *expect) {
                                return Some(r);
                            }
                            if head.len() > HTTP_HEAD_MAX {
                                return Some(Err("no HTTP status line in the answer".into()));
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => return None,
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(e) => return Some(Err(format!("reading the answer: {e}"))),
                    }
                }
            }
            Conn::Encap => None,
        }
    }

    /// Ends the probe `token` with `result`.
    fn finish(
        &mut self,
        token: Token,
        result: Result<(), String>,
        results: &mut Vec<(TargetKey, Result<(), String>)>,
    ) {
        let Some(f) = self.flights.remove(&token) else {
            return;
        };
        match f.conn {
            Conn::Tcp(mut s) | Conn::Http { stream: mut s, .. } => {
                let _ = self.poll.registry().deregister(&mut s);
            }
            Conn::Encap => self.encap.forget(token),
        }
        if let Some(t) = self.tasks.get_mut(f.task) {
            t.in_flight = None;
            results.push((t.key.clone(), result));
        }
    }

    fn expire(&mut self, now: Instant, results: &mut Vec<(TargetKey, Result<(), String>)>) {
        while let Some(&Reverse((deadline, token))) = self.deadlines.peek() {
            if deadline > now {
                break;
            }
            self.deadlines.pop();
            let token = Token(token);
            let Some(f) = self.flights.get(&token) else {
                continue;
            };
            if f.deadline != deadline {
                continue;
            }
            let ms = self
                .tasks
                .get(f.task)
                .map_or(0, |t| t.check.timeout.as_millis());
            self.finish(token, Err(format!("timeout after {ms} ms")), results);
        }
    }

    fn sleep_until(&self, now: Instant) -> Duration {
        let next_due = self.due.peek().map(|Reverse((t, _, _))| *t);
        let next_deadline = self.deadlines.peek().map(|Reverse((t, _))| *t);
        [next_due, next_deadline]
            .into_iter()
            .flatten()
            .min()
            .map_or(MAX_SLEEP, |t| t.saturating_duration_since(now))
            .min(MAX_SLEEP)
    }

    fn flush(&mut self, results: &mut Vec<(TargetKey, Result<(), String>)>) {
        if results.is_empty() {
            return;
        }
        if self.monitor.apply_results(std::mem::take(results)) {
            (self.on_change)();
            self.monitor.notify_listeners();
        }
    }
}

/// A non-blocking connect that closes with an RST.
fn connect(addr: SocketAddr) -> Result<TcpStream, String> {
    let domain = socket2::Domain::for_address(addr);
    let s = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))
        .map_err(|e| format!("socket: {e}"))?;
    s.set_nonblocking(true)
        .map_err(|e| format!("socket: {e}"))?;
    // Close with an RST: no TIME_WAIT per probe on the appliance.
    s.set_linger(Some(Duration::ZERO))
        .map_err(|e| format!("socket: {e}"))?;
    match s.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(format!("connect: {e}")),
    }
    Ok(TcpStream::from_std(std::net::TcpStream::from(s)))
}

/// After a writable event: `None` while still connecting.
fn connected(s: &TcpStream) -> Option<Result<(), String>> {
    match s.take_error() {
        Ok(Some(e)) | Err(e) => return Some(Err(format!("connect: {e}"))),
        Ok(None) => {}
    }
    match s.peer_addr() {
        Ok(_) => Some(Ok(())),
        Err(e) if e.kind() == ErrorKind::NotConnected => None,
        Err(e) => Some(Err(format!("connect: {e}"))),
    }
}

/// The verdict of an HTTP answer's first bytes, once the status line is
/// complete.
fn status_of(head: &[u8], expect: (u16, u16)) -> Option<Result<(), String>> {
    let end = head.windows(2).position(|w| w == b"\r\n")?;
    let line = String::from_utf8_lossy(&head[..end]);
    let mut parts = line.split_whitespace();
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        return Some(Err(format!("bad status line {line:?}")));
    };
    if !version.starts_with("HTTP/") {
        return Some(Err(format!("bad status line {line:?}")));
    }
    Some(match code.parse::<u16>() {
        Ok(c) if (expect.0..=expect.1).contains(&c) => Ok(()),
        Ok(c) => Err(format!(
            "HTTP status {c} (expected {}-{})",
            expect.0, expect.1
        )),
        Err(_) => Err(format!("bad status line {line:?}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        let ok = (200, 399);
        assert_eq!(status_of(b"HTTP/1.1 200 OK\r\n", ok), Some(Ok(())));
        assert_eq!(status_of(b"HTTP/1.0 302 Found\r\nX: y", ok), Some(Ok(())));
        assert!(status_of(b"HTTP/1.1 503 Busy\r\n", ok).unwrap().is_err());
        assert!(status_of(b"SSH-2.0-OpenSSH\r\n", ok).unwrap().is_err());
        assert_eq!(status_of(b"HTTP/1.1 20", ok), None);
    }

    #[test]
    fn phases_spread_within_the_interval() {
        let i = Duration::from_millis(500);
        let mut seen = std::collections::BTreeSet::new();
        for n in 0..100 {
            let p = phase(&("lb".into(), format!("t{n}"), String::new()), i);
            assert!(p < i);
            seen.insert(p.as_millis() / 50);
        }
        assert!(seen.len() >= 8, "{seen:?}");
    }
}
