//! The managed BIRD: started in the foreground under `setpriv --pdeathsig
//! KILL`, so the kernel kills it when the thread that started it ends (that
//! thread lives as long as lbfwd: also `kill -9` of lbfwd takes BIRD
//! along, its TCP sessions close, and the peers withdraw at once);
//! restarted, loudly, when it dies; stopped with `down` (a Cease to every
//! peer) when lbfwd stops.

use super::{birdc, AnnounceError, Announcer, BIRDC_TIMEOUT};
use lbfwd_config::bgp::Bgp;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long BIRD may take to answer on its socket after it started.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the supervisor looks at BIRD.
const POLL: Duration = Duration::from_millis(100);
/// The longest pause between two restarts of a BIRD that keeps dying.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// The files in BIRD's runtime directory.
#[derive(Clone, Debug)]
pub(super) struct Paths {
    /// The configuration BIRD runs (the last one it accepted).
    pub config: PathBuf,
    /// A new configuration before BIRD accepted it.
    pub candidate: PathBuf,
    /// BIRD's control socket (`-s`).
    pub socket: PathBuf,
    /// BIRD's pid file (`-P`).
    pub pid: PathBuf,
}

impl Paths {
    pub fn new(bgp: &Bgp) -> Paths {
        let d = &bgp.runtime_dir;
        Paths {
            config: d.join("bird.conf"),
            candidate: d.join("bird.conf.new"),
            socket: d.join("bird.ctl"),
            pid: d.join("bird.pid"),
        }
    }
}

fn setpriv() -> Option<PathBuf> {
    ["/usr/bin/setpriv", "/bin/setpriv"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// BIRD and setpriv are there.
pub(super) fn check_binaries(bgp: &Bgp) -> Result<(), AnnounceError> {
    if !bgp.bird.exists() {
        return Err(AnnounceError::BirdMissing {
            path: bgp.bird.clone(),
        });
    }
    setpriv().ok_or(AnnounceError::SetprivMissing)?;
    // `bird --version` prints "BIRD version 2.0.12" (on stderr).
    let out = Command::new(&bgp.bird)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| AnnounceError::Start(format!("cannot run {}: {e}", bgp.bird.display())))?;
    let version = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !version.trim().starts_with("BIRD version 2.") {
        return Err(AnnounceError::NotBird2 {
            path: bgp.bird.clone(),
            version: version.trim().to_string(),
        });
    }
    Ok(())
}

/// Starts the supervisor thread and waits until BIRD answers for the first
/// time (or failed to start, with its message).
pub(super) fn start(a: Arc<Announcer>) -> Result<std::thread::JoinHandle<()>, AnnounceError> {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::Builder::new()
        .name("lbfwd-bird".into())
        .spawn(move || supervise(&a, tx))
        .map_err(|e| AnnounceError::Start(format!("cannot start the supervisor thread: {e}")))?;
    match rx.recv() {
        Ok(Ok(())) => Ok(handle),
        Ok(Err(e)) => {
            let _ = handle.join();
            Err(AnnounceError::Start(e))
        }
        Err(_) => {
            let _ = handle.join();
            Err(AnnounceError::Start("the supervisor thread ended".into()))
        }
    }
}

/// For an operator-run BIRD: a thread that keeps its include file in step
/// with the plan (and retries while that BIRD does not answer).
pub(super) fn keep_external(
    a: Arc<Announcer>,
) -> Result<std::thread::JoinHandle<()>, AnnounceError> {
    std::thread::Builder::new()
        .name("lbfwd-bird-external".into())
        .spawn(move || loop {
            {
                let mut inner = a.lock();
                if inner.stopping {
                    return;
                }
                let _ = a.apply(&mut inner);
            }
            sleep_unless_stopping(&a, Duration::from_secs(2));
        })
        .map_err(|e| AnnounceError::Start(format!("cannot start the announcer thread: {e}")))
}

/// Writes the configuration of the current plan as the one BIRD starts
/// with, after `bird -p` (parse only) accepted it; when it refuses, the
/// last accepted one is used (none: the error).
fn prepare_config(
    a: &Announcer,
    bgp: &Bgp,
    paths: &Paths,
) -> Result<(String, Vec<std::net::IpAddr>), String> {
    let (text, set) = {
        let inner = a.lock();
        a.bird_config(&inner).unwrap_or_default()
    };
    std::fs::write(&paths.candidate, &text)
        .map_err(|e| format!("cannot write {}: {e}", paths.candidate.display()))?;
    let check = Command::new(&bgp.bird)
        .arg("-p")
        .arg("-c")
        .arg(&paths.candidate)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bgp.bird.display()))?;
    if check.status.success() {
        std::fs::rename(&paths.candidate, &paths.config)
            .map_err(|e| format!("cannot rename to {}: {e}", paths.config.display()))?;
        return Ok((text, set.into_iter().collect()));
    }
    let why = String::from_utf8_lossy(&check.stderr).trim().to_string();
    match std::fs::read_to_string(&paths.config) {
        Ok(old) => {
            eprintln!(
                "lbfwd: announce: BIRD refused {} ({why}); starting it with the last accepted {}",
                paths.candidate.display(),
                paths.config.display()
            );
            // What that file announces is unknown here: the next apply
            // brings it to the plan, or reports the refusal again.
            Ok((old, Vec::new()))
        }
        Err(_) => Err(format!(
            "BIRD refused the generated configuration {}: {why}",
            paths.candidate.display()
        )),
    }
}

fn spawn(bgp: &Bgp, paths: &Paths) -> Result<Child, String> {
    let setpriv = setpriv().ok_or("setpriv is missing (util-linux)")?;
    let _ = std::fs::remove_file(&paths.socket);
    let mut c = Command::new(setpriv);
    c.args(["--pdeathsig", "KILL", "--"])
        .arg(&bgp.bird)
        .arg("-f")
        .arg("-c")
        .arg(&paths.config)
        .arg("-s")
        .arg(&paths.socket)
        .arg("-P")
        .arg(&paths.pid)
        // BIRD prints protocol times in local time: make that UTC.
        .env("TZ", "UTC")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = c
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bgp.bird.display()))?;
    if let Some(err) = child.stderr.take() {
        let pid = child.id();
        let _ = std::thread::Builder::new()
            .name("lbfwd-bird-log".into())
            .spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    eprintln!("lbfwd: bird[{pid}]: {line}");
                }
            });
    }
    Ok(child)
}

/// Waits until BIRD answers on its socket.
fn wait_answering(child: &mut Child, paths: &Paths) -> Result<(), String> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "BIRD exited at start: {status} (its messages are above)"
            ));
        }
        match birdc::command(&paths.socket, "show status", Duration::from_secs(1)) {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("BIRD did not answer within {START_TIMEOUT:?}: {e}"));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// The supervisor thread: never ends before [`Announcer::stop`], so that
/// BIRD's parent-death signal fires only when lbfwd goes.
fn supervise(a: &Arc<Announcer>, ready: mpsc::Sender<Result<(), String>>) {
    let Some(bgp) = a.bgp.clone() else {
        let _ = ready.send(Ok(()));
        return;
    };
    let paths = Paths::new(&bgp);
    let mut ready = Some(ready);
    let mut backoff = Duration::from_secs(1);
    loop {
        if a.lock().stopping {
            return;
        }
        let started = prepare_config(a, &bgp, &paths).and_then(|(text, set)| {
            let mut child = spawn(&bgp, &paths)?;
            wait_answering(&mut child, &paths)?;
            Ok((child, text, set))
        });
        let (mut child, text, set) = match started {
            Ok(s) => s,
            Err(e) => {
                if let Some(r) = ready.take() {
                    let _ = r.send(Err(e));
                    return;
                }
                eprintln!("lbfwd: announce: {e}; trying again in {backoff:?}");
                a.lock().bird.last_error = Some(e);
                sleep_unless_stopping(a, backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        let pid = child.id();
        {
            let mut inner = a.lock();
            inner.bird.pid = Some(pid);
            inner.bird.running_config = Some(text);
            inner.bird.announced = set.into_iter().collect();
            inner.bird.last_error = None;
            let _ = a.apply(&mut inner);
        }
        match ready.take() {
            Some(r) => {
                eprintln!(
                    "lbfwd: announce: BIRD started (pid {pid}, socket {})",
                    paths.socket.display()
                );
                let _ = r.send(Ok(()));
            }
            None => eprintln!("lbfwd: announce: BIRD restarted (pid {pid})"),
        }
        let since = Instant::now();
        // Watch it.
        let status = loop {
            let inner = a.lock();
            if inner.stopping {
                drop(inner);
                stop_bird(&mut child, &paths);
                return;
            }
            let (inner, _) = a
                .wake
                .wait_timeout(inner, POLL)
                .unwrap_or_else(|e| e.into_inner());
            drop(inner);
            if let Ok(Some(status)) = child.try_wait() {
                break status;
            }
        };
        {
            let mut inner = a.lock();
            inner.bird.pid = None;
            inner.bird.running_config = None;
            inner.bird.announced.clear();
            inner.bird.restarts += 1;
            inner.bird.last_error = Some(format!("BIRD (pid {pid}) died: {status}"));
        }
        if since.elapsed() > Duration::from_secs(60) {
            backoff = Duration::from_secs(1);
        }
        eprintln!(
            "lbfwd: announce: BIRD (pid {pid}) died ({status}); its sessions are down; restarting it in {backoff:?}"
        );
        sleep_unless_stopping(a, backoff);
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

fn sleep_unless_stopping(a: &Announcer, d: Duration) {
    let deadline = Instant::now() + d;
    let mut inner = a.lock();
    while !inner.stopping {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        inner = a
            .wake
            .wait_timeout(inner, left)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}

/// `down` (BIRD sends a Cease to every peer and exits), else SIGKILL.
fn stop_bird(child: &mut Child, paths: &Paths) {
    let _ = birdc::command(&paths.socket, "down", BIRDC_TIMEOUT);
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            let _ = std::fs::remove_file(&paths.socket);
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_file(&paths.socket);
}
