//! Shared code of lbfwd's benchmarks: synthetic configurations
//! ([`synth`]), the packet generator and its in-process queue
//! ([`traffic`]), the description of the machine every result carries
//! ([`machine`]), and the result tables and plots ([`report`], the
//! many-flows table in [`many`]).
//!
//! The `lbfwd-pktgen` binary (`src/bin/lbfwd-pktgen.rs`) drives all of it;
//! `scripts/bench.sh` runs the whole suite.

pub mod machine;
pub mod many;
pub mod report;
pub mod synth;
pub mod traffic;
