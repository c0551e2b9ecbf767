//! `lbfwd replay` decoded by an independent decoder (issue 3, "Done
//! when"): for each encapsulation, the built binary runs a scapy-generated
//! capture (`golden/replay-<encap>.pcap`, from `scripts/gen_golden.py`)
//! and tshark decodes what it wrote: outer Ethernet, IPv4/IPv6, UDP, VXLAN
//! (GUE variant 1 is decoded as IP after UDP), checksums verified by
//! tshark, the VNI, and the inner packet byte for byte equal to the input IP
//! packet. The `-o json` verdict counts are checked against the capture.
//!
//! tshark (Debian package `tshark`) must be installed: the test fails, with
//! that message, when it is not.

use serde_json::Value;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const NEXT_HOP_MAC: &str = "02:00:00:00:00:01";
const SOURCE_MAC: &str = "02:00:00:00:02:02";
const VNI: u32 = 0x12_3456;

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

/// A scratch directory for one test, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("lbfwd-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn lbfwd(args: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lbfwd"))
        .args(args)
        .output()
        .expect("run lbfwd")
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// What one transmitted frame must decode to (`replay-<encap>.expect`).
#[derive(Debug, Default)]
struct Expected {
    input: usize,
    target: String,
    underlay: String,
    source: String,
    sport: Option<u16>,
    dport: Option<u16>,
    vni: Option<u32>,
    inner_mac: Option<String>,
    label: Option<u32>,
    inner: Vec<u8>,
    frame: Vec<u8>,
}

fn opt<T: std::str::FromStr>(s: &str) -> Option<T>
where
    T::Err: std::fmt::Debug,
{
    (s != "-").then(|| s.parse().expect("a number or -"))
}

/// The input frame count and the expected outputs, in order.
fn load_expect(encap: &str) -> (usize, Vec<Expected>) {
    let path = golden(&format!("replay-{encap}.expect"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut frames = 0;
    let mut out: Vec<Expected> = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let words: Vec<&str> = line.split(' ').collect();
        match words[0] {
            "frames" => frames = words[1].parse().expect("frame count"),
            "input" => {
                let kv = |k: &str| {
                    let i = words
                        .iter()
                        .position(|w| *w == k)
                        .unwrap_or_else(|| panic!("{k} in {line}"));
                    words[i + 1]
                };
                out.push(Expected {
                    input: words[1].parse().expect("input index"),
                    target: kv("target").into(),
                    underlay: kv("underlay").into(),
                    source: kv("source").into(),
                    sport: opt(kv("sport")),
                    dport: opt(kv("dport")),
                    vni: opt(kv("vni")),
                    inner_mac: (kv("inner_mac") != "-").then(|| kv("inner_mac").to_string()),
                    label: opt(kv("label")),
                    ..Expected::default()
                });
            }
            "inner" => out.last_mut().expect("input first").inner = unhex(words[1]),
            "frame" => out.last_mut().expect("input first").frame = unhex(words[1]),
            w => panic!("{}: unknown line {w}", path.display()),
        }
    }
    (frames, out)
}

/// The frames of a classic pcap file (microsecond or nanosecond, either
/// byte order).
fn pcap_frames(path: &Path) -> Vec<Vec<u8>> {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let magic = u32::from_le_bytes(b[0..4].try_into().expect("4 bytes"));
    let le = match magic {
        0xa1b2_c3d4 | 0xa1b2_3c4d => true,
        0xd4c3_b2a1 | 0x4d3c_b2a1 => false,
        m => panic!("{}: not a pcap file (magic {m:#x})", path.display()),
    };
    let u32_at = |o: usize| {
        let w: [u8; 4] = b[o..o + 4].try_into().expect("4 bytes");
        if le {
            u32::from_le_bytes(w)
        } else {
            u32::from_be_bytes(w)
        }
    };
    assert_eq!(
        u32_at(20),
        1,
        "{}: link type is not Ethernet",
        path.display()
    );
    let mut frames = Vec::new();
    let mut o = 24;
    while o < b.len() {
        let caplen = u32_at(o + 8) as usize;
        frames.push(b[o + 16..o + 16 + caplen].to_vec());
        o += 16 + caplen;
    }
    frames
}

/// Decodes `pcap` with tshark: one JSON object per frame (its `layers`).
fn tshark(pcap: &Path, extra: &[&str]) -> Vec<Value> {
    let out = Command::new("tshark")
        .args(["-r"])
        .arg(pcap)
        .args([
            "-T",
            "json",
            "-x",
            "--no-duplicate-keys",
            "-o",
            "ip.check_checksum:TRUE",
            "-o",
            "udp.check_checksum:TRUE",
            "-o",
            "tcp.check_checksum:TRUE",
        ])
        .args(extra)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run tshark ({e}): this test needs it to decode lbfwd's output; \
                 install the Debian package `tshark` (scripts/test.sh and CI do)"
            )
        });
    assert!(
        out.status.success(),
        "tshark failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).expect("tshark JSON");
    doc.as_array()
        .expect("an array of frames")
        .iter()
        .map(|p| p["_source"]["layers"].clone())
        .collect()
}

/// The occurrences of a layer (`--no-duplicate-keys` makes repeated layers
/// an array), each with its offset in the frame, in frame order.
fn layers<'a>(l: &'a Value, name: &str) -> Vec<(usize, &'a Value)> {
    let Some(v) = l.get(name) else {
        return Vec::new();
    };
    let raws = l
        .get(format!("{name}_raw"))
        .map(|r| match r {
            Value::Array(a) if a.first().is_some_and(Value::is_array) => a.iter().collect(),
            r => vec![r],
        })
        .unwrap_or_default();
    let values: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        v => vec![v],
    };
    assert_eq!(values.len(), raws.len(), "{name}: values and raw entries");
    let mut out: Vec<(usize, &Value)> = raws
        .iter()
        .map(|r| r[1].as_u64().expect("raw offset") as usize)
        .zip(values)
        .collect();
    out.sort_by_key(|(o, _)| *o);
    out
}

fn field<'a>(layer: &'a Value, name: &str) -> &'a str {
    layer
        .get(name)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no field {name} in {layer}"))
}

/// The IP layers (IPv4 and IPv6) of a frame, by offset.
fn ip_layers(l: &Value) -> Vec<(usize, &Value, u8)> {
    let mut v: Vec<(usize, &Value, u8)> = layers(l, "ip")
        .into_iter()
        .map(|(o, x)| (o, x, 4))
        .chain(layers(l, "ipv6").into_iter().map(|(o, x)| (o, x, 6)))
        .collect();
    v.sort_by_key(|(o, _, _)| *o);
    v
}

/// The DS field / traffic class of an IP packet.
fn tos(ip: &[u8]) -> u8 {
    match ip[0] >> 4 {
        4 => ip[1],
        _ => (ip[0] << 4) | (ip[1] >> 4),
    }
}

fn check_frame(encap: &str, n: usize, l: &Value, e: &Expected) {
    let ctx = format!("{encap} output frame {n} (input frame {})", e.input);
    let frame_raw = l["frame_raw"]
        .as_array()
        .and_then(|a| a.first())
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{ctx}: no frame_raw"));
    let frame = unhex(frame_raw);
    assert!(
        l.get("_ws.malformed").is_none(),
        "{ctx}: tshark says malformed: {l}"
    );

    // Outer Ethernet.
    let eths = layers(l, "eth");
    let (o, outer_eth) = eths[0];
    assert_eq!(o, 0, "{ctx}");
    assert_eq!(
        field(outer_eth, "eth.dst"),
        NEXT_HOP_MAC,
        "{ctx}: outer destination MAC"
    );
    assert_eq!(
        field(outer_eth, "eth.src"),
        SOURCE_MAC,
        "{ctx}: outer source MAC"
    );

    // Outer IP.
    let ips = ip_layers(l);
    assert_eq!(ips.len(), 2, "{ctx}: outer and inner IP");
    let (outer_off, outer, outer_v) = ips[0];
    assert_eq!(outer_off, 14, "{ctx}: outer IP right after Ethernet");
    let inner_tos = tos(&e.inner);
    let underlay: IpAddr = e.underlay.parse().expect("underlay");
    let proto = match (encap, e.inner[0] >> 4) {
        ("ipip", 4) => "4",
        ("ipip", _) => "41",
        _ => "17",
    };
    let outer_len;
    if outer_v == 4 {
        assert!(underlay.is_ipv4(), "{ctx}: outer IPv4 for {underlay}");
        assert_eq!(field(outer_eth, "eth.type"), "0x0800", "{ctx}");
        assert_eq!(field(outer, "ip.src"), e.source, "{ctx}: outer source");
        assert_eq!(
            field(outer, "ip.dst"),
            e.underlay,
            "{ctx}: outer destination"
        );
        assert_eq!(field(outer, "ip.ttl"), "64", "{ctx}: TTL");
        assert_eq!(field(outer, "ip.flags"), "0x02", "{ctx}: DF set, MF clear");
        assert_eq!(field(outer, "ip.frag_offset"), "0", "{ctx}");
        assert_eq!(field(outer, "ip.id"), "0x0000", "{ctx}: id 0");
        assert_eq!(field(outer, "ip.hdr_len"), "20", "{ctx}");
        assert_eq!(
            field(outer, "ip.dsfield"),
            format!("{inner_tos:#04x}"),
            "{ctx}: TOS copied"
        );
        assert_eq!(field(outer, "ip.proto"), proto, "{ctx}: protocol");
        assert_eq!(
            field(outer, "ip.checksum.status"),
            "1",
            "{ctx}: outer IPv4 checksum (tshark)"
        );
        outer_len = 20;
        let total: usize = field(outer, "ip.len").parse().expect("ip.len");
        assert_eq!(total, frame.len() - 14, "{ctx}: outer total length");
    } else {
        assert!(underlay.is_ipv6(), "{ctx}: outer IPv6 for {underlay}");
        assert_eq!(field(outer_eth, "eth.type"), "0x86dd", "{ctx}");
        assert_eq!(field(outer, "ipv6.src"), e.source, "{ctx}: outer source");
        assert_eq!(
            field(outer, "ipv6.dst"),
            e.underlay,
            "{ctx}: outer destination"
        );
        assert_eq!(field(outer, "ipv6.hlim"), "64", "{ctx}: hop limit");
        assert_eq!(field(outer, "ipv6.nxt"), proto, "{ctx}: next header");
        let tclass = u32::from_str_radix(field(outer, "ipv6.tclass").trim_start_matches("0x"), 16)
            .expect("tclass");
        assert_eq!(tclass, u32::from(inner_tos), "{ctx}: traffic class copied");
        let flow = u32::from_str_radix(field(outer, "ipv6.flow").trim_start_matches("0x"), 16)
            .expect("flow label");
        assert_eq!(Some(flow), e.label, "{ctx}: flow label from the flow hash");
        let plen: usize = field(outer, "ipv6.plen").parse().expect("plen");
        assert_eq!(plen, frame.len() - 54, "{ctx}: payload length");
        outer_len = 40;
    }

    // UDP, VXLAN / GUE.
    let mut inner_start = 14 + outer_len;
    if encap != "ipip" {
        let udps = layers(l, "udp");
        let (uo, udp) = udps[0];
        assert_eq!(uo, 14 + outer_len, "{ctx}: UDP after the outer IP header");
        assert_eq!(
            field(udp, "udp.srcport").parse().ok(),
            e.sport,
            "{ctx}: UDP source port"
        );
        assert_eq!(
            field(udp, "udp.dstport").parse().ok(),
            e.dport,
            "{ctx}: UDP destination port"
        );
        let ulen: usize = field(udp, "udp.length").parse().expect("udp.length");
        assert_eq!(ulen, frame.len() - uo, "{ctx}: UDP length");
        let sport = e.sport.expect("sport");
        assert!(
            sport >= 0xC000,
            "{ctx}: source port {sport} not in the dynamic range"
        );
        if outer_v == 4 {
            assert_eq!(
                field(udp, "udp.checksum"),
                "0x0000",
                "{ctx}: no UDP checksum over IPv4"
            );
        } else {
            assert_eq!(
                field(udp, "udp.checksum.status"),
                "1",
                "{ctx}: UDP checksum over IPv6 (tshark)"
            );
        }
        inner_start = uo + 8;
        if encap == "vxlan" {
            let vx = layers(l, "vxlan");
            assert_eq!(vx.len(), 1, "{ctx}: one VXLAN header");
            assert_eq!(
                field(vx[0].1, "vxlan.flags"),
                "0x0800",
                "{ctx}: I flag only"
            );
            assert_eq!(
                field(vx[0].1, "vxlan.vni").parse().ok(),
                e.vni,
                "{ctx}: VNI"
            );
            assert_eq!(e.vni, Some(VNI));
            assert_eq!(field(vx[0].1, "vxlan.reserved8"), "0", "{ctx}");
            let (io, inner_eth) = eths[1];
            assert_eq!(io, inner_start + 8, "{ctx}: inner Ethernet after VXLAN");
            assert_eq!(
                Some(field(inner_eth, "eth.dst").to_string()),
                e.inner_mac,
                "{ctx}: inner destination MAC"
            );
            assert_eq!(
                field(inner_eth, "eth.src"),
                SOURCE_MAC,
                "{ctx}: inner source MAC"
            );
            let et = if e.inner[0] >> 4 == 4 {
                "0x0800"
            } else {
                "0x86dd"
            };
            assert_eq!(field(inner_eth, "eth.type"), et, "{ctx}: inner EtherType");
            inner_start += 8 + 14;
        }
    }

    // The inner packet: where tshark found it, byte for byte the input.
    let (inner_off, inner, inner_v) = ips[1];
    assert_eq!(inner_off, inner_start, "{ctx}: inner IP offset");
    assert_eq!(inner_v, e.inner[0] >> 4, "{ctx}: inner IP version");
    assert!(
        frame[inner_off..] == e.inner[..],
        "{ctx}: the inner packet is not the input packet byte for byte"
    );
    if inner_v == 4 {
        assert_eq!(
            field(inner, "ip.checksum.status"),
            "1",
            "{ctx}: inner IPv4 checksum"
        );
    }
    for proto in ["tcp", "udp"] {
        if let Some((_, t)) = layers(l, proto).into_iter().find(|(o, _)| *o > inner_off) {
            assert_eq!(
                field(t, &format!("{proto}.checksum.status")),
                "1",
                "{ctx}: inner {proto} checksum"
            );
        }
    }
    // And the whole frame is what scapy built for it.
    assert!(
        frame == e.frame,
        "{ctx}: frame differs from the scapy expectation"
    );
}

fn counter(doc: &Value, path: &str) -> u64 {
    doc.pointer(path)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("no number at {path} in the replay JSON"))
}

fn replay_and_decode(encap: &str) {
    let scratch = Scratch::new(&format!("replay-{encap}"));
    let input = golden(&format!("replay-{encap}.pcap"));
    let config = golden(&format!("{encap}.toml"));
    let output = scratch.path("out.pcap");
    let out = lbfwd(&[
        Path::new("replay"),
        Path::new("--config"),
        &config,
        Path::new("--input"),
        &input,
        Path::new("--output"),
        &output,
        Path::new("-o"),
        Path::new("json"),
    ]);
    assert!(
        out.status.success(),
        "lbfwd replay failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let (frames, expected) = load_expect(encap);
    let inputs = pcap_frames(&input);
    assert_eq!(inputs.len(), frames);

    // The verdict counts.
    let doc: Value = serde_json::from_slice(&out.stdout).expect("replay -o json output");
    assert_eq!(counter(&doc, "/frames"), frames as u64);
    assert_eq!(counter(&doc, "/totals/rx/packets"), frames as u64);
    let rx_bytes: usize = inputs.iter().map(Vec::len).sum();
    assert_eq!(counter(&doc, "/totals/rx/bytes"), rx_bytes as u64);
    assert_eq!(counter(&doc, "/totals/tx/packets"), expected.len() as u64);
    let tx_bytes: usize = expected.iter().map(|e| e.frame.len()).sum();
    assert_eq!(counter(&doc, "/totals/tx/bytes"), tx_bytes as u64);
    assert_eq!(counter(&doc, "/totals/host/packets"), 1, "the ARP request");
    assert_eq!(counter(&doc, "/totals/dropped/packets"), 2);
    let drops = doc["drops"].as_array().expect("drops");
    for d in drops {
        let reason = d["reason"].as_str().expect("reason");
        let want = match reason {
            "port_not_allowed" | "icmp_echo" => 1,
            _ => 0,
        };
        assert_eq!(d["packets"].as_u64(), Some(want), "drop {reason}");
    }
    assert_eq!(counter(&doc, "/counters/flow_picks"), expected.len() as u64);
    let lbs = doc["load_balancers"].as_array().expect("load_balancers");
    for lb in lbs {
        let name = lb["name"].as_str().expect("name");
        // VIP 192.0.2.10 and .11 get two packets each, the IPv6 VIPs one.
        let want = if name.starts_with("v4-") { 2 } else { 1 };
        assert_eq!(
            lb["forwarded"]["packets"].as_u64(),
            Some(want),
            "load balancer {name}"
        );
        let targets = lb["targets"].as_array().expect("targets");
        assert_eq!(targets.len(), 1, "{name}");
        let t = &targets[0];
        let want_target = if name.ends_with("-4") { "t4" } else { "t6" };
        assert_eq!(t["name"], want_target, "{name}");
        let sent: usize = expected
            .iter()
            .filter(|e| e.target == want_target)
            .filter(|e| {
                let v4_vip = e.inner[0] >> 4 == 4;
                v4_vip == name.starts_with("v4-")
            })
            .map(|e| e.frame.len())
            .sum();
        assert_eq!(
            t["sent"]["bytes"].as_u64(),
            Some(sent as u64),
            "{name} bytes"
        );
    }

    // The frames, decoded by tshark.
    let mut extra = Vec::new();
    if encap == "gue" {
        // Wireshark has no GUE dissector; variant 1 carries IP directly.
        extra.extend(["-d", "udp.port==6080,ip"]);
    }
    let decoded = tshark(&output, &extra);
    assert_eq!(
        decoded.len(),
        expected.len(),
        "{encap}: frames in the output"
    );
    for (n, (l, e)) in decoded.iter().zip(&expected).enumerate() {
        check_frame(encap, n, l, e);
    }
}

#[test]
fn replay_ipip_decoded_by_tshark() {
    replay_and_decode("ipip");
}

#[test]
fn replay_gue_decoded_by_tshark() {
    replay_and_decode("gue");
}

#[test]
fn replay_vxlan_decoded_by_tshark() {
    replay_and_decode("vxlan");
}

#[test]
fn bad_pcap_input_is_a_clear_error() {
    let scratch = Scratch::new("replay-bad");
    let config = golden("vxlan.toml");
    let output = scratch.path("out.pcap");
    let good = std::fs::read(golden("replay-vxlan.pcap")).expect("input");
    let cases: [(&str, Vec<u8>, &str); 4] = [
        (
            "text.pcap",
            b"this is not a capture file at all".to_vec(),
            "not a pcap file",
        ),
        ("short.pcap", good[..10].to_vec(), ""),
        ("cut.pcap", good[..good.len() - 5].to_vec(), "truncated"),
        ("missing.pcap", Vec::new(), "cannot open"),
    ];
    for (name, bytes, words) in cases {
        let input = scratch.path(name);
        if name != "missing.pcap" {
            std::fs::write(&input, bytes).expect("write input");
        }
        let out = lbfwd(&[
            Path::new("replay"),
            Path::new("--config"),
            &config,
            Path::new("--input"),
            &input,
            Path::new("--output"),
            &output,
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}: exit status {}", out.status);
        assert!(
            err.contains(&input.display().to_string()),
            "{name}: the message does not name the file: {err}"
        );
        assert!(
            err.contains(words),
            "{name}: {err:?} does not say {words:?}"
        );
        assert!(!err.contains("panicked"), "{name}: {err}");
    }
}

/// `lbfwd replay` reads `--input` and writes `--output` and never opens the
/// configured backend: a config whose backend's own I/O settings are missing
/// (pcap without `[dataplane.pcap]` files, af_packet and af_xdp without
/// interfaces, dpdk without a port) replays like the same config on the
/// memory backend, and its errors keep their lines.
#[test]
fn replay_does_not_demand_the_backends_io_settings() {
    let scratch = Scratch::new("replay-backends");
    let golden_config = std::fs::read_to_string(golden("vxlan.toml")).expect("config");
    assert!(golden_config.contains("backend = \"memory\"\n"));
    let input = golden("replay-vxlan.pcap");
    let replay = |config: &Path, output: &Path| {
        lbfwd(&[
            Path::new("replay"),
            Path::new("--config"),
            config,
            Path::new("--input"),
            &input,
            Path::new("--output"),
            output,
            Path::new("-o"),
            Path::new("json"),
        ])
    };
    let reference = scratch.path("memory.pcap");
    let out = replay(&golden("vxlan.toml"), &reference);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference_counts = out.stdout;
    let reference = std::fs::read(&reference).expect("reference output");

    for backend in ["pcap", "af_packet", "af_xdp", "dpdk"] {
        let config = scratch.path(&format!("{backend}.toml"));
        let text = golden_config.replace(
            "backend = \"memory\"\n",
            &format!("backend = \"{backend}\" # no I/O settings for it\n"),
        );
        std::fs::write(&config, &text).expect("write config");
        // `lbfwd check` still demands them where the config crate does.
        let checked = lbfwd(&[Path::new("check"), Path::new("--config"), &config]);
        if backend == "pcap" {
            assert!(
                !checked.status.success(),
                "check accepts pcap without input"
            );
        }
        let output = scratch.path(&format!("{backend}.pcap"));
        let out = replay(&config, &output);
        assert!(
            out.status.success(),
            "replay with backend {backend}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout, reference_counts, "{backend}: the counts");
        assert_eq!(
            std::fs::read(&output).expect("output"),
            reference,
            "{backend}: the frames"
        );

        // An error after the backend's line is still located at its line.
        let broken = scratch.path(&format!("{backend}-broken.toml"));
        std::fs::write(&broken, text.replace("mtu = 1500", "mtu = \"big\"")).expect("write");
        let line = golden_config
            .lines()
            .position(|l| l == "mtu = 1500")
            .expect("the mtu line")
            + 1;
        let out = replay(&broken, &output);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{backend}: a broken config replays");
        assert!(
            err.contains(&format!("{}:{line}:", broken.display())),
            "{backend}: the error is not at line {line}: {err}"
        );
    }
}
