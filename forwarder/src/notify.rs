//! systemd's readiness protocol (`sd_notify(3)`) without libsystemd: one
//! datagram per state change to the socket named by `NOTIFY_SOCKET` (a path,
//! or `@name` for an abstract socket), and the watchdog keep-alive every
//! half `WATCHDOG_USEC`.
//!
//! What lbfwd sends: `READY=1` once the control socket serves and every
//! worker's loop runs; `RELOADING=1` and then `READY=1` around `lbctl
//! reload`; `STOPPING=1` when SIGINT/SIGTERM (or a failed worker) starts the
//! shutdown; `WATCHDOG=1` while every worker loop makes progress (a stuck
//! worker stops the keep-alive, and systemd restarts lbfwd). Each with a
//! `STATUS=` line for `systemctl status`. Without `NOTIFY_SOCKET` nothing is
//! sent and nothing else changes.

use crate::worker::WorkerStats;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Errors of the notify protocol.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// `NOTIFY_SOCKET` is neither an absolute path nor `@name`.
    #[error("NOTIFY_SOCKET={0:?} is neither an absolute path nor @name")]
    BadSocket(String),
    /// `WATCHDOG_USEC` is not a positive number.
    #[error("WATCHDOG_USEC={0:?} is not a positive number of microseconds")]
    BadWatchdog(String),
    /// Sending failed.
    #[error("sd_notify to {socket}: {source}")]
    Send {
        /// The socket.
        socket: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Where notifications go.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Path(PathBuf),
    Abstract(Vec<u8>),
}

/// The notify socket and the watchdog interval, from the environment.
#[derive(Debug)]
pub struct Notifier {
    target: Option<(Target, String)>,
    socket: Option<UnixDatagram>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// Not under systemd: every call does nothing.
    pub fn disabled() -> Self {
        Notifier {
            target: None,
            socket: None,
            watchdog: None,
        }
    }

    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` from the
    /// environment.
    pub fn from_env() -> Result<Self, NotifyError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Self::from_values(
            var("NOTIFY_SOCKET").as_deref(),
            var("WATCHDOG_USEC").as_deref(),
            var("WATCHDOG_PID").as_deref(),
        )
    }

    /// As [`Notifier::from_env`], from the variables' values.
    pub fn from_values(
        socket: Option<&str>,
        watchdog_usec: Option<&str>,
        watchdog_pid: Option<&str>,
    ) -> Result<Self, NotifyError> {
        let Some(socket) = socket else {
            return Ok(Self::disabled());
        };
        let target = if let Some(name) = socket.strip_prefix('@') {
            Target::Abstract(name.as_bytes().to_vec())
        } else if socket.starts_with('/') {
            Target::Path(PathBuf::from(socket))
        } else {
            return Err(NotifyError::BadSocket(socket.to_string()));
        };
        // WATCHDOG_PID names the process meant; a child that inherited the
        // variables must not answer for it.
        let ours = match watchdog_pid {
            None => true,
            Some(p) => p.trim() == std::process::id().to_string(),
        };
        let watchdog = match watchdog_usec.filter(|_| ours) {
            None => None,
            Some(text) => match text.trim().parse::<u64>() {
                Ok(us) if us > 0 => Some(Duration::from_micros(us)),
                _ => return Err(NotifyError::BadWatchdog(text.to_string())),
            },
        };
        let socket_fd = UnixDatagram::unbound().map_err(|source| NotifyError::Send {
            socket: socket.to_string(),
            source,
        })?;
        Ok(Notifier {
            target: Some((target, socket.to_string())),
            socket: Some(socket_fd),
            watchdog,
        })
    }

    /// True when running under systemd's notify protocol.
    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// The watchdog timeout systemd set (`WatchdogSec=`), if any.
    pub fn watchdog_timeout(&self) -> Option<Duration> {
        self.watchdog
    }

    /// Sends one notification (`KEY=VALUE` lines); nothing when disabled.
    pub fn notify(&self, state: &str) -> Result<(), NotifyError> {
        let (Some((target, name)), Some(socket)) = (&self.target, &self.socket) else {
            return Ok(());
        };
        let sent = match target {
            Target::Path(path) => socket.send_to(state.as_bytes(), path),
            Target::Abstract(bytes) => {
                use std::os::linux::net::SocketAddrExt;
                std::os::unix::net::SocketAddr::from_abstract_name(bytes)
                    .and_then(|addr| socket.send_to_addr(state.as_bytes(), &addr))
            }
        };
        sent.map(|_| ()).map_err(|source| NotifyError::Send {
            socket: name.clone(),
            source,
        })
    }

    /// Sends and logs a failure (a lost notification is not fatal; systemd
    /// then times out and says so).
    pub fn send(&self, state: &str) {
        if let Err(e) = self.notify(state) {
            log::warn!("{e}");
        }
    }
}

/// A status line for `systemctl status` (no newlines inside).
fn status(text: &str) -> String {
    text.replace('\n', " ")
}

/// The `READY=1` message.
pub fn ready_message(text: &str) -> String {
    format!("READY=1\nSTATUS={}", status(text))
}

/// The `RELOADING=1` message.
pub fn reloading_message() -> String {
    "RELOADING=1\nSTATUS=reloading the configuration".to_string()
}

/// The `STOPPING=1` message.
pub fn stopping_message() -> String {
    "STOPPING=1\nSTATUS=stopping: flushing the workers".to_string()
}

/// How often the supervisor looks at the workers and the shutdown flag (more
/// often under a watchdog shorter than 400 ms).
pub const SUPERVISOR_TICK: Duration = Duration::from_millis(50);

/// The thread that tells systemd when lbfwd is ready, keeps its watchdog
/// fed while the workers make progress, and says when it stops.
#[derive(Debug)]
pub struct Supervisor {
    stop: Arc<AtomicBool>,
    stopping_sent: Arc<AtomicBool>,
    notifier: Arc<Notifier>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Supervisor {
    /// Starts the thread: `READY=1` (with `ready_status`) once every loop of
    /// `loops` runs, `WATCHDOG=1` every half watchdog timeout while each
    /// loop's poll count moves, `STOPPING=1` once `shutdown` is set. With
    /// notifications disabled no thread starts.
    pub fn start(
        notifier: Arc<Notifier>,
        loops: Arc<[WorkerStats]>,
        shutdown: Arc<AtomicBool>,
        ready_status: String,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping_sent = Arc::new(AtomicBool::new(false));
        let thread = if notifier.is_enabled() {
            let (stop, sent, n) = (
                Arc::clone(&stop),
                Arc::clone(&stopping_sent),
                Arc::clone(&notifier),
            );
            Some(
                std::thread::Builder::new()
                    .name("lbfwd-notify".into())
                    .spawn(move || supervise(&n, &loops, &shutdown, &stop, &sent, &ready_status))?,
            )
        } else {
            None
        };
        Ok(Supervisor {
            stop,
            stopping_sent,
            notifier,
            thread: Mutex::new(thread),
        })
    }

    /// Sends `STOPPING=1` (once) and ends the thread.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = t.join();
        }
        if !self.stopping_sent.swap(true, Ordering::SeqCst) {
            self.notifier.send(&stopping_message());
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sum of a loop's polls: moves at least every maintenance interval
/// (100 ms) while the loop runs, busy or idle.
fn polls(s: &WorkerStats) -> u64 {
    let l = s.snapshot().looped;
    l.busy_polls + l.idle_polls
}

fn supervise(
    notifier: &Notifier,
    loops: &[WorkerStats],
    shutdown: &AtomicBool,
    stop: &AtomicBool,
    stopping_sent: &AtomicBool,
    ready_status: &str,
) {
    let mut ready = false;
    let half = notifier.watchdog_timeout().map(|t| t / 2);
    // Look often enough for a short watchdog too (a quarter of its half).
    let tick = half.map_or(SUPERVISOR_TICK, |h| {
        (h / 4).clamp(Duration::from_millis(1), SUPERVISOR_TICK)
    });
    let mut last_check = Instant::now();
    let mut last_polls: Vec<u64> = loops.iter().map(polls).collect();
    let mut stalled_logged = false;
    loop {
        if shutdown.load(Ordering::SeqCst) || stop.load(Ordering::SeqCst) {
            if !stopping_sent.swap(true, Ordering::SeqCst) {
                notifier.send(&stopping_message());
            }
            return;
        }
        if !ready && loops.iter().all(WorkerStats::is_running) {
            ready = true;
            last_check = Instant::now();
            last_polls = loops.iter().map(polls).collect();
            notifier.send(&ready_message(ready_status));
            log::info!("ready: {ready_status}");
        }
        // The watchdog runs from READY=1 on (before it, systemd's start
        // timeout applies).
        if let (Some(half), true) = (half, ready) {
            if last_check.elapsed() >= half {
                last_check = Instant::now();
                let now: Vec<u64> = loops.iter().map(polls).collect();
                let stuck: Vec<usize> = (0..loops.len())
                    .filter(|&i| now[i] == last_polls[i])
                    .collect();
                last_polls = now;
                if stuck.is_empty() {
                    notifier.send("WATCHDOG=1");
                    stalled_logged = false;
                } else if !stalled_logged {
                    stalled_logged = true;
                    log::error!(
                        "worker(s) {stuck:?} made no progress for {half:?}: the systemd watchdog is no longer fed"
                    );
                }
            }
        }
        std::thread::sleep(tick);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_is_read_and_checked() {
        let n = Notifier::from_values(None, Some("1000"), None).unwrap();
        assert!(!n.is_enabled());
        n.notify("READY=1").unwrap();
        let n = Notifier::from_values(Some("@lbfwd-test"), Some("2000000"), None).unwrap();
        assert!(n.is_enabled());
        assert_eq!(n.watchdog_timeout(), Some(Duration::from_secs(2)));
        let n = Notifier::from_values(Some("/run/x"), Some("5"), Some("1")).unwrap();
        assert_eq!(n.watchdog_timeout(), None, "another process's watchdog");
        let pid = std::process::id().to_string();
        let n = Notifier::from_values(Some("/run/x"), Some("5"), Some(&pid)).unwrap();
        assert_eq!(n.watchdog_timeout(), Some(Duration::from_micros(5)));
        let e = Notifier::from_values(Some("run/x"), None, None).unwrap_err();
        assert!(e.to_string().contains("NOTIFY_SOCKET=\"run/x\""), "{e}");
        let e = Notifier::from_values(Some("/x"), Some("soon"), None).unwrap_err();
        assert!(e.to_string().contains("WATCHDOG_USEC"), "{e}");
    }

    /// A processor that hangs in `begin_burst` while `stuck` is set.
    struct Hanging(Arc<AtomicBool>);

    impl crate::io::Processor for Hanging {
        fn begin_burst(&mut self, _now_ns: u64) {
            while self.0.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        fn process(&mut self, _frame: &mut crate::frame::Frame<'_>) -> crate::io::Disposition {
            crate::io::Disposition::Drop
        }
    }

    /// Counts the `WATCHDOG=1` datagrams that arrive within `window`.
    fn pings_within(socket: &UnixDatagram, window: Duration) -> usize {
        let until = Instant::now() + window;
        let mut buf = [0u8; 256];
        let mut n = 0;
        while Instant::now() < until {
            if let Ok(len) = socket.recv(&mut buf) {
                n += usize::from(&buf[..len] == b"WATCHDOG=1");
            }
        }
        n
    }

    #[test]
    fn a_stuck_worker_stops_the_watchdog_and_a_live_one_feeds_it() {
        use crate::io::memory::{MemoryConfig, MemoryPort};
        use crate::runtime::{Layout, Runtime, WorkerPlacement};
        let dir = std::env::temp_dir().join(format!("lbfwd-watchdog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let _ = std::fs::remove_file(&path);
        let systemd = UnixDatagram::bind(&path).unwrap();
        systemd
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        // 2 s: checked and fed every second (an idle loop publishes its
        // counters every 100 ms; a loaded test machine must not look stuck).
        let notifier = Arc::new(
            Notifier::from_values(Some(path.to_str().unwrap()), Some("2000000"), None).unwrap(),
        );
        let runtime = Runtime::new(Layout {
            workers: vec![WorkerPlacement {
                core: None,
                ingress: None,
                egress: None,
                queue: None,
            }],
            config: crate::worker::WorkerConfig {
                idle: crate::worker::IdlePolicy::adaptive(),
                ..Default::default()
            },
            require_up: false,
        })
        .unwrap();
        let supervisor = Supervisor::start(
            Arc::clone(&notifier),
            runtime.stats(),
            runtime.shutdown_flag(),
            "test".into(),
        )
        .unwrap();
        let stuck = Arc::new(AtomicBool::new(false));
        let (queue, _feeder, _sink) = MemoryPort::new(MemoryConfig::default()).unwrap().split();
        let queue = Mutex::new(Some(queue));
        /// Unhangs and stops the worker when the scope ends, also when an
        /// assertion failed (else the scope would wait for it forever).
        struct Release<'a>(&'a AtomicBool, Arc<AtomicBool>);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::SeqCst);
                self.1.store(true, Ordering::SeqCst);
            }
        }
        std::thread::scope(|s| {
            let _release = Release(&stuck, runtime.shutdown_flag());
            let running = s.spawn(|| {
                runtime.run(
                    |_| Ok(queue.lock().unwrap().take().unwrap()),
                    |_| Hanging(Arc::clone(&stuck)),
                )
            });
            let mut buf = [0u8; 256];
            let started = Instant::now();
            loop {
                assert!(started.elapsed() < Duration::from_secs(10), "no READY=1");
                if let Ok(n) = systemd.recv(&mut buf) {
                    if buf[..n].starts_with(b"READY=1") {
                        break;
                    }
                }
            }
            assert!(
                pings_within(&systemd, Duration::from_millis(2500)) >= 2,
                "fed while live"
            );
            stuck.store(true, Ordering::SeqCst);
            // The check after the hang began may still see the last
            // progress; every one after it sees none. (Read what that
            // check sent, so that it is not counted below.)
            pings_within(&systemd, Duration::from_millis(1100));
            assert_eq!(
                pings_within(&systemd, Duration::from_millis(2500)),
                0,
                "fed while stuck"
            );
            stuck.store(false, Ordering::SeqCst);
            assert!(
                pings_within(&systemd, Duration::from_millis(2500)) >= 1,
                "fed again"
            );
            runtime.shutdown_flag().store(true, Ordering::SeqCst);
            running.join().unwrap().unwrap();
        });
        let started = Instant::now();
        let mut buf = [0u8; 256];
        loop {
            assert!(started.elapsed() < Duration::from_secs(5), "no STOPPING=1");
            if let Ok(n) = systemd.recv(&mut buf) {
                if buf[..n].starts_with(b"STOPPING=1") {
                    break;
                }
            }
        }
        supervisor.stop();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn datagrams_reach_path_and_abstract_sockets() {
        let dir = std::env::temp_dir().join(format!("lbfwd-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let _ = std::fs::remove_file(&path);
        let server = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::from_values(Some(path.to_str().unwrap()), None, None).unwrap();
        n.notify(&ready_message("up\nnow")).unwrap();
        let mut buf = [0u8; 256];
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=up now");
        std::fs::remove_dir_all(&dir).unwrap();

        use std::os::linux::net::SocketAddrExt;
        let name = format!("lbfwd-notify-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let server = UnixDatagram::bind_addr(&addr).unwrap();
        let n = Notifier::from_values(Some(&format!("@{name}")), None, None).unwrap();
        n.notify("WATCHDOG=1").unwrap();
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"WATCHDOG=1");
    }
}
