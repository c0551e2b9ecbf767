//! `lbfwd replay`: runs every frame of a pcap file through the same pipeline
//! a worker runs, in order, and writes what it transmits to another pcap
//! file.

use crate::cmd::check::Output;
use crate::cmd::ConfigArgs;
use lbfwd_config::settings::Backend;
use lbfwd_config::{Config, Errors, Resolution, Settings};
use lbfwd_forwarder::counters::WorkerCounters;
use lbfwd_forwarder::frame::{Frame, HEADROOM};
use lbfwd_forwarder::io::pcap::{PcapReader, PcapWriter};
use lbfwd_forwarder::pipeline::{Pipeline, PipelineConfig, Verdict};
use lbfwd_forwarder::report::{extra_counters, render_text, snapshot, WorkerView};
use lbfwd_forwarder::tables::{Publisher, TableBuilder, UnderlayParams};
use serde::de::IntoDeserializer;
use serde::Deserialize;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Arguments of `lbfwd replay`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The configuration. Its backend's I/O settings are not used: replay
    /// reads `--input` and writes `--output`.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The frames to run through the pipeline (classic pcap, Ethernet).
    #[arg(long, value_name = "IN.pcap")]
    pub input: PathBuf,
    /// Where transmitted frames are written (classic pcap, Ethernet).
    #[arg(long, value_name = "OUT.pcap")]
    pub output: PathBuf,
    /// Output format of the verdict counts.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
    pub format: Output,
}

/// Runs `lbfwd replay`.
pub fn main(args: Args) -> ExitCode {
    match replay(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("lbfwd replay: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Loads the configuration as `lbfwd check` does, every key validated and
/// every error located at its line, except that `[dataplane] backend` is
/// taken as `memory`: replay reads its frames from `--input` and never opens
/// the configured backend, so nothing that backend needs (interfaces, the
/// `[dataplane.pcap]` files) is demanded.
fn load(config: &ConfigArgs) -> Result<(Settings, Resolution), Errors> {
    let Ok(text) = std::fs::read_to_string(&config.config) else {
        // The loader says why the file cannot be read, as `check` does.
        let loaded = Config::load_with_manifests(&config.config, &config.manifests)?;
        return Ok((loaded.settings.clone(), loaded.resolve()?));
    };
    let text = with_memory_backend(&text);
    let name = config.config.display().to_string();
    let (_, settings, mut state) = Config::parse_unresolved(&text, &name)?;
    let mut errors = Errors::default();
    for manifest in &config.manifests {
        if let Err(e) = state.load_manifest_file(manifest) {
            errors.extend(e);
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let resolution = state.resolve(&settings.underlay)?;
    Ok((settings, resolution))
}

/// `text` with the value of `[dataplane] backend`, when it names a backend,
/// replaced by `"memory"` in place: every other byte, and so every line an
/// error points at, stays as written. Anything else (a syntax error, no or
/// an unknown backend) is left for the loader to report.
fn with_memory_backend(text: &str) -> String {
    let Ok(doc) = toml_edit::ImDocument::parse(text) else {
        return text.to_string();
    };
    let backend = doc
        .get("dataplane")
        .and_then(|dataplane| dataplane.get("backend"))
        .and_then(|item| item.as_value());
    let span = backend.and_then(|value| {
        let name = value.as_str()?;
        let known = Backend::deserialize(name.into_deserializer())
            .map_err(|_: serde::de::value::Error| ())
            .is_ok();
        known.then(|| value.span()).flatten()
    });
    match span {
        Some(span) => format!("{}\"memory\"{}", &text[..span.start], &text[span.end..]),
        None => text.to_string(),
    }
}

fn replay(args: &Args) -> Result<(), String> {
    let (settings, resolution) = load(&args.config).map_err(|errors| errors.to_string())?;
    let underlay = UnderlayParams::from_settings(&settings.underlay, None);
    let (tables, _) = TableBuilder::new()
        .build(&resolution.resolved, &underlay, 1)
        .map_err(|e| e.to_string())?;
    let publisher = Publisher::new(tables, 1);
    let counters = Arc::new(WorkerCounters::new());
    let mut pipeline_config = PipelineConfig::from_settings(&settings.flow);
    // One capture needs far fewer flows than a live worker.
    pipeline_config.flow_capacity = pipeline_config.flow_capacity.min(1 << 16);
    let mut pipeline = Pipeline::new(publisher.reader(0), Arc::clone(&counters), &pipeline_config)
        .map_err(|e| e.to_string())?;
    let mut reader = PcapReader::open(&args.input).map_err(|e| e.to_string())?;
    let mut writer = PcapWriter::create(&args.output).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; HEADROOM + 65_536 + 256];
    let mut frames = 0u64;
    let mut first_ts = None;
    let mut write_error = None;
    while let Some(record) = reader.next_record().map_err(|e| e.to_string())? {
        frames += 1;
        let ts = record.timestamp_ns;
        let start = *first_ts.get_or_insert(ts);
        let len = record.data.len();
        buf[HEADROOM..HEADROOM + len].copy_from_slice(record.data);
        pipeline.begin(ts.saturating_sub(start));
        let mut frame = Frame::new(&mut buf, HEADROOM, len);
        if pipeline.run(&mut frame) == Verdict::Tx {
            writer.write(ts, frame.data()).map_err(|e| e.to_string())?;
        }
        pipeline.release_held(&mut |held: &[u8]| match writer.write(ts, held) {
            Ok(()) => true,
            Err(e) => {
                write_error.get_or_insert(e.to_string());
                false
            }
        });
        if let Some(e) = write_error.take() {
            return Err(e);
        }
    }
    writer.flush().map_err(|e| e.to_string())?;
    let view = WorkerView {
        counters: &counters,
        core: None,
        flows: pipeline.flows() as u64,
    };
    let (snap, _) = snapshot(pipeline.tables(), &[view], 0, None);
    let extra = extra_counters(&counters);
    match args.format {
        Output::Text => {
            crate::cmd::write_stdout(&format!(
                "{frames} frames from {}\n{}",
                args.input.display(),
                render_text(&snap, &extra)
            ));
        }
        Output::Json => {
            let mut value = serde_json::to_value(&snap).map_err(|e| e.to_string())?;
            value["frames"] = frames.into();
            value["counters"] = extra
                .iter()
                .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
                .collect::<serde_json::Map<_, _>>()
                .into();
            crate::cmd::write_stdout(&format!(
                "{}\n",
                serde_json::to_string_pretty(&value).map_err(|e| e.to_string())?
            ));
        }
    }
    Ok(())
}
