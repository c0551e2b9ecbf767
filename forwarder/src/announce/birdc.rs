//! A client of BIRD's control socket (what `birdc -s SOCKET` speaks): one
//! command per line; every answer line starts with a four-digit code and
//! `-` (more follows) or ` ` (the last line); lines that start with a space
//! continue the previous code. Codes 8xxx and 9xxx are errors.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Errors talking to BIRD.
#[derive(Debug, thiserror::Error)]
pub enum BirdcError {
    /// The socket could not be reached or broke.
    #[error("BIRD's control socket {path}: {source}")]
    Socket {
        /// The socket.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// BIRD answered with an error code.
    #[error("BIRD: {0}")]
    Refused(String),
    /// The answer did not follow the protocol.
    #[error("BIRD's answer is malformed: {0:?}")]
    Malformed(String),
}

/// One answer line: its code and text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// The four-digit code (of the line a continuation belongs to).
    pub code: u16,
    /// The text after the code.
    pub text: String,
}

/// Runs one command and returns every line of the answer; an answer whose
/// last code is 8xxx or 9xxx is [`BirdcError::Refused`] with BIRD's text.
pub fn command(socket: &Path, cmd: &str, timeout: Duration) -> Result<Vec<Line>, BirdcError> {
    let io = |source| BirdcError::Socket {
        path: socket.display().to_string(),
        source,
    };
    let stream = UnixStream::connect(socket).map_err(io)?;
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    let mut reader = BufReader::new(stream.try_clone().map_err(io)?);
    // The greeting: "0001 BIRD 2.0.12 ready."
    read_answer(&mut reader).map_err(|e| match e {
        AnswerError::Io(source) => io(source),
        AnswerError::Malformed(l) => BirdcError::Malformed(l),
    })?;
    (&stream)
        .write_all(format!("{cmd}\n").as_bytes())
        .map_err(io)?;
    let lines = read_answer(&mut reader).map_err(|e| match e {
        AnswerError::Io(source) => io(source),
        AnswerError::Malformed(l) => BirdcError::Malformed(l),
    })?;
    match lines.last() {
        Some(last) if last.code >= 8000 => Err(BirdcError::Refused(
            lines
                .iter()
                .filter(|l| l.code >= 8000)
                .map(|l| l.text.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        )),
        _ => Ok(lines),
    }
}

enum AnswerError {
    Io(std::io::Error),
    Malformed(String),
}

fn read_answer(reader: &mut impl BufRead) -> Result<Vec<Line>, AnswerError> {
    let mut lines = Vec::new();
    let mut code = 0u16;
    loop {
        let mut raw = String::new();
        if reader.read_line(&mut raw).map_err(AnswerError::Io)? == 0 {
            return Err(AnswerError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "BIRD closed the connection mid-answer",
            )));
        }
        let raw = raw.trim_end_matches(['\n', '\r']);
        if let Some(rest) = raw.strip_prefix(' ') {
            lines.push(Line {
                code,
                text: rest.to_string(),
            });
            continue;
        }
        let (head, text) = (raw.get(..4), raw.get(5..).unwrap_or(""));
        let sep = raw.as_bytes().get(4).copied();
        match (head.and_then(|h| h.parse::<u16>().ok()), sep) {
            (Some(c), Some(b'-')) => {
                code = c;
                lines.push(Line {
                    code,
                    text: text.to_string(),
                });
            }
            (Some(c), Some(b' ')) | (Some(c), None) => {
                lines.push(Line {
                    code: c,
                    text: text.to_string(),
                });
                return Ok(lines);
            }
            _ => return Err(AnswerError::Malformed(raw.to_string())),
        }
    }
}

/// `configure "FILE"`: Ok with BIRD's confirmation, or BIRD's message
/// when it refuses the file (then it keeps running the old configuration).
pub fn configure(socket: &Path, file: &Path, timeout: Duration) -> Result<String, BirdcError> {
    let lines = command(
        socket,
        &format!("configure \"{}\"", file.display()),
        timeout,
    )?;
    // 0003 Reconfigured, 0004 Reconfiguration in progress, 0018
    // Reconfiguration confirmed, 0019 Nothing to do.
    match lines.last() {
        Some(l) if matches!(l.code, 3 | 4 | 18 | 19) => Ok(l.text.clone()),
        Some(l) => Err(BirdcError::Refused(format!(
            "unexpected answer to configure: {} {}",
            l.code, l.text
        ))),
        None => Err(BirdcError::Malformed(String::new())),
    }
}

/// `configure`: BIRD re-reads the configuration file it was started with
/// (an operator-run BIRD that includes lbfwd's file).
pub fn configure_main(socket: &Path, timeout: Duration) -> Result<String, BirdcError> {
    let lines = command(socket, "configure", timeout)?;
    match lines.last() {
        Some(l) if matches!(l.code, 3 | 4 | 18 | 19) => Ok(l.text.clone()),
        Some(l) => Err(BirdcError::Refused(format!(
            "unexpected answer to configure: {} {}",
            l.code, l.text
        ))),
        None => Err(BirdcError::Malformed(String::new())),
    }
}

/// One protocol of `show protocols all`, the fields lbfwd reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProtocolInfo {
    /// Protocol name.
    pub name: String,
    /// Protocol type (`BGP`, `Static`, ...).
    pub proto: String,
    /// "Neighbor address:" of a BGP protocol.
    pub neighbor_address: Option<std::net::IpAddr>,
    /// "Neighbor AS:" of a BGP protocol.
    pub neighbor_as: Option<u32>,
    /// `up`, `down`, `start`, ...
    pub state: String,
    /// When it entered this state (`timeformat protocol iso long`, UTC).
    pub since: String,
    /// The BGP state line (`Established`, `Active`, ...).
    pub bgp_state: Option<String>,
    /// "Last error:" if any.
    pub last_error: Option<String>,
    /// Routes exported by its channel(s).
    pub exported: Option<u64>,
}

/// Parses the answer of `show protocols all`.
pub fn parse_protocols(lines: &[Line]) -> Vec<ProtocolInfo> {
    let mut out: Vec<ProtocolInfo> = Vec::new();
    for l in lines {
        match l.code {
            // "peer1      BGP        ---        up     2026-12-02 01:05:53  Established"
            1002 => {
                let f: Vec<&str> = l.text.split_whitespace().collect();
                if f.len() >= 4 {
                    out.push(ProtocolInfo {
                        name: f[0].to_string(),
                        proto: f[1].to_string(),
                        state: f[3].to_string(),
                        since: f.get(4..6).map(|d| d.join(" ")).unwrap_or_default(),
                        ..ProtocolInfo::default()
                    });
                }
            }
            1006 => {
                let Some(p) = out.last_mut() else { continue };
                let t = l.text.trim();
                if let Some(v) = t.strip_prefix("BGP state:") {
                    p.bgp_state = Some(v.trim().to_string());
                } else if let Some(v) = t.strip_prefix("Neighbor address:") {
                    p.neighbor_address = v.trim().parse().ok();
                } else if let Some(v) = t.strip_prefix("Neighbor AS:") {
                    p.neighbor_as = v.trim().parse().ok();
                } else if let Some(v) = t.strip_prefix("Last error:") {
                    p.last_error = Some(v.trim().to_string());
                } else if let Some(v) = t.strip_prefix("Routes:") {
                    // "1 imported, 2 exported, 0 preferred"
                    let exported = v.split(',').find_map(|part| {
                        part.trim()
                            .strip_suffix("exported")
                            .and_then(|n| n.trim().parse::<u64>().ok())
                    });
                    if let Some(n) = exported {
                        *p.exported.get_or_insert(0) += n;
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// Seconds from 1970 of a `YYYY-MM-DD HH:MM:SS` UTC time.
pub fn parse_utc(text: &str) -> Option<u64> {
    let (date, time) = text.trim().split_once(' ')?;
    let d: Vec<i64> = date
        .split('-')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let t: Vec<i64> = time
        .split(':')
        .map(|x| x.split('.').next().and_then(|x| x.parse().ok()))
        .collect::<Option<_>>()?;
    let ([y, m, day], [hh, mm, ss]) = (d.as_slice(), t.as_slice()) else {
        return None;
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if *m <= 2 { y - 1 } else { *y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_and_protocols_parse() {
        let text = "2002-Name       Proto      Table      State  Since         Info\n\
            1002-peer1      BGP        ---        up     2026-12-02 01:05:53  Established\n\
            1006-  Description:    lbfwd\n\
            \x20    BGP state:          Established\n\
            \x20    Last error:       Socket: Connection reset\n\
            \x20  Channel ipv4\n\
            \x20    Routes:         0 imported, 2 exported, 0 preferred\n\
            \x20\n\
            1002-peer2      BGP        ---        start  2026-12-02 01:05:54  Active\n\
            1006-  BGP state:          Active\n\
            0000 \n";
        let lines = read_answer(&mut text.as_bytes()).ok().unwrap();
        assert_eq!(lines.last().unwrap().code, 0);
        let p = parse_protocols(&lines);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].name, "peer1");
        assert_eq!(p[0].since, "2026-12-02 01:05:53");
        assert_eq!(p[0].bgp_state.as_deref(), Some("Established"));
        assert_eq!(p[0].exported, Some(2));
        assert_eq!(p[0].last_error.as_deref(), Some("Socket: Connection reset"));
        assert_eq!(p[1].bgp_state.as_deref(), Some("Active"));
        assert_eq!(p[1].exported, None);
    }

    #[test]
    fn utc_times_parse() {
        assert_eq!(parse_utc("1970-01-01 00:00:00"), Some(0));
        assert_eq!(parse_utc("2026-12-02 01:05:53"), Some(1_796_173_553));
        assert_eq!(parse_utc("01:05:53.123"), None);
    }
}
