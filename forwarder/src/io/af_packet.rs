//! The `af_packet` backend (being written).
