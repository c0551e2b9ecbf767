//! The client side of the control socket: connect, send one request, read
//! one response.
//!
//! Errors name the socket path tried and say what to do: not running
//! (`ENOENT`, `ECONNREFUSED`), permission denied (`EACCES`), timeouts, a
//! connection closed without an answer.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::protocol::{ApiError, Payload, Request, Response};

/// The default control socket (`[control] socket`).
pub const DEFAULT_SOCKET: &str = "/run/lbfwd/lbfwd.sock";
/// The environment variable that overrides [`DEFAULT_SOCKET`] for `lbctl`.
pub const SOCKET_ENV: &str = "LBFWD_SOCKET";
/// The default time to wait for an answer (a change rebuilds tables, which
/// can take a moment with many load balancers).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest response line accepted (an export of a large state).
pub const MAX_RESPONSE_BYTES: u64 = 256 << 20;

/// Why a request got no answer, or got an error answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing serves the socket: it does not exist, or nothing listens.
    #[error("lbfwd is not running: {reason} at {path} (start lbfwd, or point --socket / LBFWD_SOCKET at its [control] socket)")]
    NotRunning {
        /// The socket path tried.
        path: PathBuf,
        /// What was found there.
        reason: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The socket exists but we may not connect.
    #[error("permission denied on the control socket {path}: run as root or as a member of the socket's group")]
    PermissionDenied {
        /// The socket path tried.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Connecting failed for another reason.
    #[error("cannot connect to the control socket {path}: {source}")]
    Connect {
        /// The socket path tried.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// No answer in time.
    #[error("lbfwd did not answer within {}s on {path}", timeout.as_secs_f64())]
    Timeout {
        /// The socket path.
        path: PathBuf,
        /// How long we waited.
        timeout: Duration,
    },
    /// Reading or writing failed.
    #[error("lost the connection to lbfwd on {path}: {source}")]
    Io {
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The daemon closed the connection without answering.
    #[error("lbfwd closed the connection on {path} without answering")]
    Closed {
        /// The socket path.
        path: PathBuf,
    },
    /// The answer could not be understood.
    #[error("{message} (socket {path})")]
    Protocol {
        /// The socket path.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// The daemon answered with an error.
    #[error("{0}")]
    Api(#[from] ApiError),
}

impl ClientError {
    /// The daemon's error answer, if that is what this is.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            ClientError::Api(e) => Some(e),
            _ => None,
        }
    }
}

/// A client of one control socket. Each call opens its own connection.
#[derive(Clone, Debug)]
pub struct Client {
    socket: PathBuf,
    timeout: Duration,
}

impl Client {
    /// A client of the socket at `socket`, with [`DEFAULT_TIMEOUT`].
    pub fn new(socket: impl Into<PathBuf>) -> Client {
        Client {
            socket: socket.into(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The same client with another timeout for the whole exchange.
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// The socket path.
    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    /// Sends one request and returns the daemon's answer; an error answer
    /// becomes [`ClientError::Api`].
    pub fn call(&self, request: &Request) -> Result<Payload, ClientError> {
        let line = self.call_raw(&request.to_line())?;
        let response = Response::from_line(&line).map_err(|message| ClientError::Protocol {
            path: self.socket.clone(),
            message,
        })?;
        response.0.map_err(ClientError::Api)
    }

    /// Sends one raw line (a newline is appended) and returns the raw
    /// response line, without its newline. For debugging and tests.
    pub fn call_raw(&self, line: &str) -> Result<String, ClientError> {
        let mut stream = self.connect()?;
        let io_err = |source: io::Error| self.io_error(source);
        stream
            .set_write_timeout(Some(self.timeout))
            .map_err(io_err)?;
        stream
            .set_read_timeout(Some(self.timeout))
            .map_err(io_err)?;
        let mut out = Vec::with_capacity(line.len() + 1);
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
        if let Err(e) = stream.write_all(&out) {
            // The daemon may have answered (e.g. `too_large`) and closed
            // before taking everything; its answer is still worth reading.
            if e.kind() != io::ErrorKind::BrokenPipe && e.kind() != io::ErrorKind::ConnectionReset {
                return Err(io_err(e));
            }
        }
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let mut reader = BufReader::new(stream.take(MAX_RESPONSE_BYTES));
        let mut answer = Vec::new();
        let n = reader.read_until(b'\n', &mut answer).map_err(io_err)?;
        if n == 0 {
            return Err(ClientError::Closed {
                path: self.socket.clone(),
            });
        }
        if answer.last() != Some(&b'\n') {
            return Err(ClientError::Protocol {
                path: self.socket.clone(),
                message: if answer.len() as u64 >= MAX_RESPONSE_BYTES {
                    format!("response from lbfwd longer than {MAX_RESPONSE_BYTES} bytes")
                } else {
                    "lbfwd closed the connection in the middle of its answer".to_owned()
                },
            });
        }
        answer.pop();
        String::from_utf8(answer).map_err(|_| ClientError::Protocol {
            path: self.socket.clone(),
            message: "response from lbfwd is not UTF-8".to_owned(),
        })
    }

    fn connect(&self) -> Result<UnixStream, ClientError> {
        UnixStream::connect(&self.socket).map_err(|source| {
            let path = self.socket.clone();
            match source.kind() {
                // ENOTDIR: a path component is a file; nothing can listen
                // there either.
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => ClientError::NotRunning {
                    path,
                    reason: "no control socket",
                    source,
                },
                io::ErrorKind::ConnectionRefused => ClientError::NotRunning {
                    path,
                    reason: "nothing listens on the control socket",
                    source,
                },
                io::ErrorKind::PermissionDenied => ClientError::PermissionDenied { path, source },
                _ => ClientError::Connect { path, source },
            }
        })
    }

    fn io_error(&self, source: io::Error) -> ClientError {
        match source.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ClientError::Timeout {
                path: self.socket.clone(),
                timeout: self.timeout,
            },
            _ => ClientError::Io {
                path: self.socket.clone(),
                source,
            },
        }
    }
}
