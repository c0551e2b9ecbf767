//! The unix-socket server the daemon embeds.
//!
//! [`Server::bind`] takes the socket: it creates the socket's directory if
//! missing, takes an exclusive lock on `<socket>.lock` (so a second daemon
//! refuses to start, naming the socket and the pid holding it), removes a
//! stale socket left by a crashed run (only a socket, and only when nothing
//! listens on it), binds, and sets mode 0660 and the configured group.
//!
//! [`Server::spawn`] serves it on a background thread: one JSON request per
//! line, one JSON response per line (see [`crate::protocol`]), any number of
//! requests per connection, up to [`ServerConfig::max_clients`] connections at
//! once (each on its own thread; the excess get `busy`). A request longer than
//! [`ServerConfig::max_request_bytes`] gets `too_large` and the connection is
//! closed; a client that sends no complete request within
//! [`ServerConfig::idle_timeout`] gets `timeout` and is dropped; a client that
//! goes away mid-request is forgotten. Nothing a client sends can stop the
//! server.
//!
//! The server knows nothing about the model: every decoded [`Request`] goes
//! to the daemon's [`Handler`], which validates, builds, publishes and
//! persists. Requests from different connections may reach the handler
//! concurrently; the handler serializes changes itself.
//!
//! [`ServerHandle::shutdown`] (or dropping the handle) stops accepting,
//! closes idle connections, waits for requests in progress, removes the socket
//! and releases the lock. The lock file itself stays (removing it would race
//! with a daemon starting at the same moment).

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::protocol::{ApiError, ErrorCode, Payload, Request, Response, DEFAULT_MAX_REQUEST_BYTES};

/// What the daemon implements: answer one request.
///
/// Called from the connection threads, possibly concurrently; an
/// implementation serializes changes itself (e.g. one mutex around the
/// desired state). It must not touch dataplane state directly: changes go
/// through the same validate-build-publish-persist path as a reload.
pub trait Handler: Send + Sync + 'static {
    /// Answers one request. A panic is caught where panics unwind and
    /// answered with `internal` (release builds abort on panic instead).
    fn handle(&self, request: Request) -> Result<Payload, ApiError>;
}

impl<F> Handler for F
where
    F: Fn(Request) -> Result<Payload, ApiError> + Send + Sync + 'static,
{
    fn handle(&self, request: Request) -> Result<Payload, ApiError> {
        self(request)
    }
}

/// The default socket mode: owner and group may connect.
pub const DEFAULT_SOCKET_MODE: u32 = 0o660;
/// The default time a client has to send a complete request.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// The default time a response may take to drain to a slow client.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// The default number of connections served at once.
pub const DEFAULT_MAX_CLIENTS: usize = 64;
/// How long [`ServerHandle::shutdown`] waits for requests in progress.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Where and how to serve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// The socket path (`[control] socket`).
    pub socket: PathBuf,
    /// The group to give the socket to, by name or numeric gid; `None` keeps
    /// the daemon's group.
    pub group: Option<String>,
    /// The socket's mode bits (default 0660).
    pub mode: u32,
    /// The longest request line accepted, without its newline.
    pub max_request_bytes: usize,
    /// How long a client has to send a complete request (counted from the
    /// connection, or from the previous response).
    pub idle_timeout: Duration,
    /// How long writing one response may block.
    pub write_timeout: Duration,
    /// Connections served at once; the excess get `busy`.
    pub max_clients: usize,
    /// How long shutdown waits for requests in progress.
    pub shutdown_grace: Duration,
}

impl ServerConfig {
    /// The defaults for a socket path.
    pub fn new(socket: impl Into<PathBuf>) -> ServerConfig {
        ServerConfig {
            socket: socket.into(),
            group: None,
            mode: DEFAULT_SOCKET_MODE,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            max_clients: DEFAULT_MAX_CLIENTS,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
        }
    }

    /// The lock file taken beside `socket`: the socket path with `.lock`
    /// appended.
    pub fn lock_path(&self) -> PathBuf {
        lock_path_for(&self.socket)
    }
}

/// The lock file beside a socket: `<socket>.lock`.
pub fn lock_path_for(socket: &Path) -> PathBuf {
    let mut s = socket.as_os_str().to_owned();
    s.push(".lock");
    PathBuf::from(s)
}

/// Why the control socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The socket path has no file name or parent directory.
    #[error("the control socket path {0} is not a file path")]
    BadPath(PathBuf),
    /// The socket's directory could not be created.
    #[error("cannot create the control socket directory {dir}: {source}")]
    CreateDir {
        /// The directory.
        dir: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The lock file could not be opened, locked or written.
    #[error("cannot use the lock file {path}: {source}")]
    LockFile {
        /// The lock file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Another process holds the lock: another lbfwd serves this socket.
    #[error(
        "another lbfwd{} already serves the control socket {socket} (it holds {lock}); stop it first or choose another [control] socket",
        pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    AlreadyRunning {
        /// The socket.
        socket: PathBuf,
        /// The lock file.
        lock: PathBuf,
        /// The pid recorded in the lock file, if readable.
        pid: Option<u32>,
    },
    /// Something that is not a socket sits at the socket path.
    #[error("{0} exists and is not a socket; refusing to remove it (move it away or choose another [control] socket)")]
    NotASocket(PathBuf),
    /// A process listens on the socket without holding the lock.
    #[error("a process is listening on {socket} without holding {lock}; refusing to take the socket over")]
    InUse {
        /// The socket.
        socket: PathBuf,
        /// The lock file.
        lock: PathBuf,
    },
    /// The stale socket could not be removed.
    #[error("cannot remove the stale control socket {path}: {source}")]
    RemoveStale {
        /// The socket.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// `bind` failed.
    #[error("cannot bind the control socket {path}: {source}")]
    Bind {
        /// The socket.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Setting the socket's mode failed.
    #[error("cannot set mode {mode:04o} on the control socket {path}: {source}")]
    Chmod {
        /// The socket.
        path: PathBuf,
        /// The mode.
        mode: u32,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The configured group does not exist.
    #[error("unknown group `{group}` for the control socket: not in {file} and not a numeric gid")]
    UnknownGroup {
        /// The group name.
        group: String,
        /// The group database that was searched.
        file: PathBuf,
    },
    /// The group database could not be read.
    #[error("cannot read {file} to look up the group `{group}`: {source}")]
    GroupFile {
        /// The group name.
        group: String,
        /// The group database.
        file: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Giving the socket to the group failed.
    #[error("cannot give the control socket {path} to group `{group}` (gid {gid}): {source}")]
    Chown {
        /// The socket.
        path: PathBuf,
        /// The group name.
        group: String,
        /// Its gid.
        gid: u32,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The accept thread could not be started.
    #[error("cannot start the control server thread: {0}")]
    Spawn(#[source] io::Error),
}

/// The group database [`resolve_group`] reads.
pub const GROUP_FILE: &str = "/etc/group";

/// Resolves a group name (or a numeric gid) to a gid through
/// [`GROUP_FILE`]. Groups only known to other NSS sources (LDAP, ...) must be
/// given as numeric gids.
pub fn resolve_group(group: &str) -> Result<u32, ServerError> {
    resolve_group_in(group, Path::new(GROUP_FILE))
}

/// Resolves a group name (or a numeric gid) through a group file in
/// `/etc/group` format (`name:password:gid:members`).
pub fn resolve_group_in(group: &str, file: &Path) -> Result<u32, ServerError> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(gid);
    }
    let text = fs::read_to_string(file).map_err(|source| ServerError::GroupFile {
        group: group.to_owned(),
        file: file.to_owned(),
        source,
    })?;
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let mut fields = l.split(':');
            let name = fields.next()?;
            let _password = fields.next()?;
            let gid = fields.next()?.trim().parse::<u32>().ok()?;
            Some((name, gid))
        })
        .find(|(name, _)| *name == group)
        .map(|(_, gid)| gid)
        .ok_or_else(|| ServerError::UnknownGroup {
            group: group.to_owned(),
            file: file.to_owned(),
        })
}

/// Holds the lock and the socket; removes the socket (if it is still the one
/// we bound) when dropped, which also releases the lock.
#[derive(Debug)]
struct SocketGuard {
    socket: PathBuf,
    /// `(dev, ino)` of the socket we bound.
    identity: (u64, u64),
    /// The locked lock file; closing it releases the lock.
    _lock: File,
}

impl Drop for SocketGuard {
    fn drop(&mut self) {
        if let Ok(meta) = fs::symlink_metadata(&self.socket) {
            if (meta.dev(), meta.ino()) == self.identity {
                let _ = fs::remove_file(&self.socket);
            }
        }
    }
}

/// A bound control socket, not yet served.
#[derive(Debug)]
pub struct Server {
    config: ServerConfig,
    listener: UnixListener,
    guard: SocketGuard,
}

impl Server {
    /// Takes the control socket: directory, lock, stale socket, bind, mode,
    /// group (see the [module docs](self)).
    pub fn bind(config: ServerConfig) -> Result<Server, ServerError> {
        let socket = config.socket.clone();
        if socket.file_name().is_none() {
            return Err(ServerError::BadPath(socket));
        }
        // Resolve the group first: a typo should not leave a socket behind.
        let gid = match &config.group {
            Some(g) => Some((g.clone(), resolve_group(g)?)),
            None => None,
        };
        if let Some(dir) = socket.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dir)
                .map_err(|source| ServerError::CreateDir {
                    dir: dir.to_owned(),
                    source,
                })?;
        }
        let lock_path = config.lock_path();
        let lock = take_lock(&socket, &lock_path)?;
        remove_stale_socket(&socket, &lock_path)?;
        let listener = UnixListener::bind(&socket).map_err(|source| ServerError::Bind {
            path: socket.clone(),
            source,
        })?;
        let meta = fs::symlink_metadata(&socket).map_err(|source| ServerError::Bind {
            path: socket.clone(),
            source,
        })?;
        let guard = SocketGuard {
            socket: socket.clone(),
            identity: (meta.dev(), meta.ino()),
            _lock: lock,
        };
        fs::set_permissions(&socket, fs::Permissions::from_mode(config.mode)).map_err(
            |source| ServerError::Chmod {
                path: socket.clone(),
                mode: config.mode,
                source,
            },
        )?;
        if let Some((group, gid)) = gid {
            std::os::unix::fs::chown(&socket, None, Some(gid)).map_err(|source| {
                ServerError::Chown {
                    path: socket.clone(),
                    group,
                    gid,
                    source,
                }
            })?;
        }
        Ok(Server {
            config,
            listener,
            guard,
        })
    }

    /// The socket path.
    pub fn socket_path(&self) -> &Path {
        &self.config.socket
    }

    /// The configuration it was bound with.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Serves the socket on a background thread until the returned handle
    /// is shut down or dropped.
    pub fn spawn<H: Handler>(self, handler: Arc<H>) -> Result<ServerHandle, ServerError> {
        let shared = Arc::new(Shared {
            config: self.config.clone(),
            stop: AtomicBool::new(false),
            conns: Mutex::new(Connections::default()),
            idle: Condvar::new(),
            next_id: AtomicU64::new(0),
        });
        let accept_shared = Arc::clone(&shared);
        let listener = self.listener;
        let accept = thread::Builder::new()
            .name("lbfwd-ctl-accept".into())
            .spawn(move || accept_loop(listener, accept_shared, handler))
            .map_err(ServerError::Spawn)?;
        Ok(ServerHandle {
            shared,
            accept: Some(accept),
            guard: Some(self.guard),
        })
    }
}

/// Opens and locks `<socket>.lock`, recording our pid in it.
fn take_lock(socket: &Path, lock_path: &Path) -> Result<File, ServerError> {
    let lock_err = |source| ServerError::LockFile {
        path: lock_path.to_owned(),
        source,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(lock_path)
        .map_err(lock_err)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            let pid = file
                .read_to_string(&mut text)
                .ok()
                .and_then(|_| text.trim().parse::<u32>().ok());
            return Err(ServerError::AlreadyRunning {
                socket: socket.to_owned(),
                lock: lock_path.to_owned(),
                pid,
            });
        }
        Err(fs::TryLockError::Error(e)) => return Err(lock_err(e)),
    }
    file.set_len(0).map_err(lock_err)?;
    file.rewind().map_err(lock_err)?;
    writeln!(file, "{}", std::process::id()).map_err(lock_err)?;
    Ok(file)
}

/// Removes a socket left by a crashed run. Called with the lock held, so no
/// other lbfwd uses it; still refuses to remove anything that is not a
/// socket, or a socket something listens on.
fn remove_stale_socket(socket: &Path, lock_path: &Path) -> Result<(), ServerError> {
    let meta = match fs::symlink_metadata(socket) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(ServerError::RemoveStale {
                path: socket.to_owned(),
                source,
            })
        }
    };
    if !meta.file_type().is_socket() {
        return Err(ServerError::NotASocket(socket.to_owned()));
    }
    if UnixStream::connect(socket).is_ok() {
        return Err(ServerError::InUse {
            socket: socket.to_owned(),
            lock: lock_path.to_owned(),
        });
    }
    fs::remove_file(socket).map_err(|source| ServerError::RemoveStale {
        path: socket.to_owned(),
        source,
    })
}

/// Connections being served, by id, with a clone of each stream so shutdown
/// can close them.
#[derive(Default)]
struct Connections {
    streams: HashMap<u64, UnixStream>,
}

/// State shared by the accept thread, the connection threads and the handle.
struct Shared {
    config: ServerConfig,
    stop: AtomicBool,
    conns: Mutex<Connections>,
    /// Signalled whenever a connection ends.
    idle: Condvar,
    next_id: AtomicU64,
}

impl Shared {
    /// Locks the connection table; a panic elsewhere while holding it does
    /// not make it unusable (it only holds streams).
    fn conns(&self) -> MutexGuard<'_, Connections> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running server. Shutting it down (or dropping it) stops serving,
/// removes the socket and releases the lock.
pub struct ServerHandle {
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
    guard: Option<SocketGuard>,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("socket", &self.shared.config.socket)
            .field("clients", &self.clients())
            .finish()
    }
}

impl ServerHandle {
    /// The socket path.
    pub fn socket_path(&self) -> &Path {
        &self.shared.config.socket
    }

    /// Connections being served right now.
    pub fn clients(&self) -> usize {
        self.shared.conns().streams.len()
    }

    /// Stops accepting, closes idle connections, waits up to
    /// [`ServerConfig::shutdown_grace`] for requests in progress, removes the
    /// socket and releases the lock.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if self.shared.stop.swap(true, Ordering::SeqCst) {
            return;
        }
        // Wake the accept thread: it sees the flag after this connection.
        // If the socket file was removed behind our back nothing can wake
        // it; it is left blocked (it holds no lock and serves nothing more).
        let woke = UnixStream::connect(&self.shared.config.socket).is_ok();
        if let Some(accept) = self.accept.take() {
            if woke {
                let _ = accept.join();
            }
        }
        // Close the read side of every connection: idle ones end at once,
        // busy ones after their current response.
        for stream in self.shared.conns().streams.values() {
            let _ = stream.shutdown(std::net::Shutdown::Read);
        }
        let deadline = Instant::now() + self.shared.config.shutdown_grace;
        let mut conns = self.shared.conns();
        while !conns.streams.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            conns = match self.shared.idle.wait_timeout(conns, left) {
                Ok((c, _)) => c,
                Err(e) => e.into_inner().0,
            };
        }
        drop(conns);
        self.guard = None;
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Accepts connections until the stop flag is set.
fn accept_loop<H: Handler>(listener: UnixListener, shared: Arc<Shared>, handler: Arc<H>) {
    loop {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) => {
                if shared.stop.load(Ordering::SeqCst) {
                    return;
                }
                match e.kind() {
                    io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted => {}
                    // Out of file descriptors or memory: back off instead of
                    // spinning; the clients waiting in the backlog get served
                    // once resources free up.
                    _ => thread::sleep(Duration::from_millis(50)),
                }
                continue;
            }
        };
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        {
            let mut conns = shared.conns();
            if conns.streams.len() >= shared.config.max_clients {
                drop(conns);
                refuse(
                    stream,
                    ApiError::new(
                        ErrorCode::Busy,
                        format!(
                            "lbfwd is serving its maximum of {} control clients; try again",
                            shared.config.max_clients
                        ),
                    ),
                );
                continue;
            }
            match stream.try_clone() {
                Ok(clone) => {
                    conns.streams.insert(id, clone);
                }
                Err(e) => {
                    drop(conns);
                    refuse(
                        stream,
                        ApiError::internal(format!("cannot serve the connection: {e}")),
                    );
                    continue;
                }
            }
        }
        let conn_shared = Arc::clone(&shared);
        let conn_handler = Arc::clone(&handler);
        let spawned = thread::Builder::new()
            .name(format!("lbfwd-ctl-{id}"))
            .spawn(move || {
                serve_connection(stream, &conn_shared, &*conn_handler);
                conn_shared.conns().streams.remove(&id);
                conn_shared.idle.notify_all();
            });
        if let Err(e) = spawned {
            if let Some(stream) = shared.conns().streams.remove(&id) {
                refuse(
                    stream,
                    ApiError::new(
                        ErrorCode::Busy,
                        format!("lbfwd cannot start a thread for this client ({e}); try again"),
                    ),
                );
            }
            shared.idle.notify_all();
        }
    }
}

/// Sends one error and closes; never blocks for long.
fn refuse(mut stream: UnixStream, error: ApiError) {
    let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
    let mut line = Response(Err(error)).to_line();
    line.push('\n');
    let _ = stream.write_all(line.as_bytes());
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

/// Serves one connection: requests, one per line, until EOF, an error or a
/// timeout.
fn serve_connection<H: Handler + ?Sized>(mut stream: UnixStream, shared: &Shared, handler: &H) {
    let config = &shared.config;
    if stream
        .set_write_timeout(Some(config.write_timeout.max(Duration::from_millis(1))))
        .is_err()
    {
        return;
    }
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    // Where the search for the next newline resumes.
    let mut scanned = 0;
    let mut waiting_since = Instant::now();
    loop {
        if let Some(pos) = buf[scanned..].iter().position(|&b| b == b'\n') {
            let end = scanned + pos;
            if end > config.max_request_bytes {
                too_large(&mut stream, config.max_request_bytes);
                return;
            }
            let line: Vec<u8> = buf.drain(..=end).collect();
            scanned = 0;
            let line = &line[..line.len() - 1];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let response = answer(line, handler);
            let mut out = response.to_line();
            out.push('\n');
            if stream.write_all(out.as_bytes()).is_err() {
                return;
            }
            waiting_since = Instant::now();
            continue;
        }
        scanned = buf.len();
        if buf.len() > config.max_request_bytes {
            too_large(&mut stream, config.max_request_bytes);
            return;
        }
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let left = config.idle_timeout.saturating_sub(waiting_since.elapsed());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            timed_out(&mut stream, config.idle_timeout, !buf.is_empty());
            return;
        }
        match stream.read(&mut chunk) {
            // EOF: the client is done (a partial request is dropped).
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                timed_out(&mut stream, config.idle_timeout, !buf.is_empty());
                return;
            }
            Err(_) => return,
        }
    }
}

/// Decodes one request line (without its newline) and asks the handler,
/// as the server does for every line a client sends; a panic in the handler
/// becomes an `internal` error.
pub fn answer<H: Handler + ?Sized>(line: &[u8], handler: &H) -> Response {
    let text = match std::str::from_utf8(line) {
        Ok(t) => t,
        Err(e) => {
            return Response(Err(ApiError::new(
                ErrorCode::BadRequest,
                format!(
                    "request is not valid UTF-8 (at byte {})",
                    e.valid_up_to() + 1
                ),
            )))
        }
    };
    let request = match Request::from_line(text) {
        Ok(r) => r,
        Err(e) => return Response(Err(e)),
    };
    let op = request.operation();
    match panic::catch_unwind(AssertUnwindSafe(|| handler.handle(request))) {
        Ok(result) => Response(result),
        Err(_) => Response(Err(ApiError::internal(format!(
            "lbfwd failed while handling `{op}` (a bug; see the daemon's log); the running state is unchanged"
        )))),
    }
}

/// Answers `too_large` and closes.
fn too_large(stream: &mut UnixStream, limit: usize) {
    let error = ApiError::new(
        ErrorCode::TooLarge,
        format!("request longer than the limit of {limit} bytes; closing the connection"),
    );
    send_final(stream, error);
}

/// Answers `timeout` and closes.
fn timed_out(stream: &mut UnixStream, after: Duration, partial: bool) {
    let what = if partial {
        "an incomplete request"
    } else {
        "no request"
    };
    let error = ApiError::new(
        ErrorCode::Timeout,
        format!(
            "{what} after {:.1}s (each request is one line ending in a newline); closing the connection",
            after.as_secs_f64()
        ),
    );
    send_final(stream, error);
}

/// Sends one last error line and closes both directions.
fn send_final(stream: &mut UnixStream, error: ApiError) {
    let mut line = Response(Err(error)).to_line();
    line.push('\n');
    let _ = stream.write_all(line.as_bytes());
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_path_appends_suffix() {
        assert_eq!(
            lock_path_for(Path::new("/run/lbfwd/lbfwd.sock")),
            PathBuf::from("/run/lbfwd/lbfwd.sock.lock")
        );
    }

    #[test]
    fn group_lookup() {
        let dir = std::env::temp_dir().join(format!("lbfwd-ctl-group-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let file = dir.join("group");
        fs::write(
            &file,
            "root:x:0:\n# comment\nbroken line\nlbfwd:x:998:alice,bob\nweird:x:notanumber:\n",
        )
        .unwrap();
        assert_eq!(resolve_group_in("root", &file).unwrap(), 0);
        assert_eq!(resolve_group_in("lbfwd", &file).unwrap(), 998);
        assert_eq!(resolve_group_in("1234", &file).unwrap(), 1234);
        let err = resolve_group_in("nope", &file).unwrap_err();
        assert!(matches!(err, ServerError::UnknownGroup { .. }));
        assert!(err.to_string().contains("`nope`"), "{err}");
        assert!(resolve_group_in("weird", &file).is_err());
        let err = resolve_group_in("x", &dir.join("missing")).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
