//! Helpers of lbfwd's end-to-end tests: network namespaces, veth pairs,
//! backends with the kernel's VXLAN decapsulation, cleanup on every exit.
#![deny(unsafe_code)]
