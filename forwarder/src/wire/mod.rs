//! Typed zero-copy views over packet headers (being written).
