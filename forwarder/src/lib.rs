//! lbfwd's dataplane: typed views over packet headers, the per-packet
//! pipeline, Maglev tables, per-worker flow state, packet I/O backends and the
//! pinned poll-mode worker loop.

pub mod announce;
pub mod conntrack;
pub mod counters;
pub mod daemon;
pub mod dataplane;
pub mod flow;
pub mod frag;
pub mod frame;
pub mod io;
pub mod l2;
pub mod maglev;
pub mod pipeline;
pub mod report;
pub mod runtime;
pub mod tables;
pub mod wire;
pub mod worker;
