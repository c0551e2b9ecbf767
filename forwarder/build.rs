//! Build script: compiles the C shims of the optional AF_XDP and DPDK
//! backends (their libraries' static inline functions) when those features
//! are on. A default build needs no system library.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if env::var_os("CARGO_FEATURE_AF_XDP").is_some() {
        af_xdp();
    }
    if env::var_os("CARGO_FEATURE_DPDK").is_some() {
        build_dpdk();
    }
}

/// The `af_xdp` feature: links libxdp and libbpf (found through pkg-config),
/// compiles `csrc/xsk_shim.c` (wrappers of the static inline ring helpers of
/// `xdp/xsk.h`) and the XDP program `csrc/xsk_vip.bpf.c` (clang, target
/// bpf) into `$OUT_DIR/xsk_vip.bpf.o`, which the backend embeds.
///
/// Needs `pkg-config`, `libxdp-dev`, `libbpf-dev` and `clang` (set `CLANG`
/// to use another one). Every missing piece stops the build with a message
/// that says what to install.
fn af_xdp() {
    const SHIM: &str = "csrc/xsk_shim.c";
    const PROG: &str = "csrc/xsk_vip.bpf.c";
    println!("cargo:rerun-if-changed={SHIM}");
    println!("cargo:rerun-if-changed={PROG}");
    println!("cargo:rerun-if-env-changed=CLANG");

    let cflags = pkg_config(&["--cflags", "libxdp", "libbpf"]);
    let libs = pkg_config(&["--libs", "libxdp", "libbpf"]);

    let mut build = cc::Build::new();
    build.file(SHIM).warnings(true).extra_warnings(true);
    for flag in cflags.split_whitespace() {
        build.flag(flag);
    }
    build.compile("lbfwd_xsk_shim");

    // After the shim, so a static link resolves the shim's references.
    for flag in libs.split_whitespace() {
        if let Some(lib) = flag.strip_prefix("-l") {
            println!("cargo:rustc-link-lib={lib}");
        } else if let Some(dir) = flag.strip_prefix("-L") {
            println!("cargo:rustc-link-search=native={dir}");
        }
    }

    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    compile_bpf(Path::new(PROG), &out.join("xsk_vip.bpf.o"), &cflags);
}

/// Runs `pkg-config ARGS` and returns its output, or stops the build with a
/// message naming the Debian packages to install.
fn pkg_config(args: &[&str]) -> String {
    let output = Command::new("pkg-config").args(args).output();
    match output {
        Ok(o) if o.status.success() => String::from_utf8(o.stdout)
            .expect("pkg-config prints UTF-8")
            .trim()
            .to_owned(),
        Ok(o) => panic!(
            "feature af_xdp: `pkg-config {}` failed: {}\n\
             install libxdp and libbpf (Debian: apt-get install libxdp-dev libbpf-dev)",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => panic!(
            "feature af_xdp: cannot run pkg-config: {e}\n\
             install it (Debian: apt-get install pkg-config)"
        ),
    }
}

/// Compiles the XDP program `src` into the BPF object `dst` with clang.
fn compile_bpf(src: &Path, dst: &Path, cflags: &str) {
    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".to_owned());
    let mut cmd = Command::new(&clang);
    cmd.args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror", "-c"])
        .arg(src)
        .arg("-o")
        .arg(dst)
        .args(cflags.split_whitespace());
    // <linux/bpf.h> includes <asm/types.h>, which Debian keeps under the
    // multiarch directory that clang -target bpf does not search.
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let multiarch = PathBuf::from(format!("/usr/include/{arch}-linux-gnu"));
    if multiarch.is_dir() {
        cmd.arg("-I").arg(&multiarch);
    }
    match cmd.status() {
        Ok(status) if status.success() => {}
        Ok(status) => panic!(
            "feature af_xdp: `{clang}` could not compile {} ({status}); see its messages above",
            src.display()
        ),
        Err(e) => panic!(
            "feature af_xdp: cannot run `{clang}` to compile {}: {e}\n\
             install clang (Debian: apt-get install clang) or set CLANG",
            src.display()
        ),
    }
}

/// The `dpdk` feature: compiles `csrc/dpdk_shim.c` (DPDK's static inline
/// functions as real symbols, plus the slow-path calls with large argument
/// structs) with `pkg-config --cflags libdpdk` and links the DPDK libraries
/// `pkg-config --libs libdpdk` names. Needs `pkg-config` and DPDK 22.11
/// (Debian: `apt-get install pkg-config libdpdk-dev`); a missing piece stops
/// the build with a message that says what to install. Self-contained: it
/// shares no helper with the AF_XDP section.
fn build_dpdk() {
    const SHIM: &str = "csrc/dpdk_shim.c";
    const HEADER: &str = "csrc/dpdk_shim.h";
    println!("cargo:rerun-if-changed={SHIM}");
    println!("cargo:rerun-if-changed={HEADER}");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    let run = |args: &[&str]| -> String {
        match Command::new("pkg-config").args(args).output() {
            Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_owned(),
            Ok(o) => panic!(
                "feature dpdk: `pkg-config {}` failed: {}\n\
                 install DPDK 22.11 (Debian: apt-get install libdpdk-dev) or point \
                 PKG_CONFIG_PATH at its libdpdk.pc",
                args.join(" "),
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => panic!(
                "feature dpdk: cannot run pkg-config: {e}\n\
                 install it (Debian: apt-get install pkg-config)"
            ),
        }
    };
    let version = run(&["--modversion", "libdpdk"]);
    if !version.starts_with("22.11") {
        println!(
            "cargo:warning=feature dpdk: found DPDK {version}; lbfwd is written against 22.11 \
             (the shim's static asserts stop the build if the mbuf layout differs)"
        );
    }
    let cflags = run(&["--cflags", "libdpdk"]);
    let libs = run(&["--libs", "libdpdk"]);

    let mut build = cc::Build::new();
    build
        .file(SHIM)
        .warnings(true)
        .extra_warnings(true)
        // DPDK's headers trip -Wextra in places that are not ours.
        .flag_if_supported("-Wno-unused-parameter");
    for flag in cflags.split_whitespace() {
        build.flag(flag);
    }
    build.compile("lbfwd_dpdk_shim");

    // After the shim, so a static link resolves the shim's references. The
    // Rust linker driver already passes --as-needed, so only the libraries
    // the shim uses end up in DT_NEEDED; the PMDs are plugins that EAL loads
    // from its driver directory at run time.
    for flag in libs.split_whitespace() {
        if let Some(lib) = flag.strip_prefix("-l") {
            println!("cargo:rustc-link-lib={lib}");
        } else if let Some(dir) = flag.strip_prefix("-L") {
            println!("cargo:rustc-link-search=native={dir}");
        }
    }
}
