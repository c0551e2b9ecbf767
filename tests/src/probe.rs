//! Long-lived connections through lbfwd while its routing changes:
//! `tests/support/flowprobe.py` in the client namespace, driven over its
//! stdin/stdout. Either every connection asks on its own every 100 ms
//! ([`FlowProbe::start`], summed up by [`FlowProbe::finish`]), or all ask
//! together when told ([`FlowProbe::start_on_demand`], [`FlowProbe::ask`]).

use crate::topo::{Node, TopologyInfo};
use crate::{cmd, python, workspace_root, Error};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

/// A connection of the probe, as it stood once opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeConn {
    /// Index in the probe.
    pub id: u64,
    /// The VIP it talks to.
    pub addr: String,
    /// The backend that answered its first request (`None`: it failed).
    pub backend: Option<String>,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

impl ProbeConn {
    /// What its first request got, as [`FlowProbe::ask`] reports answers:
    /// the backend, or "!" and why it failed.
    pub fn answer(&self) -> String {
        match (&self.backend, &self.error) {
            (Some(b), _) if !b.is_empty() => b.clone(),
            (Some(_), _) => "!no X-Backend header".to_string(),
            (None, Some(e)) => format!("!{e}"),
            (None, None) => "!no answer".to_string(),
        }
    }
}

/// A connection of the probe at the end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeSummary {
    /// Index in the probe.
    pub id: u64,
    /// The VIP it talks to.
    pub addr: String,
    /// The backend that answered first.
    pub backend: Option<String>,
    /// Every backend that answered, in order of first appearance.
    pub seen: Vec<String>,
    /// Answers to requests started before the mark.
    pub ok_before: u64,
    /// Answers to requests started after the mark.
    pub ok_after: u64,
    /// The error that ended the connection, if one did.
    pub error: Option<String>,
}

/// The running probe. Dropping it kills it.
#[derive(Debug)]
pub struct FlowProbe {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// How many connections it opened.
    conns: usize,
    /// The limit of one request.
    timeout: Duration,
}

impl FlowProbe {
    /// Opens `conns` keep-alive HTTP connections to each of `addrs` (port
    /// 80) from the client, each asking every 100 ms, and waits until every
    /// one has asked once. `timeout`: the limit of one request.
    pub fn start(
        topo: &TopologyInfo,
        addrs: &[&str],
        conns: u32,
        timeout: Duration,
    ) -> Result<(Self, Vec<ProbeConn>), Error> {
        Self::start_covering(topo, addrs, conns, &[], conns, timeout)
    }

    /// [`FlowProbe::start`], then more connections (one to each of `addrs`
    /// in turn, `max_conns` per address at most) until each backend named
    /// in `cover` answered at least one: a handful of connections may all
    /// hash to a subset of the backends (24 miss one of three in about 2
    /// of 10,000 runs), and a test that needs one on each asks for it.
    pub fn start_covering(
        topo: &TopologyInfo,
        addrs: &[&str],
        conns: u32,
        cover: &[&str],
        max_conns: u32,
        timeout: Duration,
    ) -> Result<(Self, Vec<ProbeConn>), Error> {
        Self::spawn(topo, addrs, conns, cover, max_conns, "0.1", timeout)
    }

    /// Opens `conns` keep-alive HTTP connections to `addr` (port 80) from
    /// the client, one after the other, each asking once; from then on they
    /// ask only when [`ask`](Self::ask) tells them to. `timeout`: the limit
    /// of one request.
    pub fn start_on_demand(
        topo: &TopologyInfo,
        addr: &str,
        conns: u32,
        timeout: Duration,
    ) -> Result<(Self, Vec<ProbeConn>), Error> {
        Self::spawn(topo, &[addr], conns, &[], conns, "0", timeout)
    }

    fn spawn(
        topo: &TopologyInfo,
        addrs: &[&str],
        conns: u32,
        cover: &[&str],
        max_conns: u32,
        interval: &str,
        timeout: Duration,
    ) -> Result<(Self, Vec<ProbeConn>), Error> {
        let script = workspace_root().join("tests/support/flowprobe.py");
        let mut c = topo.command(Node::Client, python());
        c.arg(&script);
        for a in addrs {
            c.args(["--addr", a]);
        }
        for b in cover {
            c.args(["--cover", b]);
        }
        c.args(["--conns", &conns.to_string()])
            .args(["--max-conns", &max_conns.to_string()])
            .args(["--interval", interval])
            .args(["--timeout", &format!("{:.1}", timeout.as_secs_f64())])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let line = cmd::describe(&c);
        let mut child = c.spawn().map_err(|source| Error::Spawn {
            command: line,
            source,
        })?;
        let stdin = child.stdin.take();
        let (tx, lines) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            std::thread::spawn(move || {
                for l in BufReader::new(out).lines().map_while(Result::ok) {
                    if tx.send(l).is_err() {
                        break;
                    }
                }
            });
        }
        let mut probe = FlowProbe {
            child,
            stdin,
            lines,
            conns: 0,
            timeout,
        };
        let deadline =
            timeout * (conns.max(max_conns) * addrs.len() as u32) + Duration::from_secs(10);
        let ready = probe.event("ready", deadline)?;
        let conns: Vec<ProbeConn> = array(&ready, "conns")?
            .iter()
            .map(|c| ProbeConn {
                id: c["id"].as_u64().unwrap_or(u64::MAX),
                addr: c["addr"].as_str().unwrap_or_default().to_string(),
                backend: c["backend"].as_str().map(str::to_string),
                error: c["error"].as_str().map(str::to_string),
            })
            .collect();
        probe.conns = conns.len();
        Ok((probe, conns))
    }

    /// One more request on every connection of a probe started with
    /// [`start_on_demand`](Self::start_on_demand), one after the other;
    /// returns each answer in the order of the connections: the backend, or
    /// "!" and why it failed ("!closed earlier: ..." for a connection that
    /// failed before).
    pub fn ask(&mut self) -> Result<Vec<String>, Error> {
        self.send("ask\n")?;
        let limit = self.timeout * self.conns as u32 + Duration::from_secs(10);
        let v = self.event("answers", limit)?;
        let answers: Vec<String> = array(&v, "answers")?
            .iter()
            .map(|a| a.as_str().unwrap_or("!not a string").to_string())
            .collect();
        if answers.len() != self.conns {
            return Err(Error::Parse {
                what: "the flow probe".into(),
                detail: format!(
                    "{} answers for {} connections: {v}",
                    answers.len(),
                    self.conns
                ),
            });
        }
        Ok(answers)
    }

    /// Marks this moment: requests started from now on count as "after".
    pub fn mark(&mut self) -> Result<(), Error> {
        self.send("mark\n")?;
        self.event("marked", Duration::from_secs(5)).map(drop)
    }

    /// Stops every connection and returns the summary.
    pub fn finish(mut self, timeout: Duration) -> Result<Vec<ProbeSummary>, Error> {
        drop(self.stdin.take());
        let summary = self.event("summary", timeout)?;
        array(&summary, "conns")?
            .iter()
            .map(|c| {
                Ok(ProbeSummary {
                    id: c["id"].as_u64().unwrap_or(u64::MAX),
                    addr: c["addr"].as_str().unwrap_or_default().to_string(),
                    backend: c["backend"].as_str().map(str::to_string),
                    seen: c["seen"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|b| b.as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default(),
                    ok_before: c["ok_before"].as_u64().unwrap_or(0),
                    ok_after: c["ok_after"].as_u64().unwrap_or(0),
                    error: c["error"].as_str().map(str::to_string),
                })
            })
            .collect()
    }

    fn send(&mut self, text: &str) -> Result<(), Error> {
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(Error::Probe("the flow probe's stdin is closed".into()));
        };
        stdin
            .write_all(text.as_bytes())
            .and_then(|_| stdin.flush())
            .map_err(|e| Error::Probe(format!("writing to the flow probe: {e}")))
    }

    /// Waits for the JSON line whose "event" is `name`.
    fn event(&mut self, name: &str, timeout: Duration) -> Result<Value, Error> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = self.lines.recv_timeout(left).map_err(|e| {
                Error::Probe(format!(
                    "the flow probe sent no {name:?} event within {timeout:?} ({e})"
                ))
            })?;
            let v: Value = serde_json::from_str(&line).map_err(|e| Error::Parse {
                what: "the flow probe".into(),
                detail: format!("{e}: {line}"),
            })?;
            if v["event"] == name {
                return Ok(v);
            }
        }
    }
}

fn array<'a>(v: &'a Value, key: &str) -> Result<&'a Vec<Value>, Error> {
    v[key].as_array().ok_or_else(|| Error::Parse {
        what: "the flow probe".into(),
        detail: format!("no array {key:?} in {v}"),
    })
}

impl Drop for FlowProbe {
    fn drop(&mut self) {
        drop(self.stdin.take());
        if cmd::wait_deadline(&mut self.child, Duration::from_secs(10)).is_none() {
            eprintln!("the flow probe did not end; killed");
        }
    }
}
