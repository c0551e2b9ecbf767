//! The control protocol: one JSON request per line, one JSON response per line.
//!
//! Both the daemon and `lbctl` use these types; nothing else defines the wire
//! format.
//!
//! # Wire format
//!
//! A request is one line of JSON (UTF-8, ending in `\n`):
//!
//! ```json
//! {"version":1,"op":"get","body":{"kind":"load_balancer","name":"web"}}
//! ```
//!
//! - `version`: [`PROTOCOL_VERSION`]; a different version is answered with
//!   [`ErrorCode::UnsupportedVersion`].
//! - `op`: the operation, one of [`Request::OPERATIONS`]; anything else is
//!   answered with [`ErrorCode::UnknownOperation`].
//! - `body`: the operation's typed body; absent for operations without one
//!   (`status`, `stats`, `export`, `reload`).
//!
//! A response is one line of JSON, either a result or an error:
//!
//! ```json
//! {"version":1,"ok":{"object":{"kind":"load_balancer","name":"web","spec":{}}}}
//! {"version":1,"error":{"code":"not_found","message":"no load balancer `web`","details":[]}}
//! ```
//!
//! Error codes ([`ErrorCode`]) are stable snake_case strings that scripts may
//! match on; messages are for people and may change.
//!
//! # Model objects
//!
//! Desired-state objects (load balancers, network interfaces, networks,
//! pools, routings) travel as JSON objects with the same field names as the
//! TOML file (`[[load_balancer]]`, `[[network_interface]]`, ...), so the
//! `config` crate's serde types read and write them. What lbfwd derived from
//! them (addresses, destinations) travels in the typed [`ObjectStatus`].

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use lbfwd_config::model::{
    AssignedIp, Destination, IcmpEcho, LoadBalancerType, MacAddr, PortRange, Protocol, Resolved,
    ResolvedLoadBalancer,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The protocol version this build speaks. A request with another version is
/// refused with [`ErrorCode::UnsupportedVersion`]; bump it on any change that
/// an older peer would misread.
pub const PROTOCOL_VERSION: u32 = 1;

/// The default limit on one request line (1 MiB), enforced by the server.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 1 << 20;

/// The kinds of desired-state objects. The wire names are the TOML array
/// names (`load_balancer`, `network_interface`, `network`, `pool`,
/// `load_balancer_routing`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// `[[load_balancer]]`, Ironcore `LoadBalancer`.
    LoadBalancer,
    /// `[[network_interface]]`, Ironcore `NetworkInterface`.
    NetworkInterface,
    /// `[[network]]`, Ironcore `Network`.
    Network,
    /// `[[pool]]`, an address pool (lbfwd's own; Ironcore has none).
    Pool,
    /// `[[load_balancer_routing]]`, Ironcore `LoadBalancerRouting`.
    LoadBalancerRouting,
}

impl Kind {
    /// Every kind, in the order `lbctl export` writes them.
    pub const ALL: [Kind; 5] = [
        Kind::Pool,
        Kind::Network,
        Kind::NetworkInterface,
        Kind::LoadBalancer,
        Kind::LoadBalancerRouting,
    ];

    /// The wire name, which is also the TOML array name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::LoadBalancer => "load_balancer",
            Kind::NetworkInterface => "network_interface",
            Kind::Network => "network",
            Kind::Pool => "pool",
            Kind::LoadBalancerRouting => "load_balancer_routing",
        }
    }

    /// A name for people, e.g. in "no load balancer `web`".
    pub const fn human(self) -> &'static str {
        match self {
            Kind::LoadBalancer => "load balancer",
            Kind::NetworkInterface => "network interface",
            Kind::Network => "network",
            Kind::Pool => "pool",
            Kind::LoadBalancerRouting => "load balancer routing",
        }
    }

    /// The Ironcore kind (`LoadBalancer`, ...); `None` for pools.
    pub const fn ironcore_kind(self) -> Option<&'static str> {
        match self {
            Kind::LoadBalancer => Some("LoadBalancer"),
            Kind::NetworkInterface => Some("NetworkInterface"),
            Kind::Network => Some("Network"),
            Kind::Pool => None,
            Kind::LoadBalancerRouting => Some("LoadBalancerRouting"),
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Names one object: its kind and its name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectRef {
    /// The object's kind.
    pub kind: Kind,
    /// The object's name (unique within its kind).
    pub name: String,
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} `{}`", self.kind.human(), self.name)
    }
}

/// Body of [`Request::List`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListRequest {
    /// Which kind of object to list.
    pub kind: Kind,
}

/// Body of [`Request::Apply`]: create or replace objects of one kind, given
/// as JSON objects with the TOML field names. All of them are applied
/// together, all or nothing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyObjects {
    /// The kind of every object in `objects`.
    pub kind: Kind,
    /// The objects, each with at least a `name`.
    pub objects: Vec<Value>,
}

/// The text format of an [`ApplyDocument`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentFormat {
    /// A TOML fragment with the model's arrays (`[[load_balancer]]`, ...).
    Toml,
    /// Ironcore YAML manifests (multi-document, `apiVersion:
    /// networking.ironcore.dev/v1alpha1`).
    Yaml,
}

impl fmt::Display for DocumentFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DocumentFormat::Toml => "TOML",
            DocumentFormat::Yaml => "YAML",
        })
    }
}

/// One text document of an [`ApplyDocuments`] request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyDocument {
    /// How `text` is written.
    pub format: DocumentFormat,
    /// Where the text came from (a file name), used in error locations
    /// (`FILE:LINE:COLUMN`); `None` for text without a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The document itself.
    pub text: String,
}

/// Body of [`Request::ApplyDocuments`]: TOML fragments and/or Ironcore YAML
/// manifests, applied together, all or nothing. Objects are created or
/// replaced by name; nothing absent from the documents is deleted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyDocuments {
    /// The documents, in order.
    pub documents: Vec<ApplyDocument>,
    /// When set, the documents may only contain objects of this kind (used by
    /// `lbctl lb apply -f`); an object of another kind fails validation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only_kind: Option<Kind>,
}

/// Body of [`Request::LabelSet`]: set (add or overwrite) labels on a network
/// interface. Load balancer selection follows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelSet {
    /// The network interface's name.
    pub interface: String,
    /// Labels to set, key to value.
    pub labels: BTreeMap<String, String>,
}

/// Body of [`Request::LabelRemove`]: remove labels from a network interface.
/// Removing a key that is not set is not an error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelRemove {
    /// The network interface's name.
    pub interface: String,
    /// Label keys to remove.
    pub keys: Vec<String>,
}

/// Body of [`Request::Weight`]: set a destination's Maglev weight.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetWeight {
    /// The load balancer's name.
    pub load_balancer: String,
    /// The destination's name (the network interface's name).
    pub destination: String,
    /// The new weight; 0 drains (no new flows, existing flows stay).
    pub weight: u32,
}

/// Body of [`Request::Drain`]: stop sending new flows to a destination while
/// its existing flows stay (weight 0).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Drain {
    /// The load balancer's name.
    pub load_balancer: String,
    /// The destination's name (the network interface's name).
    pub destination: String,
}

/// One operation on the control socket.
///
/// On the wire the variant is the `op` field (snake_case) and its body the
/// `body` field; see the [module docs](self).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", content = "body", rename_all = "snake_case")]
pub enum Request {
    /// Daemon status: version, uptime, backend, workers, interfaces, paths,
    /// table version. Answered with [`Payload::Status`].
    Status,
    /// Traffic counters with rates. Answered with [`Payload::Stats`].
    Stats,
    /// Every object of one kind. Answered with [`Payload::Objects`].
    List(ListRequest),
    /// One object. Answered with [`Payload::Object`] or `not_found`.
    Get(ObjectRef),
    /// Create or replace objects of one kind. Answered with
    /// [`Payload::Changed`] or `validation_failed`.
    Apply(ApplyObjects),
    /// Delete one object. Answered with [`Payload::Changed`], `not_found`, or
    /// `validation_failed` (e.g. a network still in use).
    Delete(ObjectRef),
    /// Apply TOML fragments or Ironcore YAML manifests. Answered with
    /// [`Payload::Changed`] or `validation_failed`.
    ApplyDocuments(ApplyDocuments),
    /// Set labels on a network interface. Answered with [`Payload::Changed`].
    LabelSet(LabelSet),
    /// Remove labels from a network interface. Answered with
    /// [`Payload::Changed`].
    LabelRemove(LabelRemove),
    /// Set a destination's weight. Answered with [`Payload::Changed`].
    Weight(SetWeight),
    /// Drain a destination (weight 0). Answered with [`Payload::Changed`].
    Drain(Drain),
    /// The whole desired state as a TOML file that `lbfwd run --config`
    /// accepts. Answered with [`Payload::Exported`].
    Export,
    /// Re-read the config file. Answered with [`Payload::Changed`] or
    /// `validation_failed` (the running state is kept).
    Reload,
    /// The health of every destination with a health check. Answered with
    /// [`Payload::Health`].
    Health,
    /// Announcement state: per VIP and per BGP peer. Answered with
    /// [`Payload::Announce`].
    Announce,
    /// Turn announcing on or off (the dataplane keeps forwarding). Answered
    /// with [`Payload::Announce`].
    AnnounceSet(crate::announce::AnnounceSet),
}

impl Request {
    /// Every operation name (`op`) this version understands.
    pub const OPERATIONS: &'static [&'static str] = &[
        "status",
        "stats",
        "list",
        "get",
        "apply",
        "delete",
        "apply_documents",
        "label_set",
        "label_remove",
        "weight",
        "drain",
        "export",
        "reload",
        "health",
        "announce",
        "announce_set",
    ];

    /// This request's operation name, as sent in `op`.
    pub const fn operation(&self) -> &'static str {
        match self {
            Request::Status => "status",
            Request::Stats => "stats",
            Request::List(_) => "list",
            Request::Get(_) => "get",
            Request::Apply(_) => "apply",
            Request::Delete(_) => "delete",
            Request::ApplyDocuments(_) => "apply_documents",
            Request::LabelSet(_) => "label_set",
            Request::LabelRemove(_) => "label_remove",
            Request::Weight(_) => "weight",
            Request::Drain(_) => "drain",
            Request::Export => "export",
            Request::Reload => "reload",
            Request::Health => "health",
            Request::Announce => "announce",
            Request::AnnounceSet(_) => "announce_set",
        }
    }

    /// Whether this request changes the desired state (and so must be
    /// validated, published and persisted by the handler).
    pub const fn is_change(&self) -> bool {
        !matches!(
            self,
            Request::Status
                | Request::Stats
                | Request::List(_)
                | Request::Get(_)
                | Request::Export
                | Request::Health
                | Request::Announce
                | Request::AnnounceSet(_)
        )
    }

    /// Encodes this request as one line (without the trailing newline).
    pub fn to_line(&self) -> String {
        /// The envelope: `version` first, then `op` and `body`.
        #[derive(Serialize)]
        struct Wire<'a> {
            version: u32,
            #[serde(flatten)]
            request: &'a Request,
        }
        let wire = Wire {
            version: PROTOCOL_VERSION,
            request: self,
        };
        // The types here have string keys and infallible Serialize impls;
        // an error is impossible, but never panic on it.
        serde_json::to_string(&wire).unwrap_or_default()
    }

    /// Decodes one request line (with or without the trailing newline).
    ///
    /// Errors: malformed JSON or a bad body -> `bad_request` (with the
    /// position for malformed JSON); another version ->
    /// `unsupported_version`; an operation this version does not know ->
    /// `unknown_operation`.
    pub fn from_line(line: &str) -> Result<Request, ApiError> {
        let value: Value = serde_json::from_str(line).map_err(|e| {
            ApiError::new(
                ErrorCode::BadRequest,
                format!("malformed JSON request: {e}"),
            )
        })?;
        let Value::Object(mut map) = value else {
            return Err(ApiError::new(
                ErrorCode::BadRequest,
                "a request must be a JSON object with `version`, `op` and (for most operations) `body`",
            ));
        };
        match map.remove("version") {
            None => {
                return Err(ApiError::new(
                    ErrorCode::BadRequest,
                    format!("request has no `version` field (this lbfwd speaks protocol {PROTOCOL_VERSION})"),
                ))
            }
            Some(v) => match v.as_u64() {
                Some(n) if n == u64::from(PROTOCOL_VERSION) => {}
                Some(n) => {
                    return Err(ApiError::new(
                        ErrorCode::UnsupportedVersion,
                        format!(
                            "request speaks protocol version {n}, this lbfwd speaks {PROTOCOL_VERSION}; use an lbctl of the same release as the daemon"
                        ),
                    ))
                }
                None => {
                    return Err(ApiError::new(
                        ErrorCode::BadRequest,
                        format!("`version` must be a non-negative integer, got {v}"),
                    ))
                }
            },
        }
        let op = match map.get("op") {
            None => {
                return Err(ApiError::new(
                    ErrorCode::BadRequest,
                    "request has no `op` field",
                ))
            }
            Some(Value::String(op)) => op.clone(),
            Some(other) => {
                return Err(ApiError::new(
                    ErrorCode::BadRequest,
                    format!("`op` must be a string, got {other}"),
                ))
            }
        };
        if !Request::OPERATIONS.contains(&op.as_str()) {
            return Err(ApiError::new(
                ErrorCode::UnknownOperation,
                format!(
                    "unknown operation `{}`; this lbfwd knows: {}",
                    truncate_for_message(&op, 64),
                    Request::OPERATIONS.join(", ")
                ),
            ));
        }
        if let Some(extra) = map.keys().find(|k| *k != "op" && *k != "body") {
            return Err(ApiError::new(
                ErrorCode::BadRequest,
                format!(
                    "unknown field `{}` in request; expected `version`, `op`, `body`",
                    truncate_for_message(extra, 64)
                ),
            ));
        }
        // A unit operation sent with `"body": null` is accepted as if the body
        // were absent.
        if map.get("body").is_some_and(Value::is_null) {
            map.remove("body");
        }
        serde_json::from_value(Value::Object(map)).map_err(|e| {
            ApiError::new(
                ErrorCode::BadRequest,
                format!("invalid body for `{op}`: {e}"),
            )
        })
    }
}

/// Shortens attacker-controlled text before it goes into an error message.
fn truncate_for_message(s: &str, max_chars: usize) -> String {
    if s.chars().count() <= max_chars {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(max_chars).collect();
        out.push('…');
        out
    }
}

/// A stable error code. The wire form is the snake_case string of
/// [`ErrorCode::as_str`]; scripts may rely on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request is not valid JSON, or its body does not fit the operation.
    BadRequest,
    /// The operation name is not one this daemon knows.
    UnknownOperation,
    /// The named object (or destination) does not exist.
    NotFound,
    /// The change would produce an invalid model; `details` lists every
    /// error with its field path. Nothing was changed.
    ValidationFailed,
    /// The request line is longer than the server's limit; the connection is
    /// closed.
    TooLarge,
    /// The client sent no complete request in time; the connection is closed.
    Timeout,
    /// The request speaks another protocol version.
    UnsupportedVersion,
    /// Something failed inside the daemon (e.g. persisting the state); the
    /// message says what.
    Internal,
    /// The daemon serves its maximum number of clients; try again.
    Busy,
}

impl ErrorCode {
    /// Every code, for documentation and tests.
    pub const ALL: [ErrorCode; 9] = [
        ErrorCode::BadRequest,
        ErrorCode::UnknownOperation,
        ErrorCode::NotFound,
        ErrorCode::ValidationFailed,
        ErrorCode::TooLarge,
        ErrorCode::Timeout,
        ErrorCode::UnsupportedVersion,
        ErrorCode::Internal,
        ErrorCode::Busy,
    ];

    /// The wire string.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UnknownOperation => "unknown_operation",
            ErrorCode::NotFound => "not_found",
            ErrorCode::ValidationFailed => "validation_failed",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::Timeout => "timeout",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::Internal => "internal",
            ErrorCode::Busy => "busy",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error answer: a stable code, a message a person can act on, and
/// details (for `validation_failed`: every error, each with its field path,
/// e.g. `load_balancer[web].ports[1].end_port: must be >= port (80)`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiError {
    /// The stable code.
    pub code: ErrorCode,
    /// One line for people.
    pub message: String,
    /// Further lines, e.g. one per validation error.
    #[serde(default)]
    pub details: Vec<String>,
}

impl ApiError {
    /// An error without details.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            details: Vec::new(),
        }
    }

    /// An error with details.
    pub fn with_details(
        code: ErrorCode,
        message: impl Into<String>,
        details: Vec<String>,
    ) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            details,
        }
    }

    /// `not_found` for an object, with the usual message.
    pub fn not_found(object: &ObjectRef) -> ApiError {
        ApiError::new(ErrorCode::NotFound, format!("no {object}"))
    }

    /// `validation_failed` with every error (each with its field path).
    pub fn validation(errors: Vec<String>) -> ApiError {
        let message = match errors.len() {
            1 => "the change is invalid (1 error); nothing was changed".to_owned(),
            n => format!("the change is invalid ({n} errors); nothing was changed"),
        };
        ApiError::with_details(ErrorCode::ValidationFailed, message, errors)
    }

    /// `internal` with a message.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::Internal, message)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)?;
        for d in &self.details {
            write!(f, "\n  {d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

/// A successful answer; which variant depends on the request (see
/// [`Request`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Payload {
    /// Answer to [`Request::Status`].
    Status(StatusInfo),
    /// Answer to [`Request::Stats`].
    Stats(StatsSnapshot),
    /// Answer to [`Request::List`], sorted by name.
    Objects(Vec<Object>),
    /// Answer to [`Request::Get`].
    Object(Object),
    /// Answer to every change.
    Changed(ChangeSummary),
    /// Answer to [`Request::Export`].
    Exported(Export),
    /// Answer to [`Request::Health`], sorted by load balancer and
    /// destination.
    Health(Vec<crate::health::TargetHealth>),
    /// Answer to [`Request::Announce`] and [`Request::AnnounceSet`].
    Announce(crate::announce::AnnounceStatus),
}

/// One response line: the result of one request.
#[derive(Clone, Debug, PartialEq)]
pub struct Response(pub Result<Payload, ApiError>);

/// The wire form of a [`Response`].
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResponseWire {
    version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ok: Option<Payload>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<ApiError>,
}

impl Response {
    /// Encodes this response as one line (without the trailing newline).
    pub fn to_line(&self) -> String {
        let wire = match &self.0 {
            Ok(p) => ResponseWire {
                version: PROTOCOL_VERSION,
                ok: Some(p.clone()),
                error: None,
            },
            Err(e) => ResponseWire {
                version: PROTOCOL_VERSION,
                ok: None,
                error: Some(e.clone()),
            },
        };
        match serde_json::to_string(&wire) {
            Ok(s) => s,
            // Only a non-string map key or a failing Serialize impl can fail;
            // none exist in these types, but never send a broken line.
            Err(e) => format!(
                r#"{{"version":{PROTOCOL_VERSION},"error":{{"code":"internal","message":{},"details":[]}}}}"#,
                Value::String(format!("cannot encode the response: {e}"))
            ),
        }
    }

    /// Decodes one response line; the error is a description for people.
    pub fn from_line(line: &str) -> Result<Response, String> {
        let wire: ResponseWire = serde_json::from_str(line)
            .map_err(|e| format!("malformed response from lbfwd: {e}"))?;
        if wire.version != PROTOCOL_VERSION {
            return Err(format!(
                "lbfwd answered in protocol version {}, this lbctl speaks {PROTOCOL_VERSION}",
                wire.version
            ));
        }
        match (wire.ok, wire.error) {
            (Some(p), None) => Ok(Response(Ok(p))),
            (None, Some(e)) => Ok(Response(Err(e))),
            _ => Err(
                "malformed response from lbfwd: exactly one of `ok` and `error` must be present"
                    .into(),
            ),
        }
    }
}

impl From<Result<Payload, ApiError>> for Response {
    fn from(r: Result<Payload, ApiError>) -> Response {
        Response(r)
    }
}

// ---------------------------------------------------------------------------
// Status

/// Answer to [`Request::Status`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusInfo {
    /// lbfwd's version (the crate version).
    pub version: String,
    /// The control protocol version ([`PROTOCOL_VERSION`]).
    pub protocol: u32,
    /// The daemon's process id.
    pub pid: u32,
    /// Seconds since the daemon started.
    pub uptime_secs: u64,
    /// The packet I/O backend (`af_packet`, `af_xdp`, `dpdk`, `pcap`, `memory`).
    pub backend: String,
    /// The worker threads.
    pub workers: Vec<WorkerInfo>,
    /// The dataplane interfaces.
    pub interfaces: Vec<String>,
    /// The config file (`None` when started without one).
    pub config_path: Option<PathBuf>,
    /// The saved desired state file.
    pub state_path: Option<PathBuf>,
    /// The version of the tables the workers use; it grows by one on every
    /// publish.
    pub table_version: u64,
    /// How many load balancers are configured.
    pub load_balancers: usize,
    /// Health check totals.
    #[serde(default)]
    pub health: crate::health::HealthSummary,
}

/// One worker thread in [`StatusInfo`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// The worker's index.
    pub id: usize,
    /// The core it is pinned to.
    pub core: Option<usize>,
    /// The table version this worker last picked up.
    pub table_version: u64,
}

// ---------------------------------------------------------------------------
// Stats

/// A packet and byte counter with its rates over [`StatsSnapshot::interval_secs`].
#[derive(Clone, Copy, Debug, PartialEq, Default, Serialize, Deserialize)]
pub struct Counter {
    /// Packets since start.
    pub packets: u64,
    /// Bytes since start.
    pub bytes: u64,
    /// Packets per second over the interval (always finite).
    pub pps: f64,
    /// Bits per second over the interval (always finite).
    pub bps: f64,
}

impl Counter {
    /// A counter whose rates are computed from an earlier sample `prev`
    /// taken `secs` seconds before. A counter that went backwards (a reset)
    /// or a zero interval gives rate 0.
    pub fn with_rates(packets: u64, bytes: u64, prev: (u64, u64), secs: f64) -> Counter {
        let rate = |now: u64, before: u64, scale: f64| {
            if secs > 0.0 && secs.is_finite() && now >= before {
                (now - before) as f64 * scale / secs
            } else {
                0.0
            }
        };
        Counter {
            packets,
            bytes,
            pps: rate(packets, prev.0, 1.0),
            bps: rate(bytes, prev.1, 8.0),
        }
    }
}

/// Traffic through one scope (the whole daemon or one worker).
#[derive(Clone, Copy, Debug, PartialEq, Default, Serialize, Deserialize)]
pub struct Traffic {
    /// Received from the NIC.
    pub rx: Counter,
    /// Transmitted (encapsulated toward a target).
    pub tx: Counter,
    /// Passed to the host stack (not for a VIP).
    pub host: Counter,
    /// Dropped, for any reason (see [`StatsSnapshot::drops`]).
    pub dropped: Counter,
}

/// One worker in [`StatsSnapshot`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkerStats {
    /// The worker's index.
    pub id: usize,
    /// The core it is pinned to.
    pub core: Option<usize>,
    /// Its traffic.
    pub traffic: Traffic,
    /// Entries in its flow table.
    pub flows: u64,
}

/// One target of a load balancer in [`StatsSnapshot`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetStats {
    /// The destination's name.
    pub name: String,
    /// Where its traffic is sent.
    pub underlay: Option<IpAddr>,
    /// Its current weight (0: draining).
    pub weight: u32,
    /// Packets sent to it.
    pub sent: Counter,
}

/// One load balancer in [`StatsSnapshot`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoadBalancerStats {
    /// Its name.
    pub name: String,
    /// Packets accepted for its VIPs and sent to a target.
    pub forwarded: Counter,
    /// Packets for its VIPs that were dropped (e.g. port not allowed).
    pub dropped: Counter,
    /// Flows tracked for it over all workers, as each worker's last sweep
    /// pass over its flow table counted them (under a second old with the
    /// default table; flows of targets no longer in the routing are not
    /// counted).
    pub flows: u64,
    /// Per target.
    pub targets: Vec<TargetStats>,
}

/// Drops of one reason in [`StatsSnapshot`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DropStats {
    /// The reason (the dataplane's `DropReason` name, snake_case).
    pub reason: String,
    /// Packets dropped for it since start.
    pub packets: u64,
    /// Packets per second over the interval.
    pub pps: f64,
}

/// Answer to [`Request::Stats`]. The daemon computes the rates from its
/// previous sample.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
pub struct StatsSnapshot {
    /// Seconds since the daemon started.
    pub uptime_secs: u64,
    /// The interval the rates are computed over, in seconds.
    pub interval_secs: f64,
    /// Over all workers.
    pub totals: Traffic,
    /// Per worker.
    pub workers: Vec<WorkerStats>,
    /// Per load balancer, with per-target counters.
    pub load_balancers: Vec<LoadBalancerStats>,
    /// Per drop reason (every reason, also those at 0).
    pub drops: Vec<DropStats>,
    /// Health of every destination with a health check (also those out of
    /// the tables, which have no traffic counters above).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub health: Vec<crate::health::TargetHealth>,
    /// Layer-2 announcement counters, when `[l2]` is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub l2: Option<crate::announce::L2Status>,
    /// The new-flow flood guard (`[flow] new_flow_rate`), from a daemon
    /// that has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_guard: Option<FlowGuardStats>,
    /// Exception sync counters, when `[sync]` is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<Box<SyncStats>>,
}

/// The new-flow flood guard in [`StatsSnapshot`]: above `rate` new flows
/// per second per worker, new flows are not remembered in the flow table
/// (or dropped), so that established flows are not evicted.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FlowGuardStats {
    /// New flows per second per worker remembered at most (0: the guard is
    /// off).
    pub rate: u32,
    /// Token-bucket depth (new flows remembered at once after a quiet time).
    pub burst: u32,
    /// What happens above the rate: `forward` (without an entry) or `drop`.
    pub excess: String,
    /// Workers on which the guard refused a new flow within the last
    /// second (empty: not engaged).
    pub engaged_workers: Vec<usize>,
    /// New flows forwarded without an entry since start, over all workers.
    pub not_remembered: u64,
    /// New flows dropped since start (drop reason `new_flow_limit`).
    pub dropped: u64,
}

/// Exception sync between appliances (`[sync]`): what this appliance shares
/// and what its peers told it.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SyncStats {
    /// Where the peers' datagrams are received.
    pub listen: String,
    /// The peers.
    pub peers: Vec<String>,
    /// This appliance's live exceptions (flows kept off their Maglev pick).
    pub own_exceptions: u64,
    /// The peers' exceptions known.
    pub peer_exceptions: u64,
    /// Exceptions the workers queued for the sync thread.
    pub reported: u64,
    /// Exceptions dropped because a worker's queue was full.
    pub queue_dropped: u64,
    /// New flows sent to the target a peer's exception named.
    pub adopted: u64,
    /// Datagrams sent.
    pub datagrams_sent: u64,
    /// Records sent (over every peer).
    pub records_sent: u64,
    /// Datagrams the socket refused.
    pub send_errors: u64,
    /// Valid datagrams received.
    pub datagrams_received: u64,
    /// Records received.
    pub records_received: u64,
    /// Datagrams refused (not from a peer, malformed, wrong or missing tag).
    pub datagrams_rejected: u64,
    /// Exceptions not kept: a set was full (`max_exceptions`).
    pub over_capacity: u64,
}

// ---------------------------------------------------------------------------
// Objects

/// One desired-state object with what lbfwd derived from it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Object {
    /// Its kind.
    pub kind: Kind,
    /// Its name.
    pub name: String,
    /// The desired object with the TOML field names, as `lbctl export` would
    /// write it; `null` for an object lbfwd derived itself (the routing of a
    /// load balancer with a selector).
    #[serde(default)]
    pub spec: Value,
    /// What lbfwd derived, where there is something to say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ObjectStatus>,
}

/// What lbfwd derived for one object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectStatus {
    /// For a load balancer.
    LoadBalancer(LoadBalancerStatus),
    /// For a load balancer routing.
    Routing(RoutingStatus),
    /// For a network interface.
    NetworkInterface(InterfaceStatus),
    /// For a network.
    Network(NetworkStatus),
    /// For a pool.
    Pool(PoolStatus),
}

/// Public or Internal, as on the wire (`"Public"`, `"Internal"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LbType {
    /// Addresses from pools.
    Public,
    /// Network-internal addresses.
    Internal,
}

impl From<LoadBalancerType> for LbType {
    fn from(t: LoadBalancerType) -> LbType {
        match t {
            LoadBalancerType::Public => LbType::Public,
            LoadBalancerType::Internal => LbType::Internal,
        }
    }
}

/// A transport protocol on the wire (`"TCP"`, `"UDP"`, `"SCTP"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ProtocolName {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl From<Protocol> for ProtocolName {
    fn from(p: Protocol) -> ProtocolName {
        match p {
            Protocol::Tcp => ProtocolName::Tcp,
            Protocol::Udp => ProtocolName::Udp,
            Protocol::Sctp => ProtocolName::Sctp,
        }
    }
}

impl fmt::Display for ProtocolName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProtocolName::Tcp => "TCP",
            ProtocolName::Udp => "UDP",
            ProtocolName::Sctp => "SCTP",
        })
    }
}

/// An allowed port range, with the TOML field names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortRangeView {
    /// The protocol.
    pub protocol: ProtocolName,
    /// First port.
    pub port: u16,
    /// Last port (equal to `port` for a single port).
    pub end_port: u16,
}

impl From<&PortRange> for PortRangeView {
    fn from(p: &PortRange) -> PortRangeView {
        PortRangeView {
            protocol: p.protocol.into(),
            port: p.first,
            end_port: p.last,
        }
    }
}

impl fmt::Display for PortRangeView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.port == self.end_port {
            write!(f, "{}/{}", self.protocol, self.port)
        } else {
            write!(f, "{}/{}-{}", self.protocol, self.port, self.end_port)
        }
    }
}

/// A load balancer address and the pool it came from.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AssignedIpView {
    /// The VIP.
    pub addr: IpAddr,
    /// The pool; `None` for an explicit Internal address outside every pool.
    pub pool: Option<String>,
}

impl From<&AssignedIp> for AssignedIpView {
    fn from(a: &AssignedIp) -> AssignedIpView {
        AssignedIpView {
            addr: a.addr,
            pool: a.pool.clone(),
        }
    }
}

/// Formats a MAC address as `02:00:00:00:03:11`.
pub fn format_mac(mac: &MacAddr) -> String {
    let b = mac.0;
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        b[0], b[1], b[2], b[3], b[4], b[5]
    )
}

/// One routing destination.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DestinationView {
    /// The network interface's name.
    pub name: String,
    /// Its uid (may be empty).
    pub uid: String,
    /// Where encapsulated traffic for it is sent.
    pub underlay: IpAddr,
    /// Inner destination MAC (`02:00:00:00:03:11`), for VXLAN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Maglev weight; 0 means draining.
    pub weight: u32,
    /// Its health, when the load balancer has a health check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<crate::health::DestinationHealth>,
}

impl From<&Destination> for DestinationView {
    fn from(d: &Destination) -> DestinationView {
        DestinationView {
            name: d.name.clone(),
            uid: d.uid.clone(),
            underlay: d.underlay,
            mac: d.mac.as_ref().map(format_mac),
            weight: d.weight,
            health: None,
        }
    }
}

/// What lbfwd derived for a load balancer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadBalancerStatus {
    /// Public or Internal.
    #[serde(rename = "type")]
    pub lb_type: LbType,
    /// The network of its destinations.
    pub network: String,
    /// That network's VNI.
    pub vni: u32,
    /// Its addresses, with the pool of each.
    pub ips: Vec<AssignedIpView>,
    /// The allow list (never empty: no ports means all of TCP, UDP, SCTP).
    pub ports: Vec<PortRangeView>,
    /// Whether lbfwd answers ICMP echo requests to the VIPs.
    pub icmp_echo_reply: bool,
    /// Its destinations, in the deterministic order.
    pub destinations: Vec<DestinationView>,
}

impl From<&ResolvedLoadBalancer> for LoadBalancerStatus {
    fn from(lb: &ResolvedLoadBalancer) -> LoadBalancerStatus {
        LoadBalancerStatus {
            lb_type: lb.lb_type.into(),
            network: lb.network.clone(),
            vni: lb.vni,
            ips: lb.ips.iter().map(Into::into).collect(),
            ports: lb.ports.iter().map(Into::into).collect(),
            icmp_echo_reply: lb.icmp_echo == IcmpEcho::Reply,
            destinations: lb.destinations.iter().map(Into::into).collect(),
        }
    }
}

/// Where a routing's destinations come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoutingSource {
    /// Derived from the load balancer's selector.
    Selector,
    /// Given as a `load_balancer_routing` object.
    External,
}

/// What lbfwd derived for a routing (for a load balancer with a selector the
/// routing is entirely derived).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingStatus {
    /// The load balancer it routes for (same name).
    pub load_balancer: String,
    /// Where the destinations come from.
    pub source: RoutingSource,
    /// The network.
    pub network: String,
    /// The complete destinations (underlay and MAC filled in from the
    /// interfaces), in the deterministic order.
    pub destinations: Vec<DestinationView>,
}

/// What lbfwd derived for a network interface.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceStatus {
    /// Load balancers whose routing contains this interface.
    pub selected_by: Vec<String>,
}

/// What lbfwd derived for a network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkStatus {
    /// Network interfaces in it.
    pub interfaces: Vec<String>,
    /// Load balancers in it.
    pub load_balancers: Vec<String>,
}

/// One address allocated from a pool.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Allocation {
    /// The address.
    pub addr: IpAddr,
    /// The load balancer holding it.
    pub load_balancer: String,
}

/// What lbfwd derived for a pool.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolStatus {
    /// How many addresses the pool holds in all (saturating).
    pub capacity: u64,
    /// The addresses handed out, sorted.
    pub allocated: Vec<Allocation>,
}

// ---------------------------------------------------------------------------
// Changes

/// An address allocated to or released from a load balancer.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AddressChange {
    /// The load balancer.
    pub load_balancer: String,
    /// The address.
    pub addr: IpAddr,
    /// The pool it belongs to, if any.
    pub pool: Option<String>,
}

/// How one load balancer's destinations changed.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RoutingChange {
    /// The load balancer.
    pub load_balancer: String,
    /// Destinations that joined.
    pub added: Vec<String>,
    /// Destinations that left.
    pub removed: Vec<String>,
    /// Destinations whose weight, underlay or MAC changed.
    pub changed: Vec<String>,
}

/// What a successful change did. Empty lists mean nothing of that sort
/// happened; all lists empty means the change was a no-op (the tables were
/// not republished).
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ChangeSummary {
    /// The table version now published (unchanged for a no-op).
    pub table_version: u64,
    /// Objects that did not exist before.
    #[serde(default)]
    pub created: Vec<ObjectRef>,
    /// Objects whose desired state changed.
    #[serde(default)]
    pub updated: Vec<ObjectRef>,
    /// Objects that were removed.
    #[serde(default)]
    pub deleted: Vec<ObjectRef>,
    /// Load balancers whose destinations changed.
    #[serde(default)]
    pub rerouted: Vec<RoutingChange>,
    /// Addresses newly assigned.
    #[serde(default)]
    pub allocated: Vec<AddressChange>,
    /// Addresses given back.
    #[serde(default)]
    pub released: Vec<AddressChange>,
    /// Things worth telling the operator about the new state that are not
    /// errors (e.g. a load balancer without destinations), one per line.
    #[serde(default)]
    pub warnings: Vec<String>,
}

impl ChangeSummary {
    /// Whether nothing changed (warnings are not changes).
    pub fn is_empty(&self) -> bool {
        self.created.is_empty()
            && self.updated.is_empty()
            && self.deleted.is_empty()
            && self.rerouted.is_empty()
            && self.allocated.is_empty()
            && self.released.is_empty()
    }

    /// Fills `rerouted`, `allocated` and `released` by comparing two resolved
    /// states (before and after a change). `created`/`updated`/`deleted` are
    /// the handler's to fill (they concern the desired objects, which the
    /// resolved state does not carry), and so is `table_version`.
    pub fn derived_between(old: &Resolved, new: &Resolved) -> ChangeSummary {
        let by_name = |r: &Resolved| -> BTreeMap<String, ResolvedLoadBalancer> {
            r.load_balancers
                .iter()
                .map(|lb| (lb.name.clone(), lb.clone()))
                .collect()
        };
        let old = by_name(old);
        let new = by_name(new);
        let mut summary = ChangeSummary::default();
        let empty = ResolvedLoadBalancerParts::default();
        let names: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
        for name in names {
            let before = old.get(name).map(ResolvedLoadBalancerParts::of);
            let after = new.get(name).map(ResolvedLoadBalancerParts::of);
            let before = before.as_ref().unwrap_or(&empty);
            let after = after.as_ref().unwrap_or(&empty);
            for (addr, pool) in &after.ips {
                if !before.ips.contains_key(addr) {
                    summary.allocated.push(AddressChange {
                        load_balancer: name.clone(),
                        addr: *addr,
                        pool: pool.clone(),
                    });
                }
            }
            for (addr, pool) in &before.ips {
                if !after.ips.contains_key(addr) {
                    summary.released.push(AddressChange {
                        load_balancer: name.clone(),
                        addr: *addr,
                        pool: pool.clone(),
                    });
                }
            }
            let mut change = RoutingChange {
                load_balancer: name.clone(),
                ..RoutingChange::default()
            };
            for (dest, d) in &after.destinations {
                match before.destinations.get(dest) {
                    None => change.added.push(dest.clone()),
                    Some(b) if b != d => change.changed.push(dest.clone()),
                    Some(_) => {}
                }
            }
            for dest in before.destinations.keys() {
                if !after.destinations.contains_key(dest) {
                    change.removed.push(dest.clone());
                }
            }
            if !(change.added.is_empty() && change.removed.is_empty() && change.changed.is_empty())
            {
                summary.rerouted.push(change);
            }
        }
        summary
    }
}

/// The parts of a resolved load balancer a [`ChangeSummary`] compares.
#[derive(Default)]
struct ResolvedLoadBalancerParts {
    ips: BTreeMap<IpAddr, Option<String>>,
    /// Destination key (name, with the uid when there is one) -> destination.
    destinations: BTreeMap<String, Destination>,
}

impl ResolvedLoadBalancerParts {
    fn of(lb: &ResolvedLoadBalancer) -> ResolvedLoadBalancerParts {
        ResolvedLoadBalancerParts {
            ips: lb.ips.iter().map(|a| (a.addr, a.pool.clone())).collect(),
            destinations: lb
                .destinations
                .iter()
                .map(|d| (d.name.clone(), d.clone()))
                .collect(),
        }
    }
}

/// Answer to [`Request::Export`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Export {
    /// A complete TOML config file (appliance settings and the current
    /// desired state, with address allocations pinned) that `lbfwd run
    /// --config` accepts.
    pub toml: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn samples() -> Vec<Request> {
        let obj = ObjectRef {
            kind: Kind::LoadBalancer,
            name: "web".into(),
        };
        vec![
            Request::Status,
            Request::Stats,
            Request::List(ListRequest {
                kind: Kind::NetworkInterface,
            }),
            Request::Get(obj.clone()),
            Request::Apply(ApplyObjects {
                kind: Kind::Network,
                objects: vec![serde_json::json!({"name": "n", "vni": 100})],
            }),
            Request::Delete(obj),
            Request::ApplyDocuments(ApplyDocuments {
                documents: vec![ApplyDocument {
                    format: DocumentFormat::Yaml,
                    source: Some("lb.yaml".into()),
                    text: "kind: LoadBalancer\n".into(),
                }],
                only_kind: Some(Kind::LoadBalancer),
            }),
            Request::LabelSet(LabelSet {
                interface: "nic".into(),
                labels: [("app".to_owned(), "web".to_owned())].into(),
            }),
            Request::LabelRemove(LabelRemove {
                interface: "nic".into(),
                keys: vec!["app".into()],
            }),
            Request::Weight(SetWeight {
                load_balancer: "web".into(),
                destination: "nic".into(),
                weight: 3,
            }),
            Request::Drain(Drain {
                load_balancer: "web".into(),
                destination: "nic".into(),
            }),
            Request::Export,
            Request::Reload,
            Request::Health,
            Request::Announce,
            Request::AnnounceSet(crate::announce::AnnounceSet { on: false }),
        ]
    }

    #[test]
    fn every_request_round_trips_and_names_its_operation() {
        let samples = samples();
        assert_eq!(samples.len(), Request::OPERATIONS.len());
        for req in samples {
            let line = req.to_line();
            assert!(!line.contains('\n'), "{line}");
            let v: Value = serde_json::from_str(&line).unwrap();
            assert_eq!(v["version"], PROTOCOL_VERSION);
            assert_eq!(v["op"], req.operation(), "{line}");
            assert!(Request::OPERATIONS.contains(&req.operation()));
            assert_eq!(Request::from_line(&line).unwrap(), req, "{line}");
        }
    }

    #[test]
    fn wire_form_is_as_documented() {
        let req = Request::Get(ObjectRef {
            kind: Kind::LoadBalancer,
            name: "web".into(),
        });
        assert_eq!(
            req.to_line(),
            r#"{"version":1,"op":"get","body":{"kind":"load_balancer","name":"web"}}"#
        );
        assert_eq!(Request::Status.to_line(), r#"{"version":1,"op":"status"}"#);
        assert_eq!(
            Request::from_line(r#"{"version":1,"op":"status","body":null}"#).unwrap(),
            Request::Status
        );
    }

    #[test]
    fn bad_requests_get_the_right_code() {
        let cases: &[(&str, ErrorCode, &str)] = &[
            ("{\"version\":1,", ErrorCode::BadRequest, "line 1 column 13"),
            ("not json", ErrorCode::BadRequest, "line 1 column 2"),
            ("[1,2]", ErrorCode::BadRequest, "JSON object"),
            (r#"{"op":"status"}"#, ErrorCode::BadRequest, "no `version`"),
            (
                r#"{"version":"1","op":"status"}"#,
                ErrorCode::BadRequest,
                "non-negative integer",
            ),
            (
                r#"{"version":2,"op":"status"}"#,
                ErrorCode::UnsupportedVersion,
                "version 2",
            ),
            (
                r#"{"version":2,"op":"frobnicate"}"#,
                ErrorCode::UnsupportedVersion,
                "speaks 1",
            ),
            (r#"{"version":1}"#, ErrorCode::BadRequest, "no `op`"),
            (
                r#"{"version":1,"op":7}"#,
                ErrorCode::BadRequest,
                "must be a string",
            ),
            (
                r#"{"version":1,"op":"frobnicate"}"#,
                ErrorCode::UnknownOperation,
                "`frobnicate`",
            ),
            (
                r#"{"version":1,"op":"status","extra":1}"#,
                ErrorCode::BadRequest,
                "`extra`",
            ),
            (
                r#"{"version":1,"op":"get"}"#,
                ErrorCode::BadRequest,
                "invalid body for `get`",
            ),
            (
                r#"{"version":1,"op":"get","body":{"kind":"load_balancer"}}"#,
                ErrorCode::BadRequest,
                "missing field `name`",
            ),
            (
                r#"{"version":1,"op":"get","body":{"kind":"lb","name":"x"}}"#,
                ErrorCode::BadRequest,
                "unknown variant `lb`",
            ),
            (
                r#"{"version":1,"op":"weight","body":{"load_balancer":"a","destination":"b","weight":-1}}"#,
                ErrorCode::BadRequest,
                "invalid body for `weight`",
            ),
            (
                r#"{"version":1,"op":"drain","body":{"load_balancer":"a","destination":"b","x":1}}"#,
                ErrorCode::BadRequest,
                "unknown field `x`",
            ),
        ];
        for (line, code, needle) in cases {
            let err = Request::from_line(line).unwrap_err();
            assert_eq!(err.code, *code, "{line}: {err}");
            assert!(err.message.contains(needle), "{line}: {}", err.message);
        }
    }

    #[test]
    fn responses_round_trip() {
        let ok = Response(Ok(Payload::Changed(ChangeSummary {
            table_version: 4,
            created: vec![ObjectRef {
                kind: Kind::LoadBalancer,
                name: "web".into(),
            }],
            ..ChangeSummary::default()
        })));
        let err = Response(Err(ApiError::validation(vec![
            "load_balancer[web].ports[0].port: must be 1..=65535".into(),
        ])));
        for r in [ok, err] {
            let line = r.to_line();
            assert_eq!(Response::from_line(&line).unwrap(), r, "{line}");
        }
        let err = Response::from_line(
            r#"{"version":1,"error":{"code":"busy","message":"m","details":[]}}"#,
        )
        .unwrap();
        assert_eq!(err.0.unwrap_err().code, ErrorCode::Busy);
        assert!(Response::from_line(r#"{"version":1}"#).is_err());
        assert!(
            Response::from_line(r#"{"version":9,"ok":{"exported":{"toml":""}}}"#)
                .unwrap_err()
                .contains("version 9")
        );
    }

    #[test]
    fn error_codes_are_stable_strings() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }

    #[test]
    fn change_summary_between_resolved_states() {
        let dest = |name: &str, weight: u32| Destination {
            name: name.into(),
            uid: String::new(),
            underlay: IpAddr::V4(Ipv4Addr::new(10, 0, 3, 1)),
            mac: None,
            weight,
        };
        let lb = |name: &str, ip: [u8; 4], dests: Vec<Destination>| ResolvedLoadBalancer {
            name: name.into(),
            lb_type: LoadBalancerType::Public,
            network: "n".into(),
            vni: 1,
            ips: vec![AssignedIp {
                addr: IpAddr::V4(Ipv4Addr::from(ip)),
                pool: Some("public".into()),
            }],
            ports: vec![],
            icmp_echo: IcmpEcho::Drop,
            maglev_table_size: 65537,
            destinations: dests,
        };
        let old = Resolved {
            load_balancers: vec![
                lb("a", [1, 1, 1, 1], vec![dest("x", 1), dest("y", 1)]),
                lb("gone", [1, 1, 1, 2], vec![dest("x", 1)]),
                lb("same", [1, 1, 1, 4], vec![dest("x", 1)]),
            ],
        };
        let new = Resolved {
            load_balancers: vec![
                lb("a", [1, 1, 1, 1], vec![dest("x", 0), dest("z", 1)]),
                lb("new", [1, 1, 1, 3], vec![]),
                lb("same", [1, 1, 1, 4], vec![dest("x", 1)]),
            ],
        };
        let s = ChangeSummary::derived_between(&old, &new);
        assert_eq!(
            s.rerouted,
            vec![
                RoutingChange {
                    load_balancer: "a".into(),
                    added: vec!["z".into()],
                    removed: vec!["y".into()],
                    changed: vec!["x".into()],
                },
                RoutingChange {
                    load_balancer: "gone".into(),
                    removed: vec!["x".into()],
                    ..RoutingChange::default()
                },
            ]
        );
        let addrs = |v: &[AddressChange]| -> Vec<String> {
            v.iter()
                .map(|a| format!("{}={}", a.load_balancer, a.addr))
                .collect()
        };
        assert_eq!(addrs(&s.allocated), ["new=1.1.1.3"]);
        assert_eq!(addrs(&s.released), ["gone=1.1.1.2"]);
        assert!(ChangeSummary::derived_between(&new, &new).is_empty());
    }

    #[test]
    fn counter_rates() {
        let c = Counter::with_rates(1_100, 100_000, (100, 50_000), 2.0);
        assert_eq!(c.pps, 500.0);
        assert_eq!(c.bps, 200_000.0);
        let reset = Counter::with_rates(5, 5, (100, 100), 2.0);
        assert_eq!((reset.pps, reset.bps), (0.0, 0.0));
        assert_eq!(Counter::with_rates(5, 5, (0, 0), 0.0).pps, 0.0);
    }
}
