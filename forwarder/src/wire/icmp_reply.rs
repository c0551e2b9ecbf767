//! In-place builders for the ICMP answers lbfwd sends (being written).
