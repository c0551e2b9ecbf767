//! `lbfwd replay`: runs every frame of a pcap file through the same pipeline
//! a worker runs, in order, and writes what it transmits to another pcap
//! file.

use crate::cmd::check::Output;
use lbfwd_config::Config;
use lbfwd_forwarder::counters::WorkerCounters;
use lbfwd_forwarder::frame::{Frame, HEADROOM};
use lbfwd_forwarder::io::pcap::{PcapReader, PcapWriter};
use lbfwd_forwarder::pipeline::{Pipeline, PipelineConfig, Verdict};
use lbfwd_forwarder::report::{extra_counters, render_text, snapshot, WorkerView};
use lbfwd_forwarder::tables::{Publisher, TableBuilder, UnderlayParams};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Arguments of `lbfwd replay`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The lbfwd TOML configuration file.
    #[arg(long, short = 'c', value_name = "FILE.toml")]
    pub config: PathBuf,
    /// Ironcore manifests applied on top of the file's state; repeatable.
    #[arg(short = 'f', long = "file", value_name = "MANIFEST.yaml")]
    pub manifests: Vec<PathBuf>,
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

fn replay(args: &Args) -> Result<(), String> {
    let config = Config::load_with_manifests(&args.config, &args.manifests)
        .map_err(|errors| errors.to_string())?;
    let resolution = config.resolve().map_err(|errors| errors.to_string())?;
    let underlay = UnderlayParams::from_settings(&config.settings.underlay, None);
    let (tables, _) = TableBuilder::new()
        .build(&resolution.resolved, &underlay, 1)
        .map_err(|e| e.to_string())?;
    let publisher = Publisher::new(tables, 1);
    let counters = Arc::new(WorkerCounters::new());
    let mut pipeline_config = PipelineConfig::from_settings(&config.settings.flow);
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
