//! The sync thread: collects the workers' exceptions, sends them to the
//! peers (new ones at once, every live one each refresh interval), receives
//! the peers' and publishes them to the workers.

use super::wire::{self, MAX_DATAGRAM, RECORDS_PER_DATAGRAM};
use super::{Exception, ExceptionMap, SyncPort, SyncShared};
use crate::flow::{FlowKey, FlowTimeouts, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP};
use lbfwd_config::sync::ExceptionSync;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long the thread waits for a datagram per turn (also how soon new
/// exceptions from the workers go out).
const TURN: Duration = Duration::from_millis(10);

/// Datagrams received per turn at most (the rest wait for the next turn).
const RECEIVE_BURST: usize = 256;

/// Errors of starting the sync thread.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The listen address could not be bound.
    #[error("[sync] listen = {addr}: cannot bind the UDP socket: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The reason.
        source: std::io::Error,
    },
    /// The socket could not be set up.
    #[error("[sync] socket setup: {0}")]
    Socket(std::io::Error),
    /// The thread could not be started.
    #[error("cannot start the sync thread: {0}")]
    Spawn(std::io::Error),
}

/// The running sync thread.
#[derive(Debug)]
pub struct SyncService {
    shared: Arc<SyncShared>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SyncService {
    /// Binds `[sync] listen` and starts the thread for `workers` workers,
    /// pinned to `core` if given (a core no worker polls); received
    /// exceptions of a protocol live for its flow timeout.
    pub fn start(
        config: &ExceptionSync,
        timeouts: FlowTimeouts,
        workers: usize,
        core: Option<usize>,
    ) -> Result<Self, SyncError> {
        let socket = UdpSocket::bind(config.listen).map_err(|source| SyncError::Bind {
            addr: config.listen,
            source,
        })?;
        socket
            .set_read_timeout(Some(TURN))
            .map_err(SyncError::Socket)?;
        let shared = SyncShared::new(
            workers,
            config.worker_queue,
            config.listen,
            config.peers.clone(),
            config.refresh_interval,
        );
        let stop = Arc::new(AtomicBool::new(false));
        let mut service = Service::new(Arc::clone(&shared), socket, config, timeouts);
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("lbfwd-sync".into())
            .spawn(move || {
                if let Some(id) = core {
                    core_affinity::set_for_current(core_affinity::CoreId { id });
                }
                service.run(&flag)
            })
            .map_err(SyncError::Spawn)?;
        log::info!(
            "exception sync on {} with {} peer(s), {}",
            config.listen,
            config.peers.len(),
            if config.key.is_some() {
                "HMAC-SHA256"
            } else {
                "unauthenticated"
            }
        );
        Ok(SyncService {
            shared,
            stop,
            thread: Some(thread),
        })
    }

    /// Worker `worker`'s handle.
    pub fn port(&self, worker: usize) -> SyncPort {
        self.shared.port(worker)
    }

    /// What the workers and the thread share (counters for `lbctl stats`).
    pub fn shared(&self) -> &Arc<SyncShared> {
        &self.shared
    }

    /// Stops the thread and waits for it.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for SyncService {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One of this appliance's exceptions.
#[derive(Clone, Copy, Debug)]
struct Own {
    target: [u8; 16],
    /// When a worker last reported it.
    seen: Instant,
}

/// One of a peer's exceptions.
#[derive(Clone, Copy, Debug)]
struct Peer {
    target: [u8; 16],
    expires: Instant,
}

/// The thread's state.
struct Service {
    shared: Arc<SyncShared>,
    socket: UdpSocket,
    peers: Vec<SocketAddr>,
    peer_ips: Vec<IpAddr>,
    key: Option<Vec<u8>>,
    refresh: Duration,
    /// How long an own exception lives without a worker's report.
    own_lifetime: Duration,
    max: usize,
    timeouts: FlowTimeouts,
    own: HashMap<FlowKey, Own>,
    peer: HashMap<FlowKey, Peer>,
    /// Own exceptions new or changed since the last send.
    pending: Vec<Exception>,
    /// Published maps that a worker may still hold.
    retired: Vec<Arc<ExceptionMap>>,
    /// The peer set changed since the last publication.
    dirty: bool,
    next_refresh: Instant,
    seed: u64,
}

/// An IP address as its canonical form (an IPv4-mapped IPv6 as IPv4), so
/// that a dual-stack socket's peer compares with the configured one.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl Service {
    fn new(
        shared: Arc<SyncShared>,
        socket: UdpSocket,
        config: &ExceptionSync,
        timeouts: FlowTimeouts,
    ) -> Self {
        Service {
            shared,
            socket,
            peers: config.peers.clone(),
            peer_ips: config.peers.iter().map(|p| canonical(p.ip())).collect(),
            key: config.key.clone(),
            refresh: config.refresh_interval,
            own_lifetime: config.refresh_interval * 4 + Duration::from_secs(5),
            max: config.max_exceptions,
            timeouts,
            own: HashMap::new(),
            peer: HashMap::new(),
            pending: Vec::new(),
            retired: Vec::new(),
            dirty: false,
            next_refresh: Instant::now() + config.refresh_interval,
            seed: 0x6c62_6677_7379_6e63,
        }
    }

    fn run(&mut self, stop: &AtomicBool) {
        let mut buf = [0u8; MAX_DATAGRAM + 1];
        // Started (or restarted): the peers send what they have at once,
        // not at their next refresh.
        let mut hello = [0u8; MAX_DATAGRAM];
        let len = wire::encode_hello(self.key.as_deref(), &mut hello);
        self.send_datagram(&hello[..len], 0);
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            self.collect(now);
            if now >= self.next_refresh {
                self.next_refresh = now + self.refresh;
                self.expire(now);
                self.pending = self
                    .own
                    .iter()
                    .map(|(flow, o)| Exception {
                        flow: *flow,
                        target: o.target,
                    })
                    .collect();
            }
            if !self.pending.is_empty() {
                let pending = std::mem::take(&mut self.pending);
                self.send(&pending);
            }
            self.receive(&mut buf);
            if self.dirty {
                self.publish();
            }
            self.retired.retain(|m| Arc::strong_count(m) > 1);
        }
    }

    /// Takes the workers' reports.
    fn collect(&mut self, now: Instant) {
        let shared = Arc::clone(&self.shared);
        for ring in shared.rings() {
            while let Some(e) = ring.pop() {
                let full = self.own.len() >= self.max;
                match self.own.get_mut(&e.flow) {
                    Some(o) => {
                        o.seen = now;
                        if o.target != e.target {
                            o.target = e.target;
                            self.pending.push(e);
                        }
                    }
                    None if full => self.shared.counters.over_capacity.inc(),
                    None => {
                        self.own.insert(
                            e.flow,
                            Own {
                                target: e.target,
                                seen: now,
                            },
                        );
                        self.pending.push(e);
                    }
                }
            }
        }
        self.shared
            .counters
            .own_exceptions
            .set(self.own.len() as u64);
    }

    /// Forgets own exceptions no worker reported for a while and the peers'
    /// whose time ran out.
    fn expire(&mut self, now: Instant) {
        let lifetime = self.own_lifetime;
        self.own
            .retain(|_, o| now.saturating_duration_since(o.seen) < lifetime);
        let before = self.peer.len();
        self.peer.retain(|_, p| p.expires > now);
        if self.peer.len() != before {
            self.dirty = true;
        }
        self.shared
            .counters
            .own_exceptions
            .set(self.own.len() as u64);
    }

    /// Sends `records` to every peer, in batches.
    fn send(&self, records: &[Exception]) {
        let mut out = [0u8; MAX_DATAGRAM];
        for batch in records.chunks(RECORDS_PER_DATAGRAM) {
            let len = wire::encode(batch, self.key.as_deref(), &mut out);
            self.send_datagram(&out[..len], batch.len());
        }
    }

    /// Sends one datagram of `records` records to every peer.
    fn send_datagram(&self, data: &[u8], records: usize) {
        let c = &self.shared.counters;
        for peer in &self.peers {
            match self.socket.send_to(data, peer) {
                Ok(_) => {
                    c.datagrams_sent.inc();
                    c.records_sent.add(records as u64);
                }
                Err(_) => c.send_errors.inc(),
            }
        }
    }

    /// Receives what the peers sent (waits up to one turn for the first).
    fn receive(&mut self, buf: &mut [u8; MAX_DATAGRAM + 1]) {
        // The first receive waits up to one turn; once one came, the rest
        // of the burst takes only what is already there.
        let mut waiting = true;
        for _ in 0..RECEIVE_BURST {
            let Ok((len, from)) = self.socket.recv_from(buf) else {
                break;
            };
            self.take(&buf[..len], from, Instant::now());
            if waiting {
                if self.socket.set_nonblocking(true).is_err() {
                    break;
                }
                waiting = false;
            }
        }
        if !waiting {
            let _ = self.socket.set_nonblocking(false);
        }
    }

    /// One datagram from `from`.
    fn take(&mut self, data: &[u8], from: SocketAddr, now: Instant) {
        let c = &self.shared.counters;
        if !self.peer_ips.contains(&canonical(from.ip())) {
            c.datagrams_rejected.inc();
            return;
        }
        let mut got = Vec::new();
        match wire::decode(data, self.key.as_deref(), &mut |e| got.push(e)) {
            Ok(n) => {
                c.datagrams_received.inc();
                c.records_received.add(n as u64);
                if wire::is_hello(data) {
                    // A peer (re)started: every exception goes out now.
                    self.next_refresh = now;
                }
            }
            Err(why) => {
                c.datagrams_rejected.inc();
                log::debug!("sync: refused a datagram from {from}: {why}");
                return;
            }
        }
        for e in got {
            let expires = now + self.lifetime(e.flow.proto);
            let full = self.peer.len() >= self.max;
            match self.peer.get_mut(&e.flow) {
                Some(p) => {
                    p.expires = expires;
                    if p.target != e.target {
                        p.target = e.target;
                        self.dirty = true;
                    }
                }
                None if full => c.over_capacity.inc(),
                None => {
                    self.peer.insert(
                        e.flow,
                        Peer {
                            target: e.target,
                            expires,
                        },
                    );
                    self.dirty = true;
                }
            }
        }
    }

    /// How long a peer's exception of protocol `proto` lives unrefreshed:
    /// that protocol's flow timeout.
    fn lifetime(&self, proto: u8) -> Duration {
        match proto {
            IPPROTO_TCP => self.timeouts.tcp,
            IPPROTO_UDP => self.timeouts.udp,
            IPPROTO_SCTP => self.timeouts.sctp,
            _ => self.timeouts.other,
        }
    }

    /// Publishes the peers' exceptions to the workers.
    fn publish(&mut self) {
        self.seed = self.seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        let map = ExceptionMap::build(self.peer.iter().map(|(k, p)| (*k, p.target)), self.seed);
        let old = self.shared.publish(map);
        self.retired.push(old);
        self.dirty = false;
        self.shared
            .counters
            .peer_exceptions
            .set(self.peer.len() as u64);
    }
}
