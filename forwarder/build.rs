//! Build script: compiles the C shims of the optional AF_XDP and DPDK
//! backends (their libraries' static inline functions) when those features
//! are on. A default build needs no system library.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
}
