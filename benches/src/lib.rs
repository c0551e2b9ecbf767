//! Shared helpers of lbfwd's benchmarks: synthetic configs and packets.
#![deny(unsafe_code)]
