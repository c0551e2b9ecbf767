//! The Prometheus endpoint: a writer for the text exposition format
//! (version 0.0.4), a registry of collectors that subsystems add their
//! families to, and the HTTP listener ([`server`]) that renders them on
//! `GET /metrics`, on its own thread off the worker cores.
//!
//! Everything here runs at scrape time on the metrics thread: collectors
//! read the workers' counters (relaxed atomic loads, as `lbctl stats` does);
//! the workers only count.
//!
//! Adding a family from another module (the BGP announcer, the health
//! checker) is a collector closure registered once under a name:
//!
//! ```
//! use lbfwd_forwarder::metrics::{Exposition, Registry};
//! use std::sync::Arc;
//! let registry = Registry::default();
//! registry.register("bgp", Arc::new(|out: &mut Exposition| {
//!     let mut up = out.gauge("lbfwd_bgp_session_up", "1 while the BGP session is established.");
//!     up.sample(&[("peer", "router-a")], 1u64);
//!     up.sample(&[("peer", "router-b")], 0u64);
//! }));
//! assert!(registry.render().contains("lbfwd_bgp_session_up{peer=\"router-a\"} 1\n"));
//! ```
//!
//! Conventions (checked by `promtool check metrics` in the tests): names
//! start with `lbfwd_` (or `process_` for the process family), counters end
//! in `_total`, values are in base units (bytes, seconds), and label values
//! come from bounded sets (workers, load balancers, targets, peers, drop
//! reasons), never from clients or flows. Each family name is written once
//! per scrape.

pub mod control;
pub mod dataplane;
pub mod server;
pub mod sync;

/// `promtool check metrics` (Debian `prometheus`), where installed, finds
/// nothing in `text`.
#[cfg(test)]
pub(crate) fn promtool_check(text: &str) {
    if let Ok(mut child) = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let o = child.wait_with_output().unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            o.status.success() && said.trim().is_empty(),
            "promtool: {said}"
        );
    }
}

use std::collections::BTreeSet;
use std::fmt::Write;
use std::sync::{Arc, RwLock};

/// A family's Prometheus type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricType {
    /// Only goes up (resets on restart); the name ends in `_total`.
    Counter,
    /// Goes up and down.
    Gauge,
}

impl MetricType {
    fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
        }
    }
}

/// A sample value: integers are written exactly, floats in Prometheus'
/// spelling (`NaN`, `+Inf`, `-Inf`).
pub trait SampleValue {
    /// Appends the value's text to `out`.
    fn write_value(&self, out: &mut String);
}

macro_rules! integer_value {
    ($($t:ty),*) => {$(
        impl SampleValue for $t {
            fn write_value(&self, out: &mut String) {
                let _ = write!(out, "{self}");
            }
        }
    )*};
}
integer_value!(u8, u16, u32, u64, usize, i32, i64);

impl SampleValue for bool {
    fn write_value(&self, out: &mut String) {
        out.push(if *self { '1' } else { '0' });
    }
}

impl SampleValue for f64 {
    fn write_value(&self, out: &mut String) {
        if self.is_nan() {
            out.push_str("NaN");
        } else if self.is_infinite() {
            out.push_str(if *self > 0.0 { "+Inf" } else { "-Inf" });
        } else {
            let _ = write!(out, "{self}");
        }
    }
}

/// Whether `name` is a valid metric or label name (`[a-zA-Z_][a-zA-Z0-9_]*`;
/// colons are reserved for recording rules).
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// One scrape's text, family by family.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
    families: BTreeSet<String>,
}

impl Exposition {
    /// An empty exposition.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a counter family (`name` ends in `_total`).
    pub fn counter(&mut self, name: &str, help: &str) -> Family<'_> {
        self.family(name, MetricType::Counter, help)
    }

    /// Starts a gauge family.
    pub fn gauge(&mut self, name: &str, help: &str) -> Family<'_> {
        self.family(name, MetricType::Gauge, help)
    }

    /// Starts a family: writes its `# HELP` and `# TYPE` lines; add its
    /// samples through the returned [`Family`].
    ///
    /// # Panics
    /// On a name that is invalid, a counter without `_total`, or a family
    /// written twice in one exposition: these are programming errors that
    /// would make Prometheus reject the whole scrape, and the tests render
    /// every collector.
    pub fn family(&mut self, name: &str, kind: MetricType, help: &str) -> Family<'_> {
        assert!(is_valid_name(name), "metric name {name:?} is invalid");
        assert!(
            kind != MetricType::Counter || name.ends_with("_total"),
            "counter {name:?} must end in _total"
        );
        assert!(
            self.families.insert(name.to_string()),
            "metric family {name:?} written twice"
        );
        self.text.push_str("# HELP ");
        self.text.push_str(name);
        self.text.push(' ');
        escape_help(help, &mut self.text);
        self.text.push('\n');
        let _ = writeln!(self.text, "# TYPE {name} {}", kind.as_str());
        Family {
            text: &mut self.text,
            name: name.to_string(),
        }
    }

    /// The families written so far.
    pub fn families(&self) -> impl Iterator<Item = &str> {
        self.families.iter().map(String::as_str)
    }

    /// The text as written so far.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The finished text.
    pub fn into_text(self) -> String {
        self.text
    }
}

/// The samples of one family.
#[derive(Debug)]
pub struct Family<'a> {
    text: &'a mut String,
    name: String,
}

impl Family<'_> {
    /// Writes one sample with these labels (names valid, values escaped).
    pub fn sample(&mut self, labels: &[(&str, &str)], value: impl SampleValue) -> &mut Self {
        self.text.push_str(&self.name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (name, value)) in labels.iter().enumerate() {
                debug_assert!(is_valid_name(name), "label name {name:?} is invalid");
                if i > 0 {
                    self.text.push(',');
                }
                self.text.push_str(name);
                self.text.push_str("=\"");
                escape_label_value(value, self.text);
                self.text.push('"');
            }
            self.text.push('}');
        }
        self.text.push(' ');
        value.write_value(self.text);
        self.text.push('\n');
        self
    }
}

/// `\` and newline escaped, as `# HELP` text needs.
fn escape_help(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// `\`, `"` and newline escaped, as label values need.
fn escape_label_value(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Something that writes families at scrape time.
pub trait Collect: Send + Sync {
    /// Writes this collector's families into `out`.
    fn collect(&self, out: &mut Exposition);
}

impl<F: Fn(&mut Exposition) + Send + Sync> Collect for F {
    fn collect(&self, out: &mut Exposition) {
        self(out)
    }
}

/// The collectors the endpoint renders, in registration order. Shared by
/// the daemon and its subsystems; a collector may be added or replaced at
/// any time (the next scrape sees it).
#[derive(Default)]
pub struct Registry {
    collectors: RwLock<Vec<(String, Arc<dyn Collect>)>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self
            .collectors
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(n, _)| n.clone())
            .collect();
        f.debug_struct("Registry")
            .field("collectors", &names)
            .finish()
    }
}

impl Registry {
    /// Adds `collector` under `name`, replacing one registered earlier
    /// under the same name.
    pub fn register(&self, name: &str, collector: Arc<dyn Collect>) {
        let mut list = self.collectors.write().unwrap_or_else(|e| e.into_inner());
        match list.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = collector,
            None => list.push((name.to_string(), collector)),
        }
    }

    /// Removes the collector registered under `name` (if any).
    pub fn unregister(&self, name: &str) {
        self.collectors
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(n, _)| n != name);
    }

    /// Runs every collector into one exposition.
    pub fn render(&self) -> String {
        let list: Vec<Arc<dyn Collect>> = self
            .collectors
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(_, c)| Arc::clone(c))
            .collect();
        let mut out = Exposition::new();
        for c in list {
            c.collect(&mut out);
        }
        out.into_text()
    }
}

/// `lbfwd_build_info`: always 1, labelled with the version and the
/// optional backends compiled in.
pub fn collect_build_info(out: &mut Exposition) {
    let mut features = Vec::new();
    if cfg!(feature = "af_xdp") {
        features.push("af_xdp");
    }
    if cfg!(feature = "dpdk") {
        features.push("dpdk");
    }
    out.gauge(
        "lbfwd_build_info",
        "Always 1; labelled with lbfwd's version and the optional backends built in.",
    )
    .sample(
        &[
            ("version", env!("CARGO_PKG_VERSION")),
            ("features", &features.join(",")),
        ],
        1u64,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_samples_and_escaping() {
        let mut out = Exposition::new();
        out.counter("lbfwd_x_total", "Things, with a \\ and a\nnewline.")
            .sample(&[], 3u64)
            .sample(&[("name", "a\"b\\c\nd")], 4u64);
        out.gauge("lbfwd_y", "A gauge.")
            .sample(&[("a", "1"), ("b", "")], 0.5f64)
            .sample(&[("a", "2")], f64::NAN)
            .sample(&[("a", "3")], f64::INFINITY)
            .sample(&[("a", "4")], true);
        assert_eq!(
            out.into_text(),
            "# HELP lbfwd_x_total Things, with a \\\\ and a\\nnewline.\n\
             # TYPE lbfwd_x_total counter\n\
             lbfwd_x_total 3\n\
             lbfwd_x_total{name=\"a\\\"b\\\\c\\nd\"} 4\n\
             # HELP lbfwd_y A gauge.\n\
             # TYPE lbfwd_y gauge\n\
             lbfwd_y{a=\"1\",b=\"\"} 0.5\n\
             lbfwd_y{a=\"2\"} NaN\n\
             lbfwd_y{a=\"3\"} +Inf\n\
             lbfwd_y{a=\"4\"} 1\n"
        );
    }

    #[test]
    #[should_panic(expected = "written twice")]
    fn a_family_is_written_once() {
        let mut out = Exposition::new();
        out.gauge("lbfwd_y", "A gauge.");
        out.gauge("lbfwd_y", "A gauge.");
    }

    #[test]
    #[should_panic(expected = "must end in _total")]
    fn counters_end_in_total() {
        Exposition::new().counter("lbfwd_packets", "Packets.");
    }

    #[test]
    fn names() {
        assert!(is_valid_name("lbfwd_a_1"));
        assert!(is_valid_name("_x"));
        for bad in ["", "1a", "a-b", "a:b", "a b", "é"] {
            assert!(!is_valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn registry_replaces_by_name_and_renders_in_order() {
        let r = Registry::default();
        r.register(
            "a",
            Arc::new(|o: &mut Exposition| {
                o.gauge("lbfwd_a", "A.").sample(&[], 1u64);
            }),
        );
        r.register(
            "b",
            Arc::new(|o: &mut Exposition| {
                o.gauge("lbfwd_b", "B.").sample(&[], 2u64);
            }),
        );
        r.register(
            "a",
            Arc::new(|o: &mut Exposition| {
                o.gauge("lbfwd_a", "A.").sample(&[], 3u64);
            }),
        );
        let text = r.render();
        assert!(text.find("lbfwd_a 3").unwrap() < text.find("lbfwd_b 2").unwrap());
        r.unregister("a");
        assert!(!r.render().contains("lbfwd_a"));
        let mut out = Exposition::new();
        collect_build_info(&mut out);
        assert!(out
            .as_str()
            .contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION"))));
    }
}
