//! Active health checks of a load balancer's destinations
//! (`health_check = { kind = "tcp", port = 80, ... }` on a `[[load_balancer]]`,
//! annotation `lbfwd.ironcore.dev/health-check` on an Ironcore manifest).
//!
//! [`HealthCheckSpec`] is the input as written (numbers kept wide so that
//! every out-of-range value is reported with its location);
//! [`HealthCheckSpec::problems`] lists what is wrong, relative to the
//! `health_check` table; [`HealthCheckSpec::resolve`] gives the validated
//! [`HealthCheck`] the checker runs.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Default probe interval (GLB's glb-healthcheck, keepalived's delay_loop).
pub const DEFAULT_INTERVAL_MS: u64 = 2000;
/// Default probe timeout.
pub const DEFAULT_TIMEOUT_MS: u64 = 1000;
/// Default number of passed probes in a row that make a target healthy.
pub const DEFAULT_RISE: u32 = 2;
/// Default number of failed probes in a row that make a target unhealthy.
pub const DEFAULT_FALL: u32 = 3;
/// Shortest interval accepted (ms).
pub const MIN_INTERVAL_MS: u64 = 50;
/// Longest interval accepted (ms): one hour.
pub const MAX_INTERVAL_MS: u64 = 3_600_000;
/// Largest rise or fall accepted.
pub const MAX_RISE_FALL: u32 = 100;
/// Default accepted HTTP status range (inclusive).
pub const DEFAULT_EXPECT_STATUS: (u16, u16) = (200, 399);

/// How a destination is probed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthCheckKind {
    /// A TCP connect to the target's underlay address and `port`.
    Tcp,
    /// `GET path` on the target's underlay address and `port`.
    Http,
    /// A probe through lbfwd's own encapsulation to the VIP (TCP SYN to
    /// `port`, or an ICMP echo without `port`), answered by the target
    /// directly.
    Encap,
}

impl HealthCheckKind {
    /// The name as written in the configuration.
    pub const fn as_str(self) -> &'static str {
        match self {
            HealthCheckKind::Tcp => "tcp",
            HealthCheckKind::Http => "http",
            HealthCheckKind::Encap => "encap",
        }
    }
}

/// What the dataplane does when every destination that could take new
/// flows (weight > 0) is unhealthy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AllUnhealthy {
    /// Forward to every destination as if there were no health check (as
    /// GLB does): a check that is wrong everywhere (a wrong port, a
    /// firewall) must not take the service down. The default.
    #[default]
    FailOpen,
    /// Drop new packets for the VIP (counted as `no_target` drops of the
    /// load balancer).
    Drop,
}

impl AllUnhealthy {
    /// The name as written in the configuration.
    pub const fn as_str(self) -> &'static str {
        match self {
            AllUnhealthy::FailOpen => "fail_open",
            AllUnhealthy::Drop => "drop",
        }
    }
}

/// `health_check` of a load balancer, as written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckSpec {
    /// `tcp`, `http` or `encap`.
    pub kind: HealthCheckKind,
    /// Port probed (1-65535); required for `tcp` and `http`; for `encap`
    /// a TCP SYN goes to this port of the VIP, without it an ICMP echo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    /// Time between two probes of one target (ms), default 2000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_ms: Option<i64>,
    /// How long a probe may take (ms), below `interval_ms`; default 1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<i64>,
    /// Passed probes in a row that make a target healthy (>= 1), default 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rise: Option<i64>,
    /// Failed probes in a row that make a target unhealthy (>= 1), default 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fall: Option<i64>,
    /// `http`: the path requested, default `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `http`: accepted status, `N` or `N-M`, default `200-399`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_status: Option<String>,
    /// `http`: the Host header; default the target's underlay address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// `fail_open` (default) or `drop`: what happens when every
    /// destination is unhealthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all_unhealthy: Option<AllUnhealthy>,
}

/// The probe of a validated health check.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Probe {
    /// TCP connect to the underlay address.
    Tcp {
        /// The port.
        port: u16,
    },
    /// HTTP GET on the underlay address.
    Http {
        /// The port.
        port: u16,
        /// The request path (starts with `/`).
        path: String,
        /// The Host header, when given.
        host: Option<String>,
        /// Accepted status codes, inclusive.
        expect_status: (u16, u16),
    },
    /// Through the tunnel to the VIP.
    Encap {
        /// TCP SYN to this port; `None`: ICMP echo.
        port: Option<u16>,
    },
}

impl Probe {
    /// The kind of this probe.
    pub fn kind(&self) -> HealthCheckKind {
        match self {
            Probe::Tcp { .. } => HealthCheckKind::Tcp,
            Probe::Http { .. } => HealthCheckKind::Http,
            Probe::Encap { .. } => HealthCheckKind::Encap,
        }
    }
}

/// A validated health check.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct HealthCheck {
    /// What is sent.
    pub probe: Probe,
    /// Time between two probes of one target.
    pub interval: Duration,
    /// How long one probe may take (< `interval`).
    pub timeout: Duration,
    /// Passed probes in a row to become healthy.
    pub rise: u32,
    /// Failed probes in a row to become unhealthy.
    pub fall: u32,
    /// What happens when every destination is unhealthy.
    pub all_unhealthy: AllUnhealthy,
}

/// What is wrong with a `health_check`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HealthCheckProblem {
    /// `tcp` or `http` without port.
    #[error("kind = \"{0}\" needs a port (1-65535)")]
    MissingPort(&'static str),
    /// A port outside 1-65535.
    #[error("{0} is not a port (1-65535)")]
    Port(i64),
    /// An interval out of range.
    #[error("interval_ms {0} is outside {MIN_INTERVAL_MS}-{MAX_INTERVAL_MS}")]
    Interval(i64),
    /// A timeout not below the interval.
    #[error("timeout_ms {timeout} must be at least 1 and below interval_ms {interval}")]
    Timeout {
        /// The timeout.
        timeout: i64,
        /// The interval (given or default).
        interval: i64,
    },
    /// Rise or fall out of range.
    #[error("{field} {value} is outside 1-{MAX_RISE_FALL}")]
    Count {
        /// `rise` or `fall`.
        field: &'static str,
        /// The value.
        value: i64,
    },
    /// An HTTP key on another kind.
    #[error("{field} is only for kind = \"http\" (this check is kind = \"{kind}\")")]
    OnlyHttp {
        /// The key.
        field: &'static str,
        /// The check's kind.
        kind: &'static str,
    },
    /// A path that cannot go on a request line.
    #[error("path {0:?} must start with / and hold no spaces or control characters")]
    Path(String),
    /// A Host header that cannot be sent.
    #[error("host {0:?} must be non-empty and hold no spaces or control characters")]
    Host(String),
    /// A status range that does not parse or lies outside 100-599.
    #[error("expect_status {0:?} is not a status N or range N-M within 100-599")]
    ExpectStatus(String),
}

fn request_safe(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic())
}

fn parse_status_range(s: &str) -> Option<(u16, u16)> {
    let (a, b) = match s.split_once('-') {
        Some((a, b)) => (a.trim(), b.trim()),
        None => (s.trim(), s.trim()),
    };
    let (a, b): (u16, u16) = (a.parse().ok()?, b.parse().ok()?);
    ((100..=599).contains(&a) && (100..=599).contains(&b) && a <= b).then_some((a, b))
}

impl HealthCheckSpec {
    /// A check of `kind` with every other key unset (the defaults).
    pub fn new(kind: HealthCheckKind) -> Self {
        HealthCheckSpec {
            kind,
            port: None,
            interval_ms: None,
            timeout_ms: None,
            rise: None,
            fall: None,
            path: None,
            expect_status: None,
            host: None,
            all_unhealthy: None,
        }
    }

    /// Every problem, each with the key it concerns (relative to the
    /// `health_check` table).
    pub fn problems(&self) -> Vec<(&'static str, HealthCheckProblem)> {
        let mut out = Vec::new();
        let kind = self.kind.as_str();
        match self.port {
            None if self.kind != HealthCheckKind::Encap => {
                out.push(("kind", HealthCheckProblem::MissingPort(kind)))
            }
            Some(p) if !(1..=65535).contains(&p) => out.push(("port", HealthCheckProblem::Port(p))),
            _ => {}
        }
        let interval = self.interval_ms.unwrap_or(DEFAULT_INTERVAL_MS as i64);
        let interval_ok = (MIN_INTERVAL_MS as i64..=MAX_INTERVAL_MS as i64).contains(&interval);
        if !interval_ok {
            out.push(("interval_ms", HealthCheckProblem::Interval(interval)));
        }
        let timeout = self.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS as i64);
        if timeout < 1 || (interval_ok && timeout >= interval) {
            // A default timeout that does not fit a short interval is the
            // interval's fault when the timeout was not written.
            let field = if self.timeout_ms.is_some() {
                "timeout_ms"
            } else {
                "interval_ms"
            };
            out.push((field, HealthCheckProblem::Timeout { timeout, interval }));
        }
        for (field, value) in [("rise", self.rise), ("fall", self.fall)] {
            if let Some(v) = value {
                if !(1..=MAX_RISE_FALL as i64).contains(&v) {
                    out.push((field, HealthCheckProblem::Count { field, value: v }));
                }
            }
        }
        if self.kind != HealthCheckKind::Http {
            for (field, set) in [
                ("path", self.path.is_some()),
                ("expect_status", self.expect_status.is_some()),
                ("host", self.host.is_some()),
            ] {
                if set {
                    out.push((field, HealthCheckProblem::OnlyHttp { field, kind }));
                }
            }
            return out;
        }
        if let Some(p) = &self.path {
            if !p.starts_with('/') || !request_safe(p) {
                out.push(("path", HealthCheckProblem::Path(p.clone())));
            }
        }
        if let Some(h) = &self.host {
            if !request_safe(h) {
                out.push(("host", HealthCheckProblem::Host(h.clone())));
            }
        }
        if let Some(s) = &self.expect_status {
            if parse_status_range(s).is_none() {
                out.push(("expect_status", HealthCheckProblem::ExpectStatus(s.clone())));
            }
        }
        out
    }

    /// The validated check; `Err` with every problem when
    /// [`HealthCheckSpec::problems`] finds any.
    pub fn resolve(&self) -> Result<HealthCheck, Vec<(&'static str, HealthCheckProblem)>> {
        let problems = self.problems();
        if !problems.is_empty() {
            return Err(problems);
        }
        // Every range was checked above.
        let port = self.port.map(|p| p as u16);
        let probe = match self.kind {
            HealthCheckKind::Tcp => Probe::Tcp {
                port: port.unwrap_or_default(),
            },
            HealthCheckKind::Http => Probe::Http {
                port: port.unwrap_or_default(),
                path: self.path.clone().unwrap_or_else(|| "/".to_string()),
                host: self.host.clone(),
                expect_status: self
                    .expect_status
                    .as_deref()
                    .and_then(parse_status_range)
                    .unwrap_or(DEFAULT_EXPECT_STATUS),
            },
            HealthCheckKind::Encap => Probe::Encap { port },
        };
        let ms = |v: Option<i64>, d: u64| Duration::from_millis(v.map_or(d, |v| v as u64));
        Ok(HealthCheck {
            probe,
            interval: ms(self.interval_ms, DEFAULT_INTERVAL_MS),
            timeout: ms(self.timeout_ms, DEFAULT_TIMEOUT_MS),
            rise: self.rise.map_or(DEFAULT_RISE, |v| v as u32),
            fall: self.fall.map_or(DEFAULT_FALL, |v| v as u32),
            all_unhealthy: self.all_unhealthy.unwrap_or_default(),
        })
    }

    /// Parses the manifest annotation's value: `KEY=VALUE` pairs separated
    /// by commas, with the TOML keys (`kind=http,port=8080,path=/healthz`).
    pub fn from_annotation(value: &str) -> Result<Self, String> {
        let mut kind = None;
        let mut spec = HealthCheckSpec::new(HealthCheckKind::Tcp);
        for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((key, v)) = part.split_once('=').map(|(k, v)| (k.trim(), v.trim())) else {
                return Err(format!("{part:?} is not KEY=VALUE"));
            };
            let number = || {
                v.parse::<i64>()
                    .map_err(|_| format!("{key}: {v:?} is not a number"))
            };
            match key {
                "kind" => {
                    kind = Some(match v {
                        "tcp" => HealthCheckKind::Tcp,
                        "http" => HealthCheckKind::Http,
                        "encap" => HealthCheckKind::Encap,
                        _ => return Err(format!("kind: {v:?} is not tcp, http or encap")),
                    })
                }
                "port" => spec.port = Some(number()?),
                "interval_ms" => spec.interval_ms = Some(number()?),
                "timeout_ms" => spec.timeout_ms = Some(number()?),
                "rise" => spec.rise = Some(number()?),
                "fall" => spec.fall = Some(number()?),
                "path" => spec.path = Some(v.to_string()),
                "expect_status" => spec.expect_status = Some(v.to_string()),
                "host" => spec.host = Some(v.to_string()),
                "all_unhealthy" => {
                    spec.all_unhealthy = Some(match v {
                        "fail_open" => AllUnhealthy::FailOpen,
                        "drop" => AllUnhealthy::Drop,
                        _ => return Err(format!("all_unhealthy: {v:?} is not fail_open or drop")),
                    })
                }
                _ => {
                    return Err(format!(
                        "unknown key {key:?} (expected kind, port, interval_ms, timeout_ms, rise, \
                         fall, path, expect_status, host, all_unhealthy)"
                    ))
                }
            }
        }
        spec.kind = kind.ok_or_else(|| "kind is missing (tcp, http or encap)".to_string())?;
        Ok(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_anchors() {
        let mut s = HealthCheckSpec::new(HealthCheckKind::Tcp);
        s.port = Some(80);
        let c = s.resolve().unwrap();
        assert_eq!(c.interval, Duration::from_secs(2));
        assert_eq!(c.timeout, Duration::from_secs(1));
        assert_eq!((c.rise, c.fall), (2, 3));
        assert_eq!(c.all_unhealthy, AllUnhealthy::FailOpen);
        assert_eq!(c.probe, Probe::Tcp { port: 80 });
    }

    #[test]
    fn timeout_must_be_below_interval() {
        let mut s = HealthCheckSpec::new(HealthCheckKind::Encap);
        s.interval_ms = Some(500);
        s.timeout_ms = Some(500);
        let p = s.problems();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].0, "timeout_ms");
        // The default timeout (1000) does not fit a 500 ms interval: the
        // interval is named.
        s.timeout_ms = None;
        assert_eq!(s.problems()[0].0, "interval_ms");
    }

    #[test]
    fn rise_fall_port_and_http_keys() {
        let mut s = HealthCheckSpec::new(HealthCheckKind::Tcp);
        s.rise = Some(0);
        s.fall = Some(101);
        s.path = Some("/x".into());
        let fields: Vec<_> = s.problems().into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, ["kind", "rise", "fall", "path"]);
        let mut h = HealthCheckSpec::new(HealthCheckKind::Http);
        h.port = Some(70000);
        h.path = Some("no-slash".into());
        h.expect_status = Some("299-200".into());
        h.host = Some("a b".into());
        let fields: Vec<_> = h.problems().into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, ["port", "path", "host", "expect_status"]);
        h.port = Some(8080);
        h.path = Some("/healthz".into());
        h.expect_status = Some("204".into());
        h.host = Some("svc.example".into());
        match h.resolve().unwrap().probe {
            Probe::Http {
                expect_status,
                path,
                ..
            } => {
                assert_eq!(expect_status, (204, 204));
                assert_eq!(path, "/healthz");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn annotation_parses_and_rejects() {
        let s = HealthCheckSpec::from_annotation(
            "kind=http, port=8080, path=/healthz, rise=1, all_unhealthy=drop",
        )
        .unwrap();
        assert_eq!(s.kind, HealthCheckKind::Http);
        assert_eq!(s.port, Some(8080));
        assert_eq!(s.rise, Some(1));
        assert_eq!(s.all_unhealthy, Some(AllUnhealthy::Drop));
        assert!(HealthCheckSpec::from_annotation("port=80")
            .unwrap_err()
            .contains("kind is missing"));
        assert!(HealthCheckSpec::from_annotation("kind=tcp,prot=80")
            .unwrap_err()
            .contains("unknown key \"prot\""));
        assert!(HealthCheckSpec::from_annotation("kind=tcp,port=eighty")
            .unwrap_err()
            .contains("not a number"));
    }
}
