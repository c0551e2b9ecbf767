//! Flows: what names one ([`key`]: the 5-tuple and the network, and its
//! XXH3 flow hash, fixed by specification), the hash functions ([`hash`]:
//! XXH3 and XXH64 primitives, bit-exact with the reference), and the
//! per-worker table that remembers each flow's target ([`table`]), and the
//! per-worker fragment tracker, which remembers what happened to each
//! fragmented datagram's first fragment ([`frag`]), the new-flow flood
//! guard that limits how many new flows per second enter the table
//! ([`guard`]), and the files that keep the flow tables across a restart
//! ([`persist`]).

pub mod frag;
pub mod guard;
pub mod hash;
pub mod key;
pub mod persist;
pub mod table;

#[cfg(test)]
mod tests;

pub use hash::{xxh3_64_17to128, xxh64};
pub use key::*;
pub use table::{FlowTable, FlowTableError, FlowTimeouts};
