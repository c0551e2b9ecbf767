//! `lbctl`: the command-line client of lbfwd's control socket.
//!
//! Nouns and verbs: `lbctl lb list`, `lbctl lb get NAME`, `lbctl lb apply -f
//! FILE`, `lbctl lb delete NAME`, the same for `nic`, `network`, `pool` and
//! `routing`, plus `lbctl nic label NAME key=value...`, `lbctl nic unlabel
//! NAME key...`, `lbctl weight LB DEST N`, `lbctl drain LB DEST`, `lbctl apply
//! -f FILE...`, `lbctl export`, `lbctl reload`, `lbctl status`, `lbctl
//! stats`, `lbctl health`, `lbctl announce [on|off]`, `lbctl completions SHELL`.
//!
//! Output: aligned tables for people (`-o table`, the default) or JSON for
//! scripts (`-o json`: the payload on stdout; an error as `{"error":{...}}`
//! on stdout too, with the exit code below).
//!
//! Exit codes:
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | success |
//! | 1 | any other error |
//! | 2 | usage error (bad arguments, unreadable or unrecognizable file) |
//! | 3 | lbfwd is not running (the socket path tried is printed) |
//! | 4 | permission denied on the socket |
//! | 5 | validation failed (every error is printed with its field path) |
//! | 6 | not found |
//! | 7 | lbfwd is busy or did not answer in time; try again |

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use lbfwd_control::announce::{AnnounceSet, AnnounceStatus};
use lbfwd_control::client::{Client, ClientError, DEFAULT_SOCKET, SOCKET_ENV};
use lbfwd_control::protocol::{
    ApiError, ApplyDocument, ApplyDocuments, ApplyObjects, ChangeSummary, Counter, DocumentFormat,
    Drain, ErrorCode, Kind, LabelRemove, LabelSet, ListRequest, Object, ObjectRef, ObjectStatus,
    Payload, Request, SetWeight, StatsSnapshot, StatusInfo, Traffic,
};
use serde_json::Value;

/// Exit code: success.
const EXIT_OK: u8 = 0;
/// Exit code: any other error.
const EXIT_ERROR: u8 = 1;
/// Exit code: usage error.
const EXIT_USAGE: u8 = 2;
/// Exit code: lbfwd is not running.
const EXIT_NOT_RUNNING: u8 = 3;
/// Exit code: permission denied on the socket.
const EXIT_PERMISSION: u8 = 4;
/// Exit code: validation failed.
const EXIT_VALIDATION: u8 = 5;
/// Exit code: not found.
const EXIT_NOT_FOUND: u8 = 6;
/// Exit code: busy or timed out.
const EXIT_RETRY: u8 = 7;

const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  any other error
  2  usage error (bad arguments, unreadable or unrecognizable file)
  3  lbfwd is not running (the socket path tried is printed)
  4  permission denied on the control socket
  5  validation failed (every error is printed with its field path)
  6  not found
  7  lbfwd is busy or did not answer in time; try again";

/// lbctl: inspect and change a running lbfwd through its control socket.
#[derive(Debug, Parser)]
#[command(name = "lbctl", version, after_help = EXIT_CODES_HELP)]
struct Cli {
    /// The control socket of the lbfwd to talk to.
    #[arg(long, global = true, env = SOCKET_ENV, default_value = DEFAULT_SOCKET, value_name = "PATH")]
    socket: PathBuf,
    /// Output format: aligned tables for people, or JSON for scripts.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Output::Table)]
    output: Output,
    /// Seconds to wait for lbfwd's answer.
    #[arg(long, global = true, default_value_t = 30.0, value_name = "SECS")]
    timeout: f64,
    #[command(subcommand)]
    command: Command,
}

/// How results are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Output {
    /// Aligned columns.
    Table,
    /// JSON on stdout.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Daemon status: version, uptime, backend, workers, interfaces, paths, table version.
    Status,
    /// Traffic counters and rates: totals, per worker, per load balancer and target, drops.
    Stats,
    /// Load balancers.
    #[command(name = "lb", visible_alias = "loadbalancer")]
    Lb(ObjectCmd),
    /// Network interfaces (the possible targets); labels.
    #[command(name = "nic", visible_alias = "interface")]
    Nic(NicCmd),
    /// Networks.
    Network(ObjectCmd),
    /// Address pools.
    Pool(ObjectCmd),
    /// Load balancer routings (derived from a selector, or given).
    Routing(ObjectCmd),
    /// Set the Maglev weight of a load balancer's destination.
    Weight {
        /// The load balancer.
        lb: String,
        /// The destination (network interface name).
        dest: String,
        /// The new weight (0 drains).
        weight: u32,
    },
    /// Drain a destination: no new flows, existing flows stay (weight 0).
    Drain {
        /// The load balancer.
        lb: String,
        /// The destination (network interface name).
        dest: String,
    },
    /// Apply TOML fragments and/or Ironcore YAML manifests, all or nothing.
    Apply(ApplyArgs),
    /// Print the whole desired state as a TOML file `lbfwd run --config` accepts.
    Export,
    /// Re-read lbfwd's config file.
    Reload,
    /// Health of every destination with a health check: state, since when,
    /// last failure, probe counters.
    Health,
    /// Announcement of the VIPs: without argument, per VIP whether it is
    /// announced (and why not) and per BGP peer the session; `on` / `off`
    /// announce again / withdraw everything (the dataplane keeps forwarding).
    Announce {
        /// Turn announcing on or off.
        #[arg(value_enum)]
        switch: Option<OnOff>,
    },
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write the man pages (lbctl.1 and one per subcommand) into DIR
    /// (packaging).
    #[command(hide = true)]
    Man {
        /// Where to write them.
        dir: PathBuf,
    },
}

/// `lbctl announce on|off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum OnOff {
    /// Announce every VIP with a usable destination.
    On,
    /// Withdraw every VIP.
    Off,
}

#[derive(Debug, Args)]
struct ApplyArgs {
    /// A file to apply (`-` for stdin): `.toml` is a TOML fragment, `.yaml`/`.yml`
    /// Ironcore manifests, anything else is recognized by its content; repeatable.
    #[arg(short = 'f', long = "file", required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
struct ObjectCmd {
    #[command(subcommand)]
    verb: ObjectVerb,
}

#[derive(Debug, Subcommand)]
enum ObjectVerb {
    /// List every object of this kind.
    #[command(visible_alias = "ls")]
    List,
    /// Show one object with what lbfwd derived for it.
    Get {
        /// Its name.
        name: String,
    },
    /// Create or replace objects from files: TOML (a fragment with
    /// `[[KIND]]` entries), Ironcore YAML, or JSON (an object or an array).
    Apply(ApplyArgs),
    /// Delete one object.
    #[command(visible_alias = "rm")]
    Delete {
        /// Its name.
        name: String,
    },
}

#[derive(Debug, Args)]
struct NicCmd {
    #[command(subcommand)]
    verb: NicVerb,
}

#[derive(Debug, Subcommand)]
enum NicVerb {
    #[command(flatten)]
    Object(ObjectVerb),
    /// Set labels on a network interface (load balancer selection follows).
    Label {
        /// The network interface.
        name: String,
        /// Labels as key=value.
        #[arg(required = true, value_name = "KEY=VALUE")]
        labels: Vec<String>,
    },
    /// Remove labels from a network interface.
    Unlabel {
        /// The network interface.
        name: String,
        /// Label keys.
        #[arg(required = true, value_name = "KEY")]
        keys: Vec<String>,
    },
}

/// A failure with its exit code; printed by `main`.
struct Failure {
    code: u8,
    message: String,
    /// The JSON form for `-o json` (`{"error":{...}}`).
    json: Value,
}

impl Failure {
    fn usage(message: String) -> Failure {
        Failure {
            code: EXIT_USAGE,
            json: error_json("usage", &message, &[]),
            message,
        }
    }
}

fn error_json(code: &str, message: &str, details: &[String]) -> Value {
    serde_json::json!({ "error": { "code": code, "message": message, "details": details } })
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Failure {
        let (code, json_code) = match &e {
            ClientError::NotRunning { .. } => (EXIT_NOT_RUNNING, "not_running"),
            ClientError::PermissionDenied { .. } => (EXIT_PERMISSION, "permission_denied"),
            ClientError::Timeout { .. } => (EXIT_RETRY, "timeout"),
            ClientError::Api(api) => {
                return api_failure(api);
            }
            _ => (EXIT_ERROR, "connection"),
        };
        let message = e.to_string();
        Failure {
            code,
            json: error_json(json_code, &message, &[]),
            message,
        }
    }
}

fn api_failure(api: &ApiError) -> Failure {
    let code = match api.code {
        ErrorCode::ValidationFailed => EXIT_VALIDATION,
        ErrorCode::NotFound => EXIT_NOT_FOUND,
        ErrorCode::Busy | ErrorCode::Timeout => EXIT_RETRY,
        ErrorCode::BadRequest
        | ErrorCode::UnknownOperation
        | ErrorCode::TooLarge
        | ErrorCode::UnsupportedVersion
        | ErrorCode::Internal => EXIT_ERROR,
    };
    let mut message = format!("lbfwd: {}", api.message);
    for d in &api.details {
        let _ = write!(message, "\n  {d}");
    }
    Failure {
        code,
        json: serde_json::json!({ "error": api }),
        message,
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help/version to stdout (exit 0) and usage errors
            // to stderr (exit 2).
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { EXIT_OK });
        }
    };
    let output = cli.output;
    match run(cli) {
        Ok(text) => {
            let mut stdout = io::stdout().lock();
            // A closed pipe (`lbctl ... | head`) is not an error worth a message.
            let _ = stdout.write_all(text.as_bytes());
            let _ = stdout.flush();
            ExitCode::from(EXIT_OK)
        }
        Err(f) => {
            if output == Output::Json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&f.json).unwrap_or_default()
                );
            }
            eprintln!("lbctl: {}", f.message.trim_start_matches("lbctl: "));
            ExitCode::from(f.code)
        }
    }
}

/// Runs one command; returns what to print.
fn run(cli: Cli) -> Result<String, Failure> {
    if !(cli.timeout.is_finite() && cli.timeout > 0.0) {
        return Err(Failure::usage(format!(
            "--timeout must be a positive number of seconds, got {}",
            cli.timeout
        )));
    }
    let client = Client::new(&cli.socket).with_timeout(Duration::from_secs_f64(cli.timeout));
    let request = match cli.command {
        Command::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "lbctl", &mut out);
            return Ok(String::from_utf8_lossy(&out).into_owned());
        }
        Command::Man { dir } => {
            return clap_mangen::generate_to(Cli::command(), &dir)
                .map(|()| String::new())
                .map_err(|e| Failure::usage(format!("{}: {e}", dir.display())));
        }
        Command::Status => Request::Status,
        Command::Stats => Request::Stats,
        Command::Lb(c) => object_request(Kind::LoadBalancer, c.verb)?,
        Command::Network(c) => object_request(Kind::Network, c.verb)?,
        Command::Pool(c) => object_request(Kind::Pool, c.verb)?,
        Command::Routing(c) => object_request(Kind::LoadBalancerRouting, c.verb)?,
        Command::Nic(c) => match c.verb {
            NicVerb::Object(v) => object_request(Kind::NetworkInterface, v)?,
            NicVerb::Label { name, labels } => Request::LabelSet(LabelSet {
                interface: name,
                labels: parse_labels(&labels)?,
            }),
            NicVerb::Unlabel { name, keys } => Request::LabelRemove(LabelRemove {
                interface: name,
                keys,
            }),
        },
        Command::Weight { lb, dest, weight } => Request::Weight(SetWeight {
            load_balancer: lb,
            destination: dest,
            weight,
        }),
        Command::Drain { lb, dest } => Request::Drain(Drain {
            load_balancer: lb,
            destination: dest,
        }),
        Command::Apply(a) => Request::ApplyDocuments(ApplyDocuments {
            documents: read_documents(&a.files)?,
            only_kind: None,
        }),
        Command::Export => Request::Export,
        Command::Reload => Request::Reload,
        Command::Health => Request::Health,
        Command::Announce { switch: None } => Request::Announce,
        Command::Announce { switch: Some(s) } => {
            Request::AnnounceSet(AnnounceSet { on: s == OnOff::On })
        }
    };
    let payload = client.call(&request)?;
    Ok(match cli.output {
        Output::Json => {
            let value = match &payload {
                Payload::Status(s) => serde_json::to_value(s),
                Payload::Stats(s) => serde_json::to_value(s),
                Payload::Objects(o) => serde_json::to_value(o),
                Payload::Object(o) => serde_json::to_value(o),
                Payload::Changed(c) => serde_json::to_value(c),
                Payload::Exported(e) => serde_json::to_value(e),
                Payload::Health(h) => serde_json::to_value(h),
                Payload::Announce(a) => serde_json::to_value(a),
            }
            .unwrap_or(Value::Null);
            let mut s = serde_json::to_string_pretty(&value).unwrap_or_default();
            s.push('\n');
            s
        }
        Output::Table => render(&payload),
    })
}

/// The request for `lbctl NOUN VERB`.
fn object_request(kind: Kind, verb: ObjectVerb) -> Result<Request, Failure> {
    Ok(match verb {
        ObjectVerb::List => Request::List(ListRequest { kind }),
        ObjectVerb::Get { name } => Request::Get(ObjectRef { kind, name }),
        ObjectVerb::Delete { name } => Request::Delete(ObjectRef { kind, name }),
        ObjectVerb::Apply(a) => {
            // JSON files carry objects directly; everything else goes to lbfwd
            // as text so its errors point at FILE:LINE:COLUMN.
            if a.files.len() == 1 && a.files[0].extension().is_some_and(|e| e == "json") {
                let (text, source) = read_input(&a.files[0])?;
                let value: Value = serde_json::from_str(&text)
                    .map_err(|e| Failure::usage(format!("{source}: invalid JSON: {e}")))?;
                let objects = match value {
                    Value::Array(items) => items,
                    obj @ Value::Object(_) => vec![obj],
                    _ => {
                        return Err(Failure::usage(format!(
                            "{source}: expected a JSON object or an array of objects"
                        )))
                    }
                };
                Request::Apply(ApplyObjects { kind, objects })
            } else {
                Request::ApplyDocuments(ApplyDocuments {
                    documents: read_documents(&a.files)?,
                    only_kind: Some(kind),
                })
            }
        }
    })
}

/// Parses `key=value` arguments.
fn parse_labels(args: &[String]) -> Result<BTreeMap<String, String>, Failure> {
    let mut labels = BTreeMap::new();
    for arg in args {
        match arg.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                labels.insert(k.to_owned(), v.to_owned());
            }
            _ => {
                return Err(Failure::usage(format!(
                    "label `{arg}` is not KEY=VALUE (e.g. app=web)"
                )))
            }
        }
    }
    Ok(labels)
}

/// Reads a file (or stdin for `-`); returns its text and a name for messages.
fn read_input(path: &Path) -> Result<(String, String), Failure> {
    if path == Path::new("-") {
        let mut text = String::new();
        io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Failure::usage(format!("cannot read stdin: {e}")))?;
        Ok((text, "<stdin>".to_owned()))
    } else {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Failure::usage(format!("cannot read {}: {e}", path.display())))?;
        Ok((text, path.display().to_string()))
    }
}

/// Reads every file and decides its format.
fn read_documents(files: &[PathBuf]) -> Result<Vec<ApplyDocument>, Failure> {
    files
        .iter()
        .map(|path| {
            let (text, source) = read_input(path)?;
            let format = detect_format(path, &text).ok_or_else(|| {
                Failure::usage(format!(
                    "{source}: cannot tell whether this is TOML or YAML; name it .toml or .yaml"
                ))
            })?;
            Ok(ApplyDocument {
                format,
                source: Some(source),
                text,
            })
        })
        .collect()
}

/// The format of a file: by extension, else by its first meaningful line.
fn detect_format(path: &Path, text: &str) -> Option<DocumentFormat> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("toml") => return Some(DocumentFormat::Toml),
        Some("yaml" | "yml") => return Some(DocumentFormat::Yaml),
        _ => {}
    }
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))?;
    if line.starts_with('[') {
        return Some(DocumentFormat::Toml);
    }
    if line.starts_with("---") || line.starts_with("- ") {
        return Some(DocumentFormat::Yaml);
    }
    let eq = line.find('=');
    let colon = line.find(':');
    match (eq, colon) {
        (Some(e), Some(c)) if e < c => Some(DocumentFormat::Toml),
        (Some(_), None) => Some(DocumentFormat::Toml),
        (_, Some(_)) => Some(DocumentFormat::Yaml),
        (None, None) => None,
    }
}

// ---------------------------------------------------------------------------
// Tables

/// Aligned columns; the last column is not padded.
struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn render(&self, out: &mut String) {
        let cols = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate().take(cols) {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
        let line = |cells: &[String], out: &mut String| {
            let mut s = String::new();
            for (i, c) in cells.iter().enumerate().take(cols) {
                if i + 1 == cols {
                    s.push_str(c);
                } else {
                    let _ = write!(s, "{c:<w$}  ", w = widths[i]);
                }
            }
            out.push_str(s.trim_end());
            out.push('\n');
        };
        line(&self.header, out);
        for r in &self.rows {
            line(r, out);
        }
    }
}

/// Key-value lines (`key   value`), aligned.
fn kv(pairs: &[(&str, String)], out: &mut String) {
    let w = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in pairs {
        let _ = writeln!(out, "{k:<w$}  {v}");
    }
}

fn render(payload: &Payload) -> String {
    let mut out = String::new();
    match payload {
        Payload::Status(s) => render_status(s, &mut out),
        Payload::Stats(s) => render_stats(s, &mut out),
        Payload::Objects(objs) => render_list(objs, &mut out),
        Payload::Object(o) => render_object(o, &mut out),
        Payload::Changed(c) => render_change(c, &mut out),
        Payload::Health(h) => render_health(h, &mut out),
        Payload::Announce(a) => render_announce(a, &mut out),
        Payload::Exported(e) => {
            out.push_str(&e.toml);
            if !e.toml.ends_with('\n') {
                out.push('\n');
            }
        }
    }
    out
}

fn render_announce(a: &AnnounceStatus, out: &mut String) {
    let state = match (a.shutting_down, a.enabled) {
        (true, _) => "off (shutting down)",
        (false, true) => "on",
        (false, false) => "off",
    };
    let _ = writeln!(out, "announcing  {state}");
    if let Some(b) = &a.bgp {
        let bird = match (&b.external_socket, b.bird_pid) {
            (Some(s), _) => format!("operator-run, socket {}", s.display()),
            (None, Some(pid)) => format!("running (pid {pid})"),
            (None, None) => "not running".into(),
        };
        let _ = writeln!(out, "bgp         AS {}, router id {}", b.asn, b.router_id);
        let _ = writeln!(
            out,
            "bird        {bird}, restarted {} time(s){}",
            b.bird_restarts,
            b.last_error
                .as_ref()
                .map(|e| format!("; {e}"))
                .unwrap_or_default()
        );
    }
    if let Some(l2) = &a.l2 {
        let on: Vec<String> = l2
            .interfaces
            .iter()
            .map(|i| format!("{} ({})", i.name, i.mac.as_deref().unwrap_or("MAC unknown")))
            .collect();
        let _ = writeln!(
            out,
            "l2          {} on {}",
            if l2.answering {
                "answering ARP/NDP"
            } else {
                "silent"
            },
            on.join(", ")
        );
        render_l2_counters(l2, out);
    }
    out.push('\n');
    let mut header = vec!["VIP", "LOAD BALANCER", "POOL", "ANNOUNCED"];
    if a.l2.is_some() {
        header.push("L2");
    }
    header.push("WHY NOT");
    let mut t = Table::new(&header);
    for v in &a.vips {
        let mut row = vec![
            v.address.to_string(),
            v.load_balancer.clone(),
            v.pool.clone().unwrap_or_else(|| "-".into()),
            if v.announced { "yes" } else { "no" }.into(),
        ];
        if a.l2.is_some() {
            row.push(if v.l2 { "yes" } else { "no" }.into());
        }
        row.push(v.reason.clone().unwrap_or_else(|| "-".into()));
        t.row(row);
    }
    t.render(out);
    if let Some(b) = &a.bgp {
        out.push('\n');
        let mut t = Table::new(&[
            "PEER",
            "ADDRESS",
            "AS",
            "STATE",
            "SINCE",
            "SENT",
            "BFD",
            "LAST ERROR",
        ]);
        for p in &b.peers {
            t.row(vec![
                p.name.clone(),
                p.address.to_string(),
                p.asn.to_string(),
                p.state.clone(),
                p.since_secs.map(duration).unwrap_or_else(|| "-".into()),
                p.prefixes_sent
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "-".into()),
                if p.bfd { "on" } else { "off" }.into(),
                p.last_error.clone().unwrap_or_else(|| "-".into()),
            ]);
        }
        t.render(out);
    }
}

fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m{s:02}s"),
        (0, _, _) => format!("{h}h{m:02}m{s:02}s"),
        _ => format!("{d}d{h:02}h{m:02}m"),
    }
}

fn path_or_none(p: &Option<PathBuf>) -> String {
    p.as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "-".into())
}

fn render_status(s: &StatusInfo, out: &mut String) {
    let workers = s
        .workers
        .iter()
        .map(|w| match w.core {
            Some(c) => format!("{}@core{} (tables v{})", w.id, c, w.table_version),
            None => format!("{} (tables v{})", w.id, w.table_version),
        })
        .collect::<Vec<_>>()
        .join(", ");
    kv(
        &[
            (
                "version",
                format!("{} (protocol {})", s.version, s.protocol),
            ),
            ("pid", s.pid.to_string()),
            ("uptime", duration(s.uptime_secs)),
            ("backend", s.backend.clone()),
            ("interfaces", join_or_dash(&s.interfaces)),
            (
                "workers",
                if workers.is_empty() {
                    "-".into()
                } else {
                    workers
                },
            ),
            ("config", path_or_none(&s.config_path)),
            ("state", path_or_none(&s.state_path)),
            ("table version", s.table_version.to_string()),
            ("load balancers", s.load_balancers.to_string()),
            (
                "health",
                format!(
                    "{} checked: {} healthy, {} unhealthy, {} unknown; {} load balancer(s) without a usable destination",
                    s.health.targets,
                    s.health.healthy,
                    s.health.unhealthy,
                    s.health.unknown,
                    s.health.load_balancers_down
                ),
            ),
        ],
        out,
    );
}

fn join_or_dash(items: &[String]) -> String {
    if items.is_empty() {
        "-".into()
    } else {
        items.join(", ")
    }
}

/// 1234567 -> "1.23M".
fn si(v: f64) -> String {
    let (div, unit) = if v >= 1e9 {
        (1e9, "G")
    } else if v >= 1e6 {
        (1e6, "M")
    } else if v >= 1e3 {
        (1e3, "k")
    } else {
        return format!("{v:.0}");
    };
    format!("{:.2}{unit}", v / div)
}

fn counter_cells(c: &Counter) -> Vec<String> {
    vec![
        c.packets.to_string(),
        c.bytes.to_string(),
        si(c.pps),
        format!("{}bit/s", si(c.bps)),
    ]
}

fn render_stats(s: &StatsSnapshot, out: &mut String) {
    let _ = writeln!(
        out,
        "uptime {}, rates over the last {:.1}s\n",
        duration(s.uptime_secs),
        s.interval_secs
    );
    let mut t = Table::new(&["SCOPE", "DIRECTION", "PACKETS", "BYTES", "PPS", "RATE"]);
    let traffic_rows = |t: &mut Table, scope: &str, tr: &Traffic| {
        for (dir, c) in [
            ("rx", &tr.rx),
            ("tx", &tr.tx),
            ("host", &tr.host),
            ("dropped", &tr.dropped),
        ] {
            let mut row = vec![scope.to_owned(), dir.to_owned()];
            row.extend(counter_cells(c));
            t.row(row);
        }
    };
    traffic_rows(&mut t, "total", &s.totals);
    for w in &s.workers {
        let scope = match w.core {
            Some(c) => format!("worker {}@core{} ({} flows)", w.id, c, w.flows),
            None => format!("worker {} ({} flows)", w.id, w.flows),
        };
        traffic_rows(&mut t, &scope, &w.traffic);
    }
    t.render(out);

    if !s.load_balancers.is_empty() {
        out.push('\n');
        let mut t = Table::new(&[
            "LOAD BALANCER",
            "TARGET",
            "WEIGHT",
            "PACKETS",
            "BYTES",
            "PPS",
            "RATE",
        ]);
        for lb in &s.load_balancers {
            let mut row = vec![
                lb.name.clone(),
                format!("(all, {} flows)", lb.flows),
                String::new(),
            ];
            row.extend(counter_cells(&lb.forwarded));
            t.row(row);
            if lb.dropped.packets > 0 {
                let mut row = vec![lb.name.clone(), "(dropped)".into(), String::new()];
                row.extend(counter_cells(&lb.dropped));
                t.row(row);
            }
            for tg in &lb.targets {
                let target = match tg.underlay {
                    Some(u) => format!("{} ({u})", tg.name),
                    None => tg.name.clone(),
                };
                let weight = if tg.weight == 0 {
                    "0 (draining)".to_owned()
                } else {
                    tg.weight.to_string()
                };
                let mut row = vec![lb.name.clone(), target, weight];
                row.extend(counter_cells(&tg.sent));
                t.row(row);
            }
        }
        t.render(out);
    }

    if !s.health.is_empty() {
        out.push('\n');
        render_health(&s.health, out);
    }
    out.push('\n');
    let drops: Vec<_> = s.drops.iter().filter(|d| d.packets > 0).collect();
    if drops.is_empty() {
        out.push_str("no drops\n");
    } else {
        let mut t = Table::new(&["DROP REASON", "PACKETS", "PPS"]);
        for d in drops {
            t.row(vec![d.reason.clone(), d.packets.to_string(), si(d.pps)]);
        }
        t.render(out);
    }
    if let Some(l2) = &s.l2 {
        out.push('\n');
        render_l2_counters(l2, out);
    }
    if let Some(g) = &s.flow_guard {
        out.push('\n');
        render_flow_guard(g, out);
    }
    if let Some(sync) = &s.sync {
        out.push('\n');
        render_sync_counters(sync, out);
    }
}

/// The new-flow flood guard, one line.
fn render_flow_guard(g: &lbfwd_control::protocol::FlowGuardStats, out: &mut String) {
    if g.rate == 0 {
        let _ = writeln!(
            out,
            "flow guard  off (new_flow_rate = 0): every new flow is remembered"
        );
        return;
    }
    let engaged = if g.engaged_workers.is_empty() {
        "not engaged".to_string()
    } else {
        let ids: Vec<String> = g.engaged_workers.iter().map(|w| w.to_string()).collect();
        format!("ENGAGED on worker {}", ids.join(","))
    };
    let _ = writeln!(
        out,
        "flow guard  {engaged}; limit {}/s per worker (burst {}), above it {}; \
         not remembered {}, dropped {}",
        g.rate, g.burst, g.excess, g.not_remembered, g.dropped
    );
}

/// The exception sync counters (`[sync]`), two lines.
fn render_sync_counters(s: &lbfwd_control::protocol::SyncStats, out: &mut String) {
    let _ = writeln!(
        out,
        "sync        {} -> {}: exceptions own {}, from peers {}; adopted {}",
        s.listen,
        s.peers.join(","),
        s.own_exceptions,
        s.peer_exceptions,
        s.adopted
    );
    let _ = writeln!(
        out,
        "            sent {} records in {} datagrams ({} send errors), received {} records in {} \
         datagrams ({} rejected); dropped: queue full {}, over capacity {}",
        s.records_sent,
        s.datagrams_sent,
        s.send_errors,
        s.records_received,
        s.datagrams_received,
        s.datagrams_rejected,
        s.queue_dropped,
        s.over_capacity
    );
}

/// The layer-2 announcement counters, one line.
fn render_l2_counters(l2: &lbfwd_control::announce::L2Status, out: &mut String) {
    let _ = writeln!(
        out,
        "l2          ARP answered {}, NDP answered {}, gratuitous sent {} (dropped {})",
        l2.arp_answered, l2.nd_answered, l2.gratuitous_sent, l2.gratuitous_dropped
    );
}

/// A spec field as one table cell.
fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) if s.is_empty() => "-".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) if items.is_empty() => "-".into(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(","),
        Value::Object(map) if map.is_empty() => "-".into(),
        Value::Object(map) => {
            // A port entry reads better as TCP/80-90; labels as k=v.
            if let Some(port) = map.get("port") {
                let proto = map.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
                match map.get("end_port") {
                    Some(end) if end != port => format!("{proto}/{}-{}", cell(port), cell(end)),
                    _ => format!("{proto}/{}", cell(port)),
                }
            } else if map.values().all(|v| v.is_string()) {
                map.iter()
                    .map(|(k, v)| format!("{k}={}", cell(v)))
                    .collect::<Vec<_>>()
                    .join(",")
            } else {
                v.to_string()
            }
        }
    }
}

fn field(o: &Object, key: &str) -> String {
    cell(o.spec.get(key).unwrap_or(&Value::Null))
}

fn selector_cell(o: &Object) -> String {
    let Some(sel) = o.spec.get("network_interface_selector") else {
        return "-".into();
    };
    let mut parts = Vec::new();
    if let Some(Value::Object(m)) = sel.get("match_labels") {
        parts.extend(m.iter().map(|(k, v)| format!("{k}={}", cell(v))));
    }
    if let Some(Value::Array(exprs)) = sel.get("match_expressions") {
        for e in exprs {
            parts.push(format!(
                "{} {} ({})",
                cell(e.get("key").unwrap_or(&Value::Null)),
                cell(e.get("operator").unwrap_or(&Value::Null)),
                cell(e.get("values").unwrap_or(&Value::Null))
            ));
        }
    }
    if parts.is_empty() {
        "(all)".into()
    } else {
        parts.join(",")
    }
}

fn destinations_summary(dests: &[lbfwd_control::protocol::DestinationView]) -> String {
    let draining = dests.iter().filter(|d| d.weight == 0).count();
    if draining > 0 {
        format!("{} ({draining} draining)", dests.len())
    } else {
        dests.len().to_string()
    }
}

fn render_list(objs: &[Object], out: &mut String) {
    let Some(kind) = objs.first().map(|o| o.kind) else {
        out.push_str("(none)\n");
        return;
    };
    match kind {
        Kind::LoadBalancer => {
            let mut t = Table::new(&[
                "NAME",
                "TYPE",
                "NETWORK",
                "IPS",
                "PORTS",
                "SELECTOR",
                "DESTINATIONS",
            ]);
            for o in objs {
                let (ips, ports, dests) = match &o.status {
                    Some(ObjectStatus::LoadBalancer(s)) => (
                        s.ips
                            .iter()
                            .map(|i| i.addr.to_string())
                            .collect::<Vec<_>>()
                            .join(","),
                        s.ports
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(","),
                        destinations_summary(&s.destinations),
                    ),
                    _ => (field(o, "ips"), field(o, "ports"), "-".into()),
                };
                t.row(vec![
                    o.name.clone(),
                    field(o, "type"),
                    field(o, "network"),
                    or_dash(ips),
                    or_dash(ports),
                    selector_cell(o),
                    dests,
                ]);
            }
            t.render(out);
        }
        Kind::NetworkInterface => {
            let mut t = Table::new(&[
                "NAME",
                "NETWORK",
                "IPS",
                "UNDERLAY",
                "STATE",
                "LABELS",
                "SELECTED BY",
            ]);
            for o in objs {
                let selected = match &o.status {
                    Some(ObjectStatus::NetworkInterface(s)) => join_or_dash(&s.selected_by),
                    _ => "-".into(),
                };
                t.row(vec![
                    o.name.clone(),
                    field(o, "network"),
                    field(o, "ips"),
                    field(o, "underlay"),
                    field(o, "state"),
                    field(o, "labels"),
                    selected,
                ]);
            }
            t.render(out);
        }
        Kind::Network => {
            let mut t = Table::new(&["NAME", "VNI", "INTERFACES", "LOAD BALANCERS"]);
            for o in objs {
                let (nics, lbs) = match &o.status {
                    Some(ObjectStatus::Network(s)) => (
                        s.interfaces.len().to_string(),
                        join_or_dash(&s.load_balancers),
                    ),
                    _ => ("-".into(), "-".into()),
                };
                t.row(vec![o.name.clone(), field(o, "vni"), nics, lbs]);
            }
            t.render(out);
        }
        Kind::Pool => {
            let mut t = Table::new(&["NAME", "NETWORK", "ADDRESSES", "USED"]);
            for o in objs {
                let used = match &o.status {
                    Some(ObjectStatus::Pool(s)) => format!("{}/{}", s.allocated.len(), s.capacity),
                    _ => "-".into(),
                };
                t.row(vec![
                    o.name.clone(),
                    field(o, "network"),
                    field(o, "addresses"),
                    used,
                ]);
            }
            t.render(out);
        }
        Kind::LoadBalancerRouting => {
            let mut t = Table::new(&["NAME", "SOURCE", "NETWORK", "DESTINATIONS"]);
            for o in objs {
                let (source, network, dests) = match &o.status {
                    Some(ObjectStatus::Routing(s)) => (
                        format!("{:?}", s.source).to_lowercase(),
                        s.network.clone(),
                        s.destinations
                            .iter()
                            .map(|d| {
                                if d.weight == 0 {
                                    format!("{} (draining)", d.name)
                                } else {
                                    d.name.clone()
                                }
                            })
                            .collect::<Vec<_>>()
                            .join(","),
                    ),
                    _ => ("-".into(), field(o, "network"), "-".into()),
                };
                t.row(vec![o.name.clone(), source, network, or_dash(dests)]);
            }
            t.render(out);
        }
    }
}

fn or_dash(s: String) -> String {
    if s.is_empty() {
        "-".into()
    } else {
        s
    }
}

fn destinations_table(dests: &[lbfwd_control::protocol::DestinationView], out: &mut String) {
    if dests.is_empty() {
        out.push_str("destinations: none\n");
        return;
    }
    let checked = dests.iter().any(|d| d.health.is_some());
    let mut header = vec!["DESTINATION", "UID", "UNDERLAY", "MAC", "WEIGHT"];
    if checked {
        header.extend(["HEALTH", "SINCE", "LAST FAILURE"]);
    }
    let mut t = Table::new(&header);
    for d in dests {
        let mut row = vec![
            d.name.clone(),
            or_dash(d.uid.clone()),
            d.underlay.to_string(),
            d.mac.clone().unwrap_or_else(|| "-".into()),
            if d.weight == 0 {
                "0 (draining)".into()
            } else {
                d.weight.to_string()
            },
        ];
        if checked {
            row.extend(health_cells(d.health.as_ref()));
        }
        t.row(row);
    }
    t.render(out);
}

/// State (with "out of table" when it is), age, last failure.
fn health_cells(h: Option<&lbfwd_control::health::DestinationHealth>) -> [String; 3] {
    let Some(h) = h else {
        return ["-".into(), "-".into(), "-".into()];
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let state = if h.in_table {
        h.state.as_str().to_owned()
    } else {
        format!("{} (out of table)", h.state.as_str())
    };
    let last = match (&h.last_failure, h.last_failure_unix) {
        (Some(why), Some(at)) => format!("{why} ({} ago)", duration(now.saturating_sub(at))),
        (Some(why), None) => why.clone(),
        _ => "-".into(),
    };
    [
        state,
        format!("{} ago", duration(now.saturating_sub(h.since_unix))),
        last,
    ]
}

fn render_health(rows: &[lbfwd_control::health::TargetHealth], out: &mut String) {
    if rows.is_empty() {
        out.push_str("no load balancer has a health check\n");
        return;
    }
    let mut t = Table::new(&[
        "LB",
        "DESTINATION",
        "UNDERLAY",
        "CHECK",
        "HEALTH",
        "SINCE",
        "SENT",
        "PASSED",
        "FAILED",
        "CHANGES",
        "LAST FAILURE",
    ]);
    for r in rows {
        let [state, since, last] = health_cells(Some(&r.health));
        let p = r.health.probes;
        t.row(vec![
            r.load_balancer.clone(),
            r.name.clone(),
            r.underlay.to_string(),
            r.health.kind.clone(),
            state,
            since,
            p.sent.to_string(),
            p.passed.to_string(),
            p.failed.to_string(),
            p.state_changes.to_string(),
            last,
        ]);
    }
    t.render(out);
}

fn render_object(o: &Object, out: &mut String) {
    let mut pairs: Vec<(String, String)> = vec![
        ("kind".into(), o.kind.as_str().to_owned()),
        ("name".into(), o.name.clone()),
    ];
    if let Value::Object(map) = &o.spec {
        for (k, v) in map {
            if k == "name" {
                continue;
            }
            let text = if k == "network_interface_selector" {
                selector_cell(o)
            } else {
                cell(v)
            };
            pairs.push((k.clone(), text));
        }
    }
    match &o.status {
        Some(ObjectStatus::LoadBalancer(s)) => {
            pairs.push((
                "addresses".into(),
                or_dash(
                    s.ips
                        .iter()
                        .map(|i| match &i.pool {
                            Some(p) => format!("{} (pool {p})", i.addr),
                            None => i.addr.to_string(),
                        })
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
            ));
            pairs.push((
                "allowed".into(),
                s.ports
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
            ));
            pairs.push(("vni".into(), s.vni.to_string()));
        }
        Some(ObjectStatus::Routing(s)) => {
            pairs.push(("source".into(), format!("{:?}", s.source).to_lowercase()));
            if o.spec.is_null() {
                pairs.push(("network".into(), s.network.clone()));
            }
        }
        Some(ObjectStatus::NetworkInterface(s)) => {
            pairs.push(("selected by".into(), join_or_dash(&s.selected_by)));
        }
        Some(ObjectStatus::Network(s)) => {
            pairs.push(("interfaces".into(), join_or_dash(&s.interfaces)));
            pairs.push(("load balancers".into(), join_or_dash(&s.load_balancers)));
        }
        Some(ObjectStatus::Pool(s)) => {
            pairs.push((
                "used".into(),
                format!("{} of {}", s.allocated.len(), s.capacity),
            ));
            for a in &s.allocated {
                pairs.push((
                    "allocated".into(),
                    format!("{} -> {}", a.addr, a.load_balancer),
                ));
            }
        }
        None => {}
    }
    let borrowed: Vec<(&str, String)> =
        pairs.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    kv(&borrowed, out);
    match &o.status {
        Some(ObjectStatus::LoadBalancer(s)) => {
            out.push('\n');
            destinations_table(&s.destinations, out);
        }
        Some(ObjectStatus::Routing(s)) => {
            out.push('\n');
            destinations_table(&s.destinations, out);
        }
        _ => {}
    }
}

fn render_change(c: &ChangeSummary, out: &mut String) {
    for w in &c.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    if c.is_empty() {
        let _ = writeln!(out, "no change (table version {})", c.table_version);
        return;
    }
    for (verb, list) in [
        ("created", &c.created),
        ("updated", &c.updated),
        ("deleted", &c.deleted),
    ] {
        for r in list {
            let _ = writeln!(out, "{verb} {r}");
        }
    }
    for r in &c.rerouted {
        let mut parts = Vec::new();
        parts.extend(r.added.iter().map(|d| format!("+{d}")));
        parts.extend(r.removed.iter().map(|d| format!("-{d}")));
        parts.extend(r.changed.iter().map(|d| format!("~{d}")));
        let _ = writeln!(out, "rerouted {}: {}", r.load_balancer, parts.join(" "));
    }
    for a in &c.allocated {
        let pool = a
            .pool
            .as_ref()
            .map(|p| format!(" from pool {p}"))
            .unwrap_or_default();
        let _ = writeln!(out, "allocated {} to {}{pool}", a.addr, a.load_balancer);
    }
    for a in &c.released {
        let pool = a
            .pool
            .as_ref()
            .map(|p| format!(" to pool {p}"))
            .unwrap_or_default();
        let _ = writeln!(out, "released {} of {}{pool}", a.addr, a.load_balancer);
    }
    let _ = writeln!(out, "published table version {}", c.table_version);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_detection() {
        let p = Path::new;
        let cases: &[(&str, &str, Option<DocumentFormat>)] = &[
            ("a.toml", "anything", Some(DocumentFormat::Toml)),
            ("a.yaml", "x = 1", Some(DocumentFormat::Yaml)),
            ("a.yml", "", Some(DocumentFormat::Yaml)),
            (
                "-",
                "# c\n\n[[load_balancer]]\nname = \"x\"",
                Some(DocumentFormat::Toml),
            ),
            (
                "-",
                "apiVersion: networking.ironcore.dev/v1alpha1",
                Some(DocumentFormat::Yaml),
            ),
            ("-", "---\nkind: Network", Some(DocumentFormat::Yaml)),
            ("f", "name = \"a:b\"", Some(DocumentFormat::Toml)),
            ("f", "name: \"a=b\"", Some(DocumentFormat::Yaml)),
            ("f", "just words", None),
            ("f", "", None),
        ];
        for (path, text, want) in cases {
            assert_eq!(detect_format(p(path), text), *want, "{path}: {text:?}");
        }
    }

    #[test]
    fn labels_parse() {
        let l = parse_labels(&["app=web".into(), "empty=".into(), "k=v=w".into()])
            .ok()
            .unwrap();
        assert_eq!(l["app"], "web");
        assert_eq!(l["empty"], "");
        assert_eq!(l["k"], "v=w");
        assert!(parse_labels(&["novalue".into()]).is_err());
        assert!(parse_labels(&["=v".into()]).is_err());
    }

    #[test]
    fn table_alignment() {
        let mut t = Table::new(&["NAME", "X", "LAST"]);
        t.row(vec!["a-long-name".into(), "1".into(), "tail".into()]);
        t.row(vec!["b".into(), "22".into(), String::new()]);
        let mut out = String::new();
        t.render(&mut out);
        assert_eq!(
            out,
            "NAME         X   LAST\na-long-name  1   tail\nb            22\n"
        );
    }

    #[test]
    fn cells() {
        assert_eq!(
            cell(&serde_json::json!({"protocol": "UDP", "port": 1024, "end_port": 2048})),
            "UDP/1024-2048"
        );
        assert_eq!(cell(&serde_json::json!([{"port": 80}])), "TCP/80");
        assert_eq!(
            cell(&serde_json::json!({"app": "web", "tier": "a"})),
            "app=web,tier=a"
        );
        assert_eq!(cell(&serde_json::json!([])), "-");
        assert_eq!(si(1_234_567.0), "1.23M");
        assert_eq!(si(12.0), "12");
        assert_eq!(duration(3723), "1h02m03s");
    }

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }
}
