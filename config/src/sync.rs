//! `[sync]`: sharing flow exceptions between appliances behind one ECMP
//! router. A flow on its Maglev pick is where every appliance with the same
//! routing sends it; only flows kept on another target after a routing change
//! (a weight, a drain, a target added) differ. Each appliance sends those
//! exceptions to its peers over UDP and takes theirs, so a flow that ECMP
//! moves to another appliance stays on its target.
//!
//! Layer 2 (input), above the problems: it uses only [`crate::problem`].

use crate::problem::Problem;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Duration;

/// `[sync]` as written in the TOML file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncSection {
    /// `ADDRESS:PORT` the exceptions of the peers are received on.
    pub listen: String,
    /// `ADDRESS:PORT` of every other appliance (their `listen`).
    pub peers: Vec<String>,
    /// Shared secret (at least 16 characters): every datagram carries an
    /// HMAC-SHA256 of it; datagrams without the right one are refused.
    /// Unset: no authentication (only the peers' source addresses are
    /// checked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// How often every live exception is sent again, so that a peer that
    /// restarted learns them (ms).
    #[serde(default = "default_refresh_ms")]
    pub refresh_interval_ms: u64,
    /// Most exceptions kept, of this appliance's own and of the peers' each.
    #[serde(default = "default_max_exceptions")]
    pub max_exceptions: u64,
    /// Exceptions one worker may queue for the sync thread (a full queue
    /// drops and counts the record; the next refresh brings it again).
    #[serde(default = "default_queue")]
    pub worker_queue: u64,
}

fn default_refresh_ms() -> u64 {
    1000
}

fn default_max_exceptions() -> u64 {
    65_536
}

fn default_queue() -> u64 {
    4096
}

/// Validated `[sync]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExceptionSync {
    /// Where the peers' datagrams are received.
    pub listen: SocketAddr,
    /// The other appliances (no duplicates, not `listen`).
    pub peers: Vec<SocketAddr>,
    /// HMAC key; `None`: unauthenticated.
    pub key: Option<Vec<u8>>,
    /// Re-send period of the live exceptions.
    pub refresh_interval: Duration,
    /// Bound of each exception set.
    pub max_exceptions: usize,
    /// Records per worker queue (a power of two).
    pub worker_queue: usize,
}

fn socket_addr(text: &str, path: &str, err: &mut dyn FnMut(&str, Problem)) -> Option<SocketAddr> {
    match text.parse::<SocketAddr>() {
        Ok(a) if a.port() != 0 => Some(a),
        Ok(_) => {
            err(path, Problem::PortOutOfRange(0));
            None
        }
        Err(_) => {
            err(
                path,
                Problem::Setting(format!(
                    "{text:?} is not an address and port (e.g. 10.0.1.2:4797 or [2001:db8::2]:4797)"
                )),
            );
            None
        }
    }
}

/// Validates `[sync]`; every problem goes to `err` with its field path.
pub fn validate_sync(s: &SyncSection, err: &mut dyn FnMut(&str, Problem)) -> Option<ExceptionSync> {
    let mut ok = true;
    let listen = socket_addr(&s.listen, "sync.listen", err);
    ok &= listen.is_some();
    if s.peers.is_empty() {
        err(
            "sync.peers",
            Problem::Setting("[sync] needs at least one peer to send exceptions to".into()),
        );
        ok = false;
    }
    let mut peers: Vec<SocketAddr> = Vec::new();
    for (i, text) in s.peers.iter().enumerate() {
        let path = format!("sync.peers[{i}]");
        let Some(peer) = socket_addr(text, &path, err) else {
            ok = false;
            continue;
        };
        if peers.contains(&peer) {
            err(
                &path,
                Problem::Setting(format!("peer {peer} is listed twice")),
            );
            ok = false;
        } else if Some(peer) == listen {
            err(
                &path,
                Problem::Setting(format!(
                    "peer {peer} is this appliance's own listen address"
                )),
            );
            ok = false;
        } else if listen.is_some_and(|l| l.is_ipv4() != peer.is_ipv4() && !l.ip().is_unspecified())
        {
            err(
                &path,
                Problem::Setting(format!(
                    "peer {peer} is of another address family than listen = {:?}",
                    s.listen
                )),
            );
            ok = false;
        }
        peers.push(peer);
    }
    if let Some(key) = &s.key {
        if key.len() < 16 {
            err(
                "sync.key",
                Problem::Setting(format!(
                    "key has {} characters; at least 16 are needed",
                    key.len()
                )),
            );
            ok = false;
        }
    }
    if !(100..=60_000).contains(&s.refresh_interval_ms) {
        err(
            "sync.refresh_interval_ms",
            Problem::Setting(format!(
                "refresh_interval_ms {} is outside 100-60000",
                s.refresh_interval_ms
            )),
        );
        ok = false;
    }
    if !(1..=1 << 22).contains(&s.max_exceptions) {
        err(
            "sync.max_exceptions",
            Problem::Setting(format!(
                "max_exceptions {} is outside 1-4194304",
                s.max_exceptions
            )),
        );
        ok = false;
    }
    if !(16..=1 << 20).contains(&s.worker_queue) {
        err(
            "sync.worker_queue",
            Problem::Setting(format!(
                "worker_queue {} is outside 16-1048576",
                s.worker_queue
            )),
        );
        ok = false;
    }
    if !ok {
        return None;
    }
    Some(ExceptionSync {
        listen: listen?,
        peers,
        key: s.key.as_ref().map(|k| k.as_bytes().to_vec()),
        refresh_interval: Duration::from_millis(s.refresh_interval_ms),
        max_exceptions: s.max_exceptions as usize,
        worker_queue: (s.worker_queue as usize).next_power_of_two(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(listen: &str, peers: &[&str]) -> SyncSection {
        SyncSection {
            listen: listen.into(),
            peers: peers.iter().map(|p| p.to_string()).collect(),
            key: None,
            refresh_interval_ms: default_refresh_ms(),
            max_exceptions: default_max_exceptions(),
            worker_queue: default_queue(),
        }
    }

    fn problems(s: &SyncSection) -> Vec<String> {
        let mut out = Vec::new();
        validate_sync(s, &mut |p, e| out.push(format!("{p}: {e}")));
        out
    }

    #[test]
    fn a_valid_section_is_read() {
        let mut s = section("10.0.0.1:4790", &["10.0.0.2:4790"]);
        s.key = Some("0123456789abcdef".into());
        s.worker_queue = 1000;
        let v = validate_sync(&s, &mut |p, e| panic!("{p}: {e}")).unwrap();
        assert_eq!(v.peers, vec!["10.0.0.2:4790".parse().unwrap()]);
        assert_eq!(v.worker_queue, 1024);
        assert_eq!(v.key.as_deref(), Some(&b"0123456789abcdef"[..]));
    }

    #[test]
    fn every_bad_value_is_named() {
        let mut s = section(
            "10.0.0.1",
            &[
                "10.0.0.1:4790",
                "x",
                "[::1]:4790",
                "10.0.0.3:4790",
                "10.0.0.3:4790",
            ],
        );
        s.key = Some("short".into());
        s.refresh_interval_ms = 5;
        s.max_exceptions = 0;
        s.worker_queue = 1;
        let p = problems(&s);
        assert!(p.iter().any(|m| m.starts_with("sync.listen: ")), "{p:?}");
        assert!(p.iter().any(|m| m.starts_with("sync.peers[1]: ")), "{p:?}");
        assert!(
            p.iter()
                .any(|m| m.starts_with("sync.peers[4]: ") && m.contains("twice")),
            "{p:?}"
        );
        assert!(p.iter().any(|m| m.starts_with("sync.key: ")), "{p:?}");
        assert!(
            p.iter()
                .any(|m| m.starts_with("sync.refresh_interval_ms: ")),
            "{p:?}"
        );
        assert!(
            p.iter().any(|m| m.starts_with("sync.max_exceptions: ")),
            "{p:?}"
        );
        assert!(
            p.iter().any(|m| m.starts_with("sync.worker_queue: ")),
            "{p:?}"
        );
        let own = problems(&section("10.0.0.1:4790", &["10.0.0.1:4790"]));
        assert!(own[0].contains("own listen address"), "{own:?}");
        let family = problems(&section("10.0.0.1:4790", &["[2001:db8::1]:4790"]));
        assert!(family[0].contains("address family"), "{family:?}");
        assert!(problems(&section("10.0.0.1:4790", &[]))[0].starts_with("sync.peers: "));
    }
}
