//! lbfwd's log lines (the `log` facade's backend): a `RUST_LOG`-style level
//! filter and three line formats on stderr.
//!
//! - `plain`: `<6>INFO target: message` — no timestamp (the journal adds
//!   one) and the `sd-daemon(3)` priority prefix, so that `journalctl -p`
//!   filters by level. `auto` picks it when stderr is the journal
//!   (`JOURNAL_STREAM` names stderr's device and inode).
//! - `text`: `2026-01-02T03:04:05.678Z INFO target: message` (terminals).
//! - `json`: one object per line, `{"timestamp", "level", "target",
//!   "message"}`.
//!
//! The filter is `[log] level`, overridden by `LBFWD_LOG`, else `RUST_LOG`:
//! comma-separated `level` or `target=level` entries; the longest matching
//! target prefix wins (`info,lbfwd_forwarder::metrics=debug`).

use lbfwd_config::settings::{LogFormat, LogSection};
use log::{Level, LevelFilter, Log, Metadata, Record};
use std::io::Write;
use std::sync::RwLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// A parsed level filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    default: LevelFilter,
    /// (target prefix, level), longest prefix first.
    targets: Vec<(String, LevelFilter)>,
}

impl Default for Filter {
    fn default() -> Self {
        Filter {
            default: LevelFilter::Info,
            targets: Vec::new(),
        }
    }
}

fn level(text: &str) -> Option<LevelFilter> {
    text.trim().parse().ok()
}

impl Filter {
    /// Parses `level` / `target=level` entries (a bare target means
    /// `trace` for it, as in `RUST_LOG`); an entry with a bad level is an
    /// error naming it.
    pub fn parse(text: &str) -> Result<Filter, String> {
        lbfwd_config::settings::check_log_filter(text)?;
        let mut filter = Filter::default();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            match entry.split_once('=') {
                Some((target, l)) => filter.targets.push((
                    target.trim().to_string(),
                    level(l).unwrap_or(LevelFilter::Trace),
                )),
                None => match level(entry) {
                    Some(l) => filter.default = l,
                    None => filter.targets.push((entry.to_string(), LevelFilter::Trace)),
                },
            }
        }
        filter
            .targets
            .sort_by_key(|(target, _)| std::cmp::Reverse(target.len()));
        Ok(filter)
    }

    /// The most verbose level any target may log at.
    pub fn max(&self) -> LevelFilter {
        self.targets
            .iter()
            .map(|(_, l)| *l)
            .fold(self.default, |a, b| a.max(b))
    }

    /// Whether `target` logs at `level`.
    pub fn enabled(&self, target: &str, level: Level) -> bool {
        let limit = self
            .targets
            .iter()
            .find(|(t, _)| {
                target == t
                    || target
                        .strip_prefix(t.as_str())
                        .is_some_and(|rest| rest.starts_with("::"))
            })
            .map_or(self.default, |(_, l)| *l);
        level <= limit
    }
}

/// A line format (`auto` resolved).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Priority prefix, no timestamp (the journal).
    Plain,
    /// Timestamp, level, target, message.
    Text,
    /// JSON lines.
    Json,
}

impl Format {
    /// Resolves `[log] format`: `auto` is `plain` when stderr is the
    /// journal, else `text`.
    pub fn resolve(format: LogFormat) -> Format {
        match format {
            LogFormat::Plain => Format::Plain,
            LogFormat::Text => Format::Text,
            LogFormat::Json => Format::Json,
            LogFormat::Auto if stderr_is_journal() => Format::Plain,
            LogFormat::Auto => Format::Text,
        }
    }
}

/// True when `JOURNAL_STREAM` (`DEVICE:INODE`, set by systemd) names the
/// file stderr is.
pub fn stderr_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(stream) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(meta) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    stream == format!("{}:{}", meta.dev(), meta.ino())
}

struct Logger {
    config: RwLock<(Filter, Format)>,
}

static LOGGER: Logger = Logger {
    config: RwLock::new((
        Filter {
            default: LevelFilter::Info,
            targets: Vec::new(),
        },
        Format::Text,
    )),
};

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        let config = self.config.read().unwrap_or_else(|e| e.into_inner());
        config.0.enabled(metadata.target(), metadata.level())
    }

    fn log(&self, record: &Record<'_>) {
        let (enabled, format) = {
            let config = self.config.read().unwrap_or_else(|e| e.into_inner());
            (config.0.enabled(record.target(), record.level()), config.1)
        };
        if enabled {
            let line = format_line(format, record, SystemTime::now());
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        }
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}

/// One record as a line (with its newline).
pub fn format_line(format: Format, record: &Record<'_>, now: SystemTime) -> String {
    let level = record.level();
    let message = record.args().to_string();
    match format {
        Format::Plain => {
            // sd-daemon(3) priorities: err 3, warning 4, info 6, debug 7.
            let prio = match level {
                Level::Error => 3,
                Level::Warn => 4,
                Level::Info => 6,
                Level::Debug | Level::Trace => 7,
            };
            // One journal entry per line: continuation lines are indented.
            let message = message.replace('\n', "\n    ");
            format!("<{prio}>{level} {}: {message}\n", record.target())
        }
        Format::Text => format!(
            "{} {level:<5} {}: {message}\n",
            rfc3339(now),
            record.target()
        ),
        Format::Json => {
            let object = serde_json::json!({
                "timestamp": rfc3339(now),
                "level": level.as_str(),
                "target": record.target(),
                "message": message,
            });
            format!("{object}\n")
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` in UTC.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// The filter from `LBFWD_LOG`, else `RUST_LOG`, if set (and valid; an
/// invalid one is reported and ignored).
fn env_filter() -> Option<Filter> {
    for name in ["LBFWD_LOG", "RUST_LOG"] {
        if let Some(text) = std::env::var(name).ok().filter(|v| !v.trim().is_empty()) {
            match Filter::parse(&text) {
                Ok(f) => return Some(f),
                Err(why) => {
                    eprintln!("lbfwd: warning: {name}={text:?} ignored: {why}");
                    return None;
                }
            }
        }
    }
    None
}

/// Installs the logger (once per process) with the environment's filter
/// (default `info`) and the `auto` format, before any config is read.
pub fn init() {
    apply(
        env_filter().unwrap_or_default(),
        Format::resolve(LogFormat::Auto),
    );
    // A second init (tests in one process) keeps the first logger.
    let _ = log::set_logger(&LOGGER);
}

/// Applies `[log]` from the config; the environment's filter still wins.
pub fn configure(section: &LogSection) {
    let filter = env_filter()
        .or_else(|| Filter::parse(&section.level).ok())
        .unwrap_or_default();
    apply(filter, Format::resolve(section.format));
}

fn apply(filter: Filter, format: Format) {
    log::set_max_level(filter.max());
    *LOGGER.config.write().unwrap_or_else(|e| e.into_inner()) = (filter, format);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_pick_the_longest_target() {
        let f = Filter::parse("warn,lbfwd_forwarder=info,lbfwd_forwarder::metrics=trace").unwrap();
        assert!(f.enabled("lbfwd_forwarder::metrics::server", Level::Trace));
        assert!(f.enabled("lbfwd_forwarder::daemon", Level::Info));
        assert!(!f.enabled("lbfwd_forwarder::daemon", Level::Debug));
        assert!(
            !f.enabled("lbfwd_forwarderx", Level::Info),
            "prefix of a path only"
        );
        assert!(!f.enabled("other", Level::Info));
        assert!(f.enabled("other", Level::Warn));
        assert_eq!(f.max(), LevelFilter::Trace);
        let f = Filter::parse("lbfwd_forwarder").unwrap();
        assert!(f.enabled("lbfwd_forwarder::x", Level::Trace));
        assert!(!f.enabled("x", Level::Debug));
        assert_eq!(Filter::parse("off").unwrap().max(), LevelFilter::Off);
        let e = Filter::parse("info,x=loud").unwrap_err();
        assert!(e.contains("\"loud\" is not a level"), "{e}");
    }

    #[test]
    fn line_formats() {
        let t = UNIX_EPOCH + std::time::Duration::from_millis(1_767_322_845_678);
        assert_eq!(rfc3339(t), "2026-01-02T03:00:45.678Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let args = format_args!("a \"quoted\"\nline");
        let record = Record::builder()
            .level(Level::Warn)
            .target("lbfwd_forwarder::daemon")
            .args(args)
            .build();
        assert_eq!(
            format_line(Format::Plain, &record, t),
            "<4>WARN lbfwd_forwarder::daemon: a \"quoted\"\n    line\n"
        );
        assert_eq!(
            format_line(Format::Text, &record, t),
            "2026-01-02T03:00:45.678Z WARN  lbfwd_forwarder::daemon: a \"quoted\"\nline\n"
        );
        let json: serde_json::Value =
            serde_json::from_str(&format_line(Format::Json, &record, t)).unwrap();
        assert_eq!(json["level"], "WARN");
        assert_eq!(json["message"], "a \"quoted\"\nline");
        assert_eq!(json["timestamp"], "2026-01-02T03:00:45.678Z");
    }
}
