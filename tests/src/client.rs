//! Real clients in a namespace of the network: curl, the UDP client of
//! `topo.sh`, ping. Every call has a deadline.

use crate::topo::{Node, TopologyInfo};
use crate::Error;
use std::time::Duration;

/// An HTTP URL for `addr` (IPv6 in brackets), `port` and `path`.
pub fn url(addr: &str, port: u16, path: &str) -> String {
    if addr.contains(':') {
        format!("http://[{addr}]:{port}{path}")
    } else {
        format!("http://{addr}:{port}{path}")
    }
}

/// One HTTP transfer as curl reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    /// The HTTP status; 0 when the transfer failed (no connection, timeout).
    pub code: u16,
    /// The client's TCP source port.
    pub local_port: u16,
    /// New connections this transfer opened (0: it reused one).
    pub connects: u32,
    /// Body bytes received.
    pub bytes: u64,
    /// The `X-Backend` header: which backend answered ("" if none).
    pub backend: String,
}

impl Transfer {
    /// Whether it got a 200 answer from a backend.
    pub fn ok(&self) -> bool {
        self.code == 200 && !self.backend.is_empty()
    }
}

const WRITE_OUT: &str =
    "%{http_code} %{local_port} %{num_connects} %{size_download} %header{x-backend}\\n";

/// GETs every URL in `urls` with one curl process in the client namespace,
/// one after the other, each limited to `timeout`. `fresh`: every request
/// on a new connection (`Connection: close`); otherwise curl keeps one
/// connection alive across them. Failed transfers are reported (code 0),
/// not errors.
pub fn http_many(
    topo: &TopologyInfo,
    urls: &[String],
    fresh: bool,
    timeout: Duration,
) -> Result<Vec<Transfer>, Error> {
    let max = format!("{:.1}", timeout.as_secs_f64());
    let mut args: Vec<&str> = vec!["-sS", "-g", "--max-time", &max, "-w", WRITE_OUT];
    if fresh {
        args.extend(["-H", "Connection: close"]);
    }
    for u in urls {
        args.extend([u.as_str(), "-o", "/dev/null"]);
    }
    let deadline = timeout * (urls.len() as u32) + Duration::from_secs(10);
    let out = topo.exec(Node::Client, "curl", &args, deadline)?;
    let transfers = out
        .stdout
        .lines()
        .map(|l| parse_transfer(l).ok_or_else(|| l.to_string()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|line| Error::Parse {
            what: "curl -w".into(),
            detail: format!("line {line:?} in\n{}\nstderr: {}", out.stdout, out.stderr),
        })?;
    if transfers.len() != urls.len() {
        return Err(Error::Parse {
            what: "curl -w".into(),
            detail: format!(
                "{} lines for {} URLs:\n{}\nstderr: {}",
                transfers.len(),
                urls.len(),
                out.stdout,
                out.stderr
            ),
        });
    }
    Ok(transfers)
}

fn parse_transfer(line: &str) -> Option<Transfer> {
    let mut f = line.splitn(5, ' ');
    Some(Transfer {
        code: f.next()?.parse().ok()?,
        local_port: f.next()?.parse().ok()?,
        connects: f.next()?.parse().ok()?,
        bytes: f.next()?.parse().ok()?,
        backend: f.next().unwrap_or("").trim().to_string(),
    })
}

/// One GET of `url` on a new connection.
pub fn http_get(topo: &TopologyInfo, url: &str, timeout: Duration) -> Result<Transfer, Error> {
    let mut t = http_many(topo, &[url.to_string()], true, timeout)?;
    Ok(t.remove(0))
}

/// Sends `count` UDP datagrams carrying `payload` to `addr`:`port` from the
/// client, each from a new source port (a new flow), and returns each
/// answer (`None`: nothing within `timeout`). Backends answer
/// "beN PAYLOAD".
pub fn udp(
    topo: &TopologyInfo,
    addr: &str,
    port: u16,
    payload: &str,
    timeout: Duration,
    count: u32,
) -> Result<Vec<Option<String>>, Error> {
    let t = format!("{:.1}", timeout.as_secs_f64());
    let port = port.to_string();
    let n = count.to_string();
    let out = topo.script("udp", &[addr, &port, payload, &t, &n])?;
    let answers: Vec<Option<String>> = out
        .stdout
        .lines()
        .map(|l| (l != "-").then(|| l.to_string()))
        .collect();
    if answers.len() != count as usize {
        return Err(Error::Parse {
            what: "topo.sh udp".into(),
            detail: format!(
                "{} lines for {count} datagrams:\n{}\nstderr: {}",
                answers.len(),
                out.stdout,
                out.stderr
            ),
        });
    }
    Ok(answers)
}

/// The backend named by a UDP answer ("be2 PAYLOAD" -> "be2").
pub fn udp_backend(answer: &str) -> &str {
    answer.split(' ').next().unwrap_or("")
}

/// Pings `addr` from `node` `count` times (0.2 s apart, 1 s per answer) and
/// returns how many answers came back.
pub fn ping(topo: &TopologyInfo, node: Node, addr: &str, count: u32) -> Result<u32, Error> {
    let c = count.to_string();
    let deadline = (count + 2).to_string();
    let out = topo.exec(
        node,
        "ping",
        &[
            "-n", "-c", &c, "-i", "0.2", "-W", "1", "-w", &deadline, addr,
        ],
        Duration::from_secs(u64::from(count) + 10),
    )?;
    // "3 packets transmitted, 0 received, 100% packet loss, time 410ms"
    out.stdout
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .and_then(|l| {
            l.split(", ")
                .find(|f| f.ends_with(" received"))
                .and_then(|f| f.trim_end_matches(" received").parse().ok())
        })
        .ok_or_else(|| Error::Parse {
            what: format!("ping {addr} from {node}"),
            detail: format!("{}{}", out.stdout, out.stderr),
        })
}

/// Which of `be1`..`be3` answered, counted.
pub fn tally<'a>(
    backends: impl IntoIterator<Item = &'a str>,
) -> std::collections::BTreeMap<String, u32> {
    let mut m = std::collections::BTreeMap::new();
    for b in backends {
        *m.entry(b.to_string()).or_insert(0) += 1;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_curl_write_out() {
        assert_eq!(
            parse_transfer("200 41234 1 4 be2"),
            Some(Transfer {
                code: 200,
                local_port: 41234,
                connects: 1,
                bytes: 4,
                backend: "be2".into()
            })
        );
        let failed = parse_transfer("000 0 0 0 ").expect("a failed transfer parses");
        assert!(!failed.ok());
        assert_eq!(parse_transfer("garbage"), None);
    }

    #[test]
    fn formats_urls() {
        assert_eq!(url("203.0.113.10", 80, "/"), "http://203.0.113.10:80/");
        assert_eq!(
            url("2001:db8:100::10", 80, "/big?bytes=1"),
            "http://[2001:db8:100::10]:80/big?bytes=1"
        );
    }
}
