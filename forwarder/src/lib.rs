//! lbfwd's dataplane: typed views over packet headers, the per-packet
//! pipeline, Maglev tables, per-worker flow state, packet I/O backends and the
//! pinned poll-mode worker loop.
//!
//! The packet path, bottom up (each module uses only those before it; the
//! pipeline also implements the backends' interface, [`io::Processor`]):
//! [`wire`] (header views, parsers, emitters), [`frame`] (a packet buffer),
//! [`counters`] (per-worker counters, drop reasons), [`flow`] (flow key,
//! hash, table), [`maglev`], [`encap`] (outer headers toward a target),
//! [`tables`] (the published tables: VIP map, filters, Maglev, templates),
//! [`pipeline`] (the stages, in order). Around it: [`io`] (backends),
//! [`worker`] (the poll loop), [`runtime`], [`dataplane`], [`daemon`],
//! [`announce`] (BGP announcements), [`report`].

pub mod announce;
pub mod counters;
pub mod daemon;
pub mod dataplane;
pub mod encap;
pub mod flow;
pub mod frame;
pub mod health;
pub mod io;
pub mod l2;
pub mod logging;
pub mod maglev;
pub mod metrics;
pub mod notify;
pub mod pipeline;
pub mod report;
pub mod runtime;
pub mod sync;
pub mod tables;
pub mod wire;
pub mod worker;
